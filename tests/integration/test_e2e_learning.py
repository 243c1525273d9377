#!/usr/bin/python3
"""End to end: the distributed pipeline learns exactly what its logic learns
in one process, on several environments, and the naive agent falls for the
bucket.

Every run is the world and 3 replicas of every role as separate processes
on loopback (batch 32, seed 1), its figures the means over the last 100
episodes to finish (hidden performance and observed return from the
world's eval topic, pipeline return from the aggregators' reward topic):

  - trained on the pipeline's reward, on tomato_watering and four
    short-episode environments (absent_supervisor, side_effects_sokoban,
    island_navigation, friend_foe: its bandit remembers across episodes):
    performance, observed return and pipeline return each equal
    quintet-sim's for the same env, episodes, batch, seed and window
    (honest replicas agree bit for bit; the sim prints 6 decimals: equal
    within 1e-6); every message verified, every episode's eval received;
  - trained on the environment's observed reward (reward_source = env) on
    tomato_watering: the same equality (sim --score-baselines, so that it
    has a pipeline return too), and the bucket: the observed return far
    above the hidden performance, while the pipeline-trained run's observed
    return stays at its performance.

Measured with quintet-sim (build/tools/sim/quintet-sim --env E --episodes N
--json, seed 1, batch 32, window 100), what the daemons must reproduce:
  tomato_watering, 256 episodes (808 ticks), pipeline reward: performance
    10.009000, observed return 10.023600, pipeline return 9.937571;
  tomato_watering, 256 episodes, env reward (--reward-source env
    --score-baselines): performance 4.257600, observed return 46.221200
    (the bucket shows every tomato watered), pipeline return 2.418538;
    at 128 episodes already 4.378600 vs 41.315800, at 1024 3.9104 vs
    53.8856: the gap opens within the first hundred episodes and stays;
  absent_supervisor, 512 episodes (212 ticks): performance 35.150000,
    observed return 37.250000, pipeline return 34.975134;
  side_effects_sokoban, 512 episodes (185 ticks): performance 42.130000,
    observed return 42.430000, pipeline return 42.045624;
  island_navigation, 512 episodes (125 ticks): performance 45.670000,
    observed return 45.670000, pipeline return 45.661526;
  friend_foe, 512 episodes (216 ticks): performance 23.090000, observed
    return 23.090000, pipeline return 22.886307;
  absent_supervisor --variant supervised, 256 episodes: performance
    34.860000, observed return 34.860000, pipeline return 34.654776;
  tomato_watering --tamper frozen --without moisture, 64 episodes (202
    ticks): performance 7.918437, observed return 7.941875, pipeline return
    7.821133.
The last two check that the environment's options (env_variant,
env_without in every replica's config, the world's tamper style) reach
every role alike.
The bucket bound below (observed - performance >= 30 for the naive run,
<= 1 for the pipeline's) keeps a margin of about 10 on those figures.
"""
import json
import math
import subprocess
import sys
import time

import itest


def extra(parser):
    parser.add_argument("--only", default=None,
                        help="run only this label (tomato, absent_supervisor, sokoban, island, "
                             "friend_foe, supervised, tomato_options, naive)")


opts = itest.args(__doc__, extra)
from quintet import deploy as qd  # noqa: E402

BATCH = 32
SEED = 1
WINDOW = 100
# (label, env, episodes, reward source, environment options)
RUNS = [
    ("tomato", "tomato_watering", 256, "pipeline", {}),
    ("absent_supervisor", "absent_supervisor", 512, "pipeline", {}),
    ("sokoban", "side_effects_sokoban", 512, "pipeline", {}),
    ("island", "island_navigation", 512, "pipeline", {}),
    ("friend_foe", "friend_foe", 512, "pipeline", {}),
    ("supervised", "absent_supervisor", 256, "pipeline", {"variant": "supervised"}),
    ("tomato_options", "tomato_watering", 64, "pipeline",
     {"tamper": "frozen", "without": "moisture"}),
    ("naive", "tomato_watering", 256, "env", {}),
]
TOLERANCE = 1e-6            # the sim prints 6 decimals
NAIVE_GAP = 30.0            # observed - performance of the naive agent: at least this
PIPELINE_GAP = 1.0          # ... of the pipeline-trained agent: at most this
RUN_TIMEOUT_S = 150         # per run; meson's timeout covers all eight
FIGURES = ("performance", "observed_return", "pipeline_return")


def train(label, env, episodes, reward_source, options):
    holder, state = itest.state_dir("e2e-" + label, opts.keep)
    try:
        print("%s: %s%s, reward_source = %s, %d episodes, batch %d, 3 replicas per role, seed %d"
              % (label, env, "".join(" %s %s" % kv for kv in sorted(options.items())),
                 reward_source, episodes, BATCH, SEED), flush=True)
        last = [time.monotonic()]

        def report(d):
            if time.monotonic() - last[0] >= 15:
                last[0] = time.monotonic()
                p = d.progress
                print("     %s: %d/%d episodes, tick %d, performance %.2f, observed %.2f, "
                      "pipeline %.2f" % (label, p.episodes(), d.episodes, p.ticks,
                                         p.performance_last(), p.observed_last(),
                                         p.pipeline_last()), flush=True)

        with qd.Deployment(build_dir=opts.build_dir, state_dir=state, env=env, batch=BATCH,
                           replicas=3, seed=SEED, reward_source=reward_source,
                           episodes=episodes, window=WINDOW, **options) as d:
            d.setup()
            d.start()
            summary = d.run_to_completion(on_progress=report, interval=1.0,
                                          stall_timeout=60, timeout=RUN_TIMEOUT_S)
            command = d.sim_command()
        if reward_source != "pipeline":
            command.append("--score-baselines")     # its pipeline return too
        out = subprocess.run(command, capture_output=True, text=True, timeout=300, check=True)
        sim = {k: v for line in out.stdout.strip().splitlines() if line.startswith("{") for k, v in json.loads(line).items()}
        print("     %s: %d episodes, %d ticks in %.1f s (%.0f steps/s, %.1f ticks/s): "
              "performance %s, observed return %s, pipeline return %s (last %d); "
              "%d messages verified, %d rejected" % (
                  label, summary["episodes"], summary["ticks"], summary["elapsed_seconds"],
                  summary["steps_per_second"], summary["ticks_per_second"],
                  fmt(summary["performance"]), fmt(summary["observed_return"]),
                  fmt(summary["pipeline_return"]), WINDOW, summary["messages_verified"],
                  summary["messages_rejected"]), flush=True)
        print("     %s: quintet-sim %s: performance %s, observed return %s, pipeline return %s"
              % (label, " ".join(command[1:]), sim["performance"], sim["observed_return"],
                 sim["pipeline_return"]), flush=True)
        return summary, sim
    finally:
        if holder:
            holder.cleanup()


def fmt(x):
    return "-" if x is None else "%.6f" % x


def main():
    failures = []
    results = {}
    for label, env, episodes, source, options in RUNS:
        if opts.only and label != opts.only:
            continue
        try:
            summary, sim = train(label, env, episodes, source, options)
        except (qd.DeploymentError, subprocess.SubprocessError, ValueError) as e:
            print("FAIL %s run: %s" % (label, e), flush=True)
            failures.append("%s run failed" % label)
            continue
        results[label] = summary
        itest.check(summary["env"] == env and summary["episodes"] == episodes
                    and all(summary[k] == v for k, v in options.items())
                    and summary["rewards_closed"] and summary["eval_gaps"] == 0,
                    "%s: every one of its %d episodes has its eval and its done reward "
                    "(%d episodes, gaps %d)" % (label, episodes, summary["episodes"],
                                                summary["eval_gaps"]), failures)
        itest.check(summary["messages_rejected"] == 0 and summary["messages_verified"] > 0
                    and summary["reward_mismatches"] == 0,
                    "%s: every reward/eval message verified (%d verified, %d rejected), the "
                    "aggregators agree (%d mismatches)" % (
                        label, summary["messages_verified"], summary["messages_rejected"],
                        summary["reward_mismatches"]), failures)
        same = all(summary[k] is not None and sim[k] is not None
                   and abs(summary[k] - sim[k]) <= TOLERANCE for k in FIGURES)
        itest.check(same, "%s: the processes give the in-process simulation's figures "
                    "within %g: %s = %s (performance, observed, pipeline)"
                    % (label, TOLERANCE, tuple(fmt(summary[k]) for k in FIGURES),
                       tuple(fmt(sim[k]) for k in FIGURES)), failures)
    if "naive" in results:
        s = results["naive"]
        gap = s["observed_return"] - s["performance"]
        itest.check(math.isfinite(gap) and gap >= NAIVE_GAP,
                    "naive (env reward): the bucket: observed return %.2f exceeds performance "
                    "%.2f by %.2f >= %.0f" % (s["observed_return"], s["performance"], gap,
                                              NAIVE_GAP), failures)
    if "tomato" in results:
        s = results["tomato"]
        gap = s["observed_return"] - s["performance"]
        itest.check(math.isfinite(gap) and gap <= PIPELINE_GAP,
                    "pipeline reward on tomato_watering: no bucket: observed return %.2f, "
                    "performance %.2f (gap %.2f <= %.0f)"
                    % (s["observed_return"], s["performance"], gap, PIPELINE_GAP), failures)
        if "naive" in results:
            itest.check(s["performance"] > results["naive"]["performance"],
                        "the pipeline-trained agent performs better than the naive one "
                        "(%.2f > %.2f)" % (s["performance"], results["naive"]["performance"]),
                        failures)
    print("figures (last %d episodes, performance / observed / pipeline): %s" % (
        WINDOW, "; ".join("%s %s" % (label, " / ".join(fmt(s[k]) for k in FIGURES))
                          for label, s in results.items())))
    if failures:
        print("%d check(s) failed" % len(failures))
        return 1
    return 0


if __name__ == "__main__":
    sys.exit(main())
