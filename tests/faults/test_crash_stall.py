#!/usr/bin/python3
"""kill -9 and restart of a replica of every role, and a stalled replica.

Crash: one run of the demo's default length; at seeded random times, one
seeded random replica of each pipeline role is killed with SIGKILL and
restarted (same config, key and state) 1 s later. Checks: no tick lost
(every tick has its aggregated reward), each restarted replica's first
message (read from its own topic) is for a tick at most REJOIN_TICKS behind
the pipeline and comes within REJOIN_S of its spawn, and the final
performance is >= 12.

Stall: a scorer replica is stopped (SIGSTOP) for STALL_S seconds, then
continued. Ticks per second before, during and after are printed; the
stall must cost at most a few deadlines in total (throughput while stalled
at least half of the throughput before).
"""
import random
import signal
import sys
import time

import zmq

import faultlib as fl

opts = fl.args(__doc__)
failures = []
SEED = 7
RESTART_AFTER_S = 1.0
REJOIN_TICKS = 3        # its first message is for a tick this close to the pipeline's
REJOIN_S = 3.0          # from spawn, process start-up included
STALL_S = 4.0

rng = random.Random(SEED)
plan = sorted((rng.uniform(3.0, 18.0), role, rng.randint(1, 3)) for role in fl.ROLES)
print("crash plan (s after start, role, replica): %s"
      % ", ".join("%.1f %s-%d" % p for p in plan), flush=True)
rejoin = {}


def rejoined(d, role, replica, spawned_at, timeout_s=15.0):
    """(seconds from spawn, its first tick, the pipeline's tick then) of the
    restarted replica's first verified message."""
    context = zmq.Context()
    sub = context.socket(zmq.SUB)
    sub.setsockopt(zmq.LINGER, 0)
    sub.setsockopt(zmq.SUBSCRIBE, fl.qd.PUBLISHES[role].encode())
    sub.connect(d.replica[(role, replica)].endpoint)
    verifier = fl.qd.Verifier(d.pb2, d.trust, d.batch)
    deadline = time.monotonic() + timeout_s
    try:
        while time.monotonic() < deadline:
            d.pump(0.01)
            try:
                frames = sub.recv_multipart(zmq.NOBLOCK)
            except zmq.Again:
                continue
            opened = verifier.open(frames)
            if opened and opened[1].replica == replica:
                return time.monotonic() - spawned_at, opened[1].tick, d.progress.ticks
        return None
    finally:
        sub.close(0)
        context.term()


def crash_plan(d):
    began = time.monotonic()
    for at, role, replica in plan:
        while time.monotonic() - began < at:
            d.pump(0.05)
        tick_killed = d.progress.ticks
        d.kill(role, replica)
        t = time.monotonic()
        while time.monotonic() - t < RESTART_AFTER_S:
            d.pump(0.05)
        spawned_at = time.monotonic()
        d.restart(role, replica)
        rejoin[(role, replica)] = (tick_killed, rejoined(d, role, replica, spawned_at))


summary, trace, _drops, _d = fl.run(opts.build_dir, "crash", opts.keep, on_start=crash_plan)
print("crash run: %s" % fl.fmt_summary(summary), flush=True)
for (role, replica), (killed, seen) in sorted(rejoin.items()):
    seconds, first, current = seen if seen else (float("nan"), -1, -1)
    fl.check(seen is not None and current - first <= REJOIN_TICKS and seconds <= REJOIN_S,
             "%s-%d killed at tick %d, restarted: first message after %.2f s (process start "
             "included), for tick %d while the pipeline was at tick %d (<= %d behind, <= %.0f s)"
             % (role, replica, killed, seconds, first, current, REJOIN_TICKS, REJOIN_S), failures)
last = max(trace.by_tick)
lost = [t for t in range(1, last + 1) if t not in trace.by_tick]
fl.check(not lost, "no tick lost: rewards for every tick 1..%d (%d missing%s)"
         % (last, len(lost), ": %s" % lost[:10] if lost else ""), failures)
perf = summary["mean_performance_last100"]
fl.check(perf is not None and perf >= fl.MIN_PERFORMANCE,
         "crash run: performance %.2f >= %.0f" % (perf or float("nan"), fl.MIN_PERFORMANCE), failures)

rates = {}


def stall(d):
    def rate(seconds):
        t0, k0 = time.monotonic(), d.progress.ticks
        while time.monotonic() - t0 < seconds:
            d.pump(0.05)
        return (d.progress.ticks - k0) / (time.monotonic() - t0)
    rate(2.0)       # warm-up
    rates["before"] = rate(STALL_S)
    d.kill("scorer", 2, signal.SIGSTOP)
    rates["during"] = rate(STALL_S)
    d.kill("scorer", 2, signal.SIGCONT)
    rates["after"] = rate(STALL_S)


summary, trace, _drops, _d = fl.run(opts.build_dir, "stall", opts.keep, on_start=stall,
                                    episodes=512)
print("stall run: %s" % fl.fmt_summary(summary), flush=True)
print("ticks/s with scorer-2 stalled for %.0f s: before %.1f, during %.1f, after %.1f"
      % (STALL_S, rates["before"], rates["during"], rates["after"]), flush=True)
fl.check(rates["during"] >= 0.5 * rates["before"],
         "stall costs at most a few deadlines: %.1f ticks/s during >= half of %.1f before"
         % (rates["during"], rates["before"]), failures)
# Reported, not asserted (open issue 3 item): a re-admitted replica that is
# still behind is waited for until its deadline on every tick until it has
# caught up, which the measurement after SIGCONT shows on a loaded machine.
lost_s = STALL_S * max(0.0, 1 - rates["after"] / rates["before"]) if rates["before"] else 0.0
print("after SIGCONT: %.1f ticks/s, about %.1f s (%.0f deadlines of 100 ms) lost while it caught up%s"
      % (rates["after"], lost_s, lost_s / 0.1,
         "" if rates["after"] >= 0.5 * rates["before"] else "  [KNOWN ISSUE: catch-up costs a deadline per tick]"),
      flush=True)
if failures:
    print("%d check(s) failed" % len(failures))
    sys.exit(1)
print("crashes and stalls tolerated")
