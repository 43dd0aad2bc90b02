//! A sweep in real Chromium: started from the New sweep form, its progress bar filled by
//! Server-Sent Events (htmx's SSE extension) to 100 % without a reload, its cases table
//! refreshed at the end and sorted by a KPI from its header, at a phone's and a desktop's
//! width.

use std::time::{Duration, Instant};

use fantoccini::{Client, Locator};
use serde_json::Value;

use crate::common::spawn_app_with;
use crate::{eventually, log_in, mark_page, page_width, screenshot, start_browser, still_marked};

/// Cases of the sweep, each of 10 000 output points: enough that it is still running when
/// its page opens (warm batches run thousands of small cases a second; these take about 10 s
/// in all), and the test waits for the end however long it takes.
const CASES: u32 = 4000;

/// The progress bar's value and max, as the page has them now.
async fn progress(c: &Client) -> Option<(f64, f64)> {
    let v = c
        .execute(
            "const p = document.getElementById('sweep-progress-bar');
             return p ? [p.value, p.max] : null;",
            vec![],
        )
        .await
        .ok()?;
    let pair = v.as_array()?;
    Some((pair[0].as_f64()?, pair[1].as_f64()?))
}

async fn fill(c: &Client, css: &str, text: &str) {
    let field = c.find(Locator::Css(css)).await.unwrap();
    field.clear().await.unwrap();
    field.send_keys(text).await.unwrap();
}

/// The case indexes of the cases table's rows, in order.
async fn row_indexes(c: &Client) -> Vec<u64> {
    let v = c
        .execute(
            "return [...document.querySelectorAll('#cases-table tr.case-row')].map(r => Number(r.dataset.index));",
            vec![],
        )
        .await
        .unwrap();
    v.as_array()
        .unwrap()
        .iter()
        .map(|i| i.as_u64().unwrap())
        .collect()
}

/// Scrolls the cases part (downloads, scatter, table) into view, for a screenshot of it.
async fn show_cases(c: &Client) {
    c.execute(
        "document.getElementById('sweep-cases').scrollIntoView(); return null;",
        vec![],
    )
    .await
    .unwrap();
}

#[tokio::test]
async fn a_sweep_started_from_its_form_fills_its_progress_bar_live_and_sorts_its_cases() {
    let app = spawn_app_with(|c| c.free_credits = 5000u32.into()).await;
    let account = app.register().await;
    let b = start_browser().await;
    let c = &b.client;
    c.set_window_size(1400, 1000).await.unwrap();
    log_in(&b, &app, &account).await;
    c.goto(&app.at("/sweeps")).await.unwrap();
    c.find(Locator::Css(
        "nav.main a[href='/sweeps'][aria-current=page]",
    ))
    .await
    .unwrap();
    c.find(Locator::Css("#sweep-fmu"))
        .await
        .unwrap()
        .select_by_value("lib:Dahlquist")
        .await
        .unwrap();
    fill(c, "#sweep-stop_time", "1").await;
    fill(c, "#sweep-output_interval", "0.0001").await;
    fill(c, "#sweep-grid", &format!("k = 0.5 : 2.0 : {CASES}")).await;
    fill(c, "#sweep-kpis", "final x").await;
    screenshot(c, "sweeps-form-desktop").await;
    c.find(Locator::Css("#sweep-start"))
        .await
        .unwrap()
        .click()
        .await
        .unwrap();
    let page = eventually("the sweep's page", || async {
        c.current_url()
            .await
            .ok()
            .filter(|u| u.path().starts_with("/sweeps/"))
    })
    .await;
    mark_page(c).await;

    // Watch the bar: it starts below its max, moves, and reaches it, on the same page.
    let mut seen: Vec<f64> = Vec::new();
    let deadline = Instant::now() + Duration::from_secs(900);
    let mut shot_mid_run = false;
    loop {
        if let Some((value, max)) = progress(c).await {
            assert_eq!(max, f64::from(CASES));
            if seen.last() != Some(&value) {
                seen.push(value);
            }
            if !shot_mid_run && value > 0.0 && value < max {
                screenshot(c, "sweep-running-desktop").await;
                shot_mid_run = true;
            }
            if value >= max {
                break;
            }
        }
        assert!(
            Instant::now() < deadline,
            "the bar did not reach its end; it showed {seen:?}"
        );
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
    assert!(
        seen[0] < f64::from(CASES),
        "the sweep was still going when its page opened: {seen:?}"
    );
    assert!(
        seen.len() >= 3,
        "the bar changed at least twice before its end: {seen:?}"
    );
    assert!(still_marked(c).await, "the bar moved without a reload");
    assert_eq!(c.current_url().await.unwrap(), page, "no navigation");

    // At the end the status says so, Cancel is gone, and the table is refreshed in place.
    eventually("the completed status", || async {
        c.find(Locator::Css("#sweep-status [data-status=completed]"))
            .await
            .ok()
    })
    .await;
    assert!(c.find(Locator::Css("#cancel-sweep")).await.is_err());
    eventually("the refreshed cases table", || async {
        let succeeded = c
            .find_all(Locator::Css(
                "#cases-table tr.case-row [data-status=succeeded]",
            ))
            .await
            .ok()?;
        (succeeded.len() == 50).then_some(())
    })
    .await;
    assert!(
        still_marked(c).await,
        "the table was refreshed without a reload"
    );
    let text = c
        .find(Locator::Css("#sweep-progress-text"))
        .await
        .unwrap()
        .text()
        .await
        .unwrap();
    assert_eq!(text, format!("{CASES} of {CASES} cases done"));
    screenshot(c, "sweep-done-desktop").await;

    // Sorting by the KPI from its header: final(x) = exp(-k) falls as k grows, so ascending
    // puts the last case first, and again descending the first.
    c.find(Locator::LinkText("final(x)"))
        .await
        .unwrap()
        .click()
        .await
        .unwrap();
    eventually("the table sorted by final(x)", || async {
        let rows = row_indexes(c).await;
        (rows.first() == Some(&u64::from(CASES - 1))).then_some(())
    })
    .await;
    let sorted = c
        .find(Locator::Css("th[aria-sort=ascending]"))
        .await
        .unwrap()
        .text()
        .await
        .unwrap();
    assert!(sorted.starts_with("final(x)"), "{sorted}");
    assert_eq!(
        row_indexes(c).await,
        (0..50)
            .map(|i| u64::from(CASES - 1) - i)
            .collect::<Vec<_>>()
    );
    c.find(Locator::Css("th[aria-sort=ascending] a"))
        .await
        .unwrap()
        .click()
        .await
        .unwrap();
    eventually("the table sorted the other way", || async {
        c.find(Locator::Css("th[aria-sort=descending]")).await.ok()
    })
    .await;
    assert_eq!(row_indexes(c).await, (0..50).collect::<Vec<_>>());
    show_cases(c).await;
    screenshot(c, "sweep-cases-desktop").await;

    // The phone: nothing scrolls sideways; the list and the page as they look.
    c.set_window_size(390, 844).await.unwrap();
    c.refresh().await.unwrap();
    screenshot(c, "sweep-phone").await;
    show_cases(c).await;
    screenshot(c, "sweep-cases-phone").await;
    let screen: Value = c
        .execute("return window.innerWidth;", vec![])
        .await
        .unwrap();
    assert!(page_width(c).await <= screen.as_f64().unwrap());
    c.goto(&app.at("/sweeps")).await.unwrap();
    screenshot(c, "sweeps-list-phone").await;
    c.set_window_size(1400, 1000).await.unwrap();
    c.refresh().await.unwrap();
    screenshot(c, "sweeps-list-desktop").await;
}
