//! The built-in library: demo FMUs that `build.rs` compiles from this project's own C
//! sources (`fmus/`), FMI 3.0 and 2.0, each with Co-Simulation and Model Exchange.

include!(concat!(env!("OUT_DIR"), "/demo_fmus.rs"));

/// `lib:<Model>` for the FMI 3 build, `lib:<Model>@fmi2` for the FMI 2 build.
pub fn library_id(model: &str, fmi_version: &str) -> String {
    if fmi_version.starts_with('2') {
        format!("lib:{model}@fmi2")
    } else {
        format!("lib:{model}")
    }
}
