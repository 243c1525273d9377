"""sd_notify semantics of the daemons, with a fake systemd.

A loopback deployment (world + 3 replicas of every role, batch 4) runs with
$NOTIFY_SOCKET naming an AF_UNIX datagram socket this test binds with
SO_PASSCRED, so every notification arrives with its sender's pid (how
systemd's NotifyAccess=main tells daemons apart), and WATCHDOG_USEC=2 s.
It checks:

  * READY=1 comes from every daemon, and only once its publish socket is
    bound (the test connects to it the moment READY=1 arrives) and a quorum
    of its upstreams has been heard;
  * WATCHDOG=1 arrives from worldmodel-1 while ticks progress, with STATUS=
    carrying the state, tick, upstream replicas up and drop counters;
  * SIGSTOP of collectors 1 and 2 (worldmodel's upstream quorum, 2 of 3, is
    lost): worldmodel-1's WATCHDOG=1 stops and its STATUS says stalled,
    1 collector up and heard (no tick completes, so none misses a tick: up
    is what is heard within the health window), while rewarder-1, idle
    behind a live upstream quorum (the scorers, which wait on the
    collectors' judgments, re-send their last output), keeps pinging;
  * SIGCONT: worldmodel-1's pings and ticks resume;
  * SIGTERM: STOPPING=1 from every daemon.
"""
import os
import re
import signal
import socket
import struct
import sys
import threading
import time

HERE = os.path.dirname(os.path.abspath(__file__))
sys.path.insert(0, os.path.join(os.path.dirname(HERE), "integration"))
import itest  # noqa: E402

WATCHDOG_USEC = 2000000
READY_TIMEOUT_S = 30
STALL_SETTLE_S = 3.0        # > the 2 s watchdog window: pings must have stopped
QUIET_WINDOW_S = 3.0
RESUME_TIMEOUT_S = 10.0


class FakeSystemd:
    """An AF_UNIX datagram socket collecting (time, pid, field), read by a
    thread so that no notification is lost to a full socket queue."""

    def __init__(self, path):
        self.path = path
        self.sock = socket.socket(socket.AF_UNIX, socket.SOCK_DGRAM)
        self.sock.setsockopt(socket.SOL_SOCKET, socket.SO_PASSCRED, 1)
        self.sock.bind(path)
        self.sock.settimeout(0.05)
        self.events = []            # (monotonic, pid, "KEY=value")
        self.lock = threading.Lock()
        self.on_ready = None
        self.running = True
        self.thread = threading.Thread(target=self._loop, daemon=True)
        self.thread.start()

    def _loop(self):
        while self.running:
            try:
                data, ancillary, _flags, _addr = self.sock.recvmsg(4096, socket.CMSG_SPACE(12))
            except (socket.timeout, OSError):
                continue
            pid = None
            for level, kind, payload in ancillary:
                if level == socket.SOL_SOCKET and kind == socket.SCM_CREDENTIALS:
                    pid = struct.unpack("iII", payload[:12])[0]
            now = time.monotonic()
            for line in data.decode(errors="replace").split("\n"):
                if line:
                    with self.lock:
                        self.events.append((now, pid, line))
                    if line == "READY=1" and self.on_ready:
                        self.on_ready(pid)

    def pump(self, seconds):
        time.sleep(seconds)

    def of(self, pid, prefix, since=0.0):
        with self.lock:
            return [(t, line) for t, p, line in self.events
                    if p == pid and line.startswith(prefix) and t >= since]

    def close(self):
        self.running = False
        self.thread.join(timeout=2)
        self.sock.close()


def port_open(endpoint):
    host, port = endpoint[len("tcp://"):].rsplit(":", 1)
    try:
        with socket.create_connection((host, int(port)), timeout=0.5):
            return True
    except OSError:
        return False


def status_tick(line):
    match = re.search(r"tick (\d+)", line)
    return int(match.group(1)) if match else None


def main():
    args = itest.args("sd_notify semantics with a fake NOTIFY_SOCKET")
    from quintet import deploy as qd
    failures = []

    def check(condition, message):
        itest.check(condition, message, failures)

    holder, state = itest.state_dir("notify", args.keep)
    systemd = FakeSystemd(os.path.join(state, "notify.sock"))
    saved = {k: os.environ.get(k) for k in ("NOTIFY_SOCKET", "WATCHDOG_USEC", "WATCHDOG_PID")}
    deployment = qd.Deployment(build_dir=args.build_dir, state_dir=os.path.join(state, "d"),
                               batch=4, replicas=3, episodes=0, seed=1)
    stopped = []
    try:
        deployment.setup()
        #  Inherited by every daemon the deployment spawns
        os.environ["NOTIFY_SOCKET"] = systemd.path
        os.environ["WATCHDOG_USEC"] = str(WATCHDOG_USEC)
        os.environ.pop("WATCHDOG_PID", None)
        pid_of, name_of = {}, {}
        bound_at_ready = {}

        def on_ready(pid):
            name = name_of.get(pid)
            if name:
                bound_at_ready[name] = port_open(deployment.replica[name].endpoint)

        systemd.on_ready = on_ready
        #  pids are known before any READY=1 can be handled: the deployment
        #  spawns, this thread names them, then the listener reports
        deployment.start()
        for key, rep in deployment.replica.items():
            pid_of[key] = rep.process.pid
            name_of[rep.process.pid] = key
        with systemd.lock:
            early = [(pid, line) for _, pid, line in systemd.events if line == "READY=1"]
        for pid, _ in early:
            on_ready(pid)

        #  READY=1 from everyone, each after its socket was bound
        deadline = time.monotonic() + READY_TIMEOUT_S
        while time.monotonic() < deadline and len(bound_at_ready) < len(pid_of):
            systemd.pump(0.2)
        check(len(bound_at_ready) == len(pid_of), "READY=1 from all %d daemons (%d)"
              % (len(pid_of), len(bound_at_ready)))
        check(all(bound_at_ready.values()), "each daemon's publish socket accepted a connection "
              "when its READY=1 arrived (%s)" % sorted(k for k, v in bound_at_ready.items() if not v))
        for key, pid in pid_of.items():
            readies = systemd.of(pid, "READY=1")
            if len(readies) != 1:
                check(False, "%s-%d sent READY=1 %d times" % (key[0], key[1], len(readies)))

        #  Running: watchdog pings and counters from worldmodel-1
        wm, idle = pid_of[("worldmodel", 1)], pid_of[("rewarder", 1)]
        t0 = time.monotonic()
        systemd.pump(3.0)
        pings = systemd.of(wm, "WATCHDOG=1", t0)
        statuses = systemd.of(wm, "STATUS=", t0)
        check(len(pings) >= 2, "worldmodel-1 feeds the watchdog while ticks progress (%d pings in 3 s)"
              % len(pings))
        last = statuses[-1][1] if statuses else ""
        print("     %s" % last)
        check(last.startswith("STATUS=running;") and "upstream collector 3/3 up, 3 heard" in last
              and re.search(r"\d+ dropped", last) and (status_tick(last) or 0) > 0,
              "STATUS= carries state, tick, upstream replicas up and drops")
        ticks_before = status_tick(last) or 0

        #  Stall: collectors 1 and 2 stopped, worldmodel's quorum (2 of 3) is gone
        for r in (1, 2):
            os.killpg(pid_of[("collector", r)], signal.SIGSTOP)
            stopped.append(pid_of[("collector", r)])
        systemd.pump(STALL_SETTLE_S)
        t1 = time.monotonic()
        systemd.pump(QUIET_WINDOW_S)
        pings = systemd.of(wm, "WATCHDOG=1", t1)
        statuses = systemd.of(wm, "STATUS=", t1)
        last = statuses[-1][1] if statuses else ""
        print("     %s" % last)
        check(not pings, "worldmodel-1 stops feeding the watchdog while its upstream quorum is "
              "stopped (%d pings in %.0f s)" % (len(pings), QUIET_WINDOW_S))
        check("stalled" in last and "collector 1/3 up, 1 heard" in last,
              "worldmodel-1's STATUS= says stalled, 1 collector up and heard")
        idle_pings = systemd.of(idle, "WATCHDOG=1", t1)
        check(len(idle_pings) >= 2, "rewarder-1, idle behind a live upstream quorum, keeps feeding "
              "the watchdog (%d pings)" % len(idle_pings))

        #  Resume
        for pid in stopped:
            os.killpg(pid, signal.SIGCONT)
        stopped.clear()
        t2 = time.monotonic()
        resumed = False
        while time.monotonic() < t2 + RESUME_TIMEOUT_S and not resumed:
            systemd.pump(0.5)
            statuses = systemd.of(wm, "STATUS=running", t2)
            resumed = bool(systemd.of(wm, "WATCHDOG=1", t2)) and any(
                (status_tick(line) or 0) > ticks_before for _, line in statuses)
        check(resumed, "after SIGCONT worldmodel-1 runs again and feeds the watchdog (%.1f s)"
              % (time.monotonic() - t2))

        #  Shutdown: STOPPING=1 from every daemon
        deployment.stop()
        systemd.pump(0.5)
        missing = [k for k, pid in pid_of.items() if not systemd.of(pid, "STOPPING=1")]
        check(not missing, "STOPPING=1 from every daemon on SIGTERM (missing %s)" % missing)
    finally:
        for pid in stopped:
            try:
                os.killpg(pid, signal.SIGCONT)
            except ProcessLookupError:
                pass
        deployment.stop()
        systemd.close()
        for key, value in saved.items():
            if value is None:
                os.environ.pop(key, None)
            else:
                os.environ[key] = value
        if holder:
            holder.cleanup()
    if failures:
        print("%d check(s) failed" % len(failures))
        return 1
    return 0


if __name__ == "__main__":
    sys.exit(main())
