/*  quintet-worldmodel (Dave): the likely state of the world, as a posterior.

    Per tick, the collector replicas' readings of each instance are combined
    robustly first (majority per value: wm_readings_combine), then fused by
    Bayes in a filter whose transition model is the environment's own step
    function and whose sensor models include "this sensor is tampered"
    (wm_filter). Publishes per instance the posterior expected features of
    the last transition, a weighted sample of likely states, the entropy and
    per-sensor reliability, with the instance's clock.

    State transfer (snapshot, restore): the filter's whole state, so a
    restarted replica that caught up from its peers' publishes what they do
    from the next tick on. Nothing else here outlives a tick (the clocks
    and the replicas' readings are this tick's). A replica restarted
    without it starts every instance from the reset distribution and is
    off for good (its generators and learned reliabilities never meet its
    peers' again); its peers outvote it.

    Config (quintet/worldmodel/...): every option of daemons/worldmodel/
    filter.h by name (particles, samples, steer_draws, reliability_prior,
    reliability_min, reliability_max, learning_warmup, learning_rate_min,
    noise_floor, garbage, stuck, plausible_draws); the filter's defaults
    otherwise.
*/
#include "quintet.h"
#include "qt_wire.h"

typedef struct {
    qt_env_decl_t decl;
    size_t batch;
    wm_filter_t *filter;
    char **sensor_names, **feature_names, **variable_names;
    qt_readings_t *replica_readings;        //  [replica], scratch
    qt_wire_clock_t *clocks;                //  [instance], this tick's
    Quintet__InstanceClock *wire_clocks;
} worldmodel_t;

static void
s_worldmodel_destroy (void **state_p)
{
    worldmodel_t *self = (worldmodel_t *) *state_p;
    if (!self)
        return;
    wm_filter_destroy (&self->filter);
    free (self->sensor_names);
    free (self->feature_names);
    free (self->variable_names);
    free (self->replica_readings);
    free (self->clocks);
    free (self->wire_clocks);
    free (self);
    *state_p = NULL;
}

static void *
s_worldmodel_create (qt_stage_t *stage, qt_config_t *config, char **error)
{
    worldmodel_t *self = (worldmodel_t *) zmalloc (sizeof (worldmodel_t));
    self->batch = qt_stage_batch (stage);
    if (qt_wire_declare_env (stage, config, NULL, &self->decl, error)) {
        free (self);
        return NULL;
    }
    wm_filter_config_t filter_config;
    wm_filter_config_default (&filter_config);
    int rc = 0;
    for (const char *const *option = wm_filter_options; *option && rc == 0; option++) {
        char *key = zsys_sprintf ("quintet/worldmodel/%s", *option);
        const char *value = NULL;
        rc = qt_config_string (config, key, "", &value);
        const char *cause = NULL;
        if (rc == 0 && *value && wm_filter_config_set (&filter_config, *option, value, &cause)) {
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
    self->filter = wm_filter_new (&self->decl, &filter_config, (uint32_t) self->batch,
                                  qt_stage_seed (stage));
    if (!self->filter) {
        *error = zsys_sprintf ("%s: quintet/worldmodel: invalid filter configuration "
                               "(particles below samples, reliabilities out of order, a share "
                               "outside [0, 1)?)", qt_config_path (config));
        free (self);
        return NULL;
    }
    const qt_env_decl_t *decl = &self->decl;
    self->sensor_names = (char **) zmalloc (sizeof (char *) * (decl->n_sensors + 1));
    for (uint32_t s = 0; s < decl->n_sensors; s++)
        self->sensor_names [s] = (char *) decl->sensors [s].name;
    self->feature_names = (char **) zmalloc (sizeof (char *) * (decl->n_features + 1));
    for (uint32_t f = 0; f < decl->n_features; f++)
        self->feature_names [f] = (char *) decl->feature_names [f];
    self->variable_names = (char **) zmalloc (sizeof (char *) * (decl->n_vars + 1));
    for (uint32_t v = 0; v < decl->n_vars; v++)
        self->variable_names [v] = (char *) decl->vars [v].name;
    self->replica_readings = (qt_readings_t *) zmalloc (sizeof (qt_readings_t) * QT_QUORUM_MAX_REPLICAS);
    self->clocks = (qt_wire_clock_t *) zmalloc (sizeof (qt_wire_clock_t) * self->batch);
    self->wire_clocks = (Quintet__InstanceClock *) zmalloc (sizeof (Quintet__InstanceClock) * self->batch);
    return self;
}

static qt_drop_cause_t
s_worldmodel_validate (void *state, size_t upstream, const ProtobufCMessage *payload)
{
    worldmodel_t *self = (worldmodel_t *) state;
    (void) upstream;
    const Quintet__ObservationBatch *obs = (const Quintet__ObservationBatch *) payload;
    if (strneq (obs->env, self->decl.name))
        return QT_DROP_INVALID;
    qt_readings_t reading;
    for (size_t i = 0; i < obs->n_instances; i++)
        if (qt_wire_readings_get (obs->instances [i], &reading)
        ||  wm_readings_validate (&self->decl, &reading, NULL))
            return QT_DROP_INVALID;
    return QT_DROP_NONE;
}

static int
s_worldmodel_process (void *state, qt_stage_t *stage, uint64_t tick, qt_message_t **inputs [])
{
    worldmodel_t *self = (worldmodel_t *) state;
    uint32_t replicas = qt_quorum_replicas (qt_stage_quorum (stage, 0));
    const Quintet__ObservationBatch *obs [QT_QUORUM_MAX_REPLICAS] = { NULL };
    if (qt_wire_gather (inputs [0], replicas, self->batch, (const ProtobufCMessage **) obs,
                        self->clocks) < 0)
        return 0;

    wm_belief_t *beliefs = (wm_belief_t *) zmalloc (sizeof (wm_belief_t) * self->batch);
    Quintet__Belief *wire = (Quintet__Belief *) zmalloc (sizeof (Quintet__Belief) * self->batch);
    Quintet__Belief **wire_p = (Quintet__Belief **) zmalloc (sizeof (void *) * self->batch);
    const qt_readings_t *views [QT_QUORUM_MAX_REPLICAS];
    //  Reputation: an excluded collector is left out of the majority (not
    //  weighted: a down-weighted one still votes); each one's distance is
    //  the fraction of its reading's values (and clock, action) that differ
    //  from the combined ones
    const qt_readings_t *used [QT_QUORUM_MAX_REPLICAS];
    double differing [QT_QUORUM_MAX_REPLICAS] = { 0 };
    double compared = 0;
    for (size_t i = 0; i < self->batch; i++) {
        for (uint32_t r = 0; r < replicas; r++) {
            views [r] = NULL;
            if (obs [r] && qt_wire_readings_get (obs [r]->instances [i], &self->replica_readings [r]) == 0)
                views [r] = &self->replica_readings [r];
            used [r] = qt_stage_replica_weight (stage, 0, r + 1) > 0 ? views [r] : NULL;
        }
        qt_readings_t combined;
        if (self->clocks [i].idle)
            wm_filter_idle (self->filter, (uint32_t) i, &beliefs [i]);
        else
        if (wm_readings_combine (used, replicas, &combined) == 0) {
            wm_filter_update (self->filter, (uint32_t) i, &combined, &beliefs [i]);
            uint32_t values = 2 + combined.length;
            compared += values;
            for (uint32_t r = 0; r < replicas; r++) {
                const qt_readings_t *view = views [r];
                if (!view)
                    continue;
                if (view->length != combined.length) {
                    differing [r] += values;
                    continue;
                }
                differing [r] += view->step != combined.step || view->episode != combined.episode;
                differing [r] += view->action != combined.action;
                for (uint32_t k = 0; k < combined.length; k++)
                    differing [r] += view->values [k] != combined.values [k];
            }
        }
        else
            wm_filter_idle (self->filter, (uint32_t) i, &beliefs [i]);
        qt_wire_clock_put (&self->clocks [i], &self->wire_clocks [i]);
        qt_wire_belief_put (&beliefs [i], &self->wire_clocks [i], &wire [i]);
        wire_p [i] = &wire [i];
    }
    Quintet__BeliefBatch batch = QUINTET__BELIEF_BATCH__INIT;
    batch.batch = (uint32_t) self->batch;
    batch.n_sensors = self->decl.n_sensors;
    batch.sensors = self->sensor_names;
    batch.n_features = self->decl.n_features;
    batch.features = self->feature_names;
    batch.n_variables = self->decl.n_vars;
    batch.variables = self->variable_names;
    batch.n_instances = self->batch;
    batch.instances = wire_p;
    int rc = qt_stage_publish (stage, tick, &batch.base);
    for (uint32_t r = 0; r < replicas; r++)
        if (obs [r] && compared > 0)
            qt_stage_report_distance (stage, 0, r + 1, differing [r] / compared);
    for (size_t i = 0; i < self->batch; i++)
        qt_wire_belief_free (&wire [i]);
    free (wire_p);
    free (wire);
    free (beliefs);
    return rc;
}

static int
s_worldmodel_snapshot (void *state, zchunk_t *out)
{
    worldmodel_t *self = (worldmodel_t *) state;
    return wm_filter_snapshot (self->filter, out);
}

static int
s_worldmodel_restore (void *state, const uint8_t *data, size_t size, const char **cause)
{
    worldmodel_t *self = (worldmodel_t *) state;
    return wm_filter_restore (self->filter, data, size, cause);
}

const qt_role_t qt_worldmodel_role = {
    .role = "worldmodel",
    .summary = "Dave: Bayesian inference of the likely world state, sensor tampering among the theories.",
    .create = s_worldmodel_create,
    .destroy = s_worldmodel_destroy,
    .validate = s_worldmodel_validate,
    .process = s_worldmodel_process,
    .snapshot = s_worldmodel_snapshot,
    .restore = s_worldmodel_restore,
};
