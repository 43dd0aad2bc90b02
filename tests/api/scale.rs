//! Many processes on one PostgreSQL, as a multi-machine deployment runs: two `serve`, two
//! `worker-node`, one S3 stand-in (moto), all real processes of the real binary. Users sign
//! up on either server and start 200 runs through both; mid-way one worker node is killed
//! with SIGKILL while it holds runs, and PostgreSQL crashes and restarts once. Then every run
//! has ended exactly once: succeeded (charged once, its result in the bucket and served by
//! either server) or failed and refunded; the ledger sums to every balance.
//!
//! The worker nodes connect as a role given only what `admin grant-worker-role` grants (and
//! cannot read a password hash); their runs still save FMU states and record webhooks.
//!
//! Only on the suite's PostgreSQL pass (`FMU_GATEWAY_TEST_POSTGRES`): it starts a cluster of
//! its own with `scripts/postgres.sh`, which that pass has installed.

use std::path::{Path, PathBuf};
use std::process::{Child, Command};
use std::time::{Duration, Instant};

use futures_util::StreamExt;
use serde_json::{Value, json};

use crate::common::db::on_postgres;
use crate::common::{Api, Binary, api_client, free_port};
use crate::database::OwnCluster;
use crate::object_store::{BUCKET, PREFIX, S3StandIn};
use fmu_gateway::store::Store;

const RUNS: usize = 200;
const USERS: usize = 4;

/// A `worker-node` process, its output kept in a file for when the test fails.
struct Node {
    child: Child,
    log: PathBuf,
}

impl Node {
    fn start(data: &Path, env: &[(&str, String)]) -> Node {
        std::fs::create_dir_all(data).unwrap();
        let log = data.with_extension("log");
        let out = std::fs::File::create(&log).unwrap();
        let child = Command::new(env!("CARGO_BIN_EXE_fmu-gateway"))
            .arg("worker-node")
            .arg("--data-dir")
            .arg(data)
            .envs(env.iter().map(|(k, v)| (*k, v.as_str())))
            .stdout(out.try_clone().unwrap())
            .stderr(out)
            .spawn()
            .unwrap();
        Node { child, log }
    }

    fn kill_9(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

impl Drop for Node {
    fn drop(&mut self) {
        self.kill_9();
    }
}

/// `sql` on the deployment's database, asked again while PostgreSQL restarts.
async fn query<T: Send + 'static>(
    store: &Store,
    f: impl Fn(&fmu_gateway::store::Connection) -> fmu_gateway::store::StoreResult<T>
    + Send
    + Sync
    + Clone
    + 'static,
) -> T {
    let deadline = Instant::now() + Duration::from_secs(60);
    loop {
        let (store2, f2) = (store.clone(), f.clone());
        let got = tokio::task::spawn_blocking(move || store2.conn().and_then(|c| f2(&c)))
            .await
            .unwrap();
        match got {
            Ok(value) => return value,
            Err(e) => {
                assert!(
                    Instant::now() < deadline,
                    "the database did not answer: {e}"
                );
                tokio::time::sleep(Duration::from_millis(200)).await;
            }
        }
    }
}

/// A run for the test: most end in milliseconds; every tenth takes a second or so, so that
/// runs are in the workers when one is killed; every seventh saves its final state.
fn run_body(i: usize) -> Value {
    if i % 7 == 3 {
        json!({
            "fmu_id": "lib:BouncingBall",
            "stop_time": 1.0,
            "save_final_state": true,
        })
    } else if i.is_multiple_of(10) {
        json!({
            "fmu_id": "lib:VanDerPol",
            "stop_time": 3000.0,
            "output_interval": 1.0,
        })
    } else {
        json!({
            "fmu_id": "lib:Dahlquist",
            "stop_time": 1.0,
            "output_interval": 0.1,
        })
    }
}

/// One deployment's shared parts: its own PostgreSQL cluster, an S3 stand-in, the settings
/// every process gets, and the worker nodes' role (created, granted, and checked to be
/// denied every secret).
struct Deployment {
    cluster: OwnCluster,
    s3: S3StandIn,
    dir: tempfile::TempDir,
    env: Vec<(&'static str, String)>,
    worker_url: String,
    /// The database as its owner (the test's way in).
    db: Store,
}

impl Deployment {
    async fn start() -> Deployment {
        let python = S3StandIn::python().expect("python3 runs moto");
        let cluster = OwnCluster::start();
        let s3 = S3StandIn::start(python, free_port()).await;
        let dir = tempfile::tempdir().unwrap();
        let env: Vec<(&str, String)> = vec![
            ("FMU_GATEWAY_DATABASE_URL", cluster.admin_url.clone()),
            (
                "FMU_GATEWAY_OBJECT_STORE",
                format!("s3://{BUCKET}/{PREFIX}"),
            ),
            ("AWS_ACCESS_KEY_ID", "testing".into()),
            ("AWS_SECRET_ACCESS_KEY", "testing".into()),
            ("AWS_REGION", "us-east-1".into()),
            ("AWS_ENDPOINT_URL", format!("http://127.0.0.1:{}", s3.port)),
            ("AWS_ALLOW_HTTP", "true".into()),
            ("FMU_GATEWAY_LEASE_SECONDS", "3".into()),
            ("FMU_GATEWAY_WORKERS", "1".into()),
            ("FMU_GATEWAY_SYNC_WAIT_MS", "0".into()),
            ("FMU_GATEWAY_RUNS_PER_MINUTE", "1000".into()),
            ("FMU_GATEWAY_MAX_ACTIVE_RUNS_PER_USER", "1000".into()),
            ("FMU_GATEWAY_FREE_CREDITS", "100".into()),
            ("FMU_GATEWAY_FREE_GRANTS_PER_ADDRESS_PER_DAY", "100".into()),
            ("FMU_GATEWAY_WEBHOOK_ALLOW_PRIVATE", "true".into()),
        ];
        // The worker nodes' role: created by the operator, given only what a worker needs.
        let admin_db = Store::open_postgres(&cluster.admin_url, 1).unwrap();
        query(&admin_db, |c| {
            c.execute_batch("CREATE ROLE fmu_worker LOGIN")
        })
        .await;
        let worker_url =
            cluster
                .admin_url
                .replacen("postgres://postgres@", "postgres://fmu_worker@", 1);
        let db = Store::open_postgres(&cluster.admin_url, 4).unwrap();
        Deployment {
            cluster,
            s3,
            dir,
            env,
            worker_url,
            db,
        }
    }

    /// The settings as pairs, for [`Binary::start`].
    fn pairs(&self) -> Vec<(&str, &str)> {
        self.env.iter().map(|(k, v)| (*k, v.as_str())).collect()
    }

    /// Grants the worker role what `admin grant-worker-role` grants (once the first server
    /// has migrated), and checks it can neither migrate nor read a secret.
    async fn grant_worker_role(&self) {
        let granted = Command::new(env!("CARGO_BIN_EXE_fmu-gateway"))
            .args([
                "admin",
                "grant-worker-role",
                "--role",
                "fmu_worker",
                "--data-dir",
            ])
            .arg(self.dir.path().join("admin"))
            .env("FMU_GATEWAY_DATABASE_URL", &self.cluster.admin_url)
            .output()
            .unwrap();
        assert!(
            granted.status.success(),
            "{}",
            String::from_utf8_lossy(&granted.stderr)
        );
        let worker_db = Store::open_postgres(&self.worker_url, 1);
        assert!(worker_db.is_err(), "the worker role cannot migrate");
        let worker_db = Store::attach_postgres(&self.worker_url, 1).unwrap();
        for secret in [
            "SELECT password_hash FROM users",
            "SELECT token_hash FROM sessions",
            "SELECT * FROM api_keys",
            "SELECT value FROM service_secrets",
            "SELECT secret FROM webhook_endpoints",
            "SELECT * FROM purchases",
        ] {
            let denied = tokio::task::spawn_blocking({
                let db = worker_db.clone();
                move || db.conn().unwrap().execute_batch(secret)
            })
            .await
            .unwrap()
            .unwrap_err();
            assert!(
                denied.to_string().contains("permission denied"),
                "{secret}: {denied}"
            );
        }
    }

    /// Starts `n` worker nodes as the worker role (their webhooks link to `public_url`) and
    /// waits until each has said it is alive.
    async fn worker_nodes(&self, n: usize, public_url: &str) -> Vec<Node> {
        let mut env = self.env.clone();
        env.retain(|(k, _)| *k != "FMU_GATEWAY_DATABASE_URL");
        env.push(("FMU_GATEWAY_DATABASE_URL", self.worker_url.clone()));
        env.push(("FMU_GATEWAY_PUBLIC_URL", public_url.to_string()));
        let nodes: Vec<Node> = (1..=n)
            .map(|i| Node::start(&self.dir.path().join(format!("node{i}")), &env))
            .collect();
        let deadline = Instant::now() + Duration::from_secs(90);
        while query(&self.db, |c| {
            c.query_row(
                "SELECT COUNT(*) FROM worker_nodes WHERE kind = 'worker'",
                [],
                |r| r.get::<i64>(0),
            )
        })
        .await
            < n as i64
        {
            assert!(
                Instant::now() < deadline,
                "the worker nodes did not start: {}",
                std::fs::read_to_string(&nodes[0].log).unwrap_or_default()
            );
            tokio::time::sleep(Duration::from_millis(200)).await;
        }
        nodes
    }

    /// The index in `nodes` of the process whose node id is `id` (its log names it).
    fn node_index(nodes: &[Node], id: &str) -> usize {
        nodes
            .iter()
            .position(|n| std::fs::read_to_string(&n.log).unwrap().contains(id))
            .expect("a node's log names its node id")
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn two_servers_and_two_worker_nodes_run_every_run_once_through_a_worker_kill_and_a_database_crash()
 {
    if !on_postgres() {
        return;
    }
    let deployment = Deployment::start().await;
    let Deployment {
        cluster, s3, db, ..
    } = &deployment;
    let pairs = deployment.pairs();
    // The first server installs the library; the second starts beside it.
    let a = Binary::start(&deployment.dir.path().join("a"), free_port(), &pairs).await;
    let b = Binary::start(&deployment.dir.path().join("b"), free_port(), &pairs).await;
    let servers = [&a, &b];
    deployment.grant_worker_role().await;
    let mut nodes = deployment.worker_nodes(2, &a.url).await;

    // Users sign up on either server; a key works on both (one root key for the deployment).
    let mut keys = Vec::new();
    for u in 0..USERS {
        let reg = servers[u % 2]
            .sign_up(&format!("scale-{u}@example.com"))
            .await;
        keys.push(reg["api_key"].as_str().unwrap().to_string());
    }
    // The first user hears of their runs (the receiver is never there: deliveries are
    // recorded, their attempts fail).
    let hook = servers[1]
        .post_json(
            "/api/v1/webhooks",
            &keys[0],
            &json!({ "url": format!("http://127.0.0.1:{}/hooks", free_port()) }),
        )
        .await;
    assert_eq!(hook.status(), 201, "{}", hook.text().await.unwrap());

    // 200 runs, through both servers, 16 at a time; the first worker node is killed once it
    // holds runs, half-way.
    let started = Instant::now();
    let create = |i: usize| {
        let (server, key) = (servers[i % 2], keys[i % USERS].clone());
        async move {
            let resp = server.create_run(&key, &run_body(i)).await;
            let status = resp.status();
            let body: Value = resp.json().await.unwrap();
            assert!(status.is_success(), "run {i}: {status} {body}");
            (body["id"].as_str().unwrap().to_string(), i)
        }
    };
    let mut runs: Vec<(String, usize)> = futures_util::stream::iter(0..RUNS / 2)
        .map(create)
        .buffer_unordered(16)
        .collect()
        .await;
    let victim = query(db, |c| {
        c.query_row(
            "SELECT id FROM worker_nodes WHERE kind = 'worker' ORDER BY started_at, id LIMIT 1",
            [],
            |r| r.get::<String>(0),
        )
    })
    .await;
    let deadline = Instant::now() + Duration::from_secs(60);
    loop {
        let v = victim.clone();
        let held = query(db, move |c| {
            c.query_row(
                "SELECT COUNT(*) FROM runs WHERE lease_node = ?1 AND status = 'running'",
                [&v],
                |r| r.get::<i64>(0),
            )
        })
        .await;
        if held > 0 {
            break;
        }
        assert!(
            Instant::now() < deadline,
            "the worker node never held a run"
        );
        tokio::time::sleep(Duration::from_millis(20)).await;
    }
    // Which of the two processes is the victim: the one whose node id is the oldest. Both
    // started within a second; kill the one holding the lease, found by its log line.
    let victim_index = Deployment::node_index(&nodes, &victim);
    nodes[victim_index].kill_9();
    let held_by_victim: Vec<String> = {
        let v = victim.clone();
        query(db, move |c| {
            let mut stmt =
                c.prepare("SELECT id FROM runs WHERE lease_node = ?1 AND status = 'running'")?;
            let rows = stmt.query_map([&v], |r| r.get::<String>(0))?;
            rows.collect()
        })
        .await
    };
    runs.extend(
        futures_util::stream::iter(RUNS / 2..RUNS)
            .map(create)
            .buffer_unordered(16)
            .collect::<Vec<_>>()
            .await,
    );
    // PostgreSQL crashes (no checkpoint) and recovers while runs are queued and running.
    cluster.crash_and_restart();

    let deadline = Instant::now() + Duration::from_secs(240);
    loop {
        let open = query(db, |c| {
            c.query_row(
                "SELECT COUNT(*) FROM runs WHERE status IN ('queued', 'running')",
                [],
                |r| r.get::<i64>(0),
            )
        })
        .await;
        if open == 0 {
            break;
        }
        assert!(
            Instant::now() < deadline,
            "{open} runs did not end; node log: {}",
            std::fs::read_to_string(&nodes[1 - victim_index].log).unwrap_or_default()
        );
        tokio::time::sleep(Duration::from_millis(200)).await;
    }
    let took = started.elapsed();

    // Every run ended once: succeeded and charged once, or failed and refunded.
    type Row = (String, String, bool, Option<String>, i64, i64, i64, i64);
    let rows: Vec<Row> = query(db, |c| {
        let mut stmt = c.prepare(
            "SELECT r.id, r.status, r.charged = 1, r.failure_kind, r.deliveries,
                (SELECT COUNT(*) FROM credit_ledger l WHERE l.run_id = r.id AND l.kind = 'settle'),
                (SELECT COUNT(*) FROM credit_ledger l WHERE l.run_id = r.id AND l.kind = 'refund'),
                (SELECT COUNT(*) FROM usage u WHERE u.run_id = r.id)
             FROM runs r",
        )?;
        let rows = stmt.query_map([], |r| {
            Ok((
                r.get(0)?,
                r.get(1)?,
                r.get(2)?,
                r.get(3)?,
                r.get(4)?,
                r.get(5)?,
                r.get(6)?,
                r.get(7)?,
            ))
        })?;
        rows.collect()
    })
    .await;
    assert_eq!(rows.len(), RUNS);
    let mut succeeded = Vec::new();
    for (id, status, charged, kind, deliveries, settles, refunds, usage) in &rows {
        match status.as_str() {
            "succeeded" => {
                assert!(*charged, "{id}");
                assert_eq!(
                    (*settles, *refunds, *usage),
                    (1, 0, 1),
                    "{id}: charged once"
                );
                succeeded.push(id.clone());
            }
            "failed" => {
                assert!(!*charged, "{id} failed ({kind:?}) and was charged");
                assert_eq!(
                    (*settles, *refunds, *usage),
                    (0, 1, 0),
                    "{id}: refunded once"
                );
            }
            other => panic!("run {id} ended {other}"),
        }
        assert!(
            (1..=3).contains(deliveries),
            "{id} was leased {deliveries} times"
        );
    }
    // One worker's death and one database crash cost no run its result.
    let errors: Vec<(String, Option<String>)> = query(db, |c| {
        let mut stmt = c.prepare("SELECT id, error FROM runs WHERE status <> 'succeeded'")?;
        let rows = stmt.query_map([], |r| Ok((r.get(0)?, r.get(1)?)))?;
        rows.collect()
    })
    .await;
    assert!(
        succeeded.len() >= RUNS - 5,
        "only {} of {RUNS} runs succeeded: {errors:?}",
        succeeded.len()
    );
    // The runs the killed node held were leased again and finished by another process.
    assert!(!held_by_victim.is_empty());
    for id in &held_by_victim {
        let row = rows.iter().find(|r| &r.0 == id).unwrap();
        assert!(
            row.4 >= 2,
            "{id} was not leased again after its worker died"
        );
        assert_eq!(row.1, "succeeded", "{id} held by the killed worker");
    }

    // Every run that saved its state has it, whichever process ran it; the webhook user's
    // succeeded runs each recorded one `run.succeeded` delivery.
    let (saved, with_state): (i64, i64) = query(db, |c| {
        c.query_row(
            "SELECT (SELECT COUNT(*) FROM run_states),
                (SELECT COUNT(*) FROM runs WHERE status = 'succeeded'
                   AND settings LIKE '%\"save_final_state\":true%')",
            [],
            |r| Ok((r.get(0)?, r.get(1)?)),
        )
    })
    .await;
    assert!(with_state > 0);
    assert_eq!(saved, with_state, "a saved state for every run that asked");
    let (delivered, hooked): (i64, i64) = query(db, |c| {
        c.query_row(
            "SELECT (SELECT COUNT(*) FROM webhook_deliveries WHERE event = 'run.succeeded'),
                (SELECT COUNT(*) FROM runs r JOIN webhook_endpoints e ON e.user_id = r.user_id
                   WHERE r.status = 'succeeded')",
            [],
            |r| Ok((r.get(0)?, r.get(1)?)),
        )
    })
    .await;
    assert!(hooked > 0);
    assert_eq!(
        delivered, hooked,
        "one run.succeeded delivery per succeeded run"
    );
    // The servers attempt what the worker nodes recorded (the receiver is not there: each
    // first attempt records its error), without waiting for a message of their own. A claim
    // the database crash cut short is made again once its 60 s lease has run out.
    let deadline = Instant::now() + Duration::from_secs(90);
    loop {
        let unattempted: i64 = query(db, |c| {
            c.query_row(
                "SELECT COUNT(*) FROM webhook_deliveries d WHERE NOT EXISTS
                   (SELECT 1 FROM webhook_attempts a WHERE a.delivery_id = d.id)",
                [],
                |r| r.get(0),
            )
        })
        .await;
        if unattempted == 0 {
            break;
        }
        assert!(
            Instant::now() < deadline,
            "{unattempted} deliveries never attempted"
        );
        tokio::time::sleep(Duration::from_millis(200)).await;
    }

    // Every balance is its ledger's sum, and what its succeeded runs cost.
    let balances: Vec<(i64, i64, i64)> = query(db, |c| {
        let mut stmt = c.prepare(
            "SELECT u.credits, (SELECT SUM(delta) FROM credit_ledger l WHERE l.user_id = u.id),
                (SELECT COUNT(*) FROM runs r WHERE r.user_id = u.id AND r.status = 'succeeded')
             FROM users u",
        )?;
        let rows = stmt.query_map([], |r| Ok((r.get(0)?, r.get(1)?, r.get(2)?)))?;
        rows.collect()
    })
    .await;
    assert_eq!(balances.len(), USERS);
    for (credits, ledger, paid) in balances {
        assert_eq!(credits, ledger, "a balance is its ledger's sum");
        assert_eq!(credits, 100 - paid, "each succeeded run cost one credit");
    }

    // Every result is in the bucket and served by both servers.
    let objects = s3.keys().await;
    for id in &succeeded {
        assert!(
            objects.iter().any(|k| k.contains(id.as_str())),
            "the result of {id} is not in the bucket"
        );
    }
    for (id, i) in runs.iter().filter(|(id, _)| succeeded.contains(id)) {
        if i % 25 != 0 && i % 10 != 0 {
            continue;
        }
        let (server, key) = (servers[(i + 1) % 2], &keys[i % USERS]);
        let result = server
            .get_json(&format!("/api/v1/runs/{id}/result"), key)
            .await;
        let rows = result["time"].as_array().map_or(0, Vec::len);
        let expected = if i % 7 == 3 {
            2
        } else if i.is_multiple_of(10) {
            3001
        } else {
            11
        };
        assert!(rows >= expected, "run {i} ({id}): {rows} rows: {result}");
    }
    // The metrics every server serves count the nodes that are left.
    let metrics = api_client()
        .get(format!("{}/metrics", b.url))
        .send()
        .await
        .unwrap()
        .text()
        .await
        .unwrap();
    assert!(metrics.contains("fmu_gateway_runs_queued 0"), "{metrics}");
    assert!(
        metrics.contains("fmu_gateway_worker_nodes{kind=\"server\"} 2"),
        "{metrics}"
    );
    println!(
        "{RUNS} runs on 2 servers + 2 worker nodes (one killed), PostgreSQL restarted once: \
         {} succeeded in {took:?}",
        succeeded.len()
    );
}

/// A sweep of `n` Van der Pol cases of `stop_time` each, varying `mu`.
fn sweep_body(n: u32, stop_time: f64) -> Value {
    json!({
        "base": {"fmu_id": "lib:VanDerPol", "stop_time": stop_time, "output_interval": stop_time / 100.0},
        "design": {"grid": [{"name": "mu", "range": {"start": 0.5, "stop": 2.0, "num": n}}]},
        "kpis": [{"variable": "x0", "kind": "final"}],
    })
}

/// Polls `sql` (one integer) until `done` says so, within `within`.
async fn until_count(
    db: &Store,
    sql: &'static str,
    id: &str,
    within: Duration,
    done: fn(i64) -> bool,
) -> i64 {
    let deadline = Instant::now() + within;
    loop {
        let id2 = id.to_string();
        let n = query(db, move |c| c.query_row(sql, [&id2], |r| r.get::<i64>(0))).await;
        if done(n) {
            return n;
        }
        assert!(Instant::now() < deadline, "{sql} ({id}): {n}");
        tokio::time::sleep(Duration::from_millis(20)).await;
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn worker_nodes_run_batches_of_a_sweep_survive_a_node_kill_and_stop_on_a_cancel() {
    if !on_postgres() {
        return;
    }
    let deployment = Deployment::start().await;
    let db = &deployment.db;
    let server = Binary::start(
        &deployment.dir.path().join("a"),
        free_port(),
        &deployment.pairs(),
    )
    .await;
    deployment.grant_worker_role().await;
    let mut nodes = deployment.worker_nodes(2, &server.url).await;
    let key = server.sign_up("sweeps@example.com").await["api_key"]
        .as_str()
        .unwrap()
        .to_string();
    let start = |body: Value| {
        let (server, key) = (&server, key.clone());
        async move {
            let resp = server.post_json("/api/v1/sweeps", &key, &body).await;
            assert_eq!(resp.status(), 202, "{}", resp.text().await.unwrap());
            resp.json::<Value>().await.unwrap()["id"]
                .as_str()
                .unwrap()
                .to_string()
        }
    };

    // 48 cases of about a third of a second: the server's one worker and the nodes' two
    // share them. A node is killed while it holds cases.
    let id = start(sweep_body(48, 2000.0)).await;
    // Watched on the server from the start: the cases the nodes end are told as the server's
    // own are.
    let stream = tokio::spawn({
        let (url, key, id) = (server.url.clone(), key.clone(), id.clone());
        async move { crate::sweeps_many_servers::events_to_the_end(&url, &key, &id).await }
    });
    let victim: String = {
        let id = id.clone();
        let deadline = Instant::now() + Duration::from_secs(60);
        loop {
            let id2 = id.clone();
            let holder = query(db, move |c| {
                c.query_row(
                    "SELECT MIN(lease_node) FROM sweep_cases WHERE sweep_id = ?1 AND status = 'running'",
                    [&id2],
                    |r| r.get::<Option<String>>(0),
                )
            })
            .await;
            if let Some(holder) = holder {
                break holder;
            }
            assert!(
                Instant::now() < deadline,
                "no worker node leased a case of {id}"
            );
            tokio::time::sleep(Duration::from_millis(20)).await;
        }
    };
    let victim_index = Deployment::node_index(&nodes, &victim);
    nodes[victim_index].kill_9();
    let held: Vec<i64> = {
        let (id, v) = (id.clone(), victim.clone());
        query(db, move |c| {
            let mut stmt = c.prepare(
                "SELECT idx FROM sweep_cases WHERE sweep_id = ?1 AND lease_node = ?2 AND status = 'running'",
            )?;
            let rows = stmt.query_map([&id, &v], |r| r.get::<i64>(0))?;
            rows.collect()
        })
        .await
    };
    assert!(!held.is_empty());

    let deadline = Instant::now() + Duration::from_secs(180);
    let sweep = loop {
        let sweep = server.get_json(&format!("/api/v1/sweeps/{id}"), &key).await;
        if sweep["finished_at"].is_string() {
            break sweep;
        }
        assert!(Instant::now() < deadline, "the sweep did not end: {sweep}");
        tokio::time::sleep(Duration::from_millis(100)).await;
    };
    assert_eq!(sweep["status"], "completed", "{sweep}");
    assert_eq!(sweep["counts"]["succeeded"], 48, "{sweep}");
    let events = stream.await.unwrap();
    let before = &events[0].1["counts"]["succeeded"];
    let mut told: Vec<u64> = events
        .iter()
        .filter(|(kind, _)| kind == "cases")
        .flat_map(|(_, data)| data["cases"].as_array().unwrap().clone())
        .map(|case| case["index"].as_u64().unwrap())
        .collect();
    let count = told.len() as u64;
    told.sort_unstable();
    told.dedup();
    assert_eq!(told.len() as u64, count, "a case told twice: {events:?}");
    assert_eq!(
        count + before.as_u64().unwrap(),
        48,
        "every case told once: {events:?}"
    );
    // The surviving node ran cases to their end (its lease is on them); the killed node's
    // cases were leased again and succeeded; none was tried more than three times.
    type Case = (i64, String, i64, Option<String>, bool);
    let cases: Vec<Case> = {
        let id = id.clone();
        query(db, move |c| {
            let mut stmt = c.prepare(
                "SELECT idx, status, attempts, lease_node, kpis IS NOT NULL FROM sweep_cases
                 WHERE sweep_id = ?1 ORDER BY idx",
            )?;
            let rows = stmt.query_map([&id], |r| {
                Ok((r.get(0)?, r.get(1)?, r.get(2)?, r.get(3)?, r.get(4)?))
            })?;
            rows.collect()
        })
        .await
    };
    assert_eq!(cases.len(), 48);
    let by_nodes = cases.iter().filter(|c| c.3.is_some()).count();
    let by_server = cases.len() - by_nodes;
    assert!(
        by_nodes > 0 && by_server > 0,
        "nodes {by_nodes}, server {by_server}"
    );
    for (idx, status, attempts, _, kpis) in &cases {
        assert_eq!(status, "succeeded", "case {idx}");
        assert!(*kpis, "case {idx} has its KPIs");
        assert!(
            (1..=3).contains(attempts),
            "case {idx}: {attempts} attempts"
        );
        if held.contains(idx) {
            assert!(
                *attempts >= 2,
                "case {idx} of the killed node was not leased again"
            );
        }
    }
    // Charged once per case, whoever ran it: the balance is the ledger's sum.
    let (balance, ledger, usage): (i64, i64, i64) = query(db, |c| {
        c.query_row(
            "SELECT u.credits, (SELECT SUM(delta) FROM credit_ledger l WHERE l.user_id = u.id),
                (SELECT COALESCE(SUM(credits), 0) FROM usage g WHERE g.user_id = u.id)
             FROM users u",
            [],
            |r| Ok((r.get(0)?, r.get(1)?, r.get(2)?)),
        )
    })
    .await;
    assert_eq!(balance, ledger);
    let charged = sweep["credits_charged"].as_i64().unwrap();
    assert_eq!(charged, 48 * sweep["credits_per_case"].as_i64().unwrap());
    assert_eq!((balance, usage), (100 - charged, charged));

    // A sweep of long cases (a few seconds each) cancelled while the surviving node runs some:
    // the node hears of it on its next heartbeat and stops them.
    let long = start(sweep_body(12, 30_000.0)).await;
    until_count(
        db,
        "SELECT COUNT(*) FROM sweep_cases WHERE sweep_id = ?1 AND status = 'running' AND lease_node IS NOT NULL",
        &long,
        Duration::from_secs(60),
        |n| n > 0,
    )
    .await;
    let cancelled_at = Instant::now();
    let resp = server
        .post(&format!("/api/v1/sweeps/{long}/cancel"), &key)
        .await;
    assert_eq!(resp.status(), 200, "{}", resp.text().await.unwrap());
    until_count(
        db,
        "SELECT COUNT(*) FROM sweep_cases WHERE sweep_id = ?1 AND status IN ('queued', 'running')",
        &long,
        Duration::from_secs(10),
        |n| n == 0,
    )
    .await;
    let stopped_in = cancelled_at.elapsed();
    assert!(
        stopped_in < Duration::from_secs(4),
        "stopped in {stopped_in:?}"
    );
    let ended = server
        .get_json(&format!("/api/v1/sweeps/{long}"), &key)
        .await;
    assert_eq!(ended["status"], "cancelled", "{ended}");
    println!(
        "a sweep on a server + 2 worker nodes (one killed): {by_nodes} of 48 cases on the nodes; a cancel stopped a node's cases in {stopped_in:?}"
    );
}
