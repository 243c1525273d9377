/*  quintet-collector (Erin): reads the world's sensors, validates every
    reading against the environment's declaration, appends them to a durable
    local log, and only then signs and publishes them as observations. What
    was published was on disk first: a kill -9 loses nothing acknowledged.

    The log is SQLite (qt_store) at <state_dir>/readings.sqlite, one row per
    tick holding the world's SensorFrame payload exactly as received, with
    the world's epoch and seq in the row's topic field ("sensor <epoch>
    <seq>") so a reading can be traced to the signed message it came from.
    The row id travels downstream as ObservationBatch.log_index. Retention
    is bounded (quintet/collector/retain_rows, retain_bytes; qt_store): the
    oldest rows go first, the newest acknowledged ones always stay.
*/
#include "quintet.h"
#include "qt_env.h"
#include "qt_wire.h"

#define S_LOG_FILE "readings.sqlite"
//  Retention of the durable log (quintet/collector/retain_rows, retain_bytes;
//  0: no bound of that kind): about 40 minutes at batch 32, 200 ticks/s
#define S_RETAIN_ROWS   0
#define S_RETAIN_BYTES  (UINT64_C (1) << 30)

typedef struct {
    qt_env_decl_t decl;
    size_t batch;
    qt_store_t *store;
    qt_readings_t reading;      //  scratch for validation
} collector_t;

static void
s_collector_destroy (void **state_p)
{
    collector_t *self = (collector_t *) *state_p;
    if (!self)
        return;
    qt_store_destroy (&self->store);
    free (self);
    *state_p = NULL;
}

static void *
s_collector_create (qt_stage_t *stage, qt_config_t *config, char **error)
{
    collector_t *self = (collector_t *) zmalloc (sizeof (collector_t));
    self->batch = qt_stage_batch (stage);
    if (qt_wire_declare_env (stage, config, NULL, &self->decl, error)) {
        free (self);
        return NULL;
    }
    uint64_t retain_rows = 0, retain_bytes = 0;
    if (qt_config_uint (config, "quintet/collector/retain_rows", false, S_RETAIN_ROWS, 0, UINT64_MAX,
                        &retain_rows)
    ||  qt_config_uint (config, "quintet/collector/retain_bytes", false, S_RETAIN_BYTES, 0, UINT64_MAX,
                        &retain_bytes)) {
        *error = strdup (qt_config_error (config));
        free (self);
        return NULL;
    }
    char *path = zsys_sprintf ("%s/%s", qt_stage_state_dir (stage), S_LOG_FILE);
    self->store = qt_store_open (path, error);
    zstr_free (&path);
    if (!self->store) {
        free (self);
        return NULL;
    }
    if (qt_store_set_retention (self->store, retain_rows, retain_bytes))
        qt_log (LOG_WARNING, "durable log over its retention bounds: %s", qt_store_error (self->store));
    uint64_t tick = 0, index = 0;
    if (qt_store_last (self->store, &tick, &index) == 0)
        qt_log (LOG_INFO, "durable log has %" PRId64 " rows, last tick %" PRIu64,
                qt_store_count (self->store), tick);
    return self;
}

//  Every reading must fit the declaration: its sensors, values, clock and
//  action
static qt_drop_cause_t
s_collector_validate (void *state, size_t upstream, const ProtobufCMessage *payload)
{
    collector_t *self = (collector_t *) state;
    (void) upstream;
    const Quintet__SensorFrame *frame = (const Quintet__SensorFrame *) payload;
    if (strneq (frame->env, self->decl.name) || frame->n_sensors != self->decl.n_sensors
    ||  frame->observation != self->decl.observation)
        return QT_DROP_INVALID;
    for (size_t s = 0; s < frame->n_sensors; s++)
        if (strneq (frame->sensors [s], self->decl.sensors [s].name)
        ||  frame->sensor_lengths [s] != self->decl.sensors [s].length)
            return QT_DROP_INVALID;
    for (size_t i = 0; i < frame->n_instances; i++)
        if (qt_wire_readings_get (frame->instances [i], &self->reading)
        ||  wm_readings_validate (&self->decl, &self->reading, NULL))
            return QT_DROP_INVALID;
    return QT_DROP_NONE;
}

static int
s_collector_process (void *state, qt_stage_t *stage, uint64_t tick, qt_message_t **inputs [])
{
    collector_t *self = (collector_t *) state;
    qt_message_t *source = inputs [0][0];       //  the world is one replica
    if (!source)
        return 0;
    const Quintet__SensorFrame *frame = (const Quintet__SensorFrame *) source->payload;

    //  Durable before published
    char *topic = zsys_sprintf ("sensor %016" PRIx64 " %" PRIu64, source->envelope->epoch,
                                source->envelope->seq);
    uint64_t index = 0;
    int rc = qt_store_append (self->store, tick, topic, source->envelope->payload.data,
                              source->envelope->payload.len, &index);
    zstr_free (&topic);
    if (rc) {
        //  Not persisted, so not published; the stage reports us degraded
        //  until an append succeeds again (a later tick)
        qt_stage_tick_failed (stage, tick, "durable-log", "durable log append failed at tick %"
                              PRIu64 ": %s", tick, qt_store_error (self->store));
        return 0;
    }
    Quintet__ObservationBatch obs = QUINTET__OBSERVATION_BATCH__INIT;
    obs.env = frame->env;
    obs.batch = frame->batch;
    obs.n_instances = frame->n_instances;
    obs.instances = frame->instances;
    obs.log_index = index;
    obs.source_epoch = source->envelope->epoch;
    obs.source_seq = source->envelope->seq;
    return qt_stage_publish (stage, tick, &obs.base);
}

const qt_role_t qt_collector_role = {
    .role = "collector",
    .topic = "obs",
    .type = QUINTET__PAYLOAD_TYPE__OBSERVATION_BATCH,
    .upstream = { { "world", "sensor" } },
    .upstreams = 1,
    .state_for = "its durable log",
    .summary = "Erin: validates the world's sensor readings, persists them durably, signs and publishes them.",
    .create = s_collector_create,
    .destroy = s_collector_destroy,
    .validate = s_collector_validate,
    .process = s_collector_process,
};
