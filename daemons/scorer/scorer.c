/*  quintet-scorer (Charlie): how desirable the likely states are, learned
    from what people say.

    Each tick t, in this order:
    1. Judgments: the collectors' JudgmentBatch of tick t holds the raters'
       answers to the queries this scorer asked at tick t - 1. Each judgment
       carries its rater's own signature, checked here (qt_wire_judgment_open)
       whoever relayed it, and must answer a query we asked (same tick,
       index, rater and situations); the union over the collector replicas
       is learned from in query order (a lying collector can withhold a
       judgment, which another collector supplies, but not forge or replay
       one). Then the raters with new judgments are refit (sc_learn).
    2. Scores: beliefs from the world-model replicas are combined robustly
       (coordinate-wise median, samples from the replica nearest the median:
       wm_belief_combine); every likely state is scored by the majority
       judgment of the learned raters (QrQtl over their utilities, q from
       config) and the distribution over likely states published, with
       each instance's clock and what has been learned (ScoreBatch.learning).
    3. Queries: the pairs of situations to ask about, chosen among the
       tick's likely states where the raters' models are least certain,
       within the budgets (sc_learn_select), published on topic query
       (kept for re-sends: the raters answer them in tick t + 1).
    Honest replicas see the same inputs and stay bit-identical; a restarted
    one takes its peers' state (snapshot, restore: the learner's and the
    queries pending) and is bit-identical again from there.

    The scorer holds no utility: its configuration is the learner's
    (quintet/scorer/<option> for every sc_learn_options name: quantile,
    lipschitz, prior_sd, raters, comparisons, per_tick, max_per_rater, unit).
    It never reads the environment's hidden performance, `eval` or the
    intended value.
*/
#include "quintet.h"
#include "qt_wire.h"
#include "learn.h"

#define S_STATE_MAGIC       "QTSCORE1"
#define S_STATE_VERSION     1

typedef struct {
    qt_env_decl_t decl;
    size_t batch;
    sc_learn_t *learn;
    wm_belief_t *replica_belief;            //  [replica], scratch
    wm_belief_t *combined;                  //  [batch]
    const wm_belief_t **asked_about;        //  [batch]
    qt_wire_clock_t *clocks;
    Quintet__InstanceClock *wire_clocks;
    //  The queries of the last tick, which this tick's judgments answer
    sc_pending_t pending;
    zchunk_t *identity;                     //  what a state from a peer must start with
    double learn_seconds;                   //  learning (adding judgments, refitting), last tick
    qt_metric_t *judgments;                 //  quintet_scorer_judgments_total{outcome}
    qt_metric_t *learn_time;                //  quintet_scorer_learn_seconds (histogram)
    qt_metric_t *asked;                     //  quintet_scorer_comparisons_asked
    qt_metric_t *used;                      //  quintet_scorer_comparisons_learned
    qt_metric_t *budget;                    //  quintet_scorer_comparisons_budget
    qt_metric_t *weight;                    //  quintet_scorer_learned_weight{feature}
    qt_metric_t *rater_states;              //  quintet_scorer_raters{state}
} scorer_t;

static void
s_scorer_destroy (void **state_p)
{
    scorer_t *self = (scorer_t *) *state_p;
    if (!self)
        return;
    sc_learn_destroy (&self->learn);
    free (self->replica_belief);
    free (self->combined);
    free (self->asked_about);
    free (self->clocks);
    free (self->wire_clocks);
    zchunk_destroy (&self->identity);
    free (self);
    *state_p = NULL;
}

static void *
s_scorer_create (qt_stage_t *stage, qt_config_t *config, char **error)
{
    scorer_t *self = (scorer_t *) zmalloc (sizeof (scorer_t));
    self->batch = qt_stage_batch (stage);
    if (qt_wire_declare_env (stage, config, NULL, &self->decl, error)) {
        free (self);
        return NULL;
    }
    //  Every key under quintet/scorer/ must be a learner option: a panel
    //  written in the config (rater/<name>/weight/...) is refused
    sc_learn_config_t learn;
    sc_learn_config_default (&learn);
    int rc = 0;
    zlist_t *keys = qt_config_children (config, "quintet/scorer");
    for (char *name = (char *) zlist_first (keys); name && rc == 0; name = (char *) zlist_next (keys)) {
        char *key = zsys_sprintf ("quintet/scorer/%s", name);
        const char *value = NULL;
        const char *cause = NULL;
        if (qt_config_string (config, key, "", &value) || sc_learn_config_set (&learn, name, value, &cause)) {
            *error = zsys_sprintf ("%s: %s: %s (the scorer's options: quantile, lipschitz, "
                                   "prior_sd, raters, comparisons, per_tick, max_per_rater, unit; "
                                   "it learns what people want and holds no utility)",
                                   qt_config_path (config), key, cause ? cause : "not a value");
            rc = -1;
        }
        zstr_free (&key);
    }
    zlist_destroy (&keys);
    const char *cause = NULL;
    if (rc == 0) {
        self->learn = sc_learn_new (&learn, self->decl.n_features, self->decl.reward_scale, &cause);
        if (!self->learn) {
            *error = zsys_sprintf ("%s: quintet/scorer: %s", qt_config_path (config), cause);
            rc = -1;
        }
    }
    if (rc) {
        free (self);
        return NULL;
    }
    self->replica_belief = (wm_belief_t *) zmalloc (sizeof (wm_belief_t) * QT_QUORUM_MAX_REPLICAS);
    self->combined = (wm_belief_t *) zmalloc (sizeof (wm_belief_t) * self->batch);
    self->asked_about = (const wm_belief_t **) zmalloc (sizeof (void *) * self->batch);
    self->clocks = (qt_wire_clock_t *) zmalloc (sizeof (qt_wire_clock_t) * self->batch);
    self->wire_clocks = (Quintet__InstanceClock *) zmalloc (sizeof (Quintet__InstanceClock) * self->batch);
    qt_metrics_t *metrics = qt_stage_metrics (stage);
    //  Judgments received = the sum over outcomes; every outcome but
    //  learned is a judgment dropped, by cause
    self->judgments = qt_metrics_counter (metrics, "quintet_scorer_judgments_total",
        "Judgments the scorer received from the collectors, by outcome: learned, or why it was "
        "not (duplicate: the same answer from another collector; conflicting, unasked, or the "
        "receive path's cause: unknown-key, wrong-role, bad-signature, bad-payload, "
        "invalid-value)", "outcome");
    qt_metric_add (self->judgments, "learned", 0);
    self->asked = qt_metrics_gauge (metrics, "quintet_scorer_comparisons_asked",
        "Comparisons asked so far", NULL);
    self->used = qt_metrics_gauge (metrics, "quintet_scorer_comparisons_learned",
        "Judgments learned from so far", NULL);
    self->budget = qt_metrics_gauge (metrics, "quintet_scorer_comparisons_budget",
        "Comparisons that may be asked in all (quintet/scorer/comparisons)", NULL);
    qt_metric_set (self->budget, NULL, (double) sc_learn_budget (self->learn));
    static const double learn_bounds [] = { 1e-6, 2.5e-6, 5e-6, 1e-5, 2.5e-5, 5e-5, 1e-4,
                                            2.5e-4, 5e-4, 1e-3, 2.5e-3, 5e-3, 1e-2, 0.1, 1 };
    self->learn_time = qt_metrics_histogram (metrics, "quintet_scorer_learn_seconds",
        "Time spent learning per tick: adding the tick's judgments and refitting the raters "
        "who have new ones (not checking their signatures)", NULL,
        learn_bounds, sizeof learn_bounds / sizeof learn_bounds [0]);
    self->weight = qt_metrics_gauge (metrics, "quintet_scorer_learned_weight",
        "The raters' weights aggregated (QrMed) per declared feature, reward units", "feature");
    self->rater_states = qt_metrics_gauge (metrics, "quintet_scorer_raters",
        "Raters by state: voting (a voting right > 0) or excluded (none: no judgment yet)",
        "state");
    //  The learner's own header holds its options and features
    self->identity = zchunk_new (NULL, 0);
    qt_wire_state_identity (stage, S_STATE_MAGIC, S_STATE_VERSION, self->identity);
    return self;
}

static qt_drop_cause_t
s_scorer_validate (void *state, size_t upstream, const ProtobufCMessage *payload)
{
    scorer_t *self = (scorer_t *) state;
    if (upstream == 1)
        return QT_DROP_NONE;        //  judgments are checked one by one, in process()
    const Quintet__BeliefBatch *beliefs = (const Quintet__BeliefBatch *) payload;
    if (beliefs->n_sensors != self->decl.n_sensors || beliefs->n_features != self->decl.n_features
    ||  beliefs->n_variables != self->decl.n_vars)
        return QT_DROP_INVALID;
    return QT_DROP_NONE;
}

//  The judgments of this tick: the union over the collector replicas of
//  the rater-signed answers to the queries of the last tick, learned from
//  in query order. Returns how many were learned.
static uint32_t
s_learn_judgments (scorer_t *self, qt_stage_t *stage, uint64_t tick, qt_message_t **inputs)
{
    uint32_t replicas = qt_quorum_replicas (qt_stage_quorum (stage, 1));
    bool answered [SC_MAX_QUERIES] = { false };
    double preference [SC_MAX_QUERIES] = { 0 };
    uint32_t n_features = self->decl.n_features;
    for (uint32_t r = 0; r < replicas; r++) {
        qt_message_t *message = inputs [r];
        if (!message || qt_stage_replica_weight (stage, 1, r + 1) <= 0)
            continue;
        const Quintet__JudgmentBatch *batch = (const Quintet__JudgmentBatch *) message->payload;
        size_t missing = 0;
        for (size_t j = 0; j < batch->n_judgments; j++) {
            Quintet__Comparison *comparison = NULL;
            qt_drop_cause_t cause = qt_wire_judgment_open (qt_stage_trust (stage), batch->judgments [j],
                                                           n_features, &comparison);
            const char *outcome = cause == QT_DROP_NONE ? NULL : qt_drop_cause_name (cause);
            //  It must answer a query of ours, as asked
            if (!outcome) {
                uint32_t k = comparison->query_index;
                const sc_query_t *query = k < self->pending.n_queries ? &self->pending.queries [k] : NULL;
                if (!self->pending.have || tick == 0 || comparison->query_tick != self->pending.tick
                ||  !query || query->rater != comparison->rater
                ||  comparison->n_a != n_features || comparison->n_b != n_features
                ||  memcmp (comparison->a, query->a, sizeof (double) * n_features)
                ||  memcmp (comparison->b, query->b, sizeof (double) * n_features))
                    outcome = "unasked";
                else
                if (answered [k])
                    outcome = preference [k] == comparison->preference ? "duplicate" : "conflicting";
                else {
                    answered [k] = true;
                    preference [k] = comparison->preference;
                }
            }
            if (outcome)
                qt_metric_add (self->judgments, outcome, 1);
            if (outcome && strneq (outcome, "duplicate"))
                missing++;
            if (comparison)
                quintet__comparison__free_unpacked (comparison, NULL);
        }
        //  A collector's distance: the judgments it relayed that were not
        //  good answers (a forged, replayed or unasked one)
        qt_stage_report_distance (stage, 1, r + 1, (double) missing);
    }
    uint32_t learned = 0;
    int64_t started = zclock_usecs ();
    for (size_t k = 0; k < self->pending.n_queries; k++)
        if (answered [k]
        &&  sc_learn_add (self->learn, self->pending.queries [k].rater,
                          self->pending.queries [k].a, self->pending.queries [k].b,
                          preference [k]) == 0)
            learned++;
    self->learn_seconds = (double) (zclock_usecs () - started) / 1e6;
    qt_metric_add (self->judgments, "learned", learned);
    return learned;
}

static int
s_scorer_process (void *state, qt_stage_t *stage, uint64_t tick, qt_message_t **inputs [])
{
    scorer_t *self = (scorer_t *) state;
    uint32_t replicas = qt_quorum_replicas (qt_stage_quorum (stage, 0));
    const Quintet__BeliefBatch *beliefs [QT_QUORUM_MAX_REPLICAS] = { NULL };
    if (qt_wire_gather (inputs [0], replicas, self->batch, (const ProtobufCMessage **) beliefs,
                        self->clocks) < 0)
        return 0;

    //  1. What people said of the last tick's queries
    self->learn_seconds = 0;
    s_learn_judgments (self, stage, tick, inputs [1]);
    int64_t started = zclock_usecs ();
    sc_learn_fit (self->learn);
    self->learn_seconds += (double) (zclock_usecs () - started) / 1e6;
    qt_metric_observe (self->learn_time, NULL, self->learn_seconds);

    //  2. Scores
    Quintet__ScoreDistribution *scores = (Quintet__ScoreDistribution *) zmalloc (sizeof (Quintet__ScoreDistribution) * self->batch);
    Quintet__ScoreDistribution **scores_p = (Quintet__ScoreDistribution **) zmalloc (sizeof (void *) * self->batch);
    const wm_belief_t *views [QT_QUORUM_MAX_REPLICAS];
    //  Reputation: an excluded world model is left out of the median (the
    //  median is not weighted: a down-weighted one still counts); each
    //  one's distance is the L2 of its expected features to the combined
    //  belief's, averaged over the batch
    const wm_belief_t *used [QT_QUORUM_MAX_REPLICAS];
    double distance [QT_QUORUM_MAX_REPLICAS] = { 0 };
    bool comparable [QT_QUORUM_MAX_REPLICAS];
    for (uint32_t r = 0; r < replicas; r++)
        comparable [r] = beliefs [r] != NULL;
    size_t n_asked_about = 0;
    for (size_t i = 0; i < self->batch; i++) {
        for (uint32_t r = 0; r < replicas; r++) {
            views [r] = NULL;
            if (beliefs [r] && qt_wire_belief_get (beliefs [r]->instances [i], &self->replica_belief [r]) == 0)
                views [r] = &self->replica_belief [r];
            used [r] = qt_stage_replica_weight (stage, 0, r + 1) > 0 ? views [r] : NULL;
        }
        wm_belief_t *combined = &self->combined [i];
        sc_score_t score;
        memset (&score, 0, sizeof score);
        score.data_reliability = 1;
        if (wm_belief_combine (used, replicas, combined) == 0) {
            sc_learn_score (self->learn, combined, &score);
            //  Situations are asked about from running episodes only
            if (!self->clocks [i].idle) {
                self->asked_about [n_asked_about++] = combined;
                sc_learn_follow (self->learn, (uint32_t) i, combined, self->clocks [i].step,
                                 self->clocks [i].done);
            }
            for (uint32_t r = 0; r < replicas; r++) {
                if (!views [r] || views [r]->n_features != combined->n_features) {
                    comparable [r] = false;
                    continue;
                }
                double squared = 0;
                for (uint32_t f = 0; f < combined->n_features; f++) {
                    double delta = views [r]->features [f] - combined->features [f];
                    squared += delta * delta;
                }
                distance [r] += sqrt (squared) / (double) self->batch;
            }
        }
        quintet__score_distribution__init (&scores [i]);
        qt_wire_clock_put (&self->clocks [i], &self->wire_clocks [i]);
        scores [i].clock = &self->wire_clocks [i];
        scores [i].mean = score.mean;
        scores [i].q10 = score.q10;
        scores [i].q50 = score.q50;
        scores [i].q90 = score.q90;
        scores [i].spread = score.spread;
        scores [i].disagreement = score.disagreement;
        scores [i].data_reliability = score.data_reliability;
        scores_p [i] = &scores [i];
    }

    //  What has been learned, for dashboards and status
    uint32_t n_features = self->decl.n_features, raters = sc_learn_raters (self->learn);
    double weights [QT_ENV_MAX_FEATURES];
    sc_learn_weights (self->learn, weights);
    double *rights = (double *) zmalloc (sizeof (double) * (raters + 1));
    uint32_t *counts = (uint32_t *) zmalloc (sizeof (uint32_t) * (raters + 1));
    uint32_t *excluded = (uint32_t *) zmalloc (sizeof (uint32_t) * (raters + 1));
    size_t n_excluded = 0;
    for (uint32_t r = 0; r < raters; r++) {
        rights [r] = sc_learn_voting_right (self->learn, r + 1);
        counts [r] = sc_learn_rater_comparisons (self->learn, r + 1);
        if (rights [r] <= 0)
            excluded [n_excluded++] = r + 1;
    }
    Quintet__Learning learning = QUINTET__LEARNING__INIT;
    learning.n_features = n_features;
    learning.features = (char **) self->decl.feature_names;
    learning.n_weights = n_features;
    learning.weights = weights;
    learning.comparisons = sc_learn_comparisons (self->learn);
    learning.asked = sc_learn_asked (self->learn);
    learning.n_voting_rights = raters;
    learning.voting_rights = rights;
    learning.n_rater_comparisons = raters;
    learning.rater_comparisons = counts;
    learning.n_excluded = n_excluded;
    learning.excluded = excluded;
    learning.learn_seconds = self->learn_seconds;
    learning.budget = sc_learn_budget (self->learn);
    learning.per_tick = sc_learn_per_tick (self->learn);
    for (uint32_t f = 0; f < n_features; f++)
        qt_metric_set (self->weight, self->decl.feature_names [f], weights [f]);
    qt_metric_set (self->rater_states, "voting", (double) (raters - n_excluded));
    qt_metric_set (self->rater_states, "excluded", (double) n_excluded);

    Quintet__ScoreBatch batch = QUINTET__SCORE_BATCH__INIT;
    batch.batch = (uint32_t) self->batch;
    batch.quantile = sc_learn_quantile (self->learn);
    batch.raters = raters;
    batch.n_instances = self->batch;
    batch.instances = scores_p;
    batch.learning = &learning;
    int rc = qt_stage_publish (stage, tick, &batch.base);
    for (uint32_t r = 0; r < replicas; r++)
        if (beliefs [r])
            qt_stage_report_distance (stage, 0, r + 1, comparable [r] ? distance [r] : INFINITY);

    //  3. This tick's queries, which the raters answer in the next
    self->pending.n_queries = sc_learn_select (self->learn, self->asked_about, n_asked_about,
                                               self->pending.queries);
    self->pending.tick = tick;
    self->pending.have = true;
    size_t n_queries = self->pending.n_queries;
    Quintet__Query *query = (Quintet__Query *) zmalloc (sizeof (Quintet__Query) * (n_queries + 1));
    Quintet__Query **query_p = (Quintet__Query **) zmalloc (sizeof (void *) * (n_queries + 1));
    for (size_t k = 0; k < self->pending.n_queries; k++) {
        quintet__query__init (&query [k]);
        query [k].index = (uint32_t) k;
        query [k].rater = self->pending.queries [k].rater;
        query [k].n_a = n_features;
        query [k].a = self->pending.queries [k].a;
        query [k].n_b = n_features;
        query [k].b = self->pending.queries [k].b;
        query_p [k] = &query [k];
    }
    Quintet__QueryBatch asked = QUINTET__QUERY_BATCH__INIT;
    asked.n_features = n_features;
    asked.features = (char **) self->decl.feature_names;
    asked.n_queries = self->pending.n_queries;
    asked.queries = query_p;
    asked.asked = sc_learn_asked (self->learn);
    if (rc == 0)
        rc = qt_stage_publish_kept (stage, "query", QUINTET__PAYLOAD_TYPE__QUERY_BATCH, tick, &asked.base);
    qt_metric_set (self->asked, NULL, (double) sc_learn_asked (self->learn));
    qt_metric_set (self->used, NULL, (double) sc_learn_comparisons (self->learn));
    free (query);
    free (query_p);
    free (rights);
    free (counts);
    free (excluded);
    free (scores_p);
    free (scores);
    return rc;
}

//  quintetctl status: what Charlie has learned
static void
s_scorer_details (void *state, qt_stage_detail_fn *add, void *ctx)
{
    scorer_t *self = (scorer_t *) state;
    double weights [QT_ENV_MAX_FEATURES];
    sc_learn_weights (self->learn, weights);
    char name [96], value [256];
    for (uint32_t f = 0; f < self->decl.n_features; f++) {
        snprintf (name, sizeof name, "learned weight/%s", self->decl.feature_names [f]);
        snprintf (value, sizeof value, "%.6g", weights [f]);
        add (ctx, name, value);
    }
    snprintf (value, sizeof value, "%" PRIu64 " learned of %" PRIu64 " asked (budget %" PRIu64
              ", %u per tick)", sc_learn_comparisons (self->learn), sc_learn_asked (self->learn),
              sc_learn_budget (self->learn), sc_learn_per_tick (self->learn));
    add (ctx, "comparisons", value);
    snprintf (value, sizeof value, "%.3g", sc_learn_quantile (self->learn));
    add (ctx, "quantile", value);
    size_t used = 0;
    char excluded [256] = "";
    uint32_t raters = sc_learn_raters (self->learn);
    for (uint32_t r = 1; r <= raters; r++) {
        if (sc_learn_voting_right (self->learn, r) > 0)
            used++;
        else {
            size_t length = strlen (excluded);
            if (length < sizeof excluded - 16)
                snprintf (excluded + length, sizeof excluded - length, "%s%u", length ? " " : "", r);
        }
    }
    snprintf (value, sizeof value, "%zu of %u with a voting right", used, raters);
    add (ctx, "raters", value);
    add (ctx, "excluded raters", *excluded ? excluded : "none");
    //  Each rater's voting right and, in brackets, the judgments learned
    //  from: "id=right(judgments)", a line per 8 raters (values kept short)
    for (uint32_t first = 1; first <= raters; first += 8) {
        size_t length = 0;
        *value = 0;
        for (uint32_t r = first; r < first + 8 && r <= raters && length < sizeof value - 40; r++)
            length += (size_t) snprintf (value + length, sizeof value - length, "%s%u=%.3g(%u)",
                                         length ? " " : "", r, sc_learn_voting_right (self->learn, r),
                                         sc_learn_rater_comparisons (self->learn, r));
        snprintf (name, sizeof name, "voting right(judgments)/%u-%u", first,
                  first + 7 < raters ? first + 7 : raters);
        add (ctx, name, value);
    }
    snprintf (value, sizeof value, "%.6f", self->learn_seconds);
    add (ctx, "learn seconds (last tick)", value);
}

//  State transfer: what carries over from one tick to the next is the
//  learner's (judgments, posteriors, memory, episodes followed, budgets,
//  caches) and the queries of the last tick, which the next tick's
//  judgments must answer; the rest is scratch rewritten every tick (and
//  learn_seconds, wall time, is measured anew before it is published)
static int
s_scorer_snapshot (void *state, zchunk_t *out)
{
    scorer_t *self = (scorer_t *) state;
    qt_codec_put_bytes (out, zchunk_data (self->identity), zchunk_size (self->identity));
    return sc_learn_snapshot (self->learn, &self->pending, out);
}

static int
s_scorer_restore (void *state, const uint8_t *data, size_t size, const char **cause)
{
    scorer_t *self = (scorer_t *) state;
    const uint8_t *body = qt_wire_state_body (self->identity, data, &size, cause);
    return body ? sc_learn_restore (self->learn, &self->pending, body, size, cause) : -1;
}

const qt_role_t qt_scorer_role = {
    .role = "scorer",
    .summary = "Charlie: learns from people's comparisons what they want, and scores the likely states by majority judgment.",
    .create = s_scorer_create,
    .destroy = s_scorer_destroy,
    .validate = s_scorer_validate,
    .process = s_scorer_process,
    .details = s_scorer_details,
    .snapshot = s_scorer_snapshot,
    .restore = s_scorer_restore,
};
