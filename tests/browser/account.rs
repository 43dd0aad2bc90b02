//! The landing page and the account page in a real browser, at a phone's and a desktop's
//! size: nothing scrolls sideways, and each account action does what it says to the other
//! sessions (a plain HTTP client with its own cookie plays the second device).

use fantoccini::{Client, Locator};

use super::{eventually, log_in, page_width, screenshot, start_browser};
use crate::common::{self, TestApp, spawn_app};

const SIZES: [(u32, u32, &str); 2] = [(390, 844, "phone"), (1400, 1000, "desktop")];

/// Whether a plain client's session still opens the dashboard.
async fn still_logged_in(client: &reqwest::Client, app: &TestApp) -> bool {
    let resp = client.get(app.at("/dashboard")).send().await.unwrap();
    resp.status() == 200
}

async fn fill(c: &Client, css: &str, text: &str) {
    let field = c.find(Locator::Css(css)).await.unwrap();
    field.clear().await.unwrap();
    field.send_keys(text).await.unwrap();
}

async fn click(c: &Client, css: &str) {
    c.find(Locator::Css(css))
        .await
        .unwrap()
        .click()
        .await
        .unwrap();
}

async fn wait_for_url(c: &Client, what: &str, path_and_query: &str) {
    eventually(what, || async {
        c.current_url().await.ok().filter(|u| {
            let here = match u.query() {
                Some(q) => format!("{}?{q}", u.path()),
                None => u.path().to_string(),
            };
            here == path_and_query
        })
    })
    .await;
}

/// Fails, naming the elements that stick out, when the page is wider than the window.
async fn assert_fits(c: &Client, page: &str, width: u32) {
    let wide = page_width(c).await;
    if wide <= f64::from(width) {
        return;
    }
    let culprits = c
        .execute(
            "return [...document.querySelectorAll('body *')]
               .filter(e => e.getBoundingClientRect().right > window.innerWidth + 1)
               .slice(0, 8)
               .map(e => e.tagName + '.' + e.className + ' ' + Math.round(e.getBoundingClientRect().right))
               .join(', ');",
            vec![],
        )
        .await
        .unwrap();
    panic!("{page} scrolls sideways at {width} px: {wide} px; too wide: {culprits}");
}

#[tokio::test]
async fn the_landing_page_fits_a_phone_and_shows_the_plot_of_a_real_run() {
    let app = spawn_app().await;
    let b = start_browser().await;
    let c = &b.client;
    for (width, height, label) in SIZES {
        c.set_window_size(width, height).await.unwrap();
        c.goto(&app.at("/")).await.unwrap();
        let plot = c
            .find(Locator::Css("figure.landing-plot svg"))
            .await
            .unwrap();
        let drawn = plot.find(Locator::Css("path, polyline")).await;
        assert!(drawn.is_ok(), "the plot draws a line");
        let command = c
            .find(Locator::Css("pre.first-run-curl"))
            .await
            .unwrap()
            .text()
            .await
            .unwrap();
        assert!(command.contains("$FMU_GATEWAY_KEY"), "{command}");
        assert_eq!(c.find_all(Locator::Css("h1")).await.unwrap().len(), 1);
        assert_fits(c, "the landing page", width).await;
        screenshot(c, &format!("landing-{label}")).await;
        c.execute(
            "document.getElementById('steps-h').scrollIntoView(); return null;",
            vec![],
        )
        .await
        .unwrap();
        screenshot(c, &format!("landing-steps-{label}")).await;
    }
    // Its sign-up link is the way in.
    click(c, ".landing-actions a[href='/register']").await;
    wait_for_url(c, "the sign-up page", "/register").await;
}

#[tokio::test]
async fn changing_the_password_in_the_browser_logs_out_the_other_device() {
    let app = spawn_app().await;
    let account = app.register().await;
    let phone = common::browser();
    app.browser_login(&phone, &account).await;
    let b = start_browser().await;
    let c = &b.client;
    log_in(&b, &app, &account).await;
    for (width, height, label) in SIZES {
        c.set_window_size(width, height).await.unwrap();
        c.goto(&app.at("/account")).await.unwrap();
        assert_fits(c, "the account page", width).await;
        screenshot(c, &format!("account-{label}")).await;
    }
    // The user menu links here.
    c.goto(&app.at("/dashboard")).await.unwrap();
    click(c, "details.user-menu summary").await;
    click(c, "details.user-menu a[href='/account']").await;
    wait_for_url(c, "the account page", "/account").await;

    fill(c, "#current_password", &account.password).await;
    fill(c, "#new_password", "a new and longer password").await;
    click(c, "form[action='/account/password'] button[type=submit]").await;
    wait_for_url(c, "the notice", "/account?done=password_changed").await;
    let notice = c
        .find(Locator::Css(".alert-success"))
        .await
        .unwrap()
        .text()
        .await
        .unwrap();
    assert!(
        notice.contains("Every other session was logged out"),
        "{notice}"
    );
    assert!(
        !still_logged_in(&phone, &app).await,
        "the other device is logged out"
    );
    c.goto(&app.at("/dashboard")).await.unwrap();
    wait_for_url(c, "this browser stays logged in", "/dashboard").await;
}

#[tokio::test]
async fn a_session_is_ended_from_the_list() {
    let app = spawn_app().await;
    let account = app.register().await;
    let other = common::browser();
    app.browser_login(&other, &account).await;
    let b = start_browser().await;
    let c = &b.client;
    log_in(&b, &app, &account).await;
    for (width, height, label) in SIZES {
        c.set_window_size(width, height).await.unwrap();
        c.goto(&app.at("/account")).await.unwrap();
        let rows = c
            .find_all(Locator::Css("#sessions tbody tr"))
            .await
            .unwrap();
        assert_eq!(rows.len(), 2);
        let current = rows[0].text().await.unwrap();
        assert!(
            current.contains("This browser"),
            "most recent first: {current}"
        );
        assert!(current.contains("Headless Chrome on Linux"), "{current}");
        assert_fits(c, "the sessions list", width).await;
        screenshot(c, &format!("account-sessions-{label}")).await;
    }
    click(c, "#sessions form[action^='/account/sessions/'] button").await;
    wait_for_url(c, "the notice", "/account?done=session_ended").await;
    assert_eq!(
        c.find_all(Locator::Css("#sessions tbody tr"))
            .await
            .unwrap()
            .len(),
        1
    );
    assert!(!still_logged_in(&other, &app).await);
}

#[tokio::test]
async fn a_deleted_account_cannot_log_in_and_its_email_signs_up_again() {
    let app = spawn_app().await;
    let account = app.register().await;
    let b = start_browser().await;
    let c = &b.client;
    c.set_window_size(390, 844).await.unwrap();
    log_in(&b, &app, &account).await;
    c.goto(&app.at("/account")).await.unwrap();
    fill(c, "#delete_password", &account.password).await;
    click(c, "form[action='/account/delete'] button[type=submit]").await;
    wait_for_url(c, "the home page", "/?account=deleted").await;
    let notice = c
        .find(Locator::Css(".alert-success"))
        .await
        .unwrap()
        .text()
        .await
        .unwrap();
    assert_eq!(notice, "Your account was deleted.");
    screenshot(c, "account-deleted-phone").await;

    // Logging in fails, on the page.
    c.goto(&app.at("/login")).await.unwrap();
    fill(c, "#email", &account.email).await;
    fill(c, "#password", &account.password).await;
    click(c, "form[action='/login'] button[type=submit]").await;
    let error = c
        .wait()
        .for_element(Locator::Css(".alert-error"))
        .await
        .unwrap()
        .text()
        .await
        .unwrap();
    assert!(error.contains("wrong email or password"), "{error}");

    // The same email signs up again.
    c.goto(&app.at("/register")).await.unwrap();
    fill(c, "#email", &account.email).await;
    fill(c, "#password", "another good password").await;
    click(c, "form[action='/register'] button[type=submit]").await;
    wait_for_url(c, "the new account's dashboard", "/dashboard").await;
}
