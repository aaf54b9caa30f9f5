#!/usr/bin/env bash
# test-package.sh: the Debian package as an operator gets it, as root. It builds the package
# (scripts/build-deb.sh, whose install check runs the pg_regress suite against the package's
# files), installs it, and has a fresh cluster on the installed files create the extension and
# reprice a product against the mock marketplace (test/package/deb_install.pl).
#   bash scripts/test-package.sh
#       builds and installs with README's command (scripts/build-deb.sh --install: apt-get install
#       of the .deb) into the system's PostgreSQL 15, then purges the package and puts back the
#       files it replaced (those of `make install`) as they were. It changes files that other
#       tests load: scripts/test.sh runs it last, after every other layer.
#   DEMPER_DEB_ROOT=/tmp/pg-mine bash scripts/test-package.sh
#       unpacks the package with dpkg -x into that copy of the PostgreSQL tree instead (a tree laid
#       out as /, e.g. /tmp/pg-mine/usr/lib/postgresql/15), leaving the system's alone.
# Needs the mock marketplace of the CMake build (build/demper_mock; scripts/setup.sh builds it).
# Prints "N passed, N failed".
set -uo pipefail
root=$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)
target=${DEMPER_DEB_ROOT:-}
package=postgresql-15-demper
passed=0; failed=0
check() {  # ok|not-ok message
  if [ "$1" = ok ]; then echo "ok: $2"; passed=$((passed + 1)); else echo "not ok: $2"; failed=$((failed + 1)); fi
}
finish() { echo "$passed passed, $failed failed"; [ "$failed" -eq 0 ]; exit $?; }

if [ "$(id -u)" -ne 0 ]; then echo "test-package.sh: run as root" >&2; exit 1; fi
if [ ! -x "$root/build/demper_mock" ]; then
  check not-ok "the mock marketplace is built ($root/build/demper_mock; run scripts/setup.sh)"; finish
fi
work=$(mktemp -d /tmp/demper-package.XXXXXX)
chmod 755 "$work"
restore=:
trap 'eval "$restore"; rm -rf "$work"' EXIT

start=$(date +%s)
if [ -z "$target" ]; then
  if dpkg-query -W -f='${Status}' "$package" 2>/dev/null | grep -q "install ok installed"; then
    check not-ok "$package is installed already: this test installs and purges it, so it leaves a real install alone"
    finish
  fi
  # The files the package will replace (make install's), kept to be put back afterwards.
  replaced=$(cd / && ls usr/lib/postgresql/15/lib/demper.so usr/share/postgresql/15/extension/demper.control \
                          usr/share/postgresql/15/extension/demper--*.sql 2>/dev/null)
  if [ -n "$replaced" ]; then
    # shellcheck disable=SC2086 # one path per word
    tar -C / -cf "$work/replaced.tar" $replaced
    (cd / && sha256sum $replaced) >"$work/replaced.sha256"
  fi
  restore='dpkg --purge "$package" >/dev/null 2>&1; [ -f "$work/replaced.tar" ] && tar -C / -xf "$work/replaced.tar"'
  how="builds, passes its install check and installs (bash scripts/build-deb.sh --install)"
  build=(bash "$root/scripts/build-deb.sh" --install "$work/deb")
else
  how="builds and passes its install check (bash scripts/build-deb.sh)"
  build=(bash "$root/scripts/build-deb.sh" "$work/deb")
fi
if "${build[@]}" >"$work/build.log" 2>&1; then
  check ok "the package $how; $(grep -Eo 'All [0-9]+ tests passed' "$work/build.log")"
else
  tail -60 "$work/build.log"
  check not-ok "the package $how"; finish
fi
echo "   built in $(( $(date +%s) - start )) s"
deb=$(ls "$work"/deb/${package}_*.deb)

if [ -n "$target" ]; then
  if dpkg -x "$deb" "$target"; then check ok "dpkg -x into $target"; else check not-ok "dpkg -x into $target"; finish; fi
  pgroot=$target
else
  status=$(dpkg-query -W -f='${Status} ${Version}' "$package" 2>/dev/null)
  owner=$(dpkg -S /usr/lib/postgresql/15/lib/demper.so 2>/dev/null | cut -d: -f1)
  if [[ "$status" == "install ok installed "* ]] && [ "$owner" = "$package" ]; then
    check ok "dpkg has $package ${status##* } installed, and demper.so is its"
  else
    check not-ok "dpkg: $package is '$status', demper.so belongs to '$owner'"
  fi
  pgroot=/
fi

# The TAP test runs as postgres (the server refuses root) in a copy that postgres owns.
cp -a "$root/test" "$deb" "$root/build/demper_mock" "$work/"
chown -R postgres: "$work/test" "$work/demper_mock" "$work/$(basename "$deb")"
bin=${pgroot%/}/usr/lib/postgresql/15/bin
runuser -u postgres -- env PATH="$bin:$PATH" \
  PERL5LIB="/usr/lib/postgresql/15/lib/pgxs/src/test/perl:$work/test/t" TESTDIR="$work/test" \
  PG_REGRESS=/usr/lib/postgresql/15/lib/pgxs/src/test/regress/pg_regress DEMPER_MOCK="$work/demper_mock" \
  DEMPER_DEB="$work/$(basename "$deb")" DEMPER_DEB_ROOT="$pgroot" \
  prove -v "$work/test/package/deb_install.pl" >"$work/tap.log" 2>&1
rc=$?
grep -E '^(ok|not ok) ' "$work/tap.log"
p=$(grep -Ec '^ok ' "$work/tap.log"); f=$(grep -Ec '^not ok ' "$work/tap.log")
[ $rc -ne 0 ] && [ "$f" -eq 0 ] && f=1
[ $rc -ne 0 ] && grep -E '^#' "$work/tap.log" | head -30
passed=$((passed + p)); failed=$((failed + f))

if [ -z "$target" ]; then
  eval "$restore"; restore=:
  if dpkg-query -W -f='${Status}' "$package" 2>/dev/null | grep -q "install ok installed"; then
    check not-ok "dpkg --purge $package"
  elif [ -f "$work/replaced.sha256" ] && ! (cd / && sha256sum --quiet -c "$work/replaced.sha256"); then
    check not-ok "the files the package replaced are back as they were"
  else
    check ok "purged; the files it replaced are back as they were ($(echo "$replaced" | wc -w) files)"
  fi
fi
echo "   test-package took $(( $(date +%s) - start )) s"
finish
