#!/usr/bin/env bash
# Makes sure target/moto-venv holds exactly scripts/moto.requirements.txt (moto's server, pinned
# with its dependencies) and prints the path of its python: the S3-compatible service the
# object-store tests (tests/api/object_store.rs) start on loopback with
# `<python> -m moto.server -H 127.0.0.1 -p <port>`. It comes from PyPI, never into the repo.
#
# Usage: python=$(scripts/s3-stand-in.sh)
set -euo pipefail
root=$(cd "$(dirname "$0")/.." && pwd)
venv=$root/target/moto-venv
requirements=$root/scripts/moto.requirements.txt

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
