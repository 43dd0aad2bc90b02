#!/usr/bin/env bash
# Makes sure target/fmpy-venv holds exactly scripts/fmpy.requirements.txt (FMPy and its
# dependencies, pinned) and prints the path of its python. FMPy is the reference our results
# are cross-checked and benchmarked against; it comes from PyPI, never into the repo.
#
# Usage: python=$(scripts/fmpy-venv.sh)
set -euo pipefail
root=$(cd "$(dirname "$0")/.." && pwd)
venv=$root/target/fmpy-venv
requirements=$root/scripts/fmpy.requirements.txt

python3 -c 'import ensurepip, venv' 2>/dev/null || {
  sudo=; [ "$(id -u)" = 0 ] || sudo=sudo
  $sudo apt-get update -qq >&2 && $sudo apt-get install -y -qq python3-venv >&2
}
wanted() { grep -v '^#' "$requirements" | grep -v '^$' | sort -f; }
installed() { "$venv/bin/python" -m pip freeze 2>/dev/null | sort -f; }
if ! [ -x "$venv/bin/python" ] || [ "$(installed)" != "$(wanted)" ]; then
  echo "creating $venv" >&2
  rm -rf "$venv"
  python3 -m venv "$venv"
  "$venv/bin/python" -m pip install -q --disable-pip-version-check -r "$requirements" >&2
fi
echo "$venv/bin/python"
