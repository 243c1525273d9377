/*  qt_quorum: pending ticks in a small array, replica state per id. */
#include "quintet.h"
#include "qt_selftest.h"

typedef struct {
    bool used;
    uint64_t tick;
    int64_t first_ms;           //  first arrival: the deadline counts from here
    uint32_t count;
    qt_message_t *slots [QT_QUORUM_MAX_REPLICAS];
    uint32_t agreed_at;         //  count when the agreement was last computed (0: never)
    uint32_t agreeing;          //  size of the largest agreeing group
    bool members [QT_QUORUM_MAX_REPLICAS];  //  ... and who is in it
} s_pending_t;

typedef struct {
    bool up;
    uint32_t misses;            //  consecutive ticks missed
    uint64_t ahead;             //  highest tick it sent beyond the window (0: none)
    uint32_t trial;             //  re-admitted: ticks it must still be present in
    uint64_t backoff;           //  ticks a failed trial bars it (0: none failed lately)
    uint64_t barred_until;      //  no re-admission before this tick is done
    uint64_t latest;            //  highest tick the window took from it (0: none)
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
    bool holding_logged;        //  "quorum lost" was logged (so "regained" is too)
    qt_ratelimit_t *holding_log;
    uint64_t late;
    uint64_t skipped;
    uint64_t evicted;
    qt_quorum_agree_fn *agree;  //  NULL: agreement off
    void *agree_ctx;
    int64_t agree_wait_ms;
    uint64_t unagreed;
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
    self->holding_log = qt_ratelimit_new (QT_QUORUM_HOLDING_LOG_MS);
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
        qt_ratelimit_destroy (&self->holding_log);
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

//  Replicas that vouch for a pending tick
static uint32_t
s_vouchers (qt_quorum_t *self, const s_pending_t *pending)
{
    uint32_t count = 0;
    for (uint32_t i = 0; i < self->replicas; i++)
        count += pending->slots [i] != NULL;
    return count;
}

//  Pending ticks this replica vouches for that could be the liars' alone:
//  no more than f replicas vouch for them
static uint32_t
s_unvouched_ticks (qt_quorum_t *self, uint32_t replica)
{
    uint32_t unvouched = 0;
    for (int i = 0; i < QT_QUORUM_WINDOW; i++) {
        const s_pending_t *pending = &self->pending [i];
        unvouched += pending->used && pending->slots [replica - 1]
                  && s_vouchers (self, pending) <= self->faults;
    }
    return unvouched;
}

static int
s_compare_ticks (const void *a, const void *b)
{
    uint64_t x = *(const uint64_t *) a, y = *(const uint64_t *) b;
    return x < y ? -1 : x > y;
}

//  The median of the latest tick each replica got into the window (the
//  lower one of an even count): with at most f liars, an honest replica's
//  tick or one between two honest ones. Whether there is one at all.
static bool
s_median_latest (qt_quorum_t *self, uint64_t *median)
{
    uint64_t latest [QT_QUORUM_MAX_REPLICAS];
    size_t count = 0;
    for (uint32_t i = 0; i < self->replicas; i++)
        if (self->replica [i].latest > 0)
            latest [count++] = self->replica [i].latest;
    if (count == 0)
        return false;
    qsort (latest, count, sizeof latest [0], s_compare_ticks);
    *median = latest [(count - 1) / 2];
    return true;
}

static uint64_t
s_distance (uint64_t a, uint64_t b)
{
    return a > b ? a - b : b - a;
}

//  True if pending tick a (vouched by count_a replicas) is worth less than
//  tick b. A tick more than f replicas vouch for has an honest one among
//  them and is worth more than one that f liars could have made up alone;
//  among those, the one further from the median of the replicas' latest
//  ticks (an honest tick, or between two) is worth less, so f colluding
//  liars' far ticks never crowd out the honest replicas' next one; then
//  fewer vouchers, then the later tick.
static bool
s_worth_less (qt_quorum_t *self, uint32_t count_a, uint64_t tick_a, uint32_t count_b,
              uint64_t tick_b, bool have_median, uint64_t median)
{
    uint32_t trusted = self->faults;
    if ((count_a > trusted) != (count_b > trusted))
        return count_a <= trusted;
    if (count_a <= trusted && have_median
    &&  s_distance (tick_a, median) != s_distance (tick_b, median))
        return s_distance (tick_a, median) > s_distance (tick_b, median);
    if (count_a != count_b)
        return count_a < count_b;
    if (have_median && s_distance (tick_a, median) != s_distance (tick_b, median))
        return s_distance (tick_a, median) > s_distance (tick_b, median);
    return tick_a > tick_b;
}

//  A slot for a new tick. When all are used, the pending tick worth least
//  is evicted, unless the new one (vouched by one replica) is worth less
//  still: then NULL. So one replica's far-future ticks never evict ticks
//  other replicas vouch for, nor the honest replicas' next tick.
static s_pending_t *
s_claim (qt_quorum_t *self, uint64_t tick, int64_t now_ms)
{
    s_pending_t *slot = NULL;
    for (int i = 0; i < QT_QUORUM_WINDOW && !slot; i++)
        if (!self->pending [i].used)
            slot = &self->pending [i];
    if (!slot) {
        uint64_t median = 0;
        bool have_median = s_median_latest (self, &median);
        uint32_t victim_count = 0;
        for (int i = 0; i < QT_QUORUM_WINDOW; i++) {
            s_pending_t *pending = &self->pending [i];
            uint32_t count = s_vouchers (self, pending);
            if (!slot || s_worth_less (self, count, pending->tick, victim_count, slot->tick,
                                       have_median, median)) {
                slot = pending;
                victim_count = count;
            }
        }
        //  A newcomer takes the place of a tick more than f replicas vouch
        //  for only if it is nearer the median: that one is behind the
        //  others and will not complete (its other upstream never delivered
        //  it, after a restart), where a far-future newcomer is a liar's
        bool full_of_vouched = victim_count > self->faults;
        if (full_of_vouched
            ? !(have_median && s_distance (slot->tick, median) > s_distance (tick, median))
            : !s_worth_less (self, victim_count, slot->tick, 1, tick, have_median, median))
            return NULL;
        self->evicted++;
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

static qt_quorum_result_t
s_add (qt_quorum_t *self, uint32_t replica, uint64_t tick, qt_message_t **message_p,
       int64_t now_ms);
static void
s_readmit (qt_quorum_t *self, uint32_t replica, uint64_t tick);

qt_quorum_result_t
qt_quorum_add (qt_quorum_t *self, uint32_t replica, uint64_t tick,
               qt_message_t **message_p, int64_t now_ms)
{
    if (replica < 1 || replica > self->replicas)
        return QT_QUORUM_UNKNOWN_REPLICA;
    s_replica_t *state = &self->replica [replica - 1];
    qt_quorum_result_t result = s_add (self, replica, tick, message_p, now_ms);
    //  A down replica is re-admitted once it has caught up, and only by a
    //  message the window took: one for a pending tick, or for the tick just
    //  processed (requiring a newer one would make re-admission a race it
    //  loses whenever it is slightly slower than its peers). A message the
    //  window refused (far ahead, a backlog of older ticks) says nothing
    //  about being on time, so it re-admits nobody.
    bool caught_up = result == QT_QUORUM_ACCEPTED
                  || (result == QT_QUORUM_LATE && tick == self->last);
    if (!state->up && caught_up && (!self->have_last || self->last >= state->barred_until))
        s_readmit (self, replica, tick);
    return result;
}

//  Re-admitted on trial: missing any of its next QT_QUORUM_TRIAL_TICKS ticks
//  puts it down again at once and bars it for a doubling number of ticks,
//  so a replica (or a key) that speaks just enough to be re-admitted and
//  then makes every tick wait costs a deadline per bar, not per tick
static void
s_readmit (qt_quorum_t *self, uint32_t replica, uint64_t tick)
{
    s_replica_t *state = &self->replica [replica - 1];
    state->up = true;
    state->misses = 0;
    state->trial = QT_QUORUM_TRIAL_TICKS;
    char *peer = s_peer (self, replica);
    qt_log_event (LOG_NOTICE, QT_MSG_REPLICA_UP, tick, peer, NULL,
                  "replica %s is up again", peer);
    zstr_free (&peer);
}

//  The window: whether a message is taken for a pending tick
static qt_quorum_result_t
s_add (qt_quorum_t *self, uint32_t replica, uint64_t tick, qt_message_t **message_p,
       int64_t now_ms)
{
    s_replica_t *state = &self->replica [replica - 1];
    if (self->have_last && tick <= self->last) {
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
    if (!pending) {
        //  A tick nobody else vouches for yet: one replica holds at most
        //  QT_QUORUM_SOLO_TICKS that f or fewer replicas vouch for (honest
        //  replicas in lockstep are a tick or two ahead of each other, never
        //  more), so a flood of future ticks from the liars cannot fill the
        //  window, with or without a last tick to check them against
        if (s_unvouched_ticks (self, replica) >= QT_QUORUM_SOLO_TICKS)
            return QT_QUORUM_STALE;
        pending = s_claim (self, tick, now_ms);
        if (!pending)
            return QT_QUORUM_STALE;
    }
    if (pending->slots [replica - 1])
        return QT_QUORUM_DUPLICATE;
    pending->slots [replica - 1] = *message_p;
    *message_p = NULL;
    pending->count++;
    if (tick > state->latest)
        state->latest = tick;
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

void
qt_quorum_set_agreement (qt_quorum_t *self, qt_quorum_agree_fn *agree, void *ctx, int64_t wait_ms)
{
    self->agree = agree;
    self->agree_ctx = ctx;
    self->agree_wait_ms = wait_ms > 0 ? wait_ms : 0;
}

//  The largest group of present replicas that agree with each other (the
//  first such, in replica order), recomputed only when a message arrived.
//  Agreement is an equality, so a group is everyone who agrees with one
//  of its members.
static uint32_t
s_agreeing (qt_quorum_t *self, s_pending_t *pending)
{
    if (!self->agree)
        return 0;
    if (pending->agreed_at == pending->count)
        return pending->agreeing;
    pending->agreeing = 0;
    memset (pending->members, 0, sizeof pending->members);
    bool grouped [QT_QUORUM_MAX_REPLICAS] = { false };
    for (uint32_t i = 0; i < self->replicas; i++) {
        if (!pending->slots [i] || grouped [i])
            continue;
        bool members [QT_QUORUM_MAX_REPLICAS] = { false };
        uint32_t size = 1;
        members [i] = grouped [i] = true;
        for (uint32_t j = i + 1; j < self->replicas; j++)
            if (pending->slots [j] && !grouped [j]
            &&  self->agree (self->agree_ctx, pending->slots [i], pending->slots [j])) {
                members [j] = grouped [j] = true;
                size++;
            }
        if (size > pending->agreeing) {
            pending->agreeing = size;
            memcpy (pending->members, members, sizeof members);
        }
    }
    pending->agreed_at = pending->count;
    return pending->agreeing;
}

static bool
s_pending_ready (qt_quorum_t *self, s_pending_t *pending, int64_t now_ms)
{
    uint32_t quorum = self->replicas - self->faults;
    if (pending->count < quorum)
        return false;
    if (pending->count == self->replicas)
        return true;
    if (s_live_missing (self, pending) > 0 && now_ms < pending->first_ms + self->deadline_ms)
        return false;
    if (!self->agree || s_agreeing (self, pending) > self->faults)
        return true;
    //  Replicas missing and no f + 1 agree among those in: one of them is
    //  wrong, so wait a little for the others (even those marked down: an
    //  honest one late for us may be one of them)
    return now_ms >= pending->first_ms + self->deadline_ms + self->agree_wait_ms;
}

uint32_t
qt_quorum_agreement (qt_quorum_t *self, uint64_t tick, bool *members)
{
    memset (members, 0, sizeof (bool) * QT_QUORUM_MAX_REPLICAS);
    s_pending_t *pending = s_find (self, tick);
    if (!pending || !self->agree)
        return 0;
    uint32_t size = s_agreeing (self, pending);
    memcpy (members, pending->members, sizeof pending->members);
    return size;
}

bool
qt_quorum_ready (qt_quorum_t *self, int64_t now_ms, uint64_t *tick)
{
    //  The oldest ready tick; a newer ready one wins over older stuck ones
    //  only through qt_quorum_done skipping them
    s_pending_t *best = NULL;
    s_pending_t *lowest = NULL;
    for (int i = 0; i < QT_QUORUM_WINDOW; i++) {
        s_pending_t *pending = &self->pending [i];
        if (!pending->used)
            continue;
        if (!lowest || pending->tick < lowest->tick)
            lowest = pending;
        if (s_pending_ready (self, pending, now_ms) && (!best || pending->tick < best->tick))
            best = pending;
    }
    if (best) {
        if (self->holding) {
            self->holding = false;
            if (self->holding_logged)
                qt_log_event (LOG_NOTICE, QT_MSG_QUORUM_REGAINED, best->tick, NULL, NULL,
                              "quorum of %s regained: %u of %u replicas", self->role,
                              best->count, self->replicas);
        }
        *tick = best->tick;
        return true;
    }
    //  Holding: the next tick is overdue below quorum. A tick further ahead
    //  that only a few vouch for (a liar's) is no reason to say so. The
    //  transitions are logged at most once per interval, with a count.
    if (lowest && now_ms >= lowest->first_ms + self->deadline_ms && !self->holding
    &&  lowest->count < self->replicas - self->faults) {
        self->holding = true;
        uint64_t suppressed = 0;
        self->holding_logged = qt_ratelimit_pass (self->holding_log, "holding", now_ms, &suppressed);
        if (self->holding_logged)
            qt_log_event (LOG_WARNING, QT_MSG_QUORUM_LOST, UINT64_MAX, NULL, "below-quorum",
                          "quorum of %s lost: fewer than %u of %u replicas by the deadline; "
                          "holding (%" PRIu64 " more losses since the last report)",
                          self->role, self->replicas - self->faults, self->replicas, suppressed);
    }
    return false;
}

qt_message_t **
qt_quorum_slots (qt_quorum_t *self, uint64_t tick)
{
    s_pending_t *pending = s_find (self, tick);
    return pending ? pending->slots : NULL;
}

//  Gives a tick up without processing it (another upstream of the stage
//  cannot deliver it): frees it and every older pending tick, counted as
//  skipped, and counts no miss: nobody was late for a tick never processed
void
qt_quorum_skip (qt_quorum_t *self, uint64_t tick)
{
    for (int i = 0; i < QT_QUORUM_WINDOW; i++) {
        s_pending_t *older = &self->pending [i];
        if (older->used && older->tick <= tick) {
            self->skipped++;
            s_pending_clear (older);
        }
    }
    if (!self->have_last || tick > self->last) {
        self->have_last = true;
        self->last = tick;
    }
}

//  A stage with several upstreams processes a tick when it is ready in
//  all of them. Each upstream's oldest ready tick is what that upstream
//  alone would process next, skipping older stuck ones, so a tick older
//  than another upstream's oldest ready one will never be ready there:
//  it is given up where it is ready, and the oldest ready ticks are
//  compared again. Without this, two upstreams resynchronised on
//  different ticks (a stage back from a network cut: each upstream's
//  window resynchronises on its own replicas' ticks) would wait for each
//  other for ever, each holding a tick the other already passed.
bool
qt_quorum_ready_all (qt_quorum_t **quorums, size_t count, int64_t now_ms, uint64_t *tick)
{
    if (count == 0)
        return false;
    while (true) {
        uint64_t lowest = UINT64_MAX, highest = 0;
        for (size_t i = 0; i < count; i++) {
            uint64_t ready;
            if (!qt_quorum_ready (quorums [i], now_ms, &ready))
                return false;
            lowest = MIN (lowest, ready);
            highest = MAX (highest, ready);
        }
        if (lowest == highest) {
            *tick = lowest;
            return true;
        }
        for (size_t i = 0; i < count; i++) {
            uint64_t ready;
            if (qt_quorum_ready (quorums [i], now_ms, &ready) && ready < highest)
                qt_quorum_skip (quorums [i], ready);
        }
    }
}

void
qt_quorum_done (qt_quorum_t *self, uint64_t tick)
{
    qt_quorum_done_take (self, tick, NULL);
}

void
qt_quorum_done_take (qt_quorum_t *self, uint64_t tick, qt_message_t **taken)
{
    s_pending_t *pending = s_find (self, tick);
    if (taken)
        for (uint32_t i = 0; i < QT_QUORUM_MAX_REPLICAS; i++)
            taken [i] = NULL;
    if (pending && self->agree && pending->count < self->replicas
    &&  s_agreeing (self, pending) <= self->faults)
        self->unagreed++;
    if (pending) {
        for (uint32_t i = 0; i < self->replicas; i++) {
            s_replica_t *state = &self->replica [i];
            if (pending->slots [i]) {
                state->misses = 0;
                if (state->trial > 0 && --state->trial == 0)
                    state->backoff = 0;     //  on time again: trial passed
            }
            else
            if (state->up && state->trial > 0) {
                state->up = false;
                state->trial = 0;
                state->backoff = state->backoff == 0 ? QT_QUORUM_BAR_TICKS
                               : MIN (2 * state->backoff, QT_QUORUM_BAR_MAX);
                state->barred_until = tick + state->backoff;
                char *peer = s_peer (self, i + 1);
                qt_log_event (LOG_WARNING, QT_MSG_REPLICA_DOWN, tick, peer, "failed-trial",
                              "replica %s is down: missed a tick right after re-admission; "
                              "not re-admitted for %" PRIu64 " ticks", peer, state->backoff);
                zstr_free (&peer);
            }
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
    if (pending && taken)
        for (uint32_t i = 0; i < self->replicas; i++) {
            taken [i] = pending->slots [i];
            pending->slots [i] = NULL;
        }
    for (int i = 0; i < QT_QUORUM_WINDOW; i++) {
        s_pending_t *older = &self->pending [i];
        if (older->used && older->tick <= tick) {
            if (older->tick < tick)
                self->skipped++;
            s_pending_clear (older);
        }
        else
        if (older->used && older->tick > tick + QT_QUORUM_WINDOW) {
            //  Taken before there was a last tick to check it against (far
            //  ahead of the first tick processed): outside the window now
            self->evicted++;
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
        int64_t due = pending->first_ms + self->deadline_ms;
        if (now_ms >= due && self->agree && pending->count >= self->replicas - self->faults
        &&  s_agreeing (self, pending) <= self->faults)
            due += self->agree_wait_ms;     //  due, but waiting for agreement
        int64_t left = due - now_ms;
        if (left < 0)
            continue;       //  overdue: only a new arrival can help
        if (timeout < 0 || left < timeout)
            timeout = left;
    }
    return timeout;
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

uint64_t
qt_quorum_unagreed (qt_quorum_t *self)
{
    return self->unagreed;
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

uint64_t
qt_quorum_evicted (qt_quorum_t *self)
{
    return self->evicted;
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
    QT_CHECK (qt_quorum_add (quorum, replica, tick, &message, now) == expected);
    if (message)
        qt_message_destroy (&message);
}

//  Offers a tick from replicas 1 and 2; true if it was ready at once (no
//  deadline waited for a third)
static bool
s_test_honest_tick (qt_quorum_t *quorum, uint64_t t, int64_t *now, int64_t deadline)
{
    uint64_t tick;
    s_test_offer (quorum, 1, t, *now, QT_QUORUM_ACCEPTED);
    s_test_offer (quorum, 2, t, *now, QT_QUORUM_ACCEPTED);
    bool at_once = qt_quorum_ready (quorum, *now, &tick);
    if (!at_once) {
        *now += deadline;
        QT_CHECK (qt_quorum_ready (quorum, *now, &tick));
    }
    QT_CHECK (tick == t);
    qt_quorum_done (quorum, t);
    *now += 1;
    return at_once;
}

#define S_TEST_ATTACK_TICKS     1000
#define S_TEST_ATTACK_WAITS     16      //  deadlines a re-admission attack may cost in that many

//  Issue 8: a message the window refuses must not re-admit a down replica,
//  and one that speaks just enough to be re-admitted cannot make every
//  tick wait
static void
s_test_readmission (int64_t deadline)
{
    qt_quorum_t *quorum = qt_quorum_new ("rewarder", 3, 1, deadline, 3);
    int64_t now = 1000;
    uint64_t t = 1;
    for (; t <= 3; t++)
        s_test_honest_tick (quorum, t, &now, deadline);
    QT_CHECK (!qt_quorum_replica_up (quorum, 3));

    //  A dead replica's key sends a valid message far ahead per tick:
    //  refused by the window, and it stays down; no tick waits for it
    for (; t <= 20; t++) {
        s_test_offer (quorum, 3, t + 1000, now, QT_QUORUM_STALE);
        QT_CHECK (!qt_quorum_replica_up (quorum, 3));
        QT_CHECK (s_test_honest_tick (quorum, t, &now, deadline));
    }

    //  It sends for the tick just processed, every tick (a late-by-one
    //  message is what re-admits an honest slower replica): re-admitted on
    //  trial, failing it bars it for longer and longer
    uint32_t waited = 0;
    for (uint64_t k = 0; k < S_TEST_ATTACK_TICKS; k++, t++) {
        waited += !s_test_honest_tick (quorum, t, &now, deadline);
        s_test_offer (quorum, 3, t, now, QT_QUORUM_LATE);
    }
    QT_CHECK (waited > 0 && waited <= S_TEST_ATTACK_WAITS);

    //  Once its bar is over, coming back on time (a message for a pending
    //  tick) re-admits it; present through its trial, it is an ordinary
    //  member again: one miss no longer puts it down
    for (uint64_t k = 0; k <= QT_QUORUM_BAR_MAX; k++, t++)
        s_test_honest_tick (quorum, t, &now, deadline);
    uint64_t tick;
    for (uint64_t k = 0; k <= QT_QUORUM_TRIAL_TICKS; k++, t++) {
        s_test_offer (quorum, 3, t, now, QT_QUORUM_ACCEPTED);
        QT_CHECK (qt_quorum_replica_up (quorum, 3));
        s_test_offer (quorum, 1, t, now, QT_QUORUM_ACCEPTED);
        QT_CHECK (!qt_quorum_ready (quorum, now, &tick));     //  2 is up: waited for
        s_test_offer (quorum, 2, t, now, QT_QUORUM_ACCEPTED);
        QT_CHECK (qt_quorum_ready (quorum, now, &tick) && tick == t);
        qt_quorum_done (quorum, t);
    }
    QT_CHECK (!s_test_honest_tick (quorum, t++, &now, deadline));
    QT_CHECK (qt_quorum_replica_up (quorum, 3));
    qt_quorum_destroy (&quorum);
}

#define S_TEST_FLOOD_TICKS      16      //  far-future ticks a liar sends at start
#define S_TEST_HONEST_TICKS     50

//  Issue 8: a start-up flood. Before any tick was processed there is no
//  window to check ticks against; one replica's far-future ticks must not
//  crowd out the ones the honest replicas vouch for.
static void
s_test_startup_flood (int64_t deadline)
{
    qt_quorum_t *quorum = qt_quorum_new ("aggregator", 3, 1, deadline, 3);
    int64_t now = 1000;
    uint64_t tick;
    for (uint64_t k = 0; k < S_TEST_FLOOD_TICKS; k++) {
        qt_message_t *message = s_test_message ();
        qt_quorum_add (quorum, 3, 100000 + k, &message, now);
        qt_message_destroy (&message);
    }
    uint32_t completed = 0;
    for (uint64_t t = 1; t <= S_TEST_HONEST_TICKS; t++) {
        s_test_offer (quorum, 1, t, now, QT_QUORUM_ACCEPTED);
        qt_message_t *message = s_test_message ();
        qt_quorum_add (quorum, 3, 200000 + t, &message, now);
        qt_message_destroy (&message);
        s_test_offer (quorum, 2, t, now, QT_QUORUM_ACCEPTED);
        //  The liar is up (never missed a tick yet): waited for, then not
        if (!qt_quorum_ready (quorum, now, &tick))
            now += deadline;
        if (qt_quorum_ready (quorum, now, &tick) && tick == t) {
            qt_quorum_done (quorum, t);
            completed++;
        }
        now += 1;
    }
    QT_CHECK (completed == S_TEST_HONEST_TICKS);
    QT_CHECK (!qt_quorum_replica_up (quorum, 3));
    qt_quorum_destroy (&quorum);

    //  A full window (two liars of five at start, their far ticks, and
    //  honest ticks vouched by the three others but not yet processed): a
    //  new honest tick evicts a liar's far one, never a tick more than f
    //  replicas vouch for
    quorum = qt_quorum_new ("aggregator", 5, 2, deadline, 3);
    for (uint32_t liar = 4; liar <= 5; liar++)
        for (uint64_t k = 0; k < QT_QUORUM_SOLO_TICKS; k++)
            s_test_offer (quorum, liar, 100000 * liar + k, now, QT_QUORUM_ACCEPTED);
    uint64_t vouched = QT_QUORUM_WINDOW - 2 * QT_QUORUM_SOLO_TICKS;
    for (uint64_t t = 1; t <= vouched; t++)
        for (uint32_t r = 1; r <= 3; r++)
            s_test_offer (quorum, r, t, now, QT_QUORUM_ACCEPTED);
    s_test_offer (quorum, 1, vouched + 1, now, QT_QUORUM_ACCEPTED);
    QT_CHECK (qt_quorum_evicted (quorum) == 1);
    for (uint64_t t = 1; t <= vouched + 1; t++) {
        if (t > vouched) {
            s_test_offer (quorum, 2, t, now, QT_QUORUM_ACCEPTED);
            s_test_offer (quorum, 3, t, now, QT_QUORUM_ACCEPTED);
        }
        now += deadline;
        QT_CHECK (qt_quorum_ready (quorum, now, &tick) && tick == t);
        qt_quorum_done (quorum, t);
    }
    //  The liars' ticks left are outside the window now: gone
    QT_CHECK (qt_quorum_evicted (quorum) == 2 * QT_QUORUM_SOLO_TICKS);
    QT_CHECK (qt_quorum_timeout (quorum, now) == -1);
    qt_quorum_destroy (&quorum);

    //  A window full of vouched ticks this stage cannot process (a restart:
    //  its other upstream never delivered the oldest): the next tick takes
    //  the place of the furthest behind, a far-future one is refused
    quorum = qt_quorum_new ("aggregator", 3, 1, deadline, 3);
    for (uint64_t t = 1; t <= QT_QUORUM_WINDOW; t++)
        for (uint32_t r = 1; r <= 2; r++)
            s_test_offer (quorum, r, t, now, QT_QUORUM_ACCEPTED);
    s_test_offer (quorum, 3, 100000, now, QT_QUORUM_STALE);
    s_test_offer (quorum, 1, QT_QUORUM_WINDOW + 1, now, QT_QUORUM_ACCEPTED);
    QT_CHECK (qt_quorum_evicted (quorum) == 1);
    QT_CHECK (qt_quorum_slots (quorum, 1) == NULL && qt_quorum_slots (quorum, 2) != NULL);
    qt_quorum_destroy (&quorum);

    //  f = 2 liars of five collude: both vouch for the same far ticks, then
    //  one more between each honest tick; the honest ticks all complete
    quorum = qt_quorum_new ("aggregator", 5, 2, deadline, 3);
    for (uint64_t k = 0; k < S_TEST_FLOOD_TICKS; k++)
        for (uint32_t liar = 4; liar <= 5; liar++) {
            qt_message_t *message = s_test_message ();
            qt_quorum_add (quorum, liar, 100000 + k, &message, now);
            qt_message_destroy (&message);
        }
    completed = 0;
    for (uint64_t t = 1; t <= S_TEST_HONEST_TICKS; t++) {
        for (uint32_t r = 1; r <= 3; r++) {
            s_test_offer (quorum, r, t, now, QT_QUORUM_ACCEPTED);
            for (uint32_t liar = 4; liar <= 5; liar++) {
                qt_message_t *message = s_test_message ();
                qt_quorum_add (quorum, liar, 200000 + 10 * t + r, &message, now);
                qt_message_destroy (&message);
            }
        }
        if (!qt_quorum_ready (quorum, now, &tick))
            now += deadline;
        if (qt_quorum_ready (quorum, now, &tick) && tick == t) {
            qt_quorum_done (quorum, t);
            completed++;
        }
        now += 1;
    }
    QT_CHECK (completed == S_TEST_HONEST_TICKS);
    qt_quorum_destroy (&quorum);
}

//  A stage with two upstreams back from a cut: each upstream's window
//  resynchronised on its own replicas' ticks, one tick apart (the scorer:
//  beliefs resynchronised at 101, judgments at 102). The stage must go on
//  at the first tick both can deliver, not wait for ever on 101.
static void
s_test_two_upstreams (int64_t deadline)
{
    qt_quorum_t *quorums [2];
    quorums [0] = qt_quorum_new ("worldmodel", 3, 1, deadline, 3);
    quorums [1] = qt_quorum_new ("collector", 3, 1, deadline, 3);
    QT_CHECK (quorums [0] && quorums [1]);
    int64_t now = 1000;
    uint64_t tick;
    for (size_t u = 0; u < 2; u++) {
        for (uint32_t r = 1; r <= 3; r++)
            s_test_offer (quorums [u], r, 1, now, QT_QUORUM_ACCEPTED);
        qt_quorum_done (quorums [u], 1);
    }
    //  Far ahead in both: upstream 0 resynchronises on 101, upstream 1 on 102
    //  (one replica ahead is not enough: f + 1 are)
    for (size_t u = 0; u < 2; u++) {
        s_test_offer (quorums [u], 1, 101 + u, now, QT_QUORUM_STALE);
        s_test_offer (quorums [u], 2, 101 + u, now, QT_QUORUM_ACCEPTED);
        s_test_offer (quorums [u], 1, 101 + u, now, QT_QUORUM_ACCEPTED);
    }
    for (uint64_t t = 102; t <= 104; t++)
        for (uint32_t r = 1; r <= 2; r++)
            s_test_offer (quorums [0], r, t, now, QT_QUORUM_ACCEPTED);
    for (uint64_t t = 103; t <= 104; t++)
        for (uint32_t r = 1; r <= 2; r++)
            s_test_offer (quorums [1], r, t, now, QT_QUORUM_ACCEPTED);
    now += deadline;
    //  101 is ready in upstream 0 only: given up there, 102 goes on
    QT_CHECK (qt_quorum_ready (quorums [0], now, &tick) && tick == 101);
    QT_CHECK (!s_find (quorums [1], 101) || !s_pending_ready (quorums [1], s_find (quorums [1], 101), now));
    QT_CHECK (qt_quorum_ready_all (quorums, 2, now, &tick) && tick == 102);
    uint64_t skipped = qt_quorum_skipped (quorums [0]);
    for (uint64_t t = 102; t <= 104; t++) {
        QT_CHECK (qt_quorum_ready_all (quorums, 2, now, &tick) && tick == t);
        qt_quorum_done (quorums [0], t);
        qt_quorum_done (quorums [1], t);
    }
    QT_CHECK (qt_quorum_skipped (quorums [0]) == skipped);
    QT_CHECK (!qt_quorum_ready_all (quorums, 2, now, &tick));
    //  Skipping counted no miss: replica 3 (absent since tick 1) is down
    //  after its 3 misses of 102..104, the others up
    QT_CHECK (qt_quorum_replica_up (quorums [0], 1) && qt_quorum_replica_up (quorums [0], 2));
    //  One upstream with nothing ready: nothing is, and nothing is given up
    for (uint32_t r = 1; r <= 2; r++)
        s_test_offer (quorums [0], r, 105, now, QT_QUORUM_ACCEPTED);
    QT_CHECK (!qt_quorum_ready_all (quorums, 2, now, &tick));
    QT_CHECK (qt_quorum_slots (quorums [0], 105) != NULL);
    for (uint32_t r = 1; r <= 2; r++)
        s_test_offer (quorums [1], r, 105, now, QT_QUORUM_ACCEPTED);
    now += deadline;
    QT_CHECK (qt_quorum_ready_all (quorums, 2, now, &tick) && tick == 105);
    qt_quorum_destroy (&quorums [0]);
    qt_quorum_destroy (&quorums [1]);
}

//  A message carrying a value: its sender pointer is the tag the test's
//  agreement compares (the quorum never reads a message's contents)
static void
s_test_offer_value (qt_quorum_t *quorum, uint32_t replica, uint64_t tick, int64_t now,
                    uintptr_t value)
{
    qt_message_t *message = s_test_message ();
    message->sender = (const qt_trust_entry_t *) value;
    QT_CHECK (qt_quorum_add (quorum, replica, tick, &message, now) == QT_QUORUM_ACCEPTED);
}

static bool
s_test_agree (void *ctx, const qt_message_t *a, const qt_message_t *b)
{
    (*(int *) ctx)++;
    return a->sender == b->sender;
}

//  Agreement: past the deadline, a tick waits for f + 1 agreeing replicas
//  (or all n, or the agreement wait), so a liar and one honest replica
//  never make a tick while the other honest one is merely late
static void
s_test_agreement (int64_t deadline)
{
    const int64_t wait = 4 * deadline;
    const uintptr_t honest = 0x10, lie = 0x20;
    int compared = 0;
    qt_quorum_t *quorum = qt_quorum_new ("worldmodel", 3, 1, deadline, 3);
    qt_quorum_set_agreement (quorum, s_test_agree, &compared, wait);
    uint64_t tick;
    bool members [QT_QUORUM_MAX_REPLICAS];
    int64_t now = 1000;

    //  The liar and one honest replica by the deadline: not ready; waits
    //  for the agreement, not "holding"; the late honest one makes it
    s_test_offer_value (quorum, 1, 1, now, honest);
    s_test_offer_value (quorum, 3, 1, now, lie);
    now += deadline;
    QT_CHECK (!qt_quorum_ready (quorum, now, &tick));
    QT_CHECK (!qt_quorum_holding (quorum));
    QT_CHECK (qt_quorum_timeout (quorum, now) == wait);
    int before = compared;
    QT_CHECK (!qt_quorum_ready (quorum, now + wait - 1, &tick));
    QT_CHECK (compared == before);          //  computed once per arrival
    QT_CHECK (qt_quorum_agreement (quorum, 1, members) == 1);
    s_test_offer_value (quorum, 2, 1, now + 1, honest);
    QT_CHECK (qt_quorum_ready (quorum, now + 1, &tick) && tick == 1);
    QT_CHECK (qt_quorum_agreement (quorum, 1, members) == 2);
    QT_CHECK (members [0] && members [1] && !members [2]);
    qt_quorum_done (quorum, 1);
    now += 10;

    //  Two honest by the deadline, the liar late: ready at the deadline
    s_test_offer_value (quorum, 1, 2, now, honest);
    s_test_offer_value (quorum, 2, 2, now, honest);
    QT_CHECK (!qt_quorum_ready (quorum, now, &tick));
    now += deadline;
    QT_CHECK (qt_quorum_ready (quorum, now, &tick) && tick == 2);
    qt_quorum_done (quorum, 2);
    QT_CHECK (qt_quorum_unagreed (quorum) == 0);
    now += 10;

    //  Two faults (the other honest one gone): after the agreement wait the
    //  tick goes on without, counted
    s_test_offer_value (quorum, 1, 3, now, honest);
    s_test_offer_value (quorum, 3, 3, now, lie);
    now += deadline + wait - 1;
    QT_CHECK (!qt_quorum_ready (quorum, now, &tick));
    now += 1;
    QT_CHECK (qt_quorum_ready (quorum, now, &tick) && tick == 3);
    qt_quorum_done (quorum, 3);
    QT_CHECK (qt_quorum_unagreed (quorum) == 1);

    //  Off: the deadline alone decides, as before
    qt_quorum_set_agreement (quorum, NULL, NULL, 0);
    now += 10;
    s_test_offer_value (quorum, 1, 4, now, honest);
    s_test_offer_value (quorum, 3, 4, now, lie);
    now += deadline;
    QT_CHECK (qt_quorum_ready (quorum, now, &tick) && tick == 4);
    QT_CHECK (qt_quorum_agreement (quorum, 4, members) == 0);
    qt_quorum_done (quorum, 4);
    QT_CHECK (qt_quorum_unagreed (quorum) == 1);
    qt_quorum_destroy (&quorum);
}

void
qt_quorum_test (bool verbose)
{
    if (verbose)
        printf (" * qt_quorum: ");
    const int64_t deadline = 50;
    QT_CHECK (!qt_quorum_new ("rewarder", 2, 1, deadline, 3));     //  n < 2f + 1
    qt_quorum_t *quorum = qt_quorum_new ("rewarder", 3, 1, deadline, 3);
    QT_CHECK (quorum);
    uint64_t tick;
    int64_t now = 1000;

    //  All three arrive: ready at once
    s_test_offer (quorum, 1, 1, now, QT_QUORUM_ACCEPTED);
    s_test_offer (quorum, 2, 1, now, QT_QUORUM_ACCEPTED);
    QT_CHECK (!qt_quorum_ready (quorum, now, &tick));
    QT_CHECK (qt_quorum_timeout (quorum, now) == deadline);
    s_test_offer (quorum, 2, 1, now, QT_QUORUM_DUPLICATE);
    s_test_offer (quorum, 4, 1, now, QT_QUORUM_UNKNOWN_REPLICA);
    s_test_offer (quorum, 3, 1, now, QT_QUORUM_ACCEPTED);
    QT_CHECK (qt_quorum_ready (quorum, now, &tick) && tick == 1);
    QT_CHECK (qt_quorum_slots (quorum, 1) [2] != NULL);
    qt_quorum_done (quorum, 1);
    s_test_offer (quorum, 3, 1, now, QT_QUORUM_LATE);
    QT_CHECK (qt_quorum_late (quorum) == 1);

    //  Replica 3 silent: each tick waits one deadline, then proceeds with 2;
    //  after 3 misses it is down and no longer waited for
    for (uint64_t t = 2; t <= 4; t++) {
        now += 10;
        s_test_offer (quorum, 1, t, now, QT_QUORUM_ACCEPTED);
        s_test_offer (quorum, 2, t, now, QT_QUORUM_ACCEPTED);
        QT_CHECK (!qt_quorum_ready (quorum, now, &tick));
        now += deadline;
        QT_CHECK (qt_quorum_ready (quorum, now, &tick) && tick == t);
        qt_quorum_done (quorum, t);
    }
    QT_CHECK (!qt_quorum_replica_up (quorum, 3));
    QT_CHECK (qt_quorum_replica_up (quorum, 1) && qt_quorum_replica_up (quorum, 2));
    s_test_offer (quorum, 1, 5, now, QT_QUORUM_ACCEPTED);
    s_test_offer (quorum, 2, 5, now, QT_QUORUM_ACCEPTED);
    QT_CHECK (qt_quorum_ready (quorum, now, &tick) && tick == 5);    //  no deadline paid
    qt_quorum_done (quorum, 5);

    //  It speaks about the past (a backlog after a stall): still down
    s_test_offer (quorum, 3, 4, now, QT_QUORUM_LATE);
    QT_CHECK (!qt_quorum_replica_up (quorum, 3));

    //  About the tick just processed: caught up (only a little slower than
    //  its peers), re-admitted though its message itself is late
    s_test_offer (quorum, 3, 5, now, QT_QUORUM_LATE);
    QT_CHECK (qt_quorum_replica_up (quorum, 3));

    //  And waited for from then on
    s_test_offer (quorum, 3, 6, now, QT_QUORUM_ACCEPTED);
    QT_CHECK (qt_quorum_replica_up (quorum, 3));
    s_test_offer (quorum, 1, 6, now, QT_QUORUM_ACCEPTED);
    QT_CHECK (!qt_quorum_ready (quorum, now, &tick));
    s_test_offer (quorum, 2, 6, now, QT_QUORUM_ACCEPTED);
    QT_CHECK (qt_quorum_ready (quorum, now, &tick) && tick == 6);
    qt_quorum_done (quorum, 6);

    //  Below quorum: holds past the deadline, proceeds when enough arrive
    s_test_offer (quorum, 1, 7, now, QT_QUORUM_ACCEPTED);
    now += 2 * deadline;
    QT_CHECK (!qt_quorum_ready (quorum, now, &tick));
    QT_CHECK (qt_quorum_holding (quorum));
    QT_CHECK (qt_quorum_timeout (quorum, now) == -1);
    s_test_offer (quorum, 2, 7, now, QT_QUORUM_ACCEPTED);
    QT_CHECK (qt_quorum_ready (quorum, now, &tick) && tick == 7);
    QT_CHECK (!qt_quorum_holding (quorum));
    qt_quorum_done (quorum, 7);

    //  A stuck older tick is skipped when a newer one completes
    s_test_offer (quorum, 1, 8, now, QT_QUORUM_ACCEPTED);
    for (uint32_t r = 1; r <= 3; r++)
        s_test_offer (quorum, r, 9, now, QT_QUORUM_ACCEPTED);
    QT_CHECK (qt_quorum_ready (quorum, now, &tick) && tick == 9);
    qt_quorum_done (quorum, 9);
    QT_CHECK (qt_quorum_skipped (quorum) == 1);
    s_test_offer (quorum, 2, 8, now, QT_QUORUM_LATE);

    //  This stage fell behind (its host was cut off): once f + 1 replicas
    //  are past the window it resynchronises on the lowest of their ticks
    s_test_offer (quorum, 1, 10, now, QT_QUORUM_ACCEPTED);
    uint64_t skipped = qt_quorum_skipped (quorum);
    s_test_offer (quorum, 2, 100, now, QT_QUORUM_STALE);
    QT_CHECK (quorum->have_last && quorum->last == 9);
    s_test_offer (quorum, 1, 101, now, QT_QUORUM_ACCEPTED);
    QT_CHECK (qt_quorum_skipped (quorum) == skipped + 1);       //  tick 10, pending
    QT_CHECK (quorum->have_last && quorum->last == 99);
    s_test_offer (quorum, 3, 50, now, QT_QUORUM_LATE);
    s_test_offer (quorum, 2, 101, now, QT_QUORUM_ACCEPTED);
    s_test_offer (quorum, 3, 101, now, QT_QUORUM_ACCEPTED);
    QT_CHECK (qt_quorum_ready (quorum, now, &tick) && tick == 101);
    qt_quorum_done (quorum, 101);

    //  Far future ticks are refused from f replicas; a flood of ticks
    //  within the window holds no more than QT_QUORUM_SOLO_TICKS
    s_test_offer (quorum, 1, 101 + QT_QUORUM_WINDOW + 1, now, QT_QUORUM_STALE);
    for (uint64_t t = 102; t <= 101 + QT_QUORUM_WINDOW; t++)
        s_test_offer (quorum, 1, t, now, t < 102 + QT_QUORUM_SOLO_TICKS
                      ? QT_QUORUM_ACCEPTED : QT_QUORUM_STALE);
    QT_CHECK (quorum->have_last && quorum->last == 101);
    //  ... and the others' ticks still find room
    s_test_offer (quorum, 2, 102 + QT_QUORUM_SOLO_TICKS, now, QT_QUORUM_ACCEPTED);

    qt_quorum_destroy (&quorum);
    qt_quorum_destroy (&quorum);

    s_test_readmission (deadline);
    s_test_agreement (deadline);
    s_test_startup_flood (deadline);
    s_test_two_upstreams (deadline);
    if (verbose)
        printf ("OK\n");
}
