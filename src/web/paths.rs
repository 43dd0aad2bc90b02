//! Route paths, shared by the router and every link, form and `hx-*` attribute, so a link
//! cannot drift from its route.

use crate::domain::ids::{KeyId, RunId, SweepId};

pub const HOME: &str = "/";
/// Also named in mails by the domain (`crate::links`).
pub use crate::links::LOGIN;
pub const REGISTER: &str = "/register";
pub const LOGOUT: &str = "/logout";
pub const DASHBOARD: &str = "/dashboard";
pub const KEYS: &str = "/api-keys";
pub const KEY_REVOKE: &str = "/api-keys/:id/revoke";
pub const KEY_PRIMARY: &str = "/api-keys/:id/primary";
pub const USAGE: &str = "/usage";
pub const USAGE_EXPORT: &str = "/usage/export";
pub const RUNS: &str = "/runs";
pub const RUN: &str = "/runs/:id";
pub const RUN_ROW: &str = "/runs/:id/row";
/// A run's results as a file, one path a format (`result.csv`, `result.json`, `result.mat`,
/// `result.parquet`): [`run_result`].
pub const RUN_CSV: &str = "/runs/:id/result.csv";
pub const RUN_JSON: &str = "/runs/:id/result.json";
pub const RUN_MAT: &str = "/runs/:id/result.mat";
pub const RUN_PARQUET: &str = "/runs/:id/result.parquet";
pub const RUN_FIELDS: &str = "/runs/form-fields";
/// A run's interactive plot data (downsampled to `?width=`) and its SVG export.
pub const RUN_PLOT_JSON: &str = "/runs/:id/plot.json";
pub const RUN_PLOT_SVG: &str = "/runs/:id/plot.svg";
/// 2–5 runs side by side (`?run=…&run=…[&var=…]`), and their overlay as an SVG file.
pub const RUNS_COMPARE: &str = "/runs/compare";
pub const RUNS_COMPARE_SVG: &str = "/runs/compare/plot.svg";
pub const RUN_CANCEL: &str = "/runs/:id/cancel";
pub const RUN_AGAIN: &str = "/runs/:id/again";
pub const LIBRARY: &str = "/library";
pub const LIBRARY_MODEL: &str = "/library/:id";
pub const LIBRARY_DELETE: &str = "/library/:id/delete";
/// Also named by the domain (`crate::links`), which may not import this face.
pub use crate::links::BILLING;
pub const BILLING_CHECKOUT: &str = "/billing/checkout";
pub const BILLING_PORTAL: &str = "/billing/portal";
pub const BILLING_STATUS: &str = "/billing/status";
/// Where Stripe delivers webhook events (also `/api/v1/billing/webhook`).
pub const STRIPE_WEBHOOK: &str = "/stripe/webhook";
/// The account page and its forms.
pub const ACCOUNT: &str = "/account";
pub const ACCOUNT_NAME: &str = "/account/name";
pub const ACCOUNT_PASSWORD: &str = "/account/password";
pub const ACCOUNT_SESSION_END: &str = "/account/sessions/:id/end";
pub const ACCOUNT_DELETE: &str = "/account/delete";
/// Also named by the domain (the link `admin reset-link` prints).
pub use crate::links::RESET_PASSWORD;
pub use crate::links::{CONFIRM_SIGNUP, FORGOT_PASSWORD};
/// The webhooks page and its forms.
pub const WEBHOOKS: &str = "/webhooks";
pub const WEBHOOK_ENABLED: &str = "/webhooks/:id/enabled";
pub const WEBHOOK_ROTATE: &str = "/webhooks/:id/rotate";
pub const WEBHOOK_DELETE: &str = "/webhooks/:id/delete";
pub const WEBHOOK_RESEND: &str = "/webhooks/deliveries/:id/resend";
/// Sweeps: the list and the New sweep form, a sweep's page, its live progress (Server-Sent
/// Events of HTML fragments), its cases as files, and an overlay of some cases' trajectories.
pub const SWEEPS: &str = "/sweeps";
pub const SWEEP: &str = "/sweeps/:id";
pub const SWEEP_EVENTS: &str = "/sweeps/:id/events";
pub const SWEEP_CANCEL: &str = "/sweeps/:id/cancel";
pub const SWEEP_CASES_CSV: &str = "/sweeps/:id/cases.csv";
pub const SWEEP_CASES_PARQUET: &str = "/sweeps/:id/cases.parquet";
pub const SWEEP_SCATTER_SVG: &str = "/sweeps/:id/scatter.svg";
pub const SWEEP_OVERLAY: &str = "/sweeps/:id/overlay";
pub const API_V1: &str = "/api/v1";
pub const API_DOCS: &str = "/api/docs";
pub const OPENAPI_JSON: &str = "/api/openapi.json";

/// `WEBHOOK_ENABLED`, `WEBHOOK_ROTATE` or `WEBHOOK_DELETE` (`route`) for one endpoint, or
/// `WEBHOOK_RESEND` for one delivery.
pub fn webhook(route: &str, id: &str) -> String {
    route.replace(":id", id)
}

/// `KEY_PRIMARY` for one key.
pub fn key_primary(id: &KeyId) -> String {
    KEY_PRIMARY.replace(":id", id.as_str())
}

/// `KEY_REVOKE` for one key.
pub fn key_revoke(id: &KeyId) -> String {
    KEY_REVOKE.replace(":id", id.as_str())
}

/// `LIBRARY_DELETE` for one upload.
pub fn library_delete(id: &str) -> String {
    LIBRARY_DELETE.replace(":id", id)
}

/// `LIBRARY_MODEL` for one FMU (id or `lib:` name).
pub fn library_model(id: &str) -> String {
    LIBRARY_MODEL.replace(":id", id)
}

/// `ACCOUNT_SESSION_END` for one session (the hex id the account page lists).
pub fn account_session_end(id: &str) -> String {
    ACCOUNT_SESSION_END.replace(":id", id)
}

pub fn run(id: &RunId) -> String {
    RUN.replace(":id", id.as_str())
}

pub fn run_row(id: &RunId) -> String {
    RUN_ROW.replace(":id", id.as_str())
}

pub fn run_plot_json(id: &RunId) -> String {
    RUN_PLOT_JSON.replace(":id", id.as_str())
}

pub fn run_plot_svg(id: &RunId) -> String {
    RUN_PLOT_SVG.replace(":id", id.as_str())
}

pub fn run_cancel(id: &RunId) -> String {
    RUN_CANCEL.replace(":id", id.as_str())
}

pub fn run_again(id: &RunId) -> String {
    RUN_AGAIN.replace(":id", id.as_str())
}

/// The run form filled in with a run's settings.
pub fn edit_run(id: &RunId) -> String {
    format!("{RUNS}?from={}#new-run", id.as_str())
}

/// The download of a run's results in `format`.
pub fn run_result(id: &RunId, format: crate::sim::result_file::Format) -> String {
    format!("/runs/{}/result.{}", id.as_str(), format.extension())
}

/// One of the `SWEEP…` paths for one sweep.
pub fn sweep_path(template: &str, id: &SweepId) -> String {
    template.replace(":id", id.as_str())
}

pub fn sweep(id: &SweepId) -> String {
    sweep_path(SWEEP, id)
}
