#!/usr/bin/python3
"""Renews the fuzz targets' seed corpus (tests/fuzz/corpus/) from real frames.

Runs a short loopback deployment (world + 3 replicas of every role, batch
4 = FUZZ_BATCH), captures a few messages of every topic and a real control
reply, and writes per target:

  receive/  each captured message re-sealed with the fuzz targets' fixed key
            of its role (fuzz_keys.c: seed BLAKE2b-256("quintet-fuzz:<role>-1")),
            and the original frame (signed by the run's own key)
  signed/   [topic index] + the real payload bytes, and [9] + the real
            envelope bytes (re-keyed)
  control/  [1] + a real ControlReply and a real request's ControlMessage,
            [0] + the raw request frame
  config/   the run's replica configs
  wire/     ZMTP byte streams as a peer writes them: [0] + a PUB's greeting,
            READY and [topic][frame] messages (the receive seeds) for the
            SUB socket; [1] + a REQ's greeting, READY and a status request
            for worldmodel-1 signed by the fuzz control key for the control
            ROUTER socket; ZMTP 3.0, 3.1 and a 2.0 greeting

    /usr/bin/python3 tests/fuzz/make_corpus.py --build-dir build
"""
import argparse
import os
import random
import re
import shutil
import struct
import subprocess
import sys
import tempfile
import time

import nacl.hash
import nacl.encoding
import nacl.signing
import zmq

HERE = os.path.dirname(os.path.abspath(__file__))
SOURCE = os.path.dirname(os.path.dirname(HERE))
# The seed's first byte indexes fuzz_topics in fuzz_keys.c: same order here.
TOPICS = ("sensor", "obs", "belief", "score", "proposal", "reward", "action", "eval", "control",
          "query", "judgment")
sys.path.insert(0, os.path.join(SOURCE, "tools", "python"))
from quintet import topology, trust, verifier  # noqa: E402
# Who signs each topic: the topology's publisher (the operator's control key
# for the control channel)
PUBLISHER = tuple(topology.publisher(topology.read(), topic) or "control"
                  for topic in TOPICS)
RAW_ENVELOPE = 9
# fuzz_signed's first byte per topic: 0..8 as TOPICS, then 9 is the raw
# envelope, so query and judgment are 10 and 11
SIGNED_MODE = {topic: (index if index < RAW_ENVELOPE else index + 1) for index, topic in enumerate(TOPICS)}
CAPTURED = tuple(t for t in TOPICS if t != "control")    # from the wire; control is asked for
PER_TOPIC = 3
CAPTURE_TIMEOUT_S = 30.0


def fuzz_topics():
    """fuzz_topics of fuzz_keys.c, in its order."""
    with open(os.path.join(HERE, "fuzz_keys.c")) as f:
        text = f.read()
    body = re.search(r"fuzz_topics \[\] = \{(.*?)\};", text, re.S).group(1)
    return tuple(re.findall(r'"([a-z]+)"', body))


# A ZMTP 3.x / 2.0 signature as libzmq writes it (a ZMTP 1.0 length of 1
# with the 0xff escape: libzmq takes a zero length for a ZMTP 1.0 peer)
SIGNATURE = b"\xff" + b"\x00" * 7 + b"\x01\x7f"


def zmtp_greeting(minor=0):
    """A ZMTP 3.x greeting: NULL mechanism, as client."""
    return SIGNATURE + bytes([3, minor]) + b"NULL".ljust(20, b"\x00") + b"\x00" * 32


def zmtp_frame(body, more=False, command=False):
    flags = (1 if more else 0) | (4 if command else 0)
    if len(body) > 255:
        return bytes([flags | 2]) + struct.pack(">Q", len(body)) + body
    return bytes([flags, len(body)]) + body


def zmtp_ready(socket_type):
    return zmtp_frame(b"\x05READY\x0bSocket-Type" + struct.pack(">I", len(socket_type)) + socket_type,
                      command=True)


def zmtp_message(*parts):
    return b"".join(zmtp_frame(part, more=k < len(parts) - 1) for k, part in enumerate(parts))


def zmtp2_stream(socket_type, messages):
    """ZMTP 2.0: signature, revision 1, socket type, empty identity, frames."""
    out = SIGNATURE + bytes([1, socket_type]) + b"\x00\x00"
    for parts in messages:
        for k, part in enumerate(parts):
            flags = 1 if k < len(parts) - 1 else 0
            out += (bytes([flags | 2]) + struct.pack(">Q", len(part)) if len(part) > 255
                    else bytes([flags, len(part)])) + part
    return out


def fuzz_key(role):
    seed = nacl.hash.blake2b(("quintet-fuzz:%s-1" % role).encode(), digest_size=32,
                             encoder=nacl.encoding.RawEncoder)
    return nacl.signing.SigningKey(seed)


def seal(pb2, qd, role, envelope, seq=1):
    """The envelope as role-1 of the fuzz keys, signed over its bytes."""
    key = fuzz_key(role)
    envelope.role = role
    envelope.replica = 1
    envelope.key_id = trust.key_id_of(bytes(key.verify_key))
    envelope.seq = seq
    data = envelope.SerializeToString()
    signature = key.sign(verifier.SIGNATURE_CONTEXT + data).signature
    return data, pb2.SignedMessage(envelope=data, signature=signature).SerializeToString()


def write(path, data):
    with open(path, "wb") as f:
        f.write(data)


def main():
    parser = argparse.ArgumentParser(description="renew the fuzz seed corpus from a real run")
    parser.add_argument("--build-dir", default=os.path.join(SOURCE, "build"))
    parser.add_argument("--out", default=os.path.join(HERE, "corpus"))
    args = parser.parse_args()
    if fuzz_topics() != TOPICS:
        print("make_corpus.py: TOPICS %s differ from fuzz_topics in fuzz_keys.c %s" % (TOPICS, fuzz_topics()))
        return 1
    from quintet import deploy as qd
    state = tempfile.mkdtemp(prefix="quintet-corpus-")
    d = qd.Deployment(build_dir=args.build_dir, state_dir=state, batch=4, replicas=3,
                      episodes=4 * 100000, seed=1)
    captured = {topic: [] for topic in TOPICS}
    context = zmq.Context()
    try:
        d.setup()
        pb2 = d.pb2
        sub = context.socket(zmq.SUB)
        sub.setsockopt(zmq.LINGER, 0)
        for topic in CAPTURED:
            sub.setsockopt(zmq.SUBSCRIBE, topic.encode())
        for role in qd.ROLES:
            for endpoint in d.endpoints(role):
                sub.connect(endpoint)
        d.start()
        deadline = time.monotonic() + CAPTURE_TIMEOUT_S
        while time.monotonic() < deadline and any(len(captured[t]) < PER_TOPIC for t in CAPTURED):
            if sub.poll(100):
                topic, frame = sub.recv_multipart()
                topic = topic.decode()
                if topic in captured and len(captured[topic]) < PER_TOPIC:
                    captured[topic].append(frame)
            d.pump(0.001)
        sub.close(0)
        # a real control request and reply (worldmodel-1's)
        with open(d.path("keys", "control-1.key")) as f:
            control = nacl.signing.SigningKey(bytes.fromhex(f.read().strip()))
        request = pb2.ControlMessage(request=pb2.ControlRequest(command="status", nonce=os.urandom(16),
                                                                target_role="worldmodel", target_replica=1))
        envelope = pb2.Envelope(role="control", replica=1, key_id=trust.key_id_of(bytes(control.verify_key)),
                                epoch=random.getrandbits(64), seq=1, tick=0, sent_ns=time.time_ns(),
                                type=pb2.PayloadType.Value("CONTROL"),
                                payload=request.SerializeToString())
        data = envelope.SerializeToString()
        frame = pb2.SignedMessage(envelope=data, signature=control.sign(
            verifier.SIGNATURE_CONTEXT + data).signature).SerializeToString()
        import json
        with open(d.path("endpoints.json")) as f:
            endpoint = json.load(f)["control"]["worldmodel-1"]
        req = context.socket(zmq.REQ)
        req.setsockopt(zmq.LINGER, 0)
        req.connect(endpoint)
        req.send(frame)
        if req.poll(5000):
            captured["control"].append(req.recv())
        req.close(0)
        captured["control"].append(frame)
        configs = sorted(os.listdir(d.path("etc")))
        config_texts = [open(d.path("etc", name), "rb").read() for name in configs[::6]]
    finally:
        d.stop()
        context.term()
    for target in ("receive", "signed", "control", "config", "wire"):
        path = os.path.join(args.out, target)
        shutil.rmtree(path, ignore_errors=True)
        os.makedirs(path)
    for index, topic in enumerate(TOPICS):
        for k, frame in enumerate(captured[topic]):
            signed = pb2.SignedMessage()
            signed.ParseFromString(frame)
            envelope = pb2.Envelope()
            envelope.ParseFromString(signed.envelope)
            name = "%s-%d" % (topic, k)
            if topic == "control":
                mode = b"\x01"
                write(os.path.join(args.out, "control", name + "-payload"), mode + envelope.payload)
                write(os.path.join(args.out, "control", name + "-raw"), b"\x00" + frame)
                write(os.path.join(args.out, "signed", name), bytes([SIGNED_MODE["control"]])
                      + envelope.payload)
                continue
            data, resealed = seal(pb2, qd, PUBLISHER[index], envelope)
            write(os.path.join(args.out, "receive", name), resealed)
            write(os.path.join(args.out, "receive", name + "-original"), frame)
            write(os.path.join(args.out, "signed", name), bytes([SIGNED_MODE[topic]]) + envelope.payload)
            write(os.path.join(args.out, "signed", name + "-envelope"), bytes([RAW_ENVELOPE]) + data)
    # wire: the re-sealed frames as a PUB writes them, one stream per topic
    # and one with every topic; the status request as a REQ writes it
    every = []
    seq = 1
    for index, topic in enumerate(TOPICS):
        if topic == "control":
            continue
        stream = []
        for frame in captured[topic]:
            envelope = pb2.Envelope.FromString(pb2.SignedMessage.FromString(frame).envelope)
            seq += 1
            stream.append((topic.encode(), seal(pb2, qd, PUBLISHER[index], envelope, seq)[1]))
        if not stream:
            continue
        every.append(stream[0])
        minor = index % 2
        write(os.path.join(args.out, "wire", "sub-%s" % topic), b"\x00" + zmtp_greeting(minor)
              + zmtp_ready(b"PUB") + b"".join(zmtp_message(*parts) for parts in stream))
    write(os.path.join(args.out, "wire", "sub-every-topic"), b"\x00" + zmtp_greeting(1) + zmtp_ready(b"PUB")
          + b"".join(zmtp_message(*parts) for parts in every))
    write(os.path.join(args.out, "wire", "sub-zmtp2"), b"\x00" + zmtp2_stream(1, every[:3]))
    envelope = pb2.Envelope.FromString(pb2.SignedMessage.FromString(captured["control"][-1]).envelope)
    _, control_request = seal(pb2, qd, "control", envelope)
    write(os.path.join(args.out, "wire", "router-status"), b"\x01" + zmtp_greeting(1) + zmtp_ready(b"REQ")
          + zmtp_message(b"", control_request))
    write(os.path.join(args.out, "wire", "router-dealer-junk"), b"\x01" + zmtp_greeting(0)
          + zmtp_ready(b"DEALER") + zmtp_message(b"", b"\xff junk") + zmtp_message(b"no empty frame"))
    write(os.path.join(args.out, "wire", "router-zmtp2"), b"\x01" + zmtp2_stream(3, [(b"", control_request)]))
    for k, text in enumerate(config_texts):
        write(os.path.join(args.out, "config", "replica-%d.conf" % k), text)
    counts = {t: len(os.listdir(os.path.join(args.out, t)))
              for t in ("receive", "signed", "control", "config", "wire")}
    print("seed corpus in %s: %s (captured %s)" % (args.out, counts,
                                                  {t: len(v) for t, v in captured.items()}))
    shutil.rmtree(state, ignore_errors=True)
    return 0 if all(captured[t] for t in TOPICS) else 1


if __name__ == "__main__":
    sys.exit(main())
