//! CSRF, rate limits and security headers.

use serde_json::{Value, json};

use crate::common::{
    Api, Binary, api_client, browser, free_port, spawn_app, spawn_app_with, unique_email,
};

#[tokio::test]
async fn a_form_post_without_the_csrf_token_is_refused_and_changes_nothing() {
    let app = spawn_app().await;
    let account = app.register().await;
    let client = browser();
    let csrf = app.browser_login(&client, &account).await;
    let before = app.count("api_keys", []);

    let missing = client
        .post(app.at("/api-keys"))
        .form(&[("label", "sneaky")])
        .send()
        .await
        .unwrap();
    assert_eq!(missing.status(), 403);
    assert!(missing.text().await.unwrap().contains("security token"));
    let wrong = client
        .post(app.at("/api-keys"))
        .form(&[("label", "sneaky"), ("csrf_token", "0000")])
        .send()
        .await
        .unwrap();
    assert_eq!(wrong.status(), 403);
    let htmx_wrong = client
        .post(app.at("/api-keys"))
        .header("HX-Request", "true")
        .header("X-CSRF-Token", "nope")
        .form(&[("label", "x")])
        .send()
        .await
        .unwrap();
    assert_eq!(htmx_wrong.status(), 403);
    assert_eq!(app.count("api_keys", []), before, "nothing was created");

    let ok = client
        .post(app.at("/api-keys"))
        .form(&[("label", "fine"), ("csrf_token", csrf.as_str())])
        .send()
        .await
        .unwrap();
    assert_eq!(ok.status(), 201);
    let ok = client
        .post(app.at("/api-keys"))
        .header("HX-Request", "true")
        .header("X-CSRF-Token", &csrf)
        .form(&[("label", "fine too")])
        .send()
        .await
        .unwrap();
    assert_eq!(ok.status(), 201);
    assert_eq!(app.count("api_keys", []), before + 2);
}

#[tokio::test]
async fn compatibility_posts_with_only_a_cookie_need_the_token_too() {
    let app = spawn_app().await;
    let account = app.register().await;
    let client = browser();
    let csrf = app.browser_login(&client, &account).await;
    let before = app.count("api_keys", []);
    let resp = client
        .post(app.at("/api_keys/new"))
        .json(&json!({ "label": "x" }))
        .send()
        .await
        .unwrap();
    assert_eq!(resp.status(), 403);
    let err: Value = resp.json().await.unwrap();
    assert_eq!(err["code"], "csrf_failed");
    assert_eq!(app.count("api_keys", []), before);
    let resp = client
        .post(app.at("/api_keys/new"))
        .header("X-CSRF-Token", &csrf)
        .json(&json!({ "label": "x" }))
        .send()
        .await
        .unwrap();
    assert_eq!(resp.status(), 201);
}

#[tokio::test]
async fn cross_site_form_posts_are_refused_even_without_a_session() {
    let app = spawn_app().await;
    let resp = browser()
        .post(app.at("/register"))
        .header("Origin", "https://evil.example")
        .form(&[
            ("email", unique_email().as_str()),
            ("password", "longenough"),
        ])
        .send()
        .await
        .unwrap();
    assert_eq!(resp.status(), 403);
    let resp = browser()
        .post(app.at("/login"))
        .header("Sec-Fetch-Site", "cross-site")
        .form(&[("email", "a@b.co"), ("password", "longenough")])
        .send()
        .await
        .unwrap();
    assert_eq!(resp.status(), 403);
    let users: i64 = app.count("users", []);
    assert_eq!(users, 0);
}

#[tokio::test]
async fn logins_are_rate_limited_per_client_with_retry_after() {
    let app = spawn_app_with(|c| c.auth_rate_per_minute = 3).await;
    let client = api_client();
    for _ in 0..3 {
        let resp = client
            .post(app.at("/login"))
            .json(&json!({ "email": "a@b.co", "password": "wrong password" }))
            .send()
            .await
            .unwrap();
        assert_eq!(resp.status(), 401);
    }
    let resp = client
        .post(app.at("/login"))
        .json(&json!({ "email": "a@b.co", "password": "wrong password" }))
        .send()
        .await
        .unwrap();
    assert_eq!(resp.status(), 429);
    let retry: u64 = resp.headers()["retry-after"]
        .to_str()
        .unwrap()
        .parse()
        .unwrap();
    assert!((1..=60).contains(&retry), "{retry}");
    let err: Value = resp.json().await.unwrap();
    assert_eq!(err["code"], "rate_limited");
    // Registration shares the limit, in the browser too.
    let resp = browser()
        .post(app.at("/register"))
        .form(&[
            ("email", unique_email().as_str()),
            ("password", "longenough"),
        ])
        .send()
        .await
        .unwrap();
    assert_eq!(resp.status(), 429);
    assert!(resp.headers().contains_key("retry-after"));
}

#[tokio::test]
async fn every_page_carries_the_security_headers() {
    let app = spawn_app().await;
    for path in [
        "/login",
        "/health",
        "/api/v1/keys/public-key",
        "/assets/app.css",
    ] {
        let resp = api_client().get(app.at(path)).send().await.unwrap();
        let h = resp.headers();
        let csp = h["content-security-policy"].to_str().unwrap();
        assert!(
            csp.contains("default-src 'self'") && csp.contains("frame-ancestors 'none'"),
            "{path}: {csp}"
        );
        assert!(!csp.contains("unsafe-inline"), "{path}: {csp}");
        assert_eq!(h["x-frame-options"], "DENY");
        assert_eq!(h["x-content-type-options"], "nosniff");
        assert!(h.contains_key("referrer-policy"));
    }
    let page = api_client()
        .get(app.at("/login"))
        .send()
        .await
        .unwrap()
        .text()
        .await
        .unwrap();
    assert!(
        !page.contains("<script>") && !page.contains(" style="),
        "no inline script or style"
    );
}

#[tokio::test]
async fn htmx_is_served_from_our_own_origin() {
    let app = spawn_app().await;
    let page = api_client()
        .get(app.at("/login"))
        .send()
        .await
        .unwrap()
        .text()
        .await
        .unwrap();
    assert!(page.contains(r#"src="/assets/htmx.min.js?v="#), "{page}");
    let resp = api_client()
        .get(app.at("/assets/htmx.min.js"))
        .send()
        .await
        .unwrap();
    assert_eq!(resp.status(), 200);
    assert!(
        resp.headers()["content-type"]
            .to_str()
            .unwrap()
            .starts_with("text/javascript")
    );
    assert!(resp.text().await.unwrap().contains("htmx"));
    assert_eq!(
        api_client()
            .get(app.at("/assets/nope.js"))
            .send()
            .await
            .unwrap()
            .status(),
        404
    );
}

#[tokio::test]
async fn health_and_ready_answer() {
    let app = spawn_app().await;
    let h: Value = api_client()
        .get(app.at("/health"))
        .send()
        .await
        .unwrap()
        .json()
        .await
        .unwrap();
    assert_eq!(h["status"], "ok");
    let r = api_client().get(app.at("/ready")).send().await.unwrap();
    assert_eq!(r.status(), 200);
}

#[tokio::test]
async fn first_start_creates_the_database_and_a_private_root_key() {
    let app = spawn_app().await;
    assert_eq!(
        app.data_dir.join("fmu-gateway.db").exists(),
        !crate::common::db::on_postgres()
    );
    let key = app.data_dir.join("biscuit-root.key");
    if crate::common::db::on_postgres() {
        // Every server of the deployment checks the others' keys: the first one stores the
        // root key in the database, not in its data directory. (The rest is SQLite's files.)
        assert!(!key.exists());
        let conn = app.state.store.conn().unwrap();
        let stored: String = conn
            .query_row(
                "SELECT value FROM service_secrets WHERE name = 'root_key'",
                [],
                |r| r.get(0),
            )
            .unwrap();
        assert_eq!(stored.len(), 64, "an ed25519 private key in hex");
        assert!(stored.chars().all(|c| c.is_ascii_hexdigit()));
        return;
    }
    use std::os::unix::fs::PermissionsExt;
    assert_eq!(
        std::fs::metadata(&key).unwrap().permissions().mode() & 0o777,
        0o600
    );
    let conn = app.state.store.conn().unwrap();
    let mode: String = conn
        .query_row("PRAGMA journal_mode", [], |r| r.get(0))
        .unwrap();
    assert_eq!(mode, "wal");
    let fk: i64 = conn
        .query_row("PRAGMA foreign_keys", [], |r| r.get(0))
        .unwrap();
    assert_eq!(fk, 1);
    let version: i64 = conn
        .query_row("PRAGMA user_version", [], |r| r.get(0))
        .unwrap();
    assert!(version >= 1);
}

/// The real binary: flags and env vars, then SIGTERM stops it cleanly.
#[tokio::test]
async fn the_binary_serves_with_its_flags_and_stops_cleanly_on_sigterm() {
    let dir = tempfile::tempdir().unwrap();
    let data = dir.path().join("d");
    let port = free_port();
    // --listen from the flag, the data directory from the environment.
    let command = Binary::command(port, &[("FMU_GATEWAY_DATA_DIR", data.to_str().unwrap())]);
    let mut server = Binary::spawn(command, port).await;
    assert!(
        data.join("fmu-gateway.db").exists(),
        "the data dir came from the env var"
    );
    let status = server.terminate(std::time::Duration::from_secs(10)).await;
    assert!(status.success(), "{status:?}");
}

/// The operator's command writes a ledger row the running service sees.
#[tokio::test]
async fn an_operator_can_grant_credits_from_the_command_line() {
    let app = spawn_app().await;
    let account = app.register().await;
    let out = std::process::Command::new(env!("CARGO_BIN_EXE_fmu-gateway"))
        .args([
            "admin",
            "grant-credits",
            "--email",
            &account.email.to_uppercase(),
            "--credits",
            "10",
            "--reason",
            "support ticket 7",
        ])
        .arg("--data-dir")
        .arg(&app.data_dir)
        .envs(crate::common::db::env(&app.data_dir))
        .output()
        .unwrap();
    assert!(
        out.status.success(),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
    assert!(String::from_utf8_lossy(&out.stdout).contains("balance is now 35"));
    let me = app.get_json("/api/v1/me", &account.api_key).await;
    assert_eq!(me["credits"], 35);
    let reason: String = app
        .state
        .store
        .conn()
        .unwrap()
        .query_row(
            "SELECT reason FROM credit_ledger ORDER BY id DESC LIMIT 1",
            [],
            |r| r.get(0),
        )
        .unwrap();
    assert_eq!(reason, "support ticket 7");

    let out = std::process::Command::new(env!("CARGO_BIN_EXE_fmu-gateway"))
        .args([
            "admin",
            "grant-credits",
            "--email",
            "nobody@example.com",
            "--credits",
            "10",
        ])
        .arg("--data-dir")
        .arg(&app.data_dir)
        .envs(crate::common::db::env(&app.data_dir))
        .output()
        .unwrap();
    assert!(!out.status.success());
    assert!(String::from_utf8_lossy(&out.stderr).contains("account not found"));
}
