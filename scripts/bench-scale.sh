#!/usr/bin/env bash
# Runs throughput on one machine, as docs/scaling.md reports it: `cargo bench --bench http`'s
# run scenarios (small synchronous runs, 1 and 8 at a time) on
#   1. SQLite and the data directory (the default),
#   2. PostgreSQL and the data directory,
#   3. PostgreSQL and an S3 stand-in (moto), the server alone,
#   4. the same with one `worker-node` beside the server,
#   5. the same with two worker nodes,
# every process with one worker (FMU_GATEWAY_WORKERS=1), so that what changes is who runs
# the runs, not how many workers there are. PostgreSQL is a throwaway cluster
# (scripts/postgres.sh), moto the pinned one (scripts/s3-stand-in.sh); both are stopped after.
# Usage: scripts/bench-scale.sh [seconds per scenario, default 5]
set -euo pipefail
cd "$(dirname "$0")/.."
seconds="${1:-5}"

pg_dir=$(mktemp -d /tmp/fmu-gateway-bench-pg.XXXXXX)
moto_pid=
cleanup() {
  [ -n "$moto_pid" ] && kill "$moto_pid" 2>/dev/null || true
  ./scripts/postgres.sh stop "$pg_dir" >/dev/null 2>&1 || true
  rm -rf "$pg_dir"
}
trap cleanup EXIT
admin_url=$(./scripts/postgres.sh start "$pg_dir")
python=$(./scripts/s3-stand-in.sh)
moto_port=$(python3 -c 'import socket; s=socket.socket(); s.bind(("127.0.0.1",0)); print(s.getsockname()[1])')
"$python" -m moto.server -H 127.0.0.1 -p "$moto_port" >/dev/null 2>&1 &
moto_pid=$!
for _ in $(seq 100); do curl -s "http://127.0.0.1:$moto_port/" >/dev/null && break; sleep 0.1; done
curl -s -X PUT "http://127.0.0.1:$moto_port/bench" >/dev/null

# A fresh database per scenario: its URL (called in a subshell, so named by the clock).
fresh_db() {
  local name="bench_$(date +%s%N)"
  psql "$admin_url" -qc "CREATE DATABASE $name" >/dev/null
  echo "${admin_url/\/postgres\?/\/$name?}"
}

# The bench's executable, built once (BENCH_HTTP: one already built, to skip the build).
bench="${BENCH_HTTP:-$(cargo bench --bench http --no-run 2>&1 | sed -n 's/.*Executable .*(\(.*\))/\1/p')}"
run() {
  echo "== $1"
  shift
  env BENCH_ONLY="POST /api/v1/runs" BENCH_SECONDS="$seconds" FMU_GATEWAY_WORKERS=1 \
    FMU_GATEWAY_PUBLIC_URL=http://127.0.0.1 "$@" "$bench" 2>/dev/null |
    grep -E '^(POST /api/v1/runs|server RSS)'
}
s3=(FMU_GATEWAY_OBJECT_STORE=s3://bench/runs AWS_ACCESS_KEY_ID=bench AWS_SECRET_ACCESS_KEY=bench
  AWS_REGION=us-east-1 AWS_ENDPOINT_URL="http://127.0.0.1:$moto_port" AWS_ALLOW_HTTP=true)
run "SQLite, data directory"
run "PostgreSQL, data directory" BENCH_DATABASE_URL="$(fresh_db)"
run "PostgreSQL, S3 stand-in, the server alone" BENCH_DATABASE_URL="$(fresh_db)" "${s3[@]}"
run "PostgreSQL, S3 stand-in, 1 worker node" BENCH_DATABASE_URL="$(fresh_db)" BENCH_WORKER_NODES=1 "${s3[@]}"
run "PostgreSQL, S3 stand-in, 2 worker nodes" BENCH_DATABASE_URL="$(fresh_db)" BENCH_WORKER_NODES=2 "${s3[@]}"
