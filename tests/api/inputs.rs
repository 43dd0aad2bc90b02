//! Input signals over the API: a repeated time is a step (the usual way to write one), run
//! on the library's Integrator in both interfaces and charged as any run; times that
//! decrease, or a time given more than twice, are a 422 naming the signal, before anything
//! is reserved.

use serde_json::{Value, json};

use crate::common::{Api, spawn_app};

/// Integrator (y = ∫ k·u) with u stepping from 0 to 1 at t = 1 and k = 1: y = 0 up to t = 1,
/// then t - 1. A step read as a ramp from 0 at t = 0 to 1 at t = 1 (what repeated times
/// used to give) makes y(1) = 0.5 (ME) or 0.375 (CS) instead.
#[tokio::test]
async fn a_step_input_integrates_as_a_step_in_both_interfaces() {
    let app = spawn_app().await;
    let account = app.register().await;
    let key = &account.api_key;
    let credits = app.balance(key).await;
    for interface in ["cs", "me"] {
        let run = app
            .run(
                key,
                &json!({
                    "fmu_id": "lib:Integrator",
                    "interface": interface,
                    "stop_time": 2,
                    "output_interval": 0.25,
                    "inputs": [
                        { "name": "u", "t": [0, 1, 1, 2], "u": [0, 0, 1, 1] },
                        { "name": "k", "t": [0], "u": [1] }
                    ]
                }),
            )
            .await;
        assert_eq!(run["status"], "succeeded", "{interface}: {run}");
        let result = app
            .get_json(
                &format!("/api/v1/runs/{}/result", run["id"].as_str().unwrap()),
                key,
            )
            .await;
        let time: Vec<f64> = values(&result["time"]);
        let y: Vec<f64> = values(&result["columns"]["y"]);
        for (t, y) in time.iter().zip(&y) {
            let exact = (t - 1.0).max(0.0);
            assert!(
                (y - exact).abs() < 1e-5,
                "{interface}: y({t}) = {y}, not {exact}"
            );
        }
        assert_eq!(time.last(), Some(&2.0), "{interface}");
    }
    assert_eq!(app.balance(key).await, credits - 2);
}

fn values(array: &Value) -> Vec<f64> {
    array
        .as_array()
        .unwrap()
        .iter()
        .map(|v| v.as_f64().unwrap())
        .collect()
}

#[tokio::test]
async fn times_that_decrease_or_repeat_thrice_are_refused_naming_the_signal() {
    let app = spawn_app().await;
    let account = app.register().await;
    let key = &account.api_key;
    let credits = app.balance(key).await;
    for (t, message) in [
        (
            json!([0, 1, 0.5, 2]),
            "the times of input 'u' must not decrease",
        ),
        (
            json!([0, 1, 1, 1]),
            "input 'u' gives the time 1 more than twice: a step repeats its time once",
        ),
    ] {
        let resp = app
            .create_run(
                key,
                &json!({
                    "fmu_id": "lib:Integrator",
                    "inputs": [{ "name": "u", "t": t, "u": [0, 0, 1, 1] }]
                }),
            )
            .await;
        assert_eq!(resp.status(), 422);
        let err: Value = resp.json().await.unwrap();
        assert_eq!(err["problems"][0]["field"], "inputs.u", "{err}");
        let said = err["problems"][0]["message"].as_str().unwrap();
        assert!(said.starts_with(message), "{said}");
    }
    assert_eq!(app.balance(key).await, credits, "nothing was reserved");
    assert_eq!(app.get_json("/api/v1/runs", key).await["total"], 0);
}
