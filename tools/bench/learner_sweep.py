#!/usr/bin/python3
"""learner_sweep: choose the actor's one set of hyperparameters on the
test-only `hidden` reward, where the learner's competence is the question.

For each candidate setting (a grid given on the command line as
`--grid NAME=V1,V2,...`, NAME a learning option of daemons/actor/qlearn.h),
run quintet-sim with `--reward-source hidden` on every registered
environment and seed, and report the fraction of each environment's safe
reference the learner reaches. The setting to prefer is the one with the
highest minimum fraction over environments (ties: the higher mean). The
pipeline's own performance is never looked at here.

    tools/bench/learner_sweep.py --sim build/tools/sim/quintet-sim \
        --grid alpha_power=0,0.5 --grid q_initial=0,1 --seeds 1,2 --episodes 10000

One JSON line per run on --out (default: none), then a table.
"""
import argparse
import itertools
import json
import subprocess
import sys


def safe_reference(sim, env):
    described = json.loads(subprocess.run([sim, "--describe-env", env], check=True,
                                          capture_output=True, text=True).stdout)
    for reference in described["references"]:
        if reference["kind"] == "safe":
            return reference["performance"]
    raise SystemExit(f"{env}: no safe reference")


def main():
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--sim", required=True)
    parser.add_argument("--grid", action="append", default=[], help="NAME=V1,V2,...")
    parser.add_argument("--env", action="append", help="environments (default: all)")
    parser.add_argument("--seeds", default="1")
    parser.add_argument("--episodes", type=int, default=2000)
    parser.add_argument("--extra", default="", help="more quintet-sim flags for every run")
    parser.add_argument("--out")
    args = parser.parse_args()
    envs = args.env or json.loads(subprocess.run([args.sim, "--list-envs"], check=True,
                                                 capture_output=True, text=True).stdout)
    bars = {env: safe_reference(args.sim, env) for env in envs}
    names = [g.split("=", 1)[0] for g in args.grid]
    values = [g.split("=", 1)[1].split(",") for g in args.grid]
    out = open(args.out, "a") if args.out else None
    rows = []
    for setting in itertools.product(*values) if values else [()]:
        flags = [x for name, value in zip(names, setting) for x in ("--learner", f"{name}={value}")]
        fractions = {}
        for env in envs:
            perf = []
            for seed in args.seeds.split(","):
                command = [args.sim, "--env", env, "--reward-source", "hidden", "--episodes",
                           str(args.episodes), "--seed", seed, "--quiet", "--json"] + flags
                command += args.extra.split()
                result = subprocess.run(command, check=True, capture_output=True, text=True)
                record = {k: v for line in result.stdout.strip().splitlines() if line.startswith("{") for k, v in json.loads(line).items()}
                record["setting"] = dict(zip(names, setting))
                if out:
                    out.write(json.dumps(record) + "\n")
                    out.flush()
                perf.append(record["performance"])
            mean = sum(perf) / len(perf)
            bar = bars[env]
            fractions[env] = mean / bar if bar > 0 else float("nan")
            print(f"  {' '.join(flags) or 'defaults'} {env}: {mean:.2f} of {bar:.2f}"
                  f" ({100 * fractions[env]:.0f}%)", file=sys.stderr, flush=True)
        finite = [f for f in fractions.values() if f == f]
        rows.append((min(finite), sum(finite) / len(finite), flags, fractions))
    rows.sort(key=lambda row: (row[0], row[1]), reverse=True)
    print("min%  mean%  setting  | " + " ".join(e[:8] for e in envs))
    for low, mean, flags, fractions in rows:
        print(f"{100 * low:4.0f} {100 * mean:6.0f}  {' '.join(flags) or 'defaults'} | "
              + " ".join(f"{100 * fractions[e]:8.0f}" for e in envs))


if __name__ == "__main__":
    main()
