//! The run workspace in chromium, at a phone's 390×844 and a desktop's 1400×1000: a run's
//! page follows it to its end in place (progress to 100 %), offers Run again and Edit and run,
//! cancels a queued run (refunded) and a running one (charged); the runs list filters, pages
//! and sends two picked runs to the comparison. No page scrolls sideways.

use std::time::{Duration, Instant};

use fantoccini::{Client, Locator};
use serde_json::{Value, json};

use crate::common::{Api, TestApp, spawn_app_with};
use crate::{eventually, log_in, mark_page, screenshot, start_browser, still_marked};

const SIZES: [(u32, u32, &str); 2] = [(390, 844, "phone"), (1400, 1000, "desktop")];

async fn app() -> TestApp {
    spawn_app_with(|c| {
        c.free_credits = fmu_gateway::domain::ids::Credits::from(100u32);
        c.workers = 1;
    })
    .await
}

/// A Van der Pol run of `stop_time` seconds: about 1 s of work per 7 000 in a debug build.
fn slow_run(stop_time: f64) -> Value {
    json!({
        "fmu_id": "lib:VanDerPol",
        "stop_time": stop_time,
        "output_interval": stop_time / 2000.0,
        "start_values": { "mu": 1.5 },
    })
}

async fn start_run(app: &TestApp, key: &str, body: &Value) -> String {
    let resp = app.create_run(key, body).await;
    assert!(resp.status().is_success(), "{}", resp.text().await.unwrap());
    let run: Value = resp.json().await.unwrap();
    run["id"].as_str().unwrap().to_string()
}

async fn text(c: &Client, css: &str) -> String {
    c.find(Locator::Css(css))
        .await
        .unwrap_or_else(|e| panic!("{css}: {e}"))
        .text()
        .await
        .unwrap()
}

/// The page fits the window: nothing scrolls sideways.
async fn fits(c: &Client, what: &str) {
    let (scroll, inner) = (
        c.execute("return document.documentElement.scrollWidth;", vec![])
            .await
            .unwrap(),
        c.execute("return window.innerWidth;", vec![])
            .await
            .unwrap(),
    );
    assert!(
        scroll.as_f64().unwrap() <= inner.as_f64().unwrap(),
        "{what} scrolls sideways: {scroll} > {inner}"
    );
}

/// Each size: the page fits, and a screenshot named `name`-<size>.
async fn at_both_sizes(c: &Client, name: &str) {
    for (width, height, label) in SIZES {
        c.set_window_size(width, height).await.unwrap();
        fits(c, name).await;
        screenshot(c, &format!("{name}-{label}")).await;
    }
}

async fn wait_for(c: &Client, what: &str, limit: Duration, css: &str, needle: &str) -> String {
    let deadline = Instant::now() + limit;
    loop {
        if let Ok(found) = c.find(Locator::Css(css)).await
            && let Ok(text) = found.text().await
            && text.contains(needle)
        {
            return text;
        }
        assert!(Instant::now() < deadline, "timed out waiting for {what}");
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
}

async fn click(c: &Client, css: &str) {
    c.find(Locator::Css(css))
        .await
        .unwrap_or_else(|e| panic!("{css}: {e}"))
        .click()
        .await
        .unwrap();
}

#[tokio::test]
async fn a_run_page_follows_its_run_to_100_percent_in_place_then_runs_it_again_and_edits_it() {
    let app = app().await;
    let account = app.register().await;
    let b = start_browser().await;
    let c = &b.client;
    log_in(&b, &app, &account).await;
    c.set_window_size(390, 844).await.unwrap();
    let id = start_run(&app, &account.api_key, &slow_run(100_000.0)).await;
    c.goto(&app.at(&format!("/runs/{id}"))).await.unwrap();
    mark_page(c).await;
    // The bar appears and moves while the run goes, without a reload.
    let first = wait_for(
        c,
        "the progress bar",
        Duration::from_secs(30),
        "#run-progress-text",
        " s of 100000 s",
    )
    .await;
    assert!(!first.contains("100 %"), "seen while running: {first}");
    let charge = text(c, "#run-charge").await;
    assert!(charge.contains("1 credit held"), "{charge} after {first}");
    assert!(c.find(Locator::Css("#cancel-run button")).await.is_ok());
    at_both_sizes(c, "run-page-running").await;
    let done = wait_for(
        c,
        "the run's end",
        Duration::from_secs(90),
        "#run-progress-text",
        "(100 %)",
    )
    .await;
    assert_ne!(first, done);
    assert_eq!(done, "t = 100000 s of 100000 s (100 %)");
    let value = c
        .execute(
            "return document.getElementById('run-progress-bar').position;",
            vec![],
        )
        .await
        .unwrap();
    assert_eq!(value.as_f64(), Some(1.0), "the bar is full");
    assert!(still_marked(c).await, "updated in place");
    assert_eq!(text(c, "#run-charge").await, "Charged 1 credit.");
    assert!(text(c, "#run-times").await.contains("Duration"));
    assert!(c.find(Locator::Css("#cancel-run")).await.is_err());
    // The settings beside the defaults they replaced.
    let settings = text(c, "#run-settings").await;
    assert!(
        settings.contains("Stop time [s]") && settings.contains("100000"),
        "{settings}"
    );
    assert!(
        settings.contains("mu") && settings.contains("changed"),
        "{settings}"
    );
    at_both_sizes(c, "run-page-finished").await;
    c.execute(
        "document.getElementById('run-settings').scrollIntoView(); return null;",
        vec![],
    )
    .await
    .unwrap();
    at_both_sizes(c, "run-page-settings").await;

    // Run again: a new run of the same settings, on its own page.
    click(c, "#run-actions button.primary").await;
    let again = eventually("the new run's page", || async {
        c.current_url()
            .await
            .ok()
            .filter(|u| u.path().starts_with("/runs/run_") && !u.path().ends_with(&id))
    })
    .await;
    let new_id = again.path().rsplit('/').next().unwrap().to_string();
    let rerun = app
        .get_json(&format!("/api/v1/runs/{new_id}"), &account.api_key)
        .await;
    let original = app
        .get_json(&format!("/api/v1/runs/{id}"), &account.api_key)
        .await;
    assert_eq!(rerun["settings"], original["settings"]);
    app.post(&format!("/api/v1/runs/{new_id}/cancel"), &account.api_key)
        .await;

    // Edit and run: the form, filled in with the run's settings.
    c.goto(&app.at(&format!("/runs/{id}"))).await.unwrap();
    click(c, "#edit-and-run").await;
    let stop = eventually("the filled-in form", || async {
        c.find(Locator::Css("#stop_time")).await.ok()
    })
    .await;
    assert_eq!(stop.prop("value").await.unwrap().as_deref(), Some("100000"));
    let mu = c.find(Locator::Css("#start-mu")).await.unwrap();
    assert_eq!(mu.prop("value").await.unwrap().as_deref(), Some("1.5"));
    // Reset puts the model's default back.
    click(c, "button[data-reset='start-mu']").await;
    assert_eq!(mu.prop("value").await.unwrap().as_deref(), Some("1"));
    at_both_sizes(c, "run-form-edit").await;
}

#[tokio::test]
async fn cancel_on_the_run_page_refunds_a_queued_run_and_charges_a_running_one() {
    let app = app().await;
    let account = app.register().await;
    let key = &account.api_key;
    let b = start_browser().await;
    let c = &b.client;
    log_in(&b, &app, &account).await;
    // One worker: the first run holds it, the second waits in the queue.
    let running = start_run(&app, key, &slow_run(1e6)).await;
    let queued = start_run(&app, key, &slow_run(1e6)).await;
    c.set_window_size(1400, 1000).await.unwrap();
    c.goto(&app.at(&format!("/runs/{queued}"))).await.unwrap();
    assert!(
        text(c, "#cancel-run")
            .await
            .contains("Not charged if cancelled")
    );
    click(c, "#cancel-run button").await;
    let charge = wait_for(
        c,
        "the refund",
        Duration::from_secs(20),
        "#run-charge",
        "Not charged",
    )
    .await;
    assert_eq!(
        charge,
        "Not charged: refunded because it was cancelled before it started."
    );
    assert_eq!(
        c.find(Locator::Css("#run-details [data-status]"))
            .await
            .unwrap()
            .attr("data-status")
            .await
            .unwrap()
            .as_deref(),
        Some("cancelled")
    );
    at_both_sizes(c, "run-page-cancelled-queued").await;

    c.goto(&app.at(&format!("/runs/{running}"))).await.unwrap();
    wait_for(
        c,
        "the run's progress",
        Duration::from_secs(30),
        "#run-progress-text",
        " s of 1000000 s",
    )
    .await;
    click(c, "#cancel-run button").await;
    let charge = wait_for(
        c,
        "the charge",
        Duration::from_secs(20),
        "#run-charge",
        "Charged",
    )
    .await;
    assert_eq!(charge, "Charged 1 credit.");
    assert_eq!(app.balance(key).await, 99, "one charged, one refunded");
}

#[tokio::test]
async fn the_runs_list_filters_and_pages_in_place_and_sends_two_picked_runs_to_compare() {
    let app = app().await;
    let account = app.register().await;
    let key = &account.api_key;
    for i in 0..26 {
        let model = if i % 2 == 0 {
            "lib:Dahlquist"
        } else {
            "lib:BouncingBall"
        };
        let body = json!({ "fmu_id": model, "stop_time": 0.1, "output_interval": 0.05 });
        assert_eq!(app.run(key, &body).await["status"], "succeeded");
    }
    let b = start_browser().await;
    let c = &b.client;
    log_in(&b, &app, &account).await;
    c.set_window_size(390, 844).await.unwrap();
    c.goto(&app.at("/runs")).await.unwrap();
    assert_eq!(text(c, "#runs-shown").await, "Runs 1–25 of 26");
    at_both_sizes(c, "runs-list").await;

    // The model filter swaps the list in place and the address keeps it.
    mark_page(c).await;
    c.find(Locator::Css("#filter-model"))
        .await
        .unwrap()
        .select_by_value("lib:Dahlquist")
        .await
        .unwrap();
    wait_for(
        c,
        "the filtered list",
        Duration::from_secs(10),
        "#runs-shown",
        "of 13",
    )
    .await;
    assert!(still_marked(c).await, "filtered in place");
    let url = c.current_url().await.unwrap();
    assert!(url.as_str().contains("model=lib%3ADahlquist"), "{url}");

    // Paging: Next, then Previous.
    c.goto(&app.at("/runs")).await.unwrap();
    click(c, "#runs-next").await;
    wait_for(
        c,
        "page 2",
        Duration::from_secs(10),
        "#runs-shown",
        "Runs 26–26 of 26",
    )
    .await;
    click(c, "#runs-previous").await;
    wait_for(
        c,
        "page 1",
        Duration::from_secs(10),
        "#runs-shown",
        "Runs 1–25 of 26",
    )
    .await;

    // Two picked runs go to the comparison, both in the address.
    let boxes = c
        .find_all(Locator::Css("#runs-table input[name=run]"))
        .await
        .unwrap();
    let mut picked = Vec::new();
    for b in boxes.iter().take(2) {
        b.click().await.unwrap();
        picked.push(b.attr("value").await.unwrap().unwrap());
    }
    click(c, "#compare").await;
    let url = eventually("the comparison", || async {
        c.current_url()
            .await
            .ok()
            .filter(|u| u.path() == "/runs/compare")
    })
    .await;
    let runs: Vec<String> = url
        .query_pairs()
        .filter(|(k, _)| k == "run")
        .map(|(_, v)| v.into_owned())
        .collect();
    assert_eq!(runs, picked, "{url}");
}

#[tokio::test]
async fn pasted_csv_inputs_and_a_misshapen_array_come_back_beside_their_fields_as_typed() {
    let app = app().await;
    let account = app.register().await;
    let b = start_browser().await;
    let c = &b.client;
    log_in(&b, &app, &account).await;
    for (width, height, label) in SIZES {
        c.set_window_size(width, height).await.unwrap();
        c.goto(&app.at("/runs?fmu=lib:Integrator")).await.unwrap();
        let csv = c.find(Locator::Css("#inputs_csv")).await.unwrap();
        csv.send_keys("time,u\n0,1\n1,abc").await.unwrap();
        click(c, "#run-fields button.primary").await;
        let error = wait_for(
            c,
            "the CSV's problem",
            Duration::from_secs(10),
            "#error-inputs",
            "line 3",
        )
        .await;
        assert_eq!(error, "line 3: 'abc' in column 'u' is not a number");
        let kept = c.find(Locator::Css("#inputs_csv")).await.unwrap();
        assert_eq!(
            kept.prop("value").await.unwrap().as_deref(),
            Some("time,u\n0,1\n1,abc")
        );
        fits(c, "the form with a CSV problem").await;
        screenshot(c, &format!("run-form-csv-problem-{label}")).await;

        c.goto(&app.at("/runs?fmu=lib:StateSpace")).await.unwrap();
        let x0 = c.find(Locator::Css("#start-x0")).await.unwrap();
        x0.clear().await.unwrap();
        x0.send_keys("[1, 2]").await.unwrap();
        click(c, "#run-fields button.primary").await;
        let error = wait_for(
            c,
            "the array's problem",
            Duration::from_secs(10),
            "[id='error-start_values.x0']",
            "",
        )
        .await;
        assert!(!error.is_empty());
        let x0 = c.find(Locator::Css("#start-x0")).await.unwrap();
        assert_eq!(x0.prop("value").await.unwrap().as_deref(), Some("[1, 2]"));
        fits(c, "the form with an array problem").await;
        screenshot(c, &format!("run-form-array-problem-{label}")).await;
    }
    assert_eq!(
        app.balance(&account.api_key).await,
        100,
        "nothing was charged"
    );
}
