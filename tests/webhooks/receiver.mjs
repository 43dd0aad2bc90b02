// A webhook receiver for the tests: verifies each delivery with the Standard Webhooks
// library from npm (`standardwebhooks`), not with the server's own code, and answers as
// the test scripted.
//
// Listens on 127.0.0.1 (a free port) and prints `{"port": N}` on its first line. Control:
//   POST /_control/secrets  {"secrets": ["whsec_…", …]}   the secrets to verify with
//   POST /_control/plan     {"answers": [500, {"status": 302}, …]}  the next answers, in
//                           order (each a status, or {status, body, delay_ms}); then 200
//   GET  /_control/requests  every other request so far: path, headers, body, the status
//                           answered, and `verified`: per secret, whether it verified
import http from "node:http";
import { createRequire } from "node:module";

const require = createRequire(import.meta.url);
const { Webhook } = require("standardwebhooks");

let secrets = [];
let plan = [];
const requests = [];

function readBody(req) {
  return new Promise((resolve, reject) => {
    const chunks = [];
    req.on("data", (c) => chunks.push(c));
    req.on("end", () => resolve(Buffer.concat(chunks).toString("utf8")));
    req.on("error", reject);
  });
}

function verifiedWith(body, headers) {
  return secrets.map((secret) => {
    try {
      new Webhook(secret).verify(body, headers);
      return true;
    } catch {
      return false;
    }
  });
}

function answer(res, status, body, headers = {}) {
  res.writeHead(status, { "content-type": "text/plain; charset=utf-8", ...headers });
  res.end(body);
}

const server = http.createServer(async (req, res) => {
  const body = await readBody(req);
  if (req.url === "/_control/secrets" && req.method === "POST") {
    secrets = JSON.parse(body).secrets;
    return answer(res, 204, "");
  }
  if (req.url === "/_control/plan" && req.method === "POST") {
    plan = JSON.parse(body).answers;
    return answer(res, 204, "");
  }
  if (req.url === "/_control/requests" && req.method === "GET") {
    res.writeHead(200, { "content-type": "application/json" });
    return res.end(JSON.stringify(requests));
  }
  const next = plan.length > 0 ? plan.shift() : 200;
  const { status, body: text, delay_ms: delay } = typeof next === "number" ? { status: next } : next;
  const reply = text ?? `answer ${requests.length + 1}: ${status}`;
  requests.push({
    method: req.method,
    path: req.url,
    headers: req.headers,
    body,
    status,
    verified: verifiedWith(body, req.headers),
  });
  const port = server.address().port;
  const extra = status >= 300 && status < 400
    ? { location: `http://127.0.0.1:${port}/redirected` }
    : {};
  setTimeout(() => answer(res, status, reply, extra), delay ?? 0);
});

server.listen(0, "127.0.0.1", () => {
  process.stdout.write(JSON.stringify({ port: server.address().port }) + "\n");
});
