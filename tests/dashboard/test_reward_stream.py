#!/usr/bin/python3
"""The reward stream as a contract (issue 5), against one running deployment
with its dashboard endpoint (quintet-relay):

1. tools/examples/subscribe.py, a client of quintet.verifier (which needs only
   the schema and the trust store), verifies >= 100 consecutive messages;
2. it rejects a real message with one flipped byte (in the envelope, and in
   the signature) and still accepts the original;
3. a dashboard that stops reading does not slow ticks: ticks/s without and
   with a stuck subscriber are measured and printed; asserted loosely (the
   pipeline keeps ticking, the relay counts `subscriber-full` drops, a
   well-behaved subscriber still verifies messages meanwhile);
4. a subscriber joining between ticks gets the last reward at once: with
   every aggregator stopped (SIGSTOP, so nothing new and no re-sends), a
   new subscriber still receives the last reward of each aggregator, from
   the relay's last-value cache;
5. the scorers' score topic through the relay, conflated: every frame the
   relay forwards is one a scorer published, byte for byte (compared with
   the scorers' own topic, read directly: score_tap), at most one per
   scorer every --conflate-interval (counted over a window), the latest: the
   learning the relay last forwarded of each scorer is at most a few ticks
   behind what it published; a late joiner (aggregators stopped) gets each
   scorer's last score from the cache, the one it published last.
"""
import json
import os
import signal
import subprocess
import sys
import time
import urllib.request

sys.path.insert(0, os.path.join(os.path.dirname(os.path.dirname(os.path.abspath(__file__))),
                                "integration"))
import itest  # noqa: E402

opts = itest.args(__doc__)
from quintet import verifier as qv, deploy as qd  # noqa: E402
import score_tap  # noqa: E402
import zmq  # noqa: E402

SOURCE = os.path.abspath(opts.source_dir)
BUILD = os.path.abspath(opts.build_dir)
SUBSCRIBE = os.path.join(SOURCE, "tools", "examples", "subscribe.py")
BATCH = 8
MEASURE_S = 4.0
CONSECUTIVE = 100
CACHE_SETTLE_S = 10.0   # bound on waiting for the stopped aggregators' last rewards
STAGGER_S = 0.5         # between stopping one aggregator and the next
SCORE_INTERVAL_S = 0.5  # the relay's default --conflate-interval
SCORE_WINDOW_S = 4.0


def score_through_relay(d, tap, failures):
    """5. The relay forwards the scorers' original frames, conflated."""
    context = zmq.Context()
    sub = context.socket(zmq.SUB)
    sub.setsockopt(zmq.LINGER, 0)
    sub.setsockopt(zmq.SUBSCRIBE, b"score")
    sub.connect(d.relay.endpoint)
    verifier = qv.Verifier(d.pb2, d.trust, BATCH)
    got, first_at = [], {}
    published_before = dict(tap.count)
    began = time.monotonic()
    while time.monotonic() - began < SCORE_WINDOW_S + 1.0:
        d.pump(0.05)
        while sub.poll(0):
            frames = sub.recv_multipart()
            opened = verifier.open(frames)
            now = time.monotonic()
            if opened is None:
                got.append((now, None, frames))
                continue
            replica = opened[1].replica
            first_at.setdefault(replica, now)
            got.append((now, opened, frames))
    published = {r: n - published_before.get(r, 0) for r, n in tap.count.items()}
    sub.close(0)
    context.term()
    opened = [(t, o, f) for t, o, f in got if o is not None]
    by_replica = {}
    for t, o, f in opened:
        by_replica.setdefault(o[1].replica, []).append((t, o, f))
    # messages counted over SCORE_WINDOW_S after each replica's first (the
    # first may come from the last-value cache, at once)
    in_window = {r: sum(1 for t, _o, _f in msgs if t - first_at[r] <= SCORE_WINDOW_S)
                 for r, msgs in by_replica.items()}
    bound = int(SCORE_WINDOW_S / SCORE_INTERVAL_S) + 2
    metrics = relay_metrics(d)
    print("     score through the relay: %d messages from scorers %s, per scorer in %.0f s %s "
          "(at most %d), the scorers published %s meanwhile; relay: forwarded %d, conflated %d"
          % (len(got), sorted(by_replica), SCORE_WINDOW_S, in_window, bound, published,
             metrics.get('quintet_relay_forwarded_total{topic="score"}', 0),
             metrics.get('quintet_relay_conflated_total{topic="score"}', 0)))
    itest.check(len(opened) == len(got) and sorted(by_replica) == list(range(1, d.replicas + 1)),
                "the relay forwards verified score messages of every scorer", failures)
    itest.check(all(tap.published(o[1].replica, f[1]) for _t, o, f in opened),
                "every score frame the relay forwards is one the scorer published, byte for byte",
                failures)
    itest.check(all(n <= bound for n in in_window.values()),
                "at most one per scorer every %.1f s" % SCORE_INTERVAL_S, failures)
    if all(n > 2 * bound for n in published.values()):
        itest.check(metrics.get('quintet_relay_conflated_total{topic="score"}', 0) > 0,
                    "the relay counts the scores it conflated", failures)
    # the latest: the last learning forwarded is that of a recent tick
    latest = tap.latest()
    for r, msgs in sorted(by_replica.items()):
        envelope = msgs[-1][1][1]
        tick_now = latest[r][0]
        itest.check(tap.get(r, envelope.tick) == score_tap.learning_of(msgs[-1][1][2]),
                    "scorer-%d: the learning forwarded is what it published at tick %d"
                    % (r, envelope.tick), failures)
        # within an interval and a loop pass: allow 3 s worth of ticks
        allowed = max(10, 3.0 * d.progress.ticks / max(1e-9, d.elapsed()))
        itest.check(tick_now - envelope.tick <= allowed, "scorer-%d: the last score forwarded "
                    "(tick %d) is recent (its latest %d, allowed %.0f behind)"
                    % (r, envelope.tick, tick_now, allowed), failures)


def late_join_score(d, tap, failures):
    """With the pipeline stopped: a new subscriber to score gets each
    scorer's last published score from the relay's cache (bounded wait for
    the relay and the tap to have read the last one)."""
    deadline = time.monotonic() + CACHE_SETTLE_S
    while True:
        context = zmq.Context()
        sub = context.socket(zmq.SUB)
        sub.setsockopt(zmq.LINGER, 0)
        sub.setsockopt(zmq.SUBSCRIBE, b"score")
        began = time.monotonic()
        sub.connect(d.relay.endpoint)
        got = []
        while time.monotonic() - began < 3.0 and len(got) < d.replicas:
            if sub.poll(100):
                got.append(sub.recv_multipart())
        sub.close(0)
        context.term()
        verifier = qv.Verifier(d.pb2, d.trust, BATCH)
        opened = [verifier.open(frames) for frames in got]
        cached = {o[1].replica: o[1].tick for o in opened if o}
        last = {r: t for r, (t, _l) in tap.latest().items()}
        if cached == last or time.monotonic() >= deadline:
            break
        time.sleep(0.25)
    print("     late joiner on score: ticks %s from the cache, last published %s" % (cached, last))
    itest.check(len(got) == d.replicas and all(opened) and cached == last,
                "a late joiner gets each scorer's last score at once from the cache", failures)


def last_published(d):
    """The highest tick our own subscription received from each aggregator
    replica (the deployment's Progress keeps rewards by tick and replica)."""
    last = {}
    for tick, seen in d.progress.reward_ticks.items():
        for replica in seen["by"]:
            last[replica] = max(last.get(replica, -1), tick)
    return last


def subscribe_cmd(*extra):
    return [sys.executable, SUBSCRIBE, "--proto-dir", os.path.join(BUILD, "proto"),
            "--json", "--quiet"] + list(extra)


def summary_of(output):
    for line in reversed(output.splitlines()):
        if line.startswith("{"):
            record = json.loads(line)
            if "summary" in record:
                return record["summary"]
    return None


def relay_metrics(d):
    text = urllib.request.urlopen("http://%s/metrics" % d.relay.metrics, timeout=5).read().decode()
    values = {}
    for line in text.splitlines():
        if line and not line.startswith("#"):
            name, value = line.rsplit(" ", 1)
            values[name] = float(value)
    return values


def ticks_per_second(d, seconds):
    start_tick, start = d.progress.ticks, time.monotonic()
    d.pump(seconds)
    return (d.progress.ticks - start_tick) / (time.monotonic() - start)


def flipped_byte_check(d, frames, failures):
    """Serves a captured message with one byte flipped (envelope, then
    signature) and then the original, to subscribe.py on an XPUB we bind."""
    context = zmq.Context()
    xpub = context.socket(zmq.XPUB)
    xpub.setsockopt(zmq.LINGER, 0)
    port = xpub.bind_to_random_port("tcp://127.0.0.1")
    process = subprocess.Popen(subscribe_cmd("--endpoint", "tcp://127.0.0.1:%d" % port,
                                             "--trust-dir", d.path("trust"), "--topic", "reward",
                                             "--count", "1", "--timeout", "20"),
                               stdout=subprocess.PIPE, text=True)
    try:
        if not xpub.poll(15000):
            itest.check(False, "subscribe.py subscribed to our test publisher", failures)
            return
        xpub.recv()
        topic, data = frames
        signed = d.pb2.SignedMessage()
        signed.ParseFromString(data)
        envelope_at = data.find(signed.envelope)
        signature_at = data.find(signed.signature)
        for at in (envelope_at + len(signed.envelope) // 2, signature_at + 10):
            bad = bytearray(data)
            bad[at] ^= 0x01
            xpub.send_multipart([topic, bytes(bad)])
        xpub.send_multipart([topic, data])
        out, _ = process.communicate(timeout=30)
    finally:
        if process.poll() is None:
            process.kill()
            process.wait()
        xpub.close(0)
        context.term()
    summary = summary_of(out) or {}
    print("     flipped bytes: %s" % summary)
    rejected = sum(summary.get("rejected", {}).values())
    itest.check(rejected == 2, "subscribe.py rejects both messages with one flipped byte "
                "(%s)" % summary.get("rejected"), failures)
    itest.check(summary.get("verified") == 1, "subscribe.py accepts the original message",
                failures)


def main():
    holder, state = itest.state_dir("dashboard", opts.keep)
    failures = []
    tap = None
    try:
        with qd.Deployment(build_dir=BUILD, state_dir=state, batch=BATCH, episodes=0,
                           dashboard=True) as d:
            d.setup()
            tap = score_tap.ScoreTap(d)
            with open(d.path("endpoints.json")) as f:
                listed = json.load(f).get("dashboard")
            itest.check(listed == [d.relay.endpoint], "endpoints.json lists the dashboard endpoint",
                        failures)
            d.start()
            d.pump(1.5)
            itest.check(d.progress.ticks > 0, "the pipeline ticks (%d)" % d.progress.ticks,
                        failures)

            # 1. A foreign client verifies >= 100 consecutive messages
            capture_ctx = zmq.Context()
            capture = capture_ctx.socket(zmq.SUB)
            capture.setsockopt(zmq.SUBSCRIBE, b"reward")
            capture.connect(d.relay.endpoint)
            process = subprocess.Popen(subscribe_cmd("--state-dir", state, "--count",
                                                     str(CONSECUTIVE + 50), "--timeout", "30"),
                                       stdout=subprocess.PIPE, text=True)
            while process.poll() is None:
                d.pump(0.2)
            out = process.stdout.read()
            summary = summary_of(out) or {}
            print("     subscribe.py: %s" % summary)
            itest.check(process.returncode == 0 and summary.get("longest_consecutive", 0)
                        >= CONSECUTIVE, "subscribe.py verifies >= %d consecutive messages"
                        % CONSECUTIVE, failures)
            itest.check(not summary.get("rejected"), "subscribe.py rejects none of them", failures)
            captured = capture.recv_multipart() if capture.poll(5000) else None
            capture.close(0)
            capture_ctx.term()

            # 2. One flipped byte is rejected
            if captured:
                flipped_byte_check(d, captured, failures)
            else:
                itest.check(False, "captured a reward message from the dashboard", failures)

            # 5. The score topic through the relay (before the stuck subscriber)
            score_through_relay(d, tap, failures)

            # 3. A stuck dashboard does not slow the pipeline
            free_rate = ticks_per_second(d, MEASURE_S)
            drops_before = relay_metrics(d).get('quintet_relay_dropped_total{cause="subscriber-full"}', 0)
            stuck_ctx = zmq.Context()
            stuck = stuck_ctx.socket(zmq.SUB)
            stuck.setsockopt(zmq.RCVHWM, 1)
            stuck.setsockopt(zmq.RCVBUF, 4096)
            stuck.setsockopt(zmq.LINGER, 0)
            for topic in (b"reward", b"eval", b"score"):
                stuck.setsockopt(zmq.SUBSCRIBE, topic)
            stuck.connect(d.relay.endpoint)          # and never reads
            d.pump(1.0)                              # let its queues fill
            reader = subprocess.Popen(subscribe_cmd("--state-dir", state, "--count", "100000",
                                                    "--timeout", str(MEASURE_S)),
                                      stdout=subprocess.PIPE, text=True)
            stuck_rate = ticks_per_second(d, MEASURE_S)
            reader_out, _ = reader.communicate(timeout=30)
            reader_summary = summary_of(reader_out) or {}
            drops = relay_metrics(d).get('quintet_relay_dropped_total{cause="subscriber-full"}', 0) \
                - drops_before
            # the stuck subscriber reads again: what it lost shows as a seq jump
            stuck_verifier = qv.Verifier(d.pb2, d.trust, BATCH)
            last_seq, stuck_gaps = {}, 0
            for _ in range(2000):
                if not stuck.poll(200):
                    break
                opened = stuck_verifier.open(stuck.recv_multipart())
                if opened and opened[0] == "reward":
                    envelope = opened[1]
                    if envelope.key_id in last_seq:
                        stuck_gaps += max(0, envelope.seq - last_seq[envelope.key_id] - 1)
                    last_seq[envelope.key_id] = envelope.seq
            stuck.close(0)
            stuck_ctx.term()
            print("     ticks/s without a stuck subscriber: %.1f, with one: %.1f (%.0f%%); "
                  "relay overflows (subscriber-full): %d; rewards the stuck subscriber "
                  "missed (seq gaps): %d; a reading subscriber meanwhile: %s"
                  % (free_rate, stuck_rate, 100 * stuck_rate / free_rate if free_rate else 0,
                     drops, stuck_gaps, reader_summary))
            itest.check(stuck_rate > 0.3 * free_rate,
                        "the pipeline keeps ticking with a stuck subscriber", failures)
            itest.check(drops > 0, "the relay counts the stuck subscriber's overflow", failures)
            itest.check(stuck_gaps > 0, "the stuck subscriber lost rewards rather than "
                        "holding anyone up, and sees it in seq", failures)
            itest.check(reader_summary.get("verified", 0) > 0 and not reader_summary.get("rejected")
                        and reader_summary.get("gaps") == 0,
                        "a reading subscriber still verifies every message meanwhile", failures)

            # 4. A late joiner gets the last reward at once
            aggregators = d.replicas_of("aggregator")
            try:
                # Stopped one after the other, as a loaded machine would:
                # the first one stops ticks before the others
                for rep in aggregators:
                    os.killpg(rep.process.pid, signal.SIGSTOP)
                    d.pump(STAGGER_S)
                d.pump(1.0)                          # what was in flight
                last_tick = d.progress.max_tick
                def late_join():
                    late_ctx = zmq.Context()
                    late = late_ctx.socket(zmq.SUB)
                    late.setsockopt(zmq.LINGER, 0)
                    late.setsockopt(zmq.SUBSCRIBE, b"reward")
                    began = time.monotonic()
                    late.connect(d.relay.endpoint)
                    got = []
                    while time.monotonic() - began < 3.0 and len(got) < len(aggregators):
                        if late.poll(100):
                            got.append((time.monotonic() - began, late.recv_multipart()))
                    late.close(0)
                    late_ctx.term()
                    verifier = qv.Verifier(d.pb2, d.trust, BATCH)
                    opened = [verifier.open(frames) for _, frames in got]
                    return got, opened, {o[1].replica: o[1].tick for o in opened if o}

                got, opened, cached = late_join()
                first = got
                # The aggregators need not stop on the same tick (on a loaded
                # machine one is a tick behind): each one's cached reward must
                # be the last tick *it* published. While they are stopped,
                # what they published is what reaches our own subscription
                # and the relay, each at its own pace (the relay may still be
                # working through the stuck subscriber's backlog): pump our
                # subscription, and join again, until both have it (bounded),
                # never past SIGCONT.
                published = last_published(d)
                pump_until = time.monotonic() + CACHE_SETTLE_S
                while (any(tick != published.get(r, -1) for r, tick in cached.items())
                       and time.monotonic() < pump_until):
                    d.pump(0.25)
                    published = last_published(d)
                    if any(tick < published.get(r, -1) for r, tick in cached.items()):
                        got, opened, cached = late_join()
                late_join_score(d, tap, failures)
            finally:
                for rep in aggregators:
                    os.killpg(rep.process.pid, signal.SIGCONT)
            ticks = sorted(set(cached.values()))
            senders = sorted(cached)
            print("     late joiner (aggregators stopped): %d messages, first after %.0f ms, "
                  "ticks %s from aggregators %s; last tick seen before: %d, per aggregator %s"
                  % (len(got), 1000 * got[0][0] if got else -1, ticks, senders, last_tick,
                     {r: published.get(r) for r in senders}))
            itest.check(len(got) == len(aggregators) and all(opened),
                        "a late joiner gets the last verified reward of every aggregator", failures)
            itest.check(first and first[0][0] < 2.0, "at once (not waiting for a tick)", failures)
            itest.check(cached and all(tick == published.get(r) for r, tick in cached.items()),
                        "each aggregator's cached reward is the last tick it published", failures)
            dead = d.dead()
            itest.check(not dead and d.relay.alive(), "no process died", failures)
    finally:
        if tap is not None:
            tap.close()
        if holder:
            holder.cleanup()
    if failures:
        print("%d check(s) failed" % len(failures))
        return 1
    print("the reward stream holds its contract")
    return 0


if __name__ == "__main__":
    sys.exit(main())
