/*  qt_catchup: state transfer between the replicas of one role.

    Honest replicas agree bit for bit because they start from the same state
    and make the same calls. A replica that restarted (from its prior, or
    from a checkpoint some ticks old), or skipped ticks (a network cut, a
    stall: its quorum resynchronised), does not: its output differs for
    ever, and its consumers exclude it for ever. qt_catchup brings it back.

    The protocol, on the control channel (qt_control, command "snapshot",
    signed by the asking replica's own key):

    * A replica begins an attempt after its first processed tick and after
      any tick it skipped. It picks a tick S a little ahead of its last one
      (QT_CATCHUP_LEAD) and asks every peer for its state after S.
    * A peer below S notes the wish (at most QT_CATCHUP_WISHES, no further
      ahead than QT_CATCHUP_MAX_LEAD) and answers "pending"; after it has
      processed S it takes the snapshot (the role's snapshot hook), keeps
      the last QT_CATCHUP_KEPT of them and answers "ready" with the bytes
      and their BLAKE2b-256 digest. A peer already past S that kept no
      snapshot of it answers "passed", with its last tick: the attempt
      starts again further ahead.
    * The asking replica snapshots itself at S the same way, and keeps the
      inputs of every tick it processes after S (the verified messages and
      the weights they were combined with).
    * Once f + 1 peers answered the same digest — so at least one honest
      replica vouches for that state — the replica compares it with its
      own: equal, it agreed already (every replica at start); different,
      it restores the vouched state and replays the kept ticks through the
      role's process(), publishing nothing, so that it continues exactly
      where its peers are.
    * An attempt that does not conclude within QT_CATCHUP_ATTEMPT_MS, or
      keeps more than QT_CATCHUP_MAX_TICKS ticks or QT_CATCHUP_MAX_KEPT_BYTES
      of their inputs, is given up (the replica
      goes on from its own state, as without catch-up) and tried again
      after a back-off that doubles up to QT_CATCHUP_BACKOFF_MAX_MS.

    Never more than the role's peers' word: a vouched state is f + 1 equal
    digests of distinct replicas' signed answers; a liar can make an
    attempt fail (answer nothing, or another digest), not succeed with a
    state of its choosing. What a peer pays for a request: one snapshot per
    wished tick, at most QT_CATCHUP_WISHES wishes, and the control
    channel's rate limit per address.
*/
#ifndef QT_CATCHUP_H_INCLUDED
#define QT_CATCHUP_H_INCLUDED

#include <stdbool.h>
#include <stdint.h>
#include <czmq.h>
#include "quintet.pb-c.h"
#include "qt_envelope.h"
#include "qt_quorum.h"

#define QT_CATCHUP_COMMAND          "snapshot"
#define QT_CATCHUP_LEAD             16          //  S = last processed + this
#define QT_CATCHUP_MAX_LEAD         4096        //  a wish further ahead is refused
#define QT_CATCHUP_WISHES           4           //  wished ticks a replica remembers
#define QT_CATCHUP_KEPT             2           //  snapshots a replica keeps
#define QT_CATCHUP_KEPT_MS          60000       //  ... for at most this long
#define QT_CATCHUP_POLL_MS          250         //  a pending peer is asked again after: 4 a second,
                                                //  well within a peer's control budget per address
                                                //  (QT_STAGE_CONTROL_RATE), which every replica on
                                                //  one host shares
#define QT_CATCHUP_ASK_AGAIN_MS     2000        //  an unanswered request is sent again after
#define QT_CATCHUP_ATTEMPT_MS       30000       //  an attempt is given up after
#define QT_CATCHUP_MAX_TICKS        4096        //  ... or when it keeps more ticks than this
#define QT_CATCHUP_MAX_KEPT_BYTES   (64u << 20) //  ... or more bytes of their inputs (packed size)
#define QT_CATCHUP_RESTARTS         8           //  "passed" answers before an attempt gives up
#define QT_CATCHUP_BACKOFF_MS       1000        //  first back-off after a failed attempt
#define QT_CATCHUP_BACKOFF_MAX_MS   30000       //  an attempt costs each peer one snapshot
#define QT_CATCHUP_MAX_BYTES        (256u << 20)    //  largest snapshot asked or served
#define QT_CATCHUP_DIGEST_SIZE      32

typedef struct _qt_catchup_t qt_catchup_t;

//  What the stage does for the catch-up (ctx is the stage)
typedef struct {
    void *ctx;
    //  Appends the role's state after the last processed tick
    int (*snapshot) (void *ctx, zchunk_t *out);
    //  Replaces the role's state; leaves it as it was on error
    int (*restore) (void *ctx, const uint8_t *data, size_t size, const char **cause);
    //  Processes a kept tick again, publishing nothing: inputs [u][r - 1]
    //  and the weights they were combined with
    int (*replay) (void *ctx, uint64_t tick, qt_message_t **inputs [],
                   double weights [][QT_QUORUM_MAX_REPLICAS]);
} qt_catchup_ops_t;

//  A catch-up for replica `replica` of `role` (f = faults), whose stage has
//  `upstreams` upstream roles. signer and trust are borrowed. With
//  asking false the replica serves snapshots but never asks (the ablation:
//  quintet/catch_up = false).
qt_catchup_t *qt_catchup_new (const char *role, uint32_t replica, uint32_t faults, bool asking,
                              qt_signer_t *signer, qt_trust_t *trust, size_t upstreams,
                              const qt_catchup_ops_t *ops);
void qt_catchup_destroy (qt_catchup_t **self_p);

//  A peer's control endpoint (a DEALER connects to it). 0, or -1 with
//  *error (caller frees).
int qt_catchup_add_peer (qt_catchup_t *self, uint32_t replica, const char *endpoint, char **error);

//  Registers our sockets with a reactor: handler (arg) is called with the
//  one that is readable, for qt_catchup_receive
void qt_catchup_read_on (qt_catchup_t *self, zloop_t *loop, zloop_reader_fn *handler, void *arg);

//  Reads the answers waiting on one of our sockets
void qt_catchup_receive (qt_catchup_t *self, void *socket, int64_t now_ms);

//  Sends what is due; concludes an attempt when it can (restoring and
//  replaying through ops). Returns -1 only on a fatal error of the role.
int qt_catchup_run (qt_catchup_t *self, int64_t now_ms);

//  Milliseconds until qt_catchup_run has something to do, or -1
int64_t qt_catchup_timeout (qt_catchup_t *self, int64_t now_ms);

//  The stage skipped ticks (its quorum resynchronised or gave ticks up):
//  begin an attempt at the next processed tick
void qt_catchup_diverged (qt_catchup_t *self, const char *why);

//  True if the inputs of `tick`, about to be processed, must be kept
bool qt_catchup_keeps (qt_catchup_t *self, uint64_t tick);

//  After process(tick): takes the snapshots wished for this tick, and
//  keeps the inputs if qt_catchup_keeps said so (taken: inputs [u][r - 1],
//  owned from now on; NULL otherwise)
void qt_catchup_processed (qt_catchup_t *self, uint64_t tick, qt_message_t **taken [],
                           double weights [][QT_QUORUM_MAX_REPLICAS], int64_t now_ms);

//  Answers a "snapshot" request of a peer into reply (its snapshot_*
//  fields and last_processed; the bytes stay ours until the next call)
void qt_catchup_serve (qt_catchup_t *self, const Quintet__ControlRequest *request,
                       Quintet__ControlReply *reply);

//  One line for status: "agreed at tick 48", "restored at tick 1200 from
//  2 peers (14 ticks replayed)", "asking for tick 5000 (1 of 2 ready)" ...
const char *qt_catchup_state (qt_catchup_t *self);

//  Counters: attempts concluded by agreeing, by restoring, given up;
//  snapshots served
uint64_t qt_catchup_agreed (qt_catchup_t *self);
uint64_t qt_catchup_restored (qt_catchup_t *self);
uint64_t qt_catchup_failed (qt_catchup_t *self);
uint64_t qt_catchup_served (qt_catchup_t *self);

void qt_catchup_test (bool verbose);

#endif
