"""Progress: what a deployment's eval and reward streams say about the run
(episodes finished, hidden performance, observed and pipeline returns)."""
import bisect
import statistics
import time


def mean(values):
    values = list(values)
    return sum(values) / len(values) if values else float("nan")


class Progress:
    """What eval and reward say about the run, per (instance, episode):

    * from eval (the world): hidden performance, observed return and steps
      of every finished episode, in finishing order (tick, then instance:
      the order quintet-sim's figures use);
    * from reward (the aggregators): the pipeline return, the sum over the
      episode's ticks with clock.step >= 1 (not idle) of the median over
      aggregator replicas of instances[i].reward, closed by the tick whose
      clock is done.

    The aggregators publish the same batch for a tick: the median is
    updated as each replica's copy arrives (so the sum is exact once all
    have), and copies that differ are counted (reward_mismatches)."""

    def __init__(self, batch):
        self.batch = batch
        self.results = {}               # (instance, episode) -> (tick, performance, observed, steps)
        self.finished = []              # [(tick, instance, episode)] in finishing order
        self.episodes_done = 0          # EvalRecord.episodes: finished so far, world-wide
        self.eval_records = 0
        self.eval_gaps = 0              # episodes the eval stream skipped (EvalRecord.episodes jumps)
        self.eval_ticks = 0             # world's tick count at its latest eval
        self.reward_ticks = {}          # tick -> {"by": {replica: rewards}, "added": seen before}
        self.max_tick = -1
        self.pipeline_steps = {}        # (instance, episode) -> {tick: median reward}
        self.pipeline = {}              # (instance, episode) -> its sum, once closed
        self.pipeline_done = {}         # (instance, episode) -> tick of its done reward
        self.pipeline_finished = []     # [(tick, instance, episode)] of done rewards, in order
        self.steps = 0                  # environment steps seen on the reward stream
        self.reward_mismatches = 0
        self.reward_messages = 0
        self.first_tick_time = None
        self.last_change = time.monotonic()

    def add_eval(self, envelope, record):
        self.eval_records += 1
        new = 0
        for r in record.results:
            key = (r.instance, r.episode)
            if key in self.results:
                continue                # a re-send
            self.results[key] = (envelope.tick, r.performance, r.observed_return, r.steps)
            bisect.insort(self.finished, (envelope.tick, r.instance, r.episode))
            new += 1
        if new and record.episodes > self.episodes_done:
            # episodes the stream never showed: the count jumps by more than the results
            self.eval_gaps += max(0, record.episodes - self.episodes_done - new)
            self.episodes_done = record.episodes
        self.eval_ticks = max(self.eval_ticks, record.ticks)
        self.max_tick = max(self.max_tick, envelope.tick)
        self.last_change = time.monotonic()

    def add_reward(self, envelope, batch):
        """Pipeline return sums, per instance, the median of the aggregators'
        rewards for each tick (as the actors do): a lying aggregator is
        outvoted here too."""
        self.reward_messages += 1
        rewards = tuple(i.reward for i in batch.instances)
        tick = envelope.tick
        seen = self.reward_ticks.get(tick)
        if seen is None:
            seen = self.reward_ticks[tick] = {"by": {}, "added": None}
            if len(self.reward_ticks) > 4096:      # only recent ticks can still be re-sent
                horizon = tick - 1024
                self.reward_ticks = {t: r for t, r in self.reward_ticks.items() if t > horizon}
        if envelope.replica in seen["by"]:
            return                                  # a re-send of the same replica
        if any(r != rewards for r in seen["by"].values()):
            self.reward_mismatches += 1
        seen["by"][envelope.replica] = rewards
        if self.first_tick_time is None:
            self.first_tick_time = time.monotonic()
        self.max_tick = max(self.max_tick, tick)
        self.last_change = time.monotonic()
        copies = list(seen["by"].values())
        first = seen["added"] is None
        seen["added"] = True
        for i, instance in enumerate(batch.instances):
            clock = instance.clock
            if clock.idle or clock.step < 1:
                continue
            key = (i, clock.episode)
            # the median of the copies so far replaces this tick's term: the
            # sum is taken once the episode closes, over its ticks in order
            # (exactly the actors' and quintet-sim's sum; no running total
            # that a liar's huge value would wreck by cancellation)
            steps = self.pipeline_steps.setdefault(key, {})
            steps[tick] = statistics.median(c[i] for c in copies)
            if first:
                self.steps += 1
            if clock.done and key not in self.pipeline_done:
                self.pipeline_done[key] = tick
                bisect.insort(self.pipeline_finished, (tick, i, clock.episode))
            if key in self.pipeline_done:
                total = 0.0
                for t in sorted(steps):
                    total += steps[t]
                self.pipeline[key] = total

    # Figures --------------------------------------------------------------
    @property
    def ticks(self):
        return max(self.max_tick, self.eval_ticks, 0)

    def episodes(self):
        """Episodes finished (the world's count, EvalRecord.episodes)."""
        return self.episodes_done

    def last_finished(self, window=100):
        """(instance, episode) of the last `window` finished episodes, in
        finishing order."""
        return [(i, e) for _t, i, e in self.finished[-window:]]

    def performance_last(self, window=100):
        return mean(self.results[k][1] for k in self.last_finished(window))

    def observed_last(self, window=100):
        return mean(self.results[k][2] for k in self.last_finished(window))

    def pipeline_last(self, window=100):
        """Over the last `window` episodes whose done reward was seen (once
        every reward is in, the very episodes of performance_last)."""
        return mean(self.pipeline[(i, e)] for _t, i, e in self.pipeline_finished[-window:])

    def rewards_closed(self):
        """Every finished episode's done reward has been seen."""
        return all(k in self.pipeline_done for k in self.results)
