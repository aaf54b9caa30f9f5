#!/usr/bin/env bash
# run.sh: demper's benchmark suite, one command (see bench/README.md).
#   bash bench/run.sh                  # full run, ~25-30 minutes plus benchmark 8's live runs
#   BENCH_QUICK=1 bash bench/run.sh    # smoke run, ~3-4 minutes
#   BENCH_QUICK=1 BENCH_SKIP_SETUP=1 BENCH_ONLY=workers bash bench/run.sh   # one benchmark
# As root on Debian 12: installs what is missing, builds and installs demper (scripts/setup.sh),
# then runs bench/bench.py as postgres on a throw-away cluster in a temp dir and writes
# bench/results/ (SUMMARY.md, CSV, PNG). BENCH_SKIP_SETUP=1 skips the build and install.
set -euo pipefail
here=$(cd "$(dirname "${BASH_SOURCE[0]}")" && pwd)
root=$(dirname "$here")
source "$root/scripts/lib/packages.sh"
if [ "$(id -u)" -ne 0 ]; then
  echo "bench/run.sh: run as root (it installs packages and the extension)" >&2
  exit 1
fi

packages=(python3 python3-aiohttp python3-asyncpg gnuplot-nox wrk linux-perf util-linux procps)
install_missing_packages "${packages[@]}"
if [ "${BENCH_SKIP_SETUP:-0}" != 1 ]; then
  bash "$root/scripts/setup.sh"
fi
# PG_CONFIG=<a private tree's pg_config> (scripts/dev-tree.sh) with BENCH_SKIP_SETUP=1 measures the
# demper installed in that tree, with its programs; by default the system's PostgreSQL 15.
pgbin=$("${PG_CONFIG:-/usr/lib/postgresql/15/bin/pg_config}" --bindir)
mock="$root/build/demper_mock"
[ -x "$mock" ] || { echo "bench/run.sh: $mock is missing (scripts/setup.sh builds it)" >&2; exit 1; }

work=$(mktemp -d /tmp/demper-bench.XXXXXX)
cleanup() {
  for d in "$work"/data "$work"/data_w* "$work"/data_soak; do   # data_w<N>: benchmark 7's clusters
    if [ -d "$d" ]; then
      runuser -u postgres -- "$pgbin/pg_ctl" -D "$d" -m immediate stop >/dev/null 2>&1 || true
    fi
  done
  if [ "${BENCH_KEEP:-0}" != 1 ]; then rm -rf "$work"; fi
}
trap cleanup EXIT
cp "$mock" "$work/demper_mock"
sim="$root/build/market_sim"   # benchmark 8's simulator (built with the mock)
[ -x "$sim" ] && cp "$sim" "$work/market_sim"
mkdir -p "$work/results"
chown -R postgres:postgres "$work"
chmod 700 "$work"

status=0
runuser -u postgres -- env PATH="$pgbin:/usr/bin:/bin:/usr/sbin:/sbin" BENCH_PGBIN="$pgbin" \
  HOME="$work" BENCH_QUICK="${BENCH_QUICK:-0}" BENCH_WAIT_MAX="${BENCH_WAIT_MAX:-900}" \
  $(env | grep -E '^BENCH_[A-Z_]+=' | grep -vE '^BENCH_(QUICK|WAIT_MAX)=' || true) \
  /usr/bin/python3 "$here/bench.py" --work "$work" --out "$work/results" --mock "$work/demper_mock" \
  --market-sim "$work/market_sim" || status=$?

dest="$here/results"
[ "${BENCH_QUICK:-0}" = 1 ] && dest="$here/results/quick"   # a smoke run never replaces a full run's figures
[ -n "${BENCH_ONLY:-}" ] && dest="$dest/partial"            # nor does a run of some benchmarks (BENCH_ONLY)
# The soak has a folder of its own: the reliability report cites it, and another partial run
# must not replace it.
[ "${BENCH_ONLY:-}" = soak ] && dest="${dest%/partial}/soak"
mkdir -p "$dest"
if [ -s "$work/results/SUMMARY.md" ]; then
  # The previous run's files go; FINDINGS.md (written by hand: what limits the figures) stays.
  find "$dest" -maxdepth 1 -type f ! -name FINDINGS.md -delete
  cp "$work/results/"* "$dest/"
  echo "== results: $dest/SUMMARY.md"
  sed -n '1,30p' "$dest/SUMMARY.md"
else
  echo "bench/run.sh: no results written (see the log above; BENCH_KEEP=1 keeps $work)" >&2
  [ -f "$work/server.log" ] && tail -20 "$work/server.log" >&2
fi
exit $status
