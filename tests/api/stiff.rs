//! Stiff models over HTTP: `lib:Robertson` (FMI 3 and 2) with the default solver (`auto`:
//! Dormand–Prince, switching to BDF and saying so in the run's log), with `bdf`, and in
//! Co-Simulation (the FMU's own implicit integrator); a solver that gives up fails the run
//! naming why and when.

use serde_json::{Value, json};

use crate::common::{Api, TestApp, browser, spawn_app};

/// Runs `body`, which finishes within the request: the answer, with its result inline.
async fn run_inline(app: &TestApp, key: &str, body: Value) -> Value {
    let resp = app.create_run(key, &body).await;
    assert_eq!(resp.status(), 201, "{body}");
    resp.json().await.unwrap()
}

/// Robertson at t = 40 (Hairer & Wanner, Solving ODEs II).
const AT_40: [(&str, f64); 3] = [
    ("y1", 0.715_827_1),
    ("y2", 9.185_535e-6),
    ("y3", 0.284_163_7),
];

/// Each state's last value in the run's inline result, within 1e-3 relative of the literature.
fn assert_literature_values_at_40(run: &Value) {
    assert_eq!(run["status"], "succeeded", "{run}");
    let result = &run["result"];
    assert_eq!(
        result["time"].as_array().unwrap().last(),
        Some(&json!(40.0))
    );
    for (name, expected) in AT_40 {
        let got = result["columns"][name]
            .as_array()
            .and_then(|values| values.last())
            .and_then(Value::as_f64)
            .unwrap_or_else(|| panic!("no {name} in {result}"));
        let error = ((got - expected) / expected).abs();
        println!(
            "{} {}: {name}(40) = {got:.7e} (relative error {error:.1e})",
            run["settings"]["interface"], run["settings"]["solver"]
        );
        assert!(
            error < 1e-3,
            "{name}(40) = {got}, expected {expected}: {run}"
        );
    }
}

#[tokio::test]
async fn robertson_reaches_the_literature_values_over_http() {
    let app = spawn_app().await;
    let account = app.register().await;
    let key = &account.api_key;
    for fmu in ["lib:Robertson", "lib:Robertson@fmi2"] {
        // The default solver in Model Exchange: stored as `auto`, and it switched.
        let run = run_inline(
            &app,
            key,
            json!({ "fmu_id": fmu, "interface": "me", "stop_time": 40, "output_interval": 0.4 }),
        )
        .await;
        assert_literature_values_at_40(&run);
        assert_eq!(run["settings"]["solver"], "auto", "{run}");
        let log = run["log"].as_str().unwrap_or_default();
        assert!(
            log.lines().any(|l| l.contains("stiffness detected at t = ")
                && l.ends_with(": continuing with BDF")),
            "{fmu}: no switch in the log: {run}"
        );

        let run = run_inline(
            &app,
            key,
            json!({ "fmu_id": fmu, "interface": "me", "solver": "bdf", "stop_time": 40,
                "output_interval": 0.4 }),
        )
        .await;
        assert_literature_values_at_40(&run);
        assert_eq!(run["settings"]["solver"], "bdf");

        let run = run_inline(
            &app,
            key,
            json!({ "fmu_id": fmu, "interface": "cs", "stop_time": 40, "output_interval": 0.4 }),
        )
        .await;
        assert_literature_values_at_40(&run);
    }
}

/// Dahlquist with k = -1e6 grows as e^(1e6 t) and overflows near t = 7.0e-4: the run fails
/// there as the model's error (charged), with the solver's reason, not as out of memory.
#[tokio::test]
async fn a_solver_that_gives_up_fails_the_run_saying_why_and_when() {
    let app = spawn_app().await;
    let account = app.register().await;
    for solver in ["bdf", "auto", "dormand_prince"] {
        let resp = app
            .create_run(
                &account.api_key,
                &json!({ "fmu_id": "lib:Dahlquist", "interface": "me", "solver": solver,
                    "stop_time": 1, "output_interval": 0.1, "start_values": { "k": -1e6 } }),
            )
            .await;
        assert_eq!(resp.status(), 201, "{solver}");
        let run: Value = resp.json().await.unwrap();
        assert_eq!(run["status"], "failed", "{run}");
        assert_eq!(run["failure_kind"], "model_error", "{run}");
        let error = run["error"].as_str().unwrap();
        println!("{solver}: {error}");
        assert!(
            error.contains("step size underflow at t = 0.000695")
                || error.contains("Newton iteration failed to converge at t = 0.000695"),
            "{solver}: {run}"
        );
    }
}

/// The dashboard's run form offers the Model Exchange solvers and runs the one chosen; an
/// unknown one comes back beside its field.
#[tokio::test]
async fn the_dashboard_form_offers_the_solvers_and_runs_the_chosen_one() {
    let app = spawn_app().await;
    let account = app.register().await;
    let client = browser();
    let csrf = app.browser_login(&client, &account).await;
    let page = client
        .get(app.at("/runs?fmu=lib:Robertson"))
        .send()
        .await
        .unwrap()
        .text()
        .await
        .unwrap();
    assert!(page.contains("name=\"solver\""), "{page}");
    for solver in ["auto", "dormand_prince", "bdf"] {
        assert!(
            page.contains(&format!("value=\"{solver}\"")),
            "{solver}: {page}"
        );
    }
    let post = |solver: &'static str| {
        let (client, url, csrf) = (client.clone(), app.at("/runs"), csrf.clone());
        async move {
            client
                .post(url)
                .form(&[
                    ("csrf_token", csrf.as_str()),
                    ("fmu", "lib:Robertson"),
                    ("stop_time", "40"),
                    ("output_interval", "4"),
                    ("interface", "me"),
                    ("solver", solver),
                    ("output", "y2"),
                ])
                .send()
                .await
                .unwrap()
        }
    };
    let resp = post("rk4").await;
    assert_eq!(resp.status(), 422);
    let page = resp.text().await.unwrap();
    assert!(page.contains("id=\"error-solver\""), "{page}");
    assert_eq!(app.count("runs", []), 0, "no run was recorded");
    let resp = post("bdf").await;
    assert_eq!(resp.status(), 303, "{}", resp.text().await.unwrap());
    let stored: String = app
        .state
        .store
        .conn()
        .unwrap()
        .query_row("SELECT settings FROM runs", [], |r| r.get(0))
        .unwrap();
    let settings: serde_json::Value = serde_json::from_str(&stored).unwrap();
    assert_eq!(settings["solver"], "bdf");
}
