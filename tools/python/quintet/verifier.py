"""The one Python receive path (README "Wire format"), with the C
verifier's rules (common/qt_envelope.c, qt_verifier_open_from): what a
daemon would accept, a Python tool accepts, and it counts what it drops
by the same causes.

In this order: size cap, decode, key id in the trust store and bound to
the claimed role and replica (a rater's key signs no envelope), Ed25519
over b"quintet-v1:" + the envelope bytes as received, the replay window
and freshness (checked before the window records anything: a stale
message moves no replay state), type matching the topic, sender allowed
on the topic, payload decode, values. The topics' payload types and
senders come from the topology (common/topology.txt).

Replay, as qt_envelope.c: per (key id, epoch) seq increases from 1; a seq
seen or QT_REPLAY_WINDOW (64) or more below the highest is a replay. One
epoch per key is live; a new one is admitted only if sent after the live
one's first message, was never retired (the last 8 are remembered) and is
later than the floor (the first send time of the newest retired epoch), so
frames captured before a restart never evict the restarted sender. A key
silent for the age window (60 s) is forgotten.

One option the C receivers need not: duplicates=True (a dashboard behind
the relay, whose last-value cache sends a new subscriber the very message
it may have had) counts an exact copy of a recently accepted message in
`duplicates` instead of as a replay; it is dropped either way.
"""
import collections
import math
import time

import nacl.exceptions

from . import topology

SIGNATURE_CONTEXT = b"quintet-v1:"
JUDGMENT_CONTEXT = b"quintet-judgment-v1:"     # a rater's signature over its Comparison
MESSAGE_SIZE_CAP = 4 * 1024 * 1024              # QT_MESSAGE_SIZE_CAP
REPLAY_WINDOW = 64                              # QT_REPLAY_WINDOW
RETIRED_EPOCHS = 8                              # QT_RETIRED_EPOCHS
MAX_AGE_NS = 60 * 10**9                         # QT_MESSAGE_MAX_AGE_MS
RATER_ROLE = "rater"                            # QT_RATER_ROLE: keys of the simulated people


def payload_table(t):
    """{topic: (sender roles, PayloadType name, payload message)} of a
    topology: a topic's senders are the roles publishing it as their own
    or beside it (control has none: no tool reads it)."""
    table = {}
    for entry in t["topics"]:
        senders = tuple(r["name"] for r in t["roles"]
                        if r["topic"] == entry["name"] or entry["name"] in r["side_topics"])
        if senders:
            table[entry["name"]] = (senders, entry["type"], entry["message"])
    return table


PAYLOADS = payload_table(topology.read())


class _EpochWindow:
    """One live epoch of a key: IPsec style, the highest seq and a bitmap
    of the REPLAY_WINDOW seqs below it (bit i: highest - i seen)."""

    __slots__ = ("epoch", "first_ns", "highest", "seen")

    def __init__(self, epoch, first_ns):
        self.epoch, self.first_ns, self.highest, self.seen = epoch, first_ns, 0, 0


class _KeyReplay:
    """A key's replay state: its live epoch, the epochs it retired, the floor."""

    __slots__ = ("live", "retired", "floor_ns", "heard")

    def __init__(self):
        self.live = None
        self.retired = collections.deque(maxlen=RETIRED_EPOCHS)
        self.floor_ns = 0
        self.heard = time.monotonic()


class Verifier:
    """Opens [topic][SignedMessage] messages: (topic, envelope, payload) of
    a valid one, else None with the cause counted in `rejected`. batch: the
    batch size every batch must have (None: any, as the payload says)."""

    def __init__(self, pb2, trust, batch=None, duplicates=False, max_age_ns=MAX_AGE_NS):
        self.pb2 = pb2
        self.trust = trust
        self.batch = batch
        self.max_age_ns = max_age_ns
        self.verified = 0
        self.rejected = collections.Counter()
        self.count_duplicates = duplicates
        self.duplicates = 0                 # exact copies of accepted messages (duplicates=True)
        self._replay = {}                   # key id -> _KeyReplay
        self._recent = {}                   # key id -> signatures of its last accepted messages

    @property
    def rejected_total(self):
        return sum(self.rejected.values())

    def _reject(self, cause):
        self.rejected[cause] += 1
        return None

    # -- replay window (s_replay_check, s_replay_record) ---------------------
    def _state(self, key_id):
        state = self._replay.get(key_id)
        if state is not None and time.monotonic() - state.heard > self.max_age_ns / 1e9:
            del self._replay[key_id]        # whatever it sent before is stale anyway
            state = None
        return state

    @staticmethod
    def _replayed(state, envelope):
        if envelope.seq == 0:
            return True
        if state is None:
            return False
        live = state.live
        if live is not None and live.epoch == envelope.epoch:
            if envelope.seq > live.highest:
                return False
            offset = live.highest - envelope.seq
            return offset >= REPLAY_WINDOW or bool(live.seen >> offset & 1)
        if envelope.sent_ns <= state.floor_ns or envelope.epoch in state.retired:
            return True
        # an older-sent epoch never displaces a newer one
        return live is not None and envelope.sent_ns <= live.first_ns

    def _record(self, key_id, state, envelope):
        if state is None:
            state = self._replay[key_id] = _KeyReplay()
        live = state.live
        if live is None or live.epoch != envelope.epoch:
            if live is not None:
                state.retired.append(live.epoch)
                state.floor_ns = max(state.floor_ns, live.first_ns)
            live = state.live = _EpochWindow(envelope.epoch, envelope.sent_ns)
        if envelope.seq > live.highest:
            shift = envelope.seq - live.highest
            live.seen = ((live.seen << shift) | 1) & ((1 << REPLAY_WINDOW) - 1) \
                if shift < REPLAY_WINDOW else 1
            live.highest = envelope.seq
        else:
            live.seen |= 1 << (live.highest - envelope.seq)
        state.heard = time.monotonic()

    # -- the receive path -----------------------------------------------------
    def open(self, frames):
        """(topic, envelope, payload) of a valid message, else None."""
        pb2 = self.pb2
        if len(frames) != 2:
            return self._reject("malformed")
        topic = frames[0].decode("ascii", "replace")
        data = frames[1]
        if len(data) > MESSAGE_SIZE_CAP:
            return self._reject("oversize")
        signed = pb2.SignedMessage()
        envelope = pb2.Envelope()
        try:
            signed.ParseFromString(data)
            envelope.ParseFromString(signed.envelope)
        except Exception:
            return self._reject("malformed")
        entry = self.trust.get(envelope.key_id)
        if entry is None:
            return self._reject("unknown-key")
        role, replica, verify_key = entry
        if (role, replica) != (envelope.role, envelope.replica) or role == RATER_ROLE:
            return self._reject("wrong-role")
        try:
            # the exact bytes received: never re-serialise before verifying
            verify_key.verify(SIGNATURE_CONTEXT + signed.envelope, signed.signature)
        except (nacl.exceptions.BadSignatureError, ValueError, TypeError):
            return self._reject("bad-signature")
        state = self._state(envelope.key_id)
        if self._replayed(state, envelope):
            if self.count_duplicates and signed.signature in self._recent.get(envelope.key_id, ()):
                self.duplicates += 1
                return None
            return self._reject("replay")
        if self.max_age_ns > 0 and abs(time.time_ns() - envelope.sent_ns) > self.max_age_ns:
            return self._reject("stale")
        self._record(envelope.key_id, state, envelope)
        if topic not in PAYLOADS:
            return self._reject("wrong-type")
        senders, type_name, payload_name = PAYLOADS[topic]
        if envelope.type != pb2.PayloadType.Value(type_name):
            return self._reject("wrong-type")
        if role not in senders:
            return self._reject("unexpected-sender")
        payload = getattr(pb2, payload_name)()
        try:
            payload.ParseFromString(envelope.payload)
        except Exception:
            return self._reject("bad-payload")
        cause = self._invalid(topic, payload)
        if cause:
            return self._reject(cause)
        if self.count_duplicates:
            recent = self._recent.setdefault(envelope.key_id,
                                             collections.deque(maxlen=REPLAY_WINDOW))
            recent.append(signed.signature)
        self.verified += 1
        return topic, envelope, payload

    def _invalid(self, topic, payload):
        """The drop cause of a payload's values (batch-size, invalid-value),
        None when valid: the checks of the payloads the Python tools read."""
        if topic in ("query", "judgment"):
            return None             # no batch; a judgment is checked alone (open_judgment)
        if self.batch is not None and payload.batch != self.batch:
            return "batch-size"
        if topic == "eval":
            # results: the episodes that ended on this tick, instances increasing
            instances = [r.instance for r in payload.results]
            if (len(instances) > payload.batch or instances != sorted(set(instances))
                    or (instances and instances[-1] >= payload.batch)
                    or payload.episodes < len(instances)):
                return "batch-size"
            values = [v for r in payload.results for v in (r.performance, r.observed_return)]
        elif len(payload.actions if topic == "action" else payload.instances) != payload.batch:
            return "batch-size"
        elif topic == "reward":
            values = [i.reward for i in payload.instances]
        elif topic == "score":
            learning = payload.learning
            if (len(learning.weights) != len(learning.features)
                    or len(learning.voting_rights) != payload.raters
                    or len(learning.rater_comparisons) != payload.raters
                    or any(not 1 <= r <= payload.raters for r in learning.excluded)):
                return "invalid-value"
            values = [v for i in payload.instances for v in (i.mean, i.q10, i.q50, i.q90)]
            values += list(learning.weights) + list(learning.voting_rights) + [payload.quantile]
        elif topic == "proposal":
            values = [v for i in payload.instances for v in i.values]
        else:
            values = ()
        if not all(math.isfinite(v) for v in values):
            return "invalid-value"
        return None

    def open_judgment(self, judgment, n_features=None):
        """(cause, Comparison) of one Judgment, as the collectors check it:
        Ed25519 by the key of trust-store file rater-<id>.pub over
        b"quintet-judgment-v1:" + the comparison bytes as received, the
        comparison naming that rater, finite values, preference in [-1, 1]
        (and n_features each for a and b, when given). cause is None when valid."""
        entry = self.trust.get(judgment.key_id)
        if entry is None:
            return "unknown-key", None
        role, replica, verify_key = entry
        if role != RATER_ROLE:
            return "wrong-role", None
        try:
            verify_key.verify(JUDGMENT_CONTEXT + judgment.comparison, judgment.signature)
        except (nacl.exceptions.BadSignatureError, ValueError, TypeError):
            return "bad-signature", None
        comparison = self.pb2.Comparison()
        try:
            comparison.ParseFromString(judgment.comparison)
        except Exception:
            return "bad-payload", None
        if comparison.rater != replica:
            return "wrong-role", None
        values = list(comparison.a) + list(comparison.b)
        if (not all(math.isfinite(v) for v in values) or not -1 <= comparison.preference <= 1
                or (n_features is not None and (len(comparison.a), len(comparison.b))
                    != (n_features, n_features))):
            return "invalid-value", None
        return None, comparison
