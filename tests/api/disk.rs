//! The data volume stays bounded: a per-account upload quota, results removed after their
//! retention period (with a 410 that says when), a free-space reserve below which new work
//! waits, and a worker configuration that must fit in the machine's memory.

use std::time::Duration;

use serde_json::{Value, json};

use crate::common::{Api, Binary, TestApp, api_client, free_port, fresh_fmu, spawn_app_with};

/// Entries in the registry directory (library models, uploads and their extracted trees).
fn registry_entries(app: &TestApp) -> Vec<String> {
    let mut names: Vec<String> = std::fs::read_dir(app.data_dir.join("fmus"))
        .unwrap()
        .map(|e| e.unwrap().file_name().to_string_lossy().into_owned())
        .collect();
    names.sort();
    names
}

async fn storage_used(app: &TestApp, user_id: &str) -> i64 {
    app.state.store.storage_used(&user_id.into()).await.unwrap()
}

/// An FMU with `padding` bytes of incompressible data under `extra/`, so its size is known.
fn padded_fmu(note: &str, padding: usize) -> Vec<u8> {
    use std::io::{Read, Write};
    let base = fresh_fmu("Dahlquist", "3.0", note);
    let mut source = zip::ZipArchive::new(std::io::Cursor::new(base)).unwrap();
    let mut out = zip::ZipWriter::new(std::io::Cursor::new(Vec::new()));
    let options = zip::write::SimpleFileOptions::default();
    for i in 0..source.len() {
        let mut entry = source.by_index(i).unwrap();
        let name = entry.name().unwrap().to_string();
        let mut data = Vec::new();
        entry.read_to_end(&mut data).unwrap();
        out.start_file(name, options).unwrap();
        out.write_all(&data).unwrap();
    }
    // A simple LCG: incompressible enough for deflate, no extra crate.
    let mut x: u64 = note.bytes().fold(7, |a, b| a * 31 + u64::from(b));
    let noise: Vec<u8> = (0..padding)
        .map(|_| {
            x = x
                .wrapping_mul(6364136223846793005)
                .wrapping_add(1442695040888963407);
            (x >> 56) as u8
        })
        .collect();
    out.start_file("extra/noise.bin", options).unwrap();
    out.write_all(&noise).unwrap();
    out.finish().unwrap().into_inner()
}

#[tokio::test]
async fn an_upload_past_the_storage_quota_is_refused_and_leaves_nothing_behind() {
    // Each upload takes ~2 × 300 KB on disk (the .fmu and its extracted tree): two fit in
    // 1.5 MiB, three do not.
    let app = spawn_app_with(|c| c.storage_quota_bytes = 3 << 19).await;
    let ada = app.register().await;
    let before = registry_entries(&app);

    let first = app
        .upload_fmu(&ada.api_key, padded_fmu("first", 300_000))
        .await;
    assert_eq!(first.status(), 201, "{}", first.text().await.unwrap());
    let first: Value = first.json().await.unwrap();
    let used = storage_used(&app, &ada.user_id).await;
    assert!(
        used > 600_000,
        "the quota counts the file and its extracted tree: {used}"
    );
    let me = app.get_json("/api/v1/me", &ada.api_key).await;
    assert_eq!(me["storage_used_bytes"], used, "{me}");
    assert_eq!(me["storage_quota_bytes"], 3 << 19);
    let second = app
        .upload_fmu(&ada.api_key, padded_fmu("second", 300_000))
        .await;
    assert_eq!(second.status(), 201);
    let with_two = registry_entries(&app);

    let third = app
        .upload_fmu(&ada.api_key, padded_fmu("third", 300_000))
        .await;
    assert_eq!(third.status(), 413);
    let body: Value = third.json().await.unwrap();
    assert_eq!(body["code"], "storage_quota_exceeded", "{body}");
    let message = body["message"].as_str().unwrap();
    assert!(
        message.contains("quota") && message.contains("1.5 MiB"),
        "{message}"
    );
    assert_eq!(
        registry_entries(&app),
        with_two,
        "a refused upload leaves no file, no extracted tree and no temp file"
    );
    let listed = app.get_json("/api/v1/fmus", &ada.api_key).await;
    let uploads = listed
        .as_array()
        .unwrap()
        .iter()
        .filter(|f| f["library_id"].is_null())
        .count();
    assert_eq!(uploads, 2, "{listed}");

    // A body far past the quota is cut off while it streams (the limit is checked per chunk).
    let huge = app.upload_fmu(&ada.api_key, vec![0x55; 20 << 20]).await;
    assert_eq!(huge.status(), 413);
    assert_eq!(registry_entries(&app), with_two);

    // Room made by deleting is room to upload again; another account has its own quota.
    let resp = app
        .delete(
            &format!("/api/v1/fmus/{}", first["id"].as_str().unwrap()),
            &ada.api_key,
        )
        .await;
    assert!(resp.status().is_success(), "{}", resp.status());
    let third = app
        .upload_fmu(&ada.api_key, padded_fmu("third", 300_000))
        .await;
    assert_eq!(third.status(), 201);
    let bob = app.register().await;
    let resp = app
        .upload_fmu(&bob.api_key, padded_fmu("bob", 300_000))
        .await;
    assert_eq!(resp.status(), 201);
    assert!(registry_entries(&app).len() > before.len());
}

async fn register(url: &str) -> (String, String) {
    let body = url.sign_up("keeper@example.com").await;
    (
        body["api_key"].as_str().unwrap().to_string(),
        body["user_id"].as_str().unwrap().to_string(),
    )
}

async fn run_dahlquist(url: &str, key: &str) -> Value {
    let resp = url
        .create_run(key, &json!({"fmu_id": "lib:Dahlquist", "stop_time": 1}))
        .await;
    let status = resp.status();
    let body: Value = resp.json().await.unwrap();
    assert_eq!(status, 201, "{body}");
    body
}

#[tokio::test]
async fn results_past_their_retention_are_removed_and_answer_410_with_the_date() {
    let dir = tempfile::tempdir().unwrap();
    let data = dir.path().join("data");
    let port = free_port();
    let mut server = Binary::start(&data, port, &[]).await;
    let (key, _) = register(&server.url).await;
    let old = run_dahlquist(&server.url, &key).await;
    let recent = run_dahlquist(&server.url, &key).await;
    let old_id = old["id"].as_str().unwrap().to_string();
    let finished = time::OffsetDateTime::parse(
        old["finished_at"].as_str().unwrap(),
        &time::format_description::well_known::Rfc3339,
    )
    .unwrap();
    let expires = time::OffsetDateTime::parse(
        old["result_expires_at"].as_str().unwrap(),
        &time::format_description::well_known::Rfc3339,
    )
    .unwrap();
    assert_eq!(
        (expires - finished).whole_days(),
        30,
        "kept 30 days by default"
    );
    let result_file = data.join("runs").join(format!("{old_id}.result"));
    assert!(result_file.exists());
    assert!(server.terminate(Duration::from_secs(20)).await.success());
    // What a run cut off by a crash would have left half-written.
    let partial = data.join("runs").join("run_interrupted.partial");
    std::fs::write(&partial, b"half a result").unwrap();

    // 31 days pass for the first run.
    let conn = crate::common::db::open(&data).await.conn().unwrap();
    let month_ms: i64 = 31 * 24 * 3600 * 1000;
    conn.execute(
        "UPDATE runs SET finished_at = finished_at - ?2, created_at = created_at - ?2 WHERE id = ?1",
        fmu_gateway::sql_params![old_id, month_ms],
    )
    .unwrap();
    drop(conn);

    let server = Binary::start(&data, port, &[]).await;
    assert!(!result_file.exists(), "the clean-up at start removed it");
    assert!(
        !partial.exists(),
        "and the half-written result of an interrupted run"
    );
    let resp = server
        .get(&format!("/api/v1/runs/{old_id}/result"), &key)
        .await;
    assert_eq!(resp.status(), 410);
    let body: Value = resp.json().await.unwrap();
    assert_eq!(body["code"], "result_expired");
    assert!(
        body["message"]
            .as_str()
            .unwrap()
            .contains("kept for 30 days"),
        "{body}"
    );
    // The run itself stays in the history, and its summary still answers.
    let run = server
        .get_json(&format!("/api/v1/runs/{old_id}"), &key)
        .await;
    assert_eq!(run["status"], "succeeded");
    let compat = server.get(&format!("/simulations/{old_id}"), &key).await;
    assert_eq!(compat.status(), 200);
    // The recent run's results are untouched.
    let recent_csv = format!(
        "/api/v1/runs/{}/result?format=csv",
        recent["id"].as_str().unwrap()
    );
    let resp = server.get(&recent_csv, &key).await;
    assert_eq!(resp.status(), 200);
}

#[tokio::test]
async fn below_the_disk_reserve_new_work_waits_and_nothing_is_charged() {
    let dir = tempfile::tempdir().unwrap();
    let port = free_port();
    // A reserve larger than any disk: the volume is "nearly full" from the start.
    let server = Binary::start(
        &dir.path().join("data"),
        port,
        &[("FMU_GATEWAY_DISK_RESERVE_MB", "1000000000")],
    )
    .await;
    let ready = api_client()
        .get(format!("{}/ready", server.url))
        .send()
        .await
        .unwrap();
    assert_eq!(ready.status(), 503);
    let report: Value = ready.json().await.unwrap();
    assert!(
        report["reason"]
            .as_str()
            .unwrap()
            .contains("data volume is nearly full"),
        "{report}"
    );
    assert!(report["disk_free_mib"].as_u64().unwrap() > 0);
    let health = api_client()
        .get(format!("{}/health", server.url))
        .send()
        .await
        .unwrap();
    assert_eq!(health.status(), 200, "the process is up, just not ready");

    let (key, _) = register(&server.url).await;
    let resp = server
        .create_run(&key, &json!({"fmu_id": "lib:Dahlquist", "stop_time": 1}))
        .await;
    assert_eq!(resp.status(), 503);
    let body: Value = resp.json().await.unwrap();
    assert_eq!(body["code"], "service_unavailable");
    assert!(body["message"].as_str().unwrap().contains("paused"));
    let resp = server
        .upload_fmu(&key, fresh_fmu("Dahlquist", "3.0", "full"))
        .await;
    assert_eq!(resp.status(), 503);
    let me = server.get_json("/api/v1/me", &key).await;
    assert_eq!(me["credits"], 25, "nothing was reserved or charged");
    let runs = server.get_json("/api/v1/runs", &key).await;
    assert_eq!(runs["items"].as_array().unwrap().len(), 0);
}

#[tokio::test]
async fn workers_that_cannot_fit_in_memory_stop_the_server_with_the_fix() {
    let dir = tempfile::tempdir().unwrap();
    let output = Binary::command(
        free_port(),
        &[
            ("FMU_GATEWAY_WORKERS", "64"),
            ("FMU_GATEWAY_WORKER_MEMORY_MB", "65536"),
        ],
    )
    .arg("--data-dir")
    .arg(dir.path().join("data"))
    .stderr(std::process::Stdio::piped())
    .output()
    .unwrap();
    assert!(!output.status.success());
    let said = String::from_utf8_lossy(&output.stderr);
    assert!(
        said.contains("FMU_GATEWAY_WORKERS") && said.contains("FMU_GATEWAY_WORKER_MEMORY_MB"),
        "{said}"
    );
    assert!(
        said.contains("64 worker(s) × (65536 MiB + 64 MiB scratch)"),
        "{said}"
    );
}
