#!/usr/bin/python3
"""Chaos soak (opt-in: suite soak, never run by `./run test`).

A live deployment (world, raters, 3 replicas of every role, f = 1, running
until stopped; the collectors' durable logs bounded at RETAIN_ROWS rows)
for --minutes (default 30; QUINTET_SOAK_MINUTES too), in rounds of:

  * chaos: tools/faultinject/faultinject chaos for CHAOS_S seconds (kill -9,
    SIGSTOP, restart in a random Byzantine mode; at most f per role at a
    time, each fault undone before the next);
  * attacks, one after the other so that a role never has more than f
    faulty replicas: garbage and replayed frames at a random replica's
    endpoint (faultinject garbage / replay: it kills the replica, takes its
    endpoint over, restarts it), junk on a random daemon's control channel,
    and a control request signed for one daemon replayed to another.

Meanwhile the test reads the aggregators' reward stream, every collector's
`obs` topic, `quintetctl status --json` and every daemon's RSS, and asserts:

  * no tick lost: the reward stream's ticks, from the first to the last,
    are contiguous (each published by at least one aggregator), and the
    pipeline ticks after the last round;
  * no persisted reading lost: every observation a collector published
    (its log_index, its tick) is a row of that collector's durable log with
    that tick, unless retention pruned it (older than the newest
    RETAIN_ROWS * 15/16 rows), checked after every round;
  * no honest replica excluded for long: while a replica runs honestly (no
    fault in progress on it: running, not stopped, not Byzantine), no
    consumer reports it `excluded` over more than EXCLUDED_MAX_TICKS of the
    consumer's ticks (the reputation ladder's longest exclusion, 4096
    ticks, plus probation and slack);
  * flat RSS: the mean total RSS of all daemons, less what the actors'
    learner tables hold (status detail table/bytes: learning, bounded by
    max_states, not a leak; both figures are printed), over the last
    quarter of the run is within RSS_GROWTH_MAX of the second quarter's;
  * the attacks are counted: control/wrong-target and control drops, and
    every replica runs at the end.

With --no-wait (the ablation of faultinject's catch-up wait) only the
exclusion check is asserted, inverted: without the wait some honest replica
must be excluded beyond the bound; the other checks are printed as figures.

Figures are printed. Every process (the deployment's, faultinject's
restarts) is stopped at the end, on failure or SIGTERM (meson's timeout)
too; the state directory is removed (unless --keep).

    /usr/bin/python3 tests/soak/test_chaos_soak.py --build-dir build --minutes 5
    /usr/bin/python3 tests/soak/test_chaos_soak.py --build-dir build --minutes 8 --no-wait
    /usr/bin/python3 tests/soak/test_chaos_soak.py --build-dir build --no-agreement
    meson test -C build --benchmark --suite soak          # 30 minutes
"""
import json
import os
import random
import signal
import sqlite3
import statistics
import subprocess
import sys
import threading
import time

import nacl.signing
import zmq

HERE = os.path.dirname(os.path.abspath(__file__))
sys.path.insert(0, os.path.join(os.path.dirname(HERE), "faults"))
import faultlib as fl  # noqa: E402

opts = fl.args(__doc__, extra=lambda p: (
    p.add_argument("--minutes", type=float,
                   default=float(os.environ.get("QUINTET_SOAK_MINUTES", "30"))),
    p.add_argument("--seed", type=int, default=int(os.environ.get("QUINTET_SOAK_SEED", "1"))),
    p.add_argument("--no-wait", action="store_true",
                   help="the ablation: faultinject does not wait for a victim to catch up "
                        "(chaos --no-wait, attacks without --wait); passes only if an honest "
                        "replica is then excluded beyond the bound"),
    p.add_argument("--no-agreement", action="store_true",
                   help="the ablation of agreement (README \"How a tick flows\"): every "
                        "consumer's upstream/<role>/agree_ms = 0; every check is asserted as usual")))
FAULTINJECT = os.path.join(opts.source_dir, "tools", "faultinject", "faultinject")
QUINTETCTL = os.path.join(opts.build_dir, "tools", "quintetctl", "quintetctl")

CHAOS_S = 40                # one chaos phase
ATTACK_COUNT = 40           # garbage / replayed frames per attack
CONTROL_JUNK = 300          # junk control requests per round
JUNK_SOURCE = "127.0.0.2"
RETAIN_ROWS = 20000         # the collectors' durable log bound (quintet/collector/retain_rows)
EXCLUDED_MAX_TICKS = 4096 + 512
RSS_GROWTH_MAX = 0.10
SAMPLE_S = 5.0              # status and RSS sampling
TICKS_AFTER = 20            # "the pipeline ticks after the last round": this many ...
TICKS_AFTER_WITHIN_S = 60.0  # ... within this long
FAULTINJECT_TIMEOUT_S = CHAOS_S + 120
PAGE = os.sysconf("SC_PAGE_SIZE")

failures = []


def check(condition, message, ablated=False):
    """A check of the soak; with --no-wait only the ablated one is asserted
    (inverted), the others are printed as figures."""
    if not opts.no_wait:
        fl.check(condition, message, failures)
    elif ablated:
        fl.check(not condition, "ablation (--no-wait): NOT " + message, failures)
    else:
        print("     (figure) %s %s" % ("ok  " if condition else "FAIL", message))


def _terminate(signum, frame):
    raise SystemExit("terminated by signal %d" % signum)


signal.signal(signal.SIGTERM, _terminate)


# -- processes ---------------------------------------------------------------
def process_of(d, role, r):
    """(pid, argv, state) of the running process of a replica, as
    faultinject finds it (by its --config argument), or (None, None, None)."""
    config = d.replica[(role, r)].config_path.encode()
    for entry in os.listdir("/proc"):
        if not entry.isdigit():
            continue
        try:
            with open("/proc/%s/cmdline" % entry, "rb") as f:
                argv = f.read().split(b"\0")
            with open("/proc/%s/stat" % entry) as f:
                state = f.read().rsplit(")", 1)[1].split()[0]
        except OSError:
            continue
        if config in argv and argv[0].endswith(b"quintet-" + role.encode()) and state != "Z":
            return int(entry), argv, state
    return None, None, None


def honest_now(d):
    """{(role, r): True if it runs honestly now}, and {(role, r): pid}."""
    honest, pids = {}, {}
    for (role, r) in d.replica:
        pid, argv, state = process_of(d, role, r)
        honest[(role, r)] = pid is not None and state != "T" and b"--byzantine" not in argv
        pids[(role, r)] = pid
    return honest, pids


def rss_bytes(pid):
    try:
        with open("/proc/%d/statm" % pid) as f:
            return int(f.read().split()[1]) * PAGE
    except (OSError, TypeError, ValueError, IndexError):
        return None


def leftovers(state_dir):
    needle = state_dir.encode()
    pids = []
    for entry in os.listdir("/proc"):
        if entry.isdigit() and int(entry) != os.getpid():
            try:
                with open("/proc/%s/cmdline" % entry, "rb") as f:
                    argv = f.read().split(b"\0")
                with open("/proc/%s/stat" % entry) as f:
                    state = f.read().rsplit(")", 1)[1].split()[0]
            except OSError:
                continue
            if argv and argv[0].split(b"/")[-1].startswith(b"quintet-") and state != "Z" \
                    and any(needle in a for a in argv):
                pids.append(int(entry))
    return pids


# -- what the test reads -----------------------------------------------------
class Streams:
    """Every reward tick seen (from the deployment's own subscriber) and every
    collector's published (log_index, tick), verified."""

    def __init__(self, d):
        self.d = d
        self.reward_ticks = set()
        original = d.progress.add_reward

        def add_reward(envelope, batch):
            self.reward_ticks.add(envelope.tick)
            original(envelope, batch)
        d.progress.add_reward = add_reward
        self.context = zmq.Context()
        self.obs = {}
        self.pending = {r: {} for r in range(1, d.count("collector") + 1)}
        self.verifier = fl.qd.Verifier(d.pb2, d.trust, d.batch)
        for r in self.pending:
            sub = self.context.socket(zmq.SUB)
            sub.setsockopt(zmq.LINGER, 0)
            sub.setsockopt(zmq.RCVHWM, 100000)
            sub.setsockopt(zmq.SUBSCRIBE, b"obs")
            sub.connect(d.replica[("collector", r)].endpoint)
            self.obs[r] = sub
        self.acknowledged = 0

    def pump(self, seconds):
        end = time.monotonic() + seconds
        while True:
            self.d.pump(min(0.05, max(0.0, end - time.monotonic())))
            for r, sub in self.obs.items():
                for _ in range(10000):
                    try:
                        frames = sub.recv_multipart(zmq.NOBLOCK)
                    except zmq.Again:
                        break
                    opened = self.verifier.open(frames)
                    if opened and opened[1].replica == r and opened[2].log_index:
                        self.pending[r][opened[2].log_index] = opened[1].tick
                        self.acknowledged += 1
            if time.monotonic() >= end:
                return

    def close(self):
        for sub in self.obs.values():
            sub.close(0)
        self.context.term()


class DurableCheck:
    """Published readings against the collectors' durable logs."""

    def __init__(self, d, streams):
        self.d, self.streams = d, streams
        self.checked = 0
        self.pruned = 0
        self.lost = []

    def run(self):
        for r, pending in self.streams.pending.items():
            if not pending:
                continue
            path = os.path.join(self.d.replica[("collector", r)].run_dir, "readings.sqlite")
            try:
                db = sqlite3.connect("file:%s?mode=ro" % path, uri=True, timeout=10)
                try:
                    low = min(pending)
                    rows = dict(db.execute("SELECT id, tick FROM entry WHERE id >= ?", (low,)))
                    max_id = db.execute("SELECT max(id) FROM entry").fetchone()[0] or 0
                finally:
                    db.close()
            except sqlite3.Error as e:
                print("     collector-%d's log not readable now (%s): checked later" % (r, e))
                continue
            floor = max_id - RETAIN_ROWS * 15 // 16 + 1
            for index, tick in sorted(pending.items()):
                if index > max_id:
                    continue            # published after our snapshot: next time
                if rows.get(index) == tick:
                    self.checked += 1
                elif index < floor:
                    self.pruned += 1
                else:
                    self.lost.append((r, index, tick, rows.get(index)))
                del pending[index]


class Status:
    """quintetctl status --json samples: exclusion of honest replicas."""

    def __init__(self, d):
        self.d = d
        self.streak = {}            # (consumer, role, k) -> [first tick, last tick]
        self.longest = {}           # (consumer, role, k) -> ticks
        self.samples = 0
        self.unanswered = 0
        self.last = {}

    def query(self):
        try:
            out = subprocess.run([QUINTETCTL, "status", "--state-dir", self.d.state_dir, "--json",
                                  "--timeout", "2000"], stdout=subprocess.PIPE,
                                 stderr=subprocess.DEVNULL, text=True, timeout=60).stdout
            return {row["name"]: row for row in json.loads(out)}
        except (OSError, ValueError, subprocess.TimeoutExpired):
            return {}

    def table_bytes(self):
        """What the actors' learner tables hold in use, from the last
        sample's status details (table/bytes); None when an actor did not
        answer: its table is unknown."""
        total = 0
        actors = [row for name, row in self.last.items() if name.startswith("actor-")]
        if not actors:
            return None
        for row in actors:
            values = {d["name"]: d["value"] for d in row.get("details", [])}
            if not row.get("answered") or "table/bytes" not in values:
                return None
            total += int(values["table/bytes"])
        return total

    def sample(self, honest):
        rows = self.query()
        if not rows:
            return
        self.samples += 1
        self.last = rows
        for name, row in rows.items():
            if not row.get("answered"):
                self.unanswered += 1
                continue
            tick = row.get("tick", 0)
            for up in row.get("upstreams", []):
                for rep in up.get("reputation", []):
                    key = (name, up["role"], rep["replica"])
                    if rep["status"] == "excluded" and honest.get((up["role"], rep["replica"]), False):
                        s = self.streak.setdefault(key, [tick, tick])
                        s[1] = tick
                        self.longest[key] = max(self.longest.get(key, 0), s[1] - s[0])
                    else:
                        self.streak.pop(key, None)


# -- attacks -----------------------------------------------------------------
def faultinject(streams, *args, timeout=FAULTINJECT_TIMEOUT_S):
    d = streams.d
    command = [sys.executable, FAULTINJECT, "--state-dir", d.state_dir, "--build-dir",
               opts.build_dir] + [str(a) for a in args]
    process = subprocess.Popen(command, stdout=subprocess.PIPE, stderr=subprocess.STDOUT, text=True)
    out = []
    reader = threading.Thread(target=lambda: out.append(process.stdout.read()))
    reader.start()
    began = time.monotonic()
    try:
        while process.poll() is None and time.monotonic() - began < timeout:
            if yield_point[0]:
                yield_point[0]()
            streams.pump(0.1)
    finally:
        if process.poll() is None:
            process.kill()
        process.wait()
        reader.join()
    return process.returncode, "".join(out)


yield_point = [None]        # called while faultinject runs (sampling)


def control_request(d, key, target, pb2):
    """A status request signed by the control key, addressed to target."""
    role, _, replica = target.rpartition("-")
    request = pb2.ControlMessage(request=pb2.ControlRequest(
        command="status", nonce=os.urandom(16), target_role=role, target_replica=int(replica)))
    envelope = pb2.Envelope(role="control", replica=1, key_id=fl.qd.key_id_of(bytes(key.verify_key)),
                            epoch=random.getrandbits(63), seq=1, tick=0, sent_ns=time.time_ns(),
                            type=pb2.PayloadType.Value("CONTROL"), payload=request.SerializeToString())
    data = envelope.SerializeToString()
    return pb2.SignedMessage(envelope=data, signature=key.sign(
        fl.qd.SIGNATURE_CONTEXT + data).signature).SerializeToString()


def wrong_target_count(status, name):
    row = status.query().get(name, {})
    return row.get("control_drops", {}).get("wrong-target", 0) if row.get("answered") else None


def control_attacks(streams, rng, control, key, counts, status):
    """Junk on one daemon's control channel; a request for one daemon sent
    to another (must not be answered)."""
    d = streams.d
    names = sorted(control)
    context = zmq.Context()
    try:
        target, other = rng.sample(names, 2)
        before = wrong_target_count(status, other)
        req = context.socket(zmq.REQ)
        req.setsockopt(zmq.LINGER, 0)
        req.connect(control[other])
        req.send(control_request(d, key, target, d.pb2))
        answered = bool(req.poll(2000))
        req.close(0)
        counts["wrong_target_sent"] += 1
        counts["wrong_target_answered"] += answered
        # counted by the daemon it was sent to (read until it shows, bounded)
        deadline = time.monotonic() + 15.0
        while before is not None and time.monotonic() < deadline:
            after = wrong_target_count(status, other)
            if after is not None and after >= before + 1:
                counts["wrong_target_counted"] += 1
                break
            streams.pump(0.5)
        # from another loopback address than quintetctl's (each address has
        # its own budget of control requests)
        victim = rng.choice(names)
        dealer = context.socket(zmq.DEALER)
        dealer.setsockopt(zmq.LINGER, 0)
        dealer.connect("tcp://%s:0;%s" % (JUNK_SOURCE, control[victim][len("tcp://"):]))
        for i in range(CONTROL_JUNK):
            dealer.send_multipart([b"", b"\xff junk %d" % i])
        dealer.close(0)
        counts["control_junk"] += CONTROL_JUNK
    finally:
        context.term()


# -- the soak ----------------------------------------------------------------
def main():
    rng = random.Random(opts.seed)
    duration = opts.minutes * 60.0
    overrides = {}
    if opts.no_agreement:
        for role, upstreams in fl.topology.upstreams(fl.TOPOLOGY).items():
            overrides[role] = {"upstream": {up: {"agree_ms": 0} for up, _topic in upstreams}}
    live = fl.Live(opts.build_dir, "soak", opts.keep, batch=4, replicas=3, seed=opts.seed,
                   role_sections={"collector": {"retain_rows": RETAIN_ROWS}}, overrides=overrides)
    d = live.__enter__()
    streams = status = None
    rss = []                    # (t, total bytes, {name: bytes}, learner tables' bytes)
    counts = {"control_junk": 0, "wrong_target_sent": 0, "wrong_target_answered": 0,
              "wrong_target_counted": 0}
    rounds = []
    faultinject_failures = []
    began = time.monotonic()
    left = []
    try:
        streams = Streams(d)
        durable = DurableCheck(d, streams)
        status = Status(d)
        with open(d.path("endpoints.json")) as f:
            control = json.load(f)["control"]
        with open(d.path("keys", "control-1.key")) as f:
            key = nacl.signing.SigningKey(bytes.fromhex(f.read().strip()))
        next_sample = [0.0]

        def sample():
            now = time.monotonic()
            if now < next_sample[0]:
                return
            next_sample[0] = now + SAMPLE_S
            honest, pids = honest_now(d)
            per = {}
            for (role, r), pid in pids.items():
                value = rss_bytes(pid)
                if value is not None:
                    per["%s-%d" % (role, r)] = value
            status.sample(honest)
            rss.append((now - began, sum(per.values()), per, status.table_bytes()))
        yield_point[0] = sample

        streams.pump(3.0)
        round_no = 0
        while time.monotonic() - began < duration:
            round_no += 1
            t0 = time.monotonic() - began
            rc, text = faultinject(streams, "--seed", rng.getrandbits(31), "chaos", "--duration",
                                   min(CHAOS_S, max(5, duration - t0)),
                                   *(["--no-wait"] if opts.no_wait else []))
            faults = sum(1 for line in text.splitlines() if line.strip().startswith("t="))
            if rc != 0:
                faultinject_failures.append(("chaos", rc, text[-2000:]))
            attacks = []
            if time.monotonic() - began < duration:
                for command in ("garbage", "replay"):
                    role = rng.choice(fl.ROLES)
                    r = rng.randint(1, 3)
                    rc, text = faultinject(streams, command, role, r, "--count", ATTACK_COUNT,
                                           *([] if opts.no_wait else ["--wait"]))
                    if rc != 0:
                        faultinject_failures.append((command, rc, text[-2000:]))
                    attacks.append("%s %s-%d" % (command, role, r))
                control_attacks(streams, rng, control, key, counts, status)
                attacks.append("control junk + wrong target")
            streams.pump(1.0)
            durable.run()
            rounds.append((round(t0), faults, attacks))
            print("round %d at %4.0f s: %d chaos faults, %s; tick %d, %d readings checked, %d lost"
                  % (round_no, t0, faults, ", ".join(attacks), d.progress.max_tick, durable.checked,
                     len(durable.lost)), flush=True)
        yield_point[0] = None

        # After the last round: everything runs, the pipeline ticks
        start = d.progress.max_tick
        waited = time.monotonic()
        while d.progress.max_tick - start < TICKS_AFTER and time.monotonic() - waited < TICKS_AFTER_WITHIN_S:
            streams.pump(0.2)
            sample()
        ticks_after = d.progress.max_tick - start
        honest, _ = honest_now(d)
        streams.pump(2.0)
        durable.run()
        time.sleep(1.2)         # control counters reach the reply once per status interval
        final = status.query()
        elapsed = time.monotonic() - began

        # -- figures and checks --------------------------------------------
        ticks = sorted(streams.reward_ticks)
        missing = (ticks[-1] - ticks[0] + 1 - len(ticks)) if ticks else None
        gaps = []
        for a, b in zip(ticks, ticks[1:]):
            if b != a + 1:
                gaps.append((a, b))
        print("soak: %.1f min, %d rounds, %d chaos faults, %d endpoint attacks, %d junk control requests"
              % (elapsed / 60, len(rounds), sum(r[1] for r in rounds), 2 * sum(1 for r in rounds if r[2]),
                 counts["control_junk"]))
        print("     reward stream: ticks %s..%s, %d seen, %s missing %s; %.1f ticks/s"
              % (ticks[0] if ticks else "-", ticks[-1] if ticks else "-", len(ticks), missing,
                 gaps[:10], len(ticks) / elapsed if ticks else 0))
        check(ticks and missing == 0,
              "no tick lost: the reward stream's ticks %s..%s are contiguous"
              % (ticks[0] if ticks else "-", ticks[-1] if ticks else "-"))
        check(ticks_after >= TICKS_AFTER, "the pipeline ticks after the last round (%d ticks)" % ticks_after)
        print("     durable logs: %d published readings, %d found with their tick, %d pruned by retention "
              "(%d rows kept), %d lost %s" % (streams.acknowledged, durable.checked, durable.pruned,
                                              RETAIN_ROWS, len(durable.lost), durable.lost[:5]))
        check(durable.checked > 0 and not durable.lost,
              "no persisted reading lost: every published reading is in its collector's log (%d checked)"
              % durable.checked)
        worst = max(status.longest.items(), key=lambda kv: kv[1]) if status.longest else None
        print("     reputation: %d status samples; longest exclusion of a replica while honest: %s"
              % (status.samples, "%d ticks (%s of %s-%d)" % (worst[1], worst[0][0], worst[0][1], worst[0][2])
                 if worst else "none"))
        check(status.samples > 0, "status was sampled (%d samples)" % status.samples)
        check(status.samples > 0 and (worst is None or worst[1] <= EXCLUDED_MAX_TICKS),
              "no honest replica excluded for more than %d ticks" % EXCLUDED_MAX_TICKS, ablated=True)
        n = len(rss)
        if n >= 8:
            second = [s[1] for s in rss[n // 4: n // 2]]
            last = [s[1] for s in rss[3 * n // 4:]]
            m2, m4 = statistics.mean(second), statistics.mean(last)
            growth = m4 / m2 - 1
            print("     RSS of all daemons: %d samples, second quarter %.1f MB, last quarter %.1f MB "
                  "(%+.1f%%), max %.1f MB" % (n, m2 / 1e6, m4 / 1e6, 100 * growth,
                                              max(s[1] for s in rss) / 1e6))
            # The actors' learner tables grow as they meet new states (by
            # doubling, up to max_states rows): learning, not a leak. The
            # check is on the rest: RSS less what the tables hold, over the
            # samples where every actor reported its table.
            net2 = [s[1] - s[3] for s in rss[n // 4: n // 2] if s[3] is not None]
            net4 = [s[1] - s[3] for s in rss[3 * n // 4:] if s[3] is not None]
            tables = [s[3] for s in rss if s[3] is not None]
            if net2 and net4:
                t2 = statistics.mean(s[3] for s in rss[n // 4: n // 2] if s[3] is not None)
                t4 = statistics.mean(s[3] for s in rss[3 * n // 4:] if s[3] is not None)
                print("     learner tables of the actors: second quarter %.1f MB, last quarter %.1f MB; "
                      "RSS less the tables: %.1f MB -> %.1f MB" % (t2 / 1e6, t4 / 1e6,
                          statistics.mean(net2) / 1e6, statistics.mean(net4) / 1e6))
                growth = statistics.mean(net4) / statistics.mean(net2) - 1
            else:
                print("     learner tables unknown (%d of %d samples): RSS judged whole" % (len(tables), n))
            by_role = {}
            for name, value in rss[-1][2].items():
                by_role.setdefault(name.rsplit("-", 1)[0], []).append(value)
            print("     RSS at the end by role (MB): %s" % ", ".join(
                "%s %s" % (role, "/".join("%.1f" % (v / 1e6) for v in values))
                for role, values in sorted(by_role.items())))
            check(growth <= RSS_GROWTH_MAX, "flat RSS (less the learner tables): last quarter within "
                  "%d%% of the second (%+.1f%%)" % (100 * RSS_GROWTH_MAX, 100 * growth))
        else:
            check(False, "flat RSS: too few samples (%d)" % n)
        causes = {}
        for row in final.values():
            for cause, count in row.get("control_drops", {}).items():
                causes[cause] = causes.get(cause, 0) + count
        control_drops = sum(causes.values())
        print("     control channel: %d requests for another daemon sent, %d answered, %d counted as "
              "wrong-target by their receiver; at the end %d control drops %s (%d daemons answered; "
              "daemons restarted since forget theirs)"
              % (counts["wrong_target_sent"], counts["wrong_target_answered"],
                 counts["wrong_target_counted"], control_drops, causes, len(final)))
        check(counts["wrong_target_answered"] == 0
              and counts["wrong_target_counted"] == counts["wrong_target_sent"],
              "requests for another daemon are never answered, and each is counted (control/wrong-target)")
        not_running = [k for k, v in honest.items() if not v]
        check(not not_running, "every replica runs honestly at the end (%s)" % (not_running or "all"))
        check(not faultinject_failures, "faultinject exits 0 every time (%s)"
              % [(c, rc) for c, rc, _ in faultinject_failures])
        for command, rc, text in faultinject_failures[:3]:
            print("     faultinject %s exit %s:\n%s" % (command, rc, text))
    finally:
        yield_point[0] = None
        try:
            if streams is not None:
                streams.close()
            d.stop()
            left = leftovers(live.path)
            for pid in left:            # restarted by faultinject and missed: never left running
                for sig in (signal.SIGCONT, signal.SIGKILL):
                    try:
                        os.kill(pid, sig)
                    except ProcessLookupError:
                        pass
        finally:
            live.__exit__(None, None, None)
    check(not left, "every process stopped at the end (left: %s)" % left)
    if failures:
        print("%d check(s) failed" % len(failures))
        return 1
    print("soak: every invariant held")
    return 0


if __name__ == "__main__":
    sys.exit(main())
