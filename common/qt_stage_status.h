/*  qt_stage_status: one snapshot of a stage's counters and health, filled
    once (qt_stage_status_fill, in qt_stage.c) and rendered four ways from
    the same struct: the STATUS= line, the control reply (quintetctl status,
    the actor's STATUS command), the stop summary and /metrics (qt_stage.c).
    So the four never disagree on what a counter is.

    Strings point into the stage (its role, endpoint, quorums, reputation):
    valid until the stage runs again; a snapshot does not cross threads
    (the actor's STATUS command sends the packed control reply instead).
*/
#ifndef QT_STAGE_STATUS_H_INCLUDED
#define QT_STAGE_STATUS_H_INCLUDED

#include <stdbool.h>
#include <stdint.h>
#include "quintet.pb-c.h"
#include "qt_payload.h"
#include "qt_quorum.h"
#include "qt_topology.h"

#define QT_STAGE_STATUS_LINE    1024    //  room for one STATUS= line
#define QT_STAGE_STATUS_CAUSES  512     //  room for the stop summary's causes

typedef struct {
    const char *role;
    uint32_t replicas;
    uint32_t faults;
    uint32_t up;                        //  counted up and heard within the health window
    uint32_t heard;                     //  heard within the health window
    bool holding;                       //  below quorum: holding (qt_quorum_holding)
    uint64_t late, skipped, evicted;    //  qt_quorum's counters
    uint64_t unagreed;                  //  ... ticks without f + 1 agreeing (qt_quorum_unagreed)
    uint64_t reweighted;                //  ticks agreement gave full weight (qt_stage.c "Agreement")
    bool replica_up [QT_QUORUM_MAX_REPLICAS];
    const char *standing [QT_QUORUM_MAX_REPLICAS];  //  qt_reputation status name
    const char *reason [QT_QUORUM_MAX_REPLICAS];
    double weight [QT_QUORUM_MAX_REPLICAS];         //  the last tick's
} qt_stage_upstream_status_t;

typedef struct {
    const char *role;
    uint32_t replica;
    const char *endpoint;               //  where it publishes
    const char *state;                  //  running, idle ..., stalled ..., degraded ...
    bool healthy;                       //  feeds the watchdog
    bool ready;                         //  a quorum of every upstream heard (READY=1)
    uint64_t tick;                      //  last tick published, 0 before any
    bool published_any;                 //  tick is meaningful
    uint64_t ticks;                     //  ticks processed
    uint64_t published;                 //  messages published, re-sends included
    uint64_t resends;
    uint64_t paused;                    //  times an upstream endpoint went over its budget
    uint64_t accepted;
    uint64_t dropped;                   //  the data path's, all causes
    uint64_t drops [QT_DROP_CAUSES];
    bool control;                       //  a control channel is bound
    uint64_t control_answered;
    uint64_t control_drops [QT_DROP_CAUSES];
    uint64_t control_throttled;
    uint64_t control_dropped;           //  all causes, throttled included
    bool catchup;                       //  state transfer configured
    const char *catchup_state;
    uint64_t catchup_agreed, catchup_restored, catchup_failed, catchup_served;
    size_t upstreams;
    qt_stage_upstream_status_t upstream [QT_TOPOLOGY_MAX_UPSTREAMS];
} qt_stage_status_t;

//  The STATUS= line (without "STATUS="), e.g. "running; tick 42, 42 ticks,
//  upstream collector 3/3 up, 3 heard, 126 accepted, 0 dropped, 0 re-sent"
void qt_stage_status_line (const qt_stage_status_t *self, char *line, size_t size);

//  The stop summary: the "stopping after ..." sentence, and the drops by
//  cause (" cause=N" each; "" when nothing was dropped)
void qt_stage_status_summary (const qt_stage_status_t *self, char *line, size_t size,
                              char *causes, size_t causes_size);

//  Storage of one control reply's repeated fields (what reply points into)
typedef struct {
    Quintet__UpstreamStatus upstreams [QT_TOPOLOGY_MAX_UPSTREAMS];
    Quintet__UpstreamStatus *upstream_p [QT_TOPOLOGY_MAX_UPSTREAMS];
    protobuf_c_boolean replica_up [QT_TOPOLOGY_MAX_UPSTREAMS][QT_QUORUM_MAX_REPLICAS];
    char *standing [QT_TOPOLOGY_MAX_UPSTREAMS][QT_QUORUM_MAX_REPLICAS];
    char *reason [QT_TOPOLOGY_MAX_UPSTREAMS][QT_QUORUM_MAX_REPLICAS];
    double weight [QT_TOPOLOGY_MAX_UPSTREAMS][QT_QUORUM_MAX_REPLICAS];
    Quintet__DropCount drops [2 * QT_DROP_CAUSES + 1];
    Quintet__DropCount *drop_p [2 * QT_DROP_CAUSES + 1];
    char control_cause [QT_DROP_CAUSES][64];
} qt_stage_reply_storage_t;

//  Fills a control reply (initialised by the caller; nonce and details are
//  the caller's) from the snapshot: identity, state, counters, upstreams,
//  drops by cause (the control channel's as "control/<cause>")
void qt_stage_status_reply (const qt_stage_status_t *self, Quintet__ControlReply *reply,
                            qt_stage_reply_storage_t *storage);

void qt_stage_status_test (bool verbose);

#endif
