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
rewards), or EvalRecord.episodes (episodes finished so far, world-wide)
jumping by more than the record's results (the world's seq also counts its
sensor frames); the dashboard endpoint drops messages for a subscriber that
does not keep up.

Every per-instance message carries the instance's own clock (InstanceClock:
episode, step, done, terminated, idle): instances run their episodes
independently, and an idle instance (no episode running: the world has
finished its episodes) is ignored. An EvalRecord comes on a tick where
episodes ended, with one result per ended episode (instance, episode,
hidden performance, observed return, steps).

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
    # the scorers' ScoreBatch, for what Charlie learned (ScoreBatch.learning);
    # the relay sends at most one per scorer and interval, the latest
    "score": ("scorer", "SCORE_BATCH", "ScoreBatch"),
}
DEFAULT_TOPICS = ("eval", "reward")


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
        self.gaps = 0               # missed: rewards (seq jumps), episodes (EvalRecord.episodes jumps)
        self.last_episodes = {}     # world key id -> (epoch, last EvalRecord.episodes)
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
        if topic == "eval":
            # the episodes that ended on this tick, instances in increasing order
            instances = [r.instance for r in payload.results]
            if (len(instances) > payload.batch or instances != sorted(set(instances))
                    or (instances and instances[-1] >= payload.batch)
                    or payload.episodes < len(instances)):
                return self.reject("batch-size")
            values = [v for r in payload.results for v in (r.performance, r.observed_return)]
        elif len(payload.instances) != payload.batch:
            return self.reject("batch-size")
        elif topic == "reward":
            values = [i.reward for i in payload.instances]
        elif topic == "score":
            learning = payload.learning
            if (len(learning.weights) != len(learning.features)
                    or len(learning.voting_rights) != payload.raters
                    or len(learning.rater_comparisons) != payload.raters
                    or any(not 1 <= r <= payload.raters for r in learning.excluded)):
                return self.reject("invalid-value")
            values = [v for i in payload.instances for v in (i.mean, i.q10, i.q50, i.q90)]
            values += list(learning.weights) + list(learning.voting_rights) + [payload.quantile]
        else:                           # proposal: quintet-watch also reads the rewarders directly
            values = [v for i in payload.instances for v in i.values]
        if not all(math.isfinite(v) for v in values):
            return self.reject("invalid-value")
        if window is None:
            window = [envelope.epoch, 0, set(), envelope.sent_ns]
        elif topic == "reward" and envelope.seq > window[1] + 1:
            # an aggregator signs only rewards: a seq jump is a missed reward
            self.gaps += envelope.seq - window[1] - 1
        if topic == "eval":
            # the world's seq also counts its sensor frames: EvalRecord.episodes
            # shows eval gaps (it counts this record's results too)
            last = self.last_episodes.get(envelope.key_id)
            if last is not None and last[0] == envelope.epoch and \
                    payload.episodes > last[1] + len(payload.results):
                self.gaps += payload.episodes - last[1] - len(payload.results)
            if last is None or last[0] != envelope.epoch or payload.episodes > last[1]:
                self.last_episodes[envelope.key_id] = (envelope.epoch, payload.episodes)
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


def clocks_summary(instances):
    """What the per-instance clocks say: instances running an episode (not
    idle), those whose episode ends on this tick, the range of their
    episodes."""
    active = [i.clock for i in instances if not i.clock.idle]
    episodes = [c.episode for c in active]
    return {"active": len(active), "done": sum(1 for c in active if c.done),
            "episodes": [min(episodes), max(episodes)] if episodes else None}


def describe(topic, envelope, payload):
    """One JSON-able record per message."""
    record = {"topic": topic, "role": envelope.role, "replica": envelope.replica,
              "epoch": envelope.epoch, "seq": envelope.seq, "tick": envelope.tick,
              "batch": payload.batch}
    if topic == "score":
        learning = payload.learning
        means = [i.mean for i in payload.instances if not i.clock.idle]
        record.update(clocks_summary(payload.instances))
        record.update(
            quantile=payload.quantile, raters=payload.raters,
            mean_score=sum(means) / len(means) if means else None,
            # what Charlie learned so far: the weight of each declared feature
            # (the raters' weights aggregated, reward units), the comparisons
            # learned from / asked / the budget, each rater's voting right
            # (raters 1..R) and judgments, the raters without a voting right
            learning={"features": list(learning.features), "weights": list(learning.weights),
                      "comparisons": learning.comparisons, "asked": learning.asked,
                      "budget": learning.budget, "per_tick": learning.per_tick,
                      "voting_rights": list(learning.voting_rights),
                      "rater_comparisons": list(learning.rater_comparisons),
                      "excluded": list(learning.excluded),
                      "learn_seconds": learning.learn_seconds})
    elif topic in ("reward", "proposal"):
        # idle instances (no episode running) are ignored, as every consumer does
        if topic == "reward":
            rewards = [i.reward for i in payload.instances if not i.clock.idle]
        else:
            rewards = [i.values[0] for i in payload.instances if not i.clock.idle and i.values]
        record.update(clocks_summary(payload.instances))
        record["mean_reward"] = sum(rewards) / len(rewards) if rewards else None
        if topic == "reward":
            record["replicas"] = [{"replica": r.replica, "used": r.used, "distance": r.distance,
                                   "status": r.status, "weight": r.weight}
                                  for r in payload.replicas]
    else:
        results = list(payload.results)
        n = len(results)
        record.update(env=payload.env, ticks=payload.ticks, episodes=payload.episodes,
                      results=[{"instance": r.instance, "episode": r.episode,
                                "performance": r.performance,
                                "observed_return": r.observed_return, "steps": r.steps}
                               for r in results],
                      mean_performance=sum(r.performance for r in results) / n if n else None,
                      mean_observed_return=sum(r.observed_return for r in results) / n
                      if n else None)
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
                        help="topics (default: reward and eval; score: the scorers' learning)")
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
    for topic in opts.topic or DEFAULT_TOPICS:
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
        elif record["topic"] == "score":
            learning = record["learning"]
            print("score   tick %-7d scorer-%d (seq %d): weights %s, comparisons %d learned / %d "
                  "asked / budget %d, excluded raters %s" % (
                      record["tick"], record["replica"], record["seq"],
                      ", ".join("%s %+.4g" % fw for fw in zip(learning["features"],
                                                              learning["weights"])),
                      learning["comparisons"], learning["asked"], learning["budget"],
                      learning["excluded"] or "none"), flush=True)
        elif record["topic"] == "reward":
            print("reward  tick %-7d %2d instances running, %2d ending  mean %s  from "
                  "aggregator-%d (seq %d), rewarders used %s" % (
                      record["tick"], record["active"], record["done"],
                      "%+.4f" % record["mean_reward"] if record["mean_reward"] is not None
                      else "-", record["replica"], record["seq"],
                      [r["replica"] for r in record["replicas"] if r["used"]]), flush=True)
        else:
            print("eval    %s tick %-7d %2d episodes ended (%d so far): mean performance %.2f, "
                  "observed return %.2f" % (record["env"], record["ticks"], len(record["results"]),
                                            record["episodes"], record["mean_performance"],
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
