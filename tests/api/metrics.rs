//! `/metrics`: Prometheus text with what an operator needs, readable by this machine or with
//! the metrics token, never by a client a proxy forwards.

use serde_json::json;

use crate::common::{Api, api_client, spawn_app_with};

/// The value of the sample line starting with `series` (name and labels, exactly).
fn sample(text: &str, series: &str) -> Option<f64> {
    text.lines()
        .find_map(|l| l.strip_prefix(series)?.strip_prefix(' '))
        .and_then(|v| v.trim().parse().ok())
}

#[tokio::test]
async fn metrics_count_requests_and_runs_and_read_the_pool_and_the_sandbox() {
    let app = spawn_app_with(|c| c.metrics_token = Some("scrape-secret".into())).await;
    let account = app.register().await;
    for stop_time in [1.0, -1.0] {
        app.create_run(
            &account.api_key,
            &json!({"fmu_id": "lib:Dahlquist", "stop_time": stop_time}),
        )
        .await;
    }
    // The run's answer can reach us a moment before its settlement is counted.
    let mut text = String::new();
    for _ in 0..100 {
        let resp = api_client().get(app.at("/metrics")).send().await.unwrap();
        assert_eq!(resp.status(), 200);
        assert!(
            resp.headers()["content-type"]
                .to_str()
                .unwrap()
                .starts_with("application/openmetrics-text")
        );
        text = resp.text().await.unwrap();
        if text.contains("runs_finished_total") {
            break;
        }
        tokio::time::sleep(std::time::Duration::from_millis(20)).await;
    }
    assert_eq!(
        sample(
            &text,
            r#"fmu_gateway_http_requests_total{method="POST",route="/api/v1/runs",status="201"}"#
        ),
        Some(1.0),
        "{text}"
    );
    assert_eq!(
        sample(
            &text,
            r#"fmu_gateway_http_requests_total{method="POST",route="/api/v1/runs",status="422"}"#
        ),
        Some(1.0),
        "the refused run is counted by its status: {text}"
    );
    assert_eq!(
        sample(
            &text,
            r#"fmu_gateway_runs_finished_total{outcome="succeeded"}"#
        ),
        Some(1.0),
        "{text}"
    );
    assert_eq!(sample(&text, "fmu_gateway_runs_queued"), Some(0.0));
    assert_eq!(sample(&text, "fmu_gateway_workers_busy"), Some(0.0));
    assert_eq!(
        sample(&text, r#"fmu_gateway_sandbox_layer{layer="seccomp"}"#),
        Some(1.0),
        "{text}"
    );
    assert!(sample(&text, "fmu_gateway_db_checkouts_total").unwrap() > 0.0);
    assert!(sample(&text, "fmu_gateway_db_checkout_wait_seconds_total").is_some());
    assert!(sample(&text, "fmu_gateway_disk_free_bytes").unwrap() > 0.0);
    assert!(text.trim_end().ends_with("# EOF"));

    // Through a proxy, the peer is loopback but the client is not: the token is needed.
    let forwarded = api_client()
        .get(app.at("/metrics"))
        .header("X-Forwarded-For", "203.0.113.9")
        .send()
        .await
        .unwrap();
    assert_eq!(forwarded.status(), 403);
    let wrong = api_client()
        .get(app.at("/metrics"))
        .header("X-Forwarded-For", "203.0.113.9")
        .bearer_auth("scrape-secreT")
        .send()
        .await
        .unwrap();
    assert_eq!(wrong.status(), 403);
    let scraper = api_client()
        .get(app.at("/metrics"))
        .header("X-Forwarded-For", "203.0.113.9")
        .bearer_auth("scrape-secret")
        .send()
        .await
        .unwrap();
    assert_eq!(scraper.status(), 200);
}
