//! The spec's examples: one value of each schema a client sends or reads, built as the Rust
//! type itself so that an example cannot drift from what it shows. They are the answers a
//! real run of the built-in `lib:BouncingBall` gives (ids and times shortened).

use std::collections::HashMap;

use poem_openapi::types::{Any, Example};
use serde_json::json;

use super::account::Account;
use super::billing::{
    BillingOverview, CheckoutRequest, CheckoutStarted, LedgerEntry, LedgerKind, PlanInfo,
    PortalLink,
};
use super::fmus::{
    DefaultExperiment, Fmu, FmuAlias, FmuDimension, FmuInterface, FmuItem, FmuReference,
    FmuVariable, FmuWarning, UploadReferenceCheck,
};
use super::keys::{ApiKeyInfo, CreatedKey, NewKeyRequest, PublicKeyInfo};
use super::runs::{
    ReferenceCheck, ReferenceCreate, ResultType, Run, RunCreate, RunList, RunProgress, RunResult,
    RunStatusName, ValueTypeName, VariableCheck,
};
use super::states::FmuState;
use super::usage::{UsageItem, UsageList};
use super::validation::{
    SmokeInterface, SmokeOutcome, SmokeTest, ValidationProblem, ValidationReport,
};
use super::webhooks::{
    DeliveryStatusName, EventName, Webhook, WebhookAttempt, WebhookCreate, WebhookDelivery,
    WebhookUpdate, WebhookWithSecret,
};
use crate::api::result_value::ResultValue;
use crate::api::text::Text;
use crate::request::{ErrorBody, ErrorCode, FieldProblem};

const KEY_ID: &str = "key_485b109f936e739b";
const RUN_ID: &str = "run_980aaa8cb6b67301";
const FMU_HASH: &str = "29d6e99d5e923363434c4f41e52845b65f8b40f71d0cf576185e7e734fb55c0e";
const AT: &str = "2026-11-26T18:45:25Z";

impl Example for Account {
    fn example() -> Self {
        Account {
            user_id: "usr_37756eb90b7dde5c".into(),
            email: "ada@example.com".into(),
            name: None,
            credits: 99,
            created_at: AT.into(),
            api_key_id: Some(KEY_ID.into()),
            storage_used_bytes: 16293,
            storage_quota_bytes: 1 << 30,
        }
    }
}

impl Example for ApiKeyInfo {
    fn example() -> Self {
        ApiKeyInfo {
            id: KEY_ID.into(),
            label: "CI pipeline".into(),
            created_at: AT.into(),
            expires_at: None,
            last_used_at: Some(AT.into()),
            revoked_at: None,
            active: true,
            run_count: 1,
        }
    }
}

impl Example for NewKeyRequest {
    fn example() -> Self {
        NewKeyRequest {
            label: Some(Text("CI pipeline".into())),
        }
    }
}

impl Example for CreatedKey {
    fn example() -> Self {
        CreatedKey {
            key: ApiKeyInfo::example(),
            api_key: "fmugw_ErQBCkoKFHVzcl9jOGY1YWM5N2Ji…".into(),
        }
    }
}

impl Example for PublicKeyInfo {
    fn example() -> Self {
        PublicKeyInfo {
            algorithm: "ed25519".into(),
            public_key: "ed25519/7ccc29b2bbf7bed290cf1de09a2189eb0de851c9e2287bdcab590a2bd536dc79"
                .into(),
        }
    }
}

impl Example for UsageItem {
    fn example() -> Self {
        UsageItem {
            id: 1,
            date: AT.into(),
            fmu_name: "lib:BouncingBall".into(),
            credits: 1,
            api_key_id: Some(KEY_ID.into()),
            run_id: Some(RUN_ID.into()),
        }
    }
}

impl Example for UsageList {
    fn example() -> Self {
        UsageList {
            items: vec![UsageItem::example()],
            total: 1,
            limit: 50,
            offset: 0,
        }
    }
}

fn interface(variable_step: bool, event_mode: bool) -> FmuInterface {
    FmuInterface {
        model_identifier: "BouncingBall".into(),
        can_handle_variable_communication_step_size: variable_step,
        can_get_and_set_fmu_state: true,
        can_serialize_fmu_state: true,
        needs_completed_integrator_step: false,
        provides_directional_derivatives: false,
        has_event_mode: event_mode,
    }
}

impl Example for FmuVariable {
    fn example() -> Self {
        FmuVariable {
            name: "h".into(),
            value_reference: 1,
            type_: "Float64".into(),
            causality: "output".into(),
            variability: "continuous".into(),
            initial: Some("exact".into()),
            start: Some("1".into()),
            unit: Some("m".into()),
            description: Some("Height of the ball".into()),
            min: Some(0.0),
            max: None,
            shape: None,
            items: None,
            aliases: vec![FmuAlias::example()],
        }
    }
}

impl Example for FmuDimension {
    fn example() -> Self {
        FmuDimension {
            size: Some(3),
            parameter: Some("n".into()),
        }
    }
}

impl Example for FmuItem {
    fn example() -> Self {
        FmuItem {
            name: "Option 1".into(),
            value: 1,
        }
    }
}

impl Example for FmuAlias {
    fn example() -> Self {
        FmuAlias {
            name: "height_ft".into(),
            description: Some("Height of the ball, shown in feet".into()),
            display_unit: Some("ft".into()),
        }
    }
}

impl Example for Fmu {
    fn example() -> Self {
        Fmu {
            log_categories: vec![
                "logEvents".into(),
                "logStatusWarning".into(),
                "logStatusError".into(),
            ],
            id: FMU_HASH.into(),
            library_id: Some("lib:BouncingBall".into()),
            model_name: "BouncingBall".into(),
            fmi_version: "3.0".into(),
            instantiation_token: "{6839b749-c407-49d3-8ee1-e92ff8548400}".into(),
            description: Some(
                "A ball that bounces on the floor, losing energy at every bounce".into(),
            ),
            generation_tool: Some("FMU Gateway demo models".into()),
            size_bytes: 16293,
            created_at: AT.into(),
            file_name: None,
            co_simulation: Some(interface(true, true)),
            model_exchange: Some(interface(false, false)),
            default_experiment: Some(DefaultExperiment {
                start_time: Some(0.0),
                stop_time: Some(3.0),
                tolerance: None,
                step_size: Some(0.01),
            }),
            platforms: vec!["x86_64-linux".into()],
            units: vec!["s".into(), "m".into(), "m/s".into(), "m/s2".into()],
            variables: vec![FmuVariable::example()],
            warnings: vec![],
            references: None,
            references_problem: None,
            upload_reference_checks: None,
        }
    }
}

impl Example for UploadReferenceCheck {
    fn example() -> Self {
        UploadReferenceCheck {
            name: "short".into(),
            check: Some(ReferenceCheck::example()),
            error: None,
        }
    }
}

impl Example for FmuReference {
    fn example() -> Self {
        FmuReference {
            name: "short".into(),
            description: Some("x = exp(-t) from 0 to 1 s".into()),
            start_time: Some(0.0),
            stop_time: Some(1.0),
            output_interval: Some(0.01),
            tolerance: None,
            unsupported: None,
        }
    }
}

impl Example for FmuWarning {
    fn example() -> Self {
        FmuWarning::from(&validation_problem())
    }
}

/// What an FMU whose author wrote `unit="ft"` without defining it gets.
fn validation_problem() -> crate::fmi::validation::Problem {
    crate::fmi::validation::Problem {
        severity: crate::fmi::validation::Severity::Warning,
        code: crate::fmi::validation::Code::UnknownUnit,
        subject: "<Float64 name=\"h\">".into(),
        line: Some(24),
        column: Some(80),
        message: "unit \"ft\" is not defined in <UnitDefinitions>, so it has no base units or \
                  display units"
            .into(),
    }
}

impl Example for ValidationProblem {
    fn example() -> Self {
        (&validation_problem()).into()
    }
}

impl Example for SmokeTest {
    fn example() -> Self {
        SmokeTest {
            interface: SmokeInterface::CoSimulation,
            outcome: SmokeOutcome::Passed,
            start_time: 0.0,
            stop_time: 0.01,
            duration_ms: 41,
            message: None,
            log: String::new(),
        }
    }
}

impl Example for ValidationReport {
    fn example() -> Self {
        ValidationReport {
            valid: true,
            lenient: false,
            errors: 0,
            warnings: 1,
            problems: vec![ValidationProblem::example()],
            smoke_tests: vec![SmokeTest::example(), {
                let mut me = SmokeTest::example();
                me.interface = SmokeInterface::ModelExchange;
                me.duration_ms = 38;
                me
            }],
            checked_at: AT.into(),
        }
    }
}

impl Example for RunCreate {
    fn example() -> Self {
        let mut start_values = HashMap::new();
        start_values.insert("e".to_string(), Any(json!(0.7)));
        RunCreate {
            stop_time: Some(3.0),
            output_interval: Some(0.01),
            start_values: Some(start_values),
            ..RunCreate::simple("lib:BouncingBall".into(), None, None, None)
        }
    }
}

fn float64(unit: &str) -> ResultType {
    ResultType {
        r#type: ValueTypeName::Float64,
        shape: None,
        unit: Some(unit.into()),
    }
}

fn numbers(values: &[f64]) -> Vec<ResultValue> {
    values.iter().map(|&v| ResultValue(json!(v))).collect()
}

impl Example for RunResult {
    fn example() -> Self {
        RunResult {
            time: vec![0.0, 0.01, 0.02],
            variables: vec!["h".into(), "v".into()],
            types: HashMap::from([
                ("h".to_string(), float64("m")),
                ("v".to_string(), float64("m/s")),
            ]),
            columns: HashMap::from([
                ("h".to_string(), numbers(&[1.0, 0.9995095, 0.998038])),
                ("v".to_string(), numbers(&[0.0, -0.0981, -0.1962])),
            ]),
        }
    }
}

impl Example for Run {
    fn example() -> Self {
        Run {
            id: RUN_ID.into(),
            status: RunStatusName::Succeeded,
            fmu_id: FMU_HASH.into(),
            fmu_name: "lib:BouncingBall".into(),
            api_key_id: Some(KEY_ID.into()),
            created_at: AT.into(),
            started_at: Some(AT.into()),
            finished_at: Some(AT.into()),
            credits_reserved: 1,
            credits_charged: 1,
            charged: true,
            failure_kind: None,
            error: None,
            log: Some(String::new()),
            settings: Some(Any(json!({
                "interface": "cs", "solver": "dormand_prince", "start_time": 0.0,
                "stop_time": 0.02, "output_interval": 0.01, "tolerance": 1e-6,
                "start_values": [["e", "0.7"]], "outputs": ["h", "v"], "inputs": [],
                "timeout_seconds": 600.0
            }))),
            result_url: format!("/api/v1/runs/{RUN_ID}/result"),
            result_expires_at: Some("2026-12-26T18:45:25Z".into()),
            result: Some(RunResult::example()),
            reference_check: None,
            progress: None,
        }
    }
}

/// A run of `lib:BouncingBall` with `stop_time` 3, half-way.
impl Example for RunProgress {
    fn example() -> Self {
        RunProgress {
            time: 1.5,
            stop_time: 3.0,
            fraction: 0.5,
        }
    }
}

impl Example for ReferenceCreate {
    fn example() -> Self {
        ReferenceCreate {
            csv: Some("time,h\n0,1\n0.01,0.99951\n0.02,0.998038\n".into()),
            fmu_reference: None,
            abs_tol: Some(1e-4),
            rel_tol: None,
            tolerances: None,
        }
    }
}

impl Example for ReferenceCheck {
    fn example() -> Self {
        ReferenceCheck {
            passed: false,
            variables: vec![
                VariableCheck {
                    name: "h".into(),
                    passed: true,
                    points_compared: 301,
                    points_outside: 0,
                    max_deviation: Some(3.2e-7),
                    at_time: Some(0.45),
                    first_outside: None,
                    abs_tol: 1e-6,
                    rel_tol: 1e-3,
                    problem: None,
                },
                VariableCheck {
                    name: "v".into(),
                    passed: false,
                    points_compared: 301,
                    points_outside: 12,
                    max_deviation: Some(0.031),
                    at_time: Some(1.28),
                    first_outside: Some(1.21),
                    abs_tol: 1e-6,
                    rel_tol: 1e-3,
                    problem: None,
                },
            ],
            problems: None,
        }
    }
}

impl Example for RunList {
    fn example() -> Self {
        RunList {
            items: vec![Run {
                result: None,
                ..Run::example()
            }],
            total: 1,
            limit: 50,
            offset: 0,
        }
    }
}

impl Example for PlanInfo {
    fn example() -> Self {
        PlanInfo {
            id: "pro".into(),
            name: "Pro".into(),
            description: "For engineers who simulate every day".into(),
            credits: 120,
            amount_cents: 4900,
            currency: "usd".into(),
        }
    }
}

impl Example for LedgerEntry {
    fn example() -> Self {
        LedgerEntry {
            delta: -1,
            balance_after: 99,
            kind: LedgerKind::Reserve,
            reason: format!("Run {RUN_ID} (lib:BouncingBall)"),
            run_id: Some(RUN_ID.into()),
            created_at: AT.into(),
        }
    }
}

impl Example for BillingOverview {
    fn example() -> Self {
        BillingOverview {
            plan: PlanInfo {
                id: "free".into(),
                name: "Free".into(),
                description: "100 credits when you sign up".into(),
                credits: 100,
                amount_cents: 0,
                currency: "usd".into(),
            },
            credits: 99,
            billing_enabled: true,
            plans: vec![PlanInfo::example()],
            purchases: vec![],
            history: vec![LedgerEntry::example()],
            account_flag: None,
        }
    }
}

impl Example for CheckoutRequest {
    fn example() -> Self {
        CheckoutRequest {
            plan: Text("pro".into()),
        }
    }
}

impl Example for CheckoutStarted {
    fn example() -> Self {
        CheckoutStarted {
            checkout_url: "https://checkout.stripe.com/c/pay/cs_test_a1b2c3".into(),
            session_id: "cs_test_a1b2c3".into(),
        }
    }
}

impl Example for PortalLink {
    fn example() -> Self {
        PortalLink {
            url: "https://billing.stripe.com/p/session/test_a1b2c3".into(),
        }
    }
}

impl Example for ErrorBody {
    fn example() -> Self {
        ErrorBody {
            code: ErrorCode::InvalidRequest,
            message: "stop_time (1) must be after start_time (2)".into(),
            problems: Some(vec![FieldProblem {
                field: "stop_time".into(),
                message: "stop_time (1) must be after start_time (2)".into(),
                code: None,
                line: None,
                column: None,
            }]),
        }
    }
}

impl Example for FmuState {
    fn example() -> Self {
        FmuState {
            id: "st_6f1c2b0e9a4d4c8e8f7a1b2c3d4e5f60718293a4b5c6d7e8f90a1b2c3d4e5f6".into(),
            fmu_id: FMU_HASH.into(),
            fmi_version: "3".into(),
            interface: "cs".into(),
            time: 3.0,
            size_bytes: 55_120,
            sha256: "0b6c1f3e5d7a9c2e4f6a8b0d2c4e6f8a1b3d5f7e9a0c2e4b6d8f0a2c4e6b8d0f".into(),
            source_run: Some(RUN_ID.into()),
            created_at: AT.into(),
        }
    }
}

const WEBHOOK_ID: &str = "whk_5e0b7c1a9d3f2e64";

impl Example for Webhook {
    fn example() -> Self {
        Webhook {
            id: WEBHOOK_ID.into(),
            url: "https://ci.example.com/hooks/fmu-gateway".into(),
            description: "CI pipeline".into(),
            events: vec![EventName::RunSucceeded, EventName::RunFailed],
            enabled: true,
            created_at: AT.into(),
            updated_at: AT.into(),
            previous_secret_expires_at: None,
        }
    }
}

impl Example for WebhookWithSecret {
    fn example() -> Self {
        WebhookWithSecret {
            webhook: Webhook::example(),
            secret: "whsec_MfKQ9r8GKYqrTwjUPD8ILPZIo2LaLaSwJ0r5c2mVnTg=".into(),
        }
    }
}

impl Example for WebhookCreate {
    fn example() -> Self {
        WebhookCreate {
            url: Text("https://ci.example.com/hooks/fmu-gateway".into()),
            description: Some(Text("CI pipeline".into())),
            events: None,
            enabled: None,
        }
    }
}

impl Example for WebhookUpdate {
    fn example() -> Self {
        WebhookUpdate {
            url: None,
            description: None,
            events: None,
            enabled: Some(false),
        }
    }
}

impl Example for WebhookAttempt {
    fn example() -> Self {
        WebhookAttempt {
            attempted_at: AT.into(),
            status_code: Some(200),
            error: None,
            latency_ms: 84,
            response_excerpt: Some("{\"ok\":true}".into()),
            response_truncated: false,
        }
    }
}

impl Example for WebhookDelivery {
    fn example() -> Self {
        WebhookDelivery {
            id: "whd_8c2d4e6f10a3b5c7".into(),
            webhook_id: WEBHOOK_ID.into(),
            message_id: "msg_2f4a6c8e0b1d3f57".into(),
            event: EventName::RunSucceeded,
            status: DeliveryStatusName::Delivered,
            created_at: AT.into(),
            next_attempt_at: None,
            attempts: vec![
                WebhookAttempt {
                    status_code: Some(500),
                    response_excerpt: Some("busy".into()),
                    latency_ms: 31,
                    ..WebhookAttempt::example()
                },
                WebhookAttempt::example(),
            ],
        }
    }
}

// Sweeps: a grid of lib:BouncingBall's coefficient of restitution, with two KPIs.

const SWEEP_ID: &str = "swp_5b0c2f7e9a1d4c3b";

impl Example for super::sweeps::SweepCreate {
    fn example() -> Self {
        use super::sweeps::{DesignCreate, GridParameter, KpiCreate, RangeCreate};
        let mut base = RunCreate::simple("lib:BouncingBall".into(), Some(3.0), Some(0.01), None);
        base.outputs = Some(vec![Text("h".into())]);
        super::sweeps::SweepCreate {
            base,
            design: DesignCreate {
                grid: Some(vec![GridParameter {
                    name: Text("e".into()),
                    values: None,
                    range: Some(RangeCreate {
                        start: 0.5,
                        stop: 0.9,
                        num: 5,
                    }),
                }]),
                latin_hypercube: None,
                sobol: None,
                cases: None,
                csv: None,
            },
            kpis: Some(vec![
                KpiCreate {
                    variable: Text("h".into()),
                    kind: Text("max".into()),
                    level: None,
                },
                KpiCreate {
                    variable: Text("h".into()),
                    kind: Text("first_crossing".into()),
                    level: Some(0.1),
                },
            ]),
            trajectories: None,
            name: None,
        }
    }
}

fn e_case(e: f64) -> HashMap<String, Any<serde_json::Value>> {
    HashMap::from([("e".to_string(), Any(json!(e)))])
}

impl Example for super::sweeps::SweepQuote {
    fn example() -> Self {
        super::sweeps::SweepQuote {
            case_count: 5,
            parameters: vec!["e".into()],
            cases: [0.5, 0.6, 0.7, 0.8, 0.9].into_iter().map(e_case).collect(),
            credits_per_case: 1,
            cost: 5,
            balance: 25,
            affordable: true,
            affordable_cases: 25,
        }
    }
}

impl Example for super::sweeps::CaseCountsView {
    fn example() -> Self {
        super::sweeps::CaseCountsView {
            queued: 1,
            running: 1,
            succeeded: 3,
            failed: 0,
            cancelled: 0,
        }
    }
}

impl Example for super::sweeps::Sweep {
    fn example() -> Self {
        super::sweeps::Sweep {
            id: SWEEP_ID.into(),
            status: "running".into(),
            name: "BouncingBall".into(),
            fmu_id: FMU_HASH.into(),
            case_count: 5,
            parameters: vec!["e".into()],
            kpis: vec!["max(h)".into(), "first_crossing(h, 0.1)".into()],
            counts: Example::example(),
            fraction: 0.6,
            eta_seconds: Some(0.02),
            credits_per_case: 1,
            credits_reserved: 5,
            credits_charged: 3,
            credits_refunded: 0,
            created_at: AT.into(),
            started_at: Some(AT.into()),
            finished_at: None,
            error: None,
            cases_url: format!("/api/v1/sweeps/{SWEEP_ID}/cases"),
            events_url: format!("/api/v1/sweeps/{SWEEP_ID}/events"),
        }
    }
}

impl Example for super::sweeps::SweepCase {
    fn example() -> Self {
        super::sweeps::SweepCase {
            index: 0,
            values: e_case(0.5),
            status: "succeeded".into(),
            kpis: Some(HashMap::from([
                ("max(h)".to_string(), Any(json!(1.0))),
                ("first_crossing(h, 0.1)".to_string(), Any(json!(0.4152))),
            ])),
            error: None,
            failure_kind: None,
            charged: true,
            elapsed_ms: Some(0.4),
        }
    }
}

impl Example for super::sweeps::SweepCaseList {
    fn example() -> Self {
        super::sweeps::SweepCaseList {
            cases: vec![Example::example()],
            case_count: 5,
            next_from: None,
        }
    }
}

impl Example for super::sweeps::SweepList {
    fn example() -> Self {
        super::sweeps::SweepList {
            sweeps: vec![Example::example()],
            total: 1,
        }
    }
}

impl Example for super::sweeps::SweepStreamEvent {
    fn example() -> Self {
        super::sweeps::SweepStreamEvent {
            kind: "progress".into(),
            counts: Some(Example::example()),
            fraction: Some(0.6),
            eta_seconds: Some(0.02),
            cases: None,
            status: None,
            error: None,
        }
    }
}

impl Example for super::sweeps::RunStreamEvent {
    fn example() -> Self {
        super::sweeps::RunStreamEvent {
            kind: "progress".into(),
            status: "running".into(),
            time: Some(1.25),
            fraction: Some(0.42),
            error: None,
        }
    }
}
