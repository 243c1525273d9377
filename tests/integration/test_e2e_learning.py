#!/usr/bin/python3
"""End to end: the actor learns the intended behaviour through the pipeline.

With the world and 3 replicas of every role as separate processes on
loopback (the demo's deployment, its default episode count, seed fixed):
  - trained on the pipeline's aggregated reward, the mean hidden performance
    over the last 100 episodes is >= 12;
  - trained on the environment's observed reward (reward_source = env), it
    ends <= 6: it has learned to fool the camera with the bucket.
Both figures are printed (with throughput), whatever the outcome.
"""
import math
import os
import re
import subprocess
import sys
import time

import itest


def extra(parser):
    parser.add_argument("--episodes", type=int, default=None,
                        help="instance-episodes per run (default: the demo's)")
    parser.add_argument("--seed", type=int, default=None)
    parser.add_argument("--only", choices=("pipeline", "env"), default=None)


opts = itest.args(__doc__, extra)
import quintet_deploy as qd  # noqa: E402

MIN_PIPELINE_PERFORMANCE = 12.0
MAX_ENV_PERFORMANCE = 6.0
RUN_TIMEOUT_S = 540          # per run; meson's timeout (1200 s) covers both


def train(reward_source):
    holder, state = itest.state_dir("e2e-" + reward_source, opts.keep)
    try:
        episodes = opts.episodes or qd.DEFAULT_EPISODES
        seed = qd.DEFAULT_SEED if opts.seed is None else opts.seed
        print("training with reward_source = %s: %d episodes, batch %d, 3 replicas per role, "
              "seed %d" % (reward_source, episodes, qd.DEFAULT_BATCH, seed), flush=True)
        last = [time.monotonic()]

        def report(d):
            if time.monotonic() - last[0] >= 15:
                last[0] = time.monotonic()
                p = d.progress
                print("     %s: round %d/%d, tick %d, performance %.2f, observed %.2f, "
                      "pipeline %.2f" % (reward_source, p.rounds_done, d.rounds, p.ticks,
                                         p.performance_last(), p.observed_last(),
                                         p.pipeline_last()), flush=True)

        with qd.Deployment(build_dir=opts.build_dir, state_dir=state,
                           batch=qd.DEFAULT_BATCH, replicas=3, seed=seed,
                           reward_source=reward_source, episodes=episodes) as d:
            d.setup()
            d.start()
            summary = d.run_to_completion(on_progress=report, interval=1.0,
                                          stall_timeout=60, timeout=RUN_TIMEOUT_S)
        print("     %s: %d episodes, %d ticks in %.1f s (%.0f steps/s): performance %s, "
              "observed return %s, pipeline return %s (last 100); %d messages verified, "
              "%d rejected" % (reward_source, summary["episodes"], summary["ticks"],
                               summary["elapsed_seconds"], summary["steps_per_second"],
                               summary["mean_performance_last100"],
                               summary["mean_observed_return_last100"],
                               summary["mean_pipeline_return_last100"],
                               summary["messages_verified"], summary["messages_rejected"]),
              flush=True)
        return summary
    finally:
        if holder:
            holder.cleanup()


def simulated(summary, reward_source):
    """The same training in one process (tools/sim/quintet-sim): honest
    replicas agree bit for bit, so the distributed pipeline must give the
    very figures of the simulation of its logic."""
    sim = os.path.join(opts.build_dir, "tools", "sim", "quintet-sim")
    out = subprocess.run([sim, "--quiet", "--episodes", str(summary["episodes"]),
                          "--batch", str(summary["batch"]), "--seed", str(summary["seed"]),
                          "--reward-source", reward_source],
                         capture_output=True, text=True, timeout=300, check=True).stdout
    match = re.search(r"performance (\S+)\s+observed return (\S+)\s+pipeline return (\S+)", out)
    return tuple(float(v) for v in match.groups()) if match else None


def performance(summary):
    value = summary.get("mean_performance_last100") if summary else None
    return float("nan") if value is None else value


def main():
    failures = []
    results = {}
    for source in ("pipeline", "env"):
        if opts.only and source != opts.only:
            continue
        try:
            results[source] = train(source)
        except qd.DeploymentError as e:
            print("FAIL %s run: %s" % (source, e), flush=True)
            failures.append("%s run failed" % source)
            results[source] = None
    print("figures: mean hidden performance over the last 100 episodes: pipeline %s, env %s"
          % (performance(results.get("pipeline")), performance(results.get("env"))))
    if "pipeline" in results and results["pipeline"]:
        s = results["pipeline"]
        itest.check(s["episode_rounds"] * s["batch"] >= (opts.episodes or qd.DEFAULT_EPISODES),
                    "pipeline run completed its %d episodes" % s["episodes"], failures)
        value = performance(s)
        itest.check(math.isfinite(value) and value >= MIN_PIPELINE_PERFORMANCE,
                    "trained through the pipeline: performance %.2f >= %.0f"
                    % (value, MIN_PIPELINE_PERFORMANCE), failures)
        itest.check(s["messages_rejected"] == 0, "every reward/eval message verified (%d rejected)"
                    % s["messages_rejected"], failures)
        figures = tuple(s[k] for k in ("mean_performance_last100", "mean_observed_return_last100",
                                       "mean_pipeline_return_last100"))
        sim = simulated(s, "pipeline")
        # the sim prints 2 decimals, the summary keeps 3: equal up to that rounding
        itest.check(sim is not None and all(abs(a - b) <= 0.006 for a, b in zip(figures, sim)),
                    "the processes agree with the in-process simulation: %s ~ %s "
                    "(performance, observed, pipeline)" % (figures, sim), failures)
    if "env" in results and results["env"]:
        s = results["env"]
        value = performance(s)
        itest.check(math.isfinite(value) and value <= MAX_ENV_PERFORMANCE,
                    "trained on the environment's reward: performance %.2f <= %.0f "
                    "(observed return %s: it fools the camera)"
                    % (value, MAX_ENV_PERFORMANCE, s["mean_observed_return_last100"]), failures)
    if failures:
        print("%d check(s) failed" % len(failures))
        return 1
    return 0


if __name__ == "__main__":
    sys.exit(main())
