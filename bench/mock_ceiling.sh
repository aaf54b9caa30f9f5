#!/usr/bin/env bash
# mock_ceiling.sh: how many offers requests per second the mock marketplace serves on one core.
# The mock is pinned to CPU 1 and wrk to CPU 0, so the figure is the mock's own ceiling, not a share of
# the machine: tests that drive demper at high rates must stay well below it.
# Prints `mock_ceiling_rps=<number>`, and `mock_cpu_percent=<number>`: the share of its core the mock
# used. Well under 100 means wrk (or a busy machine), not the mock, set the figure.
# Environment: DEMPER_MOCK (binary), DURATION (default 10s), CONNECTIONS (default 128),
# MOCK_PRODUCTS (default 10000000).
set -euo pipefail

here=$(cd "$(dirname "$0")" && pwd)
root=$(dirname "$here")
mock=${DEMPER_MOCK:-}
if [ -z "$mock" ]; then
  for candidate in "$root/build/demper_mock" "$root/build-mock/demper_mock"; do
    if [ -x "$candidate" ]; then mock=$candidate; break; fi
  done
fi
if [ -z "$mock" ] || [ ! -x "$mock" ]; then
  echo "mock_ceiling: build demper_mock first (cmake --build build --target demper_mock) or set DEMPER_MOCK" >&2
  exit 1
fi
command -v wrk >/dev/null || { echo "mock_ceiling: wrk is not installed" >&2; exit 1; }

duration=${DURATION:-10s}
connections=${CONNECTIONS:-128}
export MOCK_PRODUCTS=${MOCK_PRODUCTS:-10000000}
work=$(mktemp -d)
mock_pid=
cleanup() {
  if [ -n "$mock_pid" ]; then kill "$mock_pid" 2>/dev/null || true; wait "$mock_pid" 2>/dev/null || true; fi
  rm -rf "$work"
}
trap cleanup EXIT

taskset -c 1 "$mock" --listen 127.0.0.1:0 --port-file "$work/ports" --synthetic "$MOCK_PRODUCTS" \
  2>"$work/mock.err" &
mock_pid=$!
for _ in $(seq 100); do [ -s "$work/ports" ] && break; sleep 0.05; done
[ -s "$work/ports" ] || { echo "mock_ceiling: the mock did not start:" >&2; cat "$work/mock.err" >&2; exit 1; }
port=$(head -n 1 "$work/ports")

# cpu_ticks prints the mock's user + system CPU time so far, in clock ticks.
cpu_ticks() { awk '{ print $14 + $15 }' "/proc/$mock_pid/stat"; }
ticks_before=$(cpu_ticks)
started=$(date +%s.%N)
taskset -c 0 wrk -t1 -c"$connections" -d"$duration" -s "$here/mock_offers.lua" "http://127.0.0.1:$port" \
  | tee "$work/wrk.out" >&2
ticks_after=$(cpu_ticks)
finished=$(date +%s.%N)
if grep -q 'Non-2xx' "$work/wrk.out"; then
  echo "mock_ceiling: the mock answered errors; the figure would be meaningless" >&2
  exit 1
fi
rps=$(awk '/^Requests\/sec:/ { printf "%d", $2 }' "$work/wrk.out")
[ -n "$rps" ] || { echo "mock_ceiling: no Requests/sec in wrk's output" >&2; exit 1; }
echo "mock_ceiling_rps=$rps"
awk -v t="$((ticks_after - ticks_before))" -v hz="$(getconf CLK_TCK)" -v a="$started" -v b="$finished" \
  'BEGIN { printf "mock_cpu_percent=%d\n", 100 * t / hz / (b - a) }'
