//! Runs over HTTP: results, credits reserved and settled exactly once, idempotency,
//! cancellation, ownership, attenuated keys, concurrency, and a crash of the server.

use std::time::Duration;

use serde_json::{Value, json};

use crate::common::{Api, Binary, TestApp, api_client, free_port, spawn_app, spawn_app_with};

/// A run that takes a long time: Van der Pol in Co-Simulation for a million seconds (its
/// internal steps are 1 ms).
fn long_run() -> Value {
    json!({ "fmu_id": "lib:VanDerPol", "stop_time": 1000000.0, "output_interval": 1.0 })
}

/// Every credit is accounted for: the ledger adds up to the balance.
fn ledger_balances(app: &TestApp, user_id: &str) {
    let conn = app.state.store.conn().unwrap();
    let (sum, balance): (i64, i64) = conn
        .query_row(
            "SELECT (SELECT COALESCE(SUM(delta), 0) FROM credit_ledger WHERE user_id = ?1), (SELECT credits FROM users WHERE id = ?1)",
            [user_id],
            |r| Ok((r.get(0)?, r.get(1)?)),
        )
        .unwrap();
    assert_eq!(sum, balance, "ledger and balance disagree");
}

#[tokio::test]
async fn a_short_run_answers_with_its_results_and_costs_one_credit() {
    let app = spawn_app().await;
    let account = app.register().await;
    let resp = app
        .create_run(
            &account.api_key,
            &json!({ "fmu_id": "lib:Dahlquist", "stop_time": 1.0, "output_interval": 0.25 }),
        )
        .await;
    assert_eq!(resp.status(), 201);
    let run: Value = resp.json().await.unwrap();
    assert_eq!(run["status"], "succeeded");
    assert_eq!(run["credits_charged"], 1);
    let x = run["result"]["columns"]["x"].as_array().unwrap();
    let t = run["result"]["time"].as_array().unwrap();
    assert_eq!(t.len(), 5);
    for (t, x) in t.iter().zip(x) {
        let (t, x) = (t.as_f64().unwrap(), x.as_f64().unwrap());
        assert!((x - (-t).exp()).abs() < 1e-6, "x({t}) = {x}");
    }
    assert_eq!(app.balance(&account.api_key).await, 24);
    let usage = app.get_json("/api/v1/usage", &account.api_key).await;
    assert_eq!(usage["total"], 1);
    assert_eq!(usage["items"][0]["run_id"], run["id"]);
    assert_eq!(usage["items"][0]["fmu_name"], "lib:Dahlquist");
    assert_eq!(usage["items"][0]["api_key_id"], run["api_key_id"]);
    let keys = app.get_json("/api/v1/keys", &account.api_key).await;
    assert_eq!(keys[0]["run_count"], 1);
    ledger_balances(&app, &account.user_id);
}

#[tokio::test]
async fn a_long_run_answers_202_and_its_results_can_be_fetched_as_json_and_csv() {
    let app = spawn_app_with(|c| c.sync_wait = Duration::ZERO).await;
    let account = app.register().await;
    let resp = app.create_run(&account.api_key, &json!({ "fmu_id": "lib:BouncingBall@fmi2", "interface": "me", "stop_time": 1.0, "output_interval": 0.1, "start_values": { "h": 2 } })).await;
    assert_eq!(resp.status(), 202);
    let location = resp.headers()["location"].to_str().unwrap().to_string();
    let run: Value = resp.json().await.unwrap();
    assert_eq!(
        location,
        format!("/api/v1/runs/{}", run["id"].as_str().unwrap())
    );
    let done = app
        .finished_run(&account.api_key, run["id"].as_str().unwrap())
        .await;
    assert_eq!(done["status"], "succeeded", "{done}");
    let result = app
        .get_json(done["result_url"].as_str().unwrap(), &account.api_key)
        .await;
    assert_eq!(result["variables"], json!(["h", "v"]));
    assert_eq!(result["columns"]["h"][0], 2.0);
    let csv_path = format!("{}?format=csv", done["result_url"].as_str().unwrap());
    let csv = app.get(&csv_path, &account.api_key).await;
    assert!(
        csv.headers()["content-type"]
            .to_str()
            .unwrap()
            .starts_with("text/csv")
    );
    let csv = csv.text().await.unwrap();
    assert!(csv.starts_with("time,h,v\n0,2,0\n"), "{csv}");
    // 11 output points and the rows at the bounce (events add rows).
    assert_eq!(
        csv.lines().count() - 1,
        result["time"].as_array().unwrap().len()
    );
    assert!(csv.lines().count() > 12);
    let by_accept = api_client()
        .get(app.at(done["result_url"].as_str().unwrap()))
        .bearer_auth(&account.api_key)
        .header("Accept", "text/csv")
        .send()
        .await
        .unwrap()
        .text()
        .await
        .unwrap();
    assert_eq!(by_accept, csv);
}

#[tokio::test]
async fn runs_belong_to_their_user() {
    let app = spawn_app().await;
    let alice = app.register().await;
    let bob = app.register().await;
    let run: Value = app
        .create_run(
            &alice.api_key,
            &json!({ "fmu_id": "lib:Dahlquist", "stop_time": 0.1 }),
        )
        .await
        .json()
        .await
        .unwrap();
    let id = run["id"].as_str().unwrap();
    for path in [
        format!("/api/v1/runs/{id}"),
        format!("/api/v1/runs/{id}/result"),
    ] {
        assert_eq!(app.get(&path, &bob.api_key).await.status(), 404, "{path}");
    }
    let list = app.get_json("/api/v1/runs", &bob.api_key).await;
    assert_eq!(list["total"], 0);
    let list = app
        .get_json("/api/v1/runs?status=succeeded", &alice.api_key)
        .await;
    assert_eq!(list["total"], 1);
}

#[tokio::test]
async fn without_credits_a_run_is_refused_with_402_and_a_link_to_billing() {
    let app = spawn_app_with(|c| c.free_credits = 0.into()).await;
    let account = app.register().await;
    let resp = app
        .create_run(&account.api_key, &json!({ "fmu_id": "lib:Dahlquist" }))
        .await;
    assert_eq!(resp.status(), 402);
    let err: Value = resp.json().await.unwrap();
    assert_eq!(err["code"], "insufficient_credits");
    assert!(
        err["message"].as_str().unwrap().contains("/billing"),
        "{err}"
    );
    let runs: i64 = app.count("runs", []);
    assert_eq!(runs, 0);
}

#[tokio::test]
async fn a_retried_request_with_the_same_idempotency_key_is_charged_once() {
    let app = spawn_app().await;
    let account = app.register().await;
    let body = json!({ "fmu_id": "lib:Dahlquist", "stop_time": 0.5 });
    let send = |body: Value| {
        let (url, key) = (app.at("/api/v1/runs"), account.api_key.clone());
        async move {
            api_client()
                .post(url)
                .bearer_auth(key)
                .header("Idempotency-Key", "order-42")
                .json(&body)
                .send()
                .await
                .unwrap()
        }
    };
    let first: Value = send(body.clone()).await.json().await.unwrap();
    let second: Value = send(body).await.json().await.unwrap();
    assert_eq!(first["id"], second["id"]);
    assert_eq!(app.balance(&account.api_key).await, 24, "charged once");
    let resp = send(json!({ "fmu_id": "lib:Dahlquist", "stop_time": 0.7 })).await;
    assert_eq!(resp.status(), 422);
    let err: Value = resp.json().await.unwrap();
    assert!(err["message"].as_str().unwrap().contains("Idempotency-Key"));
    assert_eq!(app.balance(&account.api_key).await, 24);
}

/// Cancelled while running: the caller's model used the worker, so it is charged (a cancel
/// while queued is not: tests/api/charging.rs).
#[tokio::test]
async fn cancelling_a_running_run_stops_it_and_charges_it() {
    let app = spawn_app_with(|c| c.sync_wait = Duration::ZERO).await;
    let account = app.register().await;
    let run: Value = app
        .create_run(&account.api_key, &long_run())
        .await
        .json()
        .await
        .unwrap();
    let id = run["id"].as_str().unwrap();
    tokio::time::sleep(Duration::from_millis(300)).await;
    let resp = app
        .post(&format!("/api/v1/runs/{id}/cancel"), &account.api_key)
        .await;
    assert_eq!(resp.status(), 200);
    let run: Value = resp.json().await.unwrap();
    assert_eq!(run["status"], "cancelled", "{run}");
    assert_eq!(run["charged"], true, "{run}");
    assert_eq!(run["credits_charged"], 1);
    assert_eq!(app.balance(&account.api_key).await, 24);
    let again = app
        .post(&format!("/api/v1/runs/{id}/cancel"), &account.api_key)
        .await;
    assert_eq!(again.status(), 409);
    ledger_balances(&app, &account.user_id);
}

/// The deadline is the caller's (their `timeout`, or the plan's maximum): a run that reaches
/// it used the worker all that time and is charged.
#[tokio::test]
async fn a_run_stopped_by_its_deadline_is_charged_and_a_bad_request_is_refused_up_front() {
    let app = spawn_app().await;
    let account = app.register().await;
    let mut body = long_run();
    body["timeout"] = json!(1);
    let run: Value = app
        .create_run(&account.api_key, &body)
        .await
        .json()
        .await
        .unwrap();
    assert_eq!(run["status"], "failed", "{run}");
    assert!(
        run["error"].as_str().unwrap().contains("did not finish"),
        "{run}"
    );
    assert_eq!(run["failure_kind"], "time_limit", "{run}");
    assert_eq!(run["charged"], true);
    assert_eq!(run["credits_charged"], 1);
    assert_eq!(app.balance(&account.api_key).await, 24);
    for (body, message) in [
        (json!({ "fmu_id": "lib:Nope" }), "not found"),
        (
            json!({ "fmu_id": "lib:Dahlquist", "start_values": { "k": "fast" } }),
            "is not a number",
        ),
        (
            json!({ "fmu_id": "lib:Dahlquist", "interface": "xx" }),
            "cs or me",
        ),
        // Past the server's limit (even too large for a Duration): refused, not a panic.
        (
            json!({ "fmu_id": "lib:Dahlquist", "timeout": 1.85e19 }),
            "at most 600 s",
        ),
        (
            json!({ "fmu_id": "lib:Dahlquist", "timeout": 1e300 }),
            "at most 600 s",
        ),
    ] {
        let resp = app.create_run(&account.api_key, &body).await;
        assert!(resp.status().is_client_error());
        let err: Value = resp.json().await.unwrap();
        assert!(err["message"].as_str().unwrap().contains(message), "{err}");
    }
    assert_eq!(app.balance(&account.api_key).await, 24);
}

#[tokio::test]
async fn an_attenuated_key_can_be_limited_to_one_fmu_and_a_maximum_cost() {
    use biscuit_auth::macros::block;
    use std::str::FromStr;
    let app = spawn_app().await;
    let account = app.register().await;
    let public: Value = api_client()
        .get(app.at("/api/v1/keys/public-key"))
        .send()
        .await
        .unwrap()
        .json()
        .await
        .unwrap();
    let public = biscuit_auth::PublicKey::from_str(public["public_key"].as_str().unwrap()).unwrap();
    let token =
        biscuit_auth::Biscuit::from_base64(account.api_key.strip_prefix("fmugw_").unwrap(), public)
            .unwrap();
    let only_dahlquist = token
        .append(block!(
            r#"check if operation("simulate"), fmu("lib:Dahlquist");"#
        ))
        .unwrap()
        .to_base64()
        .unwrap();
    assert_eq!(
        app.create_run(
            &only_dahlquist,
            &json!({ "fmu_id": "lib:Dahlquist", "stop_time": 0.1 })
        )
        .await
        .status(),
        201
    );
    assert_eq!(
        app.create_run(
            &only_dahlquist,
            &json!({ "fmu_id": "lib:VanDerPol", "stop_time": 0.1 })
        )
        .await
        .status(),
        403
    );
    let free_only = token
        .append(block!(r#"check if cost($c), $c <= 0;"#))
        .unwrap()
        .to_base64()
        .unwrap();
    assert_eq!(
        app.create_run(
            &free_only,
            &json!({ "fmu_id": "lib:Dahlquist", "stop_time": 0.1 })
        )
        .await
        .status(),
        403
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn forty_simultaneous_requests_with_ten_credits_run_exactly_ten_times() {
    let app = spawn_app_with(|c| {
        c.free_credits = 10.into();
        c.sync_wait = Duration::ZERO;
    })
    .await;
    let account = app.register().await;
    let mut requests = Vec::new();
    for _ in 0..40 {
        let (base, key) = (app.url.clone(), account.api_key.clone());
        requests.push(tokio::spawn(async move {
            let body = json!({ "fmu_id": "lib:Dahlquist", "stop_time": 0.1 });
            base.create_run(&key, &body).await.status().as_u16()
        }));
    }
    let mut statuses = Vec::new();
    for r in requests {
        statuses.push(r.await.unwrap());
    }
    let accepted = statuses.iter().filter(|s| **s == 201 || **s == 202).count();
    let refused = statuses.iter().filter(|s| **s == 402).count();
    assert_eq!((accepted, refused), (10, 30), "{statuses:?}");
    let list = app
        .get_json("/api/v1/runs?limit=100", &account.api_key)
        .await;
    for run in list["items"].as_array().unwrap() {
        assert_eq!(
            app.finished_run(&account.api_key, run["id"].as_str().unwrap())
                .await["status"],
            "succeeded"
        );
    }
    assert_eq!(app.balance(&account.api_key).await, 0);
    let usage = app.get_json("/api/v1/usage", &account.api_key).await;
    assert_eq!(usage["total"], 10);
    ledger_balances(&app, &account.user_id);
}

/// The real binary is killed with SIGKILL during a run and started again on the same data
/// directory: on SQLite the run is failed, its credits refunded, and nothing is lost or
/// created; on PostgreSQL it is leased again once its lease runs out.
#[tokio::test]
async fn a_run_interrupted_by_a_crash_is_failed_and_refunded_at_the_next_start() {
    let dir = tempfile::tempdir().unwrap();
    let data = dir.path().join("data");
    let port = free_port();
    let env = [
        ("FMU_GATEWAY_SYNC_WAIT_MS", "0"),
        ("FMU_GATEWAY_LEASE_SECONDS", "2"),
    ];
    let mut server = Binary::start(&data, port, &env).await;
    let url = server.url.clone();
    let reg = url.sign_up("crash@example.com").await;
    let key = reg["api_key"].as_str().unwrap().to_string();
    let resp = url.create_run(&key, &long_run()).await;
    assert_eq!(resp.status(), 202);
    let run: Value = resp.json().await.unwrap();
    let id = run["id"].as_str().unwrap().to_string();
    tokio::time::sleep(Duration::from_millis(500)).await;
    let me = url.get_json("/api/v1/me", &key).await;
    assert_eq!(me["credits"], 24, "reserved while running");
    server.child.kill().unwrap();
    server.child.wait().unwrap();

    let server = Binary::start(&data, port, &env).await;
    if crate::common::db::on_postgres() {
        // Other processes may share the database, so the run is not failed at the start: its
        // lease runs out and it is leased again (here by the new server), from the start.
        let db = crate::common::db::open(&data).await;
        let deadline = std::time::Instant::now() + Duration::from_secs(20);
        loop {
            let (status, deliveries): (String, i64) = db
                .conn()
                .unwrap()
                .query_row(
                    "SELECT status, deliveries FROM runs WHERE id = ?1",
                    [&id],
                    |r| Ok((r.get(0)?, r.get(1)?)),
                )
                .unwrap();
            if (status.as_str(), deliveries) == ("running", 2) {
                break;
            }
            assert!(
                std::time::Instant::now() < deadline,
                "{status} {deliveries}"
            );
            tokio::time::sleep(Duration::from_millis(100)).await;
        }
        let cancelled = url
            .post_json(&format!("/api/v1/runs/{id}/cancel"), &key, &json!({}))
            .await;
        assert_eq!(cancelled.status(), 200);
        let run = url.finished_run(&key, &id).await;
        assert_eq!(run["status"], "cancelled", "{run}");
        assert_eq!(url.get_json("/api/v1/me", &key).await["credits"], 24);
        return;
    }
    let run = url.get_json(&format!("/api/v1/runs/{id}"), &key).await;
    assert_eq!(run["status"], "failed", "{run}");
    assert!(run["error"].as_str().unwrap().contains("refunded"), "{run}");
    let me = url.get_json("/api/v1/me", &key).await;
    assert_eq!(me["credits"], 25, "the reservation came back");
    drop(server);
    let db = crate::common::db::open(&data).await;
    let conn = db.conn().unwrap();
    let rows: Vec<(i64, String)> = conn
        .prepare("SELECT delta, kind FROM credit_ledger ORDER BY id")
        .unwrap()
        .query_map([], |r| Ok((r.get(0)?, r.get(1)?)))
        .unwrap()
        .collect::<Result<_, _>>()
        .unwrap();
    let sum: i64 = rows.iter().map(|(delta, _)| delta).sum();
    let kinds = rows
        .iter()
        .map(|(_, kind)| kind.as_str())
        .collect::<Vec<_>>()
        .join(",");
    assert_eq!(sum, 25);
    assert_eq!(kinds, "grant,reserve,refund");
}

#[tokio::test]
async fn the_compatibility_simulation_routes_keep_their_shapes() {
    let app = spawn_app().await;
    let account = app.register().await;
    let body = json!({ "fmu_id": "msl:BouncingBall", "stop_time": 0.3, "step": 0.1, "start_values": { "h": 2.0 } });
    let resp = api_client()
        .post(app.at("/simulate"))
        .header("X-API-Key", &account.api_key)
        .json(&body)
        .send()
        .await
        .unwrap();
    assert_eq!(resp.status(), 200);
    let summary: Value = resp.json().await.unwrap();
    assert_eq!(summary["status"], "succeeded", "{summary}");
    for field in ["run_id", "summary_url"] {
        assert!(summary[field].is_string(), "{field}");
    }
    assert!(summary["provenance"].is_object() && summary["artifacts"].is_object());
    let h = summary["key_results"]["h"].as_f64().unwrap();
    assert!((h - (2.0 - 9.81 / 2.0 * 0.09)).abs() < 1e-6, "{h}");
    let run_id = summary["run_id"].as_str().unwrap();
    let again = app
        .get_json(&format!("/simulations/{run_id}"), &account.api_key)
        .await;
    assert_eq!(again["key_results"], summary["key_results"]);
    let csv = api_client()
        .get(summary["artifacts"]["result_csv"].as_str().unwrap())
        .bearer_auth(&account.api_key)
        .send()
        .await
        .unwrap()
        .text()
        .await
        .unwrap();
    assert!(csv.starts_with("time,h,v\n"), "{csv}");

    // execute_fmu: an uploaded FMU with parameters; the output URL really serves the results.
    let part =
        reqwest::multipart::Part::bytes(crate::common::fresh_fmu("Dahlquist", "2.0", "execute"))
            .file_name("Mine.fmu");
    let payload = json!({ "parameters": { "k": 2 }, "metadata": { "stop_time": 1.0, "step": 0.1, "fmu_name": "My Dahlquist" } });
    let form = reqwest::multipart::Form::new()
        .part("fmu", part)
        .text("payload", payload.to_string());
    let resp = api_client()
        .post(app.at("/execute_fmu"))
        .header("X-API-Key", &account.api_key)
        .multipart(form)
        .send()
        .await
        .unwrap();
    assert_eq!(resp.status(), 200);
    let executed: Value = resp.json().await.unwrap();
    assert_eq!(executed["status"], "succeeded", "{executed}");
    assert_eq!(executed["credits_consumed"], 1);
    assert!(executed["execution_time"].as_f64().unwrap() >= 0.0);
    let csv = api_client()
        .get(executed["output_url"].as_str().unwrap())
        .header("X-API-Key", &account.api_key)
        .send()
        .await
        .unwrap()
        .text()
        .await
        .unwrap();
    let last: Vec<f64> = csv
        .lines()
        .last()
        .unwrap()
        .split(',')
        .map(|v| v.parse().unwrap())
        .collect();
    assert!((last[1] - (-2.0f64).exp()).abs() < 1e-6, "{csv}");
    let usage = app.get_json("/usage/recent", &account.api_key).await;
    assert_eq!(usage[0]["fmu_name"], "My Dahlquist");
    assert_eq!(app.balance(&account.api_key).await, 23);
}

#[tokio::test]
async fn the_compatibility_routes_answer_402_without_credits() {
    let app = spawn_app_with(|c| c.free_credits = 0.into()).await;
    let account = app.register().await;
    let resp = app
        .post_json(
            "/simulate",
            &account.api_key,
            &json!({ "fmu_id": "lib:Dahlquist" }),
        )
        .await;
    assert_eq!(resp.status(), 402);
    let part =
        reqwest::multipart::Part::bytes(crate::common::fresh_fmu("Dahlquist", "3.0", "poor"))
            .file_name("x.fmu");
    let form = reqwest::multipart::Form::new()
        .part("fmu", part)
        .text("payload", "{}");
    let resp = api_client()
        .post(app.at("/execute_fmu"))
        .bearer_auth(&account.api_key)
        .multipart(form)
        .send()
        .await
        .unwrap();
    assert_eq!(resp.status(), 402);
}

#[tokio::test]
async fn run_creation_is_rate_limited_per_key() {
    let app = spawn_app_with(|c| c.runs_per_minute = 2).await;
    let account = app.register().await;
    for _ in 0..2 {
        assert_eq!(
            app.create_run(
                &account.api_key,
                &json!({ "fmu_id": "lib:Dahlquist", "stop_time": 0.1 })
            )
            .await
            .status(),
            201
        );
    }
    let resp = app
        .create_run(
            &account.api_key,
            &json!({ "fmu_id": "lib:Dahlquist", "stop_time": 0.1 }),
        )
        .await;
    assert_eq!(resp.status(), 429);
    assert!(
        resp.headers()["retry-after"]
            .to_str()
            .unwrap()
            .parse::<u64>()
            .unwrap()
            >= 1
    );
    assert_eq!(
        app.balance(&account.api_key).await,
        23,
        "the refused run cost nothing"
    );
}

/// SIGTERM with a run in progress: the server stops promptly and, on SQLite, releases the
/// run's credits before it exits; on PostgreSQL it gives the run back to the queue.
#[tokio::test]
async fn a_graceful_stop_fails_and_refunds_runs_in_progress_or_gives_them_back_to_the_queue() {
    let dir = tempfile::tempdir().unwrap();
    let data = dir.path().join("data");
    let mut server = Binary::start(&data, free_port(), &[("FMU_GATEWAY_SYNC_WAIT_MS", "0")]).await;
    let url = server.url.clone();
    let reg = url.sign_up("stop@example.com").await;
    let key = reg["api_key"].as_str().unwrap().to_string();
    let run: Value = url
        .create_run(&key, &long_run())
        .await
        .json()
        .await
        .unwrap();
    tokio::time::sleep(Duration::from_millis(300)).await;
    let status = server.terminate(Duration::from_secs(15)).await;
    assert!(status.success(), "{status:?}");
    let db = crate::common::db::open(&data).await;
    let conn = db.conn().unwrap();
    let (state, credits): (String, i64) = conn
        .query_row(
            "SELECT r.status, u.credits FROM runs r JOIN users u ON u.id = r.user_id WHERE r.id = ?1",
            [run["id"].as_str().unwrap()],
            |r| Ok((r.get(0)?, r.get(1)?)),
        )
        .unwrap();
    if !crate::common::db::on_postgres() {
        // SQLite: the one server of its database fails and refunds it.
        assert_eq!((state.as_str(), credits), ("failed", 25));
        return;
    }
    // PostgreSQL: other processes may share the database, so the run goes back to the queue
    // (its credits still held), and the next server to look takes it up at once.
    assert_eq!((state.as_str(), credits), ("queued", 24));
    let next = Binary::start(&data, free_port(), &[]).await;
    let id = run["id"].as_str().unwrap();
    let deadline = std::time::Instant::now() + Duration::from_secs(20);
    loop {
        let seen = next.get_json(&format!("/api/v1/runs/{id}"), &key).await;
        if seen["status"] == "running" {
            break;
        }
        assert!(std::time::Instant::now() < deadline, "{seen}");
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
    let cancelled = next
        .post_json(&format!("/api/v1/runs/{id}/cancel"), &key, &json!({}))
        .await;
    assert_eq!(cancelled.status(), 200);
    assert_eq!(next.finished_run(&key, id).await["status"], "cancelled");
}

#[tokio::test]
async fn a_run_cannot_use_another_users_upload() {
    let app = spawn_app().await;
    let alice = app.register().await;
    let bob = app.register().await;
    let fmu = crate::common::fresh_fmu("Dahlquist", "3.0", "alice only");
    let uploaded: Value = app
        .upload_fmu(&alice.api_key, fmu)
        .await
        .json()
        .await
        .unwrap();
    let id = uploaded["id"].as_str().unwrap();
    assert_eq!(
        app.create_run(&bob.api_key, &json!({ "fmu_id": id, "stop_time": 0.1 }))
            .await
            .status(),
        404
    );
    assert_eq!(app.balance(&bob.api_key).await, 25);
    assert_eq!(
        app.create_run(&alice.api_key, &json!({ "fmu_id": id, "stop_time": 0.1 }))
            .await
            .status(),
        201
    );
}

/// Operators run `fmu-gateway admin …` on the live data directory: that must not fail and
/// refund the running server's runs (only the server recovers runs after a crash).
#[tokio::test]
async fn an_operator_command_leaves_runs_in_progress_alone() {
    let app = spawn_app_with(|c| c.sync_wait = Duration::ZERO).await;
    let account = app.register().await;
    let resp = app.create_run(&account.api_key, &long_run()).await;
    assert_eq!(resp.status(), 202);
    let run: Value = resp.json().await.unwrap();
    let id = run["id"].as_str().unwrap().to_string();
    let out = std::process::Command::new(env!("CARGO_BIN_EXE_fmu-gateway"))
        .args(["admin", "public-key", "--data-dir"])
        .arg(&app.data_dir)
        .envs(crate::common::db::env(&app.data_dir))
        .output()
        .unwrap();
    assert!(
        out.status.success(),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
    let run = app
        .get_json(&format!("/api/v1/runs/{id}"), &account.api_key)
        .await;
    assert!(
        matches!(run["status"].as_str(), Some("queued" | "running")),
        "{run}"
    );
    let resp = app
        .post(&format!("/api/v1/runs/{id}/cancel"), &account.api_key)
        .await;
    assert!(resp.status().is_success());
}

/// A misspelt field must not run with the defaults and cost a credit: every v1 request body
/// refuses fields it does not know, with a 400 that names the field, and changes nothing.
#[tokio::test]
async fn unknown_fields_in_a_request_body_are_a_400_naming_them_and_cost_nothing() {
    let app = spawn_app().await;
    let account = app.register().await;
    let key = &account.api_key;
    let cases = [
        (
            "/api/v1/runs",
            json!({ "fmu_id": "lib:Dahlquist", "stop_tme": 3.0 }),
            "stop_tme",
        ),
        (
            "/api/v1/runs",
            json!({ "fmu_id": "lib:Dahlquist", "inputs": [{ "name": "u", "t": [0], "u": [1], "values": [1] }] }),
            "values",
        ),
        ("/api/v1/keys", json!({ "lable": "ci" }), "lable"),
        (
            "/api/v1/billing/checkout",
            json!({ "plan": "pro", "quantity": 2 }),
            "quantity",
        ),
    ];
    for (path, body, field) in cases {
        let resp = app.post_json(path, key, &body).await;
        assert_eq!(resp.status(), 400, "{path} {body}");
        let err: Value = resp.json().await.unwrap();
        assert_eq!(err["code"], "invalid_request", "{err}");
        let message = err["message"].as_str().unwrap();
        assert!(
            message.contains(&format!("unknown field `{field}`")),
            "{path}: {message}"
        );
    }
    assert_eq!(app.balance(key).await, 25, "nothing was charged");
    assert_eq!(app.count("runs", []), 0);
    let keys = app.get_json("/api/v1/keys", key).await;
    assert_eq!(
        keys.as_array().unwrap().len(),
        1,
        "no key was created: {keys}"
    );
}

/// `?format` is one of the formats results are sent in (anything else is a 400, not JSON),
/// and without it `Accept` is negotiated by q-values, with 406 when it allows neither.
#[tokio::test]
async fn result_formats_are_negotiated_and_unknown_ones_refused() {
    let app = spawn_app().await;
    let account = app.register().await;
    let key = &account.api_key;
    let run = app
        .run(
            key,
            &json!({ "fmu_id": "lib:Dahlquist", "stop_time": 1.0, "output_interval": 0.5 }),
        )
        .await;
    let path = format!("/api/v1/runs/{}/result", run["id"].as_str().unwrap());
    let ask = |query: &'static str, accept: &'static str| {
        let url = app.at(&format!("{path}{query}"));
        async move {
            let resp = api_client()
                .get(url)
                .bearer_auth(key)
                .header("accept", accept)
                .send()
                .await
                .unwrap();
            let media = resp
                .headers()
                .get("content-type")
                .map(|v| v.to_str().unwrap().to_string())
                .unwrap_or_default();
            (resp.status().as_u16(), media, resp.text().await.unwrap())
        }
    };
    let (status, _, body) = ask("?format=xml", "*/*").await;
    assert_eq!(status, 400, "{body}");
    let err: Value = serde_json::from_str(&body).unwrap();
    assert_eq!(err["code"], "invalid_request");
    assert!(err["message"].as_str().unwrap().contains("format"), "{err}");
    for (accept, expected) in [
        ("text/csv;q=0.1, application/json", "application/json"),
        ("application/json;q=0.5, text/csv", "text/csv"),
        ("text/*", "text/csv"),
        ("*/*", "application/json"),
    ] {
        let (status, media, body) = ask("", accept).await;
        assert_eq!(status, 200, "{accept}: {body}");
        assert!(media.starts_with(expected), "{accept}: {media}");
    }
    let (status, _, body) = ask("", "image/png").await;
    assert_eq!(status, 406, "{body}");
    let err: Value = serde_json::from_str(&body).unwrap();
    assert_eq!(err["code"], "not_acceptable");
    // The query parameter wins over the header.
    let (status, media, body) = ask("?format=csv", "image/png").await;
    assert_eq!(status, 200, "{body}");
    assert!(media.starts_with("text/csv"), "{media}");
    assert!(body.starts_with("time,x"), "{body}");
}

/// A number in a request is read exactly as written: 0.9999999999999999 is below 1 (a
/// tolerance's exclusive maximum), not rounded up to it.
#[tokio::test]
async fn request_numbers_are_read_exactly() {
    let app = crate::common::spawn_app().await;
    let account = app.register().await;
    let body = json!({ "fmu_id": "lib:Dahlquist", "stop_time": 1.0,
        "tolerance": 0.9999999999999999 });
    let resp = app.create_run(&account.api_key, &body).await;
    assert_eq!(resp.status(), 201);
    let run: Value = resp.json().await.unwrap();
    assert_eq!(
        run["settings"]["tolerance"],
        json!(0.9999999999999999),
        "{run}"
    );
}
