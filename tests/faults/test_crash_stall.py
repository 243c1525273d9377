#!/usr/bin/python3
"""kill -9 and restart of a replica of every role, and a stalled replica.

Crash: one run of CRASH_EPISODES episodes; at a seeded random tick, one
seeded random replica of each pipeline role is killed with SIGKILL and
restarted (same config, key and state) RESTART_AFTER_S later; kills of
different roles may overlap (at most one replica per role, f = 1, is down
at a time). Every replica of a role is watched on its own topic (verified).
Checks: no tick lost (every tick 1..last has its aggregated reward); each
restarted replica publishes again and reaches its peers' tick (its
messages are for the tick the consumers are collecting: used) within
REJOIN_TICKS ticks of its first message and REJOIN_S of its spawn (process
start included); the final performance is the honest run's (the
in-process simulation of the same run, quintet-sim, gives exactly the
honest daemons' figure: 10.009000 at 256 episodes, seed 1) and >=
faultlib.MIN_PERFORMANCE.

Stall: on a deployment that runs until stopped, a scorer replica is
stopped (SIGSTOP) for STALL_S seconds, then continued. Ticks per second
before, during and after are printed; the stall must cost at most a few
deadlines in total: throughput while stalled and after SIGCONT at least
half of the throughput before (one deadline of 100 ms per tick would cap
it at 10 ticks/s).
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
CRASH_EPISODES = 256    # 808 ticks; the six kills overlap, so they fit in any speed
RESTART_AFTER_S = 0.5
REJOIN_TICKS = 3        # from its first message to its peers' tick
REJOIN_S = 5.0          # from spawn, process start-up included (generous: loaded CI)
STALL_S = 3.0

rng = random.Random(SEED)
# kill ticks spread over the first half of the run, one per role
plan = {role: (rng.randint(40, 360), rng.randint(1, 3)) for role in fl.ROLES}
print("crash plan (tick, role-replica): %s"
      % ", ".join("%d %s-%d" % (t, role, r) for role, (t, r) in
                  sorted(plan.items(), key=lambda item: item[1])), flush=True)


class RoleWatch:
    """Every replica of a role on its topic: per replica its latest tick
    and process epoch."""

    def __init__(self, d, context, role):
        self.role = role
        self.sub = context.socket(zmq.SUB)
        self.sub.setsockopt(zmq.LINGER, 0)
        self.sub.setsockopt(zmq.RCVHWM, 100000)
        self.sub.setsockopt(zmq.SUBSCRIBE, fl.qd.PUBLISHES[role].encode())
        for endpoint in d.endpoints(role):
            self.sub.connect(endpoint)
        self.verifier = fl.qd.Verifier(d.pb2, d.trust, d.batch)
        self.tick = {}          # replica -> latest tick
        self.epoch = {}         # replica -> epoch of its latest message

    def drain(self, on_message):
        while True:
            try:
                frames = self.sub.recv_multipart(zmq.NOBLOCK)
            except zmq.Again:
                return
            opened = self.verifier.open(frames)
            if not opened:
                continue
            envelope = opened[1]
            self.tick[envelope.replica] = max(self.tick.get(envelope.replica, 0), envelope.tick)
            self.epoch[envelope.replica] = envelope.epoch
            on_message(self, envelope)

    def peers_tick(self, replica):
        return max([t for r, t in self.tick.items() if r != replica] or [0])


rejoin = {}     # role -> dict of what happened


def crash_plan(d, timeout_s=90.0):
    context = zmq.Context()
    watches = {role: RoleWatch(d, context, role) for role in fl.ROLES}
    state = {role: {"phase": "planned", "at": tick, "replica": r}
             for role, (tick, r) in plan.items()}

    def on_message(watch, envelope):
        s = state[watch.role]
        if s["phase"] != "rejoining" or envelope.replica != s["replica"]:
            return
        if envelope.epoch == s["old_epoch"]:
            return      # still in flight from the killed process
        peers = watch.peers_tick(envelope.replica)
        now = time.monotonic()
        if "first_s" not in s:
            s["first_s"] = now - s["spawned"]
            s["first_tick"] = envelope.tick
            s["peers_at_first"] = peers
        if envelope.tick >= peers:
            s["current_s"] = now - s["spawned"]
            s["current_tick"] = envelope.tick
            s["peers_at_current"] = peers
            s["phase"] = "done"

    began = time.monotonic()
    try:
        while any(s["phase"] != "done" for s in state.values()):
            if time.monotonic() - began > timeout_s:
                break
            d.pump(0.01)
            for watch in watches.values():
                watch.drain(on_message)
            now = time.monotonic()
            for role, s in state.items():
                if s["phase"] == "planned" and d.progress.ticks >= s["at"]:
                    s["killed_tick"] = d.progress.ticks
                    s["old_epoch"] = watches[role].epoch.get(s["replica"])
                    d.kill(role, s["replica"])
                    s["killed"] = now
                    s["phase"] = "down"
                elif s["phase"] == "down" and now - s["killed"] >= RESTART_AFTER_S:
                    # spawned as restart() does, without its 0.5 s start-up
                    # grace (which would hide when the first message came)
                    s["spawned"] = time.monotonic()
                    d._spawn(d.replica[(role, s["replica"])])
                    s["phase"] = "rejoining"
                elif s["phase"] == "rejoining" and now - s["spawned"] > REJOIN_S * 3:
                    s["phase"] = "done"     # never rejoined: reported below
    finally:
        for watch in watches.values():
            watch.sub.close(0)
        context.term()
    rejoin.update(state)


summary, trace, _drops, crash_d = fl.run(opts.build_dir, "crash", opts.keep, on_start=crash_plan,
                                    episodes=CRASH_EPISODES, timeout=180)
print("crash run: %s" % fl.fmt_summary(summary), flush=True)
for role in fl.ROLES:
    s = rejoin.get(role, {})
    name = "%s-%d" % (role, plan[role][1])
    if "current_s" not in s:
        fl.check(False, "%s (planned kill at tick %d): %s" % (
            name, plan[role][0], "never killed (run ended first)" if "killed" not in s else
            "restarted, first message %s, never at its peers' tick"
            % ("after %.2f s" % s["first_s"] if "first_s" in s else "never")), failures)
        continue
    behind = s["peers_at_current"] - s["peers_at_first"]
    fl.check(behind <= REJOIN_TICKS and s["current_s"] <= REJOIN_S,
             "%s killed at tick %d, restarted %.1f s later: first message after %.2f s "
             "(tick %d, peers at %d), at its peers' tick %d after %.2f s: %d ticks after its "
             "first (<= %d), <= %.0f s" % (name, s["killed_tick"], RESTART_AFTER_S, s["first_s"],
                                           s["first_tick"], s["peers_at_first"], s["current_tick"],
                                           s["current_s"], behind, REJOIN_TICKS, REJOIN_S),
             failures)
last = max(trace.by_tick)
lost = [t for t in range(1, last + 1) if t not in trace.by_tick]
fl.check(not lost and summary["episodes"] >= CRASH_EPISODES,
         "no tick lost: rewards for every tick 1..%d (%d missing%s), %d episodes"
         % (last, len(lost), ": %s" % lost[:10] if lost else "", summary["episodes"]), failures)
perf = summary["performance"]
honest = fl.simulated(crash_d)["performance"]
fl.check(perf is not None and perf >= fl.MIN_PERFORMANCE and abs(perf - honest) <= 1e-6,
         "crash run: performance %.6f >= %.1f, the honest run's %.6f (%s)"
         % (perf if perf is not None else float("nan"), fl.MIN_PERFORMANCE, honest,
            " ".join(crash_d.sim_command()[1:])), failures)

rates = {}
with fl.Live(opts.build_dir, "stall", opts.keep) as d:
    fl.rate(d, 2.0)     # warm-up
    rates["before"] = fl.rate(d, STALL_S)
    d.kill("scorer", 2, signal.SIGSTOP)
    rates["during"] = fl.rate(d, STALL_S)
    d.kill("scorer", 2, signal.SIGCONT)
    rates["after"] = fl.rate(d, STALL_S)
    dead = [rep.name for rep in d.dead()]
print("ticks/s with scorer-2 stalled for %.0f s: before %.1f, during %.1f, after %.1f"
      % (STALL_S, rates["before"], rates["during"], rates["after"]), flush=True)
fl.check(not dead, "stall run: no replica died (%s)" % (dead or "none"), failures)
for phase in ("during", "after"):
    lost_s = STALL_S * max(0.0, 1 - rates[phase] / rates["before"]) if rates["before"] else 0.0
    fl.check(rates[phase] >= 0.5 * rates["before"],
             "stall costs at most a few deadlines: %.1f ticks/s %s >= half of %.1f before "
             "(about %.1f s lost, %.0f deadlines of 100 ms)"
             % (rates[phase], phase, rates["before"], lost_s, lost_s / 0.1), failures)
if failures:
    print("%d check(s) failed" % len(failures))
    sys.exit(1)
print("crashes and stalls tolerated")
