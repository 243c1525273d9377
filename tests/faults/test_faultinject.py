#!/usr/bin/python3
"""tools/faultinject on a live deployment: every command, and its effect.

One deployment (3 replicas per role, f = 1, running until stopped) and
tools/faultinject/faultinject --state-dir on its state directory, as an
operator would run it: list; kill (the process is gone, the pipeline keeps
ticking); restart (it publishes again: a message of a new process epoch);
stall / continue (stopped in /proc, the pipeline keeps ticking, it
publishes again after SIGCONT); restart --byzantine sign-flip and back
(its command line says so; the aggregators keep agreeing); garbage and
replay at an endpoint (every receiver counts them by cause, read with
`quintetctl status`: malformed, replay); chaos --seed 9 --duration 5 (kill, Byzantine restart and stall; at most f
replicas of a role faulty at a time, sampled from /proc while it runs;
its report; afterwards every replica runs and the pipeline ticks).

Every process (the deployment's and those faultinject started) is stopped
at the end, on failure too, by the deployment's stop() (checked: it stops
faultinject's restarts as well).
"""
import json
import os
import re
import signal
import subprocess
import sys
import threading
import time

import zmq

import faultlib as fl

opts = fl.args(__doc__)
failures = []
FAULTINJECT = os.path.join(opts.source_dir, "tools", "faultinject", "faultinject")
QUINTETCTL = os.path.join(opts.build_dir, "tools", "quintetctl", "quintetctl")
COUNT = 40              # garbage / replayed frames
TICKS = 10              # "keeps ticking": this many ticks ...
TICKS_WITHIN_S = 20.0   # ... within this long (generous: loaded CI)


def _terminate(signum, frame):
    raise SystemExit("terminated by signal %d" % signum)


signal.signal(signal.SIGTERM, _terminate)


def fi(d, *args, timeout=60):
    """Runs faultinject; pumps the deployment's streams meanwhile."""
    command = [sys.executable, FAULTINJECT, "--state-dir", d.state_dir,
               "--build-dir", opts.build_dir] + [str(a) for a in args]
    process = subprocess.Popen(command, stdout=subprocess.PIPE, stderr=subprocess.STDOUT,
                               text=True)
    out = []
    reader = threading.Thread(target=lambda: out.append(process.stdout.read()))
    reader.start()
    began = time.monotonic()
    while process.poll() is None and time.monotonic() - began < timeout:
        d.pump(0.05)
    if process.poll() is None:
        process.kill()
    process.wait()
    reader.join()
    text = "".join(out)
    print("$ faultinject %s  (exit %s)\n%s" % (" ".join(str(a) for a in args), process.returncode,
                                             "\n".join("    " + line for line in
                                                       text.rstrip().splitlines())), flush=True)
    fl.check(process.returncode == 0, "faultinject %s exits 0" % args[0], failures)
    return text


def pid_of(d, role, r):
    """The running process of a replica, found as faultinject finds it."""
    config = d.replica[(role, r)].config_path.encode()
    for entry in os.listdir("/proc"):
        if entry.isdigit():
            try:
                with open("/proc/%s/cmdline" % entry, "rb") as f:
                    argv = f.read().split(b"\0")
            except OSError:
                continue
            if config in argv and argv[0].endswith(b"quintet-" + role.encode()):
                return int(entry), argv
    return None, None


def proc_state(pid):
    try:
        with open("/proc/%d/stat" % pid) as f:
            return f.read().rsplit(")", 1)[1].split()[0]
    except (OSError, TypeError):
        return None


def ticking(d, label, ticks=TICKS, within=TICKS_WITHIN_S):
    start = d.progress.ticks
    began = time.monotonic()
    while d.progress.ticks - start < ticks and time.monotonic() - began < within:
        d.pump(0.05)
    fl.check(d.progress.ticks - start >= ticks,
             "%s: the pipeline keeps ticking (%d ticks in %.1f s, from tick %d)"
             % (label, d.progress.ticks - start, time.monotonic() - began, start), failures)


class Watch:
    """A role's topic from one replica's endpoint (verified)."""

    def __init__(self, d, role, r):
        self.d, self.role, self.r = d, role, r
        self.context = zmq.Context()
        self.sub = self.context.socket(zmq.SUB)
        self.sub.setsockopt(zmq.LINGER, 0)
        self.sub.setsockopt(zmq.SUBSCRIBE, fl.qd.PUBLISHES[role].encode())
        self.sub.connect(d.replica[(role, r)].endpoint)
        self.verifier = fl.qd.Verifier(d.pb2, d.trust, d.batch)
        self.epoch = None
        self.tick = 0

    def wait(self, condition, timeout_s=15.0):
        """The first message (envelope) for which condition(envelope) holds."""
        deadline = time.monotonic() + timeout_s
        while time.monotonic() < deadline:
            self.d.pump(0.01)
            while True:
                try:
                    frames = self.sub.recv_multipart(zmq.NOBLOCK)
                except zmq.Again:
                    break
                opened = self.verifier.open(frames)
                if opened and opened[1].replica == self.r:
                    envelope = opened[1]
                    self.epoch, self.tick = envelope.epoch, envelope.tick
                    if condition(envelope):
                        return envelope
        return None

    def close(self):
        self.sub.close(0)
        self.context.term()


def publishes_again(d, role, r, old_epoch, label):
    watch = Watch(d, role, r)
    try:
        began = time.monotonic()
        envelope = watch.wait(lambda e: e.epoch != old_epoch)
        fl.check(envelope is not None,
                 "%s: %s-%d publishes again (new process epoch %s, tick %s, after %.2f s)"
                 % (label, role, r, envelope.epoch if envelope else None,
                    envelope.tick if envelope else None, time.monotonic() - began), failures)
    finally:
        watch.close()


def epoch_of(d, role, r):
    watch = Watch(d, role, r)
    try:
        envelope = watch.wait(lambda e: True)
        return envelope.epoch if envelope else None
    finally:
        watch.close()


def drops(d):
    """{replica name: {cause: count}} from `quintetctl status --json`."""
    for attempt in range(3):
        try:
            out = subprocess.run([QUINTETCTL, "status", "--state-dir", d.state_dir, "--json",
                                  "--timeout", "2000"], stdout=subprocess.PIPE,
                                 stderr=subprocess.DEVNULL, text=True, timeout=60).stdout
            break
        except OSError as e:        # a shared build dir being relinked
            print("quintetctl status: %s; retrying" % e)
            out = ""
            time.sleep(2)
    try:
        return {row["name"]: row.get("drops", {}) for row in json.loads(out)}
    except ValueError:
        print("quintetctl status: not JSON: %r" % out[:500])
        return {}


def leftovers(state_dir):
    """Every daemon of this state dir still running (zombies aside)."""
    needle = state_dir.encode()
    pids = []
    for entry in os.listdir("/proc"):
        if entry.isdigit() and int(entry) != os.getpid():
            try:
                with open("/proc/%s/cmdline" % entry, "rb") as f:
                    argv = f.read().split(b"\0")
            except OSError:
                continue
            if argv and argv[0].split(b"/")[-1].startswith(b"quintet-") and \
                    any(needle in a for a in argv) and proc_state(int(entry)) not in (None, "Z"):
                pids.append(int(entry))
    return pids


def stop_strays(state_dir):
    """Every daemon of this state dir still running (faultinject's restarts
    are not the deployment's children): SIGTERM, then SIGKILL."""
    pids = leftovers(state_dir)
    for sig in (signal.SIGCONT, signal.SIGTERM):
        for pid in pids:
            try:
                os.kill(pid, sig)
            except ProcessLookupError:
                pass
    deadline = time.monotonic() + 5
    while pids and time.monotonic() < deadline:
        pids = [pid for pid in pids if proc_state(pid) not in (None, "Z")]
        time.sleep(0.05)
    for pid in pids:
        try:
            os.kill(pid, signal.SIGKILL)
        except ProcessLookupError:
            pass


live = fl.Live(opts.build_dir, "faultinject", opts.keep)
d = live.__enter__()
try:
    ticking(d, "start")

    text = fi(d, "list")
    rows = [line.split() for line in text.splitlines() if "pid" in line]
    fl.check(len(rows) == 2 + 6 * 3 and all(row[-1] != "None" for row in rows),
             "list: %d replicas, every one with a pid" % len(rows), failures)

    # kill, restart
    old = epoch_of(d, "collector", 2)
    fi(d, "kill", "collector", 2)
    fl.check(pid_of(d, "collector", 2)[0] is None, "kill: collector-2 is gone", failures)
    ticking(d, "collector-2 killed")
    fi(d, "restart", "collector", 2)
    publishes_again(d, "collector", 2, old, "restart")
    ticking(d, "collector-2 restarted")

    # stall, continue
    fi(d, "stall", "scorer", 1)
    pid, _ = pid_of(d, "scorer", 1)
    fl.check(proc_state(pid) == "T", "stall: scorer-1 (pid %s) is stopped (state %s)"
             % (pid, proc_state(pid)), failures)
    ticking(d, "scorer-1 stalled")
    fi(d, "continue", "scorer", 1)
    fl.check(proc_state(pid) not in ("T", None), "continue: scorer-1 runs again (state %s)"
             % proc_state(pid), failures)
    watch = Watch(d, "scorer", 1)
    now = d.progress.ticks
    seen = watch.wait(lambda e: e.tick > now)
    watch.close()
    fl.check(seen is not None, "continue: scorer-1 publishes for tick %s (pipeline was at %d)"
             % (seen.tick if seen else None, now), failures)

    # restart --byzantine, and back
    old = epoch_of(d, "rewarder", 3)
    fi(d, "restart", "rewarder", 3, "--byzantine", "sign-flip")
    _, argv = pid_of(d, "rewarder", 3)
    fl.check(argv is not None and b"--byzantine" in argv and b"sign-flip" in argv,
             "restart --byzantine: rewarder-3 runs with --byzantine sign-flip", failures)
    publishes_again(d, "rewarder", 3, old, "restart --byzantine sign-flip")
    mismatches = d.progress.reward_mismatches
    ticking(d, "rewarder-3 lying")
    fl.check(d.progress.reward_mismatches == mismatches,
             "rewarder-3 lying: the aggregators still publish identical rewards per tick "
             "(%d mismatches)" % (d.progress.reward_mismatches - mismatches), failures)
    old = epoch_of(d, "rewarder", 3)
    fi(d, "restart", "rewarder", 3)
    _, argv = pid_of(d, "rewarder", 3)
    fl.check(argv is not None and b"--byzantine" not in argv,
             "restart: rewarder-3 honest again", failures)
    publishes_again(d, "rewarder", 3, old, "restart honest")

    # garbage and replay, counted by cause by every receiver
    for command, role, r, cause in (("garbage", "aggregator", 1, "malformed"),
                                    ("replay", "rewarder", 2, "replay")):
        receivers = ["%s-%d" % (rr, k) for rr in fl.RECEIVERS[role] for k in range(1, 4)]
        before = drops(d)
        old = epoch_of(d, role, r)
        fi(d, command, role, r, "--count", COUNT)
        publishes_again(d, role, r, old, command)
        ticking(d, command)
        time.sleep(1.2)     # counters are copied to the control reply once per status_ms
        after = drops(d)
        for name in receivers:
            got = after.get(name, {}).get(cause, 0) - before.get(name, {}).get(cause, 0)
            fl.check(got >= COUNT // 2,
                     "%s %s-%d: %s counted %d %s drops (>= %d of %d sent; all: %s)"
                     % (command, role, r, name, got, cause, COUNT // 2, COUNT,
                        after.get(name)), failures)

    # chaos: at most f per role at a time, sampled while it runs
    worst = {}
    command = [sys.executable, FAULTINJECT, "--state-dir", d.state_dir, "--build-dir",
               opts.build_dir, "--seed", "9", "chaos", "--duration", "5"]
    chaos = subprocess.Popen(command, stdout=subprocess.PIPE, stderr=subprocess.STDOUT, text=True)
    out = []
    reader = threading.Thread(target=lambda: out.append(chaos.stdout.read()))
    reader.start()
    start_tick = d.progress.ticks
    began = time.monotonic()
    while chaos.poll() is None and time.monotonic() - began < 150:   # 5 s + <= 60 s catching up
        d.pump(0.1)
        for role in fl.ROLES:
            faulty = 0
            for r in range(1, 4):
                pid, argv = pid_of(d, role, r)
                faulty += pid is None or proc_state(pid) == "T" or b"--byzantine" in argv
            worst[role] = max(worst.get(role, 0), faulty)
    if chaos.poll() is None:
        chaos.kill()
    chaos.wait()
    reader.join()
    text = "".join(out)
    print("$ faultinject --seed 9 chaos --duration 5  (exit %s, %.1f s)\n%s"
          % (chaos.returncode, time.monotonic() - began,
             "\n".join("    " + line for line in text.rstrip().splitlines())), flush=True)
    # seed 9 starts with a kill -9 (rewarder), then a Byzantine restart (actor)
    # and a stall (scorer): every kind of fault within the 5 s
    report = [m.group(1) for m in re.finditer(r"^\s*t=\s*[0-9.]+ s\s+(\S+)", text, re.M)]
    kinds = sorted(set(report))
    fl.check(chaos.returncode == 0 and "chaos:" in text and "kill" in kinds
             and "byzantine" in kinds,
             "chaos exits 0 and reports what it did: %d faults, kinds %s" % (len(report), kinds),
             failures)
    fl.check(all(v <= 1 for v in worst.values()),
             "chaos: at most f = 1 faulty replica per role at a time (sampled: %s)" % worst,
             failures)
    fl.check(d.progress.ticks > start_tick,
             "chaos: the pipeline kept ticking (%d ticks during)" % (d.progress.ticks - start_tick),
             failures)
    ticking(d, "after chaos")
    missing = [(role, r) for role in ("world", "raters") + fl.ROLES for r in range(1, d.count(role) + 1)
               if pid_of(d, role, r)[0] is None or proc_state(pid_of(d, role, r)[0]) == "T"]
    fl.check(not missing, "after chaos: every replica runs (%s)" % (missing or "all %d" % len(d.replica)), failures)
finally:
    # The deployment's stop() stops faultinject's restarts too (the demo
    # relies on it); the test's own sweep stays as a safety net
    d.stop()
    left = leftovers(live.path)
    stop_strays(live.path)
    live.__exit__(None, None, None)
fl.check(not left, "stop() also stopped the replicas faultinject restarted (%s; left: %s)"
         % (", ".join("%s pid %d" % s for s in getattr(d, "strays_stopped", [])), left), failures)

if failures:
    print("%d check(s) failed" % len(failures))
    sys.exit(1)
print("faultinject: every command has its effect")
