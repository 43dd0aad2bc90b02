//! Browser tests: the dashboard in headless Debian chromium, driven through chromedriver.
//! They prove what only a browser can: htmx swaps parts of the page in place (a marker set
//! on `window` survives, so the page was not reloaded) and the URL follows the state.

#[path = "../common/mod.rs"]
mod common;
mod plots;
mod runs;

mod account;

use std::os::unix::process::CommandExt;
use std::process::{Child, Command, Stdio};
use std::time::{Duration, Instant};

use common::{Account, Api, TestApp, page_text, spawn_app, spawn_billing_app, stripe};
use fantoccini::{Client, ClientBuilder, Locator};

mod layout;
mod sweeps;
mod webhooks;
use serde_json::{Value, json};

/// A headless chromium with its own chromedriver and a fresh profile; both end on drop.
pub(crate) struct Browser {
    pub(crate) client: Client,
    driver: Child,
    _profile: tempfile::TempDir,
}

impl Drop for Browser {
    fn drop(&mut self) {
        // Chromium leaves chromedriver's process group, so it is found by its profile
        // directory, which is this test's alone: no browser outlives its test.
        let _ = Command::new("pkill")
            .arg("-9")
            .arg("-f")
            .arg(self._profile.path())
            .status();
        // SAFETY: kill takes plain integers; the group is chromedriver's own (`process_group(0)`).
        unsafe { libc::kill(-(self.driver.id() as i32), libc::SIGKILL) };
        let _ = self.driver.wait();
    }
}

pub(crate) fn free_port() -> u16 {
    std::net::TcpListener::bind("127.0.0.1:0")
        .unwrap()
        .local_addr()
        .unwrap()
        .port()
}

pub(crate) async fn start_browser() -> Browser {
    let port = free_port();
    let driver_bin = std::env::var("CHROMEDRIVER").unwrap_or_else(|_| "chromedriver".into());
    let driver = Command::new(&driver_bin)
        .arg(format!("--port={port}"))
        .process_group(0)
        .stdout(Stdio::null())
        .stderr(Stdio::null())
        .spawn()
        .unwrap_or_else(|e| {
            panic!(
                "cannot start {driver_bin} ({e}): install Debian's chromium-driver (see .ci/run)"
            )
        });
    let profile = tempfile::tempdir().unwrap();
    let binary = ["/usr/lib/chromium/chromium", "/usr/bin/chromium"]
        .into_iter()
        .find(|p| std::path::Path::new(p).exists())
        .expect("Debian's chromium is installed (see .ci/run)");
    let caps = json!({
        "browserName": "chrome",
        "goog:chromeOptions": {
            "binary": binary,
            "args": ["--headless=new", "--no-sandbox", "--disable-gpu", "--disable-dev-shm-usage",
                     "--disable-background-networking", "--disable-component-update", "--disable-sync",
                     "--no-first-run", "--no-default-browser-check", "--window-size=1280,900",
                     format!("--user-data-dir={}", profile.path().display())]
        }
    });
    let caps = match caps {
        Value::Object(map) => map,
        _ => unreachable!(),
    };
    let deadline = Instant::now() + Duration::from_secs(20);
    let client = loop {
        match ClientBuilder::rustls()
            .expect("rustls")
            .capabilities(caps.clone())
            .connect(&format!("http://127.0.0.1:{port}"))
            .await
        {
            Ok(c) => break c,
            Err(e) if Instant::now() > deadline => panic!("chromedriver did not start: {e}"),
            Err(_) => tokio::time::sleep(Duration::from_millis(100)).await,
        }
    };
    Browser {
        client,
        driver,
        _profile: profile,
    }
}

/// Polls `check` until it returns `Some`, for at most ten seconds (CI machines are slow).
pub(crate) async fn eventually<T, F, Fut>(what: &str, mut check: F) -> T
where
    F: FnMut() -> Fut,
    Fut: std::future::Future<Output = Option<T>>,
{
    let deadline = Instant::now() + Duration::from_secs(10);
    loop {
        if let Some(v) = check().await {
            return v;
        }
        assert!(Instant::now() < deadline, "timed out waiting for {what}");
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
}

pub(crate) async fn log_in(b: &Browser, app: &TestApp, account: &Account) {
    let c = &b.client;
    c.goto(&app.at("/login")).await.unwrap();
    c.find(Locator::Css("#email"))
        .await
        .unwrap()
        .send_keys(&account.email)
        .await
        .unwrap();
    c.find(Locator::Css("#password"))
        .await
        .unwrap()
        .send_keys(&account.password)
        .await
        .unwrap();
    c.find(Locator::Css("form[action='/login'] button[type=submit]"))
        .await
        .unwrap()
        .click()
        .await
        .unwrap();
    eventually("the dashboard after login", || async {
        c.current_url()
            .await
            .ok()
            .filter(|u| u.path() == "/dashboard")
    })
    .await;
}

/// Marks the page so a reload can be detected.
pub(crate) async fn mark_page(c: &Client) {
    c.execute("window.__notReloaded = 42; return null;", vec![])
        .await
        .unwrap();
}

pub(crate) async fn still_marked(c: &Client) -> bool {
    c.execute("return window.__notReloaded === 42;", vec![])
        .await
        .unwrap()
        == Value::Bool(true)
}

#[tokio::test]
async fn a_generated_key_appears_in_place_and_revoking_it_swaps_its_row() {
    let app = spawn_app().await;
    let account = app.register().await;
    let b = start_browser().await;
    let c = &b.client;
    log_in(&b, &app, &account).await;

    c.goto(&app.at("/api-keys")).await.unwrap();
    mark_page(c).await;
    c.find(Locator::Css("#label"))
        .await
        .unwrap()
        .send_keys("From the browser")
        .await
        .unwrap();
    c.find(Locator::Css("form[action='/api-keys'] button[type=submit]"))
        .await
        .unwrap()
        .click()
        .await
        .unwrap();

    let token = eventually("the new key", || async {
        let el = c.find(Locator::Css("#new-key-value")).await.ok()?;
        el.text().await.ok().filter(|t| t.starts_with("fmugw_"))
    })
    .await;
    assert!(
        still_marked(c).await,
        "the key appeared without a page reload"
    );
    let table = c
        .find(Locator::Css("#keys-table"))
        .await
        .unwrap()
        .text()
        .await
        .unwrap();
    assert!(
        table.contains("From the browser"),
        "the table was updated too: {table}"
    );
    let me = app.get("/api/v1/me", &token).await;
    assert_eq!(me.status(), 200, "the key shown works");

    let keys = app.get_json("/api/v1/keys", &token).await;
    let id = keys
        .as_array()
        .unwrap()
        .iter()
        .find(|k| k["label"] == "From the browser")
        .unwrap()["id"]
        .as_str()
        .unwrap()
        .to_string();
    let row = format!("#key-{id}");
    c.find(Locator::Css(&format!("{row} button.danger")))
        .await
        .unwrap()
        .click()
        .await
        .unwrap();
    c.accept_alert().await.unwrap();
    eventually("the row to show Revoked", || async {
        let text = c.find(Locator::Css(&row)).await.ok()?.text().await.ok()?;
        text.contains("Revoked").then_some(())
    })
    .await;
    assert!(
        still_marked(c).await,
        "the row changed without a page reload"
    );
    let me = app.get("/api/v1/me", &token).await;
    assert_eq!(me.status(), 401, "the revoked key stopped working");
}

#[tokio::test]
async fn clicking_a_usage_column_header_reorders_the_table_in_place() {
    let app = spawn_app().await;
    let account = app.register().await;
    for (i, credits) in [5, 1, 9, 3].into_iter().enumerate() {
        app.record_usage(
            &account.user_id,
            &format!("Model{i}"),
            credits,
            None,
            1_780_000_000_000 + i as i64 * 1000,
        )
        .await;
    }
    let b = start_browser().await;
    let c = &b.client;
    log_in(&b, &app, &account).await;
    c.goto(&app.at("/usage")).await.unwrap();
    mark_page(c).await;

    let credits_column = || async {
        let cells = c
            .find_all(Locator::Css("#usage-table tbody td.num"))
            .await
            .ok()?;
        let mut out = Vec::new();
        for cell in cells {
            out.push(cell.text().await.ok()?.parse::<i64>().ok()?);
        }
        Some(out)
    };
    assert_eq!(
        credits_column().await.unwrap(),
        vec![3, 9, 1, 5],
        "newest first"
    );

    c.find(Locator::LinkText("Credits Used"))
        .await
        .unwrap()
        .click()
        .await
        .unwrap();
    eventually("the table sorted by credits", || async {
        credits_column()
            .await
            .filter(|col| *col == vec![9, 5, 3, 1])
    })
    .await;
    assert!(still_marked(c).await, "sorted without a page reload");
    let url = c.current_url().await.unwrap();
    assert!(
        url.query().unwrap_or("").contains("sort=credits"),
        "the URL follows the sort: {url}"
    );

    c.find(Locator::Css("th[aria-sort] a"))
        .await
        .unwrap()
        .click()
        .await
        .unwrap();
    eventually("the order reversed", || async {
        credits_column()
            .await
            .filter(|col| *col == vec![1, 3, 5, 9])
    })
    .await;

    // Reloading the pushed URL gives the same order.
    c.refresh().await.unwrap();
    assert_eq!(credits_column().await.unwrap(), vec![1, 3, 5, 9]);
}

#[tokio::test]
async fn signing_up_in_the_browser_lands_on_the_dashboard_with_free_credits() {
    let app = spawn_app().await;
    let b = start_browser().await;
    let c = &b.client;
    c.goto(&app.at("/register")).await.unwrap();
    c.find(Locator::Css("#email"))
        .await
        .unwrap()
        .send_keys(&common::unique_email())
        .await
        .unwrap();
    c.find(Locator::Css("#name"))
        .await
        .unwrap()
        .send_keys("Katherine")
        .await
        .unwrap();
    c.find(Locator::Css("#password"))
        .await
        .unwrap()
        .send_keys("hidden figures")
        .await
        .unwrap();
    c.find(Locator::Css("form[action='/register'] button[type=submit]"))
        .await
        .unwrap()
        .click()
        .await
        .unwrap();
    eventually("the dashboard", || async {
        c.current_url()
            .await
            .ok()
            .filter(|u| u.path() == "/dashboard")
    })
    .await;
    let credits = c
        .find(Locator::Css("#credits"))
        .await
        .unwrap()
        .text()
        .await
        .unwrap();
    assert_eq!(credits, "25");
    let heading = c
        .find(Locator::Css("h1"))
        .await
        .unwrap()
        .text()
        .await
        .unwrap();
    assert_eq!(heading, "Hello, Katherine");
}

fn fresh_fmu_file(dir: &std::path::Path) -> std::path::PathBuf {
    let path = dir.join("MyVanDerPol.fmu");
    std::fs::write(
        &path,
        common::fresh_fmu("VanDerPol", "3.0", "uploaded from the browser test"),
    )
    .unwrap();
    path
}

#[tokio::test]
async fn uploading_an_fmu_on_the_library_page_adds_it_in_place() {
    let app = spawn_app().await;
    let account = app.register().await;
    let dir = tempfile::tempdir().unwrap();
    let file = fresh_fmu_file(dir.path());
    let b = start_browser().await;
    let c = &b.client;
    log_in(&b, &app, &account).await;
    c.goto(&app.at("/library")).await.unwrap();
    let table = c
        .find(Locator::Css("#library-table"))
        .await
        .unwrap()
        .text()
        .await
        .unwrap();
    assert!(
        table.contains("lib:BouncingBall") && !table.contains("uploaded"),
        "{table}"
    );
    mark_page(c).await;
    c.find(Locator::Css("#fmu-file"))
        .await
        .unwrap()
        .send_keys(&file.display().to_string())
        .await
        .unwrap();
    c.find(Locator::Css(
        "form[enctype='multipart/form-data'] button[type=submit]",
    ))
    .await
    .unwrap()
    .click()
    .await
    .unwrap();
    eventually("the upload in the table", || async {
        let text = c
            .find(Locator::Css("#library-table"))
            .await
            .ok()?
            .text()
            .await
            .ok()?;
        text.contains("uploaded").then_some(())
    })
    .await;
    assert!(
        still_marked(c).await,
        "the table was updated without a page reload"
    );
    // The upload is confirmed by name, its row highlighted, and it can be deleted in place
    // after a confirmation.
    let table = c.find(Locator::Css("#library-table")).await.unwrap();
    let said = table
        .find(Locator::Css(".alert-success"))
        .await
        .unwrap()
        .text()
        .await
        .unwrap();
    let file_name = file.file_name().unwrap().to_str().unwrap();
    assert!(
        said.contains(&format!("“{file_name}” was uploaded as VanDerPol")),
        "{said}"
    );
    let new_row = table.find(Locator::Css("tr.new-row")).await.unwrap();
    assert!(new_row.text().await.unwrap().contains("VanDerPol"));
    screenshot(c, "upload-confirmed").await;
    new_row
        .find(Locator::Css("details.confirm summary"))
        .await
        .unwrap()
        .click()
        .await
        .unwrap();
    let delete = new_row
        .find(Locator::Css("details.confirm button.danger"))
        .await
        .unwrap();
    eventually("the confirmation", || async {
        delete.is_displayed().await.ok().filter(|shown| *shown)
    })
    .await;
    delete.click().await.unwrap();
    eventually("the upload gone from the table", || async {
        let text = c
            .find(Locator::Css("#library-table"))
            .await
            .ok()?
            .text()
            .await
            .ok()?;
        (text.contains("VanDerPol was deleted from your library") && !text.contains("uploaded 2"))
            .then_some(())
    })
    .await;
    assert!(still_marked(c).await, "deleted in place");
    // The model page lists the variables.
    c.find(Locator::LinkText("VanDerPol"))
        .await
        .unwrap()
        .click()
        .await
        .unwrap();
    eventually("the variables table", || async {
        let text = c
            .find(Locator::Css("#variables"))
            .await
            .ok()?
            .text()
            .await
            .ok()?;
        (text.contains("x0") && text.contains("mu")).then_some(())
    })
    .await;
}

#[tokio::test]
async fn a_run_started_from_the_form_updates_in_place_and_shows_its_plot() {
    let app = spawn_app().await;
    let account = app.register().await;
    let b = start_browser().await;
    let c = &b.client;
    log_in(&b, &app, &account).await;
    c.goto(&app.at("/runs")).await.unwrap();
    // Choosing a model loads its variables into the form (htmx).
    c.find(Locator::Css("#fmu-choice"))
        .await
        .unwrap()
        .select_by_value("lib:VanDerPol")
        .await
        .unwrap();
    eventually("the model's variables", || async {
        c.find(Locator::Css("#start-mu")).await.ok()
    })
    .await;
    let stop = c.find(Locator::Css("#stop_time")).await.unwrap();
    stop.clear().await.unwrap();
    stop.send_keys("50000").await.unwrap();
    let interval = c.find(Locator::Css("#output_interval")).await.unwrap();
    interval.clear().await.unwrap();
    interval.send_keys("1").await.unwrap();
    c.find(Locator::Css("form[method=post] button.primary"))
        .await
        .unwrap()
        .click()
        .await
        .unwrap();
    eventually("the run page", || async {
        c.current_url()
            .await
            .ok()
            .filter(|u| u.path().starts_with("/runs/run_"))
    })
    .await;
    mark_page(c).await;
    let status = |c: &Client| {
        let c = c.clone();
        async move {
            c.find(Locator::Css("#run-details [data-status]"))
                .await
                .ok()?
                .attr("data-status")
                .await
                .ok()?
        }
    };
    let first = status(c).await.unwrap();
    assert!(
        matches!(first.as_str(), "queued" | "running"),
        "the run was still going when the page opened: {first}"
    );
    let deadline = Instant::now() + Duration::from_secs(60);
    loop {
        if status(c).await.as_deref() == Some("succeeded") {
            break;
        }
        assert!(Instant::now() < deadline, "the run did not finish");
        tokio::time::sleep(Duration::from_millis(200)).await;
    }
    assert!(
        still_marked(c).await,
        "the status changed without a page reload"
    );
    let path = c
        .find(Locator::Css("#run-details svg path.series"))
        .await
        .unwrap()
        .attr("d")
        .await
        .unwrap()
        .unwrap();
    assert!(path.starts_with('M') && path.len() > 100, "{path}");
    let href = c
        .find(Locator::Css("#run-details a[download]"))
        .await
        .unwrap()
        .attr("href")
        .await
        .unwrap()
        .unwrap();
    // The download link serves the results to the logged-in user.
    let client = common::browser();
    app.browser_login(&client, &account).await;
    let csv = page_text(&client, app.at(&href)).await;
    assert!(
        csv.starts_with("time,x0,x1\n"),
        "{}",
        &csv[..csv.len().min(200)]
    );
    assert_eq!(csv.lines().count(), 50002);
}

/// Saves a screenshot when `FMU_GATEWAY_SCREENSHOTS` names a directory (for a person to look
/// at; the assertions do not depend on it).
pub(crate) async fn screenshot(c: &Client, name: &str) {
    if let Ok(dir) = std::env::var("FMU_GATEWAY_SCREENSHOTS") {
        let png = c.screenshot().await.unwrap();
        std::fs::write(std::path::Path::new(&dir).join(format!("{name}.png")), png).unwrap();
    }
}

#[tokio::test]
async fn a_run_the_model_cannot_take_comes_back_with_each_problem_beside_its_field() {
    let app = spawn_app().await;
    let account = app.register().await;
    let b = start_browser().await;
    let c = &b.client;
    log_in(&b, &app, &account).await;
    for (width, height, label) in [(390, 844, "phone"), (1400, 1000, "desktop")] {
        c.set_window_size(width, height).await.unwrap();
        c.goto(&app.at("/runs?fmu=lib:BouncingBall")).await.unwrap();
        // Each field starts at the model's default.
        let e = c.find(Locator::Css("#start-e")).await.unwrap();
        assert_eq!(e.prop("value").await.unwrap().as_deref(), Some("0.7"));
        e.clear().await.unwrap();
        e.send_keys("1.5").await.unwrap();
        let g = c.find(Locator::Css("#start-g")).await.unwrap();
        g.clear().await.unwrap();
        g.send_keys("heavy").await.unwrap();
        c.find(Locator::Css("form[method=post] button.primary"))
            .await
            .unwrap()
            .click()
            .await
            .unwrap();
        let message = eventually("the problem beside e", || async {
            c.find(Locator::Id("error-start_values.e"))
                .await
                .ok()?
                .text()
                .await
                .ok()
        })
        .await;
        assert!(message.contains("above its maximum 1"), "{message}");
        let g_error = c
            .find(Locator::Id("error-start_values.g"))
            .await
            .unwrap()
            .text()
            .await
            .unwrap();
        assert!(g_error.contains("is not a number"), "{g_error}");
        // What the user typed is still there, and the field says it is invalid.
        let e = c.find(Locator::Css("#start-e")).await.unwrap();
        assert_eq!(e.prop("value").await.unwrap().as_deref(), Some("1.5"));
        assert_eq!(
            e.attr("aria-describedby").await.unwrap().as_deref(),
            Some("error-start_values.e")
        );
        // Nothing was started and nothing was charged.
        assert_eq!(c.current_url().await.unwrap().path(), "/runs");
        screenshot(c, &format!("run-form-problems-{label}")).await;
    }
    let me = app.get_json("/api/v1/me", &account.api_key).await;
    assert_eq!(me["credits"], 25);
}

#[tokio::test]
async fn upgrading_goes_to_stripe_checkout_and_the_paid_session_appears_in_place() {
    let stub = stripe::start().await;
    let app = spawn_billing_app(&stub, |_c| {}).await;
    let account = app.register().await;
    let b = start_browser().await;
    let c = &b.client;
    log_in(&b, &app, &account).await;

    c.goto(&app.at("/billing")).await.unwrap();
    let text_of = |css: &'static str| async move {
        c.find(Locator::Css(css))
            .await
            .unwrap()
            .text()
            .await
            .unwrap()
    };
    assert_eq!(text_of("#plan-name").await, "Free");
    assert_eq!(text_of("#credits").await, "25");
    c.find(Locator::XPath(
        "//form[@action='/billing/checkout']//button[normalize-space()='Buy the Pro pack']",
    ))
    .await
    .unwrap()
    .click()
    .await
    .unwrap();

    // The form's 303 leads the browser to Checkout: the page's CSP lets forms go there.
    let checkout_prefix = format!("{}/checkout/cs_test_", stub.url);
    let url = eventually("the Stripe Checkout page", || async {
        let url = c.current_url().await.ok()?;
        if !url.as_str().starts_with(&checkout_prefix) {
            return None;
        }
        let title = c.title().await.ok()?;
        (title == "Stripe Checkout stand-in").then_some(url)
    })
    .await;
    let session_id = url.path().rsplit('/').next().unwrap().to_string();
    assert!(session_id.starts_with("cs_test_"), "{url}");
    let sessions = stub.requests_to("/v1/checkout/sessions");
    assert!(
        sessions.iter().any(|r| {
            r.field("metadata[user_id]") == Some(account.user_id.as_str())
                && r.field("metadata[plan]") == Some("pro")
        }),
        "a Checkout Session for this user and plan was created: {sessions:?}"
    );

    // Stripe sends the customer back before (or while) it reports the payment: the page
    // says it is confirming, and swaps in the result without a reload when it arrives.
    c.goto(&app.at(&format!(
        "/billing?checkout=success&session_id={session_id}"
    )))
    .await
    .unwrap();
    assert!(
        text_of("#billing-status")
            .await
            .contains("Stripe is confirming your payment")
    );
    mark_page(c).await;

    // Stripe reports the payment.
    let event = stripe::checkout_completed(
        "evt_browser_1",
        &session_id,
        &account.user_id,
        "pro",
        120,
        "paid",
        "pi_browser_1",
        4900,
    );
    let resp = stripe::deliver(&reqwest::Client::new(), &app.at("/stripe/webhook"), &event).await;
    let status = resp.status();
    assert_eq!(status, 200, "{}", resp.text().await.unwrap());

    eventually("the confirmed payment on the billing page", || async {
        let status = c
            .find(Locator::Css("#billing-status"))
            .await
            .ok()?
            .text()
            .await
            .ok()?;
        status.contains("120 credits were added").then_some(())
    })
    .await;
    assert_eq!(text_of("#credits").await, "145");
    assert_eq!(text_of("#plan-name").await, "Pro");
    assert!(text_of("#plan-pro").await.contains("Latest"));
    assert!(
        text_of("#billing-account")
            .await
            .contains("Buy the Enterprise pack")
    );
    assert!(
        still_marked(c).await,
        "the page was updated in place, not reloaded"
    );

    c.goto(&app.at("/dashboard")).await.unwrap();
    assert_eq!(text_of("#credits").await, "145");
    let plan_line = text_of("#credits + p.muted").await;
    assert!(
        plan_line.starts_with("Latest credit pack: Pro."),
        "{plan_line}"
    );
}

/// The widest element on the page, in CSS pixels (to catch sideways scrolling on a phone).
pub(crate) async fn page_width(c: &Client) -> f64 {
    c.execute("return document.documentElement.scrollWidth;", vec![])
        .await
        .unwrap()
        .as_f64()
        .unwrap()
}

#[tokio::test]
async fn the_keys_page_shows_sessions_per_key_and_a_run_says_how_long_its_results_are_kept() {
    let app = spawn_app().await;
    let account = app.register().await;
    // A second browser (a plain client) logs in with the account's key.
    let by_key = common::browser();
    let resp = by_key
        .post(app.at("/login"))
        .form(&[("api_key", account.api_key.as_str())])
        .send()
        .await
        .unwrap();
    assert_eq!(resp.status(), 303);
    let run: Value = app
        .create_run(
            &account.api_key,
            &serde_json::json!({"fmu_id": "lib:Dahlquist", "stop_time": 1}),
        )
        .await
        .json()
        .await
        .unwrap();
    assert_eq!(run["status"], "succeeded", "{run}");
    let b = start_browser().await;
    let c = &b.client;
    log_in(&b, &app, &account).await;
    for (width, height, label) in [(390, 844, "phone"), (1400, 1000, "desktop")] {
        c.set_window_size(width, height).await.unwrap();
        c.goto(&app.at("/api-keys")).await.unwrap();
        let table = c
            .find(Locator::Css("table"))
            .await
            .unwrap()
            .text()
            .await
            .unwrap();
        assert!(table.contains("Browser sessions"), "{table}");
        screenshot(c, &format!("keys-sessions-{label}")).await;

        c.goto(&app.at(&format!("/runs/{}", run["id"].as_str().unwrap())))
            .await
            .unwrap();
        let kept = c
            .find(Locator::Id("result-retention"))
            .await
            .unwrap()
            .text()
            .await
            .unwrap();
        let until = run["result_expires_at"].as_str().unwrap();
        assert_eq!(kept, format!("Results are kept until {}.", &until[..10]));
        screenshot(c, &format!("run-retention-{label}")).await;
        if label == "phone" {
            let wide = page_width(c).await;
            assert!(wide <= 390.0, "the run page scrolls sideways: {wide} px");
        }
    }
}

/// A run of a model with every type: its numbers are plotted, its String and Binary outputs
/// named as not plotted (they are in the CSV); an array model's page shows each array's shape
/// by its structural parameters. At phone and desktop widths.
#[tokio::test]
async fn typed_results_are_plotted_or_named_and_array_shapes_are_shown() {
    let app = spawn_app().await;
    let account = app.register().await;
    let run: Value = app
        .create_run(
            &account.api_key,
            &serde_json::json!({"fmu_id": "lib:Feedthrough", "stop_time": 1}),
        )
        .await
        .json()
        .await
        .unwrap();
    assert_eq!(run["status"], "succeeded", "{run}");
    let b = start_browser().await;
    let c = &b.client;
    log_in(&b, &app, &account).await;
    for (width, height, label) in [(390, 844, "phone"), (1400, 1000, "desktop")] {
        c.set_window_size(width, height).await.unwrap();
        c.goto(&app.at(&format!("/runs/{}", run["id"].as_str().unwrap())))
            .await
            .unwrap();
        let not_plotted = c
            .find(Locator::Id("not-plotted"))
            .await
            .unwrap()
            .text()
            .await
            .unwrap();
        assert!(
            not_plotted.contains("String_output") && not_plotted.contains("Binary_output"),
            "{not_plotted}"
        );
        c.find(Locator::Css("figure svg")).await.unwrap();
        screenshot(c, &format!("typed-run-{label}")).await;

        c.goto(&app.at("/library/lib:StateSpace")).await.unwrap();
        let table = c
            .find(Locator::Id("variables"))
            .await
            .unwrap()
            .text()
            .await
            .unwrap();
        assert!(
            table.contains("Float64[n,n]") && table.contains("Float64[r]"),
            "{table}"
        );
        screenshot(c, &format!("array-model-{label}")).await;
    }
}

/// An upload whose model description breaks a rule: refused on the Library page with the
/// error's code and line; with "lenient" ticked, accepted, and the model's page shows its
/// validation report (problems and smoke tests). At phone and desktop widths.
#[tokio::test]
async fn an_invalid_upload_is_refused_with_its_problem_and_a_lenient_one_shows_its_report() {
    let app = spawn_app().await;
    let account = app.register().await;
    let dir = tempfile::tempdir().unwrap();
    let file = dir.path().join("OutOfRange.fmu");
    std::fs::write(
        &file,
        common::archives::with_model_description(
            common::archives::library_fmu("BouncingBall", "3.0"),
            |xml| {
                xml.replacen(
                    r#"start="0.7" min="0" max="1""#,
                    r#"start="1.7" min="0" max="1""#,
                    1,
                )
            },
        ),
    )
    .unwrap();
    let b = start_browser().await;
    let c = &b.client;
    log_in(&b, &app, &account).await;
    let library = app.at("/library");
    let upload = |lenient: bool| {
        let (file, library) = (file.display().to_string(), library.clone());
        async move {
            c.goto(&library).await.unwrap();
            if lenient {
                c.find(Locator::Css("input[name=lenient]"))
                    .await
                    .unwrap()
                    .click()
                    .await
                    .unwrap();
            }
            c.find(Locator::Css("#fmu-file"))
                .await
                .unwrap()
                .send_keys(&file)
                .await
                .unwrap();
            c.find(Locator::Css(
                "form[enctype='multipart/form-data'] button[type=submit]",
            ))
            .await
            .unwrap()
            .click()
            .await
            .unwrap();
        }
    };
    upload(false).await;
    let flash = eventually("the refusal", || async {
        let text = c.find(Locator::Id("flash")).await.ok()?.text().await.ok()?;
        (!text.is_empty()).then_some(text)
    })
    .await;
    assert!(
        flash.contains("start_out_of_range")
            && flash.contains("start=1.7 is above max=1")
            && flash.contains("tick \"Accept it despite errors\""),
        "{flash}"
    );

    upload(true).await;
    eventually("the upload in the table", || async {
        let text = c
            .find(Locator::Css("#library-table"))
            .await
            .ok()?
            .text()
            .await
            .ok()?;
        text.contains("uploaded").then_some(())
    })
    .await;
    let href = c
        .find(Locator::XPath(
            "//div[@id='library-table']//tr[contains(., 'uploaded')]//a",
        ))
        .await
        .unwrap()
        .attr("href")
        .await
        .unwrap()
        .unwrap();
    for (width, height, label) in [(390, 844, "phone"), (1400, 1000, "desktop")] {
        c.set_window_size(width, height).await.unwrap();
        c.goto(&app.at(&href)).await.unwrap();
        let section = c.find(Locator::Id("validation")).await.unwrap();
        let text = section.text().await.unwrap();
        assert!(
            text.contains("Accepted despite 1 error")
                && text.contains("start_out_of_range")
                && text.contains("Smoke test, co simulation: passed")
                && text.contains("Smoke test, model exchange: passed"),
            "{text}"
        );
        // The report fits the screen: its table scrolls inside its own box.
        let overflow = c
            .execute(
                "const s = document.getElementById('validation'); \
                 return s.getBoundingClientRect().right - document.documentElement.clientWidth;",
                vec![],
            )
            .await
            .unwrap()
            .as_f64()
            .unwrap();
        assert!(
            overflow <= 0.5,
            "{label}: the report sticks out by {overflow} px"
        );
        c.execute(
            "document.getElementById('validation').scrollIntoView();",
            vec![],
        )
        .await
        .unwrap();
        screenshot(c, &format!("validation-report-{label}")).await;
    }
}

/// A run compared with a reference: its page draws the reference dashed under the result,
/// marks where the result leaves the band, and shows the verdict table, at phone and desktop
/// widths without sideways scrolling.
#[tokio::test]
async fn a_run_page_draws_its_reference_dashed_and_marks_where_it_leaves_the_band() {
    let app = spawn_app().await;
    let account = app.register().await;
    // x = exp(-1.3 t): not this model's exp(-t), so the check fails from the second point.
    let mut csv = String::from("time,x\n");
    for i in 0..=20 {
        let t = f64::from(i) * 0.1;
        csv.push_str(&format!("{t},{}\n", (-1.3 * t).exp()));
    }
    let run: Value = app
        .create_run(
            &account.api_key,
            &serde_json::json!({
                "fmu_id": "lib:Dahlquist", "stop_time": 2, "output_interval": 0.02,
                "reference": {"csv": csv}
            }),
        )
        .await
        .json()
        .await
        .unwrap();
    assert_eq!(run["status"], "succeeded", "{run}");
    assert_eq!(run["reference_check"]["passed"], false, "{run}");
    let b = start_browser().await;
    let c = &b.client;
    log_in(&b, &app, &account).await;
    for (width, height, label) in [(390, 844, "phone"), (1400, 1000, "desktop")] {
        c.set_window_size(width, height).await.unwrap();
        c.goto(&app.at(&format!("/runs/{}", run["id"].as_str().unwrap())))
            .await
            .unwrap();
        let dashed = c
            .find(Locator::Css("svg g.reference-lines path.reference"))
            .await
            .unwrap();
        assert_eq!(
            dashed.attr("stroke").await.unwrap(),
            c.find(Locator::Css("svg path.series-0"))
                .await
                .unwrap()
                .attr("stroke")
                .await
                .unwrap(),
            "the reference is drawn in its variable's colour"
        );
        let marker = c
            .find(Locator::Css("svg g.outside-marker title"))
            .await
            .unwrap()
            .html(true)
            .await
            .unwrap();
        assert!(marker.contains("x leaves the band at t = 0.1"), "{marker}");
        let verdict = c
            .find(Locator::Id("reference-check"))
            .await
            .unwrap()
            .text()
            .await
            .unwrap();
        assert!(verdict.contains("Reference check: failed"), "{verdict}");
        assert!(verdict.contains("20 of 21"), "{verdict}");
        c.execute(
            "document.getElementById('reference-check').scrollIntoView();",
            vec![],
        )
        .await
        .unwrap();
        screenshot(c, &format!("run-reference-{label}")).await;
        c.execute("window.scrollTo(0, 0);", vec![]).await.unwrap();
        screenshot(c, &format!("run-reference-plot-{label}")).await;
        if label == "phone" {
            let wide = page_width(c).await;
            assert!(wide <= 390.0, "the run page scrolls sideways: {wide} px");
        }
    }
}
