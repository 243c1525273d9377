#!/usr/bin/python3
"""Bad input to quintet-relay is a counted drop, never a forward or a crash.

The test plays an aggregator replica: it binds a PUB socket, starts the C
relay (daemons/relay) with it as the one --aggregator endpoint and keys
from `quintetctl keygen`, and subscribes to the relay's dashboard endpoint.
Once a genuine reward reaches the subscriber (the relay is connected), it
publishes one message of each kind below, then a genuine sentinel; the
relay reads one connection in order, so when the sentinel arrives every
bad message before it has been judged. Then:

* quintet_relay_dropped_total{cause} grew by exactly one per bad message,
  by the cause its receive path (the stages' qt_verifier) gives it;
* the subscriber received genuine messages only, byte for byte as
  published (the relay forwards original frames);
* a seq jump of a genuine reward counts the rewards the relay never
  received (quintet_relay_upstream_gaps_total);
* the relay is still running, and stops cleanly on SIGTERM.

No timing is asserted: every wait is bounded and only ends early.
"""
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
import nacl.signing  # noqa: E402
from quintet import build as qb, ports as qp, replica as qr, trust as qt, verifier as qv  # noqa: E402
import zmq  # noqa: E402

BUILD = os.path.abspath(opts.build_dir)
BATCH = 1
CONNECT_S = 30.0        # bound on the relay connecting to us (a loaded machine)
SENTINEL_S = 30.0       # bound on the sentinel coming through
SEQ_JUMP = 5            # a genuine reward skipping SEQ_JUMP - 1 seq numbers


class Signer:
    """Seals payloads as one identity, the way qt_signer does (README "Wire format")."""

    def __init__(self, pb2, seed, role, replica):
        self.pb2 = pb2
        self.key = nacl.signing.SigningKey(seed)
        self.role, self.replica = role, replica
        self.key_id = qt.key_id_of(bytes(self.key.verify_key))
        self.epoch = int.from_bytes(os.urandom(8), "little")
        self.seq = 0

    def seal(self, payload, type_name="REWARD_BATCH", tick=1, seq=None, flip=False):
        self.seq = self.seq + 1 if seq is None else seq
        envelope = self.pb2.Envelope(role=self.role, replica=self.replica, key_id=self.key_id,
                                     epoch=self.epoch, seq=self.seq, tick=tick,
                                     sent_ns=time.time_ns(),
                                     type=self.pb2.PayloadType.Value(type_name),
                                     payload=payload.SerializeToString())
        data = envelope.SerializeToString()
        signature = bytearray(self.key.sign(qv.SIGNATURE_CONTEXT + data).signature)
        if flip:
            signature[7] ^= 0x01
        return self.pb2.SignedMessage(envelope=data, signature=bytes(signature)).SerializeToString()


def reward(pb2, batch=BATCH, value=0.5):
    return pb2.RewardBatch(batch=batch, instances=[
        pb2.AggregatedReward(clock=pb2.InstanceClock(), reward=value, vector=[value])
        for _ in range(batch)])


def seed_of(state, name):
    with open(os.path.join(state, "keys", name + ".key")) as f:
        return bytes.fromhex(f.read().strip())


def metrics(url):
    text = urllib.request.urlopen(url, timeout=5).read().decode()
    values = {}
    for line in text.splitlines():
        if line and not line.startswith("#"):
            name, value = line.rsplit(" ", 1)
            values[name] = float(value)
    return values


def main():
    holder, state = itest.state_dir("relay-drops", opts.keep)
    failures = []
    pb2 = qb.load_pb2(BUILD)
    subprocess.run([qb.quintetctl_path(BUILD), "keygen", "--dir", state], check=True,
                   stdout=subprocess.DEVNULL)
    aggregator = Signer(pb2, seed_of(state, "aggregator-1"), "aggregator", 1)
    scorer = Signer(pb2, seed_of(state, "scorer-1"), "scorer", 1)
    stranger = Signer(pb2, os.urandom(32), "aggregator", 2)   # a key the trust store lacks
    context = zmq.Context()
    pub = context.socket(zmq.PUB)
    pub.setsockopt(zmq.LINGER, 0)
    upstream = pub.bind_to_random_port("tcp://127.0.0.1")
    relay_port, metrics_port = qp.free_ports(2)
    url = "http://127.0.0.1:%d/metrics" % metrics_port
    log = open(os.path.join(state, "relay.log"), "wb")
    relay = subprocess.Popen([qb.daemon_path(BUILD, "relay"), "--trust-dir",
                              os.path.join(state, "trust"), "--bind",
                              "tcp://127.0.0.1:%d" % relay_port, "--batch", str(BATCH),
                              "--metrics-bind", "127.0.0.1:%d" % metrics_port,
                              "--aggregator", "tcp://127.0.0.1:%d" % upstream],
                             stdin=subprocess.DEVNULL, stdout=log, stderr=subprocess.STDOUT)
    sub = context.socket(zmq.SUB)
    sub.setsockopt(zmq.LINGER, 0)
    sub.setsockopt(zmq.SUBSCRIBE, b"reward")
    sub.connect("tcp://127.0.0.1:%d" % relay_port)
    genuine = set()         # every genuine SignedMessage we published
    received = []
    try:
        # The relay is connected (both ways) once a genuine reward reaches us
        accepted = None
        deadline = time.monotonic() + CONNECT_S
        while accepted is None and time.monotonic() < deadline and relay.poll() is None:
            frame = aggregator.seal(reward(pb2))
            genuine.add(frame)
            pub.send_multipart([b"reward", frame])
            if sub.poll(100):
                got = sub.recv_multipart()
                received.append(got)
                accepted = got[1]
        itest.check(accepted is not None, "the relay forwards a genuine reward", failures)
        if accepted is None:
            return 1
        before = metrics(url)

        # One of each, with the cause the receive path must give it
        oversize = bytearray(aggregator.seal(reward(pb2)))
        oversize += bytes(qv.MESSAGE_SIZE_CAP + 1 - len(oversize))
        bad = [
            ("malformed", [b"reward"]),                                 # one frame
            ("malformed", [b"reward", b"\xff not a SignedMessage"]),
            ("wrong-type", [b"rewards", aggregator.seal(reward(pb2))]),  # a longer topic
            ("bad-signature", [b"reward", aggregator.seal(reward(pb2), flip=True)]),
            ("unknown-key", [b"reward", stranger.seal(reward(pb2))]),
            ("wrong-role", [b"reward", Signer(pb2, scorer.key.encode(), "aggregator", 1)
                            .seal(reward(pb2))]),                       # scorer's key as aggregator
            ("unexpected-sender", [b"reward", scorer.seal(reward(pb2))]),
            ("replay", [b"reward", accepted]),
            ("batch-size", [b"reward", aggregator.seal(reward(pb2, batch=BATCH + 1))]),
            ("invalid-value", [b"reward", aggregator.seal(reward(pb2, value=float("nan")))]),
            ("wrong-type", [b"reward", aggregator.seal(reward(pb2), type_name="SCORE_BATCH")]),
            ("oversize", [b"reward", bytes(oversize)]),
        ]
        for _cause, frames in bad:
            pub.send_multipart(frames)
        # the aggregator's seq after the bad ones it signed: a jump of
        # SEQ_JUMP counts SEQ_JUMP - 1 (plus those bad ones, which also
        # took seq numbers and never reached a subscriber)
        signed_bad = aggregator.seq
        jump = aggregator.seal(reward(pb2), seq=signed_bad + SEQ_JUMP)
        genuine.add(jump)
        pub.send_multipart([b"reward", jump])
        sentinel = aggregator.seal(reward(pb2))
        genuine.add(sentinel)
        pub.send_multipart([b"reward", sentinel])
        deadline = time.monotonic() + SENTINEL_S
        while time.monotonic() < deadline:
            if sub.poll(100):
                got = sub.recv_multipart()
                received.append(got)
                if got[1] == sentinel:
                    break
        itest.check(received[-1][1] == sentinel, "the sentinel came through", failures)
        after = metrics(url)

        expected = {}
        for cause, _frames in bad:
            expected[cause] = expected.get(cause, 0) + 1
        grew = {cause: after.get('quintet_relay_dropped_total{cause="%s"}' % cause, 0)
                - before.get('quintet_relay_dropped_total{cause="%s"}' % cause, 0)
                for cause in expected}
        print("     drops by cause: %s (expected %s)" % (grew, expected))
        itest.check(grew == expected, "one counted drop per bad message, by its cause", failures)
        itest.check(all(frames[0] == b"reward" and frames[1] in genuine for frames in received),
                    "the subscriber got genuine messages only, byte for byte (%d)" % len(received),
                    failures)
        itest.check(any(frames[1] == jump for frames in received),
                    "the reward after the jump is forwarded", failures)
        gaps = after.get("quintet_relay_upstream_gaps_total", 0) \
            - before.get("quintet_relay_upstream_gaps_total", 0)
        # the bad ones the aggregator signed took seq numbers too: the jump
        # is counted from the last seq the relay accepted (the last probe)
        last_accepted = max(pb2.Envelope.FromString(pb2.SignedMessage.FromString(frames[1])
                                                    .envelope).seq
                            for frames in received if frames[1] != jump and frames[1] != sentinel)
        skipped = signed_bad + SEQ_JUMP - last_accepted - 1
        print("     upstream gaps counted: %d (the jump skipped %d seq numbers)" % (gaps, skipped))
        itest.check(gaps == skipped, "the relay counts the rewards it never received", failures)
        itest.check(relay.poll() is None, "the relay is still running", failures)
        relay.send_signal(signal.SIGTERM)
        try:
            rc = relay.wait(timeout=30)
        except subprocess.TimeoutExpired:
            rc = None
        itest.check(rc == 0, "the relay stops cleanly on SIGTERM (rc %s)" % rc, failures)
    finally:
        if relay.poll() is None:
            relay.kill()
            relay.wait()
        log.close()
        sub.close(0)
        pub.close(0)
        context.term()
        if failures:
            print(qr.tail(os.path.join(state, "relay.log")))
        if holder:
            holder.cleanup()
    if failures:
        print("%d check(s) failed" % len(failures))
        return 1
    print("bad input to the relay is a counted drop")
    return 0


if __name__ == "__main__":
    sys.exit(main())
