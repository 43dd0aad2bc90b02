//! Every error is JSON `{code, message}`, including those the HTTP layer answers before our
//! code sees a request (hyper's 400/414/431) and the router's 405, which names the methods
//! the path has in `Allow`.

use std::time::Duration;

use serde_json::Value;
use tokio::io::{AsyncReadExt, AsyncWriteExt};

use crate::common::{api_client, spawn_app};

/// Sends `request` as is and reads the answer until the server closes: (status, head, body).
async fn raw(addr: &str, request: &[u8]) -> (u16, String, String) {
    let mut stream = tokio::net::TcpStream::connect(addr).await.unwrap();
    let _ = stream.write_all(request).await;
    let mut answer = Vec::new();
    let _ = tokio::time::timeout(Duration::from_secs(30), stream.read_to_end(&mut answer)).await;
    let text = String::from_utf8_lossy(&answer).to_string();
    let (head, body) = text
        .split_once("\r\n\r\n")
        .unwrap_or_else(|| panic!("no head in {text:?}"));
    let status = head.split_whitespace().nth(1).unwrap().parse().unwrap();
    (status, head.to_lowercase(), body.to_string())
}

fn error_code(head: &str, body: &str) -> String {
    assert!(
        head.contains("content-type: application/json"),
        "not JSON: {head}"
    );
    let body: Value = serde_json::from_str(body).unwrap_or_else(|e| panic!("{e}: {body:?}"));
    assert!(body["message"].as_str().is_some_and(|m| !m.is_empty()));
    body["code"].as_str().unwrap().to_string()
}

#[tokio::test]
async fn the_http_layers_own_refusals_are_json_errors_and_the_server_carries_on() {
    let app = spawn_app().await;
    let addr = app.addr.to_string();

    let long = format!(
        "GET /api/v1/me?q={} HTTP/1.1\r\nHost: x\r\n\r\n",
        "a".repeat(70_000)
    );
    let (status, head, body) = raw(&addr, long.as_bytes()).await;
    assert_eq!(status, 414);
    assert_eq!(error_code(&head, &body), "uri_too_long");

    let many: String = (0..120).map(|i| format!("X-H{i}: v\r\n")).collect();
    let request = format!("GET /api/v1/me HTTP/1.1\r\nHost: x\r\n{many}\r\n");
    let (status, head, body) = raw(&addr, request.as_bytes()).await;
    assert_eq!(status, 431);
    assert_eq!(error_code(&head, &body), "headers_too_large");

    let huge = format!(
        "GET /api/v1/me HTTP/1.1\r\nHost: x\r\nX-Big: {}\r\n\r\n",
        "b".repeat(600_000)
    );
    let (status, head, body) = raw(&addr, huge.as_bytes()).await;
    assert_eq!(status, 431);
    assert_eq!(error_code(&head, &body), "headers_too_large");

    let (status, head, body) =
        raw(&addr, b"GET /api/v1/me HTTP/1.1\r\nno colon here\r\n\r\n").await;
    assert_eq!(status, 400);
    assert_eq!(error_code(&head, &body), "invalid_request");

    // Our own answers pass through untouched, and the server still serves.
    let (status, head, body) = raw(
        &addr,
        b"GET /api/v1/me HTTP/1.1\r\nHost: x\r\nConnection: close\r\n\r\n",
    )
    .await;
    assert_eq!(status, 401);
    assert_eq!(error_code(&head, &body), "missing_api_key");
    let resp = api_client().get(app.at("/health")).send().await.unwrap();
    assert_eq!(resp.status(), 200);
}

#[tokio::test]
async fn a_method_the_path_does_not_have_is_405_with_allow() {
    let app = spawn_app().await;
    for (method, path, allow) in [
        ("PATCH", "/api/v1/runs", "GET, HEAD, POST"),
        ("TRACE", "/api/v1/me", "GET, HEAD"),
        ("PUT", "/api/v1/runs/run_x/cancel", "POST"),
        ("POST", "/api/v1/fmus/lib:BouncingBall", "GET, HEAD, DELETE"),
        ("DELETE", "/api/v1/keys/public-key", "GET, HEAD"),
    ] {
        let resp = api_client()
            .request(method.parse().unwrap(), app.at(path))
            .send()
            .await
            .unwrap();
        assert_eq!(resp.status(), 405, "{method} {path}");
        assert_eq!(
            resp.headers()["allow"].to_str().unwrap(),
            allow,
            "{method} {path}"
        );
        let body: Value = resp.json().await.unwrap();
        assert_eq!(body["code"], "method_not_allowed", "{method} {path}");
    }
}
