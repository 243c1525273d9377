#!/usr/bin/python3
"""kill -9 of a collector while judgments arrive loses none it acknowledged.

A small deployment (3 replicas of every role, the raters daemon with 6
people) runs; every JudgmentBatch collector-2 publishes on `judgment` is
recorded (the envelope verified, and each judgment verified the way the
collectors check it: signed by the rater it names over
"quintet-judgment-v1:" || the comparison bytes). Once some have been
published, collector-2 is killed with SIGKILL, the pipeline ticks on
without it, it is restarted with the same config and ticks on. Checks,
after the deployment stopped: every batch collector-2 published with
judgments (acknowledged: it went out) is the row log_index of its
run/collector-2/judgments.sqlite, for the same tick, holding exactly the
same Judgment messages (bytes as published); every published judgment
verifies; rows read before the kill are unchanged; rows after the restart
continue with higher ids; the collector published judgments both before
the kill and after the restart.
"""
import os
import signal
import sqlite3
import sys
import time

import itest

opts = itest.args(__doc__)
from quintet import verifier, deploy as qd  # noqa: E402
import zmq  # noqa: E402

BATCH = 4
RATERS = 6
VICTIM = 2
JUDGED_BEFORE_KILL = 3          # batches with judgments published before the kill
TICKS_WHILE_DOWN = 40
JUDGED_AFTER_RESTART = 3
PHASE_TIMEOUT_S = 60


def read_rows(path):
    """id -> (tick, topic, data) of a durable log, opened read-only."""
    db = sqlite3.connect("file:%s?mode=ro" % path, uri=True, timeout=5)
    try:
        return {row[0]: (row[1], row[2], bytes(row[3]))
                for row in db.execute("SELECT id, tick, topic, data FROM entry ORDER BY id")}
    finally:
        db.close()


class JudgmentWatcher:
    """Verified `judgment` batches of one collector replica, by log_index."""

    def __init__(self, d, replica):
        self.d = d
        self.context = zmq.Context()
        self.sub = self.context.socket(zmq.SUB)
        self.sub.setsockopt(zmq.LINGER, 0)
        self.sub.setsockopt(zmq.RCVHWM, 100000)
        self.sub.setsockopt(zmq.SUBSCRIBE, b"judgment")
        self.sub.connect(d.replica[("collector", replica)].endpoint)
        self.verifier = verifier.Verifier(d.pb2, d.trust, d.batch)
        self.published = {}         # log_index -> (tick, [Judgment bytes])
        self.empty = 0
        self.bad_judgments = []

    def drain(self):
        while True:
            try:
                frames = self.sub.recv_multipart(zmq.NOBLOCK)
            except zmq.Again:
                return
            opened = self.verifier.open(frames)
            if not opened:
                continue
            _topic, envelope, batch = opened
            if not batch.judgments:
                self.empty += 1
                continue
            for j in batch.judgments:
                cause, _comparison = self.verifier.open_judgment(j)
                if cause:
                    self.bad_judgments.append(cause)
            self.published[batch.log_index] = (envelope.tick,
                                               [j.SerializeToString() for j in batch.judgments])

    def close(self):
        self.sub.close(0)
        self.context.term()


def advance(d, watcher, until, label):
    began = time.monotonic()
    while not until():
        d.pump(0.1)
        watcher.drain()
        if time.monotonic() - began > PHASE_TIMEOUT_S:
            raise qd.DeploymentError("%s: not reached in %d s (tick %d)\n%s"
                                     % (label, PHASE_TIMEOUT_S, d.progress.max_tick, d.log_tails()))
    print("     %s: pipeline tick %d, %d judged batches seen" % (label, d.progress.max_tick,
                                                                  len(watcher.published)), flush=True)


def main():
    holder, state = itest.state_dir("judgment-kill", opts.keep)
    failures = []
    try:
        with qd.Deployment(build_dir=opts.build_dir, state_dir=state, batch=BATCH, replicas=3,
                           seed=5, episodes=BATCH * 1000, raters=RATERS, comparisons=100000,
                           per_tick=4,
                           # keep asking (min_sd 0): judgments must flow after the restart
                           # whatever the learner already knows (it may stop asking otherwise)
                           role_sections={"scorer": {"min_sd": 0}}) as d:
            d.setup()
            watcher = JudgmentWatcher(d, VICTIM)
            log_path = os.path.join(d.replica[("collector", VICTIM)].run_dir, "judgments.sqlite")
            try:
                d.start()
                advance(d, watcher, lambda: len(watcher.published) >= JUDGED_BEFORE_KILL,
                        "before the kill")
                watcher.drain()
                before = read_rows(log_path)
                published_before = dict(watcher.published)
                d.kill("collector", VICTIM, signal.SIGKILL)
                print("     kill -9 collector-%d; its log had %d rows" % (VICTIM, len(before)))
                start = d.progress.max_tick
                advance(d, watcher, lambda: d.progress.max_tick >= start + TICKS_WHILE_DOWN,
                        "collector-%d down" % VICTIM)
                at_kill = read_rows(log_path)
                d.restart("collector", VICTIM)
                seen = len(watcher.published)
                advance(d, watcher, lambda: len(watcher.published) >= seen + JUDGED_AFTER_RESTART,
                        "after the restart")
                watcher.drain()
            finally:
                watcher.close()
            pb2 = d.pb2
            d.stop()
            after = read_rows(log_path)

        published = watcher.published
        itest.check(watcher.verifier.rejected_total == 0 and not watcher.bad_judgments,
                    "every judgment batch of collector-%d verified, and each judgment by its "
                    "rater's key (%s, %s)" % (VICTIM, dict(watcher.verifier.rejected),
                                              watcher.bad_judgments or "none bad"), failures)
        itest.check(len(published_before) >= JUDGED_BEFORE_KILL,
                    "collector-%d published %d batches of judgments before the kill"
                    % (VICTIM, len(published_before)), failures)
        new = [i for i in published if i > max(at_kill or {0: None})]
        itest.check(len(new) > 0, "and %d after the restart, in new rows" % len(new), failures)
        missing, differ = [], []
        for index, (tick, judgments) in sorted(published.items()):
            row = after.get(index)
            if row is None or row[0] != tick:
                missing.append(index)
                continue
            stored = pb2.JudgmentBatch()
            stored.ParseFromString(row[2])
            if [j.SerializeToString() for j in stored.judgments] != judgments:
                differ.append(index)
        itest.check(published and not missing,
                    "every published batch of judgments is its log_index row, same tick "
                    "(%d published, %d not in the log)" % (len(published), len(missing)), failures)
        itest.check(not differ, "each row holds the very judgments published (%d differ)"
                    % len(differ), failures)
        itest.check(all(after.get(i) == row for i, row in before.items()),
                    "rows read before the kill are all there, unchanged (%d)" % len(before), failures)
        itest.check(all(at_kill.get(i) == row for i, row in before.items()),
                    "while collector-%d is down its log holds them too" % VICTIM, failures)
        topics = [row[1] for row in after.values()]
        itest.check(all(t.startswith("judgment ") for t in topics),
                    "rows name the raters' envelope they relay (topic \"judgment <epoch> <seq>\")",
                    failures)
    finally:
        if holder:
            holder.cleanup()
    if failures:
        print("%d check(s) failed" % len(failures))
        return 1
    print("no acknowledged judgment was lost to kill -9")
    return 0


if __name__ == "__main__":
    sys.exit(main())
