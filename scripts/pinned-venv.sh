#!/usr/bin/env bash
# Makes sure target/NAME-venv holds exactly scripts/NAME.requirements.txt (tools from PyPI,
# pinned with their dependencies; never copied into the repo) and prints the path of its
# python. Installs python3-venv with apt when it is missing.
#
# Usage: python=$(scripts/pinned-venv.sh NAME)    e.g. fmpy, moto
set -euo pipefail
name="${1:?usage: scripts/pinned-venv.sh NAME}"
root=$(cd "$(dirname "$0")/.." && pwd)
venv=$root/target/$name-venv
requirements=$root/scripts/$name.requirements.txt

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
