//! Hostile requests against the real binary: huge bodies behind made-up keys, login floods.
//! Each attack measures the server's memory (VmRSS / VmHWM from `/proc/<pid>/status`) while
//! it runs and asserts a stated bound.

use std::time::Duration;

use serde_json::{Value, json};
use tokio::io::{AsyncReadExt, AsyncWriteExt};

use crate::common::{Api, Binary, api_client, free_port, proc_kib};

/// Sends `POST path` announcing a `length`-byte JSON body with `headers`, then streams up to
/// that many bytes while reading the answer; returns the status line's code. Writing stops
/// as soon as the server answers or closes: a server that reads before it answers has to take
/// the whole body first.
async fn post_huge(addr: &str, path: &str, headers: &[(&str, &str)], length: u64) -> u16 {
    let stream = tokio::net::TcpStream::connect(addr).await.unwrap();
    let (mut rd, mut wr) = stream.into_split();
    let mut head = format!(
        "POST {path} HTTP/1.1\r\nHost: {addr}\r\nContent-Type: application/json\r\nContent-Length: {length}\r\n"
    );
    for (k, v) in headers {
        head.push_str(&format!("{k}: {v}\r\n"));
    }
    head.push_str("\r\n");
    let writer = tokio::spawn(async move {
        wr.write_all(head.as_bytes()).await?;
        // A JSON string that never ends: the parser cannot finish before the last byte.
        wr.write_all(b"{\"fmu_id\":\"").await?;
        let chunk = vec![b'a'; 256 * 1024];
        let mut sent = 11u64;
        while sent < length {
            let n = chunk.len().min((length - sent) as usize);
            wr.write_all(&chunk[..n]).await?;
            sent += n as u64;
        }
        Ok::<u64, std::io::Error>(sent)
    });
    let mut answer = Vec::new();
    let mut buf = [0u8; 4096];
    let read = tokio::time::timeout(Duration::from_secs(60), async {
        loop {
            match rd.read(&mut buf).await {
                Ok(0) | Err(_) => break,
                Ok(n) => {
                    answer.extend_from_slice(&buf[..n]);
                    if answer.windows(4).any(|w| w == b"\r\n\r\n") {
                        break;
                    }
                }
            }
        }
    })
    .await;
    writer.abort();
    assert!(read.is_ok(), "no answer within 60 s");
    let text = String::from_utf8_lossy(&answer);
    text.split_whitespace()
        .nth(1)
        .and_then(|c| c.parse().ok())
        .unwrap_or_else(|| panic!("no status line in {text:?}"))
}

const HUNDRED_MB: u64 = 100 << 20;

#[tokio::test]
async fn hundred_megabyte_bodies_behind_a_made_up_key_are_refused_unread() {
    let dir = tempfile::tempdir().unwrap();
    let port = free_port();
    let server = Binary::start(&dir.path().join("data"), port, &[]).await;
    let pid = server.child.id();
    let addr = format!("127.0.0.1:{port}");
    let before_rss = proc_kib(pid, "VmRSS");
    let before_hwm = proc_kib(pid, "VmHWM");

    // Ten at once, twice: a key route (the key is checked only after the body today), and the
    // compatibility routes that need no key at all.
    let started = std::time::Instant::now();
    let mut answers = Vec::new();
    for _ in 0..2 {
        let mut attacks = Vec::new();
        for i in 0..10 {
            let addr = addr.clone();
            attacks.push(tokio::spawn(async move {
                let (path, auth) = match i % 4 {
                    0 | 1 => ("/api/v1/runs", Some("Bearer made-up")),
                    2 => ("/register", None),
                    _ => ("/simulate", Some("Bearer fmugw_made-up")),
                };
                let headers: Vec<(&str, &str)> =
                    auth.map(|a| ("Authorization", a)).into_iter().collect();
                (path, post_huge(&addr, path, &headers, HUNDRED_MB).await)
            }));
        }
        for a in attacks {
            answers.push(a.await.unwrap());
        }
    }
    let elapsed = started.elapsed();
    let after_rss = proc_kib(pid, "VmRSS");
    let after_hwm = proc_kib(pid, "VmHWM");
    eprintln!(
        "20 x 100 MB bodies: VmRSS {before_rss} -> {after_rss} KiB, VmHWM {before_hwm} -> {after_hwm} KiB, {elapsed:?}"
    );
    for (path, status) in answers {
        let expected = if path == "/register" { 413 } else { 401 };
        assert_eq!(status, expected, "{path}");
    }
    // Bound: 16 MiB of peak growth for twenty attacks (buffering even one would be 100 MB).
    assert!(
        after_hwm.saturating_sub(before_hwm) < 16 * 1024,
        "the server's peak memory grew by {} KiB",
        after_hwm - before_hwm
    );
    // The server still serves.
    let health = api_client()
        .get(format!("{}/health", server.url))
        .send()
        .await
        .unwrap();
    assert_eq!(health.status(), 200);
}

#[tokio::test]
async fn fifty_concurrent_logins_keep_the_server_memory_bounded() {
    let dir = tempfile::tempdir().unwrap();
    let port = free_port();
    let server = Binary::start(
        &dir.path().join("data"),
        port,
        &[("FMU_GATEWAY_AUTH_RATE_PER_MINUTE", "100000")],
    )
    .await;
    let pid = server.child.id();
    let url = server.url.clone();
    let email = "flood@example.com";
    let reg = api_client()
        .post(format!("{url}/register"))
        .json(&json!({ "email": email, "password": "long enough password" }))
        .send()
        .await
        .unwrap();
    assert_eq!(reg.status(), 201);
    // One login first, so the one-off dummy hash and pools are part of the baseline.
    let warm = api_client()
        .post(format!("{url}/login"))
        .json(&json!({ "email": email, "password": "wrong password" }))
        .send()
        .await
        .unwrap();
    assert_eq!(warm.status(), 401);
    let before_hwm = proc_kib(pid, "VmHWM");
    let before_rss = proc_kib(pid, "VmRSS");

    let started = std::time::Instant::now();
    let mut logins = Vec::new();
    for i in 0..50 {
        let url = url.clone();
        logins.push(tokio::spawn(async move {
            let password = if i % 2 == 0 {
                "wrong password"
            } else {
                "long enough password"
            };
            let resp = api_client()
                .post(format!("{url}/login"))
                .json(&json!({ "email": email, "password": password }))
                .timeout(Duration::from_secs(120))
                .send()
                .await
                .unwrap();
            let status = resp.status().as_u16();
            let _: Value = resp.json().await.unwrap();
            (i, status)
        }));
    }
    for l in logins {
        let (i, status) = l.await.unwrap();
        assert_eq!(status, if i % 2 == 0 { 401 } else { 200 }, "login {i}");
    }
    let elapsed = started.elapsed();
    let after_hwm = proc_kib(pid, "VmHWM");
    let after_rss = proc_kib(pid, "VmRSS");
    eprintln!(
        "50 concurrent logins: VmRSS {before_rss} -> {after_rss} KiB, VmHWM {before_hwm} -> {after_hwm} KiB, {elapsed:?}"
    );
    // Bound: two hashes at a time (19 MiB each) plus slack; unbounded, fifty would be ~950 MiB.
    assert!(
        after_hwm.saturating_sub(before_hwm) < 64 * 1024,
        "the server's peak memory grew by {} KiB",
        after_hwm - before_hwm
    );
}

#[tokio::test]
async fn json_routes_take_small_bodies_and_upload_routes_large_ones() {
    let app = crate::common::spawn_app_with(|c| c.max_json_bytes = 4096).await;
    let account = app.register().await;
    let runs_before = app.count("runs", []);
    let big = json!({ "fmu_id": "lib:BouncingBall", "label": "x".repeat(8192) });

    // A valid key, a body over the JSON limit: 413 with our JSON error, nothing started.
    let resp = app.create_run(&account.api_key, &big).await;
    assert_eq!(resp.status(), 413);
    let body: Value = resp.json().await.unwrap();
    assert_eq!(body["code"], "payload_too_large");
    assert!(body["message"].as_str().unwrap().contains("4096"), "{body}");

    // The same body sent without a length (chunked) is cut off at the limit.
    let auth = format!("Bearer {}", account.api_key);
    let status = post_chunked(
        &app.addr.to_string(),
        "/api/v1/runs",
        &auth,
        &serde_json::to_vec(&big).unwrap(),
    )
    .await;
    assert_eq!(status, 413);
    assert_eq!(app.count("runs", []), runs_before, "no run was started");

    // A small chunked body still works (it is read up to the limit, then handled).
    let small =
        serde_json::to_vec(&json!({ "fmu_id": "lib:BouncingBall", "stop_time": 0.5 })).unwrap();
    let status = post_chunked(&app.addr.to_string(), "/api/v1/runs", &auth, &small).await;
    assert!((200..300).contains(&status), "{status}");

    // Forms and the keyless compatibility routes get the small limit too.
    let resp = api_client()
        .post(app.at("/register"))
        .json(&json!({ "email": "big@example.com", "name": "y".repeat(8192) }))
        .send()
        .await
        .unwrap();
    assert_eq!(resp.status(), 413);
    let resp = api_client()
        .post(app.at("/login"))
        .form(&[("email", "a@example.com"), ("password", &"p".repeat(8192))])
        .send()
        .await
        .unwrap();
    assert_eq!(resp.status(), 413);

    // An FMU upload, far larger than 4 KiB, goes through on an upload route.
    let fmu = crate::common::fresh_fmu("BouncingBall", "3.0", "large body");
    assert!(fmu.len() > 4096);
    let resp = app.upload_fmu(&account.api_key, fmu).await;
    assert_eq!(resp.status(), 201, "{}", resp.text().await.unwrap());
}

#[tokio::test]
async fn a_made_up_or_revoked_key_is_refused_before_the_body_is_read() {
    let app = crate::common::spawn_app().await;
    let account = app.register().await;
    // The body is not even JSON: a 400 would mean it was read.
    for key in ["made-up", "fmugw_En0KEwoEdXNlcg"] {
        let resp = api_client()
            .post(app.at("/api/v1/runs"))
            .bearer_auth(key)
            .header("Content-Type", "application/json")
            .body("{not json")
            .send()
            .await
            .unwrap();
        assert_eq!(resp.status(), 401, "{key}");
        let body: Value = resp.json().await.unwrap();
        assert_eq!(body["code"], "invalid_api_key");
    }
    let created: Value = app.create_key(&account.api_key, "soon gone").await;
    let doomed = created["api_key"].as_str().unwrap().to_string();
    let id = created["key"]["id"].as_str().unwrap();
    let revoked = app
        .post(&format!("/api/v1/keys/{id}/revoke"), &account.api_key)
        .await;
    assert!(revoked.status().is_success());
    let resp = api_client()
        .post(app.at("/api/v1/runs"))
        .bearer_auth(&doomed)
        .header("Content-Type", "application/json")
        .body("{not json")
        .send()
        .await
        .unwrap();
    assert_eq!(resp.status(), 401);
    let body: Value = resp.json().await.unwrap();
    assert_eq!(body["code"], "revoked_api_key");
    // The live key, and a token attenuated from it (its checks need the request's facts,
    // which the early check does not have), get as far as the body.
    let public = crate::keys::public_key(&app).await;
    let attenuated = crate::keys::attenuate(
        &account.api_key,
        public,
        biscuit_auth::macros::block!(r#"check if operation("simulate");"#),
    );
    for key in [account.api_key.as_str(), attenuated.as_str()] {
        let resp = api_client()
            .post(app.at("/api/v1/runs"))
            .bearer_auth(key)
            .header("Content-Type", "application/json")
            .body("{not json")
            .send()
            .await
            .unwrap();
        assert_eq!(resp.status(), 400);
    }
    // And the attenuated token is still held to its checks once the body is read.
    let resp = app
        .post_json("/api/v1/keys", &attenuated, &json!({ "label": "x" }))
        .await;
    assert_eq!(resp.status(), 403);
}

/// Sends a JSON body in 1 KiB chunks without a `Content-Length`; returns the status code.
async fn post_chunked(addr: &str, path: &str, authorization: &str, body: &[u8]) -> u16 {
    let mut stream = tokio::net::TcpStream::connect(addr).await.unwrap();
    let mut out = format!(
        "POST {path} HTTP/1.1\r\nHost: {addr}\r\nContent-Type: application/json\r\nAuthorization: {authorization}\r\nTransfer-Encoding: chunked\r\nConnection: close\r\n\r\n"
    )
    .into_bytes();
    for chunk in body.chunks(1024) {
        out.extend_from_slice(format!("{:x}\r\n", chunk.len()).as_bytes());
        out.extend_from_slice(chunk);
        out.extend_from_slice(b"\r\n");
    }
    out.extend_from_slice(b"0\r\n\r\n");
    // The server may answer and close before it has everything; that is fine.
    let _ = stream.write_all(&out).await;
    let mut answer = Vec::new();
    let _ = tokio::time::timeout(Duration::from_secs(30), stream.read_to_end(&mut answer)).await;
    let text = String::from_utf8_lossy(&answer);
    text.split_whitespace()
        .nth(1)
        .and_then(|c| c.parse().ok())
        .unwrap_or_else(|| panic!("no status line in {text:?}"))
}

#[tokio::test]
async fn offsets_beyond_what_a_list_can_hold_are_a_400_naming_offset() {
    let app = crate::common::spawn_app().await;
    let account = app.register().await;
    for path in ["/api/v1/usage", "/api/v1/runs", "/usage/"] {
        // Just past the bound (10¹⁵), 2⁶³ (past SQLite's i64), and -1 sent as unsigned.
        for offset in [
            "1000000000000001",
            "9223372036854775808",
            &u64::MAX.to_string(),
        ] {
            let resp = app
                .get(&format!("{path}?offset={offset}"), &account.api_key)
                .await;
            assert_eq!(resp.status(), 400, "{path}?offset={offset}");
            let body: Value = resp.json().await.unwrap();
            assert_eq!(body["problems"][0]["field"], "offset", "{body}");
        }
        // Within range but past the end: the correct, empty page.
        let resp = app
            .get(&format!("{path}?offset=1000000000000000"), &account.api_key)
            .await;
        assert_eq!(resp.status(), 200, "{path}");
        let body: Value = resp.json().await.unwrap();
        let items = body.get("items").unwrap_or(&body);
        assert_eq!(items.as_array().unwrap().len(), 0, "{path}: {body}");
    }
    // The dashboard's page number is multiplied into an offset: no overflow.
    let client = crate::common::browser();
    app.browser_login(&client, &account).await;
    let resp = client
        .get(app.at(&format!("/usage?page={}", u64::MAX)))
        .send()
        .await
        .unwrap();
    assert!(resp.status().is_client_error(), "{}", resp.status());
}

/// A request with a key header and a session cookie is the key's alone: the cookie is
/// ignored, so the key header cannot be used to skip CSRF while keeping the session.
#[tokio::test]
async fn a_key_header_on_a_cookie_request_uses_the_key_and_ignores_the_session() {
    let app = crate::common::spawn_app().await;
    let alice = app.register().await;
    let bob = app.register().await;
    let client = crate::common::browser();
    app.browser_login(&client, &alice).await;
    let keys_of = |user_id: &str| app.count("api_keys WHERE user_id = ?1", [user_id]);
    let (alice_keys, bob_keys) = (keys_of(&alice.user_id), keys_of(&bob.user_id));

    // Direction 1: a session-only form with Alice's cookie, a key header and no CSRF token
    // is not Alice's session: nothing is created for her (nor for the key's owner).
    for key in [bob.api_key.as_str(), alice.api_key.as_str(), "made-up"] {
        let resp = client
            .post(app.at("/api-keys"))
            .header("X-API-Key", key)
            .form(&[("label", "forged")])
            .send()
            .await
            .unwrap();
        assert_ne!(resp.status(), 201, "{key}");
        assert!(!resp.status().is_success(), "{}", resp.status());
    }
    assert_eq!(keys_of(&alice.user_id), alice_keys);
    assert_eq!(keys_of(&bob.user_id), bob_keys);

    // Direction 2: a compatibility route that takes a key or a session acts for the key's
    // owner, not the cookie's.
    let resp = client
        .post(app.at("/api_keys/new"))
        .header("X-API-Key", &bob.api_key)
        .json(&json!({ "label": "bob's" }))
        .send()
        .await
        .unwrap();
    assert_eq!(resp.status(), 201);
    assert_eq!(keys_of(&bob.user_id), bob_keys + 1);
    assert_eq!(keys_of(&alice.user_id), alice_keys);
    let listed: Value = client
        .get(app.at("/api_keys/"))
        .header("X-API-Key", &bob.api_key)
        .send()
        .await
        .unwrap()
        .json()
        .await
        .unwrap();
    assert!(
        listed
            .as_array()
            .unwrap()
            .iter()
            .any(|k| k["label"] == "bob's"),
        "the list is Bob's: {listed}"
    );
    // A bad key with a good cookie is a 401, not a fallback to the session.
    let resp = client
        .get(app.at("/usage/"))
        .header("X-API-Key", "made-up")
        .send()
        .await
        .unwrap();
    assert_eq!(resp.status(), 401);
    // Without the header, the cookie is Alice's session as before.
    let page = client.get(app.at("/api-keys")).send().await.unwrap();
    assert_eq!(page.status(), 200);
}

/// `POST /register` (JSON) from `ip` (behind a trusted proxy, as on Fly.io).
async fn register_from(url: &str, ip: &str) -> reqwest::Response {
    api_client()
        .post(format!("{url}/register"))
        .header("Fly-Client-IP", ip)
        .json(&json!({
            "email": crate::common::unique_email(),
            "password": "long enough password"
        }))
        .send()
        .await
        .unwrap()
}

async fn login_from(url: &str, ip: &str) -> u16 {
    api_client()
        .post(format!("{url}/login"))
        .header("Fly-Client-IP", ip)
        .json(&json!({ "email": "nobody@example.com", "password": "wrong password" }))
        .send()
        .await
        .unwrap()
        .status()
        .as_u16()
}

#[tokio::test]
async fn login_limits_count_an_ipv6_64_as_one_client() {
    let dir = tempfile::tempdir().unwrap();
    let server = Binary::start(
        &dir.path().join("data"),
        free_port(),
        &[
            ("FMU_GATEWAY_TRUST_PROXY", "true"),
            ("FMU_GATEWAY_AUTH_RATE_PER_MINUTE", "3"),
        ],
    )
    .await;
    // Three addresses of one /64 use up its allowance; a fourth is refused.
    for ip in ["2001:db8:5:6::1", "2001:db8:5:6::2", "2001:db8:5:6:ffff::3"] {
        assert_eq!(login_from(&server.url, ip).await, 401, "{ip}");
    }
    assert_eq!(login_from(&server.url, "2001:db8:5:6:abcd::99").await, 429);
    // The next /64, and IPv4 clients, have their own.
    assert_eq!(login_from(&server.url, "2001:db8:5:7::1").await, 401);
    for _ in 0..3 {
        assert_eq!(login_from(&server.url, "192.0.2.10").await, 401);
    }
    assert_eq!(login_from(&server.url, "192.0.2.10").await, 429);
    assert_eq!(login_from(&server.url, "192.0.2.11").await, 401);
}

#[tokio::test]
async fn sign_ups_have_a_service_wide_hourly_limit() {
    let dir = tempfile::tempdir().unwrap();
    let data = dir.path().join("data");
    let server = Binary::start(
        &data,
        free_port(),
        &[
            ("FMU_GATEWAY_TRUST_PROXY", "true"),
            ("FMU_GATEWAY_SIGNUPS_PER_HOUR", "3"),
        ],
    )
    .await;
    // Every sign-up from another network: only the service-wide limit applies.
    for i in 0..3 {
        let resp = register_from(&server.url, &format!("198.51.100.{i}")).await;
        assert_eq!(resp.status(), 201);
    }
    let resp = register_from(&server.url, "203.0.113.50").await;
    assert_eq!(resp.status(), 429);
    let retry: u64 = resp.headers()["retry-after"]
        .to_str()
        .unwrap()
        .parse()
        .unwrap();
    assert!((1..=1200).contains(&retry), "{retry}");
    let err: Value = resp.json().await.unwrap();
    assert_eq!(err["code"], "rate_limited");
    // Nothing was created by the refused one.
    let conn = crate::common::db::open(&data).await.conn().unwrap();
    let users: i64 = conn
        .query_row("SELECT COUNT(*) FROM users", [], |r| r.get(0))
        .unwrap();
    assert_eq!(users, 3);
    // Logins are not sign-ups.
    assert_eq!(login_from(&server.url, "203.0.113.50").await, 401);
}

#[tokio::test]
async fn free_credits_go_to_a_few_accounts_per_network_per_day() {
    let dir = tempfile::tempdir().unwrap();
    let server = Binary::start(
        &dir.path().join("data"),
        free_port(),
        &[
            ("FMU_GATEWAY_TRUST_PROXY", "true"),
            ("FMU_GATEWAY_FREE_CREDITS", "25"),
            ("FMU_GATEWAY_FREE_GRANTS_PER_ADDRESS_PER_DAY", "2"),
        ],
    )
    .await;
    let mut credits = Vec::new();
    for ip in ["2001:db8:9:9::1", "2001:db8:9:9::2", "2001:db8:9:9::3"] {
        let resp = register_from(&server.url, ip).await;
        assert_eq!(resp.status(), 201);
        let body: Value = resp.json().await.unwrap();
        credits.push((body["credits"].as_i64().unwrap(), body["notice"].clone()));
    }
    assert_eq!(credits[0], (25, Value::Null));
    assert_eq!(credits[1], (25, Value::Null));
    assert_eq!(credits[2].0, 0, "the third account from the /64 gets none");
    let notice = credits[2].1.as_str().unwrap();
    assert!(notice.contains("without the 25 free credits"), "{notice}");
    // Another network still gets them.
    let body: Value = register_from(&server.url, "2001:db8:9:a::1")
        .await
        .json()
        .await
        .unwrap();
    assert_eq!(body["credits"], 25);
    // The sign-up form says so too, and logs the user in.
    let client = crate::common::browser();
    let resp = client
        .post(format!("{}/register", server.url))
        .header("Fly-Client-IP", "2001:db8:9:9::4")
        .form(&[
            ("email", crate::common::unique_email().as_str()),
            ("password", "long enough password"),
        ])
        .send()
        .await
        .unwrap();
    assert_eq!(resp.status(), 201);
    let page = resp.text().await.unwrap();
    assert!(page.contains("without the 25 free credits"), "{page}");
    let dashboard = client
        .get(format!("{}/dashboard", server.url))
        .send()
        .await
        .unwrap();
    assert_eq!(dashboard.status(), 200, "the new account is logged in");
}

#[tokio::test]
async fn counts_over_their_maximum_are_refused_naming_the_field_and_cost_nothing() {
    let app = crate::common::spawn_app().await;
    let account = app.register().await;
    let credits = app.balance(&account.api_key).await;
    let runs = app.count("runs", []);
    let many = |n: usize| (0..n).map(|i| format!("v{i}")).collect::<Vec<_>>();
    let start_values: serde_json::Map<String, Value> =
        many(1001).into_iter().map(|n| (n, json!(1))).collect();
    // Counts the spec states (maxItems, maxProperties) are 400; the limits it cannot state
    // (samples over all signals, a name's length) are 422.
    let cases = [
        (json!({ "outputs": many(1001) }), "outputs", 400),
        (json!({ "start_values": start_values }), "start_values", 400),
        (
            json!({ "inputs": (0..101).map(|i| json!({ "name": format!("u{i}"), "t": [0], "u": [0] })).collect::<Vec<_>>() }),
            "inputs",
            400,
        ),
        (
            json!({ "inputs": [{ "name": "u", "t": vec![0; 100_001], "u": vec![0; 100_001] }] }),
            "inputs",
            422,
        ),
        (json!({ "outputs": ["h".repeat(1025)] }), "outputs", 422),
    ];
    for (extra, field, status) in cases {
        let mut body = json!({ "fmu_id": "lib:BouncingBall" });
        body.as_object_mut()
            .unwrap()
            .extend(extra.as_object().unwrap().clone());
        let resp = app.create_run(&account.api_key, &body).await;
        assert_eq!(resp.status(), status, "{field}");
        let err: Value = resp.json().await.unwrap();
        let problems = err["problems"].as_array().unwrap();
        assert_eq!(problems.len(), 1, "one problem, not one per entry: {err}");
        assert_eq!(problems[0]["field"], field, "{err}");
    }
    assert_eq!(app.balance(&account.api_key).await, credits);
    assert_eq!(app.count("runs", []), runs);
}

fn long_run() -> Value {
    json!({ "fmu_id": "lib:VanDerPol", "stop_time": 1000000.0, "output_interval": 1.0 })
}

async fn start_run(app: &crate::common::TestApp, key: &str) -> reqwest::Response {
    app.create_run(key, &long_run()).await
}

#[tokio::test]
async fn one_user_may_have_only_so_many_runs_queued_or_running_over_all_keys() {
    let app = crate::common::spawn_app_with(|c| {
        c.max_active_runs_per_user = 2;
        c.workers = 1;
        c.sync_wait = Duration::ZERO;
    })
    .await;
    let account = app.register().await;
    let second_key: Value = app.create_key(&account.api_key, "second").await;
    let second_key = second_key["api_key"].as_str().unwrap().to_string();

    // One run per key: the cap (2) is reached.
    let mut ids = Vec::new();
    for key in [&account.api_key, &second_key] {
        let resp = start_run(&app, key).await;
        assert_eq!(resp.status(), 202);
        let run: Value = resp.json().await.unwrap();
        ids.push(run["id"].as_str().unwrap().to_string());
    }
    let credits = app.balance(&account.api_key).await;
    let runs = app.count("runs", []);

    // A third from either key is refused with Retry-After, and moves no credits.
    for key in [&account.api_key, &second_key] {
        let resp = start_run(&app, key).await;
        assert_eq!(resp.status(), 429);
        let retry: u64 = resp.headers()["retry-after"]
            .to_str()
            .unwrap()
            .parse()
            .unwrap();
        assert!(retry >= 1);
        let err: Value = resp.json().await.unwrap();
        assert_eq!(err["code"], "too_many_active_runs");
        assert!(err["message"].as_str().unwrap().contains('2'), "{err}");
    }
    // The dashboard is the same user: refused too.
    let client = crate::common::browser();
    let csrf = app.browser_login(&client, &account).await;
    let resp = client
        .post(app.at("/runs"))
        .form(&[
            ("fmu", "lib:VanDerPol"),
            ("stop_time", "1000000"),
            ("output_interval", "1"),
            ("csrf_token", csrf.as_str()),
        ])
        .send()
        .await
        .unwrap();
    assert_eq!(resp.status(), 429);
    assert_eq!(app.balance(&account.api_key).await, credits);
    assert_eq!(app.count("runs", []), runs);

    // Someone else is not held up by this user.
    let other = app.register().await;
    let resp = start_run(&app, &other.api_key).await;
    assert_eq!(resp.status(), 202);
    let other_run: Value = resp.json().await.unwrap();

    // When one of the user's runs ends, they may start another.
    let cancel = |id: String, key: String| {
        let app = &app;
        async move {
            let resp = app.post(&format!("/api/v1/runs/{id}/cancel"), &key).await;
            assert!(resp.status().is_success(), "{}", resp.status());
        }
    };
    cancel(ids.remove(0), account.api_key.clone()).await;
    let mut started = None;
    for _ in 0..100 {
        let resp = start_run(&app, &second_key).await;
        if resp.status() == 202 {
            started = Some(resp.json::<Value>().await.unwrap());
            break;
        }
        assert_eq!(resp.status(), 429);
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
    let started = started.expect("a run was accepted once one had ended");
    for (id, key) in [
        (ids.remove(0), account.api_key.clone()),
        (
            started["id"].as_str().unwrap().to_string(),
            account.api_key.clone(),
        ),
        (
            other_run["id"].as_str().unwrap().to_string(),
            other.api_key.clone(),
        ),
    ] {
        cancel(id, key).await;
    }
}

/// The upload form keeps its CSRF token out of the URL (logs keep URLs): it is the form's
/// first field, checked before the file is read.
#[tokio::test]
async fn the_upload_form_carries_its_token_in_the_body_not_the_url() {
    let app = crate::common::spawn_app().await;
    let account = app.register().await;
    let uploads_of = |user_id: &str| app.count("fmu_owners WHERE user_id = ?1", [user_id]);
    let client = crate::common::browser();
    let csrf = app.browser_login(&client, &account).await;
    let page = client
        .get(app.at("/library"))
        .header("Accept", "text/html")
        .send()
        .await
        .unwrap()
        .text()
        .await
        .unwrap();
    assert!(!page.contains("?csrf_token="), "no token in a URL");
    let form = &page[page.find("enctype=\"multipart/form-data\"").unwrap()..];
    let form = &form[..form.find("</form>").unwrap()];
    assert!(
        form.find("name=\"csrf_token\"").unwrap() < form.find("name=\"file\"").unwrap(),
        "the token comes before the file: {form}"
    );

    let fmu = |note: &str| {
        reqwest::multipart::Part::bytes(crate::common::fresh_fmu("Integrator", "3.0", note))
            .file_name("mine.fmu")
    };
    let post = |form: reqwest::multipart::Form, url: String| {
        let client = client.clone();
        async move {
            client
                .post(url)
                .multipart(form)
                .send()
                .await
                .unwrap()
                .status()
                .as_u16()
        }
    };
    use reqwest::multipart::Form;
    // Refused: the token only in the URL, after the file, wrong, or missing.
    let refused = [
        (
            Form::new().part("file", fmu("url")),
            app.at(&format!("/library?csrf_token={csrf}")),
        ),
        (
            Form::new()
                .part("file", fmu("after"))
                .text("csrf_token", csrf.clone()),
            app.at("/library"),
        ),
        (
            Form::new()
                .text("csrf_token", "0".repeat(64))
                .part("file", fmu("wrong")),
            app.at("/library"),
        ),
        (Form::new().part("file", fmu("none")), app.at("/library")),
    ];
    for (form, url) in refused {
        assert_eq!(post(form, url.clone()).await, 403, "{url}");
    }
    assert_eq!(uploads_of(&account.user_id), 0);
    // Elsewhere a multipart post with only the cookie still needs the header.
    let form = Form::new()
        .text("csrf_token", csrf.clone())
        .part("file", fmu("compat"));
    assert_eq!(post(form, app.at("/fmus")).await, 403);
    assert_eq!(uploads_of(&account.user_id), 0);

    // Accepted: the token first, in the body; or (htmx) in the header.
    let form = Form::new()
        .text("csrf_token", csrf.clone())
        .part("file", fmu("body"));
    assert_eq!(post(form, app.at("/library")).await, 303);
    let resp = client
        .post(app.at("/library"))
        .header("HX-Request", "true")
        .header("X-CSRF-Token", &csrf)
        .multipart(Form::new().part("file", fmu("header")))
        .send()
        .await
        .unwrap();
    assert_eq!(resp.status(), 201);
    assert_eq!(uploads_of(&account.user_id), 2);
}
