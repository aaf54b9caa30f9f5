#!/usr/bin/env bash
# demo-run.sh: the demo itself, run as postgres by demo.sh inside its throw-away directory.
set -euo pipefail
work=$1
seconds=${DEMO_SECONDS:-60}
cd "$work"
pgport=$((50000 + RANDOM % 10000))
mock_pid=""
cleanup() {
  pg_ctl -D "$work/data" -m immediate stop >/dev/null 2>&1 || true
  [ -n "$mock_pid" ] && kill "$mock_pid" 2>/dev/null || true
}
trap cleanup EXIT

# 1. The mock marketplace: every product code 1..2000000 has a deterministic offer book; the
#    sellers' cabinets are seeded below.
./demper_mock --listen 127.0.0.1:0 --port-file "$work/mock.ports" --synthetic 2000000 \
  --log "$work/mock.log" >"$work/mock.out" 2>&1 &
mock_pid=$!
for _ in $(seq 1 100); do [ -s "$work/mock.ports" ] && break; sleep 0.1; done
mport=$(head -1 "$work/mock.ports")
mock="http://127.0.0.1:$mport"
echo "mock marketplace on $mock"

# 2. Two sellers' cabinets in the mock: 400 listings each, sold in three cities (prices per city,
#    pickup points per listing, Cyrillic titles), every 25th archived. Their product card ids have
#    offer books in the mock, so they have competitors.
cabinet() {  # merchant session sid first_code
  curl -sf -X PUT "$mock/_mock/cabinet/$1" -d "{\"session\":\"$2\",\"sid\":\"$3\",\"offers\":[]}" >/dev/null
  curl -sf -X POST "$mock/_mock/cabinet/$1/synthetic" \
    -d "{\"count\":400,\"first_code\":$4,\"cities\":[\"750000000\",\"710000000\",\"511010000\"],\"archived_every\":25}" >/dev/null
}
cabinet 30067228 demo-session-1 demo-sid-1 1001
cabinet 30094411 demo-session-2 demo-sid-2 5001
# The real cabinet bans a merchant above ~3 pushes/s; the demo's mock allows more, so that a minute shows
# the whole round trip (demper.push_rate is 2/s by default, as the real limit asks).
curl -sf -X POST "$mock/_mock/push_limits" -d '{"push_limit_rps":100}' >/dev/null
curl -sf -X POST "$mock/_mock/jobs" -d '{"delay_ms":500}' >/dev/null
head -c 32 /dev/urandom > "$work/demper.key" && chmod 600 "$work/demper.key"

# 3. A cluster with demper preloaded and pointed at the mock (the defaults point at kaspi.kz).
initdb -D "$work/data" -A trust >/dev/null
cat >>"$work/data/postgresql.conf" <<CONF
port = $pgport
unix_socket_directories = '$work'
listen_addresses = ''
shared_preload_libraries = 'demper'
demper.database = 'demo'
demper.offers_url = '$mock/yml/offer-view/offers/{product_code}'
demper.push_url = '$mock/pricefeed/upload/merchant/process'
demper.push_job_url = '$mock/pricefeed/upload/merchant/job/{job_id}'
demper.catalogue_list_url = '$mock/bff/offer-view/list?m={merchant_uid}&p={page}&l={limit}&a={active}'
demper.catalogue_details_url = '$mock/bff/offer-view/details?m={merchant_uid}&s={sku}'
demper.credentials_key_file = '$work/demper.key'
demper.allowed_hosts = '127.0.0.1'
demper.allow_private_addresses = on
demper.requests_per_second = 150
demper.burst = 20
demper.max_inflight = 32
demper.check_interval = '20s'
demper.lease_time = '30s'
demper.catalogue_sync_interval = 0
demper.cabinet_read_rate = 100
demper.push_rate = 40
demper.push_verify_delay = '2s'
CONF
pg_ctl -D "$work/data" -l "$work/server.log" -w start >/dev/null
export PGHOST=$work PGPORT=$pgport
createdb demo
psql() { command psql -X -q -v ON_ERROR_STOP=1 -d demo "$@"; }
psql -c "CREATE EXTENSION demper"

# 4. Connect the two cabinets and import their catalogues (the worker reads the offer lists page by
#    page, then each listing's cities and pickup points). Imported listings wait for a floor.
psql -v s1=demo-session-1 -v t1=demo-sid-1 -v s2=demo-session-2 -v t2=demo-sid-2 <<'SQL'
SET log_statement = 'none';
INSERT INTO demper.store (name, merchant_id, push_mode) VALUES ('Alma Electronics', '30067228', 'api'),
                                                               ('Astana Gadgets', '30094411', 'api');
SELECT demper.set_credentials(1, :'s1', :'t1') AS key1, demper.set_credentials(2, :'s2', :'t2') AS key2 \gset
SELECT demper.sync_catalogue(1), demper.sync_catalogue(2);
SQL
for _ in $(seq 1 120); do
  [ "$(psql -Atc "SELECT count(*) FROM demper.catalogue_sync WHERE status IN ('done', 'failed')")" = 2 ] && break
  sleep 0.5
done
echo "== The catalogues, imported from the cabinets"
psql -c "SELECT store, status, listings_seen, added AS rows_added, archived, waiting_for_floor, error
           FROM demper.catalogue_sync ORDER BY store_id"

# 5. The seller sets floors with one UPDATE: 70 % of each listing's price; the listings on sale are
#    repriced from now on.
psql -c "UPDATE demper.product SET min_price = greatest(10, price * 70 / 100), bot_active = true
          WHERE cabinet_synced_at IS NOT NULL AND NOT cabinet_archived"
echo "floors set on $(psql -Atc 'SELECT count(*) FROM demper.product WHERE bot_active') listing rows (one per listing and city)"

# 6. Run: print progress every 5 seconds; competitors move and some answers fail meanwhile.
printf '%5s %8s %8s %8s %8s %8s %8s %8s %8s\n' secs checks ok failed changed up down pushed verified
start=$(date +%s)
moved=0; faulted=0
while :; do
  sleep 5
  elapsed=$(( $(date +%s) - start ))
  psql -Atc "SELECT checks_started, checks_ok, checks_failed, price_changes, price_up, price_down, pushes_ok, pushes_verified FROM demper.demper_stats()" |
    awk -F'|' -v s="$elapsed" '{ printf "%5d %8d %8d %8d %8d %8d %8d %8d %8d\n", s, $1, $2, $3, $4, $5, $6, $7, $8 }'
  if [ $moved -eq 0 ] && [ "$elapsed" -ge 20 ]; then
    # A rival undercuts 30 listings by 3 %: demper follows within one interval (in every city).
    for code in $(psql -Atc "SELECT DISTINCT product_code FROM demper.product WHERE bot_active AND id % 40 = 0 LIMIT 30"); do
      p=$(psql -Atc "SELECT (min(price) * 0.97)::bigint FROM demper.product WHERE product_code = '$code'")
      curl -s -X PUT "$mock/_mock/offers/$code" \
        -d "{\"offers\":[{\"merchantId\":\"RIVAL\",\"merchantName\":\"Rival Shop\",\"price\":$p}]}" >/dev/null
    done
    echo "      -- a rival undercut 30 listings by 3 %"
    moved=1
  fi
  if [ $faulted -eq 0 ] && [ "$elapsed" -ge 30 ]; then
    for code in 1007 1077 5007; do
      curl -s -X POST "$mock/_mock/fault" -d "{\"product\":\"$code\",\"mode\":\"html\"}" >/dev/null
    done
    curl -s -X POST "$mock/_mock/fault" -d '{"product":"5050","mode":"status","status":503}' >/dev/null
    echo "      -- the marketplace answers 4 listings with an anti-bot page or 503 from now on"
    faulted=1
  fi
  [ "$elapsed" -ge "$seconds" ] && break
done

# 7. What changed and why.
echo
echo "== Price changes by reason"
psql -c "SELECT h.reason, count(*) AS changes, count(DISTINCT h.product_id) AS products,
                sum((h.new_price > h.old_price)::int) AS up, sum((h.new_price < h.old_price)::int) AS down
           FROM demper.price_history h GROUP BY h.reason ORDER BY changes DESC"
echo "== Products that followed the rival (last 12 changes)"
psql -c "SELECT p.sku, s.name AS store, h.old_price, h.new_price, h.competitor_price, h.reason,
                to_char(h.changed_at, 'HH24:MI:SS') AS at
           FROM demper.price_history h JOIN demper.product p ON p.id = h.product_id
           JOIN demper.store s ON s.id = p.store_id
          WHERE p.id % 40 = 0 AND h.changed_at > (SELECT min(changed_at) + interval '20 seconds' FROM demper.price_history)
          ORDER BY h.changed_at DESC LIMIT 12"
echo "== Status: products at their floor first, then failures"
psql -c "SELECT sku, store, price, min_price, at_floor, last_competitor_price AS competitor, last_reason,
                check_failures AS failures, last_error_class AS error
           FROM demper.product_status LIMIT 6"
psql -c "SELECT sku, price, last_reason, check_failures AS failures, last_error_class, left(last_error, 50) AS last_error
           FROM demper.product_status WHERE check_failures > 0"
echo "== Backlog"
psql -c "SELECT * FROM demper.backlog"
echo "== demper_stats()"
psql -x -c "SELECT checks_started, checks_ok, checks_failed, price_changes, price_up, price_down, floor_hits,
                   http_requests, http_retries, failed_bad_body, failed_http_5xx FROM demper.demper_stats()"
echo "== Publishing: every accepted push is read back in the cabinet"
for _ in $(seq 1 120); do   # let the pushes of the last checks go out and be verified
  [ "$(psql -Atc "SELECT count(*) FROM demper.outbox WHERE status = 'pending' OR verify_status = 'verifying'")" = 0 ] && break
  sleep 0.5
done
psql -c "SELECT store, pending, done, verifying, verified, rejected, off_sale, waiting_for_pickup_points
           FROM demper.push_status ORDER BY store_id"

# 8. The cabinet's own view: every offer that was on sale is still on sale, at the price demper
#    chose, in every city.
for m in 30067228 30094411; do curl -sf "$mock/_mock/cabinet/$m"; echo; done > "$work/cabinets.json"
psql -Atc "SELECT s.merchant_id || '|' || p.sku || '|' || p.city_id || '|' || p.price
             FROM demper.product p JOIN demper.store s ON s.id = p.store_id
            WHERE p.bot_active" > "$work/demper_prices.txt"
echo "== The cabinets, as Kaspi shows them"
cabinet_ok=0
python3 - "$work/cabinets.json" "$work/demper_prices.txt" <<'PY' || cabinet_ok=1
import json, sys
cabinets = [json.loads(line) for line in open(sys.argv[1]) if line.strip()]
ours = {}
for line in open(sys.argv[2]):
    m, sku, city, price = line.strip().split('|')
    ours[(m, sku, city)] = int(price)
bad = 0
print(f"{'merchant':>10} {'on sale':>8} {'archived':>9} {'cities at demper price':>23} {'cities not':>11}")
for c in cabinets:
    live = [o for o in c['offers'] if o['live']]
    at, off = 0, 0
    for o in live:
        for city in o['cities']:
            want = ours.get((c['merchantUid'], o['sku'], city['id']))
            if want is None:
                continue
            if city['price'] == want:
                at += 1
            else:
                off += 1
    lost = [o for o in c['offers'] if not o['live'] and (c['merchantUid'], o['sku'], o['cities'][0]['id']) in ours]
    print(f"{c['merchantUid']:>10} {len(live):>8} {len(c['offers']) - len(live):>9} {at:>23} {off:>11}")
    bad += off + len(lost)
print("every offer demper reprices is on sale at demper's price in every city" if bad == 0
      else f"{bad} offers or cities differ from demper's prices")
sys.exit(1 if bad else 0)
PY
changes=$(psql -Atc "SELECT count(*) FROM demper.price_history WHERE reason <> 'cabinet_edit'")
below=$(psql -Atc "SELECT count(*) FROM demper.product WHERE price < min_price")
echo "demo finished: $changes price changes, $below listings below their floor"
[ "$changes" -gt 0 ] && [ "$below" -eq 0 ] && [ "$cabinet_ok" -eq 0 ]
