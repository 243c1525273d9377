/*  qt_quorum: pending ticks in a small array, replica state per id. */
#include "quintet.h"

typedef struct {
    bool used;
    uint64_t tick;
    int64_t first_ms;           //  first arrival: the deadline counts from here
    uint32_t count;
    qt_message_t *slots [QT_QUORUM_MAX_REPLICAS];
} s_pending_t;

typedef struct {
    bool up;
    uint32_t misses;            //  consecutive ticks missed
    uint64_t ahead;             //  highest tick it sent beyond the window (0: none)
} s_replica_t;

struct _qt_quorum_t {
    char *role;
    uint32_t replicas;
    uint32_t faults;
    int64_t deadline_ms;
    uint32_t down_after;
    s_pending_t pending [QT_QUORUM_WINDOW];
    s_replica_t replica [QT_QUORUM_MAX_REPLICAS];
    bool have_last;
    uint64_t last;
    bool holding;
    uint64_t late;
    uint64_t skipped;
};

qt_quorum_t *
qt_quorum_new (const char *role, uint32_t replicas, uint32_t faults,
               int64_t deadline_ms, uint32_t down_after)
{
    if (replicas == 0 || replicas > QT_QUORUM_MAX_REPLICAS || replicas < 2 * faults + 1)
        return NULL;
    qt_quorum_t *self = (qt_quorum_t *) zmalloc (sizeof (qt_quorum_t));
    self->role = strdup (role);
    self->replicas = replicas;
    self->faults = faults;
    self->deadline_ms = deadline_ms;
    self->down_after = down_after > 0 ? down_after : 1;
    for (uint32_t i = 0; i < replicas; i++)
        self->replica [i].up = true;
    return self;
}

static void
s_pending_clear (s_pending_t *pending)
{
    for (uint32_t i = 0; i < QT_QUORUM_MAX_REPLICAS; i++)
        qt_message_destroy (&pending->slots [i]);
    memset (pending, 0, sizeof *pending);
}

void
qt_quorum_destroy (qt_quorum_t **self_p)
{
    assert (self_p);
    if (*self_p) {
        qt_quorum_t *self = *self_p;
        for (int i = 0; i < QT_QUORUM_WINDOW; i++)
            s_pending_clear (&self->pending [i]);
        free (self->role);
        free (self);
        *self_p = NULL;
    }
}

static s_pending_t *
s_find (qt_quorum_t *self, uint64_t tick)
{
    for (int i = 0; i < QT_QUORUM_WINDOW; i++)
        if (self->pending [i].used && self->pending [i].tick == tick)
            return &self->pending [i];
    return NULL;
}

//  A slot for a new tick; when all are used, the oldest pending is evicted
static s_pending_t *
s_claim (qt_quorum_t *self, uint64_t tick, int64_t now_ms)
{
    s_pending_t *slot = NULL;
    for (int i = 0; i < QT_QUORUM_WINDOW && !slot; i++)
        if (!self->pending [i].used)
            slot = &self->pending [i];
    if (!slot) {
        slot = &self->pending [0];
        for (int i = 1; i < QT_QUORUM_WINDOW; i++)
            if (self->pending [i].tick < slot->tick)
                slot = &self->pending [i];
        s_pending_clear (slot);
    }
    slot->used = true;
    slot->tick = tick;
    slot->first_ms = now_ms;
    return slot;
}

static char *
s_peer (qt_quorum_t *self, uint32_t replica)
{
    return zsys_sprintf ("%s-%u", self->role, replica);
}

qt_quorum_result_t
qt_quorum_add (qt_quorum_t *self, uint32_t replica, uint64_t tick,
               qt_message_t **message_p, int64_t now_ms)
{
    if (replica < 1 || replica > self->replicas)
        return QT_QUORUM_UNKNOWN_REPLICA;
    s_replica_t *state = &self->replica [replica - 1];
    //  A down replica is re-admitted once it has caught up: a message for
    //  the tick just processed or a newer one. One still working through a
    //  backlog (after a stall, a cut link) speaks about older ticks and is
    //  not waited for yet, which would cost a deadline per tick. Requiring
    //  a tick newer than the last would instead make re-admission a race it
    //  loses whenever it is slightly slower than its peers.
    bool late = self->have_last && tick <= self->last;
    bool caught_up = !self->have_last || tick >= self->last;
    if (!state->up && caught_up) {
        state->up = true;
        state->misses = 0;
        char *peer = s_peer (self, replica);
        qt_log_event (LOG_NOTICE, QT_MSG_REPLICA_UP, tick, peer, NULL,
                      "replica %s is up again", peer);
        zstr_free (&peer);
    }
    if (late) {
        self->late++;
        return QT_QUORUM_LATE;
    }
    //  Lockstep ticks never run far ahead: a far future tick would only
    //  evict honest pending ones. Unless this stage is the one behind (its
    //  host was cut off, it was stopped): once f + 1 replicas, so at least
    //  one honest, are past the window, it resynchronises on their ticks
    if (self->have_last && tick > self->last + QT_QUORUM_WINDOW) {
        if (tick > state->ahead)
            state->ahead = tick;
        uint32_t ahead = 0;
        uint64_t lowest = UINT64_MAX;
        for (uint32_t i = 0; i < self->replicas; i++)
            if (self->replica [i].ahead > self->last + QT_QUORUM_WINDOW) {
                ahead++;
                if (self->replica [i].ahead < lowest)
                    lowest = self->replica [i].ahead;
            }
        if (ahead < self->faults + 1)
            return QT_QUORUM_STALE;
        qt_log_event (LOG_NOTICE, NULL, tick, NULL, "resync",
                      "%s is %" PRIu64 " ticks ahead: resynchronising at tick %" PRIu64,
                      self->role, lowest - self->last, lowest);
        for (int i = 0; i < QT_QUORUM_WINDOW; i++)
            if (self->pending [i].used) {
                self->skipped++;
                s_pending_clear (&self->pending [i]);
            }
        for (uint32_t i = 0; i < self->replicas; i++)
            self->replica [i].ahead = 0;
        self->last = lowest - 1;
    }
    s_pending_t *pending = s_find (self, tick);
    if (!pending)
        pending = s_claim (self, tick, now_ms);
    if (pending->slots [replica - 1])
        return QT_QUORUM_DUPLICATE;
    pending->slots [replica - 1] = *message_p;
    *message_p = NULL;
    pending->count++;
    return QT_QUORUM_ACCEPTED;
}

static uint32_t
s_live_missing (qt_quorum_t *self, s_pending_t *pending)
{
    uint32_t missing = 0;
    for (uint32_t i = 0; i < self->replicas; i++)
        if (self->replica [i].up && !pending->slots [i])
            missing++;
    return missing;
}

static bool
s_pending_ready (qt_quorum_t *self, s_pending_t *pending, int64_t now_ms)
{
    uint32_t quorum = self->replicas - self->faults;
    if (pending->count < quorum)
        return false;
    return s_live_missing (self, pending) == 0 || now_ms >= pending->first_ms + self->deadline_ms;
}

bool
qt_quorum_tick_ready (qt_quorum_t *self, uint64_t tick, int64_t now_ms)
{
    s_pending_t *pending = s_find (self, tick);
    return pending && s_pending_ready (self, pending, now_ms);
}

bool
qt_quorum_ready (qt_quorum_t *self, int64_t now_ms, uint64_t *tick)
{
    //  The oldest ready tick; a newer ready one wins over older stuck ones
    //  only through qt_quorum_done skipping them
    s_pending_t *best = NULL;
    bool overdue_below_quorum = false;
    for (int i = 0; i < QT_QUORUM_WINDOW; i++) {
        s_pending_t *pending = &self->pending [i];
        if (!pending->used)
            continue;
        if (s_pending_ready (self, pending, now_ms)) {
            if (!best || pending->tick < best->tick)
                best = pending;
        }
        else
        if (now_ms >= pending->first_ms + self->deadline_ms)
            overdue_below_quorum = true;
    }
    if (best) {
        if (self->holding) {
            self->holding = false;
            qt_log_event (LOG_NOTICE, QT_MSG_QUORUM_REGAINED, best->tick, NULL, NULL,
                          "quorum of %s regained: %u of %u replicas", self->role,
                          best->count, self->replicas);
        }
        *tick = best->tick;
        return true;
    }
    if (overdue_below_quorum && !self->holding) {
        self->holding = true;
        qt_log_event (LOG_WARNING, QT_MSG_QUORUM_LOST, UINT64_MAX, NULL, "below-quorum",
                      "quorum of %s lost: fewer than %u of %u replicas by the deadline; holding",
                      self->role, self->replicas - self->faults, self->replicas);
    }
    return false;
}

qt_message_t **
qt_quorum_slots (qt_quorum_t *self, uint64_t tick)
{
    s_pending_t *pending = s_find (self, tick);
    return pending ? pending->slots : NULL;
}

void
qt_quorum_done (qt_quorum_t *self, uint64_t tick)
{
    s_pending_t *pending = s_find (self, tick);
    if (pending) {
        for (uint32_t i = 0; i < self->replicas; i++) {
            s_replica_t *state = &self->replica [i];
            if (pending->slots [i])
                state->misses = 0;
            else
            if (state->up && ++state->misses >= self->down_after) {
                state->up = false;
                char *peer = s_peer (self, i + 1);
                qt_log_event (LOG_WARNING, QT_MSG_REPLICA_DOWN, tick, peer, "missed-ticks",
                              "replica %s is down: missed %u ticks in a row", peer, state->misses);
                zstr_free (&peer);
            }
        }
    }
    for (int i = 0; i < QT_QUORUM_WINDOW; i++) {
        s_pending_t *older = &self->pending [i];
        if (older->used && older->tick <= tick) {
            if (older->tick < tick)
                self->skipped++;
            s_pending_clear (older);
        }
    }
    self->have_last = true;
    self->last = tick;
}

int64_t
qt_quorum_timeout (qt_quorum_t *self, int64_t now_ms)
{
    int64_t timeout = -1;
    for (int i = 0; i < QT_QUORUM_WINDOW; i++) {
        s_pending_t *pending = &self->pending [i];
        if (!pending->used)
            continue;
        int64_t left = pending->first_ms + self->deadline_ms - now_ms;
        if (left < 0)
            continue;       //  overdue: only a new arrival can help
        if (timeout < 0 || left < timeout)
            timeout = left;
    }
    return timeout;
}

bool
qt_quorum_last (qt_quorum_t *self, uint64_t *tick)
{
    if (self->have_last)
        *tick = self->last;
    return self->have_last;
}

uint32_t
qt_quorum_replicas (qt_quorum_t *self)
{
    return self->replicas;
}

uint32_t
qt_quorum_faults (qt_quorum_t *self)
{
    return self->faults;
}

uint32_t
qt_quorum_up (qt_quorum_t *self)
{
    uint32_t up = 0;
    for (uint32_t i = 0; i < self->replicas; i++)
        up += self->replica [i].up;
    return up;
}

bool
qt_quorum_replica_up (qt_quorum_t *self, uint32_t replica)
{
    return replica >= 1 && replica <= self->replicas && self->replica [replica - 1].up;
}

const char *
qt_quorum_role (qt_quorum_t *self)
{
    return self->role;
}

bool
qt_quorum_holding (qt_quorum_t *self)
{
    return self->holding;
}

uint64_t
qt_quorum_late (qt_quorum_t *self)
{
    return self->late;
}

uint64_t
qt_quorum_skipped (qt_quorum_t *self)
{
    return self->skipped;
}

static qt_message_t *
s_test_message (void)
{
    return (qt_message_t *) zmalloc (sizeof (qt_message_t));
}

static void
s_test_offer (qt_quorum_t *quorum, uint32_t replica, uint64_t tick, int64_t now,
              qt_quorum_result_t expected)
{
    qt_message_t *message = s_test_message ();
    assert (qt_quorum_add (quorum, replica, tick, &message, now) == expected);
    if (message)
        qt_message_destroy (&message);
}

void
qt_quorum_test (bool verbose)
{
    if (verbose)
        printf (" * qt_quorum: ");
    const int64_t deadline = 50;
    assert (!qt_quorum_new ("rewarder", 2, 1, deadline, 3));     //  n < 2f + 1
    qt_quorum_t *quorum = qt_quorum_new ("rewarder", 3, 1, deadline, 3);
    assert (quorum);
    uint64_t tick;
    int64_t now = 1000;

    //  All three arrive: ready at once
    s_test_offer (quorum, 1, 1, now, QT_QUORUM_ACCEPTED);
    s_test_offer (quorum, 2, 1, now, QT_QUORUM_ACCEPTED);
    assert (!qt_quorum_ready (quorum, now, &tick));
    assert (qt_quorum_timeout (quorum, now) == deadline);
    s_test_offer (quorum, 2, 1, now, QT_QUORUM_DUPLICATE);
    s_test_offer (quorum, 4, 1, now, QT_QUORUM_UNKNOWN_REPLICA);
    s_test_offer (quorum, 3, 1, now, QT_QUORUM_ACCEPTED);
    assert (qt_quorum_ready (quorum, now, &tick) && tick == 1);
    assert (qt_quorum_slots (quorum, 1) [2] != NULL);
    qt_quorum_done (quorum, 1);
    s_test_offer (quorum, 3, 1, now, QT_QUORUM_LATE);
    assert (qt_quorum_late (quorum) == 1);

    //  Replica 3 silent: each tick waits one deadline, then proceeds with 2;
    //  after 3 misses it is down and no longer waited for
    for (uint64_t t = 2; t <= 4; t++) {
        now += 10;
        s_test_offer (quorum, 1, t, now, QT_QUORUM_ACCEPTED);
        s_test_offer (quorum, 2, t, now, QT_QUORUM_ACCEPTED);
        assert (!qt_quorum_ready (quorum, now, &tick));
        now += deadline;
        assert (qt_quorum_ready (quorum, now, &tick) && tick == t);
        qt_quorum_done (quorum, t);
    }
    assert (!qt_quorum_replica_up (quorum, 3));
    assert (qt_quorum_up (quorum) == 2);
    s_test_offer (quorum, 1, 5, now, QT_QUORUM_ACCEPTED);
    s_test_offer (quorum, 2, 5, now, QT_QUORUM_ACCEPTED);
    assert (qt_quorum_ready (quorum, now, &tick) && tick == 5);    //  no deadline paid
    qt_quorum_done (quorum, 5);

    //  It speaks about the past (a backlog after a stall): still down
    s_test_offer (quorum, 3, 4, now, QT_QUORUM_LATE);
    assert (!qt_quorum_replica_up (quorum, 3));

    //  About the tick just processed: caught up (only a little slower than
    //  its peers), re-admitted though its message itself is late
    s_test_offer (quorum, 3, 5, now, QT_QUORUM_LATE);
    assert (qt_quorum_replica_up (quorum, 3));

    //  And waited for from then on
    s_test_offer (quorum, 3, 6, now, QT_QUORUM_ACCEPTED);
    assert (qt_quorum_replica_up (quorum, 3));
    s_test_offer (quorum, 1, 6, now, QT_QUORUM_ACCEPTED);
    assert (!qt_quorum_ready (quorum, now, &tick));
    s_test_offer (quorum, 2, 6, now, QT_QUORUM_ACCEPTED);
    assert (qt_quorum_ready (quorum, now, &tick) && tick == 6);
    qt_quorum_done (quorum, 6);

    //  Below quorum: holds past the deadline, proceeds when enough arrive
    s_test_offer (quorum, 1, 7, now, QT_QUORUM_ACCEPTED);
    now += 2 * deadline;
    assert (!qt_quorum_ready (quorum, now, &tick));
    assert (qt_quorum_holding (quorum));
    assert (qt_quorum_timeout (quorum, now) == -1);
    s_test_offer (quorum, 2, 7, now, QT_QUORUM_ACCEPTED);
    assert (qt_quorum_ready (quorum, now, &tick) && tick == 7);
    assert (!qt_quorum_holding (quorum));
    qt_quorum_done (quorum, 7);

    //  A stuck older tick is skipped when a newer one completes
    s_test_offer (quorum, 1, 8, now, QT_QUORUM_ACCEPTED);
    for (uint32_t r = 1; r <= 3; r++)
        s_test_offer (quorum, r, 9, now, QT_QUORUM_ACCEPTED);
    assert (qt_quorum_ready (quorum, now, &tick) && tick == 9);
    qt_quorum_done (quorum, 9);
    assert (qt_quorum_skipped (quorum) == 1);
    s_test_offer (quorum, 2, 8, now, QT_QUORUM_LATE);

    //  This stage fell behind (its host was cut off): once f + 1 replicas
    //  are past the window it resynchronises on the lowest of their ticks
    s_test_offer (quorum, 1, 10, now, QT_QUORUM_ACCEPTED);
    uint64_t skipped = qt_quorum_skipped (quorum);
    s_test_offer (quorum, 2, 100, now, QT_QUORUM_STALE);
    assert (qt_quorum_last (quorum, &tick) && tick == 9);
    s_test_offer (quorum, 1, 101, now, QT_QUORUM_ACCEPTED);
    assert (qt_quorum_skipped (quorum) == skipped + 1);       //  tick 10, pending
    assert (qt_quorum_last (quorum, &tick) && tick == 99);
    s_test_offer (quorum, 3, 50, now, QT_QUORUM_LATE);
    s_test_offer (quorum, 2, 101, now, QT_QUORUM_ACCEPTED);
    s_test_offer (quorum, 3, 101, now, QT_QUORUM_ACCEPTED);
    assert (qt_quorum_ready (quorum, now, &tick) && tick == 101);
    qt_quorum_done (quorum, 101);

    //  Far future ticks are refused from f replicas; a flood never holds
    //  more than the window
    s_test_offer (quorum, 1, 101 + QT_QUORUM_WINDOW + 1, now, QT_QUORUM_STALE);
    for (uint64_t t = 102; t <= 101 + QT_QUORUM_WINDOW; t++)
        s_test_offer (quorum, 1, t, now, QT_QUORUM_ACCEPTED);
    assert (qt_quorum_last (quorum, &tick) && tick == 101);

    qt_quorum_destroy (&quorum);
    qt_quorum_destroy (&quorum);
    if (verbose)
        printf ("OK\n");
}
