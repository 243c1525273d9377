/*  quintet-aggregator: the Byzantine-resilient reward stream.

    Per instance, the robust aggregate of the reward vectors proposed by the
    rewarder replicas of this tick (by default the geometric median:
    weighted Weiszfeld with the Vardi-Zhang fix, run to a relative
    tolerance; any rule of qt_robust's table: qt_aggregate), published as a
    signed `reward` batch for the actors and dashboards, with which replicas
    were used and each one's distance to the aggregate (mean over the batch).

    Only proposals whose component list matches the majority's take part:
    a vector of another shape cannot be compared with the others.

    Config (quintet/aggregator/...): aggregation (a rule of
    QT_AGGREGATION_TABLE, default geomedian), pre_aggregation (none, nnm,
    bucketing), tolerance (relative, default 1e-10) and max_iterations
    (default 1000) of the geometric median, clip_radius (0.1, in reward
    units) and clip_rounds (3) of centered clipping, bucket_size (0: the
    largest leaving 2f + 1 buckets). f is the rewarder upstream's faults.
    Weighted rules use the reputation weights; the others use every
    replica of weight > 0 alike (an excluded replica, weight 0, is left out
    by every rule).
*/
#include "quintet.h"
#include "qt_wire.h"

typedef struct {
    size_t batch;
    uint64_t seed;
    qt_aggregate_params_t params;   //  the rule; f, seed set per instance
    uint64_t not_converged;     //  instances that hit the iteration cap
    //  Prometheus (qt_metrics): reward statistics and the median's work
    qt_metric_t *m_reward;          //  histogram of aggregated rewards, per instance
    qt_metric_t *m_reward_mean;     //  the last tick's mean over the batch
    qt_metric_t *m_iterations;      //  histogram of Weiszfeld iterations, per instance
    qt_metric_t *m_not_converged;   //  instances that hit the iteration cap
    qt_metric_t *m_used;            //  per rewarder replica: counted in the last median
    qt_metric_t *m_distance;        //  per rewarder replica: distance to the last median
    qt_metric_t *m_weight;          //  per rewarder replica: reputation weight in the last median
    qt_metric_t *m_rule;            //  1, labelled with the rule (pre+rule with a pre-aggregation)
    qt_wire_clock_t *clocks;        //  this tick's, per instance
    Quintet__InstanceClock *wire_clocks;
} aggregator_t;

static const double s_reward_bounds [] = { -1, -0.5, -0.2, -0.1, -0.05, 0, 0.05, 0.1, 0.2, 0.5, 1 };
static const double s_iteration_bounds [] = { 1, 2, 5, 10, 20, 50, 100, 200, 500, 1000 };

static void
s_metrics_new (aggregator_t *self, qt_metrics_t *metrics)
{
    self->m_reward = qt_metrics_histogram (metrics, "quintet_aggregated_reward",
        "Aggregated reward (first component of the geometric median), per instance.", NULL,
        s_reward_bounds, sizeof s_reward_bounds / sizeof s_reward_bounds [0]);
    self->m_reward_mean = qt_metrics_gauge (metrics, "quintet_aggregated_reward_mean",
        "Mean aggregated reward over the last tick's batch.", NULL);
    self->m_iterations = qt_metrics_histogram (metrics, "quintet_geomedian_iterations",
        "Weiszfeld iterations of the geometric median, per instance.", NULL,
        s_iteration_bounds, sizeof s_iteration_bounds / sizeof s_iteration_bounds [0]);
    self->m_not_converged = qt_metrics_counter (metrics, "quintet_geomedian_not_converged_total",
        "Geometric medians that hit the iteration cap before the tolerance.", NULL);
    self->m_used = qt_metrics_gauge (metrics, "quintet_rewarder_used",
        "1 if the rewarder replica's proposal was counted in the last median.", "replica");
    self->m_distance = qt_metrics_gauge (metrics, "quintet_rewarder_distance",
        "Rewarder replica's mean distance to the last median (NaN: not used).", "replica");
    self->m_weight = qt_metrics_gauge (metrics, "quintet_rewarder_weight",
        "Rewarder replica's reputation weight in the last median (1 normal, 0 excluded).", "replica");
    self->m_rule = qt_metrics_gauge (metrics, "quintet_aggregation_info",
        "1, labelled with the aggregation rule (pre-aggregation+rule when there is one).", "rule");
    char rule [64];
    if (self->params.pre == QT_PRE_AGGREGATION_NONE)
        snprintf (rule, sizeof rule, "%s", qt_aggregation_names [self->params.rule]);
    else
        snprintf (rule, sizeof rule, "%s+%s", qt_pre_aggregation_names [self->params.pre],
                  qt_aggregation_names [self->params.rule]);
    qt_metric_set (self->m_rule, rule, 1);
}

static void
s_metrics_record (aggregator_t *self, const Quintet__AggregatedReward *rewards,
                  const Quintet__ReplicaReport *reports, uint32_t replicas)
{
    double sum = 0;
    for (size_t i = 0; i < self->batch; i++) {
        qt_metric_observe (self->m_reward, NULL, rewards [i].reward);
        qt_metric_observe (self->m_iterations, NULL, rewards [i].iterations);
        if (!rewards [i].converged)
            qt_metric_add (self->m_not_converged, NULL, 1);
        sum += rewards [i].reward;
    }
    qt_metric_set (self->m_reward_mean, NULL, sum / (double) self->batch);
    for (uint32_t r = 0; r < replicas; r++) {
        char name [16];
        snprintf (name, sizeof name, "%u", reports [r].replica);
        qt_metric_set (self->m_used, name, reports [r].used);
        qt_metric_set (self->m_distance, name, reports [r].distance);
        qt_metric_set (self->m_weight, name, reports [r].weight);
    }
}

static void
s_aggregator_destroy (void **state_p)
{
    aggregator_t *self = (aggregator_t *) *state_p;
    if (!self)
        return;
    free (self->clocks);
    free (self->wire_clocks);
    free (self);
    *state_p = NULL;
}

static void *
s_aggregator_create (qt_stage_t *stage, qt_config_t *config, char **error)
{
    aggregator_t *self = (aggregator_t *) zmalloc (sizeof (aggregator_t));
    self->batch = qt_stage_batch (stage);
    self->seed = qt_stage_seed (stage);
    qt_aggregate_params_init (&self->params);
    int rule = 0, pre = 0;
    uint64_t max_iterations = 0, clip_rounds = 0, bucket_size = 0;
    int rc = qt_config_choice (config, "quintet/aggregator/aggregation", qt_aggregation_names,
                               qt_aggregation_names [0], &rule);
    rc |= qt_config_choice (config, "quintet/aggregator/pre_aggregation", qt_pre_aggregation_names,
                            qt_pre_aggregation_names [0], &pre);
    rc |= qt_config_double (config, "quintet/aggregator/tolerance", false,
                            QT_GEOMEDIAN_TOLERANCE, 1e-15, 1e-2, &self->params.tolerance);
    rc |= qt_config_uint (config, "quintet/aggregator/max_iterations", false,
                          QT_GEOMEDIAN_MAX_ITER, 1, 1000000, &max_iterations);
    rc |= qt_config_double (config, "quintet/aggregator/clip_radius", false,
                            QT_CLIP_RADIUS, 1e-12, 1e12, &self->params.clip_radius);
    rc |= qt_config_uint (config, "quintet/aggregator/clip_rounds", false,
                          QT_CLIP_ROUNDS, 0, 1000, &clip_rounds);
    rc |= qt_config_uint (config, "quintet/aggregator/bucket_size", false,
                          0, 0, QT_QUORUM_MAX_REPLICAS, &bucket_size);
    if (rc) {
        *error = strdup (qt_config_error (config));
        free (self);
        return NULL;
    }
    self->params.rule = (qt_aggregation_t) rule;
    self->params.pre = (qt_pre_aggregation_t) pre;
    self->params.max_iterations = (int) max_iterations;
    self->params.clip_rounds = (int) clip_rounds;
    self->params.bucket_size = (size_t) bucket_size;
    s_metrics_new (self, qt_stage_metrics (stage));
    self->clocks = (qt_wire_clock_t *) zmalloc (sizeof (qt_wire_clock_t) * self->batch);
    self->wire_clocks = (Quintet__InstanceClock *) zmalloc (sizeof (Quintet__InstanceClock) * self->batch);
    return self;
}

//  quintetctl status: the rule
static void
s_aggregator_details (void *state, qt_stage_detail_fn *add, void *ctx)
{
    aggregator_t *self = (aggregator_t *) state;
    add (ctx, "aggregation", qt_aggregation_names [self->params.rule]);
    add (ctx, "pre_aggregation", qt_pre_aggregation_names [self->params.pre]);
}

//  --help: the rules of the table
static void
s_aggregator_usage (FILE *out)
{
    fprintf (out, "\nquintet/aggregator/aggregation (default %s):\n", qt_aggregation_names [0]);
    for (int rule = 0; rule < QT_AGGREGATIONS; rule++)
        fprintf (out, "  %-18s %s%s\n", qt_aggregation_names [rule],
                 qt_aggregation_summary ((qt_aggregation_t) rule),
                 qt_aggregation_weighted ((qt_aggregation_t) rule) ? " [weighted]" : "");
    fprintf (out, "quintet/aggregator/pre_aggregation (default %s):\n", qt_pre_aggregation_names [0]);
    for (int pre = 0; pre < QT_PRE_AGGREGATIONS; pre++)
        fprintf (out, "  %-18s %s\n", qt_pre_aggregation_names [pre],
                 qt_pre_aggregation_summary ((qt_pre_aggregation_t) pre));
}

//  Two proposals have the same shape when their component lists match
static bool
s_same_shape (const Quintet__ProposalBatch *a, const Quintet__ProposalBatch *b)
{
    if (a->n_components != b->n_components)
        return false;
    for (size_t c = 0; c < a->n_components; c++)
        if (strneq (a->components [c], b->components [c]))
            return false;
    return true;
}

static int
s_aggregator_process (void *state, qt_stage_t *stage, uint64_t tick, qt_message_t **inputs [])
{
    aggregator_t *self = (aggregator_t *) state;
    uint32_t replicas = qt_quorum_replicas (qt_stage_quorum (stage, 0));
    const Quintet__ProposalBatch *proposal [QT_QUORUM_MAX_REPLICAS] = { NULL };
    if (qt_wire_gather (inputs [0], replicas, self->batch, (const ProtobufCMessage **) proposal,
                        self->clocks) < 0)
        return 0;

    //  The reference shape: the one most replicas share
    const Quintet__ProposalBatch *shape = NULL;
    uint32_t best_votes = 0;
    for (uint32_t r = 0; r < replicas; r++) {
        if (!proposal [r])
            continue;
        uint32_t votes = 0;
        for (uint32_t s = 0; s < replicas; s++)
            votes += proposal [s] && s_same_shape (proposal [r], proposal [s]);
        if (votes > best_votes) {
            best_votes = votes;
            shape = proposal [r];
        }
    }
    if (!shape)
        return 0;
    //  Reputation (qt_stage_replica_weight): an excluded replica is left out,
    //  a down-weighted one counts less in a weighted rule; with every weight
    //  1 the aggregate is computed exactly as without reputation
    bool shaped [QT_QUORUM_MAX_REPLICAS] = { false };
    bool used [QT_QUORUM_MAX_REPLICAS] = { false };
    double weight [QT_QUORUM_MAX_REPLICAS];
    double used_weight [QT_QUORUM_MAX_REPLICAS];
    uint32_t n_used = 0;
    for (uint32_t r = 0; r < replicas; r++) {
        weight [r] = qt_stage_replica_weight (stage, 0, r + 1);
        shaped [r] = proposal [r] && s_same_shape (proposal [r], shape);
        if (shaped [r] && weight [r] > 0) {
            used [r] = true;
            used_weight [n_used++] = weight [r];
        }
    }

    size_t dim = shape->n_components;
    double *points = (double *) zmalloc (sizeof (double) * n_used * dim);
    double *medians = (double *) zmalloc (sizeof (double) * self->batch * dim);
    double distance [QT_QUORUM_MAX_REPLICAS] = { 0 };
    Quintet__AggregatedReward *rewards = (Quintet__AggregatedReward *) zmalloc (sizeof (Quintet__AggregatedReward) * self->batch);
    Quintet__AggregatedReward **rewards_p = (Quintet__AggregatedReward **) zmalloc (sizeof (void *) * self->batch);
    for (size_t i = 0; i < self->batch; i++) {
        size_t row = 0;
        for (uint32_t r = 0; r < replicas; r++)
            if (used [r])
                memcpy (points + dim * row++, proposal [r]->instances [i]->values, sizeof (double) * dim);
        double *median = medians + i * dim;
        qt_geomedian_report_t report;
        //  Bucketing's permutation: the same for every honest replica, a
        //  new one per tick and instance
        qt_rng_t rng;
        qt_rng_seed (&rng, self->seed, tick * self->batch + i);
        self->params.seed = qt_rng_next (&rng);
        self->params.f = qt_quorum_faults (qt_stage_quorum (stage, 0));
        if (qt_aggregate (&self->params, points, used_weight, n_used, dim, median, &report))
            memset (median, 0, sizeof (double) * dim);     //  cannot happen: inputs were validated
        if (!report.converged)
            self->not_converged++;
        //  Distances of every comparable replica, excluded ones included:
        //  that is how an excluded replica earns its way back
        for (uint32_t r = 0; r < replicas; r++)
            if (shaped [r]) {
                const double *values = proposal [r]->instances [i]->values;
                double squared = 0;
                for (size_t c = 0; c < dim; c++) {
                    double delta = values [c] - median [c];
                    squared += delta * delta;
                }
                distance [r] += sqrt (squared) / (double) self->batch;
            }
        quintet__aggregated_reward__init (&rewards [i]);
        qt_wire_clock_put (&self->clocks [i], &self->wire_clocks [i]);
        rewards [i].clock = &self->wire_clocks [i];
        rewards [i].reward = median [0];
        rewards [i].n_vector = dim;
        rewards [i].vector = median;
        rewards [i].iterations = (uint32_t) report.iterations;
        rewards [i].converged = report.converged;
        rewards_p [i] = &rewards [i];
    }
    Quintet__ReplicaReport *reports = (Quintet__ReplicaReport *) zmalloc (sizeof (Quintet__ReplicaReport) * replicas);
    Quintet__ReplicaReport **reports_p = (Quintet__ReplicaReport **) zmalloc (sizeof (void *) * replicas);
    for (uint32_t r = 0; r < replicas; r++) {
        quintet__replica_report__init (&reports [r]);
        reports [r].replica = r + 1;
        reports [r].used = used [r];
        reports [r].distance = shaped [r] ? distance [r] : NAN;
        qt_reputation_t *reputation = qt_stage_reputation (stage, 0);
        reports [r].status = (char *) qt_reputation_status_name (qt_reputation_status (reputation, r + 1));
        reports [r].weight = used [r] ? weight [r] : 0;
        reports [r].reason = (char *) qt_reputation_reason (reputation, r + 1);
        reports_p [r] = &reports [r];
        //  A proposal of another shape cannot be compared: as far as can be
        if (proposal [r])
            qt_stage_report_distance (stage, 0, r + 1, shaped [r] ? distance [r] : INFINITY);
    }
    Quintet__RewardBatch batch = QUINTET__REWARD_BATCH__INIT;
    batch.batch = (uint32_t) self->batch;
    batch.n_components = shape->n_components;
    batch.components = shape->components;
    batch.n_instances = self->batch;
    batch.instances = rewards_p;
    batch.n_replicas = replicas;
    batch.replicas = reports_p;
    int rc = qt_stage_publish (stage, tick, &batch.base);
    s_metrics_record (self, rewards, reports, replicas);
    free (reports_p);
    free (reports);
    free (rewards_p);
    free (rewards);
    free (medians);
    free (points);
    return rc;
}

const qt_role_t qt_aggregator_role = {
    .role = "aggregator",
    .summary = "The aggregator: robust aggregate (default the geometric median) of the rewarders' reward vectors, per instance.",
    .usage = s_aggregator_usage,
    .details = s_aggregator_details,
    .create = s_aggregator_create,
    .destroy = s_aggregator_destroy,
    .process = s_aggregator_process,
};
