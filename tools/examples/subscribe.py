#!/usr/bin/python3
"""A quintet client in another language: subscribe, verify, print rewards.

A client of the dashboard endpoint, on tools/python/quintet: the verifier
there needs nothing of quintet but the schema (quintet_pb2, generated from
proto/quintet.proto) and the trust store: Debian's python3-zmq,
python3-nacl and python3-protobuf.

    subscribe.py --state-dir state                  # the demo's dashboard endpoint
    subscribe.py --endpoint tcp://127.0.0.1:7900 --trust-dir state/trust \\
                 --proto-dir build/proto --count 100 --json

Every message is checked as the daemons check theirs (quintet.verifier:
README "Wire format", the C verifier's rules); a message that fails is
rejected and counted by cause, never printed; gaps and the relay's
duplicates are counted (quintet.stream).

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
import json
import os
import signal
import sys
import time

import zmq

HERE = os.path.dirname(os.path.abspath(__file__))
REPO = os.path.dirname(os.path.dirname(HERE))
sys.path.insert(0, os.path.join(REPO, "tools", "python"))

from quintet import build, stream, trust, verifier  # noqa: E402


def main(argv=None):
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--state-dir", help="a demo state dir: endpoints.json (dashboard) and trust/")
    parser.add_argument("--endpoint", help="the dashboard endpoint (default: from --state-dir)")
    parser.add_argument("--trust-dir", help="the trust store (default: STATE/trust)")
    parser.add_argument("--proto-dir", default=os.path.join(REPO, "build", "proto"),
                        help="where quintet_pb2.py is (default: build/proto)")
    parser.add_argument("--topic", action="append", choices=sorted(stream.TOPICS),
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
    client = stream.Client(build.load_pb2(proto_dir=opts.proto_dir), trust.TrustStore(trust_dir))
    context = zmq.Context()
    sub = context.socket(zmq.SUB)
    sub.setsockopt(zmq.LINGER, 0)
    sub.setsockopt(zmq.MAXMSGSIZE, 2 * verifier.MESSAGE_SIZE_CAP)
    for topic in opts.topic or stream.DEFAULT_TOPICS:
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
        record = stream.describe(*opened)
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
