//! Which database a test's server uses, and a way for the test to look inside it.
//!
//! By default every server a test starts keeps SQLite in its data directory. When
//! `FMU_GATEWAY_TEST_POSTGRES` holds the URL of a PostgreSQL cluster's admin database
//! (`.ci/run` and `scripts/test.sh --postgres` start one with `scripts/postgres.sh`), each data
//! directory gets a fresh database of its own instead, so the whole suite runs a second time
//! on PostgreSQL with the same isolation. The database's URL is kept next to the data
//! directory (`<data_dir>.database-url`), so a server restarted on the same directory, and
//! the test looking inside it, find the same database.

use std::path::{Path, PathBuf};

use fmu_gateway::store::{Location, Store};

/// The admin URL of the PostgreSQL cluster to run on, when the suite runs on PostgreSQL.
pub fn postgres_admin_url() -> Option<String> {
    std::env::var("FMU_GATEWAY_TEST_POSTGRES")
        .ok()
        .filter(|v| !v.trim().is_empty())
}

/// Whether this run of the suite is on PostgreSQL.
pub fn on_postgres() -> bool {
    postgres_admin_url().is_some()
}

fn marker(data_dir: &Path) -> PathBuf {
    data_dir.with_extension("database-url")
}

/// The `FMU_GATEWAY_DATABASE_URL` for a server on `data_dir`: `None` on SQLite; on PostgreSQL
/// the URL of the directory's own database, created on first use.
pub async fn database_url(data_dir: &Path) -> Option<String> {
    let admin = postgres_admin_url()?;
    let marker = marker(data_dir);
    if let Ok(url) = std::fs::read_to_string(&marker) {
        return Some(url);
    }
    let name = format!("gw_{:016x}", rand::random::<u64>());
    let (client, connection) = tokio_postgres::connect(&admin, tokio_postgres::NoTls)
        .await
        .expect("the test PostgreSQL cluster answers");
    let driver = tokio::spawn(connection);
    client
        .batch_execute(&format!("CREATE DATABASE {name}"))
        .await
        .expect("a test database is created");
    drop(client);
    let _ = driver.await;
    let url = with_database(&admin, &name);
    if let Some(parent) = marker.parent() {
        std::fs::create_dir_all(parent).unwrap();
    }
    std::fs::write(&marker, &url).unwrap();
    Some(url)
}

/// `admin` with its database name replaced by `name` (`postgres://user@host/db?params`).
fn with_database(admin: &str, name: &str) -> String {
    let (base, query) = admin.split_once('?').unwrap_or((admin, ""));
    let scheme_end = base.find("://").map(|i| i + 3).unwrap_or(0);
    let host_end = base[scheme_end..]
        .find('/')
        .map(|i| scheme_end + i)
        .unwrap_or(base.len());
    let mut url = format!("{}/{name}", &base[..host_end]);
    if !query.is_empty() {
        url.push('?');
        url.push_str(query);
    }
    url
}

/// Where the database of a server on `data_dir` is.
pub async fn location(data_dir: &Path) -> Location {
    match database_url(data_dir).await {
        Some(url) => Location::Postgres(url),
        None => Location::Sqlite(data_dir.join("fmu-gateway.db")),
    }
}

/// A store on the database of a server on `data_dir` (migrated as the server would), for a
/// test to look inside or change what only an operator could.
pub async fn open(data_dir: &Path) -> Store {
    let location = location(data_dir).await;
    tokio::task::spawn_blocking(move || Store::connect(&location, 1))
        .await
        .unwrap()
        .expect("the test opens the server's database")
}

#[test]
fn a_database_name_replaces_the_admin_one() {
    assert_eq!(
        with_database(
            "postgres://postgres@localhost/postgres?host=/tmp/pg",
            "gw_1"
        ),
        "postgres://postgres@localhost/gw_1?host=/tmp/pg"
    );
    assert_eq!(
        with_database("postgres://u:p@db:5432/admin", "gw_2"),
        "postgres://u:p@db:5432/gw_2"
    );
}

/// The environment that points a command (`fmu-gateway admin …`) at the database of the
/// server on `data_dir`: nothing on SQLite (the data directory says it all).
pub fn env(data_dir: &Path) -> Vec<(&'static str, String)> {
    if !on_postgres() {
        return Vec::new();
    }
    let url = std::fs::read_to_string(marker(data_dir))
        .expect("the server on this data directory was started first");
    vec![("FMU_GATEWAY_DATABASE_URL", url)]
}
