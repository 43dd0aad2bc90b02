//! The shared page layout and small components used by several pages.

use maud::{DOCTYPE, Markup, html};

use super::{assets, paths};
use crate::auth::csrf;
use crate::auth::session::Session;

/// Which navigation entry is current.
#[derive(Clone, Copy, PartialEq, Eq)]
pub enum Nav {
    None,
    Dashboard,
    Runs,
    Sweeps,
    Library,
    Usage,
    Keys,
    Billing,
    Webhooks,
}

const NAV: [(Nav, &str, &str); 9] = [
    (Nav::Dashboard, "Dashboard", paths::DASHBOARD),
    (Nav::Runs, "Runs", paths::RUNS),
    (Nav::Sweeps, "Sweeps", paths::SWEEPS),
    (Nav::Library, "Library", paths::LIBRARY),
    (Nav::Usage, "Usage", paths::USAGE),
    (Nav::Keys, "API Keys", paths::KEYS),
    (Nav::Webhooks, "Webhooks", paths::WEBHOOKS),
    (Nav::Billing, "Billing", paths::BILLING),
    (Nav::None, "Docs", paths::API_DOCS),
];

/// htmx settings: no inline styles or eval (our CSP forbids both), and swap error answers
/// too, because ours are fragments meant to be shown (`web::error` retargets them).
const HTMX_CONFIG: &str = r#"{"includeIndicatorStyles":false,"allowEval":false,"allowScriptTags":false,"responseHandling":[{"code":"204","swap":false},{"code":"...","swap":true}]}"#;

/// A full HTML page. With a session, the page has the navigation, the user menu, and the
/// CSRF token that htmx sends with every request (`hx-headers` on `<body>`).
pub fn page(title: &str, nav: Nav, session: Option<&Session>, content: Markup) -> Markup {
    page_with_head(title, nav, session, html! {}, content)
}

/// [`page`] with more in its `<head>`: the scripts and styles only some pages need (the
/// plotting library is loaded by the pages that plot, not by every page).
pub fn page_with_head(
    title: &str,
    nav: Nav,
    session: Option<&Session>,
    head: Markup,
    content: Markup,
) -> Markup {
    let hx_headers = session.map(|s| format!(r#"{{"X-CSRF-Token":"{}"}}"#, s.csrf_token));
    html! {
        (DOCTYPE)
        html lang="en" {
            head {
                meta charset="utf-8";
                meta name="viewport" content="width=device-width, initial-scale=1";
                meta name="htmx-config" content=(HTMX_CONFIG);
                title { (title) " · FMU Gateway" }
                link rel="icon" href=(assets::url("logo.svg")) type="image/svg+xml";
                link rel="stylesheet" href=(assets::url("app.css"));
                script src=(assets::url("htmx.min.js")) defer {}
                script src=(assets::url("app.js")) defer {}
                (head)
            }
            body hx-headers=[hx_headers] {
                a.skip href="#main" { "Skip to content" }
                header.topbar {
                    a.brand href=(paths::HOME) {
                        img src=(assets::url("logo.svg")) alt="" width="28" height="28";
                        span { "FMU Gateway" }
                    }
                    @if let Some(s) = session {
                        // A disclosure, so the links fold behind one button on a phone with or
                        // without JavaScript. It is open as sent; app.js closes it on a narrow
                        // screen, and on a wide one the CSS hides its button.
                        nav.main aria-label="Main" {
                            details.nav-menu open {
                                summary { "Menu" }
                                ul {
                                    @for (item, label, href) in NAV {
                                        li {
                                            a href=(href) aria-current=[(item == nav && item != Nav::None).then_some("page")] { (label) }
                                        }
                                    }
                                }
                            }
                        }
                        details.user-menu {
                            summary { (s.user.name.as_deref().unwrap_or(&s.user.email)) }
                            div.menu {
                                p.muted { (s.user.email) }
                                a href=(paths::ACCOUNT) { "Account settings" }
                                form method="post" action=(paths::LOGOUT) {
                                    (csrf_field(s))
                                    button type="submit" { "Log out" }
                                }
                                form method="post" action=(paths::LOGOUT) {
                                    (csrf_field(s))
                                    input type="hidden" name="everywhere" value="1";
                                    button type="submit" { "Log out everywhere" }
                                }
                            }
                        }
                    } @else {
                        nav aria-label="Account" {
                            ul {
                                li { a href=(paths::LOGIN) aria-current=[(title == "Log in").then_some("page")] { "Log in" } }
                                li { a href=(paths::REGISTER) aria-current=[(title == "Sign up").then_some("page")] { "Sign up" } }
                            }
                        }
                    }
                }
                div #flash role="status" aria-live="polite" {}
                main #main { (content) }
                footer { "FMU Gateway " (assets::VERSION) " · " a href=(paths::API_DOCS) { "API docs" } }
            }
        }
    }
}

/// The hidden form field carrying the session's CSRF token (forms work without JavaScript).
pub fn csrf_field(session: &Session) -> Markup {
    html! { input type="hidden" name=(csrf::FIELD) value=(session.csrf_token); }
}

/// A notice box; `kind` is `error`, `success` or `info`.
pub fn alert(kind: &str, message: &str) -> Markup {
    html! { div class={ "alert alert-" (kind) } role=(if kind == "error" { "alert" } else { "status" }) { (message) } }
}

/// A time column (ms) for humans, in UTC.
pub fn when(ms: i64) -> Markup {
    let full = crate::domain::rfc3339_ms(ms);
    let short = full.replacen('T', " ", 1).trim_end_matches('Z').to_string();
    html! { time datetime=(full) { (short) " UTC" } }
}
