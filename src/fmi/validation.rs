//! The validation report: every problem an FMU's files have, each with a severity, a stable
//! code, the element or entry at fault and where it is in `modelDescription.xml`.
//!
//! fmusim's `validate` (which fmi-rs ports) says what is wrong in a sentence; users asked FMPy
//! for checks that are strict *and* useful (FMPy #156, #181, #774, #813): a code a pipeline can
//! match, a line and column an author can jump to, and warnings that do not refuse the model.
//! So the rules users hit most are ours, read from the XML with positions ([`check_xml`]);
//! whatever else fmi-rs's validation finds is kept as [`Code::FmiRule`] with its line. This
//! module only reads text: the dynamic smoke test (which runs the FMU in the sandbox) is the
//! domain's (`domain::validation`), and adds its own problems to the same report.

use std::collections::{HashMap, HashSet};
use std::fmt;

use roxmltree::{Document, Node};
use serde::{Deserialize, Serialize};

/// How bad a problem is. Only errors refuse an upload (unless it is lenient).
#[derive(Clone, Copy, Debug, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum Severity {
    Error,
    Warning,
}

/// What a problem is: stable, for programs to match. Each code has one severity.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum Code {
    /// An archive entry listed twice with identical bytes (extracted once).
    DuplicateEntry,
    /// `modelDescription.xml` is not well-formed XML.
    XmlNotWellFormed,
    /// Well-formed, but not a model description fmi-rs can read (a missing attribute…).
    ModelDescriptionUnreadable,
    /// No `<DefaultExperiment>`: runs use our defaults unless told otherwise.
    NoDefaultExperiment,
    /// Two variables with one name.
    DuplicateVariableName,
    /// Two FMI 3 variables with one value reference.
    DuplicateValueReference,
    /// A name that breaks `variableNamingConvention="structured"`.
    InvalidStructuredName,
    /// A causality, variability and initial that the standard's tables do not allow together.
    IllegalCombination,
    /// Only Float (FMI 3) or Real (FMI 2) variables can be continuous.
    ContinuousNotFloat,
    /// A start value the combination requires is missing.
    MissingStart,
    /// A start value where the standard forbids one (`initial="calculated"`, independent).
    StartNotAllowed,
    /// A start, min or max that is not a value of the variable's type.
    InvalidValue,
    /// A start value outside `[min, max]` or its type's range.
    StartOutOfRange,
    /// `min` above `max`.
    MinAboveMax,
    /// A `declaredType` that no type definition of that kind has.
    UnknownDeclaredType,
    /// A `unit` that `<UnitDefinitions>` does not define.
    UnknownUnit,
    /// A state whose derivative is missing or not listed in `<ModelStructure>`, or a listed
    /// derivative that is not one.
    MissingDerivative,
    /// An FMI 3 `<Dimension>` that names no structural parameter or constant (or names none).
    InvalidDimension,
    /// Another rule of fmusim's validation, as fmi-rs reports it.
    FmiRule,
    /// The FMU failed to instantiate, initialise, step or terminate in the sandbox.
    SmokeTestFailed,
    /// A reference result the FMU carries was not met.
    ReferenceFailed,
}

impl Code {
    pub fn severity(self) -> Severity {
        match self {
            Code::DuplicateEntry
            | Code::NoDefaultExperiment
            | Code::UnknownUnit
            | Code::ReferenceFailed => Severity::Warning,
            _ => Severity::Error,
        }
    }

    /// The code as the API spells it.
    pub fn as_str(self) -> String {
        serde_json::to_value(self)
            .ok()
            .and_then(|v| v.as_str().map(str::to_owned))
            .unwrap_or_default()
    }
}

/// One problem found.
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
pub struct Problem {
    pub severity: Severity,
    pub code: Code,
    /// The element or entry at fault: `<Float64 name="h">`, `binaries/x86_64-linux/M.so`.
    pub subject: String,
    /// 1-based line and column in `modelDescription.xml`, when the problem is in it.
    pub line: Option<u32>,
    pub column: Option<u32>,
    pub message: String,
}

impl Problem {
    pub fn new(code: Code, subject: impl Into<String>, message: impl Into<String>) -> Problem {
        Problem {
            severity: code.severity(),
            code,
            subject: subject.into(),
            line: None,
            column: None,
            message: message.into(),
        }
    }

    fn at(mut self, (line, column): (u32, u32)) -> Problem {
        self.line = Some(line);
        self.column = Some(column);
        self
    }
}

impl fmt::Display for Problem {
    /// `error duplicate_variable_name at 12:5 <Float64 name="h">: …`
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        let severity = match self.severity {
            Severity::Error => "error",
            Severity::Warning => "warning",
        };
        write!(f, "{severity} {}", self.code.as_str())?;
        if let (Some(line), Some(column)) = (self.line, self.column) {
            write!(f, " at line {line}, column {column}")?;
        }
        if !self.subject.is_empty() {
            write!(f, " {}", self.subject)?;
        }
        write!(f, ": {}", self.message)
    }
}

/// Whether any problem is an error.
pub fn has_errors(problems: &[Problem]) -> bool {
    problems.iter().any(|p| p.severity == Severity::Error)
}

/// The version of the checks: a report made by an older one may miss problems found now.
pub const VALIDATION_VERSION: u32 = 1;

/// Problems a report lists at most. A generated model description can break one rule on each
/// of its hundred thousand variables: the report (stored with the FMU, sent in a refusal)
/// lists the first ones and counts the rest by severity, so it stays small and says so.
pub const MAX_PROBLEMS: usize = 1_000;

/// Errors a refusal's message names (the answer's `problems` lists them all).
const SUMMARY_ERRORS: usize = 5;

/// Everything found when an FMU was first checked: the problems of its files (archive and
/// model description) and, for uploads, the smoke test of each interface in the sandbox.
/// Stored with the FMU, so every later upload of the same bytes gets the same verdict.
#[derive(Clone, Debug, Default, PartialEq, Serialize, Deserialize)]
pub struct Report {
    pub version: u32,
    /// In file order: archive problems first, then the model description by line; at most
    /// [`MAX_PROBLEMS`].
    pub problems: Vec<Problem>,
    /// Problems found beyond [`MAX_PROBLEMS`], by severity.
    #[serde(default)]
    pub omitted_errors: u64,
    #[serde(default)]
    pub omitted_warnings: u64,
    /// One per interface the FMU offers; empty when none ran (built-in models, which the
    /// start-up self-test runs instead).
    #[serde(default)]
    pub smoke_tests: Vec<SmokeTest>,
    /// Milliseconds since the epoch.
    pub checked_at: i64,
}

impl Report {
    /// A report of `problems` (listing the first [`MAX_PROBLEMS`]), made now.
    pub fn new(problems: Vec<Problem>, checked_at: i64) -> Report {
        let mut report = Report {
            version: VALIDATION_VERSION,
            checked_at,
            ..Report::default()
        };
        report.extend(problems);
        report
    }

    /// Adds problems, counting those beyond [`MAX_PROBLEMS`] instead of listing them.
    pub fn extend(&mut self, problems: impl IntoIterator<Item = Problem>) {
        for p in problems {
            if self.problems.len() < MAX_PROBLEMS {
                self.problems.push(p);
            } else if p.severity == Severity::Error {
                self.omitted_errors += 1;
            } else {
                self.omitted_warnings += 1;
            }
        }
    }

    /// Whether a lenient upload would take it: none of its errors is one no parser gets past
    /// (when some are not listed, that cannot be told, and the answer is no).
    pub fn lenient_would_accept(&self) -> bool {
        self.omitted_errors == 0
            && !self.errors().any(|p| {
                matches!(
                    p.code,
                    Code::XmlNotWellFormed | Code::ModelDescriptionUnreadable
                )
            })
    }

    /// Whether it has an error, listed or not: what refuses a strict upload.
    pub fn has_errors(&self) -> bool {
        self.omitted_errors > 0 || self.errors().next().is_some()
    }

    pub fn error_count(&self) -> u64 {
        self.errors().count() as u64 + self.omitted_errors
    }

    pub fn warning_count(&self) -> u64 {
        self.warnings().count() as u64 + self.omitted_warnings
    }

    pub fn errors(&self) -> impl Iterator<Item = &Problem> {
        self.problems
            .iter()
            .filter(|p| p.severity == Severity::Error)
    }

    pub fn warnings(&self) -> impl Iterator<Item = &Problem> {
        self.problems
            .iter()
            .filter(|p| p.severity == Severity::Warning)
    }

    /// The first errors in one line each, for a refusal's message.
    pub fn error_summary(&self) -> String {
        let count = self.error_count();
        let named: Vec<String> = self
            .errors()
            .take(SUMMARY_ERRORS)
            .map(Problem::to_string)
            .collect();
        let more = count - named.len() as u64;
        format!(
            "the FMU has {count} error{}: {}{}",
            if count == 1 { "" } else { "s" },
            named.join("; "),
            if more > 0 {
                format!("; and {more} more")
            } else {
                String::new()
            }
        )
    }
}

/// The interface a smoke test ran.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum SmokeInterface {
    CoSimulation,
    ModelExchange,
}

impl SmokeInterface {
    pub fn as_str(self) -> &'static str {
        match self {
            SmokeInterface::CoSimulation => "co_simulation",
            SmokeInterface::ModelExchange => "model_exchange",
        }
    }
}

/// How a smoke test ended.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum SmokeOutcome {
    Passed,
    /// The FMU failed (an error status, a crash, a limit): an error of the report.
    Failed,
    /// Not run, for a reason that is not the FMU's fault (the service could not run it).
    Skipped,
}

/// One interface instantiated, initialised, stepped once, terminated and freed in the sandbox.
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
pub struct SmokeTest {
    pub interface: SmokeInterface,
    pub outcome: SmokeOutcome,
    /// The simulated interval: from the start time, one step.
    pub start_time: f64,
    pub stop_time: f64,
    /// Wall-clock time of the whole worker (start, load, simulate, stop).
    pub duration_ms: u64,
    /// Why it failed or was skipped.
    pub message: Option<String>,
    /// The FMU's log (bounded).
    pub log: String,
}

/// Problems of the archive that [`crate::fmi::archive::extract`] accepted with a remark.
pub fn archive_problems(warnings: &[crate::fmi::archive::ArchiveWarning]) -> Vec<Problem> {
    warnings
        .iter()
        .map(|w| match w {
            crate::fmi::archive::ArchiveWarning::DuplicateEntry { entry, .. } => {
                Problem::new(Code::DuplicateEntry, entry.clone(), w.to_string())
            }
        })
        .collect()
}

/// The problems of an extracted FMU's files: the archive's (its `warnings` from extraction),
/// then its model description's.
pub fn check_files(
    dir: &std::path::Path,
    warnings: &[crate::fmi::archive::ArchiveWarning],
) -> Result<Vec<Problem>, crate::fmi::describe::DescribeError> {
    let mut problems = archive_problems(warnings);
    problems.extend(check_model_description(&crate::fmi::describe::read_text(
        dir,
    )?));
    Ok(problems)
}

/// Every problem of a model description: ours ([`check_xml`]) and then whatever else
/// fmi-rs's validation of fmusim's rules finds, sorted by position. A problem fmi-rs reports
/// on a line where ours already found an error is the same one, said twice, and is dropped.
pub fn check_model_description(text: &str) -> Vec<Problem> {
    let mut problems = check_xml(text);
    if problems.iter().any(|p| p.code == Code::XmlNotWellFormed) {
        return problems;
    }
    let version = Document::parse(text)
        .ok()
        .and_then(|d| d.root_element().attribute("fmiVersion").map(str::to_owned))
        .unwrap_or_default();
    let lines = Lines::of(text);
    match crate::fmi::describe::rule_problems(text, &version) {
        Err(e) => problems.push(Problem::new(
            Code::ModelDescriptionUnreadable,
            "modelDescription.xml",
            e.to_string(),
        )),
        Ok(found) => {
            let ours: HashSet<u32> = problems
                .iter()
                .filter(|p| p.severity == Severity::Error)
                .filter_map(|p| p.line)
                .collect();
            for (offset, message) in found {
                let pos = offset.map(|o| lines.pos(o));
                let said = pos.is_some_and(|(line, _)| ours.contains(&line));
                if !said {
                    let mut p = Problem::new(Code::FmiRule, "", message);
                    if let Some((line, column)) = pos {
                        p.line = Some(line);
                        p.column = Some(column);
                    }
                    problems.push(p);
                }
            }
        }
    }
    problems.sort_by_key(|p| (p.line.unwrap_or(u32::MAX), p.column.unwrap_or(0)));
    problems
}

/// Where each line of a text starts, to turn byte offsets into lines and columns in
/// logarithmic time: a generated model description can have a problem on each of 100,000
/// lines, and scanning from the start for each (as `roxmltree::Document::text_pos_at` does)
/// would be quadratic.
struct Lines<'t> {
    text: &'t str,
    starts: Vec<usize>,
}

impl<'t> Lines<'t> {
    fn of(text: &'t str) -> Lines<'t> {
        let starts = std::iter::once(0)
            .chain(text.match_indices('\n').map(|(i, _)| i + 1))
            .collect();
        Lines { text, starts }
    }

    /// 1-based line and column (in characters) of a byte offset.
    fn pos(&self, offset: usize) -> (u32, u32) {
        let offset = self.text.floor_char_boundary(offset.min(self.text.len()));
        let line = self.starts.partition_point(|&s| s <= offset);
        let start = self.starts[line - 1];
        let column = self.text[start..offset].chars().count() + 1;
        (line as u32, column as u32)
    }
}

/// Checks a model description's text (FMI 2.0 or 3.0) against the rules users hit most, each
/// problem with its position. A text that is not XML gives one [`Code::XmlNotWellFormed`].
pub fn check_xml(text: &str) -> Vec<Problem> {
    let doc = match Document::parse(text) {
        Ok(doc) => doc,
        Err(e) => {
            let pos = e.pos();
            return vec![
                Problem::new(
                    Code::XmlNotWellFormed,
                    "modelDescription.xml",
                    e.to_string(),
                )
                .at((pos.row, pos.col)),
            ];
        }
    };
    let root = doc.root_element();
    let fmi3 = root
        .attribute("fmiVersion")
        .is_some_and(|v| v.starts_with("3."));
    let mut checker = Checker {
        nodes: std::marker::PhantomData,
        lines: Lines::of(text),
        fmi3,
        problems: Vec::new(),
    };
    checker.run(root);
    checker.problems
}

/// The kind of value a variable holds, as both versions' elements name it.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
enum Kind {
    Float { bits32: bool },
    Int { min: i128, max: i128 },
    Boolean,
    String,
    Binary,
    Enumeration,
    Clock,
}

impl Kind {
    /// The kind of an FMI 3 variable element (`Float64`) or FMI 2 type element (`Real`), and
    /// of the matching type definition element (`Float64Type` / `SimpleType`'s child).
    fn of(tag: &str) -> Option<Kind> {
        let int = |min: i128, max: i128| Some(Kind::Int { min, max });
        match tag.strip_suffix("Type").unwrap_or(tag) {
            "Float64" | "Real" => Some(Kind::Float { bits32: false }),
            "Float32" => Some(Kind::Float { bits32: true }),
            "Int8" => int(i8::MIN.into(), i8::MAX.into()),
            "UInt8" => int(0, u8::MAX.into()),
            "Int16" => int(i16::MIN.into(), i16::MAX.into()),
            "UInt16" => int(0, u16::MAX.into()),
            "Int32" | "Integer" => int(i32::MIN.into(), i32::MAX.into()),
            "UInt32" => int(0, u32::MAX.into()),
            "Int64" => int(i64::MIN.into(), i64::MAX.into()),
            "UInt64" => int(0, u64::MAX.into()),
            "Boolean" => Some(Kind::Boolean),
            "String" => Some(Kind::String),
            "Binary" => Some(Kind::Binary),
            "Enumeration" => Some(Kind::Enumeration),
            "Clock" => Some(Kind::Clock),
            _ => None,
        }
    }

    fn is_numeric(self) -> bool {
        matches!(
            self,
            Kind::Float { .. } | Kind::Int { .. } | Kind::Enumeration
        )
    }
}

/// A type definition: its kind, bounds, unit and (enumerations) item values.
struct TypeDef<'a> {
    tag: &'a str,
    kind: Kind,
    min: Option<&'a str>,
    max: Option<&'a str>,
    unit: Option<&'a str>,
    items: Vec<i128>,
}

/// One variable as the rules see it, whichever version wrote it.
struct Var<'a, 'input> {
    /// The element with `name` (FMI 2 `<ScalarVariable>`, FMI 3 `<Float64>`…).
    node: Node<'a, 'input>,
    /// The element with `start`, `min`, `max`, `declaredType` (FMI 2: the type child).
    typed: Node<'a, 'input>,
    name: &'a str,
    kind: Kind,
    causality: &'a str,
    variability: &'a str,
    initial: Option<&'a str>,
    /// Elements of the start value (one for a scalar; FMI 3 arrays list several).
    start: Option<Vec<&'a str>>,
}

struct Checker<'a, 'input> {
    /// The document's nodes (`Node<'a, 'input>`) are borrowed for `'a`.
    nodes: std::marker::PhantomData<&'a Document<'input>>,
    lines: Lines<'input>,
    fmi3: bool,
    problems: Vec<Problem>,
}

impl<'a, 'input> Checker<'a, 'input> {
    fn push(&mut self, code: Code, node: Node, subject: String, message: String) {
        let pos = self.lines.pos(node.range().start);
        self.problems
            .push(Problem::new(code, subject, message).at(pos));
    }

    /// Like [`push`], pointing at `attribute` of `node` when it has it.
    fn push_attr(
        &mut self,
        code: Code,
        node: Node,
        attribute: &str,
        subject: String,
        message: String,
    ) {
        let start = node
            .attribute_node(attribute)
            .map_or(node.range().start, |a| a.range().start);
        let pos = self.lines.pos(start);
        self.problems
            .push(Problem::new(code, subject, message).at(pos));
    }

    fn run(&mut self, root: Node<'a, 'input>) {
        let child = |name: &str| root.children().find(|n| n.has_tag_name(name));
        if child("DefaultExperiment").is_none() {
            self.push(
                Code::NoDefaultExperiment,
                root,
                "<fmiModelDescription>".into(),
                "there is no <DefaultExperiment>: runs start at 0 and stop at 1 unless told \
                 otherwise"
                    .into(),
            );
        }
        let units: HashSet<&str> = child("UnitDefinitions")
            .into_iter()
            .flat_map(|u| u.children().filter(|n| n.has_tag_name("Unit")))
            .filter_map(|u| u.attribute("name"))
            .collect();
        let types = self.type_definitions(child("TypeDefinitions"));
        let structured = root.attribute("variableNamingConvention") == Some("structured");
        let vars: Vec<Var> = child("ModelVariables")
            .into_iter()
            .flat_map(|mv| mv.children().filter(Node::is_element))
            .filter_map(|n| self.variable(n))
            .collect();

        let mut names = HashSet::new();
        let mut references: HashMap<&str, &str> = HashMap::new();
        for v in &vars {
            let subject = self.subject(v);
            if !names.insert(v.name) {
                self.push(
                    Code::DuplicateVariableName,
                    v.node,
                    subject.clone(),
                    format!("another variable is already named \"{}\"", v.name),
                );
            }
            if self.fmi3
                && let Some(vr) = v.node.attribute("valueReference")
                && let Some(first) = references.insert(vr, v.name)
            {
                self.push_attr(
                    Code::DuplicateValueReference,
                    v.node,
                    "valueReference",
                    subject.clone(),
                    format!("value reference {vr} is already \"{first}\"'s"),
                );
            }
            if structured && let Err(why) = structured_name(v.name) {
                self.push(
                    Code::InvalidStructuredName,
                    v.node,
                    subject.clone(),
                    format!(
                        "\"{}\" is not a structured name (variableNamingConvention=\"structured\"): {why}",
                        v.name
                    ),
                );
            }
            self.check_combination(v, &subject);
            let declared = self.check_declared_type(v, &types, &subject);
            self.check_unit(v, declared, &units, &subject);
            self.check_values(v, declared, &subject);
        }
        self.check_derivatives(root, &vars);
        if self.fmi3 {
            self.check_dimensions(&vars);
        }
    }

    fn type_definitions(&self, defs: Option<Node<'a, 'input>>) -> HashMap<&'a str, TypeDef<'a>> {
        let mut types = HashMap::new();
        for def in defs
            .into_iter()
            .flat_map(|d| d.children().filter(Node::is_element))
        {
            // FMI 2: <SimpleType name="…"><Real …/></SimpleType>; FMI 3: <Float64Type name="…" …/>.
            let (name_node, typed) = if self.fmi3 {
                (def, Some(def))
            } else {
                (def, def.children().find(Node::is_element))
            };
            let (Some(name), Some(typed)) = (name_node.attribute("name"), typed) else {
                continue;
            };
            let Some(kind) = Kind::of(typed.tag_name().name()) else {
                continue;
            };
            let items = typed
                .children()
                .filter(|n| n.has_tag_name("Item"))
                .filter_map(|i| i.attribute("value")?.trim().parse().ok())
                .collect();
            types.insert(
                name,
                TypeDef {
                    tag: typed.tag_name().name(),
                    kind,
                    min: typed.attribute("min"),
                    max: typed.attribute("max"),
                    unit: typed.attribute("unit"),
                    items,
                },
            );
        }
        types
    }

    fn variable(&self, node: Node<'a, 'input>) -> Option<Var<'a, 'input>> {
        let (typed, tag) = if self.fmi3 {
            (node, node.tag_name().name())
        } else {
            if !node.has_tag_name("ScalarVariable") {
                return None;
            }
            let typed = node.children().find(Node::is_element)?;
            (typed, typed.tag_name().name())
        };
        let kind = Kind::of(tag)?;
        let default_variability = if matches!(kind, Kind::Float { .. }) || !self.fmi3 {
            "continuous"
        } else {
            "discrete"
        };
        let start = match typed.attribute("start") {
            Some(s) if self.fmi3 && !matches!(kind, Kind::String) => {
                Some(s.split_ascii_whitespace().collect())
            }
            Some(s) => Some(vec![s]),
            None => {
                let starts: Vec<&str> = typed
                    .children()
                    .filter(|n| n.has_tag_name("Start"))
                    .filter_map(|n| n.attribute("value"))
                    .collect();
                (!starts.is_empty()).then_some(starts)
            }
        };
        Some(Var {
            node,
            typed,
            name: node.attribute("name").unwrap_or(""),
            kind,
            causality: node.attribute("causality").unwrap_or("local"),
            variability: node.attribute("variability").unwrap_or(default_variability),
            initial: node.attribute("initial"),
            start,
        })
    }

    fn subject(&self, v: &Var) -> String {
        format!("<{} name=\"{}\">", v.node.tag_name().name(), v.name)
    }

    /// The standard's table of causality × variability, and the `initial` each allows
    /// (fmusim's reading of it: a parameter is `exact`, an input too).
    fn check_combination(&mut self, v: &Var, subject: &str) {
        if v.kind == Kind::Clock {
            return;
        }
        if v.variability == "continuous" && !matches!(v.kind, Kind::Float { .. }) {
            let floats = if self.fmi3 {
                "Float32 and Float64"
            } else {
                "Real"
            };
            self.push_attr(
                Code::ContinuousNotFloat,
                v.node,
                "variability",
                subject.into(),
                format!("only {floats} variables can be continuous"),
            );
            return;
        }
        // (initial values allowed, the default); None: the pair is illegal.
        let allowed: Option<(&[&str], Option<&str>)> = match (v.causality, v.variability) {
            ("parameter" | "structuralParameter", "fixed" | "tunable") => {
                Some((&["exact"], Some("exact")))
            }
            ("calculatedParameter", "fixed" | "tunable") | ("local", "fixed" | "tunable") => {
                Some((&["approx", "calculated"], Some("calculated")))
            }
            ("input", "discrete" | "continuous") => Some((&["exact"], Some("exact"))),
            ("output" | "local", "constant") => Some((&["exact"], Some("exact"))),
            ("output" | "local", "discrete" | "continuous") => {
                Some((&["exact", "approx", "calculated"], Some("calculated")))
            }
            ("independent", "continuous") => Some((&[], None)),
            _ => None,
        };
        let Some((initials, default)) = allowed else {
            self.push(
                Code::IllegalCombination,
                v.node,
                subject.into(),
                format!(
                    "causality=\"{}\" cannot be variability=\"{}\"",
                    v.causality, v.variability
                ),
            );
            return;
        };
        if let Some(initial) = v.initial
            && !initials.contains(&initial)
        {
            let allowed = if initials.is_empty() {
                "no initial".to_owned()
            } else {
                format!("initial {}", initials.join(" or "))
            };
            self.push_attr(
                Code::IllegalCombination,
                v.node,
                "initial",
                subject.into(),
                format!(
                    "initial=\"{initial}\" is not allowed for causality=\"{}\" variability=\"{}\" \
                     (only {allowed})",
                    v.causality, v.variability
                ),
            );
            return;
        }
        let initial = v.initial.or(default);
        let needs_start = matches!(initial, Some("exact" | "approx")) || v.causality == "input";
        let forbids_start = initial == Some("calculated") || v.causality == "independent";
        if needs_start && v.start.is_none() {
            self.push(
                Code::MissingStart,
                v.node,
                subject.into(),
                format!(
                    "a {} variable with initial=\"{}\" needs a start value",
                    v.causality,
                    initial.unwrap_or("exact")
                ),
            );
        } else if forbids_start && v.start.is_some() {
            let why = if v.causality == "independent" {
                "the independent variable".to_owned()
            } else {
                "a calculated variable (initial=\"calculated\")".to_owned()
            };
            self.push_attr(
                Code::StartNotAllowed,
                v.typed,
                "start",
                subject.into(),
                format!("{why} must not have a start value"),
            );
        }
    }

    fn check_declared_type<'t>(
        &mut self,
        v: &Var,
        types: &'t HashMap<&str, TypeDef<'a>>,
        subject: &str,
    ) -> Option<&'t TypeDef<'a>> {
        let name = v.typed.attribute("declaredType")?;
        match types.get(name) {
            Some(def) if def.kind == v.kind => Some(def),
            Some(def) => {
                self.push_attr(
                    Code::UnknownDeclaredType,
                    v.typed,
                    "declaredType",
                    subject.into(),
                    format!(
                        "declaredType=\"{name}\" is a {} type definition, not one for {}",
                        def.tag,
                        v.typed.tag_name().name()
                    ),
                );
                None
            }
            None => {
                self.push_attr(
                    Code::UnknownDeclaredType,
                    v.typed,
                    "declaredType",
                    subject.into(),
                    format!("declaredType=\"{name}\" is not defined in <TypeDefinitions>"),
                );
                None
            }
        }
    }

    fn check_unit(
        &mut self,
        v: &Var,
        declared: Option<&TypeDef>,
        units: &HashSet<&str>,
        subject: &str,
    ) {
        let own = v.typed.attribute("unit");
        let Some(unit) = own.or(declared.and_then(|d| d.unit)) else {
            return;
        };
        if !units.contains(unit) {
            self.push_attr(
                Code::UnknownUnit,
                v.typed,
                "unit",
                subject.into(),
                format!(
                    "unit \"{unit}\" is not defined in <UnitDefinitions>, so it has no base \
                     units or display units"
                ),
            );
        }
    }

    /// Start, min and max: values of the type, min ≤ max, start within both and the type.
    fn check_values(&mut self, v: &Var, declared: Option<&TypeDef>, subject: &str) {
        if !v.kind.is_numeric() && v.kind != Kind::Boolean {
            return;
        }
        let bound = |attribute: &str| -> Option<&str> {
            v.typed.attribute(attribute).or_else(|| match attribute {
                "min" => declared.and_then(|d| d.min),
                _ => declared.and_then(|d| d.max),
            })
        };
        let mut bounds = [None, None];
        for (slot, attribute) in bounds.iter_mut().zip(["min", "max"]) {
            if v.kind == Kind::Boolean {
                break;
            }
            let Some(text) = bound(attribute) else {
                continue;
            };
            match number(v.kind, text) {
                Some(n) => *slot = Some(n),
                None => self.push_attr(
                    Code::InvalidValue,
                    v.typed,
                    attribute,
                    subject.into(),
                    format!("{attribute}=\"{text}\" is not a {} value", type_name(v)),
                ),
            }
        }
        let [min, max] = bounds;
        if let (Some(lo), Some(hi)) = (min, max)
            && lo > hi
        {
            self.push_attr(
                Code::MinAboveMax,
                v.typed,
                "max",
                subject.into(),
                format!(
                    "max=\"{}\" is below min=\"{}\"",
                    bound("max").unwrap_or_default(),
                    bound("min").unwrap_or_default()
                ),
            );
            return;
        }
        let Some(starts) = &v.start else {
            return;
        };
        for text in starts {
            if v.kind == Kind::Boolean {
                if !matches!(*text, "true" | "false" | "1" | "0") {
                    self.push_attr(
                        Code::InvalidValue,
                        v.typed,
                        "start",
                        subject.into(),
                        format!("start=\"{text}\" is not a Boolean (true, false, 1 or 0)"),
                    );
                    return;
                }
                continue;
            }
            let Some(value) = number(v.kind, text) else {
                self.push_attr(
                    Code::InvalidValue,
                    v.typed,
                    "start",
                    subject.into(),
                    format!("start=\"{text}\" is not a {} value", type_name(v)),
                );
                return;
            };
            let outside = match v.kind {
                Kind::Int { min, max } => {
                    let whole = value as i128;
                    (whole < min || whole > max).then(|| {
                        format!(
                            "start={text} is outside the {} range [{min}, {max}]",
                            type_name(v)
                        )
                    })
                }
                Kind::Float { bits32: true }
                    if value.is_finite() && value.abs() > f32::MAX as f64 =>
                {
                    Some(format!("start={text} is outside the Float32 range"))
                }
                Kind::Enumeration => declared
                    .filter(|d| !d.items.is_empty() && !d.items.contains(&(value as i128)))
                    .map(|_| {
                        format!("start={text} is not the value of an item of its enumeration")
                    }),
                _ => None,
            }
            .or_else(|| match (min, max) {
                (Some(lo), _) if value < lo => Some(format!(
                    "start={text} is below min={}",
                    bound("min").unwrap_or_default()
                )),
                (_, Some(hi)) if value > hi => Some(format!(
                    "start={text} is above max={}",
                    bound("max").unwrap_or_default()
                )),
                _ => None,
            });
            if let Some(message) = outside {
                self.push_attr(
                    Code::StartOutOfRange,
                    v.typed,
                    "start",
                    subject.into(),
                    message,
                );
                return;
            }
        }
    }

    /// States and derivatives: every `derivative` attribute names a Float variable, every
    /// derivative is listed in `<ModelStructure>`, and every listed one is a derivative.
    fn check_derivatives(&mut self, root: Node<'a, 'input>, vars: &[Var<'a, 'input>]) {
        let structure = root.children().find(|n| n.has_tag_name("ModelStructure"));
        // FMI 2: 1-based indices into ModelVariables; FMI 3: value references.
        let fmi3 = self.fmi3;
        let key = move |i: usize, v: &Var| -> String {
            if fmi3 {
                v.node.attribute("valueReference").unwrap_or("").to_owned()
            } else {
                (i + 1).to_string()
            }
        };
        let by_key: HashMap<String, usize> = vars
            .iter()
            .enumerate()
            .map(|(i, v)| (key(i, v), i))
            .collect();
        let listed: Vec<Node> = if self.fmi3 {
            structure
                .into_iter()
                .flat_map(|s| {
                    s.children()
                        .filter(|n| n.has_tag_name("ContinuousStateDerivative"))
                })
                .collect()
        } else {
            structure
                .into_iter()
                .flat_map(|s| s.children().filter(|n| n.has_tag_name("Derivatives")))
                .flat_map(|d| d.children().filter(|n| n.has_tag_name("Unknown")))
                .collect()
        };
        let attribute = if self.fmi3 { "valueReference" } else { "index" };
        let listed_keys: HashSet<&str> = listed
            .iter()
            .filter_map(|n| n.attribute(attribute))
            .collect();
        for (i, v) in vars.iter().enumerate() {
            let Some(state) = v.typed.attribute("derivative") else {
                continue;
            };
            let subject = self.subject(v);
            match by_key.get(state.trim()) {
                Some(&s) if matches!(vars[s].kind, Kind::Float { .. }) => {}
                _ => {
                    let what = if self.fmi3 {
                        "value reference"
                    } else {
                        "variable index"
                    };
                    self.push_attr(
                        Code::MissingDerivative,
                        v.typed,
                        "derivative",
                        subject.clone(),
                        format!(
                            "derivative=\"{state}\" is not the {what} of a {} variable",
                            if self.fmi3 { "Float" } else { "Real" }
                        ),
                    );
                    continue;
                }
            }
            if !listed_keys.contains(key(i, v).as_str()) {
                let list = if self.fmi3 {
                    "a <ContinuousStateDerivative>"
                } else {
                    "<ModelStructure><Derivatives>"
                };
                self.push(
                    Code::MissingDerivative,
                    v.node,
                    subject,
                    format!("this derivative is not listed in {list}"),
                );
            }
        }
        for node in listed {
            let Some(k) = node.attribute(attribute) else {
                continue;
            };
            let is_derivative = by_key
                .get(k.trim())
                .is_some_and(|&i| vars[i].typed.attribute("derivative").is_some());
            if !is_derivative {
                self.push(
                    Code::MissingDerivative,
                    node,
                    format!("<{} {attribute}=\"{k}\">", node.tag_name().name()),
                    format!("{attribute} {k} is not a variable with a derivative attribute"),
                );
            }
        }
    }

    /// FMI 3 `<Dimension>`: a fixed `start`, or the `valueReference` of an integer structural
    /// parameter or constant, not both and not neither.
    fn check_dimensions(&mut self, vars: &[Var<'a, 'input>]) {
        let by_vr: HashMap<&str, &Var> = vars
            .iter()
            .filter_map(|v| Some((v.node.attribute("valueReference")?, v)))
            .collect();
        for v in vars {
            for dim in v.node.children().filter(|n| n.has_tag_name("Dimension")) {
                let subject = format!("<Dimension> of \"{}\"", v.name);
                let problem = match (dim.attribute("start"), dim.attribute("valueReference")) {
                    (Some(_), Some(_)) => {
                        Some("a dimension has a start or a valueReference, not both".to_owned())
                    }
                    (None, None) => {
                        Some("a dimension needs a start or a valueReference".to_owned())
                    }
                    (Some(start), None) => start
                        .trim()
                        .parse::<u64>()
                        .is_err()
                        .then(|| format!("start=\"{start}\" is not a size")),
                    (None, Some(vr)) => match by_vr.get(vr.trim()) {
                        None => Some(format!("valueReference {vr} is no variable")),
                        Some(p) if !matches!(p.kind, Kind::Int { .. }) => Some(format!(
                            "valueReference {vr} is \"{}\", which is not an integer",
                            p.name
                        )),
                        Some(p)
                            if p.causality != "structuralParameter"
                                && p.variability != "constant" =>
                        {
                            Some(format!(
                                "valueReference {vr} is \"{}\", which is a {} {}, not a structural \
                                 parameter or a constant",
                                p.name, p.variability, p.causality
                            ))
                        }
                        Some(_) => None,
                    },
                };
                if let Some(message) = problem {
                    self.push(Code::InvalidDimension, dim, subject, message);
                }
            }
        }
    }
}

/// The variable's type as its element names it (`Int8`, `Real`).
fn type_name(v: &Var) -> String {
    v.typed.tag_name().name().to_owned()
}

/// A number of `kind` as written in XML (`INF`, `-INF` and `NaN` are xs:double values); an
/// integer must be whole and an enumeration's value too.
fn number(kind: Kind, text: &str) -> Option<f64> {
    let text = text.trim();
    match kind {
        Kind::Float { .. } => match text {
            "INF" => Some(f64::INFINITY),
            "-INF" => Some(f64::NEG_INFINITY),
            "NaN" => Some(f64::NAN),
            _ => text.parse::<f64>().ok().filter(|n| n.is_finite()),
        },
        Kind::Int { .. } | Kind::Enumeration => text.parse::<i128>().ok().map(|n| n as f64),
        _ => None,
    }
}

/// fmi-rs checks a structured name with a bison/flex parser whose state is global (it is
/// not reentrant): two threads inside it at once corrupt each other's state, and the process
/// dies (seen as a segfault in `yyparse` while two uploads were validated at once, and in
/// `yytnamerr` while two model descriptions were: fmi-rs's own `validate()` calls it too).
/// One thread at a time, then.
static STRUCTURED_NAME_PARSER: std::sync::Mutex<()> = std::sync::Mutex::new(());

/// Runs `f`, which may reach fmi-rs's structured-name parser (a name check, or a model
/// description's `validate()`), with no other thread inside that parser.
pub(crate) fn with_name_parser<T>(f: impl FnOnce() -> T) -> T {
    let _one_at_a_time = STRUCTURED_NAME_PARSER
        .lock()
        .unwrap_or_else(|p| p.into_inner());
    f()
}

/// Whether `name` is a structured name (FMI's `variableNamingConvention="structured"`).
fn structured_name(name: &str) -> Result<(), String> {
    with_name_parser(|| {
        fmi_rs::model_description::validation::validate_structured_variable_name(name)
    })
}

#[cfg(test)]
mod tests {
    /// Threads validating structured names at once, as concurrent uploads do: each gets its
    /// own answer and the process lives (the parser underneath is not reentrant).
    #[test]
    fn structured_names_are_checked_safely_from_many_threads_at_once() {
        let threads: Vec<_> = (0..8)
            .map(|t| {
                std::thread::spawn(move || {
                    for i in 0..2_000 {
                        let good = format!("a{t}.b[{i}].c");
                        assert_eq!(super::structured_name(&good), Ok(()), "{good}");
                        let bad = format!("a{t}..b[{i}");
                        assert!(super::structured_name(&bad).is_err(), "{bad}");
                    }
                })
            })
            .collect();
        for t in threads {
            t.join().unwrap();
        }
    }

    use super::*;

    fn codes(xml: &str) -> Vec<(Code, Option<u32>)> {
        check_xml(xml)
            .into_iter()
            .map(|p| (p.code, p.line))
            .collect()
    }

    const FMI3: &str = r#"<fmiModelDescription fmiVersion="3.0" modelName="m" instantiationToken="t">
  <CoSimulation modelIdentifier="m"/>
  <UnitDefinitions><Unit name="m"/></UnitDefinitions>
  <ModelVariables>
    <Float64 name="time" valueReference="0" causality="independent" variability="continuous"/>
    <Float64 name="x" valueReference="1" causality="output" unit="m"/>
    <Float64 name="der(x)" valueReference="2" derivative="1"/>
    <Int8 name="k" valueReference="3" causality="parameter" variability="fixed" start="3" min="0"/>
  </ModelVariables>
  <ModelStructure>
    <Output valueReference="1"/>
    <ContinuousStateDerivative valueReference="2"/>
  </ModelStructure>
  <DefaultExperiment stopTime="1"/>
</fmiModelDescription>"#;

    #[test]
    fn a_clean_description_has_no_problems() {
        assert_eq!(codes(FMI3), vec![]);
    }

    #[test]
    fn each_rule_names_its_code_and_line() {
        let edit = |from: &str, to: &str| {
            assert!(FMI3.contains(from), "{from}");
            codes(&FMI3.replace(from, to))
        };
        assert_eq!(
            edit(r#"start="3" min"#, r#"start="300" min"#),
            vec![(Code::StartOutOfRange, Some(8))]
        );
        assert_eq!(
            edit(r#"start="3" min="0""#, r#"start="3" min="5""#),
            vec![(Code::StartOutOfRange, Some(8))]
        );
        assert_eq!(
            edit(r#"unit="m"/>"#, r#"unit="km"/>"#),
            vec![(Code::UnknownUnit, Some(6))]
        );
        assert_eq!(
            edit(r#"<ContinuousStateDerivative valueReference="2"/>"#, ""),
            vec![(Code::MissingDerivative, Some(7))]
        );
        assert_eq!(
            edit(
                r#"name="der(x)" valueReference="2""#,
                r#"name="x" valueReference="1""#
            ),
            vec![
                (Code::DuplicateVariableName, Some(7)),
                (Code::DuplicateValueReference, Some(7)),
                (Code::MissingDerivative, Some(7)),
                (Code::MissingDerivative, Some(12)),
            ]
        );
        assert_eq!(
            edit(
                r#"causality="parameter" variability="fixed""#,
                r#"causality="parameter" variability="continuous""#
            ),
            vec![(Code::ContinuousNotFloat, Some(8))]
        );
        assert_eq!(
            edit(r#"<DefaultExperiment stopTime="1"/>"#, ""),
            vec![(Code::NoDefaultExperiment, Some(1))]
        );
    }

    #[test]
    fn malformed_xml_is_one_problem_with_its_position() {
        let problems = check_xml("<a>\n<b>\n</a>");
        assert_eq!(problems.len(), 1);
        assert_eq!(problems[0].code, Code::XmlNotWellFormed);
        assert_eq!(problems[0].line, Some(3));
    }
}
