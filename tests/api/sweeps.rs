//! Sweeps over the JSON API, as an integrator drives them: designs expanded exactly, a quote
//! before money moves, one reservation settled case by case, cancel, the event stream, a
//! server killed mid-sweep, and another user's run during a big sweep.

use std::time::{Duration, Instant};

use serde_json::{Value, json};

use crate::common::api::Api;
use crate::common::{Binary, api_client, free_port, spawn_app_with};

/// Polls the sweep until it has ended; the sweep.
async fn finished_sweep(app: &(impl Api + ?Sized), key: &str, id: &str) -> Value {
    let deadline = Instant::now() + Duration::from_secs(600);
    loop {
        let resp = app.get(&format!("/api/v1/sweeps/{id}"), key).await;
        if resp.status() == 200 {
            let sweep: Value = resp.json().await.unwrap();
            if sweep["finished_at"].is_string() {
                return sweep;
            }
        }
        assert!(Instant::now() < deadline, "sweep {id} did not end");
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
}

/// Polls the sweep until at least `n` cases have ended; the sweep.
async fn sweep_with_ended(app: &(impl Api + ?Sized), key: &str, id: &str, n: u64) -> Value {
    let deadline = Instant::now() + Duration::from_secs(300);
    loop {
        let sweep = app.get_json(&format!("/api/v1/sweeps/{id}"), key).await;
        let c = &sweep["counts"];
        let ended = ["succeeded", "failed", "cancelled"]
            .iter()
            .map(|s| c[s].as_u64().unwrap())
            .sum::<u64>();
        if ended >= n {
            return sweep;
        }
        assert!(
            Instant::now() < deadline,
            "sweep {id} did not get {n} cases done: {sweep}"
        );
        tokio::time::sleep(Duration::from_millis(20)).await;
    }
}

/// Every case of the sweep, following `next_from`.
async fn all_cases(app: &(impl Api + ?Sized), key: &str, id: &str) -> Vec<Value> {
    let mut cases = Vec::new();
    let mut from = 0;
    loop {
        let page = app
            .get_json(&format!("/api/v1/sweeps/{id}/cases?from={from}"), key)
            .await;
        cases.extend(page["cases"].as_array().unwrap().iter().cloned());
        match page["next_from"].as_u64() {
            Some(next) => from = next,
            None => return cases,
        }
    }
}

/// The sum of the account's ledger deltas (what its balance must equal).
fn ledger_sum(app: &crate::common::TestApp, user_id: &str) -> i64 {
    let conn = app.state.store.conn().unwrap();
    conn.query_row(
        "SELECT COALESCE(SUM(delta), 0) FROM credit_ledger WHERE user_id = ?1",
        [user_id],
        |r| r.get(0),
    )
    .unwrap()
}

fn dahlquist_sweep(n: u32) -> Value {
    json!({
        "base": {"fmu_id": "lib:Dahlquist", "stop_time": 1.0, "output_interval": 0.1},
        "design": {"grid": [{"name": "k", "range": {"start": 0.5, "stop": 2.0, "num": n}}]},
        "kpis": [{"variable": "x", "kind": "final"}],
    })
}

/// The KPIs of a column, computed here from a run's JSON result (independently of the
/// server's code): max, final, the trapezoid integral, and the first time h reaches 0.5.
fn kpis_of(time: &[f64], h: &[f64]) -> (f64, f64, f64, Option<f64>) {
    let max = h.iter().cloned().fold(f64::NEG_INFINITY, f64::max);
    let integral: f64 = (1..h.len())
        .map(|i| (time[i] - time[i - 1]) * (h[i] + h[i - 1]) / 2.0)
        .sum();
    let crossing = (1..h.len()).find_map(|i| {
        let (a, b) = (h[i - 1] - 0.5, h[i] - 0.5);
        (a.signum() != b.signum() || b == 0.0)
            .then(|| time[i - 1] + (time[i] - time[i - 1]) * a / (a - b))
    });
    (max, *h.last().unwrap(), integral, crossing)
}

#[tokio::test]
async fn a_grid_sweep_runs_every_case_and_each_equals_the_same_case_run_alone() {
    let app = spawn_app_with(|_| {}).await;
    let account = app.register().await;
    let key = &account.api_key;
    let before = app.balance(key).await;
    let body = json!({
        "base": {"fmu_id": "lib:BouncingBall", "stop_time": 2.0, "output_interval": 0.01,
                 "outputs": ["h", "v"], "start_values": {"g": 9.81}},
        "design": {"grid": [
            {"name": "e", "values": [0.5, 0.8]},
            {"name": "g", "range": {"start": 9.0, "stop": 10.0, "num": 3}},
        ]},
        "kpis": [
            {"variable": "h", "kind": "max"},
            {"variable": "h", "kind": "final"},
            {"variable": "h", "kind": "integral"},
            {"variable": "h", "kind": "first_crossing", "level": 0.5},
        ],
    });
    let resp = app.post_json("/api/v1/sweeps", key, &body).await;
    assert_eq!(resp.status(), 202, "{}", resp.text().await.unwrap());
    let location = resp.headers()["location"].to_str().unwrap().to_string();
    let sweep: Value = resp.json().await.unwrap();
    let id = sweep["id"].as_str().unwrap();
    assert_eq!(location, format!("/api/v1/sweeps/{id}"));
    assert_eq!(sweep["case_count"], 6);
    assert_eq!(sweep["parameters"], json!(["e", "g"]));
    assert_eq!(sweep["credits_reserved"], 6);
    let done = finished_sweep(&*app.url, key, id).await;
    assert_eq!(done["status"], "completed", "{done}");
    assert_eq!(done["counts"]["succeeded"], 6);
    assert_eq!(done["credits_charged"], 6);
    assert_eq!(done["credits_refunded"], 0);
    assert_eq!(app.balance(key).await, before - 6);
    assert_eq!(ledger_sum(&app, &account.user_id), before - 6);
    let reservations = app.count(
        "credit_ledger WHERE sweep_id = ?1 AND kind = 'reserve'",
        [id],
    );
    assert_eq!(reservations, 1, "one reservation for the whole sweep");

    // The grid, exactly: e slowest, g fastest; the range's levels as written.
    let cases = all_cases(&*app.url, key, id).await;
    let values: Vec<(f64, f64)> = cases
        .iter()
        .map(|c| {
            (
                c["values"]["e"].as_f64().unwrap(),
                c["values"]["g"].as_f64().unwrap(),
            )
        })
        .collect();
    assert_eq!(
        values,
        [
            (0.5, 9.0),
            (0.5, 9.5),
            (0.5, 10.0),
            (0.8, 9.0),
            (0.8, 9.5),
            (0.8, 10.0)
        ]
    );
    // Each case's KPIs are those of the same run on its own, computed here from its result.
    for case in &cases {
        let (e, g) = (&case["values"]["e"], &case["values"]["g"]);
        let run = app
            .run(
                key,
                &json!({"fmu_id": "lib:BouncingBall", "stop_time": 2.0, "output_interval": 0.01,
                        "outputs": ["h", "v"], "start_values": {"e": e, "g": g}}),
            )
            .await;
        assert_eq!(run["status"], "succeeded", "{run}");
        let result = app
            .get_json(
                &format!("/api/v1/runs/{}/result", run["id"].as_str().unwrap()),
                key,
            )
            .await;
        let time: Vec<f64> = serde_json::from_value(result["time"].clone()).unwrap();
        let h: Vec<f64> = serde_json::from_value(result["columns"]["h"].clone()).unwrap();
        let (max, last, integral, crossing) = kpis_of(&time, &h);
        let kpis = &case["kpis"];
        assert_eq!(kpis["max(h)"].as_f64().unwrap(), max, "{case}");
        assert_eq!(kpis["final(h)"].as_f64().unwrap(), last, "{case}");
        assert!(
            (kpis["integral(h)"].as_f64().unwrap() - integral).abs() < 1e-12,
            "{case}"
        );
        let got = kpis["first_crossing(h, 0.5)"].as_f64();
        assert!(
            (got.unwrap() - crossing.unwrap()).abs() < 1e-12,
            "{case}: {crossing:?}"
        );
    }
}

#[tokio::test]
async fn a_sweep_the_balance_cannot_pay_is_a_402_and_changes_nothing_and_the_quote_says_so() {
    let app = spawn_app_with(|c| c.free_credits = 999u32.into()).await;
    let account = app.register().await;
    let key = &account.api_key;
    let ledger_rows = app.count("credit_ledger WHERE user_id = ?1", [&account.user_id]);
    let body = dahlquist_sweep(1000);

    let quote = app
        .post_json("/api/v1/sweeps?dry_run=true", key, &body)
        .await;
    assert_eq!(quote.status(), 200);
    let quote: Value = quote.json().await.unwrap();
    assert_eq!(quote["case_count"], 1000);
    assert_eq!(quote["cost"], 1000);
    assert_eq!(quote["balance"], 999);
    assert_eq!(quote["affordable"], false);
    assert_eq!(quote["affordable_cases"], 999);
    assert_eq!(quote["cases"].as_array().unwrap().len(), 100);
    assert_eq!(quote["cases"][0]["k"], 0.5);
    let same = app.post_json("/api/v1/sweeps/quote", key, &body).await;
    assert_eq!(same.json::<Value>().await.unwrap(), quote);

    let resp = app.post_json("/api/v1/sweeps", key, &body).await;
    assert_eq!(resp.status(), 402);
    let error: Value = resp.json().await.unwrap();
    assert_eq!(error["code"], "insufficient_credits", "{error}");
    assert_eq!(app.balance(key).await, 999);
    assert_eq!(
        app.count("credit_ledger WHERE user_id = ?1", [&account.user_id]),
        ledger_rows
    );
    assert_eq!(
        app.count("sweeps WHERE user_id = ?1", [&account.user_id]),
        0
    );
    assert_eq!(app.count("sweep_cases", []), 0);
}

#[tokio::test]
async fn every_case_the_model_cannot_take_is_named_before_any_credit_moves() {
    let app = spawn_app_with(|_| {}).await;
    let account = app.register().await;
    let key = &account.api_key;
    let before = app.balance(key).await;
    let body = json!({
        "base": {"fmu_id": "lib:BouncingBall", "stop_time": 1.0},
        "design": {"cases": [{"e": 0.5}, {"e": "bouncy"}, {"e": 0.7, "nope": 1}]},
        "kpis": [{"variable": "h", "kind": "max"}, {"variable": "h", "kind": "median"}],
    });
    let resp = app.post_json("/api/v1/sweeps", key, &body).await;
    assert_eq!(resp.status(), 422);
    let error: Value = resp.json().await.unwrap();
    assert_eq!(error["problems"][0]["field"], "kpis[1].kind", "{error}");
    let body = json!({
        "base": {"fmu_id": "lib:BouncingBall", "stop_time": 1.0},
        "design": {"cases": [{"e": 0.5}, {"e": "bouncy"}, {"e": 0.7, "nope": 1}]},
        "kpis": [{"variable": "nothing", "kind": "max"}],
    });
    let resp = app.post_json("/api/v1/sweeps", key, &body).await;
    assert_eq!(resp.status(), 422);
    let error: Value = resp.json().await.unwrap();
    let fields: Vec<&str> = error["problems"]
        .as_array()
        .unwrap()
        .iter()
        .map(|p| p["field"].as_str().unwrap())
        .collect();
    assert!(fields.contains(&"kpis[0]"), "{error}");
    assert!(fields.contains(&"design.cases[1].e"), "{error}");
    assert!(fields.contains(&"design.cases[2].nope"), "{error}");
    assert!(
        !fields.iter().any(|f| f.starts_with("design.cases[0]")),
        "{error}"
    );
    // A design of more cases than a sweep may have, and two designs at once.
    for (design, field) in [
        (
            json!({"grid": [{"name": "e", "range": {"start": 0, "stop": 1, "num": 10001}}]}),
            "design.grid",
        ),
        (json!({"cases": [{"e": 0.5}], "csv": "e\n0.5\n"}), "design"),
        (json!({"csv": "e,g\n0.5\n"}), "design.csv"),
    ] {
        let body = json!({"base": {"fmu_id": "lib:BouncingBall"}, "design": design});
        let resp = app.post_json("/api/v1/sweeps", key, &body).await;
        assert_eq!(resp.status(), 422, "{design}");
        let error: Value = resp.json().await.unwrap();
        assert_eq!(error["problems"][0]["field"], field, "{error}");
    }
    assert_eq!(app.balance(key).await, before);
    assert_eq!(app.count("sweeps", []), 0);
}

#[tokio::test]
async fn latin_hypercube_and_sobol_designs_reproduce_with_their_seed() {
    let app = spawn_app_with(|_| {}).await;
    let key = &app.register().await.api_key;
    let url = app.url.as_str();
    let quote = |design: Value| {
        let body = json!({"base": {"fmu_id": "lib:BouncingBall"}, "design": design});
        async move {
            let resp = url.post_json("/api/v1/sweeps/quote", key, &body).await;
            assert_eq!(resp.status(), 200);
            resp.json::<Value>().await.unwrap()
        }
    };
    let lhs = json!({"latin_hypercube": {"n": 20, "seed": 7, "parameters": [
        {"name": "e", "uniform": {"low": 0.5, "high": 0.9}},
        {"name": "g", "normal": {"mean": 9.81, "sd": 0.05}},
    ]}});
    let a = quote(lhs.clone()).await;
    let b = quote(lhs).await;
    assert_eq!(a["cases"], b["cases"]);
    // One sample in each of the 20 strata of e's range.
    let mut strata: Vec<usize> = a["cases"]
        .as_array()
        .unwrap()
        .iter()
        .map(|c| ((c["e"].as_f64().unwrap() - 0.5) / 0.4 * 20.0) as usize)
        .collect();
    strata.sort();
    assert_eq!(strata, (0..20).collect::<Vec<_>>());
    let sobol = json!({"sobol": {"n": 16, "seed": 3, "parameters": [{"name": "e", "low": 0.5, "high": 0.9}]}});
    let s1 = quote(sobol.clone()).await;
    assert_eq!(s1["cases"], quote(sobol).await["cases"]);
    let other = quote(json!({"sobol": {"n": 16, "seed": 4, "parameters": [{"name": "e", "low": 0.5, "high": 0.9}]}})).await;
    assert_ne!(s1["cases"], other["cases"]);
}

#[tokio::test]
async fn cancel_mid_sweep_refunds_every_case_not_started() {
    let app = spawn_app_with(|c| c.free_credits = 3000u32.into()).await;
    let account = app.register().await;
    let key = &account.api_key;
    let resp = app
        .post_json("/api/v1/sweeps", key, &dahlquist_sweep(3000))
        .await;
    assert_eq!(resp.status(), 202);
    let id = resp.json::<Value>().await.unwrap()["id"]
        .as_str()
        .unwrap()
        .to_string();
    sweep_with_ended(&*app.url, key, &id, 10).await;
    let resp = app.post(&format!("/api/v1/sweeps/{id}/cancel"), key).await;
    assert_eq!(resp.status(), 200);
    let sweep = finished_sweep(&*app.url, key, &id).await;
    assert_eq!(sweep["status"], "cancelled", "{sweep}");
    let c = &sweep["counts"];
    let (ok, cancelled) = (
        c["succeeded"].as_i64().unwrap(),
        c["cancelled"].as_i64().unwrap(),
    );
    assert!(ok >= 10 && cancelled > 0, "{sweep}");
    assert_eq!(ok + cancelled + c["failed"].as_i64().unwrap(), 3000);
    let charged = sweep["credits_charged"].as_i64().unwrap();
    assert_eq!(charged + sweep["credits_refunded"].as_i64().unwrap(), 3000);
    assert_eq!(app.balance(key).await, 3000 - charged);
    assert_eq!(ledger_sum(&app, &account.user_id), 3000 - charged);
    // A second cancel is a conflict and moves nothing.
    let resp = app.post(&format!("/api/v1/sweeps/{id}/cancel"), key).await;
    assert_eq!(resp.status(), 409);
    assert_eq!(app.balance(key).await, 3000 - charged);
    // Another user sees nothing of it.
    let other = app.register().await.api_key;
    assert_eq!(
        app.get(&format!("/api/v1/sweeps/{id}"), &other)
            .await
            .status(),
        404
    );
    assert_eq!(
        app.post(&format!("/api/v1/sweeps/{id}/cancel"), &other)
            .await
            .status(),
        404
    );
}

#[tokio::test]
async fn the_event_stream_tells_progress_each_case_and_the_end() {
    let app = spawn_app_with(|_| {}).await;
    let key = &app.register().await.api_key;
    let resp = app
        .post_json("/api/v1/sweeps", key, &dahlquist_sweep(20))
        .await;
    let id = resp.json::<Value>().await.unwrap()["id"]
        .as_str()
        .unwrap()
        .to_string();
    let resp = api_client()
        .get(app.at(&format!("/api/v1/sweeps/{id}/events")))
        .bearer_auth(key)
        .send()
        .await
        .unwrap();
    assert_eq!(resp.status(), 200);
    assert!(
        resp.headers()["content-type"]
            .to_str()
            .unwrap()
            .starts_with("text/event-stream")
    );
    let mut resp = resp;
    let mut text = String::new();
    let deadline = Instant::now() + Duration::from_secs(120);
    while !text.contains("event: end") {
        let chunk = tokio::time::timeout_at(deadline.into(), resp.chunk())
            .await
            .expect("the stream ends in time");
        match chunk.unwrap() {
            Some(chunk) => text.push_str(&String::from_utf8_lossy(&chunk)),
            None => break,
        }
    }
    let events: Vec<(String, Value)> = text
        .split("\n\n")
        .filter_map(|block| {
            let kind = block.lines().find_map(|l| l.strip_prefix("event: "))?;
            let data = block.lines().find_map(|l| l.strip_prefix("data: "))?;
            Some((kind.to_string(), serde_json::from_str(data).unwrap()))
        })
        .collect();
    assert_eq!(events[0].0, "progress", "{text}");
    let (last_kind, last) = events.last().unwrap();
    assert_eq!(
        (last_kind.as_str(), last["status"].as_str()),
        ("end", Some("completed")),
        "{text}"
    );
    // A sweep ending before the stream opened is all in the first events; one that runs
    // while it is open sends each case once.
    let mut seen: Vec<u64> = events
        .iter()
        .filter(|(k, _)| k == "cases")
        .flat_map(|(_, e)| {
            e["cases"]
                .as_array()
                .unwrap()
                .iter()
                .map(|c| c["index"].as_u64().unwrap())
                .collect::<Vec<_>>()
        })
        .collect();
    seen.sort();
    let before = events[0].1["counts"]["succeeded"].as_u64().unwrap();
    assert_eq!(seen.len() as u64 + before, 20, "{text}");
    seen.dedup();
    assert_eq!(seen.len() as u64 + before, 20, "no case twice: {text}");
    // The run stream ends with the run's end.
    let run = app
        .create_run(key, &json!({"fmu_id": "lib:Dahlquist", "stop_time": 1.0}))
        .await
        .json::<Value>()
        .await
        .unwrap();
    let text = api_client()
        .get(app.at(&format!(
            "/api/v1/runs/{}/events",
            run["id"].as_str().unwrap()
        )))
        .bearer_auth(key)
        .send()
        .await
        .unwrap()
        .text()
        .await
        .unwrap();
    assert!(
        text.contains("event: end") && text.contains("\"succeeded\""),
        "{text}"
    );
}

#[tokio::test]
async fn a_server_killed_mid_sweep_resumes_it_and_no_credit_is_lost_or_made() {
    let dir = tempfile::tempdir().unwrap();
    let data = dir.path().join("data");
    let port = free_port();
    let env = [("FMU_GATEWAY_FREE_CREDITS", "10000")];
    let mut server = Binary::start(&data, port, &env).await;
    let email = crate::common::unique_email();
    let account = server.url.as_str().sign_up(&email).await;
    let key = account["api_key"].as_str().unwrap().to_string();
    let url = server.url.clone();
    let before = url.as_str().balance(&key).await;
    // Cases of 10 000 output points each: long enough to be stopped in the middle.
    let mut body = dahlquist_sweep(10_000);
    body["base"]["output_interval"] = json!(1e-4);
    let resp = url.as_str().post_json("/api/v1/sweeps", &key, &body).await;
    assert_eq!(resp.status(), 202);
    let id = resp.json::<Value>().await.unwrap()["id"]
        .as_str()
        .unwrap()
        .to_string();
    sweep_with_ended(url.as_str(), &key, &id, 20).await;
    server.child.kill().unwrap();
    server.child.wait().unwrap();
    let db = crate::common::db::open(&data).await.conn().unwrap();
    let open: i64 = db
        .query_row(
            "SELECT COUNT(*) FROM sweep_cases WHERE sweep_id = ?1 AND status IN ('queued', 'running')",
            [&id],
            |r| r.get(0),
        )
        .unwrap();
    assert!(open > 0, "the sweep was killed in the middle");
    drop(db);

    let _server = Binary::start(&data, port, &env).await;
    let sweep = finished_sweep(url.as_str(), &key, &id).await;
    assert_eq!(sweep["status"], "completed", "{sweep}");
    assert_eq!(sweep["counts"]["succeeded"], 10_000, "{sweep}");
    assert_eq!(sweep["credits_charged"], 10_000);
    assert_eq!(url.as_str().balance(&key).await, before - 10_000);
    let db = crate::common::db::open(&data).await.conn().unwrap();
    let (sum, user): (i64, String) = db
        .query_row(
            "SELECT SUM(delta), user_id FROM credit_ledger WHERE user_id = (SELECT user_id FROM sweeps WHERE id = ?1) GROUP BY user_id",
            [&id],
            |r| Ok((r.get(0)?, r.get(1)?)),
        )
        .unwrap();
    let balance: i64 = db
        .query_row("SELECT credits FROM users WHERE id = ?1", [&user], |r| {
            r.get(0)
        })
        .unwrap();
    assert_eq!(sum, balance, "the ledger sums to the balance");
    let cases = all_cases(url.as_str(), &key, &id).await;
    assert!(
        cases.iter().all(|c| c["kpis"]["final(x)"].is_number()),
        "every case has its KPI"
    );
}

#[tokio::test]
async fn another_users_run_finishes_promptly_during_a_big_sweep() {
    let app = spawn_app_with(|c| c.free_credits = 10_000u32.into()).await;
    let sweeper = app.register().await.api_key;
    let resp = app
        .post_json("/api/v1/sweeps", &sweeper, &dahlquist_sweep(10_000))
        .await;
    assert_eq!(resp.status(), 202);
    let id = resp.json::<Value>().await.unwrap()["id"]
        .as_str()
        .unwrap()
        .to_string();
    sweep_with_ended(&*app.url, &sweeper, &id, 50).await;
    let other = app.register().await.api_key;
    let started = Instant::now();
    let run = app
        .run(
            &other,
            &json!({"fmu_id": "lib:Dahlquist", "stop_time": 1.0}),
        )
        .await;
    let took = started.elapsed();
    assert_eq!(run["status"], "succeeded");
    // Batches keep a worker about half a second: the run waits for one batch, not the sweep.
    assert!(
        took < Duration::from_secs(10),
        "the run took {took:?} beside the sweep"
    );
    let sweep = app
        .get_json(&format!("/api/v1/sweeps/{id}"), &sweeper)
        .await;
    assert_eq!(
        sweep["status"], "running",
        "the sweep was still going: {sweep}"
    );
    app.post(&format!("/api/v1/sweeps/{id}/cancel"), &sweeper)
        .await;
}

#[tokio::test]
async fn kept_trajectories_are_each_the_same_case_run_alone() {
    let app = spawn_app_with(|_| {}).await;
    let key = &app.register().await.api_key;
    let base = json!({"fmu_id": "lib:BouncingBall", "stop_time": 1.5, "output_interval": 0.05,
                      "outputs": ["h", "v"]});
    let body = json!({
        "base": base,
        "design": {"cases": [{"e": 0.6}, {"e": 0.75}, {"e": 0.9}]},
        "trajectories": true,
    });
    let resp = app.post_json("/api/v1/sweeps", key, &body).await;
    assert_eq!(resp.status(), 202);
    let id = resp.json::<Value>().await.unwrap()["id"]
        .as_str()
        .unwrap()
        .to_string();
    assert_eq!(
        finished_sweep(&*app.url, key, &id).await["status"],
        "completed"
    );
    for (index, e) in [(0, 0.6), (2, 0.9)] {
        let kept = app
            .get_json(&format!("/api/v1/sweeps/{id}/cases/{index}/result"), key)
            .await;
        let mut alone = base.clone();
        alone["start_values"] = json!({"e": e});
        let run = app.run(key, &alone).await;
        let result = app
            .get_json(
                &format!("/api/v1/runs/{}/result", run["id"].as_str().unwrap()),
                key,
            )
            .await;
        assert_eq!(kept["time"], result["time"], "case {index}");
        assert_eq!(kept["columns"], result["columns"], "case {index}");
    }
    let csv = app
        .get(
            &format!("/api/v1/sweeps/{id}/cases/1/result?format=csv"),
            key,
        )
        .await;
    assert_eq!(csv.status(), 200);
    assert!(csv.text().await.unwrap().starts_with("time,h,v"));
    // A sweep that keeps none says so.
    let resp = app
        .post_json("/api/v1/sweeps", key, &dahlquist_sweep(2))
        .await;
    let other = resp.json::<Value>().await.unwrap()["id"]
        .as_str()
        .unwrap()
        .to_string();
    finished_sweep(&*app.url, key, &other).await;
    let resp = app
        .get(&format!("/api/v1/sweeps/{other}/cases/0/result"), key)
        .await;
    assert_eq!(resp.status(), 409);
    // The CSV of cases: one line per case, KPIs in full.
    let csv = app
        .get(&format!("/api/v1/sweeps/{other}/cases.csv"), key)
        .await
        .text()
        .await
        .unwrap();
    let lines: Vec<&str> = csv.lines().collect();
    assert_eq!(lines[0], "index,status,k,final(x),error");
    assert_eq!(lines.len(), 3, "{csv}");
    let last: Vec<&str> = lines[2].split(',').collect();
    assert_eq!(&last[..3], ["1", "succeeded", "2"]);
    assert!(
        (last[3].parse::<f64>().unwrap() - (-2.0f64).exp()).abs() < 1e-3,
        "{csv}"
    );
}

#[tokio::test]
async fn a_retried_sweep_with_its_idempotency_key_is_the_same_sweep_charged_once() {
    let app = spawn_app_with(|_| {}).await;
    let account = app.register().await;
    let key = &account.api_key;
    let before = app.balance(key).await;
    let start = |body: Value, token: &'static str| {
        let url = app.at("/api/v1/sweeps");
        let key = key.clone();
        async move {
            api_client()
                .post(url)
                .bearer_auth(key)
                .header("Idempotency-Key", token)
                .json(&body)
                .send()
                .await
                .unwrap()
        }
    };
    let first = start(dahlquist_sweep(5), "sweep-1").await;
    assert_eq!(first.status(), 202);
    let first: Value = first.json().await.unwrap();
    let again = start(dahlquist_sweep(5), "sweep-1").await;
    assert_eq!(again.status(), 202);
    let again: Value = again.json().await.unwrap();
    assert_eq!(
        again["id"], first["id"],
        "the retry answers the first sweep"
    );
    // The same key with another body is refused and starts nothing.
    let other = start(dahlquist_sweep(6), "sweep-1").await;
    assert_eq!(other.status(), 422);
    finished_sweep(&*app.url, key, first["id"].as_str().unwrap()).await;
    assert_eq!(app.balance(key).await, before - 5);
    assert_eq!(
        app.count("sweeps WHERE user_id = ?1", [&account.user_id]),
        1
    );
    assert_eq!(
        app.count(
            "credit_ledger WHERE user_id = ?1 AND kind = 'reserve'",
            [&account.user_id]
        ),
        1
    );
}
