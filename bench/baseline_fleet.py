#!/usr/bin/env python3
"""baseline_fleet.py: the repricing job done the way the public Python scripts do it today.

asyncio + aiohttp (one ClientSession, keep-alive) + asyncpg (a pool), an asyncio.Semaphore capping
concurrency, and for every product: POST the offers request (the same body and headers as demper's
offers_request in src/pg/check_pipeline.cpp), parse the JSON, apply the default rule (undercut the cheapest
competitor that is not one of the seller's merchant ids by the step, clamp to floor and ceiling;
no competitor: the ceiling when set), then one UPDATE per product and one INSERT into price_history
when the price changed. It is a faithful baseline, not a strawman: keep-alive, a pool, no sleeps.

Reads the products of demper.product (ids 1..--limit, or all active ones) like a script reads its
catalogue, runs one pass over them, prints one JSON line: checks, failures, changes, seconds.
"""
import argparse
import asyncio
import json
import sys
import time

import aiohttp
import asyncpg


def decide(price, min_price, max_price, step, own, offers):
    """The default rule (README.md, "The price rule"; test/t/DemperTest.pm expected_price)."""
    competitors = sorted(o["price"] for o in offers if o.get("merchantId") not in own)
    if not competitors:
        return (max_price if max_price is not None else price), None
    target = competitors[0] - step
    floor = max(min_price, 10)
    if target < floor:
        target = floor
    if max_price is not None and target > max_price:
        target = max_price
    return target, competitors[0]


async def check(session, pool, sem, url_template, p, stats):
    async with sem:
        code, city = p["product_code"], p["city_id"]
        url = url_template.replace("{product_code}", code)
        origin = url.split("/yml/")[0]
        body = ('{"cityId":"%s","id":"%s","merchantUID":[],"limit":64,"page":0,"sortOption":"PRICE",'
                '"highRating":null,"searchText":null,"isExcellentMerchant":false,"installationId":"-1"}'
                % (city, code))
        headers = {"Content-Type": "application/json", "Accept": "application/json, text/*",
                   "Accept-Language": "ru-RU,ru;q=0.9", "X-KS-City": city, "Origin": origin,
                   "Referer": "%s/shop/p/-%s/?c=%s" % (origin, code, city),
                   "Sec-Fetch-Site": "same-origin", "Sec-Fetch-Mode": "cors", "Sec-Fetch-Dest": "empty",
                   "Cookie": "kaspi.city=%s" % city}
        try:
            async with session.post(url, data=body, headers=headers) as resp:
                if resp.status != 200:
                    raise RuntimeError("HTTP %d" % resp.status)
                data = await resp.json(content_type=None)
            offers = data["offers"]
        except Exception as e:  # the scripts log and move on
            stats["failed"] += 1
            await pool.execute(
                "UPDATE demper.product SET last_check_time = now(), last_error = $1 WHERE id = $2",
                str(e)[:200], p["id"])
            return
        new_price, competitor = decide(p["price"], p["min_price"], p["max_price"], p["step"],
                                       p["own"], offers)
        await pool.execute(
            "UPDATE demper.product SET price = $1, last_check_time = now(), last_competitor_price = $2,"
            " last_error = NULL WHERE id = $3", new_price, competitor, p["id"])
        if new_price != p["price"]:
            stats["changed"] += 1
            await pool.execute(
                "INSERT INTO demper.price_history (product_id, store_id, old_price, new_price,"
                " competitor_price, reason) VALUES ($1, $2, $3, $4, $5, 'undercut')",
                p["id"], p["store_id"], p["price"], new_price, competitor)
        stats["ok"] += 1


async def main():
    ap = argparse.ArgumentParser()
    ap.add_argument("--dsn", required=True)
    ap.add_argument("--url", required=True, help="offers URL template with {product_code}")
    ap.add_argument("--concurrency", type=int, default=100)
    ap.add_argument("--pool", type=int, default=10)
    ap.add_argument("--limit", type=int, default=0, help="only product ids 1..limit")
    args = ap.parse_args()

    pool = await asyncpg.create_pool(args.dsn, min_size=args.pool, max_size=args.pool)
    rows = await pool.fetch(
        "SELECT p.id, p.store_id, p.product_code, p.price, p.min_price, p.max_price, p.step,"
        "       coalesce(p.city_id, s.city_id) AS city_id,"
        "       ARRAY(SELECT o.merchant_id FROM demper.store o WHERE o.seller_id = s.seller_id)"
        "         || s.ignored_merchants AS own"
        "  FROM demper.product p JOIN demper.store s ON s.id = p.store_id"
        " WHERE p.bot_active AND ($1 = 0 OR p.id <= $1) ORDER BY p.id", args.limit)
    products = [dict(r, own=set(r["own"])) for r in rows]
    stats = {"ok": 0, "failed": 0, "changed": 0}
    sem = asyncio.Semaphore(args.concurrency)
    connector = aiohttp.TCPConnector(limit=args.concurrency)
    started = time.monotonic()
    async with aiohttp.ClientSession(connector=connector) as session:
        await asyncio.gather(*(check(session, pool, sem, args.url, p, stats) for p in products))
    seconds = time.monotonic() - started
    await pool.close()
    print(json.dumps({"checks": stats["ok"] + stats["failed"], "failed": stats["failed"],
                      "changed": stats["changed"], "seconds": seconds}))


if __name__ == "__main__":
    sys.exit(asyncio.run(main()))
