#!/usr/bin/python3
"""Salesforce <-> PostgreSQL benchmark (issue 13 §3): the release `duplex` binary between the
local Salesforce emulator (tools/sf-emulator/) and a throwaway PostgreSQL cluster.

    bench.py latency --capture cdc|poll [--samples N] [--daily-limit N]
    bench.py calls   [--duration S] [--rate R] [--daily-limit N]
    bench.py load    [--accounts N] [--contacts N] [--direction sf2pg|pg2sf|both]

Normally started through bench/salesforce/run.sh, which builds the binary and starts the
PostgreSQL cluster; here --pg-port names it. Every scenario starts a fresh emulator (its own data
directory, so its API counter starts at 0) and a fresh database, prints a summary, and writes
the numbers as JSON to --out. The emulator's /__emulator/stats counts every API call; the bench
counts its own (sfrest.Org.calls) and subtracts them, so a number said to be duplex's or the
pipelines' is theirs alone. Nothing here asserts speed: the exit code is non-zero only when a
scenario could not run.
"""

import argparse
import json
import os
import random
import signal
import statistics
import subprocess
import sys
import tempfile
import time

import psycopg2

HERE = os.path.dirname(os.path.abspath(__file__))
ROOT = os.path.dirname(os.path.dirname(HERE))
sys.path.insert(0, HERE)
import pipelines  # noqa: E402
import sfrest  # noqa: E402

CLK_TCK = os.sysconf("SC_CLK_TCK")

DUPLEX_SCHEMA = """
CREATE TABLE accounts(id int GENERATED ALWAYS AS IDENTITY PRIMARY KEY, name text NOT NULL,
  industry text);
CREATE TABLE contacts(id int GENERATED ALWAYS AS IDENTITY PRIMARY KEY, last text NOT NULL,
  account_id int REFERENCES accounts(id));
"""


def log(msg):
    print("[%s] %s" % (time.strftime("%H:%M:%S", time.gmtime()), msg), flush=True)


def polls_in(calls):
    """duplex's polls among idle calls: one Composite call reads both objects (duplex since
    2026-12-07; the emulator counts it as composite/query); before, one queryAll per object."""
    return calls.get("composite/query", 0) + calls.get("queryAll", 0) / 2.0


def loadavg():
    with open("/proc/loadavg") as f:
        return " ".join(f.read().split()[:3])


def cpu_seconds(pid):
    """User + system CPU seconds of a live process."""
    with open("/proc/%d/stat" % pid) as f:
        fields = f.read().rsplit(")", 1)[1].split()
    return (int(fields[11]) + int(fields[12])) / CLK_TCK


def pct(values, p):
    """The p-th percentile (nearest rank) of a list."""
    s = sorted(values)
    if not s:
        return None
    k = max(0, min(len(s) - 1, int(round(p / 100.0 * len(s) + 0.5)) - 1))
    return s[k]


def summary(values):
    if not values:
        return {"n": 0}
    return {"n": len(values), "mean": statistics.mean(values), "p50": pct(values, 50),
            "p95": pct(values, 95), "p99": pct(values, 99), "max": max(values)}


class Bench:
    def __init__(self, args):
        self.args = args
        self.work = tempfile.mkdtemp(prefix="duplex-sfbench-", dir=args.work)
        self.procs = []
        self.duplex = os.path.join(ROOT, "build/release/duplex")

    # -- processes -----------------------------------------------------------------------------

    def start_emulator(self, name, daily_limit):
        data = os.path.join(self.work, name, "org")
        os.makedirs(data)
        log_path = os.path.join(self.work, name, "emulator.log")
        out = open(log_path, "w")
        p = subprocess.Popen([os.path.join(ROOT, "scripts/sf-emulator.sh"), "--port", "0",
                              "--data", data, "--daily-limit", str(daily_limit)],
                             stdout=subprocess.PIPE, stderr=out, text=True)
        line = p.stdout.readline()
        if not line.startswith("listening on "):
            raise RuntimeError("emulator did not start: %r (see %s)" % (line, log_path))
        self.procs.append(p)
        url = line.split()[-1]
        return p, url

    def pg_dsn(self, db):
        return "postgresql://postgres@127.0.0.1:%d/%s" % (self.args.pg_port, db)

    def new_database(self, db, schema):
        c = psycopg2.connect(self.pg_dsn("postgres"))
        c.autocommit = True
        with c.cursor() as cur:
            cur.execute("DROP DATABASE IF EXISTS %s WITH (FORCE)" % db)
            cur.execute("CREATE DATABASE %s" % db)
        c.close()
        c = psycopg2.connect(self.pg_dsn(db))
        c.autocommit = True
        with c.cursor() as cur:
            cur.execute(schema)
        return c

    def write_config(self, name, url, db, capture):
        path = os.path.join(self.work, name, "duplex.toml")
        with open(path, "w") as f:
            f.write("""# bench/salesforce/bench.py
[engine]
state = "state.db"

[endpoints.crm]
type = "salesforce"
instance_url = "%s"
client_id_env = "SF_CLIENT_ID"
client_secret_env = "SF_CLIENT_SECRET"
external_id = "External_Id__c"
capture = "%s"

[endpoints.ops]
type = "postgres"
dsn = "%s"

[collections.account]
key = ["id"]
key_mode = "mapped"
endpoints.crm = { table = "Account", fields = { id = "Id", name = "Name", industry = "Industry" } }
endpoints.ops = { table = "accounts" }

[collections.contact]
key = ["id"]
key_mode = "mapped"
endpoints.crm = { table = "Contact", fields = { id = "Id", last = "LastName", account_id = "AccountId" } }
endpoints.ops = { table = "contacts" }
""" % (url, capture, self.pg_dsn(db)))
        return path

    def duplex_env(self):
        env = dict(os.environ, SF_CLIENT_ID="duplex", SF_CLIENT_SECRET="secret")
        return env

    def start_duplex(self, config, args=("run",)):
        logf = open(os.path.join(os.path.dirname(config), "duplex.log"), "a")
        p = subprocess.Popen([self.duplex] + list(args) + ["--config", config],
                             cwd=os.path.dirname(config), stdout=logf, stderr=subprocess.STDOUT,
                             env=self.duplex_env())
        self.procs.append(p)
        return p

    def stop(self, p):
        if p.poll() is None:
            p.send_signal(signal.SIGTERM)
            try:
                p.wait(60)
            except subprocess.TimeoutExpired:
                p.kill()
                p.wait()
        if p in self.procs:
            self.procs.remove(p)

    def close(self):
        for p in list(self.procs):
            self.stop(p)

    # -- org and database helpers --------------------------------------------------------------

    @staticmethod
    def stats(org):
        return org.hook("GET", "stats")

    @staticmethod
    def delta(after, before, own_after, own_before):
        """API calls between two stats snapshots, without the bench's own, by resource."""
        out = {}
        for k, v in after["calls"].items():
            n = v - before["calls"].get(k, 0) - (own_after.get(k, 0) - own_before.get(k, 0))
            if n:
                out[k] = n
        return out

    @staticmethod
    def org_accounts(org):
        return org.query("SELECT Id, Name, Industry FROM Account")

    @staticmethod
    def state_sf(org):
        acc = sorted((r["Name"], r["Industry"] or "") for r in
                     org.query("SELECT Name, Industry FROM Account"))
        con = sorted(r["LastName"] for r in org.query("SELECT LastName FROM Contact"))
        return acc, con

    @staticmethod
    def state_pg(pg, pipeline_schema=False):
        with pg.cursor() as cur:
            cur.execute("SELECT name, coalesce(industry, '') FROM accounts ORDER BY 1, 2")
            acc = sorted(tuple(r) for r in cur.fetchall())
            cur.execute("SELECT last FROM contacts")
            con = sorted(r[0] for r in cur.fetchall())
        return acc, con

    def wait_converged(self, org, pg, timeout, every=2.0):
        """Waits until both sides hold the same account (name, industry) and contact names.
        Returns the seconds waited, or None on timeout."""
        t0 = time.time()
        while time.time() - t0 < timeout:
            if self.state_sf(org) == self.state_pg(pg):
                return time.time() - t0
            time.sleep(every)
        return None

    def run_until_idle(self, config, timeout):
        """`duplex run --until-idle`: wall seconds, duplex CPU seconds (rusage), exit code."""
        logf = open(os.path.join(os.path.dirname(config), "duplex.log"), "a")
        t0 = time.time()
        p = subprocess.Popen([self.duplex, "run", "--until-idle", "--config", config],
                             cwd=os.path.dirname(config), stdout=logf, stderr=subprocess.STDOUT,
                             env=self.duplex_env())
        deadline = t0 + timeout
        while True:
            pid, status, ru = os.wait4(p.pid, os.WNOHANG)
            if pid:
                break
            if time.time() > deadline:
                p.kill()
                pid, status, ru = os.wait4(p.pid, 0)
                break
            time.sleep(0.05)
        p.returncode = os.waitstatus_to_exitcode(status)
        return (time.time() - t0, ru.ru_utime + ru.ru_stime, p.returncode,
                ru.ru_maxrss / 1024.0)

    # -- scenario: latency ---------------------------------------------------------------------

    def latency(self):
        a = self.args
        name = "latency-%s-%d" % (a.capture, a.daily_limit)
        emu, url = self.start_emulator(name, a.daily_limit)
        org = sfrest.Org(url)
        db = "lat_%s" % a.capture
        pg = self.new_database(db, DUPLEX_SCHEMA)
        n_side = 100
        org.create_many("Account", [{"Name": "sf-%d" % i} for i in range(n_side)])
        with pg.cursor() as cur:
            cur.execute("INSERT INTO accounts(name) SELECT 'pg-' || g FROM generate_series(0, %s) g",
                        (n_side - 1,))
        config = self.write_config(name, url, db, a.capture)
        load0 = loadavg()
        dpx = self.start_duplex(config)
        waited = self.wait_converged(org, pg, 300, every=1.0)
        if waited is None:
            raise RuntimeError("initial sync of %d accounts did not converge in 300 s (see %s)"
                               % (2 * n_side, config.replace("duplex.toml", "duplex.log")))
        log("initial sync converged after %.1f s" % waited)
        sf_ids = {r["Name"]: r["Id"] for r in self.org_accounts(org)}
        with pg.cursor() as cur:
            cur.execute("SELECT name, id FROM accounts")
            pg_ids = dict(cur.fetchall())
        # Records by their (changing) name: [sf_id, pg_id].
        recs = [[sf_ids[n], pg_ids[n]] for n in sorted(sf_ids)]
        time.sleep(3)  # let the initial sync's echoes pass

        # Idle: what duplex costs with nothing to sync (and its poll interval).
        s0, own0 = self.stats(org), dict(org.calls_by)
        cpu0, t0 = cpu_seconds(dpx.pid), time.time()
        time.sleep(a.idle)
        s1, own1 = self.stats(org), dict(org.calls_by)
        idle_s = time.time() - t0
        idle = self.delta(s1, s0, own1, own0)
        idle_cpu = cpu_seconds(dpx.pid) - cpu0
        polls = polls_in(idle)
        interval = idle_s / polls if polls else None
        log("idle %.0f s: duplex made %s; poll interval ~%s s" %
            (idle_s, idle, "%.1f" % interval if interval else "?"))
        gap_max = a.gap if a.gap else (1.0 if a.capture == "cdc" else max(2.0, interval or 2.0))

        rng = random.Random(13)
        lat = {"sf2pg": [], "pg2sf": []}
        timeouts = {"sf2pg": 0, "pg2sf": 0}
        s2, own2 = self.stats(org), dict(org.calls_by)
        t_samples = time.time()
        cpu1, ecpu1 = cpu_seconds(dpx.pid), cpu_seconds(emu.pid)
        with pg.cursor() as cur:
            for i in range(2 * a.samples):
                sf_id, pg_id = recs[rng.randrange(len(recs))]
                value = "v%d-%d" % (i, rng.randrange(1 << 30))
                direction = "sf2pg" if i % 2 == 0 else "pg2sf"
                if direction == "sf2pg":
                    org.ok("PATCH", "/sobjects/Account/%s" % sf_id, {"Name": value})
                    t = time.time()
                    while True:
                        cur.execute("SELECT name FROM accounts WHERE id = %s", (pg_id,))
                        row = cur.fetchone()
                        if row and row[0] == value:
                            break
                        if time.time() - t > a.sample_timeout:
                            break
                        time.sleep(0.005)
                else:
                    cur.execute("UPDATE accounts SET name = %s WHERE id = %s", (value, pg_id))
                    t = time.time()
                    while True:
                        got = org.ok("GET", "/sobjects/Account/%s?fields=Name" % sf_id)
                        if got.get("Name") == value:
                            break
                        if time.time() - t > a.sample_timeout:
                            break
                        time.sleep(0.01)
                dt = time.time() - t
                if dt > a.sample_timeout:
                    timeouts[direction] += 1
                else:
                    lat[direction].append(dt)
                # Before an org-side sample, a pause of up to a poll interval, so its write
                # falls at a random point of duplex's poll cycle (not in step with it).
                time.sleep(rng.uniform(0.1, 1.0 if direction == "sf2pg" else gap_max))
        samples_s = time.time() - t_samples
        s3, own3 = self.stats(org), dict(org.calls_by)
        during = self.delta(s3, s2, own3, own2)
        result = {
            "scenario": "latency", "capture": a.capture, "daily_limit": a.daily_limit,
            "loadavg_start": load0, "loadavg_end": loadavg(),
            "initial_sync_s": waited,
            "idle": {"seconds": idle_s, "duplex_calls": idle, "duplex_cpu_s": idle_cpu,
                     "poll_interval_s": interval},
            "gap_s": [0.1, gap_max],
            "sf2pg": summary(lat["sf2pg"]), "pg2sf": summary(lat["pg2sf"]),
            "all": summary(lat["sf2pg"] + lat["pg2sf"]),
            "timeouts": timeouts, "samples_s": samples_s,
            "duplex_calls_during_samples": during,
            "duplex_cpu_s": cpu_seconds(dpx.pid) - cpu1,
            "emulator_cpu_s": cpu_seconds(emu.pid) - ecpu1,
        }
        self.stop(dpx)
        self.stop(emu)
        pg.close()
        return result

    # -- scenario: API calls per synced change -------------------------------------------------

    def workload(self):
        """The same edits for every contender: (time offset, side, object, index, field, value)."""
        a = self.args
        rng = random.Random(1313)
        t, k, out = 0.0, 0, []
        while True:
            t += rng.expovariate(a.rate)
            if t >= a.duration:
                return out
            side = "sf" if rng.random() < 0.5 else "pg"
            if rng.random() < 0.5:
                field = "Name" if rng.random() < 0.7 else "Industry"
                out.append((t, side, "Account", rng.randrange(a.accounts), field, "w%d" % k))
            else:
                out.append((t, side, "Contact", rng.randrange(a.contacts), "LastName", "w%d" % k))
            k += 1

    def seed_duplex_world(self, org, pg):
        """Half the accounts and contacts made in the org, half in PostgreSQL; duplex syncs them."""
        na, nc = self.args.accounts, self.args.contacts
        half_a, half_c = na // 2, nc // 2
        acc_ids = org.create_many("Account", [{"Name": "a%d" % i} for i in range(half_a)])
        org.create_many("Contact", [{"LastName": "c%d" % j, "AccountId": acc_ids[j % half_a]}
                                    for j in range(half_c)])
        with pg.cursor() as cur:
            cur.execute("INSERT INTO accounts(name) SELECT 'a' || g FROM generate_series(%s, %s) g",
                        (half_a, na - 1))
            cur.execute("INSERT INTO contacts(last, account_id) SELECT 'c' || g, "
                        "(SELECT id FROM accounts WHERE name = 'a' || (%s + g %% %s)) "
                        "FROM generate_series(%s, %s) g", (half_a, na - half_a, half_c, nc - 1))

    def seed_pipeline_world(self, org, pg):
        """Every record in both places already, linked by its external id (as after a sync)."""
        na, nc = self.args.accounts, self.args.contacts
        acc_ids = org.create_many("Account", [{"Name": "a%d" % i, "External_Id__c": "A%d" % i}
                                              for i in range(na)])
        con_ids = org.create_many("Contact", [{"LastName": "c%d" % j, "External_Id__c": "C%d" % j,
                                               "AccountId": acc_ids[j % na]} for j in range(nc)])
        with pg.cursor() as cur:
            cur.executemany("INSERT INTO accounts(ext_id, sf_id, name, updated_at) "
                            "VALUES (%s, %s, %s, '-infinity')",
                            [("A%d" % i, acc_ids[i], "a%d" % i) for i in range(na)])
            cur.executemany("INSERT INTO contacts(ext_id, sf_id, last, account_ext, updated_at) "
                            "VALUES (%s, %s, %s, %s, '-infinity')",
                            [("C%d" % j, con_ids[j], "c%d" % j, "A%d" % (j % na))
                             for j in range(nc)])
            now = time.time()
            cur.execute("INSERT INTO sync_state VALUES ('sf_to_pg', %s), ('pg_to_sf', %s)",
                        (now, now))
        return acc_ids, con_ids

    def play(self, edits, org, pg, sf_ids, pg_keys, pipeline):
        """Applies the workload in real time: org edits as single-record PATCHes (the users),
        PostgreSQL edits as autocommit UPDATEs (the application)."""
        t0 = time.time()
        column = {"Name": "name", "Industry": "industry", "LastName": "last"}
        with pg.cursor() as cur:
            for t, side, obj, idx, field, value in edits:
                delay = t0 + t - time.time()
                if delay > 0:
                    time.sleep(delay)
                if side == "sf":
                    org.ok("PATCH", "/sobjects/%s/%s" % (obj, sf_ids[obj][idx]), {field: value})
                else:
                    table = "accounts" if obj == "Account" else "contacts"
                    if pipeline:
                        cur.execute("UPDATE %s SET %s = %%s, updated_at = now() WHERE ext_id = %%s"
                                    % (table, column[field]), (value, pg_keys[obj][idx]))
                    else:
                        cur.execute("UPDATE %s SET %s = %%s WHERE id = %%s"
                                    % (table, column[field]), (value, pg_keys[obj][idx]))
        return time.time() - t0

    def calls_duplex(self, capture, edits):
        a = self.args
        name = "calls-duplex-%s" % capture
        emu, url = self.start_emulator(name, a.daily_limit)
        org = sfrest.Org(url)
        db = "calls_%s" % capture
        pg = self.new_database(db, DUPLEX_SCHEMA)
        self.seed_duplex_world(org, pg)
        config = self.write_config(name, url, db, capture)
        dpx = self.start_duplex(config)
        waited = self.wait_converged(org, pg, 600, every=2.0)
        if waited is None:
            raise RuntimeError("%s: initial sync did not converge" % name)
        log("%s: initial sync converged after %.1f s" % (name, waited))
        sf_ids = {"Account": {}, "Contact": {}}
        for r in org.query("SELECT Id, Name FROM Account"):
            sf_ids["Account"][int(r["Name"][1:])] = r["Id"]
        for r in org.query("SELECT Id, LastName FROM Contact"):
            sf_ids["Contact"][int(r["LastName"][1:])] = r["Id"]
        pg_keys = {"Account": {}, "Contact": {}}
        with pg.cursor() as cur:
            cur.execute("SELECT name, id FROM accounts")
            pg_keys["Account"] = {int(n[1:]): i for n, i in cur.fetchall()}
            cur.execute("SELECT last, id FROM contacts")
            pg_keys["Contact"] = {int(n[1:]): i for n, i in cur.fetchall()}
        time.sleep(5)
        return self.measure_calls(name, emu, org, pg, edits, sf_ids, pg_keys, pipeline=False,
                                  proc=dpx)

    def calls_pipelines(self, every, edits):
        a = self.args
        name = "calls-pipelines-every-%gs" % every
        emu, url = self.start_emulator(name, a.daily_limit)
        org = sfrest.Org(url)
        db = "calls_pipe"
        pg = self.new_database(db, pipelines.SCHEMA)
        acc_ids, con_ids = self.seed_pipeline_world(org, pg)
        sf_ids = {"Account": dict(enumerate(acc_ids)), "Contact": dict(enumerate(con_ids))}
        pg_keys = {"Account": {i: "A%d" % i for i in range(a.accounts)},
                   "Contact": {j: "C%d" % j for j in range(a.contacts)}}
        logf = open(os.path.join(self.work, name, "pipelines.log"), "w")
        p = subprocess.Popen([sys.executable, os.path.join(HERE, "pipelines.py"), "--instance-url",
                              url, "--dsn", self.pg_dsn(db), "--every", str(every)],
                             stdout=logf, stderr=subprocess.STDOUT)
        self.procs.append(p)
        time.sleep(5)
        return self.measure_calls(name, emu, org, pg, edits, sf_ids, pg_keys, pipeline=True,
                                  proc=p)

    def measure_calls(self, name, emu, org, pg, edits, sf_ids, pg_keys, pipeline, proc):
        a = self.args
        load0 = loadavg()
        s0, own0 = self.stats(org), dict(org.calls_by)
        t0 = time.time()
        time.sleep(a.idle)
        s1, own1 = self.stats(org), dict(org.calls_by)
        idle_s = time.time() - t0
        idle = self.delta(s1, s0, own1, own0)
        log("%s: idle %.0f s: %s" % (name, idle_s, idle))
        cpu0 = cpu_seconds(proc.pid)
        played = self.play(edits, org, pg, sf_ids, pg_keys, pipeline)
        waited = self.wait_converged(org, pg, a.tail, every=1.0)
        s2, own2 = self.stats(org), dict(org.calls_by)
        window = time.time() - t0 - idle_s
        work = self.delta(s2, s1, own2, own1)
        total = sum(work.values())
        res = {"contender": name, "loadavg_start": load0, "loadavg_end": loadavg(),
               "idle": {"seconds": idle_s, "calls": idle,
                        "calls_per_min": 60.0 * sum(idle.values()) / idle_s},
               "edits": len(edits), "played_s": played,
               "converged_after_s": waited, "window_s": window,
               "calls": work, "calls_total": total,
               "calls_per_change": total / len(edits),
               "cpu_s": cpu_seconds(proc.pid) - cpu0}
        log("%s: %d edits over %.0f s, converged %s s after: %d calls (%s), %.3f per change"
            % (name, len(edits), played, "%.1f" % waited if waited is not None else "NEVER",
               total, work, res["calls_per_change"]))
        self.stop(proc)
        self.stop(emu)
        pg.close()
        return res

    def calls_hourly(self, edits):
        """The case's design: no job runs while the workload plays; then one cycle of each job
        (sf_to_pg at :00, pg_to_sf at :30), as one hourly cycle would carry these edits."""
        a = self.args
        name = "calls-pipelines-hourly"
        emu, url = self.start_emulator(name, a.daily_limit)
        org = sfrest.Org(url)
        db = "calls_hourly"
        pg = self.new_database(db, pipelines.SCHEMA)
        acc_ids, con_ids = self.seed_pipeline_world(org, pg)
        sf_ids = {"Account": dict(enumerate(acc_ids)), "Contact": dict(enumerate(con_ids))}
        pg_keys = {"Account": {i: "A%d" % i for i in range(a.accounts)},
                   "Contact": {j: "C%d" % j for j in range(a.contacts)}}
        time.sleep(6)  # the seeding's stamps fall out of the job's 5 s overlap
        with pg.cursor() as cur:
            now = time.time()
            cur.execute("UPDATE sync_state SET last_run = %s", (now,))
        load0 = loadavg()
        played = self.play(edits, org, pg, sf_ids, pg_keys, pipeline=True)
        s1, own1 = self.stats(org), dict(org.calls_by)
        jobs = sfrest.Org(url, client="pipelines")
        jpg = psycopg2.connect(self.pg_dsn(db))
        pipelines.sf_to_pg(jobs, jpg)
        pipelines.pg_to_sf(jobs, jpg)
        s2, own2 = self.stats(org), dict(org.calls_by)
        work = self.delta(s2, s1, own2, own1)
        total = sum(work.values())
        converged = self.state_sf(org) == self.state_pg(pg)
        res = {"contender": name, "loadavg_start": load0, "loadavg_end": loadavg(),
               "edits": len(edits), "played_s": played, "calls": work, "calls_total": total,
               "calls_per_change": total / len(edits), "converged": converged}
        log("%s: %d edits, one cycle of each job: %d calls (%s), %.3f per change; "
            "both sides equal afterwards: %s" % (name, len(edits), total, work,
                                                 res["calls_per_change"], converged))
        jpg.close()
        self.stop(emu)
        pg.close()
        return res

    def calls(self):
        edits = self.workload()
        log("workload: %d edits over %d s (%d in the org, %d in PostgreSQL), %d accounts, "
            "%d contacts" % (len(edits), self.args.duration,
                             sum(1 for e in edits if e[1] == "sf"),
                             sum(1 for e in edits if e[1] == "pg"), self.args.accounts,
                             self.args.contacts))
        out = {"scenario": "calls", "duration_s": self.args.duration, "rate": self.args.rate,
               "accounts": self.args.accounts, "contacts": self.args.contacts,
               "daily_limit": self.args.daily_limit, "runs": []}
        for c in self.args.contenders.split(","):
            if c in ("cdc", "poll"):
                r = self.calls_duplex(c, edits)
                out["runs"].append(r)
                if c == "poll":
                    polls = polls_in(r["idle"]["calls"])
                    out["duplex_poll_interval_s"] = r["idle"]["seconds"] / polls if polls else None
            elif c == "pipelines":
                every = self.args.every or out.get("duplex_poll_interval_s") or 2.0
                out["runs"].append(self.calls_pipelines(round(every, 1), edits))
            elif c == "hourly":
                out["runs"].append(self.calls_hourly(edits))
            else:
                raise SystemExit("unknown contender %r" % c)
        return out

    # -- scenario: initial load ----------------------------------------------------------------

    def load(self):
        a = self.args
        out = {"scenario": "load", "accounts": a.accounts, "contacts": a.contacts, "runs": []}
        for direction in (["sf2pg", "pg2sf"] if a.direction == "both" else [a.direction]):
            name = "load-%s" % direction
            emu, url = self.start_emulator(name, a.daily_limit)
            org = sfrest.Org(url)
            db = "load_%s" % direction
            pg = self.new_database(db, DUPLEX_SCHEMA)
            t = time.time()
            if direction == "sf2pg":
                acc = org.create_many("Account", [{"Name": "a%d" % i} for i in range(a.accounts)])
                org.create_many("Contact", [{"LastName": "c%d" % j, "AccountId": acc[j % len(acc)]}
                                            for j in range(a.contacts)])
            else:
                with pg.cursor() as cur:
                    cur.execute("INSERT INTO accounts(name) SELECT 'a' || g "
                                "FROM generate_series(0, %s) g", (a.accounts - 1,))
                    cur.execute("INSERT INTO contacts(last, account_id) SELECT 'c' || g, "
                                "1 + g %% %s FROM generate_series(0, %s) g",
                                (a.accounts, a.contacts - 1))
            seed_s = time.time() - t
            log("%s: seeded %d accounts and %d contacts in %.1f s" % (name, a.accounts, a.contacts,
                                                                     seed_s))
            config = self.write_config(name, url, db, "cdc")
            s0, own0 = self.stats(org), dict(org.calls_by)
            ecpu0 = cpu_seconds(emu.pid)
            load0 = loadavg()
            wall, cpu, rc, rss = self.run_until_idle(config, a.load_timeout)
            ecpu = cpu_seconds(emu.pid) - ecpu0
            s1, own1 = self.stats(org), dict(org.calls_by)
            calls = self.delta(s1, s0, own1, own0)
            load1 = loadavg()
            with pg.cursor() as cur:
                cur.execute("SELECT count(*) FROM accounts")
                pg_acc = cur.fetchone()[0]
                cur.execute("SELECT count(*), count(account_id) FROM contacts")
                pg_con, pg_linked = cur.fetchone()
            sf_acc = org.ok("GET", "/query?q=SELECT+Id+FROM+Account")["totalSize"]
            sf_con = org.ok("GET", "/query?q=SELECT+Id,AccountId+FROM+Contact")["totalSize"]
            sf_linked = sum(1 for r in org.query("SELECT AccountId FROM Contact") if r["AccountId"])
            rows = a.accounts + a.contacts
            r = {"direction": direction, "loadavg_start": load0, "loadavg_end": load1,
                 "seed_s": seed_s, "exit": rc, "wall_s": wall, "rows_per_s": rows / wall,
                 "duplex_cpu_s": cpu, "rows_per_duplex_cpu_s": rows / cpu if cpu else None,
                 "duplex_peak_rss_mib": rss, "emulator_cpu_s": ecpu,
                 "calls": calls, "calls_total": sum(calls.values()),
                 "pg": {"accounts": pg_acc, "contacts": pg_con, "contacts_with_account": pg_linked},
                 "sf": {"accounts": sf_acc, "contacts": sf_con, "contacts_with_account": sf_linked}}
            log("%s: exit %d after %.1f s = %.0f rows/s; duplex CPU %.1f s, emulator CPU %.1f s; "
                "%d API calls %s; PG %s, org %s" % (name, rc, wall, r["rows_per_s"], cpu, ecpu,
                                                   r["calls_total"], calls, r["pg"], r["sf"]))
            out["runs"].append(r)
            self.stop(emu)
            pg.close()
        return out


def main():
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    ap.add_argument("scenario", choices=["latency", "calls", "load"])
    ap.add_argument("--pg-port", type=int, required=True)
    ap.add_argument("--work", default=None, help="where the temp dirs go (default: $TMPDIR)")
    ap.add_argument("--out", default=None, help="append the result as one JSON line here")
    ap.add_argument("--keep", action="store_true", help="keep the temp dir")
    ap.add_argument("--daily-limit", type=int, default=100000,
                    help="the emulator's daily API limit (its default: 100000)")
    ap.add_argument("--idle", type=float, default=30, help="idle seconds measured first")
    # latency
    ap.add_argument("--capture", choices=["cdc", "poll"], default="cdc")
    ap.add_argument("--samples", type=int, default=100, help="per direction")
    ap.add_argument("--gap", type=float, default=None,
                    help="max seconds between samples (default 1, or the poll interval)")
    ap.add_argument("--sample-timeout", type=float, default=60)
    # calls
    ap.add_argument("--duration", type=float, default=120)
    ap.add_argument("--rate", type=float, default=2.0, help="edits per second, both sides")
    ap.add_argument("--tail", type=float, default=120, help="max seconds to converge after")
    ap.add_argument("--contenders", default="poll,pipelines,cdc,hourly")
    ap.add_argument("--every", type=float, default=None,
                    help="pipelines' cycle (default: duplex's measured poll interval)")
    # load (and the size of the calls scenario's world)
    ap.add_argument("--accounts", type=int, default=None)
    ap.add_argument("--contacts", type=int, default=None)
    ap.add_argument("--direction", choices=["sf2pg", "pg2sf", "both"], default="both")
    ap.add_argument("--load-timeout", type=float, default=7200)
    a = ap.parse_args()
    if a.accounts is None:
        a.accounts = 100000 if a.scenario == "load" else 500
    if a.contacts is None:
        a.contacts = 3 * a.accounts
    if a.scenario == "load" and a.daily_limit == 100000:
        # 100k + 300k records: seeding alone is 2,000 calls; keep the limit out of the way.
        a.daily_limit = 1000000
    b = Bench(a)
    # A SIGTERM (run.sh stopped, a timeout) still stops duplex and the emulator (finally below).
    signal.signal(signal.SIGTERM, lambda *_: sys.exit(143))
    log("%s: work dir %s, load average %s" % (a.scenario, b.work, loadavg()))
    try:
        result = getattr(b, a.scenario)()
    finally:
        b.close()
    result["date"] = time.strftime("%Y-%m-%d %H:%M UTC", time.gmtime())
    result["args"] = vars(a)
    print(json.dumps(result, indent=1))
    if a.out:
        with open(a.out, "a") as f:
            f.write(json.dumps(result) + "\n")
    if not a.keep:
        subprocess.run(["rm", "-rf", b.work])


if __name__ == "__main__":
    main()
