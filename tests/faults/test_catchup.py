#!/usr/bin/python3
"""Catching up (common/qt_catchup.h): a restarted replica of a role with
state continues from its peers' state and agrees with them bit for bit
again.

On one live deployment, for every role whose replicas report a `catch-up`
line in `quintetctl status` (the roles with state), replica 2 is killed
(kill -9) and restarted; then:

  * it reports `restored at tick S` (its own state after S differed from
    the one both peers vouched for: it restarted from its prior or an old
    checkpoint, so the transfer did something);
  * from S + SETTLE ticks on, over CHECK_TICKS ticks, every consumer of the
    role reports it ok or on probation (restarted), never warned,
    down-weighted or excluded, and ok at the end: its output equals its
    peers' to within the reputation's absolute floor, tick after tick.

Ablation (the same, with quintet/catch_up = false for the restarted
replica): a consumer reports it warned, down-weighted or excluded within
ABLATION_TICKS ticks: without the transfer it does not agree again.
"""
import json
import os
import re
import subprocess
import sys
import time

import faultlib as fl

WARMUP_TICKS = 300      # run before each restart
SETTLE = 64             # ticks after S: the probation a restart starts (32) and slack
CHECK_TICKS = 400
ABLATION_TICKS = 2000
RESTORE_TIMEOUT_S = 120
VICTIM = 2

opts = fl.args(__doc__)
failures = []


def check(condition, message):
    fl.check(condition, message, failures)


def status(d):
    """quintetctl status --json rows by name, pumping the subscriptions."""
    ctl = os.path.join(opts.build_dir, "tools", "quintetctl", "quintetctl")
    proc = subprocess.Popen([ctl, "status", "--state-dir", d.state_dir,
                             "--json", "--timeout", "2000"],
                            stdout=subprocess.PIPE, stderr=subprocess.DEVNULL, text=True)
    while proc.poll() is None:
        d.pump(0.05)
    out = proc.stdout.read()
    proc.stdout.close()
    try:
        return {row["name"]: row for row in json.loads(out)}
    except ValueError:
        return {}


def detail(row, name):
    for item in row.get("details", []):
        if item["name"] == name:
            return item["value"]
    return None


def standing(rows, role, replica):
    """{consumer: (its tick, status of role-replica)} over the consumers of role."""
    out = {}
    for name, row in rows.items():
        for up in row.get("upstreams", []):
            if up["role"] != role:
                continue
            for rep in up.get("reputation", []):
                if rep["replica"] == replica:
                    out[name] = (row.get("tick", 0), rep["status"])
    return out


def stateful_roles(d):
    deadline = time.monotonic() + 60
    while time.monotonic() < deadline:
        rows = status(d)
        roles = sorted({row["role"] for row in rows.values() if detail(row, "catch-up") is not None})
        if roles and all(row.get("answered") for row in rows.values()):
            return roles
        d.pump(0.5)
    return []


def restart(d, role):
    """kill -9 and start again, once the pipeline has run a while (the
    restarted replica's prior is then far from its peers' state)"""
    deadline = time.monotonic() + 120
    target = d.progress.ticks + WARMUP_TICKS
    while d.progress.ticks < target and time.monotonic() < deadline:
        d.pump(0.1)
    d.kill(role, VICTIM)
    d.restart(role, VICTIM)


def wait_restored(d, role):
    """The tick S of the restart's conclusion, and its catch-up line."""
    deadline = time.monotonic() + RESTORE_TIMEOUT_S
    line = None
    while time.monotonic() < deadline:
        d.pump(0.25)
        line = detail(status(d).get("%s-%d" % (role, VICTIM), {}), "catch-up") or line
        m = re.match(r"(restored|agreed) at tick (\d+)", line or "")
        if m:
            return int(m.group(2)), line
    return None, line


def watch(d, role, first, ticks):
    """Samples the consumers' standing of role-VICTIM until they are
    `ticks` past `first`: [(consumer, tick, status)] for ticks >= first."""
    seen = []
    deadline = time.monotonic() + 240
    while time.monotonic() < deadline:
        d.pump(0.2)
        rows = status(d)
        marks = standing(rows, role, VICTIM)
        seen.extend((c, t, s) for c, (t, s) in marks.items() if t >= first)
        if marks and min(t for t, _ in marks.values()) >= first + ticks:
            return seen
    return seen


def main():
    with fl.Live(opts.build_dir, "catchup", opts.keep) as d:
        roles = stateful_roles(d)
        check(roles, "roles with state report a catch-up line: %s" % ", ".join(roles))
        for role in roles:
            restart(d, role)
            tick, line = wait_restored(d, role)
            check(tick is not None and line.startswith("restored"),
                  "%s-%d restarted: %s" % (role, VICTIM, line))
            if tick is None:
                continue
            seen = watch(d, role, tick + SETTLE, CHECK_TICKS)
            bad = [(c, t, s) for c, t, s in seen if s not in ("ok", "probation")]
            last = {c: s for c, t, s in sorted(seen, key=lambda x: x[1])}
            check(seen and not bad and all(s == "ok" for s in last.values()),
                  "%s-%d after tick %d + %d: %d samples of its consumers, none warned or worse "
                  "(%s), ok at the end (%s)" % (role, VICTIM, tick, SETTLE, len(seen),
                                                 bad[:3], last))

    # Ablation: no catch-up for the restarted replicas
    overrides = {"%s-%d" % (role, VICTIM): {"catch_up": "false"} for role in roles}
    with fl.Live(opts.build_dir, "catchup-ablation", opts.keep, overrides=overrides) as d:
        status(d)
        for role in roles:
            d.pump(2.0)
            rows = status(d)
            start = min((t for t, _ in standing(rows, role, VICTIM).values()), default=0)
            restart(d, role)
            seen = watch(d, role, start, ABLATION_TICKS)
            suspect = [(c, t, s) for c, t, s in seen if s not in ("ok", "probation")]
            check(suspect, "ablation, catch_up = false: %s-%d restarted is reported %s"
                  % (role, VICTIM, sorted({s for _, _, s in suspect}) or "ok throughout"))

    if failures:
        print("%d check(s) failed" % len(failures))
        return 1
    return 0


if __name__ == "__main__":
    sys.exit(main())
