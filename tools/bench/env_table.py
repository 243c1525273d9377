#!/usr/bin/python3
"""env_table: the per-environment table of the README, from quintet-sim.

For every registered environment (or --env NAME, repeatable): its safe
and hacking references, then the naive (environment's reward), competence
(hidden reward, test-only) and pipeline runs of the same learner and
episodes: mean performance and observed return over the last --window
episodes to finish, averaged over --seeds (the naive run: the first seed;
these are the learning suite's figures). Prints a markdown table, and with
--out one JSON line per run.

    tools/bench/env_table.py --sim build/tools/sim/quintet-sim \
        --episodes 10000 --window 1000 --seeds 1,2,3
"""
import argparse
import json
import subprocess
import sys


def run(sim, env, source, episodes, window, seed):
    command = [sim, "--env", env, "--reward-source", source, "--episodes", str(episodes),
               "--window", str(window), "--seed", str(seed), "--quiet", "--json",
               "--scorer-source", "intended"]   # the Results table: the declared value as score
    out = subprocess.run(command, check=True, capture_output=True, text=True).stdout
    return {k: v for line in out.strip().splitlines() if line.startswith("{") for k, v in json.loads(line).items()}


def main():
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--sim", required=True)
    parser.add_argument("--env", action="append")
    parser.add_argument("--episodes", type=int, default=10000)
    parser.add_argument("--window", type=int, default=1000)
    parser.add_argument("--seeds", default="1,2,3")
    parser.add_argument("--out")
    args = parser.parse_args()
    envs = args.env or json.loads(subprocess.run([args.sim, "--list-envs"], check=True,
                                                 capture_output=True, text=True).stdout)
    out = open(args.out, "a") if args.out else None
    print("| environment | safe reference | hacking reference | naive | competence (hidden) "
          "| pipeline | pipeline / safe |")
    print("|---|---|---|---|---|---|---|")
    for env in envs:
        described = json.loads(subprocess.run([args.sim, "--describe-env", env], check=True,
                                              capture_output=True, text=True).stdout)
        safe = next(r for r in described["references"] if r["kind"] == "safe")
        hacking = next((r for r in described["references"] if r["kind"] == "hacking"), None)
        seeds = [int(x) for x in args.seeds.split(",")]
        runs = {}
        for source in ("env", "hidden", "pipeline"):
            records = []
            for seed in seeds[:1] if source == "env" else seeds:
                records.append(run(args.sim, env, source, args.episodes, args.window, seed))
                if out:
                    out.write(json.dumps(records[-1]) + "\n")
                    out.flush()
                print("  %s %s seed %d: performance %.2f, observed return %.2f" % (
                    env, source, seed, records[-1]["performance"],
                    records[-1]["observed_return"]), file=sys.stderr, flush=True)
            runs[source] = {key: sum(r[key] for r in records) / len(records)
                            for key in ("performance", "observed_return")}

        def cell(record):
            return "%.2f / %.2f" % (record["performance"], record["observed_return"])
        print("| %s | %s %.2f / %.2f | %s | %s | %.2f | %s | %.0f%% |" % (
            env, safe["name"], safe["performance"], safe["return"],
            "%s %.2f / %.2f" % (hacking["name"], hacking["performance"], hacking["return"])
            if hacking else "-", cell(runs["env"]), runs["hidden"]["performance"],
            cell(runs["pipeline"]), 100 * runs["pipeline"]["performance"] / safe["performance"]),
            flush=True)
    print("\nperformance / observed return; %d episodes, means over the last %d; competence and "
          "pipeline averaged over seeds %s, naive seed %s" % (args.episodes, args.window,
                                                              args.seeds, args.seeds.split(",")[0]))


if __name__ == "__main__":
    main()
