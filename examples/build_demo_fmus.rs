//! Writes the demo FMUs of the built-in library (`fmus/`, every model in FMI 3.0 and 2.0) to a
//! directory, as `<Model>.fmu` and `<Model>-fmi2.fmu`, so that other tools can check them
//! (scripts/fmpy-check.sh cross-checks them with FMPy).
//!
//! Usage: cargo run --example build_demo_fmus -- <directory>

#[path = "../fmus/build_support.rs"]
mod build_support;

use std::path::{Path, PathBuf};

use build_support::{FmiVersion, LIBRARY_MODELS, build_fmu};

fn main() {
    let Some(out_dir) = std::env::args_os().nth(1).map(PathBuf::from) else {
        eprintln!("usage: build_demo_fmus <directory>");
        std::process::exit(2);
    };
    let fmus_dir = Path::new(env!("CARGO_MANIFEST_DIR")).join("fmus");
    for model in LIBRARY_MODELS {
        for (version, file_name) in [
            (FmiVersion::V3, model.to_owned()),
            (FmiVersion::V2, format!("{model}-fmi2")),
        ] {
            match build_fmu(&fmus_dir, model, version, &[], &out_dir, &file_name) {
                Ok(path) => println!("{}", path.display()),
                Err(e) => {
                    eprintln!("building {file_name} failed: {e}");
                    std::process::exit(1);
                }
            }
        }
    }
}
