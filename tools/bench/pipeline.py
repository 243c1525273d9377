#!/usr/bin/env python3
"""Price of robustness: quintet-sim (in-process) against the distributed demo.

For each batch B and replica count n: run both on the same env, seed and
episodes; print one JSON line per configuration, then a table.
Per-role CPU share comes from /proc/<pid>/stat (utime+stime) of the daemons
while the demo runs.  Tick latency percentiles are not scraped yet: the stages
do expose quintet_tick_latency_seconds on /metrics, but this script reports
null for them (not measured)."""
import argparse, json, os, re, shutil, subprocess, sys, tempfile, time

ROOT = os.path.dirname(os.path.dirname(os.path.dirname(os.path.abspath(__file__))))
ROLES = ("world", "collector", "worldmodel", "scorer", "rewarder", "aggregator", "actor")


def steps_from_text(text):
    m = re.search(r'"?steps"?\s*[:=]\s*([0-9]+)', text)
    return int(m.group(1)) if m else None


def env_args(a):
    """--env NAME if one was asked for; else both use the registry's default."""
    return ["--env", a.env] if a.env else []


def run_sim(a, b):
    sim = os.path.join(a.build_dir, "tools", "sim", "quintet-sim")
    t0 = time.monotonic()
    p = subprocess.run([sim] + env_args(a) + ["--episodes", str(a.episodes), "--batch", str(b),
                        "--seed", str(a.seed), "--json"], capture_output=True, text=True, timeout=a.timeout)
    dt = time.monotonic() - t0
    steps = steps_from_text(p.stdout)
    return (steps / dt) if steps and dt > 0 else None


def role_cpu(stop, state):
    """utime+stime ticks per role over this run's daemons (their --config is
    under its state dir: other deployments on the machine are not counted),
    sampled until stop()."""
    last = {}
    while not stop():
        for pid in os.listdir("/proc"):
            if not pid.isdigit():
                continue
            try:
                with open("/proc/%s/stat" % pid) as f:
                    s = f.read()
                with open("/proc/%s/cmdline" % pid, "rb") as f:
                    mine = state.encode() in f.read()
            except OSError:
                continue
            if not mine:
                continue
            comm = s[s.index("(") + 1:s.rindex(")")]
            role = next((r for r in ROLES if comm == ("quintet-" + r)[:15]), None)
            if role:
                fields = s[s.rindex(")") + 2:].split()
                last[pid] = (role, int(fields[11]) + int(fields[12]))
        time.sleep(0.5)
    per = {}
    for role, t in last.values():
        per[role] = per.get(role, 0) + t
    total = sum(per.values())
    return {r: (per.get(r, 0) / total if total else None) for r in ROLES}


def run_demo(a, b, n):
    import threading
    state = tempfile.mkdtemp(prefix="quintet-bench-pipeline-")
    cmd = [sys.executable, os.path.join(ROOT, "tools", "demo", "quintet-demo")] + env_args(a) + [
           "--episodes", str(a.episodes), "--batch", str(b), "--replicas", str(n),
           "--seed", str(a.seed), "--quiet", "--no-dashboard", "--state-dir", state,
           "--build-dir", a.build_dir]
    p = subprocess.Popen(cmd, stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True)
    box = {}
    th = threading.Thread(target=lambda: box.update(cpu=role_cpu(lambda: p.poll() is not None, state)))
    th.start()
    try:
        p.communicate(timeout=a.timeout)
    except subprocess.TimeoutExpired:
        p.terminate(); p.communicate()
    th.join()
    try:
        with open(os.path.join(state, "summary.json")) as f:
            sps = json.load(f).get("steps_per_second")
    except (OSError, ValueError):
        sps = None
    shutil.rmtree(state, ignore_errors=True)
    return sps, box.get("cpu", {r: None for r in ROLES})


def main():
    ap = argparse.ArgumentParser(description=__doc__)
    ap.add_argument("--batch", type=int, action="append")
    ap.add_argument("--replicas", type=int, action="append")
    ap.add_argument("--episodes", type=int, default=256)
    ap.add_argument("--env", default=None,
                    help="environment (default: the registry's default, as quintet-sim and the demo)")
    ap.add_argument("--seed", type=int, default=1)
    ap.add_argument("--timeout", type=float, default=600)
    ap.add_argument("--build-dir", default=os.path.join(ROOT, "build"))
    a = ap.parse_args()
    rows = []
    for b in a.batch or [1, 32, 1024]:
        for n in a.replicas or [3, 5]:
            sim = run_sim(a, b)
            dist, cpu = run_demo(a, b, n)
            row = {"batch": b, "replicas": n, "env": a.env or "default", "seed": a.seed, "episodes": a.episodes,
                   "inprocess_steps_per_s": sim, "distributed_steps_per_s": dist,
                   "ratio": (dist / sim) if sim and dist else None, "cpu_share": cpu,
                   "tick_latency_p50_s": None, "tick_latency_p99_s": None, "tick_latency_max_s": None}
            print(json.dumps(row), flush=True)
            rows.append(row)
    f = lambda v: "null" if v is None else ("%.3f" % v if v < 10 else "%.1f" % v)
    print("%6s %3s %12s %12s %8s" % ("B", "n", "sim steps/s", "dist steps/s", "ratio"))
    for r in rows:
        print("%6d %3d %12s %12s %8s" % (r["batch"], r["replicas"], f(r["inprocess_steps_per_s"]),
                                         f(r["distributed_steps_per_s"]), f(r["ratio"])))


if __name__ == "__main__":
    main()
