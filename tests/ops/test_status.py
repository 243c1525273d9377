"""quintetctl status over the authenticated control channel, on a loopback
deployment (world + 3 replicas of every role, batch 4):

  * every daemon answers, with its role, replica, a running state, ticks
    that advance and its upstream replicas up/heard; --json parses;
  * after kill -9 of collector-2: it is listed as not answering (exit 1),
    and the worldmodels report collector replica 2 down;
  * a request signed by a key that is not bound to role "control" gets no
    answer; replies checked against a trust store without the daemons' keys
    fail verification.
"""
import json
import os
import shutil
import subprocess
import sys
import time

HERE = os.path.dirname(os.path.abspath(__file__))
sys.path.insert(0, os.path.join(os.path.dirname(HERE), "integration"))
import itest  # noqa: E402

RUN_S = 3.0
DOWN_TIMEOUT_S = 10.0


def main():
    args = itest.args("quintetctl status over the control channel")
    import quintet_deploy as qd
    failures = []

    def check(condition, message):
        itest.check(condition, message, failures)

    ctl = os.path.join(args.build_dir, "tools", "quintetctl", "quintetctl")
    holder, state = itest.state_dir("status", args.keep)
    d = qd.Deployment(build_dir=args.build_dir, state_dir=state, batch=4, replicas=3,
                      episodes=0, seed=1)

    def status(*extra):
        result = subprocess.run([ctl, "status", "--state-dir", state, "--timeout", "1500"] + list(extra),
                                stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True, timeout=30)
        return result.returncode, result.stdout, result.stderr

    try:
        d.setup()
        with open(d.path("endpoints.json")) as f:
            control = json.load(f).get("control", {})
        check(len(control) == 19, "endpoints.json lists 19 control endpoints")
        listed = subprocess.run([ctl, "endpoints", "--state-dir", state, "--json"],
                                stdout=subprocess.PIPE, text=True, timeout=30)
        from_configs = {}
        for row in json.loads(listed.stdout or "[]"):
            from_configs.setdefault(row["role"], {})[row["replica"]] = row["endpoint"]
        with open(d.path("endpoints.json")) as f:
            published = json.load(f)
        check(listed.returncode == 0 and all(
                  [from_configs.get(role, {}).get(r + 1) for r in range(len(eps))] == eps
                  for role, eps in published.items() if role in qd.ROLES),
              "quintetctl endpoints lists every replica's publish endpoint of endpoints.json")
        d.start()
        time.sleep(RUN_S)
        rc, out, err = status("--json")
        rows = json.loads(out) if out.strip() else []
        first = {row["name"]: row for row in rows}
        check(rc == 0 and len(rows) == 19 and all(row["answered"] for row in rows),
              "all 19 daemons answer (rc %d, %d rows) %s" % (rc, len(rows), err.strip()))
        check(all(row["role"] + "-%d" % row["replica"] == row["name"] for row in rows),
              "each reply names its role and replica")
        wm = first.get("worldmodel-1", {})
        check(wm.get("state") == "running" and wm.get("ticks", 0) > 0
              and wm.get("upstreams", [{}])[0].get("up") == 3,
              "worldmodel-1: running, %s ticks, collector 3 up" % wm.get("ticks"))
        time.sleep(1.0)
        rc, out, _ = status("--json")
        later = {row["name"]: row for row in json.loads(out)} if out.strip() else {}
        check(later.get("world-1", {}).get("ticks", 0) > first.get("world-1", {}).get("ticks", 0),
              "ticks advance between two status calls")
        rc, table, _ = status()
        print(table)
        check(rc == 0 and table.splitlines()[0].startswith("REPLICA") and len(table.splitlines()) == 20,
              "table: header and 19 rows")

        #  A replica killed: no answer, and its downstream sees it down
        d.kill("collector", 2)
        deadline = time.monotonic() + DOWN_TIMEOUT_S
        down = False
        while time.monotonic() < deadline and not down:
            time.sleep(0.5)
            rc, out, _ = status("--json")
            rows = {row["name"]: row for row in json.loads(out)} if out.strip() else {}
            up = rows.get("worldmodel-1", {}).get("upstreams", [{}])[0].get("replica_up", [])
            down = rc == 1 and not rows.get("collector-2", {}).get("answered", True) and up == [True, False, True]
        check(down, "collector-2 killed: listed as not answering, worldmodel-1 reports it down (rc %d)" % rc)

        #  Authentication, both ways
        result = subprocess.run([ctl, "status", "--config-dir", d.path("etc"), "--key",
                                 d.path("keys", "collector-1.key"), "--trust", d.path("trust"),
                                 "--json", "--timeout", "1000"],
                                stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True, timeout=30)
        rows = json.loads(result.stdout) if result.stdout.strip() else []
        check(result.returncode == 1 and rows and not any(row["answered"] for row in rows),
              "a request signed by a non-control key is not answered")
        lonely = os.path.join(state, "trust-control-only")
        os.makedirs(lonely)
        shutil.copy(d.path("trust", "control-1.pub"), lonely)
        result = subprocess.run([ctl, "status", "--config-dir", d.path("etc"), "--key",
                                 d.path("keys", "control-1.key"), "--trust", lonely, "--json",
                                 "--timeout", "1000"],
                                stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True, timeout=30)
        rows = json.loads(result.stdout) if result.stdout.strip() else []
        check(result.returncode == 1 and rows and all(row["state"] == "reply failed verification"
                                                       for row in rows if row["name"] != "collector-2"),
              "replies from keys outside the trust store fail verification")
    finally:
        d.stop()
        if holder:
            holder.cleanup()
    if failures:
        print("%d check(s) failed" % len(failures))
        return 1
    return 0


if __name__ == "__main__":
    sys.exit(main())
