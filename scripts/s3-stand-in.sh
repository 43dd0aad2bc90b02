#!/usr/bin/env bash
# The python of target/moto-venv (moto's server, pinned with its dependencies in
# scripts/moto.requirements.txt): the S3-compatible service the object-store tests
# (tests/api/object_store.rs) start on loopback with
# `<python> -m moto.server -H 127.0.0.1 -p <port>`.
#
# Usage: python=$(scripts/s3-stand-in.sh)
exec "$(dirname "$0")/pinned-venv.sh" moto
