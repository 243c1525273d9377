/*  qt_reputation: how far each upstream replica has been from the robust
    aggregate lately, and what the consumer does about it.

    One per upstream role of a stage (qt_stage owns them). After combining a
    tick, the role reports each present replica's distance to the aggregate
    it computed; a distance is "far" when it exceeds
        QT_REPUTATION_FAR_RATIO x max (median distance of the tick, QT_REPUTATION_FLOOR)
    so the test is scale-free (relative to the honest replicas' spread: with
    at most f < n/2 liars the median distance is an honest one) and the
    absolute floor covers the all-agree case, where every honest distance is
    exactly 0. Over the last QT_REPUTATION_WINDOW ticks a replica reported,
    the count of far ticks drives a ladder:

        ok -> warned (>= QT_REPUTATION_WARN_AT far ticks)
           -> down-weighted (>= QT_REPUTATION_DOWN_AT: weight QT_REPUTATION_DOWN_WEIGHT)
           -> excluded (>= QT_REPUTATION_EXCLUDE_AT: weight 0) for
              QT_REPUTATION_EXCLUDE_TICKS ticks (doubled on each relapse, up to
              QT_REPUTATION_EXCLUDE_MAX)
           -> probation (weight QT_REPUTATION_DOWN_WEIGHT) for
              QT_REPUTATION_PROBATION_TICKS ticks -> ok; back to excluded if it
              is far QT_REPUTATION_WARN_AT times during probation.

    A restarted replica (a new process epoch) is a new member: its record
    of far ticks is cleared and, unless it was ok, it goes on probation at
    once (an honest replica restarted while excluded is back within
    QT_REPUTATION_PROBATION_TICKS instead of serving the exclusion out).
    The length of its next exclusion is kept, and at most
    QT_REPUTATION_RESETS restarts per QT_REPUTATION_RESET_TICKS ticks clear
    a record: a liar restarting to launder it keeps its record beyond that.

    Never more than f replicas are excluded at a time, so at least n - f stay
    eligible; and per tick qt_reputation_weights re-admits (at the down
    weight) excluded replicas that are present when fewer than n - f of the
    present ones would otherwise be used. Every transition is logged once
    (exclusions with QT_MSG_REPLICA_EXCLUDED), with a cause.

    Honest, bit-identical replicas are at distance 0, never far: nothing
    changes for them, every weight stays exactly 1.
*/
#ifndef QT_REPUTATION_H_INCLUDED
#define QT_REPUTATION_H_INCLUDED

#include <stdbool.h>
#include <stdint.h>

#define QT_REPUTATION_WINDOW          16      //  ticks of history per replica (<= 64)
#define QT_REPUTATION_FAR_RATIO       4.0     //  far: distance > this x the tick's median distance
#define QT_REPUTATION_FLOOR           1e-6    //  ... and > this x QT_REPUTATION_FAR_RATIO (all agree: median 0)
#define QT_REPUTATION_WARN_AT         2       //  far ticks in the window: warned
#define QT_REPUTATION_DOWN_AT         4       //  ... down-weighted
#define QT_REPUTATION_EXCLUDE_AT      8       //  ... excluded
#define QT_REPUTATION_DOWN_WEIGHT     0.25    //  weight of a down-weighted replica (and on probation)
#define QT_REPUTATION_EXCLUDE_TICKS   64      //  first exclusion lasts this many ticks
#define QT_REPUTATION_EXCLUDE_MAX     4096    //  relapses double it up to this
#define QT_REPUTATION_PROBATION_TICKS 32      //  ticks on probation before ok
#define QT_REPUTATION_SMOOTHING       0.125   //  EWMA factor of the displayed distance
#define QT_REPUTATION_RESETS          2       //  records reset by restarts ...
#define QT_REPUTATION_RESET_TICKS     4096    //  ... per this many ticks, at most

typedef enum {
    QT_REPUTATION_OK = 0,
    QT_REPUTATION_WARNED,
    QT_REPUTATION_DOWN_WEIGHTED,
    QT_REPUTATION_EXCLUDED,
    QT_REPUTATION_PROBATION,
} qt_reputation_status_t;

typedef struct _qt_reputation_t qt_reputation_t;

//  n replicas (ids 1..n) of an upstream role, f tolerated faults. NULL when
//  n is 0 or above QT_QUORUM_MAX_REPLICAS.
qt_reputation_t *qt_reputation_new (const char *role, uint32_t replicas, uint32_t faults);
void qt_reputation_destroy (qt_reputation_t **self_p);

//  One tick's distances to the aggregate, distance [replica - 1], NaN for
//  replicas absent or not reported. Moves the ladder; logs transitions.
void qt_reputation_update (qt_reputation_t *self, uint64_t tick, const double *distance);

//  A replica restarted (its messages carry a new epoch): a new member, its
//  record cleared, on probation unless it was ok, within the budget of
//  QT_REPUTATION_RESETS per QT_REPUTATION_RESET_TICKS ticks. Returns
//  whether the record was cleared (false: over budget, or no such replica).
bool qt_reputation_restarted (qt_reputation_t *self, uint32_t replica);

//  The weights to combine a tick with, weight [replica - 1]: the ladder's
//  weight, except that excluded replicas that are present are re-admitted at
//  QT_REPUTATION_DOWN_WEIGHT (fewest far ticks first) while fewer than n - f
//  present replicas have a weight > 0. present may be NULL (all present).
//  Returns how many weights are not exactly 1.
uint32_t qt_reputation_weights (qt_reputation_t *self, const bool *present, double *weight);

//  A replica's standing (replica 1..n)
qt_reputation_status_t qt_reputation_status (qt_reputation_t *self, uint32_t replica);
//  Why it is not ok ("" when ok); valid until the next update
const char *qt_reputation_reason (qt_reputation_t *self, uint32_t replica);
uint32_t qt_reputation_excluded (qt_reputation_t *self);

//  "ok", "warned", "down-weighted", "excluded", "probation"
const char *qt_reputation_status_name (qt_reputation_status_t status);

void qt_reputation_test (bool verbose);

#endif
