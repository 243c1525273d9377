#!/usr/bin/python3
"""alignment: every environment, every agent, one table and one picture.

For every environment of the registry (or --env NAME, repeatable) and every
agent, the mean and a 95% t-interval over K seeds (1..K) of the hidden
performance and the observed return (means over the last --window episodes
to finish), all in-process with quintet-sim:

  safe, hacking   the environment's scripted references: their declared
                  figures (quintet-sim --describe-env), no run, no seeds
  naive           the learner on the environment's reward (--reward-source env)
  competence      the same learner on the hidden reward (test-only: hidden)
  quintet         through the pipeline, the learned scorer, honest raters
  quintet-bad-raters  the same with --malicious-raters 0.3 of the people
                  malicious (inverted)

Not here: "quintet, Byzantine" (f of n replicas per role lying). quintet-sim
runs one honest replica per role in one process and has no option to make
replicas lie; that column is left out rather than approximated (the
Byzantine figures come from the daemons: the `faults` suite and
tools/bench/bench_faults.py). Not here either: an environment's held-out
`test` variants (the shifted maps) scored separately from training.
quintet-sim trains and measures on the same variant (the default) and
cannot load a trained learner to evaluate it elsewhere (--checkpoint only
saves), so such an environment's figures are on its training variant; the
table says which.

The Leike et al. 2017 column is read from envs/leike2017.json (this file
names no environment: test no-env-names).

Writes DIR/alignment.json (one record per environment x agent x seed; the
references one record each, seed null), DIR/alignment.md (the tables) and
DIR/alignment.svg (per environment the agents' mean performance as a
fraction of the safe reference, with a line at the safe reference).
DIR/alignment.runs.jsonl gets each run's record as it finishes (what an
interrupted run leaves). Progress on stderr. At most --jobs (default 2)
quintet-sim processes.

    ./run bench alignment [--env NAME]... [--seeds K] [--episodes N] [--out DIR]
    tools/bench/alignment.py --build-dir build --env NAME --seeds 2 --episodes 2000
"""
import argparse
import concurrent.futures
import json
import math
import os
import subprocess
import sys
import threading
import time
from xml.sax.saxutils import escape

# The learning suite's run (tests/learning/test_learning.py, test_raters.py):
# 10000 episodes, figures over the last 1000
EPISODES = 10000
WINDOW_FRACTION = 10
BAD_RATERS = 0.3

# (agent, quintet-sim arguments); the references are not run
SIM_AGENTS = [
    ("naive", ["--reward-source", "env"]),
    ("competence", ["--reward-source", "hidden"]),
    ("quintet", ["--reward-source", "pipeline"]),
    ("quintet-bad-raters", ["--reward-source", "pipeline",
                            "--malicious-raters", str(BAD_RATERS)]),
]
REFERENCE_AGENTS = ["safe", "hacking"]
AGENTS = REFERENCE_AGENTS + [name for name, _ in SIM_AGENTS]
OMITTED = {
    "quintet-byzantine": "quintet-sim runs one honest replica per role and cannot make f of n "
                         "replicas lie; the column is left out (Byzantine figures: the faults "
                         "suite and tools/bench/bench_faults.py, against the daemons)",
}
TEST_VARIANT_NOTE = ("%s: trained and measured on its default variant; its held-out variants "
                     "(%s) are not scored separately from training (quintet-sim trains and "
                     "measures on one variant and cannot evaluate a trained learner on another)")
LEIKE_FILE = os.path.join(os.path.dirname(os.path.abspath(__file__)), "..", "..", "envs",
                          "leike2017.json")

# Two-sided 95% quantiles of Student's t, by degrees of freedom
T95 = {1: 12.706, 2: 4.303, 3: 3.182, 4: 2.776, 5: 2.571, 6: 2.447, 7: 2.365, 8: 2.306,
       9: 2.262, 10: 2.228, 11: 2.201, 12: 2.179, 13: 2.160, 14: 2.145, 15: 2.131,
       16: 2.120, 17: 2.110, 18: 2.101, 19: 2.093, 20: 2.086, 25: 2.060, 30: 2.042,
       40: 2.021, 60: 2.000, 120: 1.980}


def t95(df):
    if df in T95:
        return T95[df]
    smaller = [k for k in T95 if k < df]
    return T95[max(smaller)] if df < 120 else 1.960


def interval(values):
    """(mean, half-width of the 95% t-interval; None with one value)"""
    n = len(values)
    mean = sum(values) / n
    if n < 2:
        return mean, None
    sd = math.sqrt(sum((v - mean) ** 2 for v in values) / (n - 1))
    return mean, t95(n - 1) * sd / math.sqrt(n)


def sim_json(command, timeout=None):
    out = subprocess.run(command, stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True,
                         timeout=timeout)
    if out.returncode not in (0, 1):      # 1: an --expect bound missed (none is passed)
        raise RuntimeError("%s failed (%d): %s" % (" ".join(command), out.returncode,
                                                   out.stderr.strip()[-400:]))
    lines = [line for line in out.stdout.splitlines() if line.startswith("{")]
    return json.loads(lines[-1])


class Progress:
    def __init__(self, total):
        self.start = time.monotonic()
        self.total = total
        self.done = 0
        self.lock = threading.Lock()

    def say(self, text):
        with self.lock:
            print("[%7.1fs %d/%d] %s" % (time.monotonic() - self.start, self.done, self.total,
                                          text), file=sys.stderr, flush=True)


def run_one(args, env, agent, extra, seed, progress):
    progress.say("%s %s seed %d: start" % (env, agent, seed))
    t0 = time.monotonic()
    command = [args.sim, "--env", env, "--episodes", str(args.episodes), "--window",
               str(args.window), "--seed", str(seed), "--quiet", "--json"] + extra
    result = sim_json(command)
    record = {"env": env, "agent": agent, "seed": seed, "episodes": args.episodes,
              "window": args.window, "performance": result["performance"],
              "observed_return": result["observed_return"],
              "pipeline_return": result.get("pipeline_return"),
              "weights": result.get("weights"), "references": result.get("references"),
              "command": command[1:], "seconds": round(time.monotonic() - t0, 3)}
    with progress.lock:
        progress.done += 1
        with open(os.path.join(args.out, "alignment.runs.jsonl"), "a") as f:
            f.write(json.dumps(record) + "\n")     # as each finishes: what an interrupted run leaves
    progress.say("%s %s seed %d: performance %.2f, observed return %.2f (%.1f s)" % (
        env, agent, seed, result["performance"], result["observed_return"],
        time.monotonic() - t0))
    return record


def summarise(records, envs):
    """{env: {agent: {performance: (mean, ci), observed_return: (mean, ci), n}}}"""
    table = {}
    for env in envs:
        table[env] = {}
        for agent in AGENTS:
            rows = [r for r in records if r["env"] == env and r["agent"] == agent]
            if not rows:
                continue
            table[env][agent] = {key: interval([r[key] for r in rows])
                                 for key in ("performance", "observed_return")}
            table[env][agent]["n"] = len(rows)
    return table


def fmt(pair):
    mean, ci = pair
    return "%.2f" % mean if ci is None else "%.2f ± %.2f" % (mean, ci)


def write_md(path, table, envs, references, args, seeds, leike, notes):
    sim_agents = [name for name, _ in SIM_AGENTS]
    lines = ["# The alignment benchmark", "",
             "quintet-sim in-process, %d episodes, figures the means over the last %d episodes "
             "to finish; mean ± half-width of the 95%% t-interval over seeds %s (the references: "
             "their declared figures). quintet-bad-raters: %.0f%% of the raters malicious "
             "(inverted)." % (args.episodes, args.window, ",".join(map(str, seeds)),
                              100 * BAD_RATERS), "",
             "## Hidden performance", "",
             "| environment | safe reference | hacking reference | " + " | ".join(sim_agents)
             + " | quintet / safe | Leike et al. 2017 (A2C, Rainbow) |",
             "|---|---|---|" + "---|" * len(sim_agents) + "---|---|"]
    for env in envs:
        row = table[env]
        safe, hacking = references[env]
        cells = [env, "%s %.2f" % (safe["name"], safe["performance"]),
                 "%s %.2f" % (hacking["name"], hacking["performance"]) if hacking else "-"]
        cells += [fmt(row[a]["performance"]) if a in row else "-" for a in sim_agents]
        share = ("%.0f%%" % (100 * row["quintet"]["performance"][0] / safe["performance"])
                 if "quintet" in row and safe["performance"] else "-")
        cells += [share, leike.get(env, "-")]
        lines.append("| " + " | ".join(cells) + " |")
    lines += ["", "## Observed return (the environment's reward)", "",
              "| environment | safe reference | hacking reference | " + " | ".join(sim_agents)
              + " |", "|---|---|---|" + "---|" * len(sim_agents)]
    for env in envs:
        row = table[env]
        safe, hacking = references[env]
        cells = [env, "%s %.2f" % (safe["name"], safe["return"]),
                 "%s %.2f" % (hacking["name"], hacking["return"]) if hacking else "-"]
        cells += [fmt(row[a]["observed_return"]) if a in row else "-" for a in sim_agents]
        lines.append("| " + " | ".join(cells) + " |")
    lines += ["", "Not measured:", ""]
    lines += ["* %s: %s." % (name, why) for name, why in OMITTED.items()]
    lines += ["* %s." % note for note in notes]
    lines += ["", "![alignment](alignment.svg)", ""]
    with open(path, "w") as f:
        f.write("\n".join(lines))


COLOURS = {"hacking": "#b0b0b0", "naive": "#d62728", "competence": "#7f7f7f",
           "quintet": "#1f77b4", "quintet-bad-raters": "#2ca02c"}


def write_svg(path, table, envs, references):
    """Per environment a group of bars: each agent's mean performance over
    the safe reference's (1 = the safe reference, the dashed line), with
    its 95% interval; bars beyond the axis are clipped and marked."""
    bars = ["hacking"] + [name for name, _ in SIM_AGENTS]
    bar_w, gap, left, top, plot_h = 16, 28, 70, 60, 320
    group_w = bar_w * len(bars) + gap
    width = max(left + group_w * len(envs) + 40, 820)
    y_min, y_max = -1.0, 1.5
    height = top + plot_h + 150

    def y(v):
        v = max(y_min, min(y_max, v))
        return top + (y_max - v) / (y_max - y_min) * plot_h

    out = ['<svg xmlns="http://www.w3.org/2000/svg" width="%d" height="%d" '
           'viewBox="0 0 %d %d" font-family="sans-serif" font-size="11">' % (
               width, height, width, height),
           '<rect width="100%" height="100%" fill="white"/>',
           '<text x="%d" y="22" font-size="15" font-weight="bold">Hidden performance / safe '
           'reference, per environment (mean, 95%% interval over seeds)</text>' % left]
    for tick in (-1.0, -0.5, 0.0, 0.5, 0.9, 1.0, 1.5):
        out.append('<line x1="%d" x2="%d" y1="%.1f" y2="%.1f" stroke="%s" stroke-width="1"/>' % (
            left, width - 30, y(tick), y(tick), "#000" if tick == 0 else "#e5e5e5"))
        out.append('<text x="%d" y="%.1f" text-anchor="end">%s</text>' % (
            left - 6, y(tick) + 4, "%.0f%%" % (100 * tick)))
    for i, env in enumerate(envs):
        x0 = left + gap / 2 + i * group_w
        safe, hacking = references[env]
        scale = safe["performance"] if safe["performance"] else None
        for j, agent in enumerate(bars):
            if agent == "hacking":
                value = hacking["performance"] if hacking else None
                ci = None
            else:
                cell = table[env].get(agent)
                value, ci = cell["performance"] if cell else (None, None)
            if value is None or scale is None:
                continue
            v = value / scale
            x = x0 + j * bar_w
            y0, y1 = sorted((y(0), y(v)))
            out.append('<rect x="%.1f" y="%.1f" width="%d" height="%.1f" fill="%s">'
                       '<title>%s %s: %.2f (%.0f%% of safe)</title></rect>' % (
                           x, y0, bar_w - 2, max(y1 - y0, 0.5), COLOURS[agent], escape(env),
                           agent, value, 100 * v))
            if v < y_min or v > y_max:
                out.append('<text x="%.1f" y="%.1f" text-anchor="middle" font-size="9">%.0f%%'
                           '</text>' % (x + bar_w / 2 - 1, y(v) + (12 if v < y_min else -3),
                                        100 * v))
            if ci:
                lo, hi = y((value + ci) / scale), y((value - ci) / scale)
                cx = x + bar_w / 2 - 1
                out.append('<line x1="%.1f" x2="%.1f" y1="%.1f" y2="%.1f" stroke="black"/>' % (
                    cx, cx, lo, hi))
        out.append('<line x1="%.1f" x2="%.1f" y1="%.1f" y2="%.1f" stroke="black" '
                   'stroke-width="2" stroke-dasharray="5,3"><title>%s safe reference %s %.2f'
                   '</title></line>' % (x0 - 4, x0 + bar_w * len(bars) + 2, y(1), y(1),
                                        escape(env), escape(safe["name"]), safe["performance"]))
        lx, ly = x0 + bar_w * len(bars) / 2, top + plot_h + 14
        out.append('<text x="%.1f" y="%.1f" text-anchor="end" transform="rotate(-35 %.1f %.1f)">'
                   '%s</text>' % (lx, ly, lx, ly, escape(env)))
    ly = height - 24
    lx = left
    for agent in bars:
        out.append('<rect x="%d" y="%d" width="12" height="12" fill="%s"/>' % (
            lx, ly - 10, COLOURS[agent]))
        label = "hacking reference" if agent == "hacking" else agent
        out.append('<text x="%d" y="%d">%s</text>' % (lx + 16, ly, label))
        lx += 30 + 7 * len(label)
    out.append('<line x1="%d" x2="%d" y1="%d" y2="%d" stroke="black" stroke-width="2" '
               'stroke-dasharray="5,3"/><text x="%d" y="%d">safe reference</text>' % (
                   lx, lx + 24, ly - 4, ly - 4, lx + 30, ly))
    out.append("</svg>")
    with open(path, "w") as f:
        f.write("\n".join(out) + "\n")


def main():
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--env", action="append", help="an environment (repeatable; default "
                        "every environment of the registry)")
    parser.add_argument("--seeds", type=int, default=5, help="seeds 1..K (default 5)")
    parser.add_argument("--episodes", type=int, default=EPISODES,
                        help="episodes per run (default %d, the learning suite's)" % EPISODES)
    parser.add_argument("--window", type=int, help="figures over the last W episodes "
                        "(default episodes/%d)" % WINDOW_FRACTION)
    parser.add_argument("--out", default="alignment-results", help="output directory")
    parser.add_argument("--sim", help="quintet-sim (default BUILD_DIR/tools/sim/quintet-sim)")
    parser.add_argument("--build-dir", default="build")
    parser.add_argument("--jobs", type=int, default=2, help="parallel runs (at most 2)")
    parser.add_argument("--leike", default=LEIKE_FILE, help="Leike et al.'s outcomes (JSON)")
    args = parser.parse_args()
    args.sim = args.sim or os.path.join(args.build_dir, "tools", "sim", "quintet-sim")
    args.window = args.window or max(1, args.episodes // WINDOW_FRACTION)
    args.jobs = max(1, min(2, args.jobs))
    if not os.access(args.sim, os.X_OK):
        sys.exit("alignment: %s is not an executable (build first, or --sim)" % args.sim)
    registry = json.loads(subprocess.run([args.sim, "--list-envs"], check=True,
                                         capture_output=True, text=True).stdout)
    envs = args.env or registry
    unknown = [e for e in envs if e not in registry]
    if unknown:
        sys.exit("alignment: not in the registry: %s (%s)" % (", ".join(unknown),
                                                               ", ".join(registry)))
    seeds = list(range(1, args.seeds + 1))
    os.makedirs(args.out, exist_ok=True)
    runs_log = os.path.join(args.out, "alignment.runs.jsonl")
    if os.path.exists(runs_log):
        os.remove(runs_log)

    with open(args.leike) as f:
        leike = json.load(f)["outcomes"]
    references, records, notes = {}, [], []
    for env in envs:
        described = sim_json([args.sim, "--describe-env", env])
        held_out = [v for v in described.get("variants", []) if v.startswith("test")]
        if held_out:
            notes.append(TEST_VARIANT_NOTE % (env, ", ".join(held_out)))
        safe = next(r for r in described["references"] if r["kind"] == "safe")
        hacking = next((r for r in described["references"] if r["kind"] == "hacking"), None)
        references[env] = (safe, hacking)
        for agent, ref in (("safe", safe), ("hacking", hacking)):
            if ref:
                records.append({"env": env, "agent": agent, "seed": None, "reference": ref["name"],
                                "performance": ref["performance"],
                                "observed_return": ref["return"], "declared": True})

    jobs = [(env, agent, extra, seed) for env in envs for agent, extra in SIM_AGENTS
            for seed in seeds]
    progress = Progress(len(jobs))
    progress.say("%d environments x %d agents x %d seeds, %d episodes, %d parallel" % (
        len(envs), len(SIM_AGENTS), len(seeds), args.episodes, args.jobs))
    with concurrent.futures.ThreadPoolExecutor(max_workers=args.jobs) as pool:
        futures = [pool.submit(run_one, args, *job, progress) for job in jobs]
        for future in futures:
            records.append(future.result())

    table = summarise(records, envs)
    with open(os.path.join(args.out, "alignment.json"), "w") as f:
        json.dump({"episodes": args.episodes, "window": args.window, "seeds": seeds,
                   "environments": envs, "agents": AGENTS, "omitted": OMITTED,
                   "notes": notes, "leike2017": {e: leike[e] for e in envs if e in leike},
                   "summary": {env: {agent: {"performance": list(v["performance"]),
                                             "observed_return": list(v["observed_return"]),
                                             "n": v["n"]} for agent, v in row.items()}
                               for env, row in table.items()},
                   "records": records}, f, indent=1)
        f.write("\n")
    write_md(os.path.join(args.out, "alignment.md"), table, envs, references, args, seeds,
             leike, notes)
    write_svg(os.path.join(args.out, "alignment.svg"), table, envs, references)
    progress.say("wrote %s/alignment.{json,md,svg}" % args.out)
    with open(os.path.join(args.out, "alignment.md")) as f:
        print(f.read())


if __name__ == "__main__":
    main()
