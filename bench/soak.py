"""soak.py: benchmark `soak` (issue 16), run by bench.py only when named (BENCH_ONLY=soak).

Ten minutes (BENCH_SOAK_SECONDS) of ordinary repricing by two workers, with competitors moving,
pushes to the merchant cabinet, a store in approval mode and a store with a change budget, while
faults are injected on a schedule, one every BENCH_SOAK_EVERY seconds, in a shuffled rotation:

  lock_idle      a session idle in transaction holds 15 product rows (FOR UPDATE) for 25 s
  lock_prepared  a prepared transaction holds 10 product rows for 25 s
  cancel         pg_cancel_backend() of every worker, five times 0.2 s apart
  terminate      pg_terminate_backend() of a worker: the time until it exits is a stop
  kill9          kill -9 of a worker (a crash restart of the cluster)
  fast_stop      pg_ctl stop -m fast (with whatever locks are held), then start: a stop
  bad_store      a store's time zone stops resolving (made with the validation trigger off), for 40 s
  push_hold      a listing's push is held on its way for 45 s (longer than the 30 s lease) while a
                 newer price of that listing is decided
  floors         floors of 20 products raised (half above their price), and the pending proposals of
                 the approval store approved after raising the floor of half of them above the
                 proposed price
  check_now      one transaction calls check_now() for 300 products

It ends with the checks of the issue: no price written below its floor, ever (every write of a
product's price, recorded by an ALWAYS trigger, against the floor in the same row, and every
price_history row against the floor in force when it was written); no older push overriding a
newer price (after the outbox drains, the last push the mock took per listing is the listing's
price, and the mock never saw two pushes of one listing in flight); no product unchecked for more
than one interval plus a minute (every write of last_check_time, recorded by the same trigger,
from the products' insertion to the end; the bad store's products are reported apart: they are
skipped on purpose while their store is broken); every stop under 5 s. Also: the change budget
held in every window, and approvals of proposals below a raised floor were refused.
"""
import json
import os
import random
import signal
import subprocess
import time
import urllib.request

# PostgreSQL's programs: the system's, or those of a private tree (bench/run.sh with PG_CONFIG).
PGBIN = os.environ.get("BENCH_PGBIN", "/usr/lib/postgresql/15/bin")
INTERVAL = 120          # demper.check_interval, s
LEASE = 30              # demper.lease_time, s
# The pickup point every listing is stocked at: demper pushes no listing without one (it waits).
PICKUP_POINTS = '[{"storeId":"PP1","available":"yes"}]'
PER_STORE = 500
STOP_LIMIT = 5.0        # s: every stop must be shorter
BUDGET, BUDGET_WINDOW = 40, 600
EVENTS = ("lock_idle", "lock_prepared", "cancel", "terminate", "kill9", "fast_stop", "bad_store",
          "push_hold", "floors", "check_now")
# store key -> (merchant id, extra columns)
STORES = {
    "plain_a": ("30060001", {}),
    "plain_b": ("30060002", {}),
    "approval": ("30060003", {"approval_mode": "true"}),
    "budget": ("30060004", {"change_budget": str(BUDGET), "change_budget_window": f"'{BUDGET_WINDOW} seconds'"}),
    "bad": ("30060005", {"timezone": "'Asia/Almaty'", "work_start": "'00:00'", "work_end": "'23:59:59'"}),
}
TRANSIENT = ("could not connect", "starting up", "shutting down", "terminating connection", "server closed",
             "Connection refused", "No such file", "in recovery", "connection to server", "not yet accepting")


class SoakError(RuntimeError):
    pass


class Soak:
    def __init__(self, work, out, mock_bin, seconds, every, log):
        self.work, self.out, self.log = work, out, log
        self.seconds, self.every = seconds, every
        self.data = os.path.join(work, "data_soak")
        self.server_log = os.path.join(work, "server_soak.log")
        self.port = 50000 + os.getpid() % 10000 + 77
        self.rng = random.Random(16)
        self.events = []      # dicts: t, event, seconds (a stop or a recovery), detail
        self.samples = []     # dicts: t, checks, pending pushes, in check, ...
        self.scheduled = []   # (due, what, fn)
        self.holders = []     # psql processes idle in transaction
        self.prepared = set()
        self.mock = self.start_mock(mock_bin)

    # ---- plumbing ----------------------------------------------------------------------------
    def start_mock(self, binary):
        ports = os.path.join(self.work, "soak_mock.ports")
        self.mock_log = os.path.join(self.work, "soak_mock_requests.log")
        self.mock_proc = subprocess.Popen([binary, "--listen", "127.0.0.1:0", "--port-file", ports, "--log", self.mock_log],
                                          stdout=subprocess.DEVNULL,
                                          stderr=open(os.path.join(self.work, "soak_mock.err"), "w"))
        for _ in range(400):
            if os.path.exists(ports) and os.path.getsize(ports) > 0:
                break
            time.sleep(0.05)
        self.mock_port = int(open(ports).read().split()[0])
        return f"http://127.0.0.1:{self.mock_port}"

    def mock_call(self, method, path, body=None):
        data = json.dumps(body).encode() if body is not None else None
        req = urllib.request.Request(self.mock + path, data=data, method=method)
        with urllib.request.urlopen(req, timeout=30) as r:
            return json.loads(r.read() or b"{}")

    def psql(self, q, retry=60.0):
        """Runs q (one transaction) and returns its output; retried while the server restarts."""
        deadline = time.time() + retry
        while True:
            p = subprocess.run([f"{PGBIN}/psql", "-XAtq", "-v", "ON_ERROR_STOP=1", "-h", self.work, "-p", str(self.port),
                                "-d", "soak", "-c", q], capture_output=True, text=True)
            if p.returncode == 0:
                return p.stdout.strip()
            if time.time() > deadline or not any(t in p.stderr for t in TRANSIENT):
                raise SoakError(p.stderr.strip()[-300:])
            time.sleep(0.3)

    def rows(self, q):
        out = self.psql(q)
        return [line.split("|") for line in out.splitlines() if line]

    def pg_ctl(self, *args):
        return subprocess.run([f"{PGBIN}/pg_ctl", "-D", self.data, "-l", self.server_log, *args],
                              capture_output=True, text=True)

    def event(self, name, seconds=None, detail=""):
        e = dict(t=round(time.time() - self.t0, 1), event=name, seconds=seconds, detail=detail)
        self.events.append(e)
        self.log(f"  soak {e['t']:6.1f} s  {name}" + (f" {seconds:.3f} s" if seconds is not None else "")
                 + (f"  {detail}" if detail else ""))

    def later(self, delay, what, fn):
        self.scheduled.append((time.time() + delay, what, fn))

    def run_due(self, all_now=False):
        now = time.time()
        due = [s for s in self.scheduled if all_now or s[0] <= now]
        self.scheduled = [s for s in self.scheduled if s not in due]
        for _, what, fn in sorted(due, key=lambda s: s[0]):
            try:
                fn()
            except Exception as e:  # the soak goes on; the error is part of the record
                self.event(f"{what} failed", detail=str(e)[:200])

    def worker_pids(self):
        return [int(r[0]) for r in self.rows("SELECT pid FROM pg_stat_activity WHERE backend_type = 'demper worker' "
                                             "ORDER BY pid")]

    # ---- setup -------------------------------------------------------------------------------
    def setup(self):
        subprocess.run([f"{PGBIN}/initdb", "-D", self.data, "-A", "trust", "-U", "postgres"], check=True,
                       stdout=subprocess.DEVNULL)
        key = os.path.join(self.work, "soak.key")
        with open(key, "wb") as f:
            f.write(os.urandom(32))
        os.chmod(key, 0o600)
        with open(os.path.join(self.data, "postgresql.conf"), "a") as f:
            f.write(f"""
port = {self.port}
unix_socket_directories = '{self.work}'
listen_addresses = ''
max_connections = 60
shared_buffers = '256MB'
max_prepared_transactions = 10
log_line_prefix = '%m [%p] '
shared_preload_libraries = 'demper'
demper.database = 'soak'
demper.workers = 2
demper.offers_url = '{self.mock}/yml/offer-view/offers/{{product_code}}'
demper.allowed_hosts = '127.0.0.1'
demper.allow_private_addresses = on
demper.requests_per_second = 200
demper.burst = 20
demper.max_inflight = 64
demper.check_interval = '{INTERVAL}s'
demper.lease_time = '{LEASE}s'
demper.http_timeout = '60s'
demper.push_url = '{self.mock}/pricefeed/upload/merchant/process'
demper.credentials_key_file = '{key}'
demper.push_rate = 2
demper.push_ban_pause = '60s'
""")
        r = self.pg_ctl("-w", "start")
        if r.returncode != 0:
            raise SoakError("the soak cluster did not start: " + r.stderr[-300:])
        subprocess.run([f"{PGBIN}/createdb", "-h", self.work, "-p", str(self.port), "soak"], check=True)
        # The marketplace's push limit per merchant as measured (3 a second), its ban shortened to a
        # minute (30 in reality) so that a ban does not outlast the soak; demper pauses as long.
        self.mock_call("POST", "/_mock/push_limits", {"push_limit_rps": 3, "push_ban_ms": 60000})
        self.psql("CREATE EXTENSION demper")
        self.store_id = {}
        for name, (merchant, extra) in STORES.items():
            cols = "".join(f", {k}" for k in extra)
            vals = "".join(f", {v}" for v in extra.values())
            sid = self.psql(f"INSERT INTO demper.store (name, merchant_id{cols}) VALUES ('soak {name}', '{merchant}'{vals}) "
                            "RETURNING id")
            self.store_id[name] = int(sid)
            session, sid_cookie = f"S{merchant}{self.rng.randrange(10**9)}", f"I{merchant}{self.rng.randrange(10**9)}"
            self.mock_call("PUT", f"/_mock/merchant/{merchant}", {"session": session, "sid": sid_cookie, "expired": False})
            self.psql(f"SET log_statement = 'none'; SELECT demper.set_credentials({sid}, '{session}', '{sid_cookie}')")
        # Every product starts at the rule's price (one tenge below its cheapest competitor), so
        # that prices move only when competitors do; floors at half of it.
        self.book = {}  # code -> competitor price
        values = []
        code = 1
        for name in STORES:
            merchant = STORES[name][0]
            for _ in range(PER_STORE):
                c = 10000 + (code * 7919) % 50000
                self.book[code] = c
                self.set_book(code, merchant)
                values.append(f"({self.store_id[name]}, '{code}', 'sku-{code}', {c - 1}, {c // 2})")
                code += 1
        self.merchant_of = {c: STORES[self.store_of_code(c)][0] for c in self.book}
        # Every write of a product's price or check time, by the workers too (ALWAYS trigger),
        # with the floor of the same row; and every floor the soak sets, with when it took hold.
        self.psql("""
CREATE TABLE public.soak_writes (product_id bigint, at timestamptz, old_price bigint, new_price bigint,
                                 min_price bigint, checked boolean);
CREATE FUNCTION public.soak_record_write() RETURNS trigger LANGUAGE plpgsql SECURITY DEFINER
SET search_path = pg_catalog, public AS $$
BEGIN
    IF NEW.price IS DISTINCT FROM OLD.price OR NEW.last_check_time IS DISTINCT FROM OLD.last_check_time THEN
        INSERT INTO public.soak_writes VALUES (NEW.id, clock_timestamp(), OLD.price, NEW.price, NEW.min_price,
                                               NEW.last_check_time IS DISTINCT FROM OLD.last_check_time);
    END IF;
    RETURN NULL;
END $$;
CREATE TRIGGER soak_record_write AFTER UPDATE ON demper.product FOR EACH ROW EXECUTE FUNCTION public.soak_record_write();
ALTER TABLE demper.product ENABLE ALWAYS TRIGGER soak_record_write;
CREATE TABLE public.soak_floors (product_id bigint, min_price bigint, at timestamptz);
""")
        self.t_insert = time.time()
        self.psql("INSERT INTO demper.product (store_id, product_code, sku, price, min_price, availabilities) "
                  f"SELECT v.*, '{PICKUP_POINTS}'::jsonb FROM (VALUES " + ",".join(values) + ") v")
        self.psql("INSERT INTO public.soak_floors SELECT id, min_price, '-infinity' FROM demper.product")
        self.id_of = {int(c): int(i) for c, i in self.rows("SELECT product_code, id FROM demper.product")}
        self.log(f"  soak: {len(self.book):,} products in {len(STORES)} stores, first checks spread over {INTERVAL} s")

    def store_of_code(self, code):
        return list(STORES)[(code - 1) // PER_STORE]

    def set_book(self, code, merchant):
        c = self.book[code]
        self.mock_call("PUT", f"/_mock/offers/{code}", {"offers": [
            {"merchantId": "C1", "merchantName": "Rival one", "price": c},
            {"merchantId": "C2", "merchantName": "Rival two", "price": c + 500},
            {"merchantId": merchant, "merchantName": "Own", "price": c + 1000}]})

    # ---- load --------------------------------------------------------------------------------
    def move_competitors(self, n=20, nudge=10):
        codes = self.rng.sample(sorted(self.book), n)
        for code in codes:
            self.book[code] = max(200, int(self.book[code] * self.rng.uniform(0.9, 1.1)))
            self.set_book(code, self.merchant_of[code])
        ids = ",".join(str(self.id_of[c]) for c in codes[:nudge])
        self.check_now(ids)

    def check_now(self, ids):
        """check_now() for the products of ids that no session holds (a held row would make it wait)."""
        self.psql(f"SELECT count(demper.check_now(id)::text) FROM demper.product "
                  f"WHERE id IN (SELECT id FROM demper.product WHERE id IN ({ids}) FOR UPDATE SKIP LOCKED)")

    def sample(self):
        r = self.rows("""SELECT (SELECT checks_ok + checks_failed FROM demper.demper_stats()),
                                (SELECT count(*) FROM demper.outbox WHERE status = 'pending'),
                                (SELECT count(*) FROM demper.schedule WHERE lease_token IS NOT NULL),
                                (SELECT coalesce(extract(epoch FROM max(now() - last_check_time)), 0)::int
                                   FROM demper.product WHERE last_check_time IS NOT NULL),
                                (SELECT count(*) FROM pg_stat_activity WHERE backend_type = 'demper worker')""")[0]
        self.samples.append(dict(t=round(time.time() - self.t0, 1), checks=int(r[0]), pending_pushes=int(r[1]),
                                 in_check=int(r[2]), oldest_check_s=int(r[3]), workers=int(r[4])))

    # ---- faults ------------------------------------------------------------------------------
    def random_ids(self, n, stores=None):
        codes = [c for c in self.book if stores is None or self.store_of_code(c) in stores]
        return [self.id_of[c] for c in self.rng.sample(codes, n)]

    def lock_idle(self):
        ids = ",".join(map(str, self.random_ids(15)))
        p = subprocess.Popen([f"{PGBIN}/psql", "-XAtq", "-h", self.work, "-p", str(self.port), "-d", "soak"],
                             stdin=subprocess.PIPE, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL, text=True)
        p.stdin.write(f"BEGIN; SELECT id FROM demper.product WHERE id IN ({ids}) FOR UPDATE;\n")
        p.stdin.flush()
        self.holders.append(p)
        self.event("lock_idle", detail="15 rows held by a session idle in transaction for 25 s")

        def release():
            try:
                p.stdin.write("ROLLBACK;\n\\q\n")
                p.stdin.close()
            except (BrokenPipeError, ValueError):
                pass  # ended by a crash restart or a stop
            p.wait(timeout=30)
            self.holders.remove(p)
        self.later(25, "lock_idle release", release)

    def lock_prepared(self):
        gid = f"soak_{len(self.events)}"
        ids = ",".join(map(str, self.random_ids(10)))
        self.psql(f"BEGIN; SELECT id FROM demper.product WHERE id IN ({ids}) FOR UPDATE SKIP LOCKED; "
                  f"PREPARE TRANSACTION '{gid}';")
        self.prepared.add(gid)
        self.event("lock_prepared", detail=f"10 rows held by prepared transaction {gid} for 25 s")

        def release():
            self.psql(f"ROLLBACK PREPARED '{gid}'")
            self.prepared.discard(gid)
        self.later(25, "lock_prepared release", release)

    def cancel(self):
        pids = self.worker_pids()
        for _ in range(5):
            for pid in pids:
                self.psql(f"SELECT pg_cancel_backend({pid})")
            time.sleep(0.2)
        self.event("cancel", detail=f"5 x pg_cancel_backend() of {len(pids)} workers")

    def hold_rows(self):
        """Stops are measured while rows are held: a session idle in transaction and a prepared
        transaction start holding rows (if none do), and the workers get two seconds to meet them."""
        if not self.holders:
            self.lock_idle()
        if not self.prepared:
            self.lock_prepared()
        time.sleep(2)

    def terminate(self):
        self.hold_rows()
        pid = self.rng.choice(self.worker_pids())
        t = time.time()
        self.psql(f"SELECT pg_terminate_backend({pid})")
        while os.path.exists(f"/proc/{pid}") and time.time() - t < 60:
            time.sleep(0.01)
        self.event("terminate", time.time() - t, f"pg_terminate_backend() of worker {pid}")

    def kill9(self):
        before = set(self.worker_pids())
        pid = self.rng.choice(sorted(before))
        t = time.time()
        os.kill(pid, signal.SIGKILL)
        # The postmaster restarts the cluster; repricing is back when two new workers run.
        while time.time() - t < 120:
            time.sleep(0.1)
            try:
                now = set(self.worker_pids())
            except SoakError:
                continue
            if len(now) == 2 and not now & before:
                break
        self.event("kill9", time.time() - t, f"kill -9 of worker {pid}; seconds: until two new workers ran")

    def fast_stop(self):
        self.hold_rows()
        t = time.time()
        r = self.pg_ctl("-m", "fast", "-t", "60", "stop")
        stopped = time.time() - t
        if r.returncode != 0:
            self.event("fast_stop", stopped, "pg_ctl stop -m fast FAILED: " + r.stderr.strip()[-200:])
            self.pg_ctl("-m", "immediate", "stop")
        else:
            self.event("fast_stop", stopped, f"pg_ctl stop -m fast with {len(self.holders)} idle sessions and "
                       f"{len(self.prepared)} prepared transactions holding rows")
        r = self.pg_ctl("-w", "-t", "120", "start")
        if r.returncode != 0:
            raise SoakError("restart failed: " + r.stderr[-300:])

    def bad_store(self):
        sid = self.store_id["bad"]
        self.psql(f"SET session_replication_role = replica; "
                  f"UPDATE demper.store SET timezone = 'Mars/Olympus_Mons' WHERE id = {sid}")
        self.event("bad_store", detail="the time zone of store 'bad' no longer resolves, for 40 s")
        self.later(40, "bad_store repair", lambda: self.psql(
            f"UPDATE demper.store SET timezone = 'Asia/Almaty' WHERE id = {sid}"))

    def push_hold(self):
        code = self.rng.choice([c for c in self.book if self.store_of_code(c) in ("plain_a", "plain_b")])
        self.mock_call("POST", "/_mock/fault", {"endpoint": "push", "sku": f"sku-{code}", "mode": "latency",
                                                "latency_ms": 45000, "count": 1})
        merchant = self.merchant_of[code]

        def move(factor):
            self.book[code] = max(200, int(self.book[code] * factor))
            self.set_book(code, merchant)
            self.check_now(str(self.id_of[code]))
        move(0.9)
        self.event("push_hold", detail=f"the next push of sku-{code} is held 45 s; its price moves again in 8 s")
        self.later(8, "push_hold newer price", lambda: move(0.95))

    def floors(self):
        ids = self.random_ids(20, stores=("plain_a", "plain_b", "budget", "bad"))
        raised = 0
        for i, pid in enumerate(ids):
            above = i % 2 == 0
            expr = "price + 100" if above else "greatest(min_price, price - 100)"
            out = self.psql(f"""WITH l AS (SELECT id FROM demper.product WHERE id = {pid} FOR UPDATE SKIP LOCKED),
                                     u AS (UPDATE demper.product p SET min_price = greatest(p.min_price, {expr})
                                             FROM l WHERE p.id = l.id RETURNING p.id, p.min_price)
                                INSERT INTO public.soak_floors SELECT id, min_price, clock_timestamp() FROM u
                                RETURNING 1""")
            raised += 1 if out else 0
        proposals = self.rows(f"SELECT pr.id, pr.product_id, pr.new_price FROM demper.proposal pr "
                              f"WHERE pr.status = 'pending' AND pr.store_id = {self.store_id['approval']} LIMIT 10")
        outcome = {}
        for i, (prop, pid, new_price) in enumerate(proposals):
            try:
                if i % 2 == 0:  # the floor rises above the proposed price before the approval
                    self.psql(f"""SET lock_timeout = '2s';
                                  WITH u AS (UPDATE demper.product SET min_price = greatest(min_price, {int(new_price) + 50})
                                              WHERE id = {pid} RETURNING id, min_price)
                                  INSERT INTO public.soak_floors SELECT id, min_price, clock_timestamp() FROM u""")
                self.psql(f"SET lock_timeout = '2s'; SELECT demper.approve({prop})")
                status = self.psql(f"SELECT status FROM demper.proposal WHERE id = {prop}")
            except SoakError as e:
                status = "not pending" if "not pending" in str(e) else "locked" if "lock timeout" in str(e) else "error"
            key = ("floor raised: " if i % 2 == 0 else "floor kept: ") + status
            outcome[key] = outcome.get(key, 0) + 1
        self.approvals.append(outcome)
        self.event("floors", detail=f"{raised} floors raised; approvals {json.dumps(outcome, sort_keys=True)}")

    def check_now_burst(self):
        ids = ",".join(map(str, self.random_ids(300)))
        t = time.time()
        self.check_now(ids)
        self.event("check_now", detail=f"check_now() of 300 products in one transaction ({time.time() - t:.2f} s)")

    # ---- the run -----------------------------------------------------------------------------
    def run(self):
        self.setup()
        self.t0 = time.time()
        self.approvals = []
        plan = []
        while len(plan) * self.every < self.seconds:
            block = list(EVENTS)
            self.rng.shuffle(block)
            plan += block
        plan = plan[:max(1, int(self.seconds // self.every) - 1)]
        act = dict(lock_idle=self.lock_idle, lock_prepared=self.lock_prepared, cancel=self.cancel,
                   terminate=self.terminate, kill9=self.kill9, fast_stop=self.fast_stop, bad_store=self.bad_store,
                   push_hold=self.push_hold, floors=self.floors, check_now=self.check_now_burst)
        next_event, next_move, next_sample = self.t0 + self.every, self.t0 + 5, self.t0
        end = self.t0 + self.seconds
        while time.time() < end:
            now = time.time()
            self.run_due()
            try:
                if now >= next_sample:
                    next_sample = now + 10
                    self.sample()
                if now >= next_move:
                    next_move = now + 5
                    self.move_competitors()
                if now >= next_event and plan:
                    next_event = now + self.every
                    name = plan.pop(0)
                    act[name]()
            except Exception as e:
                self.event("error", detail=str(e)[:300])
            time.sleep(0.2)
        self.t_end = time.time()
        self.log(f"  soak: faults stop after {self.t_end - self.t0:.0f} s; releasing what is held, draining pushes")
        self.run_due(all_now=True)
        for gid in sorted(self.prepared):
            self.psql(f"ROLLBACK PREPARED '{gid}'")
        for p in self.holders:
            try:
                p.stdin.write("ROLLBACK;\n\\q\n")
                p.stdin.close()
            except (BrokenPipeError, ValueError):
                pass
        self.mock_call("POST", "/_mock/fault", {"endpoint": "push", "mode": "none"})
        # No new check from here on (pushes go on): the prices are final once the checks in
        # flight are written, and every listing's last push can be compared with its price.
        self.psql("ALTER SYSTEM SET demper.enabled = off")
        self.psql("SELECT pg_reload_conf()")
        drained = time.time()
        while time.time() - drained < 600:
            # Leases that ran out stay on their rows (nothing claims them while disabled).
            # A row waiting for pickup points never leaves by itself: the verdict counts it open.
            pending = int(self.psql("SELECT count(*) FROM demper.outbox WHERE status = 'pending' "
                                    "AND waiting_for IS NULL")) + int(
                self.psql("SELECT count(*) FROM demper.schedule WHERE lease_until > now()"))
            held = self.mock_call("GET", "/_mock/stats")["pushes_held"]
            if pending == 0 and held == 0:
                break
            time.sleep(2)
        self.drain_s = time.time() - drained
        return self.verdict()

    # ---- the checks --------------------------------------------------------------------------
    def verdict(self):
        V = dict(seconds=round(self.t_end - self.t0), products=len(self.book), interval=INTERVAL, lease=LEASE,
                 drain_s=round(self.drain_s, 1))
        # 1. No price written below its floor, ever.
        V["writes_below_floor"] = int(self.psql(
            "SELECT count(*) FROM public.soak_writes WHERE new_price <> old_price AND new_price < greatest(min_price, 10)"))
        V["price_writes"] = int(self.psql("SELECT count(*) FROM public.soak_writes WHERE new_price <> old_price"))
        # A history row was written under the floor in force when its transaction began or later:
        # the floor set last before changed_at (floors only rise in the soak).
        V["history_below_floor"] = int(self.psql("""
            SELECT count(*) FROM demper.price_history h
             WHERE h.new_price < greatest(10, (SELECT max(f.min_price) FROM public.soak_floors f
                                                WHERE f.product_id = h.product_id AND f.at < h.changed_at))"""))
        V["history_rows"] = int(self.psql("SELECT count(*) FROM demper.price_history"))
        # 2. No older push overriding a newer price.
        pushes = self.mock_call("GET", "/_mock/pushes")["pushes"]
        last = {}
        for p in pushes:
            last[(p["merchantUid"], p["sku"])] = p["cityPrices"][0]["value"] if p["cityPrices"] else None
        prices = self.rows("SELECT s.merchant_id, p.sku, p.price, EXISTS (SELECT 1 FROM demper.price_history h "
                           "WHERE h.product_id = p.id), (SELECT count(*) FROM demper.outbox o WHERE o.product_id = p.id "
                           "AND o.status <> 'done') FROM demper.product p JOIN demper.store s ON s.id = p.store_id")
        V["push_mismatch"] = sum(1 for m, sku, price, changed, _ in prices
                                 if (m, sku) in last and last[(m, sku)] != int(price))
        V["push_missing"] = sum(1 for m, sku, price, changed, _ in prices if changed == "t" and (m, sku) not in last)
        V["outbox_open"] = sum(int(o) for *_, o in prices)
        stats = self.mock_call("GET", "/_mock/stats")
        V["pushes_taken"], V["push_overlaps"] = len(pushes), stats["push_overlaps"]
        V["holds_abandoned"], V["push_bans"] = stats["holds_abandoned"], stats["push_bans"]
        # 3. No product unchecked for more than one interval plus a minute, from its insertion to
        # the end of the faults (the bad store's products apart).
        bad_ids = {self.id_of[c] for c in self.book if self.store_of_code(c) == "bad"}
        checks = self.rows(f"SELECT product_id, extract(epoch FROM at) FROM public.soak_writes WHERE checked "
                           f"AND at <= to_timestamp({self.t_end}) ORDER BY product_id, at")
        times = {}
        for pid, at in checks:
            times.setdefault(int(pid), []).append(float(at))
        gaps, worst, worst_bad, late = [], (0, None), (0, None), 0
        for code, pid in self.id_of.items():
            ts = [self.t_insert] + times.get(pid, []) + [self.t_end]
            g = max(b - a for a, b in zip(ts, ts[1:]))
            if pid in bad_ids:
                worst_bad = max(worst_bad, (g, code))
                continue
            gaps += [b - a for a, b in zip(ts[1:-2], ts[2:-1])]  # between two checks
            worst = max(worst, (g, code))
            late += g > INTERVAL + 60
        gaps.sort()
        V["max_unchecked_s"], V["max_unchecked_code"] = round(worst[0], 1), worst[1]
        V["bad_store_max_unchecked_s"] = round(worst_bad[0], 1)
        V["late"] = late
        V["gap_p50"] = round(gaps[len(gaps) // 2], 1) if gaps else None
        V["gap_p99"] = round(gaps[int(len(gaps) * 0.99)], 1) if gaps else None
        V["checks_written"] = len(checks)
        # 4. Every stop under 5 s.
        stops = [e for e in self.events if e["event"] in ("terminate", "fast_stop")]
        V["stops"], V["stop_max_s"] = len(stops), round(max((e["seconds"] for e in stops), default=0), 3)
        V["stops_over_limit"] = sum(1 for e in stops if e["seconds"] >= STOP_LIMIT or "FAILED" in e["detail"])
        # The change budget in every window of the budget store (its own changes: the workers').
        hist = [float(r[0]) for r in self.rows(
            f"SELECT extract(epoch FROM changed_at) FROM demper.price_history WHERE store_id = {self.store_id['budget']} "
            "ORDER BY changed_at")]
        lo, most = 0, 0
        for hi in range(len(hist)):
            while hist[hi] - hist[lo] >= BUDGET_WINDOW:
                lo += 1
            most = max(most, hi - lo + 1)
        V["budget"], V["budget_most_in_window"] = BUDGET, most
        # Approvals of proposals whose floor was raised above them: none may be approved.
        agg = {}
        for o in self.approvals:
            for k, v in o.items():
                agg[k] = agg.get(k, 0) + v
        V["approvals"] = agg
        V["approved_below_floor"] = agg.get("floor raised: approved", 0)
        V["events"] = {n: sum(1 for e in self.events if e["event"] == n) for n in EVENTS}
        V["event_errors"] = [e for e in self.events if e["event"].endswith("failed") or e["event"] == "error"]
        V["crash_restarts"] = V["events"]["kill9"]
        V["kill9_recovery_max_s"] = round(max((e["seconds"] for e in self.events if e["event"] == "kill9"), default=0), 1)
        V["log"] = self.server_log_summary()
        V["ok"] = (V["writes_below_floor"] == 0 and V["history_below_floor"] == 0 and V["push_mismatch"] == 0
                   and V["push_missing"] == 0 and V["outbox_open"] == 0 and V["push_overlaps"] == 0
                   and V["late"] == 0 and V["stops_over_limit"] == 0 and most <= BUDGET
                   and V["approved_below_floor"] == 0)
        self.write_files(V)
        return V

    def server_log_summary(self):
        counts = {}
        patterns = {"worker went on after a cancel": "was asked to cancel; it goes on",
                    "batch postponed (lock or cancel)": "postponed writing a batch",
                    "leases reclaimed after a crash": "reclaimed the leases",
                    "hand-back failed at a stop": "could not hand back",
                    "check of one product could not be written": "could not write the check of product",
                    "FATAL lines": "FATAL:",
                    "of them the launcher's at a server start": "cannot read pg_class without having selected a database",
                    "crash restarts": "terminating any other active server processes"}
        try:
            text = open(self.server_log, errors="replace").read()
        except OSError:
            return counts
        for k, p in patterns.items():
            counts[k] = text.count(p)
        fatal = {}
        for line in text.splitlines():
            if "FATAL:  " in line:
                msg = line.split("FATAL:  ", 1)[1][:80]
                fatal[msg] = fatal.get(msg, 0) + 1
        counts["FATAL lines by message"] = fatal
        return counts

    def write_files(self, V):
        with open(os.path.join(self.out, "soak_events.csv"), "w") as f:
            f.write("t,event,seconds,detail\n")
            for e in self.events:
                f.write(f"{e['t']},{e['event']},{'' if e['seconds'] is None else round(e['seconds'], 3)},"
                        f"\"{e['detail'].replace(chr(34), chr(39))}\"\n")
        with open(os.path.join(self.out, "soak.csv"), "w") as f:
            f.write("t,checks_since_start_or_restart,pending_pushes,in_check,oldest_check_s,workers\n")
            for s in self.samples:
                f.write(f"{s['t']},{s['checks']},{s['pending_pushes']},{s['in_check']},{s['oldest_check_s']},"
                        f"{s['workers']}\n")

    def stop(self):
        for p in self.holders:
            p.kill()
        if os.path.isdir(self.data):
            self.pg_ctl("-m", "immediate", "stop")
        self.mock_proc.terminate()
        self.mock_proc.wait(timeout=10)


def run(work, out, mock_bin, seconds, every, log):
    soak = Soak(work, out, mock_bin, seconds, every, log)
    try:
        return soak.run()
    finally:
        soak.stop()
