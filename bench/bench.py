#!/usr/bin/env python3
"""bench.py: demper's benchmark suite (issue 8). Run by bench/run.sh as the postgres user.

One throw-away cluster (initdb in a temp dir), two mock marketplaces (one without a request log for
throughput, one with a log for rate fidelity, freshness and several workers), one catalogue that grows
10k -> 1M -> 10M products; benchmark 7 adds one cluster of 10k products per demper.workers value.
Every figure is the median of several runs; figures that compare are ratios measured in the same run.
Writes tables (SUMMARY.md, CSV), gnuplot data and a profile of the worker into --out.
BENCH_ONLY=<names> runs some benchmarks only (BENCHMARKS below).
"""
import argparse
import asyncio
import json
import math
import os
import re
import resource
import shutil
import signal
import statistics
import subprocess
import sys
import time
import urllib.request

import asyncpg

import market_bench

# PostgreSQL's programs: the system's, or those of a private tree (bench/run.sh with PG_CONFIG, or
# BENCH_PGBIN: the binaries of a private copy whose own lib directory holds the demper.so to measure).
PGBIN = os.environ.get("BENCH_PGBIN", "/usr/lib/postgresql/15/bin")
HERE = os.path.dirname(os.path.abspath(__file__))
ROOT = os.path.dirname(HERE)
HZ = os.sysconf("SC_CLK_TCK")
QUICK = os.environ.get("BENCH_QUICK") == "1"

# Sizes and repetitions: quick is a ~4 minute smoke run, full stays under ~30 minutes.
if QUICK:
    CFG = dict(small=10_000, small_runs=3, baseline_runs=2, large=100_000, large_runs=2,
               huge=1_000_000, huge_due=10_000, huge_runs=3, rate_seconds=20, rate_runs=1,
               fresh_n=1000, fresh_interval=15, fresh_seconds=50, claim_reps=10,
               ceiling_runs=1, ceiling_duration="4s", profile_seconds=6, workers_runs=2,
               market_products=250, market_scale=40, market_warmup=4 * 3600, market_measure=5400, market_budget=10,
               market_seed=1, soak_seconds=180, soak_every=12)
else:
    CFG = dict(small=10_000, small_runs=5, baseline_runs=3, large=1_000_000, large_runs=2,
               huge=10_000_000, huge_due=10_000, huge_runs=5, rate_seconds=60, rate_runs=2,
               fresh_n=10_000, fresh_interval=30, fresh_seconds=150, claim_reps=19,
               ceiling_runs=3, ceiling_duration="8s", profile_seconds=10, workers_runs=3,
               market_products=500, market_scale=20, market_warmup=6 * 3600, market_measure=7200, market_budget=10,
               market_seed=1, soak_seconds=600, soak_every=12)
CFG.update({k[6:].lower(): int(v) for k, v in os.environ.items()
            if k.startswith("BENCH_") and k[6:].lower() in CFG and v.isdigit()})

# Benchmark 7: demper.workers values (BENCH_WORKER_COUNTS=1,2,4,8); the first is the reference of the ratio.
WORKER_COUNTS = tuple(int(x) for x in os.environ.get("BENCH_WORKER_COUNTS", "1,2,4").split(",") if x.strip())
# BENCH_ONLY=workers,rate runs only those benchmarks (names below; see bench/README.md). `soak` runs
# only when named: ten minutes of faults (bench/soak.py), neither in a full run nor in CI.
BENCHMARKS = ("ceiling", "throughput", "baseline", "workers", "claim", "rate", "freshness", "market", "large",
              "profile", "soak")
ONLY = {x.strip() for x in os.environ.get("BENCH_ONLY", "").split(",") if x.strip()}

TARGETS = dict(checks_per_s=5000, ratio=10, worker_us=50, fresh_p99=1.1, claim_ratio=2.0,
               rss_growth=0.10, rate_mean_pct=2.0)
OWN = "OWN1"
STALL_SECONDS = 120  # a throughput run with no progress for this long stops the bench
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


BUSY_PATTERNS = (r"(^|/)prove( |$)", r"pg_regress", r"scripts/test\.sh", r"scripts/isolation\.sh",
                 r"bench/bench\.py")
BUSY_CPU = float(os.environ.get("BENCH_BUSY_CPU", "25"))  # % of one core used by other processes
CLUSTERS = []  # the bench's own clusters (their postmasters and children are ours, not noise)


def own_pids(ppid):
    """bench.py, its descendants (mocks, psql, perf, the baseline), its ancestors (runuser, run.sh)
    and the bench clusters' postmasters with their children."""
    roots = {os.getpid()}
    for c in CLUSTERS:
        try:
            roots.add(c.postmaster_pid())
        except (OSError, ValueError):
            pass
    own = set(roots)
    changed = True
    while changed:
        changed = False
        for pid, parent in ppid.items():
            if parent in own and pid not in own:
                own.add(pid)
                changed = True
    pid = os.getppid()
    while pid > 1:
        own.add(pid)
        pid = ppid.get(pid, 0)
    return own


def cpu_ticks():
    """{pid: (ppid, utime+stime, cutime+cstime, command name)} of every process."""
    out = {}
    for d in os.listdir("/proc"):
        if d.isdigit():
            try:
                with open(f"/proc/{d}/stat") as f:
                    s = f.read()
            except OSError:
                continue
            rest = s[s.rindex(")") + 2:].split()
            out[int(d)] = (int(rest[1]), int(rest[11]) + int(rest[12]), int(rest[13]) + int(rest[14]),
                           s[s.index("(") + 1:s.rindex(")")])
    return out


def foreign_cpu(sample=1.0):
    """CPU used by processes that are not the bench's own during `sample` seconds: (% of one core,
    the heaviest as "name pid %"). A process born during the sample (a compiler run under make)
    counts whole. Children that ended are not counted: their parent's cutime would bring in their
    whole lifetime (a postmaster reaping a long-lived backend)."""
    a = cpu_ticks()
    time.sleep(sample)
    b = cpu_ticks()
    own = own_pids({pid: v[0] for pid, v in b.items()})
    use = []
    for p, (_, t, _, name) in b.items():
        if p not in own:
            use.append((t - (a[p][1] if p in a else 0), p, name))
    use.sort(reverse=True)
    pct = lambda ticks: ticks / HZ / sample * 100
    total = pct(sum(t for t, _, _ in use))
    top = ", ".join(f"{name} {pid} {pct(t):.0f} %" for t, pid, name in use[:3] if pct(t) >= 5)
    return total, top


def start_time(pid):
    """Start time of a process (clock ticks since boot; a vanished one sorts last)."""
    try:
        with open(f"/proc/{pid}/stat") as f:
            s = f.read()
        return int(s[s.rindex(")") + 2:].split()[19])
    except (OSError, ValueError, IndexError):
        return float("inf")


def wait_quiet(what):
    """Waits until the bench is the only heavy thing on the box: no test suite (prove, pg_regress,
    scripts/test.sh, scripts/isolation.sh) nor an earlier bench.py runs (pgrep -f), and the processes that
    are not the bench's own use less than BENCH_BUSY_CPU % of one core together. At most BENCH_WAIT_MAX
    seconds; a measurement taken anyway is listed under Notes."""
    limit = float(os.environ.get("BENCH_WAIT_MAX", "900"))
    start = time.time()
    announced = settled = False
    while True:
        busy = []
        mine = own_pids({pid: v[0] for pid, v in cpu_ticks().items()})
        for pat in BUSY_PATTERNS:
            r = subprocess.run(["pgrep", "-f", pat], capture_output=True, text=True)
            pids = [p for p in r.stdout.split() if int(p) not in mine]
            if "bench" in pat:  # two benches would wait for each other: the later one waits
                pids = [p for p in pids if start_time(int(p)) < start_time(os.getpid())]
            if pids:
                busy.append(pat)
        cpu, top = foreign_cpu()
        if cpu >= BUSY_CPU:
            busy.append(f"other processes use {cpu:.0f} % of a core: {top}")
        if not busy:
            if not announced or settled:
                break
            time.sleep(3)  # after a wait, let the load settle, then look again
            settled = True
            continue
        settled = False
        if not announced:
            log(f"waiting for a quiet machine before {what} ({'; '.join(busy)})")
            announced = True
        if time.time() - start > limit:
            log(f"still busy after {limit:.0f} s: measuring {what} anyway (noted in the results)")
            NOTES.append(f"{what}: measured while the machine was busy ({'; '.join(busy)})")
            break
        time.sleep(1.5)
    LOADS.append((what, f"{loadavg()}; other processes {cpu:.0f} % of a core"))


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
    """utime+stime of the workers (every pid in cluster.worker_pids; one unless demper.workers > 1), of
    every other process of the cluster (postmaster's children, including exited ones through the
    postmaster's cutime/cstime), of the mock and of our poller."""

    def __init__(self, cluster, mock_pid, poller_pid):
        pm = cluster.postmaster_pid()
        ticks = {}
        for d in os.listdir("/proc"):
            if d.isdigit():
                st = proc_stat(int(d))
                if st and st["ppid"] == pm:
                    ticks[int(d)] = st
        pst = proc_stat(pm)
        self.workers = {pid: ((ticks[pid]["utime"], ticks[pid]["stime"]) if pid in ticks else (0, 0))
                        for pid in cluster.worker_pids}
        self.worker_u = sum(u for u, _ in self.workers.values())
        self.worker_s = sum(s for _, s in self.workers.values())
        poll = ticks.get(poller_pid)
        self.poller = (poll["utime"] + poll["stime"]) if poll else 0
        self.cluster = sum(t["utime"] + t["stime"] for t in ticks.values()) + \
            pst["utime"] + pst["stime"] + pst["cutime"] + pst["cstime"]
        m = proc_stat(mock_pid)
        self.mock = (m["utime"] + m["stime"]) if m else 0
        self.t = time.time()

    @staticmethod
    def diff(a, b, checks):
        """CPU microseconds per check between snapshots a and b (the workers summed), and each
        worker's share of the workers' CPU."""
        per = lambda ticks: ticks / HZ / max(checks, 1) * 1e6
        worker = (b.worker_u - a.worker_u) + (b.worker_s - a.worker_s)
        others = (b.cluster - a.cluster) - worker - (b.poller - a.poller)
        each = {pid: sum(b.workers[pid]) - sum(a.workers.get(pid, (0, 0))) for pid in b.workers}
        return dict(worker_us=per(worker), worker_user_us=per(b.worker_u - a.worker_u),
                    worker_sys_us=per(b.worker_s - a.worker_s), pg_other_us=per(others),
                    mock_us=per(b.mock - a.mock), wall=b.t - a.t,
                    worker_cpu_share={pid: t / max(worker, 1) for pid, t in each.items()})


def requests_sent(port):
    """{pid: {local port: data segments sent}} of the TCP connections to 127.0.0.1:port, from `ss`
    (tcp_info of each socket, with its owning process: we run as the workers' user). A small offers
    request is one segment, so the growth of data_segs_out per pid counts each worker's requests."""
    if not shutil.which("ss"):
        return None
    out = subprocess.run(["ss", "-tnpiH", "dst", f"127.0.0.1:{port}"], capture_output=True, text=True).stdout
    res, cur = {}, None
    for line in out.splitlines():
        if not line.startswith((" ", "\t")):
            m = re.search(r"127\.0\.0\.1:(\d+)\s+127\.0\.0\.1:\d+\s+users:\(\(\"[^\"]*\",pid=(\d+)", line)
            cur = (int(m.group(2)), int(m.group(1))) if m else None
        elif cur:
            m = re.search(r"data_segs_out:(\d+)", line)
            res.setdefault(cur[0], {})[cur[1]] = int(m.group(1)) if m else 0
            cur = None
    return res


def requests_by_worker(before, after, pids):
    """Requests each worker sent between two requests_sent() snapshots (a connection opened in
    between counts from 0; one closed in between is lost, hence the total is reported too)."""
    if before is None or after is None:
        return None
    return {pid: sum(segs - before.get(pid, {}).get(lport, 0) for lport, segs in after.get(pid, {}).items())
            for pid in pids}


# --------------------------------------------------------------------------------------------
# cluster, mocks, database


def raise_nofile():
    """The mock's open-file limit up to the hard limit: N workers keep N x max_inflight (256)
    connections open to it, over the usual soft limit of 1,024 from N = 4 (the mock then cannot
    accept, and spins on EMFILE)."""
    soft, hard = resource.getrlimit(resource.RLIMIT_NOFILE)
    resource.setrlimit(resource.RLIMIT_NOFILE, (hard, hard))


class Mock:
    def __init__(self, work, name, binary, log_file=None):
        self.dir = work
        ports = os.path.join(work, f"{name}.ports")
        cmd = [binary, "--listen", "127.0.0.1:0", "--port-file", ports, "--synthetic", "10000000",
               "--own-merchant", OWN]
        if log_file:
            cmd += ["--log", log_file]
        self.log = log_file
        self.proc = subprocess.Popen(cmd, stdout=subprocess.DEVNULL, preexec_fn=raise_nofile,
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
    """A throw-away cluster in the work dir: `data` (every benchmark but 7) or `data_w<N>` (benchmark 7:
    demper.workers = N). Unix socket only, in the work dir."""

    def __init__(self, work, name="data", port_offset=0):
        self.work = work
        self.name = name
        self.data = os.path.join(work, name)
        self.log = os.path.join(work, "server.log" if name == "data" else f"server_{name}.log")
        self.port = 50000 + os.getpid() % 10000 + port_offset
        self.worker_pid = None   # the worker of the single-worker benchmarks
        self.worker_pids = []    # every demper worker (demper.workers of them)

    def start(self, mock, shared_buffers="2GB", workers=1):
        subprocess.run([f"{PGBIN}/initdb", "-D", self.data, "-A", "trust", "-U", "postgres"],
                       check=True, stdout=subprocess.DEVNULL)
        conf = f"""
port = {self.port}
unix_socket_directories = '{self.work}'
listen_addresses = ''
max_connections = 50
# bench tuning (documented in bench/README.md): commits do not wait for the WAL flush, and no
# checkpoint falls inside a measurement (every run starts with an explicit CHECKPOINT)
shared_buffers = '{shared_buffers}'
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
demper.workers = {workers}
demper.enabled = off
demper.offers_url = '{mock.url}'
demper.allowed_hosts = '127.0.0.1'
demper.allow_private_addresses = on
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
        subprocess.run([f"{PGBIN}/pg_ctl", "-D", self.data, "-l", self.log, "-w", "start"], check=True,
                       stdout=subprocess.DEVNULL)
        CLUSTERS.append(self)
        subprocess.run([f"{PGBIN}/createdb", "-h", self.work, "-p", str(self.port), "bench"], check=True)

    def postmaster_pid(self):
        return int(open(os.path.join(self.data, "postmaster.pid")).readline())

    def dsn(self):
        return f"postgresql://postgres@/bench?host={self.work}&port={self.port}"

    def stop(self):
        subprocess.run([f"{PGBIN}/pg_ctl", "-D", self.data, "-m", "fast", "stop"],
                       stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
        if self in CLUSTERS:
            CLUSTERS.remove(self)


class DB:
    """One persistent connection (the poller): a new connection per poll would cost backend CPU."""

    def __init__(self, dsn):
        self.loop = asyncio.new_event_loop()
        self.conn = self.loop.run_until_complete(asyncpg.connect(dsn))
        self.pid = self.conn.get_server_pid()

    def run(self, coro):
        return self.loop.run_until_complete(coro)

    def close(self):
        self.run(self.conn.close())
        self.loop.close()

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


def worker_pids(db, count=1, timeout=60):
    """The pids of the running demper workers, once `count` of them run."""
    deadline = time.time() + timeout
    while time.time() < deadline:
        pids = [r[0] for r in db.rows("SELECT pid FROM pg_stat_activity WHERE backend_type = 'demper worker' "
                                      "ORDER BY pid")]
        if len(pids) == count:
            return pids
        time.sleep(0.2)
        db.exe("SELECT pg_stat_clear_snapshot()")
    raise RuntimeError(f"expected {count} demper workers, found {len(pids)}")


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


def has_schedule(db):
    """From 0.5.0 the due queue is demper.schedule (one row per active product, kept equal to
    product.next_check_at by a trigger): the loads and resets below run with triggers off, so they
    write it themselves. Asked each time: the extension may be updated during the run."""
    return db.val("SELECT to_regclass('demper.schedule') IS NOT NULL")


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
        if has_schedule(db):
            db.exe(f"""INSERT INTO demper.schedule (product_id, next_check_at)
                       SELECT id, next_check_at FROM demper.product
                        WHERE id BETWEEN {a} AND {b} AND bot_active""", timeout=3600)
    db.exe("RESET session_replication_role")
    db.exe("SELECT setval(pg_get_serial_sequence('demper.product', 'id'), $1)", last)
    db.exe("VACUUM (ANALYZE) demper.product", timeout=3600)
    if has_schedule(db):
        db.exe("VACUUM (ANALYZE) demper.schedule", timeout=3600)
    db.exe("CHECKPOINT", timeout=3600)
    log(f"loaded products {first}..{last} in {time.time() - t:.1f} s")
    return time.time() - t


def reset_products(db, n, due_sql="now() - interval '1 minute'"):
    """Makes products 1..n due again at their initial price (every check then changes the price and
    writes one history row, the heaviest apply), outside any measurement."""
    schedule = has_schedule(db)
    # Up to 0.5.0 the lease is in the product row; from 0.6.0 in the schedule row.
    product_lease = db.val("""SELECT count(*) > 0 FROM pg_attribute
                               WHERE attrelid = 'demper.product'::regclass AND attname = 'lease_until'
                                 AND NOT attisdropped""")
    schedule_lease = schedule and not product_lease
    clear = ", lease_token = NULL, lease_until = NULL"
    db.exe("SET session_replication_role = replica")
    db.exe(f"""UPDATE demper.product SET price = {INITIAL_PRICE}, last_check_time = NULL,
                      next_check_at = {due_sql}, last_explain = NULL, check_failures = 0
                      {clear if product_lease else ""}
                WHERE id <= {n}""", timeout=3600)
    # nothing else is due (left over from an earlier benchmark): only products 1..n are checked
    if schedule:
        db.exe(f"""INSERT INTO demper.schedule (product_id, next_check_at)
                   SELECT id, next_check_at FROM demper.product WHERE id <= {n} AND bot_active
                   ON CONFLICT (product_id) DO UPDATE SET next_check_at = EXCLUDED.next_check_at
                   {clear if schedule_lease else ""}""", timeout=3600)
        db.exe(f"""WITH later AS (
                       UPDATE demper.schedule SET next_check_at = now() + interval '30 days'
                              {clear if schedule_lease else ""}
                        WHERE next_check_at < now() + interval '1 day' AND product_id > {n}
                       RETURNING product_id, next_check_at)
                   UPDATE demper.product p SET next_check_at = later.next_check_at
                          {clear if product_lease else ""}
                     FROM later WHERE p.id = later.product_id""", timeout=3600)
    else:
        db.exe(f"""UPDATE demper.product SET next_check_at = now() + interval '30 days'{clear}
                    WHERE bot_active AND next_check_at < now() + interval '1 day' AND id > {n}""", timeout=3600)
    db.exe("RESET session_replication_role")
    db.exe("TRUNCATE demper.price_history")
    db.exe("VACUUM (ANALYZE) demper.product", timeout=3600)
    if schedule:
        db.exe("VACUUM (ANALYZE) demper.schedule", timeout=3600)
    db.exe("CHECKPOINT", timeout=3600)


# --------------------------------------------------------------------------------------------
# the benchmarks


def throughput_run(db, cluster, mock, n, label, series=None, verify=False):
    """All products 1..n due at once, no rate limit: time until every one has been checked. With
    verify (a mock with a request log), also checks that the round fetched and checked every product
    exactly once (benchmark 7)."""
    reset_products(db, n)
    wait_quiet(f"throughput {label}")
    la = loadavg()
    before_checks = checks_done(db)
    sent0 = requests_sent(mock.port) if verify else None
    a = CpuSnapshot(cluster, mock.pid, db.pid)
    t0 = time.time()
    set_conf(db, enabled="on")
    last_print = t0
    progress = (t0, 0)
    while True:
        time.sleep(0.25 if n <= 20000 else 0.5)
        done = checks_done(db) - before_checks
        now = time.time()
        if done != progress[1]:
            progress = (now, done)
        elif now - progress[0] > STALL_SECONDS:
            states = db.rows("SELECT pid, state, last_error FROM demper.status")
            raise RuntimeError(f"{label}: no check for {STALL_SECONDS} s ({done}/{n} done); workers: "
                               f"{[tuple(r) for r in states]}; see server.log (BENCH_KEEP=1 keeps it)")
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
    sent1 = requests_sent(mock.port) if verify else None
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
    if verify:
        r.update(verify_round(db, mock, n, t0, before_checks))
        reqs = requests_by_worker(sent0, sent1, cluster.worker_pids)
        r["requests_by_worker"] = reqs
        r["workers"] = len(cluster.worker_pids)
    log(f"  {label}: {r['checks_per_s']:.0f} checks/s, worker{'s' if len(cluster.worker_pids) > 1 else ''} "
        f"{r['worker_us']:.1f} us/check (user {r['worker_user_us']:.1f}, sys {r['worker_sys_us']:.1f}), other "
        f"postgres {r['pg_other_us']:.1f} us, mock {r['mock_us']:.1f} us, unchecked {unchecked}, load {la}")
    if verify:
        shares = "/".join(f"{100 * v:.0f}" for v in sorted(r["worker_cpu_share"].values(), reverse=True))
        reqs = "/".join(str(v) for v in sorted((r["requests_by_worker"] or {}).values(), reverse=True))
        log(f"    fetched twice {r['fetched_twice']}, never fetched {r['never_fetched']}, checks counted "
            f"{r['db_checks']}, products without exactly one history row {r['history_not_one']}; "
            f"requests by worker {reqs or '?'}, CPU shares {shares} %")
    return r


def verify_round(db, mock, n, since, before_checks):
    """Every product 1..n fetched exactly once in the round (the mock's request log since `since`) and
    checked exactly once (the stats counter grew by n, every product has a last_check_time and, as
    every check changes the price, exactly one price_history row)."""
    deadline = time.time() + 30
    while time.time() < deadline and db.val("SELECT in_flight + queued FROM demper.demper_stats()") > 0:
        time.sleep(0.1)  # a product fetched a second time would still be in flight
    time.sleep(0.5)
    per = {}
    for _, code in mock_times(mock, since):
        per[code] = per.get(code, 0) + 1
    codes = {str(i) for i in range(1, n + 1)}
    twice = [c for c, k in per.items() if k > 1]
    row = db.rows(f"""SELECT count(*) FILTER (WHERE p.last_check_time IS NULL),
                             count(*) FILTER (WHERE coalesce(h.c, 0) <> 1),
                             coalesce(sum(h.c), 0)
                        FROM demper.product p
                        LEFT JOIN (SELECT product_id, count(*) AS c FROM demper.price_history
                                    GROUP BY product_id) h ON h.product_id = p.id
                       WHERE p.id <= {n}""")[0]
    return dict(fetched_twice=len(twice), extra_fetches=sum(per[c] - 1 for c in twice),
                never_fetched=len(codes - per.keys()), foreign_fetched=len(per.keys() - codes),
                fetches=sum(per.values()), db_checks=checks_done(db) - before_checks,
                db_unchecked=row[0], history_not_one=row[1], history_rows=row[2],
                twice_sample=sorted(twice, key=int)[:10])


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
    """The worker's claim statement as it prepares it: src/pg/catalog_checks.cpp names its parameters, and
    scripts/isolation.sh prints it with them numbered in their declared order (limit, lease
    token, lease seconds)."""
    out = subprocess.run(["bash", os.path.join(ROOT, "scripts/isolation.sh")],
                         env=dict(os.environ, DEMPER_ISOLATION_PRINT="kClaimSql"),
                         check=True, capture_output=True, text=True)
    return out.stdout


def claim_timing(cluster, db, reps, label):
    """Time per claim of 500 due products, the worker's own statement (taken from catalog_checks.cpp),
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
             index_scan=bool(re.search(r"Index Scan using \w*due_idx", plan)))
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


def workers_bench(work, logged, n, counts, runs, library):
    """Benchmark 7: benchmark 1's throughput run at demper.workers = N for each N of `counts`, against
    the mock with a request log, so that every run also checks that no product was fetched twice (or
    never) in the round. demper.workers is read at server start: one cluster per N (the same settings,
    shared_buffers 512MB, n products), all started now, so that they load the same library (a restart
    later would load whatever is installed by then) and no run waits for a restart. One warm-up run
    each, then rounds in a mirrored order (1 2 4, 4 2 1, ...: drift cancels); the ratio to the first N
    is taken within a round. Returns the results."""
    lib = library_state()
    res = dict(counts=list(counts), runs={c: [] for c in counts}, rates={}, ratios={c: [] for c in counts},
               library=lib)
    if lib["mtime"] != library["mtime"]:
        NOTES.append(f"7. ran on demper.so built {lib['mtime']}, installed after the bench started (built "
                     f"{library['mtime']}): its clusters started later")
    clusters, dbs = {}, {}
    try:
        for i, c in enumerate(counts):
            cl = Cluster(work, f"data_w{c}", port_offset=1 + i)
            cl.start(logged, shared_buffers="512MB", workers=c)
            clusters[c] = cl
            db = dbs[c] = DB(cl.dsn())
            db.exe("CREATE EXTENSION demper")
            db.exe(f"INSERT INTO demper.store (name, merchant_id) VALUES ('Bench shop', '{OWN}')")
            cl.worker_pids = worker_pids(db, c)
            cl.worker_pid = cl.worker_pids[0]
            load_products(db, 1, n)
        for c in counts:
            throughput_run(dbs[c], clusters[c], logged, n, f"workers={c} warm-up")
            res["rates"][c] = [round(r[0], 1) for r in dbs[c].rows(
                "SELECT effective_rate FROM demper.http_status() WHERE kind = 'egress' ORDER BY name")]
        for rnd in range(runs):
            order = list(counts) if rnd % 2 == 0 else list(reversed(counts))
            tps = {}
            for c in order:
                r = throughput_run(dbs[c], clusters[c], logged, n, f"workers={c} #{rnd + 1}", verify=True)
                r["round"] = rnd + 1
                res["runs"][c].append(r)
                tps[c] = r["checks_per_s"]
            for c in tps:
                res["ratios"][c].append(tps[c] / tps[counts[0]])
    finally:
        for c, db in dbs.items():
            db.close()
        for cl in clusters.values():
            cl.stop()
    return res


def git_state():
    """The demper tree's commit, '+dirty' when tracked files changed or untracked files appeared
    (bench/results excluded: the bench writes it), and the changed paths."""
    def git(*a):
        return subprocess.run(["git", "-c", "safe.directory=*", "-C", ROOT, *a], capture_output=True, text=True)
    r = git("rev-parse", "--short", "HEAD")
    if r.returncode != 0:
        return dict(commit="unknown", dirty=[], error=r.stderr.strip()[-200:])
    st = git("status", "--porcelain", "--", ".", ":(exclude)bench/results").stdout.splitlines()
    dirty = [line[3:] for line in st if line.strip()]
    when = git("log", "-1", "--format=%cd", "--date=format:%Y-%m-%d %H:%M:%S").stdout.strip()
    return dict(commit=r.stdout.strip() + ("+dirty" if dirty else ""), dirty=dirty, date=when)


def library_state():
    """The installed demper.so (what the bench measures: BENCH_SKIP_SETUP=1 does not rebuild it)."""
    pg_config = os.path.join(PGBIN, "pg_config")
    libdir = subprocess.run([pg_config if os.path.exists(pg_config) else "pg_config", "--pkglibdir"],
                            capture_output=True, text=True).stdout.strip() or "/usr/lib/postgresql/15/lib"
    path = os.path.join(libdir, "demper.so")
    try:
        st = os.stat(path)
    except OSError:
        return dict(path=path, mtime="missing")
    return dict(path=path, mtime=time.strftime("%Y-%m-%d %H:%M:%S", time.localtime(st.st_mtime)), size=st.st_size)


# --------------------------------------------------------------------------------------------
# report


def agg(runs, key):
    return median([r[key] for r in runs])


def fmt_ratio(x):
    return "-" if x != x else f"{x:.2f}x"


def worker_split(r):
    """'5,103/4,897 requests; CPU 51/49 %' for one run of several workers, biggest first."""
    reqs = r.get("requests_by_worker") or {}
    req = "/".join(f"{v:,}" for v in sorted(reqs.values(), reverse=True))
    cpu = "/".join(f"{100 * v:.0f}" for v in sorted(r["worker_cpu_share"].values(), reverse=True))
    return (f"{req} requests (sum {sum(reqs.values()):,}); " if reqs else "") + f"CPU {cpu} %"


def write_results(out, R, meta):
    os.makedirs(out, exist_ok=True)
    rows = []

    def row(figure, value, target, ok, note=""):
        rows.append((figure, value, target, "pass" if ok else "MISS", note))

    small, base = R.get("small", []), R.get("baseline", [])
    tp = agg(small, "checks_per_s") if small else None
    bt = agg(base, "checks_per_s") if base else None
    if small:
        row(f"1. throughput, {CFG['small']:,} products (checks/s end to end)", f"{tp:,.0f}",
            f">= {TARGETS['checks_per_s']:,}", tp >= TARGETS["checks_per_s"], f"median of {len(small)}")
    if R.get("large"):
        lt = agg(R["large"], "checks_per_s")
        row(f"1. throughput, {CFG['large']:,} products (checks/s)", f"{lt:,.0f}", f">= {TARGETS['checks_per_s']:,}",
            lt >= TARGETS["checks_per_s"], f"median of {len(R['large'])}")
    if small:
        wus = agg(small, "worker_us")
        row(f"1. worker CPU per check, {CFG['small']:,} (us)", f"{wus:.1f}", f"<= {TARGETS['worker_us']}",
            wus <= TARGETS["worker_us"], f"user {agg(small, 'worker_user_us'):.1f} + sys {agg(small, 'worker_sys_us'):.1f}")
    if R.get("large"):
        wl = agg(R["large"], "worker_us")
        row(f"1. worker CPU per check, {CFG['large']:,} (us)", f"{wl:.1f}", f"<= {TARGETS['worker_us']}",
            wl <= TARGETS["worker_us"],
            f"user {agg(R['large'], 'worker_user_us'):.1f} + sys {agg(R['large'], 'worker_sys_us'):.1f}")
    if small:
        row("1. other PostgreSQL processes' CPU per check (us)", f"{agg(small, 'pg_other_us'):.1f}", "(reported)", True,
            "walwriter, autovacuum, checkpointer, ...")
        row("1. mock's CPU per check (us)", f"{agg(small, 'mock_us'):.1f}", "(reported)", True,
            f"mock ceiling {R['ceiling']['rps']:,} req/s on one core" if R.get("ceiling") else "")
    if small and base:
        ratio = median([a["checks_per_s"] / b["checks_per_s"] for a, b in zip(small, base)])
        row("2. ratio demper / Python baseline (same run)", f"{ratio:.1f}x", f">= {TARGETS['ratio']}x",
            ratio >= TARGETS["ratio"], f"baseline {bt:,.0f} checks/s, median of {len(base)}")
    rate = R.get("rate")
    if rate:
        rmax = max(r["max_window"] for r in rate)
        smax = max(r["sliding_max"] for r in rate)
        rmean = median([r["mean"] for r in rate])
        lim = rate[0]["rps"] + rate[0]["burst"]
        row(f"3. rate fidelity: max requests in a 1 s window (rate 10, burst {rate[0]['burst']})",
            f"{rmax} (sliding: {smax})", f"<= {lim}", rmax <= lim and smax <= lim,
            f"{len(rate)} runs of {rate[0]['seconds']} s")
        err = abs(rmean - 10) / 10 * 100
        smean = median([r["steady_mean"] for r in rate])
        serr = abs(smean - 10) / 10 * 100
        row("3. rate fidelity: mean requests per second (whole window / after the first second)",
            f"{rmean:.2f} ({err:.2f} % off) / {smean:.2f} ({serr:.2f} % off)", "within 2 % of 10",
            serr <= TARGETS["rate_mean_pct"], "the whole-window mean includes the initial burst of `burst` requests")
    fr = R.get("fresh")
    if fr:
        row(f"4. freshness p50 / p99 / max between checks ({fr['n']:,} products, interval {fr['interval']} s)",
            f"{fr['p50']:.2f} / {fr['p99']:.2f} / {fr['max']:.2f} s", f"p99 <= {1.1 * fr['interval']:.1f} s",
            fr["p99"] <= 1.1 * fr["interval"], f"p99 = {fr['p99'] / fr['interval']:.3f} x interval")
        row("4. products starved (never checked, or late > 1.5 intervals at the end)",
            f"{fr['never_checked']} / {fr['late_at_end']}", "0", fr["never_checked"] == 0 and fr["late_at_end"] == 0)
    c_small, c_huge = R.get("claim_small"), R.get("claim_huge")
    if c_small and c_huge:
        cr = c_huge["ms"] / c_small["ms"]
        row(f"5. claim of 500 at {CFG['huge']:,} products (ms)", f"{c_huge['ms']:.2f} vs {c_small['ms']:.2f} at "
            f"{CFG['small']:,} = {cr:.2f}x", f"<= {TARGETS['claim_ratio']}x", cr <= TARGETS["claim_ratio"],
            "index range scan on the due index (product_due_idx, from 0.5.0 schedule_due_idx): "
            + ("yes" if c_huge["index_scan"] else "NO"))
    if R.get("huge_tp"):
        ht = agg(R["huge_tp"], "checks_per_s")
        vs = f" vs {tp:,.0f} = {ht / tp:.2f}x" if tp else ""
        row(f"5. throughput with {CFG['huge']:,} products ({CFG['huge_due']:,} due) vs {CFG['small']:,}",
            f"{ht:,.0f}{vs}", "(reported)", True, f"worker {agg(R['huge_tp'], 'worker_us'):.1f} us/check")
    if R.get("rss"):
        rs = R["rss"]
        row(f"6. worker RssAnon growth over {rs['checks']:,} checks (end of large run 1 -> end of the last)",
            f"{rs['growth'] * 100:.1f} %",
            f"< {TARGETS['rss_growth'] * 100:.0f} %", rs["growth"] < TARGETS["rss_growth"],
            f"{rs['from_kb'] / 1024:.1f} -> {rs['to_kb'] / 1024:.1f} MiB; {rs['start_kb'] / 1024:.1f} MiB at the "
            f"start of run 1, peak {rs['peak_kb'] / 1024:.1f} MiB (VmRSS {rs['rss_from'] / 1024:.0f} -> "
            f"{rs['rss_to'] / 1024:.0f} MiB incl. shared buffers touched)")
    W = R.get("workers")
    wsum = []
    if R.get("workers_failed"):
        rows.append(("7. several workers (demper.workers = N)", "failed", "-", "MISS", R["workers_failed"]))
    if W:
        first = W["counts"][0]
        for c in W["counts"]:
            runs = W["runs"][c]
            if not runs:
                continue
            t = agg(runs, "checks_per_s")
            ratio = median(W["ratios"][c]) if W["ratios"][c] else float("nan")
            twice = sum(r["fetched_twice"] for r in runs)
            never = sum(r["never_fetched"] for r in runs)
            db_bad = sum(1 for r in runs if r["db_checks"] != r["n"] or r["db_unchecked"] or r["history_not_one"])
            ok = twice == 0 and never == 0 and db_bad == 0
            split = worker_split(sorted(runs, key=lambda r: r["checks_per_s"])[len(runs) // 2]) if c > 1 else ""
            wsum.append(dict(workers=c, checks_per_s=t, ratio=ratio, worker_us=agg(runs, "worker_us"),
                             worker_user_us=agg(runs, "worker_user_us"), worker_sys_us=agg(runs, "worker_sys_us"),
                             pg_other_us=agg(runs, "pg_other_us"), mock_us=agg(runs, "mock_us"),
                             min=min(r["checks_per_s"] for r in runs), max=max(r["checks_per_s"] for r in runs),
                             twice=twice, never=never, db_bad=db_bad, runs=len(runs)))
            row(f"7. several workers: demper.workers = {c}, {runs[0]['n']:,} products (checks/s; ratio to N = {first}; "
                f"all workers' CPU per check)",
                f"{t:,.0f}; {fmt_ratio(ratio)}; {agg(runs, 'worker_us'):.1f} us",
                "no product fetched twice or never; one check each", ok,
                f"median of {len(runs)}; fetched twice {twice}, never {never} (all runs); DB: "
                f"{'every product checked once, one history row each' if db_bad == 0 else f'{db_bad} runs inconsistent'}"
                + (f"; median run's split: {split}" if split else ""))
        base = R.get("baseline") or []
        if base and len(wsum) > 1:
            # The baseline's one Python process plus PostgreSQL uses both cores; so do N workers.
            best = max(wsum, key=lambda w: w["checks_per_s"])
            bt2 = median([b["checks_per_s"] for b in base])
            r2 = best["checks_per_s"] / bt2
            row(f"2. ratio with demper.workers = {best['workers']} (benchmark 7's best) / Python baseline",
                f"{r2:.1f}x", f">= {TARGETS['ratio']}x", r2 >= TARGETS["ratio"],
                f"{best['checks_per_s']:,.0f} vs {bt2:,.0f} checks/s, same bench run, minutes apart; the workers "
                f"run against a mock that also logs each request")

    if R.get("market"):
        market_bench.summary_rows(R["market"], row)

    S = R.get("soak")
    if S:
        row(f"soak: prices written below their floor ({S['seconds']} s, {S['products']:,} products, faults every "
            f"{CFG['soak_every']} s)", f"{S['writes_below_floor']} of {S['price_writes']:,} price writes; "
            f"{S['history_below_floor']} of {S['history_rows']:,} history rows", "0",
            S["writes_below_floor"] == 0 and S["history_below_floor"] == 0,
            "every write of a price (ALWAYS trigger) against the floor of its row; history against the floor in force")
        row("soak: listings whose last push taken by the marketplace is not their price", f"{S['push_mismatch']}",
            "0", S["push_mismatch"] == 0 and S["push_missing"] == 0 and S["outbox_open"] == 0 and S["push_overlaps"] == 0,
            f"{S['pushes_taken']:,} pushes taken; changed but never pushed {S['push_missing']}, outbox rows open "
            f"{S['outbox_open']}, two pushes of a listing in flight {S['push_overlaps']}, held pushes abandoned "
            f"{S['holds_abandoned']}, after {S['drain_s']} s of draining")
        row("soak: merchants banned by the marketplace for pushing too fast", f"{S['push_bans']}", "0",
            S["push_bans"] == 0, "the mock bans a merchant for a minute above 3 pushes a second (demper.push_rate 2)")
        row("soak: longest a product went unchecked", f"{S['max_unchecked_s']} s", f"<= {S['interval'] + 60} s "
            "(interval + 1 min)", S["late"] == 0, f"{S['late']} products late; between two checks p50 {S['gap_p50']} s, "
            f"p99 {S['gap_p99']} s; {S['checks_written']:,} checks written; the bad store's products (skipped while "
            f"broken) {S['bad_store_max_unchecked_s']} s")
        row("soak: longest stop (pg_terminate_backend of a worker, pg_ctl stop -m fast)", f"{S['stop_max_s']:.2f} s",
            "< 5 s", S["stops_over_limit"] == 0, f"{S['stops']} stops, {S['stops_over_limit']} at or over 5 s")
        row("soak: most changes of the budget store in any window", f"{S['budget_most_in_window']}",
            f"<= {S['budget']}", S["budget_most_in_window"] <= S["budget"], "two workers")
        row("soak: proposals approved although their floor rose above them", f"{S['approved_below_floor']}", "0",
            S["approved_below_floor"] == 0, json.dumps(S["approvals"], sort_keys=True))
    git0, git1, lib = meta["git"], meta.get("git_end", meta["git"]), meta["library"]
    with open(os.path.join(out, "SUMMARY.md"), "w") as f:
        f.write(f"# demper benchmark results ({'QUICK smoke run' if QUICK else 'full run'}"
                f"{', only ' + ','.join(sorted(ONLY)) if ONLY else ''})\n\n")
        f.write(f"Run {time.strftime('%Y-%m-%d %H:%M:%S %Z')} on {os.cpu_count()} CPUs "
                f"({open('/proc/cpuinfo').read().split('model name')[1].split(':')[1].splitlines()[0].strip()}), "
                f"PostgreSQL 15, sizes {json.dumps(CFG)}.\n\n")
        f.write(f"demper commit **{git0['commit']}** ({git0.get('date', '?')})"
                + (f", changed: {', '.join(git0['dirty'][:12])}{' ...' if len(git0['dirty']) > 12 else ''}"
                   if git0["dirty"] else "")
                + f"; installed library {lib['path']} built {lib['mtime']}"
                + (f", extension {meta['extversion']}" if meta.get("extversion") else "") + ".")
        lib1 = meta.get("library_end", lib)
        if lib1["mtime"] != lib["mtime"]:
            f.write(f" The library was reinstalled during the run (built {lib1['mtime']} at the end): a running "
                    "cluster keeps the build it loaded when it started"
                    + (f" (benchmark 7's clusters: built {R['workers']['library']['mtime']})" if R.get("workers") else "")
                    + ".")
        if git1["commit"] != git0["commit"] or git1["dirty"] != git0["dirty"]:
            f.write(f" The tree changed during the run: **{git1['commit']}** at the end"
                    + (f" ({', '.join(git1['dirty'][:12])})" if git1["dirty"] else "") + ".")
        f.write("\n\n| figure | value | target | result | notes |\n|---|---|---|---|---|\n")
        for r in rows:
            f.write("| " + " | ".join(str(x) for x in r) + " |\n")
        f.write("\n" + "".join(f"![{t}]({p})\n" for t, p, k in (
            ("throughput", "throughput.png", small or R.get("large") or R.get("huge_tp")),
            ("throughput over a large run", "large_run.png", R.get("series")),
            ("staleness", "staleness.png", fr), ("rate", "rate.png", rate),
            ("several workers", "workers.png", wsum),
            ("adaptive schedule: first place lost", "market.png", R.get("market")),
            ("adaptive schedule: reactions to undercuts", "market_reactions.png", (R.get("market") or {}).get("live")),
            ("adaptive schedule: first place by requests", "market_sim.png", (R.get("market") or {}).get("sims")))
            if k) + "\n")
        tps = small + R.get("large", []) + R.get("huge_tp", [])
        if tps:
            f.write("## Throughput runs (every run)\n\n| run | products | seconds | checks/s | worker us/check "
                    "(user+sys) | other postgres us/check | mock us/check | load avg |\n|---|---|---|---|---|---|---|---|\n")
            for r in tps:
                f.write(f"| {r['label']} | {r['n']:,} | {r['seconds']:.2f} | {r['checks_per_s']:,.0f} | "
                        f"{r['worker_us']:.1f} ({r['worker_user_us']:.1f}+{r['worker_sys_us']:.1f}) | "
                        f"{r['pg_other_us']:.1f} | {r['mock_us']:.1f} | {r['loadavg']} |\n")
        if base:
            f.write("\n## Python baseline runs\n\n| run | products | seconds | checks/s | python us/check | "
                    "postgres us/check | mock us/check | failed | load avg |\n|---|---|---|---|---|---|---|---|---|\n")
            for i, r in enumerate(base):
                f.write(f"| baseline {i + 1} | {r['n']:,} | {r['seconds']:.2f} | {r['checks_per_s']:,.0f} | "
                        f"{r['python_us']:.0f} | {r['pg_us']:.0f} | {r['mock_us']:.1f} | {r['failed']} | {r['loadavg']} |\n")
        if R.get("ceiling"):
            f.write(f"\nMock ceiling (bench/mock_ceiling.sh, same run): {R['ceiling']['rps']:,} req/s "
                    f"(runs {R['ceiling']['runs']}), mock CPU {R['ceiling']['cpu']} % of its core.\n")
        if wsum:
            f.write(f"\n## Several workers\n\nBenchmark 1's run ({W['runs'][W['counts'][0]][0]['n']:,} products due, "
                    "no rate limit) at each `demper.workers` = N, against the mock with a request log: one cluster "
                    "per N (shared_buffers 512MB), all started at the start of the benchmark (library built "
                    f"{W['library']['mtime']}), one warm-up run each, then rounds in a mirrored order; ratio to N = "
                    f"{W['counts'][0]} within a round. CPU: utime+stime of every `demper worker` pid summed. "
                    "Fetched twice / never: offers requests per product in the mock's log during the round. "
                    "DB: checks counted (demper_stats) = products, none without last_check_time, exactly one "
                    "price_history row each (every check changes the price). Requests by worker: data "
                    "segments each worker sent to the mock (`ss` tcp_info of its connections; a small request "
                    "is one segment). Effective request rate per worker (http_status, egress): "
                    + "; ".join(f"N = {c}: {W['rates'].get(c)}" for c in W["counts"]) + ".\n\n")
            f.write("| N | checks/s (median; min-max) | ratio to N = 1 | all workers us/check (user+sys) | "
                    "other postgres us/check | mock us/check | fetched twice / never (all runs) | runs |\n"
                    "|---|---|---|---|---|---|---|---|\n")
            for w in wsum:
                f.write(f"| {w['workers']} | {w['checks_per_s']:,.0f} ({w['min']:,.0f}-{w['max']:,.0f}) | "
                        f"{fmt_ratio(w['ratio'])} | {w['worker_us']:.1f} ({w['worker_user_us']:.1f}+{w['worker_sys_us']:.1f}) | "
                        f"{w['pg_other_us']:.1f} | {w['mock_us']:.1f} | {w['twice']} / {w['never']} | {w['runs']} |\n")
            f.write("\n| run | seconds | checks/s | workers us/check | fetched twice / never / other codes | DB checks "
                    "/ unchecked / not one history row | split between workers | load avg |\n"
                    "|---|---|---|---|---|---|---|---|\n")
            for c in W["counts"]:
                for r in W["runs"][c]:
                    f.write(f"| {r['label']} | {r['seconds']:.2f} | {r['checks_per_s']:,.0f} | {r['worker_us']:.1f} | "
                            f"{r['fetched_twice']} / {r['never_fetched']} / {r['foreign_fetched']} | "
                            f"{r['db_checks']:,} / {r['db_unchecked']} / {r['history_not_one']} | {worker_split(r)} | "
                            f"{r['loadavg']} |\n")
        if rate:
            f.write("\n## Rate fidelity runs\n\n| run | requests | mean/s | max 1 s bin | sliding 1 s max | mock's "
                    "max_rps_window | load avg |\n|---|---|---|---|---|---|---|\n")
            for i, r in enumerate(rate):
                f.write(f"| {i + 1} | {r['requests']} | {r['mean']:.2f} ({r['steady_mean']:.2f}) | {r['max_window']} | "
                        f"{r['sliding_max']} | {r['mock_max_rps_window']} | {r['loadavg']} |\n")
        if fr:
            f.write(f"\n## Freshness\n\n{fr['n']:,} products, interval {fr['interval']} s, {fr['seconds']} s, "
                    f"rate limit {fr['rps']:.0f}/s: {fr['checks']:,} checks, {fr['gaps']:,} gaps; min {fr['min']:.2f} s, "
                    f"p50 {fr['p50']:.2f} s, p99 {fr['p99']:.2f} s, max {fr['max']:.2f} s; never checked "
                    f"{fr['never_checked']}, late at the end {fr['late_at_end']}. Load {fr['loadavg']}.\n")
        if c_small or c_huge:
            f.write("\n## Claim\n\nMedian per claim of 500 (the worker's own statement from src/pg/catalog_checks.cpp, "
                    "prepared, psql \\timing): "
                    + ", ".join(f"{c['ms']:.2f} ms at {c['label']} products" for c in (c_small, c_huge) if c)
                    + (f" ({c_huge['ms'] / c_small['ms']:.2f}x)" if c_small and c_huge else "") + ". Plan at "
                    f"{(c_huge or c_small)['label']}:\n\n```\n{(c_huge or c_small)['plan'].strip()}\n```\n")
        if S:
            f.write(f"\n## Soak\n\n{S['seconds']} s, {S['products']:,} products in 5 stores (one in approval mode, "
                    f"one with a change budget of {S['budget']} per 10 min, one whose time zone breaks on schedule), "
                    f"two workers, check interval {S['interval']} s, lease {S['lease']} s, competitors moving every "
                    f"5 s; faults injected (bench/soak.py): "
                    + ", ".join(f"{k} {v}" for k, v in S["events"].items())
                    + f". After a kill -9 two new workers ran within {S['kill9_recovery_max_s']} s (crash restart). "
                    + "Server log: " + ", ".join(f"{k} {v}" for k, v in S["log"].items())
                    + f". Events failed: {len(S['event_errors'])}"
                    + ("".join(f"; {e['t']} s {e['event']}: {e['detail']}" for e in S["event_errors"][:5]))
                    + ". Every event with its time and measured seconds: soak_events.csv; samples every 10 s: "
                    "soak.csv.\n")
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
        if R.get("market"):
            f.write(market_bench.summary_section(R["market"]))
        f.write("\n## Load average at each measurement\n\n")
        for what, la in LOADS:
            f.write(f"- {what}: {la}\n")
        if NOTES:
            f.write("\n## Notes\n\n" + "\n".join("- " + n for n in NOTES) + "\n")

    # CSV and plot data
    if tps or base:
        with open(os.path.join(out, "throughput.csv"), "w") as f:
            f.write("run,products,seconds,checks_per_s,worker_us,worker_user_us,worker_sys_us,pg_other_us,mock_us\n")
            for r in tps:
                f.write(f"{r['label']},{r['n']},{r['seconds']:.3f},{r['checks_per_s']:.1f},{r['worker_us']:.2f},"
                        f"{r['worker_user_us']:.2f},{r['worker_sys_us']:.2f},{r['pg_other_us']:.2f},{r['mock_us']:.2f}\n")
            for i, r in enumerate(base):
                f.write(f"baseline{i + 1},{r['n']},{r['seconds']:.3f},{r['checks_per_s']:.1f},,,,{r['pg_us']:.2f},"
                        f"{r['mock_us']:.2f}\n")
        with open(os.path.join(out, "throughput_bars.dat"), "w") as f:
            if base:
                f.write(f'"Python baseline\\n{CFG["small"]:,}" {bt:.0f}\n')
            if small:
                f.write(f'"demper\\n{CFG["small"]:,}" {tp:.0f}\n')
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
    if fr:
        market_bench.write_cdf(os.path.join(out, "staleness.csv"), fr["gap_list"], points=2000, sep=",", digits=4,
                               header="gap_seconds,cumulative_share")
    if rate:
        with open(os.path.join(out, "rate.csv"), "w") as f:
            f.write("second,requests\n")
            for i, c in enumerate(rate[0]["bins"]):
                f.write(f"{i},{c}\n")
    if wsum:
        with open(os.path.join(out, "workers.csv"), "w") as f:
            f.write("run,round,workers,products,seconds,checks_per_s,workers_us,workers_user_us,workers_sys_us,"
                    "pg_other_us,mock_us,fetched_twice,never_fetched,other_codes_fetched,db_checks,db_unchecked,"
                    "history_not_one,requests_by_worker,cpu_share_by_worker\n")
            for c in W["counts"]:
                for r in W["runs"][c]:
                    reqs = ";".join(str(v) for v in sorted((r["requests_by_worker"] or {}).values(), reverse=True))
                    cpu = ";".join(f"{v:.3f}" for v in sorted(r["worker_cpu_share"].values(), reverse=True))
                    f.write(f"{r['label']},{r['round']},{c},{r['n']},{r['seconds']:.3f},{r['checks_per_s']:.1f},"
                            f"{r['worker_us']:.2f},{r['worker_user_us']:.2f},{r['worker_sys_us']:.2f},"
                            f"{r['pg_other_us']:.2f},{r['mock_us']:.2f},{r['fetched_twice']},{r['never_fetched']},"
                            f"{r['foreign_fetched']},{r['db_checks']},{r['db_unchecked']},{r['history_not_one']},"
                            f"{reqs},{cpu}\n")
        with open(os.path.join(out, "workers.dat"), "w") as f:
            f.write("# workers median_checks_per_s min max ratio workers_us linear_from_first\n")
            for w in wsum:
                f.write(f"{w['workers']} {w['checks_per_s']:.0f} {w['min']:.0f} {w['max']:.0f} {w['ratio']:.3f} "
                        f"{w['worker_us']:.1f} {wsum[0]['checks_per_s'] * w['workers'] / wsum[0]['workers']:.0f}\n")
    if R.get("market"):
        market_bench.write_data(R["market"], out)
    with open(os.path.join(out, "results.json"), "w") as f:
        strip = lambda d: {k: v for k, v in d.items() if k not in ("gap_list", "plan")}
        json.dump({k: ([strip(x) for x in v] if isinstance(v, list) and v and isinstance(v[0], dict)
                       else strip(v) if isinstance(v, dict) else None)
                   for k, v in R.items() if k != "series"}
                  | {"cfg": CFG, "loads": LOADS, "notes": NOTES, "meta": meta, "only": sorted(ONLY)},
                  f, indent=1, default=str)
    if shutil.which("gnuplot"):
        p = subprocess.run(["gnuplot", "-e", f"outdir='{out}'; interval={fr['interval'] if fr else 30}; "
                            f"rate={rate[0]['rps'] if rate else 10}; burst={rate[0]['burst'] if rate else 5}",
                            os.path.join(HERE, "plots.gp")], capture_output=True, text=True)
        if p.returncode != 0:
            log("gnuplot failed: " + p.stderr[-500:])


def main():
    # SIGTERM (and SIGINT, which a shell ignores in background jobs) stop the bench through the
    # finally below: the cluster and the mocks are stopped
    signal.signal(signal.SIGTERM, lambda *a: sys.exit(143))
    signal.signal(signal.SIGINT, lambda *a: sys.exit(130))
    ap = argparse.ArgumentParser()
    ap.add_argument("--work", required=True)
    ap.add_argument("--out", required=True)
    ap.add_argument("--mock", required=True)
    ap.add_argument("--market-sim", default=os.path.join(ROOT, "build", "market_sim"))
    args = ap.parse_args()
    unknown = ONLY - set(BENCHMARKS)
    if unknown:
        sys.exit(f"bench.py: BENCH_ONLY: unknown {', '.join(sorted(unknown))} (known: {', '.join(BENCHMARKS)})")
    want = lambda name: (not ONLY and name != "soak") or name in ONLY
    t_start = time.time()
    meta = dict(git=git_state(), library=library_state())
    log(f"demper bench ({'quick' if QUICK else 'full'}{', only ' + ','.join(sorted(ONLY)) if ONLY else ''}): "
        f"{json.dumps(CFG)}; demper {meta['git']['commit']}, library built {meta['library']['mtime']}")
    R = {}
    if want("soak"):
        import soak  # bench/soak.py
        log(f"== soak: {CFG['soak_seconds']} s of repricing with a fault every {CFG['soak_every']} s")
        wait_quiet("soak")
        R["soak"] = soak.run(args.work, args.out, args.mock, CFG["soak_seconds"], CFG["soak_every"], log)
        log(f"  soak {'passed' if R['soak']['ok'] else 'FAILED'}: {json.dumps({k: v for k, v in R['soak'].items() if k not in ('event_errors',)})}")
        if ONLY == {"soak"}:
            meta["git_end"], meta["library_end"] = git_state(), library_state()
            write_results(args.out, R, meta)
            log(f"done in {time.time() - t_start:.0f} s; results in {args.out}")
            return
    if want("ceiling"):
        R["ceiling"] = mock_ceiling(args.mock, CFG["ceiling_runs"], CFG["ceiling_duration"])

    mock = Mock(args.work, "mock", args.mock)
    mock_logged = Mock(args.work, "mock_logged", args.mock, os.path.join(args.work, "mock_requests.log"))
    cluster = Cluster(args.work)
    cluster.start(mock)
    loaded = [0]

    def load_to(n):
        if n > loaded[0]:
            load_products(db, loaded[0] + 1, n)
            loaded[0] = n

    try:
        db = DB(cluster.dsn())
        db.exe("CREATE EXTENSION demper")
        meta["extversion"] = db.val("SELECT extversion FROM pg_extension WHERE extname = 'demper'")
        db.exe(f"INSERT INTO demper.store (name, merchant_id) VALUES ('Bench shop', '{OWN}')")
        cluster.worker_pids = worker_pids(db, 1)
        cluster.worker_pid = cluster.worker_pids[0]
        load_to(CFG["small"])

        if want("throughput") or want("baseline"):
            log(f"== {CFG['small']:,} products: throughput vs the Python baseline (interleaved, same mock, same rows)")
            throughput_run(db, cluster, mock, CFG["small"], "warm-up")
            R["small"], R["baseline"] = [], []
            for i in range(CFG["small_runs"]):
                R["small"].append(throughput_run(db, cluster, mock, CFG["small"], f"demper {CFG['small'] // 1000}k #{i + 1}"))
                if i < CFG["baseline_runs"] and want("baseline"):
                    R["baseline"].append(baseline_run(db, cluster, mock, CFG["small"]))

        if want("workers"):
            log(f"== several workers: demper.workers = {', '.join(map(str, WORKER_COUNTS))}, {CFG['small']:,} products")
            try:
                R["workers"] = workers_bench(args.work, mock_logged, CFG["small"], WORKER_COUNTS,
                                             CFG["workers_runs"], meta["library"])
            except Exception as e:  # its own clusters: the other benchmarks can go on
                log(f"  benchmark 7 failed: {e}")
                R["workers_failed"] = str(e)[-400:]
                NOTES.append(f"7. failed: {R['workers_failed']}")

        if want("claim"):
            log("== claim at the small size")
            R["claim_small"] = claim_timing(cluster, db, CFG["claim_reps"], f"{CFG['small']:,}")

        if want("rate"):
            log("== rate fidelity")
            R["rate"] = []
            for _ in range(CFG["rate_runs"]):
                R["rate"].append(rate_run(db, mock_logged, CFG["rate_seconds"]))
                drain(db)
        if want("freshness"):
            log("== freshness")
            R["fresh"] = freshness_run(db, mock_logged, CFG["fresh_n"], CFG["fresh_interval"], CFG["fresh_seconds"])
            drain(db)
        if want("market"):
            log("== adaptive schedule: fixed vs adaptive over a simulated market")
            ctx = market_bench.Ctx(log, set_conf, wait_quiet, Mock, CFG, NOTES, QUICK)
            R["market"] = market_bench.run(ctx, db, args.work, args.mock, args.market_sim, args.out)
            drain(db)
        set_conf(db, offers_url=mock.url, check_interval="7d", batch_size=1000)

        if want("large"):
            log(f"== {CFG['large']:,} products: throughput, worker memory")
            load_to(CFG["large"])
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
        if want("profile"):
            log("== profile of the worker")
            tp_est = agg(R["small"], "checks_per_s") if R.get("small") else 8000
            n_profile = min(CFG["large"], int(tp_est * (CFG["profile_seconds"] + 3)))
            load_to(n_profile)
            R["profile"] = profile_run(db, cluster, mock, n_profile, CFG["profile_seconds"], args.out)
            drain(db)

        if want("claim"):
            log(f"== {CFG['huge']:,} products: claim and throughput")
            load_to(CFG["huge"])
            R["claim_huge"] = claim_timing(cluster, db, CFG["claim_reps"], f"{CFG['huge']:,}")
            R["huge_tp"] = [throughput_run(db, cluster, mock, CFG["huge_due"], f"demper {CFG['huge_due'] // 1000}k due "
                                           f"of {CFG['huge']:,} #{i + 1}") for i in range(CFG["huge_runs"])]
        meta["git_end"], meta["library_end"] = git_state(), library_state()
        write_results(args.out, R, meta)
        log(f"done in {time.time() - t_start:.0f} s; results in {args.out}")
    finally:
        cluster.stop()
        mock.stop()
        mock_logged.stop()


if __name__ == "__main__":
    main()
