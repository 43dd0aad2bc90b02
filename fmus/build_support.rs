//! Builds the FMU Gateway demo models (C sources in `fmus/src`) into `.fmu` archives.
//!
//! Self-contained (std + `zip`) so that both `build.rs` and the tests can include it with
//! `#[path = ".../fmus/build_support.rs"] mod build_support;`.
//!
//! The model descriptions are generated here from the variable tables in [`model`], which
//! mirror the `VarSpec` tables of the C model files (value reference = index in both). Archives
//! are deterministic: fixed entry order, fixed timestamps and permissions, and a GUID /
//! instantiation token derived from the model name, FMI version and C defines.

use std::fmt::Write as _;
use std::fs;
use std::io::{self, Write as _};
use std::path::{Path, PathBuf};
use std::process::Command;

use zip::write::SimpleFileOptions;
use zip::{CompressionMethod, DateTime, ZipWriter};

/// The FMI version an FMU is built for.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum FmiVersion {
    V2,
    V3,
}

impl FmiVersion {
    /// The `fmiVersion` attribute, also used as the version label of the library.
    pub fn label(self) -> &'static str {
        match self {
            FmiVersion::V2 => "2.0",
            FmiVersion::V3 => "3.0",
        }
    }

    /// The platform folder under `binaries/` for the host this runs on.
    pub fn platform(self) -> String {
        match self {
            FmiVersion::V2 => {
                if cfg!(target_pointer_width = "64") {
                    "linux64".to_owned()
                } else {
                    "linux32".to_owned()
                }
            }
            FmiVersion::V3 => format!("{}-linux", std::env::consts::ARCH),
        }
    }
}

/// The models of the built-in library (the `Hostile` sandbox variants are not part of it).
pub const LIBRARY_MODELS: [&str; 5] = [
    "BouncingBall",
    "VanDerPol",
    "Dahlquist",
    "Integrator",
    "Robertson",
];

/// The C defines that turn Dahlquist into a `Hostile` model (exactly one is used at a time).
pub const HOSTILE_DEFINES: [&str; 20] = [
    "HOSTILE_ERROR",
    "HOSTILE_SLEEP",
    "HOSTILE_SEGFAULT",
    "HOSTILE_LOOP",
    "HOSTILE_ALLOC",
    "HOSTILE_FORK",
    "HOSTILE_SOCKET",
    "HOSTILE_READ",
    "HOSTILE_WRITE",
    "HOSTILE_KILL_PARENT",
    "HOSTILE_KILL_ALL",
    "HOSTILE_SECRETS",
    "HOSTILE_IO_URING",
    "HOSTILE_PTRACE",
    "HOSTILE_FDS",
    "HOSTILE_UNIX_SOCKET",
    "HOSTILE_FILL_DISK",
    "HOSTILE_FORK_BOMB",
    "HOSTILE_THREADS",
    "HOSTILE_THREAD_BOMB",
];

/// Compiles `model` ("BouncingBall", "VanDerPol", "Dahlquist", "Integrator", "Hostile", or the
/// test model "Echo") for `version` with the extra C defines, and writes
/// `<out_dir>/<file_name>.fmu`. Returns its path.
pub fn build_fmu(
    fmus_dir: &Path,
    model: &str,
    version: FmiVersion,
    defines: &[&str],
    out_dir: &Path,
    file_name: &str,
) -> io::Result<PathBuf> {
    for define in defines {
        let name = define.split('=').next().unwrap_or_default();
        let valid_name = !name.is_empty()
            && !name.starts_with(|c: char| c.is_ascii_digit())
            && name.chars().all(|c| c.is_ascii_alphanumeric() || c == '_');
        if !valid_name || define.chars().any(char::is_whitespace) {
            return Err(invalid(format!("illegal C define {define:?}")));
        }
    }
    let hostile: Vec<&str> = defines
        .iter()
        .map(|d| d.split('=').next().unwrap_or_default())
        .filter(|d| HOSTILE_DEFINES.contains(d))
        .collect();
    match (model, hostile.len()) {
        ("Hostile", 1) => {}
        ("Hostile", _) => {
            return Err(invalid(format!(
                "the Hostile model needs exactly one of {HOSTILE_DEFINES:?}"
            )));
        }
        (_, 0) => {}
        _ => {
            return Err(invalid(format!(
                "{model} cannot be built with hostile defines (use the model \"Hostile\")"
            )));
        }
    }
    let spec = model::spec(model, hostile.first().copied())
        .ok_or_else(|| invalid(format!("unknown model {model:?}")))?;

    let token = instantiation_token(model, version, defines);
    fs::create_dir_all(out_dir)?;
    let work_dir = out_dir.join(format!(".build-{file_name}"));
    fs::create_dir_all(&work_dir)?;
    let binary = work_dir.join(format!("{}.so", spec.name));
    compile(fmus_dir, &spec, version, defines, &token, &binary)?;

    let xml = match version {
        FmiVersion::V3 => model_description_fmi3(&spec, &token),
        FmiVersion::V2 => model_description_fmi2(&spec, &token),
    };
    let fmu_path = out_dir.join(format!("{file_name}.fmu"));
    let library = fs::read(&binary)?;
    write_archive(
        &fmu_path,
        &[
            ("modelDescription.xml", xml.as_bytes(), 0o644),
            (
                &format!("binaries/{}/{}.so", version.platform(), spec.name),
                &library,
                0o755,
            ),
        ],
    )?;
    fs::remove_dir_all(&work_dir)?;
    Ok(fmu_path)
}

fn invalid(message: String) -> io::Error {
    io::Error::new(io::ErrorKind::InvalidInput, message)
}

/// A GUID-shaped token that only depends on the model, the FMI version and the defines, so
/// that identical builds produce identical archives.
fn instantiation_token(model: &str, version: FmiVersion, defines: &[&str]) -> String {
    let mut input = format!("fmu-gateway/{model}/{}", version.label());
    for define in defines {
        input.push('/');
        input.push_str(define);
    }
    // two FNV-1a 64-bit hashes with different offsets give 128 bits
    let fnv = |offset: u64| {
        input.bytes().fold(offset, |hash, byte| {
            (hash ^ u64::from(byte)).wrapping_mul(0x0000_0100_0000_01b3)
        })
    };
    let a = fnv(0xcbf2_9ce4_8422_2325);
    let b = fnv(0x6c62_272e_07bb_0142);
    let hex = format!("{a:016x}{b:016x}");
    format!(
        "{{{}-{}-4{}-8{}-{}}}",
        &hex[0..8],
        &hex[8..12],
        &hex[13..16],
        &hex[17..20],
        &hex[20..32]
    )
}

fn compile(
    fmus_dir: &Path,
    spec: &model::Spec,
    version: FmiVersion,
    defines: &[&str],
    token: &str,
    output: &Path,
) -> io::Result<()> {
    let cc = std::env::var("CC").unwrap_or_else(|_| "cc".to_owned());
    let mut words = cc.split_whitespace();
    let program = words.next().unwrap_or("cc");
    let api = match version {
        FmiVersion::V3 => "fmi3_api.c",
        FmiVersion::V2 => "fmi2_api.c",
    };
    let output = std::path::absolute(output)?;
    let mut command = Command::new(program);
    command
        .args(words)
        // relative source paths keep the build directory out of the binary
        .current_dir(fmus_dir.join("src"))
        .args(["-shared", "-fPIC", "-O2", "-std=c99", "-Wall"])
        .args(["-D_GNU_SOURCE", "-fvisibility=hidden", "-I."])
        .arg(format!("-DINSTANTIATION_TOKEN=\"{token}\""))
        .args(defines.iter().map(|d| format!("-D{d}")))
        .arg(format!("models/{}.c", spec.source))
        .args(["model.c", api, "-o"])
        .arg(&output)
        .arg("-lm");
    let result = command
        .output()
        .map_err(|e| io::Error::new(e.kind(), format!("cannot run the C compiler {cc:?}: {e}")))?;
    if !result.status.success() {
        return Err(io::Error::other(format!(
            "compiling {} for FMI {} failed ({}):\n{}",
            spec.name,
            version.label(),
            result.status,
            String::from_utf8_lossy(&result.stderr)
        )));
    }
    Ok(())
}

fn write_archive(path: &Path, entries: &[(&str, &[u8], u32)]) -> io::Result<()> {
    let file = fs::File::create(path)?;
    let mut zip = ZipWriter::new(io::BufWriter::new(file));
    for (name, data, mode) in entries {
        let options = SimpleFileOptions::default()
            .compression_method(CompressionMethod::Deflated)
            .last_modified_time(DateTime::default())
            .unix_permissions(*mode);
        zip.start_file(*name, options).map_err(io::Error::other)?;
        zip.write_all(data)?;
    }
    let mut writer = zip.finish().map_err(io::Error::other)?;
    writer.flush()?;
    Ok(())
}

// ------------------------------------------------------------------------ model descriptions

fn escape(text: &str) -> String {
    text.replace('&', "&amp;")
        .replace('<', "&lt;")
        .replace('>', "&gt;")
        .replace('"', "&quot;")
}

fn base_unit(unit: &str) -> &'static str {
    match unit {
        "s" => r#"s="1""#,
        "m" => r#"m="1""#,
        "m/s" => r#"m="1" s="-1""#,
        "m/s2" => r#"m="1" s="-2""#,
        _ => "",
    }
}

fn units(spec: &model::Spec) -> Vec<&'static str> {
    let mut units = vec![];
    for var in &spec.vars {
        if let Some(unit) = var.unit
            && !units.contains(&unit)
        {
            units.push(unit);
        }
    }
    units
}

fn unit_definitions(xml: &mut String, spec: &model::Spec) {
    let units = units(spec);
    if units.is_empty() {
        return;
    }
    xml.push_str("  <UnitDefinitions>\n");
    for unit in units {
        let _ = writeln!(
            xml,
            "    <Unit name=\"{}\"><BaseUnit {}/></Unit>",
            escape(unit),
            base_unit(unit)
        );
    }
    xml.push_str("  </UnitDefinitions>\n");
}

fn common_header(xml: &mut String, spec: &model::Spec) {
    xml.push_str("  <LogCategories>\n");
    xml.push_str("    <Category name=\"logEvents\" description=\"State events and resets (only with logging on)\"/>\n");
    xml.push_str("    <Category name=\"logStatusWarning\" description=\"Warnings\"/>\n");
    xml.push_str("    <Category name=\"logStatusError\" description=\"Errors\"/>\n");
    xml.push_str("  </LogCategories>\n");
    let _ = writeln!(
        xml,
        "  <DefaultExperiment startTime=\"0\" stopTime=\"{}\" stepSize=\"{}\"/>",
        spec.stop_time, spec.step_size
    );
}

/// Causality, variability, initial and start of a variable (shared by FMI 2 and 3).
fn attributes(var: &model::Var) -> (&'static str, &'static str, Option<&'static str>, bool) {
    use model::Kind::*;
    match var.kind {
        Time => ("independent", "continuous", None, false),
        Parameter { tunable } => (
            "parameter",
            if tunable { "tunable" } else { "fixed" },
            None,
            true,
        ),
        Input { discrete } => (
            "input",
            if discrete { "discrete" } else { "continuous" },
            None,
            true,
        ),
        State { output } => (
            if output { "output" } else { "local" },
            "continuous",
            Some("exact"),
            true,
        ),
        Derivative { .. } => ("local", "continuous", None, false),
        Output => ("output", "continuous", None, false),
        Flag => ("output", "discrete", Some("exact"), true),
    }
}

fn is_output(var: &model::Var) -> bool {
    attributes(var).0 == "output"
}

fn is_initial_unknown(var: &model::Var) -> bool {
    matches!(
        var.kind,
        model::Kind::Derivative { .. } | model::Kind::Output
    )
}

fn model_description_fmi3(spec: &model::Spec, token: &str) -> String {
    let mut xml = String::new();
    xml.push_str("<?xml version=\"1.0\" encoding=\"UTF-8\"?>\n");
    let _ = writeln!(
        xml,
        "<fmiModelDescription fmiVersion=\"3.0\" modelName=\"{}\" description=\"{}\"\n  instantiationToken=\"{}\" generationTool=\"FMU Gateway demo models\"\n  variableNamingConvention=\"flat\">",
        spec.name,
        escape(&spec.description),
        token
    );
    let _ = writeln!(
        xml,
        "  <ModelExchange modelIdentifier=\"{}\" needsCompletedIntegratorStep=\"false\" canGetAndSetFMUState=\"true\" canSerializeFMUState=\"true\"/>",
        spec.name
    );
    let _ = writeln!(
        xml,
        "  <CoSimulation modelIdentifier=\"{}\" canHandleVariableCommunicationStepSize=\"true\" hasEventMode=\"true\" mightReturnEarlyFromDoStep=\"true\" canGetAndSetFMUState=\"true\" canSerializeFMUState=\"true\"/>",
        spec.name
    );
    unit_definitions(&mut xml, spec);
    common_header(&mut xml, spec);

    xml.push_str("  <ModelVariables>\n");
    for var in &spec.vars {
        let (causality, variability, initial, has_start) = attributes(var);
        let _ = write!(
            xml,
            "    <Float64 name=\"{}\" valueReference=\"{}\" causality=\"{causality}\" variability=\"{variability}\"",
            escape(var.name),
            var.vr
        );
        if let Some(initial) = initial {
            let _ = write!(xml, " initial=\"{initial}\"");
        }
        if has_start {
            let _ = write!(xml, " start=\"{}\"", var.start);
        }
        if let model::Kind::Derivative { of } = var.kind {
            let _ = write!(xml, " derivative=\"{of}\"");
        }
        if let Some(unit) = var.unit {
            let _ = write!(xml, " unit=\"{}\"", escape(unit));
        }
        if let Some((min, max)) = model::bounds(spec.name, var.name) {
            let _ = write!(xml, " min=\"{min}\" max=\"{max}\"");
        }
        let _ = writeln!(xml, " description=\"{}\"/>", escape(var.description));
    }
    xml.push_str("  </ModelVariables>\n");

    xml.push_str("  <ModelStructure>\n");
    for var in spec.vars.iter().filter(|v| is_output(v)) {
        let _ = writeln!(xml, "    <Output valueReference=\"{}\"/>", var.vr);
    }
    for var in &spec.vars {
        if let model::Kind::Derivative { .. } = var.kind {
            let _ = writeln!(
                xml,
                "    <ContinuousStateDerivative valueReference=\"{}\"/>",
                var.vr
            );
        }
    }
    for var in spec.vars.iter().filter(|v| is_initial_unknown(v)) {
        let _ = writeln!(xml, "    <InitialUnknown valueReference=\"{}\"/>", var.vr);
    }
    for vr in &spec.event_indicators {
        let _ = writeln!(xml, "    <EventIndicator valueReference=\"{vr}\"/>");
    }
    xml.push_str("  </ModelStructure>\n");
    xml.push_str("</fmiModelDescription>\n");
    xml
}

fn model_description_fmi2(spec: &model::Spec, token: &str) -> String {
    // FMI 2.0 ModelStructure refers to variables by 1-based index; value reference = index - 1
    let index = |var: &model::Var| var.vr + 1;
    let mut xml = String::new();
    xml.push_str("<?xml version=\"1.0\" encoding=\"UTF-8\"?>\n");
    let _ = writeln!(
        xml,
        "<fmiModelDescription fmiVersion=\"2.0\" modelName=\"{}\" description=\"{}\"\n  guid=\"{}\" generationTool=\"FMU Gateway demo models\"\n  variableNamingConvention=\"flat\" numberOfEventIndicators=\"{}\">",
        spec.name,
        escape(&spec.description),
        token,
        spec.event_indicators.len()
    );
    let _ = writeln!(
        xml,
        "  <ModelExchange modelIdentifier=\"{}\" completedIntegratorStepNotNeeded=\"true\" canNotUseMemoryManagementFunctions=\"true\" canGetAndSetFMUstate=\"true\" canSerializeFMUstate=\"true\"/>",
        spec.name
    );
    let _ = writeln!(
        xml,
        "  <CoSimulation modelIdentifier=\"{}\" canHandleVariableCommunicationStepSize=\"true\" canNotUseMemoryManagementFunctions=\"true\" canGetAndSetFMUstate=\"true\" canSerializeFMUstate=\"true\"/>",
        spec.name
    );
    unit_definitions(&mut xml, spec);
    common_header(&mut xml, spec);

    xml.push_str("  <ModelVariables>\n");
    for var in &spec.vars {
        let (causality, variability, initial, has_start) = attributes(var);
        let _ = writeln!(xml, "    <!-- index {} -->", index(var));
        let _ = write!(
            xml,
            "    <ScalarVariable name=\"{}\" valueReference=\"{}\" description=\"{}\" causality=\"{causality}\" variability=\"{variability}\"",
            escape(var.name),
            var.vr,
            escape(var.description)
        );
        if let Some(initial) = initial {
            let _ = write!(xml, " initial=\"{initial}\"");
        }
        xml.push_str(">\n      <Real");
        if has_start {
            let _ = write!(xml, " start=\"{}\"", var.start);
        }
        if let model::Kind::Derivative { of } = var.kind {
            let _ = write!(xml, " derivative=\"{}\"", of + 1);
        }
        if let Some(unit) = var.unit {
            let _ = write!(xml, " unit=\"{}\"", escape(unit));
        }
        if let Some((min, max)) = model::bounds(spec.name, var.name) {
            let _ = write!(xml, " min=\"{min}\" max=\"{max}\"");
        }
        xml.push_str("/>\n    </ScalarVariable>\n");
    }
    xml.push_str("  </ModelVariables>\n");

    xml.push_str("  <ModelStructure>\n");
    let section = |xml: &mut String, tag: &str, vars: Vec<&model::Var>| {
        if vars.is_empty() {
            return;
        }
        let _ = writeln!(xml, "    <{tag}>");
        for var in vars {
            let _ = writeln!(xml, "      <Unknown index=\"{}\"/>", index(var));
        }
        let _ = writeln!(xml, "    </{tag}>");
    };
    section(
        &mut xml,
        "Outputs",
        spec.vars.iter().filter(|v| is_output(v)).collect(),
    );
    section(
        &mut xml,
        "Derivatives",
        spec.vars
            .iter()
            .filter(|v| matches!(v.kind, model::Kind::Derivative { .. }))
            .collect(),
    );
    section(
        &mut xml,
        "InitialUnknowns",
        spec.vars.iter().filter(|v| is_initial_unknown(v)).collect(),
    );
    xml.push_str("  </ModelStructure>\n");
    xml.push_str("</fmiModelDescription>\n");
    xml
}

// -------------------------------------------------------------------------------- the models

/// Variable tables of the models. They must match the `VarSpec` tables in
/// `fmus/src/models/*.c`: same names, and value reference = position in the table.
mod model {
    #[derive(Debug, Clone, Copy, PartialEq)]
    pub enum Kind {
        /// the independent variable `time`
        Time,
        Parameter {
            tunable: bool,
        },
        Input {
            discrete: bool,
        },
        /// a continuous state with a start value (an output or a local)
        State {
            output: bool,
        },
        /// the derivative of the state with value reference `of`
        Derivative {
            of: u32,
        },
        /// a calculated continuous output
        Output,
        /// a discrete output with start 0 that only the FMU writes (`breach`)
        Flag,
    }

    pub struct Var {
        pub name: &'static str,
        pub vr: u32,
        pub kind: Kind,
        pub start: f64,
        pub unit: Option<&'static str>,
        pub description: &'static str,
    }

    pub struct Spec {
        pub name: &'static str,
        /// the C file in `fmus/src/models` (without `.c`)
        pub source: &'static str,
        pub description: String,
        pub vars: Vec<Var>,
        pub event_indicators: Vec<u32>,
        pub stop_time: f64,
        pub step_size: f64,
    }

    type Row = (&'static str, Kind, f64, Option<&'static str>, &'static str);

    fn vars(rows: &[Row]) -> Vec<Var> {
        rows.iter()
            .enumerate()
            .map(|(vr, &(name, kind, start, unit, description))| Var {
                name,
                vr: vr as u32,
                kind,
                start,
                unit,
                description,
            })
            .collect()
    }

    const TIME: Row = ("time", Kind::Time, 0.0, Some("s"), "Simulation time");

    /// The `min` and `max` a variable declares, where the model has physical bounds: a
    /// coefficient of restitution lies in [0, 1].
    pub fn bounds(model: &str, variable: &str) -> Option<(f64, f64)> {
        match (model, variable) {
            ("BouncingBall", "e") => Some((0.0, 1.0)),
            _ => None,
        }
    }

    pub fn spec(model: &str, hostile: Option<&str>) -> Option<Spec> {
        use Kind::*;
        let spec = match model {
            "BouncingBall" => Spec {
                name: "BouncingBall",
                source: "BouncingBall",
                description: "A ball that bounces on the floor, losing energy at every bounce \
                              (state events); it comes to rest once it would rebound slower \
                              than 0.1 m/s"
                    .to_owned(),
                vars: vars(&[
                    TIME,
                    (
                        "h",
                        State { output: true },
                        1.0,
                        Some("m"),
                        "Height of the ball",
                    ),
                    (
                        "der(h)",
                        Derivative { of: 1 },
                        0.0,
                        Some("m/s"),
                        "Derivative of h",
                    ),
                    (
                        "v",
                        State { output: true },
                        0.0,
                        Some("m/s"),
                        "Velocity of the ball",
                    ),
                    (
                        "der(v)",
                        Derivative { of: 3 },
                        0.0,
                        Some("m/s2"),
                        "Derivative of v",
                    ),
                    (
                        "g",
                        Parameter { tunable: false },
                        9.81,
                        Some("m/s2"),
                        "Gravitational acceleration",
                    ),
                    (
                        "e",
                        Parameter { tunable: true },
                        0.7,
                        None,
                        "Coefficient of restitution",
                    ),
                ]),
                event_indicators: vec![1],
                stop_time: 3.0,
                step_size: 0.01,
            },
            "VanDerPol" => Spec {
                name: "VanDerPol",
                source: "VanDerPol",
                description:
                    "Van der Pol oscillator: der(x0) = x1, der(x1) = mu*(1 - x0^2)*x1 - x0"
                        .to_owned(),
                vars: vars(&[
                    TIME,
                    ("x0", State { output: true }, 2.0, None, "First state"),
                    (
                        "der(x0)",
                        Derivative { of: 1 },
                        0.0,
                        None,
                        "Derivative of x0",
                    ),
                    ("x1", State { output: true }, 0.0, None, "Second state"),
                    (
                        "der(x1)",
                        Derivative { of: 3 },
                        0.0,
                        None,
                        "Derivative of x1",
                    ),
                    (
                        "mu",
                        Parameter { tunable: false },
                        1.0,
                        None,
                        "Damping parameter",
                    ),
                ]),
                event_indicators: vec![],
                stop_time: 20.0,
                step_size: 0.01,
            },
            "Dahlquist" | "Hostile" => {
                let mut rows = vec![
                    TIME,
                    (
                        "x",
                        State { output: true },
                        1.0,
                        None,
                        "State, x(t) = exp(-k*t)",
                    ),
                    ("der(x)", Derivative { of: 1 }, 0.0, None, "Derivative of x"),
                    ("k", Parameter { tunable: false }, 1.0, None, "Decay rate"),
                ];
                let description = if let Some(define) = hostile {
                    rows.push((
                        "breach",
                        Flag,
                        0.0,
                        None,
                        "1 if the hostile action succeeded",
                    ));
                    format!(
                        "Dahlquist test equation with a hostile action ({define}) for sandbox tests"
                    )
                } else {
                    "Dahlquist test equation der(x) = -k*x".to_owned()
                };
                Spec {
                    name: if hostile.is_some() {
                        "Hostile"
                    } else {
                        "Dahlquist"
                    },
                    source: "Dahlquist",
                    description,
                    vars: vars(&rows),
                    event_indicators: vec![],
                    stop_time: 10.0,
                    step_size: 0.1,
                }
            }
            "Integrator" => Spec {
                name: "Integrator",
                source: "Integrator",
                description: "Integrates a gained input: der(x) = k*u, y = x".to_owned(),
                vars: vars(&[
                    TIME,
                    (
                        "u",
                        Input { discrete: false },
                        0.0,
                        None,
                        "Continuous input",
                    ),
                    (
                        "k",
                        Input { discrete: true },
                        1.0,
                        None,
                        "Discrete gain input",
                    ),
                    ("x", State { output: false }, 0.0, None, "Integrator state"),
                    ("der(x)", Derivative { of: 3 }, 0.0, None, "Derivative of x"),
                    ("y", Output, 0.0, None, "Output, y = x"),
                ]),
                event_indicators: vec![],
                stop_time: 5.0,
                step_size: 0.1,
            },
            "Robertson" => Spec {
                name: "Robertson",
                source: "Robertson",
                description: "Robertson's stiff chemical kinetics: der(y1) = -k1*y1 + k3*y2*y3, \
                              der(y2) = k1*y1 - k3*y2*y3 - k2*y2^2, der(y3) = k2*y2^2 (stiff: \
                              use a BDF solver in Model Exchange)"
                    .to_owned(),
                vars: vars(&[
                    TIME,
                    (
                        "y1",
                        State { output: true },
                        1.0,
                        None,
                        "Concentration of A",
                    ),
                    (
                        "der(y1)",
                        Derivative { of: 1 },
                        0.0,
                        None,
                        "Derivative of y1",
                    ),
                    (
                        "y2",
                        State { output: true },
                        0.0,
                        None,
                        "Concentration of B",
                    ),
                    (
                        "der(y2)",
                        Derivative { of: 3 },
                        0.0,
                        None,
                        "Derivative of y2",
                    ),
                    (
                        "y3",
                        State { output: true },
                        0.0,
                        None,
                        "Concentration of C",
                    ),
                    (
                        "der(y3)",
                        Derivative { of: 5 },
                        0.0,
                        None,
                        "Derivative of y3",
                    ),
                    (
                        "k1",
                        Parameter { tunable: false },
                        0.04,
                        None,
                        "Rate of A -> B",
                    ),
                    (
                        "k2",
                        Parameter { tunable: false },
                        3e7,
                        None,
                        "Rate of 2B -> B + C",
                    ),
                    (
                        "k3",
                        Parameter { tunable: false },
                        1e4,
                        None,
                        "Rate of B + C -> A + C",
                    ),
                ]),
                event_indicators: vec![],
                stop_time: 40.0,
                step_size: 0.4,
            },
            // For the tests of input signals only (not in LIBRARY_MODELS).
            "Echo" => Spec {
                name: "Echo",
                source: "Echo",
                description: "Echoes its inputs: yu = u, yk = k; der(x) = u".to_owned(),
                vars: vars(&[
                    TIME,
                    (
                        "u",
                        Input { discrete: false },
                        0.0,
                        None,
                        "Continuous input",
                    ),
                    ("k", Input { discrete: true }, 0.0, None, "Discrete input"),
                    ("x", State { output: false }, 0.0, None, "Integral of u"),
                    ("der(x)", Derivative { of: 3 }, 0.0, None, "Derivative of x"),
                    ("yu", Output, 0.0, None, "Output, yu = u"),
                    ("yk", Output, 0.0, None, "Output, yk = k"),
                ]),
                event_indicators: vec![],
                stop_time: 2.0,
                step_size: 0.1,
            },
            _ => return None,
        };
        Some(spec)
    }
}
