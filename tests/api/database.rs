//! The operator's database commands (`admin migrate`, `admin backup`) and the one-server
//! rule, on whichever engine the suite runs on (SQLite by default, PostgreSQL on its second
//! pass): each test says what it expects of both.

use serde_json::{Value, json};

use crate::common::db::{self, on_postgres};
use crate::common::{Api, Binary, UserServer, free_port};

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

/// A second server on the same PostgreSQL database would take the first one's runs in
/// progress for interrupted ones and fail them: it is refused with the reason, and the
/// first keeps serving. (SQLite: a data directory is one machine's; nothing to check.)
#[tokio::test]
async fn a_second_server_on_the_same_postgres_database_is_refused() {
    if !on_postgres() {
        return;
    }
    let server = UserServer::start("only-one@example.com", &[]).await;
    let second = std::process::Command::new(EXE)
        .args(["serve", "--listen", &format!("127.0.0.1:{}", free_port())])
        .arg("--data-dir")
        .arg(server.data.with_extension("second"))
        .envs(db::env(&server.data))
        .output()
        .unwrap();
    assert!(!second.status.success());
    assert!(
        String::from_utf8_lossy(&second.stderr).contains("another fmu-gateway server is running"),
        "{}",
        String::from_utf8_lossy(&second.stderr)
    );
    assert_eq!(
        server.get_json("/api/v1/me", &server.key).await["email"],
        "only-one@example.com"
    );
}
