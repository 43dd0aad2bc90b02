//! The access log of the real binary, read from its output: by default fast successful
//! requests are not logged, while server errors and slow requests are, with method, route
//! pattern, status and duration; `FMU_GATEWAY_ACCESS_LOG=all` logs every request.

use serde_json::{Value, json};

use crate::common::{Api, Binary, api_client, free_port};

/// The server with JSON logs written to a file; returns it, the log path and an API key.
async fn start(
    dir: &std::path::Path,
    env: &[(&str, &str)],
) -> (Binary, std::path::PathBuf, String) {
    let port = free_port();
    let log = dir.join("server.log");
    let file = std::fs::File::create(&log).unwrap();
    let mut env = env.to_vec();
    env.push(("FMU_GATEWAY_LOG_FORMAT", "json"));
    let mut command = Binary::command(port, &env);
    command
        .arg("--data-dir")
        .arg(dir.join("data"))
        .stdout(file.try_clone().unwrap())
        .stderr(file);
    if let Some(url) = crate::common::db::database_url(&dir.join("data")).await {
        command.env("FMU_GATEWAY_DATABASE_URL", url);
    }
    let server = Binary::spawn(command, port).await;
    let resp = api_client()
        .post(format!("{}/register", server.url))
        .json(&json!({ "email": "logged@example.com", "password": "a long password" }))
        .send()
        .await
        .unwrap();
    assert_eq!(resp.status(), 201);
    let key = resp.json::<Value>().await.unwrap()["api_key"]
        .as_str()
        .unwrap()
        .to_string();
    (server, log, key)
}

/// The access-log lines (message "request") the server wrote.
fn requests_logged(log: &std::path::Path) -> Vec<Value> {
    std::fs::read_to_string(log)
        .unwrap()
        .lines()
        .filter_map(|l| serde_json::from_str::<Value>(l).ok())
        .filter(|l| l["fields"]["message"] == "request")
        .collect()
}

async fn get_usage(server: &Binary, key: &str) -> reqwest::StatusCode {
    server.get("/api/v1/usage?limit=5", key).await.status()
}

#[tokio::test]
async fn by_default_only_server_errors_and_slow_requests_are_logged() {
    let dir = tempfile::tempdir().unwrap();
    // Slow means over 300 ms; a run that lasts longer than the 800 ms sync wait makes its
    // request take 800 ms (answered 202), while reads take a few milliseconds.
    let env = [
        ("FMU_GATEWAY_SLOW_REQUEST_MS", "300"),
        ("FMU_GATEWAY_SYNC_WAIT_MS", "800"),
    ];
    let (mut server, log, key) = start(dir.path(), &env).await;
    for _ in 0..20 {
        assert_eq!(get_usage(&server, &key).await, 200);
        let health = api_client()
            .get(format!("{}/health", server.url))
            .send()
            .await
            .unwrap();
        assert_eq!(health.status(), 200);
    }
    // A client error: logged at debug only, so not at the default level.
    let missing = server.get("/api/v1/runs/no-such-run", &key).await;
    assert_eq!(missing.status(), 404);
    // A slow request: a run far longer than the sync wait.
    let started = std::time::Instant::now();
    let run = server
        .create_run(
            &key,
            &json!({ "fmu_id": "lib:VanDerPol", "stop_time": 1000000.0, "output_interval": 1.0 }),
        )
        .await;
    assert_eq!(run.status(), 202);
    assert!(started.elapsed() >= std::time::Duration::from_millis(800));
    // A server error: the database loses the usage table under the running server.
    let conn = crate::common::db::open(&dir.path().join("data"))
        .await
        .conn()
        .unwrap();
    conn.execute_batch("DROP TABLE usage").unwrap();
    assert_eq!(get_usage(&server, &key).await, 500);
    server.terminate(std::time::Duration::from_secs(10)).await;

    let logged = requests_logged(&log);
    let summary: Vec<(String, String, u64)> = logged
        .iter()
        .map(|l| {
            (
                l["level"].as_str().unwrap().to_string(),
                l["fields"]["route"].as_str().unwrap().to_string(),
                l["fields"]["status"].as_u64().unwrap(),
            )
        })
        .collect();
    assert_eq!(
        summary,
        [
            ("WARN".to_string(), "/api/v1/runs".to_string(), 202),
            ("ERROR".to_string(), "/api/v1/usage".to_string(), 500),
        ],
        "{logged:#?}"
    );
    for line in &logged {
        assert!(line["fields"]["duration_ms"].as_f64().is_some(), "{line}");
    }
    let slow = logged[0]["fields"]["duration_ms"].as_f64().unwrap();
    assert!(slow >= 800.0, "{slow}");
    assert_eq!(logged[0]["fields"]["method"], "POST");
    assert_eq!(logged[1]["fields"]["method"], "GET");
}

#[tokio::test]
async fn access_log_all_logs_every_request_by_route() {
    let dir = tempfile::tempdir().unwrap();
    let (mut server, log, key) = start(dir.path(), &[("FMU_GATEWAY_ACCESS_LOG", "all")]).await;
    for _ in 0..5 {
        assert_eq!(get_usage(&server, &key).await, 200);
    }
    server.terminate(std::time::Duration::from_secs(10)).await;
    let logged = requests_logged(&log);
    let usage: Vec<&Value> = logged
        .iter()
        .filter(|l| l["fields"]["route"] == "/api/v1/usage")
        .collect();
    assert_eq!(usage.len(), 5, "{logged:#?}");
    for line in usage {
        assert_eq!(line["level"], "INFO");
        assert_eq!(line["fields"]["status"], 200);
        assert_eq!(line["fields"]["method"], "GET");
    }
    // The registration was logged too, and no line carries the path's own text.
    assert!(logged.iter().any(|l| l["fields"]["route"] == "/register"));
}
