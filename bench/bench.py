#!/usr/bin/env python3
"""bench.py: demper's benchmark suite (issue 8). Run by bench/run.sh as the postgres user.

One throw-away cluster (initdb in a temp dir), two mock marketplaces (one without a request log for
throughput, one with a log for rate fidelity and freshness), one catalogue that grows 10k -> 1M -> 10M
products. Every figure is the median of several runs; figures that compare are ratios measured in the
same run. Writes tables (SUMMARY.md, CSV), gnuplot data and a profile of the worker into --out.
"""
import argparse
import asyncio
import json
import math
import os
import re
import shutil
import statistics
import subprocess
import sys
import time
import urllib.request

import asyncpg

PGBIN = "/usr/lib/postgresql/15/bin"
HERE = os.path.dirname(os.path.abspath(__file__))
ROOT = os.path.dirname(HERE)
HZ = os.sysconf("SC_CLK_TCK")
QUICK = os.environ.get("BENCH_QUICK") == "1"

# Sizes and repetitions: quick is a ~2-3 minute smoke run, full stays under ~25 minutes.
if QUICK:
    CFG = dict(small=10_000, small_runs=3, baseline_runs=2, large=100_000, large_runs=2,
               huge=1_000_000, huge_due=10_000, huge_runs=3, rate_seconds=20, rate_runs=1,
               fresh_n=1000, fresh_interval=15, fresh_seconds=50, claim_reps=10,
               ceiling_runs=1, ceiling_duration="4s", profile_seconds=6)
else:
    CFG = dict(small=10_000, small_runs=5, baseline_runs=3, large=1_000_000, large_runs=2,
               huge=10_000_000, huge_due=10_000, huge_runs=5, rate_seconds=60, rate_runs=2,
               fresh_n=10_000, fresh_interval=30, fresh_seconds=150, claim_reps=19,
               ceiling_runs=3, ceiling_duration="8s", profile_seconds=10)
CFG.update({k[6:].lower(): int(v) for k, v in os.environ.items()
            if k.startswith("BENCH_") and k[6:].lower() in CFG and v.isdigit()})

TARGETS = dict(checks_per_s=5000, ratio=10, worker_us=50, fresh_p99=1.1, claim_ratio=2.0,
               rss_growth=0.10, rate_mean_pct=2.0)
OWN = "OWN1"
INITIAL_PRICE = 600000  # above every synthetic offer (1,000..500,000): the first check always changes it


def log(*a):
    print(time.strftime("%H:%M:%S"), *a, flush=True)


def median(xs):
    return statistics.median(xs) if xs else float("nan")


def pctl(xs, p):
    """Nearest-rank percentile of a sorted list."""
    if not xs:
        return float("nan")
    k = max(0, min(len(xs) - 1, int(math.ceil(p / 100.0 * len(xs))) - 1))
    return xs[k]


def loadavg():
    with open("/proc/loadavg") as f:
        return " ".join(f.read().split()[:3])


def wait_quiet(what):
    """Waits until no test suite runs on the box (prove, pg_regress, scripts/test.sh)."""
    limit = float(os.environ.get("BENCH_WAIT_MAX", "900"))
    start = time.time()
    announced = False
    while True:
        busy = []
        for pat in (r"(^|/)prove( |$)", r"pg_regress", r"scripts/test\.sh", r"scripts/isolation\.sh"):
            r = subprocess.run(["pgrep", "-f", pat], capture_output=True, text=True)
            pids = [p for p in r.stdout.split() if int(p) != os.getpid()]
            if pids:
                busy.append(pat)
        if not busy:
            break
        if not announced:
            log(f"waiting for test suites to finish before {what} ({', '.join(busy)})")
            announced = True
        if time.time() - start > limit:
            log(f"still busy after {limit:.0f} s: measuring {what} anyway (noted in the results)")
            NOTES.append(f"{what}: measured while a test suite ran ({', '.join(busy)})")
            break
        time.sleep(2)
    waited = time.time() - start
    if waited > 1:
        time.sleep(3)  # let the load settle
    LOADS.append((what, loadavg()))


NOTES = []
LOADS = []


# --------------------------------------------------------------------------------------------
# /proc accounting


def proc_stat(pid):
    try:
        with open(f"/proc/{pid}/stat") as f:
            s = f.read()
    except OSError:
        return None
    rest = s[s.rindex(")") + 2:].split()
    # fields from 3 (state): ppid = rest[1], utime = rest[11], stime = rest[12], cutime, cstime
    return dict(ppid=int(rest[1]), utime=int(rest[11]), stime=int(rest[12]),
                cutime=int(rest[13]), cstime=int(rest[14]))


def proc_status(pid, key):
    try:
        with open(f"/proc/{pid}/status") as f:
            for line in f:
                if line.startswith(key + ":"):
                    return int(line.split()[1])
    except OSError:
        return None
    return None


class CpuSnapshot:
    """utime+stime of the worker, of every other process of the cluster (postmaster's children,
    including exited ones through the postmaster's cutime/cstime), of the mock and of our poller."""

    def __init__(self, cluster, mock_pid, poller_pid):
        pm = cluster.postmaster_pid()
        self.worker_pid = cluster.worker_pid
        ticks = {}
        for d in os.listdir("/proc"):
            if d.isdigit():
                st = proc_stat(int(d))
                if st and st["ppid"] == pm:
                    ticks[int(d)] = st
        pst = proc_stat(pm)
        w = ticks.get(self.worker_pid)
        self.worker_u = w["utime"] if w else 0
        self.worker_s = w["stime"] if w else 0
        poll = ticks.get(poller_pid)
        self.poller = (poll["utime"] + poll["stime"]) if poll else 0
        self.cluster = sum(t["utime"] + t["stime"] for t in ticks.values()) + \
            pst["utime"] + pst["stime"] + pst["cutime"] + pst["cstime"]
        m = proc_stat(mock_pid)
        self.mock = (m["utime"] + m["stime"]) if m else 0
        self.t = time.time()

    @staticmethod
    def diff(a, b, checks):
        """CPU microseconds per check between snapshots a and b."""
        per = lambda ticks: ticks / HZ / max(checks, 1) * 1e6
        worker = (b.worker_u - a.worker_u) + (b.worker_s - a.worker_s)
        others = (b.cluster - a.cluster) - worker - (b.poller - a.poller)
        return dict(worker_us=per(worker), worker_user_us=per(b.worker_u - a.worker_u),
                    worker_sys_us=per(b.worker_s - a.worker_s), pg_other_us=per(others),
                    mock_us=per(b.mock - a.mock), wall=b.t - a.t)


# --------------------------------------------------------------------------------------------
# cluster, mocks, database


class Mock:
    def __init__(self, work, name, binary, log_file=None):
        self.dir = work
        ports = os.path.join(work, f"{name}.ports")
        cmd = [binary, "--listen", "127.0.0.1:0", "--port-file", ports, "--synthetic", "10000000",
               "--own-merchant", OWN]
        if log_file:
            cmd += ["--log", log_file]
        self.log = log_file
        self.proc = subprocess.Popen(cmd, stdout=subprocess.DEVNULL,
                                     stderr=open(os.path.join(work, f"{name}.err"), "w"))
        for _ in range(200):
            if os.path.exists(ports) and os.path.getsize(ports) > 0:
                break
            time.sleep(0.05)
        self.port = int(open(ports).read().split()[0])
        self.base = f"http://127.0.0.1:{self.port}"
        self.url = self.base + "/yml/offer-view/offers/{product_code}"
        self.pid = self.proc.pid

    def call(self, method, path, body=None):
        data = json.dumps(body).encode() if body is not None else None
        req = urllib.request.Request(self.base + path, data=data, method=method)
        with urllib.request.urlopen(req, timeout=30) as r:
            return json.loads(r.read() or b"{}")

    def stop(self):
        self.proc.terminate()
        self.proc.wait(timeout=10)


class Cluster:
    def __init__(self, work):
        self.work = work
        self.data = os.path.join(work, "data")
        self.port = 50000 + os.getpid() % 10000
        self.worker_pid = None

    def start(self, mock):
        subprocess.run([f"{PGBIN}/initdb", "-D", self.data, "-A", "trust", "-U", "postgres"],
                       check=True, stdout=subprocess.DEVNULL)
        conf = f"""
port = {self.port}
unix_socket_directories = '{self.work}'
listen_addresses = ''
max_connections = 50
# bench tuning (documented in bench/README.md): commits do not wait for the WAL flush, and no
# checkpoint falls inside a measurement (every run starts with an explicit CHECKPOINT)
shared_buffers = '2GB'
synchronous_commit = off
checkpoint_timeout = '1h'
max_wal_size = '40GB'
wal_level = minimal
max_wal_senders = 0
maintenance_work_mem = '512MB'
work_mem = '32MB'
log_min_messages = warning
shared_preload_libraries = 'demper'
demper.database = 'bench'
demper.enabled = off
demper.offers_url = '{mock.url}'
demper.allowed_hosts = '127.0.0.1'
demper.requests_per_second = 100000
demper.burst = 100000
demper.max_inflight = 256
demper.max_inflight_per_host = 256
demper.batch_size = 1000
demper.check_interval = '7d'
demper.lease_time = '1h'
demper.http_timeout = '30s'
"""
        with open(os.path.join(self.data, "postgresql.conf"), "a") as f:
            f.write(conf)
        subprocess.run([f"{PGBIN}/pg_ctl", "-D", self.data, "-l", os.path.join(self.work, "server.log"),
                        "-w", "start"], check=True, stdout=subprocess.DEVNULL)
        subprocess.run([f"{PGBIN}/createdb", "-h", self.work, "-p", str(self.port), "bench"], check=True)

    def postmaster_pid(self):
        return int(open(os.path.join(self.data, "postmaster.pid")).readline())

    def dsn(self):
        return f"postgresql://postgres@/bench?host={self.work}&port={self.port}"

    def stop(self):
        subprocess.run([f"{PGBIN}/pg_ctl", "-D", self.data, "-m", "fast", "stop"],
                       stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)


class DB:
    """One persistent connection (the poller): a new connection per poll would cost backend CPU."""

    def __init__(self, dsn):
        self.loop = asyncio.new_event_loop()
        self.conn = self.loop.run_until_complete(asyncpg.connect(dsn))
        self.pid = self.conn.get_server_pid()

    def run(self, coro):
        return self.loop.run_until_complete(coro)

    def exe(self, sql, *args, timeout=None):
        return self.run(self.conn.execute(sql, *args, timeout=timeout))

    def val(self, sql, *args):
        return self.run(self.conn.fetchval(sql, *args))

    def rows(self, sql, *args):
        return self.run(self.conn.fetch(sql, *args))


def set_conf(db, **settings):
    for k, v in settings.items():
        db.exe(f"ALTER SYSTEM SET demper.{k} = '{v}'")
    db.exe("SELECT pg_reload_conf()")


def worker_pid(db, timeout=60):
    deadline = time.time() + timeout
    while time.time() < deadline:
        pid = db.val("SELECT pid FROM pg_stat_activity WHERE backend_type = 'demper worker'")
        if pid:
            return pid
        time.sleep(0.2)
        db.exe("SELECT pg_stat_clear_snapshot()")
    raise RuntimeError("no demper worker")


def checks_done(db):
    return db.val("SELECT checks_ok + checks_failed FROM demper.demper_stats()")


def drain(db, timeout=600):
    """Lets the worker finish what it still holds (requests queued behind a rate limit, claimed ahead)
    at full speed, so nothing of one benchmark leaks into the next."""
    set_conf(db, requests_per_second=100000, burst=100000, max_inflight=256, max_inflight_per_host=256)
    deadline = time.time() + timeout
    while time.time() < deadline:
        if db.val("SELECT in_flight + queued FROM demper.demper_stats()") == 0:
            break
        time.sleep(0.2)
    time.sleep(0.6)  # the last decisions are applied within 0.25 s


def load_products(db, first, last):
    """Rows generated valid, triggers off (as pg_restore does): the plpgsql validation trigger per
    row would make 10M rows take many minutes. Not due: next_check_at a month ahead."""
    t = time.time()
    db.exe("SET session_replication_role = replica")
    step = 1_000_000
    for a in range(first, last + 1, step):
        b = min(last, a + step - 1)
        db.exe(f"""INSERT INTO demper.product (id, store_id, product_code, sku, price, min_price, max_price,
                                               step, next_check_at)
                   SELECT g, 1, g::text, 'SKU-' || g, {INITIAL_PRICE}, 1000, {INITIAL_PRICE}, 1 + g % 5,
                          now() + interval '30 days'
                     FROM generate_series({a}, {b}) g""", timeout=3600)
    db.exe("RESET session_replication_role")
    db.exe("SELECT setval(pg_get_serial_sequence('demper.product', 'id'), $1)", last)
    db.exe("VACUUM (ANALYZE) demper.product", timeout=3600)
    db.exe("CHECKPOINT", timeout=3600)
    log(f"loaded products {first}..{last} in {time.time() - t:.1f} s")
    return time.time() - t


def reset_products(db, n, due_sql="now() - interval '1 minute'"):
    """Makes products 1..n due again at their initial price (every check then changes the price and
    writes one history row, the heaviest apply), outside any measurement."""
    db.exe("SET session_replication_role = replica")
    db.exe(f"""UPDATE demper.product SET price = {INITIAL_PRICE}, last_check_time = NULL,
                      next_check_at = {due_sql}, lease_token = NULL, lease_until = NULL,
                      last_explain = NULL, check_failures = 0
                WHERE id <= {n}""", timeout=3600)
    # nothing else is due (left over from an earlier benchmark): only products 1..n are checked
    db.exe(f"""UPDATE demper.product SET next_check_at = now() + interval '30 days',
                      lease_token = NULL, lease_until = NULL
                WHERE bot_active AND next_check_at < now() + interval '1 day' AND id > {n}""", timeout=3600)
    db.exe("RESET session_replication_role")
    db.exe("TRUNCATE demper.price_history")
    db.exe("VACUUM (ANALYZE) demper.product", timeout=3600)
    db.exe("CHECKPOINT", timeout=3600)


# --------------------------------------------------------------------------------------------
# the benchmarks


def throughput_run(db, cluster, mock, n, label, series=None):
    """All products 1..n due at once, no rate limit: time until every one has been checked."""
    reset_products(db, n)
    wait_quiet(f"throughput {label}")
    la = loadavg()
    before_checks = checks_done(db)
    a = CpuSnapshot(cluster, mock.pid, db.pid)
    t0 = time.time()
    set_conf(db, enabled="on")
    last_print = t0
    while True:
        time.sleep(0.25 if n <= 20000 else 0.5)
        done = checks_done(db) - before_checks
        now = time.time()
        if series is not None:
            series.append((now - t0, done, proc_status(cluster.worker_pid, "VmRSS"),
                           proc_status(cluster.worker_pid, "RssAnon")))
        if now - last_print > 30:
            log(f"  {label}: {done}/{n} checks after {now - t0:.0f} s")
            last_print = now
        if done >= n and db.val(f"SELECT count(*) FROM demper.product WHERE id <= {n} "
                                f"AND last_check_time IS NULL") == 0:
            break  # decided and applied (a decision waits up to 0.25 s for its batch)
        if now - t0 > 3600:
            raise RuntimeError("throughput run did not finish")
    b = CpuSnapshot(cluster, mock.pid, db.pid)
    set_conf(db, enabled="off")
    end, unchecked, changed = db.rows(
        f"""SELECT extract(epoch FROM max(last_check_time))::float8,
                   count(*) FILTER (WHERE last_check_time IS NULL),
                   count(*) FILTER (WHERE price <> {INITIAL_PRICE})
              FROM demper.product WHERE id <= {n}""")[0]
    failed = db.val("SELECT checks_failed FROM demper.demper_stats()")
    secs = end - t0
    r = dict(label=label, n=n, seconds=secs, checks_per_s=n / secs, unchecked=unchecked,
             changed=changed, failed_total=failed, loadavg=la, **CpuSnapshot.diff(a, b, n))
    log(f"  {label}: {r['checks_per_s']:.0f} checks/s, worker {r['worker_us']:.1f} us/check "
        f"(user {r['worker_user_us']:.1f}, sys {r['worker_sys_us']:.1f}), other postgres "
        f"{r['pg_other_us']:.1f} us, mock {r['mock_us']:.1f} us, unchecked {unchecked}, load {la}")
    return r


def baseline_run(db, cluster, mock, n):
    reset_products(db, n)
    wait_quiet("baseline")
    la = loadavg()
    a = CpuSnapshot(cluster, mock.pid, db.pid)
    ru0 = os.times()
    out = subprocess.run(["/usr/bin/python3", os.path.join(HERE, "baseline_fleet.py"), "--dsn", cluster.dsn(),
                          "--url", mock.url, "--limit", str(n), "--concurrency", "100", "--pool", "10"],
                         check=True, capture_output=True, text=True).stdout
    ru1 = os.times()
    b = CpuSnapshot(cluster, mock.pid, db.pid)
    res = json.loads(out.strip().splitlines()[-1])
    cpu = CpuSnapshot.diff(a, b, res["checks"])
    py_us = ((ru1.children_user - ru0.children_user) + (ru1.children_system - ru0.children_system)) \
        / max(res["checks"], 1) * 1e6
    unchecked = db.val(f"SELECT count(*) FROM demper.product WHERE id <= {n} AND last_check_time IS NULL")
    r = dict(label="baseline", n=n, seconds=res["seconds"], checks_per_s=res["checks"] / res["seconds"],
             failed=res["failed"], changed=res["changed"], unchecked=unchecked, python_us=py_us,
             pg_us=cpu["worker_us"] + cpu["pg_other_us"], mock_us=cpu["mock_us"], loadavg=la)
    log(f"  baseline: {r['checks_per_s']:.0f} checks/s, python {py_us:.0f} us/check, postgres "
        f"{r['pg_us']:.0f} us/check, failed {res['failed']}, load {la}")
    return r


def mock_times(mock, since):
    """(time, product code) of the offers requests in the mock's log after `since`."""
    mock.call("POST", "/_mock/log/flush", {})
    out = []
    with open(mock.log) as f:
        for line in f:
            p = line.rstrip("\n").split("\t")
            if len(p) < 5 or p[2] != "POST" or "/offer-view/offers/" not in p[3]:
                continue
            t = float(p[0])
            if t >= since:
                out.append((t, p[3].rsplit("/", 1)[1]))
    out.sort()
    return out


def rate_run(db, mock, seconds, rps=10, burst=5):
    n = 10_000
    reset_products(db, n)
    wait_quiet("rate fidelity")
    la = loadavg()
    mock.call("POST", "/_mock/reset", {})
    set_conf(db, offers_url=mock.url, requests_per_second=rps, burst=burst, max_inflight=32,
             max_inflight_per_host=32)
    start = time.time()
    set_conf(db, enabled="on")
    time.sleep(seconds + 3)
    set_conf(db, enabled="off")
    times = [t for t, _ in mock_times(mock, start)]
    t0 = times[0]
    win = [t for t in times if t < t0 + seconds]
    bins = [0] * seconds
    for t in win:
        bins[int(t - t0)] += 1
    # the largest count in any sliding 1 s window
    smax, lo = 0, 0
    for hi in range(len(win)):
        while win[hi] - win[lo] >= 1.0:
            lo += 1
        smax = max(smax, hi - lo + 1)
    stats = mock.call("GET", "/_mock/stats")
    r = dict(rps=rps, burst=burst, seconds=seconds, requests=len(win), max_window=max(bins),
             sliding_max=smax, mock_max_rps_window=max(stats.get("max_rps_window", {}).values() or [0]),
             mean=len(win) / seconds, mean_err_pct=abs(len(win) / seconds - rps) / rps * 100, bins=bins,
             # after the first window, which holds the initial burst (the bucket starts full)
             steady_mean=sum(bins[1:]) / (seconds - 1),
             loadavg=la)
    log(f"  rate: mean {r['mean']:.2f}/s ({r['mean_err_pct']:.2f} % off; after the first second "
        f"{r['steady_mean']:.2f}), max 1 s bin {r['max_window']}, "
        f"sliding max {smax}, load {la}")
    return r


def freshness_run(db, mock, n, interval, seconds):
    reset_products(db, n, due_sql=f"now() + random() * interval '{interval} seconds'")
    wait_quiet("freshness")
    la = loadavg()
    rps = max(100, 4 * n / interval)
    set_conf(db, offers_url=mock.url, requests_per_second=rps, burst=20, max_inflight=64,
             max_inflight_per_host=64, check_interval=f"{interval}s")
    start = time.time()
    set_conf(db, enabled="on")
    time.sleep(seconds)
    set_conf(db, enabled="off")
    end = time.time()
    per = {}
    for t, code in mock_times(mock, start):
        per.setdefault(code, []).append(t)
    gaps = sorted(b - a for ts in per.values() for a, b in zip(ts, ts[1:]))
    starved = n - len(per)
    # a product starves when it waited longer than 1.5 intervals at the end of the run
    late = sum(1 for ts in per.values() if end - ts[-1] > 1.5 * interval)
    r = dict(n=n, interval=interval, seconds=seconds, rps=rps, checks=sum(len(v) for v in per.values()),
             gaps=len(gaps), p50=pctl(gaps, 50), p99=pctl(gaps, 99), max=gaps[-1] if gaps else float("nan"),
             min=gaps[0] if gaps else float("nan"), never_checked=starved, late_at_end=late, loadavg=la,
             gap_list=gaps)
    log(f"  freshness: {r['checks']} checks, gaps p50 {r['p50']:.2f} s p99 {r['p99']:.2f} s max {r['max']:.2f} s "
        f"(interval {interval} s), never checked {starved}, late {late}, load {la}")
    return r


def claim_sql():
    src = open(os.path.join(ROOT, "src/pg/catalog.cpp")).read()
    m = re.search(r'kClaimSql = R"SQL\((.*?)\)SQL"', src, re.S)
    return m.group(1)


def claim_timing(cluster, db, reps, label):
    """Time per claim of 500 due products, the worker's own statement (taken from catalog.cpp),
    prepared once, run `reps` times in psql with \\timing (first run dropped as warm-up)."""
    reset_products(db, 500 * (reps + 1) + 1000)
    wait_quiet(f"claim {label}")
    script = os.path.join(cluster.work, "claim.sql")
    with open(script, "w") as f:
        f.write("PREPARE claim(int, int8, float8) AS " + claim_sql() + ";\n")
        f.write("\\o /dev/null\n\\timing on\n")
        for i in range(reps + 1):
            f.write(f"EXECUTE claim(500, {1000 + i}, 3600);\n")
        f.write("\\timing off\n\\o\n")
        f.write("BEGIN;\nEXPLAIN (ANALYZE, BUFFERS, COSTS OFF) EXECUTE claim(500, 999, 3600);\nROLLBACK;\n")
    out = subprocess.run(["psql", "-X", "-h", cluster.work, "-p", str(cluster.port), "-d", "bench",
                          "-v", "ON_ERROR_STOP=1", "-f", script], check=True, capture_output=True,
                         text=True).stdout
    times = [float(x) for x in re.findall(r"^Time: ([0-9.]+) ms", out, re.M)][1:]
    plan = out[out.find("QUERY PLAN"):] if "QUERY PLAN" in out else out
    r = dict(label=label, ms=median(times), times=times, plan=plan,
             index_scan=bool(re.search(r"Index Scan using product_due_idx", plan)))
    log(f"  claim {label}: {r['ms']:.2f} ms per claim of 500 (median of {len(times)}), "
        f"index range scan: {r['index_scan']}")
    return r


def profile_run(db, cluster, mock, n, seconds, out_dir):
    """perf record of the worker during a throughput run of n products; top symbols and DSOs."""
    if not shutil.which("perf"):
        return None
    reset_products(db, n)
    wait_quiet("profile")
    pid = cluster.worker_pid
    data = os.path.join(cluster.work, "perf.data")
    set_conf(db, enabled="on")
    time.sleep(0.5)
    p = subprocess.run(["perf", "record", "-F", "499", "--call-graph", "dwarf,16384", "-p", str(pid),
                        "-o", data, "--", "sleep", str(seconds)], capture_output=True, text=True)
    set_conf(db, enabled="off")
    if p.returncode != 0:
        NOTES.append("perf record failed: " + p.stderr.strip()[-300:])
        return None
    rep = lambda *a: subprocess.run(["perf", "report", "-i", data, "--stdio", "--percent-limit", "0.8",
                                     *a], capture_output=True, text=True).stdout
    self_sym = rep("--no-children", "--sort", "dso,symbol", "-g", "none")
    dso = rep("--no-children", "--sort", "dso", "-g", "none")
    children = rep("--children", "--sort", "symbol", "-g", "none")
    with open(os.path.join(out_dir, "profile_worker.txt"), "w") as f:
        f.write(f"# perf record -F 499 --call-graph dwarf -p <worker> for {seconds} s during a throughput "
                f"run of {n} products (user-space samples; kernel time is the worker's stime in /proc)\n\n")
        f.write("## by shared object (self)\n" + dso + "\n## by symbol (self)\n" + self_sym +
                "\n## by symbol (inclusive: self + callees)\n" + children)
    script = subprocess.run(["perf", "script", "-i", data, "-F", "ip,sym,dso"], capture_output=True,
                            text=True).stdout
    phases, subs, total = categorize(script)
    with open(os.path.join(out_dir, "profile_worker.txt"), "a") as f:
        f.write(f"\n## by phase (each sample's stack, {total} samples)\n")
        for k, v in phases:
            f.write(f"{v:6.1f} %  {k}\n")
        f.write("\n## inside the SQL (each sample's stack; a sample counts once, first match)\n")
        for k, v in subs:
            f.write(f"{v:6.1f} %  {k}\n")
    dsos = []
    for line in dso.splitlines():
        m = re.match(r"\s+([0-9.]+)%\s+(\S+)", line)
        if m:
            dsos.append((m.group(2), float(m.group(1))))
    return dict(phases=phases, subs=subs, samples=total, dsos=dsos[:8], seconds=seconds, n=n)


PHASES = [("claim: Catalog::claim (SQL through SPI)", r"Catalog::claim"),
          ("apply: Catalog::apply (SQL through SPI)", r"Catalog::apply"),
          ("explanation JSON built (decision_to_json, rapidjson)", r"decision_to_json"),
          ("offers JSON parsed (parse_offers)", r"parse_offers"),
          ("price rule (decide_price)", r"decide_price|competitors_of"),
          ("offers request built (offers_request)", r"offers_request|expand_url"),
          ("HTTP engine and libcurl", r"HttpEngine|^curl_|^Curl_"),
          ("waiting (WaitEventSetWait)", r"WaitEventSetWait"),
          ("status and counters", r"publish_gauges|publish_status|counter_add")]
SQL_PARTS = [("json/jsonb input of the explanation (json_in/jsonb_in, per row)", r"^jsonb?_in$|pg_parse_json"),
             ("enqueue_push trigger (plpgsql SECURITY DEFINER, per changed row)",
              r"plpgsql_exec_trigger|fmgr_security_definer"),
             ("index inserts (every product index: the update is not HOT; history indexes)",
              r"ExecInsertIndexTuples"),
             ("CHECK constraints (ExecConstraints, translate() on product_code)", r"ExecConstraints"),
             ("executor start (plan initialisation per statement)", r"standard_ExecutorStart"),
             ("sub-plans (ARRAY of seller's merchants, in_working_hours...)", r"ExecSubPlan|ExecScanSubPlan"),
             ("heap update/insert", r"heap_update|heap_insert"),
             ("commit", r"CommitTransaction")]


def categorize(script):
    """Each perf sample's stack (innermost first) to one phase of the worker, and for the SQL
    samples to one part of the statement's work."""
    phases, subs, total = {}, {}, 0
    for block in script.split("\n\n"):
        frames = [m.group(1) for m in re.finditer(r"^\s*[0-9a-f]+\s+(.*?)\s+\(.*\)\s*$", block, re.M)]
        if not frames:
            continue
        total += 1
        label = next((l for l, pat in PHASES if any(re.search(pat, f) for f in frames)), None)
        if label is None:
            dso = re.search(r"\((.*?)\)\s*$", block.strip().splitlines()[0])
            label = "other, caller unknown (stack cut): " + (os.path.basename(dso.group(1)) if dso else "?")
        phases[label] = phases.get(label, 0) + 1
        part = next((l for l, pat in SQL_PARTS if any(re.search(pat, f) for f in frames)), None)
        if part:
            subs[part] = subs.get(part, 0) + 1
    pct = lambda d: sorted(((k, 100.0 * v / max(total, 1)) for k, v in d.items()), key=lambda kv: -kv[1])
    return pct(phases), pct(subs), total


def mock_ceiling(binary, runs, duration):
    vals, cpus = [], []
    for _ in range(runs):
        wait_quiet("mock ceiling")
        env = dict(os.environ, DEMPER_MOCK=binary, DURATION=duration)
        p = subprocess.run(["bash", os.path.join(HERE, "mock_ceiling.sh")], env=env, capture_output=True, text=True)
        m = re.search(r"mock_ceiling_rps=(\d+)", p.stdout)
        c = re.search(r"mock_cpu_percent=(\d+)", p.stdout)
        if m:
            vals.append(int(m.group(1)))
            cpus.append(int(c.group(1)) if c else 0)
        else:
            NOTES.append("mock_ceiling.sh failed: " + p.stderr.strip()[-300:])
    r = dict(rps=median(vals), runs=vals, cpu=median(cpus) if cpus else float("nan"))
    log(f"  mock ceiling: {r['rps']} req/s (runs {vals}), mock CPU {r['cpu']} %")
    return r


# --------------------------------------------------------------------------------------------
# report


def agg(runs, key):
    return median([r[key] for r in runs])


def write_results(out, R):
    os.makedirs(out, exist_ok=True)
    rows = []

    def row(figure, value, target, ok, note=""):
        rows.append((figure, value, target, "pass" if ok else "MISS", note))

    small, base = R["small"], R["baseline"]
    tp = agg(small, "checks_per_s")
    bt = agg(base, "checks_per_s")
    ratio = median([a["checks_per_s"] / b["checks_per_s"] for a, b in zip(small, base)])
    row(f"1. throughput, {CFG['small']:,} products (checks/s end to end)", f"{tp:,.0f}",
        f">= {TARGETS['checks_per_s']:,}", tp >= TARGETS["checks_per_s"], f"median of {len(small)}")
    if R.get("large"):
        lt = agg(R["large"], "checks_per_s")
        row(f"1. throughput, {CFG['large']:,} products (checks/s)", f"{lt:,.0f}", f">= {TARGETS['checks_per_s']:,}",
            lt >= TARGETS["checks_per_s"], f"median of {len(R['large'])}")
    wus = agg(small, "worker_us")
    row(f"1. worker CPU per check, {CFG['small']:,} (us)", f"{wus:.1f}", f"<= {TARGETS['worker_us']}",
        wus <= TARGETS["worker_us"], f"user {agg(small, 'worker_user_us'):.1f} + sys {agg(small, 'worker_sys_us'):.1f}")
    if R.get("large"):
        wl = agg(R["large"], "worker_us")
        row(f"1. worker CPU per check, {CFG['large']:,} (us)", f"{wl:.1f}", f"<= {TARGETS['worker_us']}",
            wl <= TARGETS["worker_us"],
            f"user {agg(R['large'], 'worker_user_us'):.1f} + sys {agg(R['large'], 'worker_sys_us'):.1f}")
    row("1. other PostgreSQL processes' CPU per check (us)", f"{agg(small, 'pg_other_us'):.1f}", "(reported)", True,
        "walwriter, autovacuum, checkpointer, ...")
    row("1. mock's CPU per check (us)", f"{agg(small, 'mock_us'):.1f}", "(reported)", True,
        f"mock ceiling {R['ceiling']['rps']:,} req/s on one core")
    row("2. ratio demper / Python baseline (same run)", f"{ratio:.1f}x", f">= {TARGETS['ratio']}x",
        ratio >= TARGETS["ratio"], f"baseline {bt:,.0f} checks/s, median of {len(base)}")
    rate = R["rate"]
    rmax = max(r["max_window"] for r in rate)
    smax = max(r["sliding_max"] for r in rate)
    rmean = median([r["mean"] for r in rate])
    lim = rate[0]["rps"] + rate[0]["burst"]
    row(f"3. rate fidelity: max requests in a 1 s window (rate 10, burst {rate[0]['burst']})",
        f"{rmax} (sliding: {smax})", f"<= {lim}", rmax <= lim and smax <= lim, f"{len(rate)} runs of {rate[0]['seconds']} s")
    err = abs(rmean - 10) / 10 * 100
    smean = median([r["steady_mean"] for r in rate])
    serr = abs(smean - 10) / 10 * 100
    row("3. rate fidelity: mean requests per second (whole window / after the first second)",
        f"{rmean:.2f} ({err:.2f} % off) / {smean:.2f} ({serr:.2f} % off)", "within 2 % of 10",
        serr <= TARGETS["rate_mean_pct"], "the whole-window mean includes the initial burst of `burst` requests")
    fr = R["fresh"]
    row(f"4. freshness p50 / p99 / max between checks ({fr['n']:,} products, interval {fr['interval']} s)",
        f"{fr['p50']:.2f} / {fr['p99']:.2f} / {fr['max']:.2f} s", f"p99 <= {1.1 * fr['interval']:.1f} s",
        fr["p99"] <= 1.1 * fr["interval"], f"p99 = {fr['p99'] / fr['interval']:.3f} x interval")
    row("4. products starved (never checked, or late > 1.5 intervals at the end)",
        f"{fr['never_checked']} / {fr['late_at_end']}", "0", fr["never_checked"] == 0 and fr["late_at_end"] == 0)
    c_small, c_huge = R["claim_small"], R["claim_huge"]
    cr = c_huge["ms"] / c_small["ms"]
    row(f"5. claim of 500 at {CFG['huge']:,} products (ms)", f"{c_huge['ms']:.2f} vs {c_small['ms']:.2f} at "
        f"{CFG['small']:,} = {cr:.2f}x", f"<= {TARGETS['claim_ratio']}x", cr <= TARGETS["claim_ratio"],
        "index range scan on product_due_idx: " + ("yes" if c_huge["index_scan"] else "NO"))
    if R.get("huge_tp"):
        ht = agg(R["huge_tp"], "checks_per_s")
        row(f"5. throughput with {CFG['huge']:,} products ({CFG['huge_due']:,} due) vs {CFG['small']:,}",
            f"{ht:,.0f} vs {tp:,.0f} = {ht / tp:.2f}x", "(reported)", True,
            f"worker {agg(R['huge_tp'], 'worker_us'):.1f} us/check")
    if R.get("rss"):
        rs = R["rss"]
        row(f"6. worker RssAnon growth over {rs['checks']:,} checks (end of large run 1 -> end of the last)",
            f"{rs['growth'] * 100:.1f} %",
            f"< {TARGETS['rss_growth'] * 100:.0f} %", rs["growth"] < TARGETS["rss_growth"],
            f"{rs['from_kb'] / 1024:.1f} -> {rs['to_kb'] / 1024:.1f} MiB; {rs['start_kb'] / 1024:.1f} MiB at the "
            f"start of run 1, peak {rs['peak_kb'] / 1024:.1f} MiB while up to 100,256 products are claimed ahead (VmRSS {rs['rss_from'] / 1024:.0f} -> "
            f"{rs['rss_to'] / 1024:.0f} MiB incl. shared buffers touched)")
    rows.append(("7. several workers (demper.workers = N)", "not measured", "-", "skipped",
                 "not implemented yet: the library registers one worker"))

    with open(os.path.join(out, "SUMMARY.md"), "w") as f:
        f.write(f"# demper benchmark results ({'QUICK smoke run' if QUICK else 'full run'})\n\n")
        f.write(f"Run {time.strftime('%Y-%m-%d %H:%M:%S %Z')} on {os.cpu_count()} CPUs "
                f"({open('/proc/cpuinfo').read().split('model name')[1].split(':')[1].splitlines()[0].strip()}), "
                f"PostgreSQL 15, sizes {json.dumps(CFG)}.\n\n")
        f.write("| figure | value | target | result | notes |\n|---|---|---|---|---|\n")
        for r in rows:
            f.write("| " + " | ".join(str(x) for x in r) + " |\n")
        f.write("\n![throughput](throughput.png)\n![throughput over a large run](large_run.png)\n"
                "![staleness](staleness.png)\n![rate](rate.png)\n\n")
        f.write("## Throughput runs (every run)\n\n| run | products | seconds | checks/s | worker us/check "
                "(user+sys) | other postgres us/check | mock us/check | load avg |\n|---|---|---|---|---|---|---|---|\n")
        for r in small + R.get("large", []) + R.get("huge_tp", []):
            f.write(f"| {r['label']} | {r['n']:,} | {r['seconds']:.2f} | {r['checks_per_s']:,.0f} | "
                    f"{r['worker_us']:.1f} ({r['worker_user_us']:.1f}+{r['worker_sys_us']:.1f}) | "
                    f"{r['pg_other_us']:.1f} | {r['mock_us']:.1f} | {r['loadavg']} |\n")
        f.write("\n## Python baseline runs\n\n| run | products | seconds | checks/s | python us/check | "
                "postgres us/check | mock us/check | failed | load avg |\n|---|---|---|---|---|---|---|---|---|\n")
        for i, r in enumerate(base):
            f.write(f"| baseline {i + 1} | {r['n']:,} | {r['seconds']:.2f} | {r['checks_per_s']:,.0f} | "
                    f"{r['python_us']:.0f} | {r['pg_us']:.0f} | {r['mock_us']:.1f} | {r['failed']} | {r['loadavg']} |\n")
        f.write(f"\nMock ceiling (bench/mock_ceiling.sh, same run): {R['ceiling']['rps']:,} req/s "
                f"(runs {R['ceiling']['runs']}), mock CPU {R['ceiling']['cpu']} % of its core.\n")
        f.write("\n## Rate fidelity runs\n\n| run | requests | mean/s | max 1 s bin | sliding 1 s max | mock's "
                "max_rps_window | load avg |\n|---|---|---|---|---|---|---|\n")
        for i, r in enumerate(rate):
            f.write(f"| {i + 1} | {r['requests']} | {r['mean']:.2f} ({r['steady_mean']:.2f}) | {r['max_window']} | {r['sliding_max']} | "
                    f"{r['mock_max_rps_window']} | {r['loadavg']} |\n")
        f.write(f"\n## Freshness\n\n{fr['n']:,} products, interval {fr['interval']} s, {fr['seconds']} s, "
                f"rate limit {fr['rps']:.0f}/s: {fr['checks']:,} checks, {fr['gaps']:,} gaps; min {fr['min']:.2f} s, "
                f"p50 {fr['p50']:.2f} s, p99 {fr['p99']:.2f} s, max {fr['max']:.2f} s; never checked "
                f"{fr['never_checked']}, late at the end {fr['late_at_end']}. Load {fr['loadavg']}.\n")
        f.write(f"\n## Claim\n\nMedian per claim of 500 (the worker's own statement from src/pg/catalog.cpp, "
                f"prepared, psql \\timing): {c_small['ms']:.2f} ms at {CFG['small']:,} products, "
                f"{c_huge['ms']:.2f} ms at {CFG['huge']:,} ({cr:.2f}x). Plan at {CFG['huge']:,}:\n\n```\n"
                f"{c_huge['plan'].strip()}\n```\n")
        if R.get("profile"):
            pr = R["profile"]
            f.write(f"\n## Worker profile (perf, {pr['seconds']} s of a {pr['n']:,}-product throughput run, "
                    f"{pr['samples']} samples)\n\nShare of the worker's user-space CPU samples by the phase on "
                    "the sample's stack (perf record --call-graph dwarf; kernel time is not sampled, it is the "
                    "worker's sys time above):\n\n| phase | share |\n|---|---|\n")
            for k, v in pr["phases"]:
                f.write(f"| {k} | {v:.1f} % |\n")
            f.write("\nInside the SQL (share of all samples; a sample counts once, first match in this order):"
                    "\n\n| part | share |\n|---|---|\n")
            for k, v in pr["subs"]:
                f.write(f"| {k} | {v:.1f} % |\n")
            f.write("\nBy shared object (self): " + ", ".join(f"{d} {v:.1f} %" for d, v in pr["dsos"]) +
                    "\n\nFull report: profile_worker.txt.\n")
        f.write("\n## Load average at each measurement\n\n")
        for what, la in LOADS:
            f.write(f"- {what}: {la}\n")
        if NOTES:
            f.write("\n## Notes\n\n" + "\n".join("- " + n for n in NOTES) + "\n")

    # CSV and plot data
    with open(os.path.join(out, "throughput.csv"), "w") as f:
        f.write("run,products,seconds,checks_per_s,worker_us,worker_user_us,worker_sys_us,pg_other_us,mock_us\n")
        for r in small + R.get("large", []) + R.get("huge_tp", []):
            f.write(f"{r['label']},{r['n']},{r['seconds']:.3f},{r['checks_per_s']:.1f},{r['worker_us']:.2f},"
                    f"{r['worker_user_us']:.2f},{r['worker_sys_us']:.2f},{r['pg_other_us']:.2f},{r['mock_us']:.2f}\n")
        for i, r in enumerate(base):
            f.write(f"baseline{i + 1},{r['n']},{r['seconds']:.3f},{r['checks_per_s']:.1f},,,,{r['pg_us']:.2f},"
                    f"{r['mock_us']:.2f}\n")
    with open(os.path.join(out, "throughput_bars.dat"), "w") as f:
        f.write(f'"Python baseline\\n{CFG["small"]:,}" {bt:.0f}\n"demper\\n{CFG["small"]:,}" {tp:.0f}\n')
        if R.get("large"):
            f.write(f'"demper\\n{CFG["large"]:,}" {agg(R["large"], "checks_per_s"):.0f}\n')
        if R.get("huge_tp"):
            f.write(f'"demper\\n{CFG["huge_due"]:,} due of\\n{CFG["huge"]:,}" {agg(R["huge_tp"], "checks_per_s"):.0f}\n')
    if R.get("series"):
        with open(os.path.join(out, "large_run.csv"), "w") as f:
            f.write("seconds,checks,vmrss_kb,rssanon_kb,checks_per_s\n")
            prev = (0, 0)
            for t, done, rss, anon in R["series"]:
                rate_ = (done - prev[1]) / (t - prev[0]) if t > prev[0] else 0
                f.write(f"{t:.2f},{done},{rss or 0},{anon or 0},{rate_:.0f}\n")
                prev = (t, done)
    gaps = fr["gap_list"]
    with open(os.path.join(out, "staleness.csv"), "w") as f:
        f.write("gap_seconds,cumulative_share\n")
        step = max(1, len(gaps) // 2000)
        for i in range(0, len(gaps), step):
            f.write(f"{gaps[i]:.4f},{(i + 1) / len(gaps):.5f}\n")
        if gaps:
            f.write(f"{gaps[-1]:.4f},1.0\n")
    with open(os.path.join(out, "rate.csv"), "w") as f:
        f.write("second,requests\n")
        for i, c in enumerate(rate[0]["bins"]):
            f.write(f"{i},{c}\n")
    with open(os.path.join(out, "results.json"), "w") as f:
        strip = lambda d: {k: v for k, v in d.items() if k not in ("gap_list", "plan")}
        json.dump({k: ([strip(x) for x in v] if isinstance(v, list) and v and isinstance(v[0], dict)
                       else strip(v) if isinstance(v, dict) else None)
                   for k, v in R.items() if k != "series"} | {"cfg": CFG, "loads": LOADS, "notes": NOTES},
                  f, indent=1, default=str)
    if shutil.which("gnuplot"):
        p = subprocess.run(["gnuplot", "-e", f"outdir='{out}'; interval={fr['interval']}; rate={rate[0]['rps']}; "
                            f"burst={rate[0]['burst']}", os.path.join(HERE, "plots.gp")],
                           capture_output=True, text=True)
        if p.returncode != 0:
            log("gnuplot failed: " + p.stderr[-500:])


def main():
    ap = argparse.ArgumentParser()
    ap.add_argument("--work", required=True)
    ap.add_argument("--out", required=True)
    ap.add_argument("--mock", required=True)
    args = ap.parse_args()
    t_start = time.time()
    log(f"demper bench ({'quick' if QUICK else 'full'}): {json.dumps(CFG)}")
    R = {}
    R["ceiling"] = mock_ceiling(args.mock, CFG["ceiling_runs"], CFG["ceiling_duration"])

    mock = Mock(args.work, "mock", args.mock)
    mock_logged = Mock(args.work, "mock_logged", args.mock, os.path.join(args.work, "mock_requests.log"))
    cluster = Cluster(args.work)
    cluster.start(mock)
    try:
        db = DB(cluster.dsn())
        db.exe("CREATE EXTENSION demper")
        db.exe(f"INSERT INTO demper.store (name, merchant_id) VALUES ('Bench shop', '{OWN}')")
        cluster.worker_pid = worker_pid(db)

        log(f"== {CFG['small']:,} products: throughput vs the Python baseline (interleaved, same mock, same rows)")
        load_products(db, 1, CFG["small"])
        throughput_run(db, cluster, mock, CFG["small"], "warm-up")
        R["small"], R["baseline"] = [], []
        for i in range(CFG["small_runs"]):
            R["small"].append(throughput_run(db, cluster, mock, CFG["small"], f"demper {CFG['small'] // 1000}k #{i + 1}"))
            if i < CFG["baseline_runs"]:
                R["baseline"].append(baseline_run(db, cluster, mock, CFG["small"]))

        log("== claim at the small size")
        R["claim_small"] = claim_timing(cluster, db, CFG["claim_reps"], f"{CFG['small']:,}")

        log("== rate fidelity")
        R["rate"] = []
        for _ in range(CFG["rate_runs"]):
            R["rate"].append(rate_run(db, mock_logged, CFG["rate_seconds"]))
            drain(db)
        log("== freshness")
        R["fresh"] = freshness_run(db, mock_logged, CFG["fresh_n"], CFG["fresh_interval"], CFG["fresh_seconds"])
        drain(db)
        set_conf(db, offers_url=mock.url, check_interval="7d")

        log(f"== {CFG['large']:,} products: throughput, worker memory")
        load_products(db, CFG["small"] + 1, CFG["large"])
        R["large"], R["series"], ends = [], [], []
        for i in range(CFG["large_runs"]):
            series = []
            R["large"].append(throughput_run(db, cluster, mock, CFG["large"], f"demper {CFG['large'] // 1000}k #{i + 1}",
                                             series=series))
            R["series"] += [(t + (R["series"][-1][0] if R["series"] else 0), d + i * CFG["large"], r, a)
                            for t, d, r, a in series]
            ends.append((proc_status(cluster.worker_pid, "RssAnon"), proc_status(cluster.worker_pid, "VmRSS")))
        # The worker claims up to max_inflight + min(2 s of the rate, 100,000) products ahead, each with
        # its request: RssAnon climbs to that high-water mark in the first run. A leak shows as growth
        # from the end of the first large run to the end of the last (the same state: nothing in check).
        peak = max((x[3] or 0) for x in R["series"]) if R["series"] else 0
        if len(ends) >= 2:
            R["rss"] = dict(checks=CFG["large"] * (len(ends) - 1), from_kb=ends[0][0], to_kb=ends[-1][0],
                            rss_from=ends[0][1], rss_to=ends[-1][1], peak_kb=peak,
                            start_kb=R["series"][0][3] if R["series"] else 0)
            R["rss"]["growth"] = (R["rss"]["to_kb"] - R["rss"]["from_kb"]) / R["rss"]["from_kb"]
            log(f"  worker RssAnon {R['rss']['from_kb']} kB after run 1 -> {R['rss']['to_kb']} kB after "
                f"{R['rss']['checks']:,} more checks ({R['rss']['growth'] * 100:.1f} %), peak {peak} kB")
        log("== profile of the worker")
        n_profile = min(CFG["large"], int(agg(R["small"], "checks_per_s") * (CFG["profile_seconds"] + 3)))
        R["profile"] = profile_run(db, cluster, mock, n_profile, CFG["profile_seconds"], args.out)
        drain(db)

        log(f"== {CFG['huge']:,} products: claim and throughput")
        load_products(db, CFG["large"] + 1, CFG["huge"])
        R["claim_huge"] = claim_timing(cluster, db, CFG["claim_reps"], f"{CFG['huge']:,}")
        R["huge_tp"] = [throughput_run(db, cluster, mock, CFG["huge_due"], f"demper {CFG['huge_due'] // 1000}k due "
                                       f"of {CFG['huge']:,} #{i + 1}") for i in range(CFG["huge_runs"])]
        # the same due set at the small table size, just before: a ratio from the same run
        write_results(args.out, R)
        log(f"done in {time.time() - t_start:.0f} s; results in {args.out}")
    finally:
        cluster.stop()
        mock.stop()
        mock_logged.stop()


if __name__ == "__main__":
    main()
