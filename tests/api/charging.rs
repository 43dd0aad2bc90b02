//! Who pays for a run, one row of the charging table at a time (README, "Who pays for a
//! run"), on the real binary with the real worker and FMUs built here from fmus/: the caller
//! pays for what their model used, the service for its own failures. After every run the
//! credit ledger adds up to the balance.

use std::path::{Path, PathBuf};
use std::time::Duration;

use serde_json::{Value, json};

use crate::common::{Api, fresh_fmu};

use crate::common::UserServer as Server;

/// What these tests ask of the server beyond starting it.
impl Server {
    /// Starts a run (answered 202 at once); returns its id.
    async fn start_run(&self, body: Value) -> String {
        let resp = self.create_run(&self.key, &body).await;
        assert!(resp.status().is_success(), "{}", resp.text().await.unwrap());
        let run: Value = resp.json().await.unwrap();
        run["id"].as_str().unwrap().to_string()
    }

    async fn get_run(&self, id: &str) -> Value {
        self.get_json(&format!("/api/v1/runs/{id}"), &self.key)
            .await
    }

    async fn wait_for_status(&self, id: &str, status: &str) {
        for _ in 0..400 {
            if self.get_run(id).await["status"] == status {
                return;
            }
            tokio::time::sleep(Duration::from_millis(25)).await;
        }
        panic!("run {id} never became {status}");
    }

    async fn cancel(&self, id: &str) -> Value {
        let resp = self
            .post(&format!("/api/v1/runs/{id}/cancel"), &self.key)
            .await;
        assert_eq!(resp.status(), 200);
        resp.json().await.unwrap()
    }

    /// The balance, after checking that every credit is accounted for in the ledger.
    async fn balance_matching_the_ledger(&self) -> i64 {
        let balance = self.balance(&self.key).await;
        let db = crate::common::db::open(&self.data).await;
        let sum: i64 = db
            .conn()
            .unwrap()
            .query_row(
                "SELECT COALESCE(SUM(delta), 0) FROM credit_ledger",
                [],
                |r| r.get(0),
            )
            .unwrap();
        assert_eq!(sum, balance, "the ledger and the balance disagree");
        balance
    }

    fn extracted_dir(&self, fmu_id: &str) -> PathBuf {
        self.data.join("cache").join("fmus").join(fmu_id)
    }
}

fn assert_outcome(run: &Value, status: &str, kind: Option<&str>, charged: bool) {
    assert_eq!(run["status"], status, "{run}");
    assert_eq!(run["failure_kind"].as_str(), kind, "{run}");
    assert_eq!(run["charged"], charged, "{run}");
    assert_eq!(run["credits_charged"], i64::from(charged), "{run}");
}

fn short(fmu_id: &str) -> Value {
    json!({ "fmu_id": fmu_id, "stop_time": 1.0, "output_interval": 0.1 })
}

#[tokio::test]
async fn the_caller_pays_for_what_their_model_used() {
    let server = Server::start(
        "payer@example.com",
        &[("FMU_GATEWAY_WORKER_MEMORY_MB", "512")],
    )
    .await;
    assert_eq!(server.balance_matching_the_ledger().await, 25);

    // Succeeded.
    let upload = server
        .upload(fresh_fmu("Dahlquist", "3.0", "the caller's"))
        .await;
    let run = server.run(&server.key, &short(&upload)).await;
    assert_outcome(&run, "succeeded", None, true);
    assert_eq!(server.balance_matching_the_ledger().await, 24);

    // The caller's FMU reports an error.
    let failing = server.upload_hostile(&["HOSTILE_ERROR"]).await;
    let run = server.run(&server.key, &short(&failing)).await;
    assert_outcome(&run, "failed", Some("model_error"), true);
    assert!(
        run["error"].as_str().unwrap().contains("failed on purpose"),
        "{run}"
    );
    assert_eq!(server.balance_matching_the_ledger().await, 23);

    // It crashes.
    let crashing = server.upload_hostile(&["HOSTILE_SEGFAULT"]).await;
    let run = server.run(&server.key, &short(&crashing)).await;
    assert_outcome(&run, "failed", Some("model_crashed"), true);
    assert_eq!(server.balance_matching_the_ledger().await, 22);

    // It runs out of memory.
    let greedy = server.upload_hostile(&["HOSTILE_ALLOC"]).await;
    let run = server.run(&server.key, &short(&greedy)).await;
    assert_outcome(&run, "failed", Some("out_of_memory"), true);
    assert_eq!(server.balance_matching_the_ledger().await, 21);
}

#[tokio::test]
async fn a_run_that_reaches_the_callers_time_limit_is_charged() {
    let server = Server::start("payer@example.com", &[]).await;
    let sleeper = server.upload_hostile(&["HOSTILE_SLEEP"]).await;
    let mut body = short(&sleeper);
    body["timeout"] = json!(2);
    let started = std::time::Instant::now();
    let run = server.run(&server.key, &body).await;
    assert_outcome(&run, "failed", Some("time_limit"), true);
    assert!(started.elapsed() < Duration::from_secs(9), "stopped at 2 s");
    assert!(run["error"].as_str().unwrap().contains("2 s"), "{run}");
    assert_eq!(server.balance_matching_the_ledger().await, 24);
}

#[tokio::test]
async fn a_library_model_that_fails_is_not_charged() {
    let server = Server::start("payer@example.com", &[]).await;
    // Our Dahlquist in Co-Simulation integrates with explicit RK4 at 1 ms substeps, which is
    // unstable for k = 1e6: the model reports the state became non-finite.
    let mut body = short("lib:Dahlquist");
    body["start_values"] = json!({ "k": 1e6 });
    let run = server.run(&server.key, &body).await;
    assert_outcome(&run, "failed", Some("model_error"), false);
    assert!(
        run["error"].as_str().unwrap().contains("non-finite"),
        "{run}"
    );
    assert_eq!(server.balance_matching_the_ledger().await, 25);
    // The same model within its means is charged as usual.
    let run = server.run(&server.key, &short("lib:Dahlquist")).await;
    assert_outcome(&run, "succeeded", None, true);
    assert_eq!(server.balance_matching_the_ledger().await, 24);
}

#[tokio::test]
async fn queued_cancels_and_service_faults_are_refunded_running_cancels_are_charged() {
    // One worker, so the second and third runs wait in the queue behind the first.
    let server = Server::start("payer@example.com", &[("FMU_GATEWAY_WORKERS", "1")]).await;
    let sleeper = server.upload_hostile(&["HOSTILE_SLEEP"]).await;
    let lost = server
        .upload(fresh_fmu("Dahlquist", "3.0", "files lost"))
        .await;

    let mut body = short(&sleeper);
    body["timeout"] = json!(60);
    let busy = server.start_run(body).await;
    server.wait_for_status(&busy, "running").await;
    let queued_then_lost = server.start_run(short(&lost)).await;
    let queued_then_cancelled = server.start_run(short("lib:Dahlquist")).await;
    assert_eq!(server.get_run(&queued_then_lost).await["status"], "queued");
    assert_eq!(server.balance_matching_the_ledger().await, 22, "3 held");

    // The service loses the model's files while the run waits: its extraction, and the
    // archive it would be extracted from again.
    std::fs::remove_dir_all(server.extracted_dir(&lost)).unwrap();
    std::fs::remove_file(server.data.join("fmus").join(format!("{lost}.fmu"))).unwrap();

    // Cancelled while queued: never reached a worker, not charged.
    let run = server.cancel(&queued_then_cancelled).await;
    assert_outcome(&run, "cancelled", None, false);
    assert_eq!(server.balance_matching_the_ledger().await, 23);

    // Cancelled while running: the caller's model used the worker, charged.
    let run = server.cancel(&busy).await;
    assert_outcome(&run, "cancelled", None, true);

    // The run whose files went missing is the service's failure: refunded.
    let run = server.finished_run(&server.key, &queued_then_lost).await;
    assert_outcome(&run, "failed", Some("service_error"), false);
    assert!(
        run["error"]
            .as_str()
            .unwrap()
            .contains("model could not be fetched"),
        "{run}"
    );
    assert_eq!(server.balance_matching_the_ledger().await, 24);
    assert!(!Path::new(&server.extracted_dir(&lost)).exists());
}
