#!/usr/bin/python3
"""No pipeline daemon subscribes to `eval` (design 2): proven by what the
daemons actually send on the wire, not by reading their source.

For every role, one replica is started with every upstream endpoint pointing
at an XPUB socket this test binds (ZMQ_XPUB_VERBOSE, so every subscription
message reaches us). After a moment, the subscriptions each daemon sent are
checked: none may be a prefix of b"eval" (the empty subscription included),
and the topic it consumes must be among them (so the test can fail).

The scorer is where hidden performance or the intended value would leak
into the reward. Its configuration, as the deployment library writes it for
every scorer replica (STATE/etc/scorer-<r>.conf, read back as the daemon
reads it) and as this test writes it, holds no key naming a weight, a
utility, the hidden performance or eval; under quintet/scorer/ there are
only the learner's options (how to learn: quantile, budgets, prior...),
each a number; its upstreams are the world models and the collectors
only. On the wire, each of its upstream sockets receives exactly one
subscription: `belief` from the world models' and `judgment` from the
collectors' (what it learns from is what Erin collected, never `eval` nor
the raters directly).
"""
import json
import os
import subprocess
import sys
import time

import itest

opts = itest.args(__doc__)
from quintet import build as qbuild, ports as qports, replica, zpl, deploy as qd  # noqa: E402
import zmq  # noqa: E402

COLLECT_S = 1.5
FORBIDDEN = ("performance", "hidden", "eval", "weight", "utility", "intended")
# How to learn, never what is wanted: the learner's options (sc_learn), numbers
LEARNING_OPTIONS = ("quantile", "lipschitz", "prior_sd", "raters", "comparisons", "per_tick",
                    "max_per_rater", "unit")
RATERS = 3
# What the scorer's sockets subscribe to, per upstream role: exactly these
SCORER_SUBSCRIPTIONS = {"worldmodel": [b"belief"], "collector": [b"judgment"]}


def zpl_keys(text):
    """Every key path (a/b/c) of a ZPL file, with its value or None for a
    section: indentation is 4 spaces per level, as render_zpl writes it."""
    paths, stack = [], []
    for line in text.splitlines():
        stripped = line.split("#", 1)[0].rstrip()
        if not stripped.strip():
            continue
        depth = (len(stripped) - len(stripped.lstrip(" "))) // 4
        name, _, value = stripped.strip().partition("=")
        stack = stack[:depth] + [name.strip()]
        paths.append(("/".join(stack), value.strip() if value else None))
    return paths


def check_scorer_config(label, text, failures):
    keys = zpl_keys(text)
    names = [path for path, _ in keys]
    leaks = [path for path in names if any(word in path.lower() for word in FORBIDDEN)]
    upstream = sorted({path.split("/")[2] for path in names
                       if path.startswith("quintet/upstream/") and path.count("/") >= 2})
    learning = {path.split("/", 2)[2]: value for path, value in keys
                if path.startswith("quintet/scorer/")}
    print("     %s: %d keys, learning %s, upstreams %s" % (label, len(keys), learning, upstream))
    itest.check(keys and not leaks, "%s: no key names a weight, a utility, hidden performance "
                "or eval (%s)" % (label, leaks), failures)
    wanted = sorted({role for role, _topic in qd.UPSTREAMS["scorer"]})
    itest.check(upstream == wanted and "world" not in upstream,
                "%s: its only upstreams are the topology's, %s, never the world (%s)"
                % (label, wanted, upstream), failures)
    features = {f["name"] for f in qbuild.describe_env(BUILD, "tomato_watering")["features"]}

    def number(text):
        try:
            float(text)
            return True
        except (TypeError, ValueError):
            return False
    odd = [k for k, v in learning.items() if k not in LEARNING_OPTIONS or not number(v)
           or any(f in k for f in features)]
    itest.check(learning and not odd, "%s: quintet/scorer/ holds the learner's options only, "
                "numbers (%s)" % (label, odd or "nothing else"), failures)


def deployment_scorer_configs(build, state, failures):
    """What quintet.deploy writes for the scorers of a real deployment."""
    d = qd.Deployment(build_dir=build, state_dir=os.path.join(state, "deployment"))
    try:
        d.setup()
        for r in range(1, d.replicas + 1):
            with open(d.path("etc", "scorer-%d.conf" % r)) as f:
                check_scorer_config("deployment scorer-%d.conf" % r, f.read(), failures)
    finally:
        d.stop()


BUILD = os.path.abspath(opts.build_dir)


def main():
    holder, state = itest.state_dir("noeval", opts.keep)
    build = BUILD
    result = subprocess.run([qbuild.quintetctl_path(build), "keygen", "--dir", state, "--replicas", "1",
                             "--raters", str(RATERS)],
                            stdout=subprocess.PIPE, stderr=subprocess.STDOUT, text=True)
    if result.returncode != 0:
        print("quintetctl keygen failed: %s" % result.stdout)
        return 1
    failures = []
    deployment_scorer_configs(build, state, failures)
    context = zmq.Context()
    xpubs = {}          # role -> {upstream role: socket}
    processes = {}      # role -> (Popen, log path)
    try:
        ports = qports.free_ports(len(qd.ROLES))
        for role, port in zip(qd.ROLES, ports):
            upstream = {}
            xpubs[role] = {}
            for up_role, _topic in qd.UPSTREAMS[role]:
                sock = context.socket(zmq.XPUB)
                sock.setsockopt(zmq.XPUB_VERBOSE, 1)
                sock.setsockopt(zmq.LINGER, 0)
                up_port = sock.bind_to_random_port("tcp://127.0.0.1")
                xpubs[role][up_role] = sock
                upstream[up_role] = {"faults": 0, "1": "tcp://127.0.0.1:%d" % up_port}
            tree = {
                "role": role, "replica": 1, "batch": 4, "seed": 1, "env": "tomato_watering",
                "secret_key": os.path.join(state, "keys", role + "-1.key"),
                "trust_dir": os.path.join(state, "trust"),
                "state_dir": os.path.join(state, "run", role + "-1"),
                "bind": "tcp://127.0.0.1:%d" % port,
                "upstream": upstream,
            }
            if role == "scorer":
                # how to learn; what is wanted comes from judgments
                tree["scorer"] = {"quantile": 0.5, "raters": RATERS, "comparisons": 100,
                                  "per_tick": 4}
                # quintetctl status: what the scorer itself says it subscribes to
                tree["control_bind"] = "tcp://127.0.0.1:%d" % qports.free_ports(1, avoid=ports)[0]
            if role == "raters":
                tree["raters"] = {"raters": RATERS, "key_dir": os.path.join(state, "keys")}
            config = os.path.join(state, role + ".conf")
            with open(config, "w") as f:
                f.write(zpl.render_zpl("quintet", tree))
            if role == "scorer":
                with open(config) as f:
                    check_scorer_config("this test's scorer.conf", f.read(), failures)
            log = os.path.join(state, role + ".log")
            with open(log, "wb") as out:
                processes[role] = (subprocess.Popen(
                    [qbuild.daemon_path(build, role), "--config", config],
                    stdout=out, stderr=subprocess.STDOUT, stdin=subprocess.DEVNULL,
                    start_new_session=True), log)

        # Collect what each daemon subscribes to, on every upstream socket
        seen = {role: [] for role in qd.ROLES}
        seen_on = {}        # (role, upstream role) -> subscriptions on that socket
        poller = zmq.Poller()
        for role in qd.ROLES:
            for sock in xpubs[role].values():
                poller.register(sock, zmq.POLLIN)
        owner = {sock: role for role in qd.ROLES for sock in xpubs[role].values()}
        upstream_of = {sock: up for role in qd.ROLES for up, sock in xpubs[role].items()}
        deadline = time.monotonic() + COLLECT_S
        while time.monotonic() < deadline:
            for sock, _ in poller.poll(100):
                while True:
                    try:
                        message = sock.recv(zmq.NOBLOCK)
                    except zmq.Again:
                        break
                    if message[:1] in (b"\x01", b"\x00"):
                        seen[owner[sock]].append((message[0] == 1, message[1:]))
                        seen_on.setdefault((owner[sock], upstream_of[sock]), []).append(
                            (message[0] == 1, message[1:]))

        for role in qd.ROLES:
            process, log = processes[role]
            alive = process.poll() is None
            itest.check(alive, "quintet-%s is running" % role, failures)
            if not alive:
                print("    exited %s; %s:\n%s" % (process.returncode, log, replica.tail(log)))
            subscribed = sorted({topic for on, topic in seen[role] if on})
            print("     quintet-%-10s subscribes to %s" % (role, [t.decode("ascii", "replace")
                                                              for t in subscribed]))
            bad = [t for t in subscribed if b"eval".startswith(t)]
            itest.check(not bad, "quintet-%s: no subscription that receives eval (%r)" % (role, bad),
                        failures)
            for up_role, topic in qd.UPSTREAMS[role]:
                itest.check(topic.encode() in subscribed,
                            "quintet-%s subscribes to %s (from %s)" % (role, topic, up_role), failures)
        #  The scorer's own account (quintetctl status details): the topic of
        #  every upstream's sockets
        status = subprocess.run([qbuild.quintetctl_path(build), "status", "--config-dir", state,
                                 "--key", os.path.join(state, "keys", "control-1.key"),
                                 "--trust", os.path.join(state, "trust"), "--json",
                                 "--timeout", "3000"],
                                stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True, timeout=30)
        rows = {row["name"]: row for row in json.loads(status.stdout or "[]")}
        details = {d["name"]: d["value"] for d in rows.get("scorer-1", {}).get("details", [])}
        told = {k.split("/", 1)[1]: v for k, v in details.items() if k.startswith("subscription/")}
        itest.check(told == {up: want[0].decode() for up, want in SCORER_SUBSCRIPTIONS.items()},
                    "quintetctl status: scorer-1 says it subscribes to %s" % told, failures)
        #  The scorer's live subscriptions, socket by socket: exactly its two
        #  inputs
        for up_role, want in sorted(SCORER_SUBSCRIPTIONS.items()):
            got = sorted({t for on, t in seen_on.get(("scorer", up_role), []) if on})
            itest.check(got == want, "quintet-scorer subscribes to exactly %s from the %s "
                        "(%s)" % ([w.decode() for w in want], up_role,
                                  [g.decode("ascii", "replace") for g in got]), failures)
    finally:
        for process, _log in processes.values():
            if process.poll() is None:
                os.killpg(process.pid, 15)
        for process, _log in processes.values():
            try:
                process.wait(timeout=5)
            except subprocess.TimeoutExpired:
                os.killpg(process.pid, 9)
                process.wait()
        for role in xpubs:
            for sock in xpubs[role].values():
                sock.close(0)
        context.term()
        if holder:
            holder.cleanup()
    if failures:
        print("%d check(s) failed" % len(failures))
        return 1
    print("every daemon subscribes to its upstream topics and never to eval")
    return 0


if __name__ == "__main__":
    sys.exit(main())
