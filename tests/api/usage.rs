//! Usage: paging, sorting, filtering, CSV export, the HTML table, the compatibility routes.

use serde_json::Value;

use crate::common::{Api, TestApp, api_client, browser, page_text, spawn_app};

const T0: i64 = 1_780_000_000_000; // 2026-05-28

/// 30 rows: fmu names cycle through three models, credits 1..=30, times one minute apart,
/// the first 10 made with `key`.
async fn seed(app: &TestApp, user_id: &str, key: &str) {
    for i in 0..30i64 {
        let fmu = ["BouncingBall", "VanDerPol", "Dahlquist"][(i % 3) as usize];
        let key = (i < 10).then_some(key);
        app.record_usage(user_id, fmu, i + 1, key, T0 + i * 60_000)
            .await;
    }
}

async fn first_key_id(app: &TestApp, api_key: &str) -> String {
    let keys = app.get_json("/api/v1/keys", api_key).await;
    keys[0]["id"].as_str().unwrap().to_string()
}

async fn list(app: &TestApp, key: &str, query: &str) -> Value {
    let resp = app.get(&format!("/api/v1/usage?{query}"), key).await;
    assert_eq!(resp.status(), 200, "{query}");
    resp.json().await.unwrap()
}

fn credits(page: &Value) -> Vec<i64> {
    page["items"]
        .as_array()
        .unwrap()
        .iter()
        .map(|i| i["credits"].as_i64().unwrap())
        .collect()
}

#[tokio::test]
async fn usage_pages_sort_and_filter() {
    let app = spawn_app().await;
    let account = app.register().await;
    let key_id = first_key_id(&app, &account.api_key).await;
    seed(&app, &account.user_id, &key_id).await;

    let page = list(&app, &account.api_key, "limit=7").await;
    assert_eq!(page["total"], 30);
    assert_eq!(
        credits(&page),
        (24..=30).rev().collect::<Vec<_>>(),
        "newest first by default"
    );
    let page = list(&app, &account.api_key, "limit=7&offset=28").await;
    assert_eq!(credits(&page), vec![2, 1]);
    let page = list(&app, &account.api_key, "limit=3&sort=credits&order=asc").await;
    assert_eq!(credits(&page), vec![1, 2, 3]);
    let page = list(&app, &account.api_key, "limit=30&sort=fmu_name&order=asc").await;
    let names: Vec<&str> = page["items"]
        .as_array()
        .unwrap()
        .iter()
        .map(|i| i["fmu_name"].as_str().unwrap())
        .collect();
    let mut sorted = names.clone();
    sorted.sort();
    assert_eq!(names, sorted);
    let page = list(
        &app,
        &account.api_key,
        &format!("api_key_id={key_id}&limit=100"),
    )
    .await;
    assert_eq!(page["total"], 10);
    assert!(
        page["items"]
            .as_array()
            .unwrap()
            .iter()
            .all(|i| i["api_key_id"] == key_id.as_str())
    );
    let first = &page["items"][0];
    assert_eq!(
        first["date"], "2026-05-28T20:35:40Z",
        "the newest of the key's rows (the 10th minute)"
    );

    for bad in [
        "limit=0",
        "limit=501",
        "sort=password",
        "order=sideways",
        "offset=-1",
    ] {
        let resp = app
            .get(&format!("/api/v1/usage?{bad}"), &account.api_key)
            .await;
        assert_eq!(resp.status(), 400, "{bad}");
        let err: Value = resp.json().await.unwrap();
        assert_eq!(err["code"], "invalid_request", "{bad}");
    }
}

#[tokio::test]
async fn usage_is_private_to_its_owner() {
    let app = spawn_app().await;
    let alice = app.register().await;
    let bob = app.register().await;
    app.record_usage(&alice.user_id, "Secret", 5, None, T0)
        .await;
    let page = list(&app, &bob.api_key, "").await;
    assert_eq!(page["total"], 0);
    let csv = app
        .get("/usage/export", &bob.api_key)
        .await
        .text()
        .await
        .unwrap();
    assert!(!csv.contains("Secret"));
}

#[tokio::test]
async fn the_csv_export_has_every_row_and_the_documented_header() {
    let app = spawn_app().await;
    let account = app.register().await;
    let key_id = first_key_id(&app, &account.api_key).await;
    app.record_usage(
        &account.user_id,
        "Name, with \"quotes\"",
        2,
        Some(&key_id),
        T0,
    )
    .await;
    // Enough rows to span several chunks of the stream.
    for i in 0..2_000 {
        app.record_usage(
            &account.user_id,
            "BouncingBall",
            i % 7,
            None,
            T0 + 1_000 + i,
        )
        .await;
    }
    let resp = api_client()
        .get(app.at("/usage/export"))
        .header("X-API-Key", &account.api_key)
        .send()
        .await
        .unwrap();
    assert_eq!(resp.status(), 200);
    assert!(
        resp.headers()["content-type"]
            .to_str()
            .unwrap()
            .starts_with("text/csv")
    );
    assert!(
        resp.headers()["content-disposition"]
            .to_str()
            .unwrap()
            .contains("attachment")
    );
    let body = resp.text().await.unwrap();
    let mut reader = csv::Reader::from_reader(body.as_bytes());
    assert_eq!(
        reader.headers().unwrap(),
        vec!["Date", "FMU Name", "Credits Used", "API Key ID"]
    );
    let rows: Vec<csv::StringRecord> = reader.records().map(Result::unwrap).collect();
    assert_eq!(rows.len(), 2_001);
    let total: i64 = rows.iter().map(|r| r[2].parse::<i64>().unwrap()).sum();
    let expected: i64 = 2 + (0..2_000).map(|i| i % 7).sum::<i64>();
    assert_eq!(total, expected);
    let quoted = rows.iter().find(|r| r[1].starts_with("Name")).unwrap();
    assert_eq!(&quoted[1], "Name, with \"quotes\"");
    assert_eq!(&quoted[3], key_id.as_str());
    assert_eq!(&quoted[0], "2026-05-28T20:26:40Z");
}

#[tokio::test]
async fn the_dashboard_export_link_works_with_the_session() {
    let app = spawn_app().await;
    let account = app.register().await;
    app.record_usage(&account.user_id, "VanDerPol", 3, None, T0)
        .await;
    let client = browser();
    app.browser_login(&client, &account).await;
    let csv = page_text(&client, app.at("/usage/export")).await;
    assert_eq!(csv.lines().count(), 2);
    assert!(csv.contains("VanDerPol,3,"));
    assert_eq!(
        api_client()
            .get(app.at("/usage/export"))
            .send()
            .await
            .unwrap()
            .status(),
        401
    );
}

#[tokio::test]
async fn the_usage_page_sorts_pages_and_answers_htmx_with_the_fragment() {
    let app = spawn_app().await;
    let account = app.register().await;
    let key_id = first_key_id(&app, &account.api_key).await;
    seed(&app, &account.user_id, &key_id).await;
    let client = browser();
    app.browser_login(&client, &account).await;

    let full = page_text(&client, app.at("/usage?sort=credits&order=asc")).await;
    assert!(full.contains("<html"), "a plain request gets the page");
    assert!(full.contains("Page 1 of 2"));
    let first_row_credit = |html: &str| -> i64 {
        let start = html.find("<tbody>").unwrap();
        let cell = &html[start..];
        let at = cell.find("<td class=\"num\">").unwrap() + "<td class=\"num\">".len();
        cell[at..].split('<').next().unwrap().parse().unwrap()
    };
    assert_eq!(first_row_credit(&full), 1);

    let resp = client
        .get(app.at("/usage?sort=credits&order=desc&page=1"))
        .header("HX-Request", "true")
        .send()
        .await
        .unwrap();
    assert_eq!(resp.headers()["vary"], "HX-Request");
    let fragment = resp.text().await.unwrap();
    assert!(!fragment.contains("<html"), "htmx gets just the table");
    assert_eq!(first_row_credit(&fragment), 30);
    assert!(fragment.contains(r#"aria-sort="descending""#));
    // The header link toggles the order and is followed in place, pushing the URL.
    assert!(
        fragment.contains(r#"hx-get="/usage?sort=credits&amp;order=asc&amp;page=1""#),
        "{fragment}"
    );
    assert!(fragment.contains(r#"hx-push-url="true""#));

    let page2 = client
        .get(app.at("/usage?sort=credits&order=desc&page=2"))
        .header("HX-Request", "true")
        .send()
        .await
        .unwrap()
        .text()
        .await
        .unwrap();
    assert_eq!(first_row_credit(&page2), 5);
    assert!(page2.contains("Page 2 of 2"));

    // History restore asks for the whole page.
    let restore = client
        .get(app.at("/usage?sort=credits&order=desc"))
        .header("HX-Request", "true")
        .header("HX-History-Restore-Request", "true")
        .send()
        .await
        .unwrap()
        .text()
        .await
        .unwrap();
    assert!(restore.contains("<html"));

    let filtered = client
        .get(app.at(&format!("/usage?key={key_id}")))
        .header("HX-Request", "true")
        .send()
        .await
        .unwrap()
        .text()
        .await
        .unwrap();
    assert!(filtered.contains("10 rows"), "{filtered}");
}

#[tokio::test]
async fn the_compatibility_usage_routes_keep_their_shapes() {
    let app = spawn_app().await;
    let account = app.register().await;
    let key_id = first_key_id(&app, &account.api_key).await;
    seed(&app, &account.user_id, &key_id).await;
    let list: Value = api_client()
        .get(app.at("/usage/"))
        .header("X-API-Key", &account.api_key)
        .send()
        .await
        .unwrap()
        .json()
        .await
        .unwrap();
    assert_eq!(list.as_array().unwrap().len(), 30);
    let first = &list[0];
    for field in ["date", "fmu_name"] {
        assert!(first[field].is_string(), "{field} in {first}");
    }
    assert_eq!(first["credits_used"], 30);
    let recent = app.get_json("/usage/recent", &account.api_key).await;
    assert_eq!(recent.as_array().unwrap().len(), 10);
    assert_eq!(recent[0]["credits_used"], 30);
}

#[tokio::test]
async fn the_keys_page_counts_runs_per_key() {
    let app = spawn_app().await;
    let account = app.register().await;
    let key_id = first_key_id(&app, &account.api_key).await;
    seed(&app, &account.user_id, &key_id).await;
    let keys = app.get_json("/api/v1/keys", &account.api_key).await;
    assert_eq!(keys[0]["run_count"], 10);
}
