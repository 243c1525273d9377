/*  qt_reputation: per replica, a shift register of far ticks and the ladder
    state; see qt_reputation.h for the rules and their constants.
*/
#include "quintet.h"
#include "qt_selftest.h"
#include <float.h>

#define S_REASON_SIZE 128

typedef struct {
    qt_reputation_status_t status;
    uint64_t far_bits;          //  bit k: far k reported ticks ago
    uint32_t seen;              //  reported ticks in the window
    uint64_t excluded_until;    //  tick the exclusion ends (EXCLUDED)
    uint64_t probation_until;   //  tick the probation ends (PROBATION)
    uint64_t exclude_ticks;     //  length of the next exclusion
    double distance;            //  EWMA of reported distances
    bool have_distance;
    char reason [S_REASON_SIZE];
    uint64_t resets [QT_REPUTATION_RESETS];     //  ticks of its last record resets
    uint32_t reset_count;       //  resets ever (the ring holds the last ones)
    bool refused_logged;        //  a refused reset was logged (once per window)
} s_replica_t;

struct _qt_reputation_t {
    char *role;
    uint32_t replicas;
    uint32_t faults;
    uint64_t tick;              //  the last tick updated
    s_replica_t replica [QT_QUORUM_MAX_REPLICAS];
};

qt_reputation_t *
qt_reputation_new (const char *role, uint32_t replicas, uint32_t faults)
{
    if (replicas == 0 || replicas > QT_QUORUM_MAX_REPLICAS)
        return NULL;
    qt_reputation_t *self = (qt_reputation_t *) zmalloc (sizeof (qt_reputation_t));
    self->role = strdup (role ? role : "?");
    self->replicas = replicas;
    self->faults = faults;
    for (uint32_t r = 0; r < replicas; r++)
        self->replica [r].exclude_ticks = QT_REPUTATION_EXCLUDE_TICKS;
    return self;
}

void
qt_reputation_destroy (qt_reputation_t **self_p)
{
    assert (self_p);
    qt_reputation_t *self = *self_p;
    if (!self)
        return;
    free (self->role);
    free (self);
    *self_p = NULL;
}

const char *
qt_reputation_status_name (qt_reputation_status_t status)
{
    switch (status) {
        case QT_REPUTATION_OK: return "ok";
        case QT_REPUTATION_WARNED: return "warned";
        case QT_REPUTATION_DOWN_WEIGHTED: return "down-weighted";
        case QT_REPUTATION_EXCLUDED: return "excluded";
        case QT_REPUTATION_PROBATION: return "probation";
    }
    return "?";
}

static double
s_status_weight (qt_reputation_status_t status)
{
    if (status == QT_REPUTATION_EXCLUDED)
        return 0;
    if (status == QT_REPUTATION_DOWN_WEIGHTED || status == QT_REPUTATION_PROBATION)
        return QT_REPUTATION_DOWN_WEIGHT;
    return 1;
}

static uint32_t
s_far_count (const s_replica_t *replica)
{
    return (uint32_t) __builtin_popcountll (replica->far_bits);
}

uint32_t
qt_reputation_excluded (qt_reputation_t *self)
{
    uint32_t excluded = 0;
    for (uint32_t r = 0; r < self->replicas; r++)
        excluded += self->replica [r].status == QT_REPUTATION_EXCLUDED;
    return excluded;
}

//  Moves a replica to a new status and logs the transition, once
static void
s_move (qt_reputation_t *self, uint32_t index, uint64_t tick, qt_reputation_status_t status,
        const char *cause, const char *fmt, ...)
    __attribute__ ((format (printf, 6, 7)));

static void
s_move (qt_reputation_t *self, uint32_t index, uint64_t tick, qt_reputation_status_t status,
        const char *cause, const char *fmt, ...)
{
    s_replica_t *replica = &self->replica [index];
    qt_reputation_status_t was = replica->status;
    replica->status = status;
    va_list args;
    va_start (args, fmt);
    vsnprintf (replica->reason, sizeof replica->reason, fmt, args);
    va_end (args);
    if (status == QT_REPUTATION_OK)
        replica->reason [0] = 0;
    if (status == was)
        return;
    char peer [64];
    snprintf (peer, sizeof peer, "%s-%u", self->role, index + 1);
    int priority = status == QT_REPUTATION_OK || status == QT_REPUTATION_PROBATION
                 ? LOG_NOTICE : LOG_WARNING;
    qt_log_event (priority, status == QT_REPUTATION_EXCLUDED ? QT_MSG_REPLICA_EXCLUDED : NULL,
                  tick, peer, cause, "replica %s: %s -> %s (weight %g): %s", peer,
                  qt_reputation_status_name (was), qt_reputation_status_name (status),
                  s_status_weight (status), status == QT_REPUTATION_OK ? "recovered" : replica->reason);
}

//  The ladder for a replica that is neither excluded nor on probation
static void
s_climb (qt_reputation_t *self, uint32_t index, uint64_t tick)
{
    s_replica_t *replica = &self->replica [index];
    uint32_t far = s_far_count (replica);
    if (far >= QT_REPUTATION_EXCLUDE_AT) {
        if (qt_reputation_excluded (self) < self->faults) {
            replica->excluded_until = tick + replica->exclude_ticks;
            s_move (self, index, tick, QT_REPUTATION_EXCLUDED, "far-from-aggregate",
                    "far from the aggregate in %u of the last %u ticks; excluded for %" PRIu64 " ticks",
                    far, replica->seen, replica->exclude_ticks);
        }
        else
            s_move (self, index, tick, QT_REPUTATION_DOWN_WEIGHTED, "exclusion-capped",
                    "far from the aggregate in %u of the last %u ticks; not excluded: %u of f = %u already are",
                    far, replica->seen, qt_reputation_excluded (self), self->faults);
    }
    else
    if (far >= QT_REPUTATION_DOWN_AT)
        s_move (self, index, tick, QT_REPUTATION_DOWN_WEIGHTED, "far-from-aggregate",
                "far from the aggregate in %u of the last %u ticks", far, replica->seen);
    else
    if (far >= QT_REPUTATION_WARN_AT)
        s_move (self, index, tick, QT_REPUTATION_WARNED, "far-from-aggregate",
                "far from the aggregate in %u of the last %u ticks", far, replica->seen);
    else
        s_move (self, index, tick, QT_REPUTATION_OK, "recovered", "%s", "");
}

bool
qt_reputation_restarted (qt_reputation_t *self, uint32_t replica)
{
    if (replica < 1 || replica > self->replicas)
        return false;
    uint32_t index = replica - 1;
    s_replica_t *state = &self->replica [index];
    uint64_t tick = self->tick;
    //  The budget: at most QT_REPUTATION_RESETS within QT_REPUTATION_RESET_TICKS
    //  (the oldest of the last ones must be that old), so a liar restarting to
    //  launder its record gains a few probation ticks per window, no more
    if (state->reset_count >= QT_REPUTATION_RESETS) {
        uint64_t oldest = state->resets [state->reset_count % QT_REPUTATION_RESETS];
        if (tick < oldest + QT_REPUTATION_RESET_TICKS) {
            if (!state->refused_logged) {
                char peer [64];
                snprintf (peer, sizeof peer, "%s-%u", self->role, replica);
                qt_log_event (LOG_WARNING, NULL, tick, peer, "restart-budget",
                              "replica %s restarted again: %d restarts within %d ticks, its record "
                              "(%s) is kept", peer, QT_REPUTATION_RESETS, QT_REPUTATION_RESET_TICKS,
                              qt_reputation_status_name (state->status));
                state->refused_logged = true;
            }
            return false;
        }
    }
    state->resets [state->reset_count % QT_REPUTATION_RESETS] = tick;
    state->reset_count++;
    state->refused_logged = false;
    //  A new member: what its previous process did is not held against it,
    //  beyond a probation if it was not ok. The length of its next
    //  exclusion is kept: a relapse doubles it, as any relapse does.
    state->far_bits = 0;
    state->seen = 0;
    state->have_distance = false;
    if (state->status != QT_REPUTATION_OK) {
        state->probation_until = tick + QT_REPUTATION_PROBATION_TICKS;
        s_move (self, index, tick, QT_REPUTATION_PROBATION, "restarted",
                "restarted (a new process epoch): on probation for %d ticks",
                QT_REPUTATION_PROBATION_TICKS);
    }
    return true;
}

void
qt_reputation_update (qt_reputation_t *self, uint64_t tick, const double *distance)
{
    self->tick = tick;
    double median = qt_median (distance, self->replicas);
    double scale = isfinite (median) && median > QT_REPUTATION_FLOOR ? median : QT_REPUTATION_FLOOR;
    double threshold = QT_REPUTATION_FAR_RATIO * scale;
    uint64_t mask = QT_REPUTATION_WINDOW >= 64 ? UINT64_MAX : (UINT64_C (1) << QT_REPUTATION_WINDOW) - 1;
    for (uint32_t r = 0; r < self->replicas; r++) {
        s_replica_t *replica = &self->replica [r];
        bool reported = !isnan (distance [r]);
        if (reported) {
            bool far = distance [r] > threshold;      //  +inf is far
            replica->far_bits = ((replica->far_bits << 1) | (far ? 1 : 0)) & mask;
            if (replica->seen < QT_REPUTATION_WINDOW)
                replica->seen++;
            double shown = isfinite (distance [r]) ? distance [r] : DBL_MAX;
            replica->distance = replica->have_distance
                ? replica->distance + QT_REPUTATION_SMOOTHING * (shown - replica->distance) : shown;
            replica->have_distance = true;
        }
        if (replica->status == QT_REPUTATION_EXCLUDED) {
            if (tick >= replica->excluded_until) {
                replica->far_bits = 0;      //  a fresh window for the probation
                replica->seen = 0;
                replica->probation_until = tick + QT_REPUTATION_PROBATION_TICKS;
                s_move (self, r, tick, QT_REPUTATION_PROBATION, "exclusion-ended",
                        "exclusion ended; on probation for %d ticks", QT_REPUTATION_PROBATION_TICKS);
            }
        }
        else
        if (replica->status == QT_REPUTATION_PROBATION) {
            uint32_t far = s_far_count (replica);
            if (far >= QT_REPUTATION_WARN_AT && qt_reputation_excluded (self) < self->faults) {
                if (replica->exclude_ticks * 2 <= QT_REPUTATION_EXCLUDE_MAX)
                    replica->exclude_ticks *= 2;
                replica->excluded_until = tick + replica->exclude_ticks;
                s_move (self, r, tick, QT_REPUTATION_EXCLUDED, "relapse",
                        "far from the aggregate in %u ticks on probation; excluded for %" PRIu64 " ticks",
                        far, replica->exclude_ticks);
            }
            else
            if (far < QT_REPUTATION_WARN_AT && tick >= replica->probation_until) {
                replica->exclude_ticks = QT_REPUTATION_EXCLUDE_TICKS;
                s_move (self, r, tick, QT_REPUTATION_OK, "probation-passed", "%s", "");
            }
        }
        else
        if (reported)
            s_climb (self, r, tick);
    }
}

uint32_t
qt_reputation_weights (qt_reputation_t *self, const bool *present, double *weight)
{
    uint32_t used = 0, needed = self->replicas - MIN (self->faults, self->replicas);
    uint32_t present_count = 0;
    for (uint32_t r = 0; r < self->replicas; r++) {
        weight [r] = s_status_weight (self->replica [r].status);
        if (!present || present [r]) {
            present_count++;
            used += weight [r] > 0;
        }
    }
    if (needed > present_count)
        needed = present_count;
    while (used < needed) {
        //  Re-admit the present excluded replica with the fewest far ticks
        uint32_t best = self->replicas;
        for (uint32_t r = 0; r < self->replicas; r++)
            if ((!present || present [r]) && weight [r] == 0
            &&  (best == self->replicas
                 || s_far_count (&self->replica [r]) < s_far_count (&self->replica [best])))
                best = r;
        if (best == self->replicas)
            break;
        weight [best] = QT_REPUTATION_DOWN_WEIGHT;
        used++;
    }
    uint32_t not_one = 0;
    for (uint32_t r = 0; r < self->replicas; r++)
        not_one += (!present || present [r]) && weight [r] != 1;
    return not_one;
}

qt_reputation_status_t
qt_reputation_status (qt_reputation_t *self, uint32_t replica)
{
    return replica >= 1 && replica <= self->replicas ? self->replica [replica - 1].status
                                                     : QT_REPUTATION_OK;
}

const char *
qt_reputation_reason (qt_reputation_t *self, uint32_t replica)
{
    return replica >= 1 && replica <= self->replicas ? self->replica [replica - 1].reason : "";
}



//  --------------------------------------------------------------------------
//  Selftest

//  Ticks of lies (distance 0.3 while the others are at 0) from replica 2 of 3
static void
s_test_lies (qt_reputation_t *reputation, uint64_t *tick, uint32_t ticks, uint32_t *weighted)
{
    double weight [3];
    for (uint32_t k = 0; k < ticks; k++) {
        qt_reputation_weights (reputation, NULL, weight);
        *weighted += weight [1] > 0;
        double lie [3] = { 0, 0.3, 0 };
        qt_reputation_update (reputation, ++*tick, lie);
    }
}

//  Issue 8: a routine restart (a new epoch) must not cost an honest
//  replica the fault budget for good; a liar restarting to launder its
//  record gains a few probation ticks per window, no more
static void
s_test_restarts (void)
{
    //  Honest, restarted while excluded (a world model restarted from its
    //  prior, say, far until it was restarted right): on probation at
    //  once, ok after it, instead of serving the exclusion out
    qt_reputation_t *reputation = qt_reputation_new ("worldmodel", 3, 1);
    uint64_t tick = 0;
    uint32_t weighted = 0;
    s_test_lies (reputation, &tick, QT_REPUTATION_EXCLUDE_AT, &weighted);
    QT_CHECK (qt_reputation_status (reputation, 2) == QT_REPUTATION_EXCLUDED);
    QT_CHECK (qt_reputation_restarted (reputation, 2));
    QT_CHECK (qt_reputation_status (reputation, 2) == QT_REPUTATION_PROBATION);
    double weights [3];
    QT_CHECK (qt_reputation_weights (reputation, NULL, weights) == 1
           && weights [1] == QT_REPUTATION_DOWN_WEIGHT);
    QT_CHECK (strstr (qt_reputation_reason (reputation, 2), "restarted"));
    double honest [3] = { 0, 0, 0 };
    for (uint32_t k = 0; k <= QT_REPUTATION_PROBATION_TICKS; k++)
        qt_reputation_update (reputation, ++tick, honest);
    QT_CHECK (qt_reputation_status (reputation, 2) == QT_REPUTATION_OK);
    QT_CHECK (qt_reputation_weights (reputation, NULL, weights) == 0);
    //  An ok replica restarting stays ok
    QT_CHECK (qt_reputation_restarted (reputation, 1));
    QT_CHECK (qt_reputation_status (reputation, 1) == QT_REPUTATION_OK);
    qt_reputation_destroy (&reputation);

    //  A liar restarting whenever it is excluded: each restart within the
    //  budget buys probation, where it relapses (excluded again, for twice
    //  as long); beyond the budget its record stays. Over the window it is
    //  in the combination for a bounded number of ticks.
    reputation = qt_reputation_new ("worldmodel", 3, 1);
    tick = 0;
    weighted = 0;
    s_test_lies (reputation, &tick, QT_REPUTATION_EXCLUDE_AT, &weighted);
    uint32_t granted = 0;
    for (uint32_t restart = 0; restart < 4 * QT_REPUTATION_RESETS; restart++) {
        QT_CHECK (qt_reputation_status (reputation, 2) == QT_REPUTATION_EXCLUDED);
        granted += qt_reputation_restarted (reputation, 2);
        s_test_lies (reputation, &tick, QT_REPUTATION_WARN_AT, &weighted);
    }
    QT_CHECK (granted == QT_REPUTATION_RESETS);
    QT_CHECK (qt_reputation_status (reputation, 2) == QT_REPUTATION_EXCLUDED);
    QT_CHECK (weighted <= QT_REPUTATION_EXCLUDE_AT + QT_REPUTATION_RESETS * QT_REPUTATION_WARN_AT);
    //  Once the window has passed, a restart is a fresh start again
    s_test_lies (reputation, &tick, QT_REPUTATION_RESET_TICKS, &weighted);
    QT_CHECK (qt_reputation_restarted (reputation, 2));
    QT_CHECK (qt_reputation_status (reputation, 2) == QT_REPUTATION_PROBATION);
    qt_reputation_destroy (&reputation);
}

void
qt_reputation_test (bool verbose)
{
    if (verbose)
        printf (" * qt_reputation: ");
    //  @selftest
    //  All honest: every distance is exactly 0, nothing ever moves
    qt_reputation_t *reputation = qt_reputation_new ("rewarder", 5, 2);
    QT_CHECK (reputation);
    double distance [5] = { 0, 0, 0, 0, 0 };
    double weight [5];
    for (uint64_t tick = 1; tick <= 1000; tick++) {
        qt_reputation_update (reputation, tick, distance);
        QT_CHECK (qt_reputation_weights (reputation, NULL, weight) == 0);
    }
    for (uint32_t r = 1; r <= 5; r++) {
        QT_CHECK (qt_reputation_status (reputation, r) == QT_REPUTATION_OK);
        QT_CHECK (streq (qt_reputation_reason (reputation, r), ""));
    }
    //  Honest spread (not bit-identical replicas): distances of the same
    //  order are never far, whatever the scale
    for (uint64_t tick = 1001; tick <= 1200; tick++) {
        for (uint32_t r = 0; r < 5; r++)
            distance [r] = 1e3 * (1 + (double) ((tick + r) % 3));
        qt_reputation_update (reputation, tick, distance);
    }
    for (uint32_t r = 1; r <= 5; r++)
        QT_CHECK (qt_reputation_status (reputation, r) == QT_REPUTATION_OK);

    //  Replica 2 lies persistently: warned, down-weighted, then excluded
    //  within QT_REPUTATION_EXCLUDE_AT ticks
    uint64_t tick = 2000;
    uint64_t warned_at = 0, down_at = 0, excluded_at = 0;
    for (uint32_t k = 0; k < QT_REPUTATION_EXCLUDE_AT; k++) {
        tick++;
        double lie [5] = { 0, 0.3, 0, 0, 0 };
        qt_reputation_update (reputation, tick, lie);
        qt_reputation_status_t status = qt_reputation_status (reputation, 2);
        if (status == QT_REPUTATION_WARNED && !warned_at)
            warned_at = tick;
        if (status == QT_REPUTATION_DOWN_WEIGHTED && !down_at)
            down_at = tick;
        if (status == QT_REPUTATION_EXCLUDED && !excluded_at)
            excluded_at = tick;
    }
    QT_CHECK (warned_at && down_at && excluded_at && warned_at < down_at && down_at < excluded_at);
    QT_CHECK (excluded_at - 2000 == QT_REPUTATION_EXCLUDE_AT);
    QT_CHECK (strstr (qt_reputation_reason (reputation, 2), "far from the aggregate"));
    QT_CHECK (qt_reputation_weights (reputation, NULL, weight) == 1 && weight [1] == 0);
    for (uint32_t r = 1; r <= 5; r++)
        QT_CHECK (r == 2 || qt_reputation_status (reputation, r) == QT_REPUTATION_OK);

    //  A second liar (f = 2) is excluded too; a third cannot be
    for (uint32_t k = 0; k < QT_REPUTATION_EXCLUDE_AT; k++) {
        double lie [5] = { 0, 0.3, 0.7, 0, 0 };
        qt_reputation_update (reputation, ++tick, lie);
    }
    QT_CHECK (qt_reputation_status (reputation, 3) == QT_REPUTATION_EXCLUDED);
    QT_CHECK (qt_reputation_excluded (reputation) == 2);
    for (uint32_t k = 0; k < QT_REPUTATION_EXCLUDE_AT; k++) {
        double lie [5] = { 0, 0.3, 0.7, 0, 5 };     //  median 0.3: only 5 is far
        qt_reputation_update (reputation, ++tick, lie);
    }
    QT_CHECK (qt_reputation_excluded (reputation) == 2);
    QT_CHECK (qt_reputation_status (reputation, 5) == QT_REPUTATION_DOWN_WEIGHTED);
    QT_CHECK (strstr (qt_reputation_reason (reputation, 5), "not excluded"));
    //  Used never below n - f: with replica 4 absent, one liar is re-admitted
    //  at the down weight for the tick
    bool present [5] = { true, true, true, false, true };
    qt_reputation_weights (reputation, present, weight);
    uint32_t used = 0;
    for (uint32_t r = 0; r < 5; r++)
        used += present [r] && weight [r] > 0;
    QT_CHECK (used == 3);
    QT_CHECK (weight [1] == QT_REPUTATION_DOWN_WEIGHT || weight [2] == QT_REPUTATION_DOWN_WEIGHT);

    //  The liars stop: after the exclusion, probation, then ok
    for (uint32_t k = 0; k < QT_REPUTATION_EXCLUDE_TICKS + QT_REPUTATION_PROBATION_TICKS + 2; k++) {
        double honest [5] = { 0, 0, 0, 0, 0 };
        qt_reputation_update (reputation, ++tick, honest);
        if (k == QT_REPUTATION_EXCLUDE_TICKS)
            QT_CHECK (qt_reputation_status (reputation, 2) == QT_REPUTATION_PROBATION);
    }
    for (uint32_t r = 1; r <= 5; r++)
        QT_CHECK (qt_reputation_status (reputation, r) == QT_REPUTATION_OK);
    QT_CHECK (qt_reputation_weights (reputation, NULL, weight) == 0);

    //  A relapse on probation: excluded again, for twice as long
    for (uint32_t k = 0; k < QT_REPUTATION_EXCLUDE_AT; k++) {
        double lie [5] = { 0, 0.3, 0, 0, 0 };
        qt_reputation_update (reputation, ++tick, lie);
    }
    QT_CHECK (qt_reputation_status (reputation, 2) == QT_REPUTATION_EXCLUDED);
    for (uint32_t k = 0; k < QT_REPUTATION_EXCLUDE_TICKS; k++) {
        double absent [5] = { 0, NAN, 0, 0, 0 };
        qt_reputation_update (reputation, ++tick, absent);
    }
    QT_CHECK (qt_reputation_status (reputation, 2) == QT_REPUTATION_PROBATION);
    for (uint32_t k = 0; k < QT_REPUTATION_WARN_AT; k++) {
        double lie [5] = { 0, 0.3, 0, 0, 0 };
        qt_reputation_update (reputation, ++tick, lie);
    }
    QT_CHECK (qt_reputation_status (reputation, 2) == QT_REPUTATION_EXCLUDED);
    QT_CHECK (strstr (qt_reputation_reason (reputation, 2), "probation"));
    qt_reputation_destroy (&reputation);
    QT_CHECK (reputation == NULL);
    qt_reputation_destroy (&reputation);

    s_test_restarts ();

    //  f = 0 (no fault tolerated): down-weighted at worst, never excluded
    reputation = qt_reputation_new ("actor", 3, 0);
    for (uint64_t t = 1; t <= 100; t++) {
        double lie [3] = { 0, 1, 0 };
        qt_reputation_update (reputation, t, lie);
    }
    QT_CHECK (qt_reputation_status (reputation, 2) == QT_REPUTATION_DOWN_WEIGHTED);
    QT_CHECK (qt_reputation_weights (reputation, NULL, weight) == 1 && weight [1] > 0);
    qt_reputation_destroy (&reputation);
    QT_CHECK (qt_reputation_new ("x", 0, 0) == NULL);
    //  @end
    if (verbose)
        printf ("OK\n");
}
