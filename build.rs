//! Checks that the front-end packages are installed before the binary embeds them, and builds
//! the demo FMUs of the built-in library from `fmus/` into `$OUT_DIR/demo-fmus/`, listed in
//! `$OUT_DIR/demo_fmus.rs` as `DEMO_FMUS`.

use std::path::{Path, PathBuf};

#[path = "fmus/build_support.rs"]
mod build_support;

fn main() {
    println!("cargo:rerun-if-changed=package-lock.json");
    for embedded in [
        "node_modules/htmx.org/dist/htmx.min.js",
        "node_modules/htmx-ext-sse/dist/sse.min.js",
        "node_modules/uplot/dist/uPlot.iife.min.js",
        "node_modules/uplot/dist/uPlot.min.css",
    ] {
        println!("cargo:rerun-if-changed={embedded}");
        if !std::path::Path::new(embedded).exists() {
            panic!(
                "{embedded} is missing: run `npm ci` first (it installs htmx, its SSE extension and uPlot from \
                 package-lock.json)"
            );
        }
    }

    build_demo_fmus();
}

/// Lists the files under `dir` (recursively) so that cargo reruns this script when one changes.
fn watch(dir: &Path) {
    println!("cargo:rerun-if-changed={}", dir.display());
    let Ok(entries) = std::fs::read_dir(dir) else {
        return;
    };
    let mut paths: Vec<PathBuf> = entries.filter_map(|e| e.ok().map(|e| e.path())).collect();
    paths.sort();
    for path in paths {
        if path.is_dir() {
            watch(&path);
        } else {
            println!("cargo:rerun-if-changed={}", path.display());
        }
    }
}

fn build_demo_fmus() {
    use build_support::{FmiVersion, LIBRARY_MODELS, build_fmu};

    let fmus_dir = PathBuf::from("fmus");
    watch(&fmus_dir);
    println!("cargo:rerun-if-env-changed=CC");

    let out_dir = PathBuf::from(std::env::var_os("OUT_DIR").expect("cargo sets OUT_DIR"));
    let demo_dir = out_dir.join("demo-fmus");

    let jobs: Vec<(&str, FmiVersion, String)> = LIBRARY_MODELS
        .iter()
        .flat_map(|&model| {
            [
                (model, FmiVersion::V3, model.to_owned()),
                (model, FmiVersion::V2, format!("{model}-fmi2")),
            ]
        })
        .collect();

    // compile in parallel: each FMU is an independent C compile and zip
    let built: Vec<PathBuf> = std::thread::scope(|scope| {
        let handles: Vec<_> = jobs
            .iter()
            .map(|(model, version, file_name)| {
                let (fmus_dir, demo_dir) = (&fmus_dir, &demo_dir);
                scope.spawn(move || {
                    build_fmu(fmus_dir, model, *version, &[], demo_dir, file_name)
                        .unwrap_or_else(|e| panic!("building the demo FMU {file_name} failed: {e}"))
                })
            })
            .collect();
        handles
            .into_iter()
            .map(|h| h.join().expect("FMU build thread"))
            .collect()
    });

    let mut code = String::from(
        "/// (model name, FMI version \"3.0\" or \"2.0\", FMU bytes)\n\
         pub const DEMO_FMUS: &[(&str, &str, &[u8])] = &[\n",
    );
    for ((model, version, _), path) in jobs.iter().zip(&built) {
        let path = std::path::absolute(path).expect("absolute path of the FMU");
        code.push_str(&format!(
            "    ({model:?}, {:?}, include_bytes!({:?})),\n",
            version.label(),
            path.display().to_string()
        ));
    }
    code.push_str("];\n");
    std::fs::write(out_dir.join("demo_fmus.rs"), code).expect("write demo_fmus.rs");
}
