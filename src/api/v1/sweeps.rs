//! `/api/v1/sweeps`: many cases of one model, designed, quoted, paid for together; and the
//! event streams of sweeps and runs.

use std::collections::HashMap;
use std::time::Duration;

use futures_util::StreamExt;
use futures_util::stream::BoxStream;
use poem::web::sse::Event;
use poem_openapi::param::{Header, Path, Query};
use poem_openapi::payload::{EventStream, Json, PlainText};
use poem_openapi::types::{Any, ToJSON};
use poem_openapi::{ApiResponse, Object, OpenApi, Tags};

use super::runs::{RunCreate, new_run};
use crate::api::auth::{ApiKey, Authed, ReadRuns};
use crate::api::body::JsonBody;
use crate::api::error::{OpError, declare_errors};
use crate::api::text::Text;
use crate::domain::error::AppError;
use crate::domain::ids::{RunId, SweepId};
use crate::domain::runs::{self, Starter};
use crate::domain::sweeps::design::{self, Axis, Bounds, Design, Distribution, Levels};
use crate::domain::sweeps::events::{CaseEnded, SweepEvent};
use crate::domain::sweeps::{self, Quote, SweepRequest, SweepView};
use crate::sim::kpi::{KpiKind, KpiSpec};
use crate::sim::plan::{Problem, Problems};
use crate::state::State;
use crate::store::sweeps::{CaseCounts, CaseRow};

#[derive(Tags)]
enum Tag {
    /// Sweeps: many cases of one model (a grid, a Latin hypercube, a Sobol sequence, or
    /// your own cases), with KPIs per case, quoted before they are paid for.
    Sweeps,
}

/// A sweep: one model, the settings its cases share, a design, and what to compute.
#[derive(Object, Clone)]
#[oai(deny_unknown_fields, example)]
pub struct SweepCreate {
    /// The model and the settings every case shares, as a run takes them (`start_values`
    /// here are the base the design's values replace). Without states, a reference or
    /// `log_fmi_calls`.
    pub base: RunCreate,
    pub design: DesignCreate,
    /// What to compute from each case's recorded points, at most 50; each variable must be
    /// recorded (in `base.outputs`, or among the model's outputs by default).
    #[oai(skip_serializing_if_is_none, validator(max_items = 50))]
    pub kpis: Option<Vec<KpiCreate>>,
    /// Keep each case's trajectories (its recorded points), served by
    /// `/sweeps/{id}/cases/{index}/result`; default `false`: only the KPIs.
    #[oai(skip_serializing_if_is_none)]
    pub trajectories: Option<bool>,
    /// A name for the sweep (default: the model's).
    #[oai(skip_serializing_if_is_none)]
    pub name: Option<Text>,
}

/// Exactly one of `grid`, `latin_hypercube`, `sobol`, `cases` and `csv`.
#[derive(Object, Clone)]
#[oai(deny_unknown_fields)]
pub struct DesignCreate {
    /// A full-factorial grid: every combination of the parameters' levels, the last
    /// parameter varying fastest.
    #[oai(skip_serializing_if_is_none, validator(max_items = 20))]
    pub grid: Option<Vec<GridParameter>>,
    #[oai(skip_serializing_if_is_none)]
    pub latin_hypercube: Option<LatinHypercubeCreate>,
    #[oai(skip_serializing_if_is_none)]
    pub sobol: Option<SobolCreate>,
    /// Explicit cases: each a map of start values by variable name (as a run's
    /// `start_values`).
    #[oai(skip_serializing_if_is_none)]
    pub cases: Option<Vec<HashMap<String, Any<serde_json::Value>>>>,
    /// Explicit cases as CSV: a header of variable names, then one case per line; an empty
    /// cell leaves the variable at its base value.
    #[oai(skip_serializing_if_is_none)]
    pub csv: Option<String>,
}

/// One parameter of a grid: exactly one of `values` and `range`.
#[derive(Object, Clone)]
#[oai(deny_unknown_fields)]
pub struct GridParameter {
    pub name: Text,
    /// Its levels: numbers, Booleans or strings (an enumeration's item).
    #[oai(skip_serializing_if_is_none, validator(max_items = 10000))]
    pub values: Option<Vec<Any<serde_json::Value>>>,
    #[oai(skip_serializing_if_is_none)]
    pub range: Option<RangeCreate>,
}

/// `num` evenly spaced numbers from `start` to `stop`, both included.
#[derive(Object, Clone)]
#[oai(deny_unknown_fields)]
pub struct RangeCreate {
    pub start: f64,
    pub stop: f64,
    #[oai(validator(minimum(value = "1")))]
    pub num: u32,
}

/// A Latin hypercube: `n` samples, each parameter's range cut into `n` strata of equal
/// probability with one sample in each.
#[derive(Object, Clone)]
#[oai(deny_unknown_fields)]
pub struct LatinHypercubeCreate {
    #[oai(validator(minimum(value = "1")))]
    pub n: u32,
    /// The same seed gives the same samples (default: one is drawn, and shown).
    #[oai(skip_serializing_if_is_none)]
    pub seed: Option<u64>,
    #[oai(validator(min_items = 1, max_items = 100))]
    pub parameters: Vec<SampledParameter>,
}

/// One sampled parameter: exactly one of `uniform` and `normal`.
#[derive(Object, Clone)]
#[oai(deny_unknown_fields)]
pub struct SampledParameter {
    pub name: Text,
    #[oai(skip_serializing_if_is_none)]
    pub uniform: Option<BoundsCreate>,
    #[oai(skip_serializing_if_is_none)]
    pub normal: Option<NormalCreate>,
}

#[derive(Object, Clone)]
#[oai(deny_unknown_fields)]
pub struct BoundsCreate {
    pub low: f64,
    pub high: f64,
}

#[derive(Object, Clone)]
#[oai(deny_unknown_fields)]
pub struct NormalCreate {
    pub mean: f64,
    /// Standard deviation (> 0).
    pub sd: f64,
}

/// A scrambled Sobol sequence (Owen scrambling, Burley 2020): `n` low-discrepancy points
/// (at most 65 536), each parameter scaled to its `[low, high)`.
#[derive(Object, Clone)]
#[oai(deny_unknown_fields)]
pub struct SobolCreate {
    #[oai(validator(minimum(value = "1")))]
    pub n: u32,
    /// The scrambling seed (default: one is drawn, and shown).
    #[oai(skip_serializing_if_is_none)]
    pub seed: Option<u32>,
    #[oai(validator(min_items = 1, max_items = 256))]
    pub parameters: Vec<SobolParameter>,
}

#[derive(Object, Clone)]
#[oai(deny_unknown_fields)]
pub struct SobolParameter {
    pub name: Text,
    pub low: f64,
    pub high: f64,
}

/// A KPI: `kind` of `variable` over the case's recorded points. Kinds: `final`, `min`,
/// `max`, `mean` (time-weighted), `integral` (trapezoid), `time_of_max`, `time_of_min`,
/// `first_crossing` (the first time the variable reaches `level`, interpolated linearly;
/// absent when it never does).
#[derive(Object, Clone)]
#[oai(deny_unknown_fields)]
pub struct KpiCreate {
    pub variable: Text,
    pub kind: Text,
    /// The level of `first_crossing`.
    #[oai(skip_serializing_if_is_none)]
    pub level: Option<f64>,
}

/// What a sweep would run and cost: nothing is reserved.
#[derive(Object)]
#[oai(example)]
pub struct SweepQuote {
    pub case_count: u32,
    /// The varied parameters, in order.
    pub parameters: Vec<String>,
    /// The first 100 cases: each its start values by name.
    pub cases: Vec<HashMap<String, Any<serde_json::Value>>>,
    pub credits_per_case: i64,
    /// What starting it holds: `case_count × credits_per_case`.
    pub cost: i64,
    pub balance: i64,
    /// Whether the balance covers `cost`.
    pub affordable: bool,
    /// The most cases the balance pays for.
    pub affordable_cases: u64,
}

/// Cases by their status.
#[derive(Object)]
#[oai(example)]
pub struct CaseCountsView {
    pub queued: u32,
    pub running: u32,
    pub succeeded: u32,
    pub failed: u32,
    pub cancelled: u32,
}

impl From<CaseCounts> for CaseCountsView {
    fn from(c: CaseCounts) -> Self {
        CaseCountsView {
            queued: c.queued,
            running: c.running,
            succeeded: c.succeeded,
            failed: c.failed,
            cancelled: c.cancelled,
        }
    }
}

/// A sweep and how far it has got.
#[derive(Object)]
#[oai(example)]
pub struct Sweep {
    /// `swp_…`.
    pub id: String,
    /// `queued`, `running`, `completed` (every case ran to its end), `failed` (the service
    /// could not run some cases, refunded, or every case failed) or `cancelled`.
    pub status: String,
    pub name: String,
    pub fmu_id: String,
    pub case_count: u32,
    pub parameters: Vec<String>,
    /// The KPIs' names, in order (`max(h)`, `first_crossing(h, 0.5)`).
    pub kpis: Vec<String>,
    pub counts: CaseCountsView,
    /// Ended cases over all cases.
    pub fraction: f64,
    /// Seconds until the rest end, at the pace so far (absent until some ended).
    #[oai(skip_serializing_if_is_none)]
    pub eta_seconds: Option<f64>,
    pub credits_per_case: i64,
    /// Held when the sweep started.
    pub credits_reserved: i64,
    /// Charged for the cases that ran (succeeded, or failed by the model).
    pub credits_charged: i64,
    /// Given back for cases refunded (not started, cancelled while queued, or failed by the
    /// service).
    pub credits_refunded: i64,
    pub created_at: String,
    #[oai(skip_serializing_if_is_none)]
    pub started_at: Option<String>,
    #[oai(skip_serializing_if_is_none)]
    pub finished_at: Option<String>,
    #[oai(skip_serializing_if_is_none)]
    pub error: Option<String>,
    /// The cases with their values and KPIs.
    pub cases_url: String,
    /// Server-Sent Events: progress, cases as they end, and the end.
    pub events_url: String,
}

/// One case of a sweep.
#[derive(Object)]
#[oai(example)]
pub struct SweepCase {
    pub index: u32,
    /// Its start values by name (the design's; the rest are the base's).
    pub values: HashMap<String, Any<serde_json::Value>>,
    /// `queued`, `running`, `succeeded`, `failed` or `cancelled`.
    pub status: String,
    /// Its KPIs by name, once it succeeded: a number, or `"NaN"`, `"Infinity"`,
    /// `"-Infinity"`; a KPI without a value (a level never crossed) is left out.
    #[oai(skip_serializing_if_is_none)]
    pub kpis: Option<HashMap<String, Any<serde_json::Value>>>,
    #[oai(skip_serializing_if_is_none)]
    pub error: Option<String>,
    #[oai(skip_serializing_if_is_none)]
    pub failure_kind: Option<String>,
    /// Whether it was charged (the runs' rule).
    pub charged: bool,
    #[oai(skip_serializing_if_is_none)]
    pub elapsed_ms: Option<f64>,
}

/// A page of a sweep's cases, by index.
#[derive(Object)]
#[oai(example)]
pub struct SweepCaseList {
    pub cases: Vec<SweepCase>,
    pub case_count: u32,
    /// The index to ask for next (`?from=`), while there are more.
    #[oai(skip_serializing_if_is_none)]
    pub next_from: Option<u32>,
}

/// Your sweeps, newest first, and how many there are.
#[derive(Object)]
#[oai(example)]
pub struct SweepList {
    pub sweeps: Vec<Sweep>,
    pub total: u64,
}

/// An event of a sweep's stream; its SSE `event` is the `type`: `progress` (`counts`,
/// `fraction`, `eta_seconds`), `cases` (`cases` that ended since the last event) or `end`
/// (`status`, `error`).
#[derive(Object)]
#[oai(example)]
pub struct SweepStreamEvent {
    #[oai(rename = "type")]
    pub kind: String,
    #[oai(skip_serializing_if_is_none)]
    pub counts: Option<CaseCountsView>,
    #[oai(skip_serializing_if_is_none)]
    pub fraction: Option<f64>,
    #[oai(skip_serializing_if_is_none)]
    pub eta_seconds: Option<f64>,
    #[oai(skip_serializing_if_is_none)]
    pub cases: Option<Vec<SweepCase>>,
    #[oai(skip_serializing_if_is_none)]
    pub status: Option<String>,
    #[oai(skip_serializing_if_is_none)]
    pub error: Option<String>,
}

impl SweepStreamEvent {
    fn of(kind: &str) -> SweepStreamEvent {
        SweepStreamEvent {
            kind: kind.into(),
            counts: None,
            fraction: None,
            eta_seconds: None,
            cases: None,
            status: None,
            error: None,
        }
    }

    fn end(status: String, error: Option<String>) -> SweepStreamEvent {
        SweepStreamEvent {
            status: Some(status),
            error,
            ..SweepStreamEvent::of("end")
        }
    }
}

/// An event of a run's stream; its SSE `event` is the `type`: `progress` (`status` and,
/// while it runs, the simulation `time` reached and its `fraction` of the run) or `end`
/// (`status`, `error`).
#[derive(Object)]
#[oai(example)]
pub struct RunStreamEvent {
    #[oai(rename = "type")]
    pub kind: String,
    pub status: String,
    #[oai(skip_serializing_if_is_none)]
    pub time: Option<f64>,
    #[oai(skip_serializing_if_is_none)]
    pub fraction: Option<f64>,
    #[oai(skip_serializing_if_is_none)]
    pub error: Option<String>,
}

#[derive(ApiResponse)]
enum CreateResponse {
    /// `dry_run`: what the sweep would run and cost.
    #[oai(status = 200)]
    Quote(Json<SweepQuote>),
    /// Started (or, for a repeated `Idempotency-Key`, the sweep it started): poll
    /// `Location` or follow `events_url`.
    #[oai(status = 202)]
    Accepted(Json<Box<Sweep>>, #[oai(header = "Location")] String),
}

#[derive(ApiResponse)]
enum CasesCsv {
    /// Every case: `index,status,<parameters>,<KPIs>,error`, one line each.
    #[oai(status = 200, content_type = "text/csv; charset=utf-8")]
    Csv(PlainText<String>),
}

declare_errors! {
    /// `POST /sweeps`: a design or case the model cannot take is 422 (naming each), a
    /// balance below the cost 402, too many sweeps at once 429.
    CreateSweepErrors: [
        BAD_REQUEST,
        UNAUTHORIZED,
        PAYMENT_REQUIRED,
        FORBIDDEN,
        NOT_FOUND,
        PAYLOAD_TOO_LARGE,
        UNSUPPORTED_MEDIA_TYPE,
        UNPROCESSABLE_ENTITY,
        TOO_MANY_REQUESTS,
        SERVICE_UNAVAILABLE,
    ];
    /// `POST /sweeps/quote`.
    QuoteSweepErrors: [
        BAD_REQUEST,
        UNAUTHORIZED,
        FORBIDDEN,
        NOT_FOUND,
        PAYLOAD_TOO_LARGE,
        UNSUPPORTED_MEDIA_TYPE,
        UNPROCESSABLE_ENTITY,
        TOO_MANY_REQUESTS,
    ];
    /// `GET /sweeps/{id}`.
    GetSweepErrors: [BAD_REQUEST, UNAUTHORIZED, FORBIDDEN, NOT_FOUND];
    /// `GET /sweeps`.
    ListSweepsErrors: [BAD_REQUEST, UNAUTHORIZED, FORBIDDEN];
    /// `GET /sweeps/{id}/cases`.
    ListSweepCasesErrors: [BAD_REQUEST, UNAUTHORIZED, FORBIDDEN, NOT_FOUND];
    /// `POST /sweeps/{id}/cancel`: 409 once it has ended.
    CancelSweepErrors: [BAD_REQUEST, UNAUTHORIZED, FORBIDDEN, NOT_FOUND, CONFLICT];
    /// `GET /sweeps/{id}/cases/{index}/result`: 409 while the case has no trajectory, 406
    /// for a format the caller cannot take or a MAT file of what MATLAB cannot hold.
    GetSweepCaseResultErrors: [BAD_REQUEST, UNAUTHORIZED, FORBIDDEN, NOT_FOUND, NOT_ACCEPTABLE, CONFLICT];
    /// `GET /sweeps/{id}/events`.
    SweepEventsErrors: [BAD_REQUEST, UNAUTHORIZED, FORBIDDEN, NOT_FOUND];
    /// `GET /runs/{id}/events`.
    RunEventsErrors: [BAD_REQUEST, UNAUTHORIZED, FORBIDDEN, NOT_FOUND];
}

/// Most cases one page of `/cases` lists.
const CASES_PAGE: u32 = 1_000;
/// How often a run's stream looks at the run.
const RUN_POLL: Duration = Duration::from_millis(250);
/// A comment line this often keeps proxies from closing a quiet stream.
const KEEP_ALIVE: Duration = Duration::from_secs(15);

pub struct SweepsApi;

#[OpenApi(tag = "Tag::Sweeps")]
impl SweepsApi {
    /// Starts a sweep (or, with `dry_run=true`, quotes it).
    ///
    /// Every case is checked against the model first (a 422 names each problem, as
    /// `design.cases[17].e`). Starting holds the whole cost (`case_count ×
    /// credits_per_case`; 402 when the balance is lower) in one transaction; each case then
    /// settles as a run does: charged when it ran, refunded when the service failed it.
    /// Cancelling refunds the cases not started. A retry with the same `Idempotency-Key` and
    /// body returns the original sweep and never charges twice.
    #[oai(path = "/sweeps", method = "post", operation_id = "createSweep")]
    async fn create(
        &self,
        state: poem::web::Data<&State>,
        key: ApiKey,
        /// Only check the sweep and say what it would cost; nothing is reserved.
        dry_run: Query<Option<bool>>,
        #[oai(name = "Idempotency-Key")] idempotency_key: Header<Option<String>>,
        body: JsonBody<SweepCreate>,
    ) -> Result<CreateResponse, OpError<CreateSweepErrors>> {
        let request = sweep_request(&state, body.0)?;
        if dry_run.0.unwrap_or(false) {
            let quote = sweeps::quote(&state, Starter::Key(key.0), request).await?;
            return Ok(CreateResponse::Quote(Json(quote_view(quote))));
        }
        let idempotency = idempotency_key
            .0
            .filter(|k| !k.trim().is_empty())
            .map(|k| k.chars().take(255).collect());
        let row = sweeps::start(&state, Starter::Key(key.0), request, idempotency).await?;
        let view = sweeps::get(&state, &row.user_id, &row.id).await?;
        let location = format!("/api/v1/sweeps/{}", row.id);
        Ok(CreateResponse::Accepted(
            Json(Box::new(sweep_view(&state, view))),
            location,
        ))
    }

    /// Quotes a sweep without starting it.
    ///
    /// Its cases (the first 100 and the count), its cost, and what you can afford; the same
    /// as `POST /sweeps?dry_run=true`. Nothing is reserved.
    #[oai(path = "/sweeps/quote", method = "post", operation_id = "quoteSweep")]
    async fn quote(
        &self,
        state: poem::web::Data<&State>,
        key: ApiKey,
        body: JsonBody<SweepCreate>,
    ) -> Result<Json<SweepQuote>, OpError<QuoteSweepErrors>> {
        let request = sweep_request(&state, body.0)?;
        let quote = sweeps::quote(&state, Starter::Key(key.0), request).await?;
        Ok(Json(quote_view(quote)))
    }

    /// One of your sweeps.
    ///
    /// Its cases counted by status, the credits held, charged and refunded, and while it
    /// runs an estimate of the time left.
    #[oai(path = "/sweeps/:id", method = "get", operation_id = "getSweep")]
    async fn get(
        &self,
        state: poem::web::Data<&State>,
        auth: Authed<ReadRuns>,
        id: Path<String>,
    ) -> Result<Json<Sweep>, OpError<GetSweepErrors>> {
        let view = sweeps::get(&state, &auth.principal.user_id, &SweepId::from(id.0)).await?;
        Ok(Json(sweep_view(&state, view)))
    }

    /// Your sweeps, newest first.
    ///
    /// Paged with `limit` and `offset`; each with its counts, as `GET /sweeps/{id}`.
    #[oai(path = "/sweeps", method = "get", operation_id = "listSweeps")]
    async fn list(
        &self,
        state: poem::web::Data<&State>,
        auth: Authed<ReadRuns>,
        /// Sweeps per page, 1–500.
        #[oai(
            default = "default_limit",
            validator(minimum(value = "1"), maximum(value = "500"))
        )]
        limit: Query<u32>,
        /// Sweeps to skip (at most 10¹⁵).
        #[oai(default, validator(maximum(value = "1000000000000000")))]
        offset: Query<u64>,
    ) -> Result<Json<SweepList>, OpError<ListSweepsErrors>> {
        let user = &auth.principal.user_id;
        let (rows, total) = sweeps::list(&state, user, limit.0, offset.0).await?;
        let mut out = Vec::with_capacity(rows.len());
        for row in rows {
            let view = sweeps::get(&state, user, &row.id).await?;
            out.push(sweep_view(&state, view));
        }
        Ok(Json(SweepList { sweeps: out, total }))
    }

    /// A sweep's cases: their values, status and KPIs.
    ///
    /// Pages of up to 1 000 cases by index, from `from`; follow `next_from` for the rest.
    /// `GET /sweeps/{id}/cases.csv` gives them all as CSV.
    #[oai(
        path = "/sweeps/:id/cases",
        method = "get",
        operation_id = "listSweepCases"
    )]
    async fn cases(
        &self,
        state: poem::web::Data<&State>,
        auth: Authed<ReadRuns>,
        id: Path<String>,
        /// The first index to list (default 0).
        from: Query<Option<u32>>,
    ) -> Result<Json<SweepCaseList>, OpError<ListSweepCasesErrors>> {
        let (user, id) = (&auth.principal.user_id, SweepId::from(id.0));
        let from = from.0.unwrap_or(0);
        let (sweep, cases) = sweeps::cases(&state, user, &id, from, CASES_PAGE).await?;
        let names = kpi_names(&sweep);
        let next_from = cases
            .last()
            .map(|c| c.index + 1)
            .filter(|next| *next < sweep.case_count && cases.len() as u32 == CASES_PAGE);
        Ok(Json(SweepCaseList {
            case_count: sweep.case_count,
            cases: cases.iter().map(|c| case_view(c, &names)).collect(),
            next_from,
        }))
    }

    /// A sweep's cases as CSV.
    ///
    /// Every case, one line each: `index,status,<parameters>,<KPIs>,error`; a number in
    /// full, a KPI without a value (or of a case that did not succeed) empty.
    #[oai(
        path = "/sweeps/:id/cases.csv",
        method = "get",
        operation_id = "getSweepCasesCsv"
    )]
    async fn cases_csv(
        &self,
        state: poem::web::Data<&State>,
        auth: Authed<ReadRuns>,
        id: Path<String>,
    ) -> Result<CasesCsv, OpError<GetSweepErrors>> {
        let id = SweepId::from(id.0);
        let csv = sweeps::cases_csv(&state, &auth.principal.user_id, &id).await?;
        Ok(CasesCsv::Csv(PlainText(csv)))
    }

    /// One case's trajectory: its recorded points, as a run's result.
    ///
    /// For a sweep started with `trajectories: true`, once the case succeeded (409 before,
    /// or for a sweep that keeps none). Formats as `GET /runs/{id}/result`: `?format=csv`,
    /// `parquet`, `mat`, or by `Accept`.
    #[oai(
        path = "/sweeps/:id/cases/:index/result",
        method = "get",
        operation_id = "getSweepCaseResult"
    )]
    async fn case_result(
        &self,
        state: poem::web::Data<&State>,
        auth: Authed<ReadRuns>,
        id: Path<String>,
        index: Path<u32>,
        format: Query<Option<super::runs::ResultFormat>>,
        req: &poem::Request,
    ) -> Result<super::runs::ResultStream, OpError<GetSweepCaseResultErrors>> {
        let accept = req
            .headers()
            .get(poem::http::header::ACCEPT)
            .and_then(|v| v.to_str().ok());
        let format = super::runs::chosen_format(format.0, accept)?;
        let id = SweepId::from(id.0);
        let result = sweeps::case_result(&state, &auth.principal.user_id, &id, index.0).await?;
        let result = result
            .checked_for(format)
            .await
            .map_err(AppError::from)?
            .map_err(|refusal| crate::api::error::ApiError::not_acceptable(refusal.to_string()))?;
        Ok(super::runs::ResultStream::named(
            result,
            format,
            format!("{id}-case-{}", index.0),
        ))
    }

    /// Cancels a sweep.
    ///
    /// The cases not started are refunded at once; those running stop and are charged as a
    /// cancelled running run is. The answer is the sweep once they have stopped. 409 once it
    /// has ended.
    #[oai(
        path = "/sweeps/:id/cancel",
        method = "post",
        operation_id = "cancelSweep"
    )]
    async fn cancel(
        &self,
        state: poem::web::Data<&State>,
        auth: Authed<ReadRuns>,
        id: Path<String>,
    ) -> Result<Json<Sweep>, OpError<CancelSweepErrors>> {
        let view = sweeps::cancel(&state, &auth.principal.user_id, &SweepId::from(id.0)).await?;
        Ok(Json(sweep_view(&state, view)))
    }

    /// A sweep's events (Server-Sent Events).
    ///
    /// First a `progress` event (the counts now); then `cases` (cases as they end, with
    /// their KPIs) and `progress` as they happen; then `end` with the sweep's status, and
    /// the stream closes. A sweep that has ended answers `progress` and `end` at once.
    #[oai(
        path = "/sweeps/:id/events",
        method = "get",
        operation_id = "sweepEvents"
    )]
    async fn sweep_events(
        &self,
        state: poem::web::Data<&State>,
        auth: Authed<ReadRuns>,
        id: Path<String>,
    ) -> Result<EventStream<BoxStream<'static, SweepStreamEvent>>, OpError<SweepEventsErrors>> {
        let id = SweepId::from(id.0);
        let (view, events) = sweeps::watch::watch(&state, &auth.principal.user_id, &id).await?;
        let names = kpi_names(&view.sweep);
        let total = view.sweep.case_count;
        let stream = events
            .map(move |event| stream_event(event, &names, total))
            .boxed();
        Ok(EventStream::new(stream)
            .keep_alive(KEEP_ALIVE)
            .to_event(|e| Event::message(e.to_json_string()).event_type(e.kind.clone())))
    }

    /// A run's events (Server-Sent Events).
    ///
    /// `progress` (its status and, while running, the simulation time reached) when it
    /// changes, then `end` with its final status, and the stream closes.
    #[oai(path = "/runs/:id/events", method = "get", operation_id = "runEvents")]
    async fn run_events(
        &self,
        state: poem::web::Data<&State>,
        auth: Authed<ReadRuns>,
        id: Path<String>,
    ) -> Result<EventStream<BoxStream<'static, RunStreamEvent>>, OpError<RunEventsErrors>> {
        let (user, id) = (auth.principal.user_id.clone(), RunId::from(id.0));
        runs::get(&state.store, &user, &id).await?;
        let state = state.clone();
        let stream = futures_util::stream::unfold(
            Some((state, user, id, None::<(String, Option<f64>)>)),
            |s| async move {
                let (state, user, id, mut last) = s?;
                loop {
                    let run = runs::get(&state.store, &user, &id).await.ok()?;
                    if run.status.is_finished() {
                        let event = RunStreamEvent {
                            kind: "end".into(),
                            status: run.status.to_string(),
                            time: None,
                            fraction: None,
                            error: run.error,
                        };
                        return Some((event, None));
                    }
                    let progress = runs::progress(&state, &run);
                    let now = (run.status.to_string(), progress.as_ref().map(|p| p.time));
                    if last.as_ref() != Some(&now) {
                        last = Some(now.clone());
                        let event = RunStreamEvent {
                            kind: "progress".into(),
                            status: now.0,
                            time: now.1,
                            fraction: progress.map(|p| p.fraction()),
                            error: None,
                        };
                        return Some((event, Some((state, user, id, last))));
                    }
                    tokio::time::sleep(RUN_POLL).await;
                }
            },
        )
        .boxed();
        Ok(EventStream::new(stream)
            .keep_alive(KEEP_ALIVE)
            .to_event(|e| Event::message(e.to_json_string()).event_type(e.kind.clone())))
    }
}

/// A sweep's event as the stream describes it.
fn stream_event(event: SweepEvent, names: &[String], total: u32) -> SweepStreamEvent {
    match event {
        SweepEvent::Cases(cases) => SweepStreamEvent {
            cases: Some(cases.iter().map(|c| ended_view(c, names)).collect()),
            ..SweepStreamEvent::of("cases")
        },
        SweepEvent::Progress {
            counts,
            eta_seconds,
        } => progress_event(counts, total, eta_seconds),
        SweepEvent::End { status, error } => SweepStreamEvent::end(status.to_string(), error),
    }
}

fn default_limit() -> u32 {
    50
}

fn problems(list: Vec<Problem>) -> AppError {
    AppError::Problems(Problems(list))
}

/// The domain's sweep request, or every problem with the design and KPIs.
fn sweep_request(state: &State, body: SweepCreate) -> Result<SweepRequest, AppError> {
    let mut base = new_run(body.base, body.name.map(|n| n.0))?;
    base.name = base.name.filter(|n| !n.trim().is_empty());
    let max = state.config.max_sweep_cases;
    let (design, shown) = design_of(body.design, u64::from(max))?;
    let mut kpis = Vec::new();
    let mut found = Vec::new();
    for (i, k) in body.kpis.unwrap_or_default().into_iter().enumerate() {
        let kind = match (k.kind.0.as_str(), k.level) {
            ("final", None) => KpiKind::Final,
            ("min", None) => KpiKind::Min,
            ("max", None) => KpiKind::Max,
            ("mean", None) => KpiKind::Mean,
            ("integral", None) => KpiKind::Integral,
            ("time_of_max", None) => KpiKind::TimeOfMax,
            ("time_of_min", None) => KpiKind::TimeOfMin,
            ("first_crossing", Some(level)) if level.is_finite() => {
                KpiKind::FirstCrossing { level }
            }
            ("first_crossing", _) => {
                found.push(Problem::new(
                    format!("kpis[{i}].level"),
                    "first_crossing needs a finite level",
                ));
                continue;
            }
            (other, Some(_)) if KPI_KINDS.contains(&other) => {
                found.push(Problem::new(
                    format!("kpis[{i}].level"),
                    "only first_crossing takes a level",
                ));
                continue;
            }
            (other, _) => {
                found.push(Problem::new(
                    format!("kpis[{i}].kind"),
                    format!(
                        "'{other}' is not a KPI: use one of {}",
                        KPI_KINDS.join(", ")
                    ),
                ));
                continue;
            }
        };
        kpis.push(KpiSpec {
            variable: k.variable.0,
            kind,
        });
    }
    if !found.is_empty() {
        return Err(problems(found));
    }
    Ok(SweepRequest {
        base,
        design,
        design_shown: shown,
        kpis,
        trajectories: body.trajectories.unwrap_or(false),
    })
}

const KPI_KINDS: [&str; 8] = [
    "final",
    "min",
    "max",
    "mean",
    "integral",
    "time_of_max",
    "time_of_min",
    "first_crossing",
];

/// A JSON start value as a literal (as a run's `start_values` take them).
fn literal(value: serde_json::Value, field: &str) -> Result<String, Problem> {
    match value {
        serde_json::Value::Number(n) => Ok(n.to_string()),
        serde_json::Value::Bool(b) => Ok(b.to_string()),
        serde_json::Value::String(s) => Ok(s),
        array @ serde_json::Value::Array(_) => Ok(array.to_string()),
        other => Err(Problem::new(
            field,
            format!("a value must be a number, boolean, string or array, not {other}"),
        )),
    }
}

/// The domain's design, and the design as it will be shown (with the seeds drawn).
fn design_of(body: DesignCreate, max_cases: u64) -> Result<(Design, serde_json::Value), AppError> {
    let given = [
        body.grid.is_some(),
        body.latin_hypercube.is_some(),
        body.sobol.is_some(),
        body.cases.is_some(),
        body.csv.is_some(),
    ]
    .iter()
    .filter(|g| **g)
    .count();
    if given != 1 {
        return Err(problems(vec![Problem::new(
            "design",
            "give exactly one of grid, latin_hypercube, sobol, cases and csv",
        )]));
    }
    let mut found = Vec::new();
    let design = if let Some(grid) = body.grid {
        let mut axes = Vec::new();
        for p in grid {
            let field = format!("design.grid.{}", p.name.0);
            let levels = match (p.values, p.range) {
                (Some(values), None) => {
                    let mut literals = Vec::new();
                    for v in values {
                        match literal(v.0, &field) {
                            Ok(l) => literals.push(l),
                            Err(p) => found.push(p),
                        }
                    }
                    Levels::Values(literals)
                }
                (None, Some(r)) => Levels::Range {
                    start: r.start,
                    stop: r.stop,
                    num: r.num,
                },
                _ => {
                    found.push(Problem::new(field, "give exactly one of values and range"));
                    continue;
                }
            };
            axes.push(Axis {
                name: p.name.0,
                levels,
            });
        }
        Design::Grid(axes)
    } else if let Some(lhs) = body.latin_hypercube {
        let mut parameters = Vec::new();
        for p in lhs.parameters {
            let field = format!("design.latin_hypercube.{}", p.name.0);
            let distribution = match (p.uniform, p.normal) {
                (Some(b), None) => Distribution::Uniform {
                    low: b.low,
                    high: b.high,
                },
                (None, Some(n)) => Distribution::Normal {
                    mean: n.mean,
                    sd: n.sd,
                },
                _ => {
                    found.push(Problem::new(
                        field,
                        "give exactly one of uniform and normal",
                    ));
                    continue;
                }
            };
            parameters.push((p.name.0, distribution));
        }
        Design::LatinHypercube {
            n: lhs.n,
            seed: lhs.seed.unwrap_or_else(rand::random),
            parameters,
        }
    } else if let Some(sobol) = body.sobol {
        Design::Sobol {
            n: sobol.n,
            seed: sobol.seed.unwrap_or_else(rand::random),
            parameters: sobol
                .parameters
                .into_iter()
                .map(|p| {
                    (
                        p.name.0,
                        Bounds {
                            low: p.low,
                            high: p.high,
                        },
                    )
                })
                .collect(),
        }
    } else if let Some(cases) = body.cases {
        if cases.len() as u64 > max_cases {
            return Err(problems(vec![Problem::new(
                "design.cases",
                format!(
                    "a sweep may have at most {max_cases} cases, not {}",
                    cases.len()
                ),
            )]));
        }
        let mut out = Vec::with_capacity(cases.len());
        for (i, case) in cases.into_iter().enumerate() {
            let mut values: Vec<(String, String)> = Vec::new();
            for (name, value) in case {
                match literal(value.0, &format!("design.cases[{i}].{name}")) {
                    Ok(l) => values.push((name, l)),
                    Err(p) => found.push(p),
                }
            }
            values.sort();
            out.push(values);
        }
        Design::Cases(out)
    } else {
        let text = body.csv.unwrap_or_default();
        Design::Cases(design::cases_from_csv(&text, max_cases).map_err(AppError::Problems)?)
    };
    if !found.is_empty() {
        return Err(problems(found));
    }
    let shown = design.shown();
    Ok((design, shown))
}

/// A literal as JSON: a number when it reads as one, a Boolean, else the text.
pub fn literal_value(literal: &str) -> serde_json::Value {
    match literal {
        "true" => serde_json::Value::Bool(true),
        "false" => serde_json::Value::Bool(false),
        _ => serde_json::from_str::<serde_json::Number>(literal)
            .map(serde_json::Value::Number)
            .unwrap_or_else(|_| serde_json::Value::String(literal.to_string())),
    }
}

/// A KPI's value as JSON: the number, or the name of a non-finite one.
fn kpi_value(v: f64) -> serde_json::Value {
    serde_json::Number::from_f64(v).map_or_else(
        || {
            serde_json::Value::String(
                crate::format::non_finite_name(v)
                    .unwrap_or("NaN")
                    .to_string(),
            )
        },
        serde_json::Value::Number,
    )
}

fn quote_view(q: Quote) -> SweepQuote {
    SweepQuote {
        case_count: q.case_count,
        affordable: q.affordable(),
        parameters: q.parameters,
        cases: q
            .cases
            .iter()
            .map(|case| {
                case.iter()
                    .map(|(n, l)| (n.clone(), Any(literal_value(l))))
                    .collect()
            })
            .collect(),
        credits_per_case: q.credits_per_case.get(),
        cost: q.cost.get(),
        balance: q.balance.get(),
        affordable_cases: q.affordable_cases,
    }
}

fn kpi_names(sweep: &crate::store::sweeps::SweepRow) -> Vec<String> {
    sweep
        .stored()
        .map(|s| s.kpis.iter().map(KpiSpec::name).collect())
        .unwrap_or_default()
}

fn kpis_view(
    kpis: &Option<Vec<Option<f64>>>,
    names: &[String],
) -> Option<HashMap<String, Any<serde_json::Value>>> {
    kpis.as_ref().map(|values| {
        names
            .iter()
            .zip(values)
            .filter_map(|(name, v)| v.map(|v| (name.clone(), Any(kpi_value(v)))))
            .collect()
    })
}

fn case_view(c: &CaseRow, names: &[String]) -> SweepCase {
    SweepCase {
        index: c.index,
        values: c
            .start_values
            .iter()
            .map(|(n, l)| (n.clone(), Any(literal_value(l))))
            .collect(),
        status: c.status.to_string(),
        kpis: kpis_view(&c.kpis, names),
        error: c.error.clone(),
        failure_kind: c.failure_kind.map(|k| k.as_str().to_string()),
        charged: c.charged,
        elapsed_ms: c.elapsed_ms,
    }
}

fn ended_view(c: &CaseEnded, names: &[String]) -> SweepCase {
    SweepCase {
        index: c.index,
        values: HashMap::new(),
        status: c.status.to_string(),
        kpis: kpis_view(&c.kpis, names),
        error: c.error.clone(),
        failure_kind: None,
        charged: c.charged,
        elapsed_ms: None,
    }
}

fn progress_event(counts: CaseCounts, total: u32, eta_seconds: Option<f64>) -> SweepStreamEvent {
    SweepStreamEvent {
        fraction: Some(fraction(&counts, total)),
        counts: Some(counts.into()),
        eta_seconds,
        ..SweepStreamEvent::of("progress")
    }
}

fn fraction(counts: &CaseCounts, total: u32) -> f64 {
    if total == 0 {
        1.0
    } else {
        f64::from(counts.ended()) / f64::from(total)
    }
}

pub fn sweep_view(state: &State, view: SweepView) -> Sweep {
    let SweepView { sweep, counts } = view;
    let per_case = sweep.credits_per_case.get();
    let refunded_cases = counts.ended() - counts.charged;
    let eta_seconds = (!sweep.status.is_finished())
        .then(|| {
            state
                .sweeps
                .eta_seconds(&sweep.id, counts.queued + counts.running)
        })
        .flatten();
    Sweep {
        kpis: kpi_names(&sweep),
        parameters: sweep.parameter_names(),
        fraction: fraction(&counts, sweep.case_count),
        counts: counts.into(),
        eta_seconds,
        credits_per_case: per_case,
        credits_reserved: sweep.credits_reserved.get(),
        credits_charged: per_case * i64::from(counts.charged),
        credits_refunded: per_case * i64::from(refunded_cases),
        created_at: crate::api::time(sweep.created_at),
        started_at: sweep.started_at.map(crate::api::time),
        finished_at: sweep.finished_at.map(crate::api::time),
        cases_url: format!("/api/v1/sweeps/{}/cases", sweep.id),
        events_url: format!("/api/v1/sweeps/{}/events", sweep.id),
        status: sweep.status.to_string(),
        name: sweep.name,
        fmu_id: sweep.fmu_id.to_string(),
        case_count: sweep.case_count,
        error: sweep.error,
        id: sweep.id.into_string(),
    }
}
