//! Webhooks signed as Stripe documents: credits granted once per paid session, whatever
//! the redeliveries, concurrency, bad signatures or a killed server.

use super::*;

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
    let reg = url.sign_up("payer@example.com").await;
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

    let o = url.get_json("/api/v1/billing", &key).await;
    assert_eq!(o["credits"], 25 + 120 * EVENTS as i64);
    let db = crate::common::db::open(&data).await;
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
