//! Reference checks over HTTP: a run compared with an inline CSV or with a reference its FMU
//! carries (FMI-LS-REF), the verdict stored with the run, never failing it.

use serde_json::{Value, json};

use crate::common::build_support::{LS_REF_DIR, exponential_csv, replace_entry};
use crate::common::{Api, spawn_app};

/// x = exp(-k t) on `points` + 1 times from 0 to `stop`: Dahlquist's closed form.
fn dahlquist_csv(stop: f64, points: usize, k: f64) -> String {
    let times: Vec<f64> = (0..=points)
        .map(|i| i as f64 * stop / points as f64)
        .collect();
    exponential_csv(&times, k)
}

/// The bouncing ball's closed form (h(0) = 1, v(0) = 0, g = 9.81, e = 0.7) at every 0.01 s
/// to `stop`, with each bounce written twice at its instant (before: falling, after:
/// rising), as an event is recorded.
fn bouncing_ball_csv(stop: f64) -> (String, usize) {
    const G: f64 = 9.81;
    const E: f64 = 0.7;
    // Flights: (start time, start height, start speed); each ends on the floor.
    let mut flights = vec![(0.0, 1.0, 0.0)];
    let mut bounces = vec![];
    loop {
        let &(t0, h0, v0): &(f64, f64, f64) = flights.last().unwrap();
        let landing = t0 + (v0 + (v0 * v0 + 2.0 * G * h0).sqrt()) / G;
        if landing > stop {
            break;
        }
        let impact = v0 - G * (landing - t0);
        bounces.push((landing, impact, -E * impact));
        flights.push((landing, 0.0, -E * impact));
    }
    let state = |t: f64| {
        let &(t0, h0, v0) = flights.iter().rev().find(|f| f.0 <= t).unwrap();
        let s = t - t0;
        (h0 + v0 * s - G * s * s / 2.0, v0 - G * s)
    };
    let mut rows: Vec<(f64, f64, f64)> = vec![];
    let grid = (stop / 0.01).round() as usize;
    for i in 0..=grid {
        let t = i as f64 * 0.01;
        let (h, v) = state(t);
        rows.push((t, h, v));
    }
    for &(t, before, after) in &bounces {
        rows.push((t, 0.0, before));
        rows.push((t, 0.0, after));
    }
    rows.sort_by(|a, b| a.0.total_cmp(&b.0));
    let mut csv = String::from("time,h,v\n");
    for (t, h, v) in rows {
        csv.push_str(&format!("{t},{h},{v}\n"));
    }
    (csv, grid + 1)
}

fn variable<'a>(check: &'a Value, name: &str) -> &'a Value {
    check["variables"]
        .as_array()
        .unwrap()
        .iter()
        .find(|v| v["name"] == name)
        .unwrap_or_else(|| panic!("no verdict for {name}: {check}"))
}

#[tokio::test]
async fn an_inline_reference_passes_or_fails_without_failing_the_run() {
    let app = spawn_app().await;
    let key = app.register().await.api_key;
    let run = |csv: String| {
        json!({
            "fmu_id": "lib:Dahlquist", "stop_time": 2, "output_interval": 0.01,
            "reference": {"csv": csv}
        })
    };
    // The closed form on a coarser grid than the run's: within the default band.
    let passing = app.run(&key, &run(dahlquist_csv(2.0, 40, 1.0))).await;
    assert_eq!(passing["status"], "succeeded", "{passing}");
    let check = &passing["reference_check"];
    assert_eq!(check["passed"], true, "{check}");
    let x = variable(check, "x");
    assert_eq!(x["points_compared"], 41);
    assert_eq!(x["points_outside"], 0);
    assert!(x["max_deviation"].as_f64().unwrap() < 1e-9, "{x}");
    assert_eq!(
        (x["abs_tol"].as_f64(), x["rel_tol"].as_f64()),
        (Some(1e-6), Some(1e-3))
    );
    assert!(x.get("first_outside").is_none());
    // The settings name the reference by its digest, not its text.
    let stored = &passing["settings"]["reference"];
    assert_eq!(stored["csv_sha256"].as_str().unwrap().len(), 64, "{stored}");

    // k = 1.1 is not this model: the check fails, the run succeeded and is charged.
    let before = app.balance(&key).await;
    let failing = app.run(&key, &run(dahlquist_csv(2.0, 40, 1.1))).await;
    assert_eq!(failing["status"], "succeeded", "{failing}");
    assert_eq!(failing["charged"], true);
    assert_eq!(failing["credits_charged"], 1);
    assert_eq!(app.balance(&key).await, before - 1);
    let check = &failing["reference_check"];
    assert_eq!(check["passed"], false, "{check}");
    let x = variable(check, "x");
    assert_eq!(x["passed"], false);
    // At t = 0 both are 1; every later point is off by more than 0.1 %.
    assert_eq!(x["points_outside"], 40);
    assert_eq!(x["first_outside"], 0.05);
    // exp(-t) - exp(-1.1 t) is largest at t = ln(1.1)/0.1 ≈ 0.953, the grid's 0.95.
    assert_eq!(x["at_time"], 0.95);
    // GET returns the stored verdict later.
    let again = app
        .get_json(
            &format!("/api/v1/runs/{}", failing["id"].as_str().unwrap()),
            &key,
        )
        .await;
    assert_eq!(again["reference_check"], *check);
    // Looser tolerances let the same reference pass: the largest relative gap is
    // exp(0.1 · 2) - 1 ≈ 0.22, at t = 2.
    let mut loose = run(dahlquist_csv(2.0, 40, 1.1));
    loose["reference"]["rel_tol"] = json!(0.25);
    assert_eq!(
        app.run(&key, &loose).await["reference_check"]["passed"],
        true
    );
}

#[tokio::test]
async fn a_reference_variable_the_run_did_not_record_fails_the_check_by_name() {
    let app = spawn_app().await;
    let key = app.register().await.api_key;
    let body = json!({
        "fmu_id": "lib:Dahlquist", "stop_time": 1, "output_interval": 0.1,
        "reference": {"csv": "time,x,k\n0,1,1\n1,0.36787944117144233,1\n"}
    });
    let run = app.run(&key, &body).await;
    assert_eq!(run["status"], "succeeded");
    let check = &run["reference_check"];
    assert_eq!(check["passed"], false, "{check}");
    assert_eq!(variable(check, "x")["passed"], true);
    let k = variable(check, "k");
    assert_eq!(k["passed"], false);
    assert!(
        k["problem"]
            .as_str()
            .unwrap()
            .contains("did not record 'k'"),
        "{k}"
    );
    // Recording it makes the check pass.
    let mut recorded = body.clone();
    recorded["outputs"] = json!(["x", "k"]);
    assert_eq!(
        app.run(&key, &recorded).await["reference_check"]["passed"],
        true
    );
}

#[tokio::test]
async fn the_bouncing_balls_bounces_are_skipped_and_the_rest_compared() {
    let app = spawn_app().await;
    let key = app.register().await.api_key;
    let (csv, grid_points) = bouncing_ball_csv(2.0);
    // Model Exchange records each bounce twice; the reference writes its own bounces twice
    // too, with the speed before and after: compared, neither side could match both.
    let run = app
        .run(
            &key,
            &json!({
                "fmu_id": "lib:BouncingBall", "interface": "me", "stop_time": 2,
                "output_interval": 0.01, "tolerance": 1e-8,
                "reference": {"csv": csv, "abs_tol": 1e-4}
            }),
        )
        .await;
    assert_eq!(run["status"], "succeeded", "{run}");
    let check = &run["reference_check"];
    assert_eq!(check["passed"], true, "{check}");
    for name in ["h", "v"] {
        let v = variable(check, name);
        // Every grid point compared, no bounce row.
        assert_eq!(v["points_compared"], grid_points, "{v}");
    }
}

#[tokio::test]
async fn a_carried_reference_sets_the_experiment_and_a_wrong_one_fails() {
    let app = spawn_app().await;
    let key = app.register().await.api_key;
    // The FMU lists what it carries, with each experiment's settings.
    let fmu = app.get_json("/api/v1/fmus/lib:Dahlquist", &key).await;
    let references = fmu["references"].as_array().unwrap();
    let names: Vec<&str> = references
        .iter()
        .map(|r| r["name"].as_str().unwrap())
        .collect();
    assert_eq!(names, ["default", "short"]);
    assert_eq!(references[1]["stop_time"], 1.0);
    assert_eq!(references[1]["output_interval"], 0.01);
    let ball = app.get_json("/api/v1/fmus/lib:BouncingBall", &key).await;
    assert!(ball.get("references").is_none(), "{ball}");
    let run = app
        .run(
            &key,
            &json!({"fmu_id": "lib:Dahlquist", "reference": {"fmu_reference": "short"}}),
        )
        .await;
    assert_eq!(run["status"], "succeeded", "{run}");
    // The experiment "short" is 0..1 s every 0.01 s; the model's default is 0..10 s.
    assert_eq!(run["settings"]["stop_time"], 1.0);
    assert_eq!(run["settings"]["output_interval"], 0.01);
    assert_eq!(run["settings"]["reference"]["fmu_reference"], "short");
    let check = &run["reference_check"];
    assert_eq!(check["passed"], true, "{check}");
    assert_eq!(variable(check, "x")["points_compared"], 101);

    // An unknown name is a 422 that lists what the FMU carries.
    let resp = app
        .create_run(
            &key,
            &json!({"fmu_id": "lib:Dahlquist", "reference": {"fmu_reference": "long"}}),
        )
        .await;
    assert_eq!(resp.status(), 422);
    let body: Value = resp.json().await.unwrap();
    assert!(body.to_string().contains("'default', 'short'"), "{body}");

    // The same model carrying a wrong reference (k = 1.1) fails its check.
    let dir = tempfile::tempdir().unwrap();
    let path = dir.path().join("Dahlquist.fmu");
    let (_, _, bytes) = fmu_gateway::fmi::library::DEMO_FMUS
        .iter()
        .find(|(m, v, _)| *m == "Dahlquist" && *v == "3.0")
        .unwrap();
    std::fs::write(&path, bytes).unwrap();
    let times: Vec<f64> = (0..=100).map(|i| i as f64 * 0.01).collect();
    let wrong = exponential_csv(&times, 1.1);
    replace_entry(&path, &format!("{LS_REF_DIR}/short.csv"), wrong.as_bytes()).unwrap();
    let uploaded = app.upload_fmu(&key, std::fs::read(&path).unwrap()).await;
    assert!(uploaded.status().is_success(), "{}", uploaded.status());
    let id = uploaded.json::<Value>().await.unwrap()["id"]
        .as_str()
        .unwrap()
        .to_string();
    // The upload ran each carried reference (free of charge): "default" reproduces, the
    // wrong "short" does not.
    let fmu = app.get_json(&format!("/api/v1/fmus/{id}"), &key).await;
    let checks = fmu["upload_reference_checks"].as_array().unwrap();
    let verdicts: Vec<(&str, &Value)> = checks
        .iter()
        .map(|c| (c["name"].as_str().unwrap(), &c["check"]["passed"]))
        .collect();
    assert_eq!(
        verdicts,
        [("default", &json!(true)), ("short", &json!(false))],
        "{fmu}"
    );
    assert_eq!(checks[1]["check"]["variables"][0]["points_outside"], 99);
    // The miss is a warning of its validation report (accepted: the model itself is valid).
    let report = app
        .get_json(&format!("/api/v1/fmus/{id}/validation"), &key)
        .await;
    assert_eq!(report["valid"], true, "{report}");
    let warnings: Vec<(&Value, &Value)> = report["problems"]
        .as_array()
        .unwrap()
        .iter()
        .map(|p| (&p["code"], &p["subject"]))
        .collect();
    assert_eq!(
        warnings,
        [(&json!("reference_failed"), &json!("short"))],
        "{report}"
    );
    assert_eq!(fmu["warnings"][0]["code"], "reference_failed", "{fmu}");
    let library = app.get_json("/api/v1/fmus/lib:Dahlquist", &key).await;
    assert!(library.get("upload_reference_checks").is_none());
    let run = app
        .run(
            &key,
            &json!({"fmu_id": id, "reference": {"fmu_reference": "short"}}),
        )
        .await;
    assert_eq!(run["status"], "succeeded", "{run}");
    let x = variable(&run["reference_check"], "x");
    assert_eq!(x["passed"], false, "{x}");
    // At t = 0.01 the gap (9.9e-4) is still inside the band (1e-6 + 1e-3 · 0.989); from
    // 0.02 on, every point is outside.
    assert_eq!(x["points_outside"], 99);
    assert_eq!(x["first_outside"], 0.02);
}

#[tokio::test]
async fn a_reference_that_cannot_be_used_is_refused_before_anything_is_charged() {
    let app = spawn_app().await;
    let key = app.register().await.api_key;
    let before = app.balance(&key).await;
    for (reference, field) in [
        (json!({"csv": "t,x\n0,1\n"}), "reference.csv"),
        (json!({"csv": "time,x\n1,1\n0,1\n"}), "reference.csv"),
        (
            json!({"csv": "time,x\n0,1\n", "fmu_reference": "short"}),
            "reference",
        ),
        (json!({}), "reference"),
        (json!({"fmu_reference": "short"}), "reference.fmu_reference"),
    ] {
        // BouncingBall carries no references.
        let resp = app
            .create_run(
                &key,
                &json!({"fmu_id": "lib:BouncingBall", "reference": reference}),
            )
            .await;
        assert_eq!(resp.status(), 422, "{reference}");
        let body: Value = resp.json().await.unwrap();
        assert_eq!(body["problems"][0]["field"], field, "{body}");
    }
    let large = format!("time,x\n{}", "0,1\n".repeat(140_000));
    let resp = app
        .create_run(
            &key,
            &json!({"fmu_id": "lib:Dahlquist", "reference": {"csv": large}}),
        )
        .await;
    assert_eq!(resp.status(), 422);
    assert!(resp.text().await.unwrap().contains("512 KiB"));
    let resp = app
        .create_run(
            &key,
            &json!({"fmu_id": "lib:Dahlquist", "reference": {"csv": "time,x\n0,1\n", "oops": 1}}),
        )
        .await;
    assert_eq!(resp.status(), 400);
    assert_eq!(app.balance(&key).await, before);
}
