//! The interactive plots in chromium, at a phone's 390×844 and a desktop's 1400×1000: a run of
//! BouncingBall draws h [m] and v [m/s] as two stacked uPlots that show values on hover, zoom
//! together by dragging, pan together with Shift+drag, come back on a double-click, hide a
//! series from the legend and export a PNG; an integer output shows the value it holds; a plot
//! swapped in by htmx is drawn; the compare page overlays two runs. No size scrolls sideways.

use std::time::Duration;

use fantoccini::actions::{
    Actions, InputSource, KeyAction, KeyActions, MOUSE_BUTTON_LEFT, MouseActions, PointerAction,
};
use fantoccini::{Client, Locator};
use serde_json::{Value, json};

use super::common::{Account, Api, TestApp, spawn_app};
use super::{eventually, log_in, page_width, screenshot, start_browser};

const SIZES: [(u32, u32, &str); 2] = [(390, 844, "phone"), (1400, 1000, "desktop")];

async fn run_of(app: &TestApp, account: &Account, body: Value) -> String {
    let run = app.run(&account.api_key, &body).await;
    assert_eq!(run["status"], "succeeded", "{run}");
    run["id"].as_str().unwrap().to_string()
}

async fn js(c: &Client, script: &str) -> Value {
    c.execute(script, vec![]).await.unwrap()
}

/// Waits until the plot box `id` has drawn its uPlots; how many it drew.
async fn drawn(c: &Client, id: &str) -> u64 {
    let script = format!(
        "const b = document.getElementById('{id}'); \
         return b && (b.getAttribute('data-plot-ready') || b.getAttribute('data-plot-error'));"
    );
    let ready = eventually(&format!("{id} drawn"), || async {
        js(c, &script).await.as_str().map(str::to_owned)
    })
    .await;
    ready
        .parse()
        .unwrap_or_else(|_| panic!("{id} failed: {ready}"))
}

/// The x range of each uPlot of box `id`.
async fn x_ranges(c: &Client, id: &str) -> Vec<(f64, f64)> {
    let script = format!(
        "return document.getElementById('{id}').plots.map(p => [p.scales.x.min, p.scales.x.max]);"
    );
    js(c, &script)
        .await
        .as_array()
        .unwrap()
        .iter()
        .map(|r| (r[0].as_f64().unwrap(), r[1].as_f64().unwrap()))
        .collect()
}

/// The value the legend of plot `n` of box `id` shows for its series `k` (1-based: 0 is time).
async fn legend_value(c: &Client, id: &str, n: usize, k: usize) -> String {
    js(
        c,
        &format!("return document.getElementById('{id}').plots[{n}].root.querySelectorAll('.u-legend .u-series')[{k}].querySelector('.u-value').innerText;"),
    )
    .await
    .as_str()
    .unwrap()
    .to_string()
}

/// The legend's text of plot `n` (0-based) of box `id`.
async fn legend(c: &Client, id: &str, n: usize) -> String {
    js(
        c,
        &format!("return document.getElementById('{id}').plots[{n}].root.querySelector('.u-legend').innerText;"),
    )
    .await
    .as_str()
    .unwrap()
    .to_string()
}

async fn mouse(c: &Client, actions: MouseActions) {
    c.perform_actions(actions).await.unwrap();
    c.release_actions().await.unwrap();
}

/// The drawing area of plot `n` of box `id`.
async fn plot_area(c: &Client, id: &str, n: usize) -> fantoccini::elements::Element {
    c.find_all(Locator::Css(&format!("#{id} .plot-panel .u-over")))
        .await
        .unwrap()
        .remove(n)
}

#[tokio::test]
async fn a_run_plot_hovers_zooms_resets_hides_and_exports_at_phone_and_desktop_sizes() {
    let app = spawn_app().await;
    let account = app.register().await;
    let id = run_of(
        &app,
        &account,
        json!({"fmu_id": "lib:BouncingBall", "stop_time": 3, "output_interval": 0.001}),
    )
    .await;
    let b = start_browser().await;
    let c = &b.client;
    log_in(&b, &app, &account).await;
    for (width, height, label) in SIZES {
        c.set_window_size(width, height).await.unwrap();
        c.goto(&app.at(&format!("/runs/{id}"))).await.unwrap();
        assert_eq!(drawn(c, "run-plot").await, 2, "one plot per unit");
        let canvases = c
            .find_all(Locator::Css("#run-plot .plot-live canvas"))
            .await
            .unwrap();
        assert_eq!(canvases.len(), 2);
        assert_eq!(
            js(
                c,
                "return document.querySelector('#run-plot .plot-svg').hidden;"
            )
            .await,
            true,
            "the server's SVG gives way"
        );
        let (h, v) = (
            legend(c, "run-plot", 0).await,
            legend(c, "run-plot", 1).await,
        );
        assert!(h.contains("h [m]") && v.contains("v [m/s]"), "{h} / {v}");
        let font = js(
            c,
            "return parseFloat(getComputedStyle(document.querySelector('#run-plot .u-legend')).fontSize);",
        )
        .await;
        assert!(font.as_f64().unwrap() >= 12.0, "legend font {font}");
        assert!(
            page_width(c).await <= f64::from(width),
            "no sideways scroll at {label}"
        );

        // Hover: the legend shows the values at the cursor, in both plots (shared cursor).
        assert_eq!(
            legend_value(c, "run-plot", 0, 1).await,
            "—",
            "no value before the cursor"
        );
        let area = plot_area(c, "run-plot", 0).await;
        mouse(
            c,
            MouseActions::new("mouse".into()).then(PointerAction::MoveToElement {
                element: area.clone(),
                duration: None,
                x: 0.0,
                y: 0.0,
            }),
        )
        .await;
        let value_of = |n: usize| async move {
            let text = legend_value(c, "run-plot", n, 1).await;
            text.parse::<f64>().ok().map(|_| text)
        };
        eventually("a value of h at the cursor", || value_of(0)).await;
        eventually("a value of v at the cursor, in the plot below", || {
            value_of(1)
        })
        .await;
        screenshot(c, &format!("plot-hover-{label}")).await;

        // Drag to zoom: both plots show the same narrower time range.
        let full = x_ranges(c, "run-plot").await;
        let span = f64::from(width.min(1000)) / 4.0;
        mouse(
            c,
            MouseActions::new("mouse".into())
                .then(PointerAction::MoveToElement {
                    element: area.clone(),
                    duration: None,
                    x: -span,
                    y: 0.0,
                })
                .then(PointerAction::Down {
                    button: MOUSE_BUTTON_LEFT,
                })
                .then(PointerAction::MoveToElement {
                    element: area.clone(),
                    duration: Some(Duration::from_millis(200)),
                    x: span / 2.0,
                    y: 10.0,
                })
                .then(PointerAction::Up {
                    button: MOUSE_BUTTON_LEFT,
                }),
        )
        .await;
        let zoomed = eventually("the zoom", || async {
            let r = x_ranges(c, "run-plot").await;
            (r[0].1 - r[0].0 < (full[0].1 - full[0].0) * 0.8).then_some(r)
        })
        .await;
        assert_eq!(zoomed[0], zoomed[1], "the plots zoom together");
        assert!(
            zoomed[0].0 > full[0].0 && zoomed[0].1 < full[0].1,
            "{zoomed:?} in {full:?}"
        );
        screenshot(c, &format!("plot-zoomed-{label}")).await;

        // Shift+drag pans: the same span, earlier, in both plots.
        let shift = '\u{E008}';
        let keys = KeyActions::new("keys".into())
            .then(KeyAction::Down { value: shift })
            .pause(Duration::from_millis(10))
            .pause(Duration::from_millis(10))
            .pause(Duration::from_millis(10))
            .then(KeyAction::Up { value: shift });
        let drag = MouseActions::new("mouse".into())
            .then(PointerAction::MoveToElement {
                element: area.clone(),
                duration: None,
                x: 0.0,
                y: 0.0,
            })
            .then(PointerAction::Down {
                button: MOUSE_BUTTON_LEFT,
            })
            .then(PointerAction::MoveToElement {
                element: area.clone(),
                duration: Some(Duration::from_millis(200)),
                x: 60.0,
                y: 0.0,
            })
            .then(PointerAction::Up {
                button: MOUSE_BUTTON_LEFT,
            });
        c.perform_actions(Actions::from(keys).and(drag))
            .await
            .unwrap();
        c.release_actions().await.unwrap();
        let panned = x_ranges(c, "run-plot").await;
        assert_eq!(panned[0], panned[1], "the plots pan together");
        let width_of = |r: (f64, f64)| r.1 - r.0;
        assert!(
            (width_of(panned[0]) - width_of(zoomed[0])).abs() < 1e-9 * width_of(zoomed[0]).max(1.0)
                && panned[0].0 < zoomed[0].0,
            "{panned:?} from {zoomed:?}"
        );

        // Double-click: back to the whole run.
        let click = |a: MouseActions| {
            a.then(PointerAction::Down {
                button: MOUSE_BUTTON_LEFT,
            })
            .then(PointerAction::Up {
                button: MOUSE_BUTTON_LEFT,
            })
        };
        let to_area = MouseActions::new("mouse".into()).then(PointerAction::MoveToElement {
            element: area.clone(),
            duration: None,
            x: 0.0,
            y: 0.0,
        });
        mouse(c, click(click(to_area))).await;
        eventually("the whole run again", || async {
            let r = x_ranges(c, "run-plot").await;
            (r == full).then_some(())
        })
        .await;

        // A click on h's legend entry hides h.
        c.find(Locator::Css(
            "#run-plot .plot-panel .u-legend tr.u-series:nth-child(2) th",
        ))
        .await
        .unwrap()
        .click()
        .await
        .unwrap();
        let shown = js(
            c,
            "return document.getElementById('run-plot').plots[0].series[1].show;",
        )
        .await;
        assert_eq!(shown, false, "h is hidden");
        assert_eq!(
            js(c, "return document.getElementById('run-plot').plots[0].root.querySelectorAll('.u-legend .u-series')[1].classList.contains('u-off');").await,
            true
        );
        screenshot(c, &format!("plot-hidden-series-{label}")).await;

        // PNG export: the button downloads the stacked canvases as a PNG data URL (the
        // download is caught here as the link plot.js clicks).
        js(
            c,
            "window.__downloads = []; HTMLAnchorElement.prototype.click = function () { \
             window.__downloads.push([this.href, this.download]); }; return null;",
        )
        .await;
        c.find(Locator::Css("#run-plot button.plot-png"))
            .await
            .unwrap()
            .click()
            .await
            .unwrap();
        let download = js(c, "return window.__downloads;").await;
        let (href, name) = (
            download[0][0].as_str().unwrap(),
            download[0][1].as_str().unwrap(),
        );
        assert!(
            href.starts_with("data:image/png;base64,") && href.len() > 2000,
            "{}",
            &href[..href.len().min(60)]
        );
        assert_eq!(name, format!("{id}.png"));
        let svg = c
            .find(Locator::Css("#run-plot a.plot-svg-link"))
            .await
            .unwrap();
        assert_eq!(
            svg.attr("href").await.unwrap().unwrap(),
            format!("/runs/{id}/plot.svg")
        );
    }
}

#[tokio::test]
async fn an_integer_output_shows_the_value_it_holds_at_the_cursor() {
    let app = spawn_app().await;
    let account = app.register().await;
    let id = run_of(
        &app,
        &account,
        json!({"fmu_id": "lib:Feedthrough", "stop_time": 1, "output_interval": 0.01,
               "outputs": ["Int32_output", "Float64_continuous_output"],
               "inputs": [{ "name": "Int32_input", "t": [0, 0.3, 0.3, 0.7, 0.7, 1], "u": [0, 0, 5, 5, -2, -2] }]}),
    )
    .await;
    let b = start_browser().await;
    let c = &b.client;
    log_in(&b, &app, &account).await;
    for (width, height, label) in SIZES {
        c.set_window_size(width, height).await.unwrap();
        c.goto(&app.at(&format!("/runs/{id}"))).await.unwrap();
        let plots = drawn(c, "run-plot").await;
        let legends: Vec<String> = {
            let mut all = Vec::new();
            for n in 0..plots as usize {
                all.push(legend(c, "run-plot", n).await);
            }
            all
        };
        let int_plot = legends
            .iter()
            .position(|l| l.contains("Int32_output"))
            .unwrap_or_else(|| panic!("{legends:?}"));
        // Hovering in the middle of the run (0.5 s) shows the integer held there: 5.
        let area = plot_area(c, "run-plot", int_plot).await;
        mouse(
            c,
            MouseActions::new("mouse".into()).then(PointerAction::MoveToElement {
                element: area,
                duration: None,
                x: 0.0,
                y: 0.0,
            }),
        )
        .await;
        eventually("the integer held at 0.5 s", || async {
            (legend_value(c, "run-plot", int_plot, 1).await == "5").then_some(())
        })
        .await;
        assert!(
            page_width(c).await <= f64::from(width),
            "no sideways scroll at {label}"
        );
        screenshot(c, &format!("plot-integer-{label}")).await;
    }
}

#[tokio::test]
async fn the_compare_page_overlays_two_runs_and_sets_their_settings_side_by_side() {
    let app = spawn_app().await;
    let account = app.register().await;
    let a = run_of(
        &app,
        &account,
        json!({"fmu_id": "lib:BouncingBall", "stop_time": 2, "start_values": {"e": 0.7}}),
    )
    .await;
    let b_run = run_of(
        &app,
        &account,
        json!({"fmu_id": "lib:BouncingBall", "stop_time": 3, "start_values": {"e": 0.5}}),
    )
    .await;
    let b = start_browser().await;
    let c = &b.client;
    log_in(&b, &app, &account).await;
    let short = |id: &str| format!("run {}", &id["run_".len().."run_".len() + 6]);
    for (width, height, label) in SIZES {
        c.set_window_size(width, height).await.unwrap();
        c.goto(&app.at(&format!("/runs/compare?run={a}&run={b_run}&var=h")))
            .await
            .unwrap();
        let table = c
            .find(Locator::Id("compare-settings"))
            .await
            .unwrap()
            .text()
            .await
            .unwrap();
        assert!(table.contains(&a) && table.contains(&b_run), "{table}");
        assert_eq!(
            drawn(c, "compare-plot").await,
            1,
            "h of both runs, one unit"
        );
        let h = legend(c, "compare-plot", 0).await;
        for id in [&a, &b_run] {
            assert!(h.contains(&format!("{} · h [m]", short(id))), "{h}");
        }
        let series = js(
            c,
            "return document.getElementById('compare-plot').plots[0].series.length;",
        )
        .await;
        assert_eq!(series, 3, "time and a curve per run");
        assert!(
            page_width(c).await <= f64::from(width),
            "no sideways scroll at {label}"
        );
        screenshot(c, &format!("compare-{label}")).await;
        js(
            c,
            "document.getElementById('compare-plot').scrollIntoView(); return null;",
        )
        .await;
        screenshot(c, &format!("compare-overlay-{label}")).await;
    }
}

/// A run page opened while the run goes on gets its plot when htmx swaps the finished run in.
#[tokio::test]
async fn the_plot_of_a_run_that_ends_while_its_page_is_open_draws_when_htmx_swaps_it_in() {
    // The start answers at once (no synchronous wait), so the page opens while the run goes
    // on however fast the machine is.
    let app = crate::common::spawn_app_with(|c| c.sync_wait = std::time::Duration::ZERO).await;
    let account = app.register().await;
    let b = start_browser().await;
    let c = &b.client;
    log_in(&b, &app, &account).await;
    let run: Value = app
        .create_run(
            &account.api_key,
            &json!({"fmu_id": "lib:VanDerPol", "stop_time": 50000, "output_interval": 1}),
        )
        .await
        .json()
        .await
        .unwrap();
    let id = run["id"].as_str().unwrap();
    c.goto(&app.at(&format!("/runs/{id}"))).await.unwrap();
    let status = js(
        c,
        "return document.querySelector('#run-details [data-status]').dataset.status;",
    )
    .await;
    assert!(
        matches!(status.as_str(), Some("queued" | "running")),
        "the run was still going when the page opened: {status}"
    );
    assert!(
        c.find(Locator::Id("run-plot")).await.is_err(),
        "no plot before the results"
    );
    let deadline = std::time::Instant::now() + Duration::from_secs(60);
    while c.find(Locator::Id("run-plot")).await.is_err() {
        assert!(
            std::time::Instant::now() < deadline,
            "the run did not finish"
        );
        tokio::time::sleep(Duration::from_millis(200)).await;
    }
    assert!(drawn(c, "run-plot").await >= 1, "drawn after the swap");
}
