//! The billing page in the dashboard, and the service without Stripe keys.

use super::*;
use crate::common::page_text;

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
    assert!(page.contains("Buy the Pro pack") && page.contains("Buy the Enterprise pack"));
    assert!(
        !page.contains("Upgrade"),
        "credit packs are bought once, not a subscription"
    );
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
    let page = page_text(&client, &landing).await;
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
    let page = page_text(&client, &landing).await;
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
    let fragment = page_text(
        &other_client,
        app.at("/billing/status?session_id=cs_test_1"),
    )
    .await;
    assert!(!fragment.contains("credits were added"), "{fragment}");
    assert!(page.contains("Manage billing") && page.contains("Buy the Enterprise pack"));
    let page = page_text(&client, app.at("/billing?checkout=cancelled")).await;
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
    let page = page_text(&client, app.at("/dashboard")).await;
    assert!(page.contains("Latest credit pack: Pro."), "{page}");
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
    let page = page_text(&client, app.at("/billing")).await;
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
