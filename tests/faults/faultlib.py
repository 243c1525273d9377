"""Shared by the faults suite: command line, deployments with Byzantine or
killed replicas, the reward stream per aggregator replica, drop counters.

Every test is run by meson as
    /usr/bin/python3 test_X.py --build-dir BUILD --source-dir SOURCE
and can be run by hand the same way (defaults: the checkout's build/).
"""
import argparse
import json
import os
import re
import statistics
import subprocess
import sys
import time

HERE = os.path.dirname(os.path.abspath(__file__))
SOURCE = os.path.dirname(os.path.dirname(HERE))

sys.path.insert(0, os.path.join(SOURCE, "tools", "python"))
from quintet import topology  # noqa: E402
# state_dir and check are the integration tests' (one copy)
sys.path.insert(0, os.path.join(SOURCE, "tests", "integration"))
from itest import check, state_dir  # noqa: E402,F401

# The topology (common/topology.txt): the pipeline roles (replicated, in
# order; the world and the raters run one process each)
TOPOLOGY = topology.read()
ROLES = topology.replicated(TOPOLOGY)
# The Byzantine modes, from the build's quintetctl (qt_byzantine's table):
# set by args (), which knows the build
VALUE_MODES = PROTOCOL_MODES = None
# Who receives what each role publishes as its own topic (whose drop
# counters to read)
RECEIVERS = {role: tuple(consumer for consumer, ups in topology.upstreams(TOPOLOGY).items()
                         if (role, topic) in ups)
             for role, topic in topology.publishes(TOPOLOGY).items()}
# Episodes per run (finished over all instances, tomato_watering, batch 32,
# seed 1). The in-process simulation gives exactly the honest daemons'
# figures (build/tools/sim/quintet-sim --episodes N --json, last 100
# episodes): performance 8.195625 at 64 (202 ticks), 9.172400 at 128 (404
# ticks), 10.009000 at 256, 12.001400 at 512, 12.696400 at 1024. A tolerated
# attack leaves the reward (and so the actions and the performance)
# bit-identical to the honest run, so 128 episodes (about 400 ticks) show
# it at an eighth of the demo's 2048.
EPISODES = 128
# "The actor still learns": above what a policy that never learns gets in
# as many episodes (quintet-sim --episodes 128 --learner epsilon_start=1
# --learner epsilon_end=1: random actions throughout, performance 7.645200)
# and below the honest 9.172400; every tolerated fault gives exactly the
# honest figure.
MIN_PERFORMANCE = 8.5
# |aggregated reward - honest run's| per tick and instance: see README
# "Byzantine resilience": 0 in exact arithmetic, this much for rounding
REWARD_TOLERANCE = 1e-9

qd = None


def args(description, extra=None):
    global qd, VALUE_MODES, PROTOCOL_MODES
    parser = argparse.ArgumentParser(description=description)
    parser.add_argument("--build-dir", default=os.path.join(SOURCE, "build"))
    parser.add_argument("--source-dir", default=SOURCE)
    parser.add_argument("--keep", action="store_true", help="keep state directories")
    if extra:
        extra(parser)
    parsed = parser.parse_args()
    from quintet import deploy
    qd = deploy
    try:
        VALUE_MODES = topology.byzantine(parsed.build_dir, "value")
        PROTOCOL_MODES = topology.byzantine(parsed.build_dir, "protocol")
    except topology.TopologyError as e:
        sys.exit("faultlib: %s" % e)
    return parsed


class RewardTrace:
    """Every verified reward batch, by tick and aggregator replica. The
    actors take the median over aggregator replicas per instance, so that is
    "the aggregated reward" compared across runs. `counted`: per tick, the
    instances whose reward anyone uses (clock.step >= 1, not idle: the
    reward of a transition, what the actors learn from and the pipeline
    return sums); a reset state's (step 0) is published but never used."""

    def __init__(self, deployment):
        self.by_tick = {}           # tick -> {aggregator replica: rewards tuple}
        self.counted = {}           # tick -> (bool per instance)
        self.reports = []           # (tick, [(replica, used, distance)]) from aggregator-1
        original = deployment.progress.add_reward

        def add_reward(envelope, batch):
            rewards = tuple(i.reward for i in batch.instances)
            self.by_tick.setdefault(envelope.tick, {})[envelope.replica] = rewards
            self.counted.setdefault(envelope.tick, tuple(
                i.clock.step >= 1 and not i.clock.idle for i in batch.instances))
            original(envelope, batch)
        deployment.progress.add_reward = add_reward

    def median(self, tick):
        rows = list(self.by_tick[tick].values())
        return tuple(statistics.median(column) for column in zip(*rows))

    def medians(self):
        return {tick: self.median(tick) for tick in self.by_tick}


def compare_rewards(trace, reference, counted=None, uncounted=False):
    """(ticks compared, max relative |difference|, ticks missing from trace),
    over every instance, or with `counted` (a RewardTrace.counted) only over
    the instances it marks (uncounted=True: only over the others)."""
    worst = 0.0
    compared = 0
    missing = 0
    for tick, honest in reference.items():
        if tick not in trace.by_tick:
            missing += 1
            continue
        got = trace.median(tick)
        compared += 1
        mask = counted.get(tick) if counted is not None else None
        for k, (a, b) in enumerate(zip(got, honest)):
            if mask is not None and mask[k] == uncounted:
                continue
            worst = max(worst, abs(a - b) / (1.0 + abs(b)))
    return compared, worst, missing


def run(build_dir, name, keep=False, on_start=None, on_progress=None, timeout=120,
        episodes=EPISODES, interval=0.5, on_setup=None, **kwargs):
    """One deployment to completion: (summary, RewardTrace, drops by replica
    name {cause: count}, the Deployment). on_setup(d) runs before start (the
    configs written, nothing running), on_start(d) after start,
    on_progress(d) every `interval` s while it runs."""
    holder, path = state_dir(name, keep)
    try:
        with qd.Deployment(build_dir=build_dir, state_dir=path, episodes=episodes,
                           **kwargs) as d:      # the default environment, tomato_watering
            d.setup()
            trace = RewardTrace(d)
            if on_setup:
                on_setup(d)
            d.start()
            if on_start:
                on_start(d)
            # on_progress every `interval` s: a short run lasts only a few
            # seconds on an idle machine (the demo's 2 s would call it once)
            summary = d.run_to_completion(on_progress=on_progress, timeout=timeout,
                                          interval=interval)
            drops = {rep.name: drop_counts(rep.log_path) for rep in d.replica.values()}
            return summary, trace, drops, d
    finally:
        if holder:
            holder.cleanup()


class Live:
    """A deployment that runs until closed (the world's episodes = 0:
    forever), for measurements that need time rather than a result:
        with fl.Live(build_dir, "stall") as d: ... d.pump(0.05) ...
    Stops every process and removes the state dir on exit, failure included."""

    def __init__(self, build_dir, name, keep=False, **kwargs):
        self.holder, self.path = state_dir(name, keep)
        kwargs["episodes"] = 0          # the world runs until stopped
        self.d = qd.Deployment(build_dir=build_dir, state_dir=self.path, **kwargs)

    def __enter__(self):
        try:
            self.d.setup()
            self.d.start()
        except BaseException:
            self.__exit__(None, None, None)
            raise
        return self.d

    def __exit__(self, *exc):
        try:
            self.d.stop()
        finally:
            if self.holder:
                self.holder.cleanup()
        return False


def rate(d, seconds):
    """Ticks per second seen on the reward stream over `seconds`."""
    t0, k0 = time.monotonic(), d.progress.ticks
    while time.monotonic() - t0 < seconds:
        d.pump(0.05)
    return (d.progress.ticks - k0) / (time.monotonic() - t0)


_DROP_LINE = re.compile(r"dropped by cause:(.*)$")


def drop_counts(log_path):
    """{cause: count} from the stage's last "dropped by cause:" line (logged
    at a clean stop)."""
    counts = {}
    try:
        with open(log_path, errors="replace") as f:
            for line in f:
                m = _DROP_LINE.search(line.rstrip())
                if m:
                    counts = {}
                    for item in m.group(1).split():
                        cause, _, value = item.partition("=")
                        counts[cause] = counts.get(cause, 0) + int(value)
    except OSError:
        pass
    return counts


def simulated(d, **kwargs):
    """quintet-sim's JSON figures for the deployment's run (the same env,
    options, episodes, batch, seed, window): what honest daemons reproduce."""
    out = subprocess.run(d.sim_command(**kwargs), stdout=subprocess.PIPE,
                         stderr=subprocess.PIPE, text=True, timeout=300, check=True).stdout
    return {k: v for line in out.strip().splitlines() if line.startswith("{") for k, v in json.loads(line).items()}


def fmt_summary(summary):
    return ("%s: %d episodes, %d ticks in %.1f s (%.1f ticks/s), performance %s, pipeline "
            "return %s, rejected %d %s" % (summary["env"], summary["episodes"], summary["ticks"],
                                           summary["elapsed_seconds"],
                                           summary["ticks_per_second"],
                                           _fmt(summary["performance"]),
                                           _fmt(summary["pipeline_return"]),
                                           summary["messages_rejected"],
                                           summary["rejected_by_cause"]))


def _fmt(x):
    return "-" if x is None else "%.4f" % x
