//! Results and model descriptions against the real binary: an XML entity bomb is refused at
//! once without memory growing; a large result is streamed to ten parallel clients (CSV and
//! JSON) while the server's resident memory stays within a stated bound; CSV cells from user
//! text cannot be formulas; numbers are written in their shortest round-trip form; results
//! stored by the previous version are still served.

use std::io::Write;
use std::time::{Duration, Instant};

use fmu_gateway::sim::recorded::Values;
use fmu_gateway::sim::result_file::ResultFile;
use serde_json::{Value, json};

use crate::common::{Api, Binary, TestApp, api_client, free_port, fresh_fmu, spawn_app};

/// A field of `/proc/<pid>/status` in KiB (`VmRSS`, `VmHWM`).
fn memory_kib(pid: u32, field: &str) -> u64 {
    let status = std::fs::read_to_string(format!("/proc/{pid}/status")).unwrap();
    status
        .lines()
        .find_map(|l| l.strip_prefix(field)?.strip_prefix(':'))
        .and_then(|v| v.trim().trim_end_matches("kB").trim().parse().ok())
        .unwrap_or_else(|| panic!("no {field} in {status}"))
}

async fn register(url: &str) -> String {
    let body = url.sign_up(&crate::common::unique_email()).await;
    body["api_key"].as_str().unwrap().to_string()
}

fn zip_of(entries: &[(&str, &[u8])]) -> Vec<u8> {
    let mut out = zip::ZipWriter::new(std::io::Cursor::new(Vec::new()));
    for (name, data) in entries {
        out.start_file(*name, zip::write::SimpleFileOptions::default())
            .unwrap();
        out.write_all(data).unwrap();
    }
    out.finish().unwrap().into_inner()
}

/// A model description whose entities expand into `refs` × 255 variable elements: about
/// 0.2 MB of parsed XML per 4 bytes of file (measured with the parser the server used:
/// 1.2 KB → 10 200 variables, 11 MB), so this 24 KB file would have taken gigabytes.
fn variable_bomb(refs: usize) -> String {
    let var = "<Float64 name='v' valueReference='1' causality='output'/>";
    let fan: String = (0..255).map(|_| "&v;").collect();
    let body: String = (0..refs).map(|_| "&w;").collect();
    format!(
        "<?xml version=\"1.0\"?>\n<!DOCTYPE fmiModelDescription [\n<!ENTITY v \"{var}\">\n<!ENTITY w \"{fan}\">\n]>\n<fmiModelDescription fmiVersion=\"3.0\" modelName=\"m\" instantiationToken=\"x\"><CoSimulation modelIdentifier=\"m\"/><ModelVariables>{body}</ModelVariables><ModelStructure/></fmiModelDescription>\n"
    )
}

/// The classic "billion laughs": ten levels of ten references.
fn billion_laughs() -> String {
    let mut dtd = String::from("<!DOCTYPE fmiModelDescription [\n<!ENTITY lol0 \"lol\">\n");
    for level in 1..10 {
        let refs: String = (0..10).map(|_| format!("&lol{};", level - 1)).collect();
        dtd.push_str(&format!("<!ENTITY lol{level} \"{refs}\">\n"));
    }
    format!(
        "<?xml version=\"1.0\"?>\n{dtd}]>\n<fmiModelDescription fmiVersion=\"3.0\" modelName=\"&lol9;\" instantiationToken=\"x\"><CoSimulation modelIdentifier=\"m\"/><ModelVariables/><ModelStructure/></fmiModelDescription>\n"
    )
}

/// Stated bound: an XML bomb upload may grow the server's peak memory by at most this.
const XML_BOMB_MAX_GROWTH_KIB: u64 = 16 << 10;

#[tokio::test]
async fn an_xml_entity_bomb_is_refused_at_once_and_the_server_keeps_its_memory() {
    let dir = tempfile::tempdir().unwrap();
    let mut server = Binary::start(dir.path(), free_port(), &[]).await;
    let pid = server.child.id();
    let key = register(&server.url).await;
    // Warm up the upload path with a good FMU, so the baseline includes its buffers.
    let resp = server
        .upload_fmu(&key, fresh_fmu("Dahlquist", "3.0", "warm-up"))
        .await;
    assert_eq!(resp.status(), 201);
    let hwm_before = memory_kib(pid, "VmHWM");

    for (name, xml) in [
        ("variables", variable_bomb(6_000)),
        ("laughs", billion_laughs()),
    ] {
        let fmu = zip_of(&[
            ("modelDescription.xml", xml.as_bytes()),
            ("binaries/x86_64-linux/m.so", b"\x7fELF"),
        ]);
        let started = Instant::now();
        let resp = server.upload_fmu(&key, fmu).await;
        let took = started.elapsed();
        let status = resp.status();
        let err: Value = resp.json().await.unwrap();
        assert_eq!(status, 422, "{name}: {err}");
        let message = err["message"].as_str().unwrap();
        assert!(
            message.contains("modelDescription.xml") && message.contains("<!DOCTYPE"),
            "{name}: {message}"
        );
        assert!(took < Duration::from_secs(1), "{name}: refused in {took:?}");
        let growth = memory_kib(pid, "VmHWM").saturating_sub(hwm_before);
        println!(
            "XML bomb '{name}' ({} bytes): refused in {took:?}, server peak memory +{growth} KiB",
            xml.len()
        );
        assert!(
            growth < XML_BOMB_MAX_GROWTH_KIB,
            "{name}: peak memory grew by {growth} KiB"
        );
    }
    // A well-formed FMU still goes in, and the server is healthy.
    let resp = server
        .upload_fmu(&key, fresh_fmu("BouncingBall", "3.0", "after"))
        .await;
    assert_eq!(resp.status(), 201);
    let health = api_client()
        .get(format!("{}/health", server.url))
        .send()
        .await
        .unwrap();
    assert_eq!(health.status(), 200);
    server.terminate(Duration::from_secs(10)).await;
}

/// Runs `body` to its end; the finished run, which must have succeeded.
async fn finished_run(url: &str, key: &str, body: Value) -> Value {
    let run = url.run(key, &body).await;
    assert_eq!(run["status"], "succeeded", "{run}");
    run
}

/// Downloads `url` reading the body as it comes, keeping only its size and last line.
async fn drain(url: String, key: String) -> (usize, String) {
    let resp = api_client().get(url).bearer_auth(key).send().await.unwrap();
    assert_eq!(resp.status(), 200);
    let mut resp = resp;
    let (mut size, mut tail) = (0, Vec::new());
    while let Some(chunk) = resp.chunk().await.unwrap() {
        size += chunk.len();
        tail.extend_from_slice(&chunk);
        if tail.len() > 4096 {
            tail.drain(..tail.len() - 4096);
        }
    }
    (size, String::from_utf8_lossy(&tail).into_owned())
}

/// Stated bound: ten parallel downloads of one large result may grow the server's resident
/// memory by at most this (the previous version held the whole result, its JSON and its CSV
/// per download: hundreds of MB each).
const DOWNLOADS_MAX_GROWTH_KIB: u64 = 48 << 10;

#[tokio::test]
async fn a_large_result_fetched_ten_times_in_parallel_stays_in_bounded_memory() {
    let dir = tempfile::tempdir().unwrap();
    let mut server = Binary::start(dir.path(), free_port(), &[]).await;
    let pid = server.child.id();
    let key = register(&server.url).await;
    // Nearly the plan's maximum of output points (999 001 of 1 000 000) with every recordable
    // variable of BouncingBall: 6 million values, 7 million numbers with time (a 56 MB file).
    let outputs = ["h", "der(h)", "v", "der(v)", "g", "e"];
    let started = Instant::now();
    let run = finished_run(
        &server.url,
        &key,
        json!({
            "fmu_id": "lib:BouncingBall",
            "stop_time": 9.99,
            "output_interval": 1e-5,
            "step_size": 1e-5,
            "outputs": outputs,
        }),
    )
    .await;
    let id = run["id"].as_str().unwrap().to_string();
    println!("1M-point run took {:?}", started.elapsed());
    let result_url = format!("{}/api/v1/runs/{id}/result", server.url);

    for format in ["csv", "json"] {
        let rss_before = memory_kib(pid, "VmRSS");
        let url = format!("{result_url}?format={format}");
        let started = Instant::now();
        let downloads: Vec<_> = (0..10)
            .map(|_| tokio::spawn(drain(url.clone(), key.clone())))
            .collect();
        let mut peak = rss_before;
        while !downloads.iter().all(|d| d.is_finished()) {
            peak = peak.max(memory_kib(pid, "VmRSS"));
            tokio::time::sleep(Duration::from_millis(20)).await;
        }
        let mut sizes = Vec::new();
        for d in downloads {
            let (size, tail) = d.await.unwrap();
            sizes.push(size);
            match format {
                "csv" => {
                    let last = tail.trim_end().lines().last().unwrap();
                    assert!(
                        last.starts_with("9.99") && last.split(',').count() == 7,
                        "{last}"
                    );
                }
                _ => assert!(tail.ends_with("]}}"), "{tail}"),
            }
        }
        assert!(sizes.iter().all(|s| *s == sizes[0]), "{sizes:?}");
        let growth = peak.saturating_sub(rss_before);
        println!(
            "10 parallel {format} downloads of {} MB each in {:?}: server RSS {rss_before} KiB → peak {peak} KiB (+{growth} KiB)",
            sizes[0] >> 20,
            started.elapsed()
        );
        assert!(
            growth < DOWNLOADS_MAX_GROWTH_KIB,
            "{format}: resident memory grew by {growth} KiB"
        );
    }

    // The answer carried no inline result (it is too large); the compat summary reads the
    // last values from the file.
    assert!(run["result"].is_null(), "{}", run["result"]);
    let summary = server.get_json(&format!("/simulations/{id}"), &key).await;
    assert_eq!(summary["key_results"]["g"], json!(9.81), "{summary}");
    server.terminate(Duration::from_secs(10)).await;
}

async fn get_text(app: &TestApp, key: &str, path: &str) -> String {
    let resp = app.get(path, key).await;
    assert_eq!(resp.status(), 200, "{path}");
    resp.text().await.unwrap()
}

#[tokio::test]
async fn csv_names_cannot_be_formulas_and_numbers_are_shortest() {
    let app = spawn_app().await;
    let account = app.register().await;
    // BouncingBall with its outputs renamed to spreadsheet formulas (names live only in the
    // model description; the binary knows value references).
    let fmu = fresh_fmu("BouncingBall", "3.0", "formulas");
    let mut source = zip::ZipArchive::new(std::io::Cursor::new(fmu)).unwrap();
    let mut out = zip::ZipWriter::new(std::io::Cursor::new(Vec::new()));
    for i in 0..source.len() {
        let mut entry = source.by_index(i).unwrap();
        if entry.is_dir() {
            continue;
        }
        let name = entry.name().unwrap().to_string();
        let mut data = Vec::new();
        std::io::Read::read_to_end(&mut entry, &mut data).unwrap();
        if name == "modelDescription.xml" {
            let text = String::from_utf8(data).unwrap();
            data = text
                .replace("name=\"h\"", "name=\"=HYPERLINK(&quot;http://evil&quot;)\"")
                .replace("name=\"v\"", "name=\"-1+2\"")
                .replace("modelName=\"BouncingBall\"", "modelName=\"@evil\"")
                .into_bytes();
        }
        out.start_file(name, zip::write::SimpleFileOptions::default())
            .unwrap();
        out.write_all(&data).unwrap();
    }
    let resp = app
        .upload_fmu(&account.api_key, out.finish().unwrap().into_inner())
        .await;
    assert_eq!(resp.status(), 201, "{}", resp.text().await.unwrap());
    let fmu: Value = resp.json().await.unwrap();
    let run = finished_run(
        &app.url,
        &account.api_key,
        json!({
            "fmu_id": fmu["id"],
            "stop_time": 1.0,
            "output_interval": 0.25,
            "outputs": ["=HYPERLINK(\"http://evil\")", "-1+2"],
        }),
    )
    .await;
    let id = run["id"].as_str().unwrap();
    let csv = get_text(
        &app,
        &account.api_key,
        &format!("/api/v1/runs/{id}/result?format=csv"),
    )
    .await;
    let mut lines = csv.lines();
    assert_eq!(
        lines.next().unwrap(),
        "time,\"'=HYPERLINK(\"\"http://evil\"\")\",'-1+2"
    );
    // Numbers stay numbers: v is negative when the ball falls.
    let row: Vec<&str> = lines.nth(1).unwrap().split(',').collect();
    assert_eq!(row[0], "0.25");
    assert!(
        row[2].starts_with('-') && row[2].parse::<f64>().is_ok(),
        "{row:?}"
    );
    // JSON keeps the names as they are (JSON is not a spreadsheet).
    let result: Value = serde_json::from_str(
        &get_text(&app, &account.api_key, &format!("/api/v1/runs/{id}/result")).await,
    )
    .unwrap();
    assert_eq!(
        result["variables"],
        json!(["=HYPERLINK(\"http://evil\")", "-1+2"])
    );
    // The usage export names the run by its model: neutralised too.
    let usage = get_text(&app, &account.api_key, "/usage/export").await;
    assert!(usage.contains(",'@evil,"), "{usage}");
    assert!(!usage.contains(",@evil"), "{usage}");

    // Extreme numbers in error messages are short: a 422 names the field with the number
    // as it reads back.
    let resp = app
        .create_run(
            &account.api_key,
            &json!({ "fmu_id": "lib:Dahlquist", "output_interval": 2.47e-321 }),
        )
        .await;
    assert_eq!(resp.status(), 422);
    let err: Value = resp.json().await.unwrap();
    let text = err.to_string();
    assert!(
        text.contains("output_interval 2.47e-321 gives more than"),
        "{text}"
    );
    let resp = app
        .create_run(
            &account.api_key,
            &json!({ "fmu_id": "lib:Dahlquist", "timeout": 1e300 }),
        )
        .await;
    let err: Value = resp.json().await.unwrap();
    assert!(
        err.to_string().contains("at most 600 s, not 1e300"),
        "{err}"
    );
}

#[tokio::test]
async fn a_result_stored_by_the_previous_version_is_still_served() {
    let app = spawn_app().await;
    let account = app.register().await;
    let run = finished_run(
        &app.url,
        &account.api_key,
        json!({ "fmu_id": "lib:Dahlquist", "stop_time": 1.0, "output_interval": 0.25 }),
    )
    .await;
    let id = run["id"].as_str().unwrap();
    let path = format!("/api/v1/runs/{id}/result");
    let json_now = get_text(&app, &account.api_key, &path).await;
    let csv_now = get_text(&app, &account.api_key, &format!("{path}?format=csv")).await;

    // Replace the stored file with what the previous version wrote for this run:
    // `serde_json::to_vec(&(&output.time, &output.columns))`.
    let runs = app.data_dir.join("runs");
    let stored = runs.join(format!("{id}.result"));
    let output = ResultFile::open(&stored).unwrap().read_all().unwrap();
    std::fs::remove_file(&stored).unwrap();
    std::fs::write(
        runs.join(format!("{id}.json")),
        serde_json::to_vec(&(
            &output.time,
            output
                .columns
                .iter()
                .map(|c| json!({"name": c.name, "values": c.values.as_floats().unwrap()}))
                .collect::<Vec<_>>(),
        ))
        .unwrap(),
    )
    .unwrap();

    // Ten readers at once: converted once, served the same.
    let reads: Vec<_> = (0..10)
        .map(|_| {
            let (base, path, key) = (app.url.clone(), path.clone(), account.api_key.clone());
            tokio::spawn(async move {
                let resp = Api::get(base.as_str(), &path, &key).await;
                assert_eq!(resp.status(), 200);
                resp.text().await.unwrap()
            })
        })
        .collect();
    for read in reads {
        assert_eq!(read.await.unwrap(), json_now);
    }
    assert_eq!(
        get_text(&app, &account.api_key, &format!("{path}?format=csv")).await,
        csv_now
    );
    assert!(runs.join(format!("{id}.result")).exists());
    assert!(!runs.join(format!("{id}.json")).exists());
}

/// A stand-in worker: a shell script that reads the job and answers with `answer` (shell).
fn fake_worker(dir: &std::path::Path, name: &str, answer: &str) -> std::path::PathBuf {
    use std::os::unix::fs::PermissionsExt;
    let path = dir.join(name);
    std::fs::write(&path, format!("#!/bin/sh\nread job\n{answer}\n")).unwrap();
    std::fs::set_permissions(&path, std::fs::Permissions::from_mode(0o755)).unwrap();
    path
}

#[tokio::test]
async fn a_worker_that_breaks_the_protocol_fails_its_run_at_once_with_a_reason() {
    use fmu_gateway::sim::protocol::{Interface, Job};
    use fmu_gateway::sim::runner::{PoolConfig, SimError, WorkerPool};

    let dir = tempfile::tempdir().unwrap();
    let model = dir.path().join("model");
    std::fs::create_dir(&model).unwrap();
    std::fs::write(model.join("modelDescription.xml"), "<x/>").unwrap();
    let job = Job {
        version: 0,
        fmu_dir: model.display().to_string(),
        scratch_dir: String::new(),
        interface: Interface::Cs,
        solver: Default::default(),
        start_time: 0.0,
        stop_time: 1.0,
        output_interval: 1.0,
        step_size: None,
        tolerance: 1e-6,
        start_values: vec![],
        outputs: vec!["x".into()],
        recorded: vec![],
        inputs: vec![],
        record_events: true,
        cs_options: Default::default(),
        initial_state: None,
        save_final_state: false,
        log_fmi_calls: false,
        log_categories: vec![],
        log_limit: 1024,
        limits: Default::default(),
        batch: None,
    };
    let started = r#"printf '{"type":"started","sandbox":[]}\n'"#;
    let run = |exe: std::path::PathBuf| {
        let pool = WorkerPool::new(PoolConfig {
            exe,
            scratch_root: dir.path().join("scratch"),
            workers: 1,
            limits: Default::default(),
            log_limit: 1024,
        });
        let job = job.clone();
        async move {
            let begun = Instant::now();
            let outcome = pool.run(job, Duration::from_secs(30)).await;
            (outcome, begun.elapsed())
        }
    };
    let cases = [
        (
            "endless",
            format!("{started}\nyes x | tr -d '\\n'"),
            "a message is longer than 4194304 bytes",
        ),
        (
            "duplicate",
            format!(
                "{started}\nprintf '{{\"type\":\"done\",\"variables\":[{{\"name\":\"x\",\"type\":\"float64\"}},{{\"name\":\"x\",\"type\":\"float64\"}}],\"rows\":1,\"log\":\"\"}}\\n'\nsleep 30"
            ),
            "the worker named the output 'x' twice",
        ),
        (
            "over-cap",
            format!(
                "{started}\nprintf '{{\"type\":\"done\",\"variables\":[{{\"name\":\"x\",\"type\":\"float64\"}}],\"rows\":20000001,\"log\":\"\"}}\\n'\nsleep 30"
            ),
            "at most 20000000 are accepted",
        ),
    ];
    for (name, answer, reason) in cases {
        let (outcome, took) = run(fake_worker(dir.path(), name, &answer)).await;
        match outcome {
            Err(SimError::Crashed(message)) => {
                assert!(
                    message.contains("malformed answer") && message.contains(reason),
                    "{name}: {message}"
                )
            }
            other => panic!("{name}: {other:?}"),
        }
        // Ended when it broke the protocol, not at the 30 s deadline.
        assert!(took < Duration::from_secs(10), "{name}: {took:?}");
    }

    // Results that pass the protocol but that no reader could serve: a Boolean of 7, a
    // String whose bytes lie outside the blob. The run fails when they arrive.
    for (name, variable, cell) in [
        ("boolean", "boolean", r"\007\000\000\000\000\000\000\000"),
        (
            "text",
            "string",
            r"\011\000\000\000\000\000\000\000\001\000\000\000\000\000\000\000",
        ),
    ] {
        let answer = format!(
            "{started}\nprintf '{{\"type\":\"done\",\"variables\":[{{\"name\":\"x\",\"type\":\"{variable}\"}}],\"rows\":1,\"blob_bytes\":1,\"log\":\"\"}}\\n'\nprintf '\\000\\000\\000\\000\\000\\000\\000\\000{cell}x'"
        );
        let (outcome, _) = run(fake_worker(dir.path(), name, &answer)).await;
        match outcome {
            Err(SimError::Crashed(message)) => assert!(
                message.contains("unreadable results") && message.contains("damaged"),
                "{name}: {message}"
            ),
            other => panic!("{name}: {other:?}"),
        }
    }

    // A worker that keeps writing after a valid answer: the answer counts, the rest is not
    // read (the channel is closed, so the writer ends).
    let answer = format!(
        "{started}\nprintf '{{\"type\":\"done\",\"variables\":[{{\"name\":\"x\",\"type\":\"float64\"}}],\"rows\":1,\"log\":\"ok\"}}\\n'\nprintf '\\000\\000\\000\\000\\000\\000\\000\\000\\000\\000\\000\\000\\000\\000\\360\\077'\nyes"
    );
    let (outcome, took) = run(fake_worker(dir.path(), "chatty", &answer)).await;
    let outcome = outcome.unwrap();
    assert!(took < Duration::from_secs(10), "{took:?}");
    assert_eq!(outcome.log, "ok");
    let output = outcome.result.read_all().unwrap();
    assert_eq!(
        (output.time, output.columns[0].values.clone()),
        (vec![0.0], Values::Float(vec![1.0]))
    );
}
