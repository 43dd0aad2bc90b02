//! Test helpers: start the real service on a random port with its own data directory, and
//! act as its users.
#![allow(dead_code)]

pub mod api;
pub mod archives;
pub mod db;
pub mod mat;
pub mod stripe;

pub use api::Api;

#[path = "../../fmus/build_support.rs"]
pub mod build_support;

use std::net::SocketAddr;

use fmu_gateway::{App, Config, State};
use serde_json::{Value, json};
use tokio::sync::oneshot;

pub struct TestApp {
    pub addr: SocketAddr,
    pub url: String,
    pub state: State,
    pub data_dir: std::path::PathBuf,
    _dir: tempfile::TempDir,
    stop: Option<oneshot::Sender<()>>,
}

impl Drop for TestApp {
    fn drop(&mut self) {
        if let Some(stop) = self.stop.take() {
            let _ = stop.send(());
        }
    }
}

pub async fn spawn_app() -> TestApp {
    spawn_app_with(|_| {}).await
}

/// Starts the service with test settings changed by `adjust`. Rate limits are high by
/// default so tests that register many users are not throttled; the rate-limit test lowers
/// them.
pub async fn spawn_app_with(adjust: impl FnOnce(&mut Config)) -> TestApp {
    let dir = tempfile::tempdir().expect("temp dir");
    let data_dir = dir.path().join("data");
    let mut config = Config::local(data_dir.clone());
    config.listen = "127.0.0.1:0".parse().unwrap();
    config.auth_rate_per_minute = 100_000;
    // Likewise sign-ups, and free credits for every account (all tests come from 127.0.0.1).
    config.signups_per_hour = 100_000;
    config.free_grants_per_address_per_day = 100_000;
    // And the cap on one user's active runs (the fair-share test lowers it).
    config.max_active_runs_per_user = 1_000;
    // Workers are the real binary (this test executable cannot be one).
    config.worker_exe = Some(env!("CARGO_BIN_EXE_fmu-gateway").into());
    config.database_url = db::database_url(&data_dir).await.map(Into::into);
    adjust(&mut config);
    let app = App::build(config).await.expect("the app builds");
    let addr = app.addr();
    let state = app.state().clone();
    let (stop, stopped) = oneshot::channel::<()>();
    tokio::spawn(app.run_until(async move {
        let _ = stopped.await;
    }));
    TestApp {
        addr,
        url: format!("http://{addr}"),
        state,
        data_dir,
        _dir: dir,
        stop: Some(stop),
    }
}

/// Starts the service with billing on: Stripe's API at the stand-in `stub`, its test key and
/// webhook secret; then `adjust`.
pub async fn spawn_billing_app(
    stub: &stripe::StripeStub,
    adjust: impl FnOnce(&mut Config),
) -> TestApp {
    let base = stub.url.clone();
    spawn_app_with(move |c| {
        c.stripe_secret_key = Some(stripe::API_KEY.into());
        c.stripe_api_base = base;
        c.stripe_webhook_secrets = vec![stripe::WEBHOOK_SECRET.into()];
        adjust(c);
    })
    .await
}

/// A client like a browser: keeps cookies, does not follow redirects (tests check them).
/// `GET url` with `client` (a browser's cookies), as text, whatever the status: the pages
/// a test reads to check what a user sees.
pub async fn page_text(client: &reqwest::Client, url: impl reqwest::IntoUrl) -> String {
    client.get(url).send().await.unwrap().text().await.unwrap()
}

pub fn browser() -> reqwest::Client {
    reqwest::Client::builder()
        .cookie_store(true)
        .redirect(reqwest::redirect::Policy::none())
        .build()
        .unwrap()
}

/// A client like an API integrator: no cookies.
pub fn api_client() -> reqwest::Client {
    reqwest::Client::builder()
        .redirect(reqwest::redirect::Policy::none())
        .build()
        .unwrap()
}

pub struct Account {
    pub user_id: String,
    pub email: String,
    pub password: String,
    pub api_key: String,
}

static COUNTER: std::sync::atomic::AtomicU32 = std::sync::atomic::AtomicU32::new(0);

pub fn unique_email() -> String {
    let n = COUNTER.fetch_add(1, std::sync::atomic::Ordering::Relaxed);
    format!("engineer{n}-{}@example.com", std::process::id())
}

impl TestApp {
    pub fn at(&self, path: &str) -> String {
        format!("{}{}", self.url, path)
    }

    /// Registers over the JSON compatibility route.
    pub async fn register(&self) -> Account {
        let email = unique_email();
        let password = "correct horse battery".to_string();
        let resp = api_client()
            .post(self.at("/register"))
            .json(&json!({ "email": email, "password": password, "name": "Ada" }))
            .send()
            .await
            .unwrap();
        assert_eq!(resp.status(), 201);
        let body: Value = resp.json().await.unwrap();
        Account {
            user_id: body["user_id"].as_str().unwrap().into(),
            email,
            password,
            api_key: body["api_key"].as_str().unwrap().into(),
        }
    }

    /// Logs a browser in with the form; returns the session's CSRF token.
    pub async fn browser_login(&self, client: &reqwest::Client, account: &Account) -> String {
        let resp = client
            .post(self.at("/login"))
            .form(&[
                ("email", account.email.as_str()),
                ("password", account.password.as_str()),
            ])
            .send()
            .await
            .unwrap();
        assert_eq!(
            resp.status(),
            303,
            "login failed: {}",
            resp.text().await.unwrap()
        );
        self.csrf_token(client).await
    }

    /// The CSRF token from a dashboard page.
    pub async fn csrf_token(&self, client: &reqwest::Client) -> String {
        let page = client
            .get(self.at("/api-keys"))
            .send()
            .await
            .unwrap()
            .text()
            .await
            .unwrap();
        csrf_from(&page).expect("the page carries a CSRF token")
    }

    /// Records usage through the store's named operation.
    pub async fn record_usage(
        &self,
        user_id: &str,
        fmu: &str,
        credits: i64,
        key: Option<&str>,
        at_ms: i64,
    ) {
        let record = fmu_gateway::store::usage::UsageRecord {
            fmu_name: fmu.to_string(),
            credits: fmu_gateway::domain::ids::Credits::new(credits).unwrap(),
            api_key_id: key.map(fmu_gateway::domain::ids::KeyId::from),
            run_id: None,
            at: at_ms,
        };
        self.state
            .store
            .record_usage(&user_id.into(), record)
            .await
            .unwrap();
    }
}

pub fn csrf_from(html: &str) -> Option<String> {
    let marker = "name=\"csrf_token\" value=\"";
    let start = html.find(marker)? + marker.len();
    Some(html[start..].split('"').next()?.to_string())
}

/// A library FMU re-packed with an extra file, so its bytes (and id) are new.
pub fn fresh_fmu(model: &str, version: &str, note: &str) -> Vec<u8> {
    use std::io::{Read, Write};
    let (_, _, bytes) = fmu_gateway::fmi::library::DEMO_FMUS
        .iter()
        .find(|(m, v, _)| *m == model && *v == version)
        .unwrap();
    let mut source = zip::ZipArchive::new(std::io::Cursor::new(bytes.to_vec())).unwrap();
    let mut out = zip::ZipWriter::new(std::io::Cursor::new(Vec::new()));
    let options = zip::write::SimpleFileOptions::default();
    for i in 0..source.len() {
        let mut entry = source.by_index(i).unwrap();
        if entry.is_dir() {
            continue;
        }
        let name = entry.name().unwrap().to_string();
        let mut data = Vec::new();
        entry.read_to_end(&mut data).unwrap();
        out.start_file(name, options).unwrap();
        out.write_all(&data).unwrap();
    }
    out.start_file("resources/note.txt", options).unwrap();
    out.write_all(note.as_bytes()).unwrap();
    out.finish().unwrap().into_inner()
}

/// A free local port (for the real binary, which binds it itself).
pub fn free_port() -> u16 {
    std::net::TcpListener::bind("127.0.0.1:0")
        .unwrap()
        .local_addr()
        .unwrap()
        .port()
}

/// The real `fmu-gateway serve` process on a data directory; killed when dropped, so a
/// failing test leaves no server behind.
pub struct Binary {
    pub child: std::process::Child,
    pub url: String,
}

impl Binary {
    /// Starts the binary on `port` with `env` added, and waits until `/health` answers.
    pub async fn start(data_dir: &std::path::Path, port: u16, env: &[(&str, &str)]) -> Binary {
        let mut command = Self::command(port, env);
        command.arg("--data-dir").arg(data_dir);
        let own_database = env.iter().any(|(k, _)| *k == "FMU_GATEWAY_DATABASE_URL");
        if !own_database && let Some(url) = db::database_url(data_dir).await {
            command.env("FMU_GATEWAY_DATABASE_URL", url);
        }
        Self::spawn(command, port).await
    }

    /// `fmu-gateway serve --listen 127.0.0.1:<port>` with `env` added, output discarded.
    pub fn command(port: u16, env: &[(&str, &str)]) -> std::process::Command {
        let mut command = std::process::Command::new(env!("CARGO_BIN_EXE_fmu-gateway"));
        command
            .args(["serve", "--listen", &format!("127.0.0.1:{port}")])
            .envs(env.iter().copied())
            .stdout(std::process::Stdio::null())
            .stderr(std::process::Stdio::null());
        command
    }

    /// Runs `command` and waits until the server on `port` answers `/health`.
    pub async fn spawn(mut command: std::process::Command, port: u16) -> Binary {
        let binary = Binary {
            child: command.spawn().unwrap(),
            url: format!("http://127.0.0.1:{port}"),
        };
        for _ in 0..200 {
            if api_client()
                .get(format!("{}/health", binary.url))
                .send()
                .await
                .is_ok_and(|r| r.status() == 200)
            {
                return binary;
            }
            tokio::time::sleep(std::time::Duration::from_millis(50)).await;
        }
        panic!("the server did not start");
    }

    /// Sends SIGTERM and waits (at most `within`) for the process to exit.
    pub async fn terminate(&mut self, within: std::time::Duration) -> std::process::ExitStatus {
        let pid = self.child.id().to_string();
        assert!(
            std::process::Command::new("kill")
                .args(["-TERM", &pid])
                .status()
                .unwrap()
                .success()
        );
        let deadline = std::time::Instant::now() + within;
        loop {
            if let Some(status) = self.child.try_wait().unwrap() {
                return status;
            }
            assert!(
                std::time::Instant::now() < deadline,
                "the server did not stop within {within:?}"
            );
            tokio::time::sleep(std::time::Duration::from_millis(50)).await;
        }
    }
}

impl Drop for Binary {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

/// The real `fmu-gateway serve` on its own data directory with one registered user: what the
/// tests that bill or attack the real process start from (each adds its own methods).
pub struct UserServer {
    pub binary: Binary,
    pub data: std::path::PathBuf,
    pub key: String,
    _dir: tempfile::TempDir,
}

impl UserServer {
    /// Starts the binary with `env` (runs answer 202 at once) and registers `email`.
    pub async fn start(email: &str, env: &[(&str, &str)]) -> UserServer {
        let dir = tempfile::tempdir().unwrap();
        let data = dir.path().join("data");
        let mut env = env.to_vec();
        env.push(("FMU_GATEWAY_SYNC_WAIT_MS", "0"));
        let binary = Binary::start(&data, free_port(), &env).await;
        let reg = binary.sign_up(email).await;
        UserServer {
            key: reg["api_key"].as_str().unwrap().to_string(),
            binary,
            data,
            _dir: dir,
        }
    }

    pub fn at(&self, path: &str) -> String {
        format!("{}{path}", self.binary.url)
    }

    /// Uploads an FMU; returns its id.
    pub async fn upload(&self, bytes: Vec<u8>) -> String {
        let resp = self.upload_fmu(&self.key, bytes).await;
        assert!(resp.status().is_success(), "{}", resp.text().await.unwrap());
        let body: Value = resp.json().await.unwrap();
        body["id"].as_str().unwrap().to_string()
    }

    /// Builds the Hostile model (FMI 3) with `defines` (an attack, then its targets) and
    /// uploads it; returns its id. Its attack fails the upload's smoke test (the sandbox
    /// blocks it there too), so it is uploaded as lenient: these tests are about runs.
    pub async fn upload_hostile(&self, defines: &[&str]) -> String {
        let resp = self
            .upload_fmu_with(&self.key, "?lenient=true", hostile_fmu(defines))
            .await;
        assert!(resp.status().is_success(), "{}", resp.text().await.unwrap());
        let body: Value = resp.json().await.unwrap();
        body["id"].as_str().unwrap().to_string()
    }
}

/// The Hostile model (FMI 3) built with `defines` (an attack, then its targets).
pub fn hostile_fmu(defines: &[&str]) -> Vec<u8> {
    let out = tempfile::tempdir().unwrap();
    let fmus = std::path::PathBuf::from(env!("CARGO_MANIFEST_DIR")).join("fmus");
    let path = build_support::build_fmu(
        &fmus,
        "Hostile",
        build_support::FmiVersion::V3,
        defines,
        out.path(),
        &defines[0].to_lowercase(),
    )
    .expect("the hostile FMU builds");
    std::fs::read(path).unwrap()
}

/// A field of `/proc/<pid>/status` in KiB (`VmRSS`, `VmHWM`).
pub fn proc_kib(pid: u32, field: &str) -> u64 {
    let status = std::fs::read_to_string(format!("/proc/{pid}/status")).unwrap();
    status
        .lines()
        .find_map(|l| l.strip_prefix(field)?.strip_prefix(':'))
        .and_then(|v| v.split_whitespace().next()?.parse().ok())
        .unwrap_or_else(|| panic!("{field} missing from /proc/{pid}/status"))
}
