//! The hostile corpus against the real server: FMUs built here from fmus/ with one
//! `HOSTILE_*` attack each, uploaded and run through the API of the real binary. Each attack
//! must end as a failed run whose error says it was blocked, charged to the attacker (it is
//! their model's failure), while the server keeps answering `/health` and stays alive. And
//! the server refuses to start at all without a required sandbox layer, unless told to
//! accept the risk.

use std::path::{Path, PathBuf};
use std::process::Stdio;
use std::time::{Duration, Instant};

use serde_json::{Value, json};

use crate::common::{Api, Binary, api_client, free_port};

use crate::common::UserServer as Server;

/// What the attacks ask of the server beyond starting it.
impl Server {
    fn pid(&self) -> u32 {
        self.binary.child.id()
    }

    /// Runs `fmu_id` and polls it to its end, checking all the while that the server
    /// answers `/health` quickly and is alive.
    async fn run_watching_health(&mut self, fmu_id: &str, timeout: f64) -> Value {
        let resp = self.create_run(&self.key, &json!({ "fmu_id": fmu_id, "stop_time": 1.0, "output_interval": 0.1, "timeout": timeout })).await;
        assert!(resp.status().is_success(), "{}", resp.text().await.unwrap());
        let id = resp.json::<Value>().await.unwrap()["id"]
            .as_str()
            .unwrap()
            .to_string();
        for _ in 0..600 {
            self.assert_healthy().await;
            let run = self
                .get_json(&format!("/api/v1/runs/{id}"), &self.key)
                .await;
            if !matches!(run["status"].as_str(), Some("queued" | "running")) {
                self.assert_healthy().await;
                return run;
            }
            tokio::time::sleep(Duration::from_millis(50)).await;
        }
        panic!("run {id} did not end");
    }

    async fn assert_healthy(&mut self) {
        assert!(
            self.binary.child.try_wait().unwrap().is_none(),
            "the server process died"
        );
        let started = Instant::now();
        let health = api_client().get(self.at("/health")).send().await.unwrap();
        assert_eq!(health.status(), 200);
        assert!(
            started.elapsed() < Duration::from_secs(1),
            "/health took {:?}",
            started.elapsed()
        );
    }

    async fn credits(&self) -> i64 {
        self.balance(&self.key).await
    }
}

/// `/ready`'s sandbox layers that are required but not active.
fn missing_required(ready: &Value) -> Vec<Value> {
    ready["sandbox"]
        .as_array()
        .expect("/ready lists the sandbox layers")
        .iter()
        .filter(|l| l["required"] == true && l["active"] != true)
        .cloned()
        .collect()
}

fn disk_free(path: &Path) -> u64 {
    let c = std::ffi::CString::new(path.as_os_str().as_encoded_bytes()).unwrap();
    let mut fs: libc::statvfs = unsafe { std::mem::zeroed() };
    assert_eq!(unsafe { libc::statvfs(c.as_ptr(), &mut fs) }, 0);
    fs.f_bavail * fs.f_frsize
}

fn files_under(dir: &Path) -> Vec<PathBuf> {
    let mut found = Vec::new();
    if let Ok(entries) = std::fs::read_dir(dir) {
        for e in entries.flatten() {
            found.push(e.path());
            found.extend(files_under(&e.path()));
        }
    }
    found
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn every_attack_of_the_corpus_is_blocked_and_charged_while_the_server_serves() {
    let mut server = Server::start("attacker@example.com", &[]).await;
    let ready = server.get_json("/ready", &server.key).await;
    assert_eq!(missing_required(&ready), Vec::<Value>::new(), "{ready}");
    let layers: Vec<&str> = ready["sandbox"]
        .as_array()
        .unwrap()
        .iter()
        .filter(|l| l["active"] == true)
        .map(|l| l["layer"].as_str().unwrap())
        .collect();
    for layer in [
        "pid_namespace",
        "landlock_scopes",
        "seccomp",
        "scratch_tmpfs",
        "no_network",
    ] {
        assert!(layers.contains(&layer), "{layer} not active: {ready}");
    }

    // Sockets the test listens on, for the FMU to try.
    use std::os::linux::net::SocketAddrExt;
    let abstract_name = format!("fmu-gateway-hostile-{}", std::process::id());
    let _abstract = std::os::unix::net::UnixListener::bind_addr(
        &std::os::unix::net::SocketAddr::from_abstract_name(&abstract_name).unwrap(),
    )
    .unwrap();
    let sockets = tempfile::tempdir().unwrap();
    let socket_path = sockets.path().join("listening");
    let _pathname = std::os::unix::net::UnixListener::bind(&socket_path).unwrap();

    let pid = format!("HOSTILE_TARGET_PID={}", server.pid());
    let quoted = |name: &str, path: &Path| format!("{name}=\"{}\"", path.display());
    // (defines, what the error must say)
    let attacks: Vec<(Vec<String>, &str)> = vec![
        (
            vec!["HOSTILE_KILL_PARENT".into(), pid.clone()],
            "blocked: getppid() = 0",
        ),
        (vec!["HOSTILE_KILL_ALL".into()], "blocked: kill(-1)"),
        (
            vec![
                "HOSTILE_SECRETS".into(),
                pid.clone(),
                quoted("HOSTILE_KEY_PATH", &server.data.join("biscuit-root.key")),
                quoted("HOSTILE_DB_PATH", &server.data.join("fmu-gateway.db")),
            ],
            "blocked",
        ),
        (
            vec!["HOSTILE_IO_URING".into()],
            "blocked: io_uring_setup: Operation not permitted",
        ),
        (
            vec!["HOSTILE_PTRACE".into(), pid.clone()],
            "blocked: ptrace",
        ),
        (vec!["HOSTILE_FDS".into()], "blocked: no descriptors"),
        (
            vec![
                "HOSTILE_UNIX_SOCKET".into(),
                format!("HOSTILE_SOCKET_NAME=\"{abstract_name}\""),
                quoted("HOSTILE_SOCKET_PATH", &socket_path),
            ],
            "blocked",
        ),
        (
            vec!["HOSTILE_FILL_DISK".into()],
            "the run's scratch space of 64 MiB is full",
        ),
        (vec!["HOSTILE_FORK_BOMB".into()], "blocked: fork"),
    ];
    // Uploaded as it is, each attack is refused: its smoke test ran it in the sandbox, which
    // blocked it there too. (The runs below take them leniently, to prove the runs' sandbox.)
    let resp = server
        .upload_fmu(
            &server.key,
            crate::common::hostile_fmu(&["HOSTILE_KILL_PARENT", &pid]),
        )
        .await;
    assert_eq!(resp.status(), 422);
    let refused: Value = resp.json().await.unwrap();
    assert_eq!(
        refused["problems"][0]["code"], "smoke_test_failed",
        "{refused}"
    );
    assert!(
        refused["message"]
            .as_str()
            .unwrap()
            .contains("blocked: getppid() = 0"),
        "{refused}"
    );
    server.assert_healthy().await;

    let disk_before = disk_free(&server.data);
    let mut credits = server.credits().await;
    for (defines, says) in &attacks {
        let defines: Vec<&str> = defines.iter().map(String::as_str).collect();
        let fmu = server.upload_hostile(&defines).await;
        let run = server.run_watching_health(&fmu, 30.0).await;
        assert_eq!(run["status"], "failed", "{}: {run}", defines[0]);
        let error = run["error"].as_str().unwrap_or_default();
        assert!(
            error.contains(says),
            "{}: expected {says:?} in {run}",
            defines[0]
        );
        assert!(!error.contains("got through"), "{}: {run}", defines[0]);
        // The attacker's model failed: the attacker pays.
        assert_eq!(run["failure_kind"], "model_error", "{}: {run}", defines[0]);
        assert_eq!(run["charged"], true, "{}: {run}", defines[0]);
        credits -= 1;
        assert_eq!(server.credits().await, credits, "{}", defines[0]);
    }
    // The disk filler left nothing on the data volume.
    let scratch_left = files_under(&server.data.join("scratch"));
    assert!(scratch_left.is_empty(), "left behind: {scratch_left:?}");
    let disk_after = disk_free(&server.data);
    assert!(
        disk_after + (512 << 20) >= disk_before,
        "the data volume lost {} MiB",
        (disk_before - disk_after) >> 20
    );

    // A 10 s sleep with a 2 s limit: stopped at the deadline, and charged.
    let sleeper = server.upload_hostile(&["HOSTILE_SLEEP"]).await;
    let started = Instant::now();
    let run = server.run_watching_health(&sleeper, 2.0).await;
    assert!(
        started.elapsed() < Duration::from_secs(8),
        "{:?}",
        started.elapsed()
    );
    assert_eq!(run["failure_kind"], "time_limit", "{run}");
    assert_eq!(run["charged"], true, "{run}");
    assert_eq!(server.credits().await, credits - 1);

    // Still every layer, and still the same server.
    let ready = server.get_json("/ready", &server.key).await;
    assert_eq!(ready["ready"], true, "{ready}");
    assert_eq!(missing_required(&ready), Vec::<Value>::new(), "{ready}");
    server.assert_healthy().await;
}

/// Starts the real binary with `args` and `env`; returns its exit status and stderr if it
/// ends within 30 s, `None` if it is still running (then it is killed).
fn serve_until_exit(
    data: &Path,
    args: &[&str],
    env: &[(&str, &str)],
) -> Option<(std::process::ExitStatus, String)> {
    let mut command = Binary::command(free_port(), env);
    command
        .arg("--data-dir")
        .arg(data)
        .args(args)
        .stderr(Stdio::piped());
    let mut child = command.spawn().unwrap();
    let deadline = Instant::now() + Duration::from_secs(30);
    while Instant::now() < deadline {
        if let Some(status) = child.try_wait().unwrap() {
            let mut stderr = String::new();
            use std::io::Read;
            child
                .stderr
                .take()
                .unwrap()
                .read_to_string(&mut stderr)
                .unwrap();
            return Some((status, stderr));
        }
        std::thread::sleep(Duration::from_millis(50));
    }
    let _ = child.kill();
    let _ = child.wait();
    None
}

#[tokio::test]
async fn the_server_refuses_to_start_without_a_required_sandbox_layer() {
    let dir = tempfile::tempdir().unwrap();
    let data = dir.path().join("data");
    for layer in [
        "pid_namespace",
        "seccomp",
        "landlock_scopes",
        "scratch_tmpfs",
    ] {
        let env = [("FMU_GATEWAY_SANDBOX_DISABLE", layer)];
        let (status, stderr) = serve_until_exit(&data, &[], &env)
            .unwrap_or_else(|| panic!("the server started without {layer}"));
        assert!(!status.success(), "{layer}: {status:?}");
        assert!(
            stderr.contains(&format!("missing: {layer} (disabled by configuration)")),
            "{layer}: {stderr}"
        );
        assert!(stderr.contains("--allow-weaker-sandbox"), "{stderr}");
    }
}

#[tokio::test]
async fn with_allow_weaker_sandbox_it_serves_and_ready_shows_the_missing_layer() {
    let dir = tempfile::tempdir().unwrap();
    let data = dir.path().join("data");
    let port = free_port();
    let mut command = Binary::command(port, &[("FMU_GATEWAY_SANDBOX_DISABLE", "pid_namespace")]);
    command
        .arg("--data-dir")
        .arg(&data)
        .arg("--allow-weaker-sandbox");
    let server = Binary::spawn(command, port).await;
    let ready: Value = api_client()
        .get(format!("{}/ready", server.url))
        .send()
        .await
        .unwrap()
        .json()
        .await
        .unwrap();
    let missing = missing_required(&ready);
    assert_eq!(missing.len(), 1, "{ready}");
    assert_eq!(missing[0]["layer"], "pid_namespace", "{ready}");
    assert_eq!(missing[0]["detail"], "disabled by configuration", "{ready}");
}
