#!/usr/bin/python3
"""Forged judgments towards the collectors are dropped and counted, never a crash.

A small deployment runs; then the raters daemon is killed and its endpoint
taken over by this test, which holds the raters' daemon key (as a
compromised raters process would) and, for every tick the world publishes,
sends the collectors a properly enveloped JudgmentBatch mixing one genuine
judgment with forged ones:

    bad-signature    rater 1's answer with one signature byte flipped
    wrong-role       rater 2's key signing an answer in rater 1's name
    unknown-key      a key id no trust store holds
    invalid-value    a NaN preference, a preference of 1.5, situations
                     with a feature missing
    stale            a genuine answer to a query of 5 ticks ago
    replay           the genuine answer again, in the same batch
    bad-payload      bytes that do not decode, properly signed by rater 1

Checks: every collector keeps running and answering `quintetctl status`,
counts each forgery by its cause (status details judgments/<cause>, the
same figures as quintet_judgments_total{outcome}), and publishes on
`judgment` only the genuine judgments (each verified as a scorer would).
"""
import math
import os
import random
import subprocess
import sys
import time

import faultlib as itest     # args, state_dir, check: the suite's helpers

opts = itest.args(__doc__)
from quintet import build, trust, verifier as qv, deploy as qd  # noqa: E402
import nacl.signing  # noqa: E402
import zmq  # noqa: E402

BATCH = 4
RATERS = 3
FORGED_TICKS = 40
TIMEOUT_S = 60
CAUSES = ("bad-signature", "wrong-role", "unknown-key", "invalid-value", "stale", "replay",
          "bad-payload")


def signing_key(path):
    with open(path) as f:
        return nacl.signing.SigningKey(bytes.fromhex(f.read().strip()))


class Impostor:
    """Publishes on the raters' endpoint, signed with the raters' key."""

    def __init__(self, d, context):
        self.d = d
        self.pb2 = d.pb2
        self.daemon = signing_key(d.path("keys", "raters-1.key"))
        self.people = {r: signing_key(d.path("keys", "rater-%d.key" % r)) for r in (1, 2)}
        self.pub = context.socket(zmq.PUB)
        self.pub.setsockopt(zmq.LINGER, 0)
        self.pub.bind(d.replica[("raters", 1)].endpoint)
        self.epoch = random.getrandbits(64)
        self.seq = 0
        self.n_features = len(d.declaration["features"])
        self.last = None

    def judgment(self, rater, key, comparison_bytes, flip=False, key_id=None):
        signature = bytearray(key.sign(qv.JUDGMENT_CONTEXT + comparison_bytes).signature)
        if flip:
            signature[5] ^= 0x10
        return self.pb2.Judgment(comparison=comparison_bytes, signature=bytes(signature),
                                 key_id=key_id or trust.key_id_of(bytes(key.verify_key)))

    def comparison(self, rater, query_tick, index, preference=0.25, short=False):
        a = [0.5] * (self.n_features - (1 if short else 0))
        b = [0.0] * self.n_features
        return self.pb2.Comparison(rater=rater, query_tick=query_tick, query_index=index, a=a,
                                   b=b, preference=preference).SerializeToString()

    def batch(self, tick):
        pb2, one, two = self.pb2, self.people[1], self.people[2]
        q = tick - 1
        genuine = self.judgment(1, one, self.comparison(1, q, 0))
        judgments = [
            genuine,
            self.judgment(1, one, self.comparison(1, q, 1), flip=True),            # bad-signature
            self.judgment(1, two, self.comparison(1, q, 2)),                       # wrong-role
            self.judgment(1, one, self.comparison(1, q, 3), key_id="0123456789abcdef"),
            self.judgment(1, one, self.comparison(1, q, 4, preference=math.nan)),  # invalid-value
            self.judgment(1, one, self.comparison(1, q, 5, preference=1.5)),       # invalid-value
            self.judgment(1, one, self.comparison(1, q, 6, short=True)),           # invalid-value
            self.judgment(1, one, self.comparison(1, max(0, q - 5), 7)),           # stale
            genuine,                                                               # replay
            self.judgment(1, one, b"\xff\xff\xff"),                                # bad-payload
        ]
        return pb2.JudgmentBatch(query_tick=q, judgments=judgments)

    def send(self, tick):
        self.last = (tick, self.batch(tick).SerializeToString())
        self._publish(*self.last)

    def resend(self):
        if self.last:
            self._publish(*self.last)

    def _publish(self, tick, payload):
        self.seq += 1
        envelope = self.pb2.Envelope(role="raters", replica=1,
                                     key_id=trust.key_id_of(bytes(self.daemon.verify_key)),
                                     epoch=self.epoch, seq=self.seq, tick=tick,
                                     sent_ns=time.time_ns(),
                                     type=self.pb2.PayloadType.Value("JUDGMENT_BATCH"),
                                     payload=payload)
        data = envelope.SerializeToString()
        signed = self.pb2.SignedMessage(envelope=data,
                                        signature=self.daemon.sign(qv.SIGNATURE_CONTEXT + data).signature)
        self.pub.send_multipart([b"judgment", signed.SerializeToString()])


def status(d):
    result = subprocess.run([build.quintetctl_path(d.build_dir), "status", "--state-dir", d.state_dir,
                             "--json", "--timeout", "2000"], stdout=subprocess.PIPE,
                            stderr=subprocess.PIPE, text=True, timeout=30)
    import json
    rows = json.loads(result.stdout) if result.stdout.strip() else []
    return {row["name"]: row for row in rows}


def main():
    holder, state = itest.state_dir("forged-judgments", opts.keep)
    failures = []
    context = zmq.Context()
    try:
        with qd.Deployment(build_dir=opts.build_dir, state_dir=state, batch=BATCH, replicas=3,
                           seed=7, episodes=0, raters=RATERS) as d:
            d.setup()
            d.start()
            began = time.monotonic()
            while d.progress.max_tick < 10 and time.monotonic() - began < TIMEOUT_S:
                d.pump(0.1)
            itest.check(d.progress.max_tick >= 10, "the pipeline ticks (tick %d)" % d.progress.max_tick,
                        failures)
            d.kill("raters", 1)
            impostor = Impostor(d, context)
            world = context.socket(zmq.SUB)
            world.setsockopt(zmq.LINGER, 0)
            world.setsockopt(zmq.SUBSCRIBE, b"sensor")
            world.connect(d.replica[("world", 1)].endpoint)
            relayed = context.socket(zmq.SUB)
            relayed.setsockopt(zmq.LINGER, 0)
            relayed.setsockopt(zmq.SUBSCRIBE, b"judgment")
            for endpoint in d.endpoints("collector"):
                relayed.connect(endpoint)
            verifier = qv.Verifier(d.pb2, d.trust, d.batch)
            sent = set()
            published = []          # per relayed batch: [cause or None per judgment]
            began = time.monotonic()
            last_resend = time.monotonic()
            while len(sent) < FORGED_TICKS and time.monotonic() - began < TIMEOUT_S:
                d.pump(0.01)
                while world.poll(0):
                    opened = verifier.open(world.recv_multipart())
                    if opened and opened[1].tick not in sent:
                        sent.add(opened[1].tick)
                        impostor.send(opened[1].tick)
                while relayed.poll(0):
                    opened = verifier.open(relayed.recv_multipart())
                    if opened and opened[1].tick in sent:
                        published.append([verifier.open_judgment(j, impostor.n_features)[0]
                                          for j in opened[2].judgments])
                if time.monotonic() - last_resend > 0.2:
                    impostor.resend()       # slow joiners: the collectors reconnect to us
                    last_resend = time.monotonic()
            time.sleep(1.2)                 # status figures are refreshed once per status_ms
            rows = status(d)
            alive = [rep.name for rep in d.replicas_of("collector") if rep.alive()]
            world.close(0)
            relayed.close(0)
            impostor.pub.close(0)
            d.stop()

        print("     forged %d ticks; the collectors relayed %d of their batches" % (len(sent),
                                                                                   len(published)))
        itest.check(len(sent) >= FORGED_TICKS // 2, "the world kept ticking under the forgeries "
                    "(%d ticks)" % len(sent), failures)
        itest.check(len(alive) == 3, "every collector still runs (%s)" % alive, failures)
        for r in range(1, 4):
            row = rows.get("collector-%d" % r, {})
            details = {x["name"]: x["value"] for x in row.get("details", [])}
            counts = {k.split("/", 1)[1]: int(v) for k, v in details.items()
                      if k.startswith("judgments/")}
            print("     collector-%d judgments: %s" % (r, counts))
            itest.check(row.get("answered"), "collector-%d answers quintetctl status" % r, failures)
            #  Each forged batch holds one forgery of each cause (invalid-value:
            #  three), and the genuine answers of the real raters came before
            ticks = counts.get("unknown-key", 0)
            itest.check(ticks >= len(sent) // 2 and counts.get("accepted", 0) >= ticks,
                        "collector-%d took %d forged batches, accepted each genuine judgment"
                        % (r, ticks), failures)
            wrong = [c for c in CAUSES if counts.get(c, 0) != ticks * (3 if c == "invalid-value" else 1)]
            itest.check(ticks and not wrong, "collector-%d counted every forgery by its cause, "
                        "each once per batch (off: %s)" % (r, wrong or "none"), failures)
        bad = [p for p in published if p != [None]]
        itest.check(published and not bad, "the collectors relayed the genuine judgment alone "
                    "(%d batches, %d otherwise: %s)" % (len(published), len(bad), bad[:3]), failures)
    finally:
        context.term()
        if holder:
            holder.cleanup()
    if failures:
        print("%d check(s) failed" % len(failures))
        return 1
    print("every forged judgment was dropped and counted by cause")
    return 0


if __name__ == "__main__":
    sys.exit(main())
