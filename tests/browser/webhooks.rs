//! The webhooks page: an endpoint added in the browser shows its secret once, and after a
//! run its delivery (verified by the receiver with the Standard Webhooks library), which
//! "Resend" sends again. At a phone's width and a desktop's, nothing scrolls sideways.

#[path = "../webhooks/receiver.rs"]
mod receiver;

use std::time::Duration;

use fantoccini::{Client, Locator};
use serde_json::json;

use crate::common::{Api, spawn_app_with};
use crate::{eventually, log_in, page_width, screenshot, start_browser};
use receiver::Receiver;

async fn fits(c: &Client, what: &str) {
    let screen = c
        .execute("return window.innerWidth;", vec![])
        .await
        .unwrap()
        .as_f64()
        .unwrap();
    let wide = page_width(c).await;
    assert!(wide <= screen, "{what}: {wide} px on a {screen} px screen");
}

async fn text_of(c: &Client, css: &str) -> String {
    c.find(Locator::Css(css))
        .await
        .unwrap()
        .text()
        .await
        .unwrap()
}

#[tokio::test]
async fn an_endpoint_added_on_the_page_shows_its_secret_once_and_then_its_deliveries() {
    let app = spawn_app_with(|c| {
        c.webhook_allow_private = true;
        c.webhook_retry_scale = 0.001;
    })
    .await;
    let receiver = Receiver::start().await;
    let account = app.register().await;
    let b = start_browser().await;
    let c = &b.client;
    c.set_window_size(1400, 1000).await.unwrap();
    log_in(&b, &app, &account).await;

    c.find(Locator::Css("nav.main a[href='/webhooks']"))
        .await
        .unwrap()
        .click()
        .await
        .unwrap();
    eventually("the webhooks page", || async {
        c.current_url()
            .await
            .ok()
            .filter(|u| u.path() == "/webhooks")
    })
    .await;
    assert_eq!(text_of(c, "h1").await, "Webhooks");
    let url = receiver.url("/from-the-browser");
    c.find(Locator::Css("#webhook-url"))
        .await
        .unwrap()
        .send_keys(&url)
        .await
        .unwrap();
    c.find(Locator::Css("#webhook-description"))
        .await
        .unwrap()
        .send_keys("Nightly pipeline")
        .await
        .unwrap();
    c.find(Locator::Css("form.webhook-add button[type=submit]"))
        .await
        .unwrap()
        .click()
        .await
        .unwrap();
    let secret = eventually("the new secret", || async {
        let code = c.find(Locator::Css("#new-secret-value")).await.ok()?;
        code.text().await.ok()
    })
    .await;
    assert!(secret.starts_with("whsec_"), "{secret}");
    c.find(Locator::Css("button[data-copy='#new-secret-value']"))
        .await
        .unwrap();
    assert!(text_of(c, "section.webhook h2").await.contains(&url));
    screenshot(c, "webhooks-secret-desktop").await;

    // Shown once: the page again has no secret on it.
    c.goto(&app.at("/webhooks")).await.unwrap();
    let source = c.source().await.unwrap();
    assert!(!source.contains(&secret), "the secret is shown once");
    assert!(!source.contains("whsec_"), "no secret at all");

    receiver.verify_with(&[&secret]).await;
    let run = app
        .run(
            &account.api_key,
            &json!({ "fmu_id": "lib:BouncingBall", "stop_time": 1 }),
        )
        .await;
    assert_eq!(run["status"], "succeeded", "{run}");
    let got = receiver.wait_for(1, Duration::from_secs(20)).await;
    assert_eq!(got[0]["verified"], json!([true]));
    let message_id = got[0]["headers"]["webhook-id"]
        .as_str()
        .unwrap()
        .to_string();

    let delivered = "table.webhook-deliveries tbody tr";
    eventually("the delivery on the page", || async {
        c.goto(&app.at("/webhooks")).await.ok()?;
        let row = c.find(Locator::Css(delivered)).await.ok()?;
        let text = row.text().await.ok()?;
        text.contains("delivered").then_some(text)
    })
    .await;
    let row = text_of(c, delivered).await;
    assert!(
        row.contains("run.succeeded") && row.contains(&message_id),
        "{row}"
    );
    assert!(row.contains("200") && row.contains(" ms"), "{row}");
    fits(c, "desktop").await;
    screenshot(c, "webhooks-delivery-desktop").await;

    // Resend: a second attempt of the same message.
    c.find(Locator::Css("table.webhook-deliveries button[type=submit]"))
        .await
        .unwrap()
        .click()
        .await
        .unwrap();
    receiver.wait_for(2, Duration::from_secs(20)).await;
    let got = receiver.requests().await;
    assert_eq!(got[1]["headers"]["webhook-id"], message_id.as_str());
    eventually("two attempts on the page", || async {
        c.goto(&app.at("/webhooks")).await.ok()?;
        let attempts = c
            .find_all(Locator::Css("table.webhook-deliveries ol.attempts li"))
            .await
            .ok()?;
        (attempts.len() == 2).then_some(())
    })
    .await;

    c.set_window_size(390, 844).await.unwrap();
    c.goto(&app.at("/webhooks")).await.unwrap();
    fits(c, "phone").await;
    c.execute(
        "document.querySelector('section.webhook h2').scrollIntoView(); return null;",
        vec![],
    )
    .await
    .unwrap();
    screenshot(c, "webhooks-delivery-phone").await;
}
