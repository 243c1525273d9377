/*  qt_quorum: per-tick collection of one upstream role's replicas.

    The one liveness mechanism of every consumer (design.md section 2): for
    tick t, wait for every live upstream replica until a deadline counted
    from the first arrival, then proceed with at least n - f. A replica that
    misses down_after consecutive ticks is marked down and no longer waited
    for; it is re-admitted as soon as the window takes one of its messages
    again (a refused one, far ahead or behind, re-admits nobody), on trial:
    missing one of its next QT_QUORUM_TRIAL_TICKS ticks puts it down at
    once, barred from re-admission for QT_QUORUM_BAR_TICKS ticks, doubled on
    each failed trial. Below n - f the stage holds (says so once) rather
    than proceed on too little.

    The window holds QT_QUORUM_WINDOW pending ticks, within that many of the
    last one processed. Before there is one (at start), and always, one
    replica holds at most QT_QUORUM_SOLO_TICKS ticks that no more than f
    replicas vouch for (the liars could have made those up together), and a
    full window evicts such a tick first, the one furthest from the median
    of the replicas' latest ticks, never one more than f vouch for: the
    liars' future ticks, colluding or not, cannot crowd out the honest ones.

    Agreement (qt_quorum_set_agreement): f + 1 replicas that sent the same
    input carry an honest one (at most f lie). Past the deadline, and once
    every live replica is in, a tick is ready only when f + 1 of its present
    replicas agree, or all n are in, or the agreement wait passed too (then
    counted: qt_quorum_unagreed). So an honest replica merely late for this
    consumer is waited for a little longer rather than left out while a
    liar is in, and every honest consumer's tick holds f + 1 agreeing
    inputs whichever replicas arrived first.

    Ticks are processed in increasing order. A tick that is already done is
    late (an honest slow replica or a re-send), counted but harmless; when a
    newer tick completes while an older one never will, the older is skipped.
*/
#ifndef QT_QUORUM_H_INCLUDED
#define QT_QUORUM_H_INCLUDED

#include <stdbool.h>
#include <stdint.h>
#include "qt_envelope.h"

#define QT_QUORUM_WINDOW    16      //  ticks held pending at most
#define QT_QUORUM_MAX_REPLICAS 64
#define QT_QUORUM_TRIAL_TICKS   4       //  a re-admitted replica must be in each of its next ticks
#define QT_QUORUM_BAR_TICKS     8       //  ... else it is barred this long (doubling per failure)
#define QT_QUORUM_BAR_MAX       1024    //  ... up to this
#define QT_QUORUM_SOLO_TICKS    4       //  pending ticks one replica may hold that <= f replicas vouch for
#define QT_QUORUM_HOLDING_LOG_MS 10000  //  "quorum lost/regained" logged at most once per interval

typedef enum {
    QT_QUORUM_ACCEPTED = 0,
    QT_QUORUM_LATE,                 //  tick already processed or skipped
    QT_QUORUM_DUPLICATE,            //  this replica already sent this tick
    QT_QUORUM_UNKNOWN_REPLICA,      //  replica id outside 1..n
    QT_QUORUM_STALE,                //  tick beyond the window after the last done, or no room
                                    //  for it (the replica's solo ticks, a full window)
} qt_quorum_result_t;

typedef struct _qt_quorum_t qt_quorum_t;

//  Whether two replicas' messages of one tick carry the same input
typedef bool (qt_quorum_agree_fn) (void *ctx, const qt_message_t *a, const qt_message_t *b);

//  n replicas with ids 1..n, f tolerated faults; NULL when n < 2f + 1 or n
//  is 0 or above QT_QUORUM_MAX_REPLICAS.
qt_quorum_t *qt_quorum_new (const char *role, uint32_t replicas, uint32_t faults,
                            int64_t deadline_ms, uint32_t down_after);
void qt_quorum_destroy (qt_quorum_t **self_p);

//  Turns agreement on (see above): agree decides, wait_ms is how long past
//  the deadline a tick without f + 1 agreeing replicas waits for more.
//  agree NULL turns it off (the default).
void qt_quorum_set_agreement (qt_quorum_t *self, qt_quorum_agree_fn *agree, void *ctx,
                              int64_t wait_ms);

//  The largest group of a pending tick's replicas that agree: its size,
//  and members [replica - 1] set for its members (QT_QUORUM_MAX_REPLICAS
//  places). 0 when agreement is off or the tick is not pending.
uint32_t qt_quorum_agreement (qt_quorum_t *self, uint64_t tick, bool *members);

//  Offers a verified message from a replica for a tick; takes it when
//  accepted (the pointer is nulled), leaves it with the caller otherwise.
qt_quorum_result_t qt_quorum_add (qt_quorum_t *self, uint32_t replica, uint64_t tick,
                                  qt_message_t **message_p, int64_t now_ms);

//  True when a tick is ready to process: all live replicas arrived (at least
//  n - f of them), or the deadline passed with at least n - f.
bool qt_quorum_ready (qt_quorum_t *self, int64_t now_ms, uint64_t *tick);

//  For a stage with several upstreams: true when a tick is ready in all of
//  them (the lowest such). A tick older than another upstream's oldest
//  ready tick can never be ready there, so it is given up (qt_quorum_skip)
//  where it is ready.
bool qt_quorum_ready_all (qt_quorum_t **quorums, size_t count, int64_t now_ms, uint64_t *tick);

//  Gives up a tick (and every older pending one) without processing it:
//  counted as skipped, no replica counted as missing it.
void qt_quorum_skip (qt_quorum_t *self, uint64_t tick);

//  Messages of a pending tick, indexed by replica - 1 (NULL where missing).
//  Valid until qt_quorum_done.
qt_message_t **qt_quorum_slots (qt_quorum_t *self, uint64_t tick);

//  The tick is processed: frees it and every older pending tick, counts a
//  miss for each live replica absent from it, marks replicas down.
void qt_quorum_done (qt_quorum_t *self, uint64_t tick);

//  The same, handing the tick's messages over instead of freeing them:
//  taken [replica - 1] (QT_QUORUM_MAX_REPLICAS places, NULL where missing)
void qt_quorum_done_take (qt_quorum_t *self, uint64_t tick, qt_message_t **taken);

//  Milliseconds until the next deadline that could make a tick ready, or -1.
int64_t qt_quorum_timeout (qt_quorum_t *self, int64_t now_ms);

uint32_t qt_quorum_replicas (qt_quorum_t *self);
uint32_t qt_quorum_faults (qt_quorum_t *self);
bool qt_quorum_replica_up (qt_quorum_t *self, uint32_t replica);
const char *qt_quorum_role (qt_quorum_t *self);

//  True while a deadline passed below quorum (the stage is holding)
bool qt_quorum_holding (qt_quorum_t *self);

//  Counters: late messages, ticks skipped, pending ticks evicted (window
//  full, or out of the window once the first tick was processed); the
//  stage's metrics show them (quintet_upstream_{late,skipped,evicted}_total)
uint64_t qt_quorum_late (qt_quorum_t *self);
uint64_t qt_quorum_skipped (qt_quorum_t *self);
uint64_t qt_quorum_evicted (qt_quorum_t *self);
//  Ticks processed with replicas missing and without f + 1 agreeing ones
//  (agreement on: after the agreement wait)
uint64_t qt_quorum_unagreed (qt_quorum_t *self);

void qt_quorum_test (bool verbose);

#endif
