//! The run plots and the compare page as a browser without JavaScript and the plot's script
//! see them, over HTTP on the real server: `plot.json` groups results by unit, marks discrete
//! series and downsamples a long run keeping its extremes; the run page and the compare page
//! carry the server's SVG (one panel per unit); the compare page takes 2–5 of the user's own
//! runs and nothing else.

use serde_json::{Value, json};

use crate::common::{Account, Api, TestApp, browser, spawn_app};

/// A logged-in browser client.
async fn logged_in(app: &TestApp, account: &Account) -> reqwest::Client {
    let client = browser();
    app.browser_login(&client, account).await;
    client
}

async fn run_of(app: &TestApp, account: &Account, body: Value) -> String {
    let run = app.run(&account.api_key, &body).await;
    assert_eq!(run["status"], "succeeded", "{run}");
    run["id"].as_str().unwrap().to_string()
}

async fn get(client: &reqwest::Client, url: String) -> (u16, String) {
    let resp = client.get(url).send().await.unwrap();
    (resp.status().as_u16(), resp.text().await.unwrap())
}

/// The groups of a plot.json answer as (unit, [(series name, discrete)]).
fn shape(plot: &Value) -> Vec<(String, Vec<(String, bool)>)> {
    plot["groups"]
        .as_array()
        .unwrap()
        .iter()
        .map(|g| {
            let series = g["series"]
                .as_array()
                .unwrap()
                .iter()
                .map(|s| {
                    (
                        s["name"].as_str().unwrap().to_string(),
                        s["discrete"].as_bool().unwrap(),
                    )
                })
                .collect();
            (g["unit"].as_str().unwrap_or("").to_string(), series)
        })
        .collect()
}

#[tokio::test]
async fn plot_json_gives_one_group_per_unit_and_marks_discrete_series() {
    let app = spawn_app().await;
    let account = app.register().await;
    let client = logged_in(&app, &account).await;
    let ball = run_of(
        &app,
        &account,
        json!({"fmu_id": "lib:BouncingBall", "stop_time": 1, "output_interval": 0.1}),
    )
    .await;
    let (status, body) = get(&client, app.at(&format!("/runs/{ball}/plot.json"))).await;
    assert_eq!(status, 200, "{body}");
    let plot: Value = serde_json::from_str(&body).unwrap();
    assert_eq!(
        shape(&plot),
        [
            ("m".to_string(), vec![("h".to_string(), false)]),
            ("m/s".to_string(), vec![("v".to_string(), false)])
        ]
    );
    // 11 rows fit any width: every row, exactly as the result has them.
    assert_eq!(
        (plot["rows"].as_u64(), plot["downsampled"].as_bool()),
        (Some(11), Some(false))
    );
    let result: Value = serde_json::from_str(
        &get(&client, app.at(&format!("/runs/{ball}/result.json")))
            .await
            .1,
    )
    .unwrap();
    assert_eq!(plot["groups"][0]["time"], result["time"]);
    assert_eq!(
        plot["groups"][0]["series"][0]["values"],
        result["columns"]["h"]
    );
    assert_eq!(
        plot["groups"][1]["series"][0]["values"],
        result["columns"]["v"]
    );

    // Integers and floats the model declares discrete are steps; continuous floats are not.
    let through = run_of(
        &app,
        &account,
        json!({"fmu_id": "lib:Feedthrough", "stop_time": 1, "output_interval": 0.1,
               "outputs": ["Float64_continuous_output", "Float64_discrete_output", "Int32_output", "Boolean_output"]}),
    )
    .await;
    let (status, body) = get(
        &client,
        app.at(&format!(
            "/runs/{through}/plot.json?var=Int32_output&var=Float64_discrete_output&var=Float64_continuous_output"
        )),
    )
    .await;
    assert_eq!(status, 200, "{body}");
    let plot: Value = serde_json::from_str(&body).unwrap();
    let series: Vec<(String, bool)> = shape(&plot).into_iter().flat_map(|(_, s)| s).collect();
    assert_eq!(
        series,
        [
            ("Float64_continuous_output".to_string(), false),
            ("Float64_discrete_output".to_string(), true),
            ("Int32_output".to_string(), true),
        ],
        "only the variables asked for, discrete where the model says so"
    );
}

#[tokio::test]
async fn a_long_run_is_downsampled_to_the_width_keeping_its_extremes_in_time_order() {
    let app = spawn_app().await;
    let account = app.register().await;
    let client = logged_in(&app, &account).await;
    let id = run_of(
        &app,
        &account,
        json!({"fmu_id": "lib:BouncingBall", "stop_time": 3, "output_interval": 5e-5}),
    )
    .await;
    let result: Value = serde_json::from_str(
        &get(&client, app.at(&format!("/runs/{id}/result.json")))
            .await
            .1,
    )
    .unwrap();
    let rows = result["time"].as_array().unwrap().len();
    assert!(rows > 60_000, "{rows}");
    let width = 200;
    let (status, body) = get(
        &client,
        app.at(&format!("/runs/{id}/plot.json?width={width}")),
    )
    .await;
    assert_eq!(status, 200, "{body}");
    let plot: Value = serde_json::from_str(&body).unwrap();
    assert_eq!(plot["rows"].as_u64(), Some(rows as u64));
    assert_eq!(plot["downsampled"], true);
    assert!(body.len() < 60_000, "small: {} bytes", body.len());
    let numbers = |v: &Value| -> Vec<f64> {
        v.as_array()
            .unwrap()
            .iter()
            .map(|x| x.as_f64().unwrap())
            .collect()
    };
    for (group, name) in [(0, "h"), (1, "v")] {
        let time = numbers(&plot["groups"][group]["time"]);
        let values = numbers(&plot["groups"][group]["series"][0]["values"]);
        assert_eq!(plot["groups"][group]["series"][0]["name"], name);
        // One series: at most first, lowest, highest and last of each pixel column.
        assert!(
            time.len() <= 4 * width && time.len() >= width,
            "{}",
            time.len()
        );
        assert!(time.windows(2).all(|w| w[0] <= w[1]), "in time order");
        let all = numbers(&result["columns"][name]);
        let all_time = numbers(&result["time"]);
        let max = all.iter().copied().fold(f64::MIN, f64::max);
        let min = all.iter().copied().fold(f64::MAX, f64::min);
        assert!(
            values.contains(&max) && values.contains(&min),
            "{name}: extremes kept"
        );
        // Every point is a real sample of the result, at its own time.
        for (t, v) in time.iter().zip(&values).step_by(37) {
            let row = all_time.iter().position(|x| x == t).unwrap();
            let same_time: Vec<f64> = (row..all_time.len())
                .take_while(|&r| all_time[r] == *t)
                .map(|r| all[r])
                .collect();
            assert!(same_time.contains(v), "{name} at {t}: {v} is not a sample");
        }
        assert_eq!(
            (time[0], *time.last().unwrap()),
            (all_time[0], *all_time.last().unwrap())
        );
    }
}

#[tokio::test]
async fn plot_json_refuses_what_it_cannot_draw_and_shows_no_one_elses_run() {
    let app = spawn_app().await;
    let account = app.register().await;
    let client = logged_in(&app, &account).await;
    let id = run_of(
        &app,
        &account,
        json!({"fmu_id": "lib:BouncingBall", "stop_time": 1}),
    )
    .await;
    for query in [
        "var=nothing",
        "var=h&var=g",
        "width=0",
        "width=5000",
        "width=wide",
    ] {
        let (status, body) = get(&client, app.at(&format!("/runs/{id}/plot.json?{query}"))).await;
        assert_eq!(status, 422, "{query}: {body}");
    }
    let (_, body) = get(
        &client,
        app.at(&format!("/runs/{id}/plot.json?var=nothing")),
    )
    .await;
    assert!(
        body.contains("nothing"),
        "the refusal names the variable: {body}"
    );
    let other = app.register().await;
    let stranger = logged_in(&app, &other).await;
    for path in ["plot.json", "plot.svg"] {
        let (status, _) = get(&stranger, app.at(&format!("/runs/{id}/{path}"))).await;
        assert_eq!(status, 404, "{path}");
    }
}

#[tokio::test]
async fn without_javascript_the_run_page_has_an_svg_panel_per_unit_and_an_svg_export() {
    let app = spawn_app().await;
    let account = app.register().await;
    let client = logged_in(&app, &account).await;
    let id = run_of(
        &app,
        &account,
        json!({"fmu_id": "lib:BouncingBall", "stop_time": 2, "output_interval": 0.01}),
    )
    .await;
    let (status, page) = get(&client, app.at(&format!("/runs/{id}"))).await;
    assert_eq!(status, 200);
    let plot = &page[page.find("id=\"run-plot\"").expect("the plot box")..];
    assert!(
        plot.contains(&format!("/runs/{id}/plot.json")),
        "its data source"
    );
    assert_eq!(
        plot.matches("<svg class=\"chart chart-line\"").count(),
        2,
        "h and v apart"
    );
    assert!(
        plot.contains(">[m]<") && plot.contains(">[m/s]<"),
        "each axis names its unit"
    );
    assert!(
        plot.contains(">h [m]<") && plot.contains(">v [m/s]<"),
        "units in the legend"
    );
    // The plotting library is loaded by the pages that plot, not by every page.
    assert!(page.contains("uPlot.iife.min.js") && page.contains("plot.js"));
    let (_, dashboard) = get(&client, app.at("/dashboard")).await;
    assert!(
        !dashboard.contains("uPlot"),
        "the dashboard does not load uPlot"
    );
    // The library and our glue are served from our origin.
    for asset in ["uPlot.iife.min.js", "uPlot.min.css", "plot.js"] {
        let (status, body) = get(&client, app.at(&format!("/assets/{asset}"))).await;
        assert_eq!(status, 200, "{asset}");
        assert!(body.len() > 1000, "{asset}");
    }

    let resp = client
        .get(app.at(&format!("/runs/{id}/plot.svg")))
        .send()
        .await
        .unwrap();
    assert_eq!(resp.status(), 200);
    assert_eq!(resp.headers()["content-type"], "image/svg+xml");
    let svg = resp.text().await.unwrap();
    assert!(
        svg.starts_with("<svg xmlns=\"http://www.w3.org/2000/svg\""),
        "{}",
        &svg[..100]
    );
    assert_eq!(
        svg.matches("<svg ").count(),
        3,
        "a document holding two panels"
    );
    assert!(
        svg.contains("y=\"360\""),
        "the second panel below the first"
    );
}

#[tokio::test]
async fn a_discrete_float_is_drawn_as_steps_in_the_server_svg() {
    let app = spawn_app().await;
    let account = app.register().await;
    let client = logged_in(&app, &account).await;
    let id = run_of(
        &app,
        &account,
        json!({"fmu_id": "lib:Feedthrough", "stop_time": 1, "output_interval": 0.1,
               "outputs": ["Int32_output"],
               "inputs": [{ "name": "Int32_input", "t": [0, 0.3, 0.3, 0.7, 0.7, 1], "u": [0, 0, 5, 5, -2, -2] }]}),
    )
    .await;
    let resp = client
        .get(app.at(&format!("/runs/{id}/plot.svg")))
        .send()
        .await
        .unwrap();
    let svg = resp.text().await.unwrap();
    let d = svg
        .split("class=\"series series-0\" d=\"")
        .nth(1)
        .and_then(|rest| rest.split('"').next())
        .expect("the series path");
    // Steps: every move along x keeps y, every move along y keeps x.
    let points: Vec<(f64, f64)> = d
        .split(['M', 'L'])
        .filter(|p| !p.is_empty())
        .map(|p| {
            let (x, y) = p.split_once(',').unwrap();
            (
                x.parse().unwrap(),
                y.trim_end_matches("h0").parse().unwrap(),
            )
        })
        .collect();
    let levels: std::collections::BTreeSet<i64> = points.iter().map(|p| p.1 as i64).collect();
    assert!(levels.len() >= 3, "the input's three values are drawn: {d}");
    assert!(
        points
            .windows(2)
            .all(|w| w[0].0 == w[1].0 || w[0].1 == w[1].1),
        "no ramps: {d}"
    );
}

#[tokio::test]
async fn the_compare_page_sets_two_runs_side_by_side_and_overlays_them_without_javascript() {
    let app = spawn_app().await;
    let account = app.register().await;
    let client = logged_in(&app, &account).await;
    let a = run_of(
        &app,
        &account,
        json!({"fmu_id": "lib:BouncingBall", "stop_time": 2, "start_values": {"e": 0.7}}),
    )
    .await;
    let b = run_of(
        &app,
        &account,
        json!({"fmu_id": "lib:BouncingBall", "stop_time": 3, "start_values": {"e": 0.5}}),
    )
    .await;
    let (status, page) = get(&client, app.at(&format!("/runs/compare?run={a}&run={b}"))).await;
    assert_eq!(status, 200, "{page}");
    assert_eq!(page.matches("<h1").count(), 1);
    let table = &page[page.find("id=\"compare-settings\"").unwrap()..];
    let table = &table[..table.find("</table>").unwrap()];
    assert!(table.contains(&a) && table.contains(&b), "both runs");
    let row = |label: &str| -> String {
        let start = table
            .find(&format!(">{label}<"))
            .unwrap_or_else(|| panic!("{label}"));
        let row_start = table[..start].rfind("<tr").unwrap();
        table[row_start..start + table[start..].find("</tr>").unwrap()].to_string()
    };
    assert!(row("Stop time [s]").contains("class=\"differs\""));
    assert!(
        row("Stop time [s]").contains("<mark>2</mark>")
            && row("Stop time [s]").contains("<mark>3</mark>")
    );
    assert!(
        row("Start value e").contains("<mark>0.7</mark>")
            && row("Start value e").contains("<mark>0.5</mark>")
    );
    assert!(
        !row("Model").contains("differs"),
        "the same model is not marked"
    );
    assert!(!row("Interface").contains("<mark>"));
    // The overlay: a variable form and the server's SVG, a curve per run and variable.
    assert!(
        page.contains("name=\"var\" value=\"h\" checked"),
        "h is shown by default"
    );
    let short = |id: &str| format!("run {}", &id["run_".len().."run_".len() + 6]);
    for id in [&a, &b] {
        assert!(
            page.contains(&format!(">{} · h [m]<", short(id))),
            "{id}'s h in the legend"
        );
        assert!(
            page.contains(&format!("/runs/{id}/plot.json?var=h")),
            "{id}'s data"
        );
    }
    // Choosing only v (the form's GET) overlays v alone.
    let (status, page) = get(
        &client,
        app.at(&format!("/runs/compare?run={a}&run={b}&var=v")),
    )
    .await;
    assert_eq!(status, 200);
    assert!(page.contains(&format!(">{} · v [m/s]<", short(&a))));
    assert!(!page.contains(&format!(">{} · h [m]<", short(&a))));
    let resp = client
        .get(app.at(&format!("/runs/compare/plot.svg?run={a}&run={b}&var=v")))
        .send()
        .await
        .unwrap();
    assert_eq!(resp.status(), 200);
    assert_eq!(resp.headers()["content-type"], "image/svg+xml");
    assert!(
        resp.text()
            .await
            .unwrap()
            .contains(&format!("{} · v [m/s]", short(&b)))
    );
}

#[tokio::test]
async fn the_compare_page_takes_two_to_five_of_the_users_own_runs_and_says_why_not() {
    let app = spawn_app().await;
    let account = app.register().await;
    let client = logged_in(&app, &account).await;
    let mut ids = Vec::new();
    for _ in 0..6 {
        ids.push(
            run_of(
                &app,
                &account,
                json!({"fmu_id": "lib:BouncingBall", "stop_time": 0.5}),
            )
            .await,
        );
    }
    let other = app.register().await;
    let theirs = run_of(
        &app,
        &other,
        json!({"fmu_id": "lib:BouncingBall", "stop_time": 0.5}),
    )
    .await;
    let query = |runs: &[&String]| -> String {
        runs.iter()
            .map(|r| format!("run={r}"))
            .collect::<Vec<_>>()
            .join("&")
    };
    let five: Vec<&String> = ids.iter().take(5).collect();
    let (status, _) = get(&client, app.at(&format!("/runs/compare?{}", query(&five)))).await;
    assert_eq!(status, 200, "five runs");
    let choose = "Choose 2 to 5".to_string();
    let cases: Vec<(String, u16, String)> = vec![
        (query(&[&ids[0]]), 400, choose.clone()),
        (query(&[&ids[0], &ids[0]]), 400, choose.clone()),
        (query(&ids.iter().collect::<Vec<_>>()), 400, choose.clone()),
        (String::new(), 400, choose),
        (
            format!("{}&run=run_nosuchrun", query(&[&ids[0]])),
            404,
            "no run run_nosuchrun".into(),
        ),
        (query(&[&ids[0], &theirs]), 404, format!("no run {theirs}")),
        (
            format!("{}&var=g", query(&[&ids[0], &ids[1]])),
            400,
            "'g' is not a numeric result".into(),
        ),
    ];
    for (q, want, says) in &cases {
        let (status, page) = get(&client, app.at(&format!("/runs/compare?{q}"))).await;
        assert_eq!(status, *want, "{q}: {page}");
        assert!(page.contains(says), "{q}: {page}");
    }
}
