//! The run domain's enums at the edges: every spelling a face accepted before the faces
//! shared one parser still works and is stored by its canonical name; an unknown interface,
//! solver or status filter is a 400 (the spec lists the values) naming the field, and changes
//! nothing.

use serde_json::{Value, json};

use crate::common::{Api, browser, spawn_app};

/// The `(field, message)` pairs of a 400 answer.
async fn problems(resp: reqwest::Response) -> Vec<(String, String)> {
    assert_eq!(resp.status(), 400);
    let err: Value = resp.json().await.unwrap();
    assert_eq!(err["code"], "invalid_request", "{err}");
    err["problems"]
        .as_array()
        .unwrap_or_else(|| panic!("no problems in {err}"))
        .iter()
        .map(|p| {
            (
                p["field"].as_str().unwrap().to_string(),
                p["message"].as_str().unwrap().to_string(),
            )
        })
        .collect()
}

const BAD_INTERFACE: &str =
    "interface must be cs or me (or co_simulation, model_exchange), not 'xx'";
const BAD_SOLVER: &str = "solver must be auto, dormand_prince (or dopri), bdf or euler, not 'rk4'";

#[tokio::test]
async fn an_unknown_interface_solver_or_status_filter_is_a_400_naming_the_field_and_changes_nothing()
 {
    let app = spawn_app().await;
    let account = app.register().await;
    let credits = app.balance(&account.api_key).await;
    let key = &account.api_key;

    let resp = app
        .create_run(
            key,
            &json!({ "fmu_id": "lib:Dahlquist", "interface": "xx" }),
        )
        .await;
    assert_eq!(
        problems(resp).await,
        [("interface".to_string(), BAD_INTERFACE.to_string())]
    );
    let resp = app
        .create_run(key, &json!({ "fmu_id": "lib:Dahlquist", "solver": "rk4" }))
        .await;
    assert_eq!(
        problems(resp).await,
        [("solver".to_string(), BAD_SOLVER.to_string())]
    );
    // Both at once: both named, so the caller fixes them in one go.
    let body = json!({ "fmu_id": "lib:Dahlquist", "interface": "xx", "solver": "rk4" });
    let fields: Vec<String> = problems(app.create_run(key, &body).await)
        .await
        .into_iter()
        .map(|(field, _)| field)
        .collect();
    assert_eq!(fields, ["interface", "solver"]);
    // Not a string at all: a malformed request, as before.
    let resp = app
        .create_run(key, &json!({ "fmu_id": "lib:Dahlquist", "interface": 3 }))
        .await;
    assert_eq!(resp.status(), 400);

    // A status filter that is not a status was an empty list; now it says so.
    for bad in ["done", "Succeeded", ""] {
        let resp = app.get(&format!("/api/v1/runs?status={bad}"), key).await;
        assert_eq!(
            problems(resp).await,
            [(
                "status".to_string(),
                format!(
                    "'{bad}' is not a run status: use one of queued, running, succeeded, \
                     failed, cancelled"
                )
            )],
            "{bad}"
        );
    }

    assert_eq!(app.count("runs", []), 0, "no run was recorded");
    assert_eq!(app.balance(key).await, credits, "nothing was reserved");
}

#[tokio::test]
async fn every_spelling_a_face_accepted_still_runs_and_is_stored_by_its_canonical_name() {
    let app = spawn_app().await;
    let account = app.register().await;
    let key = &account.api_key;
    // (interface, solver) as sent → as stored and shown.
    let cases = [
        // No solver: the default, `auto` (Co-Simulation ignores it).
        (json!("cs"), Value::Null, "cs", "auto"),
        (json!("CS"), Value::Null, "cs", "auto"),
        (json!("co_simulation"), Value::Null, "cs", "auto"),
        (json!("me"), Value::Null, "me", "auto"),
        (json!("me"), json!("AUTO"), "me", "auto"),
        (json!("me"), json!("bdf"), "me", "bdf"),
        (json!("me"), json!("dormand-prince"), "me", "dormand_prince"),
        (
            json!("model-exchange"),
            json!("dopri"),
            "me",
            "dormand_prince",
        ),
        (json!("ME"), json!("euler"), "me", "euler"),
    ];
    for (interface, solver, stored_interface, stored_solver) in &cases {
        let mut body = json!({ "fmu_id": "lib:Dahlquist", "interface": interface,
            "stop_time": 1.0, "output_interval": 0.1, "step_size": 0.01 });
        if !solver.is_null() {
            body["solver"] = solver.clone();
        }
        let resp = app.create_run(key, &body).await;
        assert_eq!(resp.status(), 201, "{interface} {solver}");
        let run: Value = resp.json().await.unwrap();
        assert_eq!(run["status"], "succeeded", "{run}");
        assert_eq!(run["settings"]["interface"], *stored_interface, "{run}");
        assert_eq!(run["settings"]["solver"], *stored_solver, "{run}");
    }
    let count = |status: &'static str| {
        let (app, path) = (&app, format!("/api/v1/runs?status={status}"));
        async move { app.get_json(&path, key).await["total"].as_u64().unwrap() }
    };
    assert_eq!(count("succeeded").await, cases.len() as u64);
    assert_eq!(count("failed").await, 0);
}

#[tokio::test]
async fn the_dashboard_form_refuses_an_unknown_interface_instead_of_running_co_simulation() {
    let app = spawn_app().await;
    let account = app.register().await;
    let client = browser();
    let csrf = app.browser_login(&client, &account).await;
    let post = |interface: &'static str| {
        let (client, url, csrf) = (client.clone(), app.at("/runs"), csrf.clone());
        async move {
            client
                .post(url)
                .form(&[
                    ("csrf_token", csrf.as_str()),
                    ("fmu", "lib:Dahlquist"),
                    ("stop_time", "1"),
                    ("output_interval", "0.1"),
                    ("interface", interface),
                    ("output", "x"),
                ])
                .send()
                .await
                .unwrap()
        }
    };
    let resp = post("xx").await;
    assert_eq!(resp.status(), 422);
    let page = resp.text().await.unwrap();
    assert!(page.contains("id=\"error-interface\""), "{page}");
    assert!(
        page.contains(&BAD_INTERFACE.replace('\'', "&#39;")) || page.contains(BAD_INTERFACE),
        "{page}"
    );
    assert_eq!(app.count("runs", []), 0, "no run was recorded");
    // The spellings every face accepts are accepted here too.
    for interface in ["me", "model_exchange", "cs"] {
        let resp = post(interface).await;
        assert_eq!(
            resp.status(),
            303,
            "{interface}: {}",
            resp.text().await.unwrap()
        );
    }
    let stored: Vec<String> = app
        .state
        .store
        .conn()
        .unwrap()
        .prepare("SELECT settings FROM runs ORDER BY created_at, id")
        .unwrap()
        .query_map([], |r| r.get(0))
        .unwrap()
        .collect::<Result<_, _>>()
        .unwrap();
    let interfaces: Vec<String> = stored
        .iter()
        .map(|s| {
            serde_json::from_str::<serde_json::Value>(s).unwrap()["interface"]
                .as_str()
                .unwrap()
                .to_owned()
        })
        .collect();
    assert_eq!(interfaces, ["me", "me", "cs"]);
}
