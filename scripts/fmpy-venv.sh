#!/usr/bin/env bash
# The python of target/fmpy-venv (FMPy and its dependencies, pinned in
# scripts/fmpy.requirements.txt): the reference our results are cross-checked and benchmarked
# against.
#
# Usage: python=$(scripts/fmpy-venv.sh)
exec "$(dirname "$0")/pinned-venv.sh" fmpy
