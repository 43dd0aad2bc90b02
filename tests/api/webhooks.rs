//! Signed webhooks: a real run's end reaches a receiver that verifies it with the Standard
//! Webhooks library from npm; retries, restarts, rotation, redirects, resends, the SSRF
//! rule and who may see what.

#[path = "../webhooks/receiver.rs"]
mod receiver;

use std::time::{Duration, Instant};

use reqwest::Method;
use serde_json::{Value, json};

use crate::common::{Api, Binary, TestApp, api_client, free_port, spawn_app_with};
use receiver::Receiver;

const SUCCEEDS: fn() -> Value = || json!({ "fmu_id": "lib:Dahlquist", "stop_time": 1.0 });
/// Explicit RK4 is unstable for k = 1e6: the model reports a non-finite state.
const FAILS: fn() -> Value =
    || json!({ "fmu_id": "lib:Dahlquist", "stop_time": 1.0, "start_values": { "k": 1e6 } });

/// The server with loopback receivers allowed and the retry schedule shrunk a thousandfold
/// (5 s becomes 5 ms).
async fn app() -> TestApp {
    spawn_app_with(|c| {
        c.webhook_allow_private = true;
        c.webhook_retry_scale = 0.001;
    })
    .await
}

/// `method path` with `key` and an optional JSON body: the status and the JSON answer.
async fn call(
    base: &str,
    method: Method,
    path: &str,
    key: &str,
    body: Option<Value>,
) -> (u16, Value) {
    let mut req = api_client()
        .request(method, format!("{base}{path}"))
        .bearer_auth(key);
    if let Some(body) = body {
        req = req.json(&body);
    }
    let resp = req.send().await.unwrap();
    let status = resp.status().as_u16();
    let text = resp.text().await.unwrap();
    (status, serde_json::from_str(&text).unwrap_or(Value::Null))
}

/// Registers an endpoint (201 expected); the answer with its secret.
async fn create_webhook(base: &str, key: &str, body: Value) -> Value {
    let (status, created) = call(base, Method::POST, "/api/v1/webhooks", key, Some(body)).await;
    assert_eq!(status, 201, "{created}");
    created
}

async fn deliveries(base: &str, key: &str, webhook: &str) -> Vec<Value> {
    let path = format!("/api/v1/webhooks/{webhook}/deliveries");
    let (status, list) = call(base, Method::GET, &path, key, None).await;
    assert_eq!(status, 200, "{list}");
    list.as_array().unwrap().clone()
}

/// Polls the endpoint's deliveries until the newest has `status` and `attempts` attempts.
async fn wait_delivery(
    base: &str,
    key: &str,
    webhook: &str,
    status: &str,
    attempts: usize,
) -> Value {
    let deadline = Instant::now() + Duration::from_secs(30);
    loop {
        let list = deliveries(base, key, webhook).await;
        if let Some(d) = list.first()
            && d["status"] == status
            && d["attempts"].as_array().unwrap().len() == attempts
        {
            return d.clone();
        }
        assert!(
            Instant::now() < deadline,
            "no {status} delivery with {attempts} attempts: {list:?}"
        );
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
}

fn statuses(delivery: &Value) -> Vec<Option<u64>> {
    delivery["attempts"]
        .as_array()
        .unwrap()
        .iter()
        .map(|a| a["status_code"].as_u64())
        .collect()
}

#[tokio::test]
async fn a_succeeded_run_is_delivered_signed_so_the_standard_library_verifies_it() {
    let app = app().await;
    let receiver = Receiver::start().await;
    let account = app.register().await;
    let key = account.api_key.as_str();
    let created = create_webhook(
        &app.url,
        key,
        json!({ "url": receiver.url("/hooks"), "description": "CI" }),
    )
    .await;
    let secret = created["secret"].as_str().unwrap();
    assert!(secret.starts_with("whsec_"), "{created}");
    let webhook = created["webhook"]["id"].as_str().unwrap();
    assert_eq!(
        created["webhook"]["events"],
        json!([
            "run.succeeded",
            "run.failed",
            "sweep.completed",
            "sweep.failed"
        ])
    );
    receiver.verify_with(&[secret]).await;

    let run = app.run(key, &SUCCEEDS()).await;
    assert_eq!(run["status"], "succeeded", "{run}");
    let got = receiver.wait_for(1, Duration::from_secs(20)).await;
    let hook = &got[0];
    assert_eq!(hook["verified"], json!([true]), "{hook}");
    assert_eq!(hook["method"], "POST");
    assert_eq!(hook["path"], "/hooks");
    assert_eq!(hook["headers"]["content-type"], "application/json");
    let agent = hook["headers"]["user-agent"].as_str().unwrap();
    assert!(agent.starts_with("fmu-gateway-webhooks/"), "{agent}");
    let message_id = hook["headers"]["webhook-id"].as_str().unwrap();
    assert!(message_id.starts_with("msg_"), "{hook}");
    let sent_at: i64 = hook["headers"]["webhook-timestamp"]
        .as_str()
        .unwrap()
        .parse()
        .unwrap();
    let now = time::OffsetDateTime::now_utc().unix_timestamp();
    assert!((now - sent_at).abs() < 60, "{sent_at} vs {now}");
    let body: Value = serde_json::from_str(hook["body"].as_str().unwrap()).unwrap();
    assert_eq!(body["type"], "run.succeeded");
    assert!(body["timestamp"].as_str().unwrap().ends_with('Z'), "{body}");
    assert_eq!(body["data"]["id"], run["id"]);
    assert_eq!(body["data"]["status"], "succeeded");
    assert_eq!(body["data"]["credits_charged"], run["credits_charged"]);
    let link = format!("{}/api/v1/runs/{}", app.url, run["id"].as_str().unwrap());
    assert_eq!(body["data"]["links"]["self"], link);
    assert!(!body.to_string().contains("null"), "no nulls: {body}");

    let delivery = wait_delivery(&app.url, key, webhook, "delivered", 1).await;
    assert_eq!(delivery["message_id"], message_id);
    assert_eq!(delivery["event"], "run.succeeded");
    assert_eq!(statuses(&delivery), [Some(200)]);
    let attempt = &delivery["attempts"][0];
    assert!(attempt["latency_ms"].as_i64().unwrap() >= 0, "{attempt}");
    assert_eq!(attempt["response_excerpt"], "answer 1: 200");
    assert_eq!(attempt["response_truncated"], false);
    assert!(delivery.get("next_attempt_at").is_none(), "{delivery}");

    // The secret is never shown again.
    for path in [
        "/api/v1/webhooks".to_string(),
        format!("/api/v1/webhooks/{webhook}"),
    ] {
        let (status, shown) = call(&app.url, Method::GET, &path, key, None).await;
        assert_eq!(status, 200);
        assert!(!shown.to_string().contains(secret), "{path}: {shown}");
        assert!(!shown.to_string().contains("whsec_"), "{path}: {shown}");
    }
}

#[tokio::test]
async fn a_failed_run_sends_run_failed_and_only_to_endpoints_that_want_it() {
    let app = app().await;
    let receiver = Receiver::start().await;
    let account = app.register().await;
    let key = account.api_key.as_str();
    let failures = create_webhook(
        &app.url,
        key,
        json!({ "url": receiver.url("/failures"), "events": ["run.failed"] }),
    )
    .await;
    let paused = create_webhook(
        &app.url,
        key,
        json!({ "url": receiver.url("/paused"), "enabled": false }),
    )
    .await;
    receiver
        .verify_with(&[failures["secret"].as_str().unwrap()])
        .await;

    let ok = app.run(key, &SUCCEEDS()).await;
    assert_eq!(ok["status"], "succeeded");
    let failed = app.run(key, &FAILS()).await;
    assert_eq!(failed["status"], "failed", "{failed}");
    receiver.wait_for(1, Duration::from_secs(20)).await;
    // Give a wrongly sent second message time to arrive.
    tokio::time::sleep(Duration::from_millis(500)).await;
    let got = receiver.requests().await;
    assert_eq!(
        got.len(),
        1,
        "only run.failed, only to the enabled endpoint: {got:?}"
    );
    let hook = &got[0];
    assert_eq!(hook["path"], "/failures");
    assert_eq!(hook["verified"], json!([true]));
    let body: Value = serde_json::from_str(hook["body"].as_str().unwrap()).unwrap();
    assert_eq!(body["type"], "run.failed");
    assert_eq!(body["data"]["id"], failed["id"]);
    assert_eq!(body["data"]["failure_kind"], "model_error");
    assert!(
        body["data"]["error"]
            .as_str()
            .unwrap()
            .contains("non-finite"),
        "{body}"
    );
    let paused_id = paused["webhook"]["id"].as_str().unwrap();
    assert!(deliveries(&app.url, key, paused_id).await.is_empty());

    // Enabled again (PATCH), it hears the next run.
    let path = format!("/api/v1/webhooks/{paused_id}");
    let (status, updated) = call(
        &app.url,
        Method::PATCH,
        &path,
        key,
        Some(json!({ "enabled": true, "description": "back" })),
    )
    .await;
    assert_eq!(status, 200, "{updated}");
    assert_eq!(updated["enabled"], true);
    assert_eq!(updated["description"], "back");
    app.run(key, &SUCCEEDS()).await;
    wait_delivery(&app.url, key, paused_id, "delivered", 1).await;
}

#[tokio::test]
async fn a_receiver_that_fails_twice_gets_three_attempts_of_one_message() {
    let app = app().await;
    let receiver = Receiver::start().await;
    let account = app.register().await;
    let key = account.api_key.as_str();
    let created = create_webhook(&app.url, key, json!({ "url": receiver.url("/flaky") })).await;
    let webhook = created["webhook"]["id"].as_str().unwrap();
    receiver
        .verify_with(&[created["secret"].as_str().unwrap()])
        .await;
    receiver
        .answer(json!([500, { "status": 503, "body": "é".repeat(600) }, 200]))
        .await;

    app.run(key, &SUCCEEDS()).await;
    let got = receiver.wait_for(3, Duration::from_secs(20)).await;
    tokio::time::sleep(Duration::from_millis(300)).await;
    let got_after = receiver.requests().await;
    assert_eq!(
        got_after.len(),
        3,
        "no attempt after the 200: {got_after:?}"
    );
    let ids: Vec<&Value> = got.iter().map(|r| &r["headers"]["webhook-id"]).collect();
    assert!(
        ids.iter().all(|id| *id == ids[0]),
        "one message id: {ids:?}"
    );
    assert!(
        got.iter().all(|r| r["verified"] == json!([true])),
        "{got:?}"
    );

    let delivery = wait_delivery(&app.url, key, webhook, "delivered", 3).await;
    assert_eq!(statuses(&delivery), [Some(500), Some(503), Some(200)]);
    assert_eq!(delivery["message_id"], *ids[0]);
    let second = &delivery["attempts"][1];
    // 1200 bytes of "é": the excerpt is the first 1 KiB, cut between characters.
    let excerpt = second["response_excerpt"].as_str().unwrap();
    assert_eq!(excerpt, "é".repeat(512));
    assert_eq!(second["response_truncated"], true);
    for a in delivery["attempts"].as_array().unwrap() {
        assert!(a["latency_ms"].as_i64().unwrap() >= 0, "{a}");
        assert!(a["attempted_at"].as_str().unwrap().ends_with('Z'), "{a}");
    }
}

#[tokio::test]
async fn a_redirect_is_a_failed_attempt_and_is_not_followed() {
    let app = app().await;
    let receiver = Receiver::start().await;
    let account = app.register().await;
    let key = account.api_key.as_str();
    let created = create_webhook(&app.url, key, json!({ "url": receiver.url("/moved") })).await;
    let webhook = created["webhook"]["id"].as_str().unwrap();
    receiver.answer(json!([302])).await;

    app.run(key, &SUCCEEDS()).await;
    let delivery = wait_delivery(&app.url, key, webhook, "delivered", 2).await;
    assert_eq!(statuses(&delivery), [Some(302), Some(200)]);
    let error = delivery["attempts"][0]["error"].as_str().unwrap();
    assert!(
        error.contains("not followed") && error.contains("/redirected"),
        "{error}"
    );
    let paths: Vec<Value> = receiver
        .requests()
        .await
        .iter()
        .map(|r| r["path"].clone())
        .collect();
    assert_eq!(
        paths,
        [json!("/moved"), json!("/moved")],
        "the redirect was not followed"
    );
}

#[tokio::test]
async fn a_resend_is_a_new_attempt_of_the_same_message() {
    let app = app().await;
    let receiver = Receiver::start().await;
    let account = app.register().await;
    let key = account.api_key.as_str();
    let created = create_webhook(&app.url, key, json!({ "url": receiver.url("/again") })).await;
    let webhook = created["webhook"]["id"].as_str().unwrap();
    receiver
        .verify_with(&[created["secret"].as_str().unwrap()])
        .await;

    app.run(key, &SUCCEEDS()).await;
    let delivery = wait_delivery(&app.url, key, webhook, "delivered", 1).await;
    let id = delivery["id"].as_str().unwrap();
    let path = format!("/api/v1/webhooks/deliveries/{id}/resend");
    let (status, resent) = call(&app.url, Method::POST, &path, key, None).await;
    assert_eq!(status, 202, "{resent}");
    assert_eq!(resent["id"], id);

    let got = receiver.wait_for(2, Duration::from_secs(20)).await;
    assert_eq!(
        got[0]["headers"]["webhook-id"],
        got[1]["headers"]["webhook-id"]
    );
    assert_eq!(got[0]["body"], got[1]["body"]);
    assert_eq!(got[1]["verified"], json!([true]));
    let delivery = wait_delivery(&app.url, key, webhook, "delivered", 2).await;
    assert_eq!(statuses(&delivery), [Some(200), Some(200)]);
}

#[tokio::test]
async fn during_a_rotation_both_the_old_and_the_new_secret_verify() {
    let app = app().await;
    let receiver = Receiver::start().await;
    let account = app.register().await;
    let key = account.api_key.as_str();
    let created = create_webhook(&app.url, key, json!({ "url": receiver.url("/rotating") })).await;
    let webhook = created["webhook"]["id"].as_str().unwrap();
    let old = created["secret"].as_str().unwrap();

    let path = format!("/api/v1/webhooks/{webhook}/rotate-secret");
    let (status, rotated) = call(&app.url, Method::POST, &path, key, None).await;
    assert_eq!(status, 200, "{rotated}");
    let new = rotated["secret"].as_str().unwrap();
    assert!(new.starts_with("whsec_") && new != old, "{rotated}");
    let until = rotated["webhook"]["previous_secret_expires_at"]
        .as_str()
        .unwrap();
    let until =
        time::OffsetDateTime::parse(until, &time::format_description::well_known::Rfc3339).unwrap();
    let left = until - time::OffsetDateTime::now_utc();
    assert!(
        left > time::Duration::hours(23) && left <= time::Duration::hours(24),
        "{left}"
    );

    // One receiver holding the old secret, another the new: each verifies the same delivery.
    receiver
        .verify_with(&[old, new, "whsec_MfKQ9r8GKYqrTwjUPD8ILPZIo2LaLaSw"])
        .await;
    app.run(key, &SUCCEEDS()).await;
    let got = receiver.wait_for(1, Duration::from_secs(20)).await;
    assert_eq!(
        got[0]["verified"],
        json!([true, true, false]),
        "{:?}",
        got[0]
    );
    let signatures = got[0]["headers"]["webhook-signature"].as_str().unwrap();
    assert_eq!(signatures.split(' ').count(), 2, "{signatures}");
}

#[tokio::test]
async fn endpoints_and_deliveries_are_their_owners_alone() {
    let app = app().await;
    let receiver = Receiver::start().await;
    let owner = app.register().await;
    let other = app.register().await;
    let key = owner.api_key.as_str();
    let created = create_webhook(&app.url, key, json!({ "url": receiver.url("/mine") })).await;
    let webhook = created["webhook"]["id"].as_str().unwrap();
    app.run(key, &SUCCEEDS()).await;
    let delivery = wait_delivery(&app.url, key, webhook, "delivered", 1).await;
    let delivery_id = delivery["id"].as_str().unwrap();

    let them = other.api_key.as_str();
    let (status, list) = call(&app.url, Method::GET, "/api/v1/webhooks", them, None).await;
    assert_eq!((status, list), (200, json!([])));
    for (method, path, body) in [
        (Method::GET, format!("/api/v1/webhooks/{webhook}"), None),
        (
            Method::PATCH,
            format!("/api/v1/webhooks/{webhook}"),
            Some(json!({ "enabled": false })),
        ),
        (
            Method::POST,
            format!("/api/v1/webhooks/{webhook}/rotate-secret"),
            None,
        ),
        (
            Method::GET,
            format!("/api/v1/webhooks/{webhook}/deliveries"),
            None,
        ),
        (
            Method::POST,
            format!("/api/v1/webhooks/deliveries/{delivery_id}/resend"),
            None,
        ),
        (Method::DELETE, format!("/api/v1/webhooks/{webhook}"), None),
    ] {
        let (status, answer) = call(&app.url, method.clone(), &path, them, body).await;
        assert_eq!(status, 404, "{method} {path}: {answer}");
        assert_eq!(answer["code"], "not_found");
    }
    // Nothing changed for the owner: still enabled, one attempt, same secret.
    let (_, mine) = call(
        &app.url,
        Method::GET,
        &format!("/api/v1/webhooks/{webhook}"),
        key,
        None,
    )
    .await;
    assert_eq!(mine["enabled"], true);
    assert!(mine.get("previous_secret_expires_at").is_none(), "{mine}");
    let delivery = wait_delivery(&app.url, key, webhook, "delivered", 1).await;
    assert_eq!(statuses(&delivery), [Some(200)]);

    // The owner deletes it: gone, with its deliveries.
    let (status, _) = call(
        &app.url,
        Method::DELETE,
        &format!("/api/v1/webhooks/{webhook}"),
        key,
        None,
    )
    .await;
    assert_eq!(status, 204);
    let (status, _) = call(
        &app.url,
        Method::GET,
        &format!("/api/v1/webhooks/{webhook}/deliveries"),
        key,
        None,
    )
    .await;
    assert_eq!(status, 404);
}

#[tokio::test]
async fn requests_are_checked_and_an_account_has_at_most_ten_endpoints() {
    let app = app().await;
    let account = app.register().await;
    let key = account.api_key.as_str();
    let url = "http://127.0.0.1:9/hook";
    let post = |body: Value| call(&app.url, Method::POST, "/api/v1/webhooks", key, Some(body));

    // The spec says at least one event: an empty list does not match it (400).
    let (status, answer) = post(json!({ "url": url, "events": [] })).await;
    assert_eq!(status, 400, "{answer}");
    assert_eq!(answer["problems"][0]["field"], "events");
    let (status, answer) = post(json!({ "url": url, "events": ["run.started"] })).await;
    assert_eq!(status, 400, "{answer}");
    assert_eq!(answer["problems"][0]["field"], "events[0]");
    let (status, answer) = post(json!({ "url": url, "secret": "mine" })).await;
    assert_eq!(status, 400, "unknown field: {answer}");
    let (status, answer) = post(json!({ "url": "ftp://example.com/x" })).await;
    assert_eq!(status, 422, "{answer}");
    assert_eq!(answer["problems"][0]["field"], "url");
    let (status, answer) = post(json!({ "url": url, "description": "x".repeat(257) })).await;
    assert_eq!(status, 422, "{answer}");

    for i in 0..10 {
        let (status, answer) = post(json!({ "url": format!("{url}/{i}") })).await;
        assert_eq!(status, 201, "{i}: {answer}");
    }
    let (status, answer) = post(json!({ "url": url })).await;
    assert_eq!(status, 409, "{answer}");
    assert!(
        answer["message"].as_str().unwrap().contains("at most 10"),
        "{answer}"
    );
}

/// The targets the SSRF rule refuses, as https (so the address, not the scheme, is judged).
fn restricted_targets(port: u16) -> Vec<String> {
    [
        format!("https://127.0.0.1:{port}/hook"),
        format!("https://[::1]:{port}/hook"),
        "https://10.0.0.1/hook".to_string(),
        "https://169.254.169.254/latest/meta-data/".to_string(),
        format!("https://localhost:{port}/hook"),
        format!("https://[::ffff:127.0.0.1]:{port}/hook"),
    ]
    .to_vec()
}

#[tokio::test]
async fn without_the_operators_allowance_private_targets_are_refused_at_registration() {
    let app = spawn_app_with(|_| {}).await;
    let account = app.register().await;
    let key = account.api_key.as_str();
    for url in restricted_targets(8443) {
        let (status, answer) = call(
            &app.url,
            Method::POST,
            "/api/v1/webhooks",
            key,
            Some(json!({ "url": url })),
        )
        .await;
        assert_eq!(status, 422, "{url}: {answer}");
        assert_eq!(answer["problems"][0]["field"], "url", "{answer}");
        let message = answer["problems"][0]["message"].as_str().unwrap();
        assert!(message.contains("public addresses"), "{url}: {message}");
    }
    let (status, answer) = call(
        &app.url,
        Method::POST,
        "/api/v1/webhooks",
        key,
        Some(json!({ "url": "http://example.com/hook" })),
    )
    .await;
    assert_eq!(status, 422, "{answer}");
    assert!(
        answer["message"].as_str().unwrap().contains("https"),
        "{answer}"
    );
    // A change of URL is judged the same way.
    let allowed = spawn_app_with(|c| c.webhook_allow_private = true).await;
    let account = allowed.register().await;
    let key = account.api_key.as_str();
    let created = create_webhook(&allowed.url, key, json!({ "url": "http://127.0.0.1:9/" })).await;
    assert_eq!(created["webhook"]["url"], "http://127.0.0.1:9/");
}

#[tokio::test]
async fn without_the_operators_allowance_delivery_to_private_targets_is_refused() {
    let receiver = Receiver::start().await;
    let dir = tempfile::tempdir().unwrap();
    let data = dir.path().join("data");
    let port = free_port();
    let sync = ("FMU_GATEWAY_SYNC_WAIT_MS", "5000");
    // Registered while the operator allowed private targets…
    let allowed = [("FMU_GATEWAY_WEBHOOK_ALLOW_PRIVATE", "1"), sync];
    let mut server = Binary::start(&data, port, &allowed).await;
    let account = server.sign_up("ops@example.com").await;
    let key = account["api_key"].as_str().unwrap().to_string();
    let mut webhooks = Vec::new();
    for url in restricted_targets(receiver.port) {
        let created = create_webhook(&server.url, &key, json!({ "url": url })).await;
        webhooks.push((url, created["webhook"]["id"].as_str().unwrap().to_string()));
    }
    server.terminate(Duration::from_secs(15)).await;
    // …then no longer: each attempt is refused before connecting.
    let server = Binary::start(&data, port, &[sync]).await;
    let run = server.run(&key, &SUCCEEDS()).await;
    assert_eq!(run["status"], "succeeded");
    for (url, webhook) in &webhooks {
        let delivery = wait_delivery(&server.url, &key, webhook, "pending", 1).await;
        let attempt = &delivery["attempts"][0];
        assert!(attempt.get("status_code").is_none(), "{url}: {attempt}");
        let error = attempt["error"].as_str().unwrap();
        assert!(error.contains("public addresses"), "{url}: {error}");
        assert!(
            delivery["next_attempt_at"].is_string(),
            "retried later: {delivery}"
        );
    }
    assert!(
        receiver.requests().await.is_empty(),
        "nothing reached the receiver"
    );
}

#[tokio::test]
async fn a_restart_between_attempts_loses_nothing() {
    let receiver = Receiver::start().await;
    receiver.answer(json!([500])).await;
    let dir = tempfile::tempdir().unwrap();
    let data = dir.path().join("data");
    let port = free_port();
    // The real schedule: the second attempt is due 5 s after the first.
    let env = [
        ("FMU_GATEWAY_WEBHOOK_ALLOW_PRIVATE", "1"),
        ("FMU_GATEWAY_SYNC_WAIT_MS", "5000"),
    ];
    let server = Binary::start(&data, port, &env).await;
    let account = server.sign_up("restart@example.com").await;
    let key = account["api_key"].as_str().unwrap().to_string();
    let created = create_webhook(
        &server.url,
        &key,
        json!({ "url": receiver.url("/durable") }),
    )
    .await;
    let webhook = created["webhook"]["id"].as_str().unwrap();
    receiver
        .verify_with(&[created["secret"].as_str().unwrap()])
        .await;
    server.run(&key, &SUCCEEDS()).await;
    let first = wait_delivery(&server.url, &key, webhook, "pending", 1).await;
    assert_eq!(statuses(&first), [Some(500)]);

    // Killed outright (no graceful stop), then started again on the same data.
    drop(server);
    let restarted = Instant::now();
    let server = Binary::start(&data, port, &env).await;
    let delivered = wait_delivery(&server.url, &key, webhook, "delivered", 2).await;
    assert_eq!(statuses(&delivered), [Some(500), Some(200)]);
    assert_eq!(delivered["id"], first["id"]);
    assert!(restarted.elapsed() < Duration::from_secs(30));
    let got = receiver.requests().await;
    assert_eq!(got.len(), 2, "{got:?}");
    assert_eq!(
        got[0]["headers"]["webhook-id"],
        got[1]["headers"]["webhook-id"]
    );
    assert_eq!(got[1]["verified"], json!([true]));
}

#[tokio::test]
async fn the_dashboard_form_adds_an_endpoint_or_says_why_not_and_needs_its_csrf_token() {
    let app = spawn_app_with(|_| {}).await;
    let account = app.register().await;
    let client = crate::common::browser();
    let csrf = app.browser_login(&client, &account).await;
    let add =
        |form: Vec<(&'static str, String)>| client.post(app.at("/webhooks")).form(&form).send();

    // A loopback target: refused, said above the form, which keeps what was typed.
    let typed = "https://127.0.0.1:8443/typed-here".to_string();
    let resp = add(vec![
        ("csrf_token", csrf.clone()),
        ("url", typed.clone()),
        ("run.failed", "1".into()),
    ])
    .await
    .unwrap();
    assert_eq!(resp.status(), 422);
    let page = resp.text().await.unwrap();
    assert!(page.contains("127.0.0.1 is a loopback address"), "{page}");
    assert!(
        page.contains(&format!("value=\"{typed}\"")),
        "the URL is kept"
    );
    assert!(!page.contains("whsec_"));
    // No event ticked: refused too.
    let resp = add(vec![("csrf_token", csrf.clone()), ("url", PUBLIC.into())])
        .await
        .unwrap();
    assert_eq!(resp.status(), 422);
    assert!(resp.text().await.unwrap().contains("at least one event"));
    // Without the CSRF token nothing is added.
    let resp = add(vec![("url", PUBLIC.into()), ("run.failed", "1".into())])
        .await
        .unwrap();
    assert_eq!(resp.status(), 403);
    let (_, list) = call(
        &app.url,
        Method::GET,
        "/api/v1/webhooks",
        &account.api_key,
        None,
    )
    .await;
    assert_eq!(list, json!([]));

    // A public target with one event: the secret appears once, and the API sees the endpoint.
    let resp = add(vec![
        ("csrf_token", csrf.clone()),
        ("url", PUBLIC.into()),
        ("description", "From the page".into()),
        ("run.failed", "1".into()),
    ])
    .await
    .unwrap();
    assert_eq!(resp.status(), 201);
    let page = resp.text().await.unwrap();
    assert!(page.contains("whsec_"), "the secret is shown");
    let (_, list) = call(
        &app.url,
        Method::GET,
        "/api/v1/webhooks",
        &account.api_key,
        None,
    )
    .await;
    assert_eq!(list[0]["url"], PUBLIC);
    assert_eq!(list[0]["events"], json!(["run.failed"]));
    assert_eq!(list[0]["description"], "From the page");
    let again = crate::common::page_text(&client, app.at("/webhooks")).await;
    assert!(!again.contains("whsec_"), "shown once");
    assert!(again.contains(PUBLIC));
    let id = list[0]["id"].as_str().unwrap();

    // Rotate: the new secret once, and the page says the old one still signs.
    let form = |extra: Vec<(&'static str, String)>| {
        let mut all = vec![("csrf_token", csrf.clone())];
        all.extend(extra);
        all
    };
    let resp = client
        .post(app.at(&format!("/webhooks/{id}/rotate")))
        .form(&form(vec![]))
        .send()
        .await
        .unwrap();
    assert_eq!(resp.status(), 200);
    let page = resp.text().await.unwrap();
    assert!(page.contains("The new signing secret") && page.contains("whsec_"));
    assert!(
        page.contains("The previous secret also signs until"),
        "{page}"
    );
    // Pause: the API sees it.
    let resp = client
        .post(app.at(&format!("/webhooks/{id}/enabled")))
        .form(&form(vec![("enabled", "0".into())]))
        .send()
        .await
        .unwrap();
    assert_eq!(resp.status(), 303);
    let path = format!("/api/v1/webhooks/{id}");
    let (_, shown) = call(&app.url, Method::GET, &path, &account.api_key, None).await;
    assert_eq!(shown["enabled"], false);
    assert!(shown["previous_secret_expires_at"].is_string(), "{shown}");

    // Deleting the account deletes its endpoints (and their secrets) with it.
    let resp = client
        .post(app.at("/account/delete"))
        .form(&form(vec![("password", account.password.clone())]))
        .send()
        .await
        .unwrap();
    assert!(resp.status().is_redirection(), "{}", resp.status());
    let left = app.count("webhook_endpoints WHERE user_id = ?1", [&account.user_id]);
    assert_eq!(left, 0);
}

#[tokio::test]
async fn a_paused_endpoint_keeps_its_pending_deliveries_until_it_is_enabled() {
    // A hundredfold faster schedule: the second attempt 50 ms after the first, the third 3 s
    // after that, time enough to pause the endpoint in between.
    let app = spawn_app_with(|c| {
        c.webhook_allow_private = true;
        c.webhook_retry_scale = 0.01;
    })
    .await;
    let receiver = Receiver::start().await;
    let account = app.register().await;
    let key = account.api_key.as_str();
    let created = create_webhook(&app.url, key, json!({ "url": receiver.url("/later") })).await;
    let webhook = created["webhook"]["id"].as_str().unwrap();
    receiver.answer(json!([500, 500])).await;
    app.run(key, &SUCCEEDS()).await;
    receiver.wait_for(2, Duration::from_secs(20)).await;
    let path = format!("/api/v1/webhooks/{webhook}");
    let pause = json!({ "enabled": false });
    let (status, _) = call(&app.url, Method::PATCH, &path, key, Some(pause)).await;
    assert_eq!(status, 200);
    // The third attempt's time passes: nothing is sent while paused.
    tokio::time::sleep(Duration::from_secs(4)).await;
    assert_eq!(receiver.requests().await.len(), 2, "nothing while paused");
    let pending = deliveries(&app.url, key, webhook).await;
    assert_eq!(pending[0]["status"], "pending", "{pending:?}");

    let resume = json!({ "enabled": true });
    let (status, _) = call(&app.url, Method::PATCH, &path, key, Some(resume)).await;
    assert_eq!(status, 200);
    let delivered = wait_delivery(&app.url, key, webhook, "delivered", 3).await;
    assert_eq!(statuses(&delivered), [Some(500), Some(500), Some(200)]);
}

#[tokio::test]
async fn an_attempt_cut_short_by_a_crash_is_made_again_after_the_restart() {
    let receiver = Receiver::start().await;
    // The first attempt hangs (the receiver answers after a minute): the server dies in it.
    receiver
        .answer(json!([{ "status": 200, "delay_ms": 60_000 }]))
        .await;
    let dir = tempfile::tempdir().unwrap();
    let data = dir.path().join("data");
    let port = free_port();
    let env = [
        ("FMU_GATEWAY_WEBHOOK_ALLOW_PRIVATE", "1"),
        ("FMU_GATEWAY_SYNC_WAIT_MS", "5000"),
    ];
    let server = Binary::start(&data, port, &env).await;
    let account = server.sign_up("crash@example.com").await;
    let key = account["api_key"].as_str().unwrap().to_string();
    let created = create_webhook(&server.url, &key, json!({ "url": receiver.url("/slow") })).await;
    let webhook = created["webhook"]["id"].as_str().unwrap();
    receiver
        .verify_with(&[created["secret"].as_str().unwrap()])
        .await;
    server.run(&key, &SUCCEEDS()).await;
    receiver.wait_for(1, Duration::from_secs(20)).await;
    let during = deliveries(&server.url, &key, webhook).await;
    assert_eq!(during[0]["status"], "pending");
    assert!(
        during[0]["attempts"].as_array().unwrap().is_empty(),
        "{during:?}"
    );

    // SIGKILL mid-attempt, then a start on the same data: the attempt is made again at once
    // (on SQLite the new server releases every claim at start; on PostgreSQL, where other
    // servers may be mid-attempt, it takes over the claims of a server silent for 5 s).
    drop(server);
    let server = Binary::start(&data, port, &env).await;
    let delivered = wait_delivery(&server.url, &key, webhook, "delivered", 1).await;
    assert_eq!(statuses(&delivered), [Some(200)]);
    let got = receiver.requests().await;
    assert_eq!(got.len(), 2, "the cut attempt and its retry: {got:?}");
    assert_eq!(
        got[0]["headers"]["webhook-id"],
        got[1]["headers"]["webhook-id"]
    );
    assert_eq!(got[1]["verified"], json!([true]));
}

#[tokio::test]
async fn a_slow_receiver_times_out_after_ten_seconds_without_holding_up_another() {
    let app = app().await;
    let slow = Receiver::start().await;
    let fast = Receiver::start().await;
    // Both the first attempt and its retry hang: the first is seen timed out while the
    // retry still waits.
    let hang = json!({ "status": 200, "delay_ms": 30_000 });
    slow.answer(json!([hang.clone(), hang])).await;
    let account = app.register().await;
    let key = account.api_key.as_str();
    let slow_hook = create_webhook(&app.url, key, json!({ "url": slow.url("/slow") })).await;
    let fast_hook = create_webhook(&app.url, key, json!({ "url": fast.url("/fast") })).await;
    let slow_id = slow_hook["webhook"]["id"].as_str().unwrap();
    let fast_id = fast_hook["webhook"]["id"].as_str().unwrap();

    app.run(key, &SUCCEEDS()).await;
    let started = Instant::now();
    wait_delivery(&app.url, key, fast_id, "delivered", 1).await;
    assert!(
        started.elapsed() < Duration::from_secs(5),
        "not held up by the slow one"
    );
    let timed_out = wait_delivery(&app.url, key, slow_id, "pending", 1).await;
    let attempt = &timed_out["attempts"][0];
    assert_eq!(attempt["error"], "timed out after 10 s", "{attempt}");
    assert!(attempt.get("status_code").is_none(), "{attempt}");
    let latency = attempt["latency_ms"].as_i64().unwrap();
    assert!((10_000..15_000).contains(&latency), "{latency} ms");
}

/// A public address: allowed without resolving a name.
const PUBLIC: &str = "https://93.184.215.14/hook";

#[tokio::test]
async fn a_sweep_that_ends_sends_one_signed_sweep_completed_and_no_run_events() {
    let app = app().await;
    let receiver = Receiver::start().await;
    let key = app.register().await.api_key;
    let created = create_webhook(&app.url, &key, json!({ "url": receiver.url("/hooks") })).await;
    let secret = created["secret"].as_str().unwrap();
    receiver.verify_with(&[secret]).await;
    let body = json!({
        "base": { "fmu_id": "lib:Dahlquist", "stop_time": 1.0 },
        "design": { "grid": [{ "name": "k", "values": [1, 2, 3] }] },
        "kpis": [{ "variable": "x", "kind": "final" }],
    });
    let (status, sweep) = call(&app.url, Method::POST, "/api/v1/sweeps", &key, Some(body)).await;
    assert_eq!(status, 202, "{sweep}");
    let got = receiver.wait_for(1, Duration::from_secs(30)).await;
    assert_eq!(
        got.len(),
        1,
        "one event for the whole sweep, none per case: {got:?}"
    );
    assert_eq!(got[0]["verified"], json!([true]), "{}", got[0]);
    let event: Value = serde_json::from_str(got[0]["body"].as_str().unwrap()).unwrap();
    assert_eq!(event["type"], "sweep.completed", "{event}");
    assert_eq!(event["data"]["id"], sweep["id"]);
    assert_eq!(event["data"]["counts"]["succeeded"], 3);
    assert_eq!(event["data"]["credits_charged"], 3);
    // Nothing more arrives.
    tokio::time::sleep(Duration::from_millis(500)).await;
    assert_eq!(
        receiver.wait_for(1, Duration::from_millis(10)).await.len(),
        1
    );
}
