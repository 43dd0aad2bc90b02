//! FMU states over the API, as fmusim's `--final-fmu-state-file` / `--initial-fmu-state-file`:
//! a run saves its final state, another starts from it and goes on exactly as one long run
//! would; a state only ever goes back into the FMU that saved it, only for its owner, counts
//! against their quota, and a hostile state file fails its run cleanly.

use serde_json::{Value, json};

use crate::common::archives::{library_fmu, with_model_description};
use crate::common::{Api, TestApp, api_client, fresh_fmu, spawn_app, spawn_app_with};

/// `POST /api/v1/states?fmu=…&time=…` with `bytes`.
async fn upload_state(
    app: &TestApp,
    key: &str,
    fmu: &str,
    time: f64,
    bytes: Vec<u8>,
) -> reqwest::Response {
    api_client()
        .post(app.at(&format!("/api/v1/states?fmu={fmu}&time={time}")))
        .bearer_auth(key)
        .header("content-type", "application/octet-stream")
        .body(bytes)
        .send()
        .await
        .unwrap()
}

/// The run's results (JSON columns).
async fn result(app: &TestApp, key: &str, run: &Value) -> Value {
    assert_eq!(run["status"], "succeeded", "{run}");
    app.get_json(
        &format!("/api/v1/runs/{}/result", run["id"].as_str().unwrap()),
        key,
    )
    .await
}

/// Equal within 1e-12 (relative to the value's size, absolute near zero).
fn close(a: f64, b: f64) -> bool {
    (a - b).abs() <= 1e-12 * a.abs().max(b.abs()).max(1.0)
}

/// Asserts that `continued` (a run from t = 1 to 2) gives what `whole` (0 to 2) gives from
/// t = 1 on, point by point, within 1e-12.
fn assert_continues(case: &str, whole: &Value, continued: &Value) {
    let times = |r: &Value| -> Vec<f64> {
        r["time"]
            .as_array()
            .unwrap()
            .iter()
            .map(|t| t.as_f64().unwrap())
            .collect()
    };
    let (t_whole, t_cont) = (times(whole), times(continued));
    let from = t_whole.iter().position(|&t| t >= 1.0 - 1e-9).unwrap();
    assert_eq!(
        t_whole.len() - from,
        t_cont.len(),
        "{case}: points\n{t_whole:?}\n{t_cont:?}"
    );
    assert!(t_cont.len() > 5, "{case}: {t_cont:?}");
    let variables = whole["variables"].as_array().unwrap();
    assert!(!variables.is_empty());
    for (i, &t) in t_cont.iter().enumerate() {
        assert!(
            close(t, t_whole[from + i]),
            "{case}: time {t} vs {}",
            t_whole[from + i]
        );
        for v in variables {
            let name = v.as_str().unwrap();
            let a = whole["columns"][name][from + i].as_f64().unwrap();
            let b = continued["columns"][name][i].as_f64().unwrap();
            assert!(
                close(a, b),
                "{case}: {name} at t = {t}: {a} in one run, {b} continued"
            );
        }
    }
}

/// Save at t = 1, continue from the state to t = 2, compare with one run to t = 2: the same
/// within 1e-12, for FMI 2 and FMI 3 Co-Simulation (the communication points of the two runs
/// differ in the last bit, 1 + 0.1 against 11 × 0.1, which is all that may differ).
#[tokio::test]
async fn a_run_from_a_saved_state_goes_on_as_one_run_would() {
    let app = spawn_app().await;
    let key = app.register().await.api_key;
    for fmu in [
        "lib:BouncingBall",
        "lib:BouncingBall@fmi2",
        "lib:Dahlquist",
        "lib:Dahlquist@fmi2",
    ] {
        let first = app
            .run(
                &key,
                &json!({ "fmu_id": fmu, "stop_time": 1.0, "output_interval": 0.1, "save_final_state": true }),
            )
            .await;
        assert_eq!(first["status"], "succeeded", "{fmu}: {first}");
        assert_eq!(first["settings"]["save_final_state"], true, "{first}");
        let first_id = first["id"].as_str().unwrap();

        // The state's bytes, with its time and id.
        let resp = app
            .get(&format!("/api/v1/runs/{first_id}/state"), &key)
            .await;
        assert_eq!(resp.status(), 200, "{fmu}");
        assert_eq!(resp.headers()["content-type"], "application/octet-stream");
        assert_eq!(resp.headers()["fmu-state-time"], "1");
        let state_id = resp.headers()["fmu-state-id"].to_str().unwrap().to_string();
        let bytes = resp.bytes().await.unwrap();
        assert!(bytes.len() > 8, "{fmu}: {} bytes", bytes.len());
        let listed = app.get_json("/api/v1/states", &key).await;
        let entry = listed
            .as_array()
            .unwrap()
            .iter()
            .find(|s| s["id"] == state_id.as_str())
            .unwrap_or_else(|| panic!("{listed}"));
        assert_eq!(entry["source_run"], first_id);
        assert_eq!(entry["size_bytes"], bytes.len());
        assert_eq!(entry["time"], 1.0);
        assert_eq!(
            entry["fmi_version"],
            if fmu.ends_with("fmi2") { "2" } else { "3" }
        );

        // From the run's id and from the state's id: both start at t = 1.
        for initial in [first_id, state_id.as_str()] {
            let continued = app
                .run(
                    &key,
                    &json!({ "fmu_id": fmu, "stop_time": 2.0, "output_interval": 0.1, "initial_state": initial }),
                )
                .await;
            assert_eq!(continued["status"], "succeeded", "{fmu}: {continued}");
            assert_eq!(continued["settings"]["start_time"], 1.0, "{continued}");
            let whole = app
                .run(
                    &key,
                    &json!({ "fmu_id": fmu, "stop_time": 2.0, "output_interval": 0.1 }),
                )
                .await;
            assert_continues(
                fmu,
                &result(&app, &key, &whole).await,
                &result(&app, &key, &continued).await,
            );
        }

        // A run that saved none has no state to give.
        let none = app
            .get(
                &format!("/api/v1/runs/{}/state", unsaved_run(&app, &key, fmu).await),
                &key,
            )
            .await;
        assert_eq!(none.status(), 404);
    }
}

/// A run without `save_final_state`'s id.
async fn unsaved_run(app: &TestApp, key: &str, fmu: &str) -> String {
    let run = app
        .run(key, &json!({ "fmu_id": fmu, "stop_time": 0.5 }))
        .await;
    run["id"].as_str().unwrap().to_string()
}

/// The 422 answer of a run request, and its first problem's field and message.
async fn refused(app: &TestApp, key: &str, body: Value) -> (String, String) {
    let resp = app.create_run(key, &body).await;
    let status = resp.status();
    let answer: Value = resp.json().await.unwrap();
    assert_eq!(status, 422, "{body}: {answer}");
    let problem = &answer["problems"][0];
    (
        problem["field"].as_str().unwrap().to_string(),
        problem["message"].as_str().unwrap().to_string(),
    )
}

/// A state goes back only into the FMU, FMI version and interface that saved it, only for
/// its owner (another user's is not found, never used or shown), and only at its own time;
/// what cannot save states says which capability or path it lacks.
#[tokio::test]
async fn a_state_fits_only_its_fmu_and_its_owner() {
    let app = spawn_app().await;
    let ada = app.register().await.api_key;
    let bob = app.register().await.api_key;
    let saved = app
        .run(
            &ada,
            &json!({ "fmu_id": "lib:BouncingBall", "stop_time": 1.0, "save_final_state": true }),
        )
        .await;
    assert_eq!(saved["status"], "succeeded", "{saved}");
    let run_id = saved["id"].as_str().unwrap();
    let credits = app.balance(&ada).await;

    // Another FMU, the same model in FMI 2, the same FMU through Model Exchange: 422.
    for (fmu, interface, expected) in [
        ("lib:Dahlquist", "cs", "belongs to FMU"),
        ("lib:BouncingBall@fmi2", "cs", "belongs to FMU"),
        ("lib:BouncingBall", "me", "saved in a cs run"),
    ] {
        let (field, message) = refused(
            &app,
            &ada,
            json!({ "fmu_id": fmu, "interface": interface, "stop_time": 2.0, "initial_state": run_id }),
        )
        .await;
        assert_eq!(field, "initial_state", "{fmu}");
        assert!(message.contains(expected), "{fmu}: {message}");
    }
    // An explicit start time must be the state's.
    let (field, message) = refused(
        &app,
        &ada,
        json!({ "fmu_id": "lib:BouncingBall", "start_time": 0.0, "stop_time": 2.0, "initial_state": run_id }),
    )
    .await;
    assert_eq!(field, "start_time");
    assert!(message.contains("t = 1"), "{message}");
    // Model Exchange cannot save one here: said, not half-done.
    let (field, message) = refused(
        &app,
        &ada,
        json!({ "fmu_id": "lib:BouncingBall", "interface": "me", "save_final_state": true }),
    )
    .await;
    assert_eq!(field, "save_final_state");
    assert!(message.contains("Co-Simulation"), "{message}");
    assert_eq!(app.balance(&ada).await, credits, "refusals cost nothing");

    // Bob sees nothing of Ada's state: not by run, not by id, not in his list.
    let state_id = app.get_json("/api/v1/states", &ada).await[0]["id"]
        .as_str()
        .unwrap()
        .to_string();
    for initial in [run_id, state_id.as_str()] {
        let resp = app
            .create_run(
                &bob,
                &json!({ "fmu_id": "lib:BouncingBall", "stop_time": 2.0, "initial_state": initial }),
            )
            .await;
        assert_eq!(resp.status(), 404, "{}", resp.text().await.unwrap());
    }
    let resp = app.get(&format!("/api/v1/runs/{run_id}/state"), &bob).await;
    assert_eq!(resp.status(), 404);
    assert_eq!(app.get_json("/api/v1/states", &bob).await, json!([]));
    let resp = app
        .delete(&format!("/api/v1/states/{state_id}"), &bob)
        .await;
    assert_eq!(resp.status(), 404);

    // Ada deletes it: gone for her runs too.
    let resp = app
        .delete(&format!("/api/v1/states/{state_id}"), &ada)
        .await;
    assert_eq!(resp.status(), 204);
    let resp = app.get(&format!("/api/v1/runs/{run_id}/state"), &ada).await;
    assert_eq!(resp.status(), 404);
    let resp = app
        .create_run(
            &ada,
            &json!({ "fmu_id": "lib:BouncingBall", "stop_time": 2.0, "initial_state": run_id }),
        )
        .await;
    assert_eq!(resp.status(), 404);
}

/// States count against the storage quota with uploads: a state past it is refused, and so is
/// an FMU upload that no longer fits because of states; deleting the state makes room.
#[tokio::test]
async fn states_count_against_the_storage_quota() {
    const QUOTA: u64 = 3 << 19;
    let app = spawn_app_with(|c| c.storage_quota_bytes = QUOTA).await;
    let ada = app.register().await.api_key;
    let big = vec![0x5a; QUOTA as usize - 10_000];
    let resp = upload_state(&app, &ada, "lib:Dahlquist", 0.0, big.clone()).await;
    assert_eq!(resp.status(), 201, "{}", resp.text().await.unwrap());
    let state: Value = resp.json().await.unwrap();
    assert_eq!(state["size_bytes"], big.len());
    assert!(state.get("source_run").is_none(), "{state}");
    let me = app.get_json("/api/v1/me", &ada).await;
    assert_eq!(me["storage_used_bytes"], big.len(), "{me}");

    // Another state past the quota: 413.
    let resp = upload_state(&app, &ada, "lib:Dahlquist", 0.0, vec![1; 20_000]).await;
    assert_eq!(resp.status(), 413);
    let body: Value = resp.json().await.unwrap();
    assert_eq!(body["code"], "storage_quota_exceeded", "{body}");
    // An FMU that would have fitted without the state: 413.
    let fmu = fresh_fmu("Dahlquist", "3.0", "quota");
    let resp = app.upload_fmu(&ada, fmu.clone()).await;
    assert_eq!(resp.status(), 413, "{}", resp.text().await.unwrap());
    // A run that would save a state past the quota fails, and says why.
    let run = app
        .run(
            &ada,
            &json!({ "fmu_id": "lib:Dahlquist", "stop_time": 1.0, "save_final_state": true }),
        )
        .await;
    assert_eq!(run["status"], "failed", "{run}");
    assert!(run["error"].as_str().unwrap().contains("quota"), "{run}");

    let resp = app
        .delete(
            &format!("/api/v1/states/{}", state["id"].as_str().unwrap()),
            &ada,
        )
        .await;
    assert_eq!(resp.status(), 204);
    let resp = app.upload_fmu(&ada, fmu).await;
    assert_eq!(resp.status(), 201, "{}", resp.text().await.unwrap());
    assert!(
        !app.data_dir
            .join("states")
            .join(state["sha256"].as_str().unwrap())
            .exists(),
        "a deleted state's file is removed"
    );
}

/// A state file that is not what the FMU wrote — random bytes, a real one cut short, one of
/// the right size whose contents the model cannot hold — fails its run with the FMU's reason
/// (the C core checks what it deserialises), and the server goes on serving runs.
#[tokio::test]
async fn a_hostile_state_file_fails_its_run_cleanly() {
    let app = spawn_app().await;
    let key = app.register().await.api_key;
    let saved = app
        .run(
            &key,
            &json!({ "fmu_id": "lib:BouncingBall", "stop_time": 1.0, "save_final_state": true }),
        )
        .await;
    let real = app
        .get(
            &format!("/api/v1/runs/{}/state", saved["id"].as_str().unwrap()),
            &key,
        )
        .await
        .bytes()
        .await
        .unwrap()
        .to_vec();
    let random: Vec<u8> = (0..1000u32)
        .map(|i| (i.wrapping_mul(2654435761) >> 13) as u8)
        .collect();
    let truncated = real[..real.len() - 7].to_vec();
    // The magic kept, every value after it 0xff: a time that is not a number.
    let mut garbage = real.clone();
    garbage[8..].fill(0xff);
    for (case, bytes, expected) in [
        ("random", random, "invalid"),
        ("truncated", truncated, "invalid"),
        ("garbage", garbage, "not a finite number"),
    ] {
        let resp = upload_state(&app, &key, "lib:BouncingBall", 1.0, bytes).await;
        assert_eq!(resp.status(), 201, "{case}");
        let state: Value = resp.json().await.unwrap();
        let run = app
            .run(
                &key,
                &json!({ "fmu_id": "lib:BouncingBall", "stop_time": 2.0, "initial_state": state["id"] }),
            )
            .await;
        assert_eq!(run["status"], "failed", "{case}: {run}");
        assert_eq!(run["failure_kind"], "model_error", "{case}: {run}");
        assert_eq!(
            run["charged"], false,
            "a library model's failure is ours: {run}"
        );
        let error = run["error"].as_str().unwrap();
        assert!(error.contains("fmi3DeserializeFMUState"), "{case}: {error}");
        assert!(
            run["log"].as_str().unwrap().contains(expected),
            "{case}: {run}"
        );
    }
    // A file over the bound is refused unread.
    let resp = upload_state(&app, &key, "lib:BouncingBall", 1.0, vec![0; (16 << 20) + 1]).await;
    assert_eq!(resp.status(), 413);
    // And the server still runs models.
    let after = app
        .run(
            &key,
            &json!({ "fmu_id": "lib:BouncingBall", "stop_time": 1.0 }),
        )
        .await;
    assert_eq!(after["status"], "succeeded", "{after}");
}

/// An FMU that does not declare it can serialise its state: saving or starting from a state
/// is a 422 naming the capability, and so is uploading a state for it.
#[tokio::test]
async fn an_fmu_that_cannot_serialise_its_state_is_refused_by_name() {
    let app = spawn_app().await;
    let key = app.register().await.api_key;
    for (version, attribute) in [
        ("3.0", "canSerializeFMUState"),
        ("2.0", "canSerializeFMUstate"),
    ] {
        let bytes = with_model_description(library_fmu("Dahlquist", version), |xml| {
            xml.replace(
                &format!(r#"{attribute}="true""#),
                &format!(r#"{attribute}="false""#),
            )
        });
        let resp = app.upload_fmu(&key, bytes).await;
        assert_eq!(resp.status(), 201, "{}", resp.text().await.unwrap());
        let fmu: Value = resp.json().await.unwrap();
        let id = fmu["id"].as_str().unwrap();
        assert_eq!(
            fmu["co_simulation"]["can_serialize_fmu_state"], false,
            "{fmu}"
        );
        let (field, message) = refused(
            &app,
            &key,
            json!({ "fmu_id": id, "stop_time": 1.0, "save_final_state": true }),
        )
        .await;
        assert_eq!(field, "save_final_state");
        assert!(message.contains(attribute), "{message}");
        let resp = upload_state(&app, &key, id, 0.0, vec![1, 2, 3]).await;
        assert_eq!(resp.status(), 422);
        let body: Value = resp.json().await.unwrap();
        assert!(
            body["problems"][0]["message"]
                .as_str()
                .unwrap()
                .contains(attribute),
            "{body}"
        );
    }
}
