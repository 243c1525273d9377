/*  qt_wire: protobuf <-> struct conversions and the per-instance clock. */
#include "qt_wire.h"

void
qt_wire_clock_get (const Quintet__InstanceClock *wire, qt_wire_clock_t *clock)
{
    memset (clock, 0, sizeof *clock);
    if (!wire)
        return;
    clock->episode = wire->episode;
    clock->step = wire->step;
    clock->done = wire->done;
    clock->terminated = wire->terminated;
    clock->idle = wire->idle;
}

void
qt_wire_clock_put (const qt_wire_clock_t *clock, Quintet__InstanceClock *wire)
{
    quintet__instance_clock__init (wire);
    wire->episode = clock->episode;
    wire->step = clock->step;
    wire->done = clock->done;
    wire->terminated = clock->terminated;
    wire->idle = clock->idle;
}

int
qt_wire_readings_get (const Quintet__Readings *wire, qt_readings_t *readings)
{
    memset (readings, 0, sizeof *readings);
    if (!wire->clock || wire->values.len > QT_ENV_MAX_READING)
        return -1;
    readings->episode = wire->clock->episode;
    readings->step = wire->clock->step;
    readings->done = wire->clock->done;
    readings->terminated = wire->clock->terminated;
    readings->action = wire->action;
    readings->observed_reward = wire->observed_reward;
    readings->length = (uint32_t) wire->values.len;
    if (wire->values.len)
        memcpy (readings->values, wire->values.data, wire->values.len);
    return 0;
}

void
qt_wire_readings_put (const qt_readings_t *readings, Quintet__InstanceClock *clock,
                      Quintet__Readings *wire)
{
    quintet__readings__init (wire);
    quintet__instance_clock__init (clock);
    clock->episode = readings->episode;
    clock->step = readings->step;
    clock->done = readings->done;
    clock->terminated = readings->terminated;
    wire->clock = clock;
    wire->action = readings->action;
    wire->observed_reward = readings->observed_reward;
    wire->values.data = (uint8_t *) readings->values;
    wire->values.len = readings->length;
}

int
qt_wire_belief_get (const Quintet__Belief *wire, wm_belief_t *belief)
{
    memset (belief, 0, sizeof *belief);
    if (wire->n_features > QT_ENV_MAX_FEATURES || wire->n_samples > WM_MAX_SAMPLES
    ||  wire->n_samples == 0 || wire->n_reliability > QT_ENV_MAX_SENSORS
    ||  wire->n_honest != wire->n_reliability)
        return -1;
    belief->n_features = (uint32_t) wire->n_features;
    if (wire->n_features)
        memcpy (belief->features, wire->features, wire->n_features * sizeof (double));
    belief->n_samples = (uint32_t) wire->n_samples;
    belief->n_vars = (uint32_t) wire->samples [0]->n_values;
    for (size_t s = 0; s < wire->n_samples; s++) {
        const Quintet__StateSample *sample = wire->samples [s];
        if (sample->n_values != belief->n_vars || sample->n_values > QT_ENV_MAX_VARS
        ||  sample->n_features != wire->n_features)
            return -1;
        for (size_t v = 0; v < sample->n_values; v++) {
            if (sample->values [v] < INT16_MIN || sample->values [v] > INT16_MAX)
                return -1;
            belief->samples [s].values [v] = (int16_t) sample->values [v];
        }
        if (sample->n_features)
            memcpy (belief->samples [s].features, sample->features,
                    sample->n_features * sizeof (double));
        belief->samples [s].weight = sample->weight;
    }
    belief->entropy = wire->entropy;
    belief->n_sensors = (uint32_t) wire->n_reliability;
    if (wire->n_reliability) {
        memcpy (belief->reliability, wire->reliability, wire->n_reliability * sizeof (double));
        memcpy (belief->honest, wire->honest, wire->n_honest * sizeof (double));
    }
    belief->data_reliability = wire->data_reliability;
    belief->effective_particles = wire->effective_particles;
    return 0;
}

void
qt_wire_belief_put (const wm_belief_t *belief, Quintet__InstanceClock *clock,
                    Quintet__Belief *wire)
{
    quintet__belief__init (wire);
    wire->clock = clock;
    wire->n_features = belief->n_features;
    wire->features = (double *) belief->features;
    wire->n_samples = belief->n_samples;
    wire->samples = (Quintet__StateSample **) zmalloc (sizeof (Quintet__StateSample *) * (belief->n_samples + 1));
    for (uint32_t s = 0; s < belief->n_samples; s++) {
        Quintet__StateSample *sample = (Quintet__StateSample *) zmalloc (sizeof (Quintet__StateSample));
        quintet__state_sample__init (sample);
        sample->n_values = belief->n_vars;
        sample->values = (int32_t *) zmalloc (sizeof (int32_t) * (belief->n_vars + 1));
        for (uint32_t v = 0; v < belief->n_vars; v++)
            sample->values [v] = belief->samples [s].values [v];
        sample->n_features = belief->n_features;
        sample->features = (double *) belief->samples [s].features;
        sample->weight = belief->samples [s].weight;
        wire->samples [s] = sample;
    }
    wire->entropy = belief->entropy;
    wire->n_reliability = belief->n_sensors;
    wire->reliability = (double *) belief->reliability;
    wire->n_honest = belief->n_sensors;
    wire->honest = (double *) belief->honest;
    wire->data_reliability = belief->data_reliability;
    wire->effective_particles = belief->effective_particles;
}

void
qt_wire_belief_free (Quintet__Belief *wire)
{
    for (size_t s = 0; s < wire->n_samples; s++) {
        free (wire->samples [s]->values);
        free (wire->samples [s]);
    }
    free (wire->samples);
    wire->samples = NULL;
    wire->n_samples = 0;
}

static bool
s_clock_equal (const Quintet__InstanceClock *a, const Quintet__InstanceClock *b)
{
    return a && b && a->episode == b->episode && a->step == b->step && a->done == b->done
        && a->terminated == b->terminated && a->idle == b->idle;
}

//  Instance i's clock of a batch payload, through protobuf-c's reflection:
//  every batch names its instances and their clocks the same way
static const Quintet__InstanceClock *
s_instance_clock (const ProtobufCMessage *batch, size_t i)
{
    const ProtobufCFieldDescriptor *field =
        protobuf_c_message_descriptor_get_field_by_name (batch->descriptor, "instances");
    if (!field || field->type != PROTOBUF_C_TYPE_MESSAGE || field->label != PROTOBUF_C_LABEL_REPEATED)
        return NULL;
    size_t count = *(const size_t *) ((const char *) batch + field->quantifier_offset);
    if (i >= count)
        return NULL;
    ProtobufCMessage *const *items =
        *(ProtobufCMessage *const *const *) ((const char *) batch + field->offset);
    const ProtobufCMessage *instance = items ? items [i] : NULL;
    if (!instance)
        return NULL;
    const ProtobufCFieldDescriptor *clock =
        protobuf_c_message_descriptor_get_field_by_name (instance->descriptor, "clock");
    if (!clock || clock->type != PROTOBUF_C_TYPE_MESSAGE)
        return NULL;
    return *(Quintet__InstanceClock *const *) ((const char *) instance + clock->offset);
}

int
qt_wire_gather (qt_message_t **slots, uint32_t replicas, size_t batch,
                const ProtobufCMessage **payloads, qt_wire_clock_t *clocks)
{
    int count = 0;
    for (uint32_t r = 0; r < replicas && r < QT_QUORUM_MAX_REPLICAS; r++) {
        payloads [r] = slots [r] ? slots [r]->payload : NULL;
        count += payloads [r] != NULL;
    }
    if (count == 0)
        return -1;
    for (size_t i = 0; i < batch; i++) {
        const Quintet__InstanceClock *best = NULL;
        size_t best_votes = 0;
        for (uint32_t r = 0; r < replicas; r++) {
            const Quintet__InstanceClock *mine = payloads [r] ? s_instance_clock (payloads [r], i) : NULL;
            if (!mine)
                continue;
            size_t votes = 0;
            for (uint32_t o = 0; o < replicas; o++)
                votes += payloads [o] && s_clock_equal (mine, s_instance_clock (payloads [o], i));
            if (votes > best_votes) {
                best_votes = votes;
                best = mine;
            }
        }
        qt_wire_clock_get (best, &clocks [i]);
    }
    return count;
}

int
qt_wire_declare_env (qt_stage_t *stage, qt_config_t *config, const qt_env_params_t *params,
                     qt_env_decl_t *decl, char **error)
{
    qt_env_params_t options;
    if (params)
        options = *params;
    else
        qt_env_params_init (&options);
    snprintf (options.variant, sizeof options.variant, "%s", qt_stage_env_variant (stage));
    snprintf (options.without, sizeof options.without, "%s", qt_stage_env_without (stage));
    const char *name = *qt_stage_env (stage) ? qt_stage_env (stage) : qt_env_default ();
    const char *cause = NULL;
    if (qt_env_declare (name, &options, decl, &cause)) {
        *error = zsys_sprintf ("%s: cannot declare the environment (quintet/env = \"%s\", "
                               "env_variant = \"%s\", env_without = \"%s\"%s%s%s): %s",
                               qt_config_path (config), name, options.variant, options.without,
                               *options.tamper ? ", world/tamper = \"" : "", options.tamper,
                               *options.tamper ? "\"" : "", cause);
        return -1;
    }
    return 0;
}

void
qt_wire_test (bool verbose)
{
    if (verbose)
        printf (" * qt_wire: ");
    //  Readings round-trip, with their clock
    qt_readings_t readings;
    memset (&readings, 0, sizeof readings);
    readings.episode = 3;
    readings.step = 7;
    readings.done = readings.terminated = true;
    readings.action = 2;
    readings.observed_reward = 0.5;
    readings.length = 4;
    memcpy (readings.values, "#A T", 4);
    Quintet__InstanceClock clock;
    Quintet__Readings wire;
    qt_wire_readings_put (&readings, &clock, &wire);
    qt_readings_t back;
    assert (qt_wire_readings_get (&wire, &back) == 0);
    assert (memcmp (&back, &readings, sizeof back) == 0);
    wire.clock = NULL;
    assert (qt_wire_readings_get (&wire, &back) == -1);
    wire.clock = &clock;
    //  Empty values are fine (memcpy from NULL never happens)
    wire.values.data = NULL;
    wire.values.len = 0;
    assert (qt_wire_readings_get (&wire, &back) == 0 && back.length == 0);

    //  The majority clock of three observation batches, per instance
    Quintet__Readings *instances [3][2];
    Quintet__Readings cells [3][2];
    Quintet__InstanceClock clocks [3][2];
    Quintet__ObservationBatch batches [3];
    qt_message_t messages [3];
    qt_message_t *slots [3];
    for (int r = 0; r < 3; r++) {
        quintet__observation_batch__init (&batches [r]);
        batches [r].batch = 2;
        batches [r].n_instances = 2;
        batches [r].instances = instances [r];
        for (int i = 0; i < 2; i++) {
            quintet__readings__init (&cells [r][i]);
            quintet__instance_clock__init (&clocks [r][i]);
            clocks [r][i].episode = (uint32_t) i;
            clocks [r][i].step = r == 1 ? 99 : 5;      //  replica 2 lies
            cells [r][i].clock = &clocks [r][i];
            instances [r][i] = &cells [r][i];
        }
        memset (&messages [r], 0, sizeof messages [r]);
        messages [r].payload = &batches [r].base;
        slots [r] = &messages [r];
    }
    const ProtobufCMessage *payloads [3];
    qt_wire_clock_t majority [2];
    assert (qt_wire_gather (slots, 3, 2, payloads, majority) == 3);
    assert (majority [0].step == 5 && majority [1].step == 5 && majority [1].episode == 1);
    slots [0] = slots [1] = slots [2] = NULL;
    assert (qt_wire_gather (slots, 3, 2, payloads, majority) == -1);
    if (verbose)
        printf ("OK\n");
}
