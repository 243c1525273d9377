#!/usr/bin/python3
"""The quintet Python package's invariants, in one process, no daemon:

  * verifier: the C receive path's rules (common/qt_envelope.c): seq 0 and
    a seq seen are replays, one 64 or more below the highest too; a new
    epoch is admitted only when sent after the live one's first message,
    retires it for good, and an epoch sent before the floor never comes
    back; a stale message moves no replay state; a rater's key signs no
    envelope; a type that is not the topic's, a sender the topic does not
    name, a batch of the wrong size are dropped by cause;
  * stream: an exact copy of an accepted message (the relay's last-value
    cache) is a duplicate, not a rejection; a reward seq jump is a gap;
  * zpl: what render_zpl writes, quintetctl config reads back (czmq's
    parser: the tools never parse ZPL themselves).

Keys come from fixed seeds; nothing is timed.
"""
import argparse
import os
import sys
import tempfile
import time

import nacl.signing

HERE = os.path.dirname(os.path.abspath(__file__))
sys.path.insert(0, os.path.join(os.path.dirname(os.path.dirname(HERE)), "tools", "python"))

from quintet import build, stream, trust, verifier, zpl  # noqa: E402

BATCH = 2
failures = []


def check(condition, message):
    print("%s %s" % ("ok  " if condition else "FAIL", message), flush=True)
    if not condition:
        failures.append(message)


class Sender:
    """One replica's key: signs envelopes as README "Wire format" says."""

    def __init__(self, pb2, trust_dir, role, replica):
        self.pb2, self.role, self.replica = pb2, role, replica
        self.key = nacl.signing.SigningKey(bytes([len(role), replica]) * 16)
        public = bytes(self.key.verify_key)
        with open(os.path.join(trust_dir, "%s-%d.pub" % (role, replica)), "w") as f:
            f.write(public.hex() + "\n")
        self.key_id = trust.key_id_of(public)

    def frames(self, topic, payload, type_name, epoch, seq, sent_ns=None):
        envelope = self.pb2.Envelope(role=self.role, replica=self.replica, key_id=self.key_id,
                                     epoch=epoch, seq=seq, tick=seq,
                                     sent_ns=time.time_ns() if sent_ns is None else sent_ns,
                                     type=self.pb2.PayloadType.Value(type_name),
                                     payload=payload.SerializeToString())
        data = envelope.SerializeToString()
        signature = self.key.sign(verifier.SIGNATURE_CONTEXT + data).signature
        return [topic.encode(), self.pb2.SignedMessage(envelope=data,
                                                       signature=signature).SerializeToString()]


def reward_batch(pb2, n=BATCH):
    batch = pb2.RewardBatch(batch=BATCH)
    for _ in range(n):
        batch.instances.add(reward=0.5)
    return batch


def test_verifier(pb2, trust_dir):
    agg = Sender(pb2, trust_dir, "aggregator", 1)
    rater = Sender(pb2, trust_dir, "rater", 1)
    store = trust.TrustStore(trust_dir)
    v = verifier.Verifier(pb2, store, BATCH)
    good = reward_batch(pb2)

    def opened(frames):
        return v.open(frames) is not None

    check(not opened(agg.frames("reward", good, "REWARD_BATCH", 7, 0)), "seq 0 is a replay")
    first = agg.frames("reward", good, "REWARD_BATCH", 7, 100)
    check(opened(first), "a fresh message is accepted")
    check(not opened(first) and v.rejected["replay"] == 2, "the same message again is a replay")
    check(opened(agg.frames("reward", good, "REWARD_BATCH", 7, 50)),
          "a seq 50 below the highest, never seen, is accepted (out of order)")
    check(not opened(agg.frames("reward", good, "REWARD_BATCH", 7, 36)),
          "a seq 64 below the highest is a replay")
    old_epoch_ns = time.time_ns() - 10**9
    check(not opened(agg.frames("reward", good, "REWARD_BATCH", 8, 1, sent_ns=old_epoch_ns)),
          "an epoch sent before the live one's first message is a replay (cannot evict it)")
    check(opened(agg.frames("reward", good, "REWARD_BATCH", 9, 1)),
          "an epoch sent later (a restart) is admitted")
    check(not opened(agg.frames("reward", good, "REWARD_BATCH", 7, 101)),
          "the epoch it retired never comes back")
    stale = agg.frames("reward", good, "REWARD_BATCH", 9, 2, sent_ns=time.time_ns() - 120 * 10**9)
    check(not opened(stale) and v.rejected["stale"] == 1, "a send time 120 s back is stale")
    check(opened(agg.frames("reward", good, "REWARD_BATCH", 9, 2)),
          "a stale message moved no replay state: its seq is still new")
    check(not opened(rater.frames("reward", good, "REWARD_BATCH", 1, 1))
          and v.rejected["wrong-role"] == 1, "a rater's key signs no envelope (wrong-role)")
    check(not opened(agg.frames("eval", good, "REWARD_BATCH", 9, 3))
          and v.rejected["wrong-type"] == 1, "a type that is not the topic's is wrong-type")
    check(not opened(agg.frames("reward", reward_batch(pb2, 1), "REWARD_BATCH", 9, 4))
          and v.rejected["batch-size"] == 1, "a batch with too few instances is batch-size")
    nan = reward_batch(pb2)
    nan.instances[0].reward = float("nan")
    check(not opened(agg.frames("reward", nan, "REWARD_BATCH", 9, 5))
          and v.rejected["invalid-value"] == 1, "a NaN reward is invalid-value")
    world_key = Sender(pb2, trust_dir, "world", 1)
    v2 = verifier.Verifier(pb2, trust.TrustStore(trust_dir), BATCH)
    check(v2.open(world_key.frames("reward", good, "REWARD_BATCH", 1, 1)) is None
          and v2.rejected["unexpected-sender"] == 1,
          "the world's key on the aggregators' topic is unexpected-sender")
    forged = list(first)
    forged[1] = bytearray(forged[1])
    forged[1][-1] ^= 1
    check(v2.open([forged[0], bytes(forged[1])]) is None and v2.rejected["bad-signature"] == 1,
          "a flipped signature byte is bad-signature")


def test_stream(pb2, trust_dir):
    agg = Sender(pb2, trust_dir, "aggregator", 2)
    client = stream.Client(pb2, trust.TrustStore(trust_dir))
    first = agg.frames("reward", reward_batch(pb2), "REWARD_BATCH", 3, 1)
    client.open(first)
    client.open(first)
    client.open(agg.frames("reward", reward_batch(pb2), "REWARD_BATCH", 3, 4))
    summary = client.summary()
    check(summary["verified"] == 2 and summary["duplicates"] == 1 and not summary["rejected"],
          "the relay's copy of an accepted message is a duplicate, not a rejection (%s)" % summary)
    check(summary["gaps"] == 2, "a reward seq jump from 1 to 4 is 2 gaps")
    check(summary["longest_consecutive"] == 2, "a duplicate does not break the run")


def test_zpl(build_dir, tmp):
    tree = {"role": "scorer", "replica": 2, "quantile": 0.25, "learn": True,
            "path": "/a b/c", "upstream": {"rewarder": {"faults": 1, "1": "tcp://127.0.0.1:9"}}}
    path = os.path.join(tmp, "x.conf")
    with open(path, "w") as f:
        f.write(zpl.render_zpl("quintet", tree))
    wanted = {"quintet/role": "scorer", "quintet/replica": "2", "quintet/quantile": "0.25",
              "quintet/learn": "true", "quintet/path": "/a b/c",
              "quintet/upstream/rewarder/faults": "1",
              "quintet/upstream/rewarder/1": "tcp://127.0.0.1:9"}
    got = {key: build.config_value(build_dir, path, key) for key in wanted}
    check(got == wanted, "quintetctl config reads back what render_zpl wrote (%s)" % got)
    check(build.config_value(build_dir, path, "quintet/nothing") is None,
          "a key the file does not hold is None")


def main():
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--build-dir", required=True)
    opts = parser.parse_args()
    pb2 = build.load_pb2(opts.build_dir)
    with tempfile.TemporaryDirectory(prefix="quintet-pkg-") as tmp:
        trust_dir = os.path.join(tmp, "trust")
        os.mkdir(trust_dir)
        test_verifier(pb2, trust_dir)
        test_stream(pb2, trust_dir)
        test_zpl(opts.build_dir, tmp)
    print("%d failures" % len(failures))
    return 1 if failures else 0


if __name__ == "__main__":
    sys.exit(main())
