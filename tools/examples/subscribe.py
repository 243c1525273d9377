#!/usr/bin/python3
"""A quintet client in another language: subscribe, verify, print rewards.

This file is the README's "Wire format" section as code, using nothing of
quintet but the schema (quintet_pb2, generated from proto/quintet.proto) and
the trust store: Debian's python3-zmq, python3-nacl and python3-protobuf.

    subscribe.py --state-dir state                  # the demo's dashboard endpoint
    subscribe.py --endpoint tcp://127.0.0.1:7900 --trust-dir state/trust \\
                 --proto-dir build/proto --count 100 --json

Every message is checked in the README's order: size cap, decode, key id in
the trust store and bound to the claimed role and replica, Ed25519 signature
over b"quintet-v1:" + the envelope bytes as received, replay window per (key,
epoch), freshness, type matching the topic, payload decode, values. A message
that fails is rejected and counted by cause, never printed. Gaps are counted:
an aggregator's seq jumping by more than one within an epoch (it signs only
rewards), or EvalRecord.episode jumping (the world's seq also counts its
sensor frames); the dashboard endpoint drops messages for a subscriber that
does not keep up.

Exit status: 0 when --count messages were verified (or on SIGINT without
--count), 1 when --timeout passed first, 2 on a usage error.
"""
import argparse
import collections
import json
import math
import os
import re
import signal
import sys
import time

import zmq
import nacl.encoding
import nacl.exceptions
import nacl.hash
import nacl.signing

CONTEXT = b"quintet-v1:"
SIZE_CAP = 4 * 1024 * 1024
REPLAY_WINDOW = 64
STALE_NS = 60 * 10**9
# topic -> (sending role, Envelope.type name, payload message)
TOPICS = {
    "reward": ("aggregator", "REWARD_BATCH", "RewardBatch"),
    "eval": ("world", "EVAL_RECORD", "EvalRecord"),
}


def key_id(public_key):
    """First 8 bytes of unkeyed BLAKE2b-256 of the public key, as hex."""
    return nacl.hash.blake2b(public_key, digest_size=32, encoder=nacl.encoding.RawEncoder)[:8].hex()


def load_trust(trust_dir):
    """key id -> (role, replica, VerifyKey), from <role>-<replica>.pub files."""
    trust = {}
    for name in sorted(os.listdir(trust_dir)):
        m = re.match(r"^([a-z]+)-([0-9]+)\.pub$", name)
        if m:
            with open(os.path.join(trust_dir, name)) as f:
                public = bytes.fromhex(f.read().strip())
            trust[key_id(public)] = (m.group(1), int(m.group(2)), nacl.signing.VerifyKey(public))
    return trust


class Client:
    def __init__(self, pb2, trust):
        self.pb2 = pb2
        self.trust = trust
        self.verified = 0
        self.run = 0                # verified in a row since the last rejection
        self.longest_run = 0
        self.rejected = {}
        self.gaps = 0               # messages missed: reward seq jumps, eval episode jumps
        self.last_episode = {}      # world key id -> (epoch, last EvalRecord.episode)
        self.windows = {}           # key id -> [epoch, highest seq, set of recent seqs]
        self.duplicates = 0         # exact copies of accepted messages (the relay's last-value cache)
        self.recent = {}            # key id -> signatures of its last accepted messages

    def reject(self, cause):
        self.rejected[cause] = self.rejected.get(cause, 0) + 1
        self.run = 0

    def open(self, frames):
        """(topic, envelope, payload), or None (rejected and counted)."""
        pb2 = self.pb2
        if len(frames) != 2:
            return self.reject("malformed")
        topic, data = frames[0].decode("ascii", "replace"), frames[1]
        if len(data) > SIZE_CAP:
            return self.reject("oversize")
        signed, envelope = pb2.SignedMessage(), pb2.Envelope()
        try:
            signed.ParseFromString(data)
            envelope.ParseFromString(signed.envelope)
        except Exception:
            return self.reject("malformed")
        entry = self.trust.get(envelope.key_id)
        if entry is None:
            return self.reject("unknown-key")
        role, replica, verify_key = entry
        if (role, replica) != (envelope.role, envelope.replica):
            return self.reject("wrong-role")
        try:
            # the exact bytes received: never re-serialise before verifying
            verify_key.verify(CONTEXT + signed.envelope, signed.signature)
        except (nacl.exceptions.BadSignatureError, ValueError, TypeError):
            return self.reject("bad-signature")
        window = self.windows.get(envelope.key_id)
        older_epoch = False
        if window is not None and window[0] != envelope.epoch:
            # a restarted sender: a new epoch retires the old, but only one
            # sent after it (frames captured before a restart never evict it)
            older_epoch = envelope.sent_ns <= window[3]
            window = None
        if envelope.seq == 0 or older_epoch or (window is not None and (
                envelope.seq in window[2] or envelope.seq + REPLAY_WINDOW <= window[1])):
            if signed.signature in self.recent.get(envelope.key_id, ()):
                # the very message already accepted, sent again by the relay's
                # last-value cache for a new subscriber: not an attack, not news
                self.duplicates += 1
                return None
            return self.reject("replay")
        if abs(time.time_ns() - envelope.sent_ns) > STALE_NS:
            return self.reject("stale")
        if topic not in TOPICS:
            return self.reject("wrong-type")
        want_role, type_name, payload_name = TOPICS[topic]
        if envelope.type != pb2.PayloadType.Value(type_name):
            return self.reject("wrong-type")
        if role != want_role:
            return self.reject("unexpected-sender")
        payload = getattr(pb2, payload_name)()
        try:
            payload.ParseFromString(envelope.payload)
        except Exception:
            return self.reject("bad-payload")
        if len(payload.instances) != payload.batch:
            return self.reject("batch-size")
        if topic == "reward":
            values = [i.reward for i in payload.instances]
        elif topic == "proposal":       # quintet-watch also reads the rewarders directly
            values = [v for i in payload.instances for v in i.values]
        else:
            values = [v for i in payload.instances for v in (i.performance, i.observed_return)]
        if not all(math.isfinite(v) for v in values):
            return self.reject("invalid-value")
        if window is None:
            window = [envelope.epoch, 0, set(), envelope.sent_ns]
        elif topic == "reward" and envelope.seq > window[1] + 1:
            # an aggregator signs only rewards: a seq jump is a missed reward
            self.gaps += envelope.seq - window[1] - 1
        if topic == "eval":
            # the world's seq also counts its sensor frames: episodes show eval gaps
            last = self.last_episode.get(envelope.key_id)
            if last is not None and last[0] == envelope.epoch and payload.episode > last[1] + 1:
                self.gaps += payload.episode - last[1] - 1
            self.last_episode[envelope.key_id] = (envelope.epoch, payload.episode)
        window[1] = max(window[1], envelope.seq)
        window[2] = {s for s in window[2] if s + REPLAY_WINDOW > window[1]} | {envelope.seq}
        self.windows[envelope.key_id] = window
        recent = self.recent.setdefault(envelope.key_id, collections.deque(maxlen=REPLAY_WINDOW))
        recent.append(signed.signature)
        self.verified += 1
        self.run += 1
        self.longest_run = max(self.longest_run, self.run)
        return topic, envelope, payload

    def summary(self):
        return {"verified": self.verified, "longest_consecutive": self.longest_run,
                "rejected": self.rejected, "gaps": self.gaps, "duplicates": self.duplicates}


def describe(topic, envelope, payload):
    """One JSON-able record per message."""
    record = {"topic": topic, "role": envelope.role, "replica": envelope.replica,
              "epoch": envelope.epoch, "seq": envelope.seq, "tick": envelope.tick,
              "episode": payload.episode, "batch": payload.batch}
    if topic == "reward":
        rewards = [i.reward for i in payload.instances]
        record.update(step=payload.step, done=payload.done,
                      mean_reward=sum(rewards) / len(rewards) if rewards else None,
                      replicas=[{"replica": r.replica, "used": r.used, "distance": r.distance}
                                for r in payload.replicas])
    else:
        perf = [i.performance for i in payload.instances]
        record.update(ticks=payload.ticks,
                      mean_performance=sum(perf) / len(perf) if perf else None,
                      mean_observed_return=sum(i.observed_return for i in payload.instances)
                      / max(1, len(payload.instances)))
    return record


def main(argv=None):
    here = os.path.dirname(os.path.abspath(__file__))
    repo = os.path.dirname(os.path.dirname(here))
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--state-dir", help="a demo state dir: endpoints.json (dashboard) and trust/")
    parser.add_argument("--endpoint", help="the dashboard endpoint (default: from --state-dir)")
    parser.add_argument("--trust-dir", help="the trust store (default: STATE/trust)")
    parser.add_argument("--proto-dir", default=os.path.join(repo, "build", "proto"),
                        help="where quintet_pb2.py is (default: build/proto)")
    parser.add_argument("--topic", action="append", choices=sorted(TOPICS),
                        help="topics (default: reward and eval)")
    parser.add_argument("--count", type=int, default=0, help="stop after N verified messages")
    parser.add_argument("--timeout", type=float, default=0, help="give up after S seconds")
    parser.add_argument("--json", action="store_true", help="one JSON object per message")
    parser.add_argument("--quiet", action="store_true", help="only the final summary")
    opts = parser.parse_args(argv)
    endpoint, trust_dir = opts.endpoint, opts.trust_dir
    if opts.state_dir:
        if not endpoint:
            with open(os.path.join(opts.state_dir, "endpoints.json")) as f:
                endpoint = json.load(f)["dashboard"][0]
        trust_dir = trust_dir or os.path.join(opts.state_dir, "trust")
    if not endpoint or not trust_dir:
        parser.error("give --state-dir, or --endpoint and --trust-dir")
    sys.path.insert(0, opts.proto_dir)
    import quintet_pb2

    client = Client(quintet_pb2, load_trust(trust_dir))
    context = zmq.Context()
    sub = context.socket(zmq.SUB)
    sub.setsockopt(zmq.LINGER, 0)
    sub.setsockopt(zmq.MAXMSGSIZE, 2 * SIZE_CAP)
    for topic in opts.topic or sorted(TOPICS):
        sub.setsockopt(zmq.SUBSCRIBE, topic.encode())   # PUB/SUB matches prefixes: exact names
    sub.connect(endpoint)
    stopping = []
    signal.signal(signal.SIGINT, lambda *_: stopping.append(1))
    signal.signal(signal.SIGTERM, lambda *_: stopping.append(1))
    deadline = time.monotonic() + opts.timeout if opts.timeout > 0 else None
    status = 0
    while not stopping and not (opts.count and client.verified >= opts.count):
        if deadline is not None and time.monotonic() >= deadline:
            status = 1
            break
        if not sub.poll(100):
            continue
        opened = client.open(sub.recv_multipart())
        if opened is None or opts.quiet:
            continue
        record = describe(*opened)
        if opts.json:
            print(json.dumps(record), flush=True)
        elif record["topic"] == "reward":
            print("reward  tick %-7d episode %-4d step %-3d mean %+.4f  from aggregator-%d "
                  "(seq %d), rewarders used %s" % (
                      record["tick"], record["episode"], record["step"], record["mean_reward"],
                      record["replica"], record["seq"],
                      [r["replica"] for r in record["replicas"] if r["used"]]), flush=True)
        else:
            print("eval    tick %-7d episode %-4d mean performance %.2f, observed return %.2f"
                  % (record["ticks"], record["episode"], record["mean_performance"],
                     record["mean_observed_return"]), flush=True)
    sub.close(0)
    context.term()
    summary = client.summary()
    print(json.dumps({"summary": summary}) if opts.json else
          "verified %(verified)d (longest run %(longest_consecutive)d), rejected %(rejected)s, "
          "gaps %(gaps)d" % summary, flush=True)
    return status


if __name__ == "__main__":
    sys.exit(main())
