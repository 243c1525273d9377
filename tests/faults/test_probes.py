#!/usr/bin/python3
"""A broken and a malicious moisture probe: the world model learns not to
trust it, and the actor still learns (performance >= 12).

Two runs of faultlib.EPISODES episodes: world/probe/0 = broken (random
readings), then world/probe/1 = malicious (always "watered"). The beliefs
of worldmodel-1 are read from its `belief` topic (verified); at the end the
faulty probe's learned reliability must be below every honest probe's.
"""
import sys

import zmq

import faultlib as fl

opts = fl.args(__doc__)
failures = []


class BeliefWatch:
    def __init__(self, d):
        self.d = d
        self.context = zmq.Context()
        self.sub = self.context.socket(zmq.SUB)
        self.sub.setsockopt(zmq.LINGER, 0)
        self.sub.setsockopt(zmq.RCVHWM, 100000)
        self.sub.setsockopt(zmq.SUBSCRIBE, b"belief")
        self.sub.connect(d.replica[("worldmodel", 1)].endpoint)
        self.verifier = fl.qd.Verifier(d.pb2, d.trust, d.batch)
        self.sensors = None
        self.reliability = None
        original = d.pump

        def pump(timeout_s):
            accepted = original(timeout_s)
            self.drain()
            return accepted
        d.pump = pump

    def drain(self):
        while True:
            try:
                frames = self.sub.recv_multipart(zmq.NOBLOCK)
            except zmq.Again:
                return
            opened = self.verifier.open(frames)
            if opened:
                _topic, _envelope, batch = opened
                self.sensors = list(batch.sensors)
                # mean over instances of the learned reliability per sensor
                n = len(batch.instances)
                self.reliability = [sum(b.reliability[s] for b in batch.instances) / n
                                    for s in range(len(batch.sensors))]

    def close(self):
        self.sub.close(0)
        self.context.term()


for probe, mode in ((0, "broken"), (1, "malicious")):
    watch = {}

    def on_start(d):
        watch["w"] = BeliefWatch(d)

    summary, _trace, _drops, _d = fl.run(
        opts.build_dir, "probe-%s" % mode, opts.keep, on_start=on_start,
        overrides={"world": {"world": {"probe": {str(probe): mode}}}})
    w = watch["w"]
    w.close()
    print("probe %d %s: %s" % (probe, mode, fl.fmt_summary(summary)), flush=True)
    print("     learned reliability: %s" % ", ".join(
        "%s %.3f" % (s, r) for s, r in zip(w.sensors or [], w.reliability or [])))
    moisture = [i for i, s in enumerate(w.sensors or []) if s.startswith("moisture")]
    fl.check(len(moisture) > probe, "probe %d among the sensors %s" % (probe, w.sensors), failures)
    if len(moisture) > probe:
        faulty = moisture[probe]
        honest = [w.reliability[i] for i in moisture if i != faulty]
        fl.check(w.reliability[faulty] < min(honest),
                 "probe %d %s: reliability %.3f below every honest probe's (min %.3f)"
                 % (probe, mode, w.reliability[faulty], min(honest)), failures)
    perf = summary["mean_performance_last100"]
    fl.check(perf is not None and perf >= fl.MIN_PERFORMANCE,
             "probe %d %s: performance %.2f >= %.0f" % (probe, mode, perf or float("nan"),
                                                       fl.MIN_PERFORMANCE), failures)
if failures:
    print("%d check(s) failed" % len(failures))
    sys.exit(1)
print("faulty probes detected; performance kept")
