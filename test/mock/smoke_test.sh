#!/usr/bin/env bash
# smoke_test.sh: checks the mock marketplace end to end with curl and python3, the way tests use it.
# Usage: test/mock/smoke_test.sh [path/to/demper_mock]   (default: build/demper_mock)
# Exits non-zero at the first failed check. Takes about 10 s (it waits out short bans on purpose).
set -euo pipefail

mock=${1:-$(dirname "$0")/../../build/demper_mock}
work=$(mktemp -d)
mock_pid=
cleanup() {
  if [ -n "$mock_pid" ]; then kill "$mock_pid" 2>/dev/null || true; wait "$mock_pid" 2>/dev/null || true; fi
  rm -rf "$work"
}
trap cleanup EXIT

fail() { echo "FAIL: $*" >&2; exit 1; }
expect() {  # expect NAME ACTUAL WANTED
  [ "$2" = "$3" ] || fail "$1: got '$2', wanted '$3'"
  echo "ok - $1"
}

printf '# code\tmerchant\tname\tprice\tduration\n777\tM2\tShop Two\t300\n777\tM1\tShop One\t300\tTODAY\n777\tM3\tShop Three\t100\n' \
  >"$work/books.tsv"
"$mock" --listen 127.0.0.1:0 --listen 127.0.0.1:0 --port-file "$work/ports" --books "$work/books.tsv" \
  --synthetic 1000 --log "$work/requests.log" --own-merchant OWN 2>"$work/mock.err" &
mock_pid=$!
for _ in $(seq 100); do [ -s "$work/ports" ] && break; sleep 0.05; done
port=$(sed -n 1p "$work/ports")
proxy=$(sed -n 2p "$work/ports")
base=http://127.0.0.1:$port
offers=$base/yml/offer-view/offers

status() { curl -s -o /dev/null -w '%{http_code}' "$@"; }
json() { python3 -c "import json,sys; d=json.load(sys.stdin); print($1)"; }
control() { curl -s -X "$1" "$base/_mock/$2" -d "${3:-}" >/dev/null; }

# Offers: order, paging, unknown products, validation.
expect "book order" "$(curl -s -X POST "$offers/777" -d '{}' | json '[o["merchantId"] for o in d["offers"]]')" \
  "['M3', 'M1', 'M2']"
expect "page slice" "$(curl -s -X POST "$offers/777" -d '{"limit":2,"page":1}' | json 'd["offers"][0]["merchantId"], d["total"]')" \
  "M2 3"
expect "tsv duration" "$(curl -s -X POST "$offers/777" -d '{}' | json 'd["offers"][1]["deliveryDuration"]')" "TODAY"
expect "unknown product" "$(curl -s -X POST "$offers/5000" -d '{}' | json 'd["offers"], d["total"], d["offersCount"]')" \
  "[] 0 0"
expect "synthetic matches /_mock/offers" "$(curl -s -X POST "$offers/42" -d '{}' | json 'd["offers"]')" \
  "$(curl -s "$base/_mock/offers/42" | json 'd["offers"]')"
expect "own merchant listed" "$(curl -s -X POST "$offers/42" -d '{}' | json '"OWN" in [o["merchantId"] for o in d["offers"]]')" "True"
expect "GET is 405" "$(status "$offers/777")" "405"
expect "limit 100 is 400" "$(status -X POST "$offers/777" -d '{"limit":100}')" "400"
expect "invalid JSON is 400" "$(status -X POST "$offers/777" -d '{"limit":')" "400"
control PUT offers/900 '{"offers":[{"merchantId":"B","price":20},{"merchantId":"A","price":20}]}'
expect "PUT book, ties by merchantId" "$(curl -s -X POST "$offers/900" -d '{}' | json '[o["merchantId"] for o in d["offers"]]')" \
  "['A', 'B']"

# Proxy: absolute-form targets on another port are served as the marketplace, on that egress.
expect "through proxy port" "$(status -x "http://127.0.0.1:$proxy" -X POST "$offers/777" -d '{}')" "200"
expect "CONNECT is 405" "$(curl -s -o /dev/null -w '%{http_connect}' -x "http://127.0.0.1:$proxy" "https://127.0.0.1:$port/" || true)" "405"

# Faults.
control POST fault '{"product":"777","mode":"status","status":503,"retry_after":"2","count":2}'
expect "status fault 1" "$(status -X POST "$offers/777" -d '{}')" "503"
expect "retry-after" "$(curl -s -D - -o /dev/null -X POST "$offers/777" -d '{}' | tr -d '\r' | grep Retry-After)" "Retry-After: 2"
expect "count exhausted" "$(status -X POST "$offers/777" -d '{}')" "200"
control POST fault '{"mode":"html"}'
control POST fault '{"product":"777","mode":"latency","latency_ms":300}'
expect "global fault" "$(curl -s -o /dev/null -w '%{content_type}' -X POST "$offers/778" -d '{}')" "text/html; charset=utf-8"
elapsed=$(curl -s -o /dev/null -w '%{time_total}' -X POST "$offers/777" -d '{}')
expect "product fault wins, latency" "$(python3 -c "print(0.28 < $elapsed < 1.0)")" "True"
control POST fault '{"mode":"none"}'
control POST fault '{"product":"777","mode":"truncated"}'
expect "truncated is not JSON" "$(curl -s -X POST "$offers/777" -d '{}' | python3 -c 'import json,sys
try: json.load(sys.stdin); print("json")
except ValueError: print("broken")')" "broken"
control POST fault '{"product":"777","mode":"huge","size_bytes":200000}'
expect "huge size" "$(curl -s -X POST "$offers/777" -d '{}' | wc -c | tr -d ' ')" "200000"
control POST fault '{"product":"777","mode":"stall_after_headers"}'
expect "stall times out" "$(curl -s -o /dev/null -m 1 -w '%{http_code}' -X POST "$offers/777" -d '{}' || true)" "200"
control POST fault '{"product":"777","mode":"slow_body","bytes_per_sec":1000}'
elapsed=$(curl -s -o /dev/null -w '%{time_total}' -X POST "$offers/777" -d '{}')
expect "slow body takes time" "$(python3 -c "print(0.3 < $elapsed < 3)")" "True"
control POST fault '{"product":"777","mode":"redirect","location":"https://kaspi.kz/x"}'
expect "redirect" "$(curl -s -o /dev/null -w '%{http_code} %{redirect_url}' -X POST "$offers/777" -d '{}')" "302 https://kaspi.kz/x"
control POST fault '{"product":"777","mode":"body","body":"{\"offers\":[{\"price\":\"1\"}]}"}'
expect "exact body" "$(curl -s -X POST "$offers/777" -d '{}')" '{"offers":[{"price":"1"}]}'
control POST fault '{"product":"777","mode":"garbage"}'
expect "garbage is not UTF-8" "$(curl -s -X POST "$offers/777" -d '{}' | python3 -c 'import sys
try: sys.stdin.buffer.read().decode("utf-8"); print("utf8")
except UnicodeDecodeError: print("invalid")')" "invalid"
expect "control never faulted" "$(status "$base/_mock/stats")" "200"
control POST reset

# Ban emulation per egress.
control POST ban '{"threshold":5,"window_ms":1000,"ban_ms":1500,"status":403}'
codes=$(for _ in $(seq 8); do status -X POST "$offers/1" -d '{}'; echo -n ' '; done)
expect "ban after threshold" "$codes" "200 200 200 200 200 403 403 403 "
expect "other egress not banned" "$(status -x "http://127.0.0.1:$proxy" -X POST "$offers/1" -d '{}')" "200"
sleep 1.6
expect "ban expires" "$(status -X POST "$offers/1" -d '{}')" "200"
stats=$(curl -s "$base/_mock/stats")
expect "stats" "$(echo "$stats" | json 'd["bans"], d["offer_requests"], d["by_status"], d["max_rps_window"]["'"$port"'"]')" \
  "1 10 {'200': 7, '403': 3} 8"
control POST reset

# Pushes.
push=$base/pricefeed/upload/merchant/process
body='{"merchantUid":"30012345","sku":"A-1","model":"X","price":151989,"cityPrices":[{"cityId":"750000000","value":151989}]}'
control PUT merchant/30012345 '{"session":"s","sid":"t"}'
control POST push_limits '{"push_limit_rps":2,"push_ban_ms":1000}'
expect "push accepted" "$(curl -s -X POST "$push" -H 'Cookie: mc-session=s; mc-sid=t' -d "$body" | json 'd["id"]')" "job-1"
expect "wrong session is 401" "$(status -X POST "$push" -H 'Cookie: mc-session=s; mc-sid=x' -d "$body")" "401"
expect "over the limit is 429" "$(status -X POST "$push" -H 'Cookie: mc-session=s; mc-sid=t' -d "$body")" "429"
sleep 1.1
control PUT merchant/30012345 '{"expired":true}'
expect "expired is 401" "$(status -X POST "$push" -H 'Cookie: mc-session=s; mc-sid=t' -d "$body")" "401"
expect "recorded pushes" "$(curl -s "$base/_mock/pushes" | json 'len(d["pushes"]), d["pushes"][0]["cityPrices"][0]["value"]')" \
  "1 151989"

# Robustness: malformed requests, oversized heads, a client leaving mid-response.
raw() { python3 - "$port" "$1" <<'EOF'
import re, socket, sys
s = socket.create_connection(("127.0.0.1", int(sys.argv[1])))
s.sendall(sys.argv[2].encode().decode("unicode_escape").encode("latin1"))
s.settimeout(2)
data = b""
while True:
    chunk = s.recv(65536)
    if not chunk:
        break
    data += chunk
print(" ".join(re.findall(r"HTTP/1\.1 (\d{3})", data.decode("latin1"))))
EOF
}
expect "pipelined" "$(raw 'POST /yml/offer-view/offers/1 HTTP/1.1\r\nContent-Length: 2\r\n\r\n{}GET /yml/offer-view/offers/1 HTTP/1.1\r\n\r\nPOST /x HTTP/1.1\r\nConnection: close\r\n\r\n')" \
  "200 405 404"
expect "malformed is 400" "$(raw 'NOT HTTP\r\n\r\n')" "400"
expect "oversized head is 431" "$(raw "GET / HTTP/1.1\r\nX: $(head -c 40000 /dev/zero | tr '\0' a)\r\n\r\n")" "431"
control POST fault '{"mode":"slow_body","bytes_per_sec":10}'
curl -s -o /dev/null -m 0.3 -X POST "$offers/1" -d '{}' || true
control POST fault '{"mode":"none"}'
expect "alive after a client left" "$(status -X POST "$offers/1" -d '{}')" "200"

# The log: one line per marketplace request, none for control requests.
control POST log/flush
expect "log has no control lines" "$(grep -c '/_mock/' "$work/requests.log" || true)" "0"
expect "log columns" "$(awk -F'\t' 'NF != 6 { bad++ } END { print bad + 0 }' "$work/requests.log")" "0"
expect "log records ban starts" "$(grep -c $'\tBAN\tegress\t403\t1500' "$work/requests.log")" "1"

kill -TERM "$mock_pid"
wait "$mock_pid" && rc=0 || rc=$?
mock_pid=
expect "SIGTERM exits 0" "$rc" "0"
echo "all checks passed"
