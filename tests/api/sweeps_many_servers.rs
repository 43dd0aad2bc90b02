//! Sweeps on two real servers sharing one PostgreSQL database (the suite's PostgreSQL pass
//! only: on SQLite a database has one server). A sweep started on one server is watched from
//! the other until its real end, cancelled from the other within a lease period, and, when
//! its server is killed, taken over by the other and completed with every case settled once.

use std::time::{Duration, Instant};

use serde_json::{Value, json};

use crate::common::api::Api;
use crate::common::db::{self, on_postgres};
use crate::common::{Binary, api_client, free_port};

/// How long a server's lease on a sweep lasts here (`FMU_GATEWAY_LEASE_SECONDS`).
const LEASE: Duration = Duration::from_secs(2);

/// Two servers, A and B, on one database with one root key (a key made on either works on
/// both), each with a data directory (and object store) of its own.
struct TwoServers {
    a: Binary,
    b: Binary,
    /// A's data directory: the test's way into the shared database.
    data_a: std::path::PathBuf,
    key: String,
    _dir: tempfile::TempDir,
}

/// Starts A then B (B migrates nothing: A did) and signs a user up on A; `None`, with a
/// printed line, when the suite runs on SQLite.
async fn two_servers(test: &str) -> Option<TwoServers> {
    if !on_postgres() {
        println!("skipped {test}: servers share a database only on PostgreSQL");
        return None;
    }
    let dir = tempfile::tempdir().unwrap();
    let (data_a, data_b) = (dir.path().join("a"), dir.path().join("b"));
    let url = db::database_url(&data_a).await.unwrap();
    let root_key: String = (0..32)
        .map(|_| format!("{:02x}", rand::random::<u8>()))
        .collect();
    let lease = LEASE.as_secs().to_string();
    let env = [
        ("FMU_GATEWAY_DATABASE_URL", url.as_str()),
        ("FMU_GATEWAY_ROOT_KEY", root_key.as_str()),
        ("FMU_GATEWAY_LEASE_SECONDS", lease.as_str()),
        ("FMU_GATEWAY_FREE_CREDITS", "1000"),
        ("FMU_GATEWAY_WORKERS", "2"),
    ];
    let a = Binary::start(&data_a, free_port(), &env).await;
    let b = Binary::start(&data_b, free_port(), &env).await;
    let account = a.sign_up(&crate::common::unique_email()).await;
    let key = account["api_key"].as_str().unwrap().to_string();
    assert_eq!(
        b.get("/api/v1/me", &key).await.status(),
        200,
        "a key made on A works on B"
    );
    Some(TwoServers {
        a,
        b,
        data_a,
        key,
        _dir: dir,
    })
}

/// A sweep of `n` Van der Pol cases of `stop_time` each (Co-Simulation in 1 ms substeps: in
/// a debug build about 0.15 s of work per 1 000 s simulated), varying `mu`.
fn van_der_pol_sweep(n: u32, stop_time: f64) -> Value {
    json!({
        "base": {"fmu_id": "lib:VanDerPol", "stop_time": stop_time, "output_interval": stop_time / 100.0},
        "design": {"grid": [{"name": "mu", "range": {"start": 0.5, "stop": 2.0, "num": n}}]},
        "kpis": [{"variable": "x0", "kind": "final"}],
    })
}

/// Starts `body` on `server`; the sweep's id.
async fn start_sweep(server: &Binary, key: &str, body: &Value) -> String {
    let resp = server.post_json("/api/v1/sweeps", key, body).await;
    assert_eq!(resp.status(), 202, "{}", resp.text().await.unwrap());
    resp.json::<Value>().await.unwrap()["id"]
        .as_str()
        .unwrap()
        .to_string()
}

/// The cases of a sweep (as `GET /api/v1/sweeps/{id}` counts them) that have ended.
fn ended(sweep: &Value) -> u64 {
    ["succeeded", "failed", "cancelled"]
        .iter()
        .map(|s| sweep["counts"][s].as_u64().unwrap())
        .sum()
}

/// Polls the sweep on `server` until `done` says so (at most `within`); the sweep.
async fn sweep_when(
    server: &Binary,
    key: &str,
    id: &str,
    within: Duration,
    done: impl Fn(&Value) -> bool,
) -> Value {
    let deadline = Instant::now() + within;
    loop {
        let sweep = server.get_json(&format!("/api/v1/sweeps/{id}"), key).await;
        if done(&sweep) {
            return sweep;
        }
        assert!(
            Instant::now() < deadline,
            "sweep {id} not as expected within {within:?}: {sweep}"
        );
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
}

/// The sweep's event stream on `server`, read to its end: each event's kind and data.
pub(crate) async fn events_to_the_end(base: &str, key: &str, id: &str) -> Vec<(String, Value)> {
    let mut resp = api_client()
        .get(format!("{base}/api/v1/sweeps/{id}/events"))
        .bearer_auth(key)
        .send()
        .await
        .unwrap();
    assert_eq!(resp.status(), 200);
    let mut text = String::new();
    let deadline = Instant::now() + Duration::from_secs(300);
    while !text.contains("event: end") {
        let chunk = tokio::time::timeout_at(deadline.into(), resp.chunk())
            .await
            .expect("the stream ends in time");
        match chunk.unwrap() {
            Some(chunk) => text.push_str(&String::from_utf8_lossy(&chunk)),
            None => break,
        }
    }
    text.split("\n\n")
        .filter_map(|block| {
            let kind = block.lines().find_map(|l| l.strip_prefix("event: "))?;
            let data = block.lines().find_map(|l| l.strip_prefix("data: "))?;
            Some((kind.to_string(), serde_json::from_str(data).unwrap()))
        })
        .collect()
}

/// The money of the sweep's owner adds up: the sweep's charge is its charged cases times
/// their cost, which its own ledger rows and the usage recorded hold exactly (the user ran
/// nothing else), and the balance is the ledger's sum.
async fn money_adds_up(servers: &TwoServers, sweep: &Value) {
    let id = sweep["id"].as_str().unwrap();
    let charged = sweep["credits_charged"].as_i64().unwrap();
    let per_case = sweep["credits_per_case"].as_i64().unwrap();
    let conn = db::open(&servers.data_a).await.conn().unwrap();
    let (user, charged_cases): (String, i64) = conn
        .query_row(
            "SELECT user_id, (SELECT COUNT(*) FROM sweep_cases WHERE sweep_id = ?1 AND charged = 1)
             FROM sweeps WHERE id = ?1",
            [id],
            |r| Ok((r.get(0)?, r.get(1)?)),
        )
        .unwrap();
    assert_eq!(charged, charged_cases * per_case, "{sweep}");
    let (balance, ledger, of_sweep, usage): (i64, i64, i64, i64) = conn
        .query_row(
            "SELECT (SELECT credits FROM users WHERE id = ?1),
                    (SELECT COALESCE(SUM(delta), 0) FROM credit_ledger WHERE user_id = ?1),
                    (SELECT COALESCE(SUM(delta), 0) FROM credit_ledger WHERE sweep_id = ?2),
                    (SELECT COALESCE(SUM(credits), 0) FROM usage WHERE user_id = ?1)",
            [user.as_str(), id],
            |r| Ok((r.get(0)?, r.get(1)?, r.get(2)?, r.get(3)?)),
        )
        .unwrap();
    assert_eq!(balance, ledger, "the balance is the ledger's sum");
    assert_eq!(
        of_sweep, -charged,
        "the sweep's ledger rows hold its charge"
    );
    assert_eq!(usage, charged, "the usage recorded is the sweep's charge");
    assert_eq!(servers.b.balance(&servers.key).await, balance);
}

#[tokio::test]
async fn a_sweep_running_on_one_server_is_watched_from_another_until_its_end() {
    let Some(servers) = two_servers("the watch across servers").await else {
        return;
    };
    let key = &servers.key;
    // About 6 s of work on A's two workers.
    let id = start_sweep(&servers.a, key, &van_der_pol_sweep(40, 2_000.0)).await;
    let events = events_to_the_end(&servers.b.url, key, &id).await;

    let progress: Vec<u64> = events
        .iter()
        .filter(|(kind, _)| kind == "progress")
        .map(|(_, e)| {
            ["succeeded", "failed", "cancelled"]
                .iter()
                .map(|s| e["counts"][s].as_u64().unwrap())
                .sum()
        })
        .collect();
    let shown: Vec<String> = events.iter().map(|(k, e)| format!("{k} {e}")).collect();
    assert!(progress[0] < 40, "B began watching mid-sweep: {shown:#?}");
    let mut distinct = progress.clone();
    distinct.dedup();
    assert!(
        distinct.len() >= 3 && progress.windows(2).all(|w| w[0] <= w[1]),
        "B's stream shows the cases ended as they grow: {shown:#?}"
    );
    let (last_kind, last) = events.last().unwrap();
    assert_eq!(
        (last_kind.as_str(), last["status"].as_str()),
        ("end", Some("completed")),
        "{shown:#?}"
    );
    // The end B told is A's: the sweep has really ended, every case with it.
    let sweep = servers
        .a
        .get_json(&format!("/api/v1/sweeps/{id}"), key)
        .await;
    assert!(sweep["finished_at"].is_string(), "{sweep}");
    assert_eq!(sweep["status"], "completed");
    assert_eq!(sweep["counts"]["succeeded"], 40, "{sweep}");
    money_adds_up(&servers, &sweep).await;
}

#[tokio::test]
async fn a_sweep_cancelled_on_another_server_stops_its_workers_at_once() {
    let Some(servers) = two_servers("the cancel across servers").await else {
        return;
    };
    let key = &servers.key;
    // Cases of about 6 s each: a worker that kept running would end its case long after.
    let id = start_sweep(&servers.a, key, &van_der_pol_sweep(6, 40_000.0)).await;
    sweep_when(&servers.a, key, &id, Duration::from_secs(60), |s| {
        s["counts"]["running"].as_u64().unwrap() >= 2
    })
    .await;
    tokio::time::sleep(Duration::from_millis(500)).await;

    let asked = Instant::now();
    let resp = servers
        .b
        .post(&format!("/api/v1/sweeps/{id}/cancel"), key)
        .await;
    assert_eq!(resp.status(), 200, "{}", resp.text().await.unwrap());
    let sweep = sweep_when(&servers.b, key, &id, Duration::from_secs(30), |s| {
        s["finished_at"].is_string()
    })
    .await;
    let took = asked.elapsed();
    println!("the sweep ended cancelled {took:?} after B was asked");
    assert!(
        took < Duration::from_secs(3),
        "the cancel stopped A's workers within about a lease period, not {took:?}: {sweep}"
    );
    assert_eq!(sweep["status"], "cancelled", "{sweep}");
    let c = &sweep["counts"];
    assert_eq!(
        c["succeeded"], 0,
        "no running case went on to its end: {sweep}"
    );
    assert_eq!(c["cancelled"], 6, "{sweep}");
    assert_eq!(
        (c["running"].as_u64(), c["queued"].as_u64()),
        (Some(0), Some(0))
    );
    // The cases stopped while running used a worker (charged, as a cancelled run); the
    // others were refunded.
    let per_case = sweep["credits_per_case"].as_i64().unwrap();
    assert!(
        sweep["credits_charged"].as_i64().unwrap() >= per_case,
        "{sweep}"
    );
    assert_eq!(
        sweep["credits_charged"].as_i64().unwrap() + sweep["credits_refunded"].as_i64().unwrap(),
        6 * per_case
    );
    // A says the same: its copy of the sweep is the database's.
    let on_a = servers
        .a
        .get_json(&format!("/api/v1/sweeps/{id}"), key)
        .await;
    assert_eq!(on_a["counts"], sweep["counts"]);
    money_adds_up(&servers, &sweep).await;
}

#[tokio::test]
async fn a_sweep_whose_server_is_killed_is_taken_over_and_each_case_settled_once() {
    let Some(mut servers) = two_servers("the takeover").await else {
        return;
    };
    let key = servers.key.clone();
    let before = servers.b.balance(&key).await;
    // About 9 s of work on two workers.
    let id = start_sweep(&servers.a, &key, &van_der_pol_sweep(60, 2_000.0)).await;
    sweep_when(&servers.a, &key, &id, Duration::from_secs(120), |s| {
        ended(s) >= 8
    })
    .await;
    servers.a.child.kill().unwrap();
    servers.a.child.wait().unwrap();
    let killed = Instant::now();
    let at_kill = servers
        .b
        .get_json(&format!("/api/v1/sweeps/{id}"), &key)
        .await;
    assert!(
        at_kill["finished_at"].is_null(),
        "A was killed mid-sweep: {at_kill}"
    );

    // B takes it over once A's lease has run out, and cases end again.
    let resumed = sweep_when(&servers.b, &key, &id, Duration::from_secs(60), |s| {
        ended(s) > ended(&at_kill)
    })
    .await;
    let took = killed.elapsed();
    println!("B ended a case of the sweep {took:?} after A was killed");
    assert!(
        took < LEASE * 5,
        "B took the sweep over within a few lease periods, not {took:?}: {resumed}"
    );
    let sweep = sweep_when(&servers.b, &key, &id, Duration::from_secs(300), |s| {
        s["finished_at"].is_string()
    })
    .await;
    assert_eq!(sweep["status"], "completed", "{sweep}");
    assert_eq!(sweep["counts"]["succeeded"], 60, "{sweep}");
    let per_case = sweep["credits_per_case"].as_i64().unwrap();
    assert_eq!(sweep["credits_charged"].as_i64().unwrap(), 60 * per_case);
    assert_eq!(servers.b.balance(&key).await, before - 60 * per_case);
    money_adds_up(&servers, &sweep).await;
    // Each case ended once, with its KPI; those A was running when it died ran again on B.
    let conn = db::open(&servers.data_a).await.conn().unwrap();
    let (cases, with_kpis, retried): (i64, i64, i64) = conn
        .query_row(
            "SELECT COUNT(*), COUNT(kpis), SUM(CASE WHEN attempts > 1 THEN 1 ELSE 0 END)
             FROM sweep_cases WHERE sweep_id = ?1 AND status = 'succeeded' AND charged = 1",
            [&id],
            |r| Ok((r.get(0)?, r.get(1)?, r.get(2)?)),
        )
        .unwrap();
    assert_eq!((cases, with_kpis), (60, 60));
    assert!(retried >= 1, "A died with cases running, which B ran again");
    // A's server is gone; B alone answers, and is still well.
    servers.a.child.try_wait().unwrap().expect("A is dead");
    assert_eq!(servers.b.get("/health", &key).await.status(), 200);
}
