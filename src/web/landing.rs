//! `/` for a visitor: what the service does, a plot of a real run, and the three steps to a
//! first result. A logged-in user goes on to the dashboard, which shows the same command.

use maud::{Markup, html};
use poem::http::StatusCode;
use poem::web::{Data, Query};
use poem::{Request, Response, handler};
use serde::Deserialize;

use super::layout::{self, Nav};
use super::{html, paths, see_other};
use crate::auth::session::Session;
use crate::domain::showcase;
use crate::state::State;

/// The body of the first run: a library model everyone can run, small enough to answer at
/// once with its results inline.
pub const FIRST_RUN_BODY: &str =
    r#"{"fmu_id":"lib:BouncingBall","stop_time":3,"output_interval":0.1}"#;

/// The environment variable the command reads the key from (never a real key on a page).
pub const KEY_VARIABLE: &str = "FMU_GATEWAY_KEY";

/// The `curl` command that starts the first run on this server (`base`: its public URL).
pub fn first_run_curl(base: &str) -> String {
    let base = base.trim_end_matches('/');
    format!(
        "curl -s {base}{api}/runs \\\n  -H \"X-API-Key: ${KEY_VARIABLE}\" \\\n  -H 'content-type: application/json' \\\n  -d '{FIRST_RUN_BODY}'",
        api = paths::API_V1
    )
}

/// The command in a block of its own, with a label for screen readers.
pub fn curl_block(base: &str) -> Markup {
    html! {
        pre.first-run-curl aria-label="curl command for a first run" { code { (first_run_curl(base)) } }
    }
}

#[derive(Deserialize, Default)]
pub struct HomeQuery {
    /// `deleted` after an account was deleted.
    account: Option<String>,
}

/// `/`: the dashboard for a logged-in user, the landing page otherwise.
#[handler]
pub async fn home(state: Data<&State>, req: &Request, Query(q): Query<HomeQuery>) -> Response {
    if req.extensions().get::<Session>().is_some() {
        return see_other(paths::DASHBOARD);
    }
    let deleted = q.account.as_deref() == Some("deleted");
    let example = showcase::get(&state).await;
    html(StatusCode::OK, page(&state, example, deleted))
}

fn page(state: &State, example: Option<&showcase::Showcase>, deleted: bool) -> Markup {
    let content = html! {
        div.landing {
            @if deleted { (layout::alert("success", "Your account was deleted.")) }
            h1 { "Run FMU simulation models over HTTP" }
            p.lead {
                "FMU Gateway runs FMI 2.0 and 3.0 models (FMUs) for you in a sandbox: pick one \
                 from the built-in library or upload your own, send its settings, and get the \
                 results as JSON, CSV, MAT or Parquet. Use it from the browser, a JSON API or \
                 the command line; each run costs credits, and new accounts start with "
                (state.config.free_credits) " free."
            }
            p.landing-actions {
                a.button.primary href=(paths::REGISTER) { "Sign up" }
                " "
                a.button href=(paths::LOGIN) { "Log in" }
                " "
                a.button href=(paths::API_DOCS) { "API docs" }
            }
            @if let Some(run) = example { (example_figure(run)) }
            section aria-labelledby="steps-h" {
                h2 #steps-h { "Your first result in three steps" }
                ol.steps {
                    li {
                        strong { "Sign up. " }
                        a href=(paths::REGISTER) { "Create an account" }
                        "; then create an API key on its API Keys page and put it in $" (KEY_VARIABLE) "."
                    }
                    li {
                        strong { "Copy this command" }
                        " — it runs the library's bouncing ball for 3 seconds:"
                        (curl_block(&state.config.public_url))
                    }
                    li {
                        strong { "See the run. " }
                        "The answer holds the results; the run is also on your Runs page, with a \
                         plot and downloads. Everything else is in the "
                        a href=(paths::API_DOCS) { "API docs" } "."
                    }
                }
            }
        }
    };
    layout::page("Run FMUs over HTTP", Nav::None, None, content)
}

fn example_figure(run: &showcase::Showcase) -> Markup {
    let opts = super::charts::PlotOptions {
        y_label: Some(format!("{} [m]", showcase::VARIABLE)),
        ..Default::default()
    };
    html! {
        figure.landing-plot {
            (super::charts::line_plot(&run.time, &[(showcase::VARIABLE, &run.height)], &opts))
            figcaption {
                "The height of a bouncing ball: a real run of " code { (showcase::MODEL) }
                " on this server (" (run.time.len()) " points)."
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_first_run_command_names_the_server_and_a_valid_body() {
        let cmd = first_run_curl("https://fmu.example.com/");
        assert!(
            cmd.starts_with("curl -s https://fmu.example.com/api/v1/runs \\"),
            "{cmd}"
        );
        assert!(cmd.contains("\"X-API-Key: $FMU_GATEWAY_KEY\""), "{cmd}");
        let body: serde_json::Value = serde_json::from_str(FIRST_RUN_BODY).unwrap();
        assert_eq!(body["fmu_id"], "lib:BouncingBall");
    }
}
