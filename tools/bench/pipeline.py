#!/usr/bin/env python3
"""Price of robustness: quintet-sim (in-process) against the distributed
pipeline (the demo's deployment, tools/python/quintet/deploy.py).

For each batch B and replica count n: run both on the same env, seed and
episodes; print one JSON line per configuration, then a table. README
"Price of robustness" documents every field:

* steps/s of both and their ratio; each role's share of the daemons' CPU
  (utime+stime from /proc/<pid>/stat of this run's daemons);
* tick latency p50/p99/max: the world's quintet_world_round_trip_seconds
  (frame of tick t published -> the actors' quorum for tick t held),
  scraped from its /metrics once every episode has finished, before the
  daemons stop; p50/p99 interpolated linearly within the histogram's
  range (between two bounds) that holds them, the max exact
  (quintet_world_round_trip_max_seconds);
* --instructions: instructions per environment step summed over every
  process (valgrind callgrind), in-process and distributed, each from two
  runs (E and 2E episodes) so that start-up and shut-down cancel out;
* --rss-minutes M: instead of the grid, one distributed run of M minutes
  (unbounded episodes) sampling every daemon's VmRSS."""
import argparse, json, math, os, re, shutil, subprocess, sys, tempfile, threading, time, urllib.request

ROOT = os.path.dirname(os.path.dirname(os.path.dirname(os.path.abspath(__file__))))
sys.path.insert(0, os.path.join(ROOT, "tools", "python"))
from quintet import deploy as qd  # noqa: E402

ROLES = qd.ROLES
ROUND_TRIP = "quintet_world_round_trip_seconds"
ROUND_TRIP_MAX = "quintet_world_round_trip_max_seconds"
# Under callgrind (~50x slower) every replica of a role waits for all its
# upstream replicas (a deadline that never trips: the same work as an idle
# machine), re-sends rarely, and gets time to write its profile at exit
CALLGRIND_DEADLINE_MS = 120000
CALLGRIND_RESEND_MS = 2000
CALLGRIND_STOP_GRACE_S = 60
CALLGRIND_STALL_S = 600


class BenchError(RuntimeError):
    pass


class PortTaken(BenchError):
    """A daemon found its port taken (by another process on the machine,
    between the launcher choosing it and the daemon binding it)."""


# A run whose daemon found its port taken is run again, at most this often
PORT_RETRIES = 2


def env_args(a):
    """--env NAME if one was asked for; else both use the registry's default."""
    return ["--env", a.env] if a.env else []


# -- callgrind ---------------------------------------------------------------
def callgrind_prefix(out):
    return ["valgrind", "--tool=callgrind", "--callgrind-out-file=%s" % out]


def callgrind_total(path):
    """Instructions (Ir) of one callgrind.out file: its `totals:` line, else
    its `summary:` line (the first event is Ir, the default)."""
    found = {}
    with open(path, errors="replace") as f:
        for line in f:
            m = re.match(r"(totals|summary):\s+([0-9]+)", line)
            if m:
                found[m.group(1)] = int(m.group(2))
    if not found:
        raise BenchError("%s: no totals: or summary: line (did the process exit cleanly?)" % path)
    return found.get("totals", found.get("summary"))


def callgrind_sum(directory, by_role=None):
    """Instructions summed over every callgrind.out file in directory:
    (total, files). by_role: a dict to add each file's total to, under the
    role its name starts with ("<role>-<replica>.<pid>.out")."""
    files = sorted(f for f in os.listdir(directory) if f.endswith(".out"))
    if not files:
        raise BenchError("%s: no callgrind output" % directory)
    total = 0
    for f in files:
        ir = callgrind_total(os.path.join(directory, f))
        total += ir
        if by_role is not None:
            role = f.split(".")[0].rsplit("-", 1)[0]
            by_role[role] = by_role.get(role, 0) + ir
    return total, len(files)


# -- in-process --------------------------------------------------------------
def run_sim(a, b, episodes, prefix=()):
    sim = os.path.join(a.build_dir, "tools", "sim", "quintet-sim")
    t0 = time.monotonic()
    try:
        p = subprocess.run(list(prefix) + [sim] + env_args(a) + [
                           "--episodes", str(episodes), "--batch", str(b), "--seed", str(a.seed),
                           "--json", "--quiet"], capture_output=True, text=True, timeout=a.timeout)
    except subprocess.TimeoutExpired:
        raise BenchError("quintet-sim: not finished after %.0f s" % a.timeout)
    except OSError as e:
        raise BenchError("cannot run %s: %s (built? ninja -C %s)" % (sim, e, a.build_dir))
    dt = time.monotonic() - t0
    if p.returncode != 0:
        raise BenchError("quintet-sim exited %d: %s" % (p.returncode, p.stderr.strip()[-500:]))
    m = re.search(r'"steps"\s*:\s*([0-9]+)', p.stdout)
    if not m:
        raise BenchError("quintet-sim printed no steps: %s" % p.stdout[-300:])
    return int(m.group(1)), dt


# -- /proc sampling ----------------------------------------------------------
def proc_cpu_ticks(pid):
    with open("/proc/%d/stat" % pid) as f:
        s = f.read()
    fields = s[s.rindex(")") + 2:].split()
    return int(fields[11]) + int(fields[12])


def proc_rss_kib(pid):
    with open("/proc/%d/status" % pid) as f:
        for line in f:
            if line.startswith("VmRSS:"):
                return int(line.split()[1])
    return None


class Sampler:
    """Every `interval` s until stopped: each daemon's utime+stime (the
    last value is kept) and, with rss, its VmRSS (every sample kept)."""

    def __init__(self, d, interval, rss=False):
        self.d, self.interval, self.rss = d, interval, rss
        self.cpu = {}                   # name -> (role, ticks)
        self.rss_samples = {}           # name -> [(t, kib)]
        self.began = time.monotonic()
        self._stop = threading.Event()
        self.thread = threading.Thread(target=self._run, daemon=True)
        self.thread.start()

    def sample(self):
        now = time.monotonic() - self.began
        for rep in list(self.d.replica.values()):
            if not rep.alive():
                continue
            try:
                self.cpu[rep.name] = (rep.role, proc_cpu_ticks(rep.process.pid))
                if self.rss:
                    kib = proc_rss_kib(rep.process.pid)
                    if kib is not None:
                        self.rss_samples.setdefault(rep.name, []).append((now, kib))
            except (OSError, ValueError, IndexError):
                continue

    def _run(self):
        while not self._stop.wait(self.interval):
            self.sample()

    def stop(self):
        """A last sample, then no more."""
        self._stop.set()
        self.thread.join()
        self.sample()

    def cpu_share(self):
        per = {}
        for role, t in self.cpu.values():
            per[role] = per.get(role, 0) + t
        total = sum(per.values())
        return {r: (per.get(r, 0) / total if total else None) for r in ROLES}


# -- latency -----------------------------------------------------------------
def parse_histogram(text, name):
    """Cumulative buckets [(le, count)] (le float, +Inf last) of an unlabelled
    histogram in Prometheus text, and the value of every plain sample."""
    buckets, plain = [], {}
    for line in text.splitlines():
        if not line or line.startswith("#"):
            continue
        m = re.match(r'^%s_bucket\{le="([^"]+)"\}\s+(\S+)$' % re.escape(name), line)
        if m:
            buckets.append((float(m.group(1)), float(m.group(2))))
            continue
        m = re.match(r"^([a-zA-Z_:][a-zA-Z0-9_:]*)\s+(\S+)$", line)
        if m:
            plain[m.group(1)] = float(m.group(2))
    return sorted(buckets), plain


def histogram_quantile(q, buckets, maximum=None):
    """Prometheus' histogram_quantile: linear interpolation within the range
    (le bounds) holding rank q * count (the first range from 0); in the +Inf
    range the exact maximum when known, and never above it. None when empty."""
    if not buckets or buckets[-1][1] <= 0:
        return None
    rank = q * buckets[-1][1]
    lo, below = 0.0, 0.0
    for le, cum in buckets:
        if cum >= rank and cum > below:
            if math.isinf(le):
                return maximum if maximum is not None else lo
            value = lo + (le - lo) * (rank - below) / (cum - below)
            return min(value, maximum) if maximum is not None else value
        lo, below = le, cum
    return maximum


def world_metrics_url(d):
    with open(d.path("endpoints.json")) as f:
        urls = json.load(f).get("metrics", {})
    name = "world-1"
    if name not in urls:
        raise BenchError("endpoints.json lists no metrics URL for %s" % name)
    return urls[name]


def scrape_latency(d):
    """(p50, p99, max, count) of the world's round trip, in seconds."""
    url = world_metrics_url(d)
    try:
        with urllib.request.urlopen(url, timeout=10) as r:
            text = r.read().decode()
    except OSError as e:
        raise BenchError("cannot scrape %s: %s" % (url, e))
    buckets, plain = parse_histogram(text, ROUND_TRIP)
    if not buckets:
        raise BenchError("%s serves no %s" % (url, ROUND_TRIP))
    maximum = plain.get(ROUND_TRIP_MAX)
    return (histogram_quantile(0.5, buckets, maximum), histogram_quantile(0.99, buckets, maximum),
            maximum, int(buckets[-1][1]))


# -- distributed -------------------------------------------------------------
def callgrind_overrides():
    """Every role: a deadline that never trips, rare re-sends."""
    out = {}
    for role, ups in qd.UPSTREAMS.items():
        out[role] = {"resend_ms": CALLGRIND_RESEND_MS,
                     "upstream": {up: {"deadline_ms": CALLGRIND_DEADLINE_MS} for up, _ in ups}}
    return out


def deployment(a, b, n, episodes, state, prefix=None):
    return qd.Deployment(build_dir=a.build_dir, state_dir=state, batch=b, replicas=n, seed=a.seed,
                         episodes=episodes, env=a.env, metrics=True, daemon_prefix=prefix,
                         overrides=callgrind_overrides() if prefix else None,
                         stop_grace_s=CALLGRIND_STOP_GRACE_S if prefix else 5.0)


def check_alive(d):
    """A daemon that died fails the run at once (rather than at the stall
    timeout); one that could not bind its port is a PortTaken."""
    dead = d.dead()
    if dead:
        tails = d.log_tails(8, dead)
        cls = PortTaken if "Address already in use" in tails else BenchError
        raise cls("%s exited:\n%s" % (", ".join(r.name for r in dead), tails))


def run_distributed(a, b, n, episodes, prefix=None, out_dir=None):
    """summary, cpu share, latency (p50, p99, max, count). out_dir: emptied
    before every attempt (a run is retried when a daemon's port was taken)."""
    for attempt in range(PORT_RETRIES + 1):
        if out_dir:
            for f in os.listdir(out_dir):
                os.unlink(os.path.join(out_dir, f))
        try:
            return run_distributed_once(a, b, n, episodes, prefix)
        except PortTaken as e:
            if attempt == PORT_RETRIES:
                raise
            sys.stderr.write("pipeline bench: a port was taken, running again: %s\n"
                             % str(e).splitlines()[0])


def run_distributed_once(a, b, n, episodes, prefix=None):
    state = tempfile.mkdtemp(prefix="quintet-bench-pipeline-")
    box = {}
    try:
        with deployment(a, b, n, episodes, state, prefix) as d:
            d.setup()
            d.start()
            sampler = Sampler(d, 0.5)

            def before_stop(d):
                sampler.stop()
                box["latency"] = scrape_latency(d)
            try:
                check_alive(d)
                summary = d.run_to_completion(
                    timeout=a.timeout, before_stop=before_stop, on_progress=check_alive,
                    stall_timeout=CALLGRIND_STALL_S if prefix else 60.0)
            finally:
                if sampler.thread.is_alive():
                    sampler.stop()
        if summary["episodes"] < episodes:
            raise BenchError("only %d of %d episodes were reported" % (summary["episodes"], episodes))
        return summary, sampler.cpu_share(), box["latency"]
    except (qd.DeploymentError, ValueError, OSError) as e:
        cls = PortTaken if "Address already in use" in str(e) else BenchError
        raise cls("distributed run (B=%d, n=%d): %s" % (b, n, e))
    finally:
        shutil.rmtree(state, ignore_errors=True)


def instructions(a, b, n):
    """Instructions per step in-process and distributed, each the difference
    of a run of 2E and one of E episodes over the difference of their steps
    (start-up and shut-down cancel out); also the larger run's raw figure.
    E >= B (default B): every instance runs in both, so that the difference
    holds whole ticks (with E < B it would hold only the added instances'
    work, not the per-tick costs: signatures, quorums, messages)."""
    e = a.instr_episodes or b
    if e < b:
        raise BenchError("--instr-episodes %d < B = %d: some instances would idle" % (e, b))
    work = tempfile.mkdtemp(prefix="quintet-bench-callgrind-", dir=a.keep_callgrind)
    out = {}
    try:
        runs = {}
        for k, episodes in enumerate((e, 2 * e)):
            sim_dir = os.path.join(work, "sim-%d" % k)
            dist_dir = os.path.join(work, "dist-%d" % k)
            os.makedirs(sim_dir)
            os.makedirs(dist_dir)
            steps, _ = run_sim(a, b, episodes, callgrind_prefix(os.path.join(sim_dir, "sim.out")))
            sim_ir, _ = callgrind_sum(sim_dir)
            summary, _, _ = run_distributed(a, b, n, episodes,
                                            callgrind_prefix(os.path.join(dist_dir, "{name}.%p.out")),
                                            out_dir=dist_dir)
            by_role = {}
            dist_ir, files = callgrind_sum(dist_dir, by_role)
            runs[k] = (steps, sim_ir, summary["steps"], dist_ir, files, by_role,
                       summary["elapsed_seconds"])
            sys.stderr.write("callgrind B=%d n=%d %d episodes: in-process %d steps %d Ir; "
                             "distributed %d steps %d Ir over %d processes\n"
                             % (b, n, episodes, steps, sim_ir, summary["steps"], dist_ir, files))
        (s1, i1, d1, j1, _, r1, e1), (s2, i2, d2, j2, files, r2, e2) = runs[0], runs[1]
        if s2 <= s1 or d2 <= d1:
            raise BenchError("callgrind: the 2E run has no more steps than the E run")
        out["instructions_per_step_inprocess"] = (i2 - i1) / (s2 - s1)
        out["instructions_per_step_distributed"] = (j2 - j1) / (d2 - d1)
        out["instructions_per_step_inprocess_with_startup"] = i2 / s2
        out["instructions_per_step_distributed_with_startup"] = j2 / d2
        out["instructions_processes"] = files
        out["instructions_per_step_by_role"] = {r: (r2.get(r, 0) - r1.get(r, 0)) / (d2 - d1)
                                                for r in ROLES}
        out["instructions_distributed_elapsed_s"] = [e1, e2]
        out["instructions_ratio_to_n_inprocess"] = (
            out["instructions_per_step_distributed"] / (n * out["instructions_per_step_inprocess"]))
        out["instructions_episodes"] = [e, 2 * e]
    finally:
        if a.keep_callgrind:
            sys.stderr.write("callgrind output kept in %s\n" % work)
        else:
            shutil.rmtree(work, ignore_errors=True)
    return out


# -- RSS ---------------------------------------------------------------------
def rss_stats(samples):
    """first, last, max (KiB) and growth: mean of the last quarter of the
    samples minus the mean of the second quarter (KiB)."""
    values = [kib for _, kib in samples]
    q = len(values) // 4
    growth = None
    if q >= 1:
        second = values[q:2 * q]
        last = values[len(values) - q:]
        growth = sum(last) / len(last) - sum(second) / len(second)
    return {"first_kib": values[0], "last_kib": values[-1], "max_kib": max(values),
            "growth_q4_vs_q2_kib": growth, "samples": len(values)}


def run_rss(a, b, n):
    state = tempfile.mkdtemp(prefix="quintet-bench-rss-")
    try:
        with deployment(a, b, n, 0, state) as d:      # 0 episodes: until stopped
            d.setup()
            d.start()
            sampler = Sampler(d, a.rss_interval, rss=True)
            end = time.monotonic() + a.rss_minutes * 60
            try:
                while time.monotonic() < end:
                    d.pump(0.25)
                    check_alive(d)
            finally:
                sampler.stop()
                steps, ticks, elapsed = d.progress.steps, d.progress.ticks, d.elapsed()
                d.stop()
        per = {name: rss_stats(s) for name, s in sorted(sampler.rss_samples.items())}
        roles = {}
        for role in ROLES:
            mine = [v for name, v in per.items() if name.rsplit("-", 1)[0] == role]
            if mine:
                roles[role] = {"first_kib": max(v["first_kib"] for v in mine),
                               "last_kib": max(v["last_kib"] for v in mine),
                               "max_kib": max(v["max_kib"] for v in mine),
                               "growth_q4_vs_q2_kib": max((v["growth_q4_vs_q2_kib"] for v in mine
                                                           if v["growth_q4_vs_q2_kib"] is not None),
                                                          default=None)}
        return {"batch": b, "replicas": n, "env": a.env or "default", "seed": a.seed,
                "rss_minutes": a.rss_minutes, "rss_interval_s": a.rss_interval,
                "steps": steps, "ticks": ticks, "elapsed_s": elapsed,
                "rss_by_role": roles, "rss_by_daemon": per}
    finally:
        shutil.rmtree(state, ignore_errors=True)


# -- main --------------------------------------------------------------------
def grid_row(a, b, n):
    row = {"batch": b, "replicas": n, "env": a.env or "default", "seed": a.seed,
           "episodes": a.episodes, "inprocess_steps_per_s": None, "distributed_steps_per_s": None,
           "ratio": None, "cpu_share": {r: None for r in ROLES},
           "tick_latency_p50_s": None, "tick_latency_p99_s": None, "tick_latency_max_s": None,
           "tick_latency_ticks": None}
    try:
        steps, dt = run_sim(a, b, a.episodes)
        row["inprocess_steps_per_s"] = steps / dt if dt > 0 else None
        summary, cpu, (p50, p99, mx, count) = run_distributed(a, b, n, a.episodes)
        row["distributed_steps_per_s"] = summary["steps_per_second"]
        row["cpu_share"] = cpu
        row.update(tick_latency_p50_s=p50, tick_latency_p99_s=p99, tick_latency_max_s=mx,
                   tick_latency_ticks=count)
        if row["inprocess_steps_per_s"] and row["distributed_steps_per_s"]:
            row["ratio"] = row["distributed_steps_per_s"] / row["inprocess_steps_per_s"]
        if a.instructions:
            row.update(instructions(a, b, n))
    except BenchError as e:
        row["error"] = str(e)
        sys.stderr.write("pipeline bench: B=%d n=%d: %s\n" % (b, n, e))
    return row


def main():
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--batch", type=int, action="append", help="B (repeatable; default 1, 32, 1024)")
    ap.add_argument("--replicas", type=int, action="append", help="n (repeatable; default 3, 5)")
    ap.add_argument("--episodes", type=int, default=256)
    ap.add_argument("--env", default=None,
                    help="environment (default: the registry's default, as quintet-sim and the demo)")
    ap.add_argument("--seed", type=int, default=1)
    ap.add_argument("--timeout", type=float, default=600, help="per run, seconds (default 600)")
    ap.add_argument("--build-dir", default=os.path.join(ROOT, "build"))
    ap.add_argument("--instructions", action="store_true",
                    help="also instructions per step under valgrind callgrind (slow: ~50x)")
    ap.add_argument("--instr-episodes", type=int, default=None, metavar="E",
                    help="--instructions: runs of E and 2E episodes, E >= B (default B)")
    ap.add_argument("--keep-callgrind", default=None, metavar="DIR",
                    help="--instructions: keep the callgrind.out files in a new directory under DIR "
                         "(callgrind_annotate reads them)")
    ap.add_argument("--rss-minutes", type=float, default=None, metavar="M",
                    help="instead of the grid: one distributed run (the first B and n given; default "
                         "the demo's) of M minutes, every daemon's VmRSS sampled")
    ap.add_argument("--rss-interval", type=float, default=5.0, metavar="S",
                    help="--rss-minutes: seconds between samples (default 5)")
    a = ap.parse_args()
    if a.episodes < 1 or (a.instr_episodes or 1) < 1 or any(v < 1 for v in (a.batch or []) + (a.replicas or [])):
        ap.error("--episodes, --instr-episodes, --batch and --replicas must be positive")
    if a.instructions and not shutil.which("valgrind"):
        ap.error("--instructions needs valgrind (apt-get install valgrind)")
    a.build_dir = os.path.abspath(a.build_dir)
    batches, replicas = a.batch or [1, 32, 1024], a.replicas or [3, 5]
    if a.rss_minutes is not None:
        if a.rss_minutes <= 0:
            ap.error("--rss-minutes must be positive")
        try:
            row = run_rss(a, a.batch[0] if a.batch else qd.DEFAULT_BATCH,
                          a.replicas[0] if a.replicas else qd.DEFAULT_REPLICAS)
        except (BenchError, qd.DeploymentError, ValueError, OSError) as e:
            sys.stderr.write("pipeline bench: RSS run: %s\n" % e)
            return 1
        print(json.dumps(row), flush=True)
        mib = lambda k: "%.1f" % (k / 1024)
        print("%-11s %9s %9s %9s %14s" % ("role", "first MiB", "last MiB", "max MiB", "Q4-Q2 KiB"))
        for role, v in row["rss_by_role"].items():
            g = v["growth_q4_vs_q2_kib"]
            print("%-11s %9s %9s %9s %14s" % (role, mib(v["first_kib"]), mib(v["last_kib"]),
                                              mib(v["max_kib"]), "null" if g is None else "%.0f" % g))
        return 0
    rows = []
    for b in batches:
        for n in replicas:
            row = grid_row(a, b, n)
            print(json.dumps(row), flush=True)
            rows.append(row)
    f = lambda v, d=1: "null" if v is None else "%.*f" % (d, v)
    ms = lambda v: "null" if v is None else "%.3f" % (v * 1000)
    print("%6s %3s %12s %12s %7s %8s %8s %8s%s" % (
        "B", "n", "sim steps/s", "dist steps/s", "ratio", "p50 ms", "p99 ms", "max ms",
        "  Ir/step in-process  distributed  /(n x in-process)" if a.instructions else ""))
    for r in rows:
        extra = ""
        if a.instructions:
            extra = "  %18s %12s %18s" % (f(r.get("instructions_per_step_inprocess"), 0),
                                           f(r.get("instructions_per_step_distributed"), 0),
                                           f(r.get("instructions_ratio_to_n_inprocess"), 3))
        print("%6d %3d %12s %12s %7s %8s %8s %8s%s" % (
            r["batch"], r["replicas"], f(r["inprocess_steps_per_s"], 0), f(r["distributed_steps_per_s"], 0),
            f(r["ratio"], 3), ms(r["tick_latency_p50_s"]), ms(r["tick_latency_p99_s"]),
            ms(r["tick_latency_max_s"]), extra))
    return 1 if any("error" in r for r in rows) else 0


if __name__ == "__main__":
    sys.exit(main())
