#!/usr/bin/env bash
# Runs the whole test suite, installing what it needs first:
#   - Debian's chromium and chromedriver for the browser tests (apt, when missing),
#   - the front-end packages the binary embeds (npm ci, from package-lock.json),
#   - rustfmt and clippy for the style checks,
#   - for the FMPy cross-check of the demo FMUs (scripts/fmpy-check.sh) and the check of our
#     MATLAB and Parquet result files with scipy and pyarrow (scripts/formats-check.sh): pinned
#     FMPy, scipy and pyarrow in a venv under target/,
#   - for the API contract checks (scripts/api-conformance.sh): python3-venv and jq (apt, when
#     missing), then pinned Python tools in a venv under target/,
#   - for the second pass of the suites that touch the database (api, browser) on PostgreSQL:
#     Debian's postgresql (apt, when missing), as a throwaway cluster on a local socket
#     (scripts/postgres.sh), one fresh database per server a test starts.
# Usage: scripts/test.sh [extra cargo test arguments]
set -euo pipefail
cd "$(dirname "$0")/.."

as_root() { if [ "$(id -u)" = 0 ]; then "$@"; else sudo "$@"; fi; }

if ! command -v chromedriver >/dev/null || ! { [ -x /usr/lib/chromium/chromium ] || command -v chromium >/dev/null; }; then
  if command -v apt-get >/dev/null; then
    echo "== installing chromium and chromedriver (apt)"
    as_root apt-get update -qq
    DEBIAN_FRONTEND=noninteractive as_root apt-get install -y -qq chromium chromium-driver >/dev/null
  else
    echo "The browser tests need chromium and chromedriver on PATH; install them and re-run." >&2
    exit 1
  fi
fi

if [ ! -f node_modules/htmx.org/dist/htmx.min.js ] || [ package-lock.json -nt node_modules/.package-lock.json ]; then
  echo "== npm ci"
  npm ci --no-audit --no-fund
fi

rustup component add rustfmt clippy >/dev/null 2>&1 || true

# The pinned Python tools (FMPy, scipy and pyarrow; moto, which the api suite's S3 tests run)
# are mostly downloads: fetch them while clippy compiles, and wait for them before the tests.
mkdir -p target
echo "== preparing the pinned Python tools in the background (log: target/python-tools.log)"
( scripts/pinned-venv.sh fmpy && scripts/pinned-venv.sh moto ) >target/python-tools.log 2>&1 &
python_tools=$!

echo "== cargo fmt --check"
cargo fmt --all -- --check
echo "== cargo clippy"
cargo clippy --locked --all-targets -- -D warnings
if ! wait "$python_tools"; then
  cat target/python-tools.log >&2
  echo "preparing the pinned Python tools failed" >&2
  exit 1
fi
echo "== cargo test"
cargo test --locked "$@"
echo "== demo FMUs cross-checked with FMPy"
./scripts/fmpy-check.sh
echo "== MATLAB and Parquet result files read back with scipy and pyarrow"
./scripts/formats-check.sh
echo "== api conformance (generated Python client, examples/python/flow.py, schemathesis)"
./scripts/api-conformance.sh
echo "== the api and browser suites again, on PostgreSQL"
pg_dir=$(mktemp -d /tmp/fmu-gateway-pg.XXXXXX)
trap './scripts/postgres.sh stop "$pg_dir" >/dev/null 2>&1 || true; rm -rf "$pg_dir"' EXIT
admin_url=$(./scripts/postgres.sh start "$pg_dir")
FMU_GATEWAY_TEST_POSTGRES="$admin_url" cargo test --locked --test api --test browser "$@"
