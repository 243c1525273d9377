#!/usr/bin/python3
"""Reputation (common/qt_reputation.h): a persistent liar climbs the ladder
(warned, down-weighted, excluded) within a few ticks and is reported as
excluded, with a reason, in RewardBatch.replicas; with two liars of 5
(f = 2) at least n - f of the present rewarders are used at every tick; in
an all-honest run nobody is ever excluded, and exclusion never changes the
honest reward (compared tick by tick with the honest run, as value_attacks
does).
"""
import json
import os
import subprocess
import sys

import faultlib as fl

EPISODES = 64           # of tomato_watering, all instances ending together: 202 ticks
# Ticks from the liar's first report to its exclusion: QT_REPUTATION_EXCLUDE_AT
# far ticks, plus slack for ticks decided without it (deadlines)
EXCLUDE_WITHIN = 16


def extra(parser):
    parser.add_argument("--episodes", type=int, default=EPISODES)


opts = fl.args(__doc__, extra)
failures = []


class Reports:
    """RewardBatch.replicas per tick, from every aggregator replica."""

    def __init__(self):
        self.by_aggregator = {}     # aggregator replica -> [(tick, [ReplicaReport])]

    def hook(self, deployment):
        original = deployment.progress.add_reward

        def add_reward(envelope, batch):
            self.by_aggregator.setdefault(envelope.replica, []).append(
                (envelope.tick, list(batch.replicas)))
            original(envelope, batch)
        deployment.progress.add_reward = add_reward


def run(name, on_progress=None, **kwargs):
    reports = Reports()
    summary, trace, _, d = fl.run(opts.build_dir, name, opts.keep, on_start=reports.hook,
                                  on_progress=on_progress, episodes=opts.episodes, **kwargs)
    print("%s: %s" % (name, fl.fmt_summary(summary)), flush=True)
    return summary, trace, reports


def statuses(reports):
    """{(aggregator, rewarder): [(tick, status, weight, reason)]}"""
    out = {}
    for aggregator, rows in reports.by_aggregator.items():
        for tick, replicas in rows:
            for rep in replicas:
                out.setdefault((aggregator, rep.replica), []).append(
                    (tick, rep.status, rep.weight, rep.reason))
    return out


honest, honest_trace, honest_reports = run("honest")
reference = honest_trace.medians()
seen = statuses(honest_reports)
not_ok = [(k, row) for k, rows in seen.items() for row in rows if row[1] != "ok" or row[2] != 1]
fl.check(seen and not not_ok, "all honest: every rewarder ok with weight 1 in %d reports (%s)"
         % (sum(len(r) for r in seen.values()), not_ok[:3]), failures)


def same_reward(label, trace):
    compared, worst, missing = fl.compare_rewards(trace, reference)
    fl.check(compared > 0 and worst <= fl.REWARD_TOLERANCE and missing <= 0.02 * len(reference),
             "%s: aggregated reward equals the honest run's on %d ticks (max relative "
             "difference %.3g, %d missing)" % (label, compared, worst, missing), failures)


# One persistent liar of 3: warned, down-weighted, excluded; quintetctl
# status shows it (asked while the run goes on, until an answer has it)
ctl_seen = {}


def ask_quintetctl(d):
    if ctl_seen.get("excluded"):
        return
    ctl = os.path.join(opts.build_dir, "tools", "quintetctl", "quintetctl")
    result = subprocess.run([ctl, "status", "--state-dir", d.state_dir, "--timeout", "1500", "--json"],
                            stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True, timeout=30)
    try:
        rows = json.loads(result.stdout)
    except ValueError:
        return
    for row in rows:
        if row.get("role") != "aggregator":
            continue
        for upstream in row.get("upstreams", []):
            for rep in upstream.get("reputation", []):
                if rep["replica"] == 2 and rep["status"] in ("excluded", "probation") and rep["reason"]:
                    ctl_seen["excluded"] = (row["name"], rep)


summary, trace, reports = run("one-liar", on_progress=ask_quintetctl,
                              byzantine={("rewarder", 2): "sign-flip"})
fl.check(ctl_seen.get("excluded"), "quintetctl status --json: rewarder-2 excluded with a reason (%s)"
         % (ctl_seen.get("excluded"),), failures)
same_reward("rewarder-2 sign-flip", trace)
for key, rows in sorted(statuses(reports).items()):
    if key[1] != 2:
        bad = [row for row in rows if row[1] != "ok"]
        fl.check(not bad, "aggregator-%d: honest rewarder-%d always ok (%s)"
                 % (key + (bad[:2],)), failures)
        continue
    first = rows[0][0]
    ladder = []
    for tick, status, weight, reason in rows:
        if not ladder or ladder[-1][1] != status:
            ladder.append((tick, status, weight, reason))
    names = [s for _, s, _, _ in ladder]
    excluded = [row for row in ladder if row[1] == "excluded"]
    fl.check(names[:4] == ["ok", "warned", "down-weighted", "excluded"]
             or names[:3] == ["warned", "down-weighted", "excluded"],
             "aggregator-%d: rewarder-2 climbs the ladder: %s"
             % (key[0], " -> ".join("%s@%d" % (s, t) for t, s, _, _ in ladder[:6])), failures)
    fl.check(excluded and excluded[0][0] - first <= EXCLUDE_WITHIN and excluded[0][2] == 0
             and excluded[0][3],
             "aggregator-%d: rewarder-2 excluded within %d ticks of its first report, weight 0, "
             "reason \"%s\"" % (key[0], EXCLUDE_WITHIN, excluded[0][3] if excluded else ""),
             failures)

# Two liars of 5, f = 2: both excluded, never fewer than n - f used
summary, trace, reports = run("two-liars", replicas=5, faults=2,
                              byzantine={("rewarder", 1): "sign-flip", ("rewarder", 2): "ipm"},
                              timeout=400)
same_reward("n=5 f=2 rewarders 1, 2 lying", trace)
short = []
excluded = set()
for aggregator, rows in reports.by_aggregator.items():
    for tick, replicas in rows:
        present = [r for r in replicas if r.distance == r.distance]     # NaN: absent
        used = [r for r in present if r.used]
        if len(used) < min(len(present), 5 - 2):
            short.append((aggregator, tick, len(used), len(present)))
        excluded.update((aggregator, r.replica) for r in replicas if r.status == "excluded")
fl.check(not short, "n=5 f=2: at least n - f = 3 present rewarders used at every tick (%s)"
         % short[:3], failures)
fl.check({r for _, r in excluded} == {1, 2},
         "n=5 f=2: the two liars and only they are excluded (%s)" % sorted(excluded), failures)

if failures:
    print("%d check(s) failed" % len(failures))
    sys.exit(1)
print("reputation: liars excluded, honest replicas never, honest reward unchanged")
