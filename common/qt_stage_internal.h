/*  qt_stage_internal: what the stage's files share (qt_stage.c: config,
    publishing, the receive path, ticks, health; qt_stage_loop.c: the actor
    and its zloop; qt_stage_control.c: the control channel;
    qt_stage_metrics.c: /metrics). Not for roles: they see qt_stage.h.
*/
#ifndef QT_STAGE_INTERNAL_H_INCLUDED
#define QT_STAGE_INTERNAL_H_INCLUDED

#include "quintet.h"
#include "qt_stage.h"
#include "qt_catchup.h"

//  An allowance (a token-rate limiter): what one peer may cost per second
typedef struct {
    double tokens;
    int64_t refilled_ms;
} qt_stage_allowance_t;

//  One upstream replica's endpoint
typedef struct {
    zsock_t *sub;
    size_t upstream;            //  index into the role's upstreams
    uint32_t replica;
    qt_stage_allowance_t budget;          //  messages a second it may make us verify
    int64_t paused_until;       //  over budget: not read (nor polled) until then
    struct _qt_stage_t *stage;  //  whose (for its resume timer)
} qt_stage_endpoint_t;

//  A message of another topic re-sent with the output (qt_stage_publish_kept)
typedef struct {
    char *topic;                //  NULL: a free slot
    Quintet__PayloadType type;
    uint8_t *payload;
    size_t size;
    uint64_t tick;
} qt_stage_kept_t;

struct _qt_stage_t {
    const qt_role_t *role;                  //  &filled
    qt_role_t filled;                       //  the descriptor, with the topology's wiring
    qt_stage_options_t options;
    void *state;                            //  the role's state
    qt_config_t *config;
    uint32_t replica;
    size_t batch;
    uint64_t seed;
    const char *env;            //  "" = the registry's default (resolved by the roles)
    const char *env_variant;
    const char *env_without;
    char *state_dir;
    int64_t resend_ms;
    int64_t status_ms;
    bool check;                             //  --check: bind and connect nothing

    qt_trust_t *trust;
    qt_signer_t *signer;
    qt_verifier_t *verifier;
    zsock_t *pub;
    char *endpoint;
    //  One SUB socket per upstream replica's endpoint: what arrives there is
    //  that replica's alone (anyone else's is refused unverified), and each
    //  endpoint is read in turn, within a budget (s_drain), so a flooding
    //  one costs a bounded share
    qt_stage_endpoint_t sub [QT_STAGE_MAX_ENDPOINTS];
    size_t subs;
    //  The actor's reactor, its pipe, and its timers: status (repeating),
    //  re-send, the earliest quorum deadline and catch-up's next step
    //  (one-shots, re-armed after every pass, each with when it fires)
    zloop_t *loop;
    zsock_t *pipe;
    int status_timer;
    int resend_timer, deadline_timer, catchup_timer;
    int64_t resend_at, deadline_at, catchup_at;
    int rc;                                 //  the loop's outcome: -1 on a fatal error
    bool terminated;                        //  $TERM came: the actor is done
    uint64_t paused;                        //  times an endpoint went over its budget
    qt_quorum_t *quorum [QT_STAGE_MAX_UPSTREAMS];
    //  Reputation per upstream (qt_reputation): this tick's weights, read by
    //  the role before combining, and the distances it reports after
    qt_reputation_t *reputation [QT_STAGE_MAX_UPSTREAMS];
    double weight [QT_STAGE_MAX_UPSTREAMS][QT_QUORUM_MAX_REPLICAS];
    double distance [QT_STAGE_MAX_UPSTREAMS][QT_QUORUM_MAX_REPLICAS];
    uint64_t reweighted [QT_STAGE_MAX_UPSTREAMS];   //  ticks agreement overrode the weights

    //  Last output, re-sent while the pipeline makes no progress
    uint8_t *last_payload;
    size_t last_size;
    uint64_t last_tick;
    bool have_last;
    //  ... and the last message of each kept topic (qt_stage_publish_kept)
    qt_stage_kept_t kept [QT_STAGE_MAX_KEPT];

    uint64_t ticks;                         //  ticks processed
    uint64_t published;
    uint64_t resends;
    int64_t last_progress_ms;               //  a tick was processed
    int64_t last_resend_ms;
    int64_t last_status_ms;
    uint64_t watchdog_usec;
    qt_ratelimit_t *drop_log;
    qt_metrics_t *metrics;                  //  /metrics (quintet/metrics_bind), see s_metrics_*
    qt_metric_t *metric [QT_STAGE_METRICS];
    qt_byzantine_t *byzantine;              //  --byzantine: this replica lies (tests only)

    //  systemd readiness and liveness (see s_health): when each upstream
    //  replica was last heard from (any verified message, re-sends of done
    //  ticks included), whether READY=1 went out, and whether the role's
    //  last process() published nothing (a tick source that has finished)
    int64_t heard_ms [QT_STAGE_MAX_UPSTREAMS][QT_QUORUM_MAX_REPLICAS];
    //  Each upstream replica's process epoch: a new one is a restart, a new
    //  member for its reputation (qt_reputation_restarted)
    uint64_t epoch [QT_STAGE_MAX_UPSTREAMS][QT_QUORUM_MAX_REPLICAS];
    uint64_t publish_calls;
    bool ready;
    bool finished;

    //  A tick the role could not complete (qt_stage_tick_failed): not
    //  progress; the stage is degraded until the role publishes again
    bool tick_failed;
    bool degraded;
    char degraded_state [QT_STAGE_STATE_SIZE];
    uint64_t tick_failures;

    //  The control channel (quintet/control_bind, qt_control): quintetctl
    //  status. Its own verifier, so control traffic never mixes into the
    //  pipeline's drop counters.
    zsock_t *control;
    qt_verifier_t *control_verifier;
    uint64_t control_answered;
    zhashx_t *control_peers;                //  peer address -> qt_stage_allowance_t
    uint64_t control_throttled;             //  dropped over a peer's budget

    //  State transfer from the peers (qt_catchup; roles with snapshot and
    //  restore hooks, quintet/peers configured): while a kept tick is
    //  replayed the role's process() publishes nothing
    qt_catchup_t *catchup;
    bool replaying;
    uint64_t skipped_seen;                  //  the quorums' skipped ticks, summed, last seen
};


//  Takes one token if there is one, refilling at rate per second up to burst
static inline bool
qt_stage_allowance_take (qt_stage_allowance_t *allowance, double rate, double burst, int64_t now_ms)
{
    allowance->tokens += (double) (now_ms - allowance->refilled_ms) * rate / 1000;
    if (allowance->tokens > burst)
        allowance->tokens = burst;
    allowance->refilled_ms = now_ms;
    if (allowance->tokens < 1)
        return false;
    allowance->tokens -= 1;
    return true;
}


//  Prometheus metrics every stage exposes (quintet/metrics_bind). Ticks and
//  latencies are recorded as they happen; counters kept elsewhere (verifier,
//  quorum) are copied in from the snapshot at every status interval.
enum { M_INFO, M_TICKS, M_PROCESS, M_LATENCY, M_PUBLISHED, M_ACCEPTED, M_DROPPED, M_RESENDS,
       M_UP, M_REPLICAS, M_LAST_TICK, M_CONTROL_ANSWERED, M_CONTROL_DROPPED, M_TICK_FAILURES,
       M_PAUSED, M_CATCHUP, M_LATE, M_SKIPPED, M_EVICTED, M_UNAGREED, M_REWEIGHTED };

// -- qt_stage.c
//  The snapshot now (qt_stage_status.h)
void qt_stage_status_fill (qt_stage_t *self, int64_t now_ms, qt_stage_status_t *status);
//  The status interval: STATUS= (the daemon's hook), /metrics
void qt_stage_status_tick (qt_stage_t *self, int64_t now_ms);
//  One message from an upstream endpoint through the receive path
void qt_stage_receive (qt_stage_t *self, qt_stage_endpoint_t *from, int64_t now_ms);
//  Every tick ready in all upstreams: 0, or -1 on a fatal error of the role
int qt_stage_process_ready (qt_stage_t *self, int64_t now_ms);
//  No progress for resend_ms: the last output and kept topics again
void qt_stage_resend (qt_stage_t *self, int64_t now_ms);

// -- qt_stage_control.c
//  One control request read and answered (or dropped, counted)
void qt_stage_control_serve (qt_stage_t *self, int64_t now_ms);
//  The status reply, packed and unsigned (the actor's STATUS)
zframe_t *qt_stage_control_packed (qt_stage_t *self, int64_t now_ms);

// -- qt_stage_metrics.c
void qt_stage_metrics_new (qt_stage_t *self);
void qt_stage_metrics_tick (qt_stage_t *self, qt_message_t **inputs [], int64_t started_ns, uint64_t tick);
void qt_stage_metrics_refresh (qt_stage_t *self, const qt_stage_status_t *status);

#endif
