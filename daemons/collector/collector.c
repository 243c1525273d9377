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

    Judgments are data too. The raters' JudgmentBatch of tick t (the answers
    to the scorers' queries of t - 1) is consumed with the world's frame of
    t; each judgment is checked alone (qt_wire_judgment_open: signed by the
    rater it names, finite, in range, as many features as the environment
    declares; and an answer to a query of t - 1, once per query) and a bad
    one is dropped and counted by cause (quintet_judgments_total{outcome}),
    the others kept. The valid ones are appended, as a JudgmentBatch of
    their Judgment messages exactly as received, to a second log,
    <state_dir>/judgments.sqlite (topic "judgment <epoch> <seq>" of the
    raters' envelope; same retention), then published on `judgment` with
    the row as log_index (0 when there was nothing to log) and kept for
    re-sends (qt_stage_publish_kept). Nothing of a tick is published unless
    both its appends succeeded.
*/
#include "quintet.h"
#include "qt_env.h"
#include "qt_wire.h"
#include "learn.h"          //  SC_MAX_QUERIES: what the scorers may ask in one tick

#define S_LOG_FILE "readings.sqlite"
#define S_JUDGMENT_FILE "judgments.sqlite"
#define S_JUDGMENT_TOPIC "judgment"
//  Retention of the durable log (quintet/collector/retain_rows, retain_bytes;
//  0: no bound of that kind): about 40 minutes at batch 32, 200 ticks/s
#define S_RETAIN_ROWS   0
#define S_RETAIN_BYTES  (UINT64_C (1) << 30)

typedef struct {
    qt_env_decl_t decl;
    size_t batch;
    qt_store_t *store;
    qt_store_t *judgments;      //  the second log: judgments
    qt_trust_t *trust;          //  the stage's, for the raters' own keys
    qt_metric_t *judged;        //  quintet_judgments_total{outcome}
    qt_metric_t *log_rows;      //  quintet_durable_log_{rows,bytes,pruned_total}{log}
    qt_metric_t *log_bytes;
    qt_metric_t *log_pruned;
    qt_ratelimit_t *drop_log;   //  one line per cause per interval
    uint64_t outcomes [QT_DROP_CAUSES];     //  judgments by cause (QT_DROP_NONE: accepted)
    qt_readings_t reading;      //  scratch for validation
} collector_t;

static void
s_collector_destroy (void **state_p)
{
    collector_t *self = (collector_t *) *state_p;
    if (!self)
        return;
    qt_store_destroy (&self->store);
    qt_store_destroy (&self->judgments);
    qt_ratelimit_destroy (&self->drop_log);
    free (self);
    *state_p = NULL;
}

//  One durable log in state_dir, with the retention bounds
static qt_store_t *
s_open_log (qt_stage_t *stage, const char *file, uint64_t retain_rows, uint64_t retain_bytes,
            char **error)
{
    char *path = zsys_sprintf ("%s/%s", qt_stage_state_dir (stage), file);
    qt_store_t *store = qt_store_open (path, error);
    zstr_free (&path);
    if (!store)
        return NULL;
    if (qt_store_set_retention (store, retain_rows, retain_bytes))
        qt_log (LOG_WARNING, "durable log %s over its retention bounds: %s", file, qt_store_error (store));
    uint64_t tick = 0, index = 0;
    if (qt_store_last (store, &tick, &index) == 0)
        qt_log (LOG_INFO, "durable log %s has %" PRIu64 " rows, last tick %" PRIu64, file,
                qt_store_count (store), tick);
    return store;
}

//  The durable logs' sizes, in the metrics (cheap: qt_store keeps them)
static void
s_logs_measure (collector_t *self)
{
    qt_store_t *stores [] = { self->store, self->judgments };
    const char *names [] = { "readings", "judgments" };
    for (size_t i = 0; i < 2; i++) {
        qt_metric_set (self->log_rows, names [i], (double) qt_store_count (stores [i]));
        qt_metric_set (self->log_bytes, names [i], (double) qt_store_bytes (stores [i]));
        qt_metric_set (self->log_pruned, names [i], (double) qt_store_pruned (stores [i]));
    }
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
    self->store = s_open_log (stage, S_LOG_FILE, retain_rows, retain_bytes, error);
    if (self->store)
        self->judgments = s_open_log (stage, S_JUDGMENT_FILE, retain_rows, retain_bytes, error);
    if (!self->judgments) {
        qt_store_destroy (&self->store);
        free (self);
        return NULL;
    }
    self->trust = qt_stage_trust (stage);
    self->drop_log = qt_ratelimit_new (QT_STAGE_DROP_LOG_MS);
    self->judged = qt_metrics_counter (qt_stage_metrics (stage), "quintet_judgments_total",
        "Judgments received from the raters, by outcome: accepted, or the cause they were "
        "dropped for (unknown-key, wrong-role, bad-signature, bad-payload, invalid-value, "
        "stale, replay).", "outcome");
    qt_metric_add (self->judged, "accepted", 0);
    qt_metrics_t *metrics = qt_stage_metrics (stage);
    self->log_rows = qt_metrics_gauge (metrics, "quintet_durable_log_rows",
        "Rows held in a durable log (readings, judgments).", "log");
    self->log_bytes = qt_metrics_gauge (metrics, "quintet_durable_log_bytes",
        "Bytes of row data held in a durable log (readings, judgments).", "log");
    self->log_pruned = qt_metrics_counter (metrics, "quintet_durable_log_pruned_total",
        "Rows deleted from a durable log by retention since the daemon started.", "log");
    s_logs_measure (self);
    return self;
}

//  Every reading must fit the declaration: its sensors, values, clock and
//  action
static qt_drop_cause_t
s_collector_validate (void *state, size_t upstream, const ProtobufCMessage *payload)
{
    collector_t *self = (collector_t *) state;
    if (upstream == 1) {
        //  The judgments are checked one by one in process(); more than
        //  anyone asks in a tick is the raters daemon's fault, not a rater's
        const Quintet__JudgmentBatch *batch = (const Quintet__JudgmentBatch *) payload;
        return batch->n_judgments > SC_MAX_QUERIES ? QT_DROP_INVALID : QT_DROP_NONE;
    }
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

//  Keeps the judgments of a batch that pass every check, in order, into
//  valid (pointing into batch); counts each one's outcome
static size_t
s_judgments_valid (collector_t *self, uint64_t tick, const Quintet__JudgmentBatch *batch,
                   Quintet__Judgment **valid)
{
    size_t kept = 0;
    uint32_t indices [SC_MAX_QUERIES];
    for (size_t j = 0; j < batch->n_judgments && j < SC_MAX_QUERIES; j++) {
        Quintet__Comparison *comparison = NULL;
        qt_drop_cause_t cause = qt_wire_judgment_open (self->trust, batch->judgments [j],
                                                       self->decl.n_features, &comparison);
        if (cause == QT_DROP_NONE && comparison->query_tick + 1 != tick)
            cause = QT_DROP_STALE;      //  an answer of another tick, validly signed: replayed
        for (size_t k = 0; k < kept && cause == QT_DROP_NONE; k++)
            if (indices [k] == comparison->query_index)
                cause = QT_DROP_REPLAY; //  one answer per query
        if (cause == QT_DROP_NONE) {
            indices [kept] = comparison->query_index;
            valid [kept++] = batch->judgments [j];
        }
        if (comparison)
            quintet__comparison__free_unpacked (comparison, NULL);
        self->outcomes [cause]++;
        qt_metric_add (self->judged, cause == QT_DROP_NONE ? "accepted" : qt_drop_cause_name (cause), 1);
        char key [64];
        snprintf (key, sizeof key, "judgment/%s", qt_drop_cause_name (cause));
        uint64_t suppressed = 0;
        if (cause != QT_DROP_NONE && qt_ratelimit_pass (self->drop_log, key, zclock_mono (), &suppressed))
            qt_log_event (LOG_WARNING, QT_MSG_MESSAGE_DROPPED, tick, "raters-1", key,
                          "dropped judgment %zu of the raters' tick %" PRIu64 ": %s (%" PRIu64
                          " more of this cause since last report)", j, tick,
                          qt_drop_cause_name (cause), suppressed);
    }
    return kept;
}

//  quintetctl status: the judgments by outcome and the durable logs' rows and bytes
static void
s_collector_details (void *state, qt_stage_detail_fn *add, void *ctx)
{
    collector_t *self = (collector_t *) state;
    char value [32];
    for (int cause = QT_DROP_NONE; cause < QT_DROP_CAUSES; cause++) {
        if (cause != QT_DROP_NONE && self->outcomes [cause] == 0)
            continue;
        char name [64];
        snprintf (name, sizeof name, "judgments/%s",
                  cause == QT_DROP_NONE ? "accepted" : qt_drop_cause_name ((qt_drop_cause_t) cause));
        snprintf (value, sizeof value, "%" PRIu64, self->outcomes [cause]);
        add (ctx, name, value);
    }
    snprintf (value, sizeof value, "%" PRIu64, qt_store_count (self->store));
    add (ctx, "readings_log/rows", value);
    snprintf (value, sizeof value, "%" PRIu64, qt_store_bytes (self->store));
    add (ctx, "readings_log/bytes", value);
    snprintf (value, sizeof value, "%" PRIu64, qt_store_count (self->judgments));
    add (ctx, "judgment_log/rows", value);
    snprintf (value, sizeof value, "%" PRIu64, qt_store_bytes (self->judgments));
    add (ctx, "judgment_log/bytes", value);
}

static int
s_collector_process (void *state, qt_stage_t *stage, uint64_t tick, qt_message_t **inputs [])
{
    collector_t *self = (collector_t *) state;
    qt_message_t *source = inputs [0][0];       //  the world is one replica
    if (!source)
        return 0;
    const Quintet__SensorFrame *frame = (const Quintet__SensorFrame *) source->payload;
    qt_message_t *answers = inputs [1][0];      //  the raters are one process too

    //  Durable before published: the readings, then the valid judgments
    char *topic = zsys_sprintf ("sensor %016" PRIx64 " %" PRIu64, source->envelope->epoch,
                                source->envelope->seq);
    uint64_t index = 0;
    int rc = qt_store_append (self->store, tick, topic, source->envelope->payload.data,
                              source->envelope->payload.len, &index);
    zstr_free (&topic);
    Quintet__JudgmentBatch judged = QUINTET__JUDGMENT_BATCH__INIT;
    Quintet__Judgment *valid [SC_MAX_QUERIES];
    if (answers) {
        const Quintet__JudgmentBatch *batch = (const Quintet__JudgmentBatch *) answers->payload;
        judged.n_judgments = s_judgments_valid (self, tick, batch, valid);
        judged.judgments = valid;
        judged.query_tick = batch->query_tick;
        judged.source_epoch = answers->envelope->epoch;
        judged.source_seq = answers->envelope->seq;
    }
    if (rc == 0 && judged.n_judgments > 0) {
        size_t size = quintet__judgment_batch__get_packed_size (&judged);
        uint8_t *bytes = (uint8_t *) zmalloc (size + 1);
        quintet__judgment_batch__pack (&judged, bytes);
        topic = zsys_sprintf ("%s %016" PRIx64 " %" PRIu64, S_JUDGMENT_TOPIC, judged.source_epoch,
                              judged.source_seq);
        rc = qt_store_append (self->judgments, tick, topic, bytes, size, &judged.log_index);
        if (rc)
            qt_stage_tick_failed (stage, tick, "durable-log", "durable log append failed (judgments) at tick %"
                                  PRIu64 ": %s", tick, qt_store_error (self->judgments));
        zstr_free (&topic);
        free (bytes);
    }
    else
    if (rc)
        //  Not persisted, so not published; the stage reports us degraded
        //  until an append succeeds again (a later tick)
        qt_stage_tick_failed (stage, tick, "durable-log", "durable log append failed at tick %"
                              PRIu64 ": %s", tick, qt_store_error (self->store));
    s_logs_measure (self);
    if (rc)
        return 0;
    if (answers && qt_stage_publish_kept (stage, S_JUDGMENT_TOPIC, QUINTET__PAYLOAD_TYPE__JUDGMENT_BATCH,
                                          tick, &judged.base))
        return -1;
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
    .state_for = "its durable logs",
    .summary = "Erin: validates the world's sensor readings and the raters' judgments, persists them "
               "durably, signs and publishes them.",
    .create = s_collector_create,
    .destroy = s_collector_destroy,
    .validate = s_collector_validate,
    .process = s_collector_process,
    .details = s_collector_details,
};
