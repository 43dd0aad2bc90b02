#!/usr/bin/env bash
# Cross-checks every demo FMU of the built-in library (fmus/, FMI 3.0 and 2.0) with FMPy from
# PyPI (scripts/fmpy-venv.sh): builds them into target/fmpy-check with
# examples/build_demo_fmus.rs, then runs scripts/fmpy-check.py on them (the FMUs against closed
# forms) and scripts/fmpy-crosscheck.py (our CLI's results against FMPy's on the same files).
# Fails on any mismatch.
# Usage: scripts/fmpy-check.sh
set -euo pipefail
cd "$(dirname "$0")/.."

python=$(scripts/fmpy-venv.sh)
dir=target/fmpy-check
rm -rf "$dir"
cargo run --locked --quiet --example build_demo_fmus -- "$dir" >/dev/null
"$python" scripts/fmpy-check.py "$dir"
cargo build --locked --quiet
"$python" scripts/fmpy-crosscheck.py target/debug/fmu-gateway "$dir"
