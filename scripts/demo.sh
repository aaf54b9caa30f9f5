#!/usr/bin/env bash
# demo.sh: demper on a throw-away cluster, from a fresh Debian 12 machine, as root.
# Builds and installs demper, starts the mock marketplace and a temporary PostgreSQL cluster with
# demper preloaded, loads 1,000 products in 2 stores, lets the worker reprice them for about a
# minute (competitors move meanwhile, some answers fail), prints progress, then what changed and
# why. Everything is removed at the end.
set -euo pipefail
root=$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)
bash "$root/scripts/setup.sh"
work=$(mktemp -d /tmp/demper-demo.XXXXXX)
cp "$root/build/demper_mock" "$root/scripts/demo-run.sh" "$work/"
chown -R postgres: "$work"
runuser -u postgres -- env PATH="/usr/lib/postgresql/15/bin:$PATH" \
  DEMO_SECONDS="${DEMO_SECONDS:-60}" bash "$work/demo-run.sh" "$work"
rc=$?
rm -rf "$work"
exit $rc
