//! HTTP throughput and latency of the service, measured against the release binary.
//!
//! `cargo bench --bench http` starts `fmu-gateway serve` on a fresh data directory, creates
//! a user with 1,000 usage rows, then for each scenario keeps 50 connections busy for 10 s
//! (after 2 s of warm-up) and reports requests/s, p50/p99 latency, the server's CPU time per
//! request and its RSS.
//! Scenarios: reads (JSON and HTML), signed Stripe webhooks (new payments and redeliveries),
//! and small simulation runs.
//! Client and server share the machine, as they would on a 2-core box under test.
//! Settings: BENCH_SECONDS (default 10), BENCH_CONNECTIONS (default 50), BENCH_ONLY (run only
//! the scenarios whose name contains this text), BENCH_SERVER_CPUS (pin the server to these
//! CPUs, e.g. `0` or `0,1`: how a route scales from one free core to two is the ratio of two
//! runs, with the load generator unpinned), BENCH_DATABASE_URL (an empty PostgreSQL database
//! to run on instead of SQLite: `FMU_GATEWAY_DATABASE_URL` for the server), BENCH_WORKER_NODES
//! (start this many `fmu-gateway worker-node` processes beside the server, on the same
//! database: needs BENCH_DATABASE_URL and an object store they share, given as the server's
//! own settings in the environment: `FMU_GATEWAY_OBJECT_STORE` and the `AWS_*` variables).

use std::process::{Child, Command, Stdio};
use std::sync::Arc;
use std::time::{Duration, Instant};

use fmu_gateway::domain::ids::{Credits, UserId};
use serde_json::{Value, json};

struct Server {
    child: Child,
    url: String,
    _dir: tempfile::TempDir,
    /// Worker nodes beside it (BENCH_WORKER_NODES).
    nodes: Vec<Child>,
}

impl Drop for Server {
    fn drop(&mut self) {
        for child in self.nodes.iter_mut().chain([&mut self.child]) {
            let _ = child.kill();
            let _ = child.wait();
        }
    }
}

/// `n` worker nodes on the server's database and object store, each with a data directory
/// (FMU cache, scratch) of its own under `dir`.
fn start_worker_nodes(n: u64, dir: &std::path::Path) -> Vec<Child> {
    if n > 0 {
        assert!(
            std::env::var("BENCH_DATABASE_URL").is_ok_and(|u| !u.is_empty())
                && std::env::var("FMU_GATEWAY_OBJECT_STORE").is_ok(),
            "BENCH_WORKER_NODES needs BENCH_DATABASE_URL and FMU_GATEWAY_OBJECT_STORE"
        );
    }
    (0..n)
        .map(|i| {
            Command::new(env!("CARGO_BIN_EXE_fmu-gateway"))
                .args(["worker-node", "--data-dir"])
                .arg(dir.join(format!("node{i}")))
                .env(
                    "FMU_GATEWAY_DATABASE_URL",
                    std::env::var("BENCH_DATABASE_URL").unwrap_or_default(),
                )
                .stdout(Stdio::null())
                .stderr(Stdio::null())
                .spawn()
                .expect("the release binary starts a worker node")
        })
        .collect()
}

const WEBHOOK_SECRET: &str = "whsec_bench";

/// A `Stripe-Signature` header for `payload`, made as Stripe documents.
fn stripe_signature(payload: &[u8]) -> String {
    use hmac::Mac;
    let t = std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .unwrap()
        .as_secs();
    let mut mac = hmac::Hmac::<sha2::Sha256>::new_from_slice(WEBHOOK_SECRET.as_bytes()).unwrap();
    mac.update(format!("{t}.").as_bytes());
    mac.update(payload);
    format!("t={t},v1={}", hex::encode(mac.finalize().into_bytes()))
}

/// A paid `checkout.session.completed` for `user_id`, with ids made from `n`.
fn paid_session_event(n: u64, user_id: &str) -> Vec<u8> {
    serde_json::to_vec(&json!({
        "id": format!("evt_bench_{n}"), "object": "event", "type": "checkout.session.completed",
        "data": { "object": {
            "id": format!("cs_bench_{n}"), "object": "checkout.session", "payment_status": "paid",
            "client_reference_id": user_id, "payment_intent": format!("pi_bench_{n}"),
            "amount_total": 4900, "currency": "usd",
            "metadata": { "user_id": user_id, "plan": "pro", "credits": "120" }
        } }
    }))
    .unwrap()
}

fn env_num(name: &str, default: u64) -> u64 {
    std::env::var(name)
        .ok()
        .and_then(|v| v.parse().ok())
        .unwrap_or(default)
}

fn rss_kib(pid: u32) -> (u64, u64) {
    let status = std::fs::read_to_string(format!("/proc/{pid}/status")).unwrap_or_default();
    let field = |name: &str| {
        status
            .lines()
            .find(|l| l.starts_with(name))
            .and_then(|l| l.split_whitespace().nth(1))
            .and_then(|v| v.parse().ok())
            .unwrap_or(0)
    };
    (field("VmRSS:"), field("VmHWM:"))
}

/// CPU time (user + system) the process has used so far, from `/proc/<pid>/stat`.
fn cpu_time(pid: u32) -> Duration {
    let stat = std::fs::read_to_string(format!("/proc/{pid}/stat")).unwrap_or_default();
    // Fields after the command name (which may hold spaces) start at field 3; utime and
    // stime are fields 14 and 15, in clock ticks (100 a second on Linux).
    let rest = stat.rsplit_once(')').map_or("", |(_, r)| r);
    let ticks: u64 = rest
        .split_whitespace()
        .skip(11)
        .take(2)
        .filter_map(|v| v.parse::<u64>().ok())
        .sum();
    Duration::from_millis(ticks * 10)
}

/// Makes the command's process run only on `cpus` (comma-separated CPU numbers); the
/// server's runtime then sizes itself to them, as it would on a machine with that many.
fn pin_to(command: &mut Command, cpus: &str) {
    use std::os::unix::process::CommandExt;
    let cpus: Vec<usize> = cpus
        .split(',')
        .map(|c| {
            c.trim()
                .parse()
                .expect("BENCH_SERVER_CPUS: CPU numbers, e.g. 0,1")
        })
        .collect();
    // SAFETY: sched_setaffinity on the child itself, between fork and exec; it allocates
    // nothing and touches no lock.
    unsafe {
        command.pre_exec(move || {
            let mut set: libc::cpu_set_t = std::mem::zeroed();
            for &cpu in &cpus {
                libc::CPU_SET(cpu, &mut set);
            }
            if libc::sched_setaffinity(0, std::mem::size_of::<libc::cpu_set_t>(), &set) != 0 {
                return Err(std::io::Error::last_os_error());
            }
            Ok(())
        });
    }
}

async fn start_server() -> Server {
    let dir = tempfile::tempdir().unwrap();
    let port = std::net::TcpListener::bind("127.0.0.1:0")
        .unwrap()
        .local_addr()
        .unwrap()
        .port();
    let mut command = Command::new(env!("CARGO_BIN_EXE_fmu-gateway"));
    if let Ok(cpus) = std::env::var("BENCH_SERVER_CPUS") {
        pin_to(&mut command, &cpus);
    }
    let child = command
        .args([
            "serve",
            "--listen",
            &format!("127.0.0.1:{port}"),
            "--data-dir",
        ])
        .arg(dir.path())
        .env("FMU_GATEWAY_AUTH_RATE_PER_MINUTE", "100000")
        .env("FMU_GATEWAY_RUNS_PER_MINUTE", "10000000")
        // The x8 run scenario has eight runs of one account going at once (default limit 4).
        .env("FMU_GATEWAY_MAX_ACTIVE_RUNS_PER_USER", "100")
        // Webhooks are measured; nothing here calls Stripe's API.
        .env("STRIPE_SECRET_KEY", "sk_test_bench")
        .env("STRIPE_WEBHOOK_SECRET", WEBHOOK_SECRET)
        .env("STRIPE_API_BASE", "http://127.0.0.1:9")
        .env(
            "FMU_GATEWAY_DATABASE_URL",
            std::env::var("BENCH_DATABASE_URL").unwrap_or_default(),
        )
        .stdout(Stdio::null())
        .stderr(Stdio::null())
        .spawn()
        .expect("the release binary starts");
    let url = format!("http://127.0.0.1:{port}");
    let client = reqwest::Client::new();
    for _ in 0..100 {
        if client.get(format!("{url}/health")).send().await.is_ok() {
            break;
        }
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
    let nodes = start_worker_nodes(env_num("BENCH_WORKER_NODES", 0), dir.path());
    Server {
        child,
        url,
        _dir: dir,
        nodes,
    }
}

struct Outcome {
    requests: u64,
    errors: u64,
    latencies_us: Vec<u32>,
    elapsed: Duration,
}

/// Runs `make` requests from `connections` concurrent loops for `seconds`.
async fn load(
    client: &reqwest::Client,
    connections: usize,
    seconds: u64,
    make: Arc<dyn Fn(&reqwest::Client) -> reqwest::RequestBuilder + Send + Sync>,
) -> Outcome {
    let start = Instant::now();
    let end = start + Duration::from_secs(seconds);
    let mut tasks = Vec::new();
    for _ in 0..connections {
        let client = client.clone();
        let make = make.clone();
        tasks.push(tokio::spawn(async move {
            let mut lat = Vec::with_capacity(60_000);
            let mut errors = 0u64;
            while Instant::now() < end {
                let t = Instant::now();
                match make(&client).send().await {
                    Ok(resp) if resp.status().is_success() => {
                        let _ = resp.bytes().await;
                    }
                    Ok(resp) => {
                        errors += 1;
                        if errors == 1 {
                            eprintln!(
                                "error: HTTP {} {}",
                                resp.status(),
                                resp.text().await.unwrap_or_default()
                            );
                        }
                    }
                    Err(e) => {
                        errors += 1;
                        if errors == 1 {
                            eprintln!("error: {e}");
                        }
                    }
                }
                lat.push(t.elapsed().as_micros() as u32);
            }
            (lat, errors)
        }));
    }
    let mut latencies_us = Vec::new();
    let mut errors = 0;
    for t in tasks {
        let (lat, e) = t.await.unwrap();
        latencies_us.extend(lat);
        errors += e;
    }
    Outcome {
        requests: latencies_us.len() as u64,
        errors,
        latencies_us,
        elapsed: start.elapsed(),
    }
}

fn percentile(sorted: &[u32], p: f64) -> f64 {
    if sorted.is_empty() {
        return 0.0;
    }
    let i = ((sorted.len() as f64 - 1.0) * p).round() as usize;
    sorted[i] as f64 / 1000.0
}

#[tokio::main]
async fn main() {
    let seconds = env_num("BENCH_SECONDS", 10);
    let connections = env_num("BENCH_CONNECTIONS", 50) as usize;
    let server = start_server().await;
    let url = server.url.clone();
    let setup = reqwest::Client::new();

    let reg: Value = setup
        .post(format!("{url}/register"))
        .json(&json!({ "email": "bench@example.com", "password": "benchmark password" }))
        .send()
        .await
        .unwrap()
        .json()
        .await
        .unwrap();
    let key = reg["api_key"].as_str().unwrap().to_string();
    let user_id = reg["user_id"].as_str().unwrap().to_string();
    {
        let location = match std::env::var("BENCH_DATABASE_URL") {
            Ok(url) if !url.is_empty() => fmu_gateway::store::Location::Postgres(url),
            _ => fmu_gateway::store::Location::Sqlite(server._dir.path().join("fmu-gateway.db")),
        };
        let db =
            tokio::task::spawn_blocking(move || fmu_gateway::store::Store::connect(&location, 1))
                .await
                .unwrap()
                .unwrap();
        for i in 0..1_000i64 {
            let record = fmu_gateway::store::usage::UsageRecord {
                fmu_name: "BouncingBall".into(),
                credits: Credits::new(1 + i % 5).unwrap(),
                api_key_id: None,
                run_id: None,
                at: 1_780_000_000_000 + i * 1000,
            };
            db.record_usage(&UserId::from(user_id.as_str()), record)
                .await
                .unwrap();
        }
    }
    let login = reqwest::Client::builder()
        .redirect(reqwest::redirect::Policy::none())
        .build()
        .unwrap();
    let resp = login
        .post(format!("{url}/login"))
        .form(&[
            ("email", "bench@example.com"),
            ("password", "benchmark password"),
        ])
        .send()
        .await
        .unwrap();
    let cookie = resp.headers()["set-cookie"]
        .to_str()
        .unwrap()
        .split(';')
        .next()
        .unwrap()
        .to_string();

    let client = reqwest::Client::builder()
        .pool_max_idle_per_host(connections)
        .build()
        .unwrap();
    type Make = Arc<dyn Fn(&reqwest::Client) -> reqwest::RequestBuilder + Send + Sync>;
    let scenarios: Vec<(&str, Make)> = vec![
        ("GET /api/v1/usage?limit=50 (API key)", {
            let (u, k) = (format!("{url}/api/v1/usage?limit=50"), key.clone());
            Arc::new(move |c: &reqwest::Client| c.get(&u).bearer_auth(&k))
        }),
        ("GET /usage (HTML, session cookie)", {
            let (u, ck) = (format!("{url}/usage"), cookie.clone());
            Arc::new(move |c: &reqwest::Client| c.get(&u).header("cookie", &ck))
        }),
        ("GET /login (HTML)", {
            let u = format!("{url}/login");
            Arc::new(move |c: &reqwest::Client| c.get(&u))
        }),
        // Each delivery a new paid session: verify, one write transaction, credits granted.
        ("POST /stripe/webhook (new paid session)", {
            let (u, user) = (format!("{url}/stripe/webhook"), user_id.clone());
            let next = Arc::new(std::sync::atomic::AtomicU64::new(0));
            Arc::new(move |c: &reqwest::Client| {
                let n = next.fetch_add(1, std::sync::atomic::Ordering::Relaxed);
                let body = paid_session_event(n, &user);
                c.post(&u)
                    .header("content-type", "application/json")
                    .header("stripe-signature", stripe_signature(&body))
                    .body(body)
            })
        }),
        // Stripe redelivering one event: verified, found handled, nothing written.
        ("POST /stripe/webhook (redelivery)", {
            let u = format!("{url}/stripe/webhook");
            let body = paid_session_event(u64::MAX, &user_id);
            Arc::new(move |c: &reqwest::Client| {
                c.post(&u)
                    .header("content-type", "application/json")
                    .header("stripe-signature", stripe_signature(&body))
                    .body(body.clone())
            })
        }),
    ];

    let (rss, _) = rss_kib(server.child.id());
    println!(
        "server RSS after start-up and seeding: {:.1} MiB",
        rss as f64 / 1024.0
    );
    println!(
        "{connections} connections, {seconds} s per scenario, {} cores",
        std::thread::available_parallelism().map_or(0, |n| n.get())
    );
    println!(
        "{:<42} {:>9} {:>9} {:>9} {:>9} {:>7} {:>11}",
        "scenario", "req/s", "p50 ms", "p99 ms", "max ms", "errors", "cpu ms/req"
    );
    let only = std::env::var("BENCH_ONLY").unwrap_or_default();
    for (name, make) in scenarios.into_iter().filter(|(n, _)| n.contains(&only)) {
        load(&client, connections, 2, make.clone()).await;
        let cpu_before = cpu_time(server.child.id());
        let mut out = load(&client, connections, seconds, make).await;
        // The server's CPU per request: it rises when threads contend (locks, hand-offs),
        // which requests/s on a shared machine can hide.
        let cpu = cpu_time(server.child.id()).saturating_sub(cpu_before);
        out.latencies_us.sort_unstable();
        let rps = out.requests as f64 / out.elapsed.as_secs_f64();
        println!(
            "{:<42} {:>9.0} {:>9.2} {:>9.2} {:>9.2} {:>7} {:>11.3}",
            name,
            rps,
            percentile(&out.latencies_us, 0.50),
            percentile(&out.latencies_us, 0.99),
            percentile(&out.latencies_us, 1.0),
            out.errors,
            cpu.as_secs_f64() * 1000.0 / out.requests.max(1) as f64
        );
        let (rss, _) = rss_kib(server.child.id());
        println!(
            "  server RSS after this scenario: {:.1} MiB",
            rss as f64 / 1024.0
        );
    }
    // Simulation runs over HTTP: a small synchronous library run (Dahlquist, 100 steps),
    // back to back at concurrency 1 and 8.
    if !"POST /api/v1/runs".contains(&only) {
        return;
    }
    {
        let location = match std::env::var("BENCH_DATABASE_URL") {
            Ok(url) if !url.is_empty() => fmu_gateway::store::Location::Postgres(url),
            _ => fmu_gateway::store::Location::Sqlite(server._dir.path().join("fmu-gateway.db")),
        };
        let db =
            tokio::task::spawn_blocking(move || fmu_gateway::store::Store::connect(&location, 1))
                .await
                .unwrap()
                .unwrap();
        db.grant_credits(
            &UserId::from(user_id.as_str()),
            Credits::from(10_000_000u32),
            "benchmark",
        )
        .await
        .unwrap();
    }
    for concurrency in [1usize, 8] {
        let (u, k) = (format!("{url}/api/v1/runs"), key.clone());
        let body = json!({ "fmu_id": "lib:Dahlquist", "stop_time": 0.1, "output_interval": 0.001 });
        let make: Make =
            Arc::new(move |c: &reqwest::Client| c.post(&u).bearer_auth(&k).json(&body));
        load(&client, concurrency, 2, make.clone()).await;
        let mut out = load(&client, concurrency, seconds, make).await;
        out.latencies_us.sort_unstable();
        println!(
            "{:<42} {:>9.1} {:>9.2} {:>9.2} {:>9.2} {:>7}",
            format!("POST /api/v1/runs (small, sync) x{concurrency}"),
            out.requests as f64 / out.elapsed.as_secs_f64(),
            percentile(&out.latencies_us, 0.50),
            percentile(&out.latencies_us, 0.99),
            percentile(&out.latencies_us, 1.0),
            out.errors
        );
    }
    let (rss, hwm) = rss_kib(server.child.id());
    println!(
        "server RSS: {:.1} MiB now, {:.1} MiB peak",
        rss as f64 / 1024.0,
        hwm as f64 / 1024.0
    );
}
