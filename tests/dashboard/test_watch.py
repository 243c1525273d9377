#!/usr/bin/python3
"""quintet-watch against a running deployment: --json prints one verified
JSON object per message (rewards, evals and the rewarders' proposals); the
terminal view shows the environment (from the eval records), every rewarder
and aggregator replica with a status, the sparklines and the drop line.
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
import quintet_deploy as qd  # noqa: E402

BUILD = os.path.abspath(opts.build_dir)
WATCH = os.path.join(os.path.abspath(opts.source_dir), "tools", "watch", "quintet-watch")


def main():
    holder, state = itest.state_dir("watch", opts.keep)
    failures = []
    try:
        with qd.Deployment(build_dir=BUILD, state_dir=state, batch=8, episodes=0,
                           dashboard=True) as d:
            d.setup()
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
            itest.check(not d.dead(), "no process died", failures)
    finally:
        if holder:
            holder.cleanup()
    if failures:
        print("%d check(s) failed" % len(failures))
        return 1
    print("quintet-watch shows the verified stream")
    return 0


if __name__ == "__main__":
    sys.exit(main())
