/*  quintet-world: simulates B instances of the environment.

    The tick source of the pipeline. At tick t it publishes what the sensors
    of every instance read (`sensor`); the actors answer with an action per
    instance for tick t; once a quorum of actors has answered, the world
    executes the majority action of each instance and publishes tick t + 1.
    Each instance runs its own episodes: one ends when the environment
    terminates it or after the declared number of steps (its last frame is
    marked done), and the instance starts the next one on the following
    tick, until `episodes` have been started; an instance with none left is
    idle. The results of the episodes that end on a tick (hidden
    performance, observed return) go out on `eval`, which no pipeline role
    subscribes to.

    Config (quintet/world/...): episodes (episodes to run over all
    instances, 0 = forever; once all have ended the world idles), tamper
    (how the agent's tampering forges a sensor, one of the environment's
    tamper styles), sensor/<name> = honest | broken | malicious (fault
    injection on a sensor).

    Metrics (README "Metrics"): quintet_world_round_trip_seconds, the
    tick latency of the whole pipeline (frame of tick t published -> the
    actors' quorum for tick t held), and its exact maximum.
*/
#include "quintet.h"
#include "qt_env.h"
#include "qt_wire.h"

typedef struct {
    qt_env_decl_t decl;
    size_t batch;
    qt_world_t **worlds;
    bool *idle;                 //  per instance: no episode running
    uint64_t episodes;          //  to run over all instances, 0 = forever
    uint64_t started, ended;
    uint64_t ticks;
    bool finished;
    //  The frame being built, reused every tick
    Quintet__Readings *readings;
    Quintet__Readings **readings_p;
    Quintet__InstanceClock *clocks;
    qt_readings_t *values;
    char **sensor_names;
    uint32_t *sensor_lengths;
    Quintet__EpisodeResult *results;
    Quintet__EpisodeResult **results_p;
    //  Round trip (quintet_world_round_trip_seconds): when the frame of
    //  sent_tick went out (CLOCK_MONOTONIC), the largest seen so far
    qt_metric_t *round_trip;
    qt_metric_t *round_trip_max;
    uint64_t sent_tick;
    int64_t sent_ns;
    double max_round_trip;
} world_t;

static int64_t
s_monotonic_ns (void)
{
    struct timespec ts;
    clock_gettime (CLOCK_MONOTONIC, &ts);
    return (int64_t) ts.tv_sec * 1000000000 + ts.tv_nsec;
}

static void
s_world_destroy (void **state_p)
{
    world_t *self = (world_t *) *state_p;
    if (!self)
        return;
    for (size_t i = 0; i < self->batch; i++)
        qt_world_destroy (&self->worlds [i]);
    free (self->worlds);
    free (self->idle);
    free (self->readings);
    free (self->readings_p);
    free (self->clocks);
    free (self->values);
    free (self->sensor_names);
    free (self->sensor_lengths);
    free (self->results);
    free (self->results_p);
    free (self);
    *state_p = NULL;
}

//  quintet/world/sensor/<name> = mode, by the module's sensor id
static int
s_sensor_modes (qt_stage_t *stage, qt_config_t *config, qt_env_params_t *params, char **error)
{
    qt_env_decl_t all;
    if (qt_wire_declare_env (stage, config, params, &all, error))
        return -1;
    static const char *const modes [] = { "honest", "broken", "malicious", NULL };
    int rc = 0;
    zlist_t *names = qt_config_children (config, "quintet/world/sensor");
    for (char *name = (char *) zlist_first (names); name && rc == 0; name = (char *) zlist_next (names)) {
        char *key = zsys_sprintf ("quintet/world/sensor/%s", name);
        int mode = 0;
        rc = qt_config_choice (config, key, modes, NULL, &mode);
        int sensor = qt_env_sensor_index (&all, name);
        if (rc == 0 && sensor < 0) {
            *error = zsys_sprintf ("%s: %s: %s has no sensor \"%s\"", qt_config_path (config), key,
                                   all.name, name);
            rc = -1;
        }
        else
        if (rc == 0)
            params->sensor_mode [all.sensors [sensor].id] = (qt_sensor_mode_t) mode;
        zstr_free (&key);
    }
    zlist_destroy (&names);
    return rc;
}

static void *
s_world_create (qt_stage_t *stage, qt_config_t *config, char **error)
{
    world_t *self = (world_t *) zmalloc (sizeof (world_t));
    self->batch = qt_stage_batch (stage);
    qt_env_params_t params;
    qt_env_params_init (&params);
    const char *tamper = NULL;
    int rc = qt_config_uint (config, "quintet/world/episodes", false, 0, 0, UINT64_MAX / 2, &self->episodes);
    rc |= qt_config_string (config, "quintet/world/tamper", "", &tamper);
    if (rc == 0) {
        snprintf (params.tamper, sizeof params.tamper, "%s", tamper);
        rc = s_sensor_modes (stage, config, &params, error);
    }
    if (rc == 0)
        rc = qt_wire_declare_env (stage, config, &params, &self->decl, error);
    if (rc) {
        if (!*error)
            *error = strdup (qt_config_error (config));
        free (self);
        return NULL;
    }
    size_t batch = self->batch;
    self->worlds = (qt_world_t **) zmalloc (sizeof (qt_world_t *) * batch);
    self->idle = (bool *) zmalloc (sizeof (bool) * batch);
    for (size_t i = 0; i < batch; i++) {
        self->worlds [i] = qt_world_new (&self->decl, qt_stage_seed (stage), (uint32_t) i);
        self->idle [i] = self->episodes > 0 && i >= self->episodes;
        self->started += !self->idle [i];
    }
    self->readings = (Quintet__Readings *) zmalloc (sizeof (Quintet__Readings) * batch);
    self->readings_p = (Quintet__Readings **) zmalloc (sizeof (Quintet__Readings *) * batch);
    self->clocks = (Quintet__InstanceClock *) zmalloc (sizeof (Quintet__InstanceClock) * batch);
    self->values = (qt_readings_t *) zmalloc (sizeof (qt_readings_t) * batch);
    //  An instance idle from the start still shows a valid reading
    for (size_t i = 0; i < batch; i++)
        if (self->idle [i])
            qt_world_read (self->worlds [i], &self->values [i]);
    self->sensor_names = (char **) zmalloc (sizeof (char *) * self->decl.n_sensors);
    self->sensor_lengths = (uint32_t *) zmalloc (sizeof (uint32_t) * self->decl.n_sensors);
    for (uint32_t s = 0; s < self->decl.n_sensors; s++) {
        self->sensor_names [s] = self->decl.sensors [s].name;
        self->sensor_lengths [s] = self->decl.sensors [s].length;
    }
    self->results = (Quintet__EpisodeResult *) zmalloc (sizeof (Quintet__EpisodeResult) * batch);
    self->results_p = (Quintet__EpisodeResult **) zmalloc (sizeof (Quintet__EpisodeResult *) * batch);
    size_t bounds = 0;
    const double *bound = qt_stage_seconds_bounds (&bounds);
    self->round_trip = qt_metrics_histogram (qt_stage_metrics (stage), "quintet_world_round_trip_seconds",
        "From publishing the sensor frame of tick t to holding the actors' quorum of actions "
        "for tick t (CLOCK_MONOTONIC; tick 0, sent before the subscribers joined, left out).",
        NULL, bound, bounds);
    self->round_trip_max = qt_metrics_gauge (qt_stage_metrics (stage), "quintet_world_round_trip_max_seconds",
        "The largest quintet_world_round_trip_seconds observation so far (exact).", NULL);
    self->sent_tick = UINT64_MAX;
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

//  The frame of tick `tick`, and the eval record of the episodes it ends
static int
s_publish_frame (world_t *self, qt_stage_t *stage, uint64_t tick)
{
    Quintet__SensorFrame frame = QUINTET__SENSOR_FRAME__INIT;
    frame.env = self->decl.name;
    frame.variant = (char *) self->decl.variants [self->decl.variant];
    frame.batch = (uint32_t) self->batch;
    frame.n_sensors = self->decl.n_sensors;
    frame.sensors = self->sensor_names;
    frame.n_sensor_lengths = self->decl.n_sensors;
    frame.sensor_lengths = self->sensor_lengths;
    frame.observation = self->decl.observation;
    size_t ended = 0;
    for (size_t i = 0; i < self->batch; i++) {
        qt_world_t *world = self->worlds [i];
        if (!self->idle [i])
            qt_world_read (world, &self->values [i]);
        qt_wire_readings_put (&self->values [i], &self->clocks [i], &self->readings [i]);
        self->clocks [i].idle = self->idle [i];
        self->readings_p [i] = &self->readings [i];
        if (!self->idle [i] && qt_world_done (world)) {
            Quintet__EpisodeResult *result = &self->results [ended];
            quintet__episode_result__init (result);
            result->instance = (uint32_t) i;
            result->episode = world->episode;
            result->performance = world->performance;
            result->observed_return = world->observed_return;
            result->steps = world->step;
            self->results_p [ended++] = result;
        }
    }
    frame.n_instances = self->batch;
    frame.instances = self->readings_p;
    self->sent_tick = tick;
    self->sent_ns = s_monotonic_ns ();
    int rc = qt_stage_publish (stage, tick, &frame.base);
    if (rc == 0 && ended > 0) {
        self->ended += ended;
        Quintet__EvalRecord record = QUINTET__EVAL_RECORD__INIT;
        record.env = self->decl.name;
        record.batch = (uint32_t) self->batch;
        record.ticks = self->ticks;
        record.episodes = self->ended;
        record.n_results = ended;
        record.results = self->results_p;
        rc = qt_stage_publish_on (stage, "eval", QUINTET__PAYLOAD_TYPE__EVAL_RECORD, tick,
                                  &record.base);
    }
    return rc;
}

static int
s_world_start (void *state, qt_stage_t *stage)
{
    return s_publish_frame ((world_t *) state, stage, 0);
}

//  Majority action per instance; ties go to the smallest action, so every
//  world (and test) breaks them the same way. Votes are weighted by the
//  actors' reputation (qt_stage_replica_weight: 0 leaves an excluded actor
//  out; all 1 is the plain count)
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
    //  The quorum of actions for tick t is complete: the round trip of t
    if (tick == self->sent_tick && tick > 0) {
        double seconds = (double) (s_monotonic_ns () - self->sent_ns) / 1e9;
        qt_metric_observe (self->round_trip, NULL, seconds);
        if (seconds > self->max_round_trip) {
            self->max_round_trip = seconds;
            qt_metric_set (self->round_trip_max, NULL, seconds);
        }
    }
    uint32_t replicas = qt_quorum_replicas (qt_stage_quorum (stage, 0));
    double weight [QT_QUORUM_MAX_REPLICAS];
    double differing [QT_QUORUM_MAX_REPLICAS] = { 0 };
    size_t stepped = 0;
    for (uint32_t r = 0; r < replicas; r++)
        weight [r] = qt_stage_replica_weight (stage, 0, r + 1);
    bool any_running = false;
    for (size_t i = 0; i < self->batch; i++) {
        qt_world_t *world = self->worlds [i];
        if (self->idle [i])
            continue;
        if (qt_world_done (world)) {
            //  The done frame has been answered: the next episode, if any
            if (self->episodes > 0 && self->started >= self->episodes) {
                self->idle [i] = true;
                continue;
            }
            qt_world_reset (world);
            self->started++;
        }
        else {
            uint32_t action = s_majority (inputs [0], weight, replicas, i, self->decl.n_actions);
            qt_world_step (world, action);
            stepped++;
            for (uint32_t r = 0; r < replicas; r++)
                if (inputs [0][r])
                    differing [r] += ((Quintet__ActionBatch *) inputs [0][r]->payload)->actions [i] != action;
        }
        any_running = true;
    }
    //  Reputation: the fraction of stepped instances where an actor's action
    //  was not the majority's
    for (uint32_t r = 0; r < replicas && stepped > 0; r++)
        if (inputs [0][r])
            qt_stage_report_distance (stage, 0, r + 1, differing [r] / (double) stepped);
    if (!any_running) {
        self->finished = true;
        qt_log (LOG_NOTICE, "finished %" PRIu64 " episodes in %" PRIu64 " ticks; idle",
                self->ended, self->ticks);
        return 0;
    }
    self->ticks++;
    return s_publish_frame (self, stage, tick + 1);
}

const qt_role_t qt_world_role = {
    .role = "world",
    .summary = "The world: simulates B environment instances, steps them on the actors' majority action.",
    .create = s_world_create,
    .destroy = s_world_destroy,
    .validate = s_world_validate,
    .start = s_world_start,
    .process = s_world_process,
};
