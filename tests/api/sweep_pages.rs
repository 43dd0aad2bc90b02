//! The dashboard's sweep pages as a browser without JavaScript sees them, over HTTP on the
//! real server: the New sweep form's Quote (nothing reserved) and Start (one sweep per form
//! attempt), a refused form coming back with what was typed, the sweep's page with its
//! cases sorted by any column, the CSV and Parquet downloads, the scatter plot, the overlay
//! of kept trajectories, the live event stream's HTML, and nothing of another user's.

use std::time::{Duration, Instant};

use parquet::basic::{LogicalType, Repetition, Type as Physical};
use parquet::file::reader::{FileReader, SerializedFileReader};
use parquet::record::Field;
use serde_json::Value;

use crate::common::{Account, Api, TestApp, browser, spawn_app, spawn_app_with};

/// A logged-in browser client and its CSRF token.
async fn logged_in(app: &TestApp, account: &Account) -> (reqwest::Client, String) {
    let client = browser();
    let csrf = app.browser_login(&client, account).await;
    (client, csrf)
}

async fn get(client: &reqwest::Client, url: String) -> (u16, String) {
    let resp = client.get(url).send().await.unwrap();
    (resp.status().as_u16(), resp.text().await.unwrap())
}

/// The New sweep form of a BouncingBall grid over `e`, with two KPIs, as a browser sends it.
fn ball_form<'a>(csrf: &'a str, action: &'a str, attempt: &'a str) -> Vec<(&'a str, &'a str)> {
    vec![
        ("csrf_token", csrf),
        ("attempt", attempt),
        ("name", "restitution"),
        ("fmu", "lib:BouncingBall"),
        ("stop_time", "1.5"),
        ("output_interval", "0.01"),
        ("start_values", ""),
        ("design", "grid"),
        ("grid", "e = 0.5 : 0.9 : 5"),
        ("lhs_n", ""),
        ("lhs", ""),
        ("kpis", "mean h\nfirst_crossing h 0.5"),
        ("trajectories", "on"),
        ("action", action),
    ]
}

async fn post_form(
    app: &TestApp,
    client: &reqwest::Client,
    form: &[(&str, &str)],
) -> reqwest::Response {
    client
        .post(app.at("/sweeps"))
        .form(form)
        .send()
        .await
        .unwrap()
}

/// Polls the sweep (over the API) until it has ended.
async fn finished(app: &TestApp, key: &str, id: &str) -> Value {
    let deadline = Instant::now() + Duration::from_secs(300);
    loop {
        let sweep = app.get_json(&format!("/api/v1/sweeps/{id}"), key).await;
        if sweep["finished_at"].is_string() {
            return sweep;
        }
        assert!(Instant::now() < deadline, "sweep {id} did not end: {sweep}");
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
}

/// The case indexes of the cases table's rows, in the page's order.
fn row_indexes(page: &str) -> Vec<u64> {
    page.split("data-index=\"")
        .skip(1)
        .map(|rest| rest.split('"').next().unwrap().parse().unwrap())
        .collect()
}

/// Starts the BouncingBall sweep from the form (Quote first) and waits for its end: the
/// client, the sweep's id, and its cases as the API lists them.
async fn started_from_the_form(
    app: &TestApp,
    account: &Account,
) -> (reqwest::Client, String, Vec<Value>) {
    let (client, csrf) = logged_in(app, account).await;
    let resp = post_form(app, &client, &ball_form(&csrf, "start", "attempt-1")).await;
    assert_eq!(resp.status(), 303, "{}", resp.text().await.unwrap());
    let location = resp.headers()["location"].to_str().unwrap().to_string();
    let id = location.strip_prefix("/sweeps/").unwrap().to_string();
    finished(app, &account.api_key, &id).await;
    let cases = app
        .get_json(&format!("/api/v1/sweeps/{id}/cases"), &account.api_key)
        .await["cases"]
        .as_array()
        .unwrap()
        .clone();
    (client, id, cases)
}

#[tokio::test]
async fn quote_reserves_nothing_and_start_makes_one_sweep_per_form_attempt() {
    let app = spawn_app().await;
    let account = app.register().await;
    let key = &account.api_key;
    let (client, csrf) = logged_in(&app, &account).await;
    let (status, page) = get(&client, app.at("/sweeps")).await;
    assert_eq!(status, 200);
    assert!(
        page.contains("New sweep") && page.contains("href=\"/sweeps\""),
        "{page}"
    );
    let before = app.balance(key).await;

    let resp = post_form(&app, &client, &ball_form(&csrf, "quote", "a")).await;
    assert_eq!(resp.status(), 200);
    let page = resp.text().await.unwrap();
    assert!(
        page.contains("<strong id=\"quote-cases\">5 cases</strong>"),
        "{page}"
    );
    assert!(page.contains("You can afford it"), "{page}");
    // The first cases, as the design expands them; what was typed is kept.
    for e in ["0.5", "0.6", "0.7", "0.8", "0.9"] {
        assert!(page.contains(&format!("<td>{e}</td>")), "{e}: {page}");
    }
    assert!(page.contains("e = 0.5 : 0.9 : 5</textarea>"), "{page}");
    assert_eq!(app.balance(key).await, before, "a quote reserves nothing");
    let listed = app.get_json("/api/v1/sweeps", key).await;
    assert_eq!(listed["sweeps"].as_array().unwrap().len(), 0, "{listed}");

    // The same rendered form sent twice (a double click) starts one sweep.
    let first = post_form(&app, &client, &ball_form(&csrf, "start", "attempt-7")).await;
    let second = post_form(&app, &client, &ball_form(&csrf, "start", "attempt-7")).await;
    assert_eq!(first.status(), 303);
    assert_eq!(second.status(), 303);
    let location = first.headers()["location"].to_str().unwrap().to_string();
    assert_eq!(second.headers()["location"], location.as_str());
    let listed = app.get_json("/api/v1/sweeps", key).await;
    assert_eq!(listed["sweeps"].as_array().unwrap().len(), 1, "{listed}");
    let id = location.strip_prefix("/sweeps/").unwrap();
    let sweep = finished(&app, key, id).await;
    assert_eq!(sweep["status"], "completed", "{sweep}");
    assert_eq!(sweep["name"], "restitution");
    let per_case = sweep["credits_per_case"].as_i64().unwrap();
    assert_eq!(app.balance(key).await, before - 5 * per_case);

    // Its page: the bar at its end, the design as typed, the list links it.
    let (status, page) = get(&client, app.at(&location)).await;
    assert_eq!(status, 200);
    assert!(
        page.contains("<progress id=\"sweep-progress-bar\" max=\"5\" value=\"5\">"),
        "{page}"
    );
    assert!(page.contains("5 of 5 cases done"), "{page}");
    assert!(page.contains("<code>e = 0.5 : 0.9 : 5</code>"), "{page}");
    assert!(
        !page.contains("sse-connect"),
        "an ended sweep is not followed: {page}"
    );
    let (_, list) = get(&client, app.at("/sweeps")).await;
    assert!(list.contains(&format!("href=\"/sweeps/{id}\"")), "{list}");
    assert!(list.contains("restitution"), "{list}");
}

#[tokio::test]
async fn a_refused_form_comes_back_422_with_what_was_typed_and_each_problem() {
    let app = spawn_app().await;
    let account = app.register().await;
    let (client, csrf) = logged_in(&app, &account).await;
    let before = app.balance(&account.api_key).await;
    let mut form = ball_form(&csrf, "start", "x");
    form.retain(|(k, _)| *k != "grid" && *k != "kpis");
    form.push(("grid", "e = 0.5, 0.7\ng = 9 : ten : 3"));
    form.push(("kpis", "max h\nhighest h"));
    let resp = post_form(&app, &client, &form).await;
    assert_eq!(resp.status(), 422);
    let page = resp.text().await.unwrap();
    assert!(page.contains("line 2: a range is"), "{page}");
    assert!(
        page.contains("line 2: write &#39;kind variable&#39;")
            || page.contains("line 2: write 'kind variable'"),
        "{page}"
    );
    assert!(
        page.contains("e = 0.5, 0.7\ng = 9 : ten : 3</textarea>"),
        "{page}"
    );
    assert!(page.contains("max h\nhighest h</textarea>"), "{page}");
    assert!(page.contains("value=\"restitution\""), "{page}");

    // The domain's check of the cases against the model comes back the same way.
    let mut form = ball_form(&csrf, "start", "y");
    form.retain(|(k, _)| *k != "grid");
    form.push(("grid", "no_such_variable = 1, 2"));
    let resp = post_form(&app, &client, &form).await;
    assert_eq!(resp.status(), 422);
    let page = resp.text().await.unwrap();
    assert!(page.contains("no_such_variable"), "{page}");
    assert!(page.contains("id=\"sweep-problems\""), "{page}");
    assert_eq!(app.balance(&account.api_key).await, before);
    let listed = app.get_json("/api/v1/sweeps", &account.api_key).await;
    assert_eq!(listed["sweeps"].as_array().unwrap().len(), 0);
}

#[tokio::test]
async fn the_cases_table_sorts_by_any_column_and_the_downloads_hold_every_case() {
    let app = spawn_app().await;
    let account = app.register().await;
    let (client, id, cases) = started_from_the_form(&app, &account).await;
    assert_eq!(cases.len(), 5);
    let mean_h = |c: &Value| c["kpis"]["mean(h)"].as_f64().unwrap();

    // By a KPI, descending: the rows in the order of their values, marked for assistive tech.
    let (status, page) = get(&client, app.at(&format!("/sweeps/{id}?sort=k0&dir=desc"))).await;
    assert_eq!(status, 200);
    let mut expected: Vec<&Value> = cases.iter().collect();
    expected.sort_by(|a, b| mean_h(b).total_cmp(&mean_h(a)));
    let expected: Vec<u64> = expected
        .iter()
        .map(|c| c["index"].as_u64().unwrap())
        .collect();
    assert_eq!(row_indexes(&page), expected, "{page}");
    assert_ne!(
        expected,
        [0, 1, 2, 3, 4],
        "the KPI order differs from the index order"
    );
    assert!(page.contains("aria-sort=\"descending\""), "{page}");
    // By a parameter, descending: e from 0.9 down.
    let (_, page) = get(&client, app.at(&format!("/sweeps/{id}?sort=p0&dir=desc"))).await;
    assert_eq!(row_indexes(&page), [4, 3, 2, 1, 0]);
    let (_, page) = get(&client, app.at(&format!("/sweeps/{id}?sort=index&dir=asc"))).await;
    assert_eq!(row_indexes(&page), [0, 1, 2, 3, 4]);
    assert!(page.contains("aria-sort=\"ascending\""), "{page}");

    // CSV: the API's file.
    let resp = client
        .get(app.at(&format!("/sweeps/{id}/cases.csv")))
        .send()
        .await
        .unwrap();
    assert_eq!(resp.status(), 200);
    let csv = resp.text().await.unwrap();
    let mut lines = csv.lines();
    assert_eq!(
        lines.next().unwrap(),
        "index,status,e,mean(h),\"first_crossing(h, 0.5)\",error"
    );
    assert_eq!(lines.count(), 5);

    // Parquet: typed columns, every case, equal to the API's values.
    let resp = client
        .get(app.at(&format!("/sweeps/{id}/cases.parquet")))
        .send()
        .await
        .unwrap();
    assert_eq!(resp.status(), 200);
    let bytes = resp.bytes().await.unwrap();
    let reader = SerializedFileReader::new(bytes).unwrap();
    let schema = reader.metadata().file_metadata().schema_descr();
    let types: Vec<(String, Physical, Option<LogicalType>, Repetition)> = schema
        .columns()
        .iter()
        .map(|c| {
            let t = c.self_type();
            (
                c.name().to_string(),
                c.physical_type(),
                c.logical_type_ref().cloned(),
                t.get_basic_info().repetition(),
            )
        })
        .collect();
    let names: Vec<&str> = types.iter().map(|t| t.0.as_str()).collect();
    assert_eq!(
        names,
        [
            "index",
            "status",
            "e",
            "mean(h)",
            "first_crossing(h, 0.5)",
            "error"
        ]
    );
    assert_eq!(types[0].1, Physical::INT64);
    assert_eq!(
        (types[1].1, types[1].2.clone()),
        (Physical::BYTE_ARRAY, Some(LogicalType::String))
    );
    assert_eq!(types[2].1, Physical::DOUBLE);
    assert_eq!(
        (types[3].1, types[3].3),
        (Physical::DOUBLE, Repetition::OPTIONAL)
    );
    assert_eq!(
        (types[5].1, types[5].3),
        (Physical::BYTE_ARRAY, Repetition::OPTIONAL)
    );
    let rows: Vec<Vec<Field>> = reader
        .get_row_iter(None)
        .unwrap()
        .map(|r| {
            r.unwrap()
                .get_column_iter()
                .map(|(_, f)| f.clone())
                .collect()
        })
        .collect();
    assert_eq!(rows.len(), 5);
    for (row, case) in rows.iter().zip(&cases) {
        assert_eq!(row[0], Field::Long(case["index"].as_i64().unwrap()));
        assert_eq!(row[1], Field::Str("succeeded".into()));
        assert_eq!(row[2], Field::Double(case["values"]["e"].as_f64().unwrap()));
        assert_eq!(row[3], Field::Double(mean_h(case)));
        match case["kpis"]["first_crossing(h, 0.5)"].as_f64() {
            Some(t) => assert_eq!(row[4], Field::Double(t)),
            None => assert_eq!(row[4], Field::Null),
        }
        assert_eq!(row[5], Field::Null);
    }
}

#[tokio::test]
async fn the_scatter_plots_a_kpi_against_a_parameter_and_the_overlay_draws_kept_cases() {
    let app = spawn_app().await;
    let account = app.register().await;
    let (client, id, _) = started_from_the_form(&app, &account).await;

    let (status, page) = get(&client, app.at(&format!("/sweeps/{id}?x=e&y=0"))).await;
    assert_eq!(status, 200);
    assert!(page.contains("5 cases plotted"), "{page}");
    assert!(page.contains("mean(h) [m]"), "{page}");
    let resp = client
        .get(app.at(&format!("/sweeps/{id}/scatter.svg?x=e&y=1")))
        .send()
        .await
        .unwrap();
    assert_eq!(resp.status(), 200);
    assert_eq!(resp.headers()["content-type"], "image/svg+xml");
    let svg = resp.text().await.unwrap();
    assert!(
        svg.starts_with("<svg xmlns=\"http://www.w3.org/2000/svg\""),
        "{svg}"
    );
    assert!(svg.contains("first_crossing(h, 0.5) against e"), "{svg}");
    assert_eq!(svg.matches("<circle").count(), 5, "{svg}");

    let (status, page) = get(
        &client,
        app.at(&format!("/sweeps/{id}/overlay?case=0&case=4&variable=h")),
    )
    .await;
    assert_eq!(status, 200, "{page}");
    assert!(page.contains("h of 2 cases"), "{page}");
    assert!(
        page.contains(">case 0</text>") && page.contains(">case 4</text>"),
        "{page}"
    );
    assert_eq!(page.matches("class=\"series series-").count(), 2, "{page}");
    let eleven: String = (0..11).map(|i| format!("case={i}&")).collect();
    let (status, page) = get(&client, app.at(&format!("/sweeps/{id}/overlay?{eleven}"))).await;
    assert_eq!(status, 422);
    assert!(page.contains("Pick 1 to 10 cases"), "{page}");

    // The event stream of an ended sweep: its bar and its end, as HTML for htmx to swap.
    let resp = client
        .get(app.at(&format!("/sweeps/{id}/events")))
        .send()
        .await
        .unwrap();
    assert_eq!(resp.status(), 200);
    assert!(
        resp.headers()["content-type"]
            .to_str()
            .unwrap()
            .starts_with("text/event-stream")
    );
    let stream = resp.text().await.unwrap();
    assert!(stream.contains("event: progress\n"), "{stream}");
    assert!(stream.contains("event: end\n"), "{stream}");
    assert!(
        stream.contains("<progress id=\"sweep-progress-bar\" max=\"5\" value=\"5\">"),
        "{stream}"
    );
}

#[tokio::test]
async fn another_users_sweep_is_not_found_and_a_sweep_without_trajectories_says_so() {
    let app = spawn_app().await;
    let owner = app.register().await;
    let (client, csrf) = logged_in(&app, &owner).await;
    let mut form = ball_form(&csrf, "start", "z");
    form.retain(|(k, _)| *k != "trajectories");
    let resp = post_form(&app, &client, &form).await;
    assert_eq!(resp.status(), 303);
    let location = resp.headers()["location"].to_str().unwrap().to_string();
    let id = location.strip_prefix("/sweeps/").unwrap().to_string();
    finished(&app, &owner.api_key, &id).await;
    let (status, page) = get(&client, app.at(&format!("/sweeps/{id}/overlay?case=0"))).await;
    assert_eq!(status, 409);
    assert!(page.contains("This sweep kept no trajectories"), "{page}");

    let other = app.register().await;
    let (stranger, stranger_csrf) = logged_in(&app, &other).await;
    for path in [
        format!("/sweeps/{id}"),
        format!("/sweeps/{id}/events"),
        format!("/sweeps/{id}/cases.csv"),
        format!("/sweeps/{id}/cases.parquet"),
        format!("/sweeps/{id}/scatter.svg"),
        format!("/sweeps/{id}/overlay?case=0"),
    ] {
        let (status, _) = get(&stranger, app.at(&path)).await;
        assert_eq!(status, 404, "{path}");
    }
    let resp = stranger
        .post(app.at(&format!("/sweeps/{id}/cancel")))
        .form(&[("csrf_token", stranger_csrf.as_str())])
        .send()
        .await
        .unwrap();
    assert_eq!(resp.status(), 404);
    let (_, list) = get(&stranger, app.at("/sweeps")).await;
    assert!(!list.contains(&id), "{list}");
    // A page without a session goes to the login page.
    let resp = browser().get(app.at(&location)).send().await.unwrap();
    assert_eq!(resp.status(), 303);
}

#[tokio::test]
async fn a_running_sweep_page_follows_its_events_and_cancel_refunds_the_cases_not_started() {
    let app = spawn_app_with(|c| c.free_credits = 3000u32.into()).await;
    let account = app.register().await;
    let key = &account.api_key;
    let (client, csrf) = logged_in(&app, &account).await;
    let form = [
        ("csrf_token", csrf.as_str()),
        ("attempt", "big"),
        ("fmu", "lib:Dahlquist"),
        ("stop_time", "1"),
        ("output_interval", "0.1"),
        ("design", "grid"),
        ("grid", "k = 0.5 : 2.0 : 3000"),
        ("kpis", "final x"),
        ("action", "start"),
    ];
    let resp = post_form(&app, &client, &form).await;
    assert_eq!(resp.status(), 303);
    let location = resp.headers()["location"].to_str().unwrap().to_string();
    let id = location.strip_prefix("/sweeps/").unwrap().to_string();
    let (status, page) = get(&client, app.at(&location)).await;
    assert_eq!(status, 200);
    assert!(
        page.contains(&format!(
            "hx-ext=\"sse\" sse-connect=\"/sweeps/{id}/events\" sse-close=\"end\""
        )),
        "{page}"
    );
    assert!(page.contains("sse-swap=\"progress,end\""), "{page}");
    assert!(page.contains("hx-trigger=\"sse:end\""), "{page}");
    assert!(page.contains("/assets/sse.js"), "{page}");
    assert!(
        page.contains("The cases running now are charged (they used a worker); the cases not started are refunded."),
        "{page}"
    );
    assert!(page.contains("Reload"), "{page}");

    // The first event is the snapshot's bar, as HTML.
    let mut events = client
        .get(app.at(&format!("/sweeps/{id}/events")))
        .send()
        .await
        .unwrap();
    assert_eq!(events.status(), 200);
    let first = String::from_utf8(events.chunk().await.unwrap().unwrap().to_vec()).unwrap();
    assert!(first.starts_with("event: progress\n"), "{first}");
    assert!(
        first.contains("<progress id=\"sweep-progress-bar\" max=\"3000\""),
        "{first}"
    );
    drop(events);

    let resp = client
        .post(app.at(&format!("/sweeps/{id}/cancel")))
        .form(&[("csrf_token", csrf.as_str())])
        .send()
        .await
        .unwrap();
    assert_eq!(resp.status(), 303);
    assert_eq!(resp.headers()["location"], location.as_str());
    let sweep = finished(&app, key, &id).await;
    assert_eq!(sweep["status"], "cancelled", "{sweep}");
    let charged = sweep["credits_charged"].as_i64().unwrap();
    assert!(
        charged < 3000,
        "the cases not started were refunded: {sweep}"
    );
    assert_eq!(app.balance(key).await, 3000 - charged, "{sweep}");
    let (_, page) = get(&client, app.at(&location)).await;
    assert!(page.contains("data-status=\"cancelled\""), "{page}");
    assert!(!page.contains("id=\"cancel-sweep\""), "{page}");
}
