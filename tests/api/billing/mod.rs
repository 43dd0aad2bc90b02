//! Billing over HTTP against a local stand-in for Stripe: what we send to Stripe (method,
//! path, auth, version, the exact form fields), how Stripe's errors reach the user, webhooks
//! signed as Stripe documents (credits granted once, refunds taken back), and the service
//! without Stripe keys. One file per topic; the helpers they share are here.

use serde_json::{Value, json};

use crate::common::stripe::{self, WEBHOOK_SECRET};
use crate::common::{
    Account, Api, TestApp, api_client, browser, csrf_from, spawn_app, spawn_billing_app,
};

async fn checkout(app: &TestApp, key: &str, plan: &str) -> reqwest::Response {
    app.post_json("/api/v1/billing/checkout", key, &json!({ "plan": plan }))
        .await
}

async fn overview(app: &TestApp, key: &str) -> Value {
    let resp = app.get("/api/v1/billing", key).await;
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

mod checkout;
mod pages;
mod refunds;
mod webhooks;
