/*  quintet-actor (Alice): the reinforcement learner.

    Each tick it needs two things: the world's sensor frame (the sensor the
    environment declares as the agent's observation, its camera, and each
    instance's clock) and the aggregators' reward batch for the same tick.
    The reward it learns from is, per instance, the median of the
    aggregators' rewards (reward_source = pipeline, the default) or the
    environment's own observed reward (reward_source = env: the naive
    baseline). Q-learning, epsilon-greedy, seeded (ac_qlearn); replicas with
    the same seed and inputs agree bit for bit, and the world executes their
    majority action.

    The learner is checkpointed atomically to <state_dir>/qlearn.ckpt every
    checkpoint_ticks ticks and when the actor stops, and resumed from there
    after a restart. Its whole state, in the checkpoint's encoding, is also
    what a restarted replica takes from its peers (snapshot, restore).

    Config (quintet/actor/...): reward_source, checkpoint_ticks, and every
    learning option of daemons/actor/qlearn.h by name (representation,
    gamma, nstep, alpha_power, alpha_min, epsilon_start, epsilon_end,
    epsilon_episodes, q_initial, max_states).
*/
#include "quintet.h"
#include "qt_wire.h"
#include "qlearn.h"

#define S_CHECKPOINT_FILE       "qlearn.ckpt"
#define S_CHECKPOINT_TICKS      100
#define S_STATE_MAGIC           "QTACTOR1"
#define S_STATE_VERSION         1

enum { S_REWARD_PIPELINE = 0, S_REWARD_ENV = 1 };
enum { S_UPSTREAM_REWARD = 0, S_UPSTREAM_WORLD = 1 };

typedef struct {
    qt_env_decl_t decl;
    size_t batch;
    int reward_source;
    ac_qlearn_t *learner;
    char *checkpoint;
    uint64_t checkpoint_ticks, last_checkpoint;
    uint32_t *actions;                      //  scratch: written whole every tick
    zchunk_t *identity;                     //  what a state from a peer must start with
    qt_metric_t *table;                     //  quintet_actor_table{measure}
} actor_t;

static void
s_save (actor_t *self)
{
    if (ac_qlearn_save (self->learner, self->checkpoint))
        qt_log (LOG_ERR, "checkpoint %s failed: %s", self->checkpoint, strerror (errno));
}

static void
s_actor_destroy (void **state_p)
{
    actor_t *self = (actor_t *) *state_p;
    if (!self)
        return;
    //  A clean stop keeps every transition learned
    if (self->learner && self->checkpoint)
        s_save (self);
    ac_qlearn_destroy (&self->learner);
    free (self->checkpoint);
    free (self->actions);
    zchunk_destroy (&self->identity);
    free (self);
    *state_p = NULL;
}

static void *
s_actor_create (qt_stage_t *stage, qt_config_t *config, char **error)
{
    static const char *const sources [] = { "pipeline", "env", NULL };
    actor_t *self = (actor_t *) zmalloc (sizeof (actor_t));
    self->batch = qt_stage_batch (stage);
    if (qt_wire_declare_env (stage, config, NULL, &self->decl, error)) {
        free (self);
        return NULL;
    }
    const qt_env_decl_t *decl = &self->decl;
    ac_qlearn_config_t learn;
    ac_qlearn_config_default (&learn, decl->width, decl->height, decl->n_actions,
                              (uint8_t) decl->agent_code, decl->reward_scale);
    int rc = qt_config_choice (config, "quintet/actor/reward_source", sources, "pipeline",
                               &self->reward_source);
    rc |= qt_config_uint (config, "quintet/actor/checkpoint_ticks", false, S_CHECKPOINT_TICKS,
                          1, UINT32_MAX, &self->checkpoint_ticks);
    for (const char *const *option = ac_qlearn_options; *option && rc == 0; option++) {
        char *key = zsys_sprintf ("quintet/actor/%s", *option);
        const char *value = NULL;
        rc = qt_config_string (config, key, "", &value);
        const char *cause = NULL;
        if (rc == 0 && *value && ac_qlearn_config_set (&learn, *option, value, &cause)) {
            *error = zsys_sprintf ("%s: %s: %s", qt_config_path (config), key, cause);
            rc = -1;
        }
        zstr_free (&key);
    }
    if (rc) {
        if (!*error)
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
            ac_qlearn_destroy (&self->learner);
            s_actor_destroy ((void **) &self);
            return NULL;
        }
        qt_log (LOG_NOTICE, "resumed from %s: %" PRIu64 " transitions learned", self->checkpoint,
                ac_qlearn_updates (self->learner));
    }
    self->actions = (uint32_t *) zmalloc (sizeof (uint32_t) * self->batch);
    self->table = qt_metrics_gauge (qt_stage_metrics (stage), "quintet_actor_table",
        "The learner's table: rows (distinct states), bytes in use (rows and hash slots; "
        "it grows by doubling up to quintet/actor/max_states rows), overflows (new states "
        "that found it full).",
        "measure");
    //  The learner's own header holds its options, batch and seed; the
    //  reward source decides what it learns from the same inputs
    self->identity = zchunk_new (NULL, 0);
    qt_wire_state_identity (stage, S_STATE_MAGIC, S_STATE_VERSION, self->identity);
    qt_codec_put_u32 (self->identity, (uint32_t) self->reward_source);
    return self;
}

//  The world's frame must be this environment's: the same sensors, the
//  observation where the declaration says
static qt_drop_cause_t
s_actor_validate (void *state, size_t upstream, const ProtobufCMessage *payload)
{
    actor_t *self = (actor_t *) state;
    if (upstream != S_UPSTREAM_WORLD)
        return QT_DROP_NONE;
    const Quintet__SensorFrame *frame = (const Quintet__SensorFrame *) payload;
    if (strneq (frame->env, self->decl.name) || frame->n_sensors != self->decl.n_sensors
    ||  frame->observation != self->decl.observation)
        return QT_DROP_INVALID;
    for (size_t s = 0; s < frame->n_sensors; s++)
        if (frame->sensor_lengths [s] != self->decl.sensors [s].length)
            return QT_DROP_INVALID;
    for (size_t i = 0; i < frame->n_instances; i++)
        if (frame->instances [i]->values.len != self->decl.reading_length
        ||  frame->instances [i]->clock->step > self->decl.max_steps)
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
    const qt_sensor_decl_t *camera = &self->decl.sensors [self->decl.observation];
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
        const Quintet__Readings *readings = frame->instances [i];
        const Quintet__InstanceClock *clock = readings->clock;
        double reward = 0;
        if (self->reward_source == S_REWARD_ENV)
            reward = readings->observed_reward;
        else {
            size_t count = 0;
            for (uint32_t r = 0; r < replicas; r++)
                if (inputs [S_UPSTREAM_REWARD][r] && weight [r] > 0) {
                    used_weight [count] = weight [r];
                    rewards [count++] = ((Quintet__RewardBatch *) inputs [S_UPSTREAM_REWARD][r]->payload)
                                        ->instances [i]->reward;
                }
            if (count > 0)
                reward = weighted ? qt_quantile (rewards, used_weight, count, 0.5)
                                  : qt_median (rewards, count);
            for (uint32_t r = 0; r < replicas; r++)
                if (inputs [S_UPSTREAM_REWARD][r])
                    distance [r] += fabs (((Quintet__RewardBatch *) inputs [S_UPSTREAM_REWARD][r]->payload)
                                          ->instances [i]->reward - reward) / (double) self->batch;
        }
        self->actions [i] = 0;
        if (clock->idle)
            continue;
        int32_t action = ac_qlearn_act (self->learner, (uint32_t) i,
                                        readings->values.data + camera->offset, camera->length,
                                        isfinite (reward) ? reward : 0, clock->step, clock->done,
                                        clock->terminated);
        self->actions [i] = action >= 0 ? (uint32_t) action : 0;
    }
    if (self->reward_source != S_REWARD_ENV)
        for (uint32_t r = 0; r < replicas; r++)
            if (inputs [S_UPSTREAM_REWARD][r])
                qt_stage_report_distance (stage, S_UPSTREAM_REWARD, r + 1, distance [r]);
    qt_metric_set (self->table, "rows", (double) ac_qlearn_rows (self->learner));
    qt_metric_set (self->table, "bytes", (double) ac_qlearn_table_bytes (self->learner));
    qt_metric_set (self->table, "overflows", (double) ac_qlearn_overflows (self->learner));
    if (tick >= self->last_checkpoint + self->checkpoint_ticks) {
        s_save (self);
        self->last_checkpoint = tick;
    }
    Quintet__ActionBatch batch = QUINTET__ACTION_BATCH__INIT;
    batch.batch = (uint32_t) self->batch;
    batch.n_actions = self->batch;
    batch.actions = self->actions;
    return qt_stage_publish (stage, tick, &batch.base);
}

//  State transfer: all that carries over from one tick to the next is the
//  learner's (table, pending transitions, exploration generators,
//  counters), in its checkpoint's encoding. The checkpoint schedule does
//  not change what is published: a restored actor writes its checkpoint
//  on its first tick, as after any start.
static int
s_actor_snapshot (void *state, zchunk_t *out)
{
    actor_t *self = (actor_t *) state;
    qt_codec_put_bytes (out, zchunk_data (self->identity), zchunk_size (self->identity));
    return ac_qlearn_snapshot (self->learner, out);
}

//  quintetctl status: the table, which grows as the learner meets new states
static void
s_actor_details (void *state, qt_stage_detail_fn *add, void *ctx)
{
    actor_t *self = (actor_t *) state;
    char value [32];
    snprintf (value, sizeof value, "%" PRIu64, ac_qlearn_rows (self->learner));
    add (ctx, "table/rows", value);
    snprintf (value, sizeof value, "%" PRIu64, ac_qlearn_table_bytes (self->learner));
    add (ctx, "table/bytes", value);
    snprintf (value, sizeof value, "%" PRIu64, ac_qlearn_overflows (self->learner));
    add (ctx, "table/overflows", value);
}

static int
s_actor_restore (void *state, const uint8_t *data, size_t size, const char **cause)
{
    actor_t *self = (actor_t *) state;
    const uint8_t *body = qt_wire_state_body (self->identity, data, &size, cause);
    return body ? ac_qlearn_restore (self->learner, body, size, cause) : -1;
}

const qt_role_t qt_actor_role = {
    .role = "actor",
    .state_for = "its checkpoint",
    .summary = "Alice: Q-learning on what the agent observes, from the aggregated rewards only.",
    .create = s_actor_create,
    .destroy = s_actor_destroy,
    .validate = s_actor_validate,
    .process = s_actor_process,
    .details = s_actor_details,
    .snapshot = s_actor_snapshot,
    .restore = s_actor_restore,
};
