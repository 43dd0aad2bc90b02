//! Files in an S3-compatible object store (`FMU_GATEWAY_OBJECT_STORE=s3://bucket/prefix`):
//! moto's S3 server from PyPI (pinned, installed by `scripts/s3-stand-in.sh` into
//! `target/moto-venv`) on a free loopback port, the real service in front of it, driven as a
//! user drives it. The bucket is then read through S3's own HTTP API (not through our code):
//! exactly the expected objects, with the expected bytes, and no archive or result left in
//! the data directory outside the FMU cache and scratch. Then S3 goes away mid-run: the run
//! fails as the service's fault and is refunded, and the service works again once S3 is back.

use std::collections::BTreeSet;
use std::path::{Path, PathBuf};
use std::process::{Child, Command, Stdio};
use std::time::{Duration, Instant};

use serde_json::{Value, json};
use sha2::{Digest, Sha256};

use crate::common::{Api, TestApp, api_client, free_port, fresh_fmu, spawn_app_with};

pub(crate) const BUCKET: &str = "gateway-test";
pub(crate) const PREFIX: &str = "fmu-gateway/test";

/// moto's S3 server, killed when dropped.
pub(crate) struct S3StandIn {
    pub(crate) port: u16,
    child: Child,
}

impl S3StandIn {
    /// The venv's python (installing moto if needed); `None` only when python3 is missing.
    pub(crate) fn python() -> Option<PathBuf> {
        let found = Command::new("python3")
            .arg("--version")
            .stdout(Stdio::null())
            .status();
        if !found.is_ok_and(|s| s.success()) {
            return None;
        }
        let script = Path::new(env!("CARGO_MANIFEST_DIR")).join("scripts/s3-stand-in.sh");
        let out = Command::new(script)
            .stderr(Stdio::inherit())
            .output()
            .expect("scripts/s3-stand-in.sh runs");
        assert!(out.status.success(), "scripts/s3-stand-in.sh failed");
        Some(PathBuf::from(
            String::from_utf8(out.stdout).unwrap().trim().to_string(),
        ))
    }

    pub(crate) async fn start(python: PathBuf, port: u16) -> S3StandIn {
        let child = Command::new(&python)
            .args([
                "-m",
                "moto.server",
                "-H",
                "127.0.0.1",
                "-p",
                &port.to_string(),
            ])
            .stdout(Stdio::null())
            .stderr(Stdio::null())
            .spawn()
            .expect("moto starts");
        let stand_in = S3StandIn { port, child };
        let deadline = Instant::now() + Duration::from_secs(30);
        while api_client().get(stand_in.url("")).send().await.is_err() {
            assert!(Instant::now() < deadline, "moto did not answer");
            tokio::time::sleep(Duration::from_millis(100)).await;
        }
        let created = api_client().put(stand_in.url(BUCKET)).send().await.unwrap();
        assert!(created.status().is_success(), "creating the bucket");
        stand_in
    }

    fn url(&self, path: &str) -> String {
        format!("http://127.0.0.1:{}/{path}", self.port)
    }

    fn kill(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }

    /// Every key under our prefix (ListObjectsV2), without the prefix.
    pub(crate) async fn keys(&self) -> BTreeSet<String> {
        let xml = api_client()
            .get(self.url(&format!(
                "{BUCKET}?list-type=2&prefix={PREFIX}/&max-keys=1000"
            )))
            .send()
            .await
            .unwrap()
            .text()
            .await
            .unwrap();
        assert!(!xml.contains("<IsTruncated>true"), "{xml}");
        xml.split("<Key>")
            .skip(1)
            .map(|rest| rest.split("</Key>").next().unwrap())
            .map(|key| key.strip_prefix(&format!("{PREFIX}/")).unwrap().to_string())
            .collect()
    }

    /// The bytes of one object under our prefix. moto refuses an anonymous read of a private
    /// object and does not check signatures: any AWS authorization header will do.
    async fn object(&self, key: &str) -> Vec<u8> {
        let resp = api_client()
            .get(self.url(&format!("{BUCKET}/{PREFIX}/{key}")))
            .header(
                "authorization",
                "AWS4-HMAC-SHA256 Credential=testing/20260101/us-east-1/s3/aws4_request, \
                 SignedHeaders=host, Signature=0",
            )
            .send()
            .await
            .unwrap();
        assert_eq!(resp.status(), 200, "{key}");
        resp.bytes().await.unwrap().to_vec()
    }
}

impl Drop for S3StandIn {
    fn drop(&mut self) {
        self.kill();
    }
}

/// The service storing its files in `s3`, configured as an operator would: the URL and the
/// usual AWS variables.
async fn app_on(s3: &S3StandIn) -> TestApp {
    let endpoint = format!("http://127.0.0.1:{}", s3.port);
    let env = move |name: &str| {
        Some(match name {
            "AWS_ACCESS_KEY_ID" | "AWS_SECRET_ACCESS_KEY" => "testing".to_string(),
            "AWS_REGION" => "us-east-1".into(),
            "AWS_ENDPOINT_URL" => endpoint.clone(),
            "AWS_ALLOW_HTTP" => "true".into(),
            _ => return None,
        })
    };
    let backend =
        fmu_gateway::objects::Backend::parse(&format!("s3://{BUCKET}/{PREFIX}"), env).unwrap();
    spawn_app_with(|config| {
        config.object_store = backend;
        // Every run answers 202 at once: the test decides when S3 goes away.
        config.sync_wait = Duration::ZERO;
    })
    .await
}

fn sha256(bytes: &[u8]) -> String {
    hex::encode(Sha256::digest(bytes))
}

/// The regular files in `dir` and below, relative to it.
fn files_under(dir: &Path) -> Vec<String> {
    let mut found = Vec::new();
    let mut pending = vec![dir.to_path_buf()];
    while let Some(next) = pending.pop() {
        for entry in std::fs::read_dir(&next).unwrap().flatten() {
            let kind = entry.file_type().unwrap();
            if kind.is_dir() {
                pending.push(entry.path());
            } else if kind.is_file() {
                let relative = entry.path().strip_prefix(dir).unwrap().to_owned();
                found.push(relative.display().to_string());
            }
        }
    }
    found
}

/// Polls run `id` until it is running (or has ended).
async fn running(app: &TestApp, key: &str, id: &str) {
    let deadline = Instant::now() + Duration::from_secs(60);
    loop {
        let run = app.get_json(&format!("/api/v1/runs/{id}"), key).await;
        if run["status"] != "queued" {
            return;
        }
        assert!(Instant::now() < deadline, "run {id} did not start");
        tokio::time::sleep(Duration::from_millis(10)).await;
    }
}

async fn finished_sweep(app: &TestApp, key: &str, id: &str) -> Value {
    let deadline = Instant::now() + Duration::from_secs(300);
    loop {
        let sweep = app.get_json(&format!("/api/v1/sweeps/{id}"), key).await;
        if sweep["finished_at"].is_string() {
            return sweep;
        }
        assert!(Instant::now() < deadline, "sweep {id} did not end");
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
}

#[tokio::test]
async fn files_live_in_s3_and_a_lost_s3_fails_runs_as_the_services_fault() {
    let Some(python) = S3StandIn::python() else {
        eprintln!(
            "\n!!!!!!!! SKIPPED object_store: python3 is missing, so moto (the S3 stand-in) \
             cannot run. Install python3 and python3-venv. !!!!!!!!\n"
        );
        return;
    };
    let mut s3 = S3StandIn::start(python.clone(), free_port()).await;
    let app = app_on(&s3).await;
    let key = &app.register().await.api_key;

    // The built-in library went to the bucket at start-up.
    let library: BTreeSet<String> = fmu_gateway::fmi::library::DEMO_FMUS
        .iter()
        .map(|(_, _, bytes)| format!("fmus/{}.fmu", sha256(bytes)))
        .collect();
    assert_eq!(s3.keys().await, library);

    // An upload: its archive, byte for byte.
    let archive = fresh_fmu("BouncingBall", "3.0", "kept in S3");
    let resp = app.upload_fmu(key, archive.clone()).await;
    assert_eq!(resp.status(), 201);
    let fmu: Value = resp.json().await.unwrap();
    let fmu_id = fmu["id"].as_str().unwrap().to_string();
    assert_eq!(fmu_id, sha256(&archive));
    assert_eq!(s3.object(&format!("fmus/{fmu_id}.fmu")).await, archive);

    // A run that saves its final state, fetched in every format.
    let run = app
        .run(
            key,
            &json!({"fmu_id": fmu_id, "stop_time": 1.0, "output_interval": 0.01,
                    "outputs": ["h", "v"], "save_final_state": true}),
        )
        .await;
    assert_eq!(run["status"], "succeeded", "{run}");
    let run_id = run["id"].as_str().unwrap().to_string();
    let result = app
        .get_json(&format!("/api/v1/runs/{run_id}/result"), key)
        .await;
    let rows = result["time"].as_array().unwrap().len();
    assert_eq!(rows, 101, "{result}");
    let csv = app
        .get(&format!("/api/v1/runs/{run_id}/result?format=csv"), key)
        .await;
    assert_eq!(csv.status(), 200);
    let csv = csv.text().await.unwrap();
    assert!(csv.starts_with("time,h,v\n"), "{csv}");
    assert_eq!(csv.lines().count(), rows + 1);
    // MATLAB v4 (Dymola's layout: the `Aclass` text matrix first) and Parquet.
    for (format, magic) in [("mat", &b"Aclass"[..]), ("parquet", &b"PAR1"[..])] {
        let resp = app
            .get(
                &format!("/api/v1/runs/{run_id}/result?format={format}"),
                key,
            )
            .await;
        assert_eq!(resp.status(), 200, "{format}");
        let bytes = resp.bytes().await.unwrap();
        assert!(
            bytes.len() > rows * 8 && bytes.windows(magic.len()).any(|w| w == magic),
            "{format}: {} bytes",
            bytes.len()
        );
    }

    // The state: its bytes in the bucket under their SHA-256; a run restores it.
    let resp = app.get(&format!("/api/v1/runs/{run_id}/state"), key).await;
    assert_eq!(resp.status(), 200);
    let state = resp.bytes().await.unwrap().to_vec();
    let state_key = format!("states/{}", sha256(&state));
    assert_eq!(s3.object(&state_key).await, state);
    let continued = app
        .run(
            key,
            &json!({"fmu_id": fmu_id, "stop_time": 2.0, "output_interval": 0.1,
                    "outputs": ["h"], "initial_state": run_id}),
        )
        .await;
    assert_eq!(continued["status"], "succeeded", "{continued}");
    assert_eq!(continued["settings"]["start_time"], 1.0);
    let continued_id = continued["id"].as_str().unwrap().to_string();

    // A sweep that keeps its trajectories: each case's, read back from the bucket.
    let resp = app
        .post_json(
            "/api/v1/sweeps",
            key,
            &json!({"base": {"fmu_id": fmu_id, "stop_time": 1.0, "output_interval": 0.1,
                             "outputs": ["h"]},
                    "design": {"cases": [{"e": 0.6}, {"e": 0.7}, {"e": 0.8}]},
                    "trajectories": true}),
        )
        .await;
    assert_eq!(resp.status(), 202);
    let sweep_id = resp.json::<Value>().await.unwrap()["id"]
        .as_str()
        .unwrap()
        .to_string();
    let sweep = finished_sweep(&app, key, &sweep_id).await;
    assert_eq!(sweep["status"], "completed", "{sweep}");
    for index in 0..3 {
        let case = app
            .get_json(
                &format!("/api/v1/sweeps/{sweep_id}/cases/{index}/result"),
                key,
            )
            .await;
        assert_eq!(case["time"].as_array().unwrap().len(), 11, "{case}");
    }

    // The FMU deleted: its archive goes; the runs' results and the state stay.
    let resp = app.delete(&format!("/api/v1/fmus/{fmu_id}"), key).await;
    assert_eq!(resp.status(), 204);
    let mut expected = library.clone();
    expected.extend([
        format!("runs/{run_id}.result"),
        format!("runs/{continued_id}.result"),
        state_key.clone(),
    ]);
    expected.extend((0..3).map(|i| format!("sweeps/{sweep_id}/{i}.result")));
    assert_eq!(s3.keys().await, expected);
    // The result objects are the files the worker wrote: what the API serves comes from them.
    let kept = s3.object(&format!("runs/{run_id}.result")).await;
    assert!(kept.len() > rows * 3 * 8, "{} bytes", kept.len());

    // Nothing but the database, the root key, the FMU cache and scratch in the data directory.
    let stray: Vec<String> = files_under(&app.data_dir)
        .into_iter()
        .filter(|f| !f.starts_with("cache/") && !f.starts_with("scratch/"))
        .filter(|f| !f.starts_with("fmu-gateway.db") && f != "biscuit-root.key")
        .collect();
    assert!(stray.is_empty(), "files outside the cache: {stray:?}");

    // S3 goes away while a run runs: the run fails as the service's fault and is refunded.
    let resp = app
        .upload_fmu(key, fresh_fmu("BouncingBall", "3.0", "second"))
        .await;
    assert_eq!(resp.status(), 201);
    let second: Value = resp.json().await.unwrap();
    let second = second["id"].as_str().unwrap().to_string();
    let before = app.balance(key).await;
    let resp = app
        .create_run(
            key,
            &json!({"fmu_id": second, "stop_time": 1000.0, "output_interval": 0.001,
                    "outputs": ["h", "v"]}),
        )
        .await;
    assert_eq!(resp.status(), 202);
    let lost = resp.json::<Value>().await.unwrap()["id"]
        .as_str()
        .unwrap()
        .to_string();
    running(&app, key, &lost).await;
    s3.kill();
    let failed = app.finished_run(key, &lost).await;
    assert_eq!(failed["status"], "failed", "{failed}");
    assert_eq!(failed["failure_kind"], "service_error", "{failed}");
    assert_eq!(
        failed["error"],
        "the simulation service failed: its results could not be stored; the run was refunded"
    );
    assert_eq!(app.balance(key).await, before, "refunded");
    assert_eq!(
        app.get(&format!("/api/v1/runs/{lost}/result"), key)
            .await
            .status(),
        409
    );
    let partials: Vec<String> = files_under(&app.data_dir)
        .into_iter()
        .filter(|f| f.ends_with(".partial"))
        .collect();
    assert!(partials.is_empty(), "{partials:?}");

    // S3 back (moto keeps objects in memory: an empty bucket): the service works again, on
    // the FMU its cache holds.
    let s3 = S3StandIn::start(python, s3.port).await;
    let again = app
        .run(
            key,
            &json!({"fmu_id": second, "stop_time": 1.0, "output_interval": 0.1,
                    "outputs": ["h"]}),
        )
        .await;
    assert_eq!(again["status"], "succeeded", "{again}");
    let again_id = again["id"].as_str().unwrap();
    let result = app
        .get_json(&format!("/api/v1/runs/{again_id}/result"), key)
        .await;
    assert_eq!(result["time"].as_array().unwrap().len(), 11);
    assert_eq!(
        s3.keys().await,
        BTreeSet::from([format!("runs/{again_id}.result")])
    );
}
