#!/usr/bin/python3
"""Every protocol fault is dropped, counted by cause, and never accepted.

Two deployments (3 replicas per role, f = 1) each put one replica of every
role in a protocol-fault mode (qt_byzantine); a third, all honest, with the
same seed, is the reference. Checks: every replica that receives from a
faulty one counts that fault's cause, about once per tick; the aggregated
reward is, tick by tick, exactly the honest run's (nothing faulty was ever
accepted into a result) and so is the performance. The honest reference
itself gives quintet-sim's figures for the same run (within 1e-6).
"""
import sys

import faultlib as fl

opts = fl.args(__doc__)

EPISODES = fl.EPISODES
BATCH = 32
# mode -> drop cause the receivers count, and the share of ticks it shows up on
CAUSE = {
    "bad-signature": ("bad-signature", 1.0),
    "wrong-role": ("wrong-role", 1.0),
    "replay": ("replay", 1.0),
    "stale-tick": ("stale", 1.0),
    "truncated": ("malformed", 1.0),
    "malformed": ("malformed", 1.0),
    "oversized": ("oversize", 1.0 / 8),
    "wrong-batch-size": ("batch-size", 1.0),
    "silence": (None, 0),
}
RUNS = [
    {("collector", 1): "bad-signature", ("worldmodel", 1): "wrong-role", ("scorer", 1): "replay",
     ("rewarder", 1): "stale-tick", ("aggregator", 1): "truncated", ("actor", 1): "malformed"},
    {("collector", 2): "oversized", ("worldmodel", 2): "wrong-batch-size", ("scorer", 2): "silence",
     ("rewarder", 2): "replay", ("aggregator", 2): "wrong-role", ("actor", 2): "stale-tick"},
]

failures = []
honest, honest_trace, _, honest_d = fl.run(opts.build_dir, "honest", opts.keep,
                                           episodes=EPISODES, batch=BATCH)
print("honest reference: %s" % fl.fmt_summary(honest), flush=True)
sim = fl.simulated(honest_d)
fl.check(all(abs(honest[k] - sim[k]) <= 1e-6 for k in ("performance", "observed_return",
                                                       "pipeline_return")),
         "honest reference = quintet-sim: performance %.6f = %.6f, pipeline return %.6f = %.6f"
         % (honest["performance"], sim["performance"], honest["pipeline_return"],
            sim["pipeline_return"]), failures)
reference = honest_trace.medians()
covered = set()
for k, byzantine in enumerate(RUNS):
    summary, trace, drops, d = fl.run(opts.build_dir, "protocol-%d" % k, opts.keep,
                                      episodes=EPISODES, batch=BATCH, byzantine=byzantine)
    print("run %d %s: %s" % (k, ", ".join("%s-%d:%s" % (r, i, m) for (r, i), m in byzantine.items()),
                             fl.fmt_summary(summary)), flush=True)
    ticks = summary["ticks"]
    for (role, replica), mode in sorted(byzantine.items()):
        covered.add(mode)
        cause, share = CAUSE[mode]
        for receiver in fl.RECEIVERS[role]:
            for r in range(1, d.count(receiver) + 1):
                name = "%s-%d" % (receiver, r)
                counts = drops.get(name, {})
                if cause is None:
                    print("     %s:%s -> %s dropped %s" % (role, mode, name, counts or "nothing"))
                    continue
                want = int(0.8 * share * ticks)
                fl.check(counts.get(cause, 0) >= want,
                         "%s-%d %s: %s counted %d %s drops (>= %d of %d ticks)"
                         % (role, replica, mode, name, counts.get(cause, 0), cause, want, ticks),
                         failures)
    compared, worst, missing = fl.compare_rewards(trace, reference)
    fl.check(compared >= 0.95 * len(reference) and worst == 0.0,
             "run %d: aggregated reward identical to the honest run on %d/%d ticks "
             "(max relative difference %.3g, %d ticks not seen)"
             % (k, compared, len(reference), worst, missing), failures)
    fl.check(summary["performance"] == honest["performance"]
             and summary["episodes"] == honest["episodes"],
             "run %d: performance %.6f = honest %.6f over %d episodes"
             % (k, summary["performance"], honest["performance"], summary["episodes"]), failures)
fl.check(covered == set(CAUSE), "all %d protocol faults covered" % len(CAUSE), failures)
if failures:
    print("%d check(s) failed" % len(failures))
    sys.exit(1)
print("all protocol faults dropped and counted by cause; none accepted")
