#!/usr/bin/env bash
# test.sh: every test layer of demper, from a fresh Debian 12 machine, as root:
#   lint       the C++ / PostgreSQL boundary rule on src/pg (scripts/lint-boundary.py)
#   promtool   the Prometheus alert rules (check and unit tests) and the dashboard's queries
#   unit       GoogleTest units of src/core (no server)
#   sanitize   the same units built with ASan + UBSan
#   fuzz       libFuzzer targets (offers and price rule; the cabinet's parsers; the schedule state),
#              bounded time each
#   mock       test/mock/smoke_test.sh: the mock marketplace end to end
#   regress    pg_regress: the SQL API on a temporary instance with demper preloaded
#   tap        TAP (PostgreSQL::Test::Cluster): the worker against the mock marketplace
#   sanitize-ext  demper.so built with ASan + UBSan, preloaded by real servers for TAP tests, and
#              LeakSanitizer over N and 4N checks of the worker (scripts/sanitize-ext.sh)
#   isolation  the worker's claim and apply statements under concurrency
#   package    the Debian package built and installed (scripts/build-deb.sh --install; its install
#              check runs pg_regress on the packaged files), a fresh cluster on the installed files
#              reprices against the mock, then the package is purged and the source build's files
#              put back (scripts/test-package.sh). Last: it replaces files the other layers load.
# It ends with one line "N passed, N failed" over all layers, and exits non-zero on any failure.
set -uo pipefail
root=$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)
bash "$root/scripts/setup.sh" || { echo "0 passed, 1 failed"; exit 1; }
export PATH=/usr/lib/postgresql/15/bin:$PATH

passed=0
failed=0
layer_report() {  # layer passed failed
  echo "== $1: $2 passed, $3 failed"
  passed=$((passed + $2))
  failed=$((failed + $3))
}

# gtest_counts prints "passed failed" from a GoogleTest log.
gtest_counts() {
  local log=$1 p f
  p=$(grep -Eo '^\[  PASSED  \] [0-9]+' "$log" | grep -Eo '[0-9]+$' || true)
  f=$(grep -Eo '^\[  FAILED  \] [0-9]+ tests?, listed below' "$log" | grep -Eo '[0-9]+' | head -1 || true)
  if [ -z "$p" ] && [ -z "$f" ]; then f=1; fi  # the binary crashed or did not run
  echo "${p:-0} ${f:-0}"
}

logs=$(mktemp -d /tmp/demper-logs.XXXXXX)

echo "== lint: the C++ / PostgreSQL boundary rule (scripts/lint-boundary.py)"
bash "$root/test/lint/run.sh" >"$logs/lint.log" 2>&1
read -r p f < <(sed -nE 's/^([0-9]+) passed, ([0-9]+) failed$/\1 \2/p' "$logs/lint.log" | tail -1)
grep -E '^not ok' -A20 "$logs/lint.log" | head -30
layer_report lint "${p:-0}" "${f:-1}"

echo "== promtool: alert rules, their unit tests, the dashboard's queries (test/prometheus/run.sh)"
bash "$root/test/prometheus/run.sh" >"$logs/promtool.log" 2>&1
read -r p f < <(sed -nE 's/^([0-9]+) passed, ([0-9]+) failed$/\1 \2/p' "$logs/promtool.log" | tail -1)
if [ "${f:-1}" -eq 0 ]; then grep -E '^ok' "$logs/promtool.log"; else cat "$logs/promtool.log"; fi
layer_report promtool "${p:-0}" "${f:-1}"

echo "== unit tests"
"$root/build/demper_unit_tests" --gtest_color=no >"$logs/unit.log" 2>&1
rc=$?
read -r p f < <(gtest_counts "$logs/unit.log")
[ $rc -ne 0 ] && [ "$f" -eq 0 ] && f=1
grep -E '^\[  FAILED  \]|: Failure$' "$logs/unit.log" | head -20
layer_report unit "$p" "$f"

echo "== unit tests under AddressSanitizer and UndefinedBehaviorSanitizer"
if cmake -S "$root" -B "$root/build-sanitize" -DDEMPER_SANITIZE=ON -DDEMPER_BUILD_EXTENSION=OFF \
      -DCMAKE_BUILD_TYPE=Debug >"$logs/sanitize-build.log" 2>&1 &&
   cmake --build "$root/build-sanitize" -j"$(nproc)" --target demper_unit_tests >>"$logs/sanitize-build.log" 2>&1; then
  ASAN_OPTIONS=detect_leaks=1 UBSAN_OPTIONS=print_stacktrace=1:halt_on_error=1 \
    "$root/build-sanitize/demper_unit_tests" --gtest_color=no \
    --gtest_filter='-*Property*' >"$logs/sanitize.log" 2>&1
  rc=$?
  read -r p f < <(gtest_counts "$logs/sanitize.log")
  [ $rc -ne 0 ] && [ "$f" -eq 0 ] && f=1
  grep -E '^\[  FAILED  \]|ERROR: AddressSanitizer|runtime error' "$logs/sanitize.log" | head -20
else
  tail -20 "$logs/sanitize-build.log"; p=0; f=1
fi
layer_report sanitize "$p" "$f"

echo "== fuzzing the parsers and the price rule (libFuzzer, bounded time per target)"
fuzz_seconds=${DEMPER_FUZZ_SECONDS:-30}
# fuzz_run TARGET CORPUS-DIRECTORY: runs one target from a copy of its seed corpus.
fuzz_run() {
  local target=$1 seeds=$2 corpus rc
  corpus=$(mktemp -d /tmp/demper-corpus.XXXXXX)
  cp "$seeds"/* "$corpus/"
  UBSAN_OPTIONS=halt_on_error=1:print_stacktrace=1 "$root/build-fuzz/$target" \
    -max_total_time="$fuzz_seconds" -rss_limit_mb=2048 -timeout=10 "$corpus" \
    >"$logs/$target.log" 2>&1
  rc=$?
  grep -E '^#[0-9]+.*DONE|^Done|ERROR|SUMMARY' "$logs/$target.log" | tail -3
  rm -rf "$corpus"
  if [ $rc -eq 0 ]; then
    layer_report "fuzz $target" 1 0
  else
    tail -30 "$logs/$target.log"; layer_report "fuzz $target" 0 1
  fi
}
if CXX=clang++ cmake -S "$root" -B "$root/build-fuzz" -DDEMPER_FUZZ=ON -DDEMPER_BUILD_EXTENSION=OFF \
      -DCMAKE_BUILD_TYPE=RelWithDebInfo >"$logs/fuzz-build.log" 2>&1 &&
   cmake --build "$root/build-fuzz" -j"$(nproc)" --target fuzz_offers_rule fuzz_cabinet fuzz_schedule \
     >>"$logs/fuzz-build.log" 2>&1; then
  fuzz_run fuzz_offers_rule "$root/test/fuzz/corpus/offers"
  fuzz_run fuzz_cabinet "$root/test/fuzz/corpus/cabinet"
  fuzz_run fuzz_schedule "$root/test/fuzz/corpus/schedule"
else
  tail -20 "$logs/fuzz-build.log"; layer_report fuzz 0 1
fi

echo "== the mock marketplace end to end (test/mock/smoke_test.sh)"
bash "$root/test/mock/smoke_test.sh" "$root/build/demper_mock" >"$logs/mock.log" 2>&1
rc=$?
p=$(grep -c '^ok - ' "$logs/mock.log"); f=$(grep -c '^FAIL: ' "$logs/mock.log")
[ $rc -ne 0 ] && [ "$f" -eq 0 ] && f=1
[ $rc -ne 0 ] && tail -20 "$logs/mock.log"
layer_report mock "$p" "$f"

# The server refuses to run as root: the server-side layers run as postgres in a copy of the
# tree that postgres owns.
work=$(mktemp -d /tmp/demper-tests.XXXXXX)
cp -a "$root/." "$work/"
rm -rf "$work/build-sanitize" "$work/build-fuzz" "$work/.git"
chown -R postgres: "$work" "$logs"
as_postgres() { runuser -u postgres -- env PATH="$PATH" "$@"; }

echo "== pg_regress"
as_postgres make -C "$work" -s installcheck PG_CONFIG=/usr/lib/postgresql/15/bin/pg_config \
  >"$logs/regress.log" 2>&1
rc=$?
cat "$logs/regress.log" | grep -E '^(ok|not ok)|tests? (passed|failed)' || true
p=$(grep -Ec '^ok ' "$logs/regress.log"); f=$(grep -Ec '^not ok ' "$logs/regress.log")
if [ "$p" -eq 0 ] && [ "$f" -eq 0 ]; then
  p=$(grep -Eo '[0-9]+ tests? passed' "$logs/regress.log" | grep -Eo '^[0-9]+' || echo 0)
  f=$(grep -Eo '[0-9]+ of [0-9]+ tests failed' "$logs/regress.log" | grep -Eo '^[0-9]+' || echo 0)
fi
[ $rc -ne 0 ] && [ "$f" -eq 0 ] && f=1
[ "$f" -ne 0 ] && [ -f "$work/regression.diffs" ] && head -60 "$work/regression.diffs"
layer_report regress "$p" "$f"

echo "== TAP"
# The TAP files run DEMPER_TAP_JOBS at a time (default 2): each has its own clusters, ports and
# mock, and most of their time is spent waiting on a worker or a fault, not on the CPU. Results
# are reported in file order.
tap_jobs=${DEMPER_TAP_JOBS:-2}
tap_one() {
  local t=$1 name
  name=$(basename "$t" .pl)
  as_postgres env PERL5LIB="/usr/lib/postgresql/15/lib/pgxs/src/test/perl:$work/test/t" \
    TESTDIR="$work/test" DEMPER_MOCK="$work/build/demper_mock" PG_REGRESS=/usr/lib/postgresql/15/lib/pgxs/src/test/regress/pg_regress \
    prove -v "$t" >"$logs/tap-$name.log" 2>&1
  echo $? >"$logs/tap-$name.rc"
}
running=0
for t in "$work"/test/t/*.pl; do
  [ -e "$t" ] || continue
  if [ "$running" -ge "$tap_jobs" ]; then wait -n; running=$((running - 1)); fi
  tap_one "$t" &
  running=$((running + 1))
done
wait
tap_p=0; tap_f=0
for t in "$work"/test/t/*.pl; do
  [ -e "$t" ] || continue
  name=$(basename "$t" .pl)
  rc=$(cat "$logs/tap-$name.rc" 2>/dev/null || echo 1)
  p=$(grep -Ec '^ok ' "$logs/tap-$name.log"); f=$(grep -Ec '^not ok ' "$logs/tap-$name.log")
  [ "$rc" -ne 0 ] && [ "$f" -eq 0 ] && f=1
  echo "   $name: $p passed, $f failed"
  if [ "$rc" -ne 0 ]; then
    grep -E '^not ok|^#' "$logs/tap-$name.log" | head -30
    tail -n 40 "$work"/test/tmp_check/log/*"$name"*.log 2>/dev/null | grep -Ei 'error|fatal|warning|panic' | head -20
  fi
  tap_p=$((tap_p + p)); tap_f=$((tap_f + f))
done
layer_report tap "$tap_p" "$tap_f"

echo "== the extension under ASan and UBSan (TAP on servers that load the sanitized demper.so; LeakSanitizer over the worker)"
bash "$root/scripts/sanitize-ext.sh" >"$logs/sanitize-ext.log" 2>&1
rc=$?
grep -E '^   [0-9]{3}_|^     # |^sanitize-ext took' "$logs/sanitize-ext.log"
read -r p f < <(sed -nE 's/^([0-9]+) passed, ([0-9]+) failed$/\1 \2/p' "$logs/sanitize-ext.log" | tail -1)
p=${p:-0}; f=${f:-0}
[ $rc -ne 0 ] && [ "$f" -eq 0 ] && f=1
[ $rc -ne 0 ] && grep -E '^not ok|^#|failed' "$logs/sanitize-ext.log" | head -40
layer_report sanitize-ext "$p" "$f"

echo "== isolation (the worker's claim and apply statements under concurrency)"
if bash "$root/scripts/isolation.sh" >"$logs/isolation.log" 2>&1; then
  grep -E '^(ok|not ok)|tests? passed|failed' "$logs/isolation.log" | tail -5
  layer_report isolation 1 0
else
  tail -40 "$logs/isolation.log"; layer_report isolation 0 1
fi

echo "== the Debian package (scripts/test-package.sh: build, install check, apt-get install, a worker on the installed files)"
bash "$root/scripts/test-package.sh" >"$logs/package.log" 2>&1
rc=$?
grep -E '^(ok|not ok)|took' "$logs/package.log"
read -r p f < <(sed -nE 's/^([0-9]+) passed, ([0-9]+) failed$/\1 \2/p' "$logs/package.log" | tail -1)
p=${p:-0}; f=${f:-0}
[ $rc -ne 0 ] && [ "$f" -eq 0 ] && f=1
[ $rc -ne 0 ] && tail -40 "$logs/package.log"
layer_report package "$p" "$f"

echo "== reliability report (docs/RELIABILITY.md, from the TAP logs)"
bash "$root/scripts/reliability.sh" "$logs" -o "$root/docs/RELIABILITY.md" || echo "   (report not written)"

echo "logs: $logs"
echo "$passed passed, $failed failed"
[ "$failed" -eq 0 ]
