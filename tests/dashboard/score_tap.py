"""What the scorers themselves published, for the dashboard tests to check
the dashboards against: a SUB on every scorer replica's own `score` topic
(not through the relay), each message verified (quintet.verifier.Verifier),
its ScoreBatch.learning kept by (replica, tick), with the digest of the
signed frame (the relay must forward original frames). A thread of its own,
so that it keeps up while the test waits on something else; bounded memory
(the last KEEP ticks per replica).
"""
import collections
import hashlib
import threading
import time

import zmq

from quintet import verifier as qv

KEEP = 20000


def learning_of(payload):
    """ScoreBatch -> the learning as the dashboards describe it."""
    learning = payload.learning
    return {"features": list(learning.features), "weights": list(learning.weights),
            "comparisons": learning.comparisons, "asked": learning.asked,
            "budget": learning.budget, "per_tick": learning.per_tick,
            "voting_rights": list(learning.voting_rights),
            "rater_comparisons": list(learning.rater_comparisons),
            "excluded": list(learning.excluded), "quantile": payload.quantile,
            "raters": payload.raters}


class ScoreTap:
    def __init__(self, d):
        self.lock = threading.Lock()
        self.by_tick = collections.defaultdict(collections.OrderedDict)   # replica -> tick -> learning
        self.digests = collections.defaultdict(set)     # replica -> sha256 of frames it published
        self.count = collections.Counter()              # replica -> messages
        self.rejected = 0
        self.stopping = threading.Event()
        self.ready = threading.Event()
        self.thread = threading.Thread(target=self.run, name="score-tap", daemon=True,
                                       args=(d.endpoints("scorer"), d.pb2, d.trust, d.batch))
        self.thread.start()
        self.ready.wait(5)

    def run(self, endpoints, pb2, trust, batch):
        context = zmq.Context()
        sub = context.socket(zmq.SUB)
        sub.setsockopt(zmq.LINGER, 0)
        sub.setsockopt(zmq.RCVHWM, 100000)
        sub.setsockopt(zmq.SUBSCRIBE, b"score")
        for endpoint in endpoints:
            sub.connect(endpoint)
        verifier = qv.Verifier(pb2, trust, batch)
        self.ready.set()
        try:
            while not self.stopping.is_set():
                if not sub.poll(100):
                    continue
                for _ in range(1000):
                    try:
                        frames = sub.recv_multipart(zmq.NOBLOCK)
                    except zmq.Again:
                        break
                    opened = verifier.open(frames)
                    if opened is None or opened[0] != "score":
                        self.rejected += 1
                        continue
                    _topic, envelope, payload = opened
                    with self.lock:
                        ticks = self.by_tick[envelope.replica]
                        ticks[envelope.tick] = learning_of(payload)
                        while len(ticks) > KEEP:
                            ticks.popitem(last=False)
                        self.digests[envelope.replica].add(hashlib.sha256(frames[1]).digest())
                        self.count[envelope.replica] += 1
        finally:
            sub.close(0)
            context.term()

    def get(self, replica, tick, wait_s=5.0):
        """The learning scorer `replica` published at `tick` (waiting up to
        wait_s for it to arrive here), or None."""
        deadline = time.monotonic() + wait_s
        while True:
            with self.lock:
                found = self.by_tick.get(replica, {}).get(tick)
            if found is not None or time.monotonic() >= deadline:
                return found
            time.sleep(0.05)

    def published(self, replica, frame):
        """Whether `frame` (the SignedMessage bytes) is one scorer `replica` sent."""
        with self.lock:
            return hashlib.sha256(frame).digest() in self.digests.get(replica, ())

    def latest(self):
        """replica -> (tick, learning) of its newest message."""
        with self.lock:
            return {r: max(t.items()) for r, t in self.by_tick.items() if t}

    def close(self):
        self.stopping.set()
        self.thread.join(timeout=5)
