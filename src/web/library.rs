//! The library page: the built-in models and the user's uploads, a model's variables, and
//! an upload form (htmx, or a plain multipart post without JavaScript).

use maud::{Markup, html};
use poem::http::StatusCode;
use poem::web::{Data, Multipart, Path, Query};
use poem::{Request, Response, handler};
use tokio::io::AsyncReadExt;

use super::error::WebError;
use super::layout::{self, Nav, csrf_field, when};
use super::middleware::CsrfInBody;
use super::{CurrentSession, WantsFragment, html, paths, see_other};
use crate::auth::csrf;
use crate::auth::session::Session;
use crate::domain::error::AppError;
use crate::domain::fmus::{self, FmuRecord};
use crate::fmi::validation;
use crate::state::State;

fn interfaces(r: &FmuRecord) -> String {
    let mut out = Vec::new();
    if r.info.co_simulation.is_some() {
        out.push("CS");
    }
    if r.info.model_exchange.is_some() {
        out.push("ME");
    }
    out.join(" + ")
}

/// What the models table says above itself after a change made in place.
pub enum Notice<'a> {
    None,
    /// The upload that just arrived (its row is highlighted), and the file it came from.
    Uploaded(&'a FmuRecord, &'a str),
    /// A model just deleted, by name.
    Deleted(&'a str),
}

/// The id a person reads (a library name, or the first 12 hex digits of an upload's hash)
/// and the one a program needs (the library name, or the whole hash).
fn ids(m: &FmuRecord) -> (String, String) {
    match &m.library_id {
        Some(l) => (l.clone(), l.clone()),
        None => (
            m.id.as_str()[..12].to_string() + "…",
            m.id.as_str().to_string(),
        ),
    }
}

/// The models table; also the fragment an htmx upload or delete refreshes.
pub fn models_table(s: &Session, models: &[FmuRecord], notice: Notice<'_>) -> Markup {
    let new = match notice {
        Notice::Uploaded(m, _) => Some(&m.id),
        _ => None,
    };
    html! {
        div #library-table {
            @match notice {
                Notice::Uploaded(m, file) => div.alert.alert-success role="status" {
                    "“" (file) "” was uploaded as " strong { (m.model_name) } ". "
                    a href=(run_this(m)) { "Run this model" } " · "
                    a href=(paths::library_model(m.id.as_str())) { "Its variables and validation" }
                },
                Notice::Deleted(name) => div.alert.alert-success role="status" {
                    (name) " was deleted from your library."
                },
                Notice::None => {}
            }
            @if models.is_empty() {
                p.muted { "No models yet." }
            } @else {
                table {
                    thead { tr {
                        th scope="col" { "Model" } th scope="col" { "Id" } th scope="col" { "FMI" }
                        th scope="col" { "Interfaces" } th scope="col" { "Variables" } th scope="col" { "Source" }
                        th scope="col" { span.visually-hidden { "Actions" } }
                    } }
                    tbody {
                        @for m in models {
                            @let (short, full) = ids(m);
                            tr.new-row[new == Some(&m.id)] #{ "model-" (m.id.as_str()[..12]) } {
                                td { a href=(paths::library_model(&full)) { (m.model_name) } }
                                td.id {
                                    code title=(full) { (short) }
                                    " "
                                    button.copy type="button" data-copy-text=(full) aria-label={ "Copy the id of " (m.model_name) } { "Copy" }
                                }
                                td { (m.fmi_version) }
                                td { (interfaces(m)) }
                                td.num { (m.info.variables.len()) }
                                td { @if m.library_id.is_some() { "built-in" } @else { "uploaded " (when(m.created_at)) } }
                                td.actions {
                                    a href=(run_this(m)) { "Run" }
                                    @if m.library_id.is_none() { " " (delete_form(s, m, true)) }
                                }
                            }
                        }
                    }
                }
            }
        }
    }
}

/// The run form with this model chosen.
fn run_this(m: &FmuRecord) -> String {
    super::with_query(
        paths::RUNS,
        [("fmu", m.library_id.as_deref().unwrap_or(m.id.as_str()))],
    )
}

/// Delete behind a disclosure, so the confirmation needs no JavaScript: the first click
/// only opens it. In the table (`in_place`) htmx swaps the table; otherwise a plain post.
fn delete_form(s: &Session, m: &FmuRecord, in_place: bool) -> Markup {
    let action = paths::library_delete(m.id.as_str());
    html! {
        details.confirm {
            summary { "Delete…" }
            form method="post" action=(action)
                hx-post=[in_place.then_some(&action)] hx-target=[in_place.then_some("#library-table")] hx-swap=[in_place.then_some("outerHTML")] {
                (csrf_field(s))
                p { "Delete " strong { (m.model_name) } " from your library? Your runs of it keep their results." }
                button.danger type="submit" aria-label={ "Delete " (m.model_name) } { "Delete" }
            }
        }
    }
}

/// The upload form. The CSRF token is its first field, before the file, so the handler can
/// check it before reading the upload (and it stays out of the URL, which logs keep).
fn upload_form(s: &Session) -> Markup {
    html! {
        form.inline-form.upload method="post" action=(paths::LIBRARY) enctype="multipart/form-data"
            hx-post=(paths::LIBRARY) hx-encoding="multipart/form-data" hx-target="#library-table" hx-swap="outerHTML" {
            (csrf_field(s))
            label for="fmu-file" { "Upload an FMU" }
            label.check {
                input type="checkbox" name="lenient" value="1";
                " Accept it despite errors (lenient)"
            }
            input #fmu-file type="file" name="file" accept=".fmu" required;
            button.primary type="submit" { "Upload" }
            progress #upload-progress max="100" value="0" hidden aria-label="Upload progress" {}
        }
    }
}

fn view(s: &Session, models: &[FmuRecord], problem: Option<&str>, notice: Notice<'_>) -> Markup {
    let content = html! {
        h1 { "Library" }
        p { "Built-in demo models (FMI 3.0 as " code { "lib:<Model>" } ", FMI 2.0 as " code { "lib:<Model>@fmi2" }
            ", each with Co-Simulation and Model Exchange) and the FMUs you uploaded. Uploads are private to you." }
        @if let Some(p) = problem { (layout::alert("error", p)) }
        (upload_form(s))
        (models_table(s, models, notice))
    };
    layout::page("Library", Nav::Library, Some(s), content)
}

/// What a page says after a plain form post brought the browser back to it.
#[derive(serde::Deserialize)]
pub struct After {
    /// A model was just deleted.
    #[serde(default)]
    deleted: Option<String>,
    /// This model was just uploaded.
    #[serde(default)]
    uploaded: Option<String>,
}

/// `GET /library` for browsers.
#[handler]
pub async fn index(
    state: Data<&State>,
    CurrentSession(s): CurrentSession,
    Query(after): Query<After>,
) -> Result<Response, WebError> {
    let models = fmus::list(&state, &s.user.id, None).await?;
    let notice = match after.deleted {
        Some(_) => Notice::Deleted("The model"),
        None => Notice::None,
    };
    Ok(html(StatusCode::OK, view(&s, &models, None, notice)))
}

/// `POST /library`: an upload from the form. A request whose CSRF token was not checked by
/// the session layer (no `X-CSRF-Token` header: a plain form post) must carry it as a
/// `csrf_token` field before the file; the file is not read otherwise.
#[handler]
pub async fn upload(
    req: &Request,
    state: Data<&State>,
    WantsFragment(fragment): WantsFragment,
    mut form: Multipart,
) -> Result<Response, WebError> {
    let (s, mut token_needed) = match (
        req.extensions().get::<Session>(),
        req.extensions().get::<CsrfInBody>(),
    ) {
        (Some(s), _) => (s.clone(), false),
        (None, Some(CsrfInBody(s))) => (s.clone(), true),
        (None, None) => return Err(WebError::LoginRequired),
    };
    let refused = || {
        WebError::Status(
            StatusCode::FORBIDDEN,
            "the form's security token is missing or out of date: reload the page and try again"
                .into(),
        )
    };
    let mut stored = None;
    let mut strictness = fmus::Strictness::Strict;
    while let Some(field) = form
        .next_field()
        .await
        .map_err(|e| AppError::Invalid(format!("the upload is malformed: {e}")))?
    {
        if field.name() == Some("csrf_token") {
            let mut token = Vec::new();
            field
                .into_async_read()
                .take(256)
                .read_to_end(&mut token)
                .await
                .map_err(|e| AppError::Invalid(format!("the upload is malformed: {e}")))?;
            let token = String::from_utf8_lossy(&token);
            if !csrf::token_matches(token.trim(), &s.csrf_token) {
                return Err(refused());
            }
            token_needed = false;
            continue;
        }
        if field.name() == Some("lenient") {
            strictness = fmus::Strictness::Lenient;
            continue;
        }
        if field.name() != Some("file") {
            continue;
        }
        if token_needed {
            return Err(refused());
        }
        let name = fmus::upload_name(field.file_name());
        let added = async {
            let file = fmus::receive(&state, &s.user.id, field.into_async_read()).await?;
            fmus::add_upload(&state, &s.user.id, file, &name, strictness).await
        };
        match added.await {
            Ok((record, _)) => stored = Some((record, name)),
            Err(e) => return refused_upload(&state, &s, fragment, &name, AppError::from(e)).await,
        }
    }
    let (record, name) =
        stored.ok_or_else(|| AppError::Invalid("choose an .fmu file to upload".into()))?;
    if fragment {
        let models = fmus::list(&state, &s.user.id, None).await?;
        let notice = Notice::Uploaded(&record, &name);
        return Ok(html(StatusCode::CREATED, models_table(&s, &models, notice)));
    }
    Ok(see_other(&super::with_query(
        &paths::library_model(record.id.as_str()),
        [("uploaded", "1")],
    )))
}

/// An upload that was not accepted: the message names the file and says what to do. htmx
/// shows it in the page's flash region; a plain post gets the library page again with it.
async fn refused_upload(
    state: &State,
    s: &Session,
    fragment: bool,
    file: &str,
    err: AppError,
) -> Result<Response, WebError> {
    let advice = match &err {
        AppError::TooLarge(_) | AppError::QuotaExceeded(_) => {
            " Upload a smaller FMU, or delete uploads you no longer need."
        }
        AppError::Invalid(_) | AppError::Unreadable(_) => {
            " Check that it is an FMU (a zip with modelDescription.xml) exported for FMI 2.0 or \
             3.0 with a 64-bit Linux binary."
        }
        _ => "",
    };
    let (status, message) = match WebError::from(err) {
        WebError::Status(status, message) if status.is_client_error() => (status, message),
        // Our own failure (already logged) is told as such, not as a problem with the file.
        other => return Err(other),
    };
    let message = format!("“{file}” was not uploaded: {message}{advice}");
    if fragment {
        return Err(WebError::Status(status, message));
    }
    let models = fmus::list(state, &s.user.id, None).await?;
    Ok(html(status, view(s, &models, Some(&message), Notice::None)))
}

/// `POST /library/{id}/delete`: removes one of the user's uploads (built-in models cannot
/// be). htmx gets the table back, saying so; a plain post goes back to the library.
#[handler]
pub async fn delete(
    state: Data<&State>,
    CurrentSession(s): CurrentSession,
    WantsFragment(fragment): WantsFragment,
    Path(id): Path<String>,
) -> Result<Response, WebError> {
    let m = fmus::resolve(&state, &s.user.id, &id).await?;
    if m.library_id.is_some() {
        return Err(AppError::Conflict("built-in models cannot be deleted".into()).into());
    }
    fmus::delete(&state, &s.user.id, &m.id).await?;
    if !fragment {
        return Ok(see_other(&super::with_query(
            paths::LIBRARY,
            [("deleted", "1")],
        )));
    }
    let models = fmus::list(&state, &s.user.id, None).await?;
    let notice = Notice::Deleted(&m.model_name);
    Ok(html(StatusCode::OK, models_table(&s, &models, notice)))
}

/// The model's validation report: the verdict, each problem with its code and position, and
/// the smoke test of each interface with its log.
fn validation_section(report: &validation::Report) -> Markup {
    let errors = report.error_count();
    let warnings = report.warning_count();
    let omitted = report.omitted_errors + report.omitted_warnings;
    let plural = |n: u64, what: &str| format!("{n} {what}{}", if n == 1 { "" } else { "s" });
    html! {
        section #validation aria-labelledby="validation-title" {
            h2 #validation-title { "Validation" }
            p.verdict {
                @if errors == 0 {
                    "Valid: " (plural(warnings, "warning")) "."
                } @else {
                    strong { "Accepted despite " (plural(errors, "error")) } " (uploaded as lenient), and "
                    (plural(warnings, "warning")) "."
                }
            }
            @if !report.problems.is_empty() {
                // A list, not a table: a problem reads as a sentence, and fits a phone.
                ol #validation-problems .problems {
                    @for p in &report.problems {
                        @let severity = match p.severity {
                            validation::Severity::Error => "error",
                            validation::Severity::Warning => "warning",
                        };
                        li {
                            strong class=(format!("severity {severity}")) { (severity) } " "
                            code { (p.code.as_str()) }
                            @if let (Some(line), Some(column)) = (p.line, p.column) {
                                span.muted { " · line " (line) ", column " (column) }
                            }
                            br;
                            @if !p.subject.is_empty() { code.subject { (p.subject) } ": " }
                            (p.message)
                        }
                    }
                }
                @if omitted > 0 {
                    p { "The first " (report.problems.len()) " problems are listed; " (omitted) " more were found." }
                }
            }
            @if report.smoke_tests.is_empty() {
                p { "No smoke test was run for this model (built-in models are run by the start-up self-test)." }
            } @else {
                ul.smoke-tests {
                    @for t in &report.smoke_tests {
                        li {
                            "Smoke test, " (t.interface.as_str().replace('_', " ")) ": "
                            strong { (match t.outcome {
                                validation::SmokeOutcome::Passed => "passed",
                                validation::SmokeOutcome::Failed => "failed",
                                validation::SmokeOutcome::Skipped => "skipped",
                            }) }
                            " (one step, " (crate::format::Number(t.start_time)) " to " (crate::format::Number(t.stop_time))
                            ", " (t.duration_ms) " ms)"
                            @if let Some(m) = &t.message { ": " (m) }
                            @if !t.log.is_empty() {
                                details { summary { "FMU log" } pre { (t.log) } }
                            }
                        }
                    }
                }
            }
        }
    }
}

/// `GET /library/{id}`: a model and its variables.
#[handler]
pub async fn model(
    state: Data<&State>,
    CurrentSession(s): CurrentSession,
    Path(id): Path<String>,
    Query(after): Query<After>,
) -> Result<Response, WebError> {
    let m = fmus::resolve(&state, &s.user.id, &id).await?;
    let i = &m.info;
    let content = html! {
        @if after.uploaded.is_some() {
            div.alert.alert-success role="status" { (m.model_name) " was uploaded." }
        }
        div.page-head {
            h1 { (m.model_name) }
            a.button.primary-link href=(run_this(&m)) { "Run this model" }
        }
        @if let Some(d) = &i.description { p { (d) } }
        dl.facts {
            dt { "Id" }
            dd {
                code #model-id { (m.id) } " "
                button.copy type="button" data-copy="#model-id" aria-label="Copy the id" { "Copy" }
            }
            @if let Some(l) = &m.library_id { dt { "Library id" } dd { code { (l) } } }
            dt { "FMI version" } dd { (m.fmi_version) }
            dt { "Interfaces" } dd { (interfaces(&m)) }
            dt { "Platforms" } dd { (i.platforms.join(", ")) }
            @if let Some(g) = &i.generation_tool { dt { "Generated by" } dd { (g) } }
            @if i.validation.is_none() { @for w in &i.warnings { dt { "Warning" } dd { (w) } } }
            @if let Some(e) = &i.default_experiment {
                dt { "Default experiment" }
                dd { "start " (e.start_time.unwrap_or(0.0)) ", stop " (e.stop_time.map_or("–".to_string(), |v| v.to_string()))
                     ", step " (e.step_size.map_or("–".to_string(), |v| v.to_string())) }
            }
        }
        @if let Some(report) = &i.validation { (validation_section(report)) }
        h2 { "Variables" }
        table #variables {
            thead { tr {
                th scope="col" { "Name" } th scope="col" { "Type" } th scope="col" { "Causality" } th scope="col" { "Variability" }
                th scope="col" { "Start" } th scope="col" { "Unit" } th scope="col" { "Description" } th scope="col" { "Aliases" }
            } }
            tbody {
                @for v in &i.variables {
                    tr {
                        td { code { (v.name) } }
                        td {
                            (v.type_with_shape())
                            @if !v.items.is_empty() {
                                " (" @for (n, item) in v.items.iter().enumerate() { @if n > 0 { ", " } (item.value) " = " (item.name) } ")"
                            }
                        }
                        td { (v.causality) } td { (v.variability) }
                        td { (v.start.as_deref().unwrap_or("")) } td { (v.unit.as_deref().unwrap_or("")) }
                        td { (v.description.as_deref().unwrap_or("")) }
                        td.aliases {
                            @for (n, a) in v.aliases.iter().enumerate() {
                                @if n > 0 { ", " }
                                code title=[a.description.as_deref()] { (a.name) }
                                @if let Some(unit) = &a.display_unit { " (" (unit) ")" }
                            }
                        }
                    }
                }
            }
        }
        @if m.library_id.is_none() {
            section.danger-zone aria-labelledby="delete-h" {
                h2 #delete-h { "Delete" }
                (delete_form(&s, &m, false))
            }
        }
        p { a href=(paths::LIBRARY) { "← All models" } }
    };
    Ok(html(
        StatusCode::OK,
        layout::page(&m.model_name, Nav::Library, Some(&s), content),
    ))
}
