/*  qt_stage: the running replica of one role, shared by every daemon.

    A role supplies what it computes (qt_role_t: create, validate, process);
    the stage does the rest, the same way for every role: config, keys and
    trust store, the PUB socket it publishes on, the SUB sockets to its
    upstream replicas, the receive path (verify, validate, quorum and
    reputation per upstream role), the tick loop, re-sending its last output
    while the pipeline makes no progress (slow joiners, restarts), drop
    counters with rate-limited logs, and the control channel.

    The stage runs as a zactor (qt_stage_actor) on a zloop: readers for its
    sockets, timers for re-sends, status and deadlines, and a command pipe
    ($TERM, STATUS). The process around it (command line, signals, systemd
    notification) is qt_daemon's; a test starts several stages in one
    process the same way (tests/faults/reputation.c).

    Config keys read here (ZPL, section "quintet"):
        role, replica, batch, seed, env, env_variant, env_without, secret_key,
        trust_dir, state_dir,
        bind, resend_ms, status_ms, log_level,
        upstream/<role>/faults, upstream/<role>/deadline_ms,
        upstream/<role>/down_after, upstream/<role>/agree_ms (0: no agreement wait),
        upstream/<role>/<replica> = endpoint
    Role-specific keys live under quintet/<role>/ and are read by the role.
*/
#ifndef QT_STAGE_H_INCLUDED
#define QT_STAGE_H_INCLUDED

#include <stdbool.h>
#include <stdint.h>
#include <czmq.h>
#include "quintet.pb-c.h"
#include "qt_config.h"
#include "qt_envelope.h"
#include "qt_quorum.h"
#include "qt_metrics.h"
#include "qt_reputation.h"
#include "qt_topology.h"
#include "qt_byzantine.h"
#include "qt_stage_status.h"

#define QT_STAGE_MAX_UPSTREAMS  QT_TOPOLOGY_MAX_UPSTREAMS
#define QT_STAGE_MAX_KEPT       2       //  topics besides the role's own kept for re-sends
#define QT_STAGE_MAX_DETAILS    128     //  Detail lines of one control reply
#define QT_STAGE_RESEND_MS      250     //  no progress for this long: re-send the last output
#define QT_STAGE_STATUS_MS      1000    //  STATUS= and log interval
#define QT_STAGE_DEADLINE_MS    100     //  default per-tick deadline for upstream replicas
#define QT_STAGE_DOWN_AFTER     3       //  ticks missed in a row before a replica is down
#define QT_STAGE_AGREE_MS       1000    //  past the deadline, wait this long for f + 1 agreeing replicas
#define QT_STAGE_DROP_LOG_MS    10000   //  one log line per drop cause per interval
#define QT_STAGE_BATCH_MAX      4096
#define QT_STAGE_METRICS        21      //  metric families of every stage (qt_stage.c)
#define QT_STAGE_STATE_SIZE     96      //  the longest state word (STATUS=, status)
#define QT_STAGE_DRAIN_MAX      1000    //  messages taken from the sockets per pass of the loop
#define QT_STAGE_MAX_ENDPOINTS  (QT_STAGE_MAX_UPSTREAMS * QT_QUORUM_MAX_REPLICAS)
#define QT_STAGE_ENDPOINT_RATE  2000    //  messages a second one upstream endpoint may make us verify ...
#define QT_STAGE_ENDPOINT_BURST 2000    //  ... in bursts of this many (a backlog after a stall)
#define QT_STAGE_CONTROL_RATE   20      //  control requests a second one peer address may make ...
#define QT_STAGE_CONTROL_BURST  40      //  ... in bursts of this many
#define QT_STAGE_CONTROL_PEERS  256     //  peer addresses tracked; beyond, new ones share one budget
#define QT_STAGE_CONTROL_OVERFLOW "overflow"
#define QT_STAGE_THROTTLED      "rate-limited"  //  the cause of a peer over its budget

typedef struct _qt_stage_t qt_stage_t;

//  Adds one Detail line (ControlReply.details) to a control reply: the
//  strings are copied
typedef void (qt_stage_detail_fn) (void *ctx, const char *name, const char *value);

typedef struct {
    const char *role;           //  this stage's role: a role of the topology
    //  The topology's (common/topology.txt): qt_stage_main fills them in
    //  from qt_topology_role (role), a role's descriptor leaves them out
    const char *topic;          //  topic it publishes
    Quintet__PayloadType type;
    qt_upstream_spec_t upstream [QT_STAGE_MAX_UPSTREAMS];
    size_t upstreams;
    const char *summary;        //  one line for --help
    void (*usage) (FILE *out);  //  the role's own lines for --help, or NULL
    const char *state_for;      //  what the role keeps in state_dir (which is
                                //  then required), or NULL

    //  Reads the role's own config keys (under quintet/<role>/). NULL and
    //  *error (caller frees) on a bad configuration.
    void *(*create) (qt_stage_t *stage, qt_config_t *config, char **error);
    void (*destroy) (void **state_p);

    //  Role-specific checks of an upstream payload (the generic ones are
    //  done); QT_DROP_NONE to accept. May be NULL.
    qt_drop_cause_t (*validate) (void *state, size_t upstream, const ProtobufCMessage *payload);

    //  Called once the sockets are up; the tick source publishes its first
    //  tick here. May be NULL.
    int (*start) (void *state, qt_stage_t *stage);

    //  A tick is ready in every upstream: inputs [u][replica - 1] are the
    //  verified messages (NULL where missing). Publishes with
    //  qt_stage_publish. Returns 0, or -1 on a fatal error.
    int (*process) (void *state, qt_stage_t *stage, uint64_t tick, qt_message_t **inputs []);

    //  What the role says of itself in a control reply (quintetctl
    //  status): calls add (ctx, name, value) once per line, at most
    //  QT_STAGE_MAX_DETAILS in all (the stage's own come first:
    //  subscription/<role> = the topic its SUB sockets subscribe to there).
    //  May be NULL.
    void (*details) (void *state, qt_stage_detail_fn *add, void *ctx);

    //  State transfer: a restarted replica catches up from its peers'
    //  state instead of its prior (see "Catching up" in qt_stage.c).
    //  snapshot() appends the role's whole state after the last processed
    //  tick to out (zchunk_extend): deterministic, so two replicas in the
    //  same state give the same bytes, and complete, so that restore() of
    //  them into a freshly created state and the same calls after make
    //  both replicas publish the same bytes for ever. restore() checks
    //  what it reads (sizes, counts, ranges: bytes come from the network,
    //  although only once f + 1 peers vouched for their digest) and leaves
    //  the state as it was on error, with a static cause in *cause.
    //  Both NULL for a role whose output depends on nothing but the tick's
    //  inputs.
    int (*snapshot) (void *state, zchunk_t *out);
    int (*restore) (void *state, const uint8_t *data, size_t size, const char **cause);
} qt_role_t;

//  How the stage is run. The daemon (qt_daemon) fills all of it; a test
//  leaves it zeroed (no hooks, honest, no watchdog).
typedef struct {
    bool check;                 //  --check: validate, bind and connect nothing
    bool verbose;               //  --verbose: log at debug level
    qt_byzantine_mode_t byzantine;      //  --byzantine: lie (tests only)
    uint64_t watchdog_usec;     //  systemd's watchdog interval, 0 for none
    //  Called in the stage's thread: ready once a quorum of every upstream
    //  was heard, status at every status interval with the snapshot and
    //  its STATUS= line. Either may be NULL.
    void (*ready) (void *ctx);
    void (*status) (void *ctx, const qt_stage_status_t *status, const char *line);
    void *ctx;
} qt_stage_options_t;

//  The topology's topic, payload type and upstreams for a role's
//  descriptor (common/topology.txt); -1 for a role the topology lacks
int qt_stage_role_fill (const qt_role_t *descriptor, qt_role_t *filled);

//  A stage from its config: keys, trust store, sockets bound and
//  connected, the role's state created, every config key known. A
//  descriptor without a topic is filled from the topology (a test may wire
//  its own). NULL and *error (caller frees) on a bad configuration. The
//  config must outlive the stage.
qt_stage_t *qt_stage_new (const qt_role_t *descriptor, qt_config_t *config,
                          const qt_stage_options_t *options, char **error);
void qt_stage_destroy (qt_stage_t **self_p);

//  The stage's actor: zactor_new (qt_stage_actor, stage) runs it until
//  $TERM, an interrupt (zsys_interrupted) or a fatal error of the role; it
//  then says "STOPPED" on the pipe and waits for $TERM. "STATUS" is
//  answered with two frames: the packed Quintet__ControlReply that
//  quintetctl status gets (unsigned: the pipe is in-process), and the
//  STATUS= line. The stage is the actor's while it runs; the caller
//  destroys it after zactor_destroy.
void qt_stage_actor (zsock_t *pipe, void *stage);

//  After the actor: 0, or -1 if the role failed fatally
int qt_stage_result (qt_stage_t *self);

//  The snapshot, now (not while the actor runs: it is the actor's)
void qt_stage_status (qt_stage_t *self, qt_stage_status_t *status);

//  Where the stage publishes (a bound tcp://127.0.0.1:* resolved)
const char *qt_stage_endpoint (qt_stage_t *self);

//  The journal MESSAGE_ID of a drop's log line (the catalog's), for every
//  receiver of signed messages: the stages and the relay
const char *qt_stage_message_id (qt_drop_cause_t cause);

//  Publishes a payload on the role's topic for a tick; it is kept for re-sends.
int qt_stage_publish (qt_stage_t *self, uint64_t tick, const ProtobufCMessage *payload);

//  In process(): the role could not complete this tick (the collector's
//  durable log refused an append) and publishes nothing for it. The tick
//  is consumed but is not progress: counted by cause
//  (quintet_tick_failures_total{cause}), logged at most once per cause per
//  interval, and until the role publishes again the stage is "degraded,
//  <cause> failing" in STATUS= and status, feeds no watchdog and re-sends
//  nothing.
void qt_stage_tick_failed (qt_stage_t *self, uint64_t tick, const char *cause, const char *fmt, ...)
    __attribute__ ((format (printf, 4, 5)));

//  Publishes on another topic (e.g. eval); not re-sent.
int qt_stage_publish_on (qt_stage_t *self, const char *topic, Quintet__PayloadType type,
                         uint64_t tick, const ProtobufCMessage *payload);

//  Publishes on another topic, like qt_stage_publish_on, and keeps it: the
//  last message of each such topic (at most QT_STAGE_MAX_KEPT topics) is
//  re-sent with the role's own output whenever the stage re-sends (slow
//  joiners, restarts), so a consumer of that topic never waits on a lost
//  message either (the collector's judgments, the scorer's queries).
//  -1 for one topic too many.
int qt_stage_publish_kept (qt_stage_t *self, const char *topic, Quintet__PayloadType type,
                           uint64_t tick, const ProtobufCMessage *payload);

uint32_t qt_stage_replica (qt_stage_t *self);
size_t qt_stage_batch (qt_stage_t *self);
uint64_t qt_stage_seed (qt_stage_t *self);
//  The environment options every role shares (quintet/env, "" = the
//  registry's default; env_variant; env_without); the roles declare it.
const char *qt_stage_env (qt_stage_t *self);
const char *qt_stage_env_variant (qt_stage_t *self);
const char *qt_stage_env_without (qt_stage_t *self);
//  State directory (created if missing), or NULL when not configured
const char *qt_stage_state_dir (qt_stage_t *self);
qt_quorum_t *qt_stage_quorum (qt_stage_t *self, size_t upstream);
qt_verifier_t *qt_stage_verifier (qt_stage_t *self);
//  The trust store the stage verifies with (a role checking signatures of
//  its own: the collector's judgments)
qt_trust_t *qt_stage_trust (qt_stage_t *self);

//  Reputation of the upstream replicas (qt_reputation, one per upstream).
//  In process(): the weight to combine a replica's input with this tick,
//  1 normally, a fraction when down-weighted, 0 when excluded (leave its
//  input out of the combination); and, after combining, each present
//  replica's distance to the aggregate (excluded ones included), which
//  moves the ladder once process() returns.
double qt_stage_replica_weight (qt_stage_t *self, size_t upstream, uint32_t replica);
void qt_stage_report_distance (qt_stage_t *self, size_t upstream, uint32_t replica, double distance);
qt_reputation_t *qt_stage_reputation (qt_stage_t *self, size_t upstream);
//  The daemon's Prometheus registry (served when quintet/metrics_bind is
//  set): a role registers its own families there in create()
qt_metrics_t *qt_stage_metrics (qt_stage_t *self);
//  The upper bounds (seconds) of the stages' latency histograms, for a
//  role's own histograms of durations (at most QT_METRICS_MAX_BOUNDS)
const double *qt_stage_seconds_bounds (size_t *count);

#endif
