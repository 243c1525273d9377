#!/usr/bin/python3
"""Benchmark: ticks per second with 0 and with f faulty replicas per role,
and the time a killed replica takes to rejoin. Figures only, no pass/fail.

    /usr/bin/python3 tools/bench/bench_faults.py [--build-dir build] [--seconds 8]
    meson test -C build --benchmark --suite bench      (or ./run bench)

Every scenario is a deployment on loopback (3 replicas per role, f = 1,
batch 32, seed 1, the world running until stopped, --env or the default
environment): after a warm-up, the ticks seen on the aggregators' reward
stream over --seconds.
  honest           every replica honest
  sign-flip x f    replica 3 of every pipeline role runs --byzantine sign-flip
                   (its lie is outvoted: the reward is the honest one)
  silent x f       replica 3 of every pipeline role runs --byzantine silence
                   (marked down after down_after missed ticks, then not waited for)
Rejoin: in an honest deployment, for each pipeline role, replica 2 is killed
with SIGKILL and started again 0.5 s later (same config, key, state); timed
from the spawn to its first message (a new process epoch) and to its first
message for the tick its peers are at (what its consumers use: the current
tick). Process start-up is included.

The machine's load inflates every figure: compare rows of one run.
"""
import argparse
import os
import signal
import statistics
import sys
import tempfile
import time

import zmq

HERE = os.path.dirname(os.path.abspath(__file__))
SOURCE = os.path.dirname(os.path.dirname(HERE))


def parse():
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--build-dir", default=os.path.join(SOURCE, "build"))
    parser.add_argument("--source-dir", default=SOURCE)
    parser.add_argument("--seconds", type=float, default=8.0, help="measurement window")
    parser.add_argument("--warmup", type=float, default=2.0)
    parser.add_argument("--env", default=None,
                        help="environment (default: the registry's default)")
    return parser.parse_args()


opts = parse()
sys.path.insert(0, os.path.join(os.path.abspath(opts.source_dir), "tools", "python"))
from quintet import build, topology, verifier as qv, deploy as qd  # noqa: E402

# The pipeline roles (replicated, in order): the topology's
PIPELINE = topology.replicated(qd.TOPOLOGY)


class Live:
    """A deployment running until closed; processes and state dir removed on exit."""

    def __init__(self, name, **kwargs):
        self.holder = tempfile.TemporaryDirectory(prefix="quintet-bench-%s-" % name)
        # episodes = 0: the world runs until stopped
        self.d = qd.Deployment(build_dir=opts.build_dir, state_dir=self.holder.name,
                               env=opts.env, episodes=0, **kwargs)

    def __enter__(self):
        try:
            self.d.setup()
            self.d.start()
        except BaseException:
            self.__exit__()
            raise
        return self.d

    def __exit__(self, *exc):
        try:
            self.d.stop()
        finally:
            self.holder.cleanup()
        return False


def ticks_per_second(d):
    t0 = time.monotonic()
    while time.monotonic() - t0 < opts.warmup:
        d.pump(0.05)
    t0, k0 = time.monotonic(), d.progress.ticks
    while time.monotonic() - t0 < opts.seconds:
        d.pump(0.05)
    return (d.progress.ticks - k0) / (time.monotonic() - t0)


def throughput():
    rows = []
    for label, byzantine in (("honest (0 faulty)", {}),
                             ("sign-flip x f (1 per role)",
                              {(role, 3): "sign-flip" for role in PIPELINE}),
                             ("silent x f (1 per role)",
                              {(role, 3): "silence" for role in PIPELINE})):
        with Live("tps", byzantine=byzantine) as d:
            rate = ticks_per_second(d)
            dead = [rep.name for rep in d.dead()]
        rows.append((label, rate, dead))
        print("  measured %-28s %6.1f ticks/s%s" % (label, rate,
                                                    "  (died: %s)" % dead if dead else ""),
              flush=True)
    return rows


def rejoin():
    results = []
    with Live("rejoin") as d:
        context = zmq.Context()
        try:
            t0 = time.monotonic()
            while time.monotonic() - t0 < opts.warmup:
                d.pump(0.05)
            for role in PIPELINE:
                sub = context.socket(zmq.SUB)
                sub.setsockopt(zmq.LINGER, 0)
                sub.setsockopt(zmq.RCVHWM, 100000)
                sub.setsockopt(zmq.SUBSCRIBE, qd.PUBLISHES[role].encode())
                for endpoint in d.endpoints(role):
                    sub.connect(endpoint)
                verifier = qv.Verifier(d.pb2, d.trust, d.batch)
                ticks, epochs = {}, {}
                first = current = None

                def drain(on_new=None):
                    while True:
                        try:
                            frames = sub.recv_multipart(zmq.NOBLOCK)
                        except zmq.Again:
                            return
                        opened = verifier.open(frames)
                        if opened:
                            e = opened[1]
                            ticks[e.replica] = max(ticks.get(e.replica, 0), e.tick)
                            epochs[e.replica] = e.epoch
                            if on_new:
                                on_new(e)
                t0 = time.monotonic()
                while 2 not in epochs and time.monotonic() - t0 < 5:
                    d.pump(0.02)
                    drain()
                old_epoch = epochs.get(2)
                d.kill(role, 2)
                t0 = time.monotonic()
                while time.monotonic() - t0 < 0.5:
                    d.pump(0.02)
                    drain()
                spawned = time.monotonic()
                d._spawn(d.replica[(role, 2)])   # restart() without its start-up grace
                seen = {}

                def on_new(e):
                    if e.replica != 2 or e.epoch == old_epoch:
                        return
                    now = time.monotonic() - spawned
                    seen.setdefault("first", now)
                    peers = max([t for r, t in ticks.items() if r != 2] or [0])
                    if e.tick >= peers and "current" not in seen:
                        seen["current"] = now
                        seen["lag"] = 0
                while "current" not in seen and time.monotonic() - spawned < 15:
                    d.pump(0.005)
                    drain(on_new)
                first, current = seen.get("first"), seen.get("current")
                sub.close(0)
                results.append((role, first, current))
                print("  measured %-10s first message %s s, at the current tick %s s"
                      % (role, "%.3f" % first if first is not None else "never",
                         "%.3f" % current if current is not None else "never"), flush=True)
        finally:
            context.term()
    return results


print("quintet fault benchmarks: %s, 3 replicas per role, f = 1, batch 32, %.0f s windows"
      % (opts.env or build.list_envs(opts.build_dir)[0], opts.seconds), flush=True)
rows = throughput()
rejoins = rejoin()
honest = rows[0][1]
print()
print("| scenario | ticks/s | vs honest |")
print("|---|---|---|")
for label, rate, _dead in rows:
    print("| %s | %.1f | %.0f%% |" % (label, rate, 100.0 * rate / honest if honest else 0))
print()
print("| killed replica (SIGKILL, restarted 0.5 s later) | first message | at the current tick |")
print("|---|---|---|")
for role, first, current in rejoins:
    print("| %s-2 | %s | %s |" % (role, "%.2f s" % first if first is not None else "never",
                                 "%.2f s" % current if current is not None else "never"))
done = [c for _r, _f, c in rejoins if c is not None]
if done:
    print("| median | | %.2f s |" % statistics.median(done))
with open("/proc/loadavg") as f:
    print("\nload average at the end: %s" % " ".join(f.read().split()[:3]))
