//! The operator's database commands (`admin migrate`, `admin backup`) and servers sharing
//! one database, on whichever engine the suite runs on (SQLite by default, PostgreSQL on its second
//! pass): each test says what it expects of both.

use serde_json::{Value, json};

use crate::common::db::{self, on_postgres};
use crate::common::{Api, Binary, UserServer, api_client, free_port};

const EXE: &str = env!("CARGO_BIN_EXE_fmu-gateway");

fn admin(data: &std::path::Path, args: &[&str]) -> std::process::Output {
    std::process::Command::new(EXE)
        .arg("admin")
        .args(args)
        .arg("--data-dir")
        .arg(data)
        .envs(db::env(data))
        .output()
        .unwrap()
}

/// `admin migrate` brings a new database to the newest schema and says so; again, it
/// changes nothing.
#[tokio::test]
async fn migrate_creates_the_schema_and_is_idempotent() {
    let dir = tempfile::tempdir().unwrap();
    let data = dir.path().join("data");
    // On PostgreSQL, a fresh database of this directory's own.
    db::database_url(&data).await;
    for _ in 0..2 {
        let out = admin(&data, &["migrate"]);
        let stdout = String::from_utf8_lossy(&out.stdout);
        assert!(
            out.status.success(),
            "{}",
            String::from_utf8_lossy(&out.stderr)
        );
        let (engine, known) = if on_postgres() {
            ("Postgres", count_migrations("schema.postgres.sql"))
        } else {
            ("Sqlite", count_migrations("schema.sql"))
        };
        // (The server's log lines, on stdout too, say which migrations were applied.)
        assert_eq!(
            stdout.lines().last().unwrap_or(""),
            format!("the {engine} database is at migration {known} of {known}")
        );
    }
    // The server starts on the migrated database and serves.
    let server = Binary::start(&data, free_port(), &[]).await;
    let reg = server.sign_up("migrated@example.com").await;
    assert!(reg["api_key"].is_string());
}

fn count_migrations(file: &str) -> usize {
    let schema =
        std::fs::read_to_string(std::path::Path::new(env!("CARGO_MANIFEST_DIR")).join(file))
            .unwrap();
    schema
        .lines()
        .filter(|l| l.starts_with("-- migration "))
        .count()
}

/// A backup taken while the server runs is a database of its own with every account and
/// ledger row; a second backup never overwrites the first. On PostgreSQL the command says
/// what to use instead, and writes nothing.
#[tokio::test]
async fn a_backup_taken_while_the_server_runs_holds_the_accounts_and_their_ledger() {
    let server = UserServer::start("backed-up@example.com", &[]).await;
    let run = server
        .create_run(
            &server.key,
            &json!({ "fmu_id": "lib:BouncingBall", "stop_time": 1.0 }),
        )
        .await;
    assert_eq!(run.status(), 202);
    let id = run.json::<Value>().await.unwrap()["id"]
        .as_str()
        .unwrap()
        .to_string();
    server.finished_run(&server.key, &id).await;
    let balance = server.get_json("/api/v1/me", &server.key).await["credits"]
        .as_i64()
        .unwrap();

    let out_dir = tempfile::tempdir().unwrap();
    let copy = out_dir.path().join("backup.db");
    let out = admin(&server.data, &["backup", "--to", copy.to_str().unwrap()]);
    if on_postgres() {
        assert!(!out.status.success());
        assert!(
            String::from_utf8_lossy(&out.stderr).contains("pg_dump"),
            "{}",
            String::from_utf8_lossy(&out.stderr)
        );
        assert!(!copy.exists());
        return;
    }
    assert!(
        out.status.success(),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
    let store = fmu_gateway::store::Store::open(&copy, 1).unwrap();
    let conn = store.conn().unwrap();
    let (credits, ledger, runs): (i64, i64, i64) = conn
        .query_row(
            "SELECT u.credits, (SELECT SUM(delta) FROM credit_ledger WHERE user_id = u.id),
                    (SELECT COUNT(*) FROM runs WHERE user_id = u.id AND status = 'succeeded')
             FROM users u WHERE u.email = 'backed-up@example.com'",
            [],
            |r| Ok((r.get(0)?, r.get(1)?, r.get(2)?)),
        )
        .unwrap();
    assert_eq!((credits, ledger, runs), (balance, balance, 1));

    // The same path again is refused, and the first copy is left as it was.
    let before = std::fs::read(&copy).unwrap();
    let again = admin(&server.data, &["backup", "--to", copy.to_str().unwrap()]);
    assert!(!again.status.success());
    assert!(String::from_utf8_lossy(&again.stderr).contains("exists"));
    assert_eq!(std::fs::read(&copy).unwrap(), before);
}

/// Two servers on one PostgreSQL database serve as one: a key minted by one works on the
/// other (they share the root key the first one stored), a run started on one is seen
/// running on the other with its progress, and a cancel sent to the other stops it, whichever
/// of the two runs it. (SQLite: a data directory is one machine's; nothing to check.)
#[tokio::test]
async fn two_servers_on_one_postgres_database_serve_as_one() {
    if !on_postgres() {
        return;
    }
    let server = UserServer::start("two-servers@example.com", &[]).await;
    let second = Binary::start(
        &server.data.with_extension("second"),
        free_port(),
        &[(
            "FMU_GATEWAY_DATABASE_URL",
            &db::database_url(&server.data).await.unwrap(),
        )],
    )
    .await;
    let key = &server.key;
    assert_eq!(
        second.get_json("/api/v1/me", key).await["email"],
        "two-servers@example.com"
    );
    let slow = json!({ "fmu_id": "lib:VanDerPol", "stop_time": 1e6, "output_interval": 10.0 });
    let resp = server.binary.create_run(key, &slow).await;
    assert!(resp.status().is_success());
    let run: Value = resp.json().await.unwrap();
    let id = run["id"].as_str().unwrap();
    let deadline = std::time::Instant::now() + std::time::Duration::from_secs(20);
    let seen = loop {
        let seen = second.get_json(&format!("/api/v1/runs/{id}"), key).await;
        if seen["status"] == "running" && seen["progress"]["fraction"].as_f64() > Some(0.0) {
            break seen;
        }
        assert!(std::time::Instant::now() < deadline, "{seen}");
        tokio::time::sleep(std::time::Duration::from_millis(100)).await;
    };
    assert!(
        seen["progress"]["fraction"].as_f64().unwrap() < 1.0,
        "{seen}"
    );
    let cancelled = second
        .post_json(&format!("/api/v1/runs/{id}/cancel"), key, &json!({}))
        .await;
    assert_eq!(cancelled.status(), 200);
    let ended = server.binary.finished_run(key, id).await;
    assert_eq!(ended["status"], "cancelled", "{ended}");
}

#[tokio::test]
async fn two_servers_hold_one_limit_of_runs_per_minute_per_key_and_of_sign_ups_per_hour() {
    if !on_postgres() {
        return;
    }
    let limits = [
        ("FMU_GATEWAY_RUNS_PER_MINUTE", "2"),
        ("FMU_GATEWAY_SIGNUPS_PER_HOUR", "3"),
    ];
    let server = UserServer::start("limits@example.com", &limits).await;
    let url = db::database_url(&server.data).await.unwrap();
    let mut env = limits.to_vec();
    env.push(("FMU_GATEWAY_DATABASE_URL", &url));
    let second = Binary::start(&server.data.with_extension("second"), free_port(), &env).await;
    let (a, b, key) = (&server.binary, &second, &server.key);

    // One run on each server: the key's two of the minute. Each server alone has one left.
    let run = json!({ "fmu_id": "lib:Dahlquist", "stop_time": 0.1 });
    for server in [a, b] {
        let resp = server.create_run(key, &run).await;
        assert!(resp.status().is_success(), "{}", resp.text().await.unwrap());
    }
    let balance = a.balance(key).await;
    for server in [a, b] {
        let refused = server.create_run(key, &run).await;
        assert_eq!(refused.status(), 429, "the limit is the deployment's");
        let wait: u64 = refused.headers()["retry-after"]
            .to_str()
            .unwrap()
            .parse()
            .unwrap();
        assert!((1..=60).contains(&wait), "{wait}");
    }
    assert_eq!(b.balance(key).await, balance, "a refused run holds nothing");

    // Three sign-ups an hour for the deployment: one made above, one on each server, then none.
    b.sign_up("limits-2@example.com").await;
    a.sign_up("limits-3@example.com").await;
    for server in [a, b] {
        let resp = api_client()
            .post(format!("{}/register", server.url))
            .json(&json!({ "email": "limits-4@example.com", "password": "a long password" }))
            .send()
            .await
            .unwrap();
        assert_eq!(resp.status(), 429, "{}", resp.text().await.unwrap());
        assert!(resp.headers().contains_key("retry-after"));
    }
}

/// A cluster of the test's own (scripts/postgres.sh), which it may crash and restart without
/// touching the one the rest of the suite shares; stopped when dropped.
pub(crate) struct OwnCluster {
    dir: tempfile::TempDir,
    pub(crate) admin_url: String,
}

impl OwnCluster {
    pub(crate) fn start() -> OwnCluster {
        let dir = tempfile::Builder::new()
            .prefix("pg")
            .tempdir_in("/tmp")
            .unwrap();
        let out = Self::script("start", dir.path());
        OwnCluster {
            admin_url: String::from_utf8(out.stdout).unwrap().trim().to_string(),
            dir,
        }
    }

    /// `scripts/postgres.sh <command> <dir>`, as it answered.
    fn run_script(command: &str, dir: &std::path::Path) -> std::process::Output {
        std::process::Command::new(
            std::path::Path::new(env!("CARGO_MANIFEST_DIR")).join("scripts/postgres.sh"),
        )
        .args([command, dir.to_str().unwrap()])
        .output()
        .unwrap()
    }

    fn script(command: &str, dir: &std::path::Path) -> std::process::Output {
        let out = Self::run_script(command, dir);
        assert!(
            out.status.success(),
            "{}",
            String::from_utf8_lossy(&out.stderr)
        );
        out
    }

    /// An immediate stop (no checkpoint: what a crash leaves) and a start, which recovers.
    pub(crate) fn crash_and_restart(&self) {
        Self::script("restart", self.dir.path());
    }
}

impl Drop for OwnCluster {
    fn drop(&mut self) {
        // Best effort: a failed test must still stop its cluster, without a second panic.
        Self::run_script("stop", self.dir.path());
    }
}

/// PostgreSQL crashing and coming back under a running server: requests during the outage
/// fail cleanly (500, `/ready` 503), nothing is half-written, and once the database is back
/// the same server serves again without a restart (its pool replaces the dead connections).
#[tokio::test]
async fn the_server_serves_again_after_postgres_crashes_and_recovers() {
    if !on_postgres() {
        return;
    }
    let cluster = OwnCluster::start();
    let dir = tempfile::tempdir().unwrap();
    let data = dir.path().join("data");
    let url = cluster.admin_url.clone();
    let server = Binary::start(&data, free_port(), &[("FMU_GATEWAY_DATABASE_URL", &url)]).await;
    let reg = server.sign_up("through-a-crash@example.com").await;
    let key = reg["api_key"].as_str().unwrap().to_string();
    let before = server.get_json("/api/v1/me", &key).await["credits"]
        .as_i64()
        .unwrap();

    cluster.crash_and_restart();
    // The first requests after the crash may meet connections that died with it; within a
    // few seconds every request is served again by the same process.
    let deadline = std::time::Instant::now() + std::time::Duration::from_secs(20);
    loop {
        let resp = server.get("/api/v1/me", &key).await;
        if resp.status() == 200 {
            break;
        }
        assert_eq!(resp.status(), 500, "a failed request is a clean 500");
        assert!(
            std::time::Instant::now() < deadline,
            "the server did not recover"
        );
        tokio::time::sleep(std::time::Duration::from_millis(200)).await;
    }
    let ready = crate::common::api_client()
        .get(format!("{}/ready", server.url))
        .send()
        .await
        .unwrap();
    assert_eq!(ready.status(), 200);
    // A run after the crash is reserved, run and settled as any other.
    let run = server
        .create_run(
            &key,
            &json!({ "fmu_id": "lib:BouncingBall", "stop_time": 1.0 }),
        )
        .await;
    let id = run.json::<Value>().await.unwrap()["id"]
        .as_str()
        .unwrap()
        .to_string();
    let done = server.finished_run(&key, &id).await;
    assert_eq!(done["status"], "succeeded");
    let me = server.get_json("/api/v1/me", &key).await;
    assert_eq!(
        me["credits"].as_i64().unwrap(),
        before - done["credits_charged"].as_i64().unwrap()
    );
}
