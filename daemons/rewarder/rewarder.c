/*  quintet-rewarder (Bob): turns score distributions, their uncertainty and
    the data's reliability into a reward vector for Alice.

    The scorer replicas' distributions are combined robustly first: per
    instance, the coordinate-wise median of (expected score, spread, data
    reliability) over the replicas present. Then
        reward = score - lambda_u * spread - lambda_r * (1 - reliability) - cost
    published as a vector with its inputs and gradients (rw_reward).

    Config (quintet/rewarder/...): lambda_uncertainty, lambda_reliability,
    resource_cost; the last two count in units of the environment's reward
    scale (its declaration). A configuration that fails the sanity check of
    reward.h (e.g. an indifference point that tolerates absurd risk) is
    refused.
*/
#include "quintet.h"
#include "qt_wire.h"
#include "reward.h"

#define S_INPUTS 3      //  score, spread, reliability

typedef struct {
    size_t batch;
    rw_weights_t weights;
    char *components [RW_COMPONENTS];
    qt_wire_clock_t *clocks;
    Quintet__InstanceClock *wire_clocks;
} rewarder_t;

static void
s_rewarder_destroy (void **state_p)
{
    rewarder_t *self = (rewarder_t *) *state_p;
    if (!self)
        return;
    free (self->clocks);
    free (self->wire_clocks);
    free (self);
    *state_p = NULL;
}

static void *
s_rewarder_create (qt_stage_t *stage, qt_config_t *config, char **error)
{
    rewarder_t *self = (rewarder_t *) zmalloc (sizeof (rewarder_t));
    self->batch = qt_stage_batch (stage);
    qt_env_decl_t decl;
    if (qt_wire_declare_env (stage, config, NULL, &decl, error)) {
        free (self);
        return NULL;
    }
    rw_weights_default (&self->weights, decl.reward_scale);
    //  Wide ranges here: the sanity check below explains what is refused
    int rc = qt_config_double (config, "quintet/rewarder/lambda_uncertainty", false,
                               self->weights.lambda_uncertainty, -1e6, 1e6,
                               &self->weights.lambda_uncertainty);
    rc |= qt_config_double (config, "quintet/rewarder/lambda_reliability", false,
                            self->weights.lambda_reliability, -1e6, 1e6,
                            &self->weights.lambda_reliability);
    rc |= qt_config_double (config, "quintet/rewarder/resource_cost", false,
                            self->weights.resource_cost, -1e6, 1e6, &self->weights.resource_cost);
    const char *cause = NULL;
    if (rc)
        *error = strdup (qt_config_error (config));
    else
    if (rw_weights_check (&self->weights, &cause)) {
        *error = zsys_sprintf ("%s: quintet/rewarder: reward weights refused: %s",
                               qt_config_path (config), cause);
        rc = -1;
    }
    if (rc) {
        free (self);
        return NULL;
    }
    for (size_t c = 0; c < RW_COMPONENTS; c++)
        self->components [c] = (char *) rw_component_name (c);
    self->clocks = (qt_wire_clock_t *) zmalloc (sizeof (qt_wire_clock_t) * self->batch);
    self->wire_clocks = (Quintet__InstanceClock *) zmalloc (sizeof (Quintet__InstanceClock) * self->batch);
    return self;
}

static int
s_rewarder_process (void *state, qt_stage_t *stage, uint64_t tick, qt_message_t **inputs [])
{
    rewarder_t *self = (rewarder_t *) state;
    uint32_t replicas = qt_quorum_replicas (qt_stage_quorum (stage, 0));
    const Quintet__ScoreBatch *scores [QT_QUORUM_MAX_REPLICAS] = { NULL };
    if (qt_wire_gather (inputs [0], replicas, self->batch, (const ProtobufCMessage **) scores,
                        self->clocks) < 0)
        return 0;

    rw_vector_t *vectors = (rw_vector_t *) zmalloc (sizeof (rw_vector_t) * self->batch);
    Quintet__RewardVector *wire = (Quintet__RewardVector *) zmalloc (sizeof (Quintet__RewardVector) * self->batch);
    Quintet__RewardVector **wire_p = (Quintet__RewardVector **) zmalloc (sizeof (void *) * self->batch);
    double rows [QT_QUORUM_MAX_REPLICAS * S_INPUTS];
    //  Reputation: an excluded scorer is left out of the median (not
    //  weighted: a down-weighted one still counts); each one's distance is
    //  the L2 of its (score, spread, reliability) to the median, averaged
    bool used [QT_QUORUM_MAX_REPLICAS];
    double distance [QT_QUORUM_MAX_REPLICAS] = { 0 };
    for (uint32_t r = 0; r < replicas; r++)
        used [r] = scores [r] && qt_stage_replica_weight (stage, 0, r + 1) > 0;
    for (size_t i = 0; i < self->batch; i++) {
        size_t row = 0;
        for (uint32_t r = 0; r < replicas; r++)
            if (used [r]) {
                const Quintet__ScoreDistribution *score = scores [r]->instances [i];
                rows [row * S_INPUTS + 0] = score->mean;
                rows [row * S_INPUTS + 1] = score->spread;
                rows [row * S_INPUTS + 2] = score->data_reliability;
                row++;
            }
        double median [S_INPUTS] = { 0, 0, 1 };
        qt_coordmedian (rows, row, S_INPUTS, median);
        for (uint32_t r = 0; r < replicas; r++)
            if (scores [r]) {
                const Quintet__ScoreDistribution *score = scores [r]->instances [i];
                double delta [S_INPUTS] = { score->mean - median [0], score->spread - median [1],
                                            score->data_reliability - median [2] };
                distance [r] += sqrt (delta [0] * delta [0] + delta [1] * delta [1]
                                      + delta [2] * delta [2]) / (double) self->batch;
            }
        rw_reward (&self->weights, median [0], median [1], median [2], &vectors [i]);
        quintet__reward_vector__init (&wire [i]);
        qt_wire_clock_put (&self->clocks [i], &self->wire_clocks [i]);
        wire [i].clock = &self->wire_clocks [i];
        wire [i].n_values = RW_COMPONENTS;
        wire [i].values = vectors [i].values;
        wire_p [i] = &wire [i];
    }
    Quintet__ProposalBatch batch = QUINTET__PROPOSAL_BATCH__INIT;
    batch.batch = (uint32_t) self->batch;
    batch.n_components = RW_COMPONENTS;
    batch.components = self->components;
    batch.n_instances = self->batch;
    batch.instances = wire_p;
    int rc = qt_stage_publish (stage, tick, &batch.base);
    for (uint32_t r = 0; r < replicas; r++)
        if (scores [r])
            qt_stage_report_distance (stage, 0, r + 1, distance [r]);
    free (wire_p);
    free (wire);
    free (vectors);
    return rc;
}

const qt_role_t qt_rewarder_role = {
    .role = "rewarder",
    .summary = "Bob: turns score distributions, uncertainty and data reliability into reward vectors.",
    .create = s_rewarder_create,
    .destroy = s_rewarder_destroy,
    .process = s_rewarder_process,
};
