/*  quintet-worldmodel (Dave): the likely state of the world, as a posterior.

    Per tick, the collector replicas' readings of each instance are combined
    robustly first (majority per reading: wm_readings_combine), then fused by
    Bayes in a filter whose prior and dynamics are the environment's own
    declaration and whose sensor models include "this sensor is tampered"
    (wm_filter). Publishes per instance the marginals, a small weighted
    sample of likely states, the entropy and per-sensor reliability.

    A replica restarted mid-episode starts from the declared prior and is
    off for the rest of that episode; its peers outvote it meanwhile.

    Config (quintet/worldmodel/...): samples, reliability_prior — the
    filter's defaults otherwise (daemons/worldmodel/filter.h).
*/
#include "quintet.h"
#include "qt_wire.h"

typedef struct {
    qt_env_decl_t decl;
    size_t batch;
    wm_filter_t *filter;
    char **sensor_names;
    qt_readings_t *replica_readings;        //  [replica], scratch
} worldmodel_t;

static void
s_worldmodel_destroy (void **state_p)
{
    worldmodel_t *self = (worldmodel_t *) *state_p;
    if (!self)
        return;
    wm_filter_destroy (&self->filter);
    free (self->sensor_names);
    free (self->replica_readings);
    free (self);
    *state_p = NULL;
}

static void *
s_worldmodel_create (qt_stage_t *stage, qt_config_t *config, char **error)
{
    worldmodel_t *self = (worldmodel_t *) zmalloc (sizeof (worldmodel_t));
    self->batch = qt_stage_batch (stage);
    if (qt_wire_declare_env (stage, config, &self->decl, error)) {
        free (self);
        return NULL;
    }
    wm_filter_config_t filter_config;
    wm_filter_config_default (&filter_config);
    uint64_t samples = 0;
    int rc = qt_config_uint (config, "quintet/worldmodel/samples", false, filter_config.samples,
                             1, WM_MAX_SAMPLES, &samples);
    rc |= qt_config_double (config, "quintet/worldmodel/reliability_prior", false,
                            filter_config.reliability_prior, filter_config.reliability_min,
                            filter_config.reliability_max, &filter_config.reliability_prior);
    filter_config.samples = (uint32_t) samples;
    if (rc) {
        *error = strdup (qt_config_error (config));
        free (self);
        return NULL;
    }
    self->filter = wm_filter_new (&self->decl, &filter_config, (uint32_t) self->batch,
                                  qt_stage_seed (stage));
    if (!self->filter) {
        *error = zsys_sprintf ("%s: quintet/worldmodel: invalid filter configuration",
                               qt_config_path (config));
        free (self);
        return NULL;
    }
    self->sensor_names = (char **) zmalloc (sizeof (char *) * self->decl.n_sensors);
    for (uint32_t s = 0; s < self->decl.n_sensors; s++)
        self->sensor_names [s] = self->decl.sensors [s].name;
    self->replica_readings = (qt_readings_t *) zmalloc (sizeof (qt_readings_t) * QT_QUORUM_MAX_REPLICAS);
    return self;
}

static qt_drop_cause_t
s_worldmodel_validate (void *state, size_t upstream, const ProtobufCMessage *payload)
{
    worldmodel_t *self = (worldmodel_t *) state;
    (void) upstream;
    const Quintet__ObservationBatch *obs = (const Quintet__ObservationBatch *) payload;
    if (strneq (obs->env, self->decl.name) || obs->step > self->decl.max_steps)
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
    qt_wire_clock_t clock;
    int count = qt_wire_gather (inputs [0], replicas, (const ProtobufCMessage **) obs, &clock);
    if (count < 0)
        return 0;

    wm_belief_t *beliefs = (wm_belief_t *) zmalloc (sizeof (wm_belief_t) * self->batch);
    Quintet__Belief *wire = (Quintet__Belief *) zmalloc (sizeof (Quintet__Belief) * self->batch);
    Quintet__Belief **wire_p = (Quintet__Belief **) zmalloc (sizeof (void *) * self->batch);
    const qt_readings_t *views [QT_QUORUM_MAX_REPLICAS];
    //  Reputation: an excluded collector is left out of the majority (not
    //  weighted: a down-weighted one still votes); each one's distance is
    //  the fraction of its readings (position, camera cells, probes) that
    //  differ from the combined ones
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
        if (wm_readings_combine (used, replicas, &combined) == 0) {
            wm_filter_update (self->filter, (uint32_t) i, clock.step, &combined, &beliefs [i]);
            uint32_t readings = 1 + combined.camera_len + combined.moisture_count;
            compared += readings;
            for (uint32_t r = 0; r < replicas; r++) {
                const qt_readings_t *view = views [r];
                if (!view)
                    continue;
                if (view->camera_len != combined.camera_len
                ||  view->moisture_count != combined.moisture_count) {
                    differing [r] += readings;
                    continue;
                }
                differing [r] += view->position != combined.position;
                for (uint32_t c = 0; c < combined.camera_len; c++)
                    differing [r] += view->camera [c] != combined.camera [c];
                for (uint32_t k = 0; k < combined.moisture_count; k++)
                    differing [r] += view->moisture [k] != combined.moisture [k];
            }
        }
        qt_wire_belief_put (&beliefs [i], &wire [i]);
        wire_p [i] = &wire [i];
    }
    Quintet__BeliefBatch batch = QUINTET__BELIEF_BATCH__INIT;
    batch.batch = (uint32_t) self->batch;
    batch.episode = clock.episode;
    batch.step = clock.step;
    batch.done = clock.done;
    batch.n_sensors = self->decl.n_sensors;
    batch.sensors = self->sensor_names;
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

const qt_role_t qt_worldmodel_role = {
    .role = "worldmodel",
    .topic = "belief",
    .type = QUINTET__PAYLOAD_TYPE__BELIEF_BATCH,
    .upstream = { { "collector", "obs" } },
    .upstreams = 1,
    .summary = "Dave: Bayesian inference of the likely world state, sensor tampering among the theories.",
    .create = s_worldmodel_create,
    .destroy = s_worldmodel_destroy,
    .validate = s_worldmodel_validate,
    .process = s_worldmodel_process,
};
