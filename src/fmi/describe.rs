//! What an FMU is, read from its `modelDescription.xml`.
//!
//! [`describe`] turns the model description of an extracted FMU (FMI 2.0 or 3.0) into a
//! [`ModelInfo`]: the plain, serializable summary the registry stores and the API returns.
//! Parsing and validation are fmi-rs's; this module picks the parser by version, maps the result
//! into our own types (so the rest of the service never depends on fmi-rs's structs) and turns
//! every failure into a message a user can act on. [`check_platform`] says whether the FMU has
//! a binary this server can load.
//!
//! This module must never load, execute or even open an FMU's shared library: it only looks at
//! file names. It must never build a path from the model description without checking it first
//! (a `modelIdentifier` becomes a file name).

use std::fmt;
use std::fs;
use std::io;
use std::path::Path;

use crate::fmi::validation::with_name_parser;
use fmi_rs::model_description::{
    DefaultExperiment as FmiDefaultExperiment, ModelDescriptionError, ValidationError, fmi2, fmi3,
};
use serde::{Deserialize, Serialize};

use super::archive::{ArchiveWarning, MODEL_DESCRIPTION};

/// Larger model descriptions are refused rather than parsed: the XML tree takes several times the
/// file size in memory. The biggest real ones (hundreds of thousands of variables) stay well
/// below this.
pub const MAX_MODEL_DESCRIPTION_BYTES: u64 = 64 * 1024 * 1024;

/// The platform directory whose binary this server loads, per FMI major version.
const FMI3_PLATFORM: &str = "x86_64-linux";
const FMI2_PLATFORM: &str = "linux64";

/// The version of what [`describe`] reads. A record stored by an earlier version lacks what
/// was added since (array shapes, enumeration items, display units, whether the FMU can
/// serialise its state), and is described again
/// from its files when next used (`domain::fmus::resolve`).
pub const DESCRIBE_VERSION: u32 = 3;

/// What the registry knows about an FMU, independent of the FMI version it was written for.
#[derive(Clone, Debug, Serialize, Deserialize, PartialEq)]
pub struct ModelInfo {
    /// [`DESCRIBE_VERSION`] when it was described; 0 for records older than the field.
    #[serde(default)]
    pub describe_version: u32,
    /// `fmiVersion` as written in the file: "2.0", or "3.0", "3.0.1", ...
    pub fmi_version: String,
    pub model_name: String,
    /// FMI 3 `instantiationToken`, FMI 2 `guid`: passed back to the FMU on instantiation.
    pub instantiation_token: String,
    pub description: Option<String>,
    pub generation_tool: Option<String>,
    pub co_simulation: Option<Interface>,
    pub model_exchange: Option<Interface>,
    /// FMI 3 Scheduled Execution, which this server does not run: known so that an FMU that
    /// offers nothing else is refused for what it is, not as a broken file.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub scheduled_execution: Option<Interface>,
    pub default_experiment: Option<DefaultExperiment>,
    /// Names of the units in `<UnitDefinitions>`, in file order.
    pub units: Vec<String>,
    /// The units with the display units each can be shown in (for results in display units).
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub unit_definitions: Vec<UnitDefinition>,
    /// The names in `<LogCategories>`, in file order: what a run may enable
    /// (`log_categories`).
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub log_categories: Vec<String>,
    /// Model variables in file order (FMI 2 indices are positions in this list, plus one).
    pub variables: Vec<Variable>,
    /// Directories found under `binaries/`, sorted ("x86_64-linux", "linux64", "win64", ...).
    pub platforms: Vec<String>,
    /// What the archive checks accepted with a remark (an entry listed twice with identical
    /// bytes…). Set by whoever extracted the archive; [`describe`] only reads the directory.
    #[serde(default)]
    pub warnings: Vec<ArchiveWarning>,
    /// The validation report made when the FMU was first checked; `None` for records stored
    /// before reports existed. Set by whoever checked it; [`describe`] only reads the files.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub validation: Option<super::validation::Report>,
}

/// One FMI interface (Co-Simulation, Model Exchange or Scheduled Execution). Capabilities that
/// an interface or FMI version does not have are `false`.
#[derive(Clone, Debug, Serialize, Deserialize, PartialEq)]
pub struct Interface {
    /// Base name of the shared library in `binaries/<platform>/`.
    pub model_identifier: String,
    /// CS only.
    pub can_handle_variable_communication_step_size: bool,
    pub can_get_and_set_fmu_state: bool,
    /// FMI 2 `canSerializeFMUstate`, FMI 3 `canSerializeFMUState`: with
    /// `can_get_and_set_fmu_state`, what saving a run's final state or starting from a saved
    /// one needs. Absent in records described before the field (they are described again).
    #[serde(default)]
    pub can_serialize_fmu_state: bool,
    /// ME only: FMI 3 `needsCompletedIntegratorStep`, FMI 2 `!completedIntegratorStepNotNeeded`.
    pub needs_completed_integrator_step: bool,
    pub provides_directional_derivatives: bool,
    /// FMI 3 CS `hasEventMode`.
    pub has_event_mode: bool,
}

#[derive(Clone, Debug, Default, Serialize, Deserialize, PartialEq)]
pub struct DefaultExperiment {
    pub start_time: Option<f64>,
    pub stop_time: Option<f64>,
    pub tolerance: Option<f64>,
    pub step_size: Option<f64>,
}

#[derive(Clone, Debug, Serialize, Deserialize, PartialEq)]
pub struct Variable {
    pub name: String,
    pub value_reference: u32,
    /// FMI 3: "Float64", "Int32", "Boolean", "String", "Binary", "Clock", "Enumeration", ...;
    /// FMI 2: "Real", "Integer", "Boolean", "String", "Enumeration".
    #[serde(rename = "type")]
    pub r#type: String,
    /// As in the XML ("parameter", "output", ...), the spec's default ("local") when absent.
    pub causality: String,
    /// As in the XML ("fixed", "continuous", ...), or the spec's default when absent: FMI 2
    /// "continuous"; FMI 3 "continuous" for Float32/Float64, "discrete" otherwise, except that
    /// (following fmi-rs) parameters without one read as "fixed", because the plain default
    /// would be an illegal combination for a parameter.
    pub variability: String,
    /// As in the XML, or the spec's default for this causality and variability when absent;
    /// `None` only where the spec allows no `initial` (the independent variable).
    pub initial: Option<String>,
    /// The `start` attribute as written. FMI 3 arrays keep their space-separated form; FMI 3
    /// String/Binary start values (`<Start value=..>` elements) are joined with spaces.
    pub start: Option<String>,
    /// The variable's unit, or the unit of its declared type.
    pub unit: Option<String>,
    /// The unit it is meant to be shown in (its `displayUnit`, or its declared type's).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub display_unit: Option<String>,
    pub description: Option<String>,
    /// The `min` and `max` attributes, where the variable declares them (numbers only).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub min: Option<f64>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub max: Option<f64>,
    /// FMI 3 array dimensions (`<Dimension>` elements); 0 for a scalar.
    #[serde(default, skip_serializing_if = "is_zero")]
    pub dimensions: usize,
    /// The size of each dimension, outermost first (row-major, as FMI stores arrays); empty
    /// for a scalar. Models stored before shapes were read have none for their arrays.
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub shape: Vec<Dimension>,
    /// An enumeration's items, from its declared type.
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub items: Vec<Item>,
    /// Other names for this variable, usable wherever its name is (see [`aliases`] for the
    /// FMI 2 rule). Models stored before aliases were read have none.
    #[serde(default)]
    pub aliases: Vec<Alias>,
}

/// Another name for a variable: an FMI 3 `<Alias>` element, or an FMI 2 variable sharing the
/// variable's value reference and type.
#[derive(Clone, Debug, Serialize, Deserialize, PartialEq)]
pub struct Alias {
    pub name: String,
    pub description: Option<String>,
    /// The unit this name is meant to be shown in: FMI 3 `displayUnit` on the `<Alias>`; FMI 2
    /// the alias variable's own `displayUnit`.
    pub display_unit: Option<String>,
}

/// A unit of `<UnitDefinitions>` and the display units it can be shown in.
#[derive(Clone, Debug, Serialize, Deserialize, PartialEq)]
pub struct UnitDefinition {
    pub name: String,
    pub display_units: Vec<DisplayUnit>,
}

/// A `<DisplayUnit>`: a value in it is `factor · value + offset` (FMI 2 and 3); FMI 3 also
/// has `inverse` ones.
#[derive(Clone, Debug, Serialize, Deserialize, PartialEq)]
pub struct DisplayUnit {
    pub name: String,
    pub factor: f64,
    pub offset: f64,
    #[serde(default)]
    pub inverse: bool,
}

impl ModelInfo {
    /// The display unit `name` of the unit `unit`.
    pub fn display_unit(&self, unit: &str, name: &str) -> Option<&DisplayUnit> {
        self.unit_definitions
            .iter()
            .find(|u| u.name == unit)?
            .display_units
            .iter()
            .find(|d| d.name == name)
    }
}

/// Our copy of fmi-rs's unit definitions (the same struct for FMI 2 and 3).
fn unit_definitions(units: &[fmi_rs::model_description::Unit]) -> Vec<UnitDefinition> {
    units
        .iter()
        .map(|u| UnitDefinition {
            name: u.name.clone(),
            display_units: u
                .displayUnits
                .iter()
                .map(|d| DisplayUnit {
                    name: d.name.clone(),
                    factor: d.factor,
                    offset: d.offset,
                    inverse: d.inverse,
                })
                .collect(),
        })
        .collect()
}

/// The size of one array dimension.
#[derive(Clone, Debug, Serialize, Deserialize, PartialEq, Eq)]
#[serde(rename_all = "snake_case")]
pub enum Dimension {
    /// `<Dimension start="3"/>`.
    Fixed(u64),
    /// `<Dimension valueReference=".."/>`: the value of this structural parameter.
    Parameter(String),
}

/// An enumeration item: the name users give and see, the value the FMU uses.
#[derive(Clone, Debug, Serialize, Deserialize, PartialEq, Eq)]
pub struct Item {
    pub name: String,
    pub value: i64,
}

fn is_zero(n: &usize) -> bool {
    *n == 0
}

impl Variable {
    /// Whether the engine can record this variable: any type but a Clock (which has no value
    /// between events), scalar or an array whose shape is known.
    pub fn is_recordable(&self) -> bool {
        self.r#type != "Clock" && self.shape.len() == self.dimensions
    }

    /// Its type with an array's shape, as people read it: `Float64`, `Float64[3]`,
    /// `Float64[n]` (sized by the structural parameter `n`), `Float64[2,3]`.
    pub fn type_with_shape(&self) -> String {
        if self.shape.is_empty() {
            return self.r#type.clone();
        }
        let dims: Vec<String> = self
            .shape
            .iter()
            .map(|d| match d {
                Dimension::Fixed(n) => n.to_string(),
                Dimension::Parameter(p) => p.clone(),
            })
            .collect();
        format!("{}[{}]", self.r#type, dims.join(","))
    }
}

/// Why an FMU's model description could not be used. Shown to the uploader.
#[derive(Debug, thiserror::Error)]
#[non_exhaustive]
pub enum DescribeError {
    #[error("modelDescription.xml is missing at the top of the FMU")]
    Missing,

    #[error("modelDescription.xml is {size} bytes; the limit is {limit} bytes")]
    TooLarge { size: u64, limit: u64 },

    #[error("modelDescription.xml cannot be read: {0}")]
    Io(#[source] io::Error),

    #[error("modelDescription.xml is not valid XML: {0}")]
    Xml(String),

    /// A document type declaration (`<!DOCTYPE …>`, which is where entities are declared) or
    /// any other markup declaration. FMI model descriptions need none, and entities can
    /// expand without bound (the "billion laughs"), so they are refused before parsing.
    #[error(
        "modelDescription.xml contains a markup declaration (<!{0}…>); model descriptions must not declare a DTD or entities, so this file is refused unparsed"
    )]
    Declaration(String),

    #[error("modelDescription.xml has no fmiVersion attribute on its root element")]
    NoVersion,

    #[error("FMI version '{0}' is not supported; only FMI 2.0 and 3.0 are supported")]
    UnsupportedVersion(String),

    /// Well-formed XML that is not a usable model description (a missing required attribute, an
    /// illegal value, ...), as fmi-rs's parser reports it.
    #[error("modelDescription.xml is not a valid FMI {version} model description: {detail}")]
    Parse { version: String, detail: String },

    /// The model description parsed but breaks rules of the standard.
    #[error("modelDescription.xml breaks the FMI {version} standard: {}", Problems(.problems))]
    Invalid {
        version: String,
        problems: Vec<String>,
    },

    #[error(
        "modelIdentifier '{0}' is not a valid C identifier, so it cannot name the FMU's binary"
    )]
    BadModelIdentifier(String),

    #[error(
        "the FMU implements neither Co-Simulation nor Model Exchange, so this server cannot run it"
    )]
    NoInterface,

    #[error(
        "this FMU implements only Scheduled Execution, which this server does not run yet (it runs Co-Simulation and Model Exchange)"
    )]
    OnlyScheduledExecution,

    #[error(
        "the FMU has no binary for this server (Linux x86-64): {missing} is missing; {}",
        Platforms(.platforms)
    )]
    MissingBinary {
        /// Relative path of the missing file, e.g. "binaries/x86_64-linux/BouncingBall.so".
        missing: String,
        platforms: Vec<String>,
    },
}

struct Problems<'a>(&'a [String]);

impl fmt::Display for Problems<'_> {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(&self.0.join("; "))
    }
}

struct Platforms<'a>(&'a [String]);

impl fmt::Display for Platforms<'_> {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        if self.0.is_empty() {
            f.write_str("the FMU has no binaries for any platform")
        } else {
            write!(f, "the FMU has binaries for: {}", self.0.join(", "))
        }
    }
}

impl ModelInfo {
    /// The interface to use when a request does not choose: Co-Simulation when there is one,
    /// because the FMU brings its own solver and usually runs as its authors tested it.
    pub fn default_interface(&self) -> Option<&'static str> {
        if self.co_simulation.is_some() {
            Some("cs")
        } else if self.model_exchange.is_some() {
            Some("me")
        } else {
            None
        }
    }

    /// Why this server cannot run the FMU whatever the request asks: it offers no interface
    /// that the engine runs. `None` when it offers Co-Simulation or Model Exchange.
    pub fn unrunnable(&self) -> Option<DescribeError> {
        if self.co_simulation.is_some() || self.model_exchange.is_some() {
            None
        } else if self.scheduled_execution.is_some() {
            Some(DescribeError::OnlyScheduledExecution)
        } else {
            Some(DescribeError::NoInterface)
        }
    }

    pub fn variable(&self, name: &str) -> Option<&Variable> {
        self.variables.iter().find(|v| v.name == name)
    }

    /// The variable a name stands for: the one that has an alias of that name, else the
    /// variable of that name. An FMI 2 alias is also a variable of its own, but resolves to
    /// its base: the base is the one that carries the start value, causality and bounds that
    /// a request is checked against, and both reach the FMU as the same value reference.
    pub fn resolve(&self, name: &str) -> Option<&Variable> {
        self.variables
            .iter()
            .find(|v| v.aliases.iter().any(|a| a.name == name))
            .or_else(|| self.variable(name))
    }

    /// Variables with causality "output", in file order: what a simulation records by default.
    pub fn outputs(&self) -> impl Iterator<Item = &Variable> {
        self.variables.iter().filter(|v| v.causality == "output")
    }

    /// Major FMI version: 3 for "3.x", otherwise 2 (describe accepts nothing else).
    pub fn is_fmi3(&self) -> bool {
        self.fmi_version.starts_with("3.")
    }
}

/// Whether [`describe_with`] refuses a model description that breaks fmusim's rules (as
/// fmi-rs validates them), or only one it cannot read.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Rules {
    /// Refuse it ([`DescribeError::Invalid`]), as `fmu info` and a strict upload do.
    Enforce,
    /// Read it anyway, as FMPy does with `validate=False`: the upload's validation report
    /// (`fmi::validation`) lists the problems instead.
    Report,
}

/// Reads `<dir>/modelDescription.xml` (FMI 2.0 or 3.0), validates it with fmi-rs, and summarizes
/// it together with the platforms found under `<dir>/binaries`.
pub fn describe(dir: &Path) -> Result<ModelInfo, DescribeError> {
    describe_with(dir, Rules::Enforce)
}

/// Reads `<dir>/modelDescription.xml` as a text, bounded by [`MAX_MODEL_DESCRIPTION_BYTES`] and
/// refusing markup declarations.
pub fn read_text(dir: &Path) -> Result<String, DescribeError> {
    let path = dir.join(MODEL_DESCRIPTION);
    let meta = match fs::metadata(&path) {
        Ok(meta) if meta.is_file() => meta,
        Ok(_) => return Err(DescribeError::Missing),
        Err(e) if e.kind() == io::ErrorKind::NotFound => return Err(DescribeError::Missing),
        Err(e) => return Err(DescribeError::Io(e)),
    };
    if meta.len() > MAX_MODEL_DESCRIPTION_BYTES {
        return Err(DescribeError::TooLarge {
            size: meta.len(),
            limit: MAX_MODEL_DESCRIPTION_BYTES,
        });
    }

    // Read once, bounded even if the file grew since its size was checked.
    let mut bytes = Vec::new();
    fs::File::open(&path)
        .and_then(|f| {
            io::Read::read_to_end(
                &mut io::Read::take(f, MAX_MODEL_DESCRIPTION_BYTES + 1),
                &mut bytes,
            )
        })
        .map_err(DescribeError::Io)?;
    if bytes.len() as u64 > MAX_MODEL_DESCRIPTION_BYTES {
        return Err(DescribeError::TooLarge {
            size: bytes.len() as u64,
            limit: MAX_MODEL_DESCRIPTION_BYTES,
        });
    }
    let text = String::from_utf8(bytes).map_err(|e| {
        DescribeError::Xml(format!(
            "it is not UTF-8 (at byte {})",
            e.utf8_error().valid_up_to()
        ))
    })?;
    refuse_declarations(&text)?;
    Ok(text)
}

/// [`describe`], enforcing fmusim's rules or leaving them to the validation report.
pub fn describe_with(dir: &Path, rules: Rules) -> Result<ModelInfo, DescribeError> {
    let path = dir.join(MODEL_DESCRIPTION);
    let text = read_text(dir)?;
    let version = match fmi_rs::model_description::peek_fmi_version(&path) {
        Ok(version) => version,
        Err(ModelDescriptionError::Parse(detail)) => return Err(DescribeError::Xml(detail)),
        Err(ModelDescriptionError::MissingAttribute(_)) => return Err(DescribeError::NoVersion),
        Err(ModelDescriptionError::Io(e)) => return Err(DescribeError::Io(e)),
        Err(other) => return Err(DescribeError::Xml(other.to_string())),
    };
    let mut info = if version == "2.0" {
        describe_fmi2(&text, &version, rules)?
    } else if version.starts_with("3.") {
        describe_fmi3(&text, &version, rules)?
    } else {
        return Err(DescribeError::UnsupportedVersion(version));
    };

    for interface in [
        &info.co_simulation,
        &info.model_exchange,
        &info.scheduled_execution,
    ]
    .into_iter()
    .flatten()
    {
        check_identifier(&interface.model_identifier)?;
    }
    info.platforms = platforms(dir)?;
    info.describe_version = DESCRIBE_VERSION;
    Ok(info)
}

/// Refuses markup declarations (`<!DOCTYPE`, `<!ENTITY`, …) anywhere outside comments, CDATA
/// sections and processing instructions, in one pass over the text, before any parser sees
/// it. In well-formed XML `<` cannot occur in attribute values or text, so every other `<!`
/// is a declaration.
pub fn refuse_declarations(text: &str) -> Result<(), DescribeError> {
    let mut rest = text;
    while let Some(at) = rest.find('<') {
        rest = &rest[at..];
        let skip = |open: &str, close: &str| {
            rest[open.len()..]
                .find(close)
                .map(|end| open.len() + end + close.len())
        };
        let next = if rest.starts_with("<!--") {
            skip("<!--", "-->")
        } else if rest.starts_with("<![CDATA[") {
            skip("<![CDATA[", "]]>")
        } else if rest.starts_with("<?") {
            skip("<?", "?>")
        } else if let Some(declaration) = rest.strip_prefix("<!") {
            let name: String = declaration
                .chars()
                .take_while(|c| c.is_ascii_alphabetic())
                .take(16)
                .collect();
            return Err(DescribeError::Declaration(name));
        } else {
            Some(1)
        };
        match next {
            Some(n) => rest = &rest[n..],
            // Unterminated: not well-formed, which the parser reports.
            None => return Ok(()),
        }
    }
    Ok(())
}

/// Checks that the FMU offers an interface this server runs (Co-Simulation or Model Exchange)
/// and that the binary this server loads is there for each of them: FMI 3
/// `binaries/x86_64-linux/<id>.so`, FMI 2 `binaries/linux64/<id>.so`.
pub fn check_platform(dir: &Path, info: &ModelInfo) -> Result<(), DescribeError> {
    let platform = if info.is_fmi3() {
        FMI3_PLATFORM
    } else {
        FMI2_PLATFORM
    };
    if let Some(problem) = info.unrunnable() {
        return Err(problem);
    }
    for interface in [&info.co_simulation, &info.model_exchange]
        .into_iter()
        .flatten()
    {
        // ModelInfo may come from the database rather than from describe(): check again before
        // the identifier becomes part of a path.
        check_identifier(&interface.model_identifier)?;
        let relative = format!("binaries/{platform}/{}.so", interface.model_identifier);
        let is_file = fs::symlink_metadata(dir.join(&relative)).is_ok_and(|m| m.is_file());
        if !is_file {
            return Err(DescribeError::MissingBinary {
                missing: relative,
                platforms: platforms(dir)?,
            });
        }
    }
    Ok(())
}

/// The spec requires a C identifier; anything else (a `/`, `..`, an empty name) could point the
/// loader at a file outside `binaries/<platform>/`.
fn check_identifier(id: &str) -> Result<(), DescribeError> {
    let mut chars = id.chars();
    let valid = chars
        .next()
        .is_some_and(|c| c.is_ascii_alphabetic() || c == '_')
        && chars.all(|c| c.is_ascii_alphanumeric() || c == '_');
    if valid {
        Ok(())
    } else {
        Err(DescribeError::BadModelIdentifier(id.to_owned()))
    }
}

/// Platform directories under `binaries/`, sorted. No `binaries/` means none.
fn platforms(dir: &Path) -> Result<Vec<String>, DescribeError> {
    let entries = match fs::read_dir(dir.join("binaries")) {
        Ok(entries) => entries,
        Err(e) if e.kind() == io::ErrorKind::NotFound => return Ok(Vec::new()),
        Err(e) => return Err(DescribeError::Io(e)),
    };
    let mut found = Vec::new();
    for entry in entries {
        let entry = entry.map_err(DescribeError::Io)?;
        // file_type() does not follow links: a link is not a platform directory.
        if entry.file_type().map_err(DescribeError::Io)?.is_dir() {
            found.push(entry.file_name().to_string_lossy().into_owned());
        }
    }
    found.sort();
    Ok(found)
}

fn parse_error(version: &str, e: ModelDescriptionError) -> DescribeError {
    DescribeError::Parse {
        version: version.to_owned(),
        detail: e.to_string(),
    }
}

/// Validation problems as "line N: message", so the author can find them in the file.
fn problems(version: &str, text: &str, found: Vec<ValidationError>) -> Result<(), DescribeError> {
    if found.is_empty() {
        return Ok(());
    }
    let problems = found
        .into_iter()
        .map(|p| match p.range.first() {
            Some(range) => {
                let line = text
                    .as_bytes()
                    .iter()
                    .take(range.start)
                    .filter(|&&b| b == b'\n')
                    .count()
                    + 1;
                format!("line {line}: {}", p.message)
            }
            None => p.message,
        })
        .collect();
    Err(DescribeError::Invalid {
        version: version.to_owned(),
        problems,
    })
}

fn default_experiment(
    version: &str,
    de: &FmiDefaultExperiment,
) -> Result<DefaultExperiment, DescribeError> {
    let number = |attribute: &str, value: &Option<String>| -> Result<Option<f64>, DescribeError> {
        value
            .as_deref()
            .map(|s| {
                s.trim().parse::<f64>().map_err(|_| DescribeError::Parse {
                    version: version.to_owned(),
                    detail: format!("DefaultExperiment {attribute}=\"{s}\" is not a number"),
                })
            })
            .transpose()
    };
    Ok(DefaultExperiment {
        start_time: number("startTime", &de.startTime)?,
        stop_time: number("stopTime", &de.stopTime)?,
        tolerance: number("tolerance", &de.tolerance)?,
        step_size: number("stepSize", &de.stepSize)?,
    })
}

/// Lower camel case, the spelling the XML uses ("calculatedParameter").
fn xml_name(debug: impl fmt::Debug) -> String {
    let s = format!("{debug:?}");
    let mut chars = s.chars();
    match chars.next() {
        Some(first) => first.to_ascii_lowercase().to_string() + chars.as_str(),
        None => s,
    }
}

/// fmi-rs's fmi2 parser, reading real `<UnitDefinitions>` (see [`describe_fmi2`]).
fn parse_fmi2(text: &str, version: &str) -> Result<fmi2::ModelDescription, DescribeError> {
    // fmi-rs 0.3.4 looks for FMI 2 units under a misspelled <UnitDefintions> element, so it
    // never sees real ones. Renaming the element in our copy of the text lets its parser read
    // them; the tests check that units arrive, which will flag a future fmi-rs that fixes the
    // spelling. `<` cannot occur in attribute values, so only tags (or comments) change, and
    // line numbers stay the same.
    let text = text
        .replace("<UnitDefinitions", "<UnitDefintions")
        .replace("</UnitDefinitions", "</UnitDefintions");
    fmi2::ModelDescription::from_string(&text).map_err(|e| parse_error(version, e))
}

/// What fmi-rs's validation (fmusim's rules) finds in a model description of `version`: each
/// problem with the byte offset of the element at fault, when it has one. Byte offsets may
/// be a few bytes off on FMI 2 lines that name `<UnitDefinitions>`, never off by a line.
pub fn rule_problems(
    text: &str,
    version: &str,
) -> Result<Vec<(Option<usize>, String)>, DescribeError> {
    let found = if version == "2.0" {
        let md = parse_fmi2(text, version)?;
        with_name_parser(|| md.validate())
    } else if version.starts_with("3.") {
        let md = fmi3::ModelDescription::from_string(text).map_err(|e| parse_error(version, e))?;
        with_name_parser(|| md.validate())
    } else {
        return Err(DescribeError::UnsupportedVersion(version.to_owned()));
    };
    Ok(found
        .into_iter()
        .map(|p| (p.range.first().map(|r| r.start), p.message))
        .collect())
}

fn describe_fmi2(text: &str, version: &str, rules: Rules) -> Result<ModelInfo, DescribeError> {
    let md = parse_fmi2(text, version)?;
    if rules == Rules::Enforce {
        problems(version, text, with_name_parser(|| md.validate()))?;
    }

    let variables = md
        .modelVariables
        .iter()
        .map(|v| Variable {
            name: v.name.clone(),
            value_reference: v.valueReference,
            r#type: v.variableType.name().to_owned(),
            causality: xml_name(v.causality),
            variability: xml_name(v.variability),
            initial: v.initial.map(xml_name),
            start: v.variableType.start().clone(),
            unit: md.get_unit(v).map(str::to_owned),
            display_unit: fmi2_display_unit(&md, &v.variableType),
            description: v.description.clone(),
            min: fmi2_bounds(&v.variableType).0,
            max: fmi2_bounds(&v.variableType).1,
            dimensions: 0,
            shape: Vec::new(),
            items: fmi2_items(&md, &v.variableType),
            aliases: Vec::new(),
        })
        .collect();
    let derivatives: Vec<bool> = md
        .modelVariables
        .iter()
        .map(|v| {
            matches!(
                v.variableType,
                fmi2::VariableType::Real {
                    derivative: Some(_),
                    ..
                }
            )
        })
        .collect();
    let variables = with_fmi2_aliases(variables, &derivatives);

    Ok(ModelInfo {
        describe_version: 0,
        fmi_version: version.to_owned(),
        model_name: md.modelName.clone(),
        instantiation_token: md.guid.clone(),
        description: md.description.clone(),
        generation_tool: md.generationTool.clone(),
        co_simulation: md.coSimulation.as_ref().map(|cs| Interface {
            model_identifier: cs.modelIdentifier.clone(),
            can_handle_variable_communication_step_size: cs.canHandleVariableCommunicationStepSize,
            can_get_and_set_fmu_state: cs.canGetAndSetFMUstate,
            can_serialize_fmu_state: cs.canSerializeFMUstate,
            needs_completed_integrator_step: false,
            provides_directional_derivatives: cs.providesDirectionalDerivative,
            has_event_mode: false,
        }),
        model_exchange: md.modelExchange.as_ref().map(|me| Interface {
            model_identifier: me.modelIdentifier.clone(),
            can_handle_variable_communication_step_size: false,
            can_get_and_set_fmu_state: me.canGetAndSetFMUstate,
            can_serialize_fmu_state: me.canSerializeFMUstate,
            needs_completed_integrator_step: !me.completedIntegratorStepNotNeeded,
            provides_directional_derivatives: me.providesDirectionalDerivative,
            has_event_mode: false,
        }),
        scheduled_execution: None,
        default_experiment: md
            .defaultExperiment
            .as_ref()
            .map(|de| default_experiment(version, de))
            .transpose()?,
        units: md.unitDefintions.iter().map(|u| u.name.clone()).collect(),
        unit_definitions: unit_definitions(&md.unitDefintions),
        log_categories: md.logCategories.iter().map(|c| c.name.clone()).collect(),
        variables,
        platforms: Vec::new(),
        warnings: Vec::new(),
        validation: None,
    })
}

/// The `min` and `max` an FMI 2 variable declares itself.
fn fmi2_bounds(t: &fmi2::VariableType) -> (Option<f64>, Option<f64>) {
    use fmi2::VariableType as T;
    // fmi-rs keeps FMI 2 bounds as text; one that is not a number bounds nothing here
    // (fmi-rs's validation reports it at upload).
    let number = |v: &Option<String>| v.as_deref().and_then(|s| s.trim().parse::<f64>().ok());
    match t {
        T::Real { min, max, .. } | T::Integer { min, max, .. } => (number(min), number(max)),
        _ => (None, None),
    }
}

/// The `min` and `max` an FMI 3 variable declares itself.
fn fmi3_bounds(t: &fmi3::VariableType) -> (Option<f64>, Option<f64>) {
    use fmi3::VariableType as T;
    fn pair<N: Copy + Into<f64>>(min: &Option<N>, max: &Option<N>) -> (Option<f64>, Option<f64>) {
        (min.map(Into::into), max.map(Into::into))
    }
    match t {
        T::Float32 { min, max, .. } => pair(min, max),
        T::Float64 { min, max, .. } => pair(min, max),
        T::Int8 { min, max, .. } => pair(min, max),
        T::UInt8 { min, max, .. } => pair(min, max),
        T::Int16 { min, max, .. } => pair(min, max),
        T::UInt16 { min, max, .. } => pair(min, max),
        T::Int32 { min, max, .. } => pair(min, max),
        T::UInt32 { min, max, .. } => pair(min, max),
        // 64-bit bounds as f64 are only used to check start values, where the parsed literal
        // is compared the same way.
        T::Int64 { min, max, .. } => (min.map(|v| v as f64), max.map(|v| v as f64)),
        T::UInt64 { min, max, .. } => (min.map(|v| v as f64), max.map(|v| v as f64)),
        _ => (None, None),
    }
}

/// An FMI 2 Real's `displayUnit`, or its declared type's.
fn fmi2_display_unit(md: &fmi2::ModelDescription, t: &fmi2::VariableType) -> Option<String> {
    let fmi2::VariableType::Real {
        displayUnit,
        declaredType,
        ..
    } = t
    else {
        return None;
    };
    displayUnit
        .clone()
        .or_else(|| match md.get_type_definition(declaredType.as_deref()?)? {
            fmi2::SimpleType::Real { displayUnit, .. } => displayUnit.clone(),
            _ => None,
        })
}

/// An FMI 3 float's `displayUnit`, or its declared type's.
fn fmi3_display_unit(md: &fmi3::ModelDescription, t: &fmi3::VariableType) -> Option<String> {
    let (fmi3::VariableType::Float32 {
        displayUnit,
        declaredType,
        ..
    }
    | fmi3::VariableType::Float64 {
        displayUnit,
        declaredType,
        ..
    }) = t
    else {
        return None;
    };
    displayUnit
        .clone()
        .or_else(|| match md.get_type_definition(declaredType.as_deref()?)? {
            fmi3::TypeDefinition::Float32 { displayUnit, .. }
            | fmi3::TypeDefinition::Float64 { displayUnit, .. } => displayUnit.clone(),
            _ => None,
        })
}

/// The items of an FMI 2 enumeration's declared type.
fn fmi2_items(md: &fmi2::ModelDescription, t: &fmi2::VariableType) -> Vec<Item> {
    let fmi2::VariableType::Enumeration { declaredType, .. } = t else {
        return Vec::new();
    };
    match md.get_type_definition(declaredType) {
        Some(fmi2::SimpleType::Enumeration { items, .. }) => items
            .iter()
            .map(|i| Item {
                name: i.name.clone(),
                value: i64::from(i.value),
            })
            .collect(),
        _ => Vec::new(),
    }
}

/// The items of an FMI 3 enumeration's declared type.
fn fmi3_items(md: &fmi3::ModelDescription, t: &fmi3::VariableType) -> Vec<Item> {
    let fmi3::VariableType::Enumeration { declaredType, .. } = t else {
        return Vec::new();
    };
    match md.get_type_definition(declaredType) {
        Some(fmi3::TypeDefinition::Enumeration { items, .. }) => items
            .iter()
            .map(|i| Item {
                name: i.name.clone(),
                value: i.value,
            })
            .collect(),
        _ => Vec::new(),
    }
}

/// An FMI 3 array's dimensions; a dimension whose value reference names no variable is an
/// error naming the array.
fn fmi3_shape(
    md: &fmi3::ModelDescription,
    v: &fmi3::ModelVariable,
    version: &str,
) -> Result<Vec<Dimension>, DescribeError> {
    v.dimensions
        .iter()
        .map(|d| match d {
            fmi3::Dimension::Fixed { start } => Ok(Dimension::Fixed(*start as u64)),
            fmi3::Dimension::Variable { valueReference } => md
                .variable_by_value_reference(*valueReference)
                .map(|p| Dimension::Parameter(p.name.clone()))
                .map_err(|_| DescribeError::Invalid {
                    version: version.to_owned(),
                    problems: vec![format!(
                        "a <Dimension> of '{}' refers to value reference {valueReference}, which no variable has",
                        v.name
                    )],
                }),
        })
        .collect()
}

/// The `start` of an FMI 3 variable as written in the file.
fn fmi3_start(t: &fmi3::VariableType) -> Option<String> {
    use fmi3::VariableType as T;
    match t {
        T::Float32 { start, .. }
        | T::Float64 { start, .. }
        | T::Int8 { start, .. }
        | T::UInt8 { start, .. }
        | T::Int16 { start, .. }
        | T::UInt16 { start, .. }
        | T::Int32 { start, .. }
        | T::UInt32 { start, .. }
        | T::Int64 { start, .. }
        | T::UInt64 { start, .. }
        | T::Boolean { start, .. }
        | T::Enumeration { start, .. } => start.clone(),
        T::String { start, .. } | T::Binary { start, .. } => {
            (!start.is_empty()).then(|| start.join(" "))
        }
        T::Clock { .. } => None,
    }
}

fn describe_fmi3(text: &str, version: &str, rules: Rules) -> Result<ModelInfo, DescribeError> {
    let md = fmi3::ModelDescription::from_string(text).map_err(|e| parse_error(version, e))?;
    if rules == Rules::Enforce {
        problems(version, text, with_name_parser(|| md.validate()))?;
    }

    let variables = md
        .modelVariables
        .iter()
        .map(|v| {
            Ok(Variable {
                name: v.name.clone(),
                value_reference: v.valueReference,
                r#type: v.variableType.name().to_owned(),
                causality: xml_name(v.causality),
                variability: xml_name(v.variability),
                initial: v.initial.map(xml_name),
                start: fmi3_start(&v.variableType),
                unit: md.get_unit(v).map(str::to_owned),
                display_unit: fmi3_display_unit(&md, &v.variableType),
                description: v.description.clone(),
                min: fmi3_bounds(&v.variableType).0,
                max: fmi3_bounds(&v.variableType).1,
                dimensions: v.dimensions.len(),
                shape: fmi3_shape(&md, v, version)?,
                items: fmi3_items(&md, &v.variableType),
                aliases: Vec::new(),
            })
        })
        .collect::<Result<Vec<_>, DescribeError>>()?;
    let variables = with_fmi3_aliases(variables, text, version)?;

    Ok(ModelInfo {
        describe_version: 0,
        fmi_version: md.fmiVersion.clone(),
        model_name: md.modelName.clone(),
        instantiation_token: md.instantiationToken.clone(),
        description: md.description.clone(),
        generation_tool: md.generationTool.clone(),
        co_simulation: md.coSimulation.as_ref().map(|cs| Interface {
            model_identifier: cs.modelIdentifier.clone(),
            can_handle_variable_communication_step_size: cs.canHandleVariableCommunicationStepSize,
            can_get_and_set_fmu_state: cs.canGetAndSetFMUState,
            can_serialize_fmu_state: cs.canSerializeFMUState,
            needs_completed_integrator_step: false,
            provides_directional_derivatives: cs.providesDirectionalDerivatives,
            has_event_mode: cs.hasEventMode,
        }),
        model_exchange: md.modelExchange.as_ref().map(|me| Interface {
            model_identifier: me.modelIdentifier.clone(),
            can_handle_variable_communication_step_size: false,
            can_get_and_set_fmu_state: me.canGetAndSetFMUState,
            can_serialize_fmu_state: me.canSerializeFMUState,
            needs_completed_integrator_step: me.needsCompletedIntegratorStep,
            provides_directional_derivatives: me.providesDirectionalDerivatives,
            has_event_mode: false,
        }),
        scheduled_execution: md.scheduledExecution.as_ref().map(|se| Interface {
            model_identifier: se.modelIdentifier.clone(),
            can_handle_variable_communication_step_size: false,
            can_get_and_set_fmu_state: se.canGetAndSetFMUState,
            can_serialize_fmu_state: se.canSerializeFMUState,
            needs_completed_integrator_step: false,
            provides_directional_derivatives: se.providesDirectionalDerivatives,
            has_event_mode: false,
        }),
        default_experiment: md
            .defaultExperiment
            .as_ref()
            .map(|de| default_experiment(version, de))
            .transpose()?,
        units: md.unitDefinitions.iter().map(|u| u.name.clone()).collect(),
        unit_definitions: unit_definitions(&md.unitDefinitions),
        log_categories: md.logCategories.iter().map(|c| c.name.clone()).collect(),
        variables,
        platforms: Vec::new(),
        warnings: Vec::new(),
        validation: None,
    })
}

/// FMI 2 has no alias element or attribute (the FMI 2.0.5 schema only says a valueReference
/// is "not necessarily unique"; `alias="negatedAlias"` was FMI 1): variables that share a
/// value reference and a type are one value under several names. The first of them in file order that is not a derivative
/// (`<Real derivative=..>`), or the first if all are, is the base; the others become its
/// aliases, in file order. Every variable stays in the list as it was, so nothing that names
/// an FMI 2 variable changes.
fn with_fmi2_aliases(mut variables: Vec<Variable>, derivatives: &[bool]) -> Vec<Variable> {
    let mut groups: std::collections::HashMap<(u32, &str), Vec<usize>> = Default::default();
    for (i, v) in variables.iter().enumerate() {
        groups
            .entry((v.value_reference, v.r#type.as_str()))
            .or_default()
            .push(i);
    }
    let mut bases: Vec<(usize, Vec<Alias>)> = groups
        .into_values()
        .filter(|members| members.len() > 1)
        .map(|members| {
            let base = members
                .iter()
                .copied()
                .find(|&i| !derivatives.get(i).copied().unwrap_or(false))
                .unwrap_or(members[0]);
            let aliases = members
                .iter()
                .filter(|&&i| i != base)
                .map(|&i| Alias {
                    name: variables[i].name.clone(),
                    description: variables[i].description.clone(),
                    // The alias variable's own `displayUnit` (or its declared type's).
                    display_unit: variables[i].display_unit.clone(),
                })
                .collect();
            (base, aliases)
        })
        .collect();
    bases.sort_by_key(|(base, _)| *base);
    for (base, aliases) in bases {
        variables[base].aliases = aliases;
    }
    variables
}

/// FMI 3 `<Alias name=.. description=.. displayUnit=..>` children of each variable, read from
/// the text (fmi-rs does not keep them). Variables are the element children of
/// `<ModelVariables>`, in the same order as fmi-rs lists them.
fn with_fmi3_aliases(
    mut variables: Vec<Variable>,
    text: &str,
    version: &str,
) -> Result<Vec<Variable>, DescribeError> {
    // A second parse of a large description costs its memory again: only when there is
    // something to find.
    if !text.contains("<Alias") {
        return Ok(variables);
    }
    let doc = roxmltree::Document::parse(text).map_err(|e| DescribeError::Xml(e.to_string()))?;
    let elements = doc
        .root_element()
        .children()
        .filter(|n| n.has_tag_name("ModelVariables"))
        .flat_map(|mv| mv.children().filter(roxmltree::Node::is_element));
    for element in elements {
        let aliases: Vec<Alias> = element
            .children()
            .filter(|n| n.has_tag_name("Alias"))
            .map(|a| Alias {
                name: a.attribute("name").unwrap_or_default().to_owned(),
                description: a.attribute("description").map(str::to_owned),
                display_unit: a.attribute("displayUnit").map(str::to_owned),
            })
            .collect();
        if aliases.is_empty() {
            continue;
        }
        let name = element.attribute("name").unwrap_or_default();
        if let Some(v) = variables.iter_mut().find(|v| v.name == name) {
            v.aliases = aliases;
        }
    }
    check_fmi3_alias_names(&variables, version)?;
    Ok(variables)
}

/// An alias must be a name of its own: not empty, not another variable's or alias's name
/// (FMI 3 requires names to be unique), or a request naming it would be ambiguous.
fn check_fmi3_alias_names(variables: &[Variable], version: &str) -> Result<(), DescribeError> {
    let mut seen: std::collections::HashSet<&str> =
        variables.iter().map(|v| v.name.as_str()).collect();
    let mut problems = Vec::new();
    for v in variables {
        for a in &v.aliases {
            if a.name.is_empty() {
                problems.push(format!("an <Alias> of '{}' has no name", v.name));
            } else if !seen.insert(&a.name) {
                problems.push(format!(
                    "the <Alias> '{}' of '{}' is not a unique name",
                    a.name, v.name
                ));
            }
        }
    }
    if problems.is_empty() {
        Ok(())
    } else {
        Err(DescribeError::Invalid {
            version: version.to_owned(),
            problems,
        })
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn xml_names_are_lower_camel_case() {
        assert_eq!(
            xml_name(fmi3::Causality::CalculatedParameter),
            "calculatedParameter"
        );
        assert_eq!(
            xml_name(fmi3::Causality::StructuralParameter),
            "structuralParameter"
        );
        assert_eq!(xml_name(fmi2::Variability::Continuous), "continuous");
        assert_eq!(xml_name(fmi2::Initial::Exact), "exact");
    }

    fn real(name: &str, value_reference: u32) -> Variable {
        Variable {
            name: name.into(),
            value_reference,
            r#type: "Real".into(),
            causality: "local".into(),
            variability: "continuous".into(),
            initial: None,
            start: None,
            unit: None,
            display_unit: None,
            description: Some(format!("about {name}")),
            min: None,
            max: None,
            dimensions: 0,
            shape: vec![],
            items: vec![],
            aliases: Vec::new(),
        }
    }

    fn alias_names(v: &Variable) -> Vec<&str> {
        v.aliases.iter().map(|a| a.name.as_str()).collect()
    }

    #[test]
    fn fmi2_aliases_go_to_the_first_variable_of_a_value_reference_that_is_not_a_derivative() {
        let mut flag = real("flag", 2);
        flag.r#type = "Boolean".into();
        let variables = vec![
            real("der(x)", 2),
            real("x", 1),
            real("v", 2),
            real("speed", 2),
            flag,
            real("y", 1),
        ];
        let derivatives = [true, false, false, false, false, false];
        let out = with_fmi2_aliases(variables, &derivatives);
        // Every variable is still listed, in file order.
        let names: Vec<&str> = out.iter().map(|v| v.name.as_str()).collect();
        assert_eq!(names, ["der(x)", "x", "v", "speed", "flag", "y"]);
        assert_eq!(alias_names(&out[1]), ["y"]);
        // der(x) comes first but is a derivative: v is the base.
        assert_eq!(alias_names(&out[2]), ["der(x)", "speed"]);
        assert_eq!(
            out[2].aliases[0].description.as_deref(),
            Some("about der(x)")
        );
        // Another type under the same value reference is another value.
        for i in [0, 3, 4, 5] {
            assert!(out[i].aliases.is_empty(), "{}", out[i].name);
        }
        // Aliases resolve to their base.
        let info = ModelInfo {
            describe_version: DESCRIBE_VERSION,
            unit_definitions: vec![],
            log_categories: vec![],
            fmi_version: "2.0".into(),
            model_name: "m".into(),
            instantiation_token: "t".into(),
            description: None,
            generation_tool: None,
            co_simulation: None,
            model_exchange: None,
            scheduled_execution: None,
            default_experiment: None,
            units: Vec::new(),
            variables: out,
            platforms: Vec::new(),
            warnings: Vec::new(),
            validation: None,
        };
        assert_eq!(info.resolve("speed").unwrap().name, "v");
        assert_eq!(info.resolve("der(x)").unwrap().name, "v");
        assert_eq!(info.resolve("flag").unwrap().name, "flag");
        assert!(info.resolve("nope").is_none());
    }

    #[test]
    fn fmi3_aliases_are_read_and_must_be_unique_names() {
        let xml = |alias: &str| {
            format!(
                r#"<fmiModelDescription fmiVersion="3.0"><ModelVariables>
                <Float64 name="h" valueReference="1"><Alias name="{alias}" description="d" displayUnit="ft"/></Float64>
                <Float64 name="v" valueReference="2"/>
                </ModelVariables></fmiModelDescription>"#
            )
        };
        let variables = || vec![real("h", 1), real("v", 2)];
        let out = with_fmi3_aliases(variables(), &xml("height"), "3.0").unwrap();
        assert_eq!(
            out[0].aliases,
            [Alias {
                name: "height".into(),
                description: Some("d".into()),
                display_unit: Some("ft".into()),
            }]
        );
        assert!(out[1].aliases.is_empty());
        for taken in ["v", ""] {
            let err = with_fmi3_aliases(variables(), &xml(taken), "3.0").unwrap_err();
            assert!(matches!(err, DescribeError::Invalid { .. }), "{err}");
        }
    }

    /// Model descriptions checked on many threads at once, as concurrent uploads are: fmi-rs's
    /// `validate()` reaches a parser that is not reentrant (this crashed the test process with a
    /// segfault before it ran under the parser's lock). Each thread gets the one answer.
    #[test]
    fn structured_model_descriptions_are_checked_safely_from_many_threads_at_once() {
        let text = r#"<fmiModelDescription fmiVersion="3.0" modelName="m" instantiationToken="t"
    variableNamingConvention="structured">
  <CoSimulation modelIdentifier="m"/>
  <ModelVariables>
    <Float64 name="a.b[1].c" valueReference="1" causality="output"/>
    <Float64 name="der(a.b[1].c)" valueReference="2" derivative="1"/>
    <Float64 name="a..b[" valueReference="3" causality="parameter" variability="fixed" start="1"/>
  </ModelVariables>
  <ModelStructure><Output valueReference="1"/></ModelStructure>
</fmiModelDescription>"#;
        let expected = rule_problems(text, "3.0").unwrap();
        assert!(
            expected.iter().any(|(_, m)| m.contains("a..b[")),
            "the bad name is found: {expected:?}"
        );
        let threads: Vec<_> = (0..8)
            .map(|_| {
                let expected = expected.clone();
                std::thread::spawn(move || {
                    for _ in 0..300 {
                        assert_eq!(rule_problems(text, "3.0").unwrap(), expected);
                    }
                })
            })
            .collect();
        for t in threads {
            t.join().unwrap();
        }
    }

    #[test]
    fn model_identifiers_must_be_c_identifiers() {
        for ok in ["BouncingBall", "_x1", "a"] {
            assert!(check_identifier(ok).is_ok(), "{ok}");
        }
        for bad in ["", "../x", "a/b", "1abc", "a.b", "a b", "é"] {
            assert!(check_identifier(bad).is_err(), "{bad}");
        }
    }
}
