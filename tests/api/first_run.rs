//! A newcomer's first run, the way the README tells it: the real binary started in a fresh
//! working directory with the default `./data`, or a relative `--data-dir`; the operator
//! commands and the local CLI on the same relative paths; the original SDK's calls; and a
//! server that cannot simulate saying so instead of taking credits.

use std::path::Path;
use std::process::{Command, Stdio};
use std::time::Duration;

use serde_json::{Value, json};

use crate::common::{
    Api, Binary, api_client, browser, csrf_from, free_port, page_text, spawn_app_with,
};

const EXE: &str = env!("CARGO_BIN_EXE_fmu-gateway");

/// `fmu-gateway serve` started in `cwd` with the listen address from the environment only, as
/// the README's quick start does (plus `args`); the inherited data-directory variable is
/// removed so the default applies.
async fn serve_in(cwd: &Path, args: &[&str]) -> Binary {
    let port = free_port();
    let mut command = Command::new(EXE);
    command
        .arg("serve")
        .args(args)
        .current_dir(cwd)
        .env_remove("FMU_GATEWAY_DATA_DIR")
        .env("FMU_GATEWAY_LISTEN", format!("127.0.0.1:{port}"))
        .stdout(Stdio::null())
        .stderr(Stdio::null());
    let server = Binary::spawn(command, port).await;
    let ready = api_client()
        .get(format!("{}/ready", server.url))
        .send()
        .await
        .unwrap();
    let status = ready.status();
    assert_eq!(status, 200, "{}", ready.text().await.unwrap());
    server
}

async fn register(url: &str, email: &str) -> String {
    let body = url.sign_up(email).await;
    assert_eq!(body["credits"], 25);
    body["api_key"].as_str().unwrap().to_string()
}

/// The README's run of `lib:BouncingBall`, checked against the closed form of free fall
/// (h = 2 - g t² / 2 before the first bounce at t = 0.639 s).
async fn run_the_readme_example(url: &str, key: &str) {
    let resp = api_client()
        .post(format!("{url}/api/v1/runs"))
        .header("X-API-Key", key)
        .header("Idempotency-Key", "order-42")
        .json(&json!({"fmu_id":"lib:BouncingBall","stop_time":3,"output_interval":0.01,"start_values":{"h":2}}))
        .send()
        .await
        .unwrap();
    assert_eq!(resp.status(), 201);
    let run: Value = resp.json().await.unwrap();
    assert_eq!(run["status"], "succeeded", "{run}");
    assert_eq!(run["charged"], true);
    let time = run["result"]["time"].as_array().unwrap();
    let h = run["result"]["columns"]["h"].as_array().unwrap();
    assert_eq!(time.len(), 301);
    for (t, h) in time.iter().zip(h).take(60) {
        let (t, h) = (t.as_f64().unwrap(), h.as_f64().unwrap());
        let expected = 2.0 - 9.81 * t * t / 2.0;
        assert!((h - expected).abs() < 1e-6, "h({t}) = {h}, not {expected}");
    }
    assert_eq!(url.balance(key).await, 24);
}

/// A browser signs up and starts the same run from the dashboard's form, as the first user
/// who found the data-directory bug did.
async fn run_from_the_dashboard(url: &str) {
    let client = browser();
    let resp = client
        .post(format!("{url}/register"))
        .form(&[
            ("email", "dashboard@example.com"),
            ("password", "a long password"),
            ("password_confirm", "a long password"),
        ])
        .send()
        .await
        .unwrap();
    assert_eq!(resp.status(), 303);
    let page = page_text(&client, format!("{url}/runs?fmu=lib:BouncingBall")).await;
    let csrf = csrf_from(&page).unwrap();
    let resp = client
        .post(format!("{url}/runs"))
        .form(&[
            ("csrf_token", csrf.as_str()),
            ("fmu", "lib:BouncingBall"),
            ("stop_time", "3"),
            ("output_interval", "0.01"),
            ("interface", "cs"),
            ("output", "h"),
        ])
        .send()
        .await
        .unwrap();
    assert_eq!(resp.status(), 303, "{}", resp.text().await.unwrap());
    let location = resp.headers()["location"].to_str().unwrap().to_string();
    for _ in 0..200 {
        let page = page_text(&client, format!("{url}{location}")).await;
        if page.contains("data-status=\"succeeded\"") {
            assert!(page.contains("Charged 1 credit."), "{page}");
            return;
        }
        assert!(!page.contains("data-status=\"failed\""), "{page}");
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
    panic!("the dashboard run did not succeed");
}

#[tokio::test]
async fn the_readme_quick_start_works_as_written() {
    let cwd = tempfile::tempdir().unwrap();
    let server = serve_in(cwd.path(), &[]).await;
    assert!(
        cwd.path().join("data/fmu-gateway.db").is_file(),
        "the default data directory is ./data in the working directory"
    );
    let key = register(&server.url, "ada@example.com").await;
    run_the_readme_example(&server.url, &key).await;
    run_from_the_dashboard(&server.url).await;
}

#[tokio::test]
async fn a_relative_data_dir_works_for_the_server_the_operator_and_the_cli() {
    let cwd = tempfile::tempdir().unwrap();
    let server = serve_in(cwd.path(), &["--data-dir", "state/../rel-data"]).await;
    assert!(cwd.path().join("rel-data/fmu-gateway.db").is_file());
    let key = register(&server.url, "grace@example.com").await;
    run_the_readme_example(&server.url, &key).await;

    // The operator's command, from the same directory, on the same relative path, while
    // the server runs.
    let out = Command::new(EXE)
        .current_dir(cwd.path())
        .env_remove("FMU_GATEWAY_DATA_DIR")
        .args(["admin", "--data-dir", "rel-data", "grant-credits"])
        .args(["--email", "grace@example.com", "--credits", "5"])
        .output()
        .unwrap();
    assert!(
        out.status.success(),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
    assert_eq!(server.balance(&key).await, 29);

    // The local CLI on a relative model path.
    let (_, _, bytes) = fmu_gateway::fmi::library::DEMO_FMUS
        .iter()
        .find(|(m, v, _)| *m == "BouncingBall" && *v == "3.0")
        .unwrap();
    std::fs::write(cwd.path().join("ball.fmu"), bytes).unwrap();
    let out = Command::new(EXE)
        .current_dir(cwd.path())
        .args(["fmu", "simulate", "ball.fmu", "--stop-time", "1"])
        .args(["--output-interval", "0.5", "-o", "out.csv"])
        .output()
        .unwrap();
    assert!(
        out.status.success(),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
    let csv = std::fs::read_to_string(cwd.path().join("out.csv")).unwrap();
    assert!(csv.starts_with("time,h,v\n"), "{csv}");
    assert_eq!(csv.lines().count(), 4, "{csv}");
}

#[tokio::test]
async fn a_server_that_cannot_simulate_says_why_and_takes_no_credits() {
    // A worker that cannot work: the self-test fails at start-up.
    let app = spawn_app_with(|c| c.worker_exe = Some("/bin/false".into())).await;
    let health = api_client().get(app.at("/health")).send().await.unwrap();
    assert_eq!(
        health.status(),
        200,
        "operators can still reach the service"
    );
    let ready = api_client().get(app.at("/ready")).send().await.unwrap();
    assert_eq!(ready.status(), 503);
    let body: Value = ready.json().await.unwrap();
    assert_eq!(body["ready"], false);
    let reason = body["reason"].as_str().unwrap();
    assert!(reason.contains("self-test failed"), "{body}");
    assert!(reason.contains("lib:Dahlquist"), "{body}");

    let account = app.register().await;
    let resp = app
        .create_run(&account.api_key, &json!({ "fmu_id": "lib:BouncingBall" }))
        .await;
    assert_eq!(resp.status(), 503);
    let err: Value = resp.json().await.unwrap();
    assert_eq!(err["code"], "service_unavailable", "{err}");
    assert_eq!(
        app.balance(&account.api_key).await,
        25,
        "nothing was reserved"
    );
}

#[tokio::test]
async fn a_request_with_several_problems_gets_one_422_naming_them_all() {
    let app = spawn_app_with(|_| {}).await;
    let account = app.register().await;
    let resp = app
        .create_run(
            &account.api_key,
            &json!({
                "fmu_id": "lib:BouncingBall",
                "outputs": ["h", "altitude"],
                "start_values": { "g": "heavy", "e": 1.5 },
                "inputs": [{ "name": "g", "t": [0, 1], "u": [9.81, 9.81] }]
            }),
        )
        .await;
    assert_eq!(resp.status(), 422);
    let err: Value = resp.json().await.unwrap();
    assert_eq!(err["code"], "invalid_request");
    let mut fields: Vec<&str> = err["problems"]
        .as_array()
        .unwrap()
        .iter()
        .map(|p| p["field"].as_str().unwrap())
        .collect();
    fields.sort();
    assert_eq!(
        fields,
        [
            "inputs.g",
            "outputs.altitude",
            "start_values.e",
            "start_values.g"
        ],
        "{err}"
    );
    let message = err["message"].as_str().unwrap();
    for needle in [
        "no variable 'altitude'",
        "'heavy' for 'g' is not a number",
        "above its maximum 1",
        "'g' is not an input",
    ] {
        assert!(message.contains(needle), "{needle}: {message}");
    }
    // Nothing moved: no run, no reservation.
    assert_eq!(app.balance(&account.api_key).await, 25);
    let runs = app.get_json("/api/v1/runs", &account.api_key).await;
    assert_eq!(runs["total"], 0);

    // The dashboard's form gives the same messages next to the fields and keeps the input.
    let client = browser();
    let csrf = app.browser_login(&client, &account).await;
    let resp = client
        .post(app.at("/runs"))
        .form(&[
            ("csrf_token", csrf.as_str()),
            ("fmu", "lib:BouncingBall"),
            ("stop_time", "3"),
            ("output_interval", "0.01"),
            ("start.e", "1.5"),
            ("start.g", "heavy"),
            ("output", "h"),
        ])
        .send()
        .await
        .unwrap();
    assert_eq!(resp.status(), 422);
    let page = resp.text().await.unwrap();
    assert!(page.contains("id=\"error-start_values.e\""), "{page}");
    assert!(page.contains("above its maximum 1"), "{page}");
    assert!(page.contains("id=\"error-start_values.g\""), "{page}");
    assert!(page.contains("value=\"1.5\""), "the typed value is kept");
    assert!(page.contains("value=\"heavy\""), "the typed value is kept");
    assert!(page.contains("nothing was charged"), "{page}");
}

#[tokio::test]
async fn the_original_sdk_reads_usage_and_the_registry_as_json() {
    let app = spawn_app_with(|_| {}).await;
    let account = app.register().await;
    app.record_usage(
        &account.user_id,
        "lib:BouncingBall",
        1,
        None,
        1_700_000_000_000,
    )
    .await;
    let expected = app.get_json("/usage/", &account.api_key).await;
    assert_eq!(expected.as_array().unwrap().len(), 1);
    // What the SDK sends: its User-Agent, the default Accept, either key header.
    for header in ["Authorization", "X-API-Key"] {
        let value = if header == "Authorization" {
            format!("Bearer {}", account.api_key)
        } else {
            account.api_key.clone()
        };
        let resp = reqwest::Client::builder()
            .user_agent("fmu-gateway-sdk/0.1.0")
            .redirect(reqwest::redirect::Policy::none())
            .build()
            .unwrap()
            .get(app.at("/usage"))
            .header(header, value)
            .send()
            .await
            .unwrap();
        assert_eq!(resp.status(), 200, "{header}");
        assert!(
            resp.headers()["content-type"]
                .to_str()
                .unwrap()
                .starts_with("application/json")
        );
        let body: Value = resp.json().await.unwrap();
        assert_eq!(body, expected, "{header}");
    }
    // Without a key, an API client gets a JSON 401, not the login page.
    let resp = api_client().get(app.at("/usage")).send().await.unwrap();
    assert_eq!(resp.status(), 401);
    let err: Value = resp.json().await.unwrap();
    assert_eq!(err["code"], "missing_api_key");

    // The old registry route lists the caller's uploads.
    let fmu = crate::common::fresh_fmu("VanDerPol", "3.0", "sdk");
    let uploaded: Value = app
        .upload_fmu(&account.api_key, fmu)
        .await
        .json()
        .await
        .unwrap();
    let list: Value = api_client()
        .get(app.at("/registry/fmus"))
        .header("X-API-Key", &account.api_key)
        .send()
        .await
        .unwrap()
        .json()
        .await
        .unwrap();
    let items = list["items"].as_array().unwrap();
    assert_eq!(items.len(), 1, "{list}");
    assert_eq!(items[0]["id"], uploaded["id"]);
    assert_eq!(items[0]["model_name"], "VanDerPol");
}
