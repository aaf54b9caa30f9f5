#!/usr/bin/env bash
# demo.sh: demper on a throw-away cluster, from a fresh Debian 12 machine, as root.
# Builds and installs demper, starts the mock marketplace (with two sellers' cabinets) and a
# temporary PostgreSQL cluster with demper preloaded, imports both catalogues from the cabinets,
# sets floors with one UPDATE, lets the worker reprice and publish for about a minute (competitors
# move meanwhile, some answers fail), prints progress, what changed and why, and ends with the
# cabinets' own view: every offer still on sale, at the price demper chose, in every city.
# Everything is removed at the end.
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
