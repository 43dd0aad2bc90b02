#!/usr/bin/env bash
# Robertson's stiff kinetics in Model Exchange to t = 1e8 with 500 output points (every 2e5),
# relative tolerance 1e-6, on the same .fmu file (the built-in library's, FMI 3 and FMI 2):
# our CLI (solvers auto and bdf; each run a sandboxed worker) against FMPy 0.3.32 with CVODE,
# in one go. Prints each one's wall time and peak resident memory (/usr/bin/time: the largest
# of the process and the children it waited for, so our worker is included), and y1(1e8).
#
# Usage: scripts/bench-stiff.sh [repetitions, default 5]
set -euo pipefail
root=$(cd "$(dirname "$0")/.." && pwd)
cd "$root"
reps=${1:-5}
[ -x /usr/bin/time ] || { echo "needs /usr/bin/time (apt-get install time)" >&2; exit 1; }
python=$(scripts/fmpy-venv.sh)
cargo build --release --quiet --bin fmu-gateway
exe=$root/target/release/fmu-gateway
# The build writes the library's FMUs next to its generated code; take the newest.
demo=$(ls -dt target/release/build/fmu-gateway-*/out/demo-fmus | head -n 1)
work=$(mktemp -d)
trap 'rm -rf "$work"' EXIT

cat > "$work/fmpy_run.py" <<'PY'
import sys, time
from fmpy import simulate_fmu
started = time.perf_counter()
result = simulate_fmu(sys.argv[1], fmi_type='ModelExchange', solver='CVode', stop_time=1e8,
                      output_interval=2e5, relative_tolerance=1e-6)
took = time.perf_counter() - started
print(f"{len(result)} rows, y1(1e8) = {result[-1][1]:.6e}; simulate_fmu alone {took:.3f} s")
PY

# Runs "$@" $reps times; prints the median wall time of the whole process (for FMPy this
# includes starting Python, which its own line separates out), the largest peak RSS and the
# last line of the command's output.
measure() {
  local label=$1; shift
  local times=() peak=0 line
  for _ in $(seq "$reps"); do
    /usr/bin/time -f '%e %M' -o "$work/time" "$@" > "$work/out" 2> "$work/err" \
      || { echo "$label failed:" >&2; cat "$work/err" >&2; exit 1; }
    read -r wall kib < "$work/time"
    times+=("$wall")
    [ "$kib" -gt "$peak" ] && peak=$kib
  done
  line=$(tail -n 1 "$work/out")
  median=$(printf '%s\n' "${times[@]}" | sort -n | sed -n "$(( (reps + 1) / 2 ))p")
  printf '%-44s %6.2f s %7.1f MB   %s\n' "$label" "$median" "$(echo "$peak / 1024" | bc -l)" "$line"
}

echo "Robertson ME, t = 0 … 1e8, 501 output points, rtol 1e-6; median of $reps runs, peak RSS"
for fmu in Robertson Robertson-fmi2; do
  file=$work/$fmu.fmu
  cp "$demo/$fmu.fmu" "$file"
  for solver in auto bdf; do
    measure "$fmu: fmu-gateway --solver $solver" \
      "$exe" fmu simulate "$file" --interface me --solver "$solver" --stop-time 1e8 \
      --output-interval 2e5 --tolerance 1e-6
  done
  measure "$fmu: FMPy CVode" "$python" "$work/fmpy_run.py" "$file"
done
