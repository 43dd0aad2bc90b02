#!/usr/bin/env bash
# Reads our MATLAB (.mat, Dymola's layout) and Apache Parquet result files with scipy.io and
# pyarrow, the tools their users read them with (pinned in scripts/fmpy.requirements.txt, in
# the venv of scripts/fmpy-venv.sh): builds the demo FMUs into target/formats-check with
# examples/build_demo_fmus.rs, writes each format with our CLI (`fmu simulate -o r.<ext>`),
# and runs scripts/formats-check.py, which asserts every value equals the JSON result's.
# Usage: scripts/formats-check.sh
set -euo pipefail
cd "$(dirname "$0")/.."

python=$(scripts/fmpy-venv.sh)
dir=target/formats-check
rm -rf "$dir"
cargo run --locked --quiet --example build_demo_fmus -- "$dir" >/dev/null
cargo build --locked --quiet
"$python" scripts/formats-check.py target/debug/fmu-gateway "$dir"
