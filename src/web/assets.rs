//! Static assets, compiled into the binary so the service is one file to deploy.
//!
//! htmx comes from the npm package `htmx.org`, its Server-Sent Events extension from
//! `htmx-ext-sse` (the sweep page's live progress) and uPlot (the interactive plots) from
//! `uplot`, all pinned in package.json and its lock file; `npm ci` puts them in node_modules,
//! `build.rs` checks they are there. Ours live in `assets/`.

use poem::http::StatusCode;
use poem::web::Path;
use poem::{Response, handler};

/// Bumped with the crate version, so browsers can cache assets for a long time.
pub const VERSION: &str = env!("CARGO_PKG_VERSION");

const HTMX: &[u8] = include_bytes!(concat!(
    env!("CARGO_MANIFEST_DIR"),
    "/node_modules/htmx.org/dist/htmx.min.js"
));

/// htmx's SSE extension (npm `htmx-ext-sse`, pinned like htmx): loaded only by the pages that
/// follow an event stream (a sweep's page).
const HTMX_SSE: &[u8] = include_bytes!(concat!(
    env!("CARGO_MANIFEST_DIR"),
    "/node_modules/htmx-ext-sse/dist/sse.min.js"
));

/// uPlot, the interactive plots' library (npm `uplot`, pinned like htmx): loaded only by the
/// pages that plot, driven by our `plot.js`.
const UPLOT_JS: &[u8] = include_bytes!(concat!(
    env!("CARGO_MANIFEST_DIR"),
    "/node_modules/uplot/dist/uPlot.iife.min.js"
));
const UPLOT_CSS: &[u8] = include_bytes!(concat!(
    env!("CARGO_MANIFEST_DIR"),
    "/node_modules/uplot/dist/uPlot.min.css"
));

fn find(name: &str) -> Option<(&'static [u8], &'static str)> {
    Some(match name {
        "htmx.min.js" => (HTMX, "text/javascript; charset=utf-8"),
        "app.js" => (
            include_bytes!("../../assets/app.js"),
            "text/javascript; charset=utf-8",
        ),
        "sse.js" => (HTMX_SSE, "text/javascript; charset=utf-8"),
        "uPlot.iife.min.js" => (UPLOT_JS, "text/javascript; charset=utf-8"),
        "uPlot.min.css" => (UPLOT_CSS, "text/css; charset=utf-8"),
        "plot.js" => (
            include_bytes!("../../assets/plot.js"),
            "text/javascript; charset=utf-8",
        ),
        "app.css" => (
            include_bytes!("../../assets/app.css"),
            "text/css; charset=utf-8",
        ),
        "docs.css" => (
            include_bytes!("../../assets/docs.css"),
            "text/css; charset=utf-8",
        ),
        "logo.svg" => (include_bytes!("../../assets/logo.svg"), "image/svg+xml"),
        _ => return None,
    })
}

/// The URL of an asset, with the version so a new release busts caches.
pub fn url(name: &str) -> String {
    format!("/assets/{name}?v={VERSION}")
}

#[handler]
pub fn serve(Path(name): Path<String>) -> Response {
    match find(&name) {
        Some((bytes, content_type)) => Response::builder()
            .content_type(content_type)
            .header("Cache-Control", "public, max-age=86400")
            .body(bytes),
        None => Response::builder()
            .status(StatusCode::NOT_FOUND)
            .body("no such asset"),
    }
}
