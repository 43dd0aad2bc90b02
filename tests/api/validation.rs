//! The validation report at upload, through the real server: one fixture per rule (a small
//! edit of a demo model's `modelDescription.xml`), each refused or accepted with its code,
//! severity and line; warnings accepted and shown; `lenient=true`; and the smoke test in the
//! sandbox, which catches an FMU that fails in `initialize`.

use serde_json::{Value, json};

use crate::common::archives::{library_fmu, with_model_description};
use crate::common::{Api, Binary, TestApp, browser, build_support, free_port, proc_kib, spawn_app};

/// A demo model with one edit of its model description (the edit must apply).
fn edited(model: &str, version: &str, from: &str, to: &str) -> (Vec<u8>, String) {
    let text = std::cell::RefCell::new(String::new());
    let bytes = with_model_description(library_fmu(model, version), |xml| {
        assert!(xml.contains(from), "{model} {version} has no {from:?}");
        *text.borrow_mut() = xml.replacen(from, to, 1);
        text.borrow().clone()
    });
    (bytes, text.into_inner())
}

/// The 1-based line of the first line of `text` containing `marker`.
fn line_of(text: &str, marker: &str) -> u64 {
    text.lines()
        .position(|l| l.contains(marker))
        .unwrap_or_else(|| panic!("no {marker:?} in {text}")) as u64
        + 1
}

/// Uploads `bytes` (strict) and returns the problems it was refused with, or the report of the
/// accepted FMU.
async fn problems_of(app: &TestApp, key: &str, bytes: Vec<u8>) -> (u16, Vec<Value>) {
    let resp = app.upload_fmu(key, bytes).await;
    let status = resp.status().as_u16();
    let body: Value = resp.json().await.unwrap();
    match status {
        422 => {
            assert_eq!(body["code"], "invalid_fmu", "{body}");
            (status, body["problems"].as_array().unwrap().clone())
        }
        200 | 201 => {
            let id = body["id"].as_str().unwrap();
            let report = app
                .get_json(&format!("/api/v1/fmus/{id}/validation"), key)
                .await;
            (status, report["problems"].as_array().unwrap().clone())
        }
        other => panic!("{other}: {body}"),
    }
}

struct Fixture {
    model: &'static str,
    version: &'static str,
    from: &'static str,
    to: &'static str,
    code: &'static str,
    /// Where the problem is: the line containing this text after the edit, or none (a problem
    /// of the whole file).
    at: Option<&'static str>,
}

const fn fixture(
    model: &'static str,
    version: &'static str,
    from: &'static str,
    to: &'static str,
    code: &'static str,
    at: Option<&'static str>,
) -> Fixture {
    Fixture {
        model,
        version,
        from,
        to,
        code,
        at,
    }
}

/// Errors: each refuses the upload (422 `invalid_fmu`) with its code at its line.
const ERRORS: &[Fixture] = &[
    fixture(
        "BouncingBall",
        "3.0",
        r#"name="v" valueReference="3""#,
        r#"name="h" valueReference="3""#,
        "duplicate_variable_name",
        Some(r#"name="h" valueReference="3""#),
    ),
    fixture(
        "BouncingBall",
        "3.0",
        r#"name="e" valueReference="6""#,
        r#"name="e" valueReference="5""#,
        "duplicate_value_reference",
        Some(r#"name="e" valueReference="5""#),
    ),
    fixture(
        "BouncingBall",
        "3.0",
        r#"name="g" valueReference="5" causality="parameter""#,
        r#"name="g" valueReference="5" causality="input""#,
        "illegal_combination",
        Some(r#"name="g""#),
    ),
    fixture(
        "BouncingBall",
        "3.0",
        r#"name="v" valueReference="3" causality="output" variability="continuous" initial="exact""#,
        r#"name="v" valueReference="3" causality="output" variability="continuous" initial="calculated""#,
        "start_not_allowed",
        Some(r#"name="v""#),
    ),
    fixture(
        "BouncingBall",
        "3.0",
        r#"derivative="1" unit="m/s""#,
        r#"derivative="1" start="0" unit="m/s""#,
        "start_not_allowed",
        Some(r#"name="der(h)""#),
    ),
    fixture(
        "BouncingBall",
        "3.0",
        r#"start="9.81""#,
        r#"start="fast""#,
        "invalid_value",
        Some(r#"name="g""#),
    ),
    fixture(
        "BouncingBall",
        "3.0",
        r#"start="0.7" min="0" max="1""#,
        r#"start="1.7" min="0" max="1""#,
        "start_out_of_range",
        Some(r#"name="e""#),
    ),
    fixture(
        "BouncingBall",
        "3.0",
        r#"start="0.7" min="0" max="1""#,
        r#"start="0.7" min="2" max="1""#,
        "min_above_max",
        Some(r#"name="e""#),
    ),
    fixture(
        "BouncingBall",
        "3.0",
        r#"<ContinuousStateDerivative valueReference="4"/>"#,
        "",
        "missing_derivative",
        Some(r#"name="der(v)""#),
    ),
    fixture(
        "BouncingBall",
        "3.0",
        r#"variableNamingConvention="flat""#,
        r#"variableNamingConvention="structured""#,
        "invalid_structured_name",
        // "h_ft" is an alias; "der(h)" is structured; only the edited name below breaks it.
        None,
    ),
    fixture(
        "StateSpace",
        "3.0",
        r#"<UInt64 name="m" valueReference="1" causality="structuralParameter" variability="fixed""#,
        r#"<UInt64 name="m" valueReference="1" causality="structuralParameter" variability="continuous""#,
        "continuous_not_float",
        Some(r#"<UInt64 name="m""#),
    ),
    fixture(
        "StateSpace",
        "3.0",
        r#"name="n" valueReference="2" causality="structuralParameter""#,
        r#"name="n" valueReference="2" causality="parameter""#,
        "invalid_dimension",
        Some(r#"<Dimension valueReference="2"/>"#),
    ),
    fixture(
        "Dahlquist",
        "2.0",
        r#"<Real start="1"/>
    </ScalarVariable>
    <!-- index 3 -->"#,
        r#"<Real/>
    </ScalarVariable>
    <!-- index 3 -->"#,
        "missing_start",
        Some(r#"name="x""#),
    ),
    fixture(
        "Dahlquist",
        "2.0",
        r#"<Real derivative="2"/>"#,
        r#"<Real derivative="2" declaredType="Rate"/>"#,
        "unknown_declared_type",
        Some(r#"declaredType="Rate""#),
    ),
    fixture(
        "Dahlquist",
        "2.0",
        "</ModelVariables>",
        "</ModelVariable>",
        "xml_not_well_formed",
        Some("</ModelVariable>"),
    ),
    fixture(
        "BouncingBall",
        "3.0",
        r#"<Output valueReference="3"/>"#,
        "",
        // fmusim's rule that ModelStructure lists exactly the outputs, as fmi-rs reports it.
        "fmi_rule",
        None,
    ),
];

/// Warnings: each is accepted (201) and listed in the report with its line.
const WARNINGS: &[Fixture] = &[
    fixture(
        "BouncingBall",
        "3.0",
        r#"unit="m/s2" description="Gravitational"#,
        r#"unit="furlong" description="Gravitational"#,
        "unknown_unit",
        Some(r#"name="g""#),
    ),
    fixture(
        "Dahlquist",
        "2.0",
        r#"  <DefaultExperiment startTime="0" stopTime="10" stepSize="0.1"/>
"#,
        "",
        "no_default_experiment",
        Some("<fmiModelDescription"),
    ),
];

#[tokio::test]
async fn every_rule_is_reported_with_its_code_severity_and_line() {
    let app = spawn_app().await;
    let key = app.register().await.api_key;
    for (fixtures, severity) in [(ERRORS, "error"), (WARNINGS, "warning")] {
        for f in fixtures {
            let (mut bytes, mut text) = edited(f.model, f.version, f.from, f.to);
            if f.code == "invalid_structured_name" {
                // Under the structured convention, a name with an empty part is illegal.
                let renamed = text.replacen(r#"name="e""#, r#"name="e..x""#, 1);
                bytes = with_model_description(&bytes, |_| renamed.clone());
                text = renamed;
            }
            let (status, problems) = problems_of(&app, &key, bytes).await;
            let expected_status = if severity == "error" { 422 } else { 201 };
            assert_eq!(status, expected_status, "{}: {problems:?}", f.code);
            let found = problems
                .iter()
                .find(|p| p["code"] == f.code)
                .unwrap_or_else(|| panic!("no {} in {problems:?}", f.code));
            if severity == "warning" {
                assert_eq!(found["severity"], "warning", "{found}");
            }
            let expected_line = match (f.at, f.code) {
                (Some(marker), _) => Some(line_of(&text, marker)),
                (None, "invalid_structured_name") => Some(line_of(&text, r#"name="e..x""#)),
                (None, _) => None,
            };
            assert_eq!(found["line"].as_u64(), expected_line, "{}: {found}", f.code);
            assert!(
                !found["message"].as_str().unwrap().is_empty(),
                "{}: {found}",
                f.code
            );
            if severity == "error" {
                // A refused upload left nothing behind.
                assert_eq!(
                    app.get_json("/api/v1/me", &key).await["storage_used_bytes"],
                    0
                );
            }
        }
    }
}

#[tokio::test]
async fn warnings_are_shown_on_the_fmu_and_a_clean_model_is_valid() {
    let app = spawn_app().await;
    let key = app.register().await.api_key;
    let (bytes, _) = edited(
        "BouncingBall",
        "3.0",
        r#"unit="m/s2" description="Gravitational"#,
        r#"unit="furlong" description="Gravitational"#,
    );
    let resp = app.upload_fmu(&key, bytes).await;
    assert_eq!(resp.status(), 201);
    let fmu: Value = resp.json().await.unwrap();
    assert_eq!(fmu["warnings"][0]["code"], "unknown_unit", "{fmu}");
    assert!(
        fmu["warnings"][0]["message"]
            .as_str()
            .unwrap()
            .contains("furlong"),
        "{fmu}"
    );
    let id = fmu["id"].as_str().unwrap();
    let report = app
        .get_json(&format!("/api/v1/fmus/{id}/validation"), &key)
        .await;
    assert_eq!(report["valid"], true, "{report}");
    assert_eq!(report["lenient"], false, "{report}");
    assert_eq!(report["warnings"], 1, "{report}");
    // Both interfaces were smoke-tested in the sandbox, and passed.
    let smoke = report["smoke_tests"].as_array().unwrap();
    assert_eq!(smoke.len(), 2, "{report}");
    for (test, interface) in smoke.iter().zip(["co_simulation", "model_exchange"]) {
        assert_eq!(test["interface"], interface);
        assert_eq!(test["outcome"], "passed", "{test}");
        assert_eq!(test["start_time"], 0.0);
        assert_eq!(
            test["stop_time"], 0.01,
            "one step of the default experiment's"
        );
    }
    // The library's models were checked too (without a smoke test).
    let library = app
        .get_json("/api/v1/fmus/lib:BouncingBall/validation", &key)
        .await;
    assert_eq!(library["valid"], true, "{library}");
    assert_eq!(library["problems"], json!([]), "{library}");
    assert_eq!(library["smoke_tests"], json!([]), "{library}");
}

#[tokio::test]
async fn lenient_accepts_errors_records_them_and_strict_uploads_of_the_same_bytes_stay_refused() {
    let app = spawn_app().await;
    let key = app.register().await.api_key;
    let (bytes, text) = edited(
        "BouncingBall",
        "3.0",
        r#"start="0.7" min="0" max="1""#,
        r#"start="1.7" min="0" max="1""#,
    );
    let strict = app.upload_fmu(&key, bytes.clone()).await;
    assert_eq!(strict.status(), 422);
    let refusal: Value = strict.json().await.unwrap();
    assert!(
        refusal["message"].as_str().unwrap().ends_with(
            "; to accept it anyway (its errors kept in its validation report), upload it with \
             lenient=true"
        ),
        "{refusal}"
    );
    let lenient = app
        .upload_fmu_with(&key, "?lenient=true", bytes.clone())
        .await;
    assert_eq!(lenient.status(), 201);
    let id = lenient.json::<Value>().await.unwrap()["id"]
        .as_str()
        .unwrap()
        .to_string();
    let report = app
        .get_json(&format!("/api/v1/fmus/{id}/validation"), &key)
        .await;
    assert_eq!(report["valid"], false, "{report}");
    assert_eq!(report["lenient"], true, "{report}");
    assert_eq!(report["errors"], 1, "{report}");
    let problem = &report["problems"][0];
    assert_eq!(problem["code"], "start_out_of_range", "{report}");
    assert_eq!(problem["severity"], "error");
    assert_eq!(
        problem["line"].as_u64(),
        Some(line_of(&text, r#"name="e""#))
    );
    // It runs (FMPy would run it too), with the start value the model declares.
    let run = app
        .run(&key, &json!({ "fmu_id": id, "stop_time": 0.1 }))
        .await;
    assert_eq!(run["status"], "succeeded", "{run}");

    // Another account's strict upload of the same bytes is refused by the stored report.
    let other = app.register().await.api_key;
    let again = app.upload_fmu(&other, bytes).await;
    assert_eq!(again.status(), 422);
    let body: Value = again.json().await.unwrap();
    assert_eq!(body["problems"][0]["code"], "start_out_of_range", "{body}");

    // What no parser reads is refused, lenient or not.
    let (unreadable, _) = edited(
        "BouncingBall",
        "3.0",
        r#"instantiationToken="{6839b749-c407-49d3-8ee1-e92ff8548400}""#,
        "",
    );
    let resp = app.upload_fmu_with(&key, "?lenient=true", unreadable).await;
    assert_eq!(resp.status(), 422);
    let body: Value = resp.json().await.unwrap();
    assert_eq!(
        body["problems"][0]["code"], "model_description_unreadable",
        "{body}"
    );
    // No hint to try lenient: it would not help.
    assert!(
        !body["message"].as_str().unwrap().contains("lenient"),
        "{body}"
    );
    assert!(
        body["message"]
            .as_str()
            .unwrap()
            .contains("instantiationToken"),
        "{body}"
    );
}

/// Dahlquist built from our C sources with `FAIL_INITIALIZE`: it returns an error from
/// `ExitInitializationMode`, which only running it can show.
fn failing_initialize(version: build_support::FmiVersion) -> Vec<u8> {
    let out = tempfile::tempdir().unwrap();
    let fmus = std::path::PathBuf::from(env!("CARGO_MANIFEST_DIR")).join("fmus");
    let path = build_support::build_fmu(
        &fmus,
        "Dahlquist",
        version,
        &["FAIL_INITIALIZE"],
        out.path(),
        "fail_initialize",
    )
    .expect("the FMU builds");
    std::fs::read(path).unwrap()
}

#[tokio::test]
async fn the_smoke_test_catches_an_fmu_that_fails_in_initialize() {
    let app = spawn_app().await;
    let key = app.register().await.api_key;
    for version in [build_support::FmiVersion::V3, build_support::FmiVersion::V2] {
        let bytes = failing_initialize(version);
        let used = app.get_json("/api/v1/me", &key).await["storage_used_bytes"].clone();
        let resp = app.upload_fmu(&key, bytes.clone()).await;
        assert_eq!(resp.status(), 422);
        let body: Value = resp.json().await.unwrap();
        let problems = body["problems"].as_array().unwrap();
        // Both interfaces fail, each named, and nothing in the files is wrong.
        assert_eq!(problems.len(), 2, "{body}");
        for (p, interface) in problems.iter().zip(["co_simulation", "model_exchange"]) {
            assert_eq!(p["code"], "smoke_test_failed", "{body}");
            assert_eq!(p["field"], interface, "{body}");
            assert!(p.get("line").is_none(), "{body}");
        }
        assert_eq!(
            app.get_json("/api/v1/me", &key).await["storage_used_bytes"],
            used
        );

        // Lenient: accepted, with the failed smoke tests and the FMU's own log in the report.
        let resp = app.upload_fmu_with(&key, "?lenient=true", bytes).await;
        assert_eq!(resp.status(), 201);
        let id = resp.json::<Value>().await.unwrap()["id"]
            .as_str()
            .unwrap()
            .to_string();
        let report = app
            .get_json(&format!("/api/v1/fmus/{id}/validation"), &key)
            .await;
        assert_eq!(report["errors"], 2, "{report}");
        for test in report["smoke_tests"].as_array().unwrap() {
            assert_eq!(test["outcome"], "failed", "{test}");
            assert!(
                test["log"]
                    .as_str()
                    .unwrap()
                    .contains("initialization failed on purpose (FAIL_INITIALIZE)"),
                "{test}"
            );
            assert!(test["duration_ms"].as_u64().is_some(), "{test}");
        }
    }
}

#[tokio::test]
async fn the_model_page_shows_the_report() {
    let app = spawn_app().await;
    let account = app.register().await;
    let (bytes, _) = edited(
        "BouncingBall",
        "3.0",
        r#"start="0.7" min="0" max="1""#,
        r#"start="1.7" min="0" max="1""#,
    );
    let resp = app
        .upload_fmu_with(&account.api_key, "?lenient=true", bytes)
        .await;
    let id = resp.json::<Value>().await.unwrap()["id"]
        .as_str()
        .unwrap()
        .to_string();
    let browser = browser();
    app.browser_login(&browser, &account).await;
    let page = browser
        .get(app.at(&format!("/library/{id}")))
        .send()
        .await
        .unwrap()
        .text()
        .await
        .unwrap();
    assert!(page.contains("id=\"validation\""), "{page}");
    assert!(page.contains("Accepted despite 1 error"), "{page}");
    assert!(page.contains("start_out_of_range"), "{page}");
    assert!(
        page.contains("Smoke test, co simulation: <strong>passed</strong>"),
        "{page}"
    );
}

/// A generated model description that breaks a rule on each of its 50,000 extra variables:
/// refused with the first 1,000 problems listed and the rest counted, in bounded memory.
#[tokio::test]
async fn fifty_thousand_problems_are_counted_not_all_listed_in_bounded_memory() {
    const EXTRA: usize = 50_000;
    let dir = tempfile::tempdir().unwrap();
    let server = Binary::start(&dir.path().join("data"), free_port(), &[]).await;
    let key = server.sign_up("generated@example.com").await["api_key"]
        .as_str()
        .unwrap()
        .to_string();
    let mut extra = String::with_capacity(EXTRA * 120);
    for i in 0..EXTRA {
        extra.push_str(&format!(
            "    <Float64 name=\"p{i}\" valueReference=\"{}\" causality=\"parameter\" variability=\"fixed\" start=\"2\" max=\"1\"/>\n",
            100 + i
        ));
    }
    let bytes = with_model_description(library_fmu("BouncingBall", "3.0"), |xml| {
        xml.replacen(
            "  </ModelVariables>",
            &format!("{extra}  </ModelVariables>"),
            1,
        )
    });
    let pid = server.child.id();
    let before = proc_kib(pid, "VmHWM");
    let started = std::time::Instant::now();
    let resp = server.upload_fmu(&key, bytes).await;
    let elapsed = started.elapsed();
    let after = proc_kib(pid, "VmHWM");
    assert_eq!(resp.status(), 422);
    let body: Value = resp.json().await.unwrap();
    let problems = body["problems"].as_array().unwrap();
    assert_eq!(problems.len(), 1_000);
    assert!(problems.iter().all(|p| p["code"] == "start_out_of_range"));
    let message = body["message"].as_str().unwrap();
    assert!(
        message.starts_with(&format!("the FMU has {EXTRA} errors: "))
            && message.ends_with(&format!("; and {} more", EXTRA - 5)),
        "{}",
        &message[..message.len().min(300)]
    );
    eprintln!(
        "{EXTRA} variables, each with an error ({} MB of XML): VmHWM {before} -> {after} KiB, {elapsed:?}",
        extra.len() >> 20
    );
    // The model description is parsed three times (our rules, fmi-rs's rules, the summary),
    // one after the other, never held together.
    // (Measured: 58 MiB of peak growth for these 5 MB of XML.)
    assert!(
        after.saturating_sub(before) < 128 << 10,
        "VmHWM grew by {} MiB",
        (after - before) >> 10
    );
    // And the server still serves.
    assert_eq!(server.balance(&key).await, 25);
}
