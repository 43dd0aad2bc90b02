//! Every page at a phone's width and a desktop's: nothing scrolls sideways, the navigation
//! folds into a menu on the phone, and the API docs share the dashboard's theme.

use fantoccini::{Client, Locator};
use serde_json::{Value, json};

use crate::common::{Api, spawn_app, spawn_app_with};
use crate::{eventually, log_in, page_width, screenshot, start_browser};

/// The narrowest phone the layout is made for, a common phone, and a desktop.
const SIZES: [(u32, u32, &str); 3] = [
    (360, 780, "phone-360"),
    (390, 844, "phone"),
    (1400, 1000, "desktop"),
];

/// The viewport's width as the page sees it (the window is a little wider than the page).
async fn inner_width(c: &Client) -> f64 {
    c.execute("return window.innerWidth;", vec![])
        .await
        .unwrap()
        .as_f64()
        .unwrap()
}

/// Visits `path` and asserts nothing on it is wider than the screen.
async fn fits(c: &Client, url: &str, name: &str, label: &str) {
    c.goto(url).await.unwrap();
    screenshot(c, &format!("layout-{name}-{label}")).await;
    let (wide, screen) = (page_width(c).await, inner_width(c).await);
    if wide > screen {
        // Name the outermost elements that stick out, for whoever has to fix it.
        let culprits = c
            .execute(
                "const w = window.innerWidth; const out = [];
                 for (const e of document.querySelectorAll('body *')) {
                   const r = e.getBoundingClientRect();
                   if (r.right > w + 0.5 && !(e.parentElement && e.parentElement.getBoundingClientRect().right > w + 0.5))
                     out.push(e.tagName.toLowerCase() + (e.id ? '#' + e.id : '') +
                              (e.className && typeof e.className === 'string' ? '.' + e.className.split(' ').join('.') : '') +
                              ' right=' + Math.round(r.right));
                 }
                 return out.slice(0, 12).join(', ');",
                vec![],
            )
            .await
            .unwrap();
        panic!(
            "{name} scrolls sideways at {label}: {wide} px on a {screen} px screen; sticking out: {culprits}"
        );
    }
}

#[tokio::test]
async fn no_page_scrolls_sideways_on_a_phone_or_a_desktop() {
    // Private webhook targets allowed: the webhooks page shows an endpoint with a long URL
    // whose deliveries fail (nothing listens there), with their errors.
    let app = spawn_app_with(|c| c.webhook_allow_private = true).await;
    let account = app.register().await;
    let hook = json!({ "url": format!("http://127.0.0.1:9/{}", "a-long-path-segment/".repeat(8)) });
    let created = app
        .post_json("/api/v1/webhooks", &account.api_key, &hook)
        .await;
    assert_eq!(created.status(), 201);
    let run: Value = app
        .create_run(
            &account.api_key,
            &json!({"fmu_id": "lib:BouncingBall", "stop_time": 3}),
        )
        .await
        .json()
        .await
        .unwrap();
    assert_eq!(run["status"], "succeeded", "{run}");
    let run_id = run["id"].as_str().unwrap();
    let other: Value = app
        .create_run(
            &account.api_key,
            &json!({"fmu_id": "lib:BouncingBall", "stop_time": 2}),
        )
        .await
        .json()
        .await
        .unwrap();
    let other_id = other["id"].as_str().unwrap();
    let sweep: Value = app
        .post_json(
            "/api/v1/sweeps",
            &account.api_key,
            &json!({
                "base": {"fmu_id": "lib:BouncingBall", "stop_time": 1, "output_interval": 0.1},
                "design": {"grid": [{"name": "e", "range": {"start": 0.5, "stop": 0.9, "num": 3}}]},
                "kpis": [{"variable": "h", "kind": "max"}, {"variable": "h", "kind": "first_crossing", "level": 0.5}],
                "trajectories": true,
            }),
        )
        .await
        .json()
        .await
        .unwrap();
    let sweep_id = sweep["id"].as_str().unwrap();
    eventually("the sweep's end", || async {
        let now = app
            .get_json(&format!("/api/v1/sweeps/{sweep_id}"), &account.api_key)
            .await;
        now["finished_at"].is_string().then_some(())
    })
    .await;
    let b = start_browser().await;
    let c = &b.client;
    for (width, height, label) in SIZES {
        c.set_window_size(width, height).await.unwrap();
        c.delete_all_cookies().await.unwrap();
        for (name, path) in [
            ("home", "/"),
            ("login", "/login"),
            ("register", "/register"),
        ] {
            fits(c, &app.at(path), name, label).await;
        }
        log_in(&b, &app, &account).await;
        let pages = [
            ("dashboard", "/dashboard".to_string()),
            ("runs", "/runs".to_string()),
            ("run", format!("/runs/{run_id}")),
            (
                "compare",
                format!("/runs/compare?run={run_id}&run={other_id}"),
            ),
            ("library", "/library".to_string()),
            ("sweeps", "/sweeps".to_string()),
            ("sweep", format!("/sweeps/{sweep_id}")),
            (
                "overlay",
                format!("/sweeps/{sweep_id}/overlay?case=0&case=2"),
            ),
            ("model", "/library/lib:BouncingBall".to_string()),
            ("usage", "/usage".to_string()),
            ("keys", "/api-keys".to_string()),
            ("webhooks", "/webhooks".to_string()),
            ("billing", "/billing".to_string()),
            ("account", "/account".to_string()),
            ("docs", "/api/docs".to_string()),
        ];
        for (name, path) in pages {
            fits(c, &app.at(&path), name, label).await;
        }
    }
}

#[tokio::test]
async fn the_navigation_folds_into_a_menu_on_a_phone_and_the_docs_lead_back() {
    let app = spawn_app().await;
    let account = app.register().await;
    let b = start_browser().await;
    let c = &b.client;
    log_in(&b, &app, &account).await;

    c.set_window_size(390, 844).await.unwrap();
    c.goto(&app.at("/dashboard")).await.unwrap();
    let runs_link = c
        .find(Locator::Css("nav.main a[href='/runs']"))
        .await
        .unwrap();
    assert!(
        !runs_link.is_displayed().await.unwrap(),
        "on a phone the links wait behind the menu button"
    );
    let header = c.find(Locator::Css("header.topbar")).await.unwrap();
    let header_height = header.rectangle().await.unwrap().3;
    assert!(
        header_height <= 844.0 / 8.0,
        "the header takes {header_height} px of an 844 px screen"
    );
    screenshot(c, "nav-closed-phone").await;
    c.find(Locator::Css("nav.main summary"))
        .await
        .unwrap()
        .click()
        .await
        .unwrap();
    eventually("the menu to open", || async {
        runs_link.is_displayed().await.ok().filter(|shown| *shown)
    })
    .await;
    screenshot(c, "nav-open-phone").await;
    runs_link.click().await.unwrap();
    eventually("the runs page", || async {
        c.current_url().await.ok().filter(|u| u.path() == "/runs")
    })
    .await;

    c.set_window_size(1400, 1000).await.unwrap();
    c.goto(&app.at("/dashboard")).await.unwrap();
    let runs_link = c
        .find(Locator::Css("nav.main a[href='/runs']"))
        .await
        .unwrap();
    assert!(
        runs_link.is_displayed().await.unwrap(),
        "on a desktop the links are in the bar"
    );

    // The API docs: a viewport for phones, the dark theme, and the way back.
    c.set_window_size(390, 844).await.unwrap();
    c.goto(&app.at("/api/docs")).await.unwrap();
    let viewport = c
        .find(Locator::Css("meta[name=viewport]"))
        .await
        .unwrap()
        .attr("content")
        .await
        .unwrap()
        .unwrap();
    assert!(viewport.contains("width=device-width"), "{viewport}");
    let background = c
        .execute(
            "return getComputedStyle(document.body).backgroundColor;",
            vec![],
        )
        .await
        .unwrap();
    assert_eq!(background, json!("rgb(15, 23, 32)"), "the dashboard's --bg");
    eventually("Swagger UI to draw the operations", || async {
        c.find(Locator::Css(".opblock")).await.ok()
    })
    .await;
    screenshot(c, "docs-phone").await;
    c.find(Locator::Css("a.docs-back[href='/dashboard']"))
        .await
        .unwrap()
        .click()
        .await
        .unwrap();
    eventually("the dashboard from the docs", || async {
        c.current_url()
            .await
            .ok()
            .filter(|u| u.path() == "/dashboard")
    })
    .await;
}
