//! Non-finite values are legal simulation results: a run whose outputs overflow to ±∞ or NaN
//! succeeds, and its results are served by name in every answer that carries them (JSON:
//! `"NaN"`, `"Infinity"`, `"-Infinity"`; CSV: `nan`, `inf`, `-inf` as FMPy writes them), in
//! the run's answer, from `result_url` (again and again), on the compatibility route and on
//! the dashboard, whose plot leaves them out as gaps.

use serde_json::{Value, json};

use crate::common::{Api, TestApp, browser, spawn_app};

/// Van der Pol with a large damping, integrated by forward Euler at a step far too long for
/// it: the states grow past 1e300 and overflow by t = 2 (to +∞, then ∞ − ∞ = NaN).
fn van_der_pol_blowing_up() -> Value {
    json!({
        "fmu_id": "lib:VanDerPol",
        "interface": "me",
        "solver": "euler",
        "step_size": 0.1,
        "output_interval": 0.1,
        "stop_time": 2.1,
        "start_values": { "mu": 10, "x0": -2 }
    })
}

/// Dahlquist with a negative rate and a negative start, by forward Euler: x = -11^n after n
/// steps of 0.01, which passes -1.8e308 (to -∞) between t = 2 and t = 3.
fn dahlquist_to_minus_infinity() -> Value {
    json!({
        "fmu_id": "lib:Dahlquist",
        "interface": "me",
        "solver": "euler",
        "step_size": 0.01,
        "output_interval": 1,
        "stop_time": 4,
        "start_values": { "k": -1000, "x": -1 }
    })
}

async fn text(app: &TestApp, path: &str, key: &str) -> String {
    let resp = app.get(path, key).await;
    assert_eq!(resp.status(), 200, "{path}");
    resp.text().await.unwrap()
}

#[tokio::test]
async fn overflowing_runs_succeed_and_their_results_are_served_by_name_everywhere() {
    let app = spawn_app().await;
    let account = app.register().await;
    let key = &account.api_key;
    let credits = app.balance(key).await;

    // The answer to the run itself: succeeded, charged as any success, the values inline.
    let resp = app.create_run(key, &van_der_pol_blowing_up()).await;
    assert_eq!(resp.status(), 201);
    let run: Value = resp.json().await.unwrap();
    assert_eq!(
        (&run["status"], &run["charged"]),
        (&json!("succeeded"), &json!(true))
    );
    let id = run["id"].as_str().unwrap();
    let inline = &run["result"];
    let time = inline["time"].as_array().unwrap();
    assert_eq!(time.len(), 22);
    for name in ["x0", "x1"] {
        // Every point keeps its value: nothing left out, nothing shifted.
        assert_eq!(
            inline["columns"][name].as_array().unwrap().len(),
            22,
            "{name}"
        );
    }
    let last_rows = |result: &Value| -> Vec<Value> {
        (19..22)
            .map(|i| json!([result["columns"]["x0"][i], result["columns"]["x1"][i]]))
            .collect()
    };
    let expected = vec![
        json!([-1.2414792343054024e204, "Infinity"]),
        json!(["Infinity", "NaN"]),
        json!(["NaN", "NaN"]),
    ];
    assert_eq!(last_rows(inline), expected);
    assert!((time[19].as_f64().unwrap() - 1.9).abs() < 1e-12, "{inline}");

    // From result_url, as JSON (twice: it stays readable) and as CSV.
    let path = format!("/api/v1/runs/{id}/result");
    for _ in 0..2 {
        let stored: Value = serde_json::from_str(&text(&app, &path, key).await).unwrap();
        assert_eq!(&stored, inline, "the stored result is the inline one");
    }
    let json = text(&app, &path, key).await;
    assert!(
        json.contains(r#""x1":[0.0,"#) && json.ends_with(r#""NaN","NaN"]}}"#),
        "{json}"
    );
    let csv = text(&app, &format!("{path}?format=csv"), key).await;
    assert_eq!(csv.lines().count(), 23, "{csv}");
    assert!(
        csv.ends_with(",-1.2414792343054024e204,inf\n2,inf,nan\n2.1,nan,nan\n"),
        "{csv}"
    );

    // The compatibility route's last values.
    let summary = app.get_json(&format!("/simulations/{id}"), key).await;
    assert_eq!(summary["key_results"], json!({ "x0": "NaN", "x1": "NaN" }));
    assert_eq!(summary["status"], "succeeded");

    // -∞, in JSON and CSV.
    let down = app.run(key, &dahlquist_to_minus_infinity()).await;
    assert_eq!(down["status"], "succeeded", "{down}");
    let down_id = down["id"].as_str().unwrap();
    let stored = app
        .get_json(&format!("/api/v1/runs/{down_id}/result"), key)
        .await;
    assert_eq!(stored["time"], json!([0.0, 1.0, 2.0, 3.0, 4.0]));
    let x = stored["columns"]["x"].as_array().unwrap();
    assert_eq!(x[0], json!(-1.0));
    assert!(x[2].as_f64().is_some_and(|v| v < -1e200), "{stored}");
    assert_eq!(x[3..], [json!("-Infinity"), json!("-Infinity")]);
    let csv = text(
        &app,
        &format!("/api/v1/runs/{down_id}/result?format=csv"),
        key,
    )
    .await;
    assert!(csv.ends_with("\n3,-inf\n4,-inf\n"), "{csv}");
    let summary = app.get_json(&format!("/simulations/{down_id}"), key).await;
    assert_eq!(summary["key_results"], json!({ "x": "-Infinity" }));

    assert_eq!(
        app.balance(key).await,
        credits - 2,
        "two successes, charged once each"
    );

    // The dashboard: the run page plots the finite values (non-finite ones are gaps, never a
    // coordinate) and offers the same CSV.
    let client = browser();
    app.browser_login(&client, &account).await;
    let page = client
        .get(app.at(&format!("/runs/{id}")))
        .send()
        .await
        .unwrap();
    assert_eq!(page.status(), 200);
    let page = page.text().await.unwrap();
    let start = page
        .find("<svg class=\"chart chart-line\"")
        .expect("a plot");
    let svg = &page[start..start + page[start..].find("</svg>").unwrap()];
    assert!(svg.contains("<path class=\"series series-0\""), "{svg}");
    for bad in ["NaN", "nan", "inf", "Infinity"] {
        assert!(!svg.contains(bad), "{bad} in the plot: {svg}");
    }
    let download = client
        .get(app.at(&format!("/runs/{id}/result.csv")))
        .send()
        .await
        .unwrap();
    assert_eq!(download.status(), 200);
    assert!(download.text().await.unwrap().ends_with("2.1,nan,nan\n"));
}
