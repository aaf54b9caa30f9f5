#!/usr/bin/env bash
# sanitize-ext.sh: demper.so built with AddressSanitizer and UndefinedBehaviorSanitizer, preloaded by
# real PostgreSQL 15 servers (shared_preload_libraries) for TAP tests, as root on Debian 12 (after
# scripts/setup.sh). Ends with "N passed, N failed"; exits non-zero on any failure.
#
#   test/sanitize/010_sanitized_server.pl  the servers load this demper.so (instrumented, from the
#                                          private tree below); a deliberate heap overflow and a
#                                          signed overflow in a sanitized library are caught
#   test/t/001_converge.pl                 convergence, an HTML answer
#   test/t/013_marketplace_outage.pl       marketplace down, slow, garbage and hostile JSON, SSRF
#   test/sanitize/020_worker_leaks.pl      N and 4N checks with 30 products answering badly all
#                                          along (HTML, garbage, truncated and hostile JSON, too
#                                          large, redirect, 503, stall) and pushes; LeakSanitizer
#                                          at the worker's exit: no leak that grows with the checks
#   test/sanitize/090_no_reports.pl        no ASan/UBSan report from any server process of the run
#
# Nothing is installed into the system's PostgreSQL: the servers come from a private copy of
# /usr/lib/postgresql/15 and /usr/share/postgresql/15 under the run directory (PostgreSQL finds
# its share and lib directories relative to its binaries), holding the sanitized demper.so. Its
# bin/postgres is a wrapper that preloads the ASan runtime (an instrumented library needs it
# loaded first) and test/sanitize/sanitizer_preload.c (without which postgres hangs before main;
# see that file). ASan and LeakSanitizer write their reports to files, one per process
# (log_path); UBSan writes to stderr, the server log. The tests read both.
#
# Environment: DEMPER_LEAK_CHECKS (N of the leak test, default 1000).
set -uo pipefail
root=$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)
started=$(date +%s)
run=$(mktemp -d /tmp/demper-sanitize-ext.XXXXXX)
build=$root/build-sanitize-ext
tests=(test/sanitize/010_sanitized_server.pl test/t/001_converge.pl test/t/013_marketplace_outage.pl
       test/sanitize/020_worker_leaks.pl test/sanitize/090_no_reports.pl)
give_up() { echo "$1 (logs: $run)"; echo "0 passed, 1 failed"; exit 1; }

echo "== building demper.so with ASan and UBSan ($build), and the mock marketplace without"
# Warnings are the normal builds' business: this one must not fail on a sanitizer-only warning.
# The mock is not what is tested, and a UBSan report of its own would go to a file nobody reads.
cmake -S "$root" -B "$build" -DDEMPER_SANITIZE=ON -DDEMPER_WERROR=OFF -DCMAKE_BUILD_TYPE=Debug \
    >"$run/build.log" 2>&1 &&
  cmake --build "$build" -j"$(nproc)" --target demper >>"$run/build.log" 2>&1 &&
  cmake -S "$root" -B "$build/mock" -DDEMPER_BUILD_EXTENSION=OFF -DDEMPER_WERROR=OFF \
    -DCMAKE_BUILD_TYPE=RelWithDebInfo >>"$run/build.log" 2>&1 &&
  cmake --build "$build/mock" -j"$(nproc)" --target demper_mock >>"$run/build.log" 2>&1 ||
  { tail -30 "$run/build.log"; give_up "build failed"; }

echo "== a private PostgreSQL tree with the sanitized demper.so ($run/pg)"
tree=$run/pg/usr/lib/postgresql/15
bindir=$tree/bin
pkglibdir=$tree/lib
extdir=$run/pg/usr/share/postgresql/15/extension
libasan=$(readlink -f "$(gcc -print-file-name=libasan.so)")
mkdir -p "$run/pg/usr/lib/postgresql" "$run/pg/usr/share/postgresql" &&
  cp -a /usr/lib/postgresql/15 "$run/pg/usr/lib/postgresql/" &&
  cp -a /usr/share/postgresql/15 "$run/pg/usr/share/postgresql/" &&
  rm -rf "$pkglibdir/demper.so" "$pkglibdir/bitcode/demper" "$pkglibdir/bitcode/demper.index.bc" "$extdir"/demper[-.]* &&
  install -m 755 "$build/demper.so" "$pkglibdir/demper.so" &&
  install -m 644 "$root/demper.control" "$root"/sql/demper--*.sql "$extdir/" &&
  gcc -shared -fPIC -O2 -Wall -Wextra -Werror -o "$pkglibdir/sanitizer_preload.so" \
    "$root/test/sanitize/sanitizer_preload.c" &&
  gcc -shared -fPIC -O0 -g -fno-omit-frame-pointer -fsanitize=address,undefined -fno-sanitize-recover=all \
    -I"$(/usr/lib/postgresql/15/bin/pg_config --includedir-server)" \
    -o "$pkglibdir/demper_sanitizer_canary.so" "$root/test/sanitize/sanitizer_canary.c" &&
  mv "$bindir/postgres" "$bindir/postgres.bin" ||
  give_up "could not make the private tree"
cat >"$bindir/postgres" <<EOF
#!/bin/bash
# Written by scripts/sanitize-ext.sh: postgres with the ASan runtime preloaded, as the sanitized
# demper.so of this tree needs; the line below tells test/sanitize/090_no_reports.pl it ran.
echo "sanitize-ext: \$0 runs with the ASan runtime preloaded" >&2
LD_PRELOAD="$libasan $pkglibdir/sanitizer_preload.so" exec -a "\$0" "$bindir/postgres.bin" "\$@"
EOF
chmod 755 "$bindir/postgres"
[[ $(nm -D "$pkglibdir/demper.so") == *__asan_report_load* ]] || give_up "$pkglibdir/demper.so is not instrumented"

# The tests run as postgres in a copy of test/ that postgres owns.
reports=$run/reports
mkdir -p "$reports" "$run/work" "$run/bin"
cp -a "$root/test" "$run/work/test"
cp "$build/mock/demper_mock" "$run/bin/"
chown -R postgres: "$run"
chmod 755 "$run"

echo "== TAP on servers that load the sanitized demper.so"
passed=0
failed=0
for t in "${tests[@]}"; do
  name=$(basename "$t" .pl)
  runuser -u postgres -- env PATH="$bindir:$PATH" \
    PERL5LIB="$pkglibdir/pgxs/src/test/perl:$run/work/test/t:$run/work/test/sanitize" \
    TESTDIR="$run/work/test" DEMPER_MOCK="$run/bin/demper_mock" \
    PG_REGRESS="$pkglibdir/pgxs/src/test/regress/pg_regress" \
    ASAN_OPTIONS="log_path=$reports/asan:detect_leaks=0:abort_on_error=1:halt_on_error=1" \
    UBSAN_OPTIONS="print_stacktrace=1:halt_on_error=1:abort_on_error=1" \
    DEMPER_SANITIZE_REPORTS="$reports" DEMPER_SANITIZE_PKGLIBDIR="$pkglibdir" DEMPER_SANITIZE_BINDIR="$bindir" \
    ${DEMPER_LEAK_CHECKS:+DEMPER_LEAK_CHECKS="$DEMPER_LEAK_CHECKS"} \
    prove -v "$run/work/$t" >"$run/$name.log" 2>&1
  rc=$?
  p=$(grep -Ec '^ok ' "$run/$name.log"); f=$(grep -Ec '^not ok ' "$run/$name.log")
  [ $rc -ne 0 ] && [ "$f" -eq 0 ] && f=1
  echo "   $name: $p passed, $f failed"
  # The numbers worth quoting: libraries mapped, canaries, leak figures, reports found.
  grep -E '^# +(worker [0-9]+ maps|canary|[0-9]+ checks|  [0-9]+ checks|[0-9]+ report files|020_worker_leaks took)' \
    "$run/$name.log" | sed 's/^/     /'
  if [ $rc -ne 0 ]; then
    grep -E '^not ok|^#' "$run/$name.log" | grep -v 'RELIABILITY|' | head -40
  fi
  passed=$((passed + p)); failed=$((failed + f))
done

[ "$failed" -eq 0 ] && rm -rf "$run/pg"    # the tree is 60 MB; the logs and reports stay
echo "sanitize-ext took $(( $(date +%s) - started )) s; logs and reports: $run"
echo "$passed passed, $failed failed"
[ "$failed" -eq 0 ]
