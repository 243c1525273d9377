"""quintetctl status over the authenticated control channel, on a loopback
deployment (world + 3 replicas of every role, batch 4):

  * every daemon answers, with its role, replica, a running state, ticks
    that advance and its upstream replicas up/heard; --json parses;
  * after kill -9 of collector-2: it is listed as not answering (exit 1),
    and the worldmodels report collector replica 2 down;
  * a request signed by a key that is not bound to role "control" gets no
    answer; replies checked against a trust store without the daemons' keys
    fail verification;
  * a request quintetctl addressed to worldmodel-2, captured on its way
    (quintetctl pointed at a socket of this test) and replayed within its
    age window: worldmodel-3 and collector-1 drop it, counted as
    control/wrong-target, and do not answer; worldmodel-2 answers it, once;
  * 3000 junk control requests from another address: counted by cause
    (quintetctl status control_drops, /metrics quintet_control_dropped_total),
    most of them over that address's budget (rate-limited, never decoded),
    logged a few times, and quintetctl is still answered.
"""
import json
import os
import re
import shutil
import subprocess
import sys
import time
import urllib.request

import zmq

HERE = os.path.dirname(os.path.abspath(__file__))
sys.path.insert(0, os.path.join(os.path.dirname(HERE), "integration"))
import itest  # noqa: E402

RUN_S = 3.0
DOWN_TIMEOUT_S = 10.0
DAEMONS = 20                # the world, the raters and 3 replicas of six roles
JUNK_REQUESTS = 3000
JUNK_TIMEOUT_S = 30.0
JUNK_LOG_LINES_MAX = 5      # one line per cause per 10 s, a few causes at most
JUNK_SOURCE = "127.0.0.2"


def control_drops(status, name):
    rc, out, _ = status("--json")
    rows = {row["name"]: row for row in json.loads(out)} if out.strip() else {}
    return rows.get(name, {}).get("control_drops", {}), rows.get(name, {}).get("answered", False)


def junk_control(d, status, metrics_port, check):
    with open(d.path("endpoints.json")) as f:
        endpoint = json.load(f)["control"]["worldmodel-1"]
    log_path = d.replica[("worldmodel", 1)].log_path
    with open(log_path, "rb") as f:
        log_before = f.read().count(b"control request")
    context = zmq.Context()
    dealer = context.socket(zmq.DEALER)
    dealer.setsockopt(zmq.LINGER, 0)
    # from another loopback address than quintetctl's: each address has its
    # own budget of requests, so this flood cannot cost quintetctl its answers
    dealer.connect("tcp://%s:0;%s" % (JUNK_SOURCE, endpoint[len("tcp://"):]))
    for i in range(JUNK_REQUESTS):
        # [empty][SignedMessage] as a REQ peer frames it, the message junk
        dealer.send_multipart([b"", b"\xff junk %d" % i])
    deadline = time.monotonic() + JUNK_TIMEOUT_S
    drops, answered = {}, False
    while time.monotonic() < deadline:
        drops, answered = control_drops(status, "worldmodel-1")
        if sum(drops.values()) >= JUNK_REQUESTS:
            break
        time.sleep(0.5)
    dealer.close(0)
    context.term()
    print("     control drops of worldmodel-1 after %d junk requests: %s" % (JUNK_REQUESTS, drops))
    check(answered and sum(drops.values()) == JUNK_REQUESTS,
          "every junk control request is counted by cause in quintetctl status")
    check(drops.get("rate-limited", 0) > 0 and drops.get("malformed", 0) > 0,
          "the flooding address is rate-limited after a burst, quintetctl is still answered")
    with urllib.request.urlopen("http://127.0.0.1:%d/metrics" % metrics_port, timeout=10) as r:
        page = r.read().decode()
    # the page is refreshed once per status interval: read it until it caught up
    deadline = time.monotonic() + JUNK_TIMEOUT_S
    counted = 0
    while time.monotonic() < deadline:
        counted = sum(float(v) for v in re.findall(
            r'^quintet_control_dropped_total\{cause="[a-z-]+"\} (\S+)$', page, re.M))
        if counted >= JUNK_REQUESTS:
            break
        time.sleep(0.5)
        with urllib.request.urlopen("http://127.0.0.1:%d/metrics" % metrics_port, timeout=10) as r:
            page = r.read().decode()
    check(counted == JUNK_REQUESTS, "... and in /metrics quintet_control_dropped_total (%d)" % counted)
    with open(log_path, "rb") as f:
        lines = f.read().count(b"control request") - log_before
    print("     log lines about dropped control requests: %d" % lines)
    check(0 < lines <= JUNK_LOG_LINES_MAX, "the drops are logged rate-limited (%d lines)" % lines)


def recv_within(socket, timeout_s):
    """The frames socket receives within timeout_s, or None."""
    if socket.poll(int(timeout_s * 1000)):
        return socket.recv_multipart()
    return None


def capture_request(d, ctl, state, context, name):
    """The bytes quintetctl status sends to daemon `name`, captured by a
    socket that stands in for its control endpoint."""
    catcher = context.socket(zmq.ROUTER)
    catcher.setsockopt(zmq.LINGER, 0)
    port = catcher.bind_to_random_port("tcp://127.0.0.1")
    etc = os.path.join(state, "etc-capture")
    os.makedirs(etc, exist_ok=True)
    with open(d.path("etc", name + ".conf")) as f:
        text = f.read()
    text = re.sub(r'control_bind = "[^"]*"', 'control_bind = "tcp://127.0.0.1:%d"' % port, text)
    with open(os.path.join(etc, name + ".conf"), "w") as f:
        f.write(text)
    ctl_run = subprocess.Popen([ctl, "status", "--config-dir", etc, "--key", d.path("keys", "control-1.key"),
                                "--trust", d.path("trust"), "--timeout", "1500"],
                               stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
    frames = recv_within(catcher, 10.0)
    ctl_run.wait(timeout=30)
    catcher.close(0)
    return frames[-1] if frames else None


def cross_daemon_replay(d, ctl, state, status, check):
    """A request for worldmodel-2, captured, is answered by worldmodel-2
    only: the request names the daemon it is for."""
    pb2 = d.pb2
    context = zmq.Context()
    request = capture_request(d, ctl, state, context, "worldmodel-2")
    check(request is not None, "captured quintetctl's request to worldmodel-2")
    if request is None:
        context.term()
        return
    signed = pb2.SignedMessage.FromString(request)
    envelope = pb2.Envelope.FromString(signed.envelope)
    body = pb2.ControlMessage.FromString(envelope.payload)
    print("     captured request: %r for %s-%d" % (body.request.command, body.request.target_role,
                                                   body.request.target_replica))
    check(body.request.target_role == "worldmodel" and body.request.target_replica == 2,
          "quintetctl's request names its target (worldmodel-2)")
    with open(d.path("endpoints.json")) as f:
        control = json.load(f)["control"]

    def replay(name):
        req = context.socket(zmq.REQ)
        req.setsockopt(zmq.LINGER, 0)
        req.connect(control[name])
        req.send(request)
        frames = recv_within(req, 3.0)
        req.close(0)
        if not frames:
            return None
        reply = pb2.SignedMessage.FromString(frames[0])
        inner = pb2.ControlMessage.FromString(pb2.Envelope.FromString(reply.envelope).payload)
        return inner.reply

    for other in ("worldmodel-3", "collector-1"):
        before, _ = control_drops(status, other)
        answer = replay(other)
        after, answered = control_drops(status, other)
        counted = after.get("wrong-target", 0) - before.get("wrong-target", 0)
        print("     replayed to %s: %s, control drops %s" % (other, "answered" if answer else "no answer",
                                                               after))
        check(answer is None and answered and counted == 1,
              "the captured request replayed to %s: not answered, counted as control/wrong-target" % other)
    answer = replay("worldmodel-2")
    check(answer is not None and answer.nonce == body.request.nonce and answer.role == "worldmodel"
          and answer.replica == 2, "... and answered by worldmodel-2, its target")
    before, _ = control_drops(status, "worldmodel-2")
    again = replay("worldmodel-2")
    after, _ = control_drops(status, "worldmodel-2")
    check(again is None and after.get("replay", 0) == before.get("replay", 0) + 1,
          "... once: the same request again is a replay")
    context.term()


def main():
    args = itest.args("quintetctl status over the control channel")
    from quintet import ports, deploy as qd
    failures = []

    def check(condition, message):
        itest.check(condition, message, failures)

    ctl = os.path.join(args.build_dir, "tools", "quintetctl", "quintetctl")
    holder, state = itest.state_dir("status", args.keep)
    metrics_port = ports.free_ports(1)[0]
    d = qd.Deployment(build_dir=args.build_dir, state_dir=state, batch=4, replicas=3,
                      episodes=0, seed=1,
                      overrides={"worldmodel-1": {"metrics_bind": "127.0.0.1:%d" % metrics_port}})

    def status(*extra):
        result = subprocess.run([ctl, "status", "--state-dir", state, "--timeout", "1500"] + list(extra),
                                stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True, timeout=30)
        return result.returncode, result.stdout, result.stderr

    try:
        d.setup()
        with open(d.path("endpoints.json")) as f:
            control = json.load(f).get("control", {})
        check(len(control) == DAEMONS, "endpoints.json lists %d control endpoints" % DAEMONS)
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
        check(rc == 0 and len(rows) == DAEMONS and all(row["answered"] for row in rows),
              "all %d daemons answer (rc %d, %d rows) %s" % (DAEMONS, rc, len(rows), err.strip()))
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
        #  a row per daemon; its details (subscriptions...) indented under it
        replica_rows = [line for line in table.splitlines() if line and not line.startswith(" ")]
        check(rc == 0 and table.splitlines()[0].startswith("REPLICA")
              and len(replica_rows) == DAEMONS + 1, "table: header and %d rows" % DAEMONS)

        #  A request captured on its way to one daemon, replayed to others
        cross_daemon_replay(d, ctl, state, status, check)

        #  Junk on the control channel: dropped, counted by cause, logged
        #  rate-limited, and status still answered
        junk_control(d, status, metrics_port, check)

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
