"""Across hosts: replicas in separate network namespaces, one host's link cut
mid-run and restored (issue 4, "Multi-host").

Topology, all inside namespaces this test creates (the machine's own
interfaces and addresses are never touched; nothing leaves the namespaces):

    qtnet<pid>-hub   a bridge br0 (10.231.1.254/24, the test's own leg) and
                     one veth per host, v1..v3, enslaved to it
    qtnet<pid>-h<i>  "host" i: lo, and eth0 = 10.231.1.<i>/24, the peer of v<i>

Host i runs replica i of every replicated role, host 1 also the world, so a
host holds at most f = 1 replica of each role (n = 3). Every daemon is
started with `ip netns exec qtnet<pid>-h<i>` and binds (bind, control_bind)
on its host's address; upstream endpoints name the other hosts' addresses.
The test process joins the hub namespace (setns) before it connects, so its
eval/reward subscriptions and `quintetctl status` go over the bridge like
any other client's.

A short training (batch 4, seed 1) runs; then:
  * cut: `ip link set v3 down` in the hub: host 3 is off the network. The
    pipeline keeps ticking on n - f replicas; quintetctl status gets no
    answer from host 3, worldmodel-1 reports collector 3 down, and the
    aggregators' RewardBatch.replicas no longer uses rewarder 3;
  * restore: `ip link set v3 up`: host 3's replicas rejoin: they answer
    status again with ticks that advance, worldmodel-1 reports collector 3
    up, and rewarder 3 is used again in the aggregators' medians;
  * it keeps ticking after the rejoin, and no message failed verification.
    Ticks/s before, during and after the cut and the rejoin time are
    printed.

Where namespaces cannot be created (not root, no CAP_NET_ADMIN, no `ip`, no
veth/bridge support) it says why and exits 77: skipped, not passed. Every
process, namespace, veth and bridge it created is removed on any exit
(finally, atexit, SIGTERM/SIGINT/SIGHUP).
"""
import atexit
import ctypes
import json
import os
import re
import shutil
import signal
import subprocess
import sys
import time

HERE = os.path.dirname(os.path.abspath(__file__))
sys.path.insert(0, os.path.join(os.path.dirname(HERE), "integration"))
import itest  # noqa: E402

SKIP = 77
BATCH = 4
# Run until stopped (world/episodes = 0): a fixed episode budget finishes
# before the link's TCP backoff lets host 3 back in on a fast, idle machine
# (~250 ticks/s)
EPISODES = 0
SEED = 1
SUBNET = "10.231.1"          # only inside the namespaces created here
HOSTS = 3
CUT_HOST = 3
WARMUP_TICKS = 40
BEFORE_S = 4.0
CUT_S = 8.0
AFTER_S = 4.0
REJOIN_TIMEOUT_S = 60.0
MIN_TICKS_DURING_CUT = 20
TOTAL_TIMEOUT_S = 200.0      # meson's timeout is 240
CLONE_NEWNET = 0x40000000


def log(text):
    print(text, flush=True)


# --------------------------------------------------------------------------
# Namespaces

class Net:
    """The hub and host namespaces; removed by cleanup(), idempotently."""

    def __init__(self):
        self.prefix = "qtnet%d" % os.getpid()
        self.hub = self.prefix + "-hub"
        self.hosts = ["%s-h%d" % (self.prefix, i) for i in range(1, HOSTS + 1)]
        self.created = []           # namespaces, in creation order
        self.original = None        # fd of the test's own network namespace
        self.joined = False

    @staticmethod
    def ip(*args, check=True):
        result = subprocess.run(["ip"] + list(args), stdout=subprocess.PIPE,
                                stderr=subprocess.PIPE, text=True, timeout=20)
        if check and result.returncode != 0:
            raise RuntimeError("ip %s: %s" % (" ".join(args), result.stderr.strip()))
        return result

    @staticmethod
    def address(host):
        return "%s.%d" % (SUBNET, host)

    def exec_prefix(self, host):
        return ["ip", "netns", "exec", self.hosts[host - 1]]

    def create(self):
        for ns in [self.hub] + self.hosts:
            self.ip("netns", "add", ns)
            self.created.append(ns)
            self.ip("-n", ns, "link", "set", "lo", "up")
        self.ip("-n", self.hub, "link", "add", "br0", "type", "bridge")
        self.ip("-n", self.hub, "addr", "add", self.address(254) + "/24", "dev", "br0")
        self.ip("-n", self.hub, "link", "set", "br0", "up")
        for i, ns in enumerate(self.hosts, 1):
            self.ip("-n", self.hub, "link", "add", "v%d" % i, "type", "veth",
                    "peer", "name", "eth0", "netns", ns)
            self.ip("-n", self.hub, "link", "set", "v%d" % i, "master", "br0")
            self.ip("-n", self.hub, "link", "set", "v%d" % i, "up")
            self.ip("-n", ns, "addr", "add", self.address(i) + "/24", "dev", "eth0")
            self.ip("-n", ns, "link", "set", "eth0", "up")

    def link(self, host, state):
        self.ip("-n", self.hub, "link", "set", "v%d" % host, state)

    def join_hub(self):
        """This thread (the only one) into the hub namespace; sockets and
        threads created from now on live there, as do child processes."""
        libc = ctypes.CDLL("libc.so.6", use_errno=True)
        self.original = os.open("/proc/self/ns/net", os.O_RDONLY)
        fd = os.open("/run/netns/" + self.hub, os.O_RDONLY)
        try:
            if libc.setns(fd, CLONE_NEWNET) != 0:
                raise OSError(ctypes.get_errno(), "setns(%s)" % self.hub)
        finally:
            os.close(fd)
        self.joined = True

    def leave_hub(self):
        if self.joined:
            libc = ctypes.CDLL("libc.so.6", use_errno=True)
            libc.setns(self.original, CLONE_NEWNET)
            self.joined = False
        if self.original is not None:
            os.close(self.original)
            self.original = None

    def cleanup(self):
        """Kills what still runs in our namespaces (processes this test
        started), deletes the veths, the bridge, the namespaces."""
        self.leave_hub()
        for ns in reversed(self.created):
            pids = self.ip("netns", "pids", ns, check=False).stdout.split()
            for pid in pids:
                try:
                    os.kill(int(pid), signal.SIGKILL)
                except (ProcessLookupError, ValueError):
                    pass
        if self.hub in self.created:
            for i in range(1, HOSTS + 1):
                self.ip("-n", self.hub, "link", "del", "v%d" % i, check=False)
            self.ip("-n", self.hub, "link", "del", "br0", check=False)
        for ns in reversed(self.created):
            self.ip("netns", "del", ns, check=False)
        self.created = []


def stale_cleanup():
    """Namespaces left by an earlier run of this test that was SIGKILLed
    (its daemons died with it: PR_SET_PDEATHSIG): qtnet<pid>-* of a pid
    that no longer runs."""
    try:
        names = os.listdir("/run/netns")
    except OSError:
        return
    for name in names:
        m = re.match(r"^qtnet([0-9]+)-(hub|h[0-9]+)$", name)
        if m and int(m.group(1)) != os.getpid() and not os.path.exists("/proc/" + m.group(1)):
            Net.ip("netns", "del", name, check=False)


def skip_reason():
    """Why namespaces cannot be created here, or None."""
    if not sys.platform.startswith("linux"):
        return "not Linux"
    if shutil.which("ip") is None:
        return "the ip command (iproute2) is not installed"
    probe = "qtnet%d-probe" % os.getpid()
    result = Net.ip("netns", "add", probe, check=False)
    if result.returncode != 0:
        return "cannot create a network namespace (needs root / CAP_NET_ADMIN): %s" \
            % result.stderr.strip()
    try:
        result = Net.ip("-n", probe, "link", "add", "p0", "type", "veth", "peer", "name", "p1",
                        check=False)
        if result.returncode != 0:
            return "cannot create a veth pair in a namespace: %s" % result.stderr.strip()
        result = Net.ip("-n", probe, "link", "add", "b0", "type", "bridge", check=False)
        if result.returncode != 0:
            return "cannot create a bridge in a namespace: %s" % result.stderr.strip()
    finally:
        Net.ip("netns", "del", probe, check=False)
    return None


# --------------------------------------------------------------------------
# The test

class Rate:
    def __init__(self, d):
        self.d = d
        self.t0 = time.monotonic()
        self.tick0 = d.progress.ticks

    def ticks(self):
        return self.d.progress.ticks - self.tick0

    def per_second(self):
        elapsed = time.monotonic() - self.t0
        return self.ticks() / elapsed if elapsed > 0 else 0.0


def main():
    args = itest.args("replicas in network namespaces; one host's link cut and restored")
    from quintet import build, deploy as qd

    reason = skip_reason()
    if reason:
        log("SKIP: %s" % reason)
        return SKIP
    stale_cleanup()

    failures = []

    def check(condition, message):
        itest.check(condition, message, failures)

    net = Net()
    holder, state = itest.state_dir("netns", args.keep)
    d = None
    began = time.monotonic()

    def cleanup():
        if d is not None:
            d.stop()
        net.cleanup()

    atexit.register(cleanup)

    def on_signal(signum, _frame):
        raise SystemExit("signal %d" % signum)

    for sig in (signal.SIGTERM, signal.SIGINT, signal.SIGHUP):
        signal.signal(sig, on_signal)

    ctl = build.quintetctl_path(args.build_dir)
    used_by_tick = {}          # tick -> rewarders used in the medians of aggregators 1-2

    def pump(seconds):
        d.pump(seconds)
        if d.dead():
            raise qd.DeploymentError("replica(s) exited:\n" + d.log_tails(8, d.dead()))
        if time.monotonic() - began > TOTAL_TIMEOUT_S:
            raise qd.DeploymentError("the test took longer than %.0f s" % TOTAL_TIMEOUT_S)

    def status():
        """quintetctl status --json, pumping the subscriptions meanwhile."""
        proc = subprocess.Popen([ctl, "status", "--state-dir", state, "--json", "--timeout", "1000"],
                                stdout=subprocess.PIPE, stderr=subprocess.DEVNULL, text=True)
        while proc.poll() is None:
            pump(0.05)
        out = proc.stdout.read()
        proc.stdout.close()
        rows = json.loads(out) if out.strip() else []
        return proc.returncode, {row["name"]: row for row in rows}

    def collector_up(rows, wm="worldmodel-1"):
        ups = rows.get(wm, {}).get("upstreams") or [{}]
        return ups[0].get("replica_up", [])

    def host_names(host):
        return ["%s-%d" % (role, host) for role in qd.ROLES if role not in qd.SINGLE]

    try:
        net.create()
    except (RuntimeError, subprocess.TimeoutExpired) as e:
        net.cleanup()
        log("SKIP: cannot build the namespaces: %s" % e)
        return SKIP

    try:
        #  the world and the people on host 1, the replicas one per host
        placement = {(role, 1): (net.address(1), net.exec_prefix(1)) for role in qd.SINGLE}
        for role in (r for r in qd.ROLES if r not in qd.SINGLE):
            for r in range(1, HOSTS + 1):
                placement[(role, r)] = (net.address(r), net.exec_prefix(r))
        d = qd.Deployment(build_dir=args.build_dir, state_dir=state, batch=BATCH, replicas=3,
                          episodes=EPISODES, seed=SEED, placement=placement)
        d.setup()
        with open(d.path("endpoints.json")) as f:
            endpoints = json.load(f)
        check(all(e.startswith("tcp://%s." % SUBNET) for role in qd.ROLES for e in endpoints[role])
              and all(e.startswith("tcp://%s." % SUBNET) for e in endpoints["control"].values()),
              "every publish and control endpoint is a host address in %s.0/24" % SUBNET)
        with open(d.path("etc", "worldmodel-2.conf")) as f:
            conf = f.read()
        check('bind = "tcp://%s:' % net.address(2) in conf
              and '3 = "tcp://%s:' % net.address(3) in conf,
              "worldmodel-2 binds on host 2 and connects to collector 3 on host 3")

        #  Record, per tick, which rewarders the aggregators' medians used
        add_reward = d.progress.add_reward

        def record(envelope, batch):
            if envelope.replica != CUT_HOST:    # aggregators on the other hosts
                used = used_by_tick.setdefault(envelope.tick, set())
                used.update(rep.replica for rep in batch.replicas if rep.used)
            add_reward(envelope, batch)
        d.progress.add_reward = record

        net.join_hub()
        d.start()
        log("%d daemons on %d hosts (namespaces %s-*), %s, batch %d, until stopped, seed %d"
            % (len(d.replica), HOSTS, net.prefix, d.env, BATCH, SEED))

        #  Before: all up
        deadline = time.monotonic() + 30
        while d.progress.ticks < WARMUP_TICKS and time.monotonic() < deadline:
            pump(0.25)
        check(d.progress.ticks >= WARMUP_TICKS, "ticking across hosts (tick %d)" % d.progress.ticks)
        rate = Rate(d)
        pump(BEFORE_S)
        before = rate.per_second()
        rc, rows = status()
        check(rc == 0 and len(rows) == len(d.replica) and all(row["answered"] for row in rows.values()),
              "all %d daemons answer quintetctl status over the bridge (rc %d, %d rows)"
              % (len(d.replica), rc, len(rows)))
        check(collector_up(rows) == [True, True, True], "worldmodel-1: collectors 1-3 up")

        #  Cut host 3 off
        net.link(CUT_HOST, "down")
        cut_at = time.monotonic()
        cut_tick = d.progress.ticks
        log("cut: v%d down at tick %d" % (CUT_HOST, cut_tick))
        rate = Rate(d)
        pump(CUT_S / 2)
        rc, rows = status()
        pump(max(0.0, CUT_S - (time.monotonic() - cut_at)))
        during = rate.per_second()
        during_ticks = rate.ticks()
        restore_tick = d.progress.ticks
        silent = [name for name in host_names(CUT_HOST) if not rows.get(name, {}).get("answered")]
        check(rc == 1 and len(silent) == 6 and all(rows.get(n, {}).get("answered")
                                                    for n in rows if n not in silent),
              "link down: host %d's 6 daemons do not answer, the other 13 do (rc %d)"
              % (CUT_HOST, rc))
        check(collector_up(rows) == [True, True, False],
              "link down: worldmodel-1 reports collector 3 down (%s)" % collector_up(rows))
        check(during_ticks >= MIN_TICKS_DURING_CUT,
              "link down: the pipeline keeps ticking on n - f = 2 (%d ticks in %.0f s)"
              % (during_ticks, CUT_S))
        late = [t for t in used_by_tick if cut_tick + 10 < t <= restore_tick]
        check(late and all(CUT_HOST not in used_by_tick[t] for t in late),
              "link down: the aggregators' medians do not use rewarder %d (%d ticks)"
              % (CUT_HOST, len(late)))

        #  Restore, wait for host 3 to rejoin
        net.link(CUT_HOST, "up")
        up_at = time.monotonic()
        log("restore: v%d up at tick %d" % (CUT_HOST, d.progress.ticks))
        rejoined = None
        first_ticks = None
        while time.monotonic() - up_at < REJOIN_TIMEOUT_S:
            pump(0.25)
            rc, rows = status()
            used_again = any(CUT_HOST in used_by_tick[t] for t in used_by_tick if t > restore_tick)
            answered = rc == 0 and all(rows.get(n, {}).get("answered") for n in host_names(CUT_HOST))
            if answered and first_ticks is None:
                first_ticks = {n: rows[n].get("ticks", 0) for n in host_names(CUT_HOST)}
            advancing = first_ticks is not None and answered and all(
                rows[n].get("ticks", 0) > first_ticks[n] for n in host_names(CUT_HOST))
            if used_again and advancing and collector_up(rows) == [True, True, True]:
                rejoined = time.monotonic() - up_at
                break
        if rejoined is None:    # say which part of the rejoin is missing
            log("not rejoined: used again %s, advancing %s, host %d ticks %s -> %s"
                % (used_again, advancing, CUT_HOST, first_ticks,
                   {n: rows.get(n, {}).get("ticks") for n in host_names(CUT_HOST)}))
            for name in ("aggregator-1", "aggregator-2") + tuple(host_names(CUT_HOST)):
                log("  %s upstreams: %s" % (name, json.dumps(rows.get(name, {}).get("upstreams"))))
            log(d.log_tails(12, [d.replica[(n.rsplit("-", 1)[0], int(n.rsplit("-", 1)[1]))]
                                 for n in ("aggregator-1",) + tuple(host_names(CUT_HOST))]))
        check(rejoined is not None,
              "link up: host %d rejoins: its 6 daemons answer with advancing ticks, "
              "worldmodel-1 reports collector 3 up, rewarder 3 used again%s"
              % (CUT_HOST, " (%.1f s)" % rejoined if rejoined is not None else
                 " (not within %.0f s; rc %d, collectors up %s)"
                 % (REJOIN_TIMEOUT_S, rc, collector_up(rows))))
        rate = Rate(d)
        pump(AFTER_S)
        after = rate.per_second()

        log("ticks/s: before the cut %.1f, during %.1f (%d ticks in %.0f s), after %.1f; "
            "rejoin %s after the link came back"
            % (before, during, during_ticks, CUT_S, after,
               "%.1f s" % rejoined if rejoined is not None else "never"))
        check(after > 0, "ticking after the rejoin")

        summary = d.summary()
        log("%d ticks, %d messages verified, %d rejected"
            % (summary["ticks"], summary["messages_verified"], summary["messages_rejected"]))
        check(summary["messages_rejected"] == 0, "no message failed verification")
    except qd.DeploymentError as e:
        check(False, "deployment: %s" % e)
    finally:
        if d is not None:
            d.stop()
        net.cleanup()
        left = [ns for ns in os.listdir("/run/netns") if ns.startswith(net.prefix + "-")] \
            if os.path.isdir("/run/netns") else []
        check(not left, "namespaces removed (%s)" % (", ".join(left) or "none left"))
        if holder:
            holder.cleanup()
    if failures:
        log("%d check(s) failed" % len(failures))
        return 1
    return 0


if __name__ == "__main__":
    sys.exit(main())
