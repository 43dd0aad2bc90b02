//! FMU intake end to end: hand-written FMI 2 and FMI 3 model descriptions are described and
//! platform-checked, and a zipped FMU goes through extract → describe → check_platform.

use std::fs;
use std::io::{Cursor, Write};
use std::path::Path;

use fmu_gateway::fmi::archive::{self, ArchiveError, ArchiveWarning, Limits};
use fmu_gateway::fmi::describe::{
    self, DefaultExperiment, DescribeError, DisplayUnit, Interface, ModelInfo, UnitDefinition,
    Variable,
};
use fmu_gateway::sim::plan::{self, RunSettings};
use tempfile::TempDir;

#[path = "common/archives.rs"]
#[allow(dead_code)]
mod archives;

const FMI2_BOUNCING_BALL: &str = r#"<?xml version="1.0" encoding="UTF-8"?>
<fmiModelDescription
  fmiVersion="2.0"
  modelName="BouncingBall"
  guid="{1AE5E10D-9521-4DE3-80B9-D0EAAA7D5AF1}"
  description="A ball that bounces"
  generationTool="Handwritten"
  numberOfEventIndicators="1">
  <ModelExchange modelIdentifier="BouncingBall" canGetAndSetFMUstate="true"
    completedIntegratorStepNotNeeded="true"/>
  <CoSimulation modelIdentifier="BouncingBall" canHandleVariableCommunicationStepSize="true"
    canGetAndSetFMUstate="true" providesDirectionalDerivative="true"/>
  <UnitDefinitions>
    <Unit name="m"><BaseUnit m="1"/><DisplayUnit name="ft" factor="3.280839895"/></Unit>
    <Unit name="m/s"><BaseUnit m="1" s="-1"/></Unit>
    <Unit name="m/s2"><BaseUnit m="1" s="-2"/></Unit>
  </UnitDefinitions>
  <TypeDefinitions>
    <SimpleType name="Acceleration"><Real quantity="Acceleration" unit="m/s2"/></SimpleType>
    <SimpleType name="Mode">
      <Enumeration><Item name="bounce" value="1"/><Item name="stick" value="2"/></Enumeration>
    </SimpleType>
  </TypeDefinitions>
  <LogCategories><Category name="logEvents"/></LogCategories>
  <DefaultExperiment startTime="0" stopTime="3" tolerance="1e-6" stepSize="0.01"/>
  <ModelVariables>
    <!-- 1 --><ScalarVariable name="time" valueReference="0" causality="independent"
      variability="continuous" description="Simulation time"><Real unit="s"/></ScalarVariable>
    <!-- 2 --><ScalarVariable name="h" valueReference="1" causality="output"
      variability="continuous" initial="exact" description="Height"><Real unit="m" start="1"/></ScalarVariable>
    <!-- 3 --><ScalarVariable name="der(h)" valueReference="2" causality="local"
      variability="continuous" initial="calculated"><Real unit="m/s" derivative="2"/></ScalarVariable>
    <!-- 4 --><ScalarVariable name="v" valueReference="3" causality="output"
      variability="continuous" initial="exact"><Real unit="m/s" start="0"/></ScalarVariable>
    <!-- 5 --><ScalarVariable name="der(v)" valueReference="4" causality="local"
      variability="continuous" initial="calculated"><Real declaredType="Acceleration" derivative="4"/></ScalarVariable>
    <!-- 6 --><ScalarVariable name="g" valueReference="5" causality="parameter"
      variability="fixed" initial="exact"><Real declaredType="Acceleration" start="-9.81"/></ScalarVariable>
    <!-- 7 --><ScalarVariable name="e" valueReference="6" causality="parameter"
      variability="tunable" description="Coefficient of restitution"><Real start="0.7" min="0.5" max="1"/></ScalarVariable>
    <!-- 8 --><ScalarVariable name="bounces" valueReference="7" causality="output"
      variability="discrete"><Integer/></ScalarVariable>
    <!-- 9 --><ScalarVariable name="enabled" valueReference="8" causality="input"
      variability="discrete"><Boolean start="true"/></ScalarVariable>
    <!-- 10 --><ScalarVariable name="label" valueReference="9" causality="parameter"
      variability="fixed"><String start="ball"/></ScalarVariable>
    <!-- 11 --><ScalarVariable name="x" valueReference="10"><Real/></ScalarVariable>
    <!-- 12 --><ScalarVariable name="mode" valueReference="11" causality="parameter"
      variability="fixed"><Enumeration declaredType="Mode" start="1"/></ScalarVariable>
  </ModelVariables>
  <ModelStructure>
    <Outputs><Unknown index="2"/><Unknown index="4"/><Unknown index="8"/></Outputs>
    <Derivatives><Unknown index="3"/><Unknown index="5"/></Derivatives>
    <InitialUnknowns><Unknown index="3"/><Unknown index="5"/><Unknown index="8"/></InitialUnknowns>
  </ModelStructure>
</fmiModelDescription>
"#;

const FMI2_ME_ONLY: &str = r#"<?xml version="1.0" encoding="UTF-8"?>
<fmiModelDescription fmiVersion="2.0" modelName="Dahlquist" guid="{221063D2-EF4A-45FE-B954-B5BFEEA9A59B}">
  <ModelExchange modelIdentifier="Dahlquist"/>
  <ModelVariables>
    <ScalarVariable name="x" valueReference="1" causality="output" variability="continuous"
      initial="exact"><Real start="1"/></ScalarVariable>
    <ScalarVariable name="der(x)" valueReference="2"><Real derivative="1"/></ScalarVariable>
  </ModelVariables>
  <ModelStructure>
    <Outputs><Unknown index="1"/></Outputs>
    <Derivatives><Unknown index="2"/></Derivatives>
    <InitialUnknowns><Unknown index="2"/></InitialUnknowns>
  </ModelStructure>
</fmiModelDescription>
"#;

const FMI3_FEEDTHROUGH: &str = r#"<?xml version="1.0" encoding="UTF-8"?>
<fmiModelDescription
  fmiVersion="3.0"
  modelName="Feedthrough"
  instantiationToken="{37B954F1-CC86-4D8F-B97F-C7C36F6670D2}"
  description="Inputs straight to outputs"
  generationTool="Handwritten">
  <ModelExchange modelIdentifier="Feedthrough_me" canGetAndSetFMUState="true"
    needsCompletedIntegratorStep="true" providesDirectionalDerivatives="true"/>
  <CoSimulation modelIdentifier="Feedthrough" canHandleVariableCommunicationStepSize="true"
    canGetAndSetFMUState="false" hasEventMode="true"/>
  <UnitDefinitions>
    <Unit name="s"><BaseUnit s="1"/></Unit>
    <Unit name="rad/s"><BaseUnit s="-1" rad="1"/><DisplayUnit name="degC-like" factor="2" offset="-1"/></Unit>
  </UnitDefinitions>
  <TypeDefinitions>
    <Float64Type name="AngularVelocity" quantity="AngularVelocity" unit="rad/s"/>
    <EnumerationType name="Option">
      <Item name="first" value="1"/><Item name="second" value="2"/>
    </EnumerationType>
  </TypeDefinitions>
  <LogCategories><Category name="logEvents"/></LogCategories>
  <DefaultExperiment startTime="0" stopTime="2" stepSize="0.5"/>
  <ModelVariables>
    <Float64 name="time" valueReference="0" causality="independent" variability="continuous"
      description="Simulation time"/>
    <Float32 name="Float32_input" valueReference="1" causality="input" start="0.5"/>
    <Float64 name="Float64_fixed_parameter" valueReference="5" causality="parameter"
      variability="fixed" start="0" unit="s"/>
    <Float64 name="w" valueReference="6" causality="output" declaredType="AngularVelocity"
      description="Speed"/>
    <Int32 name="Int32_input" valueReference="7" causality="input" start="3"/>
    <Int32 name="Int32_output" valueReference="8" causality="output"/>
    <Boolean name="Boolean_output" valueReference="9" causality="output" variability="discrete"
      initial="exact" start="false"/>
    <String name="String_parameter" valueReference="10" causality="parameter" variability="fixed">
      <Start value="Set me!"/>
    </String>
    <Enumeration name="Enumeration_input" valueReference="11" declaredType="Option"
      causality="input" start="1"/>
    <UInt64 name="n" valueReference="12" causality="structuralParameter" variability="fixed"
      start="3"/>
    <Float64 name="arr" valueReference="13" causality="parameter" variability="tunable"
      start="1 2 3"><Dimension valueReference="12"/></Float64>
    <Float64 name="x" valueReference="14" initial="exact" start="1"/>
    <Float64 name="der(x)" valueReference="15" derivative="14"/>
  </ModelVariables>
  <ModelStructure>
    <Output valueReference="6"/>
    <Output valueReference="8"/>
    <Output valueReference="9"/>
    <ContinuousStateDerivative valueReference="15"/>
    <InitialUnknown valueReference="6"/>
    <InitialUnknown valueReference="8"/>
    <InitialUnknown valueReference="15"/>
  </ModelStructure>
</fmiModelDescription>
"#;

const FMI3_CS_ONLY: &str = r#"<?xml version="1.0" encoding="UTF-8"?>
<fmiModelDescription fmiVersion="3.0.1" modelName="Stair" instantiationToken="{BD403596-3166-4232-ABC2-132BDF73E644}">
  <CoSimulation modelIdentifier="Stair"/>
  <ModelVariables>
    <Int32 name="counter" valueReference="1" causality="output" variability="discrete"
      initial="exact" start="1"/>
  </ModelVariables>
  <ModelStructure>
    <Output valueReference="1"/>
  </ModelStructure>
</fmiModelDescription>
"#;

/// An extracted FMU: the model description plus empty files at the given relative paths.
fn fmu_dir(model_description: &str, files: &[&str]) -> TempDir {
    let dir = tempfile::tempdir().unwrap();
    fs::write(dir.path().join("modelDescription.xml"), model_description).unwrap();
    for file in files {
        let path = dir.path().join(file);
        fs::create_dir_all(path.parent().unwrap()).unwrap();
        fs::write(path, b"not really a shared library").unwrap();
    }
    dir
}

#[allow(clippy::too_many_arguments)]
fn var(
    name: &str,
    value_reference: u32,
    r#type: &str,
    causality: &str,
    variability: &str,
    initial: Option<&str>,
    start: Option<&str>,
    unit: Option<&str>,
    description: Option<&str>,
) -> Variable {
    Variable {
        name: name.into(),
        value_reference,
        r#type: r#type.into(),
        causality: causality.into(),
        variability: variability.into(),
        initial: initial.map(Into::into),
        start: start.map(Into::into),
        unit: unit.map(Into::into),
        display_unit: None,
        description: description.map(Into::into),
        min: None,
        max: None,
        dimensions: 0,
        shape: vec![],
        items: vec![],
        aliases: vec![],
    }
}

#[test]
fn describes_an_fmi2_model_with_both_interfaces() {
    let dir = fmu_dir(
        FMI2_BOUNCING_BALL,
        &[
            "binaries/linux64/BouncingBall.so",
            "binaries/win64/BouncingBall.dll",
            "documentation/index.html",
        ],
    );
    let info = describe::describe(dir.path()).unwrap();

    let interface = Interface {
        model_identifier: "BouncingBall".into(),
        can_handle_variable_communication_step_size: false,
        can_get_and_set_fmu_state: true,
        can_serialize_fmu_state: false,
        needs_completed_integrator_step: false,
        provides_directional_derivatives: false,
        has_event_mode: false,
    };
    let expected = ModelInfo {
        log_categories: info.log_categories.clone(),
        describe_version: describe::DESCRIBE_VERSION,
        fmi_version: "2.0".into(),
        model_name: "BouncingBall".into(),
        instantiation_token: "{1AE5E10D-9521-4DE3-80B9-D0EAAA7D5AF1}".into(),
        description: Some("A ball that bounces".into()),
        generation_tool: Some("Handwritten".into()),
        co_simulation: Some(Interface {
            can_handle_variable_communication_step_size: true,
            provides_directional_derivatives: true,
            ..interface.clone()
        }),
        model_exchange: Some(interface),
        default_experiment: Some(DefaultExperiment {
            start_time: Some(0.0),
            stop_time: Some(3.0),
            tolerance: Some(1e-6),
            step_size: Some(0.01),
        }),
        units: vec!["m".into(), "m/s".into(), "m/s2".into()],
        unit_definitions: ["m", "m/s", "m/s2"]
            .into_iter()
            .map(|name| UnitDefinition {
                name: name.into(),
                display_units: if name == "m" {
                    vec![DisplayUnit {
                        name: "ft".into(),
                        factor: 3.280839895,
                        offset: 0.0,
                        inverse: false,
                    }]
                } else {
                    vec![]
                },
            })
            .collect(),
        variables: vec![
            var(
                "time",
                0,
                "Real",
                "independent",
                "continuous",
                None,
                None,
                Some("s"),
                Some("Simulation time"),
            ),
            var(
                "h",
                1,
                "Real",
                "output",
                "continuous",
                Some("exact"),
                Some("1"),
                Some("m"),
                Some("Height"),
            ),
            var(
                "der(h)",
                2,
                "Real",
                "local",
                "continuous",
                Some("calculated"),
                None,
                Some("m/s"),
                None,
            ),
            var(
                "v",
                3,
                "Real",
                "output",
                "continuous",
                Some("exact"),
                Some("0"),
                Some("m/s"),
                None,
            ),
            // The unit comes from the declared type.
            var(
                "der(v)",
                4,
                "Real",
                "local",
                "continuous",
                Some("calculated"),
                None,
                Some("m/s2"),
                None,
            ),
            var(
                "g",
                5,
                "Real",
                "parameter",
                "fixed",
                Some("exact"),
                Some("-9.81"),
                Some("m/s2"),
                None,
            ),
            // No initial attribute: the spec's default for a tunable parameter.
            var(
                "e",
                6,
                "Real",
                "parameter",
                "tunable",
                Some("exact"),
                Some("0.7"),
                None,
                Some("Coefficient of restitution"),
            ),
            var(
                "bounces",
                7,
                "Integer",
                "output",
                "discrete",
                Some("calculated"),
                None,
                None,
                None,
            ),
            var(
                "enabled",
                8,
                "Boolean",
                "input",
                "discrete",
                Some("exact"),
                Some("true"),
                None,
                None,
            ),
            var(
                "label",
                9,
                "String",
                "parameter",
                "fixed",
                Some("exact"),
                Some("ball"),
                None,
                None,
            ),
            // No causality or variability: FMI 2 defaults (local, continuous).
            var(
                "x",
                10,
                "Real",
                "local",
                "continuous",
                Some("calculated"),
                None,
                None,
                None,
            ),
            var(
                "mode",
                11,
                "Enumeration",
                "parameter",
                "fixed",
                Some("exact"),
                Some("1"),
                None,
                None,
            ),
        ],
        platforms: vec!["linux64".into(), "win64".into()],
        scheduled_execution: None,
        warnings: vec![],
        validation: None,
    };
    // `e` declares min="0.5" max="1".
    let mut expected = expected;
    let e = expected
        .variables
        .iter_mut()
        .find(|v| v.name == "e")
        .unwrap();
    (e.min, e.max) = (Some(0.5), Some(1.0));
    assert_eq!(info, expected);

    assert_eq!(info.default_interface(), Some("cs"));
    assert_eq!(info.variable("g").unwrap().value_reference, 5);
    assert!(info.variable("nope").is_none());
    let outputs: Vec<&str> = info.outputs().map(|v| v.name.as_str()).collect();
    assert_eq!(outputs, ["h", "v", "bounces"]);
    describe::check_platform(dir.path(), &info).unwrap();

    // The JSON shape other modules and the API rely on.
    let json = serde_json::to_value(&info).unwrap();
    assert_eq!(json["variables"][0]["type"], "Real");
    assert_eq!(json["co_simulation"]["model_identifier"], "BouncingBall");
    let back: ModelInfo = serde_json::from_value(json).unwrap();
    assert_eq!(back, info);
}

#[test]
fn describes_an_fmi2_model_exchange_only_model() {
    let dir = fmu_dir(FMI2_ME_ONLY, &["binaries/linux64/Dahlquist.so"]);
    let info = describe::describe(dir.path()).unwrap();
    assert_eq!(info.co_simulation, None);
    assert_eq!(
        info.model_exchange,
        Some(Interface {
            model_identifier: "Dahlquist".into(),
            can_handle_variable_communication_step_size: false,
            can_get_and_set_fmu_state: false,
            can_serialize_fmu_state: false,
            // completedIntegratorStepNotNeeded defaults to false.
            needs_completed_integrator_step: true,
            provides_directional_derivatives: false,
            has_event_mode: false,
        })
    );
    assert_eq!(info.default_interface(), Some("me"));
    assert_eq!(info.description, None);
    assert_eq!(info.generation_tool, None);
    assert_eq!(info.default_experiment, None);
    assert!(info.units.is_empty());
    assert_eq!(info.platforms, ["linux64"]);
    describe::check_platform(dir.path(), &info).unwrap();
}

#[test]
fn describes_an_fmi3_model_with_both_interfaces() {
    let dir = fmu_dir(
        FMI3_FEEDTHROUGH,
        &[
            "binaries/x86_64-linux/Feedthrough.so",
            "binaries/x86_64-linux/Feedthrough_me.so",
            "binaries/x86_64-windows/Feedthrough.dll",
            "sources/buildDescription.xml",
        ],
    );
    let info = describe::describe(dir.path()).unwrap();

    let expected = ModelInfo {
        log_categories: info.log_categories.clone(),
        describe_version: describe::DESCRIBE_VERSION,
        fmi_version: "3.0".into(),
        model_name: "Feedthrough".into(),
        instantiation_token: "{37B954F1-CC86-4D8F-B97F-C7C36F6670D2}".into(),
        description: Some("Inputs straight to outputs".into()),
        generation_tool: Some("Handwritten".into()),
        co_simulation: Some(Interface {
            model_identifier: "Feedthrough".into(),
            can_handle_variable_communication_step_size: true,
            can_get_and_set_fmu_state: false,
            can_serialize_fmu_state: false,
            needs_completed_integrator_step: false,
            provides_directional_derivatives: false,
            has_event_mode: true,
        }),
        model_exchange: Some(Interface {
            model_identifier: "Feedthrough_me".into(),
            can_handle_variable_communication_step_size: false,
            can_get_and_set_fmu_state: true,
            can_serialize_fmu_state: false,
            needs_completed_integrator_step: true,
            provides_directional_derivatives: true,
            has_event_mode: false,
        }),
        default_experiment: Some(DefaultExperiment {
            start_time: Some(0.0),
            stop_time: Some(2.0),
            tolerance: None,
            step_size: Some(0.5),
        }),
        units: vec!["s".into(), "rad/s".into()],
        unit_definitions: vec![
            UnitDefinition {
                name: "s".into(),
                display_units: vec![],
            },
            UnitDefinition {
                name: "rad/s".into(),
                display_units: vec![DisplayUnit {
                    name: "degC-like".into(),
                    factor: 2.0,
                    offset: -1.0,
                    inverse: false,
                }],
            },
        ],
        variables: vec![
            var(
                "time",
                0,
                "Float64",
                "independent",
                "continuous",
                None,
                None,
                None,
                Some("Simulation time"),
            ),
            // No variability: continuous for Float types.
            var(
                "Float32_input",
                1,
                "Float32",
                "input",
                "continuous",
                Some("exact"),
                Some("0.5"),
                None,
                None,
            ),
            var(
                "Float64_fixed_parameter",
                5,
                "Float64",
                "parameter",
                "fixed",
                Some("exact"),
                Some("0"),
                Some("s"),
                None,
            ),
            var(
                "w",
                6,
                "Float64",
                "output",
                "continuous",
                Some("calculated"),
                None,
                Some("rad/s"),
                Some("Speed"),
            ),
            // No variability: discrete for everything else.
            var(
                "Int32_input",
                7,
                "Int32",
                "input",
                "discrete",
                Some("exact"),
                Some("3"),
                None,
                None,
            ),
            var(
                "Int32_output",
                8,
                "Int32",
                "output",
                "discrete",
                Some("calculated"),
                None,
                None,
                None,
            ),
            var(
                "Boolean_output",
                9,
                "Boolean",
                "output",
                "discrete",
                Some("exact"),
                Some("false"),
                None,
                None,
            ),
            var(
                "String_parameter",
                10,
                "String",
                "parameter",
                "fixed",
                Some("exact"),
                Some("Set me!"),
                None,
                None,
            ),
            var(
                "Enumeration_input",
                11,
                "Enumeration",
                "input",
                "discrete",
                Some("exact"),
                Some("1"),
                None,
                None,
            ),
            var(
                "n",
                12,
                "UInt64",
                "structuralParameter",
                "fixed",
                Some("exact"),
                Some("3"),
                None,
                None,
            ),
            var(
                "arr",
                13,
                "Float64",
                "parameter",
                "tunable",
                Some("exact"),
                Some("1 2 3"),
                None,
                None,
            ),
            // No causality: local.
            var(
                "x",
                14,
                "Float64",
                "local",
                "continuous",
                Some("exact"),
                Some("1"),
                None,
                None,
            ),
            var(
                "der(x)",
                15,
                "Float64",
                "local",
                "continuous",
                Some("calculated"),
                None,
                None,
                None,
            ),
        ],
        platforms: vec!["x86_64-linux".into(), "x86_64-windows".into()],
        scheduled_execution: None,
        warnings: vec![],
        validation: None,
    };
    // The array parameter `arr` has one <Dimension>, sized by the structural parameter `n`;
    // the enumeration lists its type's items.
    let mut expected = expected;
    let arr = expected
        .variables
        .iter_mut()
        .find(|v| v.name == "arr")
        .unwrap();
    arr.dimensions = 1;
    arr.shape = vec![describe::Dimension::Parameter("n".into())];
    let e = expected
        .variables
        .iter_mut()
        .find(|v| v.name == "Enumeration_input")
        .unwrap();
    e.items = vec![
        describe::Item {
            name: "first".into(),
            value: 1,
        },
        describe::Item {
            name: "second".into(),
            value: 2,
        },
    ];
    assert_eq!(info, expected);
    assert_eq!(info.default_interface(), Some("cs"));
    let outputs: Vec<&str> = info.outputs().map(|v| v.name.as_str()).collect();
    assert_eq!(outputs, ["w", "Int32_output", "Boolean_output"]);
    describe::check_platform(dir.path(), &info).unwrap();
}

#[test]
fn describes_an_fmi3_co_simulation_only_model() {
    let dir = fmu_dir(FMI3_CS_ONLY, &["binaries/x86_64-linux/Stair.so"]);
    let info = describe::describe(dir.path()).unwrap();
    assert_eq!(info.fmi_version, "3.0.1");
    assert_eq!(info.model_exchange, None);
    assert_eq!(info.default_interface(), Some("cs"));
    assert_eq!(info.default_experiment, None);
    assert!(info.units.is_empty());
    describe::check_platform(dir.path(), &info).unwrap();
}

#[test]
fn missing_binary_for_our_platform_lists_what_is_there() {
    let dir = fmu_dir(FMI2_BOUNCING_BALL, &["binaries/win64/BouncingBall.dll"]);
    let info = describe::describe(dir.path()).unwrap();
    assert_eq!(info.platforms, ["win64"]);
    let err = describe::check_platform(dir.path(), &info).unwrap_err();
    match &err {
        DescribeError::MissingBinary { missing, platforms } => {
            assert_eq!(missing, "binaries/linux64/BouncingBall.so");
            assert_eq!(platforms, &["win64"]);
        }
        other => panic!("unexpected error: {other}"),
    }
    let msg = err.to_string();
    assert!(msg.contains("binaries/linux64/BouncingBall.so"), "{msg}");
    assert!(msg.contains("the FMU has binaries for: win64"), "{msg}");

    // FMI 3 wants x86_64-linux; an FMI 2 style linux64 folder does not count.
    let dir = fmu_dir(
        FMI3_CS_ONLY,
        &[
            "binaries/linux64/Stair.so",
            "binaries/aarch64-darwin/Stair.dylib",
        ],
    );
    let info = describe::describe(dir.path()).unwrap();
    let msg = describe::check_platform(dir.path(), &info)
        .unwrap_err()
        .to_string();
    assert!(msg.contains("binaries/x86_64-linux/Stair.so"), "{msg}");
    assert!(msg.contains("aarch64-darwin, linux64"), "{msg}");

    // Every declared interface needs its binary.
    let dir = fmu_dir(FMI3_FEEDTHROUGH, &["binaries/x86_64-linux/Feedthrough.so"]);
    let info = describe::describe(dir.path()).unwrap();
    let msg = describe::check_platform(dir.path(), &info)
        .unwrap_err()
        .to_string();
    assert!(
        msg.contains("binaries/x86_64-linux/Feedthrough_me.so"),
        "{msg}"
    );

    // No binaries at all (a source-only FMU).
    let dir = fmu_dir(FMI3_CS_ONLY, &[]);
    let info = describe::describe(dir.path()).unwrap();
    assert!(info.platforms.is_empty());
    let msg = describe::check_platform(dir.path(), &info)
        .unwrap_err()
        .to_string();
    assert!(msg.contains("no binaries for any platform"), "{msg}");
}

#[test]
fn malformed_xml_names_the_parse_problem() {
    let dir = fmu_dir(
        "<?xml version=\"1.0\"?>\n<fmiModelDescription fmiVersion=\"3.0\" modelName=\"x\">\n<ModelVariables>\n</fmiModelDescription>\n",
        &[],
    );
    let err = describe::describe(dir.path()).unwrap_err();
    assert!(matches!(err, DescribeError::Xml(_)), "{err}");
    let msg = err.to_string();
    assert!(
        msg.starts_with("modelDescription.xml is not valid XML: "),
        "{msg}"
    );
    // roxmltree says where and what: the unexpected close tag on line 4.
    assert!(msg.contains("4:"), "{msg}");

    let dir = fmu_dir("this is not XML at all", &[]);
    let err = describe::describe(dir.path()).unwrap_err();
    assert!(matches!(err, DescribeError::Xml(_)), "{err}");
}

#[test]
fn well_formed_but_incomplete_descriptions_say_what_is_missing() {
    let without_token = FMI3_CS_ONLY.replace(
        " instantiationToken=\"{BD403596-3166-4232-ABC2-132BDF73E644}\"",
        "",
    );
    let dir = fmu_dir(&without_token, &[]);
    let err = describe::describe(dir.path()).unwrap_err();
    assert!(matches!(err, DescribeError::Parse { .. }), "{err}");
    assert!(err.to_string().contains("instantiationToken"), "{err}");

    let dir = fmu_dir("<fmiModelDescription modelName=\"x\"/>", &[]);
    let err = describe::describe(dir.path()).unwrap_err();
    assert!(matches!(err, DescribeError::NoVersion), "{err}");

    let bad_time = FMI2_BOUNCING_BALL.replace("stopTime=\"3\"", "stopTime=\"soon\"");
    let dir = fmu_dir(&bad_time, &[]);
    let err = describe::describe(dir.path()).unwrap_err();
    assert!(err.to_string().contains("stopTime=\"soon\""), "{err}");
}

#[test]
fn validation_problems_are_reported_with_line_numbers() {
    let duplicate = FMI3_CS_ONLY.replace(
        "  </ModelVariables>",
        "    <Int32 name=\"counter\" valueReference=\"1\" causality=\"local\" variability=\"discrete\" initial=\"exact\" start=\"0\"/>\n  </ModelVariables>",
    );
    let dir = fmu_dir(&duplicate, &[]);
    let err = describe::describe(dir.path()).unwrap_err();
    match &err {
        DescribeError::Invalid { version, problems } => {
            assert_eq!(version, "3.0.1");
            assert!(
                problems
                    .iter()
                    .any(|p| p.contains("Duplicate value reference: 1")),
                "{problems:?}"
            );
            assert!(
                problems.iter().any(|p| p.starts_with("line ")),
                "{problems:?}"
            );
        }
        other => panic!("unexpected error: {other}"),
    }
    assert!(
        err.to_string()
            .starts_with("modelDescription.xml breaks the FMI 3.0.1 standard: "),
        "{err}"
    );
}

#[test]
fn fmi1_is_not_supported() {
    let fmi1 = r#"<?xml version="1.0" encoding="UTF-8"?>
<fmiModelDescription fmiVersion="1.0" modelName="Old" modelIdentifier="Old"
  guid="{8c4e810f-3df3-4a00-8276-176fa3c9f003}" numberOfContinuousStates="0"
  numberOfEventIndicators="0">
  <ModelVariables/>
</fmiModelDescription>
"#;
    let dir = fmu_dir(fmi1, &["binaries/linux64/Old.so"]);
    let err = describe::describe(dir.path()).unwrap_err();
    assert!(
        matches!(&err, DescribeError::UnsupportedVersion(v) if v == "1.0"),
        "{err}"
    );
    assert_eq!(
        err.to_string(),
        "FMI version '1.0' is not supported; only FMI 2.0 and 3.0 are supported"
    );
}

#[test]
fn a_missing_model_description_is_reported_as_such() {
    let dir = tempfile::tempdir().unwrap();
    let err = describe::describe(dir.path()).unwrap_err();
    assert!(matches!(err, DescribeError::Missing), "{err}");
    assert_eq!(
        err.to_string(),
        "modelDescription.xml is missing at the top of the FMU"
    );
}

#[test]
fn model_identifiers_cannot_escape_the_binaries_folder() {
    let evil = FMI3_CS_ONLY.replace(
        "modelIdentifier=\"Stair\"",
        "modelIdentifier=\"../../evil\"",
    );
    let dir = fmu_dir(&evil, &[]);
    let err = describe::describe(dir.path()).unwrap_err();
    assert!(matches!(err, DescribeError::BadModelIdentifier(_)), "{err}");

    // Also when the ModelInfo did not come from describe().
    let dir = fmu_dir(FMI3_CS_ONLY, &["binaries/x86_64-linux/Stair.so"]);
    let mut info = describe::describe(dir.path()).unwrap();
    info.co_simulation.as_mut().unwrap().model_identifier = "../Stair".into();
    let err = describe::check_platform(dir.path(), &info).unwrap_err();
    assert!(matches!(err, DescribeError::BadModelIdentifier(_)), "{err}");
}

fn zip_fmu(path: &Path, entries: &[(&str, &[u8])]) {
    let options = zip::write::SimpleFileOptions::default()
        .compression_method(zip::CompressionMethod::Deflated);
    let mut w = zip::ZipWriter::new(Cursor::new(Vec::new()));
    for (name, data) in entries {
        w.start_file(*name, options).unwrap();
        w.write_all(data).unwrap();
    }
    fs::write(path, w.finish().unwrap().into_inner()).unwrap();
}

#[test]
fn an_uploaded_fmu_goes_from_zip_to_model_info() {
    let tmp = tempfile::tempdir().unwrap();
    let fmu = tmp.path().join("Feedthrough.fmu");
    zip_fmu(
        &fmu,
        &[
            ("modelDescription.xml", FMI3_FEEDTHROUGH.as_bytes()),
            ("binaries/x86_64-linux/Feedthrough.so", b"\x7fELF"),
            ("binaries/x86_64-linux/Feedthrough_me.so", b"\x7fELF"),
            ("resources/readme.txt", b"hello"),
        ],
    );
    let dest = tmp.path().join("extracted");
    fs::create_dir(&dest).unwrap();
    archive::extract(&fmu, &dest, &Limits::default()).unwrap();
    let info = describe::describe(&dest).unwrap();
    assert_eq!(info.model_name, "Feedthrough");
    assert_eq!(info.platforms, ["x86_64-linux"]);
    describe::check_platform(&dest, &info).unwrap();
}

#[test]
fn a_hostile_fmu_is_refused_before_describe_sees_it() {
    let tmp = tempfile::tempdir().unwrap();
    let fmu = tmp.path().join("evil.fmu");
    zip_fmu(
        &fmu,
        &[
            ("modelDescription.xml", FMI3_CS_ONLY.as_bytes()),
            ("binaries/x86_64-linux/../../../evil.so", b"\x7fELF"),
        ],
    );
    let dest = tmp.path().join("extracted");
    fs::create_dir(&dest).unwrap();
    let err = archive::extract(&fmu, &dest, &Limits::default()).unwrap_err();
    assert!(matches!(err, ArchiveError::PathEscapes { .. }), "{err}");
    assert_eq!(fs::read_dir(&dest).unwrap().count(), 0);
    assert!(!tmp.path().join("evil.so").exists());
}

/// The "billion laughs": ten levels of ten references each, 10^9 `lol`s from under 1 KB.
pub fn entity_bomb() -> String {
    let mut dtd = String::from("<!DOCTYPE fmiModelDescription [\n<!ENTITY lol0 \"lol\">\n");
    for level in 1..10 {
        let refs: String = (0..10).map(|_| format!("&lol{};", level - 1)).collect();
        dtd.push_str(&format!("<!ENTITY lol{level} \"{refs}\">\n"));
    }
    dtd.push_str("]>\n");
    format!(
        "<?xml version=\"1.0\"?>\n{dtd}<fmiModelDescription fmiVersion=\"3.0\" modelName=\"&lol9;\" instantiationToken=\"x\"><CoSimulation modelIdentifier=\"x\"/><ModelVariables/></fmiModelDescription>\n"
    )
}

#[test]
fn an_entity_bomb_is_refused_unparsed_and_at_once() {
    let bomb = entity_bomb();
    assert!(bomb.len() < 2048, "{} bytes", bomb.len());
    let dir = fmu_dir(&bomb, &["binaries/x86_64-linux/x.so"]);
    let started = std::time::Instant::now();
    let err = describe::describe(dir.path()).unwrap_err();
    assert!(
        started.elapsed() < std::time::Duration::from_millis(100),
        "{:?}",
        started.elapsed()
    );
    assert!(
        matches!(&err, DescribeError::Declaration(name) if name == "DOCTYPE"),
        "{err}"
    );
    let message = err.to_string();
    assert!(
        message.starts_with("modelDescription.xml contains a markup declaration (<!DOCTYPE…>)"),
        "{message}"
    );

    // An entity declaration without a DOCTYPE, or a DOCTYPE with no internal subset (an
    // external DTD), is refused as well.
    for text in [
        FMI3_CS_ONLY.replacen("<fmiModelDescription", "<!ENTITY x \"y\"><fmiModelDescription", 1),
        FMI3_CS_ONLY.replacen(
            "<fmiModelDescription",
            "<!DOCTYPE fmiModelDescription SYSTEM \"http://127.0.0.1:1/x.dtd\"><fmiModelDescription",
            1,
        ),
    ] {
        let dir = fmu_dir(&text, &[]);
        let err = describe::describe(dir.path()).unwrap_err();
        assert!(matches!(err, DescribeError::Declaration(_)), "{err}");
    }
}

#[test]
fn declarations_inside_comments_cdata_and_instructions_are_only_text() {
    // What a real file may carry: a comment quoting a DOCTYPE, a processing instruction.
    let text = FMI3_CS_ONLY
        .replacen(
            "<fmiModelDescription",
            "<!-- written without <!DOCTYPE x> or <!ENTITY y \"z\"> -->\n<?tool note <!DOCTYPE?>\n<fmiModelDescription",
            1,
        );
    let dir = fmu_dir(&text, &[]);
    let described = describe::describe(dir.path()).unwrap();
    let plain = fmu_dir(FMI3_CS_ONLY, &[]);
    assert_eq!(described, describe::describe(plain.path()).unwrap());
    // The scan itself, on the edge cases.
    for ok in [
        "<a><![CDATA[<!DOCTYPE x>]]></a>",
        "<a/><!-- unterminated <!DOCTYPE",
        "",
        "<",
    ] {
        assert!(describe::refuse_declarations(ok).is_ok(), "{ok}");
    }
    for bad in [
        "<a/><!DOCTYPE a>",
        "<!-- c --><!ELEMENT a ANY>",
        "<?pi?><!ATTLIST",
    ] {
        assert!(describe::refuse_declarations(bad).is_err(), "{bad}");
    }
}

#[test]
fn a_model_description_over_the_size_bound_is_refused_unparsed() {
    let limit = describe::MAX_MODEL_DESCRIPTION_BYTES as usize;
    let mut text = FMI3_CS_ONLY.to_string();
    text.push_str(&" ".repeat(limit + 1 - text.len()));
    let dir = fmu_dir(&text, &[]);
    let err = describe::describe(dir.path()).unwrap_err();
    assert!(
        matches!(err, DescribeError::TooLarge { size, limit: l } if size == limit as u64 + 1 && l == limit as u64),
        "{err}"
    );
}

/// FMI 3 with only `<ScheduledExecution>`: valid by the standard, not run by this server.
const FMI3_SCHEDULED_ONLY: &str = r#"<?xml version="1.0" encoding="UTF-8"?>
<fmiModelDescription fmiVersion="3.0" modelName="Clocked" instantiationToken="{4C6A2F3E-1D0B-4E8F-9A7C-2B5D8E1F0A93}">
  <ScheduledExecution modelIdentifier="Clocked" canGetAndSetFMUState="true"
    providesDirectionalDerivatives="true"/>
  <ModelVariables>
    <Float64 name="time" valueReference="0" causality="independent" variability="continuous"/>
    <Clock name="tick" valueReference="1" causality="input" intervalVariability="constant"
      intervalDecimal="0.1"/>
    <Float64 name="y" valueReference="2" causality="output" variability="discrete"
      clocks="1" initial="exact" start="0"/>
  </ModelVariables>
  <ModelStructure>
    <Output valueReference="2"/>
  </ModelStructure>
</fmiModelDescription>
"#;

#[test]
fn an_fmu_with_only_scheduled_execution_is_refused_for_what_it_is() {
    let dir = fmu_dir(FMI3_SCHEDULED_ONLY, &["binaries/x86_64-linux/Clocked.so"]);
    let info = describe::describe(dir.path()).unwrap();
    assert_eq!(info.co_simulation, None);
    assert_eq!(info.model_exchange, None);
    assert_eq!(
        info.scheduled_execution,
        Some(Interface {
            model_identifier: "Clocked".into(),
            can_handle_variable_communication_step_size: false,
            can_get_and_set_fmu_state: true,
            can_serialize_fmu_state: false,
            needs_completed_integrator_step: false,
            provides_directional_derivatives: true,
            has_event_mode: false,
        })
    );
    assert_eq!(info.default_interface(), None);
    let message = "this FMU implements only Scheduled Execution, which this server does not run yet (it runs Co-Simulation and Model Exchange)";

    let err = describe::check_platform(dir.path(), &info).unwrap_err();
    assert!(
        matches!(err, DescribeError::OnlyScheduledExecution),
        "{err}"
    );
    assert_eq!(err.to_string(), message);

    // A run request is refused the same way, on its `interface` field.
    let problems = plan::plan(&info, dir.path(), &RunSettings::default()).unwrap_err();
    assert!(
        problems
            .0
            .iter()
            .any(|p| p.field == "interface" && p.message == message),
        "{problems:?}"
    );

    // Its identifier names a file too, so it is checked like the others.
    let evil =
        FMI3_SCHEDULED_ONLY.replace("modelIdentifier=\"Clocked\"", "modelIdentifier=\"../x\"");
    let dir = fmu_dir(&evil, &[]);
    assert!(matches!(
        describe::describe(dir.path()),
        Err(DescribeError::BadModelIdentifier(_))
    ));

    // The info the registry stores keeps it; info stored before it existed reads as none.
    let json = serde_json::to_value(&info).unwrap();
    assert_eq!(json["scheduled_execution"]["model_identifier"], "Clocked");
    let mut old = json.clone();
    old.as_object_mut().unwrap().remove("scheduled_execution");
    old.as_object_mut().unwrap().remove("warnings");
    let old: ModelInfo = serde_json::from_value(old).unwrap();
    assert_eq!(old.scheduled_execution, None);
    assert!(old.warnings.is_empty());
}

#[test]
fn an_fmu_with_no_interface_at_all_is_refused_as_broken() {
    let none = FMI3_SCHEDULED_ONLY.replace(
        "  <ScheduledExecution modelIdentifier=\"Clocked\" canGetAndSetFMUState=\"true\"\n    providesDirectionalDerivatives=\"true\"/>\n",
        "",
    );
    assert!(!none.contains("ScheduledExecution"));
    let dir = fmu_dir(&none, &[]);
    let err = describe::describe(dir.path()).unwrap_err();
    assert_eq!(
        err.to_string(),
        "modelDescription.xml breaks the FMI 3.0 standard: No interface type defined."
    );

    // Model info that lost its interfaces (it can only come from elsewhere than describe)
    // gets the plain message, not the Scheduled Execution one.
    let dir = fmu_dir(FMI3_CS_ONLY, &["binaries/x86_64-linux/Stair.so"]);
    let mut info = describe::describe(dir.path()).unwrap();
    info.co_simulation = None;
    let err = describe::check_platform(dir.path(), &info).unwrap_err();
    assert_eq!(
        err.to_string(),
        "the FMU implements neither Co-Simulation nor Model Exchange, so this server cannot run it"
    );
}

#[test]
fn an_fmu_listing_an_entry_twice_goes_from_zip_to_model_info_with_a_warning() {
    let tmp = tempfile::tempdir().unwrap();
    let fmu = tmp.path().join("twice.fmu");
    let license = b"MIT or Apache-2.0, at your option".repeat(10);
    fs::write(
        &fmu,
        archives::with_entry_twice(
            archives::library_fmu("Dahlquist", "2.0"),
            "extra/LICENSE.txt",
            &license,
            &license,
        ),
    )
    .unwrap();
    let dest = tmp.path().join("extracted");
    let extracted = archive::extract(&fmu, &dest, &Limits::default()).unwrap();
    assert_eq!(
        extracted.warnings,
        [ArchiveWarning::DuplicateEntry {
            entry: "extra/LICENSE.txt".into(),
            copies: 2
        }]
    );
    assert_eq!(fs::read(dest.join("extra/LICENSE.txt")).unwrap(), license);
    let info = describe::describe(&dest).unwrap();
    describe::check_platform(&dest, &info).unwrap();
    assert_eq!(info.model_name, "Dahlquist");

    // Different bytes under the name: refused, and nothing is left in the destination.
    fs::write(
        &fmu,
        archives::with_entry_twice(
            archives::library_fmu("Dahlquist", "2.0"),
            "extra/LICENSE.txt",
            b"MIT",
            b"GPL",
        ),
    )
    .unwrap();
    let dest = tmp.path().join("refused");
    let err = archive::extract(&fmu, &dest, &Limits::default()).unwrap_err();
    assert_eq!(
        err.to_string(),
        "entry 'extra/LICENSE.txt' appears twice with different contents (same size, different CRC-32)"
    );
    assert!(!dest.exists(), "the destination this call made is gone");
}
