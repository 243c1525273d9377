/*  wm_filter: Bayesian filter with learned sensor reliabilities, and the
    robust combination of collector readings and of world-model beliefs.
    See filter.h for the model.
*/
#include <assert.h>
#include <math.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "filter.h"

//  Defaults, chosen so that the learned figures move within a few episodes
//  (100 ticks each) yet one odd tick cannot swing them.
#define WM_RELIABILITY_PRIOR    0.9
#define WM_RELIABILITY_MIN      0.02
#define WM_RELIABILITY_MAX      0.99
#define WM_LEARNING_WARMUP      20.0
#define WM_LEARNING_RATE_MIN    0.005
#define WM_PRIOR_FLOOR          1e-3
#define WM_DEFAULT_SAMPLES      8

//  Keeps probabilities away from 0 and 1 so logs and ratios stay finite.
#define WM_PROB_EPSILON         1e-12
//  Stream id of the sampling generator of instance i: distinct from the
//  world's streams of the same seed.
#define WM_SAMPLE_STREAM        (2ULL << 32)

typedef struct {
    double p [QT_ENV_MAX_VARS];                 //  P(variable = 1)
    double reliability [QT_ENV_MAX_SENSORS];
    uint64_t updates;                           //  ticks incorporated, ever
    qt_rng_t rng;                               //  sample draws
} s_instance_t;

struct _wm_filter_t {
    qt_env_decl_t decl;
    wm_filter_config_t config;
    uint32_t batch;
    s_instance_t *instances;
};

void
wm_filter_config_default (wm_filter_config_t *config)
{
    config->reliability_prior = WM_RELIABILITY_PRIOR;
    config->reliability_min = WM_RELIABILITY_MIN;
    config->reliability_max = WM_RELIABILITY_MAX;
    config->learning_warmup = WM_LEARNING_WARMUP;
    config->learning_rate_min = WM_LEARNING_RATE_MIN;
    config->prior_floor = WM_PRIOR_FLOOR;
    config->samples = WM_DEFAULT_SAMPLES;
}

static double
s_clamp (double x, double lo, double hi)
{
    return x < lo? lo: x > hi? hi: x;
}

wm_filter_t *
wm_filter_new (const qt_env_decl_t *decl, const wm_filter_config_t *config,
               uint32_t batch, uint64_t seed)
{
    if (batch == 0 || config->samples == 0 || config->samples > WM_MAX_SAMPLES
    ||  !(config->reliability_min > 0 && config->reliability_min <= config->reliability_prior
          && config->reliability_prior <= config->reliability_max
          && config->reliability_max < 1)
    ||  !(config->learning_rate_min > 0 && config->learning_rate_min <= 1)
    ||  !(config->learning_warmup >= 1)
    ||  !(config->prior_floor > 0 && config->prior_floor < 0.5))
        return NULL;
    wm_filter_t *self = (wm_filter_t *) calloc (1, sizeof (wm_filter_t));
    assert (self);
    self->decl = *decl;
    self->config = *config;
    self->batch = batch;
    self->instances = (s_instance_t *) calloc (batch, sizeof (s_instance_t));
    assert (self->instances);
    for (uint32_t i = 0; i < batch; i++) {
        s_instance_t *inst = &self->instances [i];
        for (uint32_t s = 0; s < decl->n_sensors; s++)
            inst->reliability [s] = config->reliability_prior;
        inst->reliability [decl->position_sensor] = 1.0;
        qt_rng_seed (&inst->rng, seed, WM_SAMPLE_STREAM | i);
    }
    return self;
}

void
wm_filter_destroy (wm_filter_t **self_p)
{
    assert (self_p);
    if (*self_p) {
        wm_filter_t *self = *self_p;
        free (self->instances);
        free (self);
        *self_p = NULL;
    }
}

static double
s_binary_entropy (double p)
{
    if (p <= 0 || p >= 1)
        return 0;
    return -(p * log2 (p) + (1 - p) * log2 (1 - p));
}

//  Latin-hypercube draw of n states from independent marginals: for every
//  variable the n samples take one stratum of [0,1) each, in random order,
//  so the fraction of samples with the variable set is within 1/n of its
//  marginal and the expected score over samples is nearly exact.
static void
s_draw_samples (qt_rng_t *rng, const double *p, uint32_t n_vars, uint32_t n, wm_belief_t *belief)
{
    uint32_t order [WM_MAX_SAMPLES];
    for (uint32_t k = 0; k < n_vars; k++) {
        for (uint32_t j = 0; j < n; j++)
            order [j] = j;
        for (uint32_t j = n - 1; j > 0; j--) {
            uint32_t other = qt_rng_below (rng, j + 1);
            uint32_t swap = order [j];
            order [j] = order [other];
            order [other] = swap;
        }
        for (uint32_t j = 0; j < n; j++) {
            double u = (order [j] + qt_rng_uniform (rng)) / n;
            belief->sample_value [j][k] = u < p [k];
        }
    }
    belief->n_samples = n;
    for (uint32_t j = 0; j < n; j++)
        belief->sample_weight [j] = 1.0 / n;
}

int
wm_filter_update (wm_filter_t *self, uint32_t instance, uint32_t step,
                  const qt_readings_t *readings, wm_belief_t *belief)
{
    if (instance >= self->batch)
        return -1;
    const qt_env_decl_t *decl = &self->decl;
    const wm_filter_config_t *config = &self->config;
    s_instance_t *inst = &self->instances [instance];
    memset (belief, 0, sizeof (*belief));
    uint32_t position = readings->position;
    uint32_t n_vars = decl->n_vars;
    double floor = config->prior_floor;

    //  Prior for this tick: the declared start, or the prediction
    for (uint32_t k = 0; k < n_vars; k++) {
        if (step == 0)
            inst->p [k] = decl->var_initial [k];
        else
            inst->p [k] = decl->predict (decl, k, inst->p [k], position);
        inst->p [k] = s_clamp (inst->p [k], floor, 1 - floor);
    }

    //  Camera cell likelihoods: honest = declared noise spread over the
    //  other codes; tampered = uniform over all codes (no information).
    const qt_sensor_decl_t *camera = &decl->sensors [decl->camera_sensor];
    double n_codes = (double) strlen (decl->codes);
    double cam_match = 1 - camera->honest_noise;
    double cam_miss = camera->honest_noise / (n_codes - 1);
    double cam_garbage = 1 / n_codes;

    uint8_t expected [QT_ENV_MAX_CELLS];
    uint8_t all_false [QT_ENV_MAX_VARS] = { 0 };
    decl->render (decl, position, all_false, expected);
    bool is_var_cell [QT_ENV_MAX_CELLS] = { false };
    for (uint32_t k = 0; k < n_vars; k++)
        if (decl->var_cell [k] != position)
            is_var_cell [decl->var_cell [k]] = true;

    //  Cells whose honest image does not depend on the state
    double log_honest = 0, log_tampered = 0;
    for (uint32_t c = 0; c < decl->n_cells; c++) {
        if (is_var_cell [c])
            continue;
        log_honest += log (readings->camera [c] == expected [c]? cam_match: cam_miss);
        log_tampered += log (cam_garbage);
    }

    //  Per variable, for each camera component C: evidence e, posterior of
    //  the variable q, and P(probe honest) h.
    double q_c [2][QT_ENV_MAX_VARS], h_c [2][QT_ENV_MAX_VARS];
    for (uint32_t k = 0; k < n_vars; k++) {
        uint32_t cell = decl->var_cell [k];
        const qt_sensor_decl_t *probe = &decl->sensors [decl->first_probe_sensor + k];
        double rho = inst->reliability [decl->first_probe_sensor + k];
        double prior [2] = { 1 - inst->p [k], inst->p [k] };
        double like_cam [2][2];     //  [component][value]
        for (int w = 0; w < 2; w++) {
            uint8_t code = (uint8_t) (w? decl->var_true_code: decl->var_false_code);
            if (cell == position)   //  the agent hides the cell: no information
                like_cam [0][w] = cam_match;
            else
                like_cam [0][w] = readings->camera [cell] == code? cam_match: cam_miss;
            like_cam [1][w] = cam_garbage;
        }
        double probe_honest [2], probe_tampered = 0.5;
        for (int w = 0; w < 2; w++)
            probe_honest [w] = readings->moisture [k] == w?
                1 - probe->honest_noise: probe->honest_noise;
        for (int component = 0; component < 2; component++) {
            double joint [2], joint_honest = 0, evidence = 0;
            for (int w = 0; w < 2; w++) {
                double base = prior [w] * like_cam [component][w];
                double honest_part = base * rho * probe_honest [w];
                joint [w] = honest_part + base * (1 - rho) * probe_tampered;
                joint_honest += honest_part;
                evidence += joint [w];
            }
            evidence = fmax (evidence, WM_PROB_EPSILON);
            q_c [component][k] = joint [1] / evidence;
            h_c [component][k] = joint_honest / evidence;
            if (component == 0)
                log_honest += log (evidence);
            else
                log_tampered += log (evidence);
        }
    }

    //  P(camera honest | data), then collapse the mixture to marginals
    double rho_cam = inst->reliability [decl->camera_sensor];
    double a = log (rho_cam) + log_honest;
    double b = log (1 - rho_cam) + log_tampered;
    double cam_honest = 1 / (1 + exp (b - a));
    belief->n_sensors = decl->n_sensors;
    belief->honest [decl->camera_sensor] = cam_honest;
    belief->honest [decl->position_sensor] = 1.0;
    double weighted_honest = n_vars * cam_honest;
    double entropy = 0;
    for (uint32_t k = 0; k < n_vars; k++) {
        double p = cam_honest * q_c [0][k] + (1 - cam_honest) * q_c [1][k];
        inst->p [k] = s_clamp (p, WM_PROB_EPSILON, 1 - WM_PROB_EPSILON);
        double h = cam_honest * h_c [0][k] + (1 - cam_honest) * h_c [1][k];
        belief->honest [decl->first_probe_sensor + k] = h;
        weighted_honest += h;
        entropy += s_binary_entropy (inst->p [k]);
    }

    //  Learn reliabilities: running average of P(honest | data)
    inst->updates++;
    double rate = fmax (1.0 / ((double) inst->updates + config->learning_warmup),
                        config->learning_rate_min);
    for (uint32_t s = 0; s < decl->n_sensors; s++) {
        if (s == decl->position_sensor)
            continue;
        double rho = inst->reliability [s] + rate * (belief->honest [s] - inst->reliability [s]);
        inst->reliability [s] = s_clamp (rho, config->reliability_min, config->reliability_max);
    }

    belief->position = position;
    belief->n_vars = n_vars;
    memcpy (belief->marginal, inst->p, n_vars * sizeof (double));
    memcpy (belief->reliability, inst->reliability, decl->n_sensors * sizeof (double));
    belief->entropy = entropy;
    belief->data_reliability = n_vars? weighted_honest / (2.0 * n_vars): 1.0;
    s_draw_samples (&inst->rng, inst->p, n_vars, config->samples, belief);
    return 0;
}

double
wm_filter_reliability (wm_filter_t *self, uint32_t instance, uint32_t sensor)
{
    if (instance >= self->batch || sensor >= self->decl.n_sensors)
        return NAN;
    return self->instances [instance].reliability [sensor];
}

int
wm_readings_validate (const qt_env_decl_t *decl, const qt_readings_t *readings,
                      const char **cause)
{
    const char *problem = NULL;
    if (readings->camera_len != decl->n_cells)
        problem = "camera size differs from the board";
    else
    if (readings->moisture_count != decl->n_vars)
        problem = "moisture count differs from the declared variables";
    else
    if (readings->position >= decl->n_cells || !decl->walkable (decl, readings->position))
        problem = "position is not a walkable cell";
    else
    if (!isfinite (readings->observed_reward))
        problem = "observed reward is not finite";
    else {
        for (uint32_t c = 0; c < readings->camera_len && !problem; c++)
            if (readings->camera [c] == 0 || !strchr (decl->codes, readings->camera [c]))
                problem = "camera holds an unknown cell code";
        for (uint32_t k = 0; k < readings->moisture_count && !problem; k++)
            if (readings->moisture [k] > 1)
                problem = "moisture reading is not 0 or 1";
    }
    if (cause)
        *cause = problem;
    return problem? -1: 0;
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
    double *sorted = (double *) malloc ((n? n: 1) * sizeof (double));
    assert (sorted);
    size_t m = 0;
    for (size_t i = 0; i < n; i++)
        if (isfinite (values [i]))
            sorted [m++] = values [i];
    double median = NAN;
    if (m > 0) {
        qsort (sorted, m, sizeof (double), s_compare_double);
        median = m % 2? sorted [m / 2]: (sorted [m / 2 - 1] + sorted [m / 2]) / 2;
    }
    free (sorted);
    return median;
}

int
wm_readings_combine (const qt_readings_t *const *replicas, size_t n, qt_readings_t *out)
{
    uint32_t *values = (uint32_t *) calloc (n? n: 1, sizeof (uint32_t));
    double *rewards = (double *) calloc (n? n: 1, sizeof (double));
    assert (values && rewards);
    size_t present = 0;
    for (size_t i = 0; i < n; i++)
        if (replicas [i])
            present++;
    if (present == 0) {
        free (values);
        free (rewards);
        return -1;
    }
    memset (out, 0, sizeof (*out));

    size_t m = 0;
    for (size_t i = 0; i < n; i++)
        if (replicas [i])
            values [m++] = replicas [i]->position;
    out->position = s_majority (values, m);

    m = 0;
    for (size_t i = 0; i < n; i++)
        if (replicas [i])
            values [m++] = replicas [i]->camera_len;
    out->camera_len = s_majority (values, m);
    if (out->camera_len > QT_ENV_MAX_CELLS)
        out->camera_len = 0;
    for (uint32_t c = 0; c < out->camera_len; c++) {
        m = 0;
        for (size_t i = 0; i < n; i++)
            if (replicas [i] && replicas [i]->camera_len == out->camera_len)
                values [m++] = replicas [i]->camera [c];
        out->camera [c] = (uint8_t) s_majority (values, m);
    }

    m = 0;
    for (size_t i = 0; i < n; i++)
        if (replicas [i])
            values [m++] = replicas [i]->moisture_count;
    out->moisture_count = s_majority (values, m);
    if (out->moisture_count > QT_ENV_MAX_VARS)
        out->moisture_count = 0;
    for (uint32_t k = 0; k < out->moisture_count; k++) {
        size_t wet = 0, voters = 0;
        for (size_t i = 0; i < n; i++)
            if (replicas [i] && replicas [i]->moisture_count == out->moisture_count) {
                voters++;
                wet += replicas [i]->moisture [k] != 0;
            }
        out->moisture [k] = 2 * wet > voters;
    }

    m = 0;
    for (size_t i = 0; i < n; i++)
        if (replicas [i])
            rewards [m++] = replicas [i]->observed_reward;
    out->observed_reward = s_median (rewards, m);
    if (!isfinite (out->observed_reward))
        out->observed_reward = 0;
    free (values);
    free (rewards);
    return 0;
}

int
wm_belief_combine (const wm_belief_t *const *beliefs, size_t n, wm_belief_t *out)
{
    const wm_belief_t *first = NULL;
    size_t present = 0;
    for (size_t i = 0; i < n; i++) {
        if (!beliefs [i])
            continue;
        if (!first)
            first = beliefs [i];
        if (beliefs [i]->n_vars != first->n_vars || beliefs [i]->n_sensors != first->n_sensors
        ||  beliefs [i]->n_vars > QT_ENV_MAX_VARS || beliefs [i]->n_sensors > QT_ENV_MAX_SENSORS
        ||  beliefs [i]->n_samples > WM_MAX_SAMPLES)
            return -1;
        present++;
    }
    if (!first)
        return -1;
    double *column = (double *) malloc (present * sizeof (double));
    uint32_t *positions = (uint32_t *) malloc (present * sizeof (uint32_t));
    assert (column && positions);
    memset (out, 0, sizeof (*out));
    out->n_vars = first->n_vars;
    out->n_sensors = first->n_sensors;

    //  Gathers one coordinate of every present belief, then takes the median
#define S_MEDIAN_OF(field) do { \
        size_t m_ = 0; \
        for (size_t i_ = 0; i_ < n; i_++) \
            if (beliefs [i_]) column [m_++] = beliefs [i_]->field; \
        out->field = s_median (column, m_); \
    } while (0)

    for (uint32_t k = 0; k < out->n_vars; k++)
        S_MEDIAN_OF (marginal [k]);
    for (uint32_t s = 0; s < out->n_sensors; s++) {
        S_MEDIAN_OF (reliability [s]);
        S_MEDIAN_OF (honest [s]);
    }
    S_MEDIAN_OF (entropy);
    S_MEDIAN_OF (data_reliability);
#undef S_MEDIAN_OF

    size_t m = 0;
    for (size_t i = 0; i < n; i++)
        if (beliefs [i])
            positions [m++] = beliefs [i]->position;
    out->position = s_majority (positions, m);

    const wm_belief_t *closest = first;
    double best = INFINITY;
    for (size_t i = 0; i < n; i++) {
        if (!beliefs [i])
            continue;
        double distance = 0;
        for (uint32_t k = 0; k < out->n_vars; k++) {
            double d = beliefs [i]->marginal [k] - out->marginal [k];
            distance += d * d;
        }
        if (distance < best) {
            best = distance;
            closest = beliefs [i];
        }
    }
    out->n_samples = closest->n_samples;
    memcpy (out->sample_value, closest->sample_value, sizeof (out->sample_value));
    memcpy (out->sample_weight, closest->sample_weight, sizeof (out->sample_weight));
    free (column);
    free (positions);
    return 0;
}

//  --------------------------------------------------------------------------
//  Selftest

void
wm_filter_test (bool verbose)
{
    if (verbose)
        printf (" * wm_filter: ");
    qt_env_params_t params;
    qt_env_decl_t decl;
    assert (qt_env_params_default ("tomato_watering", &params) == 0);
    assert (qt_env_declare ("tomato_watering", &params, &decl) == 0);
    wm_filter_config_t config;
    wm_filter_config_default (&config);
    wm_filter_t *filter = wm_filter_new (&decl, &config, 2, 7);
    assert (filter);
    qt_world_t *world = qt_world_new (&decl, 7, 0);
    qt_readings_t readings;
    wm_belief_t belief;
    qt_world_read (world, &readings);
    const char *cause = NULL;
    assert (wm_readings_validate (&decl, &readings, &cause) == 0 && cause == NULL);
    assert (wm_filter_update (filter, 0, 0, &readings, &belief) == 0);
    assert (wm_filter_update (filter, 2, 0, &readings, &belief) == -1);
    assert (belief.n_vars == decl.n_vars && belief.n_samples == config.samples);
    double weights = 0;
    for (uint32_t j = 0; j < belief.n_samples; j++)
        weights += belief.sample_weight [j];
    assert (fabs (weights - 1) < 1e-12);
    for (uint32_t k = 0; k < decl.n_vars; k++)
        assert (fabs (belief.marginal [k] - decl.var_initial [k]) < 0.01);
    assert (belief.honest [decl.camera_sensor] > 0.99);
    assert (belief.data_reliability > 0.8);

    //  Validation catches sizes and codes
    qt_readings_t bad = readings;
    bad.camera [0] = 'Z';
    assert (wm_readings_validate (&decl, &bad, &cause) == -1 && cause);
    bad = readings;
    bad.moisture_count = 3;
    assert (wm_readings_validate (&decl, &bad, &cause) == -1);
    bad = readings;
    bad.position = 0;
    assert (wm_readings_validate (&decl, &bad, &cause) == -1);

    //  Combination: one lying collector among three is outvoted
    qt_readings_t liar = readings;
    liar.position = readings.position + 1;
    liar.camera [decl.var_cell [3]] = 'T';
    liar.moisture [3] = !readings.moisture [3];
    liar.observed_reward = 1e6;
    const qt_readings_t *replicas [4] = { &readings, &liar, NULL, &readings };
    qt_readings_t combined;
    assert (wm_readings_combine (replicas, 4, &combined) == 0);
    assert (combined.position == readings.position);
    assert (memcmp (combined.camera, readings.camera, readings.camera_len) == 0);
    assert (memcmp (combined.moisture, readings.moisture, readings.moisture_count) == 0);
    assert (combined.observed_reward == readings.observed_reward);
    const qt_readings_t *none [2] = { NULL, NULL };
    assert (wm_readings_combine (none, 2, &combined) == -1);

    //  Belief combination: a replica with absurd marginals is ignored
    wm_belief_t wild = belief;
    for (uint32_t k = 0; k < decl.n_vars; k++)
        wild.marginal [k] = 1 - belief.marginal [k];
    wild.data_reliability = 0;
    const wm_belief_t *beliefs [3] = { &belief, &wild, &belief };
    wm_belief_t median;
    assert (wm_belief_combine (beliefs, 3, &median) == 0);
    assert (median.data_reliability == belief.data_reliability);
    assert (memcmp (median.sample_value, belief.sample_value, sizeof (belief.sample_value)) == 0);

    //  Determinism: same seed and inputs, same samples
    wm_filter_t *twin = wm_filter_new (&decl, &config, 2, 7);
    wm_belief_t twin_belief;
    assert (wm_filter_update (twin, 0, 0, &readings, &twin_belief) == 0);
    assert (memcmp (twin_belief.sample_value, belief.sample_value, sizeof (belief.sample_value)) == 0);
    wm_filter_destroy (&twin);

    //  Invalid configuration is refused
    wm_filter_config_t wrong = config;
    wrong.samples = WM_MAX_SAMPLES + 1;
    assert (wm_filter_new (&decl, &wrong, 1, 1) == NULL);

    qt_world_destroy (&world);
    wm_filter_destroy (&filter);
    wm_filter_destroy (&filter);
    assert (filter == NULL);
    if (verbose)
        printf ("OK\n");
}
