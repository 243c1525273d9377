"""One flooding endpoint cannot starve the control channel.

A loopback deployment (world + 3 replicas of every role, batch 4);
rewarder-3 is killed and its endpoint taken over by this test, which
publishes validly framed `proposal` messages under rewarder-3's key with a
flipped signature bit, as fast as it can, for FLOOD_S seconds: each one an
aggregator takes costs a signature check. Meanwhile `quintetctl status`
must still be answered by every aggregator (the loop serves control
requests on every pass, not only when the poller picks the control
socket), each aggregator verifies no more of the flood than the endpoint's
budget (2000 a second; beyond it the endpoint is not read for a while and
ZeroMQ drops what it sends), and the pipeline keeps ticking on the two
honest rewarders. Before the flood, frames of rewarder-1 captured by a
passive subscriber are republished on rewarder-3's endpoint: a message is
taken from an endpoint only if it is that endpoint's replica's, so they
are dropped (unexpected-sender) before their signature is checked.
"""
import json
import os
import subprocess
import sys
import threading
import time

import nacl.signing
import zmq

HERE = os.path.dirname(os.path.abspath(__file__))
sys.path.insert(0, os.path.join(os.path.dirname(HERE), "integration"))
import itest  # noqa: E402

FLOOD_S = 6.0
CAPTURED = 8
CAPTURE_TIMEOUT_S = 10.0
REPUBLISH_S = 2.0
FLOOD_WARMUP_S = 1.0        # the aggregators reconnect to the taken-over endpoint
STATUS_TIMEOUT_MS = 4000   # rewarder-3 is gone: every status call waits this long for it
STATUS_ROUNDS = 2
ENDPOINT_RATE = 2000        # QT_STAGE_ENDPOINT_RATE
ENDPOINT_BURST = 2000


def bad_frame(d, qd):
    from quintet import trust, verifier
    """A proposal sealed with rewarder-3's key, one signature bit flipped."""
    pb2 = d.pb2
    with open(d.path("keys", "rewarder-3.key")) as f:
        key = nacl.signing.SigningKey(bytes.fromhex(f.read().strip()))
    envelope = pb2.Envelope(role="rewarder", replica=3,
                            key_id=trust.key_id_of(bytes(key.verify_key)), epoch=12345, seq=1,
                            tick=1, sent_ns=time.time_ns(),
                            type=pb2.PayloadType.Value("PROPOSAL_BATCH"), payload=b"")
    data = envelope.SerializeToString()
    signature = bytearray(key.sign(verifier.SIGNATURE_CONTEXT + data).signature)
    signature[0] ^= 1
    return pb2.SignedMessage(envelope=data, signature=bytes(signature)).SerializeToString()


def main():
    args = itest.args("a flooding endpoint cannot starve the control channel")
    from quintet import deploy as qd
    failures = []

    def check(condition, message):
        itest.check(condition, message, failures)

    ctl = os.path.join(args.build_dir, "tools", "quintetctl", "quintetctl")
    holder, state = itest.state_dir("flood", args.keep)
    d = qd.Deployment(build_dir=args.build_dir, state_dir=state, batch=4, replicas=3,
                      episodes=4 * 100000, seed=1)
    context = zmq.Context()
    stop = threading.Event()
    sent = [0]

    def flood(pub, frame):
        while not stop.is_set():
            try:
                pub.send_multipart([b"proposal", frame], zmq.NOBLOCK)
                sent[0] += 1
            except zmq.Again:
                pass

    def status():
        result = subprocess.run([ctl, "status", "--state-dir", state, "--json", "--timeout",
                                 str(STATUS_TIMEOUT_MS)], stdout=subprocess.PIPE,
                                stderr=subprocess.PIPE, text=True, timeout=60)
        rows = json.loads(result.stdout) if result.stdout.strip() else []
        return {row["name"]: row for row in rows}

    flooder = pub = None
    try:
        d.setup()
        d.start()
        d.pump(2.0)
        endpoint = d.replica[("rewarder", 3)].endpoint
        # A passive subscriber captures rewarder-1's messages ...
        spy = context.socket(zmq.SUB)
        spy.setsockopt(zmq.LINGER, 0)
        spy.setsockopt(zmq.SUBSCRIBE, b"proposal")
        spy.connect(d.replica[("rewarder", 1)].endpoint)
        captured = []
        deadline = time.monotonic() + CAPTURE_TIMEOUT_S
        while len(captured) < CAPTURED and time.monotonic() < deadline:
            if spy.poll(100):
                captured.append(spy.recv_multipart())
            d.pump(0.01)
        spy.close(0)
        d.kill("rewarder", 3)
        pub = context.socket(zmq.PUB)
        pub.setsockopt(zmq.LINGER, 0)
        pub.bind(endpoint)
        # ... which rewarder-3's endpoint republishes: not rewarder-3's, refused
        replayed_until = time.monotonic() + REPUBLISH_S
        while time.monotonic() < replayed_until:
            for frames in captured:
                pub.send_multipart(frames)
            d.pump(0.05)
        rows = status()
        unexpected = [rows.get("aggregator-%d" % r, {}).get("drops", {}).get("unexpected-sender", 0)
                      for r in (1, 2, 3)]
        print("     %d captured frames of rewarder-1 republished on rewarder-3's endpoint for %.0f s: "
              "unexpected-sender drops %s" % (len(captured), REPUBLISH_S, unexpected))
        check(len(captured) == CAPTURED and all(u > 0 for u in unexpected),
              "another replica's frames on rewarder-3's endpoint are refused (unexpected-sender)")
        flooder = threading.Thread(target=flood, args=(pub, bad_frame(d, qd)), daemon=True)
        flooder.start()
        began = time.monotonic()
        d.pump(FLOOD_WARMUP_S)
        ticks_before = d.progress.ticks
        answered = []
        for _ in range(STATUS_ROUNDS):
            rows = status()
            answered.append(sum(1 for r in (1, 2, 3)
                                if rows.get("aggregator-%d" % r, {}).get("answered")))
            d.pump(0.2)
        flooded_s = time.monotonic() - began
        while time.monotonic() - began < FLOOD_S:
            d.pump(0.2)
        rows = status()
        stop.set()
        flooder.join(timeout=5)
        ticks = d.progress.ticks - ticks_before
        flooded_for = time.monotonic() - began
        drops = [rows.get("aggregator-%d" % r, {}).get("drops", {}).get("bad-signature", 0)
                 for r in (1, 2, 3)]
        bound = ENDPOINT_BURST + ENDPOINT_RATE * flooded_for
        print("     flood: %d frames in %.1f s (%.0f/s); aggregators answering status while "
              "flooded: %s of 3 per round; bad-signature drops %s; %d ticks meanwhile (%.1f/s)"
              % (sent[0], flooded_for, sent[0] / flooded_for, answered, drops, ticks,
                 ticks / flooded_for))
        check(answered == [3] * STATUS_ROUNDS,
              "every aggregator answers quintetctl status during the flood (%.1f s of it)" % flooded_s)
        check(all(0 < drop <= bound for drop in drops),
              "the aggregators verify the flood within the endpoint's budget (at most %.0f "
              "in %.1f s) and count it as bad-signature" % (bound, flooded_for))
        check(ticks > 0 and not d.dead(), "the pipeline keeps ticking on the honest rewarders")
    finally:
        stop.set()
        if flooder:
            flooder.join(timeout=5)
        if pub is not None:
            pub.close(0)
        # Our sockets are torn down while their peers still run: libzmq
        # aborted once (session_base.cpp:260, EAGAIN) when the aggregators'
        # connections dropped under a PUB still being closed after the flood
        context.term()
        d.stop()
        if holder:
            holder.cleanup()
    if failures:
        print("%d check(s) failed" % len(failures))
        return 1
    return 0


if __name__ == "__main__":
    sys.exit(main())
