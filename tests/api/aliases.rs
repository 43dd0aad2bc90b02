//! Aliases: other names for a variable (FMI 3 `<Alias>` elements, FMI 2 variables sharing a
//! value reference) are listed with the variable they name and usable wherever a name is.
//! The FMUs are the library's models with an alias added to their model description.

use serde_json::{Value, json};

use crate::common::archives::{
    bouncing_ball_with_alias, library_fmu, with_fmi3_alias, with_model_description,
};
use crate::common::{Api, TestApp, page_text, spawn_app};

fn numbers(v: &Value) -> Vec<f64> {
    v.as_array()
        .unwrap_or_else(|| panic!("not an array: {v}"))
        .iter()
        .map(|x| x.as_f64().unwrap())
        .collect()
}

async fn upload(app: &TestApp, key: &str, bytes: Vec<u8>) -> Value {
    let resp = app.upload_fmu(key, bytes).await;
    let status = resp.status();
    let body: Value = resp.json().await.unwrap();
    assert_eq!(status, 201, "{body}");
    body
}

fn variable<'a>(fmu: &'a Value, name: &str) -> &'a Value {
    fmu["variables"]
        .as_array()
        .unwrap()
        .iter()
        .find(|v| v["name"] == name)
        .unwrap_or_else(|| panic!("no variable {name} in {fmu}"))
}

/// The stored result (`time`, `columns`) of `run`, which must have succeeded.
async fn result_of(app: &TestApp, key: &str, run: &Value) -> Value {
    assert_eq!(run["status"], "succeeded", "{run}");
    let id = run["id"].as_str().unwrap();
    app.get_json(&format!("/api/v1/runs/{id}/result"), key)
        .await
}

/// The id and result of a run of BouncingBall `fmu_id` to t = 1 with `extra` settings; it
/// must succeed.
async fn ball_run(app: &TestApp, key: &str, fmu_id: &str, extra: Value) -> (String, Value) {
    let mut body = json!({ "fmu_id": fmu_id, "stop_time": 1, "output_interval": 0.1 });
    body.as_object_mut()
        .unwrap()
        .extend(extra.as_object().unwrap().clone());
    let run = app.run(key, &body).await;
    let id = run["id"].as_str().unwrap().to_string();
    (id, result_of(app, key, &run).await)
}

#[tokio::test]
async fn an_alias_is_listed_and_records_sets_and_is_refused_beside_its_variable() {
    let app = spawn_app().await;
    let account = app.register().await;
    let key = &account.api_key;
    for version in ["3.0", "2.0"] {
        let fmu = upload(&app, key, bouncing_ball_with_alias(version)).await;
        let id = fmu["id"].as_str().unwrap();
        let listed = app.get_json(&format!("/api/v1/fmus/{id}"), key).await;
        // The library's BouncingBall has its own alias of h, h_ft, shown in feet (FMI 3: the
        // <Alias>'s displayUnit; FMI 2: the alias variable's).
        let h_ft = json!({ "name": "h_ft", "description": "Height of the ball, shown in feet",
                           "display_unit": "ft" });
        assert_eq!(
            variable(&listed, "h")["aliases"],
            json!([h_ft, { "name": "height", "description": "Height of the ball" }]),
            "FMI {version}"
        );
        // Always present, even when empty.
        assert_eq!(
            variable(&listed, "v")["aliases"],
            json!([]),
            "FMI {version}"
        );
        let names: Vec<&str> = listed["variables"]
            .as_array()
            .unwrap()
            .iter()
            .map(|v| v["name"].as_str().unwrap())
            .collect();
        // The model's page in the dashboard shows the alias beside its variable.
        let client = crate::common::browser();
        app.browser_login(&client, &account).await;
        let page = page_text(&client, app.at(&format!("/library/{id}"))).await;
        assert!(
            page.contains(r#"<code title="Height of the ball">height</code>"#),
            "FMI {version}: {page}"
        );
        if version == "2.0" {
            // The FMI 2 alias is still a variable of its own, as it was listed before.
            assert_eq!(
                names,
                [
                    "time", "h", "der(h)", "v", "der(v)", "g", "e", "h_ft", "height"
                ]
            );
            assert_eq!(variable(&listed, "height")["aliases"], json!([]));
        } else {
            assert_eq!(names, ["time", "h", "der(h)", "v", "der(v)", "g", "e"]);
        }

        // Recorded under the alias: the same values, in a column named as asked.
        let (_, by_name) = ball_run(&app, key, id, json!({ "outputs": ["h"] })).await;
        let (run_id, by_alias) = ball_run(&app, key, id, json!({ "outputs": ["height"] })).await;
        let columns = by_alias["columns"].as_object().unwrap();
        assert_eq!(
            columns.keys().collect::<Vec<_>>(),
            ["height"],
            "FMI {version}"
        );
        let h = numbers(&by_name["columns"]["h"]);
        assert!(h.len() > 5 && h[0] == 1.0, "FMI {version}: {h:?}");
        assert_eq!(numbers(&by_alias["columns"]["height"]), h, "FMI {version}");
        let csv = app
            .get(&format!("/api/v1/runs/{run_id}/result?format=csv"), key)
            .await
            .text()
            .await
            .unwrap();
        assert_eq!(csv.lines().next(), Some("time,height"), "FMI {version}");
        // Both names in one run: two columns of the same values.
        let (_, both) = ball_run(&app, key, id, json!({ "outputs": ["h", "height"] })).await;
        assert_eq!(numbers(&both["columns"]["h"]), h, "FMI {version}");
        assert_eq!(numbers(&both["columns"]["height"]), h, "FMI {version}");
        // The run's settings say what was asked.
        let run = app.get_json(&format!("/api/v1/runs/{run_id}"), key).await;
        assert_eq!(
            run["settings"]["outputs"],
            json!(["height"]),
            "FMI {version}: {run}"
        );

        // Set through the alias: h starts at 2.
        let (_, started) = ball_run(
            &app,
            key,
            id,
            json!({ "outputs": ["h"], "start_values": { "height": 2 } }),
        )
        .await;
        let h2 = numbers(&started["columns"]["h"]);
        assert_eq!(h2[0], 2.0, "FMI {version}: {h2:?}");
        assert_ne!(h2, h, "FMI {version}");

        // A variable and its alias set in one request: refused, naming both fields.
        let resp = app
            .create_run(
                key,
                &json!({ "fmu_id": id, "start_values": { "h": 2, "height": 3 } }),
            )
            .await;
        assert_eq!(resp.status(), 422, "FMI {version}");
        let err: Value = resp.json().await.unwrap();
        let problems = err["problems"].as_array().unwrap();
        assert_eq!(problems.len(), 1, "FMI {version}: {err}");
        let message = problems[0]["message"].as_str().unwrap();
        assert!(
            message.contains("start_values.h ") && message.contains("start_values.height"),
            "FMI {version}: {err}"
        );
    }
}

#[tokio::test]
async fn an_input_is_driven_through_its_alias() {
    let app = spawn_app().await;
    let account = app.register().await;
    let key = &account.api_key;
    let bytes = with_model_description(library_fmu("Integrator", "3.0"), |xml| {
        with_fmi3_alias(
            xml,
            "u",
            r#"<Alias name="inflow" description="The input, by another name"/>"#,
        )
    });
    let fmu = upload(&app, key, bytes).await;
    let id = fmu["id"].as_str().unwrap();
    let run = |name: &str| {
        json!({
            "fmu_id": id,
            "stop_time": 2,
            "output_interval": 0.25,
            "outputs": ["y"],
            "inputs": [{ "name": name, "t": [0, 1, 1, 2], "u": [0, 0, 1, 1] }]
        })
    };
    let by_name = result_of(&app, key, &app.run(key, &run("u")).await).await;
    let by_alias = result_of(&app, key, &app.run(key, &run("inflow")).await).await;
    let y = numbers(&by_alias["columns"]["y"]);
    assert_eq!(y, numbers(&by_name["columns"]["y"]));
    // y = ∫u: 0 until t = 1, then t − 1.
    assert!((y.last().unwrap() - 1.0).abs() < 1e-6, "{y:?}");

    // The input and its alias in one request: refused, naming both.
    let mut both = run("u");
    both["inputs"]
        .as_array_mut()
        .unwrap()
        .push(json!({ "name": "inflow", "t": [0], "u": [1] }));
    let resp = app.create_run(key, &both).await;
    assert_eq!(resp.status(), 422);
    let err: Value = resp.json().await.unwrap();
    let message = err["problems"][0]["message"].as_str().unwrap();
    assert!(
        message.contains("inputs.u ") && message.contains("inputs.inflow"),
        "{err}"
    );
}
