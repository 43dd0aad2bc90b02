#!/bin/sh
# The container's entry point: the service never runs as root.
#
# A volume is mounted owned by root, so when started as root this makes the data directory
# the service user's, then drops to that user (no capabilities, no new privileges) before
# starting the binary. Started as any other user, it starts the binary as that user.
set -eu
user="${FMU_GATEWAY_USER:-fmu}"
data="${FMU_GATEWAY_DATA_DIR:-/data}"
if [ "$(id -u)" = 0 ]; then
  group="$(id -gn "$user")"
  mkdir -p "$data"
  # Only what is not already the service user's (a large volume is not walked on every start).
  find "$data" \( ! -user "$user" -o ! -group "$group" \) -exec chown -h "$user:$group" {} +
  exec setpriv --reuid="$user" --regid="$group" --init-groups --inh-caps=-all \
    --bounding-set=-all --no-new-privs -- fmu-gateway "$@"
fi
exec fmu-gateway "$@"
