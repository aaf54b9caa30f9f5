"""market_bench.py: benchmark 8 (issue 17), the adaptive schedule against fixed intervals over a
simulated market, for bench.py (BENCH_ONLY=market).

Two parts, both over the market model of test/mock/market_model.hpp:

1. The simulator, bench/market_sim (virtual time, 10,000 products, a budget of 10 requests/s, 48 h
   measured after 12 h of warm-up; quick: 2,000 products at 2 requests/s, 12 h): fixed intervals vs
   the adaptive schedule (core::decide_and_schedule, the pressure solved every minute) at the same
   number of requests, the adaptive schedule at lower budgets (how many requests it needs to match
   fixed's first-place share), and the war policies. Its CSV is kept as market_sim.csv.
2. The live run: a real demper against the mock's simulated market (POST /_mock/market), the same
   seed each run, market time compressed by `market_scale` (the market moves that many times faster
   than the clock, and every interval is divided by it, so N products at 10 requests/s stand for
   N x scale products at 10 requests/s of market time). Each run: reset the listings to the market's
   start prices, restart the market, enable the worker, warm up, measure, read the mock's ground truth
   (first place, undercuts and reactions, floor, margin, unchecked gaps) and its 1 s windows. The
   seller's price reaches the market through demper's own pushes (push_mode api, the mock's cabinet
   endpoint).

What a live run needs of demper (the settings the lead adds for issue 17; a run whose settings are
missing is skipped and said so):
- fixed:    demper.check_interval (today's setting);
- adaptive: demper.adaptive_intervals = on (reload); the bounds as demper.check_interval_min /
            demper.check_interval_max (reload) when those settings exist, else the product columns
            check_interval_min / check_interval_max (interval); demper.check_interval is the "no
            information yet" interval; the product column schedule_state is set to NULL at each reset
            when it exists;
- wars:     the store column war_policy ('follow', 'hold', 'keep_margin');
- both:     demper.schedule_time_scale = market_scale when it exists (the schedule's time constants
            on market time; without it they run on the wall clock, and the run says so in its notes).
"""
import json
import math
import os
import subprocess
import time

SELLER = "MKT1"
FIRST_CODE = 50_000_001      # far from the other benchmarks' product codes
SESSION, SID = "mkt-session", "mkt-sid"
SHORTEST_S, LONGEST_S, DEFAULT_S = 30, 7200, 900   # market seconds, as in market_sim
HEADROOM = 0.95              # the schedule asks for this share of the rate limit


class Ctx:
    """What benchmark 8 borrows from bench.py: its logger, settings helper, quiet-machine wait, mock
    class, the config and the notes list."""

    def __init__(self, log, set_conf, wait_quiet, mock_class, cfg, notes, quick):
        self.log, self.set_conf, self.wait_quiet, self.Mock = log, set_conf, wait_quiet, mock_class
        self.cfg, self.notes, self.quick = cfg, notes, quick


# --------------------------------------------------------------------------------------------
# 1. the simulator


SIM_MIXES = (("default", []),
             # The seller's floor 20 to 40 % under its start price instead of 5 to 18 %: far less of the
             # lost time is behind competitors below the floor, which no schedule can win back.
             ("wide floors", ["--mix", "seller_floor_min=0.6", "--mix", "seller_floor_max=0.8"]))


def run_simulator(ctx, binary, out, name, extra):
    """Runs bench/market_sim's standard experiment on one mix; returns its runs (from its CSV) and
    stdout."""
    if not binary or not os.path.exists(binary):
        ctx.notes.append("8. the simulator was not run: build/market_sim is missing (cmake --build build)")
        return None
    slug = name.replace(" ", "_")
    csv_path = os.path.join(out, f"market_sim_{slug}.csv")
    cmd = [binary, "--csv", csv_path] + (["--quick"] if ctx.quick else []) + extra
    ctx.log("  market_sim " + " ".join(cmd[1:]))
    t = time.time()
    p = subprocess.run(cmd, capture_output=True, text=True)
    with open(os.path.join(out, f"market_sim_{slug}.txt"), "w") as f:
        f.write(p.stdout + p.stderr)
    if p.returncode not in (0, 1) or not os.path.exists(csv_path):
        ctx.notes.append(f"8. market_sim ({name}) failed (exit {p.returncode}): {p.stderr[-300:]}")
        return None
    rows = []
    with open(csv_path) as f:
        header = f.readline().strip().split(",")
        for line in f:
            rows.append(dict(zip(header, line.strip().split(","))))
    for r in rows:
        for k, v in r.items():
            if k not in ("run", "mode", "policy"):
                r[k] = float(v)
    ctx.log(f"  market_sim ({name}): {len(rows)} runs in {time.time() - t:.0f} s; "
            + next((l for l in p.stdout.splitlines() if l.startswith("verdict")), "no verdict"))
    return dict(name=name, slug=slug, runs=rows, stdout=p.stdout, products=2000 if ctx.quick else 10000,
                budget=2 if ctx.quick else 10)


def requests_to_match(runs, share):
    """Interpolates, on (requests, first share) runs of one mode, the requests at which the first share
    reaches `share`; None when no run does."""
    runs = sorted(runs, key=lambda r: r["requests"])
    for i, r in enumerate(runs):
        if r["first_share"] < share:
            continue
        if i == 0:
            return r["requests"]
        a = runs[i - 1]
        if r["first_share"] == a["first_share"]:
            return r["requests"]
        return a["requests"] + (r["requests"] - a["requests"]) * (share - a["first_share"]) / (
            r["first_share"] - a["first_share"])
    return None


def compare(fixed, adaptive, adaptive_curve=None):
    """The issue's figures of adaptive against fixed (dicts with the market_sim CSV's keys)."""
    c = dict(lost_cut=1 - adaptive["lost_share"] / fixed["lost_share"] if fixed["lost_share"] else float("nan"),
             winnable_cut=1 - adaptive["winnable_lost_share"] / fixed["winnable_lost_share"]
             if fixed["winnable_lost_share"] else float("nan"),
             p95_ratio=adaptive["reaction_p95_s"] / fixed["reaction_p95_s"] if fixed["reaction_p95_s"] else float("nan"),
             active_p95_ratio=adaptive["active_p95_s"] / fixed["active_p95_s"] if fixed["active_p95_s"] else float("nan"))
    c["match"] = None
    if adaptive_curve:
        m = requests_to_match(adaptive_curve, fixed["first_share"])
        c["match"] = m / fixed["requests"] if m else None
    c["target_a"] = c["lost_cut"] >= 0.3 and c["p95_ratio"] <= 0.5
    c["target_b"] = c["match"] is not None and c["match"] <= 0.5
    return c


# --------------------------------------------------------------------------------------------
# 2. the live run


def features(db):
    """Which of the issue 17 settings and columns the installed demper has."""
    gucs = {r[0] for r in db.rows("SELECT name FROM pg_settings WHERE name LIKE 'demper.%'")}
    cols = lambda table: {r[0] for r in db.rows(
        "SELECT attname FROM pg_attribute WHERE attrelid = $1::regclass AND attnum > 0 AND NOT attisdropped",
        f"demper.{table}")}
    product, store = cols("product"), cols("store")
    return dict(adaptive="demper.adaptive_intervals" in gucs,
                bound_gucs={"demper.check_interval_min", "demper.check_interval_max"} <= gucs,
                bound_columns={"check_interval_min", "check_interval_max"} <= product,
                state_column="schedule_state" in product,
                war_policy="war_policy" in store,
                time_scale="demper.schedule_time_scale" in gucs)


def setup(ctx, db, work, mock):
    """The market's listings as a demper store that publishes to the mock: returns the store id and the
    catalogue."""
    cfg = ctx.cfg
    mock.call("POST", "/_mock/market", dict(seed=cfg["market_seed"], products=cfg["market_products"],
                                            first_code=FIRST_CODE, seller=SELLER, time_scale=cfg["market_scale"]))
    catalogue = mock.call("GET", "/_mock/market/catalogue")["products"]
    key = os.path.join(work, "market.key")
    with open(key, "wb") as f:
        f.write(os.urandom(32))
    os.chmod(key, 0o600)
    db.exe(f"ALTER SYSTEM SET demper.credentials_key_file = '{key}'")
    db.exe("SELECT pg_reload_conf()")
    time.sleep(0.5)
    store = db.val("SELECT id FROM demper.store WHERE merchant_id = $1", SELLER)
    if store is None:
        store = db.val("INSERT INTO demper.store (name, merchant_id) VALUES ('Market shop', $1) RETURNING id", SELLER)
        # A pickup point: demper pushes no listing whose pickup points are unknown (a push without
        # them takes the offer off sale), and the market sees the seller's prices only through pushes.
        db.exe(f"""INSERT INTO demper.product (store_id, product_code, sku, model, brand, price, min_price, max_price,
                                               step, availabilities, next_check_at)
                   SELECT {store}, c->>'code', (c->>'code') || '_1', 'Market product ' || (c->>'code'), 'Bench',
                          (c->>'start_price')::int8, (c->>'floor')::int8, (c->>'ceiling')::int8, 1,
                          $2::jsonb, now() + interval '30 days'
                     FROM jsonb_array_elements($1::jsonb) c""", json.dumps(catalogue),
               json.dumps([{"storeId": f"{SELLER}_PP1", "available": "yes"}]))
    db.val("SELECT demper.set_credentials($1, $2, $3)", store, SESSION, SID)
    mock.call("PUT", f"/_mock/merchant/{SELLER}", dict(session=SESSION, sid=SID))
    return store, catalogue


def park(db, store):
    db.exe("CREATE TABLE IF NOT EXISTS public.market_parked (id bigint PRIMARY KEY)")
    db.exe("""WITH off AS (UPDATE demper.product SET bot_active = false
                             WHERE store_id <> $1 AND bot_active RETURNING id)
              INSERT INTO public.market_parked SELECT id FROM off ON CONFLICT DO NOTHING""", store)


def unpark(db):
    if db.val("SELECT to_regclass('public.market_parked') IS NOT NULL"):
        db.exe("""UPDATE demper.product p SET bot_active = true, next_check_at = now() + interval '30 days'
                    FROM public.market_parked m WHERE m.id = p.id""")
        db.exe("DROP TABLE public.market_parked")


def reset(ctx, db, mock, store, feats, spread_s):
    """Listings back to the market's start prices, no schedule state, first checks spread over
    `spread_s` seconds; every other product out of the way; the mock's stats cleared."""
    ctx.set_conf(db, enabled="off")
    deadline = time.time() + 120
    while time.time() < deadline and db.val("SELECT in_flight + queued FROM demper.demper_stats()") > 0:
        time.sleep(0.2)
    # The other benchmarks' products are switched off for the market's runs (and on again at its
    # end, park/unpark): pushing their next check a month ahead is not enough, since the adaptive
    # schedule's pressure counts every active product's demand, and 10,000 of them would stretch
    # the listings' intervals fifty-fold.
    park(db, store)
    cat = mock.call("GET", "/_mock/market/catalogue")["products"]
    state = ", schedule_state = NULL, war_rival = NULL" if feats["state_column"] else ""
    db.exe(f"""UPDATE demper.product p
                  SET price = (c->>'start_price')::int8, min_price = (c->>'floor')::int8,
                      max_price = (c->>'ceiling')::int8, last_check_time = NULL, check_failures = 0,
                      next_check_at = now() + random() * make_interval(secs => $2){state}
                 FROM jsonb_array_elements($1::jsonb) c
                WHERE p.store_id = $3 AND p.product_code = c->>'code'""", json.dumps(cat), float(spread_s), store)
    if feats["state_column"]:
        # What the last run taught the pressure measurement (the due queue's base intervals) goes too.
        db.exe("""UPDATE demper.schedule s SET base_interval_s = NULL, shortest_s = NULL, longest_s = NULL
                    FROM demper.product p WHERE p.id = s.product_id AND p.store_id = $1""", store)
    db.exe("DELETE FROM demper.outbox WHERE store_id = $1", store)


def live_run(ctx, db, mock, store, feats, label, adaptive, budget_share, policy):
    cfg = ctx.cfg
    scale, n = cfg["market_scale"], cfg["market_products"]
    rps = cfg["market_budget"] * HEADROOM * budget_share    # burst 1: no 1 s window above the budget
    demand = rps * HEADROOM
    fixed_wall = max(1, round(n / demand))
    default_wall = max(1, round(DEFAULT_S / scale))
    spread = fixed_wall if not adaptive else max(default_wall, n / demand)
    reset(ctx, db, mock, store, feats, spread)
    conf = dict(offers_url=mock.url, push_url=mock.base + "/pricefeed/upload/merchant/process", push_rate=100,
                requests_per_second=f"{rps:.3f}", burst=1, max_inflight=16, max_inflight_per_host=16,
                check_interval=fixed_wall if not adaptive else default_wall, batch_size=50)
    if feats["adaptive"]:
        conf["adaptive_intervals"] = "on" if adaptive else "off"
    if feats["time_scale"]:
        # The schedule's own time constants (how fast it forgets, the prior, what a request is worth,
        # the war's quiet periods, how often the pressure is measured) follow the market's clock.
        conf["schedule_time_scale"] = scale
    elif adaptive:
        ctx.notes.append(f"8. {label}: this demper has no demper.schedule_time_scale: its schedule's time "
                         f"constants run on the wall clock while the market runs x{scale}")
    if adaptive and feats["bound_gucs"]:
        conf["check_interval_min"] = max(1, round(SHORTEST_S / scale))
        conf["check_interval_max"] = max(2, round(LONGEST_S / scale))
    elif adaptive and feats["bound_columns"]:
        db.exe("UPDATE demper.product SET check_interval_min = make_interval(secs => $1), "
               "check_interval_max = make_interval(secs => $2) WHERE store_id = $3",
               float(max(1, round(SHORTEST_S / scale))), float(max(2, round(LONGEST_S / scale))), store)
    if feats["war_policy"]:
        db.exe("UPDATE demper.store SET war_policy = $1 WHERE id = $2", policy, store)
    ctx.set_conf(db, **conf)
    mock.call("POST", "/_mock/reset", {})
    mock.call("POST", "/_mock/push_limits", {"push_limit_rps": 100000})
    ctx.wait_quiet(f"market {label}")
    stats0 = db.rows("SELECT floor_hits, checks_ok, checks_failed FROM demper.demper_stats()")[0]
    mock.call("POST", "/_mock/market", dict(seed=cfg["market_seed"], products=n, first_code=FIRST_CODE, seller=SELLER,
                                            time_scale=scale, publish_delay_s=0))
    t0 = time.time()
    ctx.set_conf(db, enabled="on")
    warm, meas = cfg["market_warmup"] / scale, cfg["market_measure"] / scale
    ctx.log(f"  {label}: {n} listings, {rps:.2f} req/s, market x{scale}; warm-up {warm:.0f} s, measure {meas:.0f} s")
    while (left := t0 + warm - time.time()) > 0:
        time.sleep(min(5, left))
    mock.call("POST", "/_mock/market/measure", {})
    floor0 = db.val("SELECT floor_hits FROM demper.demper_stats()")
    t1 = time.time()
    last = t1
    while (left := t1 + meas - time.time()) > 0:
        time.sleep(min(5, left))
        if time.time() - last > 60:
            s = mock.call("GET", "/_mock/market/summary")
            ctx.log(f"    {time.time() - t1:.0f} s: {s['checks']} checks, first {s['first_share']:.4f}, "
                    f"reaction p95 {s['reactions']['p95_s']:.0f} s (market)")
            last = time.time()
    summary = mock.call("GET", "/_mock/market/summary")
    reactions = mock.call("GET", "/_mock/market/reactions")["reactions"]
    # From a decision to its push taken (the outbox row's latest decision to its done_at), over the
    # pushes done in the measured window; wall seconds times the scale are market seconds.
    push_p50, push_p95 = db.rows("""SELECT coalesce(percentile_cont(0.5) WITHIN GROUP (ORDER BY d), 0),
                                           coalesce(percentile_cont(0.95) WITHIN GROUP (ORDER BY d), 0)
                                      FROM (SELECT extract(epoch FROM o.done_at - o.created_at)::float8 AS d
                                              FROM demper.outbox o
                                             WHERE o.store_id = $1 AND o.status = 'done'
                                               AND o.done_at >= to_timestamp($2)) x""", store, t1)[0]
    stats = mock.call("GET", "/_mock/stats")
    floor1 = db.val("SELECT floor_hits FROM demper.demper_stats()")
    stats1 = db.rows("SELECT floor_hits, checks_ok, checks_failed FROM demper.demper_stats()")[0]
    ctx.set_conf(db, enabled="off")
    by = summary["by_kind"]
    r = dict(run=label, mode="adaptive" if adaptive else "fixed", policy=policy, budget_rps=rps,
             requests=summary["checks"], requests_per_s=summary["checks"] / meas,
             first_share=summary["first_share"], lost_share=1 - summary["first_share"],
             winnable_lost_share=summary["winnable_lost_share"], undercuts=summary["undercuts"],
             answered=summary["answered"], reaction_p50_s=summary["reactions"]["p50_s"],
             reaction_p95_s=summary["reactions"]["p95_s"], active_p50_s=by["active"]["reactions"]["p50_s"],
             active_p95_s=by["active"]["reactions"]["p95_s"], bot_p95_s=by["bot"]["reactions"]["p95_s"],
             floor_moves=summary["floor_moves"], floor_hits=floor1 - floor0,
             floor_time_share=summary["floor_time_share"], margin_kept=summary["margin_kept"],
             bot_margin_kept=by["bot"]["margin_kept"], bot_first_share=by["bot"]["first_share"],
             max_unchecked_s=summary["max_unchecked_s"],
             longest_s=LONGEST_S if adaptive else fixed_wall * scale,
             max_requests_1s=max(stats.get("max_rps_window", {}).values() or [0]),
             checks_failed=stats1[2] - stats0[2], scale=scale, products=n, window_s=summary["window_s"],
             seller_changes=summary["seller_changes"], pushes=stats.get("pushes", 0),
             push_p50_s=float(push_p50) * scale, push_p95_s=float(push_p95) * scale,
             reactions=sorted(x for k in ("quiet", "active", "bot") for x in reactions[k]))
    if r["requests"] and not r["seller_changes"]:
        ctx.notes.append(f"8. {label}: the market saw no price of the seller's ({r['pushes']} pushes reached the "
                         "mock): check push_url, the store's credentials and push_mode")
    ctx.log(f"  {label}: {r['requests']} requests, first {r['first_share']:.4f} (winnable lost "
            f"{r['winnable_lost_share']:.4f}), reaction p50 {r['reaction_p50_s']:.0f} / p95 {r['reaction_p95_s']:.0f} s, "
            f"floor hits {r['floor_hits']}, bot margin {r['bot_margin_kept']:.3f}, longest unchecked "
            f"{r['max_unchecked_s']:.0f} s, most in 1 s {r['max_requests_1s']}, decision to push p50 "
            f"{r['push_p50_s']:.0f} / p95 {r['push_p95_s']:.0f} s (market seconds)")
    return r


def run(ctx, db, work, mock_binary, sim_binary, out):
    """Benchmark 8: the simulator, then the live runs; returns R['market']."""
    M = dict(sims=[r for r in (run_simulator(ctx, sim_binary, out, name, extra) for name, extra in SIM_MIXES) if r],
             live=[], skipped=[])
    mock = ctx.Mock(work, "mock_market", mock_binary)
    try:
        feats = features(db)
        M["features"] = feats
        store, _ = setup(ctx, db, work, mock)
        plan = [("fixed", False, 1.0, "follow"), ("adaptive", True, 1.0, "follow")]
        if not ctx.quick:
            plan += [("adaptive_half", True, 0.5, "follow"), ("adaptive_keep_margin", True, 1.0, "keep_margin")]
        for label, adaptive, share, policy in plan:
            missing = [what for what, ok in (("demper.adaptive_intervals", feats["adaptive"] or not adaptive),
                                             ("the bounds (demper.check_interval_min/max or product columns "
                                              "check_interval_min/max)",
                                              feats["bound_gucs"] or feats["bound_columns"] or not adaptive),
                                             ("store.war_policy", feats["war_policy"] or policy == "follow"))
                       if not ok]
            if missing:
                M["skipped"].append((label, ", ".join(missing)))
                ctx.log(f"  {label}: skipped, this demper has no {', '.join(missing)}")
                continue
            M["live"].append(live_run(ctx, db, mock, store, feats, label, adaptive, share, policy))
        ctx.set_conf(db, enabled="off", **({"adaptive_intervals": "off"} if feats["adaptive"] else {}),
                     **({"schedule_time_scale": 1} if feats["time_scale"] else {}))
        db.exe("UPDATE demper.product SET next_check_at = now() + interval '30 days' WHERE store_id = $1", store)
    finally:
        # What the worker still holds (checks claimed before it was disabled, the last pushes) goes
        # to the market's mock while it still answers: a request to a stopped mock waits behind the
        # breaker until its lease ends, and the drain after this benchmark would wait for it.
        ctx.set_conf(db, enabled="off")
        deadline = time.time() + 120
        while time.time() < deadline and (
                db.val("SELECT in_flight + queued FROM demper.demper_stats()") > 0 or db.val(
                    "SELECT count(*) FROM demper.outbox o JOIN demper.store s ON s.id = o.store_id "
                    "WHERE s.merchant_id = $1 AND o.status = 'pending'", SELLER) > 0):
            time.sleep(0.5)
        # The market's store and listings go (with their queue rows, history and outbox): the
        # benchmarks after this one load their products by id from the end of the small catalogue,
        # where the listings' ids are, and count every product.
        db.exe("DELETE FROM demper.store WHERE merchant_id = $1", SELLER)
        unpark(db)
        mock.stop()
    return M


# --------------------------------------------------------------------------------------------
# results


def write_cdf(path, xs, points, sep, digits, header=None):
    """The cumulative distribution of the sorted values `xs`, thinned to about `points` lines (every
    k-th value, and the last), one "value<sep>share" line each; bench.py's staleness.csv uses it too."""
    with open(path, "w") as f:
        if header:
            f.write(header + "\n")
        step = max(1, len(xs) // points)
        for i in range(0, len(xs), step):
            f.write(f"{xs[i]:.{digits}f}{sep}{(i + 1) / len(xs):.5f}\n")
        if xs:
            f.write(f"{xs[-1]:.{digits}f}{sep}1.0\n")


def pct(x):
    return "n/a" if x is None or (isinstance(x, float) and math.isnan(x)) else f"{x * 100:.1f} %"


def summary_rows(M, row):
    """Adds benchmark 8's rows to SUMMARY.md's table through bench.py's row()."""
    for sim in M.get("sims", []):
        runs = {r["run"]: r for r in sim["runs"]}
        f, a = runs.get("fixed"), runs.get("adaptive")
        curve = [r for r in sim["runs"] if r["mode"] == "adaptive" and r["policy"] == "follow"]
        if not (f and a):
            continue
        c = compare(f, a, curve)
        where = f"simulator ({sim['name']} mix), {sim['products']:,} products, {sim['budget']} req/s"
        row(f"8. {where}: product-time lost from first place, adaptive vs fixed (same requests)",
            f"{pct(c['lost_cut'])} less ({a['lost_share']:.4f} vs {f['lost_share']:.4f}); winnable part "
            f"{pct(c['winnable_cut'])} less", ">= 30 % less", c["lost_cut"] >= 0.3,
            f"requests {a['requests']:,.0f} vs {f['requests']:,.0f}; the rest of the lost time had the leading "
            "competitor below the seller's floor (no schedule wins it back)")
        row(f"8. {where}: p95 reaction to an undercut", f"{a['reaction_p95_s']:.0f} s vs {f['reaction_p95_s']:.0f} s "
            f"= {c['p95_ratio']:.2f}", "<= 0.5 of fixed", c["p95_ratio"] <= 0.5,
            f"undercuts by active competitors only: {a['active_p95_s']:.0f} vs {f['active_p95_s']:.0f} s "
            f"= {c['active_p95_ratio']:.2f}")
        row(f"8. {where}: requests adaptive needs for fixed's first-place share ({f['first_share']:.4f})",
            "more than tried" if c["match"] is None else f"{c['match']:.2f} of fixed's", "<= 0.5",
            c["target_b"], "interpolated between the adaptive runs at 100, 75, 50, 40, 30, 20 % of the budget")
        gaps = max(r["max_unchecked_s"] for r in sim["runs"] if r["mode"] == "adaptive")
        over = max(r["max_requests_1s"] - math.ceil(r["budget_rps"] - 1e-9) for r in sim["runs"])
        row(f"8. {where}: longest a product went unchecked (adaptive runs) / most requests in a 1 s window",
            f"{gaps:.0f} s / {a['max_requests_1s']:.0f} at {a['budget_rps']:g} req/s, "
            f"{'none' if over <= 0 else over} above its budget in any run", f"<= {LONGEST_S} s / <= budget",
            gaps <= LONGEST_S and over <= 0, "every run, at 100 % ... 20 % of the budget (a budget of 1.5/s "
            "allows 2 requests in some 1 s windows)")
        wars = {r["run"]: r for r in sim["runs"] if r["policy"] != "follow"}
        km, ho = wars.get("adaptive keep_margin"), wars.get("adaptive hold")
        if km and ho:
            row(f"8. {where}: margin kept on products with a repricer bot, follow / hold / keep_margin (adaptive)",
                f"{a['bot_margin_kept']:.3f} / {ho['bot_margin_kept']:.3f} / {km['bot_margin_kept']:.3f}",
                "(reported)", True, "time-average of (price - floor) over the start's (price - floor); "
                f"first place on them {a['bot_first_share']:.3f} / {ho['bot_first_share']:.3f} / "
                f"{km['bot_first_share']:.3f}")
        row(f"8. {where}: the issue's targets (lost -30 % and p95 <= 1/2, or fixed's share at <= 1/2 the requests)",
            "met" if c["target_a"] or c["target_b"] else "not met", "either", c["target_a"] or c["target_b"],
            "see 'Adaptive schedule' below")
    live = {r["run"]: r for r in M.get("live", [])}
    f, a = live.get("fixed"), live.get("adaptive")
    if f:
        where = f"live, {f['products']:,} listings x{f['scale']:g} market time"
        if a:
            c = compare(f, a, [r for r in M["live"] if r["mode"] == "adaptive" and r["policy"] == "follow"])
            row(f"8. {where}: product-time lost from first place, adaptive vs fixed",
                f"{pct(c['lost_cut'])} less; winnable part {pct(c['winnable_cut'])} less", ">= 30 % less",
                c["lost_cut"] >= 0.3, f"requests {a['requests']:,} vs {f['requests']:,}")
            row(f"8. {where}: p95 reaction to an undercut (market s)",
                f"{a['reaction_p95_s']:.0f} vs {f['reaction_p95_s']:.0f} = {c['p95_ratio']:.2f}", "<= 0.5 of fixed",
                c["p95_ratio"] <= 0.5, f"active competitors only: {c['active_p95_ratio']:.2f}")
            h = live.get("adaptive_half")
            if h:
                row(f"8. {where}: adaptive at half the budget vs fixed, first-place share",
                    f"{h['first_share']:.4f} vs {f['first_share']:.4f} ({h['requests']:,} vs {f['requests']:,} requests)",
                    ">= fixed's", h["first_share"] >= f["first_share"])
        for r in M["live"]:
            # The longest interval bounds the adaptive schedule; fixed intervals are reported.
            adaptive = r["mode"] == "adaptive"
            row(f"8. {where}: {r['run']}: longest unchecked (market s) / most requests in a 1 s window",
                f"{r['max_unchecked_s']:.0f} / {r['max_requests_1s']}",
                (f"<= {r['longest_s']:.0f} / " if adaptive else "(reported) / ") + f"<= {budget_of(r)}",
                (r["max_unchecked_s"] <= r["longest_s"] or not adaptive) and r["max_requests_1s"] <= budget_of(r),
                f"first {r['first_share']:.4f}, floor hits {r['floor_hits']}, bot margin {r['bot_margin_kept']:.3f}"
                + ("" if adaptive else f"; its interval: {r['longest_s']:.0f} market s"))
    for label, why in M.get("skipped", []):
        row(f"8. live: {label}", "not run", "-", False, f"this demper has no {why}")


def budget_of(r):
    return math.floor(r["budget_rps"] / HEADROOM + 1e-9)


def summary_section(M):
    """The 'Adaptive schedule' section of SUMMARY.md."""
    out = ["\n## Adaptive schedule (benchmark 8)\n"]
    for sim in M.get("sims", []):
        out.append(f"\nSimulator, {sim['name']} mix (`bench/market_sim`, virtual time; market_sim_{sim['slug']}.txt, "
                   f".csv):\n\n```\n" + sim["stdout"].strip() + "\n```\n")
    if M.get("live"):
        out.append("\nLive runs against the mock's market (times in market seconds):\n\n| run | requests | first | "
                   "lost | winnable lost | reaction p50 / p95 | active p95 | floor hits | margin kept (bot products) "
                   "| longest unchecked | most in 1 s | checks failed | pushes (seller moves seen) "
                   "| decision to push p50 / p95 |\n"
                   "|---|---|---|---|---|---|---|---|---|---|---|---|---|---|\n")
        for r in M["live"]:
            out.append(f"| {r['run']} | {r['requests']:,} | {r['first_share']:.4f} | {r['lost_share']:.4f} | "
                       f"{r['winnable_lost_share']:.4f} | {r['reaction_p50_s']:.0f} / {r['reaction_p95_s']:.0f} | "
                       f"{r['active_p95_s']:.0f} | {r['floor_hits']} | {r['margin_kept']:.3f} ({r['bot_margin_kept']:.3f}) | "
                       f"{r['max_unchecked_s']:.0f} | {r['max_requests_1s']} | {r['checks_failed']} | "
                       f"{r['pushes']} ({r['seller_changes']}) | "
                       f"{r.get('push_p50_s', 0):.0f} / {r.get('push_p95_s', 0):.0f} |\n")
    if M.get("features"):
        out.append(f"\nThe installed demper's issue 17 settings: {json.dumps(M['features'])}.\n")
    return "".join(out)


def write_data(M, out):
    """Plot data: market_runs.dat (lost first place per run, winnable and not), market_reactions_<run>.dat
    (the reactions' cumulative distribution), market_sim_curve.dat (first share by requests)."""
    runs = []
    sims = M.get("sims", [])
    for sim in sims:
        for r in sim["runs"]:
            if r["run"] in ("fixed", "adaptive"):
                runs.append((f"sim {r['run']}" + ("" if sim["slug"] == "default" else f"\\n{sim['name']}"), r))
    sim = sims[0] if sims else None
    if sim:
        with open(os.path.join(out, "market_sim_curve.dat"), "w") as f:
            for mode in ("fixed", "adaptive"):
                f.write(f"# {mode}: requests_per_s first_share\n")
                for r in sorted((r for r in sim["runs"] if r["mode"] == mode and r["policy"] == "follow"),
                                key=lambda r: r["requests"]):
                    f.write(f"{r['requests_per_s']:.4f} {r['first_share']:.6f}\n")
                f.write("\n\n")
    for r in M.get("live", []):
        runs.append((f"live {r['run']}", r))
        write_cdf(os.path.join(out, f"market_reactions_{r['run']}.dat"), r["reactions"], points=1000, sep=" ",
                  digits=3)
    if runs:
        with open(os.path.join(out, "market_runs.dat"), "w") as f:
            f.write("# run winnable_lost other_lost\n")
            for name, r in runs:
                f.write(f'"{name}" {r["winnable_lost_share"]:.6f} {r["lost_share"] - r["winnable_lost_share"]:.6f}\n')
    with open(os.path.join(out, "market.csv"), "w") as f:
        keys = ["run", "mode", "policy", "budget_rps", "requests", "first_share", "lost_share", "winnable_lost_share",
                "undercuts", "answered", "reaction_p50_s", "reaction_p95_s", "active_p95_s", "floor_moves",
                "floor_hits", "margin_kept", "bot_margin_kept", "max_unchecked_s", "longest_s", "max_requests_1s",
                "checks_failed", "pushes", "seller_changes", "push_p50_s", "push_p95_s", "scale", "products"]
        f.write(",".join(keys) + "\n")
        for r in M.get("live", []):
            f.write(",".join(str(r.get(k, "")) for k in keys) + "\n")
