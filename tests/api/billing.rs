//! Billing over HTTP against a local stand-in for Stripe: what we send to Stripe (method,
//! path, auth, version, the exact form fields), how Stripe's errors reach the user, webhooks
//! signed as Stripe documents (credits granted once, refunds taken back), and the service
//! without Stripe keys.

use serde_json::{Value, json};

use crate::common::stripe::{self, WEBHOOK_SECRET};
use crate::common::{
    Account, TestApp, api_client, browser, csrf_from, spawn_app, spawn_billing_app,
};

async fn checkout(app: &TestApp, key: &str, plan: &str) -> reqwest::Response {
    api_client()
        .post(app.at("/api/v1/billing/checkout"))
        .bearer_auth(key)
        .json(&json!({ "plan": plan }))
        .send()
        .await
        .unwrap()
}

async fn overview(app: &TestApp, key: &str) -> Value {
    let resp = api_client()
        .get(app.at("/api/v1/billing"))
        .bearer_auth(key)
        .send()
        .await
        .unwrap();
    assert_eq!(resp.status(), 200);
    resp.json().await.unwrap()
}

async fn credits(app: &TestApp, key: &str) -> i64 {
    overview(app, key).await["credits"].as_i64().unwrap()
}

/// Posts `payload` to the app's webhook `path` with `signature` as `Stripe-Signature`.
async fn deliver_raw(
    app: &TestApp,
    path: &str,
    payload: &[u8],
    signature: Option<String>,
) -> reqwest::Response {
    stripe::post_webhook(&api_client(), &app.at(path), payload, signature).await
}

async fn deliver(app: &TestApp, event: &Value) -> reqwest::Response {
    stripe::deliver(&api_client(), &app.at("/stripe/webhook"), event).await
}

/// Starts a Pro checkout and delivers its paid `checkout.session.completed`.
async fn buy_pro(app: &TestApp, account: &Account, event_id: &str, payment_intent: &str) -> String {
    let started: Value = checkout(app, &account.api_key, "pro")
        .await
        .json()
        .await
        .unwrap();
    let session = started["session_id"].as_str().unwrap().to_string();
    let event = stripe::checkout_completed(
        event_id,
        &session,
        &account.user_id,
        "pro",
        120,
        "paid",
        payment_intent,
        4900,
    );
    assert_eq!(deliver(app, &event).await.status(), 200);
    session
}

fn fields(form: &[(String, String)]) -> Vec<(&str, &str)> {
    form.iter().map(|(k, v)| (k.as_str(), v.as_str())).collect()
}

#[tokio::test]
async fn checkout_creates_the_customer_once_and_sends_the_documented_fields() {
    let stub = stripe::start().await;
    let app = spawn_billing_app(&stub, |_| {}).await;
    let account = app.register().await;

    let resp = checkout(&app, &account.api_key, "pro").await;
    assert_eq!(resp.status(), 200);
    let body: Value = resp.json().await.unwrap();
    assert_eq!(body["session_id"], "cs_test_1");
    assert_eq!(
        body["checkout_url"],
        format!("{}/checkout/cs_test_1", stub.url)
    );

    let sent = stub.requests();
    assert_eq!(sent.len(), 2, "{sent:?}");
    for r in &sent {
        assert_eq!(r.method, "POST");
        assert_eq!(
            r.authorization.as_deref(),
            Some(format!("Bearer {}", stripe::API_KEY).as_str())
        );
        assert_eq!(r.stripe_version.as_deref(), Some("2024-06-20"));
        assert_eq!(
            r.content_type.as_deref(),
            Some("application/x-www-form-urlencoded")
        );
        assert!(r.idempotency_key.is_some());
    }
    assert_eq!(sent[0].path, "/v1/customers");
    assert_eq!(
        sent[0].idempotency_key.as_deref(),
        Some(format!("customer-{}", account.user_id).as_str())
    );
    assert_eq!(
        fields(&sent[0].form),
        vec![
            ("email", account.email.as_str()),
            ("metadata[user_id]", account.user_id.as_str()),
            ("name", "Ada"),
        ]
    );
    assert_eq!(sent[1].path, "/v1/checkout/sessions");
    let success = format!(
        "{}/billing?checkout=success&session_id={{CHECKOUT_SESSION_ID}}",
        app.url
    );
    let cancel = format!("{}/billing?checkout=cancelled", app.url);
    assert_eq!(
        fields(&sent[1].form),
        vec![
            ("mode", "payment"),
            ("customer", "cus_test_1"),
            ("client_reference_id", account.user_id.as_str()),
            ("success_url", success.as_str()),
            ("cancel_url", cancel.as_str()),
            ("line_items[0][quantity]", "1"),
            ("line_items[0][price_data][currency]", "usd"),
            ("line_items[0][price_data][unit_amount]", "4900"),
            (
                "line_items[0][price_data][product_data][name]",
                "FMU Gateway Pro — 120 credits"
            ),
            (
                "line_items[0][price_data][product_data][description]",
                "For engineers who simulate every day"
            ),
            ("metadata[user_id]", account.user_id.as_str()),
            ("metadata[plan]", "pro"),
            ("metadata[credits]", "120"),
            (
                "payment_intent_data[metadata][user_id]",
                account.user_id.as_str()
            ),
            ("payment_intent_data[metadata][plan]", "pro"),
        ]
    );

    // A second purchase reuses the customer and gets a fresh idempotency key.
    let resp = checkout(&app, &account.api_key, "enterprise").await;
    assert_eq!(resp.status(), 200);
    let sent = stub.requests();
    assert_eq!(sent.len(), 3);
    assert_eq!(sent[2].path, "/v1/checkout/sessions");
    assert_eq!(sent[2].field("customer"), Some("cus_test_1"));
    assert_eq!(
        sent[2].field("line_items[0][price_data][unit_amount]"),
        Some("19900")
    );
    assert_ne!(sent[2].idempotency_key, sent[1].idempotency_key);
    // Nothing is credited by starting a checkout.
    assert_eq!(credits(&app, &account.api_key).await, 25);
}

#[tokio::test]
async fn an_unknown_plan_or_a_restricted_key_is_refused_before_stripe_is_called() {
    let stub = stripe::start().await;
    let app = spawn_billing_app(&stub, |_| {}).await;
    let account = app.register().await;
    for plan in ["gold", "free", ""] {
        let resp = checkout(&app, &account.api_key, plan).await;
        assert_eq!(resp.status(), 422, "{plan}");
        let body: Value = resp.json().await.unwrap();
        assert!(
            body["message"]
                .as_str()
                .unwrap()
                .contains("pro, enterprise"),
            "{body}"
        );
    }
    let resp = api_client()
        .post(app.at("/api/v1/billing/checkout"))
        .bearer_auth(&account.api_key)
        .header("content-type", "application/json")
        .body("{\"plan\": 7")
        .send()
        .await
        .unwrap();
    assert_eq!(resp.status(), 400);
    let resp = api_client()
        .post(app.at("/api/v1/billing/checkout"))
        .json(&json!({ "plan": "pro" }))
        .send()
        .await
        .unwrap();
    assert_eq!(resp.status(), 401);
    // A key restricted to reading billing can read it, not buy.
    let public = crate::keys::public_key(&app).await;
    let read_only = crate::keys::attenuate(
        &account.api_key,
        public,
        biscuit_auth::macros::block!(r#"check if operation("read_billing");"#),
    );
    assert_eq!(overview(&app, &read_only).await["plan"]["id"], "free");
    let resp = checkout(&app, &read_only, "pro").await;
    assert_eq!(resp.status(), 403);
    assert!(stub.requests().is_empty());
}

#[tokio::test]
async fn stripe_errors_become_clear_messages_and_only_safe_retries_happen() {
    let stub = stripe::start().await;
    let app = spawn_billing_app(&stub, |_| {}).await;
    let account = app.register().await;
    // Create the customer first, so only checkout sessions are counted below.
    assert_eq!(checkout(&app, &account.api_key, "pro").await.status(), 200);
    let path = "/v1/checkout/sessions";

    // A card error is the customer's to fix: said as Stripe says it, not retried.
    stub.fail_next(
        path,
        402,
        json!({ "error": { "type": "card_error", "code": "card_declined", "message": "Your card was declined." } }),
        1,
    );
    let resp = checkout(&app, &account.api_key, "pro").await;
    assert_eq!(resp.status(), 502);
    let body: Value = resp.json().await.unwrap();
    assert_eq!(body["code"], "payment_provider_error");
    assert_eq!(
        body["message"],
        "Stripe refused the request: Your card was declined."
    );
    assert_eq!(stub.requests_to(path).len(), 2);

    // A 500 is retried with the same idempotency key, then succeeds.
    stub.fail_next(
        path,
        500,
        json!({ "error": { "type": "api_error", "message": "An unknown error occurred" } }),
        1,
    );
    let resp = checkout(&app, &account.api_key, "pro").await;
    assert_eq!(resp.status(), 200);
    let tries = stub.requests_to(path);
    assert_eq!(tries.len(), 4);
    assert_eq!(tries[2].idempotency_key, tries[3].idempotency_key);

    // Stripe down for good: a clear message after the retries, nothing charged.
    stub.fail_next(
        path,
        500,
        json!({ "error": { "type": "api_error", "message": "An unknown error occurred" } }),
        3,
    );
    let resp = checkout(&app, &account.api_key, "pro").await;
    assert_eq!(resp.status(), 502);
    let body: Value = resp.json().await.unwrap();
    assert!(
        body["message"]
            .as_str()
            .unwrap()
            .contains("Stripe is not answering right now; nothing was charged"),
        "{body}"
    );
    let tries = stub.requests_to(path);
    assert_eq!(tries.len(), 7, "one try and two retries");
    assert!(
        tries[4..]
            .iter()
            .all(|t| t.idempotency_key == tries[4].idempotency_key)
    );

    // `Stripe-Should-Retry: false` is obeyed, even on a 500.
    stub.fail_next_with_header(
        path,
        500,
        json!({ "error": { "type": "api_error", "message": "do not retry" } }),
        1,
        ("Stripe-Should-Retry", "false"),
    );
    assert_eq!(checkout(&app, &account.api_key, "pro").await.status(), 502);
    assert_eq!(stub.requests_to(path).len(), 8);
    assert_eq!(credits(&app, &account.api_key).await, 25);
}

#[tokio::test]
async fn a_paid_session_grants_its_plan_once_and_changes_the_plan() {
    let stub = stripe::start().await;
    let app = spawn_billing_app(&stub, |_| {}).await;
    let account = app.register().await;
    assert_eq!(overview(&app, &account.api_key).await["plan"]["id"], "free");

    let session = buy_pro(&app, &account, "evt_paid_1", "pi_1").await;
    let o = overview(&app, &account.api_key).await;
    assert_eq!(o["credits"], 145);
    assert_eq!(o["plan"]["id"], "pro");
    assert_eq!(o["purchases"][0]["checkout_session_id"], session.as_str());
    assert_eq!(o["purchases"][0]["amount_cents"], 4900);
    assert_eq!(o["history"][0]["kind"], "purchase");
    assert_eq!(o["history"][0]["delta"], 120);
    assert_eq!(o["history"][0]["reason"], "Bought Pro: 120 credits");

    // The same event again, and the session's other success event: nothing more.
    let again = stripe::checkout_completed(
        "evt_paid_1",
        &session,
        &account.user_id,
        "pro",
        120,
        "paid",
        "pi_1",
        4900,
    );
    let resp = deliver(&app, &again).await;
    assert_eq!(resp.status(), 200);
    assert_eq!(resp.json::<Value>().await.unwrap()["duplicate"], true);
    let other = stripe::async_payment_succeeded(
        "evt_paid_2",
        &session,
        &account.user_id,
        "pro",
        120,
        "paid",
        "pi_1",
        4900,
    );
    assert_eq!(deliver(&app, &other).await.status(), 200);
    assert_eq!(credits(&app, &account.api_key).await, 145);
}

#[tokio::test]
async fn an_asynchronous_payment_grants_credits_when_it_succeeds() {
    let stub = stripe::start().await;
    let app = spawn_billing_app(&stub, |_| {}).await;
    let account = app.register().await;
    let unpaid = stripe::checkout_completed(
        "evt_async_1",
        "cs_async",
        &account.user_id,
        "enterprise",
        600,
        "unpaid",
        "pi_async",
        19900,
    );
    assert_eq!(deliver(&app, &unpaid).await.status(), 200);
    assert_eq!(credits(&app, &account.api_key).await, 25);
    let paid = stripe::async_payment_succeeded(
        "evt_async_2",
        "cs_async",
        &account.user_id,
        "enterprise",
        600,
        "paid",
        "pi_async",
        19900,
    );
    assert_eq!(deliver(&app, &paid).await.status(), 200);
    let o = overview(&app, &account.api_key).await;
    assert_eq!(o["credits"], 625);
    assert_eq!(o["plan"]["name"], "Enterprise");
}

#[tokio::test]
async fn the_same_event_delivered_fifty_times_at_once_grants_once() {
    let stub = stripe::start().await;
    let app = spawn_billing_app(&stub, |_| {}).await;
    let account = app.register().await;
    let event = stripe::checkout_completed(
        "evt_storm",
        "cs_storm",
        &account.user_id,
        "pro",
        120,
        "paid",
        "pi_storm",
        4900,
    );
    let deliveries = (0..50).map(|_| deliver(&app, &event));
    let answers = futures_util::future::join_all(deliveries).await;
    let mut fresh = 0;
    for resp in answers {
        assert_eq!(resp.status(), 200);
        if resp.json::<Value>().await.unwrap()["duplicate"] == false {
            fresh += 1;
        }
    }
    assert_eq!(fresh, 1);
    let o = overview(&app, &account.api_key).await;
    assert_eq!(o["credits"], 145);
    assert_eq!(o["purchases"].as_array().unwrap().len(), 1);
    let purchases_in_ledger = o["history"]
        .as_array()
        .unwrap()
        .iter()
        .filter(|e| e["kind"] == "purchase")
        .count();
    assert_eq!(purchases_in_ledger, 1);
}

#[tokio::test]
async fn bad_signatures_stale_timestamps_and_bad_bodies_change_nothing() {
    let stub = stripe::start().await;
    let app = spawn_billing_app(&stub, |_| {}).await;
    let account = app.register().await;
    let event = stripe::checkout_completed(
        "evt_sig",
        "cs_sig",
        &account.user_id,
        "pro",
        120,
        "paid",
        "pi_sig",
        4900,
    );
    let payload = serde_json::to_vec(&event).unwrap();
    let now = stripe::now();

    let refused = [
        (
            "wrong secret",
            Some(stripe::signature_header("whsec_attacker", now, &payload)),
        ),
        (
            "stale",
            Some(stripe::signature_header(
                WEBHOOK_SECRET,
                now - 301,
                &payload,
            )),
        ),
        ("missing", None),
        ("garbage", Some("t=abc,v1=xyz".to_string())),
        (
            "signature of another body",
            Some(stripe::signature_header(WEBHOOK_SECRET, now, b"{}")),
        ),
    ];
    for (what, header) in refused {
        let resp = deliver_raw(&app, "/stripe/webhook", &payload, header).await;
        assert_eq!(resp.status(), 400, "{what}");
        let body: Value = resp.json().await.unwrap();
        assert_eq!(body["code"], "invalid_signature", "{what}: {body}");
    }
    assert_eq!(credits(&app, &account.api_key).await, 25);

    // Signed but not an event: 400, nothing recorded.
    for body in [&b"not json{"[..], br#"{"id": 5}"#] {
        let header = stripe::signature_header(WEBHOOK_SECRET, now, body);
        let resp = deliver_raw(&app, "/stripe/webhook", body, Some(header)).await;
        assert_eq!(resp.status(), 400);
    }
    // Too large to be an event.
    let huge = vec![b' '; 2 << 20];
    let header = stripe::signature_header(WEBHOOK_SECRET, now, &huge);
    let resp = deliver_raw(&app, "/stripe/webhook", &huge, Some(header)).await;
    assert_eq!(resp.status(), 413);

    // The same event, correctly signed, was not consumed by the refused attempts. Two v1
    // signatures (an old secret's and the current one's) are accepted.
    let two = format!(
        "t={now},v1={},v1={}",
        stripe::sign("whsec_previous", now, &payload),
        stripe::sign(WEBHOOK_SECRET, now, &payload)
    );
    let resp = deliver_raw(&app, "/api/v1/billing/webhook", &payload, Some(two)).await;
    assert_eq!(resp.status(), 200);
    assert_eq!(credits(&app, &account.api_key).await, 145);
}

#[tokio::test]
async fn every_configured_secret_verifies_during_a_rotation() {
    let stub = stripe::start().await;
    let app = spawn_billing_app(&stub, |c| {
        c.stripe_webhook_secrets = vec!["whsec_new".into(), WEBHOOK_SECRET.into()];
    })
    .await;
    let account = app.register().await;
    for (i, secret) in ["whsec_new", WEBHOOK_SECRET].into_iter().enumerate() {
        let event = stripe::checkout_completed(
            &format!("evt_rot_{i}"),
            &format!("cs_rot_{i}"),
            &account.user_id,
            "pro",
            120,
            "paid",
            &format!("pi_rot_{i}"),
            4900,
        );
        let payload = serde_json::to_vec(&event).unwrap();
        let header = stripe::signature_header(secret, stripe::now(), &payload);
        let resp = deliver_raw(&app, "/stripe/webhook", &payload, Some(header)).await;
        assert_eq!(resp.status(), 200, "{secret}");
    }
    assert_eq!(credits(&app, &account.api_key).await, 25 + 240);
}

#[tokio::test]
async fn unknown_event_types_are_acknowledged_and_ignored() {
    let stub = stripe::start().await;
    let app = spawn_billing_app(&stub, |_| {}).await;
    let account = app.register().await;
    let mut event = stripe::checkout_completed(
        "evt_other",
        "cs_other",
        &account.user_id,
        "pro",
        120,
        "paid",
        "pi_other",
        4900,
    );
    event["type"] = json!("customer.subscription.created");
    let resp = deliver(&app, &event).await;
    assert_eq!(resp.status(), 200);
    assert_eq!(credits(&app, &account.api_key).await, 25);
    // A session for an account that does not exist is acknowledged (retrying cannot help).
    let ghost = stripe::checkout_completed(
        "evt_ghost",
        "cs_ghost",
        "usr_nobody",
        "pro",
        120,
        "paid",
        "pi_ghost",
        4900,
    );
    assert_eq!(deliver(&app, &ghost).await.status(), 200);
}

#[tokio::test]
async fn refunds_take_back_unspent_credits_and_flag_credits_already_spent() {
    let stub = stripe::start().await;
    // A run costs 100 credits here, so a purchase can be mostly spent in one run.
    let app = spawn_billing_app(&stub, |c| c.run_cost = 100).await;
    let account = app.register().await;
    buy_pro(&app, &account, "evt_buy", "pi_refund").await;
    assert_eq!(credits(&app, &account.api_key).await, 145);

    // Half refunded while all is unspent: 60 credits go.
    let half = stripe::charge_refunded("evt_r1", "ch_1", "pi_refund", 4900, 2450);
    assert_eq!(deliver(&app, &half).await.status(), 200);
    let o = overview(&app, &account.api_key).await;
    assert_eq!(o["credits"], 85);
    assert_eq!(o["history"][0]["kind"], "purchase_refund");
    assert_eq!(o["history"][0]["delta"], -60);
    assert_eq!(o["plan"]["id"], "pro");
    assert!(o["account_flag"].is_null());

    // 85 credits do not pay for a 100-credit run; a second purchase does.
    let resp = api_client()
        .post(app.at("/api/v1/runs"))
        .bearer_auth(&account.api_key)
        .json(&json!({ "fmu_id": "lib:Dahlquist", "stop_time": 0.1 }))
        .send()
        .await
        .unwrap();
    assert_eq!(
        resp.status(),
        402,
        "85 credits do not pay for a 100-credit run"
    );
    buy_pro(&app, &account, "evt_buy2", "pi_second").await;
    let resp = api_client()
        .post(app.at("/api/v1/runs"))
        .bearer_auth(&account.api_key)
        .json(&json!({ "fmu_id": "lib:Dahlquist", "stop_time": 0.1 }))
        .send()
        .await
        .unwrap();
    assert_eq!(resp.status(), 201);
    assert_eq!(credits(&app, &account.api_key).await, 105);

    // The second purchase refunded in full: its 120 credits are owed, 105 are left.
    let full = stripe::charge_refunded("evt_r2", "ch_2", "pi_second", 4900, 4900);
    assert_eq!(deliver(&app, &full).await.status(), 200);
    // Redelivery changes nothing.
    assert_eq!(deliver(&app, &full).await.status(), 200);
    let o = overview(&app, &account.api_key).await;
    assert_eq!(o["credits"], 0, "never below zero");
    let flag = o["account_flag"].as_str().unwrap();
    assert!(flag.contains("15 had already been spent"), "{flag}");
    assert_eq!(o["purchases"][0]["refunded_cents"], 4900);
    assert_eq!(o["purchases"][0]["credits_removed"], 105);
    // The first purchase is still half in force, so the plan is still Pro.
    assert_eq!(o["plan"]["id"], "pro");

    // The rest of the first purchase refunded: nothing left to take, the flag grows.
    let rest = stripe::charge_refunded("evt_r3", "ch_1", "pi_refund", 4900, 4900);
    assert_eq!(deliver(&app, &rest).await.status(), 200);
    let o = overview(&app, &account.api_key).await;
    assert_eq!(o["credits"], 0);
    assert_eq!(o["plan"]["id"], "free");
    // Stripe does not promise order: an older partial-refund event arriving late (under a
    // new id) neither returns credits nor lowers the refunded total.
    let late = stripe::charge_refunded("evt_r1_late", "ch_1", "pi_refund", 4900, 2450);
    assert_eq!(deliver(&app, &late).await.status(), 200);
    let o = overview(&app, &account.api_key).await;
    assert_eq!(o["credits"], 0);
    assert_eq!(o["purchases"][1]["refunded_cents"], 4900);
    assert_eq!(o["purchases"][1]["credits_removed"], 60);

    // An operator sees the flag and the purchases, and clears the flag once dealt with.
    let admin = |args: &[&str]| {
        let out = std::process::Command::new(env!("CARGO_BIN_EXE_fmu-gateway"))
            .arg("admin")
            .args(args)
            .arg("--data-dir")
            .arg(&app.data_dir)
            .output()
            .unwrap();
        assert!(
            out.status.success(),
            "{}",
            String::from_utf8_lossy(&out.stderr)
        );
        String::from_utf8(out.stdout).unwrap()
    };
    let shown = admin(&["account", "--email", &account.email]);
    assert!(shown.contains("plan: Free · credits: 0"), "{shown}");
    assert!(shown.contains("flag: refund of purchase"), "{shown}");
    assert!(
        shown.contains("refunded $49 (taken back 105, already spent 15)"),
        "{shown}"
    );
    let cleared = admin(&["clear-flag", "--email", &account.email]);
    assert!(cleared.contains("cleared the flag"), "{cleared}");
    assert!(overview(&app, &account.api_key).await["account_flag"].is_null());

    // The ledger adds up to the balance.
    let conn = app.state.db.conn().unwrap();
    let sum: i64 = conn
        .query_row(
            "SELECT SUM(delta) FROM credit_ledger WHERE user_id = ?1",
            [&account.user_id],
            |r| r.get(0),
        )
        .unwrap();
    assert_eq!(sum, 0);
}

#[tokio::test]
async fn the_portal_opens_after_the_first_purchase() {
    let stub = stripe::start().await;
    let app = spawn_billing_app(&stub, |_| {}).await;
    let account = app.register().await;
    let portal = || {
        api_client()
            .post(app.at("/api/v1/billing/portal"))
            .bearer_auth(&account.api_key)
            .send()
    };
    let resp = portal().await.unwrap();
    assert_eq!(resp.status(), 409);
    assert!(stub.requests().is_empty());

    assert_eq!(checkout(&app, &account.api_key, "pro").await.status(), 200);
    let resp = portal().await.unwrap();
    assert_eq!(resp.status(), 200);
    let body: Value = resp.json().await.unwrap();
    assert_eq!(body["url"], format!("{}/portal/bps_test_1", stub.url));
    let sent = stub.requests_to("/v1/billing_portal/sessions");
    let return_url = format!("{}/billing", app.url);
    assert_eq!(
        fields(&sent[0].form),
        vec![
            ("customer", "cus_test_1"),
            ("return_url", return_url.as_str())
        ]
    );
}

#[tokio::test]
async fn the_compatibility_purchase_route_takes_the_key_in_the_body() {
    let stub = stripe::start().await;
    let app = spawn_billing_app(&stub, |_| {}).await;
    let account = app.register().await;
    let resp = api_client()
        .post(app.at("/purchase"))
        .json(&json!({ "api_key": account.api_key, "plan": "enterprise" }))
        .send()
        .await
        .unwrap();
    assert_eq!(resp.status(), 200);
    let body: Value = resp.json().await.unwrap();
    assert_eq!(body["session_id"], "cs_test_1");
    assert_eq!(
        body["checkout_url"],
        format!("{}/checkout/cs_test_1", stub.url)
    );
    let resp = api_client()
        .post(app.at("/purchase"))
        .json(&json!({ "api_key": "fmugw_forged", "plan": "pro" }))
        .send()
        .await
        .unwrap();
    assert_eq!(resp.status(), 401);
    let resp = api_client()
        .post(app.at("/purchase"))
        .json(&json!({ "plan": "pro" }))
        .send()
        .await
        .unwrap();
    assert_eq!(resp.status(), 401);
}

#[tokio::test]
async fn the_billing_page_starts_checkout_with_a_csrf_protected_form() {
    let stub = stripe::start().await;
    let app = spawn_billing_app(&stub, |_| {}).await;
    let account = app.register().await;
    let client = browser();
    let csrf = app.browser_login(&client, &account).await;

    let resp = client.get(app.at("/billing")).send().await.unwrap();
    let csp = resp.headers()["content-security-policy"]
        .to_str()
        .unwrap()
        .to_string();
    assert!(
        csp.contains(&format!(
            "form-action 'self' https://checkout.stripe.com https://billing.stripe.com {}",
            stub.url
        )),
        "{csp}"
    );
    let page = resp.text().await.unwrap();
    assert!(page.contains("Upgrade to Pro") && page.contains("Upgrade to Enterprise"));
    assert!(page.contains("$49") && page.contains("$199"));
    assert!(!page.contains("Manage billing"), "no customer yet");

    let resp = client
        .post(app.at("/billing/checkout"))
        .form(&[("plan", "pro")])
        .send()
        .await
        .unwrap();
    assert_eq!(resp.status(), 403, "a form without its CSRF token");
    assert!(stub.requests().is_empty());

    let resp = client
        .post(app.at("/billing/checkout"))
        .form(&[("plan", "pro"), ("csrf_token", csrf.as_str())])
        .send()
        .await
        .unwrap();
    assert_eq!(resp.status(), 303);
    assert_eq!(
        resp.headers()["location"],
        format!("{}/checkout/cs_test_1", stub.url).as_str()
    );

    // Back from Checkout before the webhook, then after it.
    let landing = app.at("/billing?checkout=success&session_id=cs_test_1");
    let page = client
        .get(&landing)
        .send()
        .await
        .unwrap()
        .text()
        .await
        .unwrap();
    assert!(page.contains("Stripe is confirming your payment"), "{page}");
    assert!(
        page.contains("hx-trigger=\"every 2s\""),
        "the message polls"
    );
    let poll = |polls: u32| {
        client
            .get(app.at(&format!(
                "/billing/status?session_id=cs_test_1&polls={polls}"
            )))
            .header("hx-request", "true")
            .send()
    };
    let fragment = poll(1).await.unwrap().text().await.unwrap();
    assert!(
        fragment.contains("polls=2") && !fragment.contains("hx-swap-oob"),
        "{fragment}"
    );
    let fragment = poll(60).await.unwrap().text().await.unwrap();
    assert!(
        fragment.contains("has not confirmed the payment yet") && !fragment.contains("hx-get"),
        "polling stops: {fragment}"
    );
    let event = stripe::checkout_completed(
        "evt_page",
        "cs_test_1",
        &account.user_id,
        "pro",
        120,
        "paid",
        "pi_page",
        4900,
    );
    assert_eq!(deliver(&app, &event).await.status(), 200);
    let page = client
        .get(&landing)
        .send()
        .await
        .unwrap()
        .text()
        .await
        .unwrap();
    assert!(page.contains("120 credits were added"), "{page}");
    let fragment = poll(3).await.unwrap().text().await.unwrap();
    assert!(fragment.contains("120 credits were added"), "{fragment}");
    assert!(
        fragment.contains(r#"<div id="billing-account" hx-swap-oob="true">"#)
            && fragment.contains(r#"<p class="big" id="credits">145</p>"#),
        "{fragment}"
    );
    // Another user's session id is not theirs to see.
    let other = app.register().await;
    let other_client = browser();
    app.browser_login(&other_client, &other).await;
    let fragment = other_client
        .get(app.at("/billing/status?session_id=cs_test_1"))
        .send()
        .await
        .unwrap()
        .text()
        .await
        .unwrap();
    assert!(!fragment.contains("credits were added"), "{fragment}");
    assert!(page.contains("Manage billing") && page.contains("Buy Enterprise"));
    let page = client
        .get(app.at("/billing?checkout=cancelled"))
        .send()
        .await
        .unwrap()
        .text()
        .await
        .unwrap();
    assert!(page.contains("Nothing was charged"));

    let csrf = csrf_from(&page).unwrap();
    let resp = client
        .post(app.at("/billing/portal"))
        .form(&[("csrf_token", csrf.as_str())])
        .send()
        .await
        .unwrap();
    assert_eq!(resp.status(), 303);
    assert_eq!(
        resp.headers()["location"],
        format!("{}/portal/bps_test_1", stub.url).as_str()
    );
    let page = client
        .get(app.at("/dashboard"))
        .send()
        .await
        .unwrap()
        .text()
        .await
        .unwrap();
    assert!(page.contains("Pro plan"), "{page}");
}

#[tokio::test]
async fn without_stripe_keys_billing_says_so_and_credits_can_still_be_granted() {
    let app = spawn_app().await;
    let account = app.register().await;
    let resp = checkout(&app, &account.api_key, "pro").await;
    assert_eq!(resp.status(), 503);
    let body: Value = resp.json().await.unwrap();
    assert_eq!(body["code"], "billing_not_configured");
    assert!(body["message"].as_str().unwrap().contains("not configured"));
    let resp = api_client()
        .post(app.at("/purchase"))
        .json(&json!({ "api_key": account.api_key, "plan": "pro" }))
        .send()
        .await
        .unwrap();
    assert_eq!(resp.status(), 503);
    let o = overview(&app, &account.api_key).await;
    assert_eq!(o["billing_enabled"], false);
    assert_eq!(o["plan"]["id"], "free");

    let event = stripe::checkout_completed(
        "evt_x",
        "cs_x",
        &account.user_id,
        "pro",
        120,
        "paid",
        "pi_x",
        4900,
    );
    let resp = deliver(&app, &event).await;
    assert_eq!(resp.status(), 503);
    assert_eq!(credits(&app, &account.api_key).await, 25);

    let client = browser();
    let csrf = app.browser_login(&client, &account).await;
    let page = client
        .get(app.at("/billing"))
        .send()
        .await
        .unwrap()
        .text()
        .await
        .unwrap();
    assert!(page.contains("Billing is not configured on this server"));
    assert!(page.contains("disabled"), "plan buttons are disabled");
    let resp = client
        .post(app.at("/billing/checkout"))
        .form(&[("plan", "pro"), ("csrf_token", csrf.as_str())])
        .send()
        .await
        .unwrap();
    assert_eq!(resp.status(), 503);
    assert!(resp.text().await.unwrap().contains("not configured"));
}

#[tokio::test]
async fn checkout_and_portal_sessions_are_rate_limited_per_user() {
    let stub = stripe::start().await;
    let app = spawn_billing_app(&stub, |_| {}).await;
    let account = app.register().await;
    for _ in 0..10 {
        assert_eq!(checkout(&app, &account.api_key, "pro").await.status(), 200);
    }
    let resp = checkout(&app, &account.api_key, "pro").await;
    assert_eq!(resp.status(), 429);
    assert!(resp.headers().contains_key("retry-after"));
    assert_eq!(stub.requests_to("/v1/checkout/sessions").len(), 10);
    // Another user is not affected.
    let other = app.register().await;
    assert_eq!(checkout(&app, &other.api_key, "pro").await.status(), 200);
}

/// Stripe retries every delivery it has no 2xx for. Killing the server (SIGKILL) in the
/// middle of a stream of payments and then redelivering all of them grants each exactly
/// once: an event and its credits commit together or not at all.
#[tokio::test]
async fn payments_redelivered_after_the_server_is_killed_are_granted_exactly_once() {
    use std::sync::Arc;
    use std::sync::atomic::{AtomicUsize, Ordering};

    let stub = stripe::start().await;
    let dir = tempfile::tempdir().unwrap();
    let data = dir.path().join("data");
    let port = crate::common::free_port();
    let env = [
        ("STRIPE_SECRET_KEY", stripe::API_KEY),
        ("STRIPE_WEBHOOK_SECRET", WEBHOOK_SECRET),
        ("STRIPE_API_BASE", stub.url.as_str()),
    ];
    let mut server = crate::common::Binary::start(&data, port, &env).await;
    let url = server.url.clone();
    let reg: Value = api_client()
        .post(format!("{url}/register"))
        .json(&json!({ "email": "payer@example.com", "password": "longenough" }))
        .send()
        .await
        .unwrap()
        .json()
        .await
        .unwrap();
    let (key, user) = (
        reg["api_key"].as_str().unwrap().to_string(),
        reg["user_id"].as_str().unwrap().to_string(),
    );
    const EVENTS: usize = 200;
    let events: Arc<Vec<Vec<u8>>> = Arc::new(
        (0..EVENTS)
            .map(|i| {
                let e = stripe::checkout_completed(
                    &format!("evt_kill_{i}"),
                    &format!("cs_kill_{i}"),
                    &user,
                    "pro",
                    120,
                    "paid",
                    &format!("pi_kill_{i}"),
                    4900,
                );
                serde_json::to_vec(&e).unwrap()
            })
            .collect(),
    );
    // One client for all deliveries: building one per request is slow in a debug build.
    let client = api_client();
    let deliver_all = |url: String, acked: Arc<AtomicUsize>| {
        let (events, client) = (events.clone(), client.clone());
        async move {
            use futures_util::StreamExt;
            futures_util::stream::iter(0..EVENTS)
                .map(|i| {
                    let (url, events, acked) = (url.clone(), events.clone(), acked.clone());
                    let client = client.clone();
                    async move {
                        // Not `stripe::post_webhook`: a killed server drops requests, which
                        // here means "not acknowledged", not a test failure.
                        let payload = &events[i];
                        let header =
                            stripe::signature_header(WEBHOOK_SECRET, stripe::now(), payload);
                        let sent = client
                            .post(format!("{url}/stripe/webhook"))
                            .header("content-type", "application/json")
                            .header("stripe-signature", header)
                            .body(payload.clone())
                            .send()
                            .await;
                        if sent.is_ok_and(|r| r.status() == 200) {
                            acked.fetch_add(1, Ordering::SeqCst);
                        }
                    }
                })
                .buffer_unordered(10)
                .collect::<Vec<()>>()
                .await;
        }
    };

    let acked = Arc::new(AtomicUsize::new(0));
    let first = tokio::spawn(deliver_all(url.clone(), acked.clone()));
    while acked.load(Ordering::SeqCst) < 20 {
        tokio::time::sleep(std::time::Duration::from_millis(1)).await;
    }
    server.child.kill().unwrap();
    server.child.wait().unwrap();
    first.await.unwrap();
    let before_kill = acked.load(Ordering::SeqCst);
    eprintln!("{before_kill} of {EVENTS} payments acknowledged before the kill");
    assert!(
        before_kill < EVENTS,
        "the server was killed mid-stream ({before_kill} acknowledged)"
    );

    // Stripe redelivers everything (acknowledged or not, as it may).
    let _server = crate::common::Binary::start(&data, port, &env).await;
    let acked = Arc::new(AtomicUsize::new(0));
    deliver_all(url.clone(), acked.clone()).await;
    assert_eq!(acked.load(Ordering::SeqCst), EVENTS);

    let o: Value = api_client()
        .get(format!("{url}/api/v1/billing"))
        .bearer_auth(&key)
        .send()
        .await
        .unwrap()
        .json()
        .await
        .unwrap();
    assert_eq!(o["credits"], 25 + 120 * EVENTS as i64);
    let db = fmu_gateway::db::Db::open(&data.join("fmu-gateway.db"), 1).unwrap();
    let conn = db.conn().unwrap();
    let (purchases, events_seen, ledger_sum): (i64, i64, i64) = conn
        .query_row(
            "SELECT (SELECT COUNT(*) FROM purchases), (SELECT COUNT(*) FROM stripe_events),
                    (SELECT SUM(delta) FROM credit_ledger)",
            [],
            |r| Ok((r.get(0)?, r.get(1)?, r.get(2)?)),
        )
        .unwrap();
    assert_eq!((purchases, events_seen), (EVENTS as i64, EVENTS as i64));
    assert_eq!(ledger_sum, 25 + 120 * EVENTS as i64);
}
