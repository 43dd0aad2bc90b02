//! The FMU archive reader (`fmi::archive::extract`) on arbitrary bytes: it may refuse them,
//! never panic, and never write outside the destination or beyond its limits.
#![no_main]

use fmu_gateway::fmi::archive::{self, Limits};
use libfuzzer_sys::fuzz_target;

fuzz_target!(|data: &[u8]| {
    let dir = tempfile::tempdir().unwrap();
    let fmu = dir.path().join("in.fmu");
    std::fs::write(&fmu, data).unwrap();
    let dest = dir.path().join("out");
    // Small limits, so the fuzzer explores the checks rather than the disk.
    let limits = Limits {
        max_archive_bytes: 1 << 20,
        max_entries: 64,
        max_total_uncompressed: 4 << 20,
        max_entry_uncompressed: 2 << 20,
        max_compression_ratio: 100,
    };
    let extracted = archive::extract(&fmu, &dest, &limits);
    let mut total = 0u64;
    let mut stack = vec![dir.path().to_path_buf()];
    while let Some(d) = stack.pop() {
        for entry in std::fs::read_dir(&d).unwrap() {
            let entry = entry.unwrap();
            let path = entry.path();
            let meta = std::fs::symlink_metadata(&path).unwrap();
            assert!(!meta.file_type().is_symlink(), "a link was written: {path:?}");
            assert!(
                path == fmu || path.starts_with(&dest),
                "written outside the destination: {path:?}"
            );
            if meta.is_dir() {
                stack.push(path);
            } else if path != fmu {
                total += meta.len();
            }
        }
    }
    assert!(total <= limits.max_total_uncompressed, "{total} bytes extracted");
    if extracted.is_err() {
        assert_eq!(total, 0, "a refused archive left files behind");
    }
});
