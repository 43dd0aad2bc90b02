//! Logging as fmusim offers it, over the API: `log_fmi_calls` records every FMI call with its
//! arguments and status in the run's log, in order, bounded however long the run; and
//! `log_categories` enables the FMU's messages of those categories only.

use serde_json::{Value, json};

use crate::common::{Api, spawn_app};

/// The position of each `needle` in `log`, each after the one before; panics naming the
/// first one missing or out of order.
fn in_order(case: &str, log: &str, needles: &[&str]) {
    let mut from = 0;
    for needle in needles {
        match log[from..].find(needle) {
            Some(at) => from += at + needle.len(),
            None => panic!("{case}: '{needle}' missing or out of order in\n{log}"),
        }
    }
}

/// FMI 2 and FMI 3 Co-Simulation: instantiate … free, each call with its status; Model
/// Exchange, made by fmi-rs's driver, says once that its calls are not recorded.
#[tokio::test]
async fn a_run_records_its_fmi_calls_in_order_with_their_status() {
    let app = spawn_app().await;
    let key = app.register().await.api_key;
    let run = |fmu: &str, interface: &str| json!({ "fmu_id": fmu, "interface": interface, "stop_time": 0.2, "output_interval": 0.1, "log_fmi_calls": true });
    let cases: [(&str, &[&str]); 2] = [
        (
            "lib:BouncingBall",
            &[
                "[FMI] fmi3InstantiateCoSimulation(",
                "[FMI] fmi3EnterInitializationMode(",
                ") -> fmi3OK",
                "[FMI] fmi3ExitInitializationMode() -> fmi3OK",
                "[FMI] fmi3GetFloat64(",
                "[FMI] fmi3DoStep(currentCommunicationPoint=0.0, communicationStepSize=0.1",
                ") -> fmi3OK",
                "[FMI] fmi3DoStep(currentCommunicationPoint=0.1,",
                "[FMI] fmi3Terminate() -> fmi3OK",
                "[FMI] fmi3FreeInstance()",
            ],
        ),
        (
            "lib:BouncingBall@fmi2",
            &[
                "[FMI] fmi2Instantiate(",
                "[FMI] fmi2SetupExperiment(",
                "[FMI] fmi2EnterInitializationMode() -> fmi2OK",
                "[FMI] fmi2ExitInitializationMode() -> fmi2OK",
                "[FMI] fmi2GetReal(",
                "[FMI] fmi2DoStep(currentCommunicationPoint=0.0, communicationStepSize=0.1",
                ") -> fmi2OK",
                "[FMI] fmi2Terminate() -> fmi2OK",
                "[FMI] fmi2FreeInstance()",
            ],
        ),
    ];
    for (fmu, calls) in cases {
        let done = app.run(&key, &run(fmu, "cs")).await;
        assert_eq!(done["status"], "succeeded", "{done}");
        assert_eq!(done["settings"]["log_fmi_calls"], true, "{done}");
        let log = done["log"].as_str().unwrap();
        in_order(fmu, log, calls);
        assert_eq!(log.matches("FreeInstance").count(), 1, "{log}");
        // Without the option: no calls.
        let quiet = app
            .run(&key, &json!({ "fmu_id": fmu, "stop_time": 0.2 }))
            .await;
        assert!(
            !quiet["log"].as_str().unwrap_or("").contains("[FMI]"),
            "{quiet}"
        );
    }
    for fmu in ["lib:BouncingBall", "lib:BouncingBall@fmi2"] {
        let done = app.run(&key, &run(fmu, "me")).await;
        assert_eq!(done["status"], "succeeded", "{done}");
        let log = done["log"].as_str().unwrap();
        assert_eq!(log.matches("are not recorded").count(), 1, "{fmu}: {log}");
    }
}

/// A long run's call log stops at its bound and says so; the run succeeds and its log stays
/// within the log's limit (the recorded calls themselves are bounded in the worker:
/// `call_log::tests`).
#[tokio::test]
async fn the_call_log_of_a_long_run_is_bounded() {
    let app = spawn_app().await;
    let key = app.register().await.api_key;
    // 200 000 steps, each a doStep and a get: ~40 MB of calls unbounded.
    let done = app
        .run(
            &key,
            &json!({ "fmu_id": "lib:Dahlquist", "stop_time": 200.0, "output_interval": 0.001, "log_fmi_calls": true, "outputs": ["x"] }),
        )
        .await;
    assert_eq!(done["status"], "succeeded", "{done}");
    let log = done["log"].as_str().unwrap();
    assert!(log.len() <= 64 * 1024 + 200, "{} bytes", log.len());
    assert!(
        log.starts_with("[FMI] fmi3InstantiateCoSimulation("),
        "{log}"
    );
    assert!(
        log.contains("the FMI call log reached its limit of 1048576 bytes"),
        "{}",
        &log[log.len() - 500..]
    );
}

/// The model's categories are listed; one enabled gives its messages and only its own; an
/// unknown one is a 422 that lists the known ones; where they cannot be set, a 422 says why.
#[tokio::test]
async fn a_log_category_enables_its_messages_and_only_those() {
    let app = spawn_app().await;
    let key = app.register().await.api_key;
    let fmu = app.get_json("/api/v1/fmus/lib:BouncingBall", &key).await;
    assert_eq!(
        fmu["log_categories"],
        json!(["logEvents", "logStatusWarning", "logStatusError"]),
        "{fmu}"
    );
    let run = |categories: Value| json!({ "fmu_id": "lib:BouncingBall", "stop_time": 3.0, "output_interval": 0.1, "log_categories": categories });
    let events = app.run(&key, &run(json!(["logEvents"]))).await;
    assert_eq!(events["status"], "succeeded", "{events}");
    assert!(
        events["log"]
            .as_str()
            .unwrap()
            .contains("[INFO] [logEvents]"),
        "{events}"
    );
    assert_eq!(events["settings"]["log_categories"], json!(["logEvents"]));
    let warnings = app.run(&key, &run(json!(["logStatusWarning"]))).await;
    assert_eq!(warnings["status"], "succeeded", "{warnings}");
    assert!(
        !warnings["log"]
            .as_str()
            .unwrap_or("")
            .contains("[logEvents]"),
        "{warnings}"
    );

    let refused = |body: Value| {
        let app = &app;
        let key = key.clone();
        async move {
            let resp = app.create_run(&key, &body).await;
            assert_eq!(resp.status(), 422, "{body}");
            let answer: Value = resp.json().await.unwrap();
            answer["problems"][0].clone()
        }
    };
    let problem = refused(run(json!(["logAll"]))).await;
    assert_eq!(problem["field"], "log_categories.logAll");
    assert!(
        problem["message"]
            .as_str()
            .unwrap()
            .contains("logEvents, logStatusWarning, logStatusError"),
        "{problem}"
    );
    let problem =
        refused(json!({ "fmu_id": "lib:BouncingBall@fmi2", "log_categories": ["logEvents"] }))
            .await;
    assert!(
        problem["message"].as_str().unwrap().contains("FMI 3"),
        "{problem}"
    );
    let problem = refused(
        json!({ "fmu_id": "lib:BouncingBall", "interface": "me", "log_categories": ["logEvents"] }),
    )
    .await;
    assert!(
        problem["message"].as_str().unwrap().contains("driver"),
        "{problem}"
    );
}
