//! The run workspace: live progress from the worker (the API's `progress` and the run page's
//! bar), the run page's settings, times and charge, its Cancel, Run again and Edit and run
//! forms, and the runs list's filters, pages and compare form: all driven as a browser
//! without JavaScript does (plain GETs and form posts with the CSRF token).

use std::time::{Duration, Instant};

use serde_json::{Value, json};

use crate::common::{Account, Api, TestApp, browser, page_text, spawn_app_with};

/// A Van der Pol oscillator long enough to be watched: about 6 s of work in a debug build
/// (its Co-Simulation takes 1 ms substeps), 2 000 output points.
fn slow_run(stop_time: f64) -> Value {
    json!({
        "fmu_id": "lib:VanDerPol",
        "stop_time": stop_time,
        "output_interval": stop_time / 2000.0,
        "start_values": { "mu": 1.5 },
    })
}

async fn app() -> TestApp {
    spawn_app_with(|c| {
        c.free_credits = fmu_gateway::domain::ids::Credits::from(100u32);
        c.workers = 1;
    })
    .await
}

/// A signed-up user with a logged-in browser (no JavaScript): the account, the client and
/// its CSRF token.
async fn user(app: &TestApp) -> (Account, reqwest::Client, String) {
    let account = app.register().await;
    let client = browser();
    let csrf = app.browser_login(&client, &account).await;
    (account, client, csrf)
}

/// Posts a form; the redirect's target.
async fn post_form(client: &reqwest::Client, url: String, form: &[(&str, &str)]) -> String {
    let resp = client.post(&url).form(form).send().await.unwrap();
    let status = resp.status();
    let location = resp
        .headers()
        .get("location")
        .map(|l| l.to_str().unwrap().to_string());
    match location {
        Some(location) if status == 303 => location,
        _ => panic!("{url}: {status} {}", resp.text().await.unwrap()),
    }
}

async fn status_of(app: &TestApp, key: &str, id: &str) -> String {
    let run = app.get_json(&format!("/api/v1/runs/{id}"), key).await;
    run["status"].as_str().unwrap().to_string()
}

async fn wait_for_status(app: &TestApp, key: &str, id: &str, wanted: &str) {
    let deadline = Instant::now() + Duration::from_secs(60);
    while status_of(app, key, id).await != wanted {
        assert!(Instant::now() < deadline, "run {id} never became {wanted}");
        tokio::time::sleep(Duration::from_millis(20)).await;
    }
}

#[tokio::test]
async fn a_running_run_reports_progress_that_grows_within_its_span_and_goes_when_it_ends() {
    // The start answers at once (no synchronous wait), so the polls see the whole run even
    // when the machine is idle and the run takes less than the usual wait.
    let app = spawn_app_with(|c| {
        c.workers = 1;
        c.sync_wait = Duration::ZERO;
    })
    .await;
    let account = app.register().await;
    let key = &account.api_key;
    let resp = app.create_run(key, &slow_run(40_000.0)).await;
    assert!(resp.status().is_success(), "{}", resp.text().await.unwrap());
    let run: Value = resp.json().await.unwrap();
    let id = run["id"].as_str().unwrap().to_string();

    let mut seen: Vec<f64> = Vec::new();
    let finished = loop {
        let run = app.get_json(&format!("/api/v1/runs/{id}"), key).await;
        match run["status"].as_str().unwrap() {
            "running" => {
                if let Some(progress) = run.get("progress") {
                    let time = progress["time"].as_f64().unwrap();
                    let fraction = progress["fraction"].as_f64().unwrap();
                    assert_eq!(progress["stop_time"], 40_000.0);
                    assert!((0.0..=40_000.0).contains(&time), "{progress}");
                    assert!((fraction - time / 40_000.0).abs() < 1e-12, "{progress}");
                    if seen.last() != Some(&time) {
                        seen.push(time);
                    }
                }
            }
            "queued" => assert!(run.get("progress").is_none(), "{run}"),
            _ => break run,
        }
        tokio::time::sleep(Duration::from_millis(50)).await;
    };
    assert_eq!(finished["status"], "succeeded", "{finished}");
    assert!(finished.get("progress").is_none(), "{finished}");
    assert!(seen.len() >= 3, "progress seen over the polls: {seen:?}");
    assert!(
        seen.windows(2).all(|w| w[0] < w[1]),
        "progress only grows: {seen:?}"
    );
    assert!(seen.iter().any(|&t| t > 0.0), "{seen:?}");
}

#[tokio::test]
async fn the_run_page_shows_progress_settings_times_and_the_charge_and_says_it_does_not_update_by_itself()
 {
    let app = app().await;
    let (account, client, csrf) = user(&app).await;
    let location = post_form(
        &client,
        app.at("/runs"),
        &[
            ("csrf_token", csrf.as_str()),
            ("fmu", "lib:VanDerPol"),
            ("stop_time", "40000"),
            ("output_interval", "20"),
            ("interface", "cs"),
            ("start.mu", "1.5"),
            ("output", "x0"),
        ],
    )
    .await;
    let id = location.rsplit('/').next().unwrap().to_string();
    wait_for_status(&app, &account.api_key, &id, "running").await;
    // The bar appears with the worker's first report.
    let deadline = Instant::now() + Duration::from_secs(30);
    let running = loop {
        let page = page_text(&client, app.at(&location)).await;
        if page.contains("<progress") || !page.contains("data-status=\"running\"") {
            break page;
        }
        assert!(Instant::now() < deadline, "no progress bar: {page}");
        tokio::time::sleep(Duration::from_millis(50)).await;
    };
    assert!(running.contains("id=\"run-progress-bar\""), "{running}");
    assert!(running.contains(" s of 40000 s ("), "{running}");
    assert!(running.contains("1 credit held."), "{running}");
    assert!(running.contains("id=\"cancel-run\""), "{running}");
    assert!(
        running.contains("<noscript>") && running.contains("does not update by itself"),
        "{running}"
    );
    // The settings beside the defaults they replaced: mu 1.5 (default 1), stop time 40000.
    assert!(running.contains("id=\"run-settings\""), "{running}");
    let mu_row = running
        .split("<tr")
        .find(|row| row.contains("<code>mu</code>"))
        .expect("a row for mu");
    assert!(
        mu_row.contains(">1.5 <") && mu_row.contains("changed"),
        "{mu_row}"
    );
    assert!(!running.contains("credit(s)"));

    let finished = app.finished_run(&account.api_key, &id).await;
    assert_eq!(finished["status"], "succeeded", "{finished}");
    let done = page_text(&client, app.at(&location)).await;
    assert!(done.contains("Charged 1 credit."), "{done}");
    assert!(
        done.contains("t = 40000 s of 40000 s (100 %)"),
        "the bar ends full: {done}"
    );
    assert!(done.contains("id=\"run-duration\""), "{done}");
    assert!(!done.contains("id=\"cancel-run\""), "{done}");
    assert!(!done.contains("does not update by itself"), "{done}");
}

#[tokio::test]
async fn cancel_on_the_page_refunds_a_queued_run_and_charges_a_running_one_as_the_api_does() {
    let app = app().await;
    let (account, client, csrf) = user(&app).await;
    let key = &account.api_key;
    // One worker: the first run holds it, the second waits.
    let first = app.create_run(key, &slow_run(1e6)).await;
    let first: Value = first.json().await.unwrap();
    let first = first["id"].as_str().unwrap().to_string();
    wait_for_status(&app, key, &first, "running").await;
    let second: Value = app
        .create_run(key, &slow_run(1e6))
        .await
        .json()
        .await
        .unwrap();
    let second = second["id"].as_str().unwrap().to_string();
    assert_eq!(status_of(&app, key, &second).await, "queued");
    assert_eq!(app.balance(key).await, 98);

    let back = post_form(
        &client,
        app.at(&format!("/runs/{second}/cancel")),
        &[("csrf_token", csrf.as_str())],
    )
    .await;
    assert_eq!(back, format!("/runs/{second}"));
    let page = page_text(&client, app.at(&back)).await;
    assert!(page.contains("data-status=\"cancelled\""), "{page}");
    assert!(
        page.contains("Not charged: refunded because it was cancelled before it started."),
        "{page}"
    );
    assert_eq!(app.balance(key).await, 99);

    post_form(
        &client,
        app.at(&format!("/runs/{first}/cancel")),
        &[("csrf_token", csrf.as_str())],
    )
    .await;
    let page = page_text(&client, app.at(&format!("/runs/{first}"))).await;
    assert!(page.contains("data-status=\"cancelled\""), "{page}");
    assert!(page.contains("Charged 1 credit."), "{page}");
    assert_eq!(app.balance(key).await, 99);

    // Without the CSRF token nothing is cancelled.
    let again: Value = app
        .create_run(key, &slow_run(1e6))
        .await
        .json()
        .await
        .unwrap();
    let again = again["id"].as_str().unwrap().to_string();
    let resp = client
        .post(app.at(&format!("/runs/{again}/cancel")))
        .form(&[("csrf_token", "not-the-token")])
        .send()
        .await
        .unwrap();
    assert_eq!(resp.status(), 403);
    assert_ne!(status_of(&app, key, &again).await, "cancelled");
    app.post(&format!("/api/v1/runs/{again}/cancel"), key).await;
}

#[tokio::test]
async fn run_again_starts_the_same_settings_once_per_click_and_edit_and_run_fills_the_form() {
    let app = app().await;
    let (account, client, csrf) = user(&app).await;
    let key = &account.api_key;
    let original = app
        .run(
            key,
            &json!({
                "fmu_id": "lib:BouncingBall",
                "stop_time": 1.5,
                "output_interval": 0.05,
                "start_values": { "e": 0.5 },
                "outputs": ["h"],
            }),
        )
        .await;
    let id = original["id"].as_str().unwrap();
    let page = page_text(&client, app.at(&format!("/runs/{id}"))).await;
    let attempt = page
        .split("name=\"attempt\" value=\"")
        .nth(1)
        .and_then(|rest| rest.split('"').next())
        .expect("the Run again form carries its attempt");
    let form = [("csrf_token", csrf.as_str()), ("attempt", attempt)];
    let url = app.at(&format!("/runs/{id}/again"));
    let first = post_form(&client, url.clone(), &form).await;
    let twice = post_form(&client, url.clone(), &form).await;
    assert_eq!(first, twice, "one click, one run");
    assert_ne!(first, format!("/runs/{id}"));
    let new_id = first.rsplit('/').next().unwrap();
    let rerun = app.finished_run(key, new_id).await;
    assert_eq!(rerun["status"], "succeeded", "{rerun}");
    assert_eq!(rerun["settings"], original["settings"]);
    assert_eq!(rerun["fmu_name"], original["fmu_name"]);
    assert_eq!(app.balance(key).await, 98, "two runs, two credits");
    let other = post_form(
        &client,
        url,
        &[("csrf_token", csrf.as_str()), ("attempt", "another-click")],
    )
    .await;
    assert_ne!(other, first, "a new click is a new run");

    // Edit and run: the form comes filled in with the run's settings.
    assert!(
        page.contains(&format!("href=\"/runs?from={id}#new-run\"")),
        "{page}"
    );
    let form = page_text(&client, app.at(&format!("/runs?from={id}"))).await;
    assert!(
        form.contains("name=\"stop_time\" value=\"1.5\""),
        "stop time: {form}"
    );
    assert!(
        form.contains("name=\"output_interval\" value=\"0.05\""),
        "{form}"
    );
    let e = form
        .split("<input")
        .find(|i| i.contains("name=\"start.e\""))
        .expect("a start value field for e");
    assert!(e.contains("value=\"0.5\""), "{e}");
    let output = |name: &str| {
        form.split("<input")
            .find(|i| i.contains("name=\"output\"") && i.contains(&format!("value=\"{name}\"")))
            .unwrap_or_else(|| panic!("an output box for {name}"))
            .contains("checked")
    };
    assert!(output("h") && !output("v"), "only h was recorded");
}

#[tokio::test]
async fn the_runs_list_filters_by_status_and_model_pages_newest_first_and_posts_picks_to_compare() {
    let app = app().await;
    let (account, client, _) = user(&app).await;
    let key = &account.api_key;
    let mut ids = Vec::new();
    for i in 0..27 {
        let model = if i % 3 == 0 {
            "lib:Dahlquist"
        } else {
            "lib:BouncingBall"
        };
        let body = json!({ "fmu_id": model, "stop_time": 0.1, "output_interval": 0.05 });
        let run = app.run(key, &body).await;
        assert_eq!(run["status"], "succeeded");
        ids.push(run["id"].as_str().unwrap().to_string());
    }
    // One that fails: out of time.
    let mut too_long = slow_run(1e6);
    too_long["fmu_id"] = json!("lib:Dahlquist");
    too_long["start_values"] = json!({});
    too_long["timeout"] = json!(1);
    let failed = app.run(key, &too_long).await;
    assert_eq!(failed["status"], "failed", "{failed}");
    let failed_id = failed["id"].as_str().unwrap().to_string();

    // Page 1: the 25 newest; Next keeps the (empty) filters.
    let page = page_text(&client, app.at("/runs")).await;
    assert!(page.contains("Runs 1–25 of 28"), "{page}");
    assert!(page.contains(&format!("id=\"run-{failed_id}\"")));
    assert!(
        !page.contains(&format!("id=\"run-{}\"", ids[0])),
        "the oldest is on page 2"
    );
    assert!(
        page.contains("id=\"runs-next\" href=\"/runs?page=2\""),
        "{page}"
    );
    let second = page_text(&client, app.at("/runs?page=2")).await;
    assert!(second.contains("Runs 26–28 of 28"), "{second}");
    assert!(second.contains(&format!("id=\"run-{}\"", ids[0])));
    assert!(second.contains("id=\"runs-previous\" href=\"/runs?page=1\""));
    assert!(!second.contains("id=\"runs-next\""));

    // By model: 9 Dahlquist runs that succeeded and 1 that did not, and the links keep it.
    let dahlquist = page_text(&client, app.at("/runs?model=lib%3ADahlquist")).await;
    assert!(dahlquist.contains("Runs 1–10 of 10"), "{dahlquist}");
    assert!(!dahlquist.contains(">lib:BouncingBall</td>"));
    assert!(
        dahlquist.contains("value=\"lib:Dahlquist\" selected"),
        "{dahlquist}"
    );
    let by_status = page_text(&client, app.at("/runs?status=succeeded&page=2")).await;
    assert!(by_status.contains("Runs 26–27 of 27"), "{by_status}");
    assert!(
        by_status.contains("href=\"/runs?status=succeeded&amp;page=1\""),
        "{by_status}"
    );
    let failed_only = page_text(&client, app.at("/runs?status=failed")).await;
    assert!(failed_only.contains("Runs 1–1 of 1"), "{failed_only}");
    assert!(failed_only.contains(&format!("id=\"run-{failed_id}\"")));

    // Picks: every row's box belongs to the compare form, a GET to /runs/compare.
    assert!(
        page.contains("<form id=\"compare-form\" method=\"get\" action=\"/runs/compare\">"),
        "{page}"
    );
    let last = ids.last().unwrap();
    assert!(
        page.contains(&format!(
            "type=\"checkbox\" name=\"run\" value=\"{last}\" form=\"compare-form\""
        )),
        "{page}"
    );
}

/// The New run form posted as a browser without JavaScript does: the answer's status and page.
async fn post_run_form(
    app: &TestApp,
    client: &reqwest::Client,
    form: &[(&str, &str)],
) -> (u16, String, Option<String>) {
    let resp = client
        .post(app.at("/runs"))
        .form(form)
        .send()
        .await
        .unwrap();
    let status = resp.status().as_u16();
    let location = resp
        .headers()
        .get("location")
        .map(|l| l.to_str().unwrap().to_string());
    (status, resp.text().await.unwrap(), location)
}

/// The `<input …>` or `<textarea …>…` of the page whose attributes contain `marker`.
fn element<'a>(page: &'a str, marker: &str) -> &'a str {
    page.split('<')
        .find(|e| (e.starts_with("input") || e.starts_with("textarea")) && e.contains(marker))
        .unwrap_or_else(|| panic!("no element with {marker}"))
}

#[tokio::test]
async fn the_run_form_shows_defaults_shapes_cost_and_balance_and_sends_only_what_changed() {
    let app = app().await;
    let (account, client, csrf) = user(&app).await;
    let page = page_text(&client, app.at("/runs?fmu=lib:BouncingBall")).await;
    // Models by name, not by hash; the defaults as values; the cost and balance beside Run.
    assert!(page.contains(">BouncingBall (library)</option>"), "{page}");
    assert!(
        page.contains(">BouncingBall (library, FMI 2)</option>"),
        "{page}"
    );
    assert!(element(&page, "id=\"start-e\"").contains("value=\"0.7\""));
    assert!(element(&page, "id=\"start-g\"").contains("value=\"9.81\""));
    assert!(
        page.contains("data-reset=\"start-e\" data-default=\"0.7\""),
        "{page}"
    );
    assert!(page.contains("Costs 1 credit"), "{page}");
    assert!(page.contains("You have 100 credits"), "{page}");

    // Sent as shown, e and g are not start values; a changed h is.
    let (status, body, location) = post_run_form(
        &app,
        &client,
        &[
            ("csrf_token", csrf.as_str()),
            ("fmu", "lib:BouncingBall"),
            ("stop_time", "1"),
            ("output_interval", "0.1"),
            ("interface", "cs"),
            ("start.e", "0.7"),
            ("start.g", "9.81"),
            ("start.h", "2"),
            ("output", "h"),
        ],
    )
    .await;
    assert_eq!(status, 303, "{body}");
    let id = location.unwrap().rsplit('/').next().unwrap().to_string();
    let run = app.finished_run(&account.api_key, &id).await;
    assert_eq!(
        run["settings"]["start_values"],
        json!([["h", "2"]]),
        "{run}"
    );

    // An array shows its shape (sized by a structural parameter) and takes a JSON array.
    let page = page_text(&client, app.at("/runs?fmu=lib:StateSpace")).await;
    assert!(page.contains("Float64[n×n]"), "A's shape: {page}");
    assert!(page.contains("Float64[n]"), "x0's shape: {page}");
    let (status, body, location) = post_run_form(
        &app,
        &client,
        &[
            ("csrf_token", csrf.as_str()),
            ("fmu", "lib:StateSpace"),
            ("stop_time", "1"),
            ("output_interval", "0.5"),
            ("start.x0", "[3, 2, 1]"),
            ("output", "x"),
        ],
    )
    .await;
    assert_eq!(status, 303, "{body}");
    let id = location.unwrap().rsplit('/').next().unwrap().to_string();
    let run = app.finished_run(&account.api_key, &id).await;
    assert_eq!(run["status"], "succeeded", "{run}");
    assert_eq!(
        run["settings"]["start_values"],
        json!([["x0", "[3, 2, 1]"]])
    );
}

#[tokio::test]
async fn a_run_form_with_bad_csv_inputs_or_a_misshapen_array_comes_back_with_each_problem_beside_its_field()
 {
    let app = app().await;
    let (account, client, csrf) = user(&app).await;

    // Input signals pasted as CSV: a cell that is not a number names its line.
    let page = page_text(&client, app.at("/runs?fmu=lib:Integrator")).await;
    assert!(page.contains("id=\"inputs_csv\""), "{page}");
    let pasted = "time,u\n0,1\n1,abc\n";
    let (status, body, _) = post_run_form(
        &app,
        &client,
        &[
            ("csrf_token", csrf.as_str()),
            ("fmu", "lib:Integrator"),
            ("stop_time", "2"),
            ("output_interval", "0.5"),
            ("inputs_csv", pasted),
            ("output", "y"),
        ],
    )
    .await;
    assert_eq!(status, 422);
    let error = body
        .split("id=\"error-inputs\"")
        .nth(1)
        .expect("the problem beside the CSV");
    assert!(
        error.contains("line 3: &#39;abc&#39; in column &#39;u&#39; is not a number")
            || error.contains("line 3: 'abc' in column 'u' is not a number"),
        "{error}"
    );
    assert!(
        element(&body, "id=\"inputs_csv\"").contains("time,u\n0,1\n1,abc"),
        "the pasted text is kept"
    );
    assert!(body.contains("nothing was charged"), "{body}");
    // An input the model does not have: the run's own check, beside the same field.
    let (status, body, _) = post_run_form(
        &app,
        &client,
        &[
            ("csrf_token", csrf.as_str()),
            ("fmu", "lib:Integrator"),
            ("stop_time", "2"),
            ("output_interval", "0.5"),
            ("inputs_csv", "time,w\n0,1\n2,3\n"),
            ("output", "y"),
        ],
    )
    .await;
    assert_eq!(status, 422);
    let error = body.split("id=\"error-inputs\"").nth(1).unwrap();
    assert!(error.contains("w"), "{error}");
    // A good one runs with the signal.
    let (status, body, location) = post_run_form(
        &app,
        &client,
        &[
            ("csrf_token", csrf.as_str()),
            ("fmu", "lib:Integrator"),
            ("stop_time", "2"),
            ("output_interval", "0.5"),
            ("inputs_csv", "time,u\n0,1\n2,1\n"),
            ("output", "y"),
        ],
    )
    .await;
    assert_eq!(status, 303, "{body}");
    let id = location.unwrap().rsplit('/').next().unwrap().to_string();
    let run = app.finished_run(&account.api_key, &id).await;
    assert_eq!(run["status"], "succeeded", "{run}");
    assert_eq!(run["settings"]["inputs"], json!(["u"]));

    // An array of the wrong size, beside its field, as typed.
    let (status, body, _) = post_run_form(
        &app,
        &client,
        &[
            ("csrf_token", csrf.as_str()),
            ("fmu", "lib:StateSpace"),
            ("stop_time", "1"),
            ("output_interval", "0.5"),
            ("start.x0", "[1, 2]"),
            ("output", "x"),
        ],
    )
    .await;
    assert_eq!(status, 422);
    assert!(body.contains("id=\"error-start_values.x0\""), "{body}");
    assert!(element(&body, "id=\"start-x0\"").contains("value=\"[1, 2]\""));

    // A model that is not there: the form again with the problem, never a bare error page.
    let (status, body, _) = post_run_form(
        &app,
        &client,
        &[
            ("csrf_token", csrf.as_str()),
            ("fmu", "lib:NoSuchModel"),
            ("stop_time", "1"),
        ],
    )
    .await;
    assert_eq!(status, 422);
    assert!(
        body.contains("<h1>Runs</h1>") && body.contains("<code>fmu</code>"),
        "{body}"
    );
    assert!(body.contains("id=\"run-fields\""));
    assert_eq!(
        app.balance(&account.api_key).await,
        99,
        "one run, one credit"
    );
}
