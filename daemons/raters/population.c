/*  rt_population: the simulated people. See population.h.
*/
#include <assert.h>
#include <math.h>
#include <stddef.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "qt_rng.h"
#include "qt_selftest.h"
#include "qt_options.h"
#include "learn.h"          //  SC_COMPARISON_SCALE: how strongly people feel a reward scale
#include "population.h"

//  How strongly a colluder feels the one thing it pushes (comparison
//  units per unit of the feature): far more than any honest rater
#define S_COLLUDE_STRENGTH  (3 * SC_COMPARISON_SCALE)

#define S_NAME(name, whole, low, high, problem) #name,
const char *const rt_population_options [] = { RT_POPULATION_NUMBERS (S_NAME) "malice", NULL };
const char *const rt_malice_names [] = { "inverted", "extreme", "colluding", NULL };
const char *const rt_group_names [] = { "honest", "minority", "careless", "malicious", NULL };

#define S_OPTION(name, whole, low, high, problem) \
    { #name, offsetof (rt_population_config_t, name), whole, low, high, problem },
static const qt_option_t s_options [] = { RT_POPULATION_NUMBERS (S_OPTION) };

struct _rt_population_t {
    uint32_t n_features;
    uint32_t raters;
    uint64_t seed;
    double intended [QT_ENV_MAX_FEATURES];      //  comparison units
    rt_group_t *group;                          //  [raters]
    double *weights;                            //  [raters][n_features]
    rt_malice_t malice;
};

void
rt_population_config_default (rt_population_config_t *config)
{
    memset (config, 0, sizeof *config);
    config->raters = 20;
    config->variation = 0.2;
    config->minority_factor = -1;
    config->minority_feature = -1;
    config->collude_feature = -1;
    config->malice = RT_INVERTED;
}

int
rt_population_config_set (rt_population_config_t *config, const char *name, const char *value,
                          const char **cause)
{
    if (strcmp (name, "malice") == 0) {
        for (int m = 0; m < RT_MALICES; m++)
            if (strcmp (value, rt_malice_names [m]) == 0) {
                config->malice = (rt_malice_t) m;
                return 0;
            }
        if (cause)
            *cause = "malice is inverted, extreme or colluding";
        return -1;
    }
    int rc = qt_option_set (s_options, sizeof s_options / sizeof s_options [0], config, name,
                            value, cause);
    if (rc > 0 && cause)
        *cause = "no such raters option";
    return rc ? -1 : 0;
}

//  The group sizes from the fractions, rounded to the nearest rater
static uint32_t
s_count (double fraction, uint32_t raters)
{
    return (uint32_t) floor (fraction * raters + 0.5);
}

rt_population_t *
rt_population_new (const qt_env_decl_t *decl, const rt_population_config_t *config,
                   uint64_t seed, const char **cause)
{
    const char *problem = NULL;
    uint32_t n = decl->n_features;
    uint32_t minority = s_count (config->minority, config->raters);
    uint32_t careless = s_count (config->careless, config->raters);
    uint32_t malicious = s_count (config->malicious, config->raters);
    if (config->raters == 0 || config->raters > RT_MAX_RATERS)
        problem = "raters is a whole number in [1, 256]";
    else
    if (n == 0 || !(decl->reward_scale > 0))
        problem = "the environment declares no feature or no reward scale";
    else
    if (minority + careless + malicious > config->raters)
        problem = "the minority, careless and malicious fractions add up to more than the raters";
    else
    if (config->minority_feature >= n || config->collude_feature >= n
    ||  config->minority_feature != floor (config->minority_feature)
    ||  config->collude_feature != floor (config->collude_feature))
        problem = "minority_feature and collude_feature are features the environment declares (or -1)";
    else
    if (config->malice >= RT_MALICES)
        problem = "malice is inverted, extreme or colluding";
    if (problem) {
        if (cause)
            *cause = problem;
        return NULL;
    }
    rt_population_t *self = (rt_population_t *) calloc (1, sizeof (rt_population_t));
    assert (self);
    self->n_features = n;
    self->raters = config->raters;
    self->seed = seed;
    self->malice = config->malice;
    self->group = (rt_group_t *) calloc (config->raters, sizeof (rt_group_t));
    self->weights = (double *) calloc ((size_t) config->raters * n, sizeof (double));
    assert (self->group && self->weights);
    //  The intended value, in comparison units; the feature it values
    //  most (minority) and dislikes most (colluders)
    uint32_t largest = 0, lowest = 0;
    for (uint32_t f = 0; f < n; f++) {
        self->intended [f] = decl->performance [f] * SC_COMPARISON_SCALE / decl->reward_scale;
        if (fabs (self->intended [f]) > fabs (self->intended [largest]))
            largest = f;
        if (self->intended [f] < self->intended [lowest])
            lowest = f;
    }
    uint32_t minority_feature = config->minority_feature >= 0 ? (uint32_t) config->minority_feature : largest;
    uint32_t collude_feature = config->collude_feature >= 0 ? (uint32_t) config->collude_feature : lowest;
    //  Colluders push more of what the intended value dislikes most (less
    //  of it, when it dislikes nothing)
    double collude = self->intended [collude_feature] < 0 ? S_COLLUDE_STRENGTH : -S_COLLUDE_STRENGTH;

    qt_rng_t rng;
    qt_rng_seed (&rng, seed, UINT64_C (0x7261746572730000));     //  "raters"
    uint32_t first_malicious = config->raters - malicious;
    uint32_t first_careless = first_malicious - careless;
    uint32_t first_minority = first_careless - minority;
    for (uint32_t r = 0; r < config->raters; r++) {
        rt_group_t group = r >= first_malicious ? RT_MALICIOUS : r >= first_careless ? RT_CARELESS
                         : r >= first_minority ? RT_MINORITY : RT_HONEST;
        self->group [r] = group;
        double *w = self->weights + (size_t) r * n;
        for (uint32_t f = 0; f < n; f++) {
            //  Every rater draws its variation, whatever its group, so that
            //  the honest raters are the same people in every population
            double factor = 1 + config->variation * qt_rng_normal (&rng);
            w [f] = self->intended [f] * factor;
        }
        if (group == RT_MINORITY)
            w [minority_feature] *= config->minority_factor;
        else
        if (group == RT_CARELESS)
            memset (w, 0, sizeof (double) * n);
        else
        if (group == RT_MALICIOUS) {
            for (uint32_t f = 0; f < n; f++)
                w [f] = self->malice == RT_COLLUDING ? (f == collude_feature ? collude : 0) : -w [f];
        }
    }
    return self;
}

void
rt_population_destroy (rt_population_t **self_p)
{
    rt_population_t *self = *self_p;
    if (!self)
        return;
    free (self->group);
    free (self->weights);
    free (self);
    *self_p = NULL;
}

uint32_t
rt_population_size (rt_population_t *self)
{
    return self->raters;
}

rt_group_t
rt_population_group (rt_population_t *self, uint32_t rater)
{
    return rater >= 1 && rater <= self->raters ? self->group [rater - 1] : RT_HONEST;
}

int
rt_population_utility (rt_population_t *self, uint32_t rater, double *weights)
{
    if (rater == 0 || rater > self->raters)
        return -1;
    memcpy (weights, self->weights + (size_t) (rater - 1) * self->n_features,
            sizeof (double) * self->n_features);
    return 0;
}

//  A graded preference from the uniform generalized Bradley-Terry law:
//  density proportional to exp (p x) on [-1, 1], by its inverse
//  distribution function (written to stay finite for any x)
static double
s_gbt_draw (double x, double u)
{
    if (fabs (x) < 1e-9)
        return 2 * u - 1;
    double a = fabs (x);
    double p = 1 + log (u + (1 - u) * exp (-2 * a)) / a;
    p = fmax (-1, fmin (1, p));
    return x > 0 ? p : -p;
}

double
rt_population_answer (rt_population_t *self, uint32_t rater, uint64_t tick, uint32_t index,
                      const double *a, const double *b)
{
    if (rater == 0 || rater > self->raters)
        return NAN;
    //  One generator per answer: the same question gets the same answer
    qt_rng_t rng;
    qt_rng_seed (&rng, self->seed ^ (tick * UINT64_C (0x9e3779b97f4a7c15)),
                 ((uint64_t) rater << 32) | index);
    double u = qt_rng_uniform (&rng);
    rt_group_t group = self->group [rater - 1];
    const double *w = self->weights + (size_t) (rater - 1) * self->n_features;
    double x = 0, intended = 0;
    for (uint32_t f = 0; f < self->n_features; f++) {
        x += w [f] * (b [f] - a [f]);
        intended += self->intended [f] * (b [f] - a [f]);
    }
    if (group == RT_CARELESS)
        return 2 * u - 1;
    if (group == RT_MALICIOUS && self->malice == RT_EXTREME)
        return intended > 0 ? -1 : intended < 0 ? 1 : 0;
    return s_gbt_draw (x, u);
}

void
rt_population_test (bool verbose)
{
    if (verbose)
        printf (" * rt_population: ");
    qt_env_params_t params;
    qt_env_params_init (&params);
    qt_env_decl_t decl;
    //  Any registered environment with a feature it dislikes will do: the
    //  test reads only the declaration
    const char *name = NULL;
    for (size_t e = 0; e < qt_env_count () && !name; e++) {
        const char *candidate = qt_env_registry [e].name;
        if (qt_env_declare (candidate, &params, &decl, NULL) == 0)
            for (uint32_t f = 0; f < decl.n_features; f++)
                if (decl.performance [f] < 0 && decl.n_features >= 2)
                    name = candidate;
    }
    QT_CHECK (name);
    rt_population_config_t config;
    rt_population_config_default (&config);
    const char *cause = NULL;
    QT_CHECK (rt_population_config_set (&config, "malicious", "0.25", &cause) == 0);
    QT_CHECK (rt_population_config_set (&config, "malice", "colluding", &cause) == 0);
    QT_CHECK (rt_population_config_set (&config, "malice", "bogus", &cause) == -1 && cause);
    QT_CHECK (rt_population_config_set (&config, "careless", "2", &cause) == -1);
    QT_CHECK (rt_population_config_set (&config, "raters", "3.5", &cause) == -1);
    QT_CHECK (strcmp (rt_population_options [0], "raters") == 0);
    config.careless = 0.1;
    config.minority = 0.1;
    rt_population_t *population = rt_population_new (&decl, &config, 7, &cause);
    QT_CHECK (population && rt_population_size (population) == 20);
    //  Groups: honest first, then minority, careless, malicious
    QT_CHECK (rt_population_group (population, 1) == RT_HONEST);
    QT_CHECK (rt_population_group (population, 11) == RT_HONEST);
    QT_CHECK (rt_population_group (population, 12) == RT_MINORITY);
    QT_CHECK (rt_population_group (population, 15) == RT_CARELESS);
    QT_CHECK (rt_population_group (population, 16) == RT_MALICIOUS);
    //  Deterministic answers, in range; honest raters prefer what the
    //  intended value prefers, on average
    double a [QT_ENV_MAX_FEATURES] = { 0 }, b [QT_ENV_MAX_FEATURES] = { 0 };
    uint32_t best = 0;
    for (uint32_t f = 0; f < decl.n_features; f++)
        if (decl.performance [f] > decl.performance [best])
            best = f;
    b [best] = 1;
    double honest = 0, colluding = 0;
    for (uint32_t k = 0; k < 400; k++) {
        double p = rt_population_answer (population, 1, k, 0, a, b);
        QT_CHECK (p >= -1 && p <= 1);
        QT_CHECK (p == rt_population_answer (population, 1, k, 0, a, b));
        honest += p / 400;
        colluding += rt_population_answer (population, 20, k, 0, a, b) / 400;
    }
    QT_CHECK (honest > 0.3);
    QT_CHECK (isnan (rt_population_answer (population, 21, 0, 0, a, b)));
    double w [QT_ENV_MAX_FEATURES];
    QT_CHECK (rt_population_utility (population, 14, w) == 0 && w [0] == 0);
    QT_CHECK (rt_population_utility (population, 0, w) == -1);
    rt_population_destroy (&population);
    //  Fractions over the whole are refused
    config.malicious = 0.8;
    config.careless = 0.3;
    QT_CHECK (rt_population_new (&decl, &config, 7, &cause) == NULL && cause);
    config.careless = 0;
    config.malice = RT_EXTREME;
    population = rt_population_new (&decl, &config, 7, &cause);
    QT_CHECK (population);
    QT_CHECK (rt_population_answer (population, 20, 0, 0, a, b) == -1);
    rt_population_destroy (&population);
    rt_population_destroy (&population);
    if (verbose)
        printf ("OK (honest mean preference %.3f, colluder %.3f)\n", honest, colluding);
}
