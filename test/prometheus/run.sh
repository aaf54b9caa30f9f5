#!/usr/bin/env bash
# run.sh: demper's Prometheus files checked with promtool (Debian package prometheus), no server:
#   - contrib/prometheus/demper-alerts.yml passes `promtool check rules`;
#   - its unit tests (demper-alerts.test.yml) pass `promtool test rules`, and every alert has a
#     test in which it fires;
#   - every PromQL expression of the Grafana dashboard (contrib/grafana-demper.json) parses.
# That the metrics these files name exist is test/t/018_prometheus.pl's part (it scrapes a real
# exporter). Prints "N passed, N failed".
set -uo pipefail
root=$(cd "$(dirname "${BASH_SOURCE[0]}")/../.." && pwd)
rules=$root/contrib/prometheus/demper-alerts.yml
tests=$root/test/prometheus/demper-alerts.test.yml
dashboard=$root/contrib/grafana-demper.json
passed=0; failed=0
report() {  # ok|not-ok message [output]
  if [ "$1" = ok ]; then echo "ok: $2"; passed=$((passed + 1))
  else echo "not ok: $2"; [ -n "${3:-}" ] && echo "$3" | sed 's/^/    /'; failed=$((failed + 1)); fi
}
if ! command -v promtool >/dev/null; then
  echo "not ok: promtool is not installed (Debian package prometheus; scripts/setup.sh installs it)"
  echo "0 passed, 1 failed"; exit 1
fi
work=$(mktemp -d /tmp/demper-promtool.XXXXXX)
trap 'rm -rf "$work"' EXIT

if out=$(promtool check rules "$rules" 2>&1); then report ok "promtool check rules: $(echo "$out" | grep -o '[0-9]* rules found')"
else report not-ok "promtool check rules $rules" "$out"; fi

# promtool resolves rule_files relative to the test file.
if out=$(cd "$(dirname "$tests")" && promtool test rules "$(basename "$tests")" 2>&1); then report ok "promtool test rules: $(basename "$tests")"
else report not-ok "promtool test rules $tests" "$out"; fi

untested=$(python3 - "$rules" "$tests" <<'EOF'
import sys, yaml
rules = yaml.safe_load(open(sys.argv[1]))
tests = yaml.safe_load(open(sys.argv[2]))
alerts = [r['alert'] for g in rules['groups'] for r in g['rules'] if 'alert' in r]
fired = {t['alertname'] for g in tests['tests'] for t in g.get('alert_rule_test', []) if t.get('exp_alerts')}
quiet = {t['alertname'] for g in tests['tests'] for t in g.get('alert_rule_test', []) if not t.get('exp_alerts')}
print(' '.join(a for a in alerts if a not in fired or a not in quiet))
EOF
)
if [ $? -eq 0 ] && [ -z "$untested" ]; then report ok "every alert has a test where it fires and one where it stays quiet"
else report not-ok "alerts without a firing and a quiet test: ${untested:-(the files did not parse)}"; fi

# The dashboard's expressions as recording rules: promtool parses each one.
python3 - "$dashboard" >"$work/dashboard-rules.yml" <<'EOF'
import json, sys
def exprs(node):
    if isinstance(node, dict):
        if isinstance(node.get('expr'), str):
            yield node['expr']
        for v in node.values():
            yield from exprs(v)
    elif isinstance(node, list):
        for v in node:
            yield from exprs(v)
found = list(exprs(json.load(open(sys.argv[1]))))
print('groups:\n  - name: dashboard\n    rules:')
for i, e in enumerate(found):
    print(f'      - record: dashboard_expr_{i}\n        expr: {json.dumps(e)}')
EOF
n=$(grep -c 'record:' "$work/dashboard-rules.yml")
if [ "$n" -gt 0 ] && out=$(promtool check rules "$work/dashboard-rules.yml" 2>&1); then report ok "the dashboard's $n expressions parse"
else report not-ok "the dashboard's expressions (${n} found) do not all parse" "${out:-}"; fi

echo "$passed passed, $failed failed"
[ "$failed" -eq 0 ]
