//! The model-description reader (`fmi::describe`) on arbitrary text: a `ModelInfo` or a
//! `DescribeError`, never a panic; and the declaration scan agrees with the parser about DTDs.
#![no_main]

use std::sync::OnceLock;

use fmu_gateway::fmi::describe;
use libfuzzer_sys::fuzz_target;

fn dir() -> &'static std::path::Path {
    static DIR: OnceLock<tempfile::TempDir> = OnceLock::new();
    DIR.get_or_init(|| {
        let dir = tempfile::tempdir().unwrap();
        for platform in ["x86_64-linux", "linux64"] {
            std::fs::create_dir_all(dir.path().join("binaries").join(platform)).unwrap();
        }
        dir
    })
    .path()
}

fuzz_target!(|data: &[u8]| {
    let dir = dir();
    std::fs::write(dir.join("modelDescription.xml"), data).unwrap();
    if let Ok(info) = describe::describe(dir) {
        // Whatever was accepted had no markup declaration, and its identifiers are safe to
        // become file names.
        let text = std::str::from_utf8(data).unwrap();
        assert!(describe::refuse_declarations(text).is_ok());
        for interface in [&info.co_simulation, &info.model_exchange].into_iter().flatten() {
            let id = &interface.model_identifier;
            assert!(!id.is_empty() && !id.contains(['/', '.', '\0']), "{id:?}");
        }
        let _ = describe::check_platform(dir, &info);
    }
});
