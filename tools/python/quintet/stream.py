"""What a dashboard makes of the verified stream (README "The dashboard
stream"): the Verifier's verdicts plus the gaps, the longest run of
verified messages, and one JSON-able record per message. Used by
tools/examples/subscribe.py, quintet-watch and quintet-dashboard.

Gaps are counted: an aggregator's seq jumping by more than one within an
epoch (it signs only rewards), or EvalRecord.episodes (episodes finished
so far, world-wide) jumping by more than the record's results (the world's
seq also counts its sensor frames); the dashboard endpoint drops messages
for a subscriber that does not keep up.
"""
from .verifier import Verifier

# the topics a dashboard reads: the relay's (reward, eval, score) and the
# rewarders' proposal (quintet-watch also reads the rewarders directly)
TOPICS = ("reward", "eval", "score", "proposal")
DEFAULT_TOPICS = ("eval", "reward")


class Client:
    """A Verifier (exact copies from the relay's last-value cache counted
    as duplicates, not replays) with the stream's gaps and runs."""

    def __init__(self, pb2, trust):
        self.verifier = Verifier(pb2, trust, duplicates=True)
        self.run = 0                # verified in a row since the last rejection
        self.longest_run = 0
        self.gaps = 0               # missed: rewards (seq jumps), episodes (EvalRecord.episodes jumps)
        self.last_seq = {}          # aggregator key id -> (epoch, highest seq)
        self.last_episodes = {}     # world key id -> (epoch, last EvalRecord.episodes)

    @property
    def verified(self):
        return self.verifier.verified

    @property
    def rejected(self):
        return dict(self.verifier.rejected)

    def open(self, frames):
        """(topic, envelope, payload), or None (rejected and counted)."""
        rejected = self.verifier.rejected_total
        opened = self.verifier.open(frames)
        if opened is None:
            if self.verifier.rejected_total != rejected:
                self.run = 0
            return None
        topic, envelope, payload = opened
        if topic == "reward":
            last = self.last_seq.get(envelope.key_id)
            if last is not None and last[0] == envelope.epoch and envelope.seq > last[1] + 1:
                self.gaps += envelope.seq - last[1] - 1
            if last is None or last[0] != envelope.epoch or envelope.seq > last[1]:
                self.last_seq[envelope.key_id] = (envelope.epoch, envelope.seq)
        elif topic == "eval":
            last = self.last_episodes.get(envelope.key_id)
            if last is not None and last[0] == envelope.epoch and \
                    payload.episodes > last[1] + len(payload.results):
                self.gaps += payload.episodes - last[1] - len(payload.results)
            if last is None or last[0] != envelope.epoch or payload.episodes > last[1]:
                self.last_episodes[envelope.key_id] = (envelope.epoch, payload.episodes)
        self.run += 1
        self.longest_run = max(self.longest_run, self.run)
        return opened

    def summary(self):
        return {"verified": self.verified, "longest_consecutive": self.longest_run,
                "rejected": self.rejected, "gaps": self.gaps,
                "duplicates": self.verifier.duplicates}


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
