/*  quintet-world: simulates B instances of the environment in lockstep.

    The tick source of the pipeline. At tick t it publishes what the sensors
    of every instance read (`sensor`); the actors answer with an action per
    instance for tick t; once a quorum of actors has answered, the world
    executes the majority action of each instance and publishes tick t + 1.
    Episodes are synchronised across instances: steps 1..max_steps, the last
    frame marked done; then the next tick starts a new episode at step 0.
    At the end of each episode the hidden performance and observed return of
    every instance go out on `eval`, which no pipeline role subscribes to.

    Config (quintet/world/...): episodes (0 = run forever; after that many
    episode rounds the world stops stepping and idles), probe/<k> =
    honest | broken | malicious (fault injection on a moisture probe).
*/
#include "quintet.h"
#include "qt_env.h"
#include "qt_wire.h"

typedef struct {
    qt_env_decl_t decl;
    size_t batch;
    qt_world_t **worlds;
    uint64_t episodes;          //  rounds to run, 0 = forever
    uint32_t episode;           //  current round
    uint64_t ticks;
    bool finished;
    //  The frame being built, reused every tick
    Quintet__Readings *readings;
    Quintet__Readings **readings_p;
    qt_readings_t *values;
    uint32_t *moisture;
} world_t;

static const char *const s_probe_modes [] = { "honest", "broken", "malicious", NULL };

static void
s_world_destroy (void **state_p)
{
    world_t *self = (world_t *) *state_p;
    if (!self)
        return;
    for (size_t i = 0; i < self->batch; i++)
        qt_world_destroy (&self->worlds [i]);
    free (self->worlds);
    free (self->readings);
    free (self->readings_p);
    free (self->values);
    free (self->moisture);
    free (self);
    *state_p = NULL;
}

static void *
s_world_create (qt_stage_t *stage, qt_config_t *config, char **error)
{
    world_t *self = (world_t *) zmalloc (sizeof (world_t));
    self->batch = qt_stage_batch (stage);
    qt_env_params_t params;
    if (qt_env_params_default (qt_stage_env (stage), &params)) {
        *error = zsys_sprintf ("%s: quintet/env: unknown environment \"%s\"",
                               qt_config_path (config), qt_stage_env (stage));
        free (self);
        return NULL;
    }
    int rc = qt_config_uint (config, "quintet/world/episodes", false, 0, 0, UINT32_MAX, &self->episodes);
    zlist_t *probes = qt_config_children (config, "quintet/world/probe");
    for (char *name = (char *) zlist_first (probes); name && !rc; name = (char *) zlist_next (probes)) {
        char *key = zsys_sprintf ("quintet/world/probe/%s", name);
        char *end = NULL;
        unsigned long k = strtoul (name, &end, 10);
        int mode = 0;
        rc = qt_config_choice (config, key, s_probe_modes, NULL, &mode);
        if (rc == 0 && (*end || k >= QT_ENV_MAX_VARS)) {
            *error = zsys_sprintf ("%s: %s: not a probe index", qt_config_path (config), key);
            rc = -1;
        }
        else
        if (rc == 0)
            params.probe_mode [k] = (qt_probe_mode_t) mode;
        zstr_free (&key);
    }
    zlist_destroy (&probes);
    if (rc == 0 && qt_env_declare (qt_stage_env (stage), &params, &self->decl)) {
        *error = zsys_sprintf ("%s: quintet/world/probe: a probe index is beyond this environment",
                               qt_config_path (config));
        rc = -1;
    }
    if (rc) {
        if (!*error)
            *error = strdup (qt_config_error (config));
        free (self);
        return NULL;
    }
    self->worlds = (qt_world_t **) zmalloc (sizeof (qt_world_t *) * self->batch);
    for (size_t i = 0; i < self->batch; i++)
        self->worlds [i] = qt_world_new (&self->decl, qt_stage_seed (stage), (uint32_t) i);
    self->readings = (Quintet__Readings *) zmalloc (sizeof (Quintet__Readings) * self->batch);
    self->readings_p = (Quintet__Readings **) zmalloc (sizeof (Quintet__Readings *) * self->batch);
    self->values = (qt_readings_t *) zmalloc (sizeof (qt_readings_t) * self->batch);
    self->moisture = (uint32_t *) zmalloc (sizeof (uint32_t) * QT_ENV_MAX_VARS * self->batch);
    return self;
}

//  Actions must name an action of the environment
static qt_drop_cause_t
s_world_validate (void *state, size_t upstream, const ProtobufCMessage *payload)
{
    world_t *self = (world_t *) state;
    (void) upstream;
    const Quintet__ActionBatch *actions = (const Quintet__ActionBatch *) payload;
    for (size_t i = 0; i < actions->n_actions; i++)
        if (actions->actions [i] >= self->decl.n_actions)
            return QT_DROP_INVALID;
    return QT_DROP_NONE;
}

static int
s_publish_frame (world_t *self, qt_stage_t *stage, uint64_t tick)
{
    uint32_t step = self->worlds [0]->step;
    Quintet__SensorFrame frame = QUINTET__SENSOR_FRAME__INIT;
    frame.env = self->decl.name;
    frame.batch = (uint32_t) self->batch;
    frame.episode = self->episode;
    frame.step = step;
    frame.done = qt_world_done (self->worlds [0]);
    for (size_t i = 0; i < self->batch; i++) {
        qt_world_read (self->worlds [i], &self->values [i]);
        qt_wire_readings_put (&self->values [i], self->moisture + i * QT_ENV_MAX_VARS,
                              &self->readings [i]);
        self->readings_p [i] = &self->readings [i];
    }
    frame.n_instances = self->batch;
    frame.instances = self->readings_p;
    return qt_stage_publish (stage, tick, &frame.base);
}

static int
s_publish_eval (world_t *self, qt_stage_t *stage, uint64_t tick)
{
    Quintet__EvalRecord record = QUINTET__EVAL_RECORD__INIT;
    Quintet__EpisodeResult *results = (Quintet__EpisodeResult *) zmalloc (sizeof (Quintet__EpisodeResult) * self->batch);
    Quintet__EpisodeResult **results_p = (Quintet__EpisodeResult **) zmalloc (sizeof (Quintet__EpisodeResult *) * self->batch);
    for (size_t i = 0; i < self->batch; i++) {
        quintet__episode_result__init (&results [i]);
        results [i].performance = self->worlds [i]->performance;
        results [i].observed_return = self->worlds [i]->observed_return;
        results_p [i] = &results [i];
    }
    record.env = self->decl.name;
    record.batch = (uint32_t) self->batch;
    record.episode = self->episode;
    record.ticks = self->ticks;
    record.n_instances = self->batch;
    record.instances = results_p;
    int rc = qt_stage_publish_on (stage, "eval", QUINTET__PAYLOAD_TYPE__EVAL_RECORD, tick, &record.base);
    free (results);
    free (results_p);
    return rc;
}

static int
s_world_start (void *state, qt_stage_t *stage)
{
    return s_publish_frame ((world_t *) state, stage, 0);
}

//  Majority action per instance; ties go to the smallest action, so every
//  world (and test) breaks them the same way
//  Votes are weighted by the actors' reputation (qt_stage_replica_weight: 0
//  leaves an excluded actor out; all 1 is the plain count)
static uint32_t
s_majority (qt_message_t **inputs, const double *weight, uint32_t replicas, size_t instance,
            uint32_t n_actions)
{
    double votes [QT_ENV_MAX_ACTIONS] = { 0 };
    for (uint32_t r = 0; r < replicas; r++)
        if (inputs [r] && weight [r] > 0)
            votes [((Quintet__ActionBatch *) inputs [r]->payload)->actions [instance]] += weight [r];
    uint32_t best = 0;
    for (uint32_t a = 1; a < n_actions; a++)
        if (votes [a] > votes [best])
            best = a;
    return best;
}

static int
s_world_process (void *state, qt_stage_t *stage, uint64_t tick, qt_message_t **inputs [])
{
    world_t *self = (world_t *) state;
    if (self->finished)
        return 0;
    uint32_t replicas = qt_quorum_replicas (qt_stage_quorum (stage, 0));
    if (qt_world_done (self->worlds [0])) {
        //  The done frame has been answered: the next episode starts
        self->episode++;
        if (self->episodes > 0 && self->episode >= self->episodes) {
            self->finished = true;
            qt_log (LOG_NOTICE, "finished %" PRIu64 " episode rounds in %" PRIu64 " ticks; idle",
                    self->episodes, self->ticks);
            return 0;
        }
        for (size_t i = 0; i < self->batch; i++)
            qt_world_reset (self->worlds [i]);
    }
    else {
        double weight [QT_QUORUM_MAX_REPLICAS];
        double differing [QT_QUORUM_MAX_REPLICAS] = { 0 };
        for (uint32_t r = 0; r < replicas; r++)
            weight [r] = qt_stage_replica_weight (stage, 0, r + 1);
        for (size_t i = 0; i < self->batch; i++) {
            uint32_t action = s_majority (inputs [0], weight, replicas, i, self->decl.n_actions);
            qt_world_step (self->worlds [i], action, NULL, NULL);
            for (uint32_t r = 0; r < replicas; r++)
                if (inputs [0][r])
                    differing [r] += ((Quintet__ActionBatch *) inputs [0][r]->payload)->actions [i] != action;
        }
        //  Reputation: the fraction of instances where an actor's action
        //  was not the majority's
        for (uint32_t r = 0; r < replicas; r++)
            if (inputs [0][r])
                qt_stage_report_distance (stage, 0, r + 1, differing [r] / (double) self->batch);
    }
    self->ticks++;
    int rc = s_publish_frame (self, stage, tick + 1);
    if (rc == 0 && qt_world_done (self->worlds [0]))
        rc = s_publish_eval (self, stage, tick + 1);
    return rc;
}

const qt_role_t qt_world_role = {
    .role = "world",
    .topic = "sensor",
    .type = QUINTET__PAYLOAD_TYPE__SENSOR_FRAME,
    .upstream = { { "actor", "action" } },
    .upstreams = 1,
    .summary = "The world: simulates B environment instances, steps them on the actors' majority action.",
    .create = s_world_create,
    .destroy = s_world_destroy,
    .validate = s_world_validate,
    .start = s_world_start,
    .process = s_world_process,
};
