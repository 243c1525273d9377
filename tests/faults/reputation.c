/*  reputation: the stages in one process (qt_stage_actor over inproc://).

    Reputation (common/qt_reputation.h), measured where it acts: the real
    aggregator role (daemons/aggregator) as actors, fed by rewarder stages
    whose role is a small one of this test (a deterministic reward vector
    per tick, published when the aggregators' reward of the tick before
    arrives: a ring, so ticks advance at the pipeline's own pace). Liars
    are rewarder stages started in a value-attack mode (qt_byzantine), as
    --byzantine starts a daemon. Checks, as tests/faults/test_reputation.py
    did on a whole multi-process deployment:

    * all honest: every rewarder ok with weight 1 in every report;
    * one persistent liar of 3 (sign-flip): it climbs the ladder (ok, warned,
      down-weighted, excluded) and is excluded within EXCLUDE_WITHIN ticks of
      its first report, weight 0, with a reason; the honest ones stay ok; the
      aggregated reward equals the honest run's, tick by tick; the stage's
      STATUS (the control reply quintetctl status gets) says excluded too;
    * two liars of 5 (f = 2, sign-flip and ipm): at least n - f of the present
      rewarders used at every tick, the two liars and only they excluded.
    And the receive path on the way (every message verified): a protocol
    fault per rewarder (n = 19, f = 9) is dropped and counted by its cause
    at every aggregator, about once per tick, and never changes the reward.
*/
#include "quintet.h"
#include "qt_selftest.h"

#define BATCH           8
#define TICKS           60      //  ticks of one run (the ring stops there)
#define SEED            7
#define EXCLUDE_WITHIN  16      //  QT_REPUTATION_EXCLUDE_AT far ticks, plus slack
#define MAX_REWARDERS   19
#define AGGREGATORS     3
#define QUIET_LIMIT_MS  120000  //  no reward for this long: the run is stuck (not a timing check)
#define REWARD_TOLERANCE 1e-9   //  relative, as tests/faults/faultlib.py
#define DEADLINE_MS     1000    //  quorum deadline of every stage here

extern const qt_role_t qt_aggregator_role;

static int s_failures = 0;

static void
s_check (bool ok, const char *fmt, ...)
{
    va_list args;
    va_start (args, fmt);
    printf ("%s ", ok ? "ok  " : "FAIL");
    vprintf (fmt, args);
    printf ("\n");
    va_end (args);
    if (!ok)
        s_failures++;
}

// -- the test's rewarder: one reward vector per tick ------------------------

typedef struct {
    qt_stage_t *stage;
    uint64_t ticks;             //  the last tick it publishes
} s_rewarder_t;

static void *
s_rewarder_create (qt_stage_t *stage, qt_config_t *config, char **error)
{
    s_rewarder_t *self = (s_rewarder_t *) zmalloc (sizeof (s_rewarder_t));
    self->stage = stage;
    if (qt_config_uint (config, "quintet/rewarder/ticks", true, 0, 1, 1000000, &self->ticks)) {
        *error = strdup (qt_config_error (config));
        free (self);
        return NULL;
    }
    return self;
}

static void
s_rewarder_destroy (void **state_p)
{
    free (*state_p);
    *state_p = NULL;
}

//  What every honest rewarder proposes for a tick: the same, far from 0 so
//  that a sign flip is far
static int
s_propose (qt_stage_t *stage, uint64_t tick)
{
    static const char *components [] = { "reward", "uncertainty" };
    Quintet__InstanceClock clocks [BATCH];
    Quintet__RewardVector vectors [BATCH];
    Quintet__RewardVector *vector_p [BATCH];
    double values [BATCH][2];
    for (size_t i = 0; i < BATCH; i++) {
        quintet__instance_clock__init (&clocks [i]);
        clocks [i].step = (uint32_t) tick;
        quintet__reward_vector__init (&vectors [i]);
        values [i][0] = 1 + 0.5 * sin ((double) tick * 0.37 + (double) i);
        values [i][1] = 0.1 + 0.05 * cos ((double) tick * 0.11 + (double) i);
        vectors [i].clock = &clocks [i];
        vectors [i].n_values = 2;
        vectors [i].values = values [i];
        vector_p [i] = &vectors [i];
    }
    Quintet__ProposalBatch batch = QUINTET__PROPOSAL_BATCH__INIT;
    batch.batch = BATCH;
    batch.n_components = 2;
    batch.components = (char **) components;
    batch.n_instances = BATCH;
    batch.instances = vector_p;
    return qt_stage_publish (stage, tick, &batch.base);
}

static int
s_rewarder_start (void *state, qt_stage_t *stage)
{
    (void) state;
    return s_propose (stage, 1);
}

//  The aggregators' reward of tick t: the proposal of t + 1, until the last
static int
s_rewarder_process (void *state, qt_stage_t *stage, uint64_t tick, qt_message_t **inputs [])
{
    s_rewarder_t *self = (s_rewarder_t *) state;
    (void) inputs;
    return tick < self->ticks ? s_propose (stage, tick + 1) : 0;
}

static const qt_role_t s_rewarder_role = {
    .role = "rewarder",
    .topic = "proposal",
    .type = QUINTET__PAYLOAD_TYPE__PROPOSAL_BATCH,
    .upstream = { { "aggregator", "reward" } },
    .upstreams = 1,
    .summary = "test rewarder",
    .create = s_rewarder_create,
    .destroy = s_rewarder_destroy,
    .start = s_rewarder_start,
    .process = s_rewarder_process,
};

// -- one run: aggregators and rewarders as actors ---------------------------

typedef struct {
    double reward [TICKS + 1][BATCH];
    bool seen [TICKS + 1];
    //  RewardBatch.replicas of aggregator 1, per tick
    uint32_t n_reports;
    char status [TICKS + 1][MAX_REWARDERS][16];
    char reason [TICKS + 1][MAX_REWARDERS][64];
    double weight [TICKS + 1][MAX_REWARDERS];
    bool used [TICKS + 1][MAX_REWARDERS];
    bool present [TICKS + 1][MAX_REWARDERS];
    //  Drops by cause at each aggregator, and rewarder 2's standing, from STATUS
    uint64_t drops [AGGREGATORS][QT_DROP_CAUSES];
    char standing [AGGREGATORS][MAX_REWARDERS][16];
    uint64_t ticks;             //  the last tick seen
} s_run_t;

static char *s_dir;             //  keys/ and trust/

static void
s_keys (void)
{
    char *keys = zsys_sprintf ("%s/keys", s_dir);
    char *trust = zsys_sprintf ("%s/trust", s_dir);
    QT_CHECK (mkdir (keys, 0700) == 0 && mkdir (trust, 0700) == 0);
    struct { const char *role; uint32_t replicas; } roles [] = {
        { "rewarder", MAX_REWARDERS }, { "aggregator", AGGREGATORS },
        { "world", 1 },         //  whose key a wrong-role liar signs with
    };
    for (size_t k = 0; k < sizeof roles / sizeof roles [0]; k++)
        for (uint32_t r = 1; r <= roles [k].replicas; r++) {
            qt_keypair_t *keypair = qt_keypair_generate (roles [k].role, r);
            char *secret = zsys_sprintf ("%s/%s-%u.key", keys, roles [k].role, r);
            char *public = zsys_sprintf ("%s/%s-%u.pub", trust, roles [k].role, r);
            QT_CHECK (qt_keypair_save (keypair, secret, public) == 0);
            zstr_free (&secret);
            zstr_free (&public);
            qt_keypair_destroy (&keypair);
        }
    zstr_free (&keys);
    zstr_free (&trust);
}

//  A stage's config file: common keys, then upstream endpoints
static qt_config_t *
s_config (const char *run, const char *role, uint32_t replica, const char *upstream,
          uint32_t upstreams, uint32_t faults)
{
    char *path = zsys_sprintf ("%s/%s-%s-%u.conf", s_dir, run, role, replica);
    FILE *file = fopen (path, "w");
    QT_CHECK (file);
    fprintf (file, "quintet\n    role = %s\n    replica = %u\n    batch = %d\n    seed = %d\n"
             "    secret_key = \"%s/keys/%s-%u.key\"\n    trust_dir = \"%s/trust\"\n"
             "    bind = \"inproc://%s-%s-%u\"\n    log_level = warning\n",
             role, replica, BATCH, SEED, s_dir, role, replica, s_dir, run, role, replica);
    if (streq (role, "rewarder"))
        fprintf (file, "    rewarder\n        ticks = %d\n", TICKS);
    //  A deadline far above any delay of a busy machine: an honest replica
    //  is never left out of a tick, so the reward checks hold exactly (a
    //  silent or always-dropped one costs down_after deadlines, once)
    fprintf (file, "    upstream\n        %s\n            faults = %u\n            deadline_ms = %d\n",
             upstream, faults, DEADLINE_MS);
    for (uint32_t r = 1; r <= upstreams; r++)
        fprintf (file, "            %u = \"inproc://%s-%s-%u\"\n", r, run, upstream, r);
    fclose (file);
    char *error = NULL;
    qt_config_t *config = qt_config_open (path, &error);
    if (!config)
        fprintf (stderr, "reputation: %s\n", error);
    QT_CHECK (config);
    zstr_free (&path);
    return config;
}

typedef struct {
    qt_config_t *config;
    qt_stage_t *stage;
    zactor_t *actor;
} s_started_t;

static void
s_start (s_started_t *started, const qt_role_t *role, qt_config_t *config,
         qt_byzantine_mode_t mode)
{
    qt_stage_options_t options = { .byzantine = mode };
    char *error = NULL;
    started->config = config;
    started->stage = qt_stage_new (role, config, &options, &error);
    if (!started->stage)
        fprintf (stderr, "reputation: %s\n", error);
    QT_CHECK (started->stage);
    started->actor = zactor_new (qt_stage_actor, started->stage);
}

static void
s_stop (s_started_t *started)
{
    zactor_destroy (&started->actor);
    QT_CHECK (qt_stage_result (started->stage) == 0);
    qt_stage_destroy (&started->stage);
    qt_config_destroy (&started->config);
}

//  The stage's STATUS: the control reply (caller frees)
static Quintet__ControlReply *
s_status (zactor_t *actor)
{
    zstr_send (actor, "STATUS");
    zmsg_t *msg = zmsg_recv (actor);
    QT_CHECK (msg && zmsg_size (msg) == 2);
    zframe_t *packed = zmsg_first (msg);
    Quintet__ControlReply *reply = quintet__control_reply__unpack (NULL, zframe_size (packed),
                                                                    zframe_data (packed));
    QT_CHECK (reply);
    zmsg_destroy (&msg);
    return reply;
}

//  A subscriber to aggregator 1's rewards, connected before the stages
//  start so that it sees every tick
static zsock_t *
s_observer (const char *run)
{
    char *endpoint = zsys_sprintf ("inproc://%s-aggregator-1", run);
    const char *endpoints [] = { endpoint, NULL };
    const char *topics [] = { "reward", NULL };
    char *error = NULL;
    zsock_t *sub = qt_transport_subscriber (endpoints, topics, QT_MESSAGE_SIZE_CAP, &error);
    QT_CHECK (sub);
    zstr_free (&endpoint);
    return sub;
}

//  Reads the rewards until the last tick (every message verified, as any
//  consumer does)
static void
s_observe (zsock_t *sub, s_run_t *out)
{
    char *error = NULL;
    char *trust_dir = zsys_sprintf ("%s/trust", s_dir);
    qt_trust_t *trust = qt_trust_load (trust_dir, &error);
    QT_CHECK (trust);
    qt_verifier_t *verifier = qt_verifier_new (trust, BATCH);
    zpoller_t *poller = zpoller_new (sub, NULL);
    while (!out->seen [TICKS]) {
        if (!zpoller_wait (poller, QUIET_LIMIT_MS))
            break;
        char *topic = NULL;
        zframe_t *frame = NULL;
        if (qt_transport_recv (sub, &topic, &frame))
            continue;
        qt_drop_cause_t cause = QT_DROP_NONE;
        qt_message_t *message = qt_verifier_open_from (verifier, topic, "aggregator", 1,
                                                       zframe_data (frame), zframe_size (frame), &cause);
        zframe_destroy (&frame);
        zstr_free (&topic);
        QT_CHECK (message);
        uint64_t tick = message->envelope->tick;
        const Quintet__RewardBatch *batch = (const Quintet__RewardBatch *) message->payload;
        if (tick >= 1 && tick <= TICKS && !out->seen [tick]) {
            out->seen [tick] = true;
            out->ticks = tick;
            for (size_t i = 0; i < BATCH; i++)
                out->reward [tick][i] = batch->instances [i]->reward;
            out->n_reports = (uint32_t) MIN (batch->n_replicas, MAX_REWARDERS);
            for (uint32_t k = 0; k < out->n_reports; k++) {
                const Quintet__ReplicaReport *report = batch->replicas [k];
                uint32_t r = report->replica - 1;
                if (r >= MAX_REWARDERS)
                    continue;
                snprintf (out->status [tick][r], sizeof out->status [tick][r], "%s", report->status);
                snprintf (out->reason [tick][r], sizeof out->reason [tick][r], "%s", report->reason);
                out->weight [tick][r] = report->weight;
                out->used [tick][r] = report->used;
                out->present [tick][r] = report->distance == report->distance;     //  NaN: absent
            }
        }
        qt_message_destroy (&message);
    }
    zpoller_destroy (&poller);
    qt_verifier_destroy (&verifier);
    qt_trust_destroy (&trust);
    zstr_free (&trust_dir);
}

//  One run: AGGREGATORS aggregators, n rewarders of which modes [r] lie
static void
s_run (const char *run, uint32_t n, uint32_t f, const qt_byzantine_mode_t *modes, s_run_t *out)
{
    int64_t started_ms = zclock_mono ();
    memset (out, 0, sizeof *out);
    s_started_t aggregators [AGGREGATORS], rewarders [MAX_REWARDERS];
    zsock_t *observer = s_observer (run);
    for (uint32_t a = 0; a < AGGREGATORS; a++)
        s_start (&aggregators [a], &qt_aggregator_role,
                 s_config (run, "aggregator", a + 1, "rewarder", n, f), QT_BYZANTINE_HONEST);
    for (uint32_t r = 0; r < n; r++)
        s_start (&rewarders [r], &s_rewarder_role,
                 s_config (run, "rewarder", r + 1, "aggregator", AGGREGATORS, (AGGREGATORS - 1) / 2),
                 modes ? modes [r] : QT_BYZANTINE_HONEST);
    s_observe (observer, out);
    zsock_destroy (&observer);
    for (uint32_t a = 0; a < AGGREGATORS; a++) {
        Quintet__ControlReply *reply = s_status (aggregators [a].actor);
        for (size_t d = 0; d < reply->n_drops; d++)
            for (int c = QT_DROP_NONE + 1; c < QT_DROP_CAUSES; c++)
                if (streq (reply->drops [d]->cause, qt_drop_cause_name ((qt_drop_cause_t) c)))
                    out->drops [a][c] = reply->drops [d]->count;
        QT_CHECK (reply->n_upstreams == 1);
        for (size_t r = 0; r < reply->upstreams [0]->n_replica_status && r < MAX_REWARDERS; r++)
            snprintf (out->standing [a][r], sizeof out->standing [a][r], "%s",
                      reply->upstreams [0]->replica_status [r]);
        quintet__control_reply__free_unpacked (reply, NULL);
    }
    for (uint32_t r = 0; r < n; r++)
        s_stop (&rewarders [r]);
    for (uint32_t a = 0; a < AGGREGATORS; a++)
        s_stop (&aggregators [a]);
    printf ("     run %s: %u rewarders (f = %u), %" PRIu64 " ticks in %" PRId64 " ms\n", run, n, f,
            out->ticks, zclock_mono () - started_ms);
}

//  Ticks whose reward is the honest run's (relative difference), the worst;
//  a tick missing from either run is not the same
static uint32_t
s_same_reward (const s_run_t *run, const s_run_t *honest, double *worst)
{
    uint32_t same = 0;
    *worst = 0;
    for (uint32_t t = 1; t <= TICKS; t++) {
        if (!run->seen [t] || !honest->seen [t]) {
            *worst = INFINITY;
            continue;
        }
        double tick_worst = 0;
        for (size_t i = 0; i < BATCH; i++) {
            double scale = MAX (fabs (honest->reward [t][i]), 1e-12);
            tick_worst = MAX (tick_worst, fabs (run->reward [t][i] - honest->reward [t][i]) / scale);
        }
        *worst = MAX (*worst, tick_worst);
        same += tick_worst <= REWARD_TOLERANCE;
    }
    return same;
}

static s_run_t s_honest, s_one, s_two, s_protocol;

int
main (void)
{
    zsys_init ();
    QT_CHECK (sodium_init () >= 0);
    char dir [] = "/tmp/quintet-reputation.XXXXXX";
    QT_CHECK (mkdtemp (dir));
    s_dir = dir;
    s_keys ();

    //  All honest
    s_run ("honest", 3, 1, NULL, &s_honest);
    s_check (s_honest.seen [TICKS], "honest: the ring ran to tick %d", TICKS);
    uint32_t reports = 0, not_ok = 0;
    for (uint32_t t = 1; t <= TICKS; t++)
        for (uint32_t r = 0; r < 3 && s_honest.seen [t]; r++, reports++)
            not_ok += !streq (s_honest.status [t][r], "ok") || s_honest.weight [t][r] != 1;
    s_check (reports > 0 && not_ok == 0, "all honest: every rewarder ok with weight 1 in %u reports "
             "(%u not)", reports, not_ok);

    //  One persistent liar of 3: the ladder, then excluded
    qt_byzantine_mode_t one [MAX_REWARDERS] = { QT_BYZANTINE_HONEST };
    one [1] = QT_BYZANTINE_SIGN_FLIP;
    s_run ("one-liar", 3, 1, one, &s_one);
    double worst = 0;
    uint32_t same = s_same_reward (&s_one, &s_honest, &worst);
    s_check (same == TICKS, "rewarder-2 sign-flip: aggregated reward equals the honest "
             "run's on %u of %d ticks (max relative difference %.3g)", same, TICKS, worst);
    const char *ladder [8];
    uint32_t steps = 0, first = 0, excluded_at = 0, honest_not_ok = 0;
    double excluded_weight = -1;
    const char *excluded_reason = "";
    for (uint32_t t = 1; t <= TICKS; t++) {
        if (!s_one.seen [t] || !s_one.present [t][1])
            continue;
        if (!first)
            first = t;
        const char *status = s_one.status [t][1];
        if (steps < 8 && (steps == 0 || !streq (ladder [steps - 1], status)))
            ladder [steps++] = status;
        if (!excluded_at && streq (status, "excluded")) {
            excluded_at = t;
            excluded_weight = s_one.weight [t][1];
            excluded_reason = s_one.reason [t][1];
        }
        honest_not_ok += !streq (s_one.status [t][0], "ok") + !streq (s_one.status [t][2], "ok");
    }
    bool climbs = (steps >= 4 && streq (ladder [0], "ok") && streq (ladder [1], "warned")
                   && streq (ladder [2], "down-weighted") && streq (ladder [3], "excluded"))
               || (steps >= 3 && streq (ladder [0], "warned") && streq (ladder [1], "down-weighted")
                   && streq (ladder [2], "excluded"));
    s_check (climbs, "rewarder-2 climbs the ladder: %s -> %s -> %s -> %s", steps > 0 ? ladder [0] : "",
             steps > 1 ? ladder [1] : "", steps > 2 ? ladder [2] : "", steps > 3 ? ladder [3] : "");
    s_check (excluded_at && excluded_at - first <= EXCLUDE_WITHIN && excluded_weight == 0
             && *excluded_reason, "rewarder-2 excluded at tick %u, within %d ticks of its first "
             "report (%u), weight %g, reason \"%s\"", excluded_at, EXCLUDE_WITHIN, first,
             excluded_weight, excluded_reason);
    s_check (honest_not_ok == 0, "honest rewarders 1 and 3 always ok (%u reports not)", honest_not_ok);
    bool all_say = true;
    for (uint32_t a = 0; a < AGGREGATORS; a++)
        all_say &= streq (s_one.standing [a][1], "excluded") || streq (s_one.standing [a][1], "probation");
    s_check (all_say, "STATUS (the control reply): every aggregator has rewarder-2 excluded (%s, %s, %s)",
             s_one.standing [0][1], s_one.standing [1][1], s_one.standing [2][1]);

    //  Two liars of 5, f = 2: both excluded, never fewer than n - f used
    qt_byzantine_mode_t two [MAX_REWARDERS] = { QT_BYZANTINE_SIGN_FLIP, QT_BYZANTINE_IPM };
    s_run ("two-liars", 5, 2, two, &s_two);
    same = s_same_reward (&s_two, &s_honest, &worst);
    s_check (same == TICKS, "n=5 f=2, rewarders 1, 2 lying: aggregated reward equals the "
             "honest run's on %u of %d ticks (max relative difference %.3g)", same, TICKS, worst);
    uint32_t short_ticks = 0;
    bool excluded [5] = { false };
    for (uint32_t t = 1; t <= TICKS; t++) {
        if (!s_two.seen [t])
            continue;
        uint32_t present = 0, used = 0;
        for (uint32_t r = 0; r < 5; r++) {
            present += s_two.present [t][r];
            used += s_two.present [t][r] && s_two.used [t][r];
            excluded [r] |= streq (s_two.status [t][r], "excluded");
        }
        short_ticks += used < MIN (present, 5 - 2);
    }
    s_check (short_ticks == 0, "n=5 f=2: at least n - f = 3 present rewarders used at every tick "
             "(%u ticks short)", short_ticks);
    s_check (excluded [0] && excluded [1] && !excluded [2] && !excluded [3] && !excluded [4],
             "n=5 f=2: the two liars and only they are excluded");

    //  Every protocol fault at once, one per rewarder: dropped by cause at
    //  every aggregator, about once per tick, and the reward unchanged
    struct { qt_byzantine_mode_t mode; qt_drop_cause_t cause; double share; } faults [] = {
        { QT_BYZANTINE_BAD_SIGNATURE, QT_DROP_BAD_SIGNATURE, 1.0 },
        { QT_BYZANTINE_WRONG_ROLE, QT_DROP_WRONG_ROLE, 1.0 },
        { QT_BYZANTINE_REPLAY, QT_DROP_REPLAY, 1.0 },
        { QT_BYZANTINE_STALE_TICK, QT_DROP_STALE, 1.0 },
        { QT_BYZANTINE_TRUNCATED, QT_DROP_MALFORMED, 1.0 },
        { QT_BYZANTINE_MALFORMED, QT_DROP_MALFORMED, 1.0 },
        { QT_BYZANTINE_OVERSIZED, QT_DROP_OVERSIZE, 1.0 / QT_BYZANTINE_OVERSIZE_EVERY },
        { QT_BYZANTINE_WRONG_BATCH_SIZE, QT_DROP_BATCH_SIZE, 1.0 },
        { QT_BYZANTINE_SILENCE, QT_DROP_NONE, 0 },
    };
    size_t n_faults = sizeof faults / sizeof faults [0];
    qt_byzantine_mode_t modes [MAX_REWARDERS] = { QT_BYZANTINE_HONEST };
    for (size_t k = 0; k < n_faults; k++)
        modes [k] = faults [k].mode;
    s_run ("protocol", MAX_REWARDERS, MAX_REWARDERS / 2, modes, &s_protocol);
    for (size_t k = 0; k < n_faults; k++) {
        if (faults [k].cause == QT_DROP_NONE)
            continue;
        //  The two faults dropped as malformed add up
        double share = faults [k].share;
        for (size_t o = 0; o < n_faults; o++)
            if (o != k && faults [o].cause == faults [k].cause)
                share += faults [o].share;
        uint64_t want = (uint64_t) (0.8 * share * (double) s_protocol.ticks);
        for (uint32_t a = 0; a < AGGREGATORS; a++)
            s_check (s_protocol.drops [a][faults [k].cause] >= want,
                     "rewarder-%zu %s: aggregator-%u counted %" PRIu64 " %s drops (>= %" PRIu64
                     " of %" PRIu64 " ticks)", k + 1, qt_byzantine_mode_name (faults [k].mode), a + 1,
                     s_protocol.drops [a][faults [k].cause], qt_drop_cause_name (faults [k].cause),
                     want, s_protocol.ticks);
    }
    same = s_same_reward (&s_protocol, &s_honest, &worst);
    s_check (same == TICKS, "protocol faults: aggregated reward equals the honest run's "
             "on %u of %d ticks (max relative difference %.3g)", same, TICKS, worst);

    zdir_t *tree = zdir_new (dir, NULL);
    if (tree)
        zdir_remove (tree, true);
    zdir_destroy (&tree);
    if (s_failures)
        printf ("%d check(s) failed\n", s_failures);
    else
        printf ("reputation: liars excluded, honest replicas never, honest reward unchanged; "
                "protocol faults dropped by cause\n");
    return s_failures ? 1 : 0;
}
