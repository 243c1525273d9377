#!/usr/bin/python3
"""Every daemon of a running deployment (and the dashboard relay) serves
/metrics in the Prometheus text exposition format: each page is checked by
a real parser, `promtool check metrics` (Debian's prometheus package), which
also lints names, HELP and TYPE. Beyond the format, the figures must mean
something: every stage counts ticks and upstream replicas up, the
aggregators expose reward statistics and geometric-median iterations; the
collectors count the judgments they received by outcome, the scorers the
judgments they received by outcome (learned, or the cause they were
dropped for), the learning time per tick (a histogram), the learned weight
of every declared feature, the budget and the raters voting / excluded;
the relay forwards the scorers' score topic.
"""
import json
import os
import shutil
import subprocess
import sys
import urllib.request

sys.path.insert(0, os.path.join(os.path.dirname(os.path.dirname(os.path.abspath(__file__))),
                                "integration"))
import itest  # noqa: E402

opts = itest.args(__doc__)
from quintet import deploy as qd  # noqa: E402

BUILD = os.path.abspath(opts.build_dir)


def samples(text):
    """name{labels} -> value, from exposition text (after promtool accepted it)."""
    out = {}
    for line in text.splitlines():
        if line and not line.startswith("#"):
            name, value = line.rsplit(" ", 1)
            out[name] = float(value)
    return out


def main():
    promtool = shutil.which("promtool")
    if not promtool:
        print("promtool is missing (Debian package prometheus; ./run installs it)")
        return 1
    holder, state = itest.state_dir("metrics", opts.keep)
    failures = []
    try:
        with qd.Deployment(build_dir=BUILD, state_dir=state, batch=8, episodes=0,
                           dashboard=True) as d:
            d.setup()
            d.start()
            d.pump(3.0)         # past a status interval: counters are copied in once a second
            itest.check(d.progress.ticks > 0, "the pipeline ticks (%d)" % d.progress.ticks, failures)
            with open(d.path("endpoints.json")) as f:
                urls = json.load(f).get("metrics", {})
            expected = ["%s-%d" % (role, r) for role in qd.ROLES
                        for r in range(1, d.count(role) + 1)] + ["relay"]
            itest.check(sorted(urls) == sorted(expected),
                        "endpoints.json lists /metrics of every daemon and the relay", failures)
            for name in expected:
                url = urls.get(name)
                try:
                    with urllib.request.urlopen(url, timeout=5) as reply:
                        content_type = reply.headers.get("Content-Type", "")
                        text = reply.read().decode()
                except Exception as e:       # noqa: BLE001 (reported as a failure)
                    itest.check(False, "%s: GET %s (%s)" % (name, url, e), failures)
                    continue
                check = subprocess.run([promtool, "check", "metrics"], input=text,
                                       stdout=subprocess.PIPE, stderr=subprocess.STDOUT,
                                       text=True, timeout=30)
                itest.check(check.returncode == 0 and not check.stdout.strip(),
                            "%s: promtool check metrics accepts %d lines%s"
                            % (name, len(text.splitlines()),
                               "" if check.returncode == 0 else ": " + check.stdout.strip()),
                            failures)
                itest.check(content_type.startswith("text/plain; version=0.0.4"),
                            "%s: Content-Type %s" % (name, content_type), failures)
                values = samples(text)
                if name == "relay":
                    itest.check(values.get('quintet_relay_forwarded_total{topic="reward"}', 0) > 0,
                                "relay: rewards forwarded", failures)
                    itest.check(values.get('quintet_relay_forwarded_total{topic="score"}', 0) > 0,
                                "relay: scores forwarded", failures)
                    continue
                role = name.rsplit("-", 1)[0]
                itest.check(values.get("quintet_ticks_total", 0) > 0
                            and values.get('quintet_stage_info{stage="%s"}' % name) == 1,
                            "%s: ticks counted (%d)" % (name, values.get("quintet_ticks_total", 0)),
                            failures)
                for up_role, _topic in qd.UPSTREAMS[role]:
                    up = values.get('quintet_upstream_replicas_up{upstream="%s"}' % up_role)
                    itest.check(up == d.count(up_role), "%s: %s replicas up %s"
                                % (name, up_role, up), failures)
                    itest.check(values.get('quintet_tick_latency_seconds_count{upstream="%s"}'
                                           % up_role, 0) > 0,
                                "%s: latency histogram from %s" % (name, up_role), failures)
                itest.check('quintet_messages_dropped_total{cause="bad-signature"}' in values,
                            "%s: drops by cause" % name, failures)
                if role == "collector":
                    itest.check(values.get('quintet_judgments_total{outcome="accepted"}', 0) > 0,
                                "%s: judgments received, by outcome" % name, failures)
                if role == "scorer":
                    features = [f["name"] for f in d.declaration["features"]]
                    raters = (values.get('quintet_scorer_raters{state="voting"}', -1)
                              + values.get('quintet_scorer_raters{state="excluded"}', -1))
                    itest.check(values.get('quintet_scorer_judgments_total{outcome="learned"}', 0) > 0
                                and values.get("quintet_scorer_learn_seconds_count", 0) > 0
                                and values.get("quintet_scorer_comparisons_budget") == d.comparisons
                                and all('quintet_scorer_learned_weight{feature="%s"}' % f in values
                                        for f in features)
                                and raters == d.raters,
                                "%s: judgments by outcome, learning time, the budget (%s), the "
                                "learned weight of %s, raters voting + excluded = %s"
                                % (name, values.get("quintet_scorer_comparisons_budget"),
                                   features, raters), failures)
                if role == "aggregator":
                    itest.check(values.get("quintet_geomedian_iterations_count", 0) > 0
                                and values.get("quintet_aggregated_reward_count", 0) > 0
                                and 'quintet_rewarder_distance{replica="1"}' in values,
                                "%s: reward statistics and geometric-median iterations" % name,
                                failures)
            itest.check(not d.dead(), "no process died", failures)
    finally:
        if holder:
            holder.cleanup()
    if failures:
        print("%d check(s) failed" % len(failures))
        return 1
    print("every /metrics page parses as Prometheus exposition format")
    return 0


if __name__ == "__main__":
    sys.exit(main())
