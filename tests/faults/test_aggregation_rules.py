#!/usr/bin/python3
"""Every aggregation rule of the aggregator (quintet/aggregator/aggregation,
the names `quintetctl aggregations` prints from qt_robust's table) under
the value attacks (faultlib.VALUE_MODES) of one lying rewarder of n = 3
(f = 1): the aggregator's inputs are the rewarders' reward vectors.

Per run the test also subscribes to the rewarders' proposals, so it measures
the aggregation itself: per tick and instance, the largest |aggregated
reward - the honest rewarders' proposal of that tick| over the aggregator
replicas (the honest rewarders agree bit for bit, which is checked), as an
absolute and a relative (|d| / (1 + |honest|)) error. Against the all-honest
run of the same seed it reports (and for the exact rules asserts) the
end-to-end difference too, as test_value_attacks does.

The bound asserted per rule (README "Byzantine resilience"), from the rule's
math with two bit-identical honest rows x and one liar b:
  geomedian, coordmedian, trimmed-mean (f = 1 trimmed per side: the middle
  value), krum (n - f - 1 = 1 neighbour: an honest row scores 0), multi-krum
  (the n - f = 2 best rows are the honest ones), meamed (the n - f = 2 values
  nearest the median x are the two x): exactly x, so 0 up to
  faultlib.REWARD_TOLERANCE, and the whole run is the honest run's;
  centered-clipping (from the coordinate-wise median x, L rounds of radius
  tau): the honest rows pull back unclipped and the liar adds at most tau / n
  per round, |v - x| <= tau f / (n - f) (1 - (f / n)^L), asserted with
  tau and L set by this test; the run then differs from the honest one
  (other rewards, other actions): reported, not asserted.
Lies rejected by validation (inf, nan) leave two identical rows: exact for
every rule. The pre-aggregations (nnm: the liar's row becomes (x + b) / 2,
the honest rows stay x; bucketing: at n = 3, f = 1 buckets of one row, the
only size leaving 2f + 1 buckets) keep the same bounds.

Default (CI): an honest run, then every rule under two attacks (rule k:
attacks 2k and 2k + 1 mod 9, all nine covered) and each pre-aggregation
once, SHORT_EPISODES episodes each. --full: every rule x every attack, and
every pre-aggregation x every rule (attack rotating), the README's table:
    /usr/bin/python3 tests/faults/test_aggregation_rules.py --build-dir build --full
"""
import json
import subprocess
import sys

import zmq

import faultlib as fl

# A run is long enough for every attack to act on a few hundred ticks
# (64 episodes: about 200 ticks) and short enough for 17 runs in CI
SHORT_EPISODES = 64
# Centered clipping's parameters, set here so that the bound is this test's
CLIP_RADIUS = 0.05
CLIP_ROUNDS = 3
REPLICAS, FAULTS = 3, 1
LIAR = 2                                # the lying rewarder replica


def bound(rule):
    """The largest |aggregated - honest| the rule allows here, or None when
    the test knows no bound for it (a new rule of the table: state one)."""
    if rule in ("geomedian", "coordmedian", "trimmed-mean", "krum", "multi-krum", "meamed"):
        return 0.0
    if rule == "centered-clipping":
        n, f = REPLICAS, FAULTS
        return CLIP_RADIUS * f / (n - f) * (1 - (f / n) ** CLIP_ROUNDS)
    return None


def extra(parser):
    parser.add_argument("--full", action="store_true",
                        help="every rule x every attack, every pre-aggregation x every rule")
    parser.add_argument("--episodes", type=int, default=SHORT_EPISODES)
    parser.add_argument("--only", action="append", default=[], metavar="PRE:RULE:ATTACK",
                        help="just these runs (repeatable), e.g. none:krum:extreme")


opts = fl.args(__doc__, extra)
table = fl.qd.list_aggregations(opts.build_dir)
RULES, PRES = table["aggregation"], table["pre_aggregation"]
failures = []


class ProposalTap:
    """The rewarders' proposals on the deployment's own SUB socket, verified
    by its verifier: per tick, {replica: (reward of each instance)}."""

    def __init__(self, d):
        self.by_tick = {}
        d.subscribe()
        d.sub.setsockopt(zmq.SUBSCRIBE, b"proposal")
        for endpoint in d.endpoints("rewarder"):
            d.sub.connect(endpoint)
        original = d.progress.add_reward

        def add(envelope, batch):
            if type(batch).__name__ != "ProposalBatch":
                return original(envelope, batch)
            self.by_tick.setdefault(envelope.tick, {})[envelope.replica] = tuple(
                i.values[0] if len(i.values) else float("nan") for i in batch.instances)
        d.progress.add_reward = add


def rules_in_status(d, seen):
    """Once per run: what every aggregator replica says it runs (quintetctl
    status details aggregation / pre_aggregation), into `seen`."""
    if seen:
        return
    ctl = fl.qd.quintetctl_path(d.build_dir)
    result = subprocess.run([ctl, "status", "--state-dir", d.state_dir, "--json", "--timeout", "1500"],
                            stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True, timeout=30)
    try:
        rows = json.loads(result.stdout) if result.stdout.strip() else []
    except ValueError:
        return
    for row in rows:
        if row.get("role") == "aggregator" and row.get("answered"):
            details = {item["name"]: item["value"] for item in row.get("details", [])}
            seen[row["name"]] = (details.get("pre_aggregation"), details.get("aggregation"))


def deviation(trace, tap):
    """(max |d|, max |d| / (1 + |honest|), ticks compared, honest rewarders
    disagreeing) of every aggregator replica's reward against the honest
    rewarders' proposal of the same tick."""
    worst_abs = worst_rel = 0.0
    compared = disagree = 0
    for tick, rewards_by_replica in trace.by_tick.items():
        honest = [v for r, v in tap.by_tick.get(tick, {}).items() if r != LIAR]
        if not honest:
            continue
        disagree += any(v != honest[0] for v in honest)
        compared += 1
        for rewards in rewards_by_replica.values():
            for got, want in zip(rewards, honest[0]):
                d = abs(got - want)
                if d != d:                      # NaN: the worst there is
                    d = float("inf")
                worst_abs = max(worst_abs, d)
                worst_rel = max(worst_rel, d / (1.0 + abs(want)))
    return worst_abs, worst_rel, compared, disagree


def plan():
    """[(pre, rule, attack)] of this invocation."""
    modes = fl.VALUE_MODES
    runs = []
    if opts.only:
        runs = [tuple(item.split(":")) for item in opts.only]
    elif opts.full:
        runs += [(PRES[0], rule, mode) for rule in RULES for mode in modes]
        runs += [(pre, rule, modes[(k + p) % len(modes)]) for p, pre in enumerate(PRES[1:])
                 for k, rule in enumerate(RULES)]
    else:
        runs += [(PRES[0], rule, modes[(2 * k + j) % len(modes)])
                 for k, rule in enumerate(RULES) for j in range(2)]
        runs += [(pre, RULES[(3 * p + 3) % len(RULES)], "extreme")
                 for p, pre in enumerate(PRES[1:])]
    return runs


for rule in RULES:
    fl.check(bound(rule) is not None, "rule %s has a stated bound" % rule, failures)

honest, honest_trace, _, _ = fl.run(opts.build_dir, "agg-honest", opts.keep, episodes=opts.episodes,
                                    replicas=REPLICAS, faults=FAULTS)
print("honest reference (%d episodes, the default rule): %s"
      % (opts.episodes, fl.fmt_summary(honest)), flush=True)
reference = honest_trace.medians()
results = {}                                    # (pre, rule, attack) -> (abs, rel, end-to-end)
for pre, rule, mode in plan():
    taps = []
    seen = {}
    label = "%s%s, rewarder-%d %s" % ("" if pre == PRES[0] else pre + "+", rule, LIAR, mode)
    sections = {"aggregator": {"clip_radius": CLIP_RADIUS, "clip_rounds": CLIP_ROUNDS}}
    summary, trace, _, _ = fl.run(
        opts.build_dir, "agg-%s-%s-%s" % (pre, rule, mode), opts.keep, episodes=opts.episodes,
        replicas=REPLICAS, faults=FAULTS, byzantine={("rewarder", LIAR): mode},
        aggregation=rule, pre_aggregation=pre, role_sections=sections,
        on_setup=lambda d: taps.append(ProposalTap(d)),
        on_progress=lambda d: rules_in_status(d, seen))
    worst_abs, worst_rel, compared, disagree = deviation(trace, taps[0])
    _, end_to_end, missing = fl.compare_rewards(trace, reference)
    results[(pre, rule, mode)] = (worst_abs, worst_rel, end_to_end)
    print("%s: %s" % (label, fl.fmt_summary(summary)), flush=True)
    print("    max |aggregated - honest proposal| %.3g (relative %.3g) over %d ticks x %d; "
          "end to end vs the honest run %.3g" % (worst_abs, worst_rel, compared, summary["batch"],
                                                 end_to_end), flush=True)
    fl.check(sorted(seen.values()) == [(pre, rule)] * REPLICAS,
             "%s: every aggregator replica runs it (quintetctl status: %s)"
             % (label, ", ".join("%s %s+%s" % (k, *v) for k, v in sorted(seen.items()))), failures)
    fl.check(compared >= 0.9 * len(reference) and disagree == 0,
             "%s: %d ticks compared (honest run %d), honest rewarders disagreed on %d"
             % (label, compared, len(reference), disagree), failures)
    limit = bound(rule)
    if limit is None:
        continue
    if limit == 0.0:
        fl.check(worst_rel <= fl.REWARD_TOLERANCE and end_to_end <= fl.REWARD_TOLERANCE
                 and missing <= 0.02 * len(reference)
                 and summary["performance"] == honest["performance"],
                 "%s: exact (relative error %.3g, end to end %.3g <= %g; performance %s = %s)"
                 % (label, worst_rel, end_to_end, fl.REWARD_TOLERANCE, summary["performance"],
                    honest["performance"]), failures)
    else:
        fl.check(worst_abs <= limit * (1 + 1e-9) + fl.REWARD_TOLERANCE
                 and summary["performance"] is not None,
                 "%s: |aggregated - honest| %.4g <= the rule's bound %.4g; "
                 "the run finished (performance %s)"
                 % (label, worst_abs, limit, summary["performance"]), failures)

# The table: rule x attack -> max |aggregated - honest proposal| (absolute)
modes = fl.VALUE_MODES
print("\n| rule | bound | " + " | ".join(modes) + " |")
print("|---|---|" + "---|" * len(modes))
for pre in PRES:
    for rule in RULES:
        cells = [results.get((pre, rule, mode)) for mode in modes]
        if not any(cells):
            continue
        name = rule if pre == PRES[0] else "%s+%s" % (pre, rule)
        print("| %s | %s | %s |" % (name, "%.3g" % bound(rule) if bound(rule) is not None else "?",
                                    " | ".join("·" if c is None else "%.3g" % c[0] for c in cells)))
if failures:
    print("%d check(s) failed" % len(failures))
    sys.exit(1)
print("every rule within its bound under every attack run")
