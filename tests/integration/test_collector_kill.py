#!/usr/bin/python3
"""kill -9 of one collector mid-run loses none of its persisted readings.

A short deployment (3 replicas of every role) runs; while it ticks, the
durable log of collector-1 (run/collector-1/readings.sqlite, opened
read-only) is read and its rows recorded, and every observation collector-1
publishes is recorded from its `obs` topic (verified like any signed
message). Then collector-1 is killed with SIGKILL, the pipeline ticks on
without it (n - f collectors suffice), it is restarted with the same config,
and ticks on. Checks: every row read before the kill is still there with
identical contents; every log_index it published is a row of the log, for
the same tick; rows written after the restart continue with higher ids and
later ticks; the pipeline kept ticking throughout. Each row holds the
world's SensorFrame as received: it decodes as one of the deployment's
environment (SensorFrame.env, B instances of Readings with their clocks),
and the observations collector-1 published from it carry the very same
readings (clock, action, observed reward, sensor values) per instance.
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

BATCH = 8
TICKS_BEFORE_KILL = 150
TICKS_WHILE_DOWN = 60
TICKS_AFTER_RESTART = 150
PHASE_TIMEOUT_S = 45


def read_rows(path):
    db = sqlite3.connect("file:%s?mode=ro" % path, uri=True, timeout=5)
    try:
        columns = [row[1] for row in db.execute("PRAGMA table_info(entry)")]
        rows = {row[0]: tuple(row) for row in
                db.execute("SELECT %s FROM entry ORDER BY id" % ", ".join(columns))}
    finally:
        db.close()
    return columns, rows


def readings_of(payload):
    """Per instance: (episode, step, done, terminated, idle, action, observed
    reward, sensor values) of a SensorFrame or ObservationBatch."""
    return [(r.clock.episode, r.clock.step, r.clock.done, r.clock.terminated, r.clock.idle,
             r.action, r.observed_reward, bytes(r.values)) for r in payload.instances]


class ObsWatcher:
    """Verified obs messages of one collector replica: log_index -> tick."""

    def __init__(self, deployment, replica):
        self.d = deployment
        self.context = zmq.Context()
        self.sub = self.context.socket(zmq.SUB)
        self.sub.setsockopt(zmq.LINGER, 0)
        self.sub.setsockopt(zmq.RCVHWM, 100000)
        self.sub.setsockopt(zmq.SUBSCRIBE, b"obs")
        self.sub.connect(deployment.replica[("collector", replica)].endpoint)
        self.verifier = verifier.Verifier(deployment.pb2, deployment.trust, deployment.batch)
        self.published = {}
        self.readings = {}      # log_index -> the published readings, per instance
        self.sample = None      # one raw message, for the verifier's own check

    def drain(self):
        while True:
            try:
                frames = self.sub.recv_multipart(zmq.NOBLOCK)
            except zmq.Again:
                return
            if self.sample is None:
                self.sample = frames
            opened = self.verifier.open(frames)
            if opened:
                _topic, envelope, payload = opened
                self.published[payload.log_index] = envelope.tick
                self.readings[payload.log_index] = readings_of(payload)

    def close(self):
        self.sub.close(0)
        self.context.term()


def advance(d, watcher, ticks, label):
    """Pumps until the pipeline's reward tick has advanced by `ticks`."""
    start = d.progress.max_tick
    began = time.monotonic()
    while d.progress.max_tick < start + ticks:
        d.pump(0.1)
        watcher.drain()
        if time.monotonic() - began > PHASE_TIMEOUT_S:
            raise qd.DeploymentError("%s: the pipeline went from tick %d to %d in %d s\n%s"
                                     % (label, start, d.progress.max_tick, PHASE_TIMEOUT_S,
                                        d.log_tails()))
    rate = (d.progress.max_tick - start) / (time.monotonic() - began)
    print("     %s: tick %d -> %d (%.0f ticks/s)" % (label, start, d.progress.max_tick, rate),
          flush=True)
    return rate


def main():
    holder, state = itest.state_dir("collector-kill", opts.keep)
    failures = []
    try:
        with qd.Deployment(build_dir=opts.build_dir, state_dir=state, batch=BATCH, replicas=3,
                           seed=3, episodes=BATCH * 1000) as d:
            d.setup()
            watcher = ObsWatcher(d, 1)
            try:
                d.start()
                log_path = os.path.join(d.replica[("collector", 1)].run_dir, "readings.sqlite")
                advance(d, watcher, TICKS_BEFORE_KILL, "before the kill")

                columns, before = read_rows(log_path)
                watcher.drain()
                published_before = dict(watcher.published)
                print("     schema: entry(%s)" % ", ".join(columns))
                print("     collector-1 log before the kill: %d rows (ids %d..%d), %d observations "
                      "seen published" % (len(before), min(before), max(before),
                                          len(published_before)))
                d.kill("collector", 1, signal.SIGKILL)
                killed_at = d.progress.max_tick
                print("     kill -9 collector-1 at pipeline tick %d" % killed_at)

                rate_down = advance(d, watcher, TICKS_WHILE_DOWN, "collector-1 down")
                _columns, at_kill = read_rows(log_path)
                print("     collector-1 log while it is down: %d rows" % len(at_kill))
                d.restart("collector", 1)
                print("     restarted collector-1 (same config, port, key, state dir)")
                rate_after = advance(d, watcher, TICKS_AFTER_RESTART, "after the restart")
                watcher.drain()
            finally:
                watcher.close()
            sample, watcher_rejected = watcher.sample, watcher.verifier.rejected_total
            published_readings = dict(watcher.readings)
            env, batch = d.env, d.batch
            pb2, trust = d.pb2, d.trust
            d.stop()
            columns, after = read_rows(log_path)

        # The client-side verifier rejects what it should (else its "verified"
        # counts would mean nothing)
        fresh = verifier.Verifier(pb2, trust, BATCH)
        topic, raw = sample
        tampered = bytearray(raw)
        tampered[len(tampered) // 2] ^= 0x01
        causes = [fresh.open([topic, bytes(tampered)]) is None,
                  fresh.open([topic, raw]) is not None,
                  fresh.open([topic, raw]) is None and fresh.rejected["replay"] == 1,
                  fresh.open([b"eval", raw]) is None]
        itest.check(all(causes), "python verifier: accepts a genuine obs message, rejects it "
                    "tampered, replayed and on the wrong topic (%s)" % dict(fresh.rejected), failures)
        itest.check(watcher_rejected == 0, "every obs message of collector-1 verified (%d rejected)"
                    % watcher_rejected, failures)
        itest.check(len(before) > 0, "collector-1 had persisted rows before the kill (%d)"
                    % len(before), failures)
        lost = [i for i in before if i not in after]
        changed = [i for i in before if i in after and after[i] != before[i]]
        itest.check(not lost, "no row lost by the kill (%d missing)" % len(lost), failures)
        itest.check(not changed, "every row is unchanged (%d differ)" % len(changed), failures)
        tick_index = columns.index("tick")
        data_index = columns.index("data")
        undecodable, foreign, differ = [], [], []
        for i, row in after.items():
            frame = pb2.SensorFrame()
            try:
                frame.ParseFromString(row[data_index])
            except Exception:       # noqa: BLE001 (counted)
                undecodable.append(i)
                continue
            if frame.env != env or frame.batch != batch or len(frame.instances) != batch:
                foreign.append(i)
            elif i in published_readings and published_readings[i] != readings_of(frame):
                differ.append(i)
        itest.check(not undecodable and not foreign,
                    "every row holds a SensorFrame of %s with %d instances (%d undecodable, %d "
                    "other)" % (env, batch, len(undecodable), len(foreign)), failures)
        compared = len([i for i in published_readings if i in after])
        itest.check(compared > 0 and not differ,
                    "the observations published from %d rows carry their readings, clock "
                    "and sensor values per instance (%d differ)" % (compared, len(differ)),
                    failures)
        unlogged = [i for i in published_before
                    if i not in after or after[i][tick_index] != published_before[i]]
        itest.check(len(published_before) > 0 and not unlogged,
                    "every observation collector-1 published before the kill is in its log, "
                    "same tick (%d published, %d not)" % (len(published_before), len(unlogged)),
                    failures)
        itest.check(all(at_kill.get(i) == row for i, row in before.items()),
                    "while collector-1 is down its log holds every row read before the kill",
                    failures)
        new = sorted(i for i in after if i > max(at_kill))
        itest.check(len(new) > 0, "rows after the restart continue with higher ids (%d new rows, "
                    "ids %s..%s)" % (len(new), new[0] if new else "-", new[-1] if new else "-"),
                    failures)
        if new:
            last_tick_before = max(row[tick_index] for row in at_kill.values())
            first_tick_after = after[new[0]][tick_index]
            itest.check(first_tick_after > last_tick_before,
                        "the restarted collector logs later ticks (%d after %d)"
                        % (first_tick_after, last_tick_before), failures)
        itest.check(rate_down > 0 and rate_after > 0,
                    "the pipeline kept ticking (%.0f ticks/s with collector-1 down, %.0f after)"
                    % (rate_down, rate_after), failures)
        print("     figures: %d rows before the kill, %d after; %d new since the restart; "
              "%.0f / %.0f ticks/s down / after" % (len(before), len(after), len(new),
                                                   rate_down, rate_after))
    finally:
        if holder:
            holder.cleanup()
    if failures:
        print("%d check(s) failed" % len(failures))
        return 1
    return 0


if __name__ == "__main__":
    sys.exit(main())
