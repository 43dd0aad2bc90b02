//! The request chains the tests repeat, as methods on whatever server a test started: call
//! `app.get_json("/api/v1/me", &key)` instead of building the request by hand. A test that
//! checks something unusual (odd headers, a raw body, no key at all) still builds its request
//! itself, so what it sends stays visible at the call site.

use std::time::{Duration, Instant};

use reqwest::Response;
use serde_json::{Value, json};

use super::{Binary, TestApp, UserServer, api_client};

/// How long a run may take before [`Api::finished_run`] gives up on it: far more than any
/// test's run needs, so only a run that never ends reaches it.
const RUN_DEADLINE: Duration = Duration::from_secs(600);

/// A started server called as an API integrator with a key (no cookies). Implemented by the
/// in-process [`TestApp`], the real binary ([`Binary`], [`UserServer`]) and a base URL
/// (`http://127.0.0.1:<port>`), for tests that keep the URL across a restart.
///
/// The methods that return a [`Response`] check nothing, so the caller asserts its status;
/// those that return JSON assert that the request succeeded and show the body if not.
#[allow(async_fn_in_trait)] // only called on concrete types in this crate, never as `dyn`
pub trait Api {
    /// The server's base URL, without a trailing slash.
    fn base(&self) -> &str;

    /// `GET path` with `key`.
    async fn get(&self, path: &str, key: &str) -> Response {
        let url = format!("{}{path}", self.base());
        api_client().get(url).bearer_auth(key).send().await.unwrap()
    }

    /// `GET path` with `key`, which must succeed; its JSON body.
    async fn get_json(&self, path: &str, key: &str) -> Value {
        success_json(self.get(path, key).await, path).await
    }

    /// `POST path` with `key` and `body` as JSON.
    async fn post_json(&self, path: &str, key: &str, body: &Value) -> Response {
        let url = format!("{}{path}", self.base());
        let request = api_client().post(url).bearer_auth(key).json(body);
        request.send().await.unwrap()
    }

    /// `POST path` with `key` and no body (revoking a key, cancelling a run).
    async fn post(&self, path: &str, key: &str) -> Response {
        let url = format!("{}{path}", self.base());
        api_client()
            .post(url)
            .bearer_auth(key)
            .send()
            .await
            .unwrap()
    }

    /// `DELETE path` with `key`.
    async fn delete(&self, path: &str, key: &str) -> Response {
        let url = format!("{}{path}", self.base());
        api_client()
            .delete(url)
            .bearer_auth(key)
            .send()
            .await
            .unwrap()
    }

    /// Uploads `bytes` as `model.fmu` to `POST /api/v1/fmus` with `key`.
    async fn upload_fmu(&self, key: &str, bytes: Vec<u8>) -> Response {
        self.upload_fmu_with(key, "", bytes).await
    }

    /// [`Api::upload_fmu`] with a query string (`"?lenient=true"`).
    async fn upload_fmu_with(&self, key: &str, query: &str, bytes: Vec<u8>) -> Response {
        let part = reqwest::multipart::Part::bytes(bytes).file_name("model.fmu");
        let form = reqwest::multipart::Form::new().part("file", part);
        let url = format!("{}/api/v1/fmus{query}", self.base());
        let request = api_client().post(url).bearer_auth(key).multipart(form);
        request.send().await.unwrap()
    }

    /// Registers `email` over the JSON route (`POST /register`), which must answer 201; the
    /// answer (`user_id`, `api_key`, `credits`).
    async fn sign_up(&self, email: &str) -> Value {
        let url = format!("{}/register", self.base());
        let body = json!({ "email": email, "password": "a long password" });
        let resp = api_client().post(url).json(&body).send().await.unwrap();
        assert_eq!(resp.status(), 201, "{}", resp.text().await.unwrap());
        resp.json().await.unwrap()
    }

    /// The credits of the key's account, from `GET /api/v1/me`.
    async fn balance(&self, key: &str) -> i64 {
        let me = self.get_json("/api/v1/me", key).await;
        me["credits"].as_i64().unwrap()
    }

    /// `POST /api/v1/runs` with `key` and `body`: a run created, or refused.
    async fn create_run(&self, key: &str, body: &Value) -> Response {
        self.post_json("/api/v1/runs", key, body).await
    }

    /// Polls run `id` until it is neither queued nor running; the finished run.
    async fn finished_run(&self, key: &str, id: &str) -> Value {
        let deadline = Instant::now() + RUN_DEADLINE;
        loop {
            let run = self.get_json(&format!("/api/v1/runs/{id}"), key).await;
            if !matches!(run["status"].as_str(), Some("queued" | "running")) {
                return run;
            }
            assert!(Instant::now() < deadline, "run {id} did not end: {run}");
            tokio::time::sleep(Duration::from_millis(50)).await;
        }
    }

    /// Creates run `body`, which must be accepted (200, 201 or 202), and waits for its end;
    /// the finished run, whatever its status.
    /// `POST /api/v1/keys` with `label`, which must succeed: the new key (`api_key` is its
    /// token, `key` its listing).
    async fn create_key(&self, key: &str, label: &str) -> Value {
        let resp = self
            .post_json("/api/v1/keys", key, &json!({ "label": label }))
            .await;
        success_json(resp, "/api/v1/keys").await
    }

    async fn run(&self, key: &str, body: &Value) -> Value {
        let run = success_json(self.create_run(key, body).await, "/api/v1/runs").await;
        self.finished_run(key, run["id"].as_str().unwrap()).await
    }
}

/// The JSON body of `resp`, after asserting its status is a success (the body shows if not).
async fn success_json(resp: Response, path: &str) -> Value {
    let status = resp.status();
    let text = resp.text().await.unwrap();
    assert!(status.is_success(), "{path} answered {status}: {text}");
    serde_json::from_str(&text).unwrap_or_else(|e| panic!("{path}: {e} in {text}"))
}

impl Api for TestApp {
    fn base(&self) -> &str {
        &self.url
    }
}

impl Api for Binary {
    fn base(&self) -> &str {
        &self.url
    }
}

impl Api for UserServer {
    fn base(&self) -> &str {
        &self.binary.url
    }
}

/// A base URL. `str` has a `get` of its own (slicing), which wins over [`Api::get`]: write
/// `Api::get(url, path, key)` for that one.
impl Api for str {
    fn base(&self) -> &str {
        self
    }
}

impl TestApp {
    /// `SELECT COUNT(*) FROM <from_where>` on the app's database, e.g.
    /// `app.count("api_keys WHERE user_id = ?1", [&user_id])`.
    pub fn count(&self, from_where: &str, params: impl fmu_gateway::store::sql::Params) -> i64 {
        let sql = format!("SELECT COUNT(*) FROM {from_where}");
        let conn = self.state.store.conn().unwrap();
        conn.query_row(&sql, params, |r| r.get(0)).unwrap()
    }
}
