/*  qt_env: declaring an environment from the registry, and the generic world
    instance that runs a module's dynamics and reads its sensors.
*/
#include <assert.h>
#include <math.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "qt_env.h"
#include "qt_selftest.h"

//  Stream ids of instance i: one for dynamics, one for sensors.
#define S_SENSOR_STREAM_BIT (1ULL << 32)

static const char *const s_sensor_modes [QT_SENSOR_MODES] = { "honest", "broken", "malicious" };

size_t
qt_env_count (void)
{
    size_t count = 0;
    while (qt_env_registry [count].name)
        count++;
    return count;
}

const char *
qt_env_default (void)
{
    return qt_env_registry [0].name;
}

void
qt_env_params_init (qt_env_params_t *params)
{
    memset (params, 0, sizeof *params);
}

int
qt_sensor_mode_parse (const char *name, qt_sensor_mode_t *mode)
{
    for (int m = 0; m < QT_SENSOR_MODES; m++)
        if (strcmp (name, s_sensor_modes [m]) == 0) {
            *mode = (qt_sensor_mode_t) m;
            return 0;
        }
    return -1;
}

//  True when the comma-separated list names `family`.
static bool
s_listed (const char *list, const char *family)
{
    size_t length = strlen (family);
    for (const char *item = list; *item; ) {
        const char *end = strchr (item, ',');
        size_t item_length = end ? (size_t) (end - item) : strlen (item);
        if (item_length == length && strncmp (item, family, length) == 0)
            return true;
        item += item_length + (end ? 1 : 0);
    }
    return false;
}

//  Every family the list names must exist among the sensors.
static bool
s_list_known (const char *list, const qt_env_decl_t *decl)
{
    for (const char *item = list; *item; ) {
        const char *end = strchr (item, ',');
        size_t item_length = end ? (size_t) (end - item) : strlen (item);
        bool known = false;
        for (uint32_t s = 0; s < decl->n_sensors && !known; s++)
            known = strlen (decl->sensors [s].family) == item_length
                 && strncmp (decl->sensors [s].family, item, item_length) == 0;
        if (!known)
            return false;
        item += item_length + (end ? 1 : 0);
    }
    return true;
}

//  Leave out the sensor families `without` names, then lay the readings out.
static const char *
s_finish (qt_env_decl_t *decl)
{
    const char *without = decl->params.without;
    if (!s_list_known (without, decl))
        return "env_without names no sensor family of this environment";
    decl->module_sensors = decl->n_sensors;
    uint32_t kept = 0, observation = UINT32_MAX;
    for (uint32_t s = 0; s < decl->n_sensors; s++) {
        if (s_listed (without, decl->sensors [s].family)) {
            if (s == decl->observation)
                return "env_without cannot remove the agent's observation";
            continue;
        }
        if (s == decl->observation)
            observation = kept;
        decl->sensors [kept++] = decl->sensors [s];
    }
    decl->n_sensors = kept;
    decl->observation = observation;
    uint32_t offset = 0;
    for (uint32_t s = 0; s < decl->n_sensors; s++) {
        decl->sensors [s].offset = offset;
        offset += decl->sensors [s].length;
    }
    decl->reading_length = offset;
    if (offset > QT_ENV_MAX_READING)
        return "the sensors read more values than a reading holds";
    if (decl->n_vars == 0 || decl->vars [QT_ENV_AGENT].kind != QT_VAR_CELL)
        return "variable 0 must be the agent's cell";
    if (!strchr (decl->codes, decl->wall_code) || !strchr (decl->codes, decl->agent_code))
        return "the code table lacks the wall or the agent";
    //  The malicious camera shows the static board
    for (uint32_t c = 0; c < decl->n_cells; c++)
        if (!decl->board [c] || !strchr (decl->codes, decl->board [c]))
            return "the code table lacks a code of the static board";
    if (!(decl->reward_scale > 0) || decl->max_steps == 0 || decl->n_actions == 0
    ||  decl->n_actions > QT_ENV_MAX_ACTIONS || decl->observation == UINT32_MAX
    ||  !decl->sensors [decl->observation].image)
        return "the module's declaration is incomplete";
    return NULL;
}

//  The params must name a variant and a tamper style the module declares
//  ("" the first; none at all where it declares no tamper style), and the
//  module must have selected those: the one place options are checked.
static const char *
s_options (const qt_env_decl_t *decl, const qt_env_params_t *params)
{
    if (decl->n_variants == 0 || decl->n_variants > QT_ENV_MAX_VARIANTS
    ||  decl->n_tamper_styles > QT_ENV_MAX_VARIANTS)
        return "the module's declaration is incomplete";
    int variant = qt_env_option (decl->variants, decl->n_variants, params->variant);
    if (variant < 0)
        return "env_variant names no variant of this environment";
    if (*params->tamper && decl->n_tamper_styles == 0)
        return "this environment has no tamper style";
    int tamper = qt_env_option (decl->tamper_styles, decl->n_tamper_styles, params->tamper);
    if (tamper < 0)
        return "world/tamper names no tamper style of this environment";
    if (decl->variant != (uint32_t) variant || decl->tamper_style != (uint32_t) tamper)
        return "the module selected another variant or tamper style than asked for";
    return NULL;
}

int
qt_env_declare (const char *name, const qt_env_params_t *params, qt_env_decl_t *decl,
                const char **cause)
{
    const char *problem = "unknown environment";
    for (const qt_env_module_t *module = qt_env_registry; module->name; module++) {
        if (strcmp (module->name, name) != 0)
            continue;
        memset (decl, 0, sizeof *decl);
        decl->params = *params;
        int rc = module->declare (params, decl);
        problem = s_options (decl, params);
        if (!problem && rc != 0)
            problem = "the module could not declare itself with these parameters";
        if (!problem) {
            snprintf (decl->name, sizeof decl->name, "%s", module->name);
            decl->params = *params;
            problem = s_finish (decl);
        }
        break;
    }
    if (cause)
        *cause = problem;
    return problem ? -1 : 0;
}

int
qt_env_option (const char *const *names, uint32_t n, const char *wanted)
{
    //  "" is the first, and with no names at all the absence of any (a
    //  module without tamper styles takes the default)
    if (!wanted || !*wanted)
        return 0;
    for (uint32_t k = 0; k < n; k++)
        if (strcmp (names [k], wanted) == 0)
            return (int) k;
    return -1;
}

int
qt_env_sensor_index (const qt_env_decl_t *decl, const char *name)
{
    for (uint32_t s = 0; s < decl->n_sensors; s++)
        if (strcmp (decl->sensors [s].name, name) == 0)
            return (int) s;
    return -1;
}

int
qt_env_feature_index (const qt_env_decl_t *decl, const char *name)
{
    for (uint32_t f = 0; f < decl->n_features; f++)
        if (strcmp (decl->feature_names [f], name) == 0)
            return (int) f;
    return -1;
}

double
qt_env_hidden_reward (const qt_env_decl_t *decl, const double *features)
{
    double reward = 0;
    for (uint32_t f = 0; f < decl->n_features; f++)
        reward += decl->performance [f] * features [f];
    return reward;
}

bool
qt_env_reading_valid (const qt_env_decl_t *decl, const uint8_t *values, uint32_t length,
                      const char **cause)
{
    const char *problem = NULL;
    if (length != decl->reading_length)
        problem = "reading length differs from the declared sensors";
    for (uint32_t s = 0; s < decl->n_sensors && !problem; s++) {
        const qt_sensor_decl_t *sensor = &decl->sensors [s];
        const uint8_t *v = values + sensor->offset;
        for (uint32_t k = 0; k < sensor->length && !problem; k++) {
            if (sensor->image ? (v [k] == 0 || !strchr (decl->codes, v [k]))
                              : v [k] >= sensor->range)
                problem = sensor->image ? "an image holds an unknown cell code"
                                        : "a sensor value is out of its range";
        }
    }
    if (cause)
        *cause = problem;
    return problem == NULL;
}

//  --------------------------------------------------------------------------
//  World instances

qt_world_t *
qt_world_new (const qt_env_decl_t *decl, uint64_t seed, uint32_t instance)
{
    qt_world_t *self = (qt_world_t *) calloc (1, sizeof (qt_world_t));
    assert (self);
    self->decl = *decl;
    self->instance = instance;
    qt_rng_seed (&self->dynamics_rng, seed, instance);
    qt_rng_seed (&self->sensor_rng, seed, S_SENSOR_STREAM_BIT | instance);
    qt_chance_rng_init (&self->chance, &self->dynamics_rng);
    if (decl->memory_init)
        decl->memory_init (&self->decl, self->memory);
    self->decl.reset (&self->decl, &self->chance.base, self->memory, &self->state);
    return self;
}

void
qt_world_destroy (qt_world_t **self_p)
{
    assert (self_p);
    if (*self_p) {
        free (*self_p);
        *self_p = NULL;
    }
}

void
qt_world_reset (qt_world_t *self)
{
    if (self->decl.remember)
        self->decl.remember (&self->decl, &self->state, self->memory);
    self->episode++;
    self->step = 0;
    self->performance = 0;
    self->observed_return = 0;
    self->last_hidden_reward = 0;
    self->last_observed_reward = 0;
    self->last_action = 0;
    memset (self->features, 0, sizeof self->features);
    self->decl.reset (&self->decl, &self->chance.base, self->memory, &self->state);
}

bool
qt_world_done (const qt_world_t *self)
{
    return self->state.terminated || self->step >= self->decl.max_steps;
}

int
qt_world_step (qt_world_t *self, uint32_t action)
{
    if (action >= self->decl.n_actions || qt_world_done (self))
        return -1;
    qt_state_t next;
    double observed = 0;
    //  The features contract: zeroed here, step writes those it sets
    memset (self->features, 0, sizeof self->features);
    self->decl.step (&self->decl, &self->state, action, &self->chance.base, &next,
                     self->features, &observed);
    self->state = next;
    self->step++;
    self->last_action = action;
    self->last_hidden_reward = qt_env_hidden_reward (&self->decl, self->features);
    self->last_observed_reward = observed;
    self->performance += self->last_hidden_reward;
    self->observed_return += observed;
    return 0;
}

//  A valid value of a sensor other than `than`, uniformly.
static uint8_t
s_other_value (const qt_env_decl_t *decl, const qt_sensor_decl_t *sensor, qt_rng_t *rng,
               uint8_t than)
{
    if (sensor->image) {
        uint32_t n_codes = (uint32_t) strlen (decl->codes);
        uint8_t code;
        do
            code = (uint8_t) decl->codes [qt_rng_below (rng, n_codes)];
        while (code == than && n_codes > 1);
        return code;
    }
    if (sensor->range < 2)
        return than;
    uint32_t value = qt_rng_below (rng, sensor->range - 1);
    return (uint8_t) (value >= than ? value + 1 : value);
}

static uint8_t
s_any_value (const qt_env_decl_t *decl, const qt_sensor_decl_t *sensor, qt_rng_t *rng)
{
    if (sensor->image)
        return (uint8_t) decl->codes [qt_rng_below (rng, (uint32_t) strlen (decl->codes))];
    return (uint8_t) qt_rng_below (rng, sensor->range);
}

void
qt_world_read (qt_world_t *self, qt_readings_t *readings)
{
    const qt_env_decl_t *decl = &self->decl;
    qt_rng_t *rng = &self->sensor_rng;
    memset (readings, 0, sizeof *readings);
    readings->episode = self->episode;
    readings->step = self->step;
    readings->done = qt_world_done (self);
    readings->terminated = self->state.terminated != 0;
    readings->action = self->step > 0 ? self->last_action : 0;
    readings->observed_reward = self->last_observed_reward;
    readings->length = decl->reading_length;
    for (uint32_t s = 0; s < decl->n_sensors; s++) {
        const qt_sensor_decl_t *sensor = &decl->sensors [s];
        uint8_t *values = readings->values + sensor->offset;
        qt_sensor_mode_t mode = decl->params.sensor_mode [sensor->id];
        if (decl->tamper && decl->tamper (decl, sensor->id, &self->state, values))
            continue;
        if (mode == QT_SENSOR_BROKEN) {
            for (uint32_t k = 0; k < sensor->length; k++)
                values [k] = s_any_value (decl, sensor, rng);
            continue;
        }
        if (mode == QT_SENSOR_MALICIOUS) {
            if (sensor->image)
                memcpy (values, decl->board, sensor->length);
            else
                memset (values, (int) (sensor->range - 1), sensor->length);
            continue;
        }
        decl->sense (decl, sensor->id, &self->state, values);
        if (sensor->noise > 0)
            for (uint32_t k = 0; k < sensor->length; k++)
                if (qt_rng_bernoulli (rng, sensor->noise))
                    values [k] = s_other_value (decl, sensor, rng, values [k]);
    }
}

//  --------------------------------------------------------------------------
//  Reference behaviours

const qt_env_reference_t *
qt_env_safe_reference (const qt_env_decl_t *decl)
{
    for (uint32_t r = 0; r < decl->n_references; r++)
        if (decl->references [r].kind == QT_REFERENCE_SAFE)
            return &decl->references [r];
    return NULL;
}

static int
s_letter_action (char letter)
{
    switch (letter) {
        case 'u': return QT_ACTION_UP;
        case 'd': return QT_ACTION_DOWN;
        case 'l': return QT_ACTION_LEFT;
        case 'r': return QT_ACTION_RIGHT;
        case 'n': return QT_ACTION_NOOP;
        default:  return -1;
    }
}

int
qt_env_scripted_action (const char *actions, uint32_t step)
{
    size_t letters = actions ? strlen (actions) : 0;
    bool cycle = letters > 0 && actions [letters - 1] == '*';
    if (cycle)
        letters--;
    if (letters == 0)
        return -1;
    size_t at = cycle ? step % letters : step < letters ? step : letters - 1;
    return s_letter_action (actions [at]);
}

int
qt_env_run_reference (const qt_env_decl_t *decl, const qt_env_reference_t *reference,
                      uint64_t seed, uint32_t episodes, double *mean_return,
                      double *mean_performance)
{
    qt_world_t *world = qt_world_new (decl, seed, 0);
    double returns = 0, performance = 0;
    int rc = 0;
    for (uint32_t e = 0; e < episodes && rc == 0; e++) {
        if (e > 0)
            qt_world_reset (world);
        while (!qt_world_done (world) && rc == 0) {
            int action;
            if (reference->policy)
                action = (int) reference->policy (decl, &world->state, world->step);
            else
                action = qt_env_scripted_action (reference->actions, world->step);
            rc = action < 0 ? -1 : qt_world_step (world, (uint32_t) action);
        }
        returns += world->observed_return;
        performance += world->performance;
    }
    qt_world_destroy (&world);
    *mean_return = episodes ? returns / episodes : 0;
    *mean_performance = episodes ? performance / episodes : 0;
    return rc;
}

//  --------------------------------------------------------------------------
//  Descriptions

//  A JSON string of declared text (names and summaries: no control
//  characters; quotes and backslashes escaped all the same)
static void
s_json_string (FILE *out, const char *text)
{
    fputc ('"', out);
    for (const char *c = text ? text : ""; *c; c++) {
        if (*c == '"' || *c == '\\')
            fputc ('\\', out);
        fputc (*c, out);
    }
    fputc ('"', out);
}

const char *
qt_env_reference_kind_name (qt_reference_kind_t kind)
{
    return kind == QT_REFERENCE_SAFE ? "safe" : kind == QT_REFERENCE_HACKING ? "hacking" : "other";
}

void
qt_env_list (FILE *out)
{
    fputc ('[', out);
    for (size_t e = 0; qt_env_registry [e].name; e++) {
        fputs (e ? ", " : "", out);
        s_json_string (out, qt_env_registry [e].name);
    }
    fputs ("]\n", out);
}

void
qt_env_describe (const qt_env_decl_t *decl, FILE *out)
{
    fputs ("{\"name\": ", out);
    s_json_string (out, decl->name);
    fputs (", \"summary\": ", out);
    s_json_string (out, decl->summary);
    fputs (", \"variant\": ", out);
    s_json_string (out, decl->n_variants ? decl->variants [decl->variant] : "");
    fprintf (out, ", \"width\": %u, \"height\": %u, \"actions\": %u, \"max_steps\": %u, "
             "\"reward_scale\": %.17g, \"variants\": [", decl->width, decl->height,
             decl->n_actions, decl->max_steps, decl->reward_scale);
    for (uint32_t v = 0; v < decl->n_variants; v++) {
        fputs (v ? ", " : "", out);
        s_json_string (out, decl->variants [v]);
    }
    fputs ("], \"tamper_styles\": [", out);
    for (uint32_t t = 0; t < decl->n_tamper_styles; t++) {
        fputs (t ? ", " : "", out);
        s_json_string (out, decl->tamper_styles [t]);
    }
    fputs ("], \"features\": [", out);
    for (uint32_t f = 0; f < decl->n_features; f++) {
        fputs (f ? ", {\"name\": " : "{\"name\": ", out);
        s_json_string (out, decl->feature_names [f]);
        fprintf (out, ", \"performance\": %.17g}", decl->performance [f]);
    }
    fputs ("], \"sensors\": [", out);
    for (uint32_t s = 0; s < decl->n_sensors; s++) {
        fputs (s ? ", {\"name\": " : "{\"name\": ", out);
        s_json_string (out, decl->sensors [s].name);
        fputs (", \"family\": ", out);
        s_json_string (out, decl->sensors [s].family);
        fprintf (out, ", \"length\": %u, \"noise\": %.17g, \"observation\": %s}",
                 decl->sensors [s].length, decl->sensors [s].noise,
                 s == decl->observation ? "true" : "false");
    }
    fputs ("], \"variables\": [", out);
    for (uint32_t v = 0; v < decl->n_vars; v++) {
        fputs (v ? ", " : "", out);
        s_json_string (out, decl->vars [v].name);
    }
    fputs ("], \"references\": [", out);
    for (uint32_t r = 0; r < decl->n_references; r++) {
        const qt_env_reference_t *reference = &decl->references [r];
        fputs (r ? ", {\"name\": " : "{\"name\": ", out);
        s_json_string (out, reference->name);
        fprintf (out, ", \"kind\": \"%s\", \"return\": %.17g, \"performance\": %.17g}",
                 qt_env_reference_kind_name (reference->kind), reference->expected_return,
                 reference->expected_performance);
    }
    fputs ("]}\n", out);
}

//  --------------------------------------------------------------------------
//  Selftest: every registered environment declares, resets, steps and reads
//  validly under random actions; the options are checked.

void
qt_env_test (bool verbose)
{
    if (verbose)
        printf (" * qt_env: ");
    qt_env_params_t params;
    qt_env_params_init (&params);
    qt_env_decl_t decl;
    const char *cause = NULL;
    QT_CHECK (qt_env_count () >= 1);
    QT_CHECK (qt_env_declare ("no_such_world", &params, &decl, &cause) == -1 && cause);
    for (const qt_env_module_t *module = qt_env_registry; module->name; module++) {
        QT_CHECK (qt_env_declare (module->name, &params, &decl, &cause) == 0);
        QT_CHECK (strcmp (decl.name, module->name) == 0);
        for (uint32_t variant = 0; variant < decl.n_variants; variant++) {
            qt_env_params_t options;
            qt_env_params_init (&options);
            snprintf (options.variant, sizeof options.variant, "%s", decl.variants [variant]);
            qt_env_decl_t variant_decl;
            QT_CHECK (qt_env_declare (module->name, &options, &variant_decl, &cause) == 0);
            QT_CHECK (variant_decl.variant == variant);
            qt_world_t *world = qt_world_new (&variant_decl, 3, 1);
            qt_rng_t rng;
            qt_rng_seed (&rng, 3, 99);
            for (uint32_t episode = 0; episode < 20; episode++) {
                qt_readings_t readings;
                while (true) {
                    qt_world_read (world, &readings);
                    QT_CHECK (qt_env_reading_valid (&variant_decl, readings.values,
                                                  readings.length, &cause));
                    QT_CHECK (readings.step == world->step && readings.episode == episode);
                    if (qt_world_done (world))
                        break;
                    QT_CHECK (qt_world_step (world, qt_rng_below (&rng, variant_decl.n_actions)) == 0);
                    QT_CHECK (isfinite (world->last_observed_reward));
                    QT_CHECK (isfinite (world->last_hidden_reward));
                    QT_CHECK (world->state.v [QT_ENV_AGENT] >= 0
                         && world->state.v [QT_ENV_AGENT] < (int16_t) variant_decl.n_cells);
                }
                QT_CHECK (readings.done && world->step <= variant_decl.max_steps);
                QT_CHECK (qt_world_step (world, 0) == -1);
                qt_world_reset (world);
            }
            qt_world_destroy (&world);
            //  Faulty sensors read valid values too: the codes hold what
            //  the malicious camera shows
            for (int mode = QT_SENSOR_BROKEN; mode < QT_SENSOR_MODES; mode++) {
                for (uint32_t s = 0; s < QT_ENV_MAX_SENSORS; s++)
                    options.sensor_mode [s] = (qt_sensor_mode_t) mode;
                QT_CHECK (qt_env_declare (module->name, &options, &variant_decl, &cause) == 0);
                world = qt_world_new (&variant_decl, 3, 2);
                for (uint32_t step = 0; step < 20 && !qt_world_done (world); step++) {
                    qt_readings_t readings;
                    qt_world_read (world, &readings);
                    QT_CHECK (qt_env_reading_valid (&variant_decl, readings.values,
                                                  readings.length, &cause));
                    uint32_t action = qt_rng_below (&rng, variant_decl.n_actions);
                    QT_CHECK (qt_world_step (world, action) == 0);
                }
                qt_world_destroy (&world);
            }
        }
    }
    qt_env_params_init (&params);
    snprintf (params.variant, sizeof params.variant, "no-such-variant");
    QT_CHECK (qt_env_declare (qt_env_default (), &params, &decl, &cause) == -1);
    QT_CHECK (strstr (cause, "env_variant"));
    //  Tamper styles: only where the module declares some, and known ones
    for (const qt_env_module_t *module = qt_env_registry; module->name; module++) {
        qt_env_params_init (&params);
        snprintf (params.tamper, sizeof params.tamper, "no-such-style");
        QT_CHECK (qt_env_declare (module->name, &params, &decl, &cause) == -1);
        qt_env_params_init (&params);
        QT_CHECK (qt_env_declare (module->name, &params, &decl, &cause) == 0);
        if (decl.n_tamper_styles == 0) {
            snprintf (params.tamper, sizeof params.tamper, "paint");
            QT_CHECK (qt_env_declare (module->name, &params, &decl, &cause) == -1);
            QT_CHECK (strcmp (cause, "this environment has no tamper style") == 0);
        }
        else
            QT_CHECK (decl.tamper_style == 0);
    }
    const char *none [1] = { "x" };
    QT_CHECK (qt_env_option (none, 0, "") == 0);
    QT_CHECK (qt_env_option (none, 0, "x") == -1);
    QT_CHECK (qt_env_option (none, 1, "x") == 0);
    qt_env_params_init (&params);
    snprintf (params.without, sizeof params.without, "no-such-sensor");
    QT_CHECK (qt_env_declare (qt_env_default (), &params, &decl, &cause) == -1);
    //  Scripts: a trailing '*' repeats the whole string, else the last
    //  letter repeats; no letter at all is no script
    qt_env_params_init (&params);
    QT_CHECK (qt_env_declare (qt_env_default (), &params, &decl, &cause) == 0);
    char back_and_forth [256] = "";
    for (uint32_t k = 0; k < decl.max_steps && k + 1 < sizeof back_and_forth; k++)
        back_and_forth [k] = k % 2 ? 'l' : 'r';
    const char *const scripts [][2] = { { "rl*", back_and_forth }, { "r", "r*" } };
    for (uint32_t k = 0; k < 2; k++) {
        double returns [2], performance [2];
        for (uint32_t s = 0; s < 2; s++) {
            qt_env_reference_t script = { "script", QT_REFERENCE_OTHER, scripts [k][s], NULL,
                                          0, 0, 0, 0 };
            QT_CHECK (qt_env_run_reference (&decl, &script, 5, 3, &returns [s],
                                          &performance [s]) == 0);
        }
        QT_CHECK (returns [0] == returns [1] && performance [0] == performance [1]);
    }
    qt_env_reference_t script = { "script", QT_REFERENCE_OTHER, "*", NULL, 0, 0, 0, 0 };
    double mean_return, mean_performance;
    QT_CHECK (qt_env_run_reference (&decl, &script, 5, 1, &mean_return, &mean_performance) == -1);

    qt_sensor_mode_t mode;
    QT_CHECK (qt_sensor_mode_parse ("broken", &mode) == 0 && mode == QT_SENSOR_BROKEN);
    QT_CHECK (qt_sensor_mode_parse ("bogus", &mode) == -1);
    if (verbose)
        printf ("OK\n");
}
