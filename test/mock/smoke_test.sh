#!/usr/bin/env bash
# smoke_test.sh: checks the mock marketplace end to end with curl and python3, the way tests use it.
# Usage: test/mock/smoke_test.sh [path/to/demper_mock]   (default: build/demper_mock)
# Exits non-zero at the first failed check. Takes 10 to 30 s (it waits out short bans on purpose).
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
cat >"$work/cabinet.jsonl" <<'END'
# a catalogue loaded at start (--cabinet): one offer per line
{"merchantUid":"30099999","sku":"555000111_100200300","masterSku":"555000111","masterTitle":"Пылесос Bosch BGS05A220","brand":"Bosch","cities":[{"id":"750000000","price":45990},{"id":"710000000","price":46990}]}

{"merchantUid":"30099999","sku":"555000222_100200300","masterSku":"555000222","masterTitle":"Утюг Philips","brand":"Philips","archived":true,"cities":[{"id":"750000000","price":15990,"pickupPoints":["30099999_PP1"]}]}
END
"$mock" --listen 127.0.0.1:0 --listen 127.0.0.1:0 --port-file "$work/ports" --books "$work/books.tsv" \
  --synthetic 1000 --log "$work/requests.log" --own-merchant OWN --cabinet "$work/cabinet.jsonl" \
  2>"$work/mock.err" &
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

# Push faults: a held push is taken when its hold ends (its time then, its arrival kept), unless
# its client left first (never taken); a push of a listing arriving while another one of it is
# held is an overlap; mode status refuses a push without taking it.
control POST reset
control PUT merchant/30012345 '{"session":"s","sid":"t","expired":false}'
control POST push_limits '{"push_limit_rps":1000}'
pushed() { curl -s -X POST "$push" -H 'Cookie: mc-session=s; mc-sid=t' -d "$1"; }
body_b=${body/A-1/B-1}
control POST fault '{"endpoint":"push","sku":"A-1","mode":"latency","latency_ms":2000,"count":1}'
expect "push fault listed" "$(curl -s "$base/_mock/faults" | json 'd["pushes"]["products"]["A-1"]["mode"]')" "latency"
start=$(date +%s.%N)
pushed "$body" >"$work/held.out" &
held_pid=$!
sleep 0.3
expect "a held push is not taken yet" "$(curl -s "$base/_mock/stats" | json 'd["pushes"], d["pushes_held"]')" "0 1"
expect "another listing is not held" "$(pushed "$body_b" | json 'd["id"]')" "job-1"
pushed "$body" >/dev/null   # the same listing while the first is held: taken at once, an overlap
wait "$held_pid"
elapsed=$(python3 -c "import time; print(time.time() - $start)")
expect "the held push is answered after its hold" "$(python3 -c "print($elapsed > 1.95)") $(json 'd["id"]' <"$work/held.out")" \
  "True job-3"
expect "pushes in the order taken, arrival kept" "$(curl -s "$base/_mock/pushes" | json '[p["sku"] for p in d["pushes"]], round(d["pushes"][2]["t"] - d["pushes"][2]["arrived"], 1) >= 1.9')" \
  "['B-1', 'A-1', 'A-1'] True"
expect "overlap counted" "$(curl -s "$base/_mock/stats" | json 'd["push_overlaps"], d["pushes_held"]')" "1 0"
control POST fault '{"endpoint":"push","mode":"latency","latency_ms":1500}'
curl -s -o /dev/null -m 0.3 -X POST "$push" -H 'Cookie: mc-session=s; mc-sid=t' -d "$body_b" || true
sleep 0.2
expect "a client that leaves abandons its held push" "$(curl -s "$base/_mock/stats" | json 'd["holds_abandoned"], d["pushes_held"]')" "1 0"
sleep 1.5
expect "an abandoned push is never taken" "$(curl -s "$base/_mock/pushes" | json 'len(d["pushes"])')" "3"
control POST fault '{"endpoint":"push","mode":"status","status":503}'
expect "status mode refuses a push" "$(status -X POST "$push" -H 'Cookie: mc-session=s; mc-sid=t' -d "$body")" "503"
control POST fault '{"endpoint":"push","mode":"none"}'
expect "nor takes it" "$(curl -s "$base/_mock/pushes" | json 'len(d["pushes"])')" "3"
expect "a push fault names a sku, not a product" "$(status -X POST "$base/_mock/fault" -d '{"endpoint":"push","product":"1","mode":"latency"}')" "400"
expect "push faults: latency, status or none" "$(status -X POST "$base/_mock/fault" -d '{"endpoint":"push","mode":"html"}')" "400"

# Held offers requests: one waits until it is released, however long that takes, and is answered
# from the book as it is then; keep_holding holds the product's next request too; a client that
# leaves abandons its held request; other products are never held.
offers_held() { curl -s "$base/_mock/stats" | json 'd["offers_held"]'; }
wait_held() {  # wait_held N: poll until N offers requests are held (at most 5 s)
  for _ in $(seq 100); do [ "$(offers_held)" = "$1" ] && return 0; sleep 0.05; done
  return 0
}
control PUT offers/901 '{"offers":[{"merchantId":"C1","price":500}]}'
control POST hold '{"product":"901"}'
curl -s -X POST "$offers/901" -d '{}' >"$work/held_offers.out" &
held_pid=$!
wait_held 1
expect "an offers request is held" "$(offers_held)" "1"
expect "another product is not held" "$(status -X POST "$offers/777" -d '{}')" "200"
sleep 0.5
expect "a hold has no timer" "$(offers_held) $(kill -0 "$held_pid" && echo waiting)" "1 waiting"
control PUT offers/901 '{"offers":[{"merchantId":"C1","price":450}]}'
expect "release, holding the next one" \
  "$(curl -s -X POST "$base/_mock/release" -d '{"product":"901","keep_holding":true}' | json 'd["released"]')" "1"
wait "$held_pid"
expect "answered from the book as it is at the release" "$(json 'd["offers"][0]["price"]' <"$work/held_offers.out")" "450"
curl -s -X POST "$offers/901" -d '{}' >"$work/held_offers.out" &
held_pid=$!
wait_held 1
expect "keep_holding holds the next request" "$(offers_held)" "1"
expect "release every product" "$(curl -s -X POST "$base/_mock/release" -d '{}' | json 'd["released"]')" "1"
wait "$held_pid"
expect "the next request is answered at its release" "$(json 'd["total"]' <"$work/held_offers.out") $(offers_held)" "1 0"
expect "released without keep_holding: no longer held" "$(status -X POST "$offers/901" -d '{}')" "200"
control POST hold '{"product":"901"}'
curl -s -o /dev/null -m 0.3 -X POST "$offers/901" -d '{}' || true
wait_held 0
expect "a client that leaves abandons its held offers request" "$(offers_held)" "0"
control POST reset
expect "a reset ends holds" "$(status -X POST "$offers/901" -d '{}')" "200"
expect "a hold names a product" "$(status -X POST "$base/_mock/hold" -d '{}')" "400"
expect "release: keep_holding is a bool" "$(status -X POST "$base/_mock/release" -d '{"keep_holding":1}')" "400"

# The seller's cabinet: offers seeded through the control API, the offer list and details, pushes
# as jobs, the off-sale rules, hand edits, faults, logins.
control POST reset
control POST push_limits '{"push_limit_rps":1000}'
m=30067228
login='Cookie: mc-session=sess-1; mc-sid=sid-1'
towels=133206576_392235481
phone=101234567_555000111
kettle=102000333_777888999
cat >"$work/seed.json" <<END
{"session":"sess-1","sid":"sid-1","offers":[
 {"sku":"$towels","masterSku":"133206576","masterTitle":"Влажные полотенца Sunlight 70 шт","brand":"Sunlight",
  "masterCategory":"Влажные салфетки",
  "shopLink":"https://kaspi.kz/shop/p/vlazhnye-polotentsa-sunlight-133206576/",
  "cities":[{"id":"511010000","price":1120,"pickupPoints":["${m}_PP2"]},
            {"id":"750000000","price":1190,"pickupPoints":["${m}_PP1"]}],
  "availabilities":[{"storeId":"${m}_PP1","available":"yes","stockCount":7},
                    {"storeId":"${m}_PP2","available":"yes","stockCount":4,"preOrder":0}]},
 {"sku":"$phone","masterSku":"101234567","masterTitle":"Смартфон Samsung Galaxy A15 8 ГБ/256 ГБ синий","brand":"Samsung",
  "cities":[{"id":"750000000","price":89990},{"id":"710000000","price":90990},{"id":"511010000","price":91990}],
  "availabilities":[{"storeId":"${m}_PP1","available":"yes","stockCount":2}]},
 {"sku":"$kettle","masterSku":"102000333","masterTitle":"Чайник электрический Tefal KO-417","brand":"Tefal","archived":true,
  "cities":[{"id":"750000000","price":15990}],"availabilities":[{"storeId":"${m}_PP1","available":"no"}]}]}
END
expect "seed a cabinet" "$(curl -s -X PUT "$base/_mock/cabinet/$m" --data-binary @"$work/seed.json")" '{"ok":true}'
control POST "cabinet/$m/synthetic" '{"count":4,"first_code":1,"archived_every":2}'
list() { curl -s -H "$login" "$base/bff/offer-view/list?m=$m&p=$1&l=$2&a=$3"; }
details() { curl -s -H "$login" "$base/bff/offer-view/details?m=$m&s=$1"; }
state() { curl -s "$base/_mock/cabinet/$m"; }
offer_state() {  # offer_state SKU PYTHON-EXPRESSION-OVER-o
  state | python3 -c "import json,sys; d=json.load(sys.stdin); o=[o for o in d['offers'] if o['sku']=='$1'][0]; print($2)"
}
read -r syn1 syn2 syn3 syn4 <<<"$(state | json '" ".join(o["sku"] for o in d["offers"][3:])')"
expect "synthetic skus" "$(echo "$syn1 $syn4" | grep -cE '^1_[0-9]{9} 4_[0-9]{9}$')" "1"
expect "list page 0 of live offers" "$(list 0 3 true | json 'd["total"], " ".join(o["sku"] for o in d["data"])')" \
  "4 $towels $phone $syn1"
expect "list page 1" "$(list 1 3 true | json 'd["total"], " ".join(o["sku"] for o in d["data"])')" "4 $syn3"
expect "an empty page ends the list" "$(list 2 3 true)" '{"total":4,"data":[]}'
expect "archived offers" "$(list 0 10 false | json 'd["total"], " ".join(o["sku"] for o in d["data"])')" \
  "3 $kettle $syn2 $syn4"
expect "Cyrillic title, brand, card id" \
  "$(list 0 1 true | json 'd["data"][0]["masterTitle"], d["data"][0]["brand"], d["data"][0]["masterSku"]')" \
  "Влажные полотенца Sunlight 70 шт Sunlight 133206576"
expect "shopLink ends in the card id" "$(list 1 1 true | json 'd["data"][0]["shopLink"]')" \
  "https://kaspi.kz/shop/p/samsung-101234567/"
expect "prices written as floats" "$(list 0 1 true | grep -o '"minPrice":1120.0')" '"minPrice":1120.0'
expect "availabilities per listing" "$(list 0 1 true | json '[(a["storeId"], a["available"], a["stockCount"], a["preOrder"]) for a in d["data"][0]["availabilities"]]')" \
  "[('${m}_PP1', 'yes', 7, 0), ('${m}_PP2', 'yes', 4, 0)]"
expect "archive reason listed" "$(list 0 1 false | json 'd["data"][0]["archiveReason"]')" "Снят с продажи продавцом"
expect "details" "$(details "$towels" | json 'd["masterSku"], [(c["id"], c["name"], c["price"], c["pickupPoints"]) for c in d["cityInfo"]]')" \
  "133206576 [('511010000', 'Шымкент', 1120, ['${m}_PP2']), ('750000000', 'Алматы', 1190, ['${m}_PP1'])]"
expect "a city without pickupPoints has every availability" "$(details "$phone" | json '[c["pickupPoints"] for c in d["cityInfo"]]')" \
  "[['${m}_PP1'], ['${m}_PP1'], ['${m}_PP1']]"
expect "details of an unknown sku" "$(status -H "$login" "$base/bff/offer-view/details?m=$m&s=nope")" "404"
expect "sku percent-decoded" "$(status -H "$login" "$base/bff/offer-view/details?m=$m&s=${towels/_/%5F}")" "200"
expect "list without cookies is 401" "$(status "$base/bff/offer-view/list?m=$m&p=0&l=3&a=true")" "401"
expect "list with a wrong session is 401" "$(status -H 'Cookie: mc-session=sess-1; mc-sid=x' "$base/bff/offer-view/list?m=$m")" "401"
control PUT "merchant/$m" '{"expired":true,"expired_status":403}'
expect "expired session is 403 when so set" "$(status -H "$login" "$base/bff/offer-view/details?m=$m&s=$towels")" "403"
control PUT "merchant/$m" '{"expired":false}'
expect "bad page size is 400" "$(status -H "$login" "$base/bff/offer-view/list?m=$m&l=0")" "400"
expect "POST to the list is 405" "$(status -X POST -H "$login" "$base/bff/offer-view/list?m=$m")" "405"
control PUT merchant/30099999 '{"session":"a","sid":"b"}'
expect "catalogue from a JSON Lines file" \
  "$(curl -s -H 'Cookie: mc-session=a; mc-sid=b' "$base/bff/offer-view/list?m=30099999&a=true" | json 'd["total"], d["data"][0]["masterTitle"], d["data"][0]["availabilities"]')" \
  "1 Пылесос Bosch BGS05A220 []"

# Faults on one page of the list (any mode of /_mock/fault), or on one sku's details.
control POST "cabinet/$m/fault" '{"endpoint":"list","page":1,"mode":"status","status":500,"count":1}'
expect "page 0 unharmed" "$(status -H "$login" "$base/bff/offer-view/list?m=$m&p=0&l=3&a=true")" "200"
expect "page 1 fails once" "$(status -H "$login" "$base/bff/offer-view/list?m=$m&p=1&l=3&a=true")" "500"
expect "page 1 again" "$(status -H "$login" "$base/bff/offer-view/list?m=$m&p=1&l=3&a=true")" "200"
control POST "cabinet/$m/fault" '{"endpoint":"list","page":0,"archived":true,"mode":"html"}'
expect "archived page 0 is an HTML page" "$(curl -s -o /dev/null -w '%{http_code} %{content_type}' -H "$login" "$base/bff/offer-view/list?m=$m&p=0&a=false")" \
  "200 text/html; charset=utf-8"
expect "live page 0 is not" "$(status -H "$login" "$base/bff/offer-view/list?m=$m&p=0&a=true")" "200"
control POST "cabinet/$m/fault" '{"endpoint":"list","page":0,"archived":true,"mode":"none"}'
control POST "cabinet/$m/fault" "{\"endpoint\":\"details\",\"sku\":\"$phone\",\"mode\":\"truncated\",\"count\":1}"
expect "details fault" "$(details "$phone" | python3 -c 'import json,sys
try: json.load(sys.stdin); print("json")
except ValueError: print("broken")')" "broken"

# Pushes become jobs; a job finishes after the configured delay (here held until finish_all).
process=$base/pricefeed/upload/merchant/process
batch=$base/pricefeed/upload/merchant/process/process/batch
job() { curl -s -H "$login" "$base/pricefeed/upload/merchant/job/$1"; }
item() {  # item SKU AVAILABILITIES CITY-PRICES
  echo "{\"merchantUid\":\"$m\",\"sku\":\"$1\",\"model\":\"x\",\"availabilities\":$2,\"cityPrices\":$3}"
}
both="[{\"available\":\"yes\",\"storeId\":\"${m}_PP1\"},{\"available\":\"yes\",\"storeId\":\"${m}_PP2\"}]"
one="[{\"available\":\"yes\",\"storeId\":\"${m}_PP1\"}]"
control POST jobs '{"delay_ms":600000}'
towels_push=$(item "$towels" "$both" '[{"cityId":"511010000","value":1100},{"cityId":"750000000","value":1180}]')
job1=$(curl -s -X POST -H "$login" "$process" -d "$towels_push" | json 'd["id"]')
expect "job pending" "$(job "$job1" | json 'd["status"], d["items"][0]["sku"], d["items"][0]["result"]')" "pending $towels None"
expect "old prices until the job finishes" "$(details "$towels" | json '[c["price"] for c in d["cityInfo"]]')" "[1120, 1190]"
control POST jobs '{"delay_ms":0,"finish_all":true}'
expect "job done" "$(job "$job1" | json 'd["status"], d["items"][0]["result"]')" "done updated"
expect "new prices in every city" "$(details "$towels" | json '[c["price"] for c in d["cityInfo"]]')" "[1100, 1180]"
expect "the list shows them" "$(list 0 1 true | json 'd["data"][0]["minPrice"], d["data"][0]["maxPrice"]')" "1100.0 1180.0"
expect "stock untouched" "$(offer_state "$towels" '[(a["storeId"], a["available"], a["stockCount"]) for a in o["availabilities"]]')" \
  "[('${m}_PP1', 'yes', 7), ('${m}_PP2', 'yes', 4)]"
expect "the pushed body is recorded" "$(state | python3 -c 'import json,sys; d=json.load(sys.stdin); print(d["pushes"][0]["body"] == json.loads(sys.argv[1]), d["pushes"][0]["endpoint"], d["pushes"][0]["job"])' "$towels_push")" \
  "True process $job1"
control POST jobs '{"delay_ms":200}'
job2=$(curl -s -X POST -H "$login" "$process" -d "$(item "$phone" '[]' '[{"cityId":"750000000","value":88990}]')" | json 'd["id"]')
for _ in $(seq 200); do [ "$(job "$job2" | json 'd["status"]')" != pending ] && break; sleep 0.05; done
expect "no availabilities: off sale" "$(job "$job2" | json 'd["status"], d["items"][0]["result"], d["message"]')" \
  "failed archived Не указано наличие в прайс листе"
control POST jobs '{"delay_ms":0}'
expect "archived in the cabinet" "$(offer_state "$phone" 'o["live"], o["archiveReason"], o["cities"][0]["price"]')" \
  "False Не указано наличие в прайс листе 89990"
expect "listed as archived" "$(list 0 10 false | json '"'"$phone"'" in [o["sku"] for o in d["data"]]')" "True"
job3=$(curl -s -X POST -H "$login" "$process" -d "$(item "$phone" "$one" '[{"cityId":"750000000","value":88990}]')" | json 'd["id"]')
expect "/process does not re-activate" "$(job "$job3" | json 'd["status"], d["items"][0]["result"]')" "failed not_live"
expect "still archived" "$(offer_state "$phone" 'o["live"]')" "False"
batch_answer=$(curl -s -X POST -H "$login" "$batch" -d "[$(item "$phone" "$one" '[{"cityId":"750000000","value":88990},{"cityId":"710000000","value":89990},{"cityId":"511010000","value":90990}]'),$(item "$syn1" "$one" '[{"cityId":"750000000","value":5000}]')]")
expect "batch answers one id per item" "$(echo "$batch_answer" | json 'len(d), all(set(j) == {"id"} for j in d)')" "2 True"
job4=$(echo "$batch_answer" | json 'd[0]["id"]')
expect "the batch endpoint re-activates" "$(job "$job4" | json 'd["status"]') $(offer_state "$phone" 'o["live"], o["archiveReason"], [c["price"] for c in o["cities"]]')" \
  "done True None [88990, 89990, 90990]"
expect "a pickup point left out becomes no" "$(offer_state "$syn1" '[a["available"] for a in o["availabilities"]]')" "['yes', 'no', 'no']"
job5=$(curl -s -X POST -H "$login" "$process" -d "$(item "$towels" "[{\"available\":\"yes\",\"storeId\":\"${m}_PP9\"}]" '[{"cityId":"750000000","value":1170}]')" | json 'd["id"]')
expect "an unknown pickup point: off sale" "$(job "$job5" | json 'd["items"][0]["result"]') $(offer_state "$towels" 'o["live"], o["archiveReason"]')" \
  "archived False Не найдена точка продажи из прайс листа: ${m}_PP9"
job6=$(curl -s -X POST -H "$login" "$process" -d "$(item "$syn3" "[{\"available\":\"yes\",\"storeId\":\"${m}_PP1\",\"stockCount\":5}]" '[{"cityId":"750000000","value":5000}]')" | json 'd["id"]')
expect "an unexpected stockCount: off sale" "$(job "$job6" | json 'd["items"][0]["result"], d["items"][0]["reason"]')" \
  "archived Некорректный остаток в прайс листе"
job7=$(curl -s -X POST -H "$login" "$batch" -d "[$(item "$towels" "$both" '[{"cityId":"750000000","value":9}]')]" | json 'd[0]["id"]')
expect "a price below 10 is rejected, nothing changes" "$(job "$job7" | json 'd["items"][0]["result"]') $(offer_state "$towels" 'o["live"]')" \
  "rejected False"
expect "a push without login is 401" "$(status -X POST "$process" -d "$towels_push")" "401"
control PUT "merchant/$m" '{"expired":true,"expired_status":403}'
expect "an expired login is 403 when so set" "$(status -X POST -H "$login" "$batch" -d "[$towels_push]")" "403"
expect "job read-back needs the login" "$(status -H "$login" "$base/pricefeed/upload/merchant/job/$job1")" "403"
control PUT "merchant/$m" '{"expired":false,"expired_status":401}'
expect "unknown job" "$(status -H "$login" "$base/pricefeed/upload/merchant/job/job-999")" "404"
expect "a batch body must be an array" "$(status -X POST -H "$login" "$batch" -d "$towels_push")" "400"
expect "batch items of one merchant" "$(status -X POST -H "$login" "$batch" -d "[$towels_push,{\"merchantUid\":\"1\",\"sku\":\"a\"}]")" "400"
control PATCH "cabinet/$m/offers/$towels" '{"cityPrices":[{"cityId":"750000000","value":1250}],"archived":false}'
expect "a hand edit in the cabinet" "$(details "$towels" | json 'd["archived"], [c["price"] for c in d["cityInfo"]]')" "False [1100, 1250]"
expect "pushes, jobs and offers in the state" "$(state | json 'len(d["pushes"]), len(d["jobs"]), len(d["offers"])')" "8 8 7"
control POST reset
expect "reset forgets jobs" "$(status -H "$login" "$base/pricefeed/upload/merchant/job/$job1")" "404"
expect "reset keeps the cabinet" "$(list 0 10 true | json 'd["total"]')" "3"

# HTTP/2: refused with 405 when switched on (prior knowledge, or an HTTP/1.1 Upgrade: h2c).
control POST http2 '{"refuse":true}'
expect "h2 prior knowledge is 405" "$(curl -s -o /dev/null -w '%{http_code} %{http_version}' --http2-prior-knowledge -X POST "$offers/1" -d '{}')" "405 2"
expect "h2c upgrade is 405" "$(curl -s -o /dev/null -w '%{http_code} %{http_version}' --http2 -X POST "$offers/1" -d '{}')" "405 2"
expect "HTTP/1.1 unchanged" "$(curl -s -o /dev/null -w '%{http_code} %{http_version}' --http1.1 -X POST "$offers/1" -d '{}')" "200 1.1"
expect "stats count refusals" "$(curl -s "$base/_mock/stats" | json 'd["http2_refused"], d["by_status"]["405"]')" "2 2"
control POST http2 '{"refuse":false}'
expect "h2 prior knowledge when off: no HTTP/2" "$(curl -s -o /dev/null -w '%{http_code}' --http2-prior-knowledge -X POST "$offers/1" -d '{}' || true)" "000"
expect "h2c upgrade when off: HTTP/1.1" "$(curl -s -o /dev/null -w '%{http_code} %{http_version}' --http2 -X POST "$offers/1" -d '{}')" "200 1.1"
control POST reset

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

# The simulated market: seeded books, the seller's price from pushes and the control call, bots that
# answer within (market) seconds, the ground truth.
market() { curl -s -X "$1" "$base/_mock/market$2" -d "${3:-}"; }
expect "no market yet" "$(status "$base/_mock/market/summary")" "409"
expect "bad market body" "$(status -X POST "$base/_mock/market" -d '{"products":0}')" "400"
expect "bad mix" "$(status -X POST "$base/_mock/market" -d '{"bot_share":0.8,"active_share":0.5}')" "400"
market POST "" '{"seed":11,"products":300,"first_code":70001,"seller":"SELLER","time_scale":20,"timeline":true}' >/dev/null
catalogue_a=$(market GET /catalogue | md5sum)
market POST "" '{"seed":11,"products":300,"first_code":70001,"seller":"SELLER","time_scale":20,"timeline":true}' >/dev/null
expect "same seed, same catalogue" "$(market GET /catalogue | md5sum)" "$catalogue_a"
# A quiet product's competitors move days of market time apart: its book is still the first one.
quiet=$(market GET /catalogue | json '[p["code"] for p in d["products"] if p["kind"] == "quiet"][0]')
book_a=$(curl -s -X POST "$offers/$quiet" -d '{}' | json '[(o["merchantId"], o["price"]) for o in d["offers"]]')
market POST "" '{"seed":12,"products":300,"first_code":70001,"seller":"SELLER","time_scale":20}' >/dev/null
[ "$(market GET /catalogue | md5sum)" != "$catalogue_a" ] || fail "another seed, another catalogue"
echo "ok - another seed, another catalogue"
market POST "" '{"seed":11,"products":300,"first_code":70001,"seller":"SELLER","time_scale":20,"timeline":true}' >/dev/null
expect "same seed, same first book" \
  "$(curl -s -X POST "$offers/$quiet" -d '{}' | json '[(o["merchantId"], o["price"]) for o in d["offers"]]')" "$book_a"
expect "the seller is in the book, cheapest first at the start" \
  "$(curl -s -X POST "$offers/$quiet" -d '{}' | json 'd["offers"][0]["merchantId"], d["offers"][0]["price"] < d["offers"][1]["price"]')" \
  "SELLER True"
expect "codes outside the market keep their books" "$(curl -s -X POST "$offers/777" -d '{}' | json 'd["total"]')" "3"
kinds=$(market GET /catalogue | json '" ".join(sorted(set(p["kind"] for p in d["products"])))')
expect "every kind of product" "$kinds" "active bot quiet"
bot=$(market GET /catalogue | json '[p["code"] for p in d["products"] if p["kind"] == "bot"][0]')
seller_price() { curl -s -X POST "$offers/$1" -d '{}' | json '[o["price"] for o in d["offers"] if o["merchantId"] == "SELLER"][0]'; }
market POST /seller_prices "{\"prices\":[{\"code\":\"$quiet\",\"price\":12345}]}" >/dev/null
expect "seller price from the control call" "$(seller_price "$quiet")" "12345"
control PUT merchant/SELLER '{"session":"s1","sid":"t1"}'
curl -s -o /dev/null -X POST "$base/pricefeed/upload/merchant/process" -H 'Cookie: mc-session=s1; mc-sid=t1' \
  -d "{\"merchantUid\":\"SELLER\",\"sku\":\"${quiet}_100\",\"model\":\"x\",\"cityPrices\":[{\"cityId\":\"750000000\",\"value\":23456}]}"
expect "seller price from a push" "$(seller_price "$quiet")" "23456"
curl -s -o /dev/null -X POST "$base/pricefeed/upload/merchant/process" -H 'Cookie: mc-session=s1; mc-sid=t1' \
  -d "{\"merchantUid\":\"OTHER\",\"sku\":\"${quiet}_100\",\"cityPrices\":[{\"cityId\":\"750000000\",\"value\":99}]}"
expect "another merchant's push is not the seller's price" "$(seller_price "$quiet")" "23456"
expect "the market counts the seller's pushes" "$(market GET "" | json 'd["pushes_applied"]')" "1"
# A bot answers the seller's undercut within a minute of market time (3 s here at 20x): poll.
market POST /measure >/dev/null
cheapest_other=$(curl -s "$base/_mock/offers/$bot" | json 'min(o["price"] for o in d["offers"] if o["merchantId"] != "SELLER")')
market POST /seller_prices "{\"prices\":[{\"code\":\"$bot\",\"price\":$((cheapest_other - 1))}]}" >/dev/null
answered=no
for _ in $(seq 100); do
  first=$(curl -s "$base/_mock/offers/$bot" | json 'd["offers"][0]["merchantId"]')   # /_mock/ reads are no checks
  if [ "$first" != "SELLER" ]; then answered=yes; break; fi
  sleep 0.1
done
expect "a bot undercuts the seller within seconds" "$answered" "yes"
expect "the undercut is in the ground truth" "$(market GET /summary | json 'd["by_kind"]["bot"]["undercuts"] >= 1 and d["answered"] == 0')" "True"
curl -s -o /dev/null -X POST "$offers/$bot" -d '{}'
expect "the next check answers it" "$(market GET /summary | json 'd["answered"] >= 1 and d["checks"] == 1 and d["reactions"]["count"] >= 1')" "True"
expect "every reaction by kind" "$(market GET /reactions | json 'len(d["reactions"]["bot"]) >= 1')" "True"
expect "the timeline shows the seller's prices and who was first" \
  "$(market GET "/timeline/$bot" | json 'd["points"][-1][2] != "" and any(p[1] == '"$((cheapest_other - 1))"' for p in d["points"])')" "True"
expect "timeline of an unknown code" "$(status "$base/_mock/market/timeline/5")" "404"
control POST fault "{\"product\":\"$bot\",\"mode\":\"status\",\"status\":503,\"count\":1}"
curl -s -o /dev/null -X POST "$offers/$bot" -d '{}'
expect "a faulted answer is no check" "$(market GET /summary | json 'd["checks"]')" "1"
market POST /stop >/dev/null
expect "stopped: the codes are unknown again" "$(curl -s -X POST "$offers/$bot" -d '{}' | json 'd["total"]')" "0"

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
