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
pub const LIBRARY_MODELS: [&str; 7] = [
    "BouncingBall",
    "VanDerPol",
    "Dahlquist",
    "Integrator",
    "Feedthrough",
    "StateSpace",
    "Robertson",
];

/// The C defines that turn Dahlquist into a `Hostile` model (exactly one is used at a time).
pub const HOSTILE_DEFINES: [&str; 21] = [
    "HOSTILE_ERROR",
    "HOSTILE_ON_K",
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
    let spec = model::spec(model, hostile.first().copied(), version)
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
    let binary_entry = format!("binaries/{}/{}.so", version.platform(), spec.name);
    let references = if spec.name == "Dahlquist" {
        dahlquist_references()
    } else {
        vec![]
    };
    let mut entries: Vec<(&str, &[u8], u32)> = vec![
        ("modelDescription.xml", xml.as_bytes(), 0o644),
        (&binary_entry, &library, 0o755),
    ];
    entries.extend(
        references
            .iter()
            .map(|(name, data)| (name.as_str(), data.as_slice(), 0o644)),
    );
    write_archive(&fmu_path, &entries)?;
    fs::remove_dir_all(&work_dir)?;
    Ok(fmu_path)
}

// ------------------------------------------------------- reference results (FMI-LS-REF)

/// Where FMI-LS-REF puts its files in an FMU.
pub const LS_REF_DIR: &str = "extra/org.fmi-standard.fmi-ls-ref";

/// Dahlquist's carried references, as FMI-LS-REF lays them out: a manifest naming an
/// experiments file, and per experiment (start 0, stop, step) a CSV of x = exp(-k t) with
/// k = 1 and x(0) = 1, the model's start values. The values come from the closed form, never
/// from a simulation, so a run that matches them is right, not merely repeatable.
pub fn dahlquist_references() -> Vec<(String, Vec<u8>)> {
    let experiments = [("default", 10.0, 0.1, 100), ("short", 1.0, 0.01, 100)];
    let manifest = String::from(
        "<?xml version=\"1.0\" encoding=\"UTF-8\"?>\n\
         <fmiReferences xmlns:fmi-ls=\"http://fmi-standard.org/fmi-ls-manifest\"\n\
         \x20   fmi-ls:fmi-ls-name=\"org.fmi-standard.fmi-ls-ref\"\n\
         \x20   fmi-ls:fmi-ls-version=\"1.0.0-beta.1\"\n\
         \x20   fmi-ls:fmi-ls-description=\"Reference results of the Dahlquist test equation\">\n\
         \x20 <Related type=\"application/xml\" source=\"experiments.xml\" role=\"experiment/smoke-test\"\n\
         \x20   description=\"x(t) = exp(-k t) from its closed form\"/>\n\
         </fmiReferences>\n",
    );
    let mut xml = String::from("<?xml version=\"1.0\" encoding=\"UTF-8\"?>\n<Experiments>\n");
    let mut files = vec![(
        format!("{LS_REF_DIR}/fmi-ls-manifest.xml"),
        manifest.into_bytes(),
    )];
    for (name, stop, step, points) in experiments {
        let _ = writeln!(
            xml,
            "  <Experiment name=\"{name}\" description=\"x = exp(-t) from 0 to {stop} s\" \
             startTime=\"0\" stopTime=\"{stop}\" stepSize=\"{step}\">\n    \
             <References source=\"{name}.csv\"/>\n  </Experiment>"
        );
        let times: Vec<f64> = (0..=points).map(|i| i as f64 * step).collect();
        files.push((
            format!("{LS_REF_DIR}/{name}.csv"),
            exponential_csv(&times, 1.0).into_bytes(),
        ));
    }
    xml.push_str("</Experiments>\n");
    files.push((format!("{LS_REF_DIR}/experiments.xml"), xml.into_bytes()));
    files
}

/// `time,x` with x = exp(-k t) at each time, in shortest round-trip decimals.
pub fn exponential_csv(times: &[f64], k: f64) -> String {
    let mut csv = String::from("time,x\n");
    for &t in times {
        let _ = writeln!(csv, "{t},{}", (-k * t).exp());
    }
    csv
}

#[allow(dead_code)] // the tests use it; build.rs does not
/// Replaces (or adds) the entry `name` of the FMU archive at `path` with `data`: how tests
/// make a variant of a library model whose carried files are wrong.
pub fn replace_entry(path: &Path, name: &str, data: &[u8]) -> io::Result<()> {
    let mut archive = zip::ZipArchive::new(fs::File::open(path)?).map_err(io::Error::other)?;
    let mut entries: Vec<(String, Vec<u8>, u32)> = Vec::new();
    for i in 0..archive.len() {
        let mut entry = archive.by_index(i).map_err(io::Error::other)?;
        let mut bytes = Vec::new();
        io::Read::read_to_end(&mut entry, &mut bytes)?;
        let mode = entry.unix_mode().unwrap_or(0o644);
        let entry_name = entry.name().map_err(io::Error::other)?.into_owned();
        if entry_name != name {
            entries.push((entry_name, bytes, mode));
        }
    }
    entries.push((name.to_string(), data.to_vec(), 0o644));
    let borrowed: Vec<(&str, &[u8], u32)> = entries
        .iter()
        .map(|(n, d, m)| (n.as_str(), d.as_slice(), *m))
        .collect();
    write_archive(path, &borrowed)
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
    // the define lets a model file hold a different variable table per FMI version
    let (api, version_define) = match version {
        FmiVersion::V3 => ("fmi3_api.c", "-DFGW_FMI3"),
        FmiVersion::V2 => ("fmi2_api.c", "-DFGW_FMI2"),
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
        .arg(version_define)
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

/// The display unit a unit offers: name and `factor`, where (as FMI defines it) the value in
/// the display unit = factor * the value in the unit. One foot is 0.3048 m, so 1 m is
/// 1/0.3048 ft; 1 m/s is 3.6 km/h.
fn display_unit(unit: &str) -> Option<(&'static str, f64)> {
    match unit {
        "m" => Some(("ft", 1.0 / 0.3048)),
        "m/s" => Some(("km/h", 3.6)),
        _ => None,
    }
}

fn unit_definitions(xml: &mut String, spec: &model::Spec) {
    let units = units(spec);
    if units.is_empty() {
        return;
    }
    xml.push_str("  <UnitDefinitions>\n");
    for unit in units {
        let _ = write!(
            xml,
            "    <Unit name=\"{}\"><BaseUnit {}/>",
            escape(unit),
            base_unit(unit)
        );
        if let Some((name, factor)) = display_unit(unit) {
            let _ = write!(
                xml,
                "<DisplayUnit name=\"{}\" factor=\"{factor}\"/>",
                escape(name)
            );
        }
        xml.push_str("</Unit>\n");
    }
    xml.push_str("  </UnitDefinitions>\n");
}

/// The enumeration type of the model (FMI 3 `EnumerationType`, FMI 2 `SimpleType`).
fn type_definitions(xml: &mut String, spec: &model::Spec, version: FmiVersion) {
    let Some(enumeration) = &spec.enumeration else {
        return;
    };
    xml.push_str("  <TypeDefinitions>\n");
    match version {
        FmiVersion::V3 => {
            let _ = writeln!(
                xml,
                "    <EnumerationType name=\"{}\">",
                escape(enumeration.name)
            );
        }
        FmiVersion::V2 => {
            let _ = writeln!(
                xml,
                "    <SimpleType name=\"{}\">\n      <Enumeration>",
                escape(enumeration.name)
            );
        }
    }
    for (name, value) in enumeration.items {
        let _ = writeln!(
            xml,
            "      <Item name=\"{}\" value=\"{value}\"/>",
            escape(name)
        );
    }
    xml.push_str(match version {
        FmiVersion::V3 => "    </EnumerationType>\n",
        FmiVersion::V2 => "      </Enumeration>\n    </SimpleType>\n",
    });
    xml.push_str("  </TypeDefinitions>\n");
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
        DiscreteOutput => ("output", "discrete", None, false),
        Structural => ("structuralParameter", "fixed", None, true),
        CalculatedState => ("local", "continuous", Some("calculated"), false),
        Flag => ("output", "discrete", Some("exact"), true),
    }
}

fn is_output(var: &model::Var) -> bool {
    attributes(var).0 == "output"
}

fn is_initial_unknown(var: &model::Var) -> bool {
    matches!(
        var.kind,
        model::Kind::Derivative { .. }
            | model::Kind::Output
            | model::Kind::DiscreteOutput
            | model::Kind::CalculatedState
    )
}

/// The start value as an XML attribute value (numbers, Booleans, enumerations).
fn start_attribute(var: &model::Var) -> String {
    match (var.ty, &var.start) {
        (model::Type::Boolean, model::Start::Number(x)) => (*x != 0.0).to_string(),
        (_, model::Start::Number(x)) => x.to_string(),
        (_, model::Start::Array(values)) => values
            .iter()
            .map(f64::to_string)
            .collect::<Vec<_>>()
            .join(" "),
        (_, model::Start::Text(text)) => escape(text),
        (_, model::Start::Bytes(bytes)) => bytes.iter().map(|b| format!("{b:02x}")).collect(),
    }
}

/// One FMI 3 variable element: `<Float64 …/>`, `<Int8 …/>`, … with its `<Start>` (String,
/// Binary) and `<Alias>` children.
fn variable_fmi3(xml: &mut String, spec: &model::Spec, var: &model::Var) {
    let (causality, variability, initial, has_start) = attributes(var);
    let element = var.ty.fmi3_element();
    let _ = write!(
        xml,
        "    <{element} name=\"{}\" valueReference=\"{}\" causality=\"{causality}\" variability=\"{variability}\"",
        escape(&var.name),
        var.vr
    );
    if let Some(initial) = initial {
        let _ = write!(xml, " initial=\"{initial}\"");
    }
    if var.ty == model::Type::Enumeration
        && let Some(enumeration) = &spec.enumeration
    {
        let _ = write!(xml, " declaredType=\"{}\"", escape(enumeration.name));
    }
    let start_element = var.ty.start_is_element();
    if has_start && !start_element {
        let _ = write!(xml, " start=\"{}\"", start_attribute(var));
    }
    if let model::Kind::Derivative { of } = var.kind {
        let _ = write!(xml, " derivative=\"{of}\"");
    }
    if let Some(unit) = var.unit {
        let _ = write!(xml, " unit=\"{}\"", escape(unit));
    }
    if let Some((min, max)) = model::bounds(spec.name, &var.name) {
        let _ = write!(xml, " min=\"{min}\" max=\"{max}\"");
    }
    let _ = write!(xml, " description=\"{}\"", escape(var.description));
    let aliases: Vec<&model::Alias> = spec.aliases.iter().filter(|a| a.of == var.vr).collect();
    if aliases.is_empty() && var.dims.is_empty() && !(has_start && start_element) {
        xml.push_str("/>\n");
        return;
    }
    xml.push_str(">\n");
    for alias in aliases {
        let _ = write!(
            xml,
            "      <Alias name=\"{}\" description=\"{}\"",
            escape(alias.name),
            escape(alias.description)
        );
        if let Some(display_unit) = alias.display_unit {
            let _ = write!(xml, " displayUnit=\"{}\"", escape(display_unit));
        }
        xml.push_str("/>\n");
    }
    for dim in &var.dims {
        let _ = writeln!(xml, "      <Dimension valueReference=\"{dim}\"/>");
    }
    if has_start && start_element {
        let _ = writeln!(xml, "      <Start value=\"{}\"/>", start_attribute(var));
    }
    let _ = writeln!(xml, "    </{element}>");
}

fn model_description_fmi3(spec: &model::Spec, token: &str) -> String {
    let mut xml = String::new();
    xml.push_str("<?xml version=\"1.0\" encoding=\"UTF-8\"?>\n");
    let _ = writeln!(
        xml,
        "<fmiModelDescription fmiVersion=\"3.0\" modelName=\"{}\" description=\"{}\"\n  instantiationToken=\"{}\" generationTool=\"FMU Gateway demo models\"\n  variableNamingConvention=\"{}\">",
        spec.name,
        escape(&spec.description),
        token,
        spec.naming_convention()
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
    type_definitions(&mut xml, spec, FmiVersion::V3);
    common_header(&mut xml, spec);

    xml.push_str("  <ModelVariables>\n");
    for var in &spec.vars {
        variable_fmi3(&mut xml, spec, var);
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
        "<fmiModelDescription fmiVersion=\"2.0\" modelName=\"{}\" description=\"{}\"\n  guid=\"{}\" generationTool=\"FMU Gateway demo models\"\n  variableNamingConvention=\"{}\" numberOfEventIndicators=\"{}\">",
        spec.name,
        escape(&spec.description),
        token,
        spec.naming_convention(),
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
    type_definitions(&mut xml, spec, FmiVersion::V2);
    common_header(&mut xml, spec);

    xml.push_str("  <ModelVariables>\n");
    for var in &spec.vars {
        let (causality, variability, initial, has_start) = attributes(var);
        let element = var.ty.fmi2_element();
        let _ = writeln!(xml, "    <!-- index {} -->", index(var));
        let _ = write!(
            xml,
            "    <ScalarVariable name=\"{}\" valueReference=\"{}\" description=\"{}\" causality=\"{causality}\" variability=\"{variability}\"",
            escape(&var.name),
            var.vr,
            escape(var.description)
        );
        if let Some(initial) = initial {
            let _ = write!(xml, " initial=\"{initial}\"");
        }
        let _ = write!(xml, ">\n      <{element}");
        if var.ty == model::Type::Enumeration
            && let Some(enumeration) = &spec.enumeration
        {
            let _ = write!(xml, " declaredType=\"{}\"", escape(enumeration.name));
        }
        if has_start {
            let _ = write!(xml, " start=\"{}\"", start_attribute(var));
        }
        if let model::Kind::Derivative { of } = var.kind {
            let _ = write!(xml, " derivative=\"{}\"", of + 1);
        }
        if let Some(unit) = var.unit {
            let _ = write!(xml, " unit=\"{}\"", escape(unit));
        }
        if let Some((min, max)) = model::bounds(spec.name, &var.name) {
            let _ = write!(xml, " min=\"{min}\" max=\"{max}\"");
        }
        xml.push_str("/>\n    </ScalarVariable>\n");
    }
    // FMI 2 aliases are variables of their own that share the value reference; listed last
    // so that every other variable's index stays value reference + 1
    for (k, alias) in spec.aliases.iter().enumerate() {
        let of = &spec.vars[alias.of as usize];
        let _ = writeln!(
            xml,
            "    <!-- index {}: alias of {} -->",
            spec.vars.len() + k + 1,
            of.name
        );
        let _ = write!(
            xml,
            "    <ScalarVariable name=\"{}\" valueReference=\"{}\" description=\"{}\" causality=\"local\" variability=\"{}\">\n      <{}",
            escape(alias.name),
            alias.of,
            escape(alias.description),
            attributes(of).1,
            of.ty.fmi2_element()
        );
        if let Some(unit) = of.unit {
            let _ = write!(xml, " unit=\"{}\"", escape(unit));
        }
        if let Some(display_unit) = alias.display_unit {
            let _ = write!(xml, " displayUnit=\"{}\"", escape(display_unit));
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
    use std::borrow::Cow;

    use super::FmiVersion;

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
        /// a calculated discrete output (every type but Float32 and Float64 is discrete)
        DiscreteOutput,
        /// a structural parameter (UInt64, fixed) that sizes arrays
        Structural,
        /// a continuous state the FMU computes from parameters at initialization
        CalculatedState,
        /// a discrete output with start 0 that only the FMU writes (`breach`)
        Flag,
    }

    /// The FMI type of a variable; mirrors `VarType` in `fmus/src/model.h`.
    #[derive(Debug, Clone, Copy, PartialEq, Eq)]
    pub enum Type {
        Float64,
        Float32,
        Int8,
        UInt8,
        Int16,
        UInt16,
        Int32,
        UInt32,
        Int64,
        UInt64,
        Boolean,
        String,
        Binary,
        Enumeration,
    }

    impl Type {
        /// The FMI 3 element name.
        pub fn fmi3_element(self) -> &'static str {
            match self {
                Type::Float64 => "Float64",
                Type::Float32 => "Float32",
                Type::Int8 => "Int8",
                Type::UInt8 => "UInt8",
                Type::Int16 => "Int16",
                Type::UInt16 => "UInt16",
                Type::Int32 => "Int32",
                Type::UInt32 => "UInt32",
                Type::Int64 => "Int64",
                Type::UInt64 => "UInt64",
                Type::Boolean => "Boolean",
                Type::String => "String",
                Type::Binary => "Binary",
                Type::Enumeration => "Enumeration",
            }
        }

        /// The FMI 2 element name (the FMI 2 models use only these types).
        pub fn fmi2_element(self) -> &'static str {
            match self {
                Type::Float64 => "Real",
                Type::Int32 => "Integer",
                Type::Boolean => "Boolean",
                Type::String => "String",
                Type::Enumeration => "Enumeration",
                other => panic!("FMI 2 has no type {other:?}"),
            }
        }

        /// FMI 3 gives String and Binary start values as `<Start value=…/>` elements.
        pub fn start_is_element(self) -> bool {
            matches!(self, Type::String | Type::Binary)
        }
    }

    #[derive(Debug, Clone, PartialEq)]
    pub enum Start {
        /// numbers, Booleans (0 or 1) and enumerations
        Number(f64),
        Text(&'static str),
        Bytes(&'static [u8]),
        /// the elements of an array at its default size, row-major
        Array(Vec<f64>),
    }

    pub struct Var {
        /// generated for the flattened FMI 2 StateSpace, written out for the rest
        pub name: Cow<'static, str>,
        pub vr: u32,
        pub kind: Kind,
        pub ty: Type,
        pub start: Start,
        pub unit: Option<&'static str>,
        pub description: &'static str,
        /// array dimensions: value references of the structural parameters (FMI 3)
        pub dims: Vec<u32>,
    }

    /// Another name for variable `of` (FMI 3 `<Alias>`, FMI 2 a variable sharing its value
    /// reference), optionally shown in a display unit.
    pub struct Alias {
        pub name: &'static str,
        pub of: u32,
        pub display_unit: Option<&'static str>,
        pub description: &'static str,
    }

    /// An enumeration type: its name and items (name, value).
    pub struct Enumeration {
        pub name: &'static str,
        pub items: &'static [(&'static str, i64)],
    }

    pub struct Spec {
        pub name: &'static str,
        /// the C file in `fmus/src/models` (without `.c`)
        pub source: &'static str,
        pub description: String,
        pub vars: Vec<Var>,
        pub aliases: Vec<Alias>,
        pub enumeration: Option<Enumeration>,
        /// FMI 2 names like `x[1]` and `A[1,2]` need the "structured" naming convention
        pub structured_names: bool,
        pub event_indicators: Vec<u32>,
        pub stop_time: f64,
        pub step_size: f64,
    }

    impl Spec {
        pub fn naming_convention(&self) -> &'static str {
            if self.structured_names {
                "structured"
            } else {
                "flat"
            }
        }
    }

    type Row = (&'static str, Kind, f64, Option<&'static str>, &'static str);

    fn vars(rows: &[Row]) -> Vec<Var> {
        rows.iter()
            .enumerate()
            .map(|(vr, &(name, kind, start, unit, description))| Var {
                name: name.into(),
                vr: vr as u32,
                kind,
                ty: Type::Float64,
                start: Start::Number(start),
                unit,
                description,
                dims: vec![],
            })
            .collect()
    }

    const TIME: Row = ("time", Kind::Time, 0.0, Some("s"), "Simulation time");

    /// The `min` and `max` a variable declares, where the model has physical bounds: a
    /// coefficient of restitution lies in [0, 1].
    pub fn bounds(model: &str, variable: &str) -> Option<(f64, f64)> {
        match (model, variable) {
            ("BouncingBall", "e") => Some((0.0, 1.0)),
            ("Feedthrough", "Float64_fixed_parameter" | "Float64_tunable_parameter") => {
                Some((-10.0, 10.0))
            }
            ("Feedthrough", "Enumeration_input") => Some((1.0, 2.0)),
            ("StateSpace", "m" | "n" | "r") => Some((1.0, 16.0)),
            _ => None,
        }
    }

    pub fn spec(model: &str, hostile: Option<&str>, version: FmiVersion) -> Option<Spec> {
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
                aliases: vec![Alias {
                    name: "h_ft",
                    of: 1,
                    display_unit: Some("ft"),
                    description: "Height of the ball, shown in feet",
                }],
                enumeration: None,
                structured_names: false,
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
                aliases: vec![],
                enumeration: None,
                structured_names: false,
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
                    aliases: vec![],
                    enumeration: None,
                    structured_names: false,
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
                aliases: vec![],
                enumeration: None,
                structured_names: false,
                event_indicators: vec![],
                stop_time: 5.0,
                step_size: 0.1,
            },
            "Robertson" => Spec {
                name: "Robertson",
                source: "Robertson",
                description: "Robertson's stiff chemical kinetics: der(y1) = -k1*y1 + k3*y2*y3, \
                              der(y2) = k1*y1 - k3*y2*y3 - k2*y2^2, der(y3) = k2*y2^2 (stiff: in \
                              Model Exchange, the auto solver continues with BDF)"
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
                aliases: vec![],
                enumeration: None,
                structured_names: false,
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
                aliases: vec![],
                enumeration: None,
                structured_names: false,
                event_indicators: vec![],
                stop_time: 2.0,
                step_size: 0.1,
            },
            "Feedthrough" => feedthrough(version),
            "StateSpace" => state_space(version),
            _ => return None,
        };
        Some(spec)
    }

    /// Feedthrough's variables in the order of `fmus/src/models/Feedthrough.c` (per version):
    /// for each type an input and an output that repeats it.
    fn feedthrough(version: FmiVersion) -> Spec {
        use Kind::*;
        let mut vars = vec![Var {
            name: "time".into(),
            vr: 0,
            kind: Time,
            ty: Type::Float64,
            start: Start::Number(0.0),
            unit: Some("s"),
            description: "Simulation time",
            dims: vec![],
        }];
        let mut add = |name: &'static str, kind: Kind, ty: Type, start: Start, description| {
            let vr = vars.len() as u32;
            vars.push(Var {
                name: name.into(),
                vr,
                kind,
                ty,
                start,
                unit: None,
                description,
                dims: vec![],
            });
        };
        let discrete = Input { discrete: true };
        let continuous = Input { discrete: false };
        let number = Start::Number;
        let mut pair = |input: &'static str, output: &'static str, kind, ty, start| {
            let output_kind = if matches!(ty, Type::Float64 | Type::Float32) && kind == continuous {
                Output
            } else {
                DiscreteOutput
            };
            add(input, kind, ty, start, "Input");
            add(
                output,
                output_kind,
                ty,
                Start::Number(0.0),
                "Output, equal to the input",
            );
        };
        let text = "Hello, FMU Gateway & <friends>";
        match version {
            FmiVersion::V3 => {
                use Type::*;
                pair(
                    "Float32_continuous_input",
                    "Float32_continuous_output",
                    continuous,
                    Float32,
                    number(1.25),
                );
                pair(
                    "Float32_discrete_input",
                    "Float32_discrete_output",
                    discrete,
                    Float32,
                    number(2.75),
                );
                pair(
                    "Float64_continuous_input",
                    "Float64_continuous_output",
                    continuous,
                    Float64,
                    number(3.25),
                );
                pair(
                    "Float64_discrete_input",
                    "Float64_discrete_output",
                    discrete,
                    Float64,
                    number(4.5),
                );
                pair("Int8_input", "Int8_output", discrete, Int8, number(-100.0));
                pair(
                    "UInt8_input",
                    "UInt8_output",
                    discrete,
                    UInt8,
                    number(200.0),
                );
                pair(
                    "Int16_input",
                    "Int16_output",
                    discrete,
                    Int16,
                    number(-30000.0),
                );
                pair(
                    "UInt16_input",
                    "UInt16_output",
                    discrete,
                    UInt16,
                    number(60000.0),
                );
                pair("Int32_input", "Int32_output", discrete, Int32, number(-2e9));
                pair(
                    "UInt32_input",
                    "UInt32_output",
                    discrete,
                    UInt32,
                    number(4e9),
                );
                pair(
                    "Int64_input",
                    "Int64_output",
                    discrete,
                    Int64,
                    number(-9e18),
                );
                pair(
                    "UInt64_input",
                    "UInt64_output",
                    discrete,
                    UInt64,
                    number(18e18),
                );
                pair(
                    "Boolean_input",
                    "Boolean_output",
                    discrete,
                    Boolean,
                    number(1.0),
                );
                pair(
                    "String_input",
                    "String_output",
                    discrete,
                    String,
                    Start::Text(text),
                );
                pair(
                    "Binary_input",
                    "Binary_output",
                    discrete,
                    Binary,
                    Start::Bytes(&[0x00, 0xff, 0x10, 0x42]),
                );
                pair(
                    "Enumeration_input",
                    "Enumeration_output",
                    discrete,
                    Enumeration,
                    number(2.0),
                );
            }
            FmiVersion::V2 => {
                use Type::*;
                pair(
                    "Float64_continuous_input",
                    "Float64_continuous_output",
                    continuous,
                    Float64,
                    number(3.25),
                );
                pair(
                    "Float64_discrete_input",
                    "Float64_discrete_output",
                    discrete,
                    Float64,
                    number(4.5),
                );
                pair("Int32_input", "Int32_output", discrete, Int32, number(-2e9));
                pair(
                    "Boolean_input",
                    "Boolean_output",
                    discrete,
                    Boolean,
                    number(1.0),
                );
                // FMI 2 strings cannot be inputs
                pair(
                    "String_parameter",
                    "String_output",
                    Parameter { tunable: false },
                    String,
                    Start::Text(text),
                );
                pair(
                    "Enumeration_input",
                    "Enumeration_output",
                    discrete,
                    Enumeration,
                    number(2.0),
                );
            }
        }
        add(
            "Float64_fixed_parameter",
            Parameter { tunable: false },
            Type::Float64,
            number(1.5),
            "Fixed parameter",
        );
        add(
            "Float64_tunable_parameter",
            Parameter { tunable: true },
            Type::Float64,
            number(2.5),
            "Tunable parameter",
        );
        Spec {
            name: "Feedthrough",
            source: "Feedthrough",
            description: "For every variable type an input and an output that equals it".to_owned(),
            vars,
            aliases: vec![],
            enumeration: Some(Enumeration {
                name: "Option",
                items: &[("Option 1", 1), ("Option 2", 2)],
            }),
            structured_names: false,
            event_indicators: vec![],
            stop_time: 1.0,
            step_size: 0.1,
        }
    }

    /// StateSpace's default sizes (m inputs, n states, r outputs).
    const STATE_SPACE_SIZE: usize = 3;

    /// StateSpace's parameter defaults, row-major, as `fmus/src/models/StateSpace.c` sets
    /// them: A upper triangular, diagonal -1 … -n, with A[1,2] = 0.5; B and C identity where
    /// they have a diagonal; D = 0; x0 = 1 … n.
    struct StateSpaceDefaults {
        a: Vec<f64>,
        b: Vec<f64>,
        c: Vec<f64>,
        d: Vec<f64>,
        x0: Vec<f64>,
    }

    fn state_space_defaults(m: usize, n: usize, r: usize) -> StateSpaceDefaults {
        let eye = |i: usize, j: usize| if i == j { 1.0 } else { 0.0 };
        let mut a: Vec<f64> = (0..n * n)
            .map(|k| {
                if k / n == k % n {
                    -((k / n + 1) as f64)
                } else {
                    0.0
                }
            })
            .collect();
        if n > 1 {
            a[1] = 0.5;
        }
        StateSpaceDefaults {
            a,
            b: (0..n * m).map(|k| eye(k / m, k % m)).collect(),
            c: (0..r * n).map(|k| eye(k / n, k % n)).collect(),
            d: vec![0.0; r * m],
            x0: (1..=n).map(|i| i as f64).collect(),
        }
    }

    /// One of StateSpace's arrays: its FMI 3 dimensions as value references of m (1), n (2)
    /// and r (3), 0 for none, and its start values at the default sizes.
    struct ArrayVar {
        name: &'static str,
        kind: Kind,
        dims: [u32; 2],
        start: Vec<f64>,
        description: &'static str,
    }

    /// StateSpace's variables in the order of `fmus/src/models/StateSpace.c`: FMI 3 with
    /// arrays sized by m, n and r; FMI 2 flattened at the default sizes.
    fn state_space(version: FmiVersion) -> Spec {
        use Kind::*;
        let size = STATE_SPACE_SIZE;
        let defaults = state_space_defaults(size, size, size);
        let zeros = vec![0.0; size];
        let array = |name, kind, dims, start, description| ArrayVar {
            name,
            kind,
            dims,
            start,
            description,
        };
        let fixed = Parameter { tunable: false };
        let continuous = Input { discrete: false };
        let arrays = [
            array("A", fixed, [2, 2], defaults.a, "State matrix (n x n)"),
            array("B", fixed, [2, 1], defaults.b, "Input matrix (n x m)"),
            array("C", fixed, [3, 2], defaults.c, "Output matrix (r x n)"),
            array("D", fixed, [3, 1], defaults.d, "Feedthrough matrix (r x m)"),
            array("x0", fixed, [2, 0], defaults.x0, "Initial state (n)"),
            array("u", continuous, [1, 0], zeros.clone(), "Input (m)"),
            array(
                "y",
                Output,
                [3, 0],
                zeros.clone(),
                "Output, y = C x + D u (r)",
            ),
            array(
                "x",
                CalculatedState,
                [2, 0],
                zeros.clone(),
                "State, x(0) = x0 (n)",
            ),
            array(
                "der(x)",
                Derivative { of: 0 },
                [2, 0],
                zeros,
                "der(x) = A x + B u (n)",
            ),
        ];
        let mut vars = vec![Var {
            name: "time".into(),
            vr: 0,
            kind: Time,
            ty: Type::Float64,
            start: Start::Number(0.0),
            unit: Some("s"),
            description: "Simulation time",
            dims: vec![],
        }];
        match version {
            FmiVersion::V3 => {
                for (name, description) in [
                    ("m", "Number of inputs"),
                    ("n", "Number of states"),
                    ("r", "Number of outputs"),
                ] {
                    vars.push(Var {
                        name: name.into(),
                        vr: vars.len() as u32,
                        kind: Structural,
                        ty: Type::UInt64,
                        start: Start::Number(size as f64),
                        unit: None,
                        description,
                        dims: vec![],
                    });
                }
                let x_vr = vars.len() as u32 + 7;
                for ArrayVar {
                    name,
                    kind,
                    dims,
                    start,
                    description,
                } in arrays
                {
                    let kind = match kind {
                        Derivative { .. } => Derivative { of: x_vr },
                        other => other,
                    };
                    vars.push(Var {
                        name: name.into(),
                        vr: vars.len() as u32,
                        kind,
                        ty: Type::Float64,
                        start: Start::Array(start),
                        unit: None,
                        description,
                        dims: dims.into_iter().filter(|&d| d != 0).collect(),
                    });
                }
            }
            FmiVersion::V2 => {
                // flattened row by row: A[1,1], A[1,2], …, with 1-based structured names
                let mut x_vr = 0;
                for ArrayVar {
                    name,
                    kind,
                    dims,
                    start,
                    description,
                } in arrays
                {
                    let columns = if dims[1] == 0 { 1 } else { size };
                    for (k, value) in start.into_iter().enumerate() {
                        let (i, j) = (k / columns + 1, k % columns + 1);
                        let element = if dims[1] == 0 {
                            match name {
                                "der(x)" => format!("der(x[{i}])"),
                                _ => format!("{name}[{i}]"),
                            }
                        } else {
                            format!("{name}[{i},{j}]")
                        };
                        let vr = vars.len() as u32;
                        let kind = match kind {
                            CalculatedState if k == 0 => {
                                x_vr = vr;
                                kind
                            }
                            Derivative { .. } => Derivative {
                                of: x_vr + k as u32,
                            },
                            other => other,
                        };
                        vars.push(Var {
                            name: Cow::Owned(element),
                            vr,
                            kind,
                            ty: Type::Float64,
                            start: Start::Number(value),
                            unit: None,
                            description,
                            dims: vec![],
                        });
                    }
                }
            }
        }
        Spec {
            name: "StateSpace",
            source: "StateSpace",
            description: "Linear state-space model der(x) = A x + B u, y = C x + D u".to_owned(),
            vars,
            aliases: vec![],
            enumeration: None,
            structured_names: version == FmiVersion::V2,
            event_indicators: vec![],
            stop_time: 5.0,
            step_size: 0.1,
        }
    }
}
