//! The spec is a contract: each `/api/v1` operation declares every error status it can answer,
//! and only those. Every operation is driven against the real server into each error it can
//! produce; the status seen must be declared for that operation in the served
//! `/api/openapi.json`, with the shared `{code, message}` body. And every error status an
//! operation declares must have been seen, so a declared status that cannot happen fails too.

use std::collections::{BTreeMap, BTreeSet};
use std::time::Duration;

use biscuit_auth::macros::block;
use reqwest::Method;
use serde_json::{Value, json};
use tokio::io::{AsyncReadExt, AsyncWriteExt};

use crate::common::{TestApp, api_client, spawn_app_with, spawn_billing_app, stripe};

/// What a request carries.
#[derive(Clone)]
enum Body {
    None,
    Json(Value),
    /// Raw bytes with a content type (none when empty).
    Raw(&'static str, Vec<u8>),
    /// A multipart form with `file`.
    Upload(Vec<u8>),
}

/// The served spec, and what the test has seen of it.
struct Contract {
    /// `operationId` → the statuses it declares.
    declared: BTreeMap<String, BTreeSet<u16>>,
    /// `operationId` → the error statuses this test produced.
    seen: BTreeMap<String, BTreeSet<u16>>,
}

impl Contract {
    async fn load(app: &TestApp) -> Contract {
        let spec: Value = api_client()
            .get(app.at("/api/openapi.json"))
            .send()
            .await
            .unwrap()
            .json()
            .await
            .unwrap();
        let mut declared = BTreeMap::new();
        for ops in spec["paths"].as_object().unwrap().values() {
            for op in ops.as_object().unwrap().values() {
                let statuses = op["responses"]
                    .as_object()
                    .unwrap()
                    .keys()
                    .map(|s| s.parse().unwrap())
                    .collect();
                declared.insert(op["operationId"].as_str().unwrap().to_string(), statuses);
            }
        }
        Contract {
            declared,
            seen: BTreeMap::new(),
        }
    }

    /// Sends the request and checks the answer is `expected`, declared for `op`, in our body.
    async fn expect(
        &mut self,
        op: &str,
        expected: u16,
        (method, url): (Method, String),
        key: Option<&str>,
        body: Body,
    ) -> Value {
        let mut req = api_client().request(method.clone(), &url);
        if let Some(key) = key {
            req = req.bearer_auth(key);
        }
        req = match body {
            Body::None => req,
            Body::Json(v) => req.json(&v),
            Body::Raw("", bytes) => req.body(bytes),
            Body::Raw(content_type, bytes) => req.header("content-type", content_type).body(bytes),
            Body::Upload(bytes) => req.multipart(reqwest::multipart::Form::new().part(
                "file",
                reqwest::multipart::Part::bytes(bytes).file_name("model.fmu"),
            )),
        };
        let resp = req.send().await.unwrap();
        let status = resp.status().as_u16();
        let text = resp.text().await.unwrap();
        assert_eq!(status, expected, "{op} {method} {url}: {text}");
        self.record(op, status, &text)
    }

    /// Checks an error answer of `op` against the spec and notes it as seen.
    fn record(&mut self, op: &str, status: u16, text: &str) -> Value {
        let declared = self
            .declared
            .get(op)
            .unwrap_or_else(|| panic!("{op} is not in the served spec"));
        assert!(
            declared.contains(&status),
            "{op} answered {status}, which its spec does not declare ({declared:?}): {text}"
        );
        let body: Value = serde_json::from_str(text)
            .unwrap_or_else(|e| panic!("{op} {status}: not JSON ({e}): {text}"));
        assert!(
            body["code"].is_string() && body["message"].is_string(),
            "{op} {status}: not our error body: {text}"
        );
        self.seen.entry(op.to_string()).or_default().insert(status);
        body
    }

    /// Every error status declared has been produced (500 aside: nothing here may break).
    fn assert_all_seen(&self) {
        let mut missing = Vec::new();
        for (op, declared) in &self.declared {
            let seen = self.seen.get(op).cloned().unwrap_or_default();
            for status in declared.iter().filter(|s| **s >= 400 && **s != 500) {
                if !seen.contains(status) {
                    missing.push(format!("{op} {status}"));
                }
            }
        }
        assert!(
            missing.is_empty(),
            "declared but never produced: {missing:?}"
        );
    }
}

/// A webhook target the SSRF rule allows without a name to resolve: a public address.
const PUBLIC_HOOK: &str = "https://93.184.215.14/hook";

/// The webhook operations' own errors: bodies, refused URLs, unknown ids, the cap.
async fn webhook_errors(contract: &mut Contract, app: &TestApp, key: &str, max_json: usize) {
    let create = at(app, Method::POST, "/api/v1/webhooks");
    let update = at(app, Method::PATCH, "/api/v1/webhooks/whk_x");
    for (op, target, valid) in [
        (
            "createWebhook",
            create.clone(),
            json!({ "url": PUBLIC_HOOK }),
        ),
        ("updateWebhook", update.clone(), json!({ "enabled": true })),
    ] {
        let not_json = Body::Raw("application/json", b"{\"oops".to_vec());
        contract
            .expect(op, 400, target.clone(), Some(key), not_json)
            .await;
        let text = Body::Raw("text/plain", valid.to_string().into_bytes());
        contract
            .expect(op, 415, target.clone(), Some(key), text)
            .await;
        let huge = json!({ "padding": "x".repeat(2 * max_json) });
        contract
            .expect(op, 413, target.clone(), Some(key), Body::Json(huge))
            .await;
        // A loopback target, refused by the SSRF rule: 422 naming the URL.
        let private = Body::Json(json!({ "url": "https://127.0.0.1/hook" }));
        if op == "createWebhook" {
            let body = contract
                .expect(op, 422, target.clone(), Some(key), private)
                .await;
            assert_eq!(body["problems"][0]["field"], "url", "{body}");
        }
    }
    // An unknown endpoint is 404; one that is not UTF-8 once decoded 400.
    let valid = Body::Json(json!({ "enabled": true }));
    contract
        .expect("updateWebhook", 404, update, Some(key), valid.clone())
        .await;
    let unreadable = at(app, Method::PATCH, "/api/v1/webhooks/%FF");
    contract
        .expect("updateWebhook", 400, unreadable, Some(key), valid)
        .await;
    // Ten endpoints, then 409; a refused new URL for one of them is 422.
    let mut first = None;
    for i in 0..10 {
        let resp = api_client()
            .post(&create.1)
            .bearer_auth(key)
            .json(&json!({ "url": format!("{PUBLIC_HOOK}/{i}") }))
            .send()
            .await
            .unwrap();
        assert_eq!(resp.status(), 201, "{}", resp.text().await.unwrap());
        let created: Value = resp.json().await.unwrap();
        first.get_or_insert(created["webhook"]["id"].as_str().unwrap().to_string());
    }
    let body = contract
        .expect(
            "createWebhook",
            409,
            create,
            Some(key),
            Body::Json(json!({ "url": PUBLIC_HOOK })),
        )
        .await;
    assert_eq!(body["code"], "conflict");
    let one = at(
        app,
        Method::PATCH,
        &format!("/api/v1/webhooks/{}", first.unwrap()),
    );
    let private = Body::Json(json!({ "url": "https://[::1]/hook" }));
    contract
        .expect("updateWebhook", 422, one, Some(key), private)
        .await;
}

fn at(app: &TestApp, method: Method, path: &str) -> (Method, String) {
    (method, app.at(path))
}

/// A token attenuated from `key` to an operation no route has: every operation refuses it.
async fn restricted(app: &TestApp, key: &str) -> String {
    let public = crate::keys::public_key(app).await;
    crate::keys::attenuate(key, public, block!(r#"check if operation("none");"#))
}

/// Sends `body` chunked (no length) and returns the status and body of the answer.
async fn post_chunked(app: &TestApp, path: &str, key: &str, content_type: &str) -> (u16, String) {
    let addr = app.addr.to_string();
    let mut stream = tokio::net::TcpStream::connect(&addr).await.unwrap();
    let head = format!(
        "POST {path} HTTP/1.1\r\nHost: {addr}\r\nContent-Type: {content_type}\r\nAuthorization: Bearer {key}\r\nTransfer-Encoding: chunked\r\nConnection: close\r\n\r\n4\r\nabcd\r\n0\r\n\r\n"
    );
    stream.write_all(head.as_bytes()).await.unwrap();
    let mut answer = Vec::new();
    let _ = tokio::time::timeout(Duration::from_secs(10), stream.read_to_end(&mut answer)).await;
    let text = String::from_utf8_lossy(&answer).to_string();
    let status = text.split_whitespace().nth(1).unwrap().parse().unwrap();
    let body = text.split("\r\n\r\n").nth(1).unwrap_or_default();
    // The body of a `Connection: close` answer may itself be chunked.
    let body = match body.split_once("\r\n") {
        Some((size, rest)) if u64::from_str_radix(size.trim(), 16).is_ok() => {
            rest.split("\r\n").next().unwrap_or_default().to_string()
        }
        _ => body.to_string(),
    };
    (status, body)
}

/// Polls a run until it has ended.
async fn finished(app: &TestApp, key: &str, id: &str) -> Value {
    for _ in 0..400 {
        let run: Value = api_client()
            .get(app.at(&format!("/api/v1/runs/{id}")))
            .bearer_auth(key)
            .send()
            .await
            .unwrap()
            .json()
            .await
            .unwrap();
        if ["succeeded", "failed", "cancelled"].contains(&run["status"].as_str().unwrap()) {
            return run;
        }
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
    panic!("run {id} did not end");
}

async fn start_run(app: &TestApp, key: &str, body: Value) -> String {
    let resp = api_client()
        .post(app.at("/api/v1/runs"))
        .bearer_auth(key)
        .json(&body)
        .send()
        .await
        .unwrap();
    assert!(resp.status().is_success(), "{}", resp.text().await.unwrap());
    let run: Value = resp.json().await.unwrap();
    run["id"].as_str().unwrap().to_string()
}

#[tokio::test]
async fn every_v1_operation_answers_only_the_errors_its_spec_declares() {
    const MAX_JSON: usize = 16 * 1024;
    const MAX_UPLOAD: u64 = 1 << 20;
    let app = spawn_app_with(|c| {
        c.max_json_bytes = MAX_JSON as u64;
        c.max_upload_bytes = MAX_UPLOAD;
        c.sync_wait = Duration::ZERO;
    })
    .await;
    let mut contract = Contract::load(&app).await;
    let account = app.register().await;
    let key = account.api_key.as_str();
    let limited = restricted(&app, key).await;
    let fmu_id = "0".repeat(64);

    // Every operation that takes a key: none is 401, one restricted to another operation 403.
    let run_body = json!({ "fmu_id": "lib:Dahlquist", "stop_time": 1.0 });
    let sweep_body = json!({
        "base": { "fmu_id": "lib:Dahlquist", "stop_time": 1.0 },
        "design": { "grid": [{ "name": "k", "values": [1, 2] }] },
    });
    let keyed: Vec<(&str, Method, String, Body)> = vec![
        ("getAccount", Method::GET, "/api/v1/me".into(), Body::None),
        ("listKeys", Method::GET, "/api/v1/keys".into(), Body::None),
        (
            "createKey",
            Method::POST,
            "/api/v1/keys".into(),
            Body::Json(json!({})),
        ),
        (
            "revokeKey",
            Method::POST,
            "/api/v1/keys/key_x/revoke".into(),
            Body::None,
        ),
        ("listUsage", Method::GET, "/api/v1/usage".into(), Body::None),
        (
            "uploadFmu",
            Method::POST,
            "/api/v1/fmus".into(),
            Body::Upload(b"PK".to_vec()),
        ),
        ("listFmus", Method::GET, "/api/v1/fmus".into(), Body::None),
        (
            "getFmu",
            Method::GET,
            "/api/v1/fmus/lib:Dahlquist".into(),
            Body::None,
        ),
        (
            "getFmuValidation",
            Method::GET,
            "/api/v1/fmus/lib:Dahlquist/validation".into(),
            Body::None,
        ),
        (
            "deleteFmu",
            Method::DELETE,
            format!("/api/v1/fmus/{fmu_id}"),
            Body::None,
        ),
        (
            "createRun",
            Method::POST,
            "/api/v1/runs".into(),
            Body::Json(run_body.clone()),
        ),
        (
            "getRun",
            Method::GET,
            "/api/v1/runs/run_x".into(),
            Body::None,
        ),
        (
            "getRunResult",
            Method::GET,
            "/api/v1/runs/run_x/result".into(),
            Body::None,
        ),
        ("listRuns", Method::GET, "/api/v1/runs".into(), Body::None),
        (
            "cancelRun",
            Method::POST,
            "/api/v1/runs/run_x/cancel".into(),
            Body::None,
        ),
        (
            "getRunState",
            Method::GET,
            "/api/v1/runs/run_x/state".into(),
            Body::None,
        ),
        (
            "uploadState",
            Method::POST,
            "/api/v1/states?fmu=lib:Dahlquist&time=0".into(),
            Body::Raw("application/octet-stream", b"state".to_vec()),
        ),
        (
            "listStates",
            Method::GET,
            "/api/v1/states".into(),
            Body::None,
        ),
        (
            "deleteState",
            Method::DELETE,
            "/api/v1/states/st_x".into(),
            Body::None,
        ),
        (
            "getBilling",
            Method::GET,
            "/api/v1/billing".into(),
            Body::None,
        ),
        (
            "startCheckout",
            Method::POST,
            "/api/v1/billing/checkout".into(),
            Body::Json(json!({ "plan": "pro" })),
        ),
        (
            "openBillingPortal",
            Method::POST,
            "/api/v1/billing/portal".into(),
            Body::None,
        ),
        (
            "createSweep",
            Method::POST,
            "/api/v1/sweeps".into(),
            Body::Json(sweep_body.clone()),
        ),
        (
            "quoteSweep",
            Method::POST,
            "/api/v1/sweeps/quote".into(),
            Body::Json(sweep_body.clone()),
        ),
        (
            "listSweeps",
            Method::GET,
            "/api/v1/sweeps".into(),
            Body::None,
        ),
        (
            "getSweep",
            Method::GET,
            "/api/v1/sweeps/swp_x".into(),
            Body::None,
        ),
        (
            "listSweepCases",
            Method::GET,
            "/api/v1/sweeps/swp_x/cases".into(),
            Body::None,
        ),
        (
            "cancelSweep",
            Method::POST,
            "/api/v1/sweeps/swp_x/cancel".into(),
            Body::None,
        ),
        (
            "sweepEvents",
            Method::GET,
            "/api/v1/sweeps/swp_x/events".into(),
            Body::None,
        ),
        (
            "runEvents",
            Method::GET,
            "/api/v1/runs/run_x/events".into(),
            Body::None,
        ),
        (
            "getSweepCaseResult",
            Method::GET,
            "/api/v1/sweeps/swp_x/cases/0/result".into(),
            Body::None,
        ),
        (
            "getSweepCasesCsv",
            Method::GET,
            "/api/v1/sweeps/swp_x/cases.csv".into(),
            Body::None,
        ),
        (
            "listWebhooks",
            Method::GET,
            "/api/v1/webhooks".into(),
            Body::None,
        ),
        (
            "createWebhook",
            Method::POST,
            "/api/v1/webhooks".into(),
            Body::Json(json!({ "url": PUBLIC_HOOK })),
        ),
        (
            "getWebhook",
            Method::GET,
            "/api/v1/webhooks/whk_x".into(),
            Body::None,
        ),
        (
            "updateWebhook",
            Method::PATCH,
            "/api/v1/webhooks/whk_x".into(),
            Body::Json(json!({ "enabled": false })),
        ),
        (
            "deleteWebhook",
            Method::DELETE,
            "/api/v1/webhooks/whk_x".into(),
            Body::None,
        ),
        (
            "rotateWebhookSecret",
            Method::POST,
            "/api/v1/webhooks/whk_x/rotate-secret".into(),
            Body::None,
        ),
        (
            "listWebhookDeliveries",
            Method::GET,
            "/api/v1/webhooks/whk_x/deliveries".into(),
            Body::None,
        ),
        (
            "resendWebhookDelivery",
            Method::POST,
            "/api/v1/webhooks/deliveries/whd_x/resend".into(),
            Body::None,
        ),
    ];
    for (op, method, path, body) in &keyed {
        let target = at(&app, method.clone(), path);
        let missing = contract
            .expect(op, 401, target.clone(), None, body.clone())
            .await;
        assert_eq!(missing["code"], "missing_api_key", "{op}");
        let refused = contract
            .expect(op, 403, target, Some(&limited), body.clone())
            .await;
        assert_eq!(refused["code"], "key_restricted", "{op}");
    }
    let keyed_ops: BTreeSet<&str> = keyed.iter().map(|k| k.0).collect();
    let spec_ops: BTreeSet<&str> = contract
        .declared
        .keys()
        .map(String::as_str)
        .filter(|op| *op != "getPublicKey")
        .collect();
    assert_eq!(keyed_ops, spec_ops, "every keyed operation is exercised");

    // Unknown ids are 404; an id that is not UTF-8 once decoded cannot even be read: 400.
    for (op, method, path) in [
        ("revokeKey", Method::POST, "/api/v1/keys/{}/revoke"),
        ("getFmu", Method::GET, "/api/v1/fmus/{}"),
        (
            "getFmuValidation",
            Method::GET,
            "/api/v1/fmus/{}/validation",
        ),
        ("deleteFmu", Method::DELETE, "/api/v1/fmus/{}"),
        ("getRun", Method::GET, "/api/v1/runs/{}"),
        ("getRunResult", Method::GET, "/api/v1/runs/{}/result"),
        ("cancelRun", Method::POST, "/api/v1/runs/{}/cancel"),
        ("getRunState", Method::GET, "/api/v1/runs/{}/state"),
        ("deleteState", Method::DELETE, "/api/v1/states/{}"),
        ("getSweep", Method::GET, "/api/v1/sweeps/{}"),
        ("listSweepCases", Method::GET, "/api/v1/sweeps/{}/cases"),
        ("cancelSweep", Method::POST, "/api/v1/sweeps/{}/cancel"),
        ("sweepEvents", Method::GET, "/api/v1/sweeps/{}/events"),
        ("runEvents", Method::GET, "/api/v1/runs/{}/events"),
        (
            "getSweepCaseResult",
            Method::GET,
            "/api/v1/sweeps/{}/cases/0/result",
        ),
        (
            "getSweepCasesCsv",
            Method::GET,
            "/api/v1/sweeps/{}/cases.csv",
        ),
        ("getWebhook", Method::GET, "/api/v1/webhooks/{}"),
        ("deleteWebhook", Method::DELETE, "/api/v1/webhooks/{}"),
        (
            "rotateWebhookSecret",
            Method::POST,
            "/api/v1/webhooks/{}/rotate-secret",
        ),
        (
            "listWebhookDeliveries",
            Method::GET,
            "/api/v1/webhooks/{}/deliveries",
        ),
        (
            "resendWebhookDelivery",
            Method::POST,
            "/api/v1/webhooks/deliveries/{}/resend",
        ),
    ] {
        let unknown = path.replace("{}", &format!("nope_{fmu_id}"));
        contract
            .expect(
                op,
                404,
                at(&app, method.clone(), &unknown),
                Some(key),
                Body::None,
            )
            .await;
        let unreadable = path.replace("{}", "%FF");
        contract
            .expect(
                op,
                400,
                at(&app, method, &unreadable),
                Some(key),
                Body::None,
            )
            .await;
    }

    // Bodies: not JSON 400, another content type 415, past the limit 413.
    for (op, path, valid) in [
        ("createKey", "/api/v1/keys", json!({ "label": "ok" })),
        ("createRun", "/api/v1/runs", run_body.clone()),
        (
            "startCheckout",
            "/api/v1/billing/checkout",
            json!({ "plan": "pro" }),
        ),
        ("createSweep", "/api/v1/sweeps", sweep_body.clone()),
        ("quoteSweep", "/api/v1/sweeps/quote", sweep_body.clone()),
    ] {
        let target = at(&app, Method::POST, path);
        let not_json = Body::Raw("application/json", b"{\"oops".to_vec());
        contract
            .expect(op, 400, target.clone(), Some(key), not_json)
            .await;
        let text = Body::Raw("text/plain", valid.to_string().into_bytes());
        contract
            .expect(op, 415, target.clone(), Some(key), text)
            .await;
        let huge = json!({ "padding": "x".repeat(2 * MAX_JSON) });
        contract
            .expect(op, 413, target, Some(key), Body::Json(huge))
            .await;
    }

    // A number where the spec says string is not coerced into text.
    contract
        .expect(
            "createKey",
            400,
            at(&app, Method::POST, "/api/v1/keys"),
            Some(key),
            Body::Json(json!({ "label": 5 })),
        )
        .await;
    // Nor is null a value: a field left to the default is left out.
    let body = contract
        .expect(
            "createRun",
            400,
            at(&app, Method::POST, "/api/v1/runs"),
            Some(key),
            Body::Json(json!({ "fmu_id": "lib:Dahlquist", "tolerance": null })),
        )
        .await;
    assert_eq!(body["problems"][0]["field"], "tolerance", "{body}");
    // Request problems are 422 naming what to fix.
    // What the spec bounds is 400 naming the field: a label too long or with a control
    // character, a timeout past the server's limit or too short to measure, a start value
    // that is not one value.
    for label in [
        "x".repeat(65),
        "tab\there".to_string(),
        "c1 \u{85} control".to_string(),
    ] {
        let body = contract
            .expect(
                "createKey",
                400,
                at(&app, Method::POST, "/api/v1/keys"),
                Some(key),
                Body::Json(json!({ "label": label })),
            )
            .await;
        assert_eq!(body["problems"][0]["field"], "label", "{body}");
    }
    for (run, field) in [
        (
            json!({ "fmu_id": "lib:Dahlquist", "timeout": 601 }),
            "timeout",
        ),
        (
            json!({ "fmu_id": "lib:Dahlquist", "timeout": 0.5 }),
            "timeout",
        ),
        (
            json!({ "fmu_id": "lib:Dahlquist", "start_values": { "k": {} } }),
            "start_values.k",
        ),
    ] {
        let body = contract
            .expect(
                "createRun",
                400,
                at(&app, Method::POST, "/api/v1/runs"),
                Some(key),
                Body::Json(run),
            )
            .await;
        assert_eq!(body["problems"][0]["field"], field, "{body}");
    }
    // A value the spec does not allow (outside an enum, not a string) is 400, still naming
    // the field.
    let bad_interface = json!({ "fmu_id": "lib:Dahlquist", "interface": "sideways" });
    let body = contract
        .expect(
            "createRun",
            400,
            at(&app, Method::POST, "/api/v1/runs"),
            Some(key),
            Body::Json(bad_interface),
        )
        .await;
    assert_eq!(body["problems"][0]["field"], "interface", "{body}");
    let backwards = json!({ "fmu_id": "lib:Dahlquist", "start_time": 2.0, "stop_time": 1.0 });
    let body = contract
        .expect(
            "createRun",
            422,
            at(&app, Method::POST, "/api/v1/runs"),
            Some(key),
            Body::Json(backwards),
        )
        .await;
    assert_eq!(body["code"], "invalid_request", "{body}");
    let unknown_fmu = json!({ "fmu_id": "lib:Nope" });
    contract
        .expect(
            "createRun",
            404,
            at(&app, Method::POST, "/api/v1/runs"),
            Some(key),
            Body::Json(unknown_fmu),
        )
        .await;
    // The spec lists the plans this server sells; another is 400 naming the field.
    let no_plan = json!({ "plan": "platinum" });
    let body = contract
        .expect(
            "startCheckout",
            400,
            at(&app, Method::POST, "/api/v1/billing/checkout"),
            Some(key),
            Body::Json(no_plan),
        )
        .await;
    assert_eq!(body["problems"][0]["field"], "plan", "{body}");
    // Sweeps: a design the model cannot take 422 naming the case, an unknown model 404, a
    // case list that is not a list 400, a cases format nobody serves 400.
    for op_path in [
        ("createSweep", "/api/v1/sweeps"),
        ("quoteSweep", "/api/v1/sweeps/quote"),
    ] {
        let (op, path) = op_path;
        let bad_case = json!({
            "base": { "fmu_id": "lib:Dahlquist" },
            "design": { "cases": [{ "k": "fast" }] },
        });
        let body = contract
            .expect(
                op,
                422,
                at(&app, Method::POST, path),
                Some(key),
                Body::Json(bad_case),
            )
            .await;
        assert_eq!(body["problems"][0]["field"], "design.cases[0].k", "{body}");
        let unknown = json!({
            "base": { "fmu_id": "lib:Nope" },
            "design": { "grid": [{ "name": "k", "values": [1] }] },
        });
        contract
            .expect(
                op,
                404,
                at(&app, Method::POST, path),
                Some(key),
                Body::Json(unknown),
            )
            .await;
        let not_a_list = json!({ "base": { "fmu_id": "lib:Dahlquist" }, "design": { "grid": 5 } });
        contract
            .expect(
                op,
                400,
                at(&app, Method::POST, path),
                Some(key),
                Body::Json(not_a_list),
            )
            .await;
    }
    let sweep = api_client()
        .post(app.at("/api/v1/sweeps"))
        .bearer_auth(key)
        .json(&sweep_body)
        .send()
        .await
        .unwrap();
    assert_eq!(sweep.status(), 202);
    let sweep_id = sweep.json::<Value>().await.unwrap()["id"]
        .as_str()
        .unwrap()
        .to_string();
    contract
        .expect(
            "listSweepCases",
            400,
            at(
                &app,
                Method::GET,
                &format!("/api/v1/sweeps/{sweep_id}/cases?from=-1"),
            ),
            Some(key),
            Body::None,
        )
        .await;
    for _ in 0..400 {
        let done = api_client()
            .get(app.at(&format!("/api/v1/sweeps/{sweep_id}")))
            .bearer_auth(key)
            .send()
            .await
            .unwrap()
            .json::<Value>()
            .await
            .unwrap();
        if done["finished_at"].is_string() {
            break;
        }
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
    // A sweep that kept no trajectories has none to give (409); one that did, in a media type
    // the caller cannot take, 406.
    contract
        .expect(
            "getSweepCaseResult",
            409,
            at(
                &app,
                Method::GET,
                &format!("/api/v1/sweeps/{sweep_id}/cases/0/result"),
            ),
            Some(key),
            Body::None,
        )
        .await;
    let mut kept_body = sweep_body.clone();
    kept_body["trajectories"] = json!(true);
    let kept = api_client()
        .post(app.at("/api/v1/sweeps"))
        .bearer_auth(key)
        .json(&kept_body)
        .send()
        .await
        .unwrap()
        .json::<Value>()
        .await
        .unwrap();
    let kept_id = kept["id"].as_str().unwrap();
    for _ in 0..400 {
        let done: Value = api_client()
            .get(app.at(&format!("/api/v1/sweeps/{kept_id}")))
            .bearer_auth(key)
            .send()
            .await
            .unwrap()
            .json()
            .await
            .unwrap();
        if done["finished_at"].is_string() {
            break;
        }
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
    let resp = api_client()
        .get(app.at(&format!("/api/v1/sweeps/{kept_id}/cases/0/result")))
        .bearer_auth(key)
        .header("accept", "image/png")
        .send()
        .await
        .unwrap();
    let status = resp.status().as_u16();
    contract.record("getSweepCaseResult", status, &resp.text().await.unwrap());
    assert_eq!(status, 406);
    contract
        .expect(
            "cancelSweep",
            409,
            at(
                &app,
                Method::POST,
                &format!("/api/v1/sweeps/{sweep_id}/cancel"),
            ),
            Some(key),
            Body::None,
        )
        .await;
    let too_far = u64::MAX;
    for (op, path) in [
        ("listUsage", "/api/v1/usage"),
        ("listRuns", "/api/v1/runs"),
        ("listSweeps", "/api/v1/sweeps"),
    ] {
        contract
            .expect(
                op,
                400,
                at(&app, Method::GET, &format!("{path}?limit=0")),
                Some(key),
                Body::None,
            )
            .await;
        contract
            .expect(
                op,
                400,
                at(&app, Method::GET, &format!("{path}?offset={too_far}")),
                Some(key),
                Body::None,
            )
            .await;
    }
    contract
        .expect(
            "listRuns",
            400,
            at(&app, Method::GET, "/api/v1/runs?status=sideways"),
            Some(key),
            Body::None,
        )
        .await;

    webhook_errors(&mut contract, &app, key, MAX_JSON).await;

    // Uploads: a malformed form 400, no length 411, too large 413, JSON 415, not an FMU 422.
    let upload = at(&app, Method::POST, "/api/v1/fmus");
    let garbage = Body::Raw(
        "multipart/form-data; boundary=XYZ",
        b"--XYZ\r\nnonsense".to_vec(),
    );
    contract
        .expect("uploadFmu", 400, upload.clone(), Some(key), garbage)
        .await;
    let (status, text) = post_chunked(
        &app,
        "/api/v1/fmus",
        key,
        "multipart/form-data; boundary=XYZ",
    )
    .await;
    assert_eq!(status, 411, "{text}");
    let body = contract.record("uploadFmu", status, &text);
    assert_eq!(body["code"], "length_required", "{text}");
    let too_large = Body::Upload(vec![0; 3 * MAX_UPLOAD as usize]);
    contract
        .expect("uploadFmu", 413, upload.clone(), Some(key), too_large)
        .await;
    let json_body = Body::Json(json!({ "file": "model.fmu" }));
    contract
        .expect("uploadFmu", 415, upload.clone(), Some(key), json_body)
        .await;
    let not_fmu = Body::Upload(b"not a zip archive".to_vec());
    contract
        .expect("uploadFmu", 422, upload, Some(key), not_fmu)
        .await;

    // Billing without Stripe settings is 503.
    contract
        .expect(
            "startCheckout",
            503,
            at(&app, Method::POST, "/api/v1/billing/checkout"),
            Some(key),
            Body::Json(json!({ "plan": "pro" })),
        )
        .await;
    contract
        .expect(
            "openBillingPortal",
            503,
            at(&app, Method::POST, "/api/v1/billing/portal"),
            Some(key),
            Body::None,
        )
        .await;

    // A run that has ended cannot be cancelled (409) and a cancelled one has no results (409);
    // a succeeded one whose results were removed after the retention period is 410.
    let long =
        json!({ "fmu_id": "lib:VanDerPol", "stop_time": 1_000_000.0, "output_interval": 1.0 });
    let long_id = start_run(&app, key, long).await;
    let cancel = format!("/api/v1/runs/{long_id}/cancel");
    let resp = api_client()
        .post(app.at(&cancel))
        .bearer_auth(key)
        .send()
        .await
        .unwrap();
    assert_eq!(resp.status(), 200, "{}", resp.text().await.unwrap());
    contract
        .expect(
            "cancelRun",
            409,
            at(&app, Method::POST, &cancel),
            Some(key),
            Body::None,
        )
        .await;
    let result = format!("/api/v1/runs/{long_id}/result");
    contract
        .expect(
            "getRunResult",
            409,
            at(&app, Method::GET, &result),
            Some(key),
            Body::None,
        )
        .await;
    let done_id = start_run(&app, key, run_body.clone()).await;
    assert_eq!(finished(&app, key, &done_id).await["status"], "succeeded");
    // Results in a media type the caller cannot take: 406.
    let resp = api_client()
        .get(app.at(&format!("/api/v1/runs/{done_id}/result")))
        .bearer_auth(key)
        .header("accept", "image/png")
        .send()
        .await
        .unwrap();
    let status = resp.status().as_u16();
    let body = contract.record("getRunResult", status, &resp.text().await.unwrap());
    assert_eq!(
        (status, body["code"].as_str()),
        (406, Some("not_acceptable"))
    );
    app.state
        .store
        .conn()
        .unwrap()
        .execute(
            "UPDATE runs SET result_removed_at = finished_at WHERE id = ?1",
            [&done_id],
        )
        .unwrap();
    let result = format!("/api/v1/runs/{done_id}/result");
    let gone = contract
        .expect(
            "getRunResult",
            410,
            at(&app, Method::GET, &result),
            Some(key),
            Body::None,
        )
        .await;
    assert_eq!(gone["code"], "result_expired");

    // No credits is 402; past the rate of runs 429.
    let poor = spawn_app_with(|c| {
        c.free_credits = 0.into();
        c.runs_per_minute = 1;
    })
    .await;
    let poor_key = poor.register().await.api_key;
    let create = at(&poor, Method::POST, "/api/v1/runs");
    let body = contract
        .expect(
            "createRun",
            402,
            create.clone(),
            Some(&poor_key),
            Body::Json(run_body.clone()),
        )
        .await;
    assert_eq!(body["code"], "insufficient_credits");
    contract
        .expect(
            "createRun",
            429,
            create,
            Some(&poor_key),
            Body::Json(run_body.clone()),
        )
        .await;

    // The same for sweeps, on a server of its own (the rate counts sweeps and runs alike):
    // a sweep the balance cannot pay is 402, then past the rate 429 for both.
    let poor = spawn_app_with(|c| {
        c.free_credits = 1.into();
        c.runs_per_minute = 1;
    })
    .await;
    let poor_key = poor.register().await.api_key;
    let body = contract
        .expect(
            "createSweep",
            402,
            at(&poor, Method::POST, "/api/v1/sweeps"),
            Some(&poor_key),
            Body::Json(sweep_body.clone()),
        )
        .await;
    assert_eq!(body["code"], "insufficient_credits");
    for (op, path) in [
        ("createSweep", "/api/v1/sweeps"),
        ("quoteSweep", "/api/v1/sweeps/quote"),
    ] {
        contract
            .expect(
                op,
                429,
                at(&poor, Method::POST, path),
                Some(&poor_key),
                Body::Json(sweep_body.clone()),
            )
            .await;
    }

    // A data volume below its reserve takes no new work: 503.
    let full = spawn_app_with(|c| c.disk_reserve_bytes = u64::MAX / 2).await;
    let full_key = full.register().await.api_key;
    contract
        .expect(
            "createSweep",
            503,
            at(&full, Method::POST, "/api/v1/sweeps"),
            Some(&full_key),
            Body::Json(sweep_body.clone()),
        )
        .await;
    contract
        .expect(
            "createRun",
            503,
            at(&full, Method::POST, "/api/v1/runs"),
            Some(&full_key),
            Body::Json(run_body.clone()),
        )
        .await;
    contract
        .expect(
            "uploadFmu",
            503,
            at(&full, Method::POST, "/api/v1/fmus"),
            Some(&full_key),
            Body::Upload(b"PK".to_vec()),
        )
        .await;

    // With Stripe: no purchase yet 409, Stripe refusing 502, too many sessions 429.
    let stub = stripe::start().await;
    let shop = spawn_billing_app(&stub, |_| {}).await;
    let shop_key = shop.register().await.api_key;
    let checkout = at(&shop, Method::POST, "/api/v1/billing/checkout");
    let portal = at(&shop, Method::POST, "/api/v1/billing/portal");
    let pro = Body::Json(json!({ "plan": "pro" }));
    contract
        .expect(
            "openBillingPortal",
            409,
            portal.clone(),
            Some(&shop_key),
            Body::None,
        )
        .await;
    let refusal = json!({ "error": { "type": "invalid_request_error", "message": "no" } });
    stub.fail_next("/v1/customers", 400, refusal.clone(), 1);
    contract
        .expect(
            "startCheckout",
            502,
            checkout.clone(),
            Some(&shop_key),
            pro.clone(),
        )
        .await;
    let resp = api_client()
        .post(&checkout.1)
        .bearer_auth(&shop_key)
        .json(&json!({ "plan": "pro" }))
        .send()
        .await
        .unwrap();
    assert_eq!(resp.status(), 200, "{}", resp.text().await.unwrap());
    stub.fail_next("/v1/billing_portal/sessions", 400, refusal, 1);
    contract
        .expect(
            "openBillingPortal",
            502,
            portal.clone(),
            Some(&shop_key),
            Body::None,
        )
        .await;
    let mut limited_at = None;
    for attempt in 0..20 {
        let resp = api_client()
            .post(&checkout.1)
            .bearer_auth(&shop_key)
            .json(&json!({ "plan": "pro" }))
            .send()
            .await
            .unwrap();
        let status = resp.status().as_u16();
        let text = resp.text().await.unwrap();
        if status == 429 {
            contract.record("startCheckout", status, &text);
            limited_at = Some(attempt);
            break;
        }
        assert_eq!(status, 200, "{text}");
    }
    assert!(limited_at.is_some(), "checkouts are rate limited");
    contract
        .expect(
            "openBillingPortal",
            429,
            portal,
            Some(&shop_key),
            Body::None,
        )
        .await;

    states_contract(&mut contract, &app, key).await;
    contract.assert_all_seen();
}

/// `POST /states`: what the query and the body can get wrong.
async fn states_contract(contract: &mut Contract, app: &TestApp, key: &str) {
    let upload = |query: &str| at(app, Method::POST, &format!("/api/v1/states?{query}"));
    let bytes = |b: &[u8]| Body::Raw("application/octet-stream", b.to_vec());
    // A time that is not a number, or no FMU named: 400.
    contract
        .expect(
            "uploadState",
            400,
            upload("fmu=lib:Dahlquist&time=soon"),
            Some(key),
            bytes(b"x"),
        )
        .await;
    // An unknown FMU: 404.
    contract
        .expect(
            "uploadState",
            404,
            upload(&format!("fmu={}&time=0", "0".repeat(64))),
            Some(key),
            bytes(b"x"),
        )
        .await;
    // Bytes without a content type: 415 (any type is taken, but one must be said).
    contract
        .expect(
            "uploadState",
            415,
            upload("fmu=lib:Dahlquist&time=0"),
            Some(key),
            Body::Raw("", b"x".to_vec()),
        )
        .await;
    // An empty file: 422.
    let body = contract
        .expect(
            "uploadState",
            422,
            upload("fmu=lib:Dahlquist&time=0"),
            Some(key),
            bytes(b""),
        )
        .await;
    assert_eq!(body["problems"][0]["field"], "body", "{body}");
    // Past 16 MiB: 413; no length: 411.
    contract
        .expect(
            "uploadState",
            413,
            upload("fmu=lib:Dahlquist&time=0"),
            Some(key),
            bytes(&vec![0; (16 << 20) + 1]),
        )
        .await;
    let (status, text) = post_chunked(
        app,
        "/api/v1/states?fmu=lib:Dahlquist&time=0",
        key,
        "application/octet-stream",
    )
    .await;
    contract.record("uploadState", status, &text);
    assert_eq!(status, 411, "{text}");
}

/// The faces apart: the compatibility routes answer our JSON even to a browser (never the
/// dashboard's HTML renderer), so does anything under `/api`, and the dashboard keeps its
/// pages.
#[tokio::test]
async fn the_json_routes_never_answer_html_and_the_dashboard_still_does() {
    let app = crate::common::spawn_app().await;
    let account = app.register().await;
    let client = crate::common::browser();
    app.browser_login(&client, &account).await;
    // What a browser asking for HTML gets: the status, and the body's media type.
    let ask = |req: reqwest::RequestBuilder| async move {
        let resp = req
            .header("accept", "text/html,application/xhtml+xml")
            .send()
            .await
            .unwrap();
        let media = resp.headers()["content-type"].to_str().unwrap().to_string();
        (resp.status().as_u16(), media, resp.text().await.unwrap())
    };
    const JSON: &str = "application/json";
    const HTML: &str = "text/html";

    // A method the compatibility route does not take.
    let (status, media, _) = ask(client.get(app.at("/simulate"))).await;
    assert_eq!((status, media.starts_with(JSON)), (405, true), "{media}");
    // A browser's session without its CSRF token on a compatibility POST.
    let forged = client.post(app.at("/api_keys/new"));
    let (status, media, body) = ask(forged.json(&json!({ "label": "forged" }))).await;
    assert_eq!((status, media.starts_with(JSON)), (403, true), "{media}");
    let body: Value = serde_json::from_str(&body).unwrap();
    assert_eq!(body["code"], "csrf_failed");
    // An unknown path under /api.
    let (status, media, _) = ask(client.get(app.at("/api/nothing-here"))).await;
    assert_eq!((status, media.starts_with(JSON)), (404, true), "{media}");

    // The dashboard: its 404 page, and its own CSRF refusal as a page.
    let (status, media, _) = ask(client.get(app.at("/nothing-here"))).await;
    assert_eq!((status, media.starts_with(HTML)), (404, true), "{media}");
    let forged = client.post(app.at("/api-keys"));
    let (status, media, _) = ask(forged.form(&[("label", "forged")])).await;
    assert_eq!((status, media.starts_with(HTML)), (403, true), "{media}");
    // And the paths both faces serve still split by caller.
    let (status, media, _) = ask(client.get(app.at("/usage"))).await;
    assert_eq!((status, media.starts_with(HTML)), (200, true), "{media}");
    let resp = api_client()
        .get(app.at("/usage"))
        .bearer_auth(&account.api_key)
        .send()
        .await
        .unwrap();
    assert_eq!(resp.status(), 200);
    let media = resp.headers()["content-type"].to_str().unwrap();
    assert!(media.starts_with(JSON), "{media}");
}

/// Where a JSON document holds a `null`, as a path (`items[0].error`): the spec declares no
/// field nullable, so a typed client generated from it breaks on any `null`.
fn nulls(value: &Value, at: &str, found: &mut Vec<String>) {
    match value {
        Value::Null => found.push(at.to_string()),
        Value::Array(items) => {
            for (i, item) in items.iter().enumerate() {
                nulls(item, &format!("{at}[{i}]"), found);
            }
        }
        Value::Object(fields) => {
            for (name, field) in fields {
                nulls(field, &format!("{at}.{name}"), found);
            }
        }
        _ => {}
    }
}

/// Every v1 answer leaves an absent value out instead of sending `null`: keys never revoked,
/// library models without every interface or attribute, a run without an error.
#[tokio::test]
async fn v1_answers_never_carry_null() {
    use crate::common::Api;
    let app = crate::common::spawn_app().await;
    let account = app.register().await;
    let key = &account.api_key;
    let run = app
        .run(
            key,
            &json!({ "fmu_id": "lib:Dahlquist", "stop_time": 1.0, "output_interval": 0.5 }),
        )
        .await;
    let run_id = run["id"].as_str().unwrap();
    let mut found = Vec::new();
    nulls(&run, "createRun", &mut found);
    for path in [
        "/api/v1/me".to_string(),
        "/api/v1/keys".to_string(),
        "/api/v1/fmus".to_string(),
        "/api/v1/fmus/lib:BouncingBall".to_string(),
        format!("/api/v1/runs/{run_id}"),
        "/api/v1/runs".to_string(),
        "/api/v1/usage".to_string(),
        "/api/v1/billing".to_string(),
    ] {
        let body = app.get_json(&path, key).await;
        nulls(&body, &path, &mut found);
    }
    assert!(
        found.is_empty(),
        "null where the spec allows none: {found:?}"
    );
    // Absent, not lost: what is there is still sent.
    let keys = app.get_json("/api/v1/keys", key).await;
    let first = &keys[0];
    assert!(first.get("revoked_at").is_none(), "{first}");
    assert!(
        first["last_used_at"].is_string() && first["label"].is_string(),
        "{first}"
    );
}
