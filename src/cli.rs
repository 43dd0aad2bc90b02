//! `fmu-gateway fmu info|validate|simulate`: the engine on an engineer's own machine, with
//! the same archive checks, the same planning and the same sandboxed worker as the service.

use std::path::{Path, PathBuf};
use std::sync::Arc;
use std::time::Duration;

use crate::domain::runs::reference::{self, ReferenceRequest, ReferenceSource};
use crate::fmi::archive::{self, ArchiveError};
use crate::fmi::describe::{self, DescribeError};
use crate::fmi::validation;
use crate::sim::fmu_state::{SavedState, StateSettings, check_size};
use crate::sim::plan::{self, Problems, RunSettings};
use crate::sim::protocol::{CsOptions, InputSignal, Interface, Solver};
use crate::sim::reference::{ReferenceCheck, Tolerance, Tolerances, compare};
use crate::sim::result_file::{Format, ResultFile};
use crate::sim::runner::{PoolConfig, SimError, WorkerPool};

/// Why an `fmu` command failed. `main` prints it and chooses the exit status; the messages
/// are the user's only explanation, so each names the file, flag or row at fault.
#[derive(Debug, thiserror::Error)]
pub enum CliError {
    #[error("{0}")]
    TempDir(#[source] std::io::Error),
    #[error("{0}")]
    Archive(#[from] ArchiveError),
    #[error("{0}")]
    Describe(#[from] DescribeError),
    /// `fmu validate` found errors: the whole report.
    #[error("{0}")]
    Invalid(String),
    #[error("{0}")]
    Json(#[from] serde_json::Error),
    /// A `--start` flag that is not `name=value`.
    #[error("--start {0}: expected name=value")]
    StartValue(String),
    #[error("--timeout must be a positive number of seconds")]
    Timeout,
    #[error("--timeout {} is too long", crate::format::Number(*.0))]
    TimeoutTooLong(f64),
    #[error("{}: {source}", path.display())]
    InputFile { path: PathBuf, source: csv::Error },
    #[error("{}: the first column must be 'time', followed by the inputs", .0.display())]
    InputHeader(PathBuf),
    #[error("{}: {problem}", path.display())]
    InputRows {
        path: PathBuf,
        problem: crate::sim::input_csv::InputCsvError,
    },
    #[error("{} row {row}: column {column} is not a number", path.display())]
    InputNumber {
        path: PathBuf,
        row: usize,
        column: usize,
    },
    /// The run request does not fit the model (checked before anything runs).
    #[error("{0}")]
    Request(#[from] Problems),
    #[error("cannot find this program: {0}")]
    CurrentExe(#[source] std::io::Error),
    /// The run failed; for a failure of the model, its log is in the [`SimError`].
    #[error("{0}")]
    Run(#[from] SimError),
    #[error("reading the results: {0}")]
    Results(#[source] std::io::Error),
    #[error("{0}")]
    NotUtf8(#[from] std::string::FromUtf8Error),
    /// The reference cannot be read or does not fit the FMU (checked before anything runs).
    #[error("{}", .0.message)]
    Reference(crate::sim::plan::Problem),
    /// The run succeeded and its reference check failed (the verdict is printed).
    #[error("the reference check failed")]
    ReferenceCheckFailed,
    /// `--abs-tol` or `--rel-tol` without a reference to compare with.
    #[error("--abs-tol and --rel-tol need --reference or --fmu-reference")]
    ToleranceWithoutReference,
    #[error("{}: {source}", path.display())]
    ReadReference {
        path: PathBuf,
        source: std::io::Error,
    },
    #[error("{}: {source}", path.display())]
    WriteOutput {
        path: PathBuf,
        source: std::io::Error,
    },
    /// An FMU state file that cannot be read or used.
    #[error("{}: {message}", path.display())]
    StateFile { path: PathBuf, message: String },
    /// `-o` names a file whose extension names no format.
    #[error(
        "{}: the output file's extension picks the format: .json, .csv, .mat or .parquet",
        .0.display()
    )]
    OutputExtension(PathBuf),
    /// The results hold a value the output format cannot (a MAT file holds only numbers).
    #[error("{0}")]
    Unrepresentable(crate::sim::mat::Unrepresentable),
}

/// An FMU opened into a temporary directory.
pub struct Opened {
    pub dir: tempfile::TempDir,
    pub info: describe::ModelInfo,
}

/// Extracts an FMU file, with the upload limits, to `fmu/` in a new temporary directory.
fn extract_to_temp(
    path: &Path,
) -> Result<(tempfile::TempDir, PathBuf, archive::Extracted), CliError> {
    let dir = tempfile::Builder::new()
        .prefix("fmu-gateway-")
        .tempdir()
        .map_err(CliError::TempDir)?;
    let target = dir.path().join("fmu");
    let extracted = archive::extract(path, &target, &archive::Limits::default())?;
    Ok((dir, target, extracted))
}

/// Extracts and describes an FMU file, with the upload limits.
pub fn open(path: &Path) -> Result<Opened, CliError> {
    let (dir, target, extracted) = extract_to_temp(path)?;
    let mut info = describe::describe(&target)?;
    info.warnings = extracted.warnings;
    Ok(Opened { dir, info })
}

/// `fmu info`: what the FMU is, as text or JSON.
pub fn info(path: &Path, json: bool) -> Result<String, CliError> {
    let opened = open(path)?;
    let i = &opened.info;
    if json {
        return Ok(serde_json::to_string_pretty(i)?);
    }
    let mut out = String::new();
    let line = |out: &mut String, k: &str, v: &str| out.push_str(&format!("{k:<22}{v}\n"));
    line(&mut out, "Model name", &i.model_name);
    line(&mut out, "FMI version", &i.fmi_version);
    line(&mut out, "Instantiation token", &i.instantiation_token);
    if let Some(d) = &i.description {
        line(&mut out, "Description", d);
    }
    if let Some(g) = &i.generation_tool {
        line(&mut out, "Generation tool", g);
    }
    let interfaces: Vec<&str> = [
        i.co_simulation.as_ref().map(|_| "Co-Simulation"),
        i.model_exchange.as_ref().map(|_| "Model Exchange"),
        i.scheduled_execution
            .as_ref()
            .map(|_| "Scheduled Execution"),
    ]
    .into_iter()
    .flatten()
    .collect();
    line(&mut out, "Interfaces", &interfaces.join(", "));
    if let Some(problem) = i.unrunnable() {
        line(&mut out, "Cannot run", &problem.to_string());
    }
    line(&mut out, "Platforms", &i.platforms.join(", "));
    if !i.log_categories.is_empty() {
        line(&mut out, "Log categories", &i.log_categories.join(", "));
    }
    for warning in &i.warnings {
        line(&mut out, "Warning", &warning.to_string());
    }
    if let Some(e) = &i.default_experiment {
        let show = |v: Option<f64>| v.map_or("-".to_string(), |v| v.to_string());
        line(
            &mut out,
            "Default experiment",
            &format!(
                "start {} stop {} step {} tolerance {}",
                show(e.start_time),
                show(e.stop_time),
                show(e.step_size),
                show(e.tolerance)
            ),
        );
    }
    out.push_str(&format!(
        "\n{:<24} {:>6} {:<10} {:<12} {:<11} {:<10} {:<8} Description\n",
        "Variable", "VR", "Type", "Causality", "Variability", "Start", "Unit"
    ));
    for v in &i.variables {
        out.push_str(&format!(
            "{:<24} {:>6} {:<10} {:<12} {:<11} {:<10} {:<8} {}\n",
            v.name,
            v.value_reference,
            v.type_with_shape(),
            v.causality,
            v.variability,
            v.start.as_deref().unwrap_or(""),
            v.unit.as_deref().unwrap_or(""),
            v.description.as_deref().unwrap_or("")
        ));
        for a in &v.aliases {
            out.push_str(&alias_line(a));
        }
        if !v.items.is_empty() {
            let items: Vec<String> = v
                .items
                .iter()
                .map(|i| format!("{} = {}", i.value, i.name))
                .collect();
            out.push_str(&format!("  items {}\n", items.join(", ")));
        }
    }
    Ok(out)
}

/// One alias under the variable it names: `  alias height [ft]: Height of the ball`.
fn alias_line(a: &describe::Alias) -> String {
    let unit = a
        .display_unit
        .as_deref()
        .map_or(String::new(), |u| format!(" [{u}]"));
    let description = a
        .description
        .as_deref()
        .map_or(String::new(), |d| format!(": {d}"));
    format!("  alias {}{unit}{description}\n", a.name)
}

/// `fmu validate`: the checks an upload goes through — the archive, the model description
/// against the standard's rules, a smoke test of each interface in the sandboxed worker — and
/// the report an upload stores: the verdict, then one line per problem and per smoke test.
/// Errors are `Err(CliError::Invalid)` (exit status 1) unless `lenient`, as for an upload.
pub async fn validate(path: &Path, lenient: bool) -> Result<String, CliError> {
    let (dir, target, extracted) = extract_to_temp(path)?;
    let mut problems = validation::check_files(&target, &extracted.warnings)?;
    // What cannot be read or run ends the report, after the problems found so far.
    let unrunnable = |problems: &[validation::Problem], e: DescribeError| {
        if problems.is_empty() {
            CliError::Describe(e)
        } else {
            CliError::Invalid(format!("{}\n{e}", report_text(path, None, problems, &[])))
        }
    };
    let info = describe::describe_with(&target, describe::Rules::Report)
        .map_err(|e| unrunnable(&problems, e))?;
    describe::check_platform(&target, &info).map_err(|e| unrunnable(&problems, e))?;
    let pool = local_pool(dir.path())?;
    let smoke = crate::sim::smoke::run(&pool, &info, &target).await;
    problems.extend(crate::sim::smoke::problems(&smoke));
    let text = report_text(path, Some(&info), &problems, &smoke);
    if validation::has_errors(&problems) && !lenient {
        return Err(CliError::Invalid(text));
    }
    Ok(text)
}

/// A validation report for a terminal: the verdict, then one line per problem and per smoke
/// test.
fn report_text(
    path: &Path,
    info: Option<&describe::ModelInfo>,
    problems: &[validation::Problem],
    smoke: &[validation::SmokeTest],
) -> String {
    let count = |severity| problems.iter().filter(|p| p.severity == severity).count();
    let (errors, warnings) = (
        count(validation::Severity::Error),
        count(validation::Severity::Warning),
    );
    let plural = |n: usize, what: &str| format!("{n} {what}{}", if n == 1 { "" } else { "s" });
    let model = info.map_or(String::new(), |i| {
        format!(" (FMI {} model {})", i.fmi_version, i.model_name)
    });
    let verdict = if errors == 0 { "valid" } else { "invalid" };
    let mut out = format!(
        "{}{model}: {verdict}, {}, {}",
        path.display(),
        plural(errors, "error"),
        plural(warnings, "warning")
    );
    for p in problems {
        out.push_str(&format!("\n{p}"));
    }
    for t in smoke {
        let outcome = match t.outcome {
            validation::SmokeOutcome::Passed => "passed",
            validation::SmokeOutcome::Failed => "failed",
            validation::SmokeOutcome::Skipped => "skipped",
        };
        out.push_str(&format!(
            "\nsmoke test {}: {outcome} ({} to {}) in {} ms",
            t.interface.as_str(),
            crate::format::Number(t.start_time),
            crate::format::Number(t.stop_time),
            t.duration_ms
        ));
        if let Some(m) = &t.message {
            out.push_str(&format!(": {m}"));
        }
    }
    out
}

/// A pool of one sandboxed worker with scratch space under `dir`, as `fmu simulate` uses.
fn local_pool(dir: &Path) -> Result<Arc<WorkerPool>, CliError> {
    Ok(WorkerPool::new(PoolConfig {
        exe: std::env::current_exe().map_err(CliError::CurrentExe)?,
        scratch_root: dir.join("scratch"),
        workers: 1,
        limits: Default::default(),
        log_limit: 64 * 1024,
    }))
}

/// The run settings `fmu simulate` takes as flags (flattened into its command): the CLI's
/// input for the one run request ([`RunSettings`]) that the API and the dashboard build too.
#[derive(clap::Args, Debug, Clone, Default)]
pub struct RunFlags {
    /// cs or me (default: Co-Simulation when the FMU has it); also co-simulation,
    /// model-exchange.
    #[arg(long, value_parser = str::parse::<Interface>)]
    pub interface: Option<Interface>,
    /// Model Exchange solver: auto (default: Dormand-Prince, BDF once the model proves
    /// stiff), dormand-prince (also dopri), bdf (implicit, for stiff models) or euler (fixed
    /// step).
    #[arg(long, value_parser = str::parse::<Solver>)]
    pub solver: Option<Solver>,
    #[arg(long)]
    pub start_time: Option<f64>,
    /// Default: the FMU's default experiment.
    #[arg(long)]
    pub stop_time: Option<f64>,
    #[arg(long)]
    pub output_interval: Option<f64>,
    /// Co-Simulation communication step; Model Exchange maximum (or Euler's fixed) step.
    #[arg(long)]
    pub step_size: Option<f64>,
    /// Relative tolerance.
    #[arg(long)]
    pub tolerance: Option<f64>,
    /// A start value, `name=value` (repeatable). An array's value is a JSON array
    /// (`x0=[1,2,3]`, nested as its shape or flat) or its elements separated by spaces; an
    /// enumeration's an item name.
    #[arg(long = "start")]
    pub start: Vec<String>,
    /// A variable to record (repeatable; default: the outputs).
    #[arg(long = "output")]
    pub output: Vec<String>,
    /// Input signals: CSV with a `time` column and one column per input.
    #[arg(long)]
    pub input: Option<PathBuf>,
    /// Give float results in their display units (converted as FMI says).
    #[arg(long)]
    pub display_units: bool,
    /// Record only the output points, not a row just before and after each event.
    #[arg(long)]
    pub no_record_events: bool,
    /// FMI 3 Co-Simulation: the FMU may return early from a step at an event.
    #[arg(long)]
    pub early_return_allowed: bool,
    /// FMI 3 Co-Simulation: handle the FMU's events in event mode (recording them).
    #[arg(long)]
    pub event_mode_used: bool,
    /// FMI 3 Co-Simulation: let the FMU call back at intermediate points within a step.
    #[arg(long)]
    pub intermediate_update: bool,
    /// Start from this FMU state file instead of initialising (fmusim's
    /// --initial-fmu-state-file: the bytes the FMU serialised), at --start-time, the time it
    /// was saved at. Co-Simulation of an FMU that can serialise its state only.
    #[arg(long)]
    pub initial_state: Option<PathBuf>,
    /// Save the FMU's state after the last step to this file (fmusim's
    /// --final-fmu-state-file).
    #[arg(long)]
    pub final_state: Option<PathBuf>,
    /// Record every FMI call with its arguments and status in the FMU log, written to stderr
    /// after the run (fmusim's --log-fmi-calls).
    #[arg(long)]
    pub log_fmi_calls: bool,
    /// An FMU log category to enable (repeatable; default: all), its log written to stderr
    /// after the run. FMI 3 Co-Simulation only.
    #[arg(long = "log-category")]
    pub log_category: Vec<String>,
}

impl RunFlags {
    /// The run request these flags make (reading the input file); checked against the
    /// model by `plan::plan`, as every face's request is.
    pub fn settings(&self) -> Result<RunSettings, CliError> {
        let start_values = self
            .start
            .iter()
            .map(|s| {
                s.split_once('=')
                    .map(|(k, v)| (k.trim().to_string(), v.trim().to_string()))
                    .ok_or_else(|| CliError::StartValue(s.clone()))
            })
            .collect::<Result<Vec<_>, _>>()?;
        let inputs = match &self.input {
            Some(path) => read_input_csv(path)?,
            None => vec![],
        };
        let states = StateSettings {
            initial: self
                .initial_state
                .as_deref()
                .map(|path| read_state_file(path, self.start_time))
                .transpose()?,
            save_final: self.final_state.is_some(),
        };
        Ok(RunSettings {
            interface: self.interface,
            solver: self.solver,
            start_time: self.start_time,
            stop_time: self.stop_time,
            output_interval: self.output_interval,
            step_size: self.step_size,
            tolerance: self.tolerance,
            start_values,
            outputs: self.output.clone(),
            inputs,
            record_events: self.no_record_events.then_some(false),
            display_units: self.display_units,
            cs_options: CsOptions {
                early_return_allowed: self.early_return_allowed,
                event_mode_used: self.event_mode_used,
                intermediate_update: self.intermediate_update,
            },
            states,
            logging: crate::sim::call_log::LogSettings {
                fmi_calls: self.log_fmi_calls,
                categories: self.log_category.clone(),
            },
        })
    }
}

/// An FMU state file as fmusim writes it (the FMU's bytes, nothing else), which holds no time
/// of its own: the run starts at `start_time`, which must then be given.
fn read_state_file(path: &Path, start_time: Option<f64>) -> Result<SavedState, CliError> {
    let state_error = |message: String| CliError::StateFile {
        path: path.to_path_buf(),
        message,
    };
    let time = start_time
        .ok_or_else(|| state_error("give --start-time, the time the state was saved at".into()))?;
    let size = std::fs::metadata(path)
        .map_err(|e| state_error(e.to_string()))?
        .len();
    check_size(size).map_err(state_error)?;
    let bytes = std::fs::read(path).map_err(|e| state_error(e.to_string()))?;
    Ok(SavedState { time, bytes })
}

/// The reference check `fmu simulate` takes as flags: for CI pipelines, which read the exit
/// status (3 when the check fails).
#[derive(clap::Args, Debug, Clone, Default)]
pub struct ReferenceFlags {
    /// Compare the result with this reference CSV (`time,<variable>,…`, as results are
    /// written); print the verdict on standard error and exit with 3 when it fails.
    #[arg(long, conflicts_with = "fmu_reference")]
    pub reference: Option<PathBuf>,
    /// Compare with a reference the FMU carries (FMI-LS-REF), by name; its experiment's
    /// start, stop, step and tolerance are the defaults of the run.
    #[arg(long)]
    pub fmu_reference: Option<String>,
    /// Absolute tolerance of the comparison (default 1e-6).
    #[arg(long)]
    pub abs_tol: Option<f64>,
    /// Relative tolerance of the comparison, of the reference value (default 1e-3).
    #[arg(long)]
    pub rel_tol: Option<f64>,
}

impl ReferenceFlags {
    /// The reference these flags ask for (reading the file), or none.
    pub fn request(&self) -> Result<Option<ReferenceRequest>, CliError> {
        let source = match (&self.reference, &self.fmu_reference) {
            (Some(path), _) => {
                ReferenceSource::Inline(std::fs::read_to_string(path).map_err(|source| {
                    CliError::ReadReference {
                        path: path.clone(),
                        source,
                    }
                })?)
            }
            (None, Some(name)) => ReferenceSource::Carried(name.clone()),
            (None, None) if self.abs_tol.is_some() || self.rel_tol.is_some() => {
                return Err(CliError::ToleranceWithoutReference);
            }
            (None, None) => return Ok(None),
        };
        let defaults = Tolerance::default();
        Ok(Some(ReferenceRequest {
            source,
            tolerances: Tolerances {
                default: Tolerance {
                    abs_tol: self.abs_tol.unwrap_or(defaults.abs_tol),
                    rel_tol: self.rel_tol.unwrap_or(defaults.rel_tol),
                },
                by_variable: vec![],
            },
        }))
    }
}

/// What `fmu simulate` was asked.
pub struct SimulateArgs {
    pub fmu: PathBuf,
    pub settings: RunSettings,
    pub timeout: Duration,
    /// Where to write the FMU's final state (`--final-state`).
    pub final_state: Option<PathBuf>,
    pub reference: Option<ReferenceRequest>,
}

/// What `fmu simulate` gives: its stored result (the file stays readable after the run's
/// temporary directory is removed), and the reference check's verdict when one was asked for.
pub struct Simulated {
    pub result: ResultFile,
    pub check: Option<ReferenceCheck>,
}

/// The format results are written in: the output file's extension (`.json`, `.csv`, `.mat`,
/// `.parquet`, any case), CSV on standard output; any other extension is an error, found
/// before the simulation runs.
pub fn output_format(output: Option<&Path>) -> Result<Format, CliError> {
    match output {
        None => Ok(Format::Csv),
        Some(path) => {
            Format::from_extension(path).ok_or_else(|| CliError::OutputExtension(path.into()))
        }
    }
}

/// Writes `result` in `format` to `output` (standard output when `None`), in bounded chunks.
/// A MAT file of a result it cannot hold is refused before the file is created.
pub fn write_result(
    result: &ResultFile,
    format: Format,
    output: Option<&Path>,
) -> Result<(), CliError> {
    if format == Format::Mat
        && let Some(refusal) = result.mat_refusal().map_err(CliError::Results)?
    {
        return Err(CliError::Unrepresentable(refusal));
    }
    let Some(path) = output else {
        let mut out = std::io::stdout().lock();
        return result
            .write_to(format, &mut out)
            .map_err(|source| CliError::WriteOutput {
                path: "standard output".into(),
                source,
            });
    };
    let written = std::fs::File::create(path).and_then(|file| {
        let mut out = std::io::BufWriter::new(file);
        result.write_to(format, &mut out)?;
        out.into_inner().map_err(|e| e.into_error())?.sync_all()
    });
    written.map_err(|source| CliError::WriteOutput {
        path: path.into(),
        source,
    })
}

/// `fmu simulate`: runs in a sandboxed worker and returns its result, compared with the
/// reference when there is one.
pub async fn simulate(args: SimulateArgs) -> Result<Simulated, CliError> {
    let opened = open(&args.fmu)?;
    let fmu_dir = opened.dir.path().join("fmu");
    describe::check_platform(&fmu_dir, &opened.info)?;
    let mut settings = args.settings;
    // Read and checked before anything runs, as the service does: a reference that cannot be
    // read is the request's mistake, not a failed check.
    let prepared = args
        .reference
        .as_ref()
        .map(|r| reference::prepare(r, &fmu_dir, &mut settings))
        .transpose()
        .map_err(CliError::Reference)?;
    let job = plan::plan(&opened.info, &fmu_dir, &settings)?;
    let pool = local_pool(opened.dir.path())?;
    let outcome = Arc::clone(&pool).run(job, args.timeout).await?;
    if settings.logging.fmi_calls || !settings.logging.categories.is_empty() {
        eprint!("{}", outcome.log);
    }
    if let (Some(path), Some(state)) = (&args.final_state, &outcome.final_state) {
        std::fs::write(path, &state.bytes).map_err(|source| CliError::WriteOutput {
            path: path.clone(),
            source,
        })?;
    }
    let check = prepared
        .map(|p| compare(&outcome.result, &p.reference, &p.tolerances))
        .transpose()
        .map_err(CliError::Results)?;
    Ok(Simulated {
        result: outcome.result,
        check,
    })
}

/// A verdict as `fmu simulate` prints it: one line per variable, then PASSED or FAILED.
pub fn verdict_text(check: &ReferenceCheck) -> String {
    use crate::format::Number;
    let mut out = String::new();
    for v in &check.variables {
        let mark = if v.passed { "pass" } else { "FAIL" };
        let detail = match (&v.problem, v.max_deviation, v.at_time) {
            (Some(problem), _, _) => problem.clone(),
            (None, Some(max), Some(at)) => format!(
                "max deviation {} at t = {}, {} of {} points outside",
                Number(max),
                Number(at),
                v.points_outside,
                v.points_compared
            ),
            _ => format!(
                "{} of {} points outside",
                v.points_outside, v.points_compared
            ),
        };
        let first = v
            .first_outside
            .map_or(String::new(), |t| format!(", first at t = {}", Number(t)));
        out.push_str(&format!(
            "{mark} {}: {detail}{first} (abs_tol {}, rel_tol {})\n",
            v.name,
            Number(v.abs_tol),
            Number(v.rel_tol)
        ));
    }
    for problem in &check.problems {
        out.push_str(&format!("FAIL {problem}\n"));
    }
    out.push_str(if check.passed {
        "reference check PASSED\n"
    } else {
        "reference check FAILED\n"
    });
    out
}

/// An input file: a CSV with a `time` column first and one column per input variable
/// (`sim::input_csv`, as the dashboard reads a pasted table).
fn read_input_csv(path: &Path) -> Result<Vec<InputSignal>, CliError> {
    use crate::sim::input_csv::{self, InputCsvError};
    let file = std::fs::File::open(path).map_err(|e| CliError::InputFile {
        path: path.to_path_buf(),
        source: csv::Error::from(e),
    })?;
    input_csv::parse(std::io::BufReader::new(file)).map_err(|e| match e {
        InputCsvError::Header => CliError::InputHeader(path.to_path_buf()),
        InputCsvError::NotANumber { line, column, .. } => CliError::InputNumber {
            path: path.to_path_buf(),
            row: line,
            column,
        },
        other => CliError::InputRows {
            path: path.to_path_buf(),
            problem: other,
        },
    })
}
