/*  qt_stage: one actor per replica on a zloop: readers for the SUB sockets
    of upstream messages, the control channel and the catch-up peers;
    timers for quorum deadlines, re-sends and status; the actor's pipe.
*/
#include "quintet.h"
#include "qt_stage.h"
#include "qt_catchup.h"
#include "qt_daemon.h"

//  An allowance (a token-rate limiter): what one peer may cost per second
typedef struct {
    double tokens;
    int64_t refilled_ms;
} s_allowance_t;

//  One upstream replica's endpoint
typedef struct {
    zsock_t *sub;
    size_t upstream;            //  index into the role's upstreams
    uint32_t replica;
    s_allowance_t budget;          //  messages a second it may make us verify
    int64_t paused_until;       //  over budget: not read (nor polled) until then
    struct _qt_stage_t *stage;  //  whose (for its resume timer)
} s_endpoint_t;

//  A message of another topic re-sent with the output (qt_stage_publish_kept)
typedef struct {
    char *topic;                //  NULL: a free slot
    Quintet__PayloadType type;
    uint8_t *payload;
    size_t size;
    uint64_t tick;
} s_kept_t;

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
    s_endpoint_t sub [QT_STAGE_MAX_ENDPOINTS];
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

    //  Last output, re-sent while the pipeline makes no progress
    uint8_t *last_payload;
    size_t last_size;
    uint64_t last_tick;
    bool have_last;
    //  ... and the last message of each kept topic (qt_stage_publish_kept)
    s_kept_t kept [QT_STAGE_MAX_KEPT];

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
    zhashx_t *control_peers;                //  peer address -> s_allowance_t
    uint64_t control_throttled;             //  dropped over a peer's budget

    //  State transfer from the peers (qt_catchup; roles with snapshot and
    //  restore hooks, quintet/peers configured): while a kept tick is
    //  replayed the role's process() publishes nothing
    qt_catchup_t *catchup;
    bool replaying;
    uint64_t skipped_seen;                  //  the quorums' skipped ticks, summed, last seen
};

//  Takes one token if there is one, refilling at rate per second up to burst
static bool
s_allowance_take (s_allowance_t *allowance, double rate, double burst, int64_t now_ms)
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

static const char *const s_log_levels [] = { "error", "warning", "notice", "info", "debug", NULL };
static const int s_log_priorities [] = { LOG_ERR, LOG_WARNING, LOG_NOTICE, LOG_INFO, LOG_DEBUG };

uint32_t qt_stage_replica (qt_stage_t *self) { return self->replica; }
size_t qt_stage_batch (qt_stage_t *self) { return self->batch; }
uint64_t qt_stage_seed (qt_stage_t *self) { return self->seed; }
const char *qt_stage_env (qt_stage_t *self) { return self->env; }
const char *qt_stage_env_variant (qt_stage_t *self) { return self->env_variant; }
const char *qt_stage_env_without (qt_stage_t *self) { return self->env_without; }
const char *qt_stage_state_dir (qt_stage_t *self) { return self->state_dir; }
qt_verifier_t *qt_stage_verifier (qt_stage_t *self) { return self->verifier; }
qt_trust_t *qt_stage_trust (qt_stage_t *self) { return self->trust; }
qt_metrics_t *qt_stage_metrics (qt_stage_t *self) { return self->metrics; }

//  Prometheus metrics every stage exposes (quintet/metrics_bind). Ticks and
//  latencies are recorded as they happen; counters kept elsewhere (verifier,
//  quorum) are copied in at every status interval.
enum { M_INFO, M_TICKS, M_PROCESS, M_LATENCY, M_PUBLISHED, M_ACCEPTED, M_DROPPED, M_RESENDS,
       M_UP, M_REPLICAS, M_LAST_TICK, M_CONTROL_ANSWERED, M_CONTROL_DROPPED, M_TICK_FAILURES,
       M_PAUSED, M_CATCHUP, M_LATE, M_SKIPPED, M_EVICTED };
//  Every latency histogram's bounds (the stages' and the world's round trip):
//  0.1 ms steps below 1 ms and 0.2 ms steps to 2 ms, so that a p99 against a
//  2 ms goal can be read off, coarser above
static const double s_seconds_bounds [] = {
    0.0001, 0.0002, 0.0003, 0.0004, 0.0005, 0.0006, 0.0007, 0.0008, 0.0009, 0.001,
    0.0012, 0.0014, 0.0016, 0.0018, 0.002, 0.0025, 0.003, 0.004, 0.005, 0.0075,
    0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1, 2.5, 5, 10
};

const double *
qt_stage_seconds_bounds (size_t *count)
{
    *count = sizeof s_seconds_bounds / sizeof s_seconds_bounds [0];
    return s_seconds_bounds;
}

static void
s_metrics_new (qt_stage_t *self)
{
    qt_metrics_t *m = self->metrics = qt_metrics_new ();
    size_t bounds = sizeof s_seconds_bounds / sizeof s_seconds_bounds [0];
    self->metric [M_INFO] = qt_metrics_gauge (m, "quintet_stage_info",
        "This daemon: role-replica, always 1.", "stage");
    self->metric [M_TICKS] = qt_metrics_counter (m, "quintet_ticks_total",
        "Ticks processed (the world: ticks stepped).", NULL);
    self->metric [M_PROCESS] = qt_metrics_histogram (m, "quintet_tick_process_seconds",
        "Time the role takes to compute and publish one tick.", NULL, s_seconds_bounds, bounds);
    self->metric [M_LATENCY] = qt_metrics_histogram (m, "quintet_tick_latency_seconds",
        "From the first upstream replica's send time of a tick to this stage's output "
        "(network, quorum wait and processing), by upstream role.", "upstream",
        s_seconds_bounds, bounds);
    self->metric [M_PUBLISHED] = qt_metrics_counter (m, "quintet_messages_published_total",
        "Messages published (re-sends included).", NULL);
    self->metric [M_ACCEPTED] = qt_metrics_counter (m, "quintet_messages_accepted_total",
        "Upstream messages that passed the receive path.", NULL);
    self->metric [M_DROPPED] = qt_metrics_counter (m, "quintet_messages_dropped_total",
        "Upstream messages dropped, by cause.", "cause");
    self->metric [M_RESENDS] = qt_metrics_counter (m, "quintet_resends_total",
        "Re-sends of the last output while the pipeline made no progress.", NULL);
    self->metric [M_UP] = qt_metrics_gauge (m, "quintet_upstream_replicas_up",
        "Upstream replicas not marked down, by upstream role.", "upstream");
    self->metric [M_REPLICAS] = qt_metrics_gauge (m, "quintet_upstream_replicas",
        "Upstream replicas configured, by upstream role.", "upstream");
    self->metric [M_LAST_TICK] = qt_metrics_gauge (m, "quintet_last_tick",
        "The last tick this stage published.", NULL);
    self->metric [M_CONTROL_ANSWERED] = qt_metrics_counter (m, "quintet_control_answered_total",
        "Control requests (quintetctl status) answered.", NULL);
    self->metric [M_CONTROL_DROPPED] = qt_metrics_counter (m, "quintet_control_dropped_total",
        "Control requests dropped unanswered, by cause.", "cause");
    self->metric [M_TICK_FAILURES] = qt_metrics_counter (m, "quintet_tick_failures_total",
        "Ticks the role could not complete, so published nothing for, by cause "
        "(durable-log: the collector's append failed).", "cause");
    self->metric [M_PAUSED] = qt_metrics_counter (m, "quintet_upstream_paused_total",
        "Times an upstream endpoint sent more than its budget of messages a second "
        "and was not read for a while.", NULL);
    self->metric [M_CATCHUP] = qt_metrics_counter (m, "quintet_catchup_total",
        "State transfer between the replicas of a role with state: attempts concluded "
        "(agreed: our state was the vouched one; restored: it was not, the vouched one "
        "was restored), given up (failed), and snapshots served to siblings (served).",
        "outcome");
    self->metric [M_LATE] = qt_metrics_counter (m, "quintet_upstream_late_total",
        "Upstream messages for a tick already processed or given up (a replica slower "
        "than the deadline, or a re-send), by upstream role.", "upstream");
    self->metric [M_SKIPPED] = qt_metrics_counter (m, "quintet_upstream_skipped_total",
        "Upstream ticks given up unprocessed (a newer tick completed first, or the "
        "stage resynchronised on replicas far ahead), by upstream role.", "upstream");
    self->metric [M_EVICTED] = qt_metrics_counter (m, "quintet_upstream_evicted_total",
        "Pending upstream ticks evicted from a full quorum window (or left out of it "
        "by the first processed tick), by upstream role.", "upstream");
    char *stage = zsys_sprintf ("%s-%u", self->role->role, self->replica);
    qt_metric_set (self->metric [M_INFO], stage, 1);
    zstr_free (&stage);
}

static void
s_metrics_tick (qt_stage_t *self, qt_message_t **inputs [], int64_t started_ns, uint64_t tick)
{
    //  Latency is against the senders' sent_ns, which is CLOCK_REALTIME
    struct timespec ts;
    clock_gettime (CLOCK_REALTIME, &ts);
    int64_t now_ns = (int64_t) ts.tv_sec * 1000000000 + ts.tv_nsec;
    qt_metric_add (self->metric [M_TICKS], NULL, 1);
    qt_metric_observe (self->metric [M_PROCESS], NULL, (double) (zclock_usecs () * 1000 - started_ns) / 1e9);
    (void) tick;        //  quintet_last_tick is set where a tick is published
    for (size_t i = 0; i < self->role->upstreams; i++) {
        int64_t first_ns = INT64_MAX;
        for (uint32_t r = 0; r < qt_quorum_replicas (self->quorum [i]); r++)
            if (inputs [i][r] && (int64_t) inputs [i][r]->envelope->sent_ns < first_ns)
                first_ns = (int64_t) inputs [i][r]->envelope->sent_ns;
        if (first_ns != INT64_MAX)
            qt_metric_observe (self->metric [M_LATENCY], self->role->upstream [i].role,
                               (double) (now_ns - first_ns) / 1e9);
    }
}

//  /metrics, from the snapshot (qt_stage_status_fill)
static void
s_metrics_refresh (qt_stage_t *self, const qt_stage_status_t *status)
{
    qt_metric_set (self->metric [M_PUBLISHED], NULL, (double) status->published);
    qt_metric_set (self->metric [M_ACCEPTED], NULL, (double) status->accepted);
    for (int cause = QT_DROP_NONE + 1; cause < QT_DROP_CAUSES; cause++)
        qt_metric_set (self->metric [M_DROPPED], qt_drop_cause_name ((qt_drop_cause_t) cause),
                       (double) status->drops [cause]);
    qt_metric_set (self->metric [M_PAUSED], NULL, (double) status->paused);
    qt_metric_set (self->metric [M_RESENDS], NULL, (double) status->resends);
    if (status->control) {
        qt_metric_set (self->metric [M_CONTROL_ANSWERED], NULL, (double) status->control_answered);
        for (int cause = QT_DROP_NONE + 1; cause < QT_DROP_CAUSES; cause++)
            qt_metric_set (self->metric [M_CONTROL_DROPPED], qt_drop_cause_name ((qt_drop_cause_t) cause),
                           (double) status->control_drops [cause]);
        qt_metric_set (self->metric [M_CONTROL_DROPPED], QT_STAGE_THROTTLED,
                       (double) status->control_throttled);
    }
    if (status->catchup) {
        qt_metric_set (self->metric [M_CATCHUP], "agreed", (double) status->catchup_agreed);
        qt_metric_set (self->metric [M_CATCHUP], "restored", (double) status->catchup_restored);
        qt_metric_set (self->metric [M_CATCHUP], "failed", (double) status->catchup_failed);
        qt_metric_set (self->metric [M_CATCHUP], "served", (double) status->catchup_served);
    }
    for (size_t i = 0; i < status->upstreams; i++) {
        const qt_stage_upstream_status_t *up = &status->upstream [i];
        qt_metric_set (self->metric [M_UP], up->role, up->up);
        qt_metric_set (self->metric [M_REPLICAS], up->role, up->replicas);
        qt_metric_set (self->metric [M_LATE], up->role, (double) up->late);
        qt_metric_set (self->metric [M_SKIPPED], up->role, (double) up->skipped);
        qt_metric_set (self->metric [M_EVICTED], up->role, (double) up->evicted);
    }
}

qt_quorum_t *
qt_stage_quorum (qt_stage_t *self, size_t upstream)
{
    return upstream < self->role->upstreams ? self->quorum [upstream] : NULL;
}

static bool
s_is_replica_name (const char *name)
{
    if (!*name)
        return false;
    for (const char *c = name; *c; c++)
        if (!isdigit ((unsigned char) *c))
            return false;
    return true;
}

static void
s_error_in_key (qt_config_t *config, const char *key, char **error);

//  A SUB socket for one upstream replica's endpoint, subscribed to its topic
static int
s_connect_endpoint (qt_stage_t *self, size_t upstream, uint32_t replica, const char *endpoint,
                    char **error)
{
    if (self->subs == QT_STAGE_MAX_ENDPOINTS) {
        *error = zsys_sprintf ("more than %d upstream endpoints", QT_STAGE_MAX_ENDPOINTS);
        return -1;
    }
    const char *endpoints [] = { endpoint, NULL };
    const char *topics [] = { self->role->upstream [upstream].topic, NULL };
    zsock_t *sub = qt_transport_subscriber (endpoints, topics, (int64_t) QT_MESSAGE_SIZE_CAP * 2, error);
    if (!sub)
        return -1;
    s_endpoint_t *slot = &self->sub [self->subs++];
    slot->sub = sub;
    slot->upstream = upstream;
    slot->replica = replica;
    slot->budget.tokens = QT_STAGE_ENDPOINT_BURST;
    slot->budget.refilled_ms = zclock_mono ();
    return 0;
}

//  Reads upstream/<role>: quorum parameters and replica endpoints. The
//  endpoints are also connected on the SUB socket (checked only, without
//  one: --check).
static int
s_configure_upstream (qt_stage_t *self, size_t index, char **error)
{
    const char *up_role = self->role->upstream [index].role;
    char *base = zsys_sprintf ("quintet/upstream/%s", up_role);
    char *key = zsys_sprintf ("%s/faults", base);
    uint64_t faults = 0, deadline_ms = 0, down_after = 0;
    int rc = qt_config_uint (self->config, key, false, 0, 0, QT_QUORUM_MAX_REPLICAS, &faults);
    zstr_free (&key);
    key = zsys_sprintf ("%s/deadline_ms", base);
    rc |= qt_config_uint (self->config, key, false, QT_STAGE_DEADLINE_MS, 1, 600000, &deadline_ms);
    zstr_free (&key);
    key = zsys_sprintf ("%s/down_after", base);
    rc |= qt_config_uint (self->config, key, false, QT_STAGE_DOWN_AFTER, 1, 1000000, &down_after);
    zstr_free (&key);
    if (rc) {
        *error = strdup (qt_config_error (self->config));
        zstr_free (&base);
        return -1;
    }
    //  Endpoints: children named by replica id, 1..n without gaps
    zlist_t *children = qt_config_children (self->config, base);
    uint32_t replicas = 0;
    uint32_t max_id = 0;
    for (char *name = (char *) zlist_first (children); name; name = (char *) zlist_next (children)) {
        if (!s_is_replica_name (name))
            continue;       //  faults, deadline_ms, down_after, or unknown: caught below
        key = zsys_sprintf ("%s/%s", base, name);
        const char *endpoint = NULL;
        rc = qt_config_string (self->config, key, NULL, &endpoint);
        unsigned long id = strtoul (name, NULL, 10);
        if (rc == 0 && (id < 1 || id > QT_QUORUM_MAX_REPLICAS)) {
            *error = zsys_sprintf ("%s: %s/%s: replica ids are 1..%d",
                                   qt_config_path (self->config), base, name, QT_QUORUM_MAX_REPLICAS);
            rc = -1;
        }
        else
        if (rc)
            *error = strdup (qt_config_error (self->config));
        else {
            //  --check connects nothing: the endpoint's form is all it judges
            rc = self->check ? qt_transport_check_endpoint (endpoint, error)
                             : s_connect_endpoint (self, index, (uint32_t) id, endpoint, error);
            if (rc)
                s_error_in_key (self->config, key, error);
        }
        zstr_free (&key);
        if (rc) {
            zlist_destroy (&children);
            zstr_free (&base);
            return -1;
        }
        replicas++;
        if (id > max_id)
            max_id = (uint32_t) id;
    }
    zlist_destroy (&children);
    if (replicas == 0 || max_id != replicas) {
        *error = zsys_sprintf ("%s: %s: expected endpoints named 1..n (one per %s replica), found %u",
                               qt_config_path (self->config), base, up_role, replicas);
        zstr_free (&base);
        return -1;
    }
    self->quorum [index] = qt_quorum_new (up_role, replicas, (uint32_t) faults,
                                          (int64_t) deadline_ms, (uint32_t) down_after);
    if (!self->quorum [index]) {
        *error = zsys_sprintf ("%s: %s/faults: %u replicas cannot tolerate %u faults (n >= 2f+1)",
                               qt_config_path (self->config), base, replicas, (unsigned) faults);
        zstr_free (&base);
        return -1;
    }
    self->reputation [index] = qt_reputation_new (up_role, replicas, (uint32_t) faults);
    for (uint32_t r = 0; r < QT_QUORUM_MAX_REPLICAS; r++)
        self->weight [index][r] = 1;
    zstr_free (&base);
    return 0;
}

//  qt_catchup's view of the stage
static int
s_catchup_snapshot (void *ctx, zchunk_t *out)
{
    qt_stage_t *self = (qt_stage_t *) ctx;
    return self->role->snapshot (self->state, out);
}

static int
s_catchup_restore (void *ctx, const uint8_t *data, size_t size, const char **cause)
{
    qt_stage_t *self = (qt_stage_t *) ctx;
    return self->role->restore (self->state, data, size, cause);
}

static int
s_catchup_replay (void *ctx, uint64_t tick, qt_message_t **inputs [],
                  double weights [][QT_QUORUM_MAX_REPLICAS])
{
    qt_stage_t *self = (qt_stage_t *) ctx;
    for (size_t u = 0; u < self->role->upstreams; u++)
        memcpy (self->weight [u], weights [u], sizeof self->weight [u]);
    self->replaying = true;
    int rc = self->role->process (self->state, self, tick, inputs);
    self->replaying = false;
    return rc;
}

//  quintet/peers/<replica> = the control endpoints of this role's replicas
//  (this one's may be listed too), and quintet/catch_up (default true). A
//  role without state (no snapshot hooks) has nothing to catch up: the
//  keys are checked, and unused. f is what n = peers + 1 tolerates.
static int
s_configure_catchup (qt_stage_t *self, char **error)
{
    bool catch_up = true;
    if (qt_config_bool (self->config, "quintet/catch_up", false, true, &catch_up)) {
        *error = strdup (qt_config_error (self->config));
        return -1;
    }
    const char *endpoints [QT_QUORUM_MAX_REPLICAS + 1] = { NULL };
    uint32_t peers = 0;
    zlist_t *children = qt_config_children (self->config, "quintet/peers");
    int rc = 0;
    for (char *name = (char *) zlist_first (children); name && rc == 0;
         name = (char *) zlist_next (children)) {
        char *key = zsys_sprintf ("quintet/peers/%s", name);
        unsigned long id = s_is_replica_name (name) ? strtoul (name, NULL, 10) : 0;
        const char *endpoint = NULL;
        if (id < 1 || id > QT_QUORUM_MAX_REPLICAS) {
            *error = zsys_sprintf ("%s: %s: peers are named by replica id, 1..%d",
                                   qt_config_path (self->config), key, QT_QUORUM_MAX_REPLICAS);
            rc = -1;
        }
        else
        if (qt_config_string (self->config, key, NULL, &endpoint)) {
            *error = strdup (qt_config_error (self->config));
            rc = -1;
        }
        else
        if (qt_transport_check_endpoint (endpoint, error)) {
            s_error_in_key (self->config, key, error);
            rc = -1;
        }
        else
        if (id != self->replica) {
            endpoints [id] = endpoint;
            peers++;
        }
        zstr_free (&key);
    }
    zlist_destroy (&children);
    if (rc || self->check || !self->role->snapshot || !self->role->restore)
        return rc;
    qt_catchup_ops_t ops = { self, s_catchup_snapshot, s_catchup_restore, s_catchup_replay };
    self->catchup = qt_catchup_new (self->role->role, self->replica, peers / 2, catch_up && peers > 0,
                                    self->signer, self->trust, self->role->upstreams, &ops);
    for (uint32_t id = 1; id <= QT_QUORUM_MAX_REPLICAS && rc == 0; id++)
        if (endpoints [id] && qt_catchup_add_peer (self->catchup, id, endpoints [id], error)) {
            char *key = zsys_sprintf ("quintet/peers/%u", id);
            s_error_in_key (self->config, key, error);
            zstr_free (&key);
            rc = -1;
        }
    return rc;
}

//  Prefixes an error about a file a key names with the config file and key,
//  so that the one message says where to look
static void
s_error_in_key (qt_config_t *config, const char *key, char **error)
{
    char *detail = *error;
    *error = zsys_sprintf ("%s: %s: %s", qt_config_path (config), key,
                           detail ? detail : "cannot be loaded");
    zstr_free (&detail);
}

//  The secret key must be the one the trust store holds as
//  <role>-<replica>.pub: else every message it signs is dropped downstream
//  (unknown-key, or wrong-role when it is another replica's)
static int
s_check_own_key (qt_stage_t *self, const qt_keypair_t *keypair, const char *trust_dir,
                 char **error)
{
    const qt_trust_entry_t *entry = qt_trust_lookup (self->trust, keypair->key_id);
    if (!entry)
        *error = zsys_sprintf ("its public key (key id %s) is not in the trust store %s: "
                               "%s/%s-%u.pub is missing or holds another key",
                               keypair->key_id, trust_dir, trust_dir, keypair->role, keypair->replica);
    else
    if (strneq (entry->role, keypair->role) || entry->replica != keypair->replica)
        *error = zsys_sprintf ("it is the key of %s-%u in the trust store %s, not of %s-%u",
                               entry->role, entry->replica, trust_dir, keypair->role, keypair->replica);
    else
    if (sodium_memcmp (entry->public_key, keypair->public_key, sizeof entry->public_key) != 0)
        *error = zsys_sprintf ("its public key does not match %s/%s-%u.pub", trust_dir,
                               keypair->role, keypair->replica);
    return *error ? -1 : 0;
}

static void
s_allowance_destroy (void **item_p)
{
    free (*item_p);
    *item_p = NULL;
}

int
qt_stage_role_fill (const qt_role_t *descriptor, qt_role_t *filled)
{
    //  What the role publishes and consumes is the topology's, not its own
    const qt_topology_role_t *topology = qt_topology_role (descriptor->role);
    if (!topology)
        return -1;
    *filled = *descriptor;
    filled->topic = topology->topic;
    filled->type = topology->type;
    filled->upstreams = topology->upstreams;
    for (size_t u = 0; u < topology->upstreams; u++)
        filled->upstream [u] = topology->upstream [u];
    return 0;
}

//  Everything common to all roles, from config to bound sockets. check
//  (--check): validate everything, bind and connect nothing, so that it
//  runs beside the replica the config belongs to. On error, returns what
//  it built with *error set: the caller destroys.
static qt_stage_t *
s_stage_new (const qt_role_t *descriptor, qt_config_t *config, const qt_stage_options_t *options,
             char **error)
{
    qt_stage_t *self = (qt_stage_t *) zmalloc (sizeof (qt_stage_t));
    if (options)
        self->options = *options;
    bool check = self->options.check;
    if (descriptor->topic)
        self->filled = *descriptor;
    else
    if (qt_stage_role_fill (descriptor, &self->filled)) {
        *error = zsys_sprintf ("role \"%s\" is not in the topology (common/topology.txt)",
                               descriptor->role);
        free (self);
        return NULL;
    }
    const qt_role_t *role = self->role = &self->filled;
    self->config = config;
    self->check = check;
    self->watchdog_usec = self->options.watchdog_usec;
    const char *role_name = NULL, *secret = NULL, *trust_dir = NULL, *bind = NULL;
    const char *state_dir = NULL;
    uint64_t replica = 0, batch = 0, resend_ms = 0, status_ms = 0;
    int level = 0;
    int rc = qt_config_string (config, "quintet/role", NULL, &role_name);
    if (rc == 0 && strneq (role_name, role->role)) {
        *error = zsys_sprintf ("%s: quintet/role: this is quintet-%s, the file configures \"%s\"",
                               qt_config_path (config), role->role, role_name);
        free (self);
        return NULL;
    }
    rc |= qt_config_uint (config, "quintet/replica", true, 0, 1, QT_QUORUM_MAX_REPLICAS, &replica);
    rc |= qt_config_uint (config, "quintet/batch", true, 0, 1, QT_STAGE_BATCH_MAX, &batch);
    rc |= qt_config_uint (config, "quintet/seed", false, 1, 0, UINT64_MAX, &self->seed);
    rc |= qt_config_string (config, "quintet/env", "", &self->env);
    rc |= qt_config_string (config, "quintet/env_variant", "", &self->env_variant);
    rc |= qt_config_string (config, "quintet/env_without", "", &self->env_without);
    rc |= qt_config_string (config, "quintet/secret_key", NULL, &secret);
    rc |= qt_config_string (config, "quintet/trust_dir", NULL, &trust_dir);
    rc |= qt_config_string (config, "quintet/state_dir", "", &state_dir);
    rc |= qt_config_string (config, "quintet/bind", NULL, &bind);
    rc |= qt_config_uint (config, "quintet/resend_ms", false, QT_STAGE_RESEND_MS, 10, 600000, &resend_ms);
    rc |= qt_config_uint (config, "quintet/status_ms", false, QT_STAGE_STATUS_MS, 10, 600000, &status_ms);
    rc |= qt_config_choice (config, "quintet/log_level", s_log_levels, "info", &level);
    const char *metrics_bind = NULL;
    rc |= qt_config_string (config, "quintet/metrics_bind", "", &metrics_bind);
    if (rc) {
        *error = strdup (qt_config_error (config));
        free (self);
        return NULL;
    }
    self->replica = (uint32_t) replica;
    self->batch = (size_t) batch;
    self->resend_ms = (int64_t) resend_ms;
    self->status_ms = (int64_t) status_ms;
    qt_log_init (role->role, self->replica);
    qt_log_set_level (self->options.verbose ? LOG_DEBUG : s_log_priorities [level]);
    if (!*state_dir && role->state_for) {
        *error = zsys_sprintf ("%s: quintet/state_dir: required by the %s (%s)",
                               qt_config_path (config), role->role, role->state_for);
        free (self);
        return NULL;
    }
    if (*state_dir) {
        if (qt_daemon_mkdir_p (state_dir)) {
            *error = zsys_sprintf ("%s: quintet/state_dir: cannot create %s: %s",
                                   qt_config_path (config), state_dir, strerror (errno));
            free (self);
            return NULL;
        }
        self->state_dir = strdup (state_dir);
    }
    self->drop_log = qt_ratelimit_new (QT_STAGE_DROP_LOG_MS);
    s_metrics_new (self);

    char *secret_path = qt_daemon_secret_path (secret);
    qt_keypair_t *keypair = qt_keypair_load (secret_path, role->role, self->replica, error);
    zstr_free (&secret_path);
    if (!keypair) {
        s_error_in_key (config, "quintet/secret_key", error);
        return self;        //  the caller sees *error and destroys
    }
    self->trust = qt_trust_load (trust_dir, error);
    if (!self->trust) {
        qt_keypair_destroy (&keypair);
        s_error_in_key (config, "quintet/trust_dir", error);
        return self;
    }
    if (s_check_own_key (self, keypair, trust_dir, error)) {
        qt_keypair_destroy (&keypair);
        s_error_in_key (config, "quintet/secret_key", error);
        return self;
    }
    self->signer = qt_signer_new (&keypair);
    self->verifier = qt_verifier_new (self->trust, self->batch);

    const char *control_bind = NULL;
    if (qt_config_string (config, "quintet/control_bind", "", &control_bind)) {
        *error = strdup (qt_config_error (config));
        return self;
    }
    if (check) {
        if (qt_transport_check_endpoint (bind, error))
            s_error_in_key (config, "quintet/bind", error);
        else
        if (*control_bind && qt_transport_check_endpoint (control_bind, error))
            s_error_in_key (config, "quintet/control_bind", error);
        else
        if (*metrics_bind && qt_metrics_check_bind (metrics_bind, error))
            s_error_in_key (config, "quintet/metrics_bind", error);
        for (size_t i = 0; i < role->upstreams && !*error; i++)
            s_configure_upstream (self, i, error);
        if (!*error)
            s_configure_catchup (self, error);
        return self;
    }
    self->pub = qt_transport_publisher (bind, &self->endpoint, error);
    if (!self->pub) {
        s_error_in_key (config, "quintet/bind", error);
        return self;
    }
    if (*metrics_bind) {
        if (qt_metrics_serve (self->metrics, metrics_bind, error)) {
            char *detail = *error;
            *error = zsys_sprintf ("%s: quintet/metrics_bind: %s", qt_config_path (config), detail);
            zstr_free (&detail);
            return self;
        }
        qt_log (LOG_INFO, "metrics on http://%s/metrics (port %u)", metrics_bind,
                (unsigned) qt_metrics_port (self->metrics));
    }
    if (*control_bind) {
        self->control = zsock_new (ZMQ_ROUTER);
        assert (self->control);
        zsock_set_linger (self->control, 0);
        zsock_set_maxmsgsize (self->control, QT_MESSAGE_SIZE_CAP);
        if (zsock_bind (self->control, "%s", control_bind) == -1) {
            *error = zsys_sprintf ("%s: quintet/control_bind: cannot bind %s: %s",
                                   qt_config_path (config), control_bind, zmq_strerror (zmq_errno ()));
            return self;
        }
        self->control_verifier = qt_control_verifier_new (self->trust);
        self->control_peers = zhashx_new ();
        zhashx_set_destructor (self->control_peers, s_allowance_destroy);
    }
    for (size_t i = 0; i < role->upstreams && !*error; i++)
        s_configure_upstream (self, i, error);
    if (!*error)
        s_configure_catchup (self, error);
    return self;
}

qt_stage_t *
qt_stage_new (const qt_role_t *descriptor, qt_config_t *config, const qt_stage_options_t *options,
              char **error)
{
    *error = NULL;
    qt_stage_t *self = s_stage_new (descriptor, config, options, error);
    if (self && !*error) {
        self->state = self->role->create (self, config, error);
        if (!self->state && !*error)
            *error = zsys_sprintf ("%s: quintet/%s: invalid role configuration",
                                   qt_config_path (config), self->role->role);
    }
    if (!*error && qt_config_check_unknown (config))
        *error = strdup (qt_config_error (config));
    if (!*error && self->options.byzantine != QT_BYZANTINE_HONEST) {
        //  wrong-role signs with another role's key from the same key directory
        const char *secret = NULL;
        qt_config_string (config, "quintet/secret_key", NULL, &secret);
        char *key_dir = secret ? qt_daemon_secret_path (secret) : NULL;
        char *slash = key_dir ? strrchr (key_dir, '/') : NULL;
        if (slash)
            *slash = 0;
        self->byzantine = qt_byzantine_new (self->options.byzantine, self->seed, self->role->role,
                                            self->replica, slash ? key_dir : ".");
        zstr_free (&key_dir);
        qt_log (LOG_WARNING, "BYZANTINE replica: publishing in mode %s",
                qt_byzantine_mode_name (self->options.byzantine));
    }
    if (*error)
        qt_stage_destroy (&self);
    return self;
}

const char *qt_stage_endpoint (qt_stage_t *self) { return self->endpoint; }
int qt_stage_result (qt_stage_t *self) { return self->rc; }

void
qt_stage_destroy (qt_stage_t **self_p)
{
    qt_stage_t *self = *self_p;
    if (!self)
        return;
    if (self->state && self->role->destroy)
        self->role->destroy (&self->state);
    for (size_t i = 0; i < QT_STAGE_MAX_UPSTREAMS; i++) {
        qt_quorum_destroy (&self->quorum [i]);
        qt_reputation_destroy (&self->reputation [i]);
    }
    for (size_t k = 0; k < self->subs; k++)
        zsock_destroy (&self->sub [k].sub);
    zsock_destroy (&self->pub);
    zstr_free (&self->endpoint);
    qt_verifier_destroy (&self->verifier);
    qt_trust_destroy (&self->trust);
    qt_signer_destroy (&self->signer);
    qt_ratelimit_destroy (&self->drop_log);
    zsock_destroy (&self->control);
    qt_verifier_destroy (&self->control_verifier);
    zhashx_destroy (&self->control_peers);
    qt_catchup_destroy (&self->catchup);
    qt_metrics_destroy (&self->metrics);
    qt_byzantine_destroy (&self->byzantine);
    free (self->last_payload);
    for (size_t k = 0; k < QT_STAGE_MAX_KEPT; k++) {
        free (self->kept [k].topic);
        free (self->kept [k].payload);
    }
    free (self->state_dir);
    free (self);
    *self_p = NULL;
}

static int
s_send_sealed (qt_stage_t *self, const char *topic, zframe_t *frame)
{
    if (qt_transport_send (self->pub, topic, &frame)) {
        qt_log (LOG_WARNING, "publish on %s failed: %s", topic, zmq_strerror (zmq_errno ()));
        return -1;
    }
    self->published++;
    return 0;
}

//  A Byzantine replica publishes its lie (qt_byzantine); the lie is also
//  what it re-sends
static int
s_publish_byzantine (qt_stage_t *self, uint64_t tick, const ProtobufCMessage *payload)
{
    size_t size = 0;
    free (self->last_payload);
    self->last_payload = qt_byzantine_payload (self->byzantine, payload, &size);
    self->last_size = size;
    self->last_tick = tick;
    self->have_last = true;
    zframe_t *frame = qt_byzantine_seal (self->byzantine, self->signer, self->role->type, tick,
                                         self->last_payload, size);
    return frame ? s_send_sealed (self, self->role->topic, frame) : 0;
}

int
qt_stage_publish (qt_stage_t *self, uint64_t tick, const ProtobufCMessage *payload)
{
    if (self->replaying)
        return 0;       //  a kept tick processed again (qt_catchup): published long ago
    self->publish_calls++;
    if (self->degraded) {
        self->degraded = false;
        qt_log (LOG_NOTICE, "tick %" PRIu64 " published: no longer degraded", tick);
    }
    qt_metric_set (self->metric [M_LAST_TICK], NULL, (double) tick);
    if (self->byzantine)
        return s_publish_byzantine (self, tick, payload);
    size_t size = protobuf_c_message_get_packed_size (payload);
    uint8_t *bytes = (uint8_t *) malloc (size ? size : 1);
    assert (bytes);
    protobuf_c_message_pack (payload, bytes);
    free (self->last_payload);
    self->last_payload = bytes;
    self->last_size = size;
    self->last_tick = tick;
    self->have_last = true;
    zframe_t *frame = qt_signer_seal_bytes (self->signer, self->role->type, tick, bytes, size);
    return s_send_sealed (self, self->role->topic, frame);
}

void
qt_stage_tick_failed (qt_stage_t *self, uint64_t tick, const char *cause, const char *fmt, ...)
{
    char what [QT_STAGE_STATE_SIZE];
    if (self->replaying)
        return;
    va_list args;
    va_start (args, fmt);
    vsnprintf (what, sizeof what, fmt, args);
    va_end (args);
    self->tick_failed = true;
    self->degraded = true;
    self->tick_failures++;
    snprintf (self->degraded_state, sizeof self->degraded_state, "degraded, %s failing", cause);
    qt_metric_add (self->metric [M_TICK_FAILURES], cause, 1);
    char key [64];
    snprintf (key, sizeof key, "tick-failed/%s", cause);
    uint64_t suppressed = 0;
    if (qt_ratelimit_pass (self->drop_log, key, zclock_mono (), &suppressed))
        qt_log_event (LOG_ERR, NULL, tick, NULL, cause, "%s (%" PRIu64 " more failures since last report)",
                      what, suppressed);
}

int
qt_stage_publish_on (qt_stage_t *self, const char *topic, Quintet__PayloadType type,
                     uint64_t tick, const ProtobufCMessage *payload)
{
    if (self->replaying)
        return 0;
    zframe_t *frame = qt_signer_seal (self->signer, type, tick, payload);
    return s_send_sealed (self, topic, frame);
}

int
qt_stage_publish_kept (qt_stage_t *self, const char *topic, Quintet__PayloadType type,
                       uint64_t tick, const ProtobufCMessage *payload)
{
    if (self->replaying)
        return 0;
    s_kept_t *slot = NULL;
    for (size_t k = 0; k < QT_STAGE_MAX_KEPT && !slot; k++)
        if (self->kept [k].topic && streq (self->kept [k].topic, topic))
            slot = &self->kept [k];
    for (size_t k = 0; k < QT_STAGE_MAX_KEPT && !slot; k++)
        if (!self->kept [k].topic) {
            slot = &self->kept [k];
            slot->topic = strdup (topic);
        }
    if (!slot) {
        qt_log (LOG_ERR, "cannot keep topic %s: %d kept topics at most", topic, QT_STAGE_MAX_KEPT);
        return -1;
    }
    size_t size = protobuf_c_message_get_packed_size (payload);
    uint8_t *bytes = (uint8_t *) malloc (size ? size : 1);
    assert (bytes);
    protobuf_c_message_pack (payload, bytes);
    free (slot->payload);
    slot->payload = bytes;
    slot->size = size;
    slot->type = type;
    slot->tick = tick;
    zframe_t *frame = qt_signer_seal_bytes (self->signer, type, tick, bytes, size);
    return s_send_sealed (self, topic, frame);
}

//  While nothing progresses: the last output and every kept topic's last
//  message again (a degraded stage's are old news: nothing)
static void
s_resend (qt_stage_t *self, int64_t now_ms)
{
    if (self->degraded)
        return;
    if (self->have_last) {
        zframe_t *frame = self->byzantine
            ? qt_byzantine_seal (self->byzantine, self->signer, self->role->type,
                                 self->last_tick, self->last_payload, self->last_size)
            : qt_signer_seal_bytes (self->signer, self->role->type,
                                    self->last_tick, self->last_payload,
                                    self->last_size);
        if (frame)
            s_send_sealed (self, self->role->topic, frame);
        self->resends++;
        qt_log (LOG_DEBUG, "no progress for %" PRId64 " ms: re-sent tick %" PRIu64,
                now_ms - self->last_progress_ms, self->last_tick);
    }
    for (size_t k = 0; k < QT_STAGE_MAX_KEPT; k++) {
        s_kept_t *kept = &self->kept [k];
        if (!kept->payload)
            continue;
        zframe_t *frame = qt_signer_seal_bytes (self->signer, kept->type, kept->tick,
                                                kept->payload, kept->size);
        s_send_sealed (self, kept->topic, frame);
    }
}

static const char *
s_message_id_of_cause (qt_drop_cause_t cause)
{
    if (cause == QT_DROP_BAD_SIGNATURE || cause == QT_DROP_UNKNOWN_KEY || cause == QT_DROP_WRONG_ROLE)
        return QT_MSG_SIGNATURE_REJECTED;
    if (cause == QT_DROP_REPLAY)
        return QT_MSG_REPLAY_DROPPED;
    return QT_MSG_MESSAGE_DROPPED;
}

static void
s_log_drop (qt_stage_t *self, qt_drop_cause_t cause, const char *topic, const char *peer,
            uint64_t tick, int64_t now_ms)
{
    uint64_t suppressed = 0;
    const char *name = qt_drop_cause_name (cause);
    if (qt_ratelimit_pass (self->drop_log, name, now_ms, &suppressed))
        qt_log_event (LOG_WARNING, s_message_id_of_cause (cause), tick, peer, name,
                      "dropped a message on %s: %s (%" PRIu64 " more of this cause since last report)",
                      topic, name, suppressed);
}

//  One message from an upstream endpoint through the receive path into a
//  quorum
static void
s_receive (qt_stage_t *self, s_endpoint_t *from, int64_t now_ms)
{
    char *topic = NULL;
    zframe_t *frame = NULL;
    if (qt_transport_recv (from->sub, &topic, &frame)) {
        qt_verifier_count (self->verifier, QT_DROP_MALFORMED);
        s_log_drop (self, QT_DROP_MALFORMED, "?", NULL, UINT64_MAX, now_ms);
        return;
    }
    size_t index = from->upstream;
    const char *up_role = self->role->upstream [index].role;
    if (strneq (topic, self->role->upstream [index].topic)) {
        //  A topic we never subscribed to exactly (a longer topic with our prefix)
        qt_verifier_count (self->verifier, QT_DROP_WRONG_TYPE);
        s_log_drop (self, QT_DROP_WRONG_TYPE, topic, NULL, UINT64_MAX, now_ms);
        zstr_free (&topic);
        zframe_destroy (&frame);
        return;
    }
    qt_drop_cause_t cause = QT_DROP_NONE;
    qt_message_t *message = qt_verifier_open_from (self->verifier, topic, up_role, from->replica,
                                                   zframe_data (frame), zframe_size (frame), &cause);
    zframe_destroy (&frame);
    if (message && self->role->validate) {
        cause = self->role->validate (self->state, index, message->payload);
        if (cause != QT_DROP_NONE) {
            qt_verifier_count (self->verifier, cause);
            qt_message_destroy (&message);
        }
    }
    if (!message) {
        s_log_drop (self, cause, topic, NULL, UINT64_MAX, now_ms);
        zstr_free (&topic);
        return;
    }
    uint32_t replica = message->sender->replica;
    uint64_t tick = message->envelope->tick;
    if (replica >= 1 && replica <= QT_QUORUM_MAX_REPLICAS) {
        self->heard_ms [index][replica - 1] = now_ms;
        uint64_t *epoch = &self->epoch [index][replica - 1];
        if (*epoch != message->envelope->epoch) {
            if (*epoch != 0)
                qt_reputation_restarted (self->reputation [index], replica);
            *epoch = message->envelope->epoch;
        }
    }
    qt_quorum_result_t result = qt_quorum_add (self->quorum [index], replica, tick, &message, now_ms);
    if (result == QT_QUORUM_UNKNOWN_REPLICA || result == QT_QUORUM_STALE) {
        cause = result == QT_QUORUM_STALE ? QT_DROP_STALE : QT_DROP_UNEXPECTED;
        qt_verifier_count (self->verifier, cause);
        char *peer = zsys_sprintf ("%s-%u", self->role->upstream [index].role, replica);
        s_log_drop (self, cause, topic, peer, tick, now_ms);
        zstr_free (&peer);
    }
    qt_message_destroy (&message);      //  still ours unless the quorum took it
    zstr_free (&topic);
}

//  This tick's weights per replica of one upstream (qt_reputation_weights:
//  never fewer than n - f of the present ones used); distances start unreported
static void
s_reputation_weights (qt_stage_t *self, size_t upstream, qt_message_t **slots)
{
    uint32_t replicas = qt_quorum_replicas (self->quorum [upstream]);
    bool present [QT_QUORUM_MAX_REPLICAS];
    for (uint32_t r = 0; r < replicas; r++) {
        present [r] = slots [r] != NULL;
        self->distance [upstream][r] = NAN;
    }
    qt_reputation_weights (self->reputation [upstream], present, self->weight [upstream]);
}

void
qt_stage_report_distance (qt_stage_t *self, size_t upstream, uint32_t replica, double distance)
{
    if (upstream < self->role->upstreams && replica >= 1
    &&  replica <= qt_quorum_replicas (self->quorum [upstream]))
        self->distance [upstream][replica - 1] = distance;
}

double
qt_stage_replica_weight (qt_stage_t *self, size_t upstream, uint32_t replica)
{
    if (upstream < self->role->upstreams && replica >= 1
    &&  replica <= qt_quorum_replicas (self->quorum [upstream]))
        return self->weight [upstream][replica - 1];
    return 1;
}

qt_reputation_t *
qt_stage_reputation (qt_stage_t *self, size_t upstream)
{
    return upstream < self->role->upstreams ? self->reputation [upstream] : NULL;
}

//  Ticks skipped (a quorum resynchronised, or gave ticks up) are inputs
//  this replica never processed and its peers may have: catch up
static void
s_catchup_skipped (qt_stage_t *self)
{
    if (!self->catchup)
        return;
    uint64_t skipped = 0;
    for (size_t i = 0; i < self->role->upstreams; i++)
        skipped += qt_quorum_skipped (self->quorum [i]);
    if (skipped > self->skipped_seen && self->ticks > 0)
        qt_catchup_diverged (self->catchup, "ticks skipped");
    self->skipped_seen = skipped;
}

//  Processes every tick that is ready in all upstreams
static int
s_process_ready (qt_stage_t *self, int64_t now_ms)
{
    uint64_t tick;
    while (qt_quorum_ready_all (self->quorum, self->role->upstreams, now_ms, &tick)) {
        s_catchup_skipped (self);
        qt_message_t **inputs [QT_STAGE_MAX_UPSTREAMS];
        for (size_t i = 0; i < self->role->upstreams; i++) {
            inputs [i] = qt_quorum_slots (self->quorum [i], tick);
            s_reputation_weights (self, i, inputs [i]);
        }
        uint64_t publish_calls = self->publish_calls;
        int64_t started_ns = zclock_usecs () * 1000;
        self->tick_failed = false;
        if (self->role->process (self->state, self, tick, inputs))
            return -1;
        for (size_t i = 0; i < self->role->upstreams; i++)
            qt_reputation_update (self->reputation [i], tick, self->distance [i]);
        //  The inputs are the quorum's until qt_quorum_done, or the
        //  catch-up's if it keeps this tick to replay it
        bool failed = self->tick_failed;
        if (!failed)
            s_metrics_tick (self, inputs, started_ns, tick);
        bool keep = qt_catchup_keeps (self->catchup, tick);
        qt_message_t *taken [QT_STAGE_MAX_UPSTREAMS][QT_QUORUM_MAX_REPLICAS];
        qt_message_t **taken_p [QT_STAGE_MAX_UPSTREAMS];
        for (size_t i = 0; i < self->role->upstreams; i++) {
            qt_quorum_done_take (self->quorum [i], tick, keep ? taken [i] : NULL);
            taken_p [i] = taken [i];
        }
        if (self->catchup)
            qt_catchup_processed (self->catchup, tick, keep ? taken_p : NULL, self->weight, now_ms);
        if (failed)
            continue;       //  consumed, but not progress (qt_stage_tick_failed)
        //  A role that answers a tick with nothing has finished by design
        //  (the world after its last episode): idle, not stuck
        self->finished = self->publish_calls == publish_calls;
        self->ticks++;
        self->last_progress_ms = now_ms;
    }
    return 0;
}

static int64_t
s_health_window_ms (qt_stage_t *self);

//  Upstream replicas heard from within the last window_ms, for one upstream
static uint32_t
s_heard (qt_stage_t *self, size_t index, int64_t now_ms, int64_t window_ms)
{
    uint32_t heard = 0;
    uint32_t replicas = qt_quorum_replicas (self->quorum [index]);
    for (uint32_t r = 0; r < replicas && r < QT_QUORUM_MAX_REPLICAS; r++)
        if (self->heard_ms [index][r] > 0 && now_ms - self->heard_ms [index][r] <= window_ms)
            heard++;
    return heard;
}

//  Up, as reported (STATUS=, status, /metrics): the quorum counts it up
//  (it has not missed down_after ticks) and it was heard from within the
//  health window. While the quorum holds no tick completes and nobody
//  misses one, so "up" alone would go on counting stopped replicas.
static bool
s_replica_up (qt_stage_t *self, size_t index, uint32_t replica, int64_t now_ms)
{
    int64_t heard = replica >= 1 && replica <= QT_QUORUM_MAX_REPLICAS
                  ? self->heard_ms [index][replica - 1] : 0;
    return qt_quorum_replica_up (self->quorum [index], replica)
        && heard > 0 && now_ms - heard <= s_health_window_ms (self);
}

static uint32_t
s_up (qt_stage_t *self, size_t index, int64_t now_ms)
{
    uint32_t up = 0;
    for (uint32_t r = 1; r <= qt_quorum_replicas (self->quorum [index]); r++)
        up += s_replica_up (self, index, r, now_ms);
    return up;
}

//  True if a quorum (n - f) of every upstream role has been heard from
//  within window_ms (a negative window: ever, since start)
static bool
s_upstreams_reachable (qt_stage_t *self, int64_t now_ms, int64_t window_ms)
{
    for (size_t i = 0; i < self->role->upstreams; i++) {
        qt_quorum_t *quorum = self->quorum [i];
        uint32_t needed = qt_quorum_replicas (quorum) - qt_quorum_faults (quorum);
        if (s_heard (self, i, now_ms, window_ms < 0 ? INT64_MAX : window_ms) < needed)
            return false;
    }
    return true;
}

//  READY=1 once sockets are bound, keys loaded (both done before the loop)
//  and a quorum (n - f) of every upstream role has sent a verified message.
//  Healthy, for WATCHDOG=1: a tick was processed within the watchdog
//  interval, or the stage is idle rather than stuck: it has finished (the
//  world after its episodes), or a quorum of every upstream is alive and
//  re-sending (the pipeline waits on something further away). A stage whose
//  upstream quorum has gone silent, or whose loop is wedged, stops feeding
//  the watchdog and systemd restarts it. Before READY the watchdog is fed:
//  TimeoutStartSec= bounds the start instead.
//  How recent "alive" is: the watchdog interval, or two status intervals
static int64_t
s_health_window_ms (qt_stage_t *self)
{
    return self->watchdog_usec > 0 ? (int64_t) (self->watchdog_usec / 1000) : 2 * self->status_ms;
}

static const char *
s_health (qt_stage_t *self, int64_t now_ms, bool *healthy)
{
    int64_t window_ms = s_health_window_ms (self);
    if (!self->ready && s_upstreams_reachable (self, now_ms, -1)) {
        self->ready = true;
        if (self->options.ready)
            self->options.ready (self->options.ctx);
        qt_log (LOG_INFO, "upstreams reachable: ready");
    }
    *healthy = true;
    if (!self->ready)
        return "waiting for upstreams";
    if (self->degraded) {
        *healthy = false;
        return self->degraded_state;
    }
    if (self->ticks > 0 && now_ms - self->last_progress_ms < window_ms)
        return "running";
    if (self->finished)
        return "finished, idle";
    if (s_upstreams_reachable (self, now_ms, window_ms))
        return "idle, upstreams alive";
    *healthy = false;
    return "stalled, upstream quorum silent";
}

//  The one snapshot the status line, the control reply, the stop summary
//  and /metrics are rendered from
static void
s_status_fill (qt_stage_t *self, int64_t now_ms, qt_stage_status_t *status)
{
    memset (status, 0, sizeof *status);
    status->role = self->role->role;
    status->replica = self->replica;
    status->endpoint = self->endpoint;
    status->state = s_health (self, now_ms, &status->healthy);
    status->ready = self->ready;
    status->tick = self->have_last ? self->last_tick : 0;
    status->published_any = self->have_last;
    status->ticks = self->ticks;
    status->published = self->published;
    status->resends = self->resends;
    status->paused = self->paused;
    if (self->verifier) {
        status->accepted = qt_verifier_accepted (self->verifier);
        status->dropped = qt_verifier_drops_total (self->verifier);
        for (int c = QT_DROP_NONE + 1; c < QT_DROP_CAUSES; c++)
            status->drops [c] = qt_verifier_drops (self->verifier, (qt_drop_cause_t) c);
    }
    if (self->control) {
        status->control = true;
        status->control_answered = self->control_answered;
        for (int c = QT_DROP_NONE + 1; c < QT_DROP_CAUSES; c++)
            status->control_drops [c] = qt_verifier_drops (self->control_verifier, (qt_drop_cause_t) c);
        status->control_throttled = self->control_throttled;
        status->control_dropped = qt_verifier_drops_total (self->control_verifier)
                                + self->control_throttled;
    }
    if (self->catchup) {
        status->catchup = true;
        status->catchup_state = qt_catchup_state (self->catchup);
        status->catchup_agreed = qt_catchup_agreed (self->catchup);
        status->catchup_restored = qt_catchup_restored (self->catchup);
        status->catchup_failed = qt_catchup_failed (self->catchup);
        status->catchup_served = qt_catchup_served (self->catchup);
    }
    for (size_t i = 0; i < self->role->upstreams && self->quorum [i]; i++) {
        qt_quorum_t *quorum = self->quorum [i];
        qt_stage_upstream_status_t *up = &status->upstream [i];
        up->role = qt_quorum_role (quorum);
        up->replicas = qt_quorum_replicas (quorum);
        up->faults = qt_quorum_faults (quorum);
        up->up = s_up (self, i, now_ms);
        up->heard = s_heard (self, i, now_ms, s_health_window_ms (self));
        up->holding = qt_quorum_holding (quorum);
        up->late = qt_quorum_late (quorum);
        up->skipped = qt_quorum_skipped (quorum);
        up->evicted = qt_quorum_evicted (quorum);
        for (uint32_t r = 0; r < up->replicas && r < QT_QUORUM_MAX_REPLICAS; r++) {
            up->replica_up [r] = s_replica_up (self, i, r + 1, now_ms);
            up->standing [r] = qt_reputation_status_name (qt_reputation_status (self->reputation [i], r + 1));
            up->reason [r] = qt_reputation_reason (self->reputation [i], r + 1);
            up->weight [r] = self->weight [i][r];
        }
        status->upstreams = i + 1;
    }
}

void
qt_stage_status (qt_stage_t *self, qt_stage_status_t *status)
{
    //  Outside the loop nothing is announced (no READY=1 after STOPPING=1)
    void (*ready) (void *ctx) = self->options.ready;
    self->options.ready = NULL;
    s_status_fill (self, zclock_mono (), status);
    self->options.ready = ready;
}

//  Every status interval: the snapshot to the daemon (STATUS=, WATCHDOG=1)
//  and to /metrics
static void
s_status (qt_stage_t *self, int64_t now_ms)
{
    qt_stage_status_t status;
    s_status_fill (self, now_ms, &status);
    if (self->options.status) {
        char line [QT_STAGE_STATUS_LINE];
        qt_stage_status_line (&status, line, sizeof line);
        self->options.status (self->options.ctx, &status, line);
    }
    s_metrics_refresh (self, &status);
    self->last_status_ms = now_ms;
}

//  An allowance per peer address: QT_STAGE_CONTROL_RATE requests a second,
//  bursts of QT_STAGE_CONTROL_BURST. The table is bounded: full allowances (idle
//  peers) are forgotten when it fills, and beyond that new peers share one.
static bool
s_control_budget (qt_stage_t *self, const char *peer, int64_t now_ms)
{
    s_allowance_t *allowance = (s_allowance_t *) zhashx_lookup (self->control_peers, peer);
    if (!allowance && zhashx_size (self->control_peers) >= QT_STAGE_CONTROL_PEERS) {
        zlist_t *idle = zlist_new ();
        zlist_autofree (idle);
        for (s_allowance_t *b = (s_allowance_t *) zhashx_first (self->control_peers); b;
             b = (s_allowance_t *) zhashx_next (self->control_peers))
            if (b->tokens + (double) (now_ms - b->refilled_ms) * QT_STAGE_CONTROL_RATE / 1000
                >= QT_STAGE_CONTROL_BURST)
                zlist_append (idle, (void *) zhashx_cursor (self->control_peers));
        for (char *key = (char *) zlist_first (idle); key; key = (char *) zlist_next (idle))
            zhashx_delete (self->control_peers, key);
        zlist_destroy (&idle);
        if (zhashx_size (self->control_peers) >= QT_STAGE_CONTROL_PEERS)
            peer = QT_STAGE_CONTROL_OVERFLOW;
        allowance = (s_allowance_t *) zhashx_lookup (self->control_peers, peer);
    }
    if (!allowance) {
        allowance = (s_allowance_t *) zmalloc (sizeof (s_allowance_t));
        allowance->tokens = QT_STAGE_CONTROL_BURST;
        allowance->refilled_ms = now_ms;
        zhashx_insert (self->control_peers, peer, allowance);
    }
    return s_allowance_take (allowance, QT_STAGE_CONTROL_RATE, QT_STAGE_CONTROL_BURST, now_ms);
}

//  Like the data path's drops: counted by cause (in the control verifier),
//  logged once per cause per interval
static void
s_log_control_drop (qt_stage_t *self, qt_drop_cause_t cause, int64_t now_ms)
{
    char key [64];
    snprintf (key, sizeof key, "%s%s", QT_CONTROL_DROP_PREFIX, qt_drop_cause_name (cause));
    uint64_t suppressed = 0;
    if (qt_ratelimit_pass (self->drop_log, key, now_ms, &suppressed))
        qt_log_event (LOG_WARNING, s_message_id_of_cause (cause), UINT64_MAX, NULL, key,
                      "dropped a control request: %s (%" PRIu64 " more of this cause since last report)",
                      qt_drop_cause_name (cause), suppressed);
}

//  The Detail lines of one control reply (qt_role_t.details)
typedef struct {
    Quintet__Detail items [QT_STAGE_MAX_DETAILS];
    Quintet__Detail *pointers [QT_STAGE_MAX_DETAILS];
    size_t count;
    size_t refused;
} s_details_t;

static void
s_detail_add (void *ctx, const char *name, const char *value)
{
    s_details_t *details = (s_details_t *) ctx;
    if (details->count == QT_STAGE_MAX_DETAILS || !name || !value) {
        details->refused++;
        return;
    }
    Quintet__Detail *detail = &details->items [details->count];
    quintet__detail__init (detail);
    detail->name = strdup (name);
    detail->value = strdup (value);
    details->pointers [details->count++] = detail;
}

static void
s_details_free (s_details_t **self_p)
{
    s_details_t *self = *self_p;
    for (size_t k = 0; k < self->count; k++) {
        free (self->items [k].name);
        free (self->items [k].value);
    }
    free (self);
    *self_p = NULL;
}

//  A status reply from the snapshot, and the details: what the stage
//  subscribes to (the topic of every SUB socket of an upstream, as
//  s_connect_endpoint subscribed it), then the role's
static void
s_reply_fill (qt_stage_t *self, int64_t now_ms, Quintet__ControlReply *reply,
              qt_stage_reply_storage_t *storage, s_details_t *details)
{
    qt_stage_status_t status;
    s_status_fill (self, now_ms, &status);
    qt_stage_status_reply (&status, reply, storage);
    for (size_t i = 0; i < self->role->upstreams; i++) {
        char *name = zsys_sprintf ("subscription/%s", self->role->upstream [i].role);
        s_detail_add (details, name, self->role->upstream [i].topic);
        zstr_free (&name);
    }
    if (self->catchup)
        s_detail_add (details, "catch-up", qt_catchup_state (self->catchup));
    if (self->role->details)
        self->role->details (self->state, s_detail_add, details);
    reply->n_details = details->count;
    reply->details = details->pointers;
}

//  One control request: [identity][empty][SignedMessage] from a REQ peer.
//  Only a verified request signed by a "control" key is answered; the
//  reply carries the stage's counters and echoes the nonce.
//  Signs a reply and sends it back to whoever asked (the ROUTER's routing
//  id and the REQ envelope's empty frame, both taken)
static void
s_control_answer (qt_stage_t *self, Quintet__ControlReply *reply, zframe_t *identity, zframe_t *empty)
{
    self->control_answered++;
    Quintet__ControlMessage body = QUINTET__CONTROL_MESSAGE__INIT;
    body.reply = reply;
    zframe_t *sealed = qt_signer_seal (self->signer, QUINTET__PAYLOAD_TYPE__CONTROL, reply->tick,
                                       &body.base);
    zmsg_t *out = zmsg_new ();
    zmsg_append (out, &identity);
    zmsg_append (out, &empty);
    zmsg_append (out, &sealed);
    zmsg_send (&out, self->control);
}

//  Answers a peer's "snapshot" request (qt_catchup): only the snapshot
//  fields and who answers, signed like every reply
static void
s_control_snapshot (qt_stage_t *self, qt_message_t *message, const Quintet__ControlRequest *request,
                    zframe_t *identity, zframe_t *empty)
{
    Quintet__ControlReply reply = QUINTET__CONTROL_REPLY__INIT;
    reply.nonce = request->nonce;
    reply.role = (char *) self->role->role;
    reply.replica = self->replica;
    reply.tick = self->have_last ? self->last_tick : 0;
    reply.ticks = self->ticks;
    qt_catchup_serve (self->catchup, request, &reply);
    s_control_answer (self, &reply, identity, empty);
    qt_message_destroy (&message);      //  after: the reply's nonce is the request's
}

static void
s_control (qt_stage_t *self, int64_t now_ms)
{
    zmsg_t *msg = zmsg_recv (self->control);
    if (!msg)
        return;
    zframe_t *identity = zmsg_pop (msg);
    zframe_t *empty = zmsg_pop (msg);
    zframe_t *frame = zmsg_pop (msg);
    zmsg_destroy (&msg);
    //  What one peer address may cost, before any decoding or verifying
    //  (the address is metadata of frames read from the wire: not of the
    //  routing id, which the ROUTER socket made up)
    zframe_t *wire = empty ? empty : identity;
    const char *peer = wire ? zframe_meta (wire, "Peer-Address") : NULL;
    if (!s_control_budget (self, peer ? peer : "?", now_ms)) {
        self->control_throttled++;
        uint64_t suppressed = 0;
        if (qt_ratelimit_pass (self->drop_log, QT_CONTROL_DROP_PREFIX QT_STAGE_THROTTLED, now_ms, &suppressed))
            qt_log_event (LOG_WARNING, QT_MSG_MESSAGE_DROPPED, UINT64_MAX, peer,
                          QT_CONTROL_DROP_PREFIX QT_STAGE_THROTTLED,
                          "dropped a control request: %s sends more than %d a second "
                          "(%" PRIu64 " more since last report)", peer ? peer : "a peer",
                          QT_STAGE_CONTROL_RATE, suppressed);
        zframe_destroy (&identity);
        zframe_destroy (&empty);
        zframe_destroy (&frame);
        return;
    }
    qt_drop_cause_t cause = QT_DROP_MALFORMED;
    qt_message_t *message = NULL;
    if (identity && empty && frame && zframe_size (empty) == 0)
        message = qt_verifier_open (self->control_verifier, QT_CONTROL_TOPIC, NULL,
                                    zframe_data (frame), zframe_size (frame), &cause);
    else
        qt_verifier_count (self->control_verifier, QT_DROP_MALFORMED);
    //  Who may ask what: an operator (a control key) for status; another
    //  replica of this role, catching up, for a snapshot (qt_catchup);
    //  any other key nothing
    bool operator = message && streq (message->sender->role, QT_CONTROL_ROLE);
    bool sibling = message && self->catchup && streq (message->sender->role, self->role->role)
                && message->sender->replica != self->replica;
    if (message && !operator && !sibling) {
        cause = QT_DROP_WRONG_ROLE;
        qt_verifier_count (self->control_verifier, cause);
        qt_message_destroy (&message);
    }
    const Quintet__ControlRequest *request = qt_control_request_of (message);
    //  A request says whom it is for: one captured on its way to another
    //  daemon (another role or replica) is not answered here
    bool for_us = qt_control_request_for (request, self->role->role, self->replica);
    const char *command = operator ? "status" : QT_CATCHUP_COMMAND;
    if (!request || !for_us || strneq (request->command, command)) {
        if (message) {
            //  Authentic, but not a request we answer
            cause = request && !for_us ? QT_DROP_WRONG_TARGET : QT_DROP_UNEXPECTED;
            qt_verifier_count (self->control_verifier, cause);
        }
        s_log_control_drop (self, cause, now_ms);
        qt_message_destroy (&message);
        zframe_destroy (&identity);
        zframe_destroy (&empty);
        zframe_destroy (&frame);
        return;     //  no answer: an unauthenticated peer learns nothing
    }
    if (sibling) {
        s_control_snapshot (self, message, request, identity, empty);
        zframe_destroy (&frame);
        return;
    }
    Quintet__ControlReply reply = QUINTET__CONTROL_REPLY__INIT;
    qt_stage_reply_storage_t *storage = (qt_stage_reply_storage_t *) zmalloc (sizeof *storage);
    s_details_t *details = (s_details_t *) zmalloc (sizeof (s_details_t));
    s_reply_fill (self, now_ms, &reply, storage, details);
    reply.nonce = request->nonce;
    s_control_answer (self, &reply, identity, empty);
    s_details_free (&details);
    free (storage);
    qt_message_destroy (&message);
    zframe_destroy (&frame);
}

static int s_on_resume (zloop_t *loop, int timer_id, void *arg);

//  What one upstream endpoint may cost: QT_STAGE_ENDPOINT_RATE messages a
//  second read and verified. Over that, it is not read, nor polled, until
//  a quarter of its burst has refilled: what it sends meanwhile queues up
//  to the high-water marks and is dropped by ZeroMQ, costing us nothing.
//  An honest replica sends a message per tick and a few re-sends.
static void
s_pause (qt_stage_t *self, s_endpoint_t *endpoint, int64_t now_ms)
{
    int64_t pause_ms = (int64_t) (QT_STAGE_ENDPOINT_BURST / 4 * 1000 / QT_STAGE_ENDPOINT_RATE);
    endpoint->paused_until = now_ms + pause_ms;
    zloop_reader_end (self->loop, endpoint->sub);
    zloop_timer (self->loop, (size_t) pause_ms, 1, s_on_resume, endpoint);
    self->paused++;
    char *peer = zsys_sprintf ("%s-%u", self->role->upstream [endpoint->upstream].role, endpoint->replica);
    uint64_t suppressed = 0;
    if (qt_ratelimit_pass (self->drop_log, QT_STAGE_THROTTLED, now_ms, &suppressed))
        qt_log_event (LOG_WARNING, QT_MSG_MESSAGE_DROPPED, UINT64_MAX, peer, QT_STAGE_THROTTLED,
                      "the endpoint of %s sends more than %d messages a second: not read for %" PRId64
                      " ms (%" PRIu64 " more pauses since last report)", peer, QT_STAGE_ENDPOINT_RATE,
                      pause_ms, suppressed);
    zstr_free (&peer);
}

//  Drains what is queued before deciding, so a burst costs one pass: one
//  message from each readable endpoint in turn (a flooding one gets its
//  turn, not the loop), QT_STAGE_DRAIN_MAX in all, so a flood cannot keep
//  the loop here
static void
s_drain (qt_stage_t *self, int64_t now_ms)
{
    int drained = 0;
    bool took = true;
    while (took && drained < QT_STAGE_DRAIN_MAX) {
        took = false;
        for (size_t k = 0; k < self->subs && drained < QT_STAGE_DRAIN_MAX; k++) {
            s_endpoint_t *endpoint = &self->sub [k];
            if (endpoint->paused_until || !(zsock_events (endpoint->sub) & ZMQ_POLLIN))
                continue;
            if (s_allowance_take (&endpoint->budget, QT_STAGE_ENDPOINT_RATE, QT_STAGE_ENDPOINT_BURST, now_ms)) {
                s_receive (self, endpoint, now_ms);
                drained++;
                took = true;
            }
            else
                s_pause (self, endpoint, now_ms);
        }
    }
}

// -- the actor's loop ---------------------------------------------------------

static int s_on_resend (zloop_t *loop, int timer_id, void *arg);
static int s_on_deadline (zloop_t *loop, int timer_id, void *arg);
static int s_on_catchup (zloop_t *loop, int timer_id, void *arg);

//  A one-shot timer to fire at at_ms (now_ms when past), replacing the one
//  armed before unless it fires then already
static void
s_arm (qt_stage_t *self, int *timer, int64_t *armed_at, int64_t at_ms, int64_t now_ms,
       zloop_timer_fn handler)
{
    if (*timer >= 0 && *armed_at == at_ms)
        return;
    if (*timer >= 0)
        zloop_timer_end (self->loop, *timer);
    *timer = zloop_timer (self->loop, (size_t) MAX (at_ms - now_ms, 0), 1, handler, self);
    *armed_at = at_ms;
}

//  The timers for what is due next: a re-send once resend_ms pass without
//  progress, the earliest quorum deadline, catch-up's next step
static void
s_arm_timers (qt_stage_t *self, int64_t now_ms)
{
    int64_t quiet_since = MAX (self->last_progress_ms, self->last_resend_ms);
    s_arm (self, &self->resend_timer, &self->resend_at, quiet_since + self->resend_ms, now_ms,
           s_on_resend);
    int64_t deadline = -1;
    for (size_t i = 0; i < self->role->upstreams; i++) {
        int64_t left = qt_quorum_timeout (self->quorum [i], now_ms);
        if (left >= 0 && (deadline < 0 || left < deadline))
            deadline = left;
    }
    if (deadline >= 0)
        s_arm (self, &self->deadline_timer, &self->deadline_at, now_ms + deadline, now_ms,
               s_on_deadline);
    int64_t catching_up = qt_catchup_timeout (self->catchup, now_ms);
    if (catching_up >= 0)
        s_arm (self, &self->catchup_timer, &self->catchup_at, now_ms + catching_up, now_ms,
               s_on_catchup);
}

//  After anything happened: control requests served (on every pass,
//  whatever woke the loop: under a flood the SUB sockets are always
//  readable), every ready tick processed, catch-up's step, the timers
//  re-armed. -1 ends the loop on a fatal error of the role.
static int
s_pass (qt_stage_t *self, int64_t now_ms)
{
    for (int served = 0; self->control && served < QT_STAGE_DRAIN_MAX
         && (zsock_events (self->control) & ZMQ_POLLIN); served++)
        s_control (self, now_ms);
    int rc = s_process_ready (self, now_ms);
    if (rc == 0 && self->catchup)
        rc = qt_catchup_run (self->catchup, now_ms);
    if (rc) {
        self->rc = -1;
        return -1;
    }
    s_arm_timers (self, now_ms);
    return 0;
}

static int
s_on_upstream (zloop_t *loop, zsock_t *reader, void *arg)
{
    (void) loop; (void) reader;
    qt_stage_t *self = (qt_stage_t *) arg;
    int64_t now_ms = zclock_mono ();
    s_drain (self, now_ms);
    return s_pass (self, now_ms);
}

static int
s_on_control (zloop_t *loop, zsock_t *reader, void *arg)
{
    (void) loop; (void) reader;
    qt_stage_t *self = (qt_stage_t *) arg;
    return s_pass (self, zclock_mono ());
}

static int
s_on_peer (zloop_t *loop, zsock_t *reader, void *arg)
{
    (void) loop;
    qt_stage_t *self = (qt_stage_t *) arg;
    int64_t now_ms = zclock_mono ();
    qt_catchup_receive (self->catchup, reader, now_ms);
    return s_pass (self, now_ms);
}

//  An endpoint's pause is over: read it again
static int
s_on_resume (zloop_t *loop, int timer_id, void *arg)
{
    (void) timer_id;
    s_endpoint_t *endpoint = (s_endpoint_t *) arg;
    qt_stage_t *self = endpoint->stage;
    endpoint->paused_until = 0;
    zloop_reader (loop, endpoint->sub, s_on_upstream, self);
    return s_pass (self, zclock_mono ());
}

static int
s_on_resend (zloop_t *loop, int timer_id, void *arg)
{
    (void) loop; (void) timer_id;
    qt_stage_t *self = (qt_stage_t *) arg;
    int64_t now_ms = zclock_mono ();
    self->resend_timer = -1;
    if (now_ms - MAX (self->last_progress_ms, self->last_resend_ms) >= self->resend_ms) {
        s_resend (self, now_ms);
        self->last_resend_ms = now_ms;
    }
    return s_pass (self, now_ms);
}

static int
s_on_deadline (zloop_t *loop, int timer_id, void *arg)
{
    (void) loop; (void) timer_id;
    qt_stage_t *self = (qt_stage_t *) arg;
    self->deadline_timer = -1;
    return s_pass (self, zclock_mono ());
}

static int
s_on_catchup (zloop_t *loop, int timer_id, void *arg)
{
    (void) loop; (void) timer_id;
    qt_stage_t *self = (qt_stage_t *) arg;
    self->catchup_timer = -1;
    return s_pass (self, zclock_mono ());
}

static int
s_on_status (zloop_t *loop, int timer_id, void *arg)
{
    (void) loop; (void) timer_id;
    qt_stage_t *self = (qt_stage_t *) arg;
    s_status (self, zclock_mono ());
    return 0;
}

//  STATUS: the packed control reply (unsigned: the pipe is in-process)
//  and the STATUS= line
static void
s_pipe_status (qt_stage_t *self)
{
    int64_t now_ms = zclock_mono ();
    Quintet__ControlReply reply = QUINTET__CONTROL_REPLY__INIT;
    qt_stage_reply_storage_t *storage = (qt_stage_reply_storage_t *) zmalloc (sizeof *storage);
    s_details_t *details = (s_details_t *) zmalloc (sizeof (s_details_t));
    s_reply_fill (self, now_ms, &reply, storage, details);
    zframe_t *packed = zframe_new (NULL, quintet__control_reply__get_packed_size (&reply));
    quintet__control_reply__pack (&reply, zframe_data (packed));
    s_details_free (&details);
    free (storage);
    qt_stage_status_t status;
    s_status_fill (self, now_ms, &status);
    char line [QT_STAGE_STATUS_LINE];
    qt_stage_status_line (&status, line, sizeof line);
    zmsg_t *msg = zmsg_new ();
    zmsg_append (msg, &packed);
    zmsg_addstr (msg, line);
    zmsg_send (&msg, self->pipe);
}

static int
s_on_pipe (zloop_t *loop, zsock_t *pipe, void *arg)
{
    (void) loop;
    qt_stage_t *self = (qt_stage_t *) arg;
    char *command = zstr_recv (pipe);
    if (!command)
        return -1;          //  interrupted
    int rc = 0;
    if (streq (command, "$TERM")) {
        self->terminated = true;
        rc = -1;
    }
    else
    if (streq (command, "STATUS"))
        s_pipe_status (self);
    else
        qt_log (LOG_WARNING, "stage actor: unknown command \"%s\"", command);
    zstr_free (&command);
    return rc;
}

static int
s_run (qt_stage_t *self, zsock_t *pipe)
{
    zloop_t *loop = self->loop = zloop_new ();
    self->pipe = pipe;
    self->resend_timer = self->deadline_timer = self->catchup_timer = -1;
    zloop_reader (loop, pipe, s_on_pipe, self);
    for (size_t k = 0; k < self->subs; k++) {
        self->sub [k].stage = self;
        zloop_reader (loop, self->sub [k].sub, s_on_upstream, self);
    }
    if (self->control)
        zloop_reader (loop, self->control, s_on_control, self);
    if (self->catchup)
        qt_catchup_read_on (self->catchup, loop, s_on_peer, self);
    int64_t now_ms = zclock_mono ();
    self->last_progress_ms = now_ms;
    self->last_resend_ms = now_ms;
    self->last_status_ms = now_ms;
    //  Ping at least twice per watchdog interval
    if (self->watchdog_usec > 0 && self->status_ms > (int64_t) (self->watchdog_usec / 2000))
        self->status_ms = MAX (1, (int64_t) (self->watchdog_usec / 2000));
    self->status_timer = zloop_timer (loop, (size_t) self->status_ms, 0, s_on_status, self);
    if (self->role->start && self->role->start (self->state, self)) {
        zloop_destroy (&self->loop);
        return -1;
    }
    qt_log_event (LOG_NOTICE, QT_MSG_STARTED, UINT64_MAX, NULL, NULL,
                  "quintet-%s replica %u publishing %s on %s", self->role->role, self->replica,
                  self->role->topic, self->endpoint);
    s_status (self, now_ms);        //  READY=1 at once if there is nothing to wait for
    int rc = s_pass (self, now_ms);
    if (rc == 0)
        zloop_start (loop);
    zloop_destroy (&self->loop);
    return self->rc;
}

void
qt_stage_actor (zsock_t *pipe, void *stage)
{
    qt_stage_t *self = (qt_stage_t *) stage;
    zsock_signal (pipe, 0);
    self->rc = s_run (self, pipe);
    if (self->terminated)
        return;
    //  Not asked to stop ($TERM), or asked and already gone: say so, and
    //  wait for $TERM (zactor_destroy), answering STATUS meanwhile
    zstr_send (pipe, "STOPPED");
    while (true) {
        char *command = zstr_recv (pipe);
        if (!command) {
            if (zmq_errno () == EINTR)
                continue;
            break;
        }
        bool term = streq (command, "$TERM");
        if (streq (command, "STATUS"))
            s_pipe_status (self);
        zstr_free (&command);
        if (term)
            break;
    }
}
