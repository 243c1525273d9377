/*  qt_wire: protobuf <-> struct conversions. */
#include "qt_wire.h"

int
qt_wire_readings_get (const Quintet__Readings *wire, qt_readings_t *readings)
{
    memset (readings, 0, sizeof *readings);
    if (wire->camera.len > QT_ENV_MAX_CELLS || wire->n_moisture > QT_ENV_MAX_VARS)
        return -1;
    readings->position = wire->position;
    readings->camera_len = (uint32_t) wire->camera.len;
    memcpy (readings->camera, wire->camera.data, wire->camera.len);
    readings->moisture_count = (uint32_t) wire->n_moisture;
    for (size_t k = 0; k < wire->n_moisture; k++) {
        if (wire->moisture [k] > 1)
            return -1;
        readings->moisture [k] = (uint8_t) wire->moisture [k];
    }
    readings->observed_reward = wire->observed_reward;
    return 0;
}

void
qt_wire_readings_put (const qt_readings_t *readings, uint32_t *moisture, Quintet__Readings *wire)
{
    quintet__readings__init (wire);
    wire->position = readings->position;
    wire->camera.data = (uint8_t *) readings->camera;
    wire->camera.len = readings->camera_len;
    for (uint32_t k = 0; k < readings->moisture_count; k++)
        moisture [k] = readings->moisture [k];
    wire->n_moisture = readings->moisture_count;
    wire->moisture = moisture;
    wire->observed_reward = readings->observed_reward;
}

int
qt_wire_belief_get (const Quintet__Belief *wire, wm_belief_t *belief)
{
    memset (belief, 0, sizeof *belief);
    if (wire->n_marginals > QT_ENV_MAX_VARS || wire->n_samples > WM_MAX_SAMPLES
    ||  wire->n_reliability > QT_ENV_MAX_SENSORS || wire->n_honest != wire->n_reliability)
        return -1;
    belief->position = wire->position;
    belief->n_vars = (uint32_t) wire->n_marginals;
    memcpy (belief->marginal, wire->marginals, wire->n_marginals * sizeof (double));
    belief->n_samples = (uint32_t) wire->n_samples;
    for (size_t s = 0; s < wire->n_samples; s++) {
        const Quintet__StateSample *sample = wire->samples [s];
        if (sample->n_values != wire->n_marginals)
            return -1;
        for (size_t v = 0; v < sample->n_values; v++) {
            if (sample->values [v] < 0 || sample->values [v] > 1)
                return -1;
            belief->sample_value [s][v] = (uint8_t) sample->values [v];
        }
        belief->sample_weight [s] = sample->weight;
    }
    belief->entropy = wire->entropy;
    belief->n_sensors = (uint32_t) wire->n_reliability;
    memcpy (belief->reliability, wire->reliability, wire->n_reliability * sizeof (double));
    memcpy (belief->honest, wire->honest, wire->n_honest * sizeof (double));
    belief->data_reliability = wire->data_reliability;
    return 0;
}

void
qt_wire_belief_put (const wm_belief_t *belief, Quintet__Belief *wire)
{
    quintet__belief__init (wire);
    wire->position = belief->position;
    wire->n_marginals = belief->n_vars;
    wire->marginals = (double *) belief->marginal;
    wire->n_samples = belief->n_samples;
    wire->samples = (Quintet__StateSample **) zmalloc (sizeof (Quintet__StateSample *) * (belief->n_samples + 1));
    for (uint32_t s = 0; s < belief->n_samples; s++) {
        Quintet__StateSample *sample = (Quintet__StateSample *) zmalloc (sizeof (Quintet__StateSample));
        quintet__state_sample__init (sample);
        sample->n_values = belief->n_vars;
        sample->values = (int32_t *) zmalloc (sizeof (int32_t) * (belief->n_vars + 1));
        for (uint32_t v = 0; v < belief->n_vars; v++)
            sample->values [v] = belief->sample_value [s][v];
        sample->weight = belief->sample_weight [s];
        wire->samples [s] = sample;
    }
    wire->entropy = belief->entropy;
    wire->n_reliability = belief->n_sensors;
    wire->reliability = (double *) belief->reliability;
    wire->n_honest = belief->n_sensors;
    wire->honest = (double *) belief->honest;
    wire->data_reliability = belief->data_reliability;
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

int
qt_wire_clock_majority (const qt_wire_clock_t *clocks, const bool *present, size_t n,
                        qt_wire_clock_t *out)
{
    size_t best = n, best_votes = 0;
    for (size_t i = 0; i < n; i++) {
        if (!present [i])
            continue;
        size_t votes = 0;
        for (size_t j = 0; j < n; j++)
            votes += present [j] && clocks [j].episode == clocks [i].episode
                  && clocks [j].step == clocks [i].step && clocks [j].done == clocks [i].done;
        if (votes > best_votes) {
            best_votes = votes;
            best = i;
        }
    }
    if (best == n)
        return -1;
    *out = clocks [best];
    return 0;
}

//  A uint32 or bool field of a message, by name, through protobuf-c's
//  reflection: every batch names its clock fields the same way
static bool
s_field (const ProtobufCMessage *message, const char *name, uint32_t *value)
{
    const ProtobufCFieldDescriptor *field =
        protobuf_c_message_descriptor_get_field_by_name (message->descriptor, name);
    if (!field)
        return false;
    const char *base = (const char *) message + field->offset;
    if (field->type == PROTOBUF_C_TYPE_UINT32)
        *value = *(const uint32_t *) base;
    else
    if (field->type == PROTOBUF_C_TYPE_BOOL)
        *value = *(const protobuf_c_boolean *) base ? 1 : 0;
    else
        return false;
    return true;
}

int
qt_wire_gather (qt_message_t **slots, uint32_t replicas, const ProtobufCMessage **payloads,
                qt_wire_clock_t *clock)
{
    qt_wire_clock_t clocks [QT_QUORUM_MAX_REPLICAS];
    bool present [QT_QUORUM_MAX_REPLICAS] = { false };
    int count = 0;
    for (uint32_t r = 0; r < replicas && r < QT_QUORUM_MAX_REPLICAS; r++) {
        payloads [r] = slots [r] ? slots [r]->payload : NULL;
        uint32_t episode = 0, step = 0, done = 0;
        if (payloads [r] && s_field (payloads [r], "episode", &episode)
        &&  s_field (payloads [r], "step", &step) && s_field (payloads [r], "done", &done)) {
            clocks [r] = (qt_wire_clock_t) { episode, step, done != 0 };
            present [r] = true;
            count++;
        }
    }
    if (qt_wire_clock_majority (clocks, present, replicas, clock))
        return -1;
    return count;
}

int
qt_wire_declare_env (qt_stage_t *stage, qt_config_t *config, qt_env_decl_t *decl, char **error)
{
    qt_env_params_t params;
    if (qt_env_params_default (qt_stage_env (stage), &params)
    ||  qt_env_declare (qt_stage_env (stage), &params, decl)) {
        *error = zsys_sprintf ("%s: quintet/env: unknown environment \"%s\"",
                               qt_config_path (config), qt_stage_env (stage));
        return -1;
    }
    return 0;
}
