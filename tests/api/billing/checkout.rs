//! Starting a Checkout and opening the Billing Portal: what we send to Stripe (method, path,
//! auth, version, the exact form fields), how Stripe's errors reach the user, and the limits.

use super::*;

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
    // Not one of the plans the spec lists (`free` is not for sale, ` pro` is not `pro`): 400.
    for plan in ["gold", "free", "", " pro"] {
        let resp = checkout(&app, &account.api_key, plan).await;
        assert_eq!(resp.status(), 400, "{plan}");
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
async fn the_portal_opens_after_the_first_purchase() {
    let stub = stripe::start().await;
    let app = spawn_billing_app(&stub, |_| {}).await;
    let account = app.register().await;
    let portal = || app.post("/api/v1/billing/portal", &account.api_key);
    let resp = portal().await;
    assert_eq!(resp.status(), 409);
    assert!(stub.requests().is_empty());

    assert_eq!(checkout(&app, &account.api_key, "pro").await.status(), 200);
    let resp = portal().await;
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
