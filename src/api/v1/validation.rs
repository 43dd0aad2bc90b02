//! The validation report as the API shows it (`GET /fmus/{id}/validation`, an FMU's
//! `warnings`): the domain's `fmi::validation::Report` in schema types.

use poem_openapi::{Enum, Object};

use crate::fmi::validation::{self as v, Report};

/// What a problem is; stable, for programs. Errors: `xml_not_well_formed`,
/// `model_description_unreadable`, `duplicate_variable_name`, `duplicate_value_reference`,
/// `invalid_structured_name`, `illegal_combination` (causality, variability and initial),
/// `continuous_not_float`, `missing_start`, `start_not_allowed`, `invalid_value`,
/// `start_out_of_range`, `min_above_max`, `unknown_declared_type`, `missing_derivative`,
/// `invalid_dimension`, `fmi_rule` (another rule of fmusim's validation),
/// `smoke_test_failed`. Warnings: `duplicate_entry` (an archive entry listed twice with identical
/// bytes), `no_default_experiment`, `unknown_unit`, `reference_failed`.
#[derive(Enum, Clone, Copy, Debug, PartialEq, Eq)]
#[oai(rename_all = "snake_case")]
pub enum ValidationCode {
    DuplicateEntry,
    XmlNotWellFormed,
    ModelDescriptionUnreadable,
    NoDefaultExperiment,
    DuplicateVariableName,
    DuplicateValueReference,
    InvalidStructuredName,
    IllegalCombination,
    ContinuousNotFloat,
    MissingStart,
    StartNotAllowed,
    InvalidValue,
    StartOutOfRange,
    MinAboveMax,
    UnknownDeclaredType,
    UnknownUnit,
    MissingDerivative,
    InvalidDimension,
    FmiRule,
    SmokeTestFailed,
    ReferenceFailed,
}

impl From<v::Code> for ValidationCode {
    fn from(c: v::Code) -> Self {
        use ValidationCode as A;
        use v::Code as C;
        match c {
            C::DuplicateEntry => A::DuplicateEntry,
            C::XmlNotWellFormed => A::XmlNotWellFormed,
            C::ModelDescriptionUnreadable => A::ModelDescriptionUnreadable,
            C::NoDefaultExperiment => A::NoDefaultExperiment,
            C::DuplicateVariableName => A::DuplicateVariableName,
            C::DuplicateValueReference => A::DuplicateValueReference,
            C::InvalidStructuredName => A::InvalidStructuredName,
            C::IllegalCombination => A::IllegalCombination,
            C::ContinuousNotFloat => A::ContinuousNotFloat,
            C::MissingStart => A::MissingStart,
            C::StartNotAllowed => A::StartNotAllowed,
            C::InvalidValue => A::InvalidValue,
            C::StartOutOfRange => A::StartOutOfRange,
            C::MinAboveMax => A::MinAboveMax,
            C::UnknownDeclaredType => A::UnknownDeclaredType,
            C::UnknownUnit => A::UnknownUnit,
            C::MissingDerivative => A::MissingDerivative,
            C::InvalidDimension => A::InvalidDimension,
            C::FmiRule => A::FmiRule,
            C::SmokeTestFailed => A::SmokeTestFailed,
            C::ReferenceFailed => A::ReferenceFailed,
        }
    }
}

/// Only errors refuse an upload (unless it is lenient).
#[derive(Enum, Clone, Copy, Debug, PartialEq, Eq)]
#[oai(rename_all = "snake_case")]
pub enum ValidationSeverity {
    Error,
    Warning,
}

/// One problem of the FMU.
#[derive(Object)]
#[oai(example)]
pub struct ValidationProblem {
    pub severity: ValidationSeverity,
    pub code: ValidationCode,
    /// The element or archive entry at fault: `<Float64 name="h">`, `extra/notes.txt`.
    pub subject: String,
    /// 1-based line in `modelDescription.xml`, for a problem in it.
    #[oai(skip_serializing_if_is_none)]
    pub line: Option<u32>,
    #[oai(skip_serializing_if_is_none)]
    pub column: Option<u32>,
    pub message: String,
}

impl From<&v::Problem> for ValidationProblem {
    fn from(p: &v::Problem) -> Self {
        ValidationProblem {
            severity: match p.severity {
                v::Severity::Error => ValidationSeverity::Error,
                v::Severity::Warning => ValidationSeverity::Warning,
            },
            code: p.code.into(),
            subject: p.subject.clone(),
            line: p.line,
            column: p.column,
            message: p.message.clone(),
        }
    }
}

#[derive(Enum, Clone, Copy, Debug, PartialEq, Eq)]
#[oai(rename_all = "snake_case")]
pub enum SmokeInterface {
    CoSimulation,
    ModelExchange,
}

/// `failed`: the FMU failed (an error status, a crash, a limit): the report has a
/// `smoke_test_failed` error. `skipped`: not run, for a reason that is not the FMU's (every
/// worker busy for 30 s, settings this server cannot run with the model's defaults).
#[derive(Enum, Clone, Copy, Debug, PartialEq, Eq)]
#[oai(rename_all = "snake_case")]
pub enum SmokeOutcome {
    Passed,
    Failed,
    Skipped,
}

/// One interface instantiated, initialised, stepped once (one communication step, or one
/// fixed Euler step of Model Exchange), terminated and freed in the sandbox, with default
/// settings, within 10 s.
#[derive(Object)]
#[oai(example)]
pub struct SmokeTest {
    pub interface: SmokeInterface,
    pub outcome: SmokeOutcome,
    pub start_time: f64,
    pub stop_time: f64,
    /// Wall-clock time of the whole worker: start, load, simulate, stop.
    pub duration_ms: u64,
    #[oai(skip_serializing_if_is_none)]
    pub message: Option<String>,
    /// The FMU's log (bounded).
    pub log: String,
}

/// Everything found when the FMU was first checked: the problems of its files (the archive and
/// `modelDescription.xml`, against the rules of fmusim's `validate`) and the smoke test of each
/// interface. Made once per file (by its SHA-256), so every upload of the same bytes gets the
/// same report.
#[derive(Object)]
#[oai(example)]
pub struct ValidationReport {
    /// No errors.
    pub valid: bool,
    /// Accepted despite errors, because it was uploaded with `lenient=true`.
    pub lenient: bool,
    /// Errors found, listed or not.
    pub errors: u64,
    /// Warnings found, listed or not.
    pub warnings: u64,
    /// Errors and warnings, archive first, then `modelDescription.xml` by line: the first
    /// 1,000 (a generated model can break a rule on each of its variables); `errors` and
    /// `warnings` count them all.
    pub problems: Vec<ValidationProblem>,
    /// Empty for built-in models (the start-up self-test runs them).
    pub smoke_tests: Vec<SmokeTest>,
    pub checked_at: String,
}

impl From<&Report> for ValidationReport {
    fn from(r: &Report) -> Self {
        let errors = r.error_count();
        ValidationReport {
            valid: errors == 0,
            lenient: errors > 0,
            errors,
            warnings: r.warning_count(),
            problems: r.problems.iter().map(Into::into).collect(),
            smoke_tests: r
                .smoke_tests
                .iter()
                .map(|t| SmokeTest {
                    interface: match t.interface {
                        v::SmokeInterface::CoSimulation => SmokeInterface::CoSimulation,
                        v::SmokeInterface::ModelExchange => SmokeInterface::ModelExchange,
                    },
                    outcome: match t.outcome {
                        v::SmokeOutcome::Passed => SmokeOutcome::Passed,
                        v::SmokeOutcome::Failed => SmokeOutcome::Failed,
                        v::SmokeOutcome::Skipped => SmokeOutcome::Skipped,
                    },
                    start_time: t.start_time,
                    stop_time: t.stop_time,
                    duration_ms: t.duration_ms,
                    message: t.message.clone(),
                    log: t.log.clone(),
                })
                .collect(),
            checked_at: crate::api::time(r.checked_at),
        }
    }
}
