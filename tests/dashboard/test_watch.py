#!/usr/bin/python3
"""quintet-watch against a running deployment: --json prints one verified
JSON object per message (rewards, evals and the rewarders' proposals); the
terminal view shows the environment (from the eval records), every rewarder
and aggregator replica with a status, the sparklines and the drop line.

What Charlie learned, on absent_supervisor (three declared features) with a
budget of 12 comparisons for 20 raters (so 8 raters never judge and are
excluded): for every scorer replica the view shows the tick of the learning
it shows, and what it shows must be what that scorer published at that
tick, read here from the scorer's own score topic (score_tap), not through
the relay: the weight of each feature the environment declares
(`quintetctl env`: names and order), comparisons learned / asked / budget,
each rater's voting right, the excluded raters; and `quintetctl status`
shows the same weights, budget and excluded raters once the budget is spent
(nothing more is learned then).
"""
import json
import os
import subprocess
import sys
import time

sys.path.insert(0, os.path.join(os.path.dirname(os.path.dirname(os.path.abspath(__file__))),
                                "integration"))
import itest  # noqa: E402

opts = itest.args(__doc__)
from quintet import build, deploy as qd  # noqa: E402
import score_tap  # noqa: E402

BUILD = os.path.abspath(opts.build_dir)
WATCH = os.path.join(os.path.abspath(opts.source_dir), "tools", "watch", "quintet-watch")
ENV = "absent_supervisor"
BUDGET, PER_TICK = 12, 4        # of 20 raters: 8 never asked


def ranges(ids):
    out, i = [], 0
    while i < len(ids):
        j = i
        while j + 1 < len(ids) and ids[j + 1] == ids[j] + 1:
            j += 1
        out.append("%d-%d" % (ids[i], ids[j]) if j > i else "%d" % ids[i])
        i = j + 1
    return " ".join(out) or "none"


def parse_learning(frame):
    """The learning block of a frame: {replica: {"tick", "weights" {feature:
    text}, "comparisons" text, "excluded" text, "rights" [text]}}, and the
    feature names in the order shown."""
    lines = frame.splitlines()
    head = [i for i, l in enumerate(lines) if l.startswith("learned (per scorer replica)")]
    if not head:
        return {}, []
    replicas = [int(c.split("-")[1]) for c in lines[head[0]][36:].split()]
    shown = {r: {"weights": {}, "rights": []} for r in replicas}
    features = []
    for line in lines[head[0] + 1:]:
        if not line.strip():
            break
        label, cells = line[:36].strip(), line[36:].split()
        if label == "tick":
            for r, c in zip(replicas, cells):
                shown[r]["tick"] = int(c)
        elif label.startswith("weight "):
            features.append(label[len("weight "):])
            for r, c in zip(replicas, cells):
                shown[r]["weights"][features[-1]] = c
        elif label.startswith("comparisons"):
            for r, c in zip(replicas, cells):
                shown[r]["comparisons"] = c
        elif line.startswith("  scorer-") and "excluded raters:" in line:
            r = int(line.split()[0].split("-")[1])
            shown[r]["excluded"] = line.split("excluded raters:")[1].strip()
        elif line.startswith("  scorer-"):
            r = int(line.split()[0].split("-")[1])
            shown[r]["rights"] += line.split()[1:]
    return shown, features


def check_learning(shown, features, tap, d, failures):
    declared = [f["name"] for f in d.declaration["features"]]
    itest.check(features == declared, "the view names the declared features %s (%s)"
                % (declared, features), failures)
    itest.check(sorted(shown) == list(range(1, d.replicas + 1)),
                "a learning column per scorer replica (%s)" % sorted(shown), failures)
    for r, view in sorted(shown.items()):
        published = tap.get(r, view.get("tick"))
        if published is None:
            itest.check(False, "scorer-%d published tick %s (shown)" % (r, view.get("tick")),
                        failures)
            continue
        want = {f: "%+.6g" % w for f, w in zip(published["features"], published["weights"])}
        itest.check(view["weights"] == want, "scorer-%d, tick %d: the weights shown %s are "
                    "those it published %s" % (r, view["tick"], view["weights"], want), failures)
        comparisons = "%d/%d/%d" % (published["comparisons"], published["asked"],
                                    published["budget"])
        itest.check(view.get("comparisons") == comparisons and published["budget"] == BUDGET,
                    "scorer-%d: comparisons %s shown, %s published (budget %d)"
                    % (r, view.get("comparisons"), comparisons, BUDGET), failures)
        rights = ["%.3g" % v for v in published["voting_rights"]]
        itest.check(view["rights"] == rights and len(rights) == d.raters,
                    "scorer-%d: the %d voting rights shown are those published" % (r, d.raters),
                    failures)
        excluded = [i + 1 for i, v in enumerate(published["voting_rights"]) if v <= 0]
        itest.check(published["excluded"] == excluded
                    and len(excluded) >= d.raters - published["asked"] > 0
                    and view.get("excluded") == ranges(excluded),
                    "scorer-%d: excluded raters shown %r, published %s (those without a voting "
                    "right, at least the %d never asked)" % (r, view.get("excluded"), excluded,
                                                            d.raters - published["asked"]),
                    failures)


def check_status(d, tap, failures):
    """quintetctl status once the budget is spent: the same as published."""
    out = subprocess.run([build.quintetctl_path(BUILD), "status", "--state-dir", d.state_dir,
                          "--json"], stdout=subprocess.PIPE, text=True, timeout=30).stdout
    try:
        replies = json.loads(out)
    except ValueError:
        replies = None
    replies = replies.get("replicas", replies) if isinstance(replies, dict) else replies
    scorers = [x for x in replies or [] if isinstance(x, dict) and x.get("role") == "scorer"]
    itest.check(len(scorers) == d.replicas, "quintetctl status answers for %d scorers"
                % len(scorers), failures)
    latest = tap.latest()
    for reply in scorers:
        details = {x["name"]: x["value"] for x in reply.get("details", [])}
        r = reply.get("replica")
        _tick, published = latest.get(r, (None, None))
        if published is None:
            itest.check(False, "scorer-%s published something" % r, failures)
            continue
        want = {"learned weight/" + f: "%.6g" % w
                for f, w in zip(published["features"], published["weights"])}
        got = {k: v for k, v in details.items() if k.startswith("learned weight/")}
        itest.check(got == want, "status of scorer-%s: learned weights %s, published %s"
                    % (r, got, want), failures)
        itest.check(details.get("comparisons", "").startswith(
            "%d learned of %d asked (budget %d" % (published["comparisons"], published["asked"],
                                                   BUDGET)),
                    "status of scorer-%s: %r" % (r, details.get("comparisons")), failures)
        excluded = " ".join(str(i) for i in published["excluded"]) or "none"
        itest.check(details.get("excluded raters") == excluded,
                    "status of scorer-%s: excluded raters %r" % (r, details.get("excluded raters")),
                    failures)


def main():
    holder, state = itest.state_dir("watch", opts.keep)
    failures = []
    tap = None
    try:
        with qd.Deployment(build_dir=BUILD, state_dir=state, batch=8, episodes=0,
                           dashboard=True, env=ENV, comparisons=BUDGET, per_tick=PER_TICK) as d:
            d.setup()
            tap = score_tap.ScoreTap(d)
            d.start()
            d.pump(1.5)
            common = [sys.executable, WATCH, "--state-dir", state,
                      "--proto-dir", os.path.join(BUILD, "proto")]
            out = subprocess.run(common + ["--json", "--count", "60", "--duration", "20"],
                                 stdout=subprocess.PIPE, text=True, timeout=40).stdout
            records = [json.loads(line) for line in out.splitlines() if line.startswith("{")]
            topics = {r["topic"] for r in records}
            print("     --json: %d objects, topics %s" % (len(records), sorted(topics)))
            itest.check(len(records) >= 60, "--json prints one object per message", failures)
            itest.check({"reward", "proposal"} <= topics, "rewards and proposals shown", failures)
            evals = [r for r in records if r["topic"] == "eval"]
            itest.check(all(r["env"] == d.env and r["results"] and r["episodes"] >= len(r["results"])
                            for r in evals), "--json: eval records name %s and carry their "
                        "results (%d seen)" % (d.env, len(evals)), failures)
            # the view names the environment once an episode has ended (the
            # relay's last-value cache hands a new subscriber the last eval)
            began = time.monotonic()
            while d.progress.episodes() == 0 and time.monotonic() - began < 30:
                d.pump(0.2)
            view = subprocess.run(common + ["--duration", "2.5"], stdout=subprocess.PIPE,
                                  text=True, timeout=30).stdout
            last = view.strip().split("\f")[-1].strip("\n") if view else ""
            print("     last frame:\n" + "\n".join("       " + l for l in last.splitlines()))
            for r in range(1, d.replicas + 1):
                itest.check(any(l.startswith("rewarder") and l.split()[1] == str(r) and
                                l.split()[-1] in ("used", "down-weighted", "excluded", "down")
                                for l in last.splitlines()),
                            "rewarder-%d has a row with a status" % r, failures)
            itest.check(d.env in last.splitlines()[0] if last else False,
                        "the header names the environment (%s)" % d.env, failures)
            itest.check("aggregated reward" in last and "performance" in last
                        and "drops here:" in last, "sparklines and drops are shown", failures)
            shown, features = parse_learning(last)
            check_learning(shown, features, tap, d, failures)
            # once every scorer has spent its budget and learned every answer
            # (bounded wait), the view and `quintetctl status` show it
            began = time.monotonic()
            while time.monotonic() - began < 30:
                latest = tap.latest()
                if len(latest) == d.replicas and all(
                        l["asked"] == BUDGET and l["comparisons"] == BUDGET
                        for _t, l in latest.values()):
                    break
                d.pump(0.3)
            view = subprocess.run(common + ["--duration", "2.5"], stdout=subprocess.PIPE,
                                  text=True, timeout=30).stdout
            last = view.strip().split("\f")[-1].strip("\n") if view else ""
            shown, features = parse_learning(last)
            print("     once the budget is spent:\n" + "\n".join(
                "       " + l for l in last.splitlines() if l.startswith(("learned", "  "))))
            check_learning(shown, features, tap, d, failures)
            itest.check(all(v.get("comparisons") == "%d/%d/%d" % (BUDGET, BUDGET, BUDGET)
                            for v in shown.values()),
                        "the view shows the budget spent and learned from", failures)
            check_status(d, tap, failures)
            itest.check(not d.dead(), "no process died", failures)
    finally:
        if tap is not None:
            tap.close()
        if holder:
            holder.cleanup()
    if failures:
        print("%d check(s) failed" % len(failures))
        return 1
    print("quintet-watch shows the verified stream")
    return 0


if __name__ == "__main__":
    sys.exit(main())
