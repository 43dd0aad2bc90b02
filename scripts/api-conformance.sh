#!/usr/bin/env bash
# Proves the API contract against the real binary on a fresh data directory:
#   1. the Python client generated from the live spec (openapi-python-client) comes out
#      without a single warning,
#   2. examples/python/flow.py walks the whole API with that client, typed end to end, and
#      the curl commands of examples/curl.md all work as written,
#   3. schemathesis finds nothing: all checks, every phase (stateful included), with a
#      funded account's key and again without any credentials.
# Tools are pinned in scripts/api-conformance.requirements.txt and installed in
# target/api-venv (reused while it matches). Reports go to target/api-conformance/.
#
# Usage: scripts/api-conformance.sh     (from any directory; builds the binary only if missing)
# Environment: API_CONFORMANCE_MAX_EXAMPLES (schemathesis examples per operation, default 300),
#              API_CONFORMANCE_ANONYMOUS_MAX_EXAMPLES (the same without credentials, default 50),
#              API_CONFORMANCE_SEED (default 1), API_CONFORMANCE_WORKERS (default 2).
# The defaults keep the whole script within about 6 minutes on 2 cores.
set -euo pipefail
cd "$(dirname "$0")/.."
root=$PWD
started=$SECONDS

max_examples=${API_CONFORMANCE_MAX_EXAMPLES:-300}
anonymous_max_examples=${API_CONFORMANCE_ANONYMOUS_MAX_EXAMPLES:-50}
seed=${API_CONFORMANCE_SEED:-1}
st_workers=${API_CONFORMANCE_WORKERS:-2}
requirements=$root/scripts/api-conformance.requirements.txt
st_config=$root/scripts/schemathesis.toml
venv=$root/target/api-venv
out=$root/target/api-conformance
binary=$root/target/debug/fmu-gateway

step() { echo "== api-conformance: $* ($((SECONDS - started)) s)"; }
fail() { echo "api-conformance: FAILED: $*" >&2; exit 1; }
# apt_install PACKAGE…: Debian packages this needs (python3-venv, jq), as scripts/test.sh does.
apt_install() {
  command -v apt-get >/dev/null || fail "missing: $* (install them and re-run)"
  local sudo=
  [ "$(id -u)" = 0 ] || sudo=sudo
  step "installing $* (apt)"
  $sudo apt-get update -qq
  DEBIAN_FRONTEND=noninteractive $sudo apt-get install -y -qq "$@" >/dev/null
}
python3 -c 'import ensurepip, venv' 2>/dev/null || apt_install python3-venv
command -v jq >/dev/null || apt_install jq

# --- The binary: `cargo test` has just built it when this runs from scripts/test.sh.
if [ ! -x "$binary" ]; then
  step "cargo build --locked --bin fmu-gateway"
  cargo build --locked --bin fmu-gateway
fi

# --- The tools, pinned. A venv is rebuilt when its `pip freeze` is not exactly the file.
wanted() { grep -v '^#' "$requirements" | grep -v '^$' | sort -f; }
installed() { "$venv/bin/python" -m pip freeze --exclude fmu-gateway-api-client 2>/dev/null | sort -f; }
if [ -x "$venv/bin/python" ] && [ "$(installed)" = "$(wanted)" ]; then
  step "reusing $venv"
else
  step "creating $venv"
  rm -rf "$venv"
  python3 -m venv "$venv"
  "$venv/bin/python" -m pip install --quiet --disable-pip-version-check -r "$requirements"
  [ "$(installed)" = "$(wanted)" ] ||
    fail "$venv does not match $requirements after installing it:
$(diff <(wanted) <(installed))"
fi
export PATH="$venv/bin:$PATH" # ruff, for the generator's post-hooks
python=$venv/bin/python

rm -rf "$out"
mkdir -p "$out"

# --- A server of our own: free port, fresh data directory, killed and removed on exit.
scratch=$(mktemp -d "${TMPDIR:-/tmp}/fmu-gateway-conformance.XXXXXX")
server_pid=
cleanup() {
  if [ -n "$server_pid" ] && kill -0 "$server_pid" 2>/dev/null; then
    kill -TERM "$server_pid" 2>/dev/null || true
    for _ in $(seq 50); do kill -0 "$server_pid" 2>/dev/null || break; sleep 0.1; done
    kill -KILL "$server_pid" 2>/dev/null || true
    wait "$server_pid" 2>/dev/null || true
  fi
  rm -rf "$scratch"
}
trap cleanup EXIT
trap 'exit 130' INT
trap 'exit 143' TERM

port=$("$python" -c 'import socket; s = socket.socket(); s.bind(("127.0.0.1", 0)); print(s.getsockname()[1])')
base=http://127.0.0.1:$port
# Settings for a test server (src/config.rs):
#   FREE_CREDITS: every account can run whatever schemathesis asks for (no 402 halfway);
#   SYNC_WAIT_MS: quick runs still answer 201, flow.py's long run (about 3 s) answers 202;
#   RUNS_PER_MINUTE, MAX_ACTIVE_RUNS_PER_USER: the fuzzer is not throttled into testing 429 only;
#   MAX_RUN_SECONDS: a fuzzed run with an extreme step count does not hold a worker for 10 min;
#   FREE_GRANTS_PER_ADDRESS_PER_DAY: the accounts made here all get the free credits.
# No STRIPE_SECRET_KEY: billing is not configured (flow.py checks the 503 it answers).
step "starting the server on $base"
env NO_COLOR=1 FMU_GATEWAY_FREE_CREDITS=1000000 \
  FMU_GATEWAY_SYNC_WAIT_MS=500 \
  FMU_GATEWAY_RUNS_PER_MINUTE=100000 \
  FMU_GATEWAY_MAX_ACTIVE_RUNS_PER_USER=64 \
  FMU_GATEWAY_MAX_RUN_SECONDS=30 \
  FMU_GATEWAY_FREE_GRANTS_PER_ADDRESS_PER_DAY=100 \
  FMU_GATEWAY_PUBLIC_URL="$base" \
  "$binary" serve --listen "127.0.0.1:$port" --data-dir "$scratch/data" >"$out/server.log" 2>&1 &
server_pid=$!
for _ in $(seq 600); do
  kill -0 "$server_pid" 2>/dev/null || { tail -n 30 "$out/server.log" >&2; fail "the server exited at start-up"; }
  if "$python" -c 'import sys, urllib.request; urllib.request.urlopen(sys.argv[1], timeout=1)' "$base/ready" 2>/dev/null; then
    break
  fi
  sleep 0.1
done
"$python" -c 'import sys, urllib.request; urllib.request.urlopen(sys.argv[1], timeout=5)' "$base/ready" ||
  { tail -n 30 "$out/server.log" >&2; fail "the server is not ready after 60 s ($base/ready)"; }
"$python" -c 'import sys, urllib.request; sys.stdout.buffer.write(urllib.request.urlopen(sys.argv[1]).read())' \
  "$base/api/openapi.json" >"$out/openapi.json"

# --- 1. The generated client: its whole output must be the one "Generating <dir>" line.
# Any other line is a warning (an operation or schema dropped: "WARNING parsing …",
# "Unable to process schema …", "Cannot parse response …") or a post-hook problem ("ruff is
# not in PATH" cannot happen: ruff is pinned in the venv, so a formatting failure is real too).
# An allow-list rather than grepping for known warning words: a new kind of message fails.
step "generating the Python client from $base/api/openapi.json"
client_dir=$out/client/fmu-gateway-api-client
mkdir -p "$out/client"
if ! (cd "$out/client" && openapi-python-client generate --url "$base/api/openapi.json" \
  --output-path "$client_dir") >"$out/generate.log" 2>&1; then
  cat "$out/generate.log" >&2
  fail "openapi-python-client generate exited non-zero"
fi
unexpected=$(grep -v -x -F "Generating $client_dir" "$out/generate.log" | grep -v '^[[:space:]]*$' || true)
if [ -n "$unexpected" ]; then
  cat "$out/generate.log" >&2
  fail "the client generator printed warnings (above; also in $out/generate.log)"
fi
# Installed offline: its build backend (poetry-core) and its dependencies are in the venv.
"$venv/bin/pip" install --quiet --disable-pip-version-check --no-index --no-build-isolation \
  --force-reinstall --no-deps "$client_dir"
"$venv/bin/pip" check --disable-pip-version-check >/dev/null ||
  fail "the generated client's dependencies are not satisfied: $("$venv/bin/pip" check)"

# --- 2. flow.py, with an upload that is new to the server: a library FMU with one more file.
step "examples/python/flow.py"
demo_fmu=$(ls -t "$root"/target/debug/build/fmu-gateway-*/out/demo-fmus/VanDerPol.fmu 2>/dev/null | head -n 1 || true)
[ -n "$demo_fmu" ] || fail "no demo FMU under target/debug/build/fmu-gateway-*/out/demo-fmus/ (run cargo build)"
"$python" - "$demo_fmu" "$scratch/VanDerPol-upload.fmu" <<'PY'
import sys, zipfile
with zipfile.ZipFile(sys.argv[1]) as src, zipfile.ZipFile(sys.argv[2], "w", zipfile.ZIP_DEFLATED) as dst:
    for item in src.infolist():
        dst.writestr(item, src.read(item))
    dst.writestr("resources/note.txt", "uploaded by scripts/api-conformance.sh\n")
PY
"$python" "$root/examples/python/flow.py" --base-url "$base" "$scratch/VanDerPol-upload.fmu" 2>&1 |
  tee "$out/flow.log"

# --- 2b. examples/curl.md, every command as written (but the port), in one shell, with
# pipefail: a failing curl or jq stops it. Then the answers the walkthrough is about must
# all have been seen.
step "examples/curl.md"
mkdir -p "$scratch/curl"
cp "$scratch/VanDerPol-upload.fmu" "$scratch/curl/model.fmu"
"$python" - "$root/examples/curl.md" "$port" >"$scratch/curl/walkthrough.sh" <<'PY'
import re, sys
blocks = re.findall(r"```sh\n(.*?)```", open(sys.argv[1]).read(), re.S)
print("set -euo pipefail")
for block in blocks:
    if "-- serve" in block:  # how to start the server: this one is already running
        continue
    print(block.replace("localhost:8080", "localhost:" + sys.argv[2]))
PY
(cd "$scratch/curl" && bash walkthrough.sh) >"$out/curl.log" 2>&1 ||
  { cat "$out/curl.log" >&2; fail "a command of examples/curl.md failed"; }
for seen in '"status":"succeeded"' 'HTTP/1.1 202 Accepted' 'time,h,v' '"status":"cancelled"' \
  '"code":"conflict"' '"active":false' '"code":"billing_not_configured"'; do
  grep -q -F "$seen" "$out/curl.log" || { cat "$out/curl.log" >&2; fail "examples/curl.md never showed $seen"; }
done
echo "   every command ran ($out/curl.log)"

# --- 3. schemathesis. Accounts made through the compatibility route /register.
register() {
  "$python" - "$base" "$1" <<'PY'
import json, sys, urllib.request
request = urllib.request.Request(
    sys.argv[1] + "/register",
    data=json.dumps({"email": sys.argv[2], "password": "schemathesis password"}).encode(),
    headers={"content-type": "application/json"},
)
print(json.load(urllib.request.urlopen(request))["api_key"])
PY
}

st_failed=()
# st_pass NAME [st run options…]: one schemathesis run, reports in $out/NAME/.
st_pass() {
  local name=$1
  shift
  step "schemathesis: $name"
  mkdir -p "$out/$name"
  if st --config-file "$st_config" run "$base/api/openapi.json" \
    --checks all --phases examples,coverage,fuzzing,stateful \
    --seed "$seed" --workers "$st_workers" \
    --generation-database none --no-color --output-truncate false \
    --report junit,ndjson --report-dir "$out/$name" "$@" >"$out/$name/st.log" 2>&1; then
    echo "   passed ($(grep -E '^=+ .* in [0-9.]+s =+$' "$out/$name/st.log" | tr -d '=' | xargs))"
  else
    st_failed+=("$name")
    echo "   FAILED: $(grep -E '^=+ .* in [0-9.]+s =+$' "$out/$name/st.log" | tr -d '=' | xargs)"
  fi
  # The whole report (a few KB) goes into the log, so CI keeps it with the run.
  sed 's/^/   | /' "$out/$name/st.log"
}

# The main pass, authenticated with a funded account's key. revokeKey is left to its own pass
# below: the stateful phase links listKeys to revokeKey and revokes the very key the run is
# authenticated with, after which every request is a 401 and the rest of the run tests nothing.
authed_key=$(register "schemathesis-authed@example.com")
st_pass authed --max-examples "$max_examples" -H "Authorization: Bearer $authed_key" \
  --exclude-operation-id revokeKey

# revokeKey (with the key operations it links to) on an account of its own: revoking its own
# key there is fine, being the last thing that pass can do.
keys_key=$(register "schemathesis-keys@example.com")
st_pass keys --max-examples "$max_examples" -H "Authorization: Bearer $keys_key" --include-tag Keys

# No credentials at all: every operation but the public key must answer 401 as documented.
# Fewer examples: a request without a key is refused before anything of it is read.
st_pass anonymous --max-examples "$anonymous_max_examples"

# --- Summary.
# The server logs every 5xx answer at ERROR (the 503s of billing here), and every bug it
# notices (an undeclared status, a failed invariant) too: shown, for the reader of a CI log.
server_errors=$(grep ' ERROR ' "$out/server.log" | sed -E 's/^[^ ]+ +//' |
  sed -E 's/ duration_ms=[0-9.]+//' | sort | uniq -c | sort -rn || true)
echo
echo "== api-conformance summary ($((SECONDS - started)) s, seed $seed," \
  "max-examples $max_examples, without credentials $anonymous_max_examples)"
echo "   client generated without warnings: $client_dir"
echo "   $(tail -n 1 "$out/flow.log"); examples/curl.md: every command ran"
for name in authed keys anonymous; do
  echo "   schemathesis $name: $(grep -E '^=+ .* in [0-9.]+s =+$' "$out/$name/st.log" | tr -d '=' | xargs)"
done
echo "   server log ($out/server.log), ERROR lines:"
echo "${server_errors:-      none}" | sed 's/^/   /'
echo "   reports: $out/"
[ ${#st_failed[@]} -eq 0 ] || fail "schemathesis found failures in: ${st_failed[*]} (logs: $out/<pass>/st.log)"
echo "api-conformance: all passed"
