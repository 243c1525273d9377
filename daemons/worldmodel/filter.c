/*  wm_filter: sequential Monte Carlo over the declared state with steered
    proposals and per-sensor tamper theories, and the robust combination of
    collector readings and of world-model beliefs. See filter.h.
*/
#include <assert.h>
#include <math.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sodium.h>

#include "filter.h"
#include "qt_selftest.h"

//  Defaults. 64 particles keep the posterior over 13 independent flags
//  within a few percent per marginal; reliabilities move within a few
//  episodes (100 ticks each) yet one odd tick cannot swing them.
#define WM_PARTICLES            64
#define WM_DEFAULT_SAMPLES      8
#define WM_STEER_DRAWS          32
#define WM_RELIABILITY_PRIOR    0.9
#define WM_RELIABILITY_MIN      0.02
#define WM_RELIABILITY_MAX      0.99
#define WM_LEARNING_WARMUP      20.0
#define WM_LEARNING_RATE_MIN    0.005
#define WM_NOISE_FLOOR          1e-3
#define WM_GARBAGE              0.05
#define WM_STUCK                0.5
#define WM_PLAUSIBLE_DRAWS      2000

//  Resample when the effective number of particles falls below this share.
#define WM_RESAMPLE_SHARE       0.5
//  Smoothing of the forgery model's value counts (a Jeffreys prior).
#define WM_FORGERY_PSEUDOCOUNT  0.5
//  Stream ids: instance i's generator, and the forgery model's draws;
//  distinct from the world's streams of the same seed.
#define WM_INSTANCE_STREAM      (2ULL << 32)
#define WM_FORGERY_STREAM       (5ULL << 32)
#define WM_VALUES               256
//  BLAKE2b digests in snapshots
#define WM_DIGEST               crypto_generichash_BYTES

typedef struct {
    qt_state_t state;
    double features [QT_ENV_MAX_FEATURES];
    double weight;
} s_particle_t;

typedef struct {
    s_particle_t *particles;
    double reliability [QT_ENV_MAX_SENSORS];
    uint64_t updates;
    qt_rng_t rng;
    bool live;                  //  particles hold an episode
    bool has_previous;          //  previous holds the last reading of this episode
    uint8_t previous [QT_ENV_MAX_READING];
} s_instance_t;

//  Choices with more outcomes than this are sampled blind: trying each
//  would cost more than it saves.
#define WM_STEER_OUTCOMES       (QT_CHANCE_MAX_OUTCOMES / 2)

//  The outcome of one run of reset or step under a script of choices, with
//  every choice it made: how many outcomes, the one taken, and for choices
//  that can be steered their probabilities (up to QT_CHANCE_MAX_DRAWS).
typedef struct {
    qt_state_t state;
    double features [QT_ENV_MAX_FEATURES];
    double log_likelihood;
    uint8_t mismatches [QT_ENV_MAX_SENSORS];
    uint32_t draws;
    uint8_t outcomes [QT_CHANCE_MAX_DRAWS];
    uint8_t taken [QT_CHANCE_MAX_DRAWS];
    double p [QT_CHANCE_MAX_DRAWS][WM_STEER_OUTCOMES];
    //  The script it ran (its first `fixed` choices), to find it again
    uint32_t fixed;
    uint8_t script [QT_CHANCE_MAX_DRAWS];
} s_run_t;

//  The chance a run draws through: the first `fixed` choices follow the
//  script, the later ones take their most likely outcome (while steering)
//  or are sampled (the final run).
typedef struct {
    qt_chance_t base;
    qt_rng_t *rng;
    const uint8_t *script;
    uint32_t fixed;
    bool sample_beyond;
    s_run_t *run;
} s_steer_t;

//  Runs kept while proposing for the particles that share one parent state
//  (after resampling most particles are copies): a child whose choices
//  follow a sibling's reuses its runs instead of repeating them. When the
//  arena is full a child stops steering and samples the rest of its
//  choices blind, which is still a valid proposal.
#define WM_ARENA                256

struct _wm_filter_t {
    qt_env_decl_t decl;
    wm_filter_config_t config;
    uint32_t batch;
    s_instance_t *instances;
    s_particle_t *scratch;                  //  N, for resampling
    s_run_t *arena;                         //  WM_ARENA runs of one parent's children
    uint32_t arena_used;
    s_run_t *final;                         //  a child's last run, choices sampled
    double *forgery;                        //  [slot][value]: log P(value | tampered)
    double log_match [QT_ENV_MAX_SENSORS];  //  honest: log P(value as the state reads)
    double log_miss [QT_ENV_MAX_SENSORS];   //  honest: log P(one other valid value)
    //  This tick's reading, by sensor and number of values that differ from
    //  a state's: log P(reading | state) under the mixture, and P(honest)
    uint32_t table_offset [QT_ENV_MAX_SENSORS];
    double *log_mixture;
    double *honest_share;
    uint64_t runs;
    //  What a snapshot must match besides the configuration (see "State
    //  transfer"): digests of the declaration and of the forgery model
    uint8_t decl_digest [WM_DIGEST];
    uint8_t model_digest [WM_DIGEST];
};

static void s_digest_model (wm_filter_t *self);
static void s_instances_destroy (s_instance_t **instances_p, uint32_t batch);

void
wm_filter_config_default (wm_filter_config_t *config)
{
    config->particles = WM_PARTICLES;
    config->samples = WM_DEFAULT_SAMPLES;
    config->steer_draws = WM_STEER_DRAWS;
    config->reliability_prior = WM_RELIABILITY_PRIOR;
    config->reliability_min = WM_RELIABILITY_MIN;
    config->reliability_max = WM_RELIABILITY_MAX;
    config->learning_warmup = WM_LEARNING_WARMUP;
    config->learning_rate_min = WM_LEARNING_RATE_MIN;
    config->noise_floor = WM_NOISE_FLOOR;
    config->garbage = WM_GARBAGE;
    config->stuck = WM_STUCK;
    config->plausible_draws = WM_PLAUSIBLE_DRAWS;
}

const char *const wm_filter_options [] = {
    "particles", "samples", "steer_draws", "reliability_prior", "reliability_min",
    "reliability_max", "learning_warmup", "learning_rate_min", "noise_floor", "garbage",
    "stuck", "plausible_draws", NULL
};

int
wm_filter_config_set (wm_filter_config_t *config, const char *name, const char *value,
                      const char **cause)
{
    char *end = NULL;
    double number = strtod (value, &end);
    const char *problem = end == value || *end || !isfinite (number) ? "not a number" : NULL;
    //  Counts are whole and positive-or-zero; the rest are reals (ranges
    //  are checked by wm_filter_new, which sees them together)
    bool count = strcmp (name, "particles") == 0 || strcmp (name, "samples") == 0
              || strcmp (name, "steer_draws") == 0 || strcmp (name, "plausible_draws") == 0;
    if (!problem && count && (number < 0 || number != floor (number) || number > 1e9))
        problem = "a whole number";
    if (!problem) {
        if (strcmp (name, "particles") == 0) config->particles = (uint32_t) number;
        else if (strcmp (name, "samples") == 0) config->samples = (uint32_t) number;
        else if (strcmp (name, "steer_draws") == 0) config->steer_draws = (uint32_t) number;
        else if (strcmp (name, "plausible_draws") == 0) config->plausible_draws = (uint32_t) number;
        else if (strcmp (name, "reliability_prior") == 0) config->reliability_prior = number;
        else if (strcmp (name, "reliability_min") == 0) config->reliability_min = number;
        else if (strcmp (name, "reliability_max") == 0) config->reliability_max = number;
        else if (strcmp (name, "learning_warmup") == 0) config->learning_warmup = number;
        else if (strcmp (name, "learning_rate_min") == 0) config->learning_rate_min = number;
        else if (strcmp (name, "noise_floor") == 0) config->noise_floor = number;
        else if (strcmp (name, "garbage") == 0) config->garbage = number;
        else if (strcmp (name, "stuck") == 0) config->stuck = number;
        else problem = "no such world-model option";
    }
    if (cause)
        *cause = problem;
    return problem ? -1 : 0;
}

static double
s_clamp (double x, double lo, double hi)
{
    return x < lo ? lo : x > hi ? hi : x;
}

//  Valid values of a sensor: the code table for images, its range otherwise.
static uint32_t
s_valid_values (const qt_env_decl_t *decl, const qt_sensor_decl_t *sensor)
{
    return sensor->image ? (uint32_t) strlen (decl->codes) : sensor->range;
}

static bool
s_value_valid (const qt_env_decl_t *decl, const qt_sensor_decl_t *sensor, uint32_t value)
{
    if (sensor->image)
        return value != 0 && strchr (decl->codes, (int) value) != NULL;
    return value < sensor->range;
}

//  A random plausible state: every variable uniform over its values, cells
//  over the non-wall cells of the board.
static void
s_plausible_state (const qt_env_decl_t *decl, const uint32_t *open_cells, uint32_t n_open,
                   qt_rng_t *rng, qt_state_t *state)
{
    memset (state, 0, sizeof *state);
    for (uint32_t v = 0; v < decl->n_vars; v++) {
        const qt_var_decl_t *var = &decl->vars [v];
        if (var->kind == QT_VAR_CELL)
            state->v [v] = (int16_t) open_cells [qt_rng_below (rng, n_open)];
        else
            state->v [v] = (int16_t) qt_rng_below (rng, var->values ? var->values : 1);
    }
}

//  The tampered theory of every value slot: how often each value appears
//  when the sensor reads random plausible states, smoothed, mixed with
//  arbitrary garbage over the valid values.
static void
s_build_forgery_model (wm_filter_t *self, uint64_t seed)
{
    const qt_env_decl_t *decl = &self->decl;
    uint32_t open_cells [QT_ENV_MAX_CELLS], n_open = 0;
    for (uint32_t c = 0; c < decl->n_cells; c++)
        if (decl->board [c] != decl->wall_code)
            open_cells [n_open++] = c;
    assert (n_open > 0);
    uint32_t slots = decl->reading_length;
    double *counts = (double *) calloc ((size_t) slots * WM_VALUES, sizeof (double));
    assert (counts);
    qt_rng_t rng;
    qt_rng_seed (&rng, seed, WM_FORGERY_STREAM);
    uint8_t values [QT_ENV_MAX_READING];
    for (uint32_t d = 0; d < self->config.plausible_draws; d++) {
        qt_state_t state;
        s_plausible_state (decl, open_cells, n_open, &rng, &state);
        for (uint32_t s = 0; s < decl->n_sensors; s++) {
            const qt_sensor_decl_t *sensor = &decl->sensors [s];
            decl->sense (decl, sensor->id, &state, values + sensor->offset);
        }
        for (uint32_t k = 0; k < slots; k++)
            counts [(size_t) k * WM_VALUES + values [k]] += 1;
    }
    double draws = self->config.plausible_draws, garbage = self->config.garbage;
    for (uint32_t s = 0; s < decl->n_sensors; s++) {
        const qt_sensor_decl_t *sensor = &decl->sensors [s];
        double n_valid = s_valid_values (decl, sensor);
        for (uint32_t k = sensor->offset; k < sensor->offset + sensor->length; k++)
            for (uint32_t value = 0; value < WM_VALUES; value++) {
                size_t at = (size_t) k * WM_VALUES + value;
                if (!s_value_valid (decl, sensor, value)) {
                    self->forgery [at] = -INFINITY;
                    continue;
                }
                double plausible = (counts [at] + WM_FORGERY_PSEUDOCOUNT)
                                 / (draws + WM_FORGERY_PSEUDOCOUNT * n_valid);
                self->forgery [at] = log ((1 - garbage) * plausible + garbage / n_valid);
            }
    }
    free (counts);
}

wm_filter_t *
wm_filter_new (const qt_env_decl_t *decl, const wm_filter_config_t *config,
               uint32_t batch, uint64_t seed)
{
    if (batch == 0 || config->samples == 0 || config->samples > WM_MAX_SAMPLES
    ||  config->particles < config->samples || config->particles > WM_MAX_PARTICLES
    ||  config->steer_draws > QT_CHANCE_MAX_DRAWS
    ||  !(config->reliability_min > 0 && config->reliability_min <= config->reliability_prior
          && config->reliability_prior <= config->reliability_max
          && config->reliability_max < 1)
    ||  !(config->learning_rate_min > 0 && config->learning_rate_min <= 1)
    ||  !(config->learning_warmup >= 1)
    ||  !(config->noise_floor > 0 && config->noise_floor < 0.5)
    ||  !(config->garbage > 0 && config->garbage <= 1)
    ||  !(config->stuck >= 0 && config->stuck < 1)
    ||  config->plausible_draws == 0)
        return NULL;
    wm_filter_t *self = (wm_filter_t *) calloc (1, sizeof (wm_filter_t));
    assert (self);
    self->decl = *decl;
    self->config = *config;
    self->batch = batch;
    self->instances = (s_instance_t *) calloc (batch, sizeof (s_instance_t));
    self->scratch = (s_particle_t *) calloc (config->particles, sizeof (s_particle_t));
    self->arena = (s_run_t *) calloc (WM_ARENA, sizeof (s_run_t));
    self->final = (s_run_t *) calloc (1, sizeof (s_run_t));
    self->forgery = (double *) calloc ((size_t) decl->reading_length * WM_VALUES, sizeof (double));
    uint32_t table = 0;
    for (uint32_t s = 0; s < decl->n_sensors; s++) {
        self->table_offset [s] = table;
        table += decl->sensors [s].length + 1;
    }
    self->log_mixture = (double *) calloc (table, sizeof (double));
    self->honest_share = (double *) calloc (table, sizeof (double));
    assert (self->instances && self->scratch && self->arena && self->final && self->forgery
         && self->log_mixture && self->honest_share);
    for (uint32_t i = 0; i < batch; i++) {
        s_instance_t *inst = &self->instances [i];
        inst->particles = (s_particle_t *) calloc (config->particles, sizeof (s_particle_t));
        assert (inst->particles);
        for (uint32_t s = 0; s < decl->n_sensors; s++)
            inst->reliability [s] = config->reliability_prior;
        qt_rng_seed (&inst->rng, seed, WM_INSTANCE_STREAM | i);
    }
    for (uint32_t s = 0; s < decl->n_sensors; s++) {
        const qt_sensor_decl_t *sensor = &decl->sensors [s];
        double noise = fmax (sensor->noise, config->noise_floor);
        double others = fmax (s_valid_values (decl, sensor) - 1.0, 1.0);
        self->log_match [s] = log (1 - noise);
        self->log_miss [s] = log (noise / others);
    }
    s_build_forgery_model (self, seed);
    s_digest_model (self);
    return self;
}

void
wm_filter_destroy (wm_filter_t **self_p)
{
    assert (self_p);
    if (*self_p) {
        wm_filter_t *self = *self_p;
        s_instances_destroy (&self->instances, self->batch);
        free (self->scratch);
        free (self->arena);
        free (self->final);
        free (self->forgery);
        free (self->log_mixture);
        free (self->honest_share);
        free (self);
        *self_p = NULL;
    }
}

//  --------------------------------------------------------------------------
//  Likelihood of a reading

//  log (a + b) from log a and log b
static double
s_log_add (double a, double b)
{
    if (a == -INFINITY)
        return b;
    if (b == -INFINITY)
        return a;
    return a > b ? a + log1p (exp (b - a)) : b + log1p (exp (a - b));
}

//  This tick's tables: for every sensor and number m of its values that
//  differ from what a state reads, log of reliability x P(honest reading) +
//  (1 - reliability) x P(tampered reading), and the share of the honest
//  term (P(honest | reading, state)).
static void
s_tick_tables (wm_filter_t *self, const s_instance_t *inst, const qt_readings_t *readings)
{
    const qt_env_decl_t *decl = &self->decl;
    double stuck_share = inst->has_previous ? self->config.stuck : 0;
    for (uint32_t s = 0; s < decl->n_sensors; s++) {
        const qt_sensor_decl_t *sensor = &decl->sensors [s];
        //  Tampered: a fresh plausible forgery, or (since the last tick of
        //  this episode) the last reading replayed, value for value
        double fresh = 0;
        uint32_t changed = 0;
        for (uint32_t k = 0; k < sensor->length; k++) {
            uint32_t slot = sensor->offset + k;
            fresh += self->forgery [(size_t) slot * WM_VALUES + readings->values [slot]];
            changed += inst->previous [slot] != readings->values [slot];
        }
        double tampered = log (1 - stuck_share) + fresh;
        if (stuck_share > 0) {
            double replayed = (sensor->length - changed) * self->log_match [s]
                            + changed * self->log_miss [s];
            tampered = s_log_add (tampered, log (stuck_share) + replayed);
        }
        double rho = inst->reliability [s];
        tampered += log (1 - rho);
        for (uint32_t m = 0; m <= sensor->length; m++) {
            double honest = log (rho) + (sensor->length - m) * self->log_match [s]
                          + m * self->log_miss [s];
            double mixture = s_log_add (honest, tampered);
            self->log_mixture [self->table_offset [s] + m] = mixture;
            self->honest_share [self->table_offset [s] + m] = exp (honest - mixture);
        }
    }
}

//  log P(reading | state) under the per-sensor mixture, with each sensor's
//  mismatch count kept for its P(honest).
static double
s_log_likelihood (wm_filter_t *self, const qt_state_t *state, const qt_readings_t *readings,
                  uint8_t *mismatches)
{
    const qt_env_decl_t *decl = &self->decl;
    uint8_t values [QT_ENV_MAX_READING];
    double total = 0;
    for (uint32_t s = 0; s < decl->n_sensors; s++) {
        const qt_sensor_decl_t *sensor = &decl->sensors [s];
        decl->sense (decl, sensor->id, state, values);
        uint32_t miss = 0;
        const uint8_t *read = readings->values + sensor->offset;
        for (uint32_t k = 0; k < sensor->length; k++)
            miss += values [k] != read [k];
        mismatches [s] = (uint8_t) (miss > UINT8_MAX ? UINT8_MAX : miss);
        total += self->log_mixture [self->table_offset [s] + miss];
    }
    return total;
}

//  P(sensor s honest | reading, state) from its mismatch count.
static double
s_honest (const wm_filter_t *self, uint32_t s, uint32_t miss)
{
    uint32_t length = self->decl.sensors [s].length;
    return self->honest_share [self->table_offset [s] + (miss < length ? miss : length)];
}

//  --------------------------------------------------------------------------
//  Steered runs of reset and step

static uint32_t
s_steer_pick (qt_chance_t *base, const double *p, uint32_t n)
{
    s_steer_t *self = (s_steer_t *) base;
    s_run_t *run = self->run;
    uint32_t index = run->draws++;
    uint32_t outcome;
    if (index < self->fixed && self->script [index] < n)
        outcome = self->script [index];
    else
    if (self->sample_beyond)
        outcome = qt_chance_sample (p, n, qt_rng_uniform (self->rng));
    else {
        outcome = 0;
        for (uint32_t k = 1; k < n; k++)
            if (p [k] > p [outcome])
                outcome = k;
    }
    if (index < QT_CHANCE_MAX_DRAWS) {
        run->outcomes [index] = (uint8_t) n;
        run->taken [index] = (uint8_t) outcome;
        if (n <= WM_STEER_OUTCOMES)
            memcpy (run->p [index], p, n * sizeof (double));
    }
    return outcome;
}

//  One run from `from` (NULL: reset) under a script; the outcome and the
//  likelihood of the reading go to run.
static void
s_run (wm_filter_t *self, s_instance_t *inst, const qt_state_t *from, uint32_t action,
       const qt_readings_t *readings, const uint8_t *script, uint32_t fixed,
       bool sample_beyond, s_run_t *run)
{
    const qt_env_decl_t *decl = &self->decl;
    s_steer_t steer = { { s_steer_pick }, &inst->rng, script, fixed, sample_beyond, run };
    run->draws = 0;
    run->fixed = fixed;
    memcpy (run->script, script, fixed);
    memset (run->features, 0, sizeof run->features);
    if (from) {
        double observed;
        decl->step (decl, from, action, &steer.base, &run->state, run->features, &observed);
    }
    else
        decl->reset (decl, &steer.base, NULL, &run->state);
    run->log_likelihood = s_log_likelihood (self, &run->state, readings, run->mismatches);
    self->runs++;
}

//  The run of a script among the current parent's runs, run now if new;
//  NULL when the arena is full.
static s_run_t *
s_shared_run (wm_filter_t *self, s_instance_t *inst, const qt_state_t *from, uint32_t action,
              const qt_readings_t *readings, const uint8_t *script, uint32_t fixed)
{
    for (uint32_t r = 0; r < self->arena_used; r++) {
        s_run_t *run = &self->arena [r];
        if (run->fixed == fixed && memcmp (run->script, script, fixed) == 0)
            return run;
    }
    if (self->arena_used == WM_ARENA)
        return NULL;
    s_run_t *run = &self->arena [self->arena_used++];
    s_run (self, inst, from, action, readings, script, fixed, false, run);
    return run;
}

//  Propose a successor of `from` (NULL: a reset) steered towards the
//  reading; returns the run holding the successor and its likelihood, with
//  log (prior / proposal) of the choices steered in *log_ratio. A run with
//  later choices at their most likely outcome is also the candidate for the
//  most likely outcome of the choice being steered, so a binary choice
//  costs one run (none when a sibling already made it).
static const s_run_t *
s_propose (wm_filter_t *self, s_instance_t *inst, const qt_state_t *from, uint32_t action,
           const qt_readings_t *readings, double *log_ratio)
{
    uint8_t script [QT_CHANCE_MAX_DRAWS] = { 0 };
    *log_ratio = 0;
    uint32_t steered = 0;
    const s_run_t *current = s_shared_run (self, inst, from, action, readings, script, 0);
    while (current) {
        uint32_t n = steered < QT_CHANCE_MAX_DRAWS ? current->outcomes [steered] : 0;
        if (steered >= current->draws || steered >= self->config.steer_draws
        ||  n == 0 || n > WM_STEER_OUTCOMES)
            break;
        const double *p = current->p [steered];
        uint32_t likely = current->taken [steered];
        const s_run_t *candidate [WM_STEER_OUTCOMES] = { NULL };
        double best = -INFINITY;
        bool complete = true;
        for (uint32_t v = 0; v < n && complete; v++) {
            if (!(p [v] > 0))
                continue;
            if (v == likely)
                candidate [v] = current;
            else {
                script [steered] = (uint8_t) v;
                candidate [v] = s_shared_run (self, inst, from, action, readings, script, steered + 1);
                complete = candidate [v] != NULL;
            }
            if (complete)
                best = fmax (best, candidate [v]->log_likelihood);
        }
        if (!complete)
            break;
        double u [WM_STEER_OUTCOMES], total = 0;
        for (uint32_t v = 0; v < n; v++) {
            u [v] = candidate [v] ? p [v] * exp (candidate [v]->log_likelihood - best) : 0;
            total += u [v];
        }
        for (uint32_t v = 0; v < n; v++)
            u [v] /= total;
        uint32_t chosen = qt_chance_sample (u, n, qt_rng_uniform (&inst->rng));
        //  log (p / q) of the choice, with q = p x exp (L - best) / total
        *log_ratio += log (total) - (candidate [chosen]->log_likelihood - best);
        script [steered++] = (uint8_t) chosen;
        current = candidate [chosen];
    }
    //  Choices left unsteered are sampled from the prior: they cancel in the
    //  importance ratio
    if (!current || current->draws > steered) {
        s_run (self, inst, from, action, readings, script, steered, true, self->final);
        return self->final;
    }
    return current;
}

//  --------------------------------------------------------------------------
//  The update

static int
s_compare_state (const qt_state_t *a, const qt_state_t *b, uint32_t n_vars)
{
    return memcmp (a->v, b->v, n_vars * sizeof (int16_t));
}

//  Systematic resampling of n weighted particles in place.
static void
s_resample (wm_filter_t *self, s_instance_t *inst)
{
    uint32_t n = self->config.particles;
    double step = 1.0 / n, u = qt_rng_uniform (&inst->rng) * step, cumulative = 0;
    uint32_t j = 0;
    for (uint32_t k = 0; k < n; k++) {
        double target = u + k * step;
        while (j + 1 < n && cumulative + inst->particles [j].weight < target) {
            cumulative += inst->particles [j].weight;
            j++;
        }
        self->scratch [k] = inst->particles [j];
        self->scratch [k].weight = step;
    }
    memcpy (inst->particles, self->scratch, n * sizeof (s_particle_t));
}

static double
s_entropy (const s_particle_t *particles, uint32_t n, uint32_t n_vars)
{
    double entropy = 0;
    for (uint32_t j = 0; j < n; j++) {
        bool first = true;
        for (uint32_t k = 0; k < j && first; k++)
            first = s_compare_state (&particles [k].state, &particles [j].state, n_vars) != 0;
        if (!first)
            continue;
        double mass = 0;
        for (uint32_t k = j; k < n; k++)
            if (s_compare_state (&particles [k].state, &particles [j].state, n_vars) == 0)
                mass += particles [k].weight;
        if (mass > 0)
            entropy -= mass * log2 (mass);
    }
    return entropy > 0 ? entropy : 0;
}

//  Distinct (state, features) pairs with their mass, heaviest first, then at
//  most `samples` of them (systematic draws when there are more).
static void
s_publish_samples (wm_filter_t *self, s_instance_t *inst, wm_belief_t *belief)
{
    const qt_env_decl_t *decl = &self->decl;
    uint32_t n = self->config.particles, distinct = 0;
    wm_sample_t *pool = (wm_sample_t *) calloc (n, sizeof (wm_sample_t));
    assert (pool);
    for (uint32_t j = 0; j < n; j++) {
        const s_particle_t *particle = &inst->particles [j];
        if (!(particle->weight > 0))
            continue;
        uint32_t k = 0;
        while (k < distinct
           && (memcmp (pool [k].values, particle->state.v, decl->n_vars * sizeof (int16_t))
               || memcmp (pool [k].features, particle->features, decl->n_features * sizeof (double))))
            k++;
        if (k == distinct) {
            memcpy (pool [k].values, particle->state.v, sizeof pool [k].values);
            memcpy (pool [k].features, particle->features, sizeof pool [k].features);
            distinct++;
        }
        pool [k].weight += particle->weight;
    }
    //  Heaviest first; insertion sort keeps equal weights in particle order
    for (uint32_t k = 1; k < distinct; k++) {
        wm_sample_t item = pool [k];
        uint32_t at = k;
        while (at > 0 && pool [at - 1].weight < item.weight) {
            pool [at] = pool [at - 1];
            at--;
        }
        pool [at] = item;
    }
    uint32_t wanted = self->config.samples;
    belief->n_samples = 0;
    if (distinct <= wanted) {
        for (uint32_t k = 0; k < distinct; k++)
            belief->samples [belief->n_samples++] = pool [k];
    }
    else {
        double step = 1.0 / wanted, u = qt_rng_uniform (&inst->rng) * step, cumulative = 0;
        uint32_t k = 0;
        for (uint32_t d = 0; d < wanted; d++) {
            double target = u + d * step;
            while (k + 1 < distinct && cumulative + pool [k].weight < target) {
                cumulative += pool [k].weight;
                k++;
            }
            if (belief->n_samples > 0
            &&  memcmp (&belief->samples [belief->n_samples - 1].values, pool [k].values,
                        sizeof pool [k].values) == 0
            &&  memcmp (belief->samples [belief->n_samples - 1].features, pool [k].features,
                        sizeof pool [k].features) == 0)
                belief->samples [belief->n_samples - 1].weight += step;
            else {
                belief->samples [belief->n_samples] = pool [k];
                belief->samples [belief->n_samples++].weight = step;
            }
        }
    }
    double total = 0;
    for (uint32_t k = 0; k < belief->n_samples; k++)
        total += belief->samples [k].weight;
    for (uint32_t k = 0; k < belief->n_samples; k++)
        belief->samples [k].weight /= total;
    free (pool);
}

int
wm_filter_update (wm_filter_t *self, uint32_t instance, const qt_readings_t *readings,
                  wm_belief_t *belief)
{
    if (instance >= self->batch || readings->length != self->decl.reading_length)
        return -1;
    const qt_env_decl_t *decl = &self->decl;
    const wm_filter_config_t *config = &self->config;
    s_instance_t *inst = &self->instances [instance];
    uint32_t n = config->particles;
    memset (belief, 0, sizeof *belief);

    //  A new episode has no last reading to replay
    if (readings->step == 0)
        inst->has_previous = false;
    s_tick_tables (self, inst, readings);

    //  Propagate (or start an episode) with steered proposals. A replica
    //  that never saw this episode's start has nothing better than the
    //  reset distribution: its peers outvote it until the next episode.
    bool restart = readings->step == 0 || !inst->live;
    bool any_alive = restart;
    for (uint32_t j = 0; j < n && !any_alive; j++)
        any_alive = !inst->particles [j].state.terminated;
    double *log_weight = (double *) malloc (n * sizeof (double));
    uint8_t *mismatches = (uint8_t *) malloc ((size_t) n * QT_ENV_MAX_SENSORS);
    assert (log_weight && mismatches);
    qt_state_t parent;
    bool have_parent = false;
    self->arena_used = 0;
    for (uint32_t j = 0; j < n; j++) {
        s_particle_t *particle = &inst->particles [j];
        if (!any_alive)
            particle->state.terminated = 0;     //  the model was wrong: the episode goes on
        //  Resampling keeps copies adjacent: a new parent starts a new arena
        if (!restart) {
            if (have_parent && memcmp (&parent, &particle->state, sizeof parent) != 0)
                self->arena_used = 0;
            parent = particle->state;
            have_parent = true;
        }
        const s_run_t *run;
        double log_ratio;
        if (restart)
            run = s_propose (self, inst, NULL, 0, readings, &log_ratio);
        else
        if (particle->state.terminated || !(particle->weight > 0)) {
            log_weight [j] = -INFINITY;
            memset (mismatches + (size_t) j * QT_ENV_MAX_SENSORS, 0, QT_ENV_MAX_SENSORS);
            continue;
        }
        else {
            run = s_propose (self, inst, &particle->state, readings->action, readings, &log_ratio);
            log_ratio += log (particle->weight);
        }
        log_weight [j] = log_ratio + run->log_likelihood;
        particle->state = run->state;
        memcpy (particle->features, run->features, sizeof particle->features);
        memcpy (mismatches + (size_t) j * QT_ENV_MAX_SENSORS, run->mismatches, QT_ENV_MAX_SENSORS);
    }
    inst->live = true;
    double top = -INFINITY;
    for (uint32_t j = 0; j < n; j++)
        top = fmax (top, log_weight [j]);
    double total = 0;
    for (uint32_t j = 0; j < n; j++) {
        inst->particles [j].weight = top > -INFINITY ? exp (log_weight [j] - top) : 1;
        total += inst->particles [j].weight;
    }
    double squares = 0;
    for (uint32_t j = 0; j < n; j++) {
        inst->particles [j].weight /= total;
        squares += inst->particles [j].weight * inst->particles [j].weight;
    }

    //  Posterior figures
    belief->n_vars = decl->n_vars;
    belief->n_features = decl->n_features;
    belief->n_sensors = decl->n_sensors;
    belief->effective_particles = 1 / squares;
    double weighted_honest = 0, weighing = 0;
    for (uint32_t s = 0; s < decl->n_sensors; s++) {
        double honest = 0;
        for (uint32_t j = 0; j < n; j++)
            if (inst->particles [j].weight > 0)
                honest += inst->particles [j].weight
                        * s_honest (self, s, mismatches [(size_t) j * QT_ENV_MAX_SENSORS + s]);
        belief->honest [s] = s_clamp (honest, 0, 1);
        weighted_honest += decl->sensors [s].length * belief->honest [s];
        weighing += decl->sensors [s].length;
    }
    belief->data_reliability = weighing > 0 ? s_clamp (weighted_honest / weighing, 0, 1) : 1;
    for (uint32_t j = 0; j < n; j++)
        for (uint32_t f = 0; f < decl->n_features; f++)
            belief->features [f] += inst->particles [j].weight * inst->particles [j].features [f];
    belief->entropy = s_entropy (inst->particles, n, decl->n_vars);
    s_publish_samples (self, inst, belief);

    //  Learn reliabilities: running average of P(honest | data)
    inst->updates++;
    double rate = fmax (1.0 / ((double) inst->updates + config->learning_warmup),
                        config->learning_rate_min);
    for (uint32_t s = 0; s < decl->n_sensors; s++) {
        double rho = inst->reliability [s] + rate * (belief->honest [s] - inst->reliability [s]);
        inst->reliability [s] = s_clamp (rho, config->reliability_min, config->reliability_max);
        belief->reliability [s] = inst->reliability [s];
    }
    if (belief->effective_particles < WM_RESAMPLE_SHARE * n)
        s_resample (self, inst);
    memcpy (inst->previous, readings->values, readings->length);
    inst->has_previous = true;
    free (log_weight);
    free (mismatches);
    return 0;
}

int
wm_filter_idle (wm_filter_t *self, uint32_t instance, wm_belief_t *belief)
{
    if (instance >= self->batch)
        return -1;
    const qt_env_decl_t *decl = &self->decl;
    const s_instance_t *inst = &self->instances [instance];
    memset (belief, 0, sizeof *belief);
    belief->n_vars = decl->n_vars;
    belief->n_features = decl->n_features;
    belief->n_sensors = decl->n_sensors;
    const s_particle_t *heaviest = &inst->particles [0];
    for (uint32_t j = 1; j < self->config.particles; j++)
        if (inst->particles [j].weight > heaviest->weight)
            heaviest = &inst->particles [j];
    belief->n_samples = 1;
    memcpy (belief->samples [0].values, heaviest->state.v, sizeof heaviest->state.v);
    belief->samples [0].weight = 1;
    for (uint32_t s = 0; s < decl->n_sensors; s++) {
        belief->reliability [s] = inst->reliability [s];
        belief->honest [s] = inst->reliability [s];
    }
    belief->data_reliability = 1;
    belief->effective_particles = self->config.particles;
    return 0;
}

double
wm_filter_reliability (wm_filter_t *self, uint32_t instance, uint32_t sensor)
{
    if (instance >= self->batch || sensor >= self->decl.n_sensors)
        return NAN;
    return self->instances [instance].reliability [sensor];
}

double
wm_filter_state_mass (wm_filter_t *self, uint32_t instance, const qt_state_t *state, bool latents)
{
    if (instance >= self->batch)
        return NAN;
    const qt_env_decl_t *decl = &self->decl;
    const s_instance_t *inst = &self->instances [instance];
    double mass = 0;
    for (uint32_t j = 0; j < self->config.particles; j++) {
        bool same = true;
        for (uint32_t v = 0; v < decl->n_vars && same; v++)
            same = (!latents && decl->vars [v].kind == QT_VAR_LATENT)
                || inst->particles [j].state.v [v] == state->v [v];
        if (same)
            mass += inst->particles [j].weight;
    }
    return mass;
}

uint64_t
wm_filter_runs (const wm_filter_t *self)
{
    return self->runs;
}

//  --------------------------------------------------------------------------
//  State transfer: the filter's whole state as bytes, field by field in
//  little-endian fixed widths (never a struct with its padding), so equal
//  states give equal bytes on any host. Version 1:
//
//      header      magic (u32), version (u32), the environment's name (32
//                  bytes, zero-padded), a digest of its declaration, batch
//                  (u32), every option (u32, f64), a digest of the forgery
//                  model (it follows from the seed)
//      runs        u64
//      instances   per instance: generator (4 x u64), updates (u64), flags
//                  (u8: live, holds a previous reading), reliabilities (f64
//                  a sensor), the previous reading when held (u8 a value),
//                  then per particle its variables (i16 each), terminated
//                  (u8), features (f64 each) and weight (f64)
//      trailer     BLAKE2b of everything before it
//
//  Nothing else outlives an update: scratch, the arena, the final run and
//  the tick's tables are rebuilt by every update, and the forgery model and
//  the honest tables follow from the declaration, options and seed, which
//  the header pins. A state's variables past n_vars and its padding are
//  zero (reset clears the state, step copies it), and a particle's
//  features past n_features are zero (the caller of step zeroes them), so
//  they are not sent and restore zeroes them.

#define WM_SNAPSHOT_MAGIC       0x4d575451u     //  "QTWM", little-endian
#define WM_SNAPSHOT_VERSION     1
#define WM_SNAPSHOT_LIVE        1               //  instance flags
#define WM_SNAPSHOT_PREVIOUS    2
//  Learned weights sum to 1 to within rounding
#define WM_SNAPSHOT_WEIGHT_SLACK 1e-6

static uint8_t *
s_encode (uint8_t *at, uint64_t value, size_t bytes)
{
    //  Wider than the value (a zero-padded field): bytes past 8 are 0; a
    //  shift by 64 or more is undefined
    for (size_t k = 0; k < bytes; k++)
        at [k] = k < 8 ? (uint8_t) (value >> (8 * k)) : 0;
    return at + bytes;
}

static uint8_t *
s_encode_double (uint8_t *at, double value)
{
    uint64_t bits;
    memcpy (&bits, &value, sizeof bits);
    return s_encode (at, bits, sizeof bits);
}

static void
s_put (zchunk_t *out, uint64_t value, size_t bytes)
{
    uint8_t le [8];
    zchunk_extend (out, le, (size_t) (s_encode (le, value, bytes) - le));
}

static void
s_put_double (zchunk_t *out, double value)
{
    uint8_t le [8];
    zchunk_extend (out, le, (size_t) (s_encode_double (le, value) - le));
}

//  A text field as its length then its bytes (those up to the NUL).
static void
s_put_text (zchunk_t *out, const char *text, size_t width)
{
    size_t length = text ? strnlen (text, width) : 0;
    s_put (out, length, 4);
    zchunk_extend (out, text, length);
}

//  BLAKE2b; needs no sodium_init (which only picks a faster implementation
//  of the same function), so tools and tests may snapshot without it.
static void
s_digest (const void *data, size_t size, uint8_t *digest)
{
    crypto_generichash (digest, WM_DIGEST, (const uint8_t *) data, size, NULL, 0);
}

//  What a restored state must have been computed with: everything of the
//  declaration the filter reads (board, codes, actions, variables,
//  sensors, features, the module's constants; not what only the world
//  reads: tamper style, sensor modes, hidden performance, references), and
//  the forgery model with the honest tables, which the seed and options
//  determine.
static void
s_digest_model (wm_filter_t *self)
{
    const qt_env_decl_t *decl = &self->decl;
    zchunk_t *chunk = zchunk_new (NULL, 4096);
    assert (chunk);
    s_put_text (chunk, decl->name, sizeof decl->name);
    s_put (chunk, decl->variant, 4);
    s_put_text (chunk, decl->params.variant, sizeof decl->params.variant);
    s_put_text (chunk, decl->params.without, sizeof decl->params.without);
    s_put (chunk, decl->width, 4);
    s_put (chunk, decl->height, 4);
    s_put (chunk, decl->n_cells, 4);
    s_put_text (chunk, decl->board, sizeof decl->board);
    s_put_text (chunk, decl->codes, sizeof decl->codes);
    s_put (chunk, (uint8_t) decl->wall_code, 1);
    s_put (chunk, (uint8_t) decl->agent_code, 1);
    s_put (chunk, decl->n_actions, 4);
    s_put (chunk, decl->max_steps, 4);
    s_put (chunk, decl->n_vars, 4);
    for (uint32_t v = 0; v < decl->n_vars; v++) {
        s_put_text (chunk, decl->vars [v].name, sizeof decl->vars [v].name);
        s_put (chunk, (uint32_t) decl->vars [v].kind, 4);
        s_put (chunk, decl->vars [v].values, 4);
    }
    s_put (chunk, decl->n_sensors, 4);
    for (uint32_t s = 0; s < decl->n_sensors; s++) {
        const qt_sensor_decl_t *sensor = &decl->sensors [s];
        s_put_text (chunk, sensor->name, sizeof sensor->name);
        s_put_text (chunk, sensor->family, sizeof sensor->family);
        s_put (chunk, sensor->id, 4);
        s_put (chunk, sensor->image, 1);
        s_put (chunk, sensor->length, 4);
        s_put (chunk, sensor->range, 4);
        s_put_double (chunk, sensor->noise);
        s_put (chunk, sensor->offset, 4);
    }
    s_put (chunk, decl->reading_length, 4);
    s_put (chunk, decl->observation, 4);
    s_put (chunk, decl->n_features, 4);
    for (uint32_t f = 0; f < decl->n_features; f++)
        s_put_text (chunk, decl->feature_names [f], QT_ENV_NAME_MAX);
    s_put (chunk, decl->module_sensors, 4);
    for (uint32_t k = 0; k < QT_ENV_MAX_MODULE; k++)
        s_put (chunk, decl->module [k], 4);
    s_digest (zchunk_data (chunk), zchunk_size (chunk), self->decl_digest);

    zchunk_set (chunk, NULL, 0);
    for (size_t k = 0; k < (size_t) decl->reading_length * WM_VALUES; k++)
        s_put_double (chunk, self->forgery [k]);
    for (uint32_t s = 0; s < decl->n_sensors; s++) {
        s_put_double (chunk, self->log_match [s]);
        s_put_double (chunk, self->log_miss [s]);
    }
    s_digest (zchunk_data (chunk), zchunk_size (chunk), self->model_digest);
    zchunk_destroy (&chunk);
}

//  One field of the header: its bytes, and the cause when a snapshot's
//  differ (the first field that differs names what does).
#define WM_FIELD_MAX            32
#define WM_SNAPSHOT_FIELDS      18

typedef struct {
    uint8_t bytes [WM_FIELD_MAX];
    size_t size;
    const char *mismatch;
} s_field_t;

_Static_assert (WM_DIGEST <= WM_FIELD_MAX && QT_ENV_NAME_MAX <= WM_FIELD_MAX,
                "a header field holds a digest and an environment's name");

static void
s_field (s_field_t *field, uint64_t value, size_t size, const char *mismatch)
{
    memset (field, 0, sizeof *field);
    s_encode (field->bytes, value, size);
    field->size = size;
    field->mismatch = mismatch;
}

static void
s_field_double (s_field_t *field, double value, const char *mismatch)
{
    memset (field, 0, sizeof *field);
    field->size = (size_t) (s_encode_double (field->bytes, value) - field->bytes);
    field->mismatch = mismatch;
}

//  Bytes as they are (a digest), or a name zero-padded to `size`.
static void
s_field_bytes (s_field_t *field, const void *bytes, size_t length, size_t size,
               const char *mismatch)
{
    s_field (field, 0, size, mismatch);
    memcpy (field->bytes, bytes, length);
}

//  The header of this filter's snapshots; returns the number of fields.
static size_t
s_header (const wm_filter_t *self, s_field_t *fields)
{
    const wm_filter_config_t *c = &self->config;
    s_field_t *f = fields;
    s_field (f++, WM_SNAPSHOT_MAGIC, 4, "not a world-model snapshot");
    s_field (f++, WM_SNAPSHOT_VERSION, 4, "world-model snapshot of another format version");
    s_field_bytes (f++, self->decl.name, strnlen (self->decl.name, QT_ENV_NAME_MAX),
                   QT_ENV_NAME_MAX, "world-model snapshot of another environment");
    s_field_bytes (f++, self->decl_digest, WM_DIGEST, WM_DIGEST,
                   "world-model snapshot of another declaration of the environment "
                   "(variant, sensors left out)");
    s_field (f++, self->batch, 4, "world-model snapshot of another batch size");
    s_field (f++, c->particles, 4, "world-model snapshot with other particles");
    s_field (f++, c->samples, 4, "world-model snapshot with other samples");
    s_field (f++, c->steer_draws, 4, "world-model snapshot with other steer_draws");
    s_field (f++, c->plausible_draws, 4, "world-model snapshot with other plausible_draws");
    s_field_double (f++, c->reliability_prior, "world-model snapshot with another reliability_prior");
    s_field_double (f++, c->reliability_min, "world-model snapshot with another reliability_min");
    s_field_double (f++, c->reliability_max, "world-model snapshot with another reliability_max");
    s_field_double (f++, c->learning_warmup, "world-model snapshot with another learning_warmup");
    s_field_double (f++, c->learning_rate_min, "world-model snapshot with another learning_rate_min");
    s_field_double (f++, c->noise_floor, "world-model snapshot with another noise_floor");
    s_field_double (f++, c->garbage, "world-model snapshot with another garbage");
    s_field_double (f++, c->stuck, "world-model snapshot with another stuck");
    //  The options match: the forgery model differs by the seed
    s_field_bytes (f++, self->model_digest, WM_DIGEST, WM_DIGEST,
                   "world-model snapshot with another seed");
    assert (f - fields == WM_SNAPSHOT_FIELDS);
    return WM_SNAPSHOT_FIELDS;
}

int
wm_filter_snapshot (wm_filter_t *self, zchunk_t *out)
{
    const qt_env_decl_t *decl = &self->decl;
    size_t start = zchunk_size (out);
    s_field_t header [WM_SNAPSHOT_FIELDS];
    size_t fields = s_header (self, header);
    for (size_t k = 0; k < fields; k++)
        zchunk_extend (out, header [k].bytes, header [k].size);
    s_put (out, self->runs, 8);
    //  An instance at a time through a buffer: a field at a time, batch
    //  4096 would take long
    size_t particle_size = 2 * decl->n_vars + 1 + 8 * decl->n_features + 8;
    size_t instance_max = 4 * 8 + 8 + 1 + 8 * decl->n_sensors + decl->reading_length
                        + self->config.particles * particle_size;
    uint8_t *buffer = (uint8_t *) malloc (instance_max);
    assert (buffer);
    for (uint32_t i = 0; i < self->batch; i++) {
        const s_instance_t *inst = &self->instances [i];
        uint8_t *at = buffer;
        for (uint32_t k = 0; k < 4; k++)
            at = s_encode (at, inst->rng.s [k], 8);
        at = s_encode (at, inst->updates, 8);
        at = s_encode (at, (inst->live ? WM_SNAPSHOT_LIVE : 0)
                         | (inst->has_previous ? WM_SNAPSHOT_PREVIOUS : 0), 1);
        for (uint32_t s = 0; s < decl->n_sensors; s++)
            at = s_encode_double (at, inst->reliability [s]);
        if (inst->has_previous) {
            memcpy (at, inst->previous, decl->reading_length);
            at += decl->reading_length;
        }
        for (uint32_t j = 0; j < self->config.particles; j++) {
            const s_particle_t *particle = &inst->particles [j];
            for (uint32_t v = 0; v < decl->n_vars; v++)
                at = s_encode (at, (uint16_t) particle->state.v [v], 2);
            at = s_encode (at, particle->state.terminated, 1);
            for (uint32_t f = 0; f < decl->n_features; f++)
                at = s_encode_double (at, particle->features [f]);
            at = s_encode_double (at, particle->weight);
        }
        assert ((size_t) (at - buffer) <= instance_max);
        zchunk_extend (out, buffer, (size_t) (at - buffer));
    }
    free (buffer);
    uint8_t digest [WM_DIGEST];
    s_digest (zchunk_data (out) + start, zchunk_size (out) - start, digest);
    zchunk_extend (out, digest, sizeof digest);
    return 0;
}

//  Reads little-endian fields; past the end it reads zeros and says so.
typedef struct {
    const uint8_t *data;
    size_t size, at;
    bool short_read;
} s_reader_t;

static uint64_t
s_get (s_reader_t *reader, size_t bytes)
{
    if (reader->size - reader->at < bytes) {
        reader->short_read = true;
        reader->at = reader->size;
        return 0;
    }
    uint64_t value = 0;
    for (size_t k = 0; k < bytes && k < 8; k++)     //  past 8: padding, not the value
        value |= (uint64_t) reader->data [reader->at + k] << (8 * k);
    reader->at += bytes;
    return value;
}

static double
s_get_double (s_reader_t *reader)
{
    uint64_t bits = s_get (reader, sizeof bits);
    double value;
    memcpy (&value, &bits, sizeof value);
    return value;
}

//  One instance into inst (its particles allocated, zeroed); NULL, or what
//  is wrong with it.
static const char *
s_get_instance (const wm_filter_t *self, s_reader_t *reader, s_instance_t *inst)
{
    const qt_env_decl_t *decl = &self->decl;
    const wm_filter_config_t *config = &self->config;
    bool zero = true;
    for (uint32_t k = 0; k < 4; k++) {
        inst->rng.s [k] = s_get (reader, 8);
        zero = zero && inst->rng.s [k] == 0;
    }
    //  xoshiro's one fixed point: it would draw zeros for ever
    if (zero)
        return "world-model snapshot: a generator state is all zero";
    inst->updates = s_get (reader, 8);
    uint64_t flags = s_get (reader, 1);
    inst->live = (flags & WM_SNAPSHOT_LIVE) != 0;
    inst->has_previous = (flags & WM_SNAPSHOT_PREVIOUS) != 0;
    //  Every update makes the instance live and keeps its reading
    if (flags & ~(uint64_t) (WM_SNAPSHOT_LIVE | WM_SNAPSHOT_PREVIOUS)
    ||  inst->live != (inst->updates > 0) || inst->has_previous != inst->live)
        return "world-model snapshot: an instance's flags disagree with its updates";
    for (uint32_t s = 0; s < decl->n_sensors; s++) {
        inst->reliability [s] = s_get_double (reader);
        if (!(inst->reliability [s] >= config->reliability_min
           && inst->reliability [s] <= config->reliability_max))
            return "world-model snapshot: a learned reliability is outside "
                   "[reliability_min, reliability_max]";
    }
    if (inst->has_previous) {
        for (uint32_t k = 0; k < decl->reading_length; k++)
            inst->previous [k] = (uint8_t) s_get (reader, 1);
        if (!reader->short_read
        &&  !qt_env_reading_valid (decl, inst->previous, decl->reading_length, NULL))
            return "world-model snapshot: an instance's last reading is invalid";
    }
    double total = 0;
    for (uint32_t j = 0; j < config->particles; j++) {
        s_particle_t *particle = &inst->particles [j];
        for (uint32_t v = 0; v < decl->n_vars; v++) {
            int16_t value = (int16_t) (uint16_t) s_get (reader, 2);
            uint32_t values = decl->vars [v].values ? decl->vars [v].values : 1;
            if (value < 0 || (uint32_t) value >= values)
                return "world-model snapshot: a particle's state is outside the declared domain";
            particle->state.v [v] = value;
        }
        uint64_t terminated = s_get (reader, 1);
        if (terminated > 1)
            return "world-model snapshot: a particle's terminated flag is not 0 or 1";
        particle->state.terminated = (uint8_t) terminated;
        for (uint32_t f = 0; f < decl->n_features; f++) {
            particle->features [f] = s_get_double (reader);
            if (!isfinite (particle->features [f]))
                return "world-model snapshot: a particle's feature is not finite";
        }
        particle->weight = s_get_double (reader);
        if (!(particle->weight >= 0 && particle->weight <= 1))
            return "world-model snapshot: a particle's weight is outside [0, 1]";
        total += particle->weight;
    }
    //  An instance never updated holds calloc's particles
    if (inst->live ? !(fabs (total - 1) <= WM_SNAPSHOT_WEIGHT_SLACK) : total != 0)
        return "world-model snapshot: an instance's weights do not sum to 1";
    return NULL;
}

static void
s_instances_destroy (s_instance_t **instances_p, uint32_t batch)
{
    s_instance_t *instances = *instances_p;
    for (uint32_t i = 0; i < batch; i++)
        free (instances [i].particles);
    free (instances);
    *instances_p = NULL;
}

int
wm_filter_restore (wm_filter_t *self, const uint8_t *data, size_t size, const char **cause)
{
    const char *problem = NULL;
    s_reader_t reader = { data, size, 0, false };
    s_field_t header [WM_SNAPSHOT_FIELDS];
    size_t fields = s_header (self, header);
    for (size_t k = 0; k < fields && !problem; k++) {
        size_t at = reader.at;
        s_get (&reader, header [k].size);
        if (reader.short_read)
            problem = k == 0 ? "not a world-model snapshot" : "world-model snapshot truncated";
        else
        if (memcmp (data + at, header [k].bytes, header [k].size) != 0)
            problem = header [k].mismatch;
    }
    if (!problem) {
        uint8_t digest [WM_DIGEST];
        if (size - reader.at < WM_DIGEST)
            problem = "world-model snapshot truncated";
        else {
            s_digest (data, size - WM_DIGEST, digest);
            if (memcmp (digest, data + size - WM_DIGEST, WM_DIGEST) != 0)
                problem = "world-model snapshot digest mismatch (corrupted or truncated)";
        }
    }
    //  Decoded into fresh instances, which replace the filter's only once
    //  all is read and checked
    s_instance_t *instances = NULL;
    uint64_t runs = 0;
    if (!problem) {
        reader.size = size - WM_DIGEST;
        runs = s_get (&reader, 8);
        instances = (s_instance_t *) calloc (self->batch, sizeof (s_instance_t));
        assert (instances);
        for (uint32_t i = 0; i < self->batch; i++) {
            instances [i].particles = (s_particle_t *) calloc (self->config.particles,
                                                                 sizeof (s_particle_t));
            assert (instances [i].particles);
        }
        for (uint32_t i = 0; i < self->batch && !problem; i++)
            problem = s_get_instance (self, &reader, &instances [i]);
        //  Short of bytes, the checks above saw zeros: that is the cause
        if (reader.short_read)
            problem = "world-model snapshot truncated";
        else
        if (!problem && reader.at != reader.size)
            problem = "world-model snapshot has bytes past its instances";
    }
    if (cause)
        *cause = problem;
    if (problem) {
        if (instances)
            s_instances_destroy (&instances, self->batch);
        return -1;
    }
    s_instances_destroy (&self->instances, self->batch);
    self->instances = instances;
    self->runs = runs;
    return 0;
}

//  --------------------------------------------------------------------------
//  Validation and robust combinations

int
wm_readings_validate (const qt_env_decl_t *decl, const qt_readings_t *readings,
                      const char **cause)
{
    const char *problem = NULL;
    if (readings->step > decl->max_steps)
        problem = "step beyond the episode length";
    else
    if (readings->step > 0 && readings->action >= decl->n_actions)
        problem = "executed action is not an action of this environment";
    else
    if (readings->terminated && !readings->done)
        problem = "a terminated episode must be done";
    else
    if (!isfinite (readings->observed_reward))
        problem = "observed reward is not finite";
    else
        qt_env_reading_valid (decl, readings->values, readings->length, &problem);
    if (cause)
        *cause = problem;
    return problem ? -1 : 0;
}

//  Most common value among n (ties: the smallest value).
static uint32_t
s_majority (const uint32_t *values, size_t n)
{
    uint32_t best = 0;
    size_t best_count = 0;
    for (size_t i = 0; i < n; i++) {
        size_t count = 0;
        for (size_t j = 0; j < n; j++)
            count += values [j] == values [i];
        if (count > best_count || (count == best_count && values [i] < best)) {
            best = values [i];
            best_count = count;
        }
    }
    return best;
}

static int
s_compare_double (const void *a, const void *b)
{
    double x = *(const double *) a, y = *(const double *) b;
    return (x > y) - (x < y);
}

//  Median of the finite values among n (mean of the middle two); NAN if none.
static double
s_median (const double *values, size_t n)
{
    double sorted [64];
    assert (n <= 64);
    size_t m = 0;
    for (size_t i = 0; i < n; i++)
        if (isfinite (values [i]))
            sorted [m++] = values [i];
    if (m == 0)
        return NAN;
    qsort (sorted, m, sizeof (double), s_compare_double);
    return m % 2 ? sorted [m / 2] : (sorted [m / 2 - 1] + sorted [m / 2]) / 2;
}

int
wm_readings_combine (const qt_readings_t *const *replicas, size_t n, qt_readings_t *out)
{
    uint32_t values [64];
    double rewards [64];
    assert (n <= 64);
    const qt_readings_t *voters [64];
    size_t present = 0;
    for (size_t i = 0; i < n; i++)
        if (replicas [i])
            values [present++] = replicas [i]->length;
    if (present == 0)
        return -1;
    memset (out, 0, sizeof *out);
    out->length = s_majority (values, present);
    if (out->length > QT_ENV_MAX_READING)
        out->length = 0;
    size_t m = 0;
    for (size_t i = 0; i < n; i++)
        if (replicas [i] && replicas [i]->length == out->length)
            voters [m++] = replicas [i];

    //  Gathers one field of every voter, then takes the majority
#define S_MAJORITY_OF(field) do { \
        for (size_t i_ = 0; i_ < m; i_++) values [i_] = (uint32_t) voters [i_]->field; \
        out->field = s_majority (values, m); \
    } while (0)
    S_MAJORITY_OF (episode);
    S_MAJORITY_OF (step);
    S_MAJORITY_OF (done);
    S_MAJORITY_OF (terminated);
    S_MAJORITY_OF (action);
    for (uint32_t k = 0; k < out->length; k++)
        S_MAJORITY_OF (values [k]);
#undef S_MAJORITY_OF
    for (size_t i = 0; i < m; i++)
        rewards [i] = voters [i]->observed_reward;
    out->observed_reward = s_median (rewards, m);
    if (!isfinite (out->observed_reward))
        out->observed_reward = 0;
    return 0;
}

//  Squared distance between two beliefs of the same shape, over everything
//  they publish: features, reliabilities, P(honest), entropy, data
//  reliability, and their samples (values, features and weights, in order)
static double
s_belief_distance (const wm_belief_t *a, const wm_belief_t *b)
{
    double sum = 0, d;
    for (uint32_t f = 0; f < a->n_features; f++) {
        d = a->features [f] - b->features [f];
        sum += d * d;
    }
    for (uint32_t s = 0; s < a->n_sensors; s++) {
        d = a->reliability [s] - b->reliability [s];
        sum += d * d;
        d = a->honest [s] - b->honest [s];
        sum += d * d;
    }
    d = a->entropy - b->entropy;
    sum += d * d;
    d = a->data_reliability - b->data_reliability;
    sum += d * d;
    uint32_t samples = a->n_samples > b->n_samples ? a->n_samples : b->n_samples;
    for (uint32_t k = 0; k < samples; k++) {
        const wm_sample_t *x = k < a->n_samples ? &a->samples [k] : NULL;
        const wm_sample_t *y = k < b->n_samples ? &b->samples [k] : NULL;
        if (!x || !y) {
            sum += 1;           //  a sample one has and the other has not
            continue;
        }
        d = x->weight - y->weight;
        sum += d * d;
        for (uint32_t f = 0; f < a->n_features; f++) {
            d = x->features [f] - y->features [f];
            sum += d * d;
        }
        for (uint32_t v = 0; v < a->n_vars; v++)
            sum += x->values [v] != y->values [v];
    }
    return sum;
}

int
wm_belief_combine (const wm_belief_t *const *beliefs, size_t n, wm_belief_t *out)
{
    const wm_belief_t *first = NULL;
    assert (n <= 64);
    for (size_t i = 0; i < n; i++) {
        if (!beliefs [i])
            continue;
        if (!first)
            first = beliefs [i];
        if (beliefs [i]->n_features != first->n_features || beliefs [i]->n_sensors != first->n_sensors
        ||  beliefs [i]->n_vars != first->n_vars
        ||  beliefs [i]->n_features > QT_ENV_MAX_FEATURES || beliefs [i]->n_sensors > QT_ENV_MAX_SENSORS
        ||  beliefs [i]->n_vars > QT_ENV_MAX_VARS || beliefs [i]->n_samples > WM_MAX_SAMPLES)
            return -1;
    }
    if (!first)
        return -1;
    memset (out, 0, sizeof *out);
    out->n_vars = first->n_vars;
    out->n_features = first->n_features;
    out->n_sensors = first->n_sensors;
    double column [64];

    //  Gathers one coordinate of every present belief, then takes the median
#define S_MEDIAN_OF(field) do { \
        size_t m_ = 0; \
        for (size_t i_ = 0; i_ < n; i_++) \
            if (beliefs [i_]) column [m_++] = beliefs [i_]->field; \
        out->field = s_median (column, m_); \
    } while (0)
    for (uint32_t f = 0; f < out->n_features; f++)
        S_MEDIAN_OF (features [f]);
    for (uint32_t s = 0; s < out->n_sensors; s++) {
        S_MEDIAN_OF (reliability [s]);
        S_MEDIAN_OF (honest [s]);
    }
    S_MEDIAN_OF (entropy);
    S_MEDIAN_OF (data_reliability);
    S_MEDIAN_OF (effective_particles);
#undef S_MEDIAN_OF

    //  The samples come from the medoid: the replica whose whole belief
    //  (features, reliabilities, samples) is nearest the others'. Honest
    //  replicas agree bit for bit, so with a majority of them the medoid is
    //  one; the median features alone could tie (every feature is 0 at an
    //  episode's start) and let a liar's samples through.
    const wm_belief_t *closest = first;
    double best = INFINITY;
    for (size_t i = 0; i < n; i++) {
        if (!beliefs [i])
            continue;
        double total = 0;
        for (size_t j = 0; j < n; j++)
            if (beliefs [j] && j != i)
                total += s_belief_distance (beliefs [i], beliefs [j]);
        if (total < best) {
            best = total;
            closest = beliefs [i];
        }
    }
    out->n_samples = closest->n_samples;
    memcpy (out->samples, closest->samples, sizeof out->samples);
    return 0;
}

//  --------------------------------------------------------------------------
//  Selftest of state transfer

//  Instances of a world, each starting a new episode every WM_TEST_EPISODE
//  ticks at most; odd instances then idle a few ticks in between, as
//  instances without an episode do.
#define WM_TEST_EPISODE         25
#define WM_TEST_IDLE            3
#define WM_TEST_INSTANCES       2

typedef struct {
    qt_world_t *worlds [WM_TEST_INSTANCES];
    uint32_t idle [WM_TEST_INSTANCES];      //  ticks left idle
    qt_rng_t rng;                           //  the actions
} s_test_world_t;

static void
s_test_world_init (s_test_world_t *world, const qt_env_decl_t *decl, uint64_t seed)
{
    memset (world, 0, sizeof *world);
    for (uint32_t i = 0; i < WM_TEST_INSTANCES; i++)
        world->worlds [i] = qt_world_new (decl, seed, i);
    qt_rng_seed (&world->rng, seed, WM_TEST_INSTANCES);
}

static void
s_test_world_destroy (s_test_world_t *world)
{
    for (uint32_t i = 0; i < WM_TEST_INSTANCES; i++)
        qt_world_destroy (&world->worlds [i]);
}

//  One tick of every instance into n filters: beliefs [k][i] is filter
//  k's of instance i.
static void
s_test_tick (s_test_world_t *world, wm_filter_t **filters, size_t n,
             wm_belief_t (*beliefs) [WM_TEST_INSTANCES])
{
    for (uint32_t i = 0; i < WM_TEST_INSTANCES; i++) {
        qt_world_t *instance = world->worlds [i];
        if (world->idle [i] > 0) {
            for (size_t k = 0; k < n; k++)
                QT_CHECK (wm_filter_idle (filters [k], i, &beliefs [k][i]) == 0);
            if (--world->idle [i] == 0)
                qt_world_reset (instance);
            continue;
        }
        qt_readings_t readings;
        qt_world_read (instance, &readings);
        for (size_t k = 0; k < n; k++)
            QT_CHECK (wm_filter_update (filters [k], i, &readings, &beliefs [k][i]) == 0);
        if (qt_world_done (instance) || instance->step + 1 >= WM_TEST_EPISODE) {
            if (i % 2)
                world->idle [i] = WM_TEST_IDLE;
            else
                qt_world_reset (instance);
        }
        else
            QT_CHECK (qt_world_step (instance, qt_rng_below (&world->rng, instance->decl.n_actions)) == 0);
    }
}

static zchunk_t *
s_test_snapshot (wm_filter_t *filter)
{
    zchunk_t *chunk = zchunk_new (NULL, 0);
    QT_CHECK (chunk && wm_filter_snapshot (filter, chunk) == 0);
    return chunk;
}

static void
s_test_same_state (wm_filter_t *filter, const zchunk_t *expected)
{
    zchunk_t *now = s_test_snapshot (filter);
    QT_CHECK (zchunk_size (now) == zchunk_size ((zchunk_t *) expected));
    QT_CHECK (memcmp (zchunk_data (now), zchunk_data ((zchunk_t *) expected), zchunk_size (now)) == 0);
    zchunk_destroy (&now);
}

//  The bytes are refused with a cause (naming `why` when given) and the
//  filter still holds `state`.
static void
s_test_refused (wm_filter_t *filter, const uint8_t *data, size_t size, const zchunk_t *state,
                const char *why)
{
    const char *cause = NULL;
    QT_CHECK (wm_filter_restore (filter, data, size, &cause) == -1);
    QT_CHECK (cause && (!why || strstr (cause, why)));
    s_test_same_state (filter, state);
}

//  A snapshot of another filter configuration, declaration or seed.
static void
s_test_refused_from (wm_filter_t *filter, const qt_env_decl_t *decl,
                     const wm_filter_config_t *config, uint32_t batch, uint64_t seed,
                     const zchunk_t *state, const char *why)
{
    wm_filter_t *other = wm_filter_new (decl, config, batch, seed);
    QT_CHECK (other);
    zchunk_t *snapshot = s_test_snapshot (other);
    s_test_refused (filter, zchunk_data (snapshot), zchunk_size (snapshot), state, why);
    zchunk_destroy (&snapshot);
    wm_filter_destroy (&other);
}

//  Every environment's states pass restore's checks (its domains), and a
//  restored filter goes on as the original.
static void
s_test_every_environment (const wm_filter_config_t *config)
{
    for (const qt_env_module_t *module = qt_env_registry; module->name; module++) {
        qt_env_params_t params;
        qt_env_params_init (&params);
        qt_env_decl_t decl;
        QT_CHECK (qt_env_declare (module->name, &params, &decl, NULL) == 0);
        s_test_world_t world;
        s_test_world_init (&world, &decl, 5);
        wm_filter_t *filters [2] = { wm_filter_new (&decl, config, WM_TEST_INSTANCES, 5),
                                     wm_filter_new (&decl, config, WM_TEST_INSTANCES, 5) };
        wm_belief_t beliefs [2][WM_TEST_INSTANCES];
        for (uint32_t t = 0; t < 12; t++)
            s_test_tick (&world, filters, 1, beliefs);
        zchunk_t *snapshot = s_test_snapshot (filters [0]);
        const char *cause = NULL;
        QT_CHECK (wm_filter_restore (filters [1], zchunk_data (snapshot), zchunk_size (snapshot),
                                   &cause) == 0 && !cause);
        for (uint32_t t = 0; t < 4; t++) {
            s_test_tick (&world, filters, 2, beliefs);
            QT_CHECK (memcmp (beliefs [0], beliefs [1], sizeof beliefs [0]) == 0);
        }
        zchunk_destroy (&snapshot);
        for (uint32_t k = 0; k < 2; k++)
            wm_filter_destroy (&filters [k]);
        s_test_world_destroy (&world);
    }
}

//  A filter restored from another's snapshot publishes what that one does,
//  bit for bit, through episodes and idle ticks; without the restore it
//  does not; the bytes are the state's; and whatever else restore is
//  given, it refuses with a cause and changes nothing.
static void
s_test_snapshots (const qt_env_decl_t *decl, const wm_filter_config_t *config)
{
    //  A broken and a malicious sensor (the filter does not know which),
    //  so the tamper theories carry weight and reliabilities move
    QT_CHECK (decl->n_sensors > 2);
    qt_env_params_t params;
    qt_env_params_init (&params);
    params.sensor_mode [decl->sensors [1].id] = QT_SENSOR_BROKEN;
    params.sensor_mode [decl->sensors [2].id] = QT_SENSOR_MALICIOUS;
    qt_env_decl_t world_decl;
    QT_CHECK (qt_env_declare (decl->name, &params, &world_decl, NULL) == 0);
    s_test_world_t world;
    s_test_world_init (&world, &world_decl, 11);

    wm_filter_t *a = wm_filter_new (decl, config, WM_TEST_INSTANCES, 7);
    wm_filter_t *b = wm_filter_new (decl, config, WM_TEST_INSTANCES, 7);
    wm_filter_t *fresh = wm_filter_new (decl, config, WM_TEST_INSTANCES, 7);
    QT_CHECK (a && b && fresh);
    wm_belief_t beliefs [3][WM_TEST_INSTANCES];
    for (uint32_t t = 0; t < 40; t++)
        s_test_tick (&world, &a, 1, beliefs);
    QT_CHECK (wm_filter_reliability (a, 0, 1) < config->reliability_prior);

    //  Appended after what out already holds
    zchunk_t *snapshot = zchunk_new ("role", 4);
    QT_CHECK (wm_filter_snapshot (a, snapshot) == 0);
    const uint8_t *good = zchunk_data (snapshot) + 4;
    size_t size = zchunk_size (snapshot) - 4;
    const char *cause = "";
    QT_CHECK (wm_filter_restore (b, good, size, &cause) == 0 && cause == NULL);
    zchunk_t *state = s_test_snapshot (b);
    QT_CHECK (zchunk_size (state) == size && memcmp (zchunk_data (state), good, size) == 0);

    //  Fed the same, the restored filter says what the original says; a
    //  fresh one (the ablation) does not
    wm_filter_t *three [3] = { a, b, fresh };
    uint32_t compared = 0, differing = 0;
    for (uint32_t t = 0; t < 100; t++) {
        s_test_tick (&world, three, 3, beliefs);
        for (uint32_t i = 0; i < WM_TEST_INSTANCES; i++) {
            QT_CHECK (memcmp (&beliefs [0][i], &beliefs [1][i], sizeof (wm_belief_t)) == 0);
            differing += memcmp (&beliefs [0][i], &beliefs [2][i], sizeof (wm_belief_t)) != 0;
            compared++;
        }
    }
    QT_CHECK (differing > compared / 2);
    zchunk_destroy (&state);
    state = s_test_snapshot (a);
    s_test_same_state (b, state);

    //  From here b holds a's state after those ticks; nothing below may
    //  change it. Truncated anywhere, one bit flipped anywhere, one byte
    //  too many, random bytes (with a valid magic and version too)
    zchunk_destroy (&snapshot);
    snapshot = s_test_snapshot (a);
    good = zchunk_data (snapshot);
    size = zchunk_size (snapshot);
    uint8_t *bad = (uint8_t *) malloc (size + 1);
    QT_CHECK (bad);
    s_test_refused (b, NULL, 0, state, NULL);
    for (size_t cut = 0; cut < size; cut += cut < 400 ? 1 : 101)
        s_test_refused (b, good, cut, state, NULL);
    s_test_refused (b, good, size - 1, state, NULL);
    for (size_t at = 0; at < size; at += 13) {
        memcpy (bad, good, size);
        bad [at] ^= (uint8_t) (1 << (at % 8));
        s_test_refused (b, bad, size, state, NULL);
    }
    memcpy (bad, good, size);
    bad [size] = 0;
    s_test_refused (b, bad, size + 1, state, NULL);
    s_field_t header [WM_SNAPSHOT_FIELDS];
    size_t fields = s_header (b, header), header_size = 0;
    for (size_t k = 0; k < fields; k++)
        header_size += header [k].size;
    qt_rng_t noise;
    qt_rng_seed (&noise, 13, 0);
    for (uint32_t r = 0; r < 16; r++) {
        for (size_t k = 0; k < size; k++)
            bad [k] = (uint8_t) qt_rng_next (&noise);
        if (r % 2)
            memcpy (bad, good, header_size);
        s_test_refused (b, bad, size, state, r % 2 ? "digest" : "not a world-model snapshot");
    }

    //  Another configuration, declaration or seed
    wm_filter_config_t other = *config;
    other.particles = config->particles / 2;
    s_test_refused_from (b, decl, &other, WM_TEST_INSTANCES, 7, state, "particles");
    other = *config;
    other.stuck = config->stuck / 2;
    s_test_refused_from (b, decl, &other, WM_TEST_INSTANCES, 7, state, "stuck");
    s_test_refused_from (b, decl, config, WM_TEST_INSTANCES + 1, 7, state, "batch");
    s_test_refused_from (b, decl, config, WM_TEST_INSTANCES, 8, state, "seed");
    qt_env_decl_t other_decl;
    qt_env_params_init (&params);
    snprintf (params.without, sizeof params.without, "%s", decl->sensors [1].family);
    QT_CHECK (qt_env_declare (decl->name, &params, &other_decl, NULL) == 0);
    s_test_refused_from (b, &other_decl, config, WM_TEST_INSTANCES, 7, state, "declaration");
    qt_env_params_init (&params);
    QT_CHECK (qt_env_declare (qt_env_registry [1].name, &params, &other_decl, NULL) == 0);
    s_test_refused_from (b, &other_decl, config, WM_TEST_INSTANCES, 7, state, "another environment");

    //  Well-formed and sealed, but the state is impossible: each check
    //  refuses, naming what is wrong
    wm_filter_t *poked = wm_filter_new (decl, config, WM_TEST_INSTANCES, 7);
    static const char *const causes [] = {
        "generator", "flags", "reliability", "last reading", "domain", "terminated",
        "feature", "outside [0, 1]", "sum to 1", "truncated", "past its instances"
    };
    for (uint32_t k = 0; k < sizeof causes / sizeof causes [0]; k++) {
        QT_CHECK (wm_filter_restore (poked, good, size, NULL) == 0);
        s_instance_t *inst = &poked->instances [k % WM_TEST_INSTANCES];
        s_particle_t *particle = &inst->particles [k % config->particles];
        size_t cut = 0;
        switch (k) {
            case 0: memset (&inst->rng, 0, sizeof inst->rng); break;
            case 1: inst->live = false; break;
            case 2: inst->reliability [0] = 1; break;
            case 3: inst->previous [decl->sensors [0].offset] = 0; break;
            case 4: particle->state.v [0] = (int16_t) decl->vars [0].values; break;
            case 5: particle->state.terminated = 2; break;
            case 6: particle->features [0] = NAN; break;
            case 7: particle->weight = -0.5; break;
            case 8: particle->weight = particle->weight / 2 + 0.25; break;
            case 9: cut = 8; break;                  //  the last weight missing
            default: break;
        }
        zchunk_t *sealed = s_test_snapshot (poked);
        size_t length = zchunk_size (sealed) - WM_DIGEST - cut;
        memcpy (bad, zchunk_data (sealed), length);
        if (k == 10)
            bad [length++] = 0;
        s_digest (bad, length, bad + length);
        s_test_refused (b, bad, length + WM_DIGEST, state, causes [k]);
        zchunk_destroy (&sealed);
    }
    wm_filter_destroy (&poked);

    free (bad);
    zchunk_destroy (&snapshot);
    zchunk_destroy (&state);
    wm_filter_destroy (&a);
    wm_filter_destroy (&b);
    wm_filter_destroy (&fresh);
    s_test_world_destroy (&world);
    s_test_every_environment (config);
}

//  --------------------------------------------------------------------------
//  Selftest: on the default environment, the honest camera's world is
//  tracked exactly; validation and the combinations behave.

void
wm_filter_test (bool verbose)
{
    if (verbose)
        printf (" * wm_filter: ");
    qt_env_params_t params;
    qt_env_params_init (&params);
    qt_env_decl_t decl;
    QT_CHECK (qt_env_declare (qt_env_default (), &params, &decl, NULL) == 0);
    wm_filter_config_t config;
    wm_filter_config_default (&config);
    wm_filter_t *filter = wm_filter_new (&decl, &config, 2, 7);
    QT_CHECK (filter);
    qt_world_t *world = qt_world_new (&decl, 7, 0);
    qt_rng_t rng;
    qt_rng_seed (&rng, 7, 1);
    qt_readings_t readings;
    wm_belief_t belief;
    const char *cause = NULL;
    for (uint32_t t = 0; t < 30; t++) {
        if (t > 0)
            QT_CHECK (qt_world_step (world, qt_rng_below (&rng, decl.n_actions)) == 0);
        qt_world_read (world, &readings);
        QT_CHECK (wm_readings_validate (&decl, &readings, &cause) == 0 && cause == NULL);
        QT_CHECK (wm_filter_update (filter, 0, &readings, &belief) == 0);
        QT_CHECK (belief.n_samples >= 1 && belief.n_samples <= config.samples);
        double weights = 0;
        for (uint32_t j = 0; j < belief.n_samples; j++)
            weights += belief.samples [j].weight;
        QT_CHECK (fabs (weights - 1) < 1e-9);
        QT_CHECK (belief.data_reliability > 0.5);
        //  The true state carries most of the posterior
        QT_CHECK (wm_filter_state_mass (filter, 0, &world->state, true) > 0.5);
    }
    QT_CHECK (wm_filter_update (filter, 2, &readings, &belief) == -1);
    QT_CHECK (wm_filter_runs (filter) >= 30);

    //  Validation catches values and clocks
    qt_readings_t bad = readings;
    bad.values [0] = 'Z';
    QT_CHECK (wm_readings_validate (&decl, &bad, &cause) == -1 && cause);
    bad = readings;
    bad.length = 3;
    QT_CHECK (wm_readings_validate (&decl, &bad, &cause) == -1);
    bad = readings;
    bad.step = decl.max_steps + 1;
    QT_CHECK (wm_readings_validate (&decl, &bad, &cause) == -1);
    bad = readings;
    bad.observed_reward = NAN;
    QT_CHECK (wm_readings_validate (&decl, &bad, &cause) == -1);

    //  Combination: one lying collector among three is outvoted
    qt_readings_t liar = readings;
    for (uint32_t k = 0; k < liar.length; k++)
        liar.values [k] = decl.codes [0];
    liar.observed_reward = 1e6;
    liar.step++;
    const qt_readings_t *replicas [4] = { &readings, &liar, NULL, &readings };
    qt_readings_t combined;
    QT_CHECK (wm_readings_combine (replicas, 4, &combined) == 0);
    QT_CHECK (memcmp (combined.values, readings.values, readings.length) == 0);
    QT_CHECK (combined.observed_reward == readings.observed_reward);
    QT_CHECK (combined.step == readings.step);
    const qt_readings_t *none [2] = { NULL, NULL };
    QT_CHECK (wm_readings_combine (none, 2, &combined) == -1);

    //  Belief combination: a liar whose features tie the honest ones (all 0
    //  at an episode's start) but whose samples and reliabilities differ
    //  is not the medoid, even as the first replica
    wm_belief_t twin_liar = belief;
    for (uint32_t f = 0; f < decl.n_features; f++)
        twin_liar.features [f] = 0;
    wm_belief_t honest_start = twin_liar;
    for (uint32_t j = 0; j < twin_liar.n_samples; j++)
        twin_liar.samples [j].weight = 1 - twin_liar.samples [j].weight;
    for (uint32_t s = 0; s < decl.n_sensors; s++)
        twin_liar.reliability [s] = 1 - twin_liar.reliability [s];
    const wm_belief_t *tied [3] = { &twin_liar, &honest_start, &honest_start };
    wm_belief_t picked;
    QT_CHECK (wm_belief_combine (tied, 3, &picked) == 0);
    QT_CHECK (memcmp (picked.samples, honest_start.samples, sizeof picked.samples) == 0);

    //  Belief combination: a replica with absurd features is ignored
    wm_belief_t wild = belief;
    for (uint32_t f = 0; f < decl.n_features; f++)
        wild.features [f] = 1e6;
    wild.data_reliability = 0;
    const wm_belief_t *beliefs [3] = { &belief, &wild, &belief };
    wm_belief_t median;
    QT_CHECK (wm_belief_combine (beliefs, 3, &median) == 0);
    QT_CHECK (median.data_reliability == belief.data_reliability);
    QT_CHECK (memcmp (median.samples, belief.samples, sizeof belief.samples) == 0);

    //  Determinism: the same seed and inputs give the same posterior
    wm_filter_t *twin = wm_filter_new (&decl, &config, 2, 7);
    wm_filter_t *again = wm_filter_new (&decl, &config, 2, 7);
    qt_world_t *replay = qt_world_new (&decl, 9, 0);
    for (uint32_t t = 0; t < 10; t++) {
        if (t > 0)
            qt_world_step (replay, qt_rng_below (&rng, decl.n_actions));
        qt_world_read (replay, &readings);
        wm_belief_t a, b;
        wm_filter_update (twin, 1, &readings, &a);
        wm_filter_update (again, 1, &readings, &b);
        QT_CHECK (memcmp (&a, &b, sizeof a) == 0);
    }
    qt_world_destroy (&replay);
    wm_filter_destroy (&twin);
    wm_filter_destroy (&again);

    //  State transfer
    s_test_snapshots (&decl, &config);

    //  Invalid configurations are refused
    wm_filter_config_t wrong = config;
    wrong.samples = WM_MAX_SAMPLES + 1;
    QT_CHECK (wm_filter_new (&decl, &wrong, 1, 1) == NULL);
    wrong = config;
    wrong.particles = 0;
    QT_CHECK (wm_filter_new (&decl, &wrong, 1, 1) == NULL);

    qt_world_destroy (&world);
    wm_filter_destroy (&filter);
    wm_filter_destroy (&filter);
    QT_CHECK (filter == NULL);
    if (verbose)
        printf ("OK\n");
}
