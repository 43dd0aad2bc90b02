#![allow(dead_code)]
//! The Node receiver (`receiver.mjs`) as a child process: it verifies every delivery with
//! the `standardwebhooks` npm package and answers as the test scripts it.

use std::time::{Duration, Instant};

use serde_json::{Value, json};
use tokio::io::{AsyncBufReadExt, BufReader};

pub struct Receiver {
    _child: tokio::process::Child,
    pub port: u16,
    client: reqwest::Client,
}

impl Receiver {
    /// Starts the receiver and waits for the port it listens on.
    pub async fn start() -> Receiver {
        let script = concat!(env!("CARGO_MANIFEST_DIR"), "/tests/webhooks/receiver.mjs");
        let mut child = tokio::process::Command::new("node")
            .arg(script)
            .stdout(std::process::Stdio::piped())
            .kill_on_drop(true)
            .spawn()
            .expect("node runs (npm ci installs standardwebhooks)");
        let stdout = child.stdout.take().unwrap();
        let mut first = String::new();
        tokio::time::timeout(
            Duration::from_secs(20),
            BufReader::new(stdout).read_line(&mut first),
        )
        .await
        .expect("the receiver says its port")
        .unwrap();
        let port = serde_json::from_str::<Value>(&first).expect("a port line")["port"]
            .as_u64()
            .unwrap() as u16;
        Receiver {
            _child: child,
            port,
            client: reqwest::Client::new(),
        }
    }

    /// `http://127.0.0.1:<port><path>`.
    pub fn url(&self, path: &str) -> String {
        format!("http://127.0.0.1:{}{path}", self.port)
    }

    async fn control(&self, path: &str, body: Value) {
        let resp = self
            .client
            .post(self.url(path))
            .json(&body)
            .send()
            .await
            .unwrap();
        assert_eq!(resp.status(), 204);
    }

    /// The secrets each delivery is verified with (the answer's `verified`, in this order).
    pub async fn verify_with(&self, secrets: &[&str]) {
        self.control("/_control/secrets", json!({ "secrets": secrets }))
            .await;
    }

    /// The next answers: statuses, or `{status, body}`; 200 after them.
    pub async fn answer(&self, answers: Value) {
        self.control("/_control/plan", json!({ "answers": answers }))
            .await;
    }

    /// Every delivery received so far.
    pub async fn requests(&self) -> Vec<Value> {
        let resp = self
            .client
            .get(self.url("/_control/requests"))
            .send()
            .await
            .unwrap();
        resp.json().await.unwrap()
    }

    /// Waits until at least `n` deliveries have arrived (at most `within`); all of them.
    pub async fn wait_for(&self, n: usize, within: Duration) -> Vec<Value> {
        let deadline = Instant::now() + within;
        loop {
            let got = self.requests().await;
            if got.len() >= n {
                return got;
            }
            assert!(
                Instant::now() < deadline,
                "{} of {n} deliveries arrived within {within:?}: {got:?}",
                got.len()
            );
            tokio::time::sleep(Duration::from_millis(50)).await;
        }
    }
}
