/*  quintet-actor (Alice): the reinforcement learner.

    Each tick it needs two things: the world's sensor frame (the camera, what
    the agent observes) and the aggregators' reward batch for the same tick.
    The reward it learns from is, per instance, the median of the
    aggregators' rewards (reward_source = pipeline, the default) or the
    environment's own observed reward (reward_source = env: the naive
    baseline that learns to fool its camera). Tabular Q-learning, epsilon-
    greedy, seeded (ac_qlearn); replicas with the same seed and inputs agree
    bit for bit, and the world executes their majority action.

    The learner is checkpointed atomically at the end of every episode to
    <state_dir>/qlearn.ckpt and resumed from there after a restart.

    Config (quintet/actor/...): reward_source, alpha, gamma, epsilon_start,
    epsilon_end, epsilon_episodes, features (position | neighbours |
    nearest_dry).
*/
#include "quintet.h"
#include "qt_wire.h"
#include "qlearn.h"

#define S_CHECKPOINT_FILE "qlearn.ckpt"

enum { S_REWARD_PIPELINE = 0, S_REWARD_ENV = 1 };
enum { S_UPSTREAM_REWARD = 0, S_UPSTREAM_WORLD = 1 };

typedef struct {
    qt_env_decl_t decl;
    size_t batch;
    int reward_source;
    ac_qlearn_t *learner;
    char *checkpoint;
    uint32_t *actions;
} actor_t;

static void
s_actor_destroy (void **state_p)
{
    actor_t *self = (actor_t *) *state_p;
    if (!self)
        return;
    ac_qlearn_destroy (&self->learner);
    free (self->checkpoint);
    free (self->actions);
    free (self);
    *state_p = NULL;
}

static void *
s_actor_create (qt_stage_t *stage, qt_config_t *config, char **error)
{
    static const char *const sources [] = { "pipeline", "env", NULL };
    static const char *const features [] = { "position", "neighbours", "nearest_dry", NULL };
    actor_t *self = (actor_t *) zmalloc (sizeof (actor_t));
    self->batch = qt_stage_batch (stage);
    if (qt_wire_declare_env (stage, config, &self->decl, error)) {
        free (self);
        return NULL;
    }
    ac_qlearn_config_t learn;
    ac_qlearn_config_default (&learn, self->decl.width, self->decl.height, self->decl.n_actions);
    uint64_t epsilon_episodes = learn.epsilon_episodes;
    int feature = (int) learn.features;
    int rc = qt_config_choice (config, "quintet/actor/reward_source", sources, "pipeline",
                               &self->reward_source);
    rc |= qt_config_double (config, "quintet/actor/alpha", false, learn.alpha, 1e-6, 1, &learn.alpha);
    rc |= qt_config_double (config, "quintet/actor/gamma", false, learn.gamma, 0, 1, &learn.gamma);
    rc |= qt_config_double (config, "quintet/actor/epsilon_start", false, learn.epsilon_start, 0, 1,
                            &learn.epsilon_start);
    rc |= qt_config_double (config, "quintet/actor/epsilon_end", false, learn.epsilon_end, 0, 1,
                            &learn.epsilon_end);
    rc |= qt_config_uint (config, "quintet/actor/epsilon_episodes", false, epsilon_episodes, 0,
                          UINT32_MAX, &epsilon_episodes);
    rc |= qt_config_choice (config, "quintet/actor/features", features,
                            features [learn.features], &feature);
    learn.epsilon_episodes = (uint32_t) epsilon_episodes;
    learn.features = (ac_features_t) feature;
    if (rc) {
        *error = strdup (qt_config_error (config));
        free (self);
        return NULL;
    }
    self->learner = ac_qlearn_new (&learn, (uint32_t) self->batch, qt_stage_seed (stage));
    if (!self->learner) {
        *error = zsys_sprintf ("%s: quintet/actor: invalid learning configuration", qt_config_path (config));
        free (self);
        return NULL;
    }
    self->checkpoint = zsys_sprintf ("%s/%s", qt_stage_state_dir (stage), S_CHECKPOINT_FILE);
    if (access (self->checkpoint, F_OK) == 0) {
        const char *cause = NULL;
        if (ac_qlearn_load (self->learner, self->checkpoint, &cause)) {
            *error = zsys_sprintf ("%s: cannot resume: %s (move it away to start afresh)",
                                   self->checkpoint, cause);
            s_actor_destroy ((void **) &self);
            return NULL;
        }
        qt_log (LOG_NOTICE, "resumed from %s: %" PRIu64 " transitions learned", self->checkpoint,
                ac_qlearn_updates (self->learner));
    }
    self->actions = (uint32_t *) zmalloc (sizeof (uint32_t) * self->batch);
    return self;
}

static qt_drop_cause_t
s_actor_validate (void *state, size_t upstream, const ProtobufCMessage *payload)
{
    actor_t *self = (actor_t *) state;
    if (upstream != S_UPSTREAM_WORLD)
        return QT_DROP_NONE;
    const Quintet__SensorFrame *frame = (const Quintet__SensorFrame *) payload;
    if (strneq (frame->env, self->decl.name) || frame->step > self->decl.max_steps)
        return QT_DROP_INVALID;
    for (size_t i = 0; i < frame->n_instances; i++)
        if (frame->instances [i]->camera.len != self->decl.n_cells)
            return QT_DROP_INVALID;
    return QT_DROP_NONE;
}

static int
s_actor_process (void *state, qt_stage_t *stage, uint64_t tick, qt_message_t **inputs [])
{
    actor_t *self = (actor_t *) state;
    qt_message_t *world = inputs [S_UPSTREAM_WORLD][0];
    if (!world)
        return 0;
    const Quintet__SensorFrame *frame = (const Quintet__SensorFrame *) world->payload;
    uint32_t replicas = qt_quorum_replicas (qt_stage_quorum (stage, S_UPSTREAM_REWARD));
    double rewards [QT_QUORUM_MAX_REPLICAS];
    //  Reputation: excluded aggregators are left out, down-weighted ones
    //  count less (weighted median); all weights 1 is the plain median
    double weight [QT_QUORUM_MAX_REPLICAS], used_weight [QT_QUORUM_MAX_REPLICAS];
    double distance [QT_QUORUM_MAX_REPLICAS] = { 0 };
    bool weighted = false;
    for (uint32_t r = 0; r < replicas; r++) {
        weight [r] = qt_stage_replica_weight (stage, S_UPSTREAM_REWARD, r + 1);
        weighted |= inputs [S_UPSTREAM_REWARD][r] && weight [r] > 0 && weight [r] != 1;
    }
    for (size_t i = 0; i < self->batch; i++) {
        double reward;
        if (self->reward_source == S_REWARD_ENV)
            reward = frame->instances [i]->observed_reward;
        else {
            size_t count = 0;
            for (uint32_t r = 0; r < replicas; r++)
                if (inputs [S_UPSTREAM_REWARD][r] && weight [r] > 0) {
                    used_weight [count] = weight [r];
                    rewards [count++] = ((Quintet__RewardBatch *) inputs [S_UPSTREAM_REWARD][r]->payload)
                                        ->instances [i]->reward;
                }
            reward = weighted ? qt_quantile (rewards, used_weight, count, 0.5) : qt_median (rewards, count);
            for (uint32_t r = 0; r < replicas; r++)
                if (inputs [S_UPSTREAM_REWARD][r])
                    distance [r] += fabs (((Quintet__RewardBatch *) inputs [S_UPSTREAM_REWARD][r]->payload)
                                          ->instances [i]->reward - reward) / (double) self->batch;
        }
        const ProtobufCBinaryData *camera = &frame->instances [i]->camera;
        int32_t action = ac_qlearn_act (self->learner, (uint32_t) i, camera->data, camera->len,
                                        isfinite (reward) ? reward : 0, frame->step, frame->done,
                                        frame->episode);
        self->actions [i] = action >= 0 ? (uint32_t) action : 0;
    }
    if (self->reward_source != S_REWARD_ENV)
        for (uint32_t r = 0; r < replicas; r++)
            if (inputs [S_UPSTREAM_REWARD][r])
                qt_stage_report_distance (stage, S_UPSTREAM_REWARD, r + 1, distance [r]);
    if (frame->done && ac_qlearn_save (self->learner, self->checkpoint))
        qt_log (LOG_ERR, "checkpoint %s failed: %s", self->checkpoint, strerror (errno));
    Quintet__ActionBatch batch = QUINTET__ACTION_BATCH__INIT;
    batch.batch = (uint32_t) self->batch;
    batch.n_actions = self->batch;
    batch.actions = self->actions;
    return qt_stage_publish (stage, tick, &batch.base);
}

const qt_role_t qt_actor_role = {
    .role = "actor",
    .topic = "action",
    .type = QUINTET__PAYLOAD_TYPE__ACTION_BATCH,
    .upstream = { { "aggregator", "reward" }, { "world", "sensor" } },
    .upstreams = 2,
    .state_for = "its checkpoint",
    .summary = "Alice: Q-learning on what the agent observes, from the aggregated rewards only.",
    .create = s_actor_create,
    .destroy = s_actor_destroy,
    .validate = s_actor_validate,
    .process = s_actor_process,
};
