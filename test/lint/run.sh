#!/usr/bin/env bash
# run.sh: the boundary lint over src/pg must be clean, and over its fixture it must report exactly
# the lines marked "finding" (so a lint that stopped finding anything fails here).
# Prints "N passed, N failed".
set -uo pipefail
root=$(cd "$(dirname "${BASH_SOURCE[0]}")/../.." && pwd)
passed=0; failed=0
if out=$(python3 "$root/scripts/lint-boundary.py"); then
  echo "ok: src/pg keeps the boundary rule ($(echo "$out" | tail -1))"; passed=$((passed + 1))
else
  echo "not ok: src/pg breaks the boundary rule:"; echo "$out"; failed=$((failed + 1))
fi
fixture=$root/test/lint/boundary_violations.cpp
want=$(grep -n '// finding' "$fixture" | cut -d: -f1 | sort -n | tr '\n' ' ')
got=$(python3 "$root/scripts/lint-boundary.py" "$fixture" | sed -nE 's/^[^:]+:([0-9]+):.*/\1/p' | sort -nu | tr '\n' ' ')
if [ "$want" = "$got" ]; then
  echo "ok: the fixture's findings are reported, and nothing else (lines $got)"; passed=$((passed + 1))
else
  echo "not ok: fixture findings: want lines [$want], got [$got]"; failed=$((failed + 1))
fi
echo "$passed passed, $failed failed"
[ "$failed" -eq 0 ]
