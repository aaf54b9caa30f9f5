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

# 1. The mock marketplace: every product code 1..2000000 has a deterministic offer book.
./demper_mock --listen 127.0.0.1:0 --port-file "$work/mock.ports" --synthetic 2000000 \
  --log "$work/mock.log" >"$work/mock.out" 2>&1 &
mock_pid=$!
for _ in $(seq 1 100); do [ -s "$work/mock.ports" ] && break; sleep 0.1; done
mport=$(head -1 "$work/mock.ports")
mock="http://127.0.0.1:$mport"
echo "mock marketplace on $mock"

# 2. A cluster with demper preloaded and pointed at the mock (the defaults point at kaspi.kz).
initdb -D "$work/data" -A trust >/dev/null
cat >>"$work/data/postgresql.conf" <<CONF
port = $pgport
unix_socket_directories = '$work'
listen_addresses = ''
shared_preload_libraries = 'demper'
demper.database = 'demo'
demper.offers_url = '$mock/yml/offer-view/offers/{product_code}'
demper.allowed_hosts = '127.0.0.1'
demper.allow_private_addresses = on
demper.requests_per_second = 150
demper.burst = 20
demper.max_inflight = 32
demper.check_interval = '20s'
demper.lease_time = '30s'
CONF
pg_ctl -D "$work/data" -l "$work/server.log" -w start >/dev/null
export PGHOST=$work PGPORT=$pgport
createdb demo
psql() { command psql -X -q -v ON_ERROR_STOP=1 -d demo "$@"; }
psql -c "CREATE EXTENSION demper"

# 3. Two stores, 1,000 products. Two thirds start well above the market (the first checks
#    undercut), one third at its floor below the market (the first checks raise the price back
#    up to the competition); floors are set so that some products end at their floor.
psql <<'SQL'
INSERT INTO demper.store (name, merchant_id) VALUES ('Alma Electronics', 'ALMA1'), ('Astana Gadgets', 'AST2');
INSERT INTO demper.product (store_id, product_code, sku, model, brand, price, min_price, max_price, step)
SELECT 1 + (g % 2), g::text, 'SKU-' || g, 'Model ' || g, 'Acme',
       CASE WHEN g % 3 = 0 THEN 1000 + (g * 7919) % 100000 ELSE 600000 END,
       1000 + (g * 7919) % 100000, 600000, 1 + (g % 3) * 4
  FROM generate_series(1, 1000) g;
SQL
echo "loaded $(psql -Atc 'SELECT count(*) FROM demper.product') products in 2 stores; checks spread over 20 s"

# 4. Run: print progress every 5 seconds; competitors move and some answers fail meanwhile.
printf '%5s %8s %8s %8s %8s %8s %8s %8s\n' secs checks ok failed changed up down floor
start=$(date +%s)
moved=0; faulted=0
while :; do
  sleep 5
  elapsed=$(( $(date +%s) - start ))
  psql -Atc "SELECT checks_started, checks_ok, checks_failed, price_changes, price_up, price_down, floor_hits FROM demper.demper_stats()" |
    awk -F'|' -v s="$elapsed" '{ printf "%5d %8d %8d %8d %8d %8d %8d %8d\n", s, $1, $2, $3, $4, $5, $6, $7 }'
  if [ $moved -eq 0 ] && [ "$elapsed" -ge 20 ]; then
    # A rival undercuts 50 products by 3 %: demper follows within one interval.
    for code in $(psql -Atc "SELECT product_code FROM demper.product WHERE id % 20 = 0"); do
      p=$(psql -Atc "SELECT (price * 0.97)::bigint FROM demper.product WHERE product_code = '$code' AND store_id = 1 + ($code % 2)")
      curl -s -X PUT "$mock/_mock/offers/$code" \
        -d "{\"offers\":[{\"merchantId\":\"RIVAL\",\"merchantName\":\"Rival Shop\",\"price\":$p}]}" >/dev/null
    done
    echo "      -- a rival undercut 50 products by 3 %"
    moved=1
  fi
  if [ $faulted -eq 0 ] && [ "$elapsed" -ge 30 ]; then
    for code in 7 77 777; do
      curl -s -X POST "$mock/_mock/fault" -d "{\"product\":\"$code\",\"mode\":\"html\"}" >/dev/null
    done
    curl -s -X POST "$mock/_mock/fault" -d '{"product":"500","mode":"status","status":503}' >/dev/null
    echo "      -- the marketplace answers 4 products with an anti-bot page or 503 from now on"
    faulted=1
  fi
  [ "$elapsed" -ge "$seconds" ] && break
done

# 5. What changed and why.
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
          WHERE p.id % 20 = 0 AND h.changed_at > (SELECT min(changed_at) + interval '20 seconds' FROM demper.price_history)
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
changes=$(psql -Atc "SELECT count(*) FROM demper.price_history")
below=$(psql -Atc "SELECT count(*) FROM demper.product WHERE price < min_price")
echo "demo finished: $changes price changes, $below products below their floor"
[ "$changes" -gt 0 ] && [ "$below" -eq 0 ]
