/*  sc_learn: generalized Bradley-Terry per rater, Lipschitz-resilient
    majority judgment across raters, active selection of comparisons.
    See learn.h for the model.
*/
#include <assert.h>
#include <inttypes.h>
#include <math.h>
#include <stddef.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "qt_tournesol.h"
#include "qt_selftest.h"
#include "qt_options.h"
#include "qt_codec.h"
#include "qt_rng.h"
#include "learn.h"

#define S_NEWTON_ITERATIONS     60
#define S_NEWTON_TOLERANCE      1e-10
#define S_MIN_UNCERTAINTY       1e-9    //  QrQtl's uncertainties stay positive
#define S_MAX_SITUATIONS        64      //  distinct situations a selection considers
#define S_CACHE                 64      //  scored situations remembered while the model holds
#define S_QUANTILE_LOW          0.1
#define S_QUANTILE_HIGH         0.9
#define S_MIN_GAIN              1e-12   //  a pair the model is already sure of is not asked
#define S_MAX_INSTANCES         (1u << 20)  //  instances whose episodes are followed

#define S_NAME(name, whole, low, high, problem) #name,
const char *const sc_learn_options [] = { SC_LEARN_NUMBERS (S_NAME) NULL };

#define S_OPTION(name, whole, low, high, problem) \
    { #name, offsetof (sc_learn_config_t, name), whole, low, high, problem },
static const qt_option_t s_options [] = { SC_LEARN_NUMBERS (S_OPTION) };

typedef struct {
    uint32_t count;             //  judgments held (<= max_per_rater)
    uint32_t next;              //  ring position of the next one
    uint32_t total;             //  judgments ever learned from
    bool dirty;                 //  new judgments since the last fit
    uint64_t fits;              //  times refit (its posterior changed)
    //  The last selection found nothing worth asking this rater at these
    //  versions of its posterior and of the situations (so it is not
    //  searched again until one changes)
    uint64_t idle_fits, idle_memory;
    double *d;                  //  [max_per_rater][F]: b - a
    double *p;                  //  [max_per_rater]: the preference
    double theta [QT_ENV_MAX_FEATURES];
    double cov [QT_ENV_MAX_FEATURES * QT_ENV_MAX_FEATURES];     //  Laplace posterior
} s_rater_t;

typedef struct {
    double features [QT_ENV_MAX_FEATURES];
    double score, uncertainty, disagreement;
} s_cached_t;

struct _sc_learn_t {
    sc_learn_config_t config;
    uint32_t n_features;
    double unit;
    s_rater_t *raters;          //  [raters]
    uint64_t asked, learned;
    uint32_t next_rater;        //  round robin, 0-based
    //  The situations selection chooses from: distinct feature vectors of
    //  likely states, each with the selection (tick) it was last seen in
    double memory [S_MAX_SITUATIONS][QT_ENV_MAX_FEATURES];
    uint64_t memory_seen [S_MAX_SITUATIONS];
    uint8_t memory_kind [S_MAX_SITUATIONS];     //  S_TRANSITION or S_EPISODE
    uint32_t remembered;
    uint64_t memory_version;    //  changes when a situation comes or goes
    uint64_t selections;
    //  Episodes followed: per instance the features added up so far; the
    //  episodes ended since the last selection
    double *following;          //  [followed][F]
    uint32_t followed;
    double ended [S_MAX_SITUATIONS][QT_ENV_MAX_FEATURES];
    uint32_t n_ended;
    //  The mean situation seen while asking: utilities are identified only
    //  up to what comparisons can tell apart, so a situation's uncertainty
    //  is that of its utility relative to this one (a feature every
    //  situation shares, such as a step counted on every transition, adds
    //  no uncertainty the raters could ever remove)
    double centre [QT_ENV_MAX_FEATURES];
    double centre_weight;
    double weights [QT_ENV_MAX_FEATURES];   //  aggregated, reward units (kept by sc_learn_fit)
    s_cached_t cache [S_CACHE];
    uint32_t cached;
    qt_rating_t *ratings;       //  [raters], scratch
};

void
sc_learn_config_default (sc_learn_config_t *config)
{
    config->quantile = 0.5;
    config->lipschitz = 1;
    config->prior_sd = 3;
    config->raters = 20;
    config->comparisons = 1000;
    config->per_tick = 8;
    config->max_per_rater = 1000;
    config->min_sd = 0.5;
    config->memory = S_MAX_SITUATIONS;
    config->episodes = 1;
    config->unit = 0;
}

int
sc_learn_config_set (sc_learn_config_t *config, const char *name, const char *value,
                     const char **cause)
{
    int rc = qt_option_set (s_options, sizeof s_options / sizeof s_options [0], config, name,
                            value, cause);
    if (rc > 0 && cause)
        *cause = "no such scorer option";
    return rc ? -1 : 0;
}

sc_learn_t *
sc_learn_new (const sc_learn_config_t *config, uint32_t n_features, double reward_scale,
              const char **cause)
{
    const char *problem = NULL;
    if (n_features == 0 || n_features > QT_ENV_MAX_FEATURES)
        problem = "the environment declares no feature, or too many";
    else
    if (!(config->quantile > 0 && config->quantile < 1))
        problem = "quantile is in (0, 1)";
    else
    if (!(config->lipschitz > 0) || !isfinite (config->lipschitz)
    ||  !(config->prior_sd > 0) || !isfinite (config->prior_sd))
        problem = "lipschitz and prior_sd are positive numbers";
    else
    if (config->raters > SC_MAX_RATERS || config->per_tick > SC_MAX_QUERIES
    ||  config->max_per_rater == 0 || config->memory > S_MAX_SITUATIONS)
        problem = "raters <= 256, per_tick <= 64, max_per_rater >= 1, memory <= 64";
    else
    if (!(config->min_sd >= 0) || !isfinite (config->min_sd))
        problem = "min_sd is a non-negative number";
    else
    if (!(config->unit >= 0) || !isfinite (config->unit)
    ||  (config->unit == 0 && !(reward_scale > 0 && isfinite (reward_scale))))
        problem = "unit is a non-negative number (0 needs a positive reward scale)";
    if (problem) {
        if (cause)
            *cause = problem;
        return NULL;
    }
    sc_learn_t *self = (sc_learn_t *) calloc (1, sizeof (sc_learn_t));
    assert (self);
    self->config = *config;
    self->n_features = n_features;
    self->unit = config->unit > 0 ? config->unit : reward_scale / SC_COMPARISON_SCALE;
    uint32_t n = config->raters ? config->raters : 1;
    self->raters = (s_rater_t *) calloc (n, sizeof (s_rater_t));
    self->ratings = (qt_rating_t *) calloc (n, sizeof (qt_rating_t));
    assert (self->raters && self->ratings);
    double prior = config->prior_sd * config->prior_sd;
    for (uint32_t r = 0; r < config->raters; r++) {
        s_rater_t *rater = &self->raters [r];
        rater->d = (double *) calloc ((size_t) config->max_per_rater * n_features, sizeof (double));
        rater->p = (double *) calloc (config->max_per_rater, sizeof (double));
        assert (rater->d && rater->p);
        for (uint32_t f = 0; f < n_features; f++)
            rater->cov [f * n_features + f] = prior;
    }
    return self;
}

void
sc_learn_destroy (sc_learn_t **self_p)
{
    sc_learn_t *self = *self_p;
    if (!self)
        return;
    for (uint32_t r = 0; r < self->config.raters; r++) {
        free (self->raters [r].d);
        free (self->raters [r].p);
    }
    free (self->raters);
    free (self->ratings);
    free (self->following);
    free (self);
    *self_p = NULL;
}

//  The uniform GBT's cumulant log (sinh x / x), its derivative (Langevin
//  function) and second derivative, stable at 0 and far from it
static double
s_cgf (double x)
{
    double a = fabs (x);
    if (a < 1e-4)
        return x * x / 6;
    if (a > 20)
        return a - log (2 * a);
    return log (sinh (a) / a);
}

static double
s_cgf1 (double x)
{
    double a = fabs (x);
    if (a < 1e-4)
        return x / 3 - x * x * x / 45;
    return 1 / tanh (x) - 1 / x;
}

static double
s_cgf2 (double x)
{
    double a = fabs (x);
    if (a < 1e-4)
        return 1.0 / 3 - x * x / 15;
    if (a > 20)
        return 1 / (x * x);
    double s = sinh (a);
    return 1 / (x * x) - 1 / (s * s);
}

//  Cholesky of the n x n symmetric positive definite a (in place, lower);
//  -1 if not positive definite
static int
s_cholesky (double *a, uint32_t n)
{
    for (uint32_t j = 0; j < n; j++) {
        double diagonal = a [j * n + j];
        for (uint32_t k = 0; k < j; k++)
            diagonal -= a [j * n + k] * a [j * n + k];
        if (!(diagonal > 0))
            return -1;
        a [j * n + j] = sqrt (diagonal);
        for (uint32_t i = j + 1; i < n; i++) {
            double sum = a [i * n + j];
            for (uint32_t k = 0; k < j; k++)
                sum -= a [i * n + k] * a [j * n + k];
            a [i * n + j] = sum / a [j * n + j];
        }
    }
    return 0;
}

//  Solve L L^T x = b (L from s_cholesky), in place in b
static void
s_solve (const double *l, uint32_t n, double *b)
{
    for (uint32_t i = 0; i < n; i++) {
        for (uint32_t k = 0; k < i; k++)
            b [i] -= l [i * n + k] * b [k];
        b [i] /= l [i * n + i];
    }
    for (uint32_t i = n; i-- > 0; ) {
        for (uint32_t k = i + 1; k < n; k++)
            b [i] -= l [k * n + i] * b [k];
        b [i] /= l [i * n + i];
    }
}

//  Negative log-posterior of theta for one rater
static double
s_objective (const sc_learn_t *self, const s_rater_t *rater, const double *theta)
{
    uint32_t n = self->n_features;
    double prior = self->config.prior_sd * self->config.prior_sd;
    double value = 0;
    for (uint32_t f = 0; f < n; f++)
        value += theta [f] * theta [f] / (2 * prior);
    for (uint32_t i = 0; i < rater->count; i++) {
        const double *d = rater->d + (size_t) i * n;
        double x = 0;
        for (uint32_t f = 0; f < n; f++)
            x += theta [f] * d [f];
        value += s_cgf (x) - rater->p [i] * x;
    }
    return value;
}

//  Gradient and Hessian of the objective at theta
static void
s_derivatives (const sc_learn_t *self, const s_rater_t *rater, const double *theta,
               double *gradient, double *hessian)
{
    uint32_t n = self->n_features;
    double prior = self->config.prior_sd * self->config.prior_sd;
    memset (hessian, 0, sizeof (double) * n * n);
    for (uint32_t f = 0; f < n; f++) {
        gradient [f] = theta [f] / prior;
        hessian [f * n + f] = 1 / prior;
    }
    for (uint32_t i = 0; i < rater->count; i++) {
        const double *d = rater->d + (size_t) i * n;
        double x = 0;
        for (uint32_t f = 0; f < n; f++)
            x += theta [f] * d [f];
        double first = s_cgf1 (x) - rater->p [i], second = s_cgf2 (x);
        for (uint32_t f = 0; f < n; f++) {
            gradient [f] += first * d [f];
            for (uint32_t g = 0; g <= f; g++)
                hessian [f * n + g] += second * d [f] * d [g];
        }
    }
    for (uint32_t f = 0; f < n; f++)
        for (uint32_t g = f + 1; g < n; g++)
            hessian [f * n + g] = hessian [g * n + f];
}

//  MAP by damped Newton from the last estimate, then the Laplace covariance
static void
s_fit_rater (sc_learn_t *self, s_rater_t *rater)
{
    uint32_t n = self->n_features;
    double gradient [QT_ENV_MAX_FEATURES], step [QT_ENV_MAX_FEATURES], trial [QT_ENV_MAX_FEATURES];
    double hessian [QT_ENV_MAX_FEATURES * QT_ENV_MAX_FEATURES];
    double value = s_objective (self, rater, rater->theta);
    for (int iteration = 0; iteration < S_NEWTON_ITERATIONS; iteration++) {
        s_derivatives (self, rater, rater->theta, gradient, hessian);
        int rc = s_cholesky (hessian, n);
        assert (rc == 0);           //  the prior keeps it positive definite
        (void) rc;                  //  (unused under NDEBUG)
        memcpy (step, gradient, sizeof (double) * n);
        s_solve (hessian, n, step);
        double largest = 0, t = 1;
        for (uint32_t f = 0; f < n; f++)
            largest = fmax (largest, fabs (step [f]));
        //  Backtracking: the objective is convex, a short enough step descends
        double next = value;
        for (int halving = 0; halving < 40; halving++, t /= 2) {
            for (uint32_t f = 0; f < n; f++)
                trial [f] = rater->theta [f] - t * step [f];
            next = s_objective (self, rater, trial);
            if (next <= value)
                break;
        }
        if (!(next <= value))
            break;
        memcpy (rater->theta, trial, sizeof (double) * n);
        value = next;
        if (largest * t < S_NEWTON_TOLERANCE)
            break;
    }
    //  Covariance: the inverse Hessian at the estimate, column by column
    s_derivatives (self, rater, rater->theta, gradient, hessian);
    int rc = s_cholesky (hessian, n);
    assert (rc == 0);
    (void) rc;                      //  (unused under NDEBUG)
    for (uint32_t g = 0; g < n; g++) {
        double column [QT_ENV_MAX_FEATURES] = { 0 };
        column [g] = 1;
        s_solve (hessian, n, column);
        for (uint32_t f = 0; f < n; f++)
            rater->cov [f * n + g] = column [f];
    }
    rater->dirty = false;
    rater->fits++;
}

int
sc_learn_add (sc_learn_t *self, uint32_t rater, const double *a, const double *b,
              double preference)
{
    if (rater == 0 || rater > self->config.raters || !(preference >= -1 && preference <= 1))
        return -1;
    uint32_t n = self->n_features;
    for (uint32_t f = 0; f < n; f++)
        if (!isfinite (a [f]) || !isfinite (b [f]))
            return -1;
    s_rater_t *r = &self->raters [rater - 1];
    double *d = r->d + (size_t) r->next * n;
    for (uint32_t f = 0; f < n; f++)
        d [f] = b [f] - a [f];
    r->p [r->next] = preference;
    r->next = (r->next + 1) % self->config.max_per_rater;
    if (r->count < self->config.max_per_rater)
        r->count++;
    r->total++;
    r->dirty = true;
    self->learned++;
    return 0;
}

static void s_aggregate_weights (sc_learn_t *self, double *weights);

uint32_t
sc_learn_fit (sc_learn_t *self)
{
    uint32_t refit = 0;
    for (uint32_t r = 0; r < self->config.raters; r++)
        if (self->raters [r].dirty) {
            s_fit_rater (self, &self->raters [r]);
            refit++;
        }
    if (refit) {
        self->cached = 0;
        s_aggregate_weights (self, self->weights);
    }
    return refit;
}

//  x^T cov x
static double
s_quadratic (const double *cov, const double *x, uint32_t n)
{
    double sum = 0;
    for (uint32_t f = 0; f < n; f++) {
        double row = 0;
        for (uint32_t g = 0; g < n; g++)
            row += cov [f * n + g] * x [g];
        sum += x [f] * row;
    }
    return sum;
}

double
sc_learn_voting_right (sc_learn_t *self, uint32_t rater)
{
    if (rater == 0 || rater > self->config.raters)
        return 0;
    return self->raters [rater - 1].total > 0 ? 1 : 0;
}

//  QrQtl of the raters' utilities of one situation, in comparison units;
//  the uncertainty of the result is the voting-weighted root mean square
//  of the raters' own over the square root of the total voting right (a
//  standard error), and the disagreement the weighted mean absolute
//  deviation from the result
static double
s_majority (sc_learn_t *self, const double *features, double *uncertainty, double *disagreement)
{
    uint32_t n = self->n_features;
    double centred [QT_ENV_MAX_FEATURES];
    for (uint32_t f = 0; f < n; f++)
        centred [f] = features [f] - self->centre [f];
    size_t count = 0;
    double total = 0, variance = 0;
    for (uint32_t r = 0; r < self->config.raters; r++) {
        double vote = sc_learn_voting_right (self, r + 1);
        if (vote <= 0)
            continue;
        const s_rater_t *rater = &self->raters [r];
        double utility = 0;
        for (uint32_t f = 0; f < n; f++)
            utility += rater->theta [f] * features [f];
        double spread = sqrt (fmax (0, s_quadratic (rater->cov, centred, n)));
        spread = fmax (spread, S_MIN_UNCERTAINTY);
        self->ratings [count++] = (qt_rating_t) {
            .value = utility, .weight = vote, .left = spread, .right = spread
        };
        total += vote;
        variance += vote * spread * spread;
    }
    if (count == 0) {
        //  Nobody has said anything yet: the prior, with its uncertainty
        if (uncertainty) {
            double norm = 0;
            for (uint32_t f = 0; f < n; f++)
                norm += centred [f] * centred [f];
            *uncertainty = self->config.prior_sd * sqrt (norm);
        }
        if (disagreement)
            *disagreement = 0;
        return 0;
    }
    double m = qt_qrquantile (self->ratings, count, self->config.lipschitz,
                              self->config.quantile, 0, 0);
    if (uncertainty)
        *uncertainty = sqrt (variance / total) / sqrt (total);
    if (disagreement) {
        double sum = 0;
        for (size_t i = 0; i < count; i++)
            sum += self->ratings [i].weight * fabs (self->ratings [i].value - m);
        *disagreement = sum / total;
    }
    return m;
}

double
sc_learn_score_features (sc_learn_t *self, const double *features, double *uncertainty,
                         double *disagreement)
{
    uint32_t n = self->n_features;
    for (uint32_t c = 0; c < self->cached; c++)
        if (memcmp (self->cache [c].features, features, sizeof (double) * n) == 0) {
            if (uncertainty)
                *uncertainty = self->cache [c].uncertainty;
            if (disagreement)
                *disagreement = self->cache [c].disagreement;
            return self->cache [c].score;
        }
    double spread = 0, apart = 0;
    double score = s_majority (self, features, &spread, &apart) * self->unit;
    spread *= self->unit;
    apart *= self->unit;
    s_cached_t *slot = &self->cache [self->cached < S_CACHE ? self->cached++ : 0];
    memset (slot->features, 0, sizeof slot->features);
    memcpy (slot->features, features, sizeof (double) * n);
    slot->score = score;
    slot->uncertainty = spread;
    slot->disagreement = apart;
    if (uncertainty)
        *uncertainty = spread;
    if (disagreement)
        *disagreement = apart;
    return score;
}

//  The q-quantile of a mixture of normals N(mean [j], sd [j]^2) with
//  weights w [j] (sum 1), by bisection on its distribution function
static double
s_mixture_quantile (const double *mean, const double *sd, const double *w, uint32_t n, double q)
{
    double low = INFINITY, high = -INFINITY;
    for (uint32_t j = 0; j < n; j++) {
        low = fmin (low, mean [j] - 8 * sd [j]);
        high = fmax (high, mean [j] + 8 * sd [j]);
    }
    for (int iteration = 0; iteration < 100 && high - low > 1e-12 * fmax (1, fabs (high)); iteration++) {
        double middle = low / 2 + high / 2, cdf = 0;
        for (uint32_t j = 0; j < n; j++)
            cdf += w [j] * (sd [j] > 0 ? 0.5 * erfc ((mean [j] - middle) / (sd [j] * M_SQRT2))
                                       : (mean [j] <= middle ? 1 : 0));
        if (cdf < q)
            low = middle;
        else
            high = middle;
    }
    return high;
}

int
sc_learn_score (sc_learn_t *self, const wm_belief_t *belief, sc_score_t *score)
{
    uint32_t n = belief->n_samples;
    if (n == 0 || n > WM_MAX_SAMPLES || belief->n_features != self->n_features)
        return -1;
    double mean [WM_MAX_SAMPLES], sd [WM_MAX_SAMPLES], w [WM_MAX_SAMPLES];
    double total = 0, expected = 0, disagreement = 0;
    for (uint32_t j = 0; j < n; j++) {
        w [j] = belief->samples [j].weight;
        if (!(w [j] >= 0) || !isfinite (w [j]))
            return -1;
        double apart = 0;
        mean [j] = sc_learn_score_features (self, belief->samples [j].features, &sd [j], &apart);
        total += w [j];
        expected += w [j] * mean [j];
        disagreement += w [j] * apart;
    }
    if (!(total > 0))
        return -1;
    expected /= total;
    double variance = 0;
    for (uint32_t j = 0; j < n; j++) {
        w [j] /= total;
        variance += w [j] * (sd [j] * sd [j] + (mean [j] - expected) * (mean [j] - expected));
    }
    score->mean = expected;
    score->spread = sqrt (variance);
    score->disagreement = disagreement / total;
    score->q10 = s_mixture_quantile (mean, sd, w, n, S_QUANTILE_LOW);
    score->q50 = s_mixture_quantile (mean, sd, w, n, 0.5);
    score->q90 = s_mixture_quantile (mean, sd, w, n, S_QUANTILE_HIGH);
    score->data_reliability = belief->data_reliability;
    return 0;
}

int
sc_score_known (const double *weights, const wm_belief_t *belief, sc_score_t *score)
{
    uint32_t n = belief->n_samples;
    if (n == 0 || n > WM_MAX_SAMPLES || belief->n_features > QT_ENV_MAX_FEATURES)
        return -1;
    double mean [WM_MAX_SAMPLES], sd [WM_MAX_SAMPLES] = { 0 }, w [WM_MAX_SAMPLES];
    double total = 0, expected = 0;
    for (uint32_t j = 0; j < n; j++) {
        w [j] = belief->samples [j].weight;
        if (!(w [j] >= 0) || !isfinite (w [j]))
            return -1;
        mean [j] = 0;
        for (uint32_t f = 0; f < belief->n_features; f++)
            mean [j] += weights [f] * belief->samples [j].features [f];
        total += w [j];
        expected += w [j] * mean [j];
    }
    if (!(total > 0))
        return -1;
    expected /= total;
    double variance = 0;
    for (uint32_t j = 0; j < n; j++) {
        w [j] /= total;
        variance += w [j] * (mean [j] - expected) * (mean [j] - expected);
    }
    score->mean = expected;
    score->spread = sqrt (variance);
    score->disagreement = 0;
    score->q10 = s_mixture_quantile (mean, sd, w, n, S_QUANTILE_LOW);
    score->q50 = s_mixture_quantile (mean, sd, w, n, 0.5);
    score->q90 = s_mixture_quantile (mean, sd, w, n, S_QUANTILE_HIGH);
    score->data_reliability = belief->data_reliability;
    return 0;
}

enum { S_TRANSITION, S_EPISODE };

void
sc_learn_follow (sc_learn_t *self, uint32_t instance, const wm_belief_t *belief,
                 uint32_t step, bool done)
{
    uint32_t n = self->n_features;
    if (!self->config.episodes || self->asked >= self->config.comparisons
    ||  !belief || belief->n_features != n || belief->n_samples == 0
    ||  belief->n_samples > WM_MAX_SAMPLES || instance >= S_MAX_INSTANCES)
        return;
    if (instance >= self->followed) {
        uint32_t grown = instance + 1;
        self->following = (double *) realloc (self->following, sizeof (double) * grown * n);
        assert (self->following);
        memset (self->following + (size_t) self->followed * n, 0,
                sizeof (double) * (grown - self->followed) * n);
        self->followed = grown;
    }
    double *sum = self->following + (size_t) instance * n;
    if (step == 0)
        memset (sum, 0, sizeof (double) * n);
    uint32_t heaviest = 0;
    for (uint32_t j = 1; j < belief->n_samples; j++)
        if (belief->samples [j].weight > belief->samples [heaviest].weight)
            heaviest = j;
    const double *features = belief->samples [heaviest].features;
    bool finite = true;
    for (uint32_t f = 0; f < n; f++)
        finite &= isfinite (features [f]) != 0;
    if (step > 0 && finite)
        for (uint32_t f = 0; f < n; f++)
            sum [f] += features [f];
    if (done) {
        if (step > 0 && self->n_ended < S_MAX_SITUATIONS)
            memcpy (self->ended [self->n_ended++], sum, sizeof (double) * n);
        memset (sum, 0, sizeof (double) * n);
    }
}

//  Remember a situation seen in this selection: a new one takes a free
//  place or that of the least recently seen of its kind. With episodes
//  each kind has half the places: episodes end by the dozen every tick and
//  would otherwise push out, within a tick or two, the rare transition the
//  memory is there to keep until every rater was asked about it
static void
s_remember (sc_learn_t *self, const double *features, uint8_t kind)
{
    uint32_t n = self->n_features;
    uint32_t capacity = self->config.memory ? self->config.memory : S_MAX_SITUATIONS;
    uint32_t share = self->config.episodes ? (capacity + 1) / 2 : capacity;
    uint32_t s = 0, oldest = UINT32_MAX, mine = 0;
    for (s = 0; s < self->remembered; s++) {
        if (self->memory_kind [s] != kind)
            continue;
        if (memcmp (self->memory [s], features, sizeof (double) * n) == 0) {
            self->memory_seen [s] = self->selections;
            return;
        }
        mine++;
        if (oldest == UINT32_MAX || self->memory_seen [s] < self->memory_seen [oldest])
            oldest = s;
    }
    if (mine < share && self->remembered < capacity)
        s = self->remembered++;
    else
    if (oldest != UINT32_MAX && self->memory_seen [oldest] < self->selections)
        s = oldest;
    else
        return;             //  more distinct situations in one tick than places
    memcpy (self->memory [s], features, sizeof (double) * n);
    self->memory_seen [s] = self->selections;
    self->memory_kind [s] = kind;
    self->memory_version++;
}

size_t
sc_learn_select (sc_learn_t *self, const wm_belief_t *const *beliefs, size_t n_beliefs,
                 sc_query_t *queries)
{
    uint32_t n = self->n_features;
    uint32_t raters = self->config.raters;
    if (raters == 0 || self->config.per_tick == 0 || self->asked >= self->config.comparisons)
        return 0;
    self->selections++;
    if (self->config.memory == 0 && self->remembered) {
        self->remembered = 0;       //  the tick's situations only
        self->memory_version++;
    }
    //  The distinct situations among the likely states, in order; the
    //  centre follows them
    static __thread double situation [S_MAX_SITUATIONS][QT_ENV_MAX_FEATURES];
    uint32_t situations = 0;
    for (size_t i = 0; i < n_beliefs; i++) {
        const wm_belief_t *belief = beliefs [i];
        if (!belief || belief->n_features != n)
            continue;
        for (uint32_t j = 0; j < belief->n_samples && situations < S_MAX_SITUATIONS; j++) {
            const double *features = belief->samples [j].features;
            bool finite = true;
            for (uint32_t f = 0; f < n; f++)
                finite &= isfinite (features [f]) != 0;
            uint32_t s = 0;
            while (s < situations && memcmp (situation [s], features, sizeof (double) * n))
                s++;
            if (finite && s == situations)
                memcpy (situation [situations++], features, sizeof (double) * n);
        }
    }
    for (uint32_t s = 0; s < situations; s++) {
        self->centre_weight++;
        for (uint32_t f = 0; f < n; f++)
            self->centre [f] += (situation [s][f] - self->centre [f]) / self->centre_weight;
        s_remember (self, situation [s], S_TRANSITION);
    }
    for (uint32_t e = 0; e < self->n_ended; e++)
        s_remember (self, self->ended [e], S_EPISODE);
    self->n_ended = 0;
    if (situations)
        self->cached = 0;
    uint32_t known = self->remembered;
    if (known < 2)
        return 0;
    size_t count = 0;
    uint32_t budget = self->config.per_tick;
    if (self->config.comparisons - self->asked < budget)
        budget = (uint32_t) (self->config.comparisons - self->asked);
    double threshold = fmax (S_MIN_GAIN, self->config.min_sd * self->config.min_sd);
    //  Each rater is tried at most once per round, and asked the pair its
    //  answer tells most about: the largest I(mu) v, where v is the
    //  posterior variance of u_r(B) - u_r(A) and I(mu) the Fisher
    //  information of one graded answer at the predicted difference mu
    //  (1/3 at indifference, ~1/mu^2 far from it: a pair whose answer is
    //  foregone, +-1, teaches little however uncertain its size). A pair is
    //  worth asking while 3 I(mu) v > min_sd^2: at indifference, while the
    //  posterior sd exceeds min_sd; far from it, while the sd relative to
    //  |mu| exceeds min_sd / sqrt 3. The model of a rater asked
    //  twice in one tick is updated in between with that information.
    //  v = v_a + v_b - 2 c_ab from y_s = cov x_s computed once per
    //  situation, mu = m_b - m_a from m_s = theta . x_s.
    double scratch [QT_ENV_MAX_FEATURES * QT_ENV_MAX_FEATURES];
    static __thread double y [S_MAX_SITUATIONS][QT_ENV_MAX_FEATURES];
    double v [S_MAX_SITUATIONS], m [S_MAX_SITUATIONS];
    uint32_t tried = 0;
    while (count < budget && tried < raters) {
        uint32_t r = self->next_rater;
        self->next_rater = (self->next_rater + 1) % raters;
        s_rater_t *rater = &self->raters [r];
        bool asked_now = false;
        for (size_t k = 0; k < count; k++)
            asked_now |= queries [k].rater == r + 1;
        if (!asked_now && rater->idle_fits == rater->fits
        &&  rater->idle_memory == self->memory_version) {
            tried++;
            continue;
        }
        memcpy (scratch, rater->cov, sizeof (double) * n * n);
        for (size_t k = 0; k < count; k++)
            if (queries [k].rater == r + 1) {
                double d [QT_ENV_MAX_FEATURES], sd [QT_ENV_MAX_FEATURES];
                double mu = 0, gain = 0;
                for (uint32_t f = 0; f < n; f++) {
                    d [f] = queries [k].b [f] - queries [k].a [f];
                    mu += rater->theta [f] * d [f];
                }
                for (uint32_t f = 0; f < n; f++) {
                    sd [f] = 0;
                    for (uint32_t g = 0; g < n; g++)
                        sd [f] += scratch [f * n + g] * d [g];
                    gain += d [f] * sd [f];
                }
                double information = s_cgf2 (mu);
                double c = information / (1 + gain * information);
                for (uint32_t f = 0; f < n; f++)
                    for (uint32_t g = 0; g < n; g++)
                        scratch [f * n + g] -= c * sd [f] * sd [g];
            }
        for (uint32_t s = 0; s < known; s++) {
            v [s] = 0;
            m [s] = 0;
            for (uint32_t f = 0; f < n; f++) {
                y [s][f] = 0;
                for (uint32_t g = 0; g < n; g++)
                    y [s][f] += scratch [f * n + g] * self->memory [s][g];
                v [s] += self->memory [s][f] * y [s][f];
                m [s] += rater->theta [f] * self->memory [s][f];
            }
        }
        double best = 0;
        uint32_t best_a = 0, best_b = 0;
        for (uint32_t a = 0; a < known; a++)
            for (uint32_t b = a + 1; b < known; b++) {
                if (self->memory_kind [a] != self->memory_kind [b])
                    continue;
                double c = 0;
                for (uint32_t f = 0; f < n; f++)
                    c += self->memory [a][f] * y [b][f];
                double variance = v [a] + v [b] - 2 * c;
                double worth = s_cgf2 (m [b] - m [a]) * variance;
                if (!(3 * worth > threshold))
                    continue;
                if (worth > best) {
                    best = worth;
                    best_a = a;
                    best_b = b;
                }
            }
        if (!(best > 0)) {
            if (!asked_now) {
                rater->idle_fits = rater->fits;
                rater->idle_memory = self->memory_version;
            }
            tried++;
            continue;
        }
        tried = 0;
        sc_query_t *query = &queries [count++];
        memset (query, 0, sizeof *query);
        query->rater = r + 1;
        memcpy (query->a, self->memory [best_a], sizeof (double) * n);
        memcpy (query->b, self->memory [best_b], sizeof (double) * n);
    }
    self->asked += count;
    return count;
}

void
sc_learn_weights (sc_learn_t *self, double *weights)
{
    memcpy (weights, self->weights, sizeof (double) * self->n_features);
}

//  The raters' weights aggregated by QrMed, per feature: what dashboards
//  show, recomputed only when a rater was refit
static void
s_aggregate_weights (sc_learn_t *self, double *weights)
{
    uint32_t n = self->n_features;
    for (uint32_t f = 0; f < n; f++) {
        size_t count = 0;
        for (uint32_t r = 0; r < self->config.raters; r++) {
            double vote = sc_learn_voting_right (self, r + 1);
            if (vote <= 0)
                continue;
            double sd = sqrt (fmax (self->raters [r].cov [f * n + f], 0));
            self->ratings [count++] = (qt_rating_t) {
                .value = self->raters [r].theta [f], .weight = vote,
                .left = fmax (sd, S_MIN_UNCERTAINTY), .right = fmax (sd, S_MIN_UNCERTAINTY)
            };
        }
        weights [f] = count ? qt_qrmedian (self->ratings, count, self->config.lipschitz, 0, 0)
                              * self->unit : 0;
    }
}

uint32_t
sc_learn_rater_comparisons (sc_learn_t *self, uint32_t rater)
{
    return rater >= 1 && rater <= self->config.raters ? self->raters [rater - 1].total : 0;
}

uint64_t sc_learn_comparisons (sc_learn_t *self) { return self->learned; }
uint64_t sc_learn_asked (sc_learn_t *self) { return self->asked; }
uint64_t sc_learn_budget (sc_learn_t *self) { return self->config.comparisons; }
uint32_t sc_learn_per_tick (sc_learn_t *self) { return self->config.per_tick; }
double sc_learn_quantile (sc_learn_t *self) { return self->config.quantile; }
uint32_t sc_learn_raters (sc_learn_t *self) { return self->config.raters; }

//  --------------------------------------------------------------------------
//  State transfer: everything that decides later scores and queries, in
//  fixed-width little-endian fields (qt_codec). The raters' judgments and
//  posteriors, the memory of situations with the selection each was last
//  seen in (its LRU order), the episodes followed and those ended, the
//  centre, the aggregated weights and the score cache (a memo, but what it
//  holds is what is served), the budget counters, the round robin and the
//  idle marks that skip a rater's search. The ratings are scratch.

#define S_STATE_MAGIC       "QTSCLRN1"
#define S_STATE_VERSION     1
#define S_STRANGER          "scorer state is from a learner configured otherwise " \
                            "(options or the environment's features)"
#define S_INCONSISTENT      "scorer state holds a count, index or value out of range"

//  What the restoring learner must match exactly
static void
s_put_identity (const sc_learn_t *self, zchunk_t *out)
{
    const sc_learn_config_t *c = &self->config;
    qt_codec_put_bytes (out, S_STATE_MAGIC, strlen (S_STATE_MAGIC));
    qt_codec_put_u32 (out, S_STATE_VERSION);
    qt_codec_put_f64 (out, c->quantile);
    qt_codec_put_f64 (out, c->lipschitz);
    qt_codec_put_f64 (out, c->prior_sd);
    qt_codec_put_u32 (out, c->raters);
    qt_codec_put_u32 (out, c->comparisons);
    qt_codec_put_u32 (out, c->per_tick);
    qt_codec_put_u32 (out, c->max_per_rater);
    qt_codec_put_f64 (out, c->min_sd);
    qt_codec_put_u32 (out, c->memory);
    qt_codec_put_u32 (out, c->episodes);
    qt_codec_put_f64 (out, c->unit);
    qt_codec_put_u32 (out, self->n_features);
    qt_codec_put_f64 (out, self->unit);
}

int
sc_learn_snapshot (sc_learn_t *self, const sc_pending_t *pending, zchunk_t *out)
{
    uint32_t n = self->n_features;
    s_put_identity (self, out);
    qt_codec_put_u8 (out, pending->have);
    qt_codec_put_u64 (out, pending->tick);
    qt_codec_put_u32 (out, (uint32_t) pending->n_queries);
    for (size_t k = 0; k < pending->n_queries; k++) {
        qt_codec_put_u32 (out, pending->queries [k].rater);
        qt_codec_put_f64s (out, pending->queries [k].a, n);
        qt_codec_put_f64s (out, pending->queries [k].b, n);
    }
    qt_codec_put_u64 (out, self->asked);
    qt_codec_put_u64 (out, self->learned);
    qt_codec_put_u32 (out, self->next_rater);
    qt_codec_put_u64 (out, self->selections);
    qt_codec_put_u64 (out, self->memory_version);
    qt_codec_put_u32 (out, self->remembered);
    for (uint32_t s = 0; s < self->remembered; s++) {
        qt_codec_put_u8 (out, self->memory_kind [s]);
        qt_codec_put_u64 (out, self->memory_seen [s]);
        qt_codec_put_f64s (out, self->memory [s], n);
    }
    qt_codec_put_u32 (out, self->followed);
    qt_codec_put_f64s (out, self->following, (size_t) self->followed * n);
    qt_codec_put_u32 (out, self->n_ended);
    for (uint32_t e = 0; e < self->n_ended; e++)
        qt_codec_put_f64s (out, self->ended [e], n);
    qt_codec_put_f64s (out, self->centre, n);
    qt_codec_put_f64 (out, self->centre_weight);
    qt_codec_put_f64s (out, self->weights, n);
    qt_codec_put_u32 (out, self->cached);
    for (uint32_t c = 0; c < self->cached; c++) {
        const s_cached_t *cached = &self->cache [c];
        qt_codec_put_f64s (out, cached->features, n);
        qt_codec_put_f64 (out, cached->score);
        qt_codec_put_f64 (out, cached->uncertainty);
        qt_codec_put_f64 (out, cached->disagreement);
    }
    for (uint32_t r = 0; r < self->config.raters; r++) {
        const s_rater_t *rater = &self->raters [r];
        qt_codec_put_u32 (out, rater->count);
        qt_codec_put_u32 (out, rater->next);
        qt_codec_put_u32 (out, rater->total);
        qt_codec_put_u8 (out, rater->dirty);
        qt_codec_put_u64 (out, rater->fits);
        qt_codec_put_u64 (out, rater->idle_fits);
        qt_codec_put_u64 (out, rater->idle_memory);
        qt_codec_put_f64s (out, rater->theta, n);
        qt_codec_put_f64s (out, rater->cov, (size_t) n * n);
        //  The ring holds count judgments: below count while it fills
        qt_codec_put_f64s (out, rater->d, (size_t) rater->count * n);
        qt_codec_put_f64s (out, rater->p, rater->count);
    }
    return 0;
}

//  The queries of the last tick: as sc_learn_select left them (within
//  per_tick, of raters 1..raters, zero beyond the features)
static void
s_restore_pending (const sc_learn_t *self, qt_decoder_t *decoder, sc_pending_t *pending)
{
    uint32_t n = self->n_features;
    memset (pending, 0, sizeof *pending);
    pending->have = qt_decoder_bool (decoder);
    pending->tick = qt_decoder_u64 (decoder);
    uint32_t count = qt_decoder_u32 (decoder);
    qt_decoder_check (decoder, count <= self->config.per_tick
                      && (pending->have || (count == 0 && pending->tick == 0)), S_INCONSISTENT);
    for (uint32_t k = 0; k < count && qt_decoder_ok (decoder); k++) {
        sc_query_t *query = &pending->queries [k];
        query->rater = qt_decoder_u32 (decoder);
        qt_decoder_f64s (decoder, query->a, n);
        qt_decoder_f64s (decoder, query->b, n);
        qt_decoder_check (decoder, query->rater >= 1 && query->rater <= self->config.raters,
                          S_INCONSISTENT);
    }
    pending->n_queries = qt_decoder_ok (decoder) ? count : 0;
}

static void
s_restore_rater (const sc_learn_t *fresh, qt_decoder_t *decoder, s_rater_t *rater)
{
    uint32_t n = fresh->n_features, most = fresh->config.max_per_rater;
    rater->count = qt_decoder_u32 (decoder);
    rater->next = qt_decoder_u32 (decoder);
    rater->total = qt_decoder_u32 (decoder);
    rater->dirty = qt_decoder_bool (decoder);
    rater->fits = qt_decoder_u64 (decoder);
    rater->idle_fits = qt_decoder_u64 (decoder);
    rater->idle_memory = qt_decoder_u64 (decoder);
    //  sc_learn_add keeps count = min (total, most), next = total % most
    if (!qt_decoder_check (decoder, rater->count == (rater->total < most ? rater->total : most)
                           && rater->next == rater->total % most
                           && rater->idle_fits <= rater->fits
                           && rater->idle_memory <= fresh->memory_version, S_INCONSISTENT))
        return;
    qt_decoder_f64s (decoder, rater->theta, n);
    qt_decoder_f64s (decoder, rater->cov, (size_t) n * n);
    qt_decoder_f64s (decoder, rater->d, (size_t) rater->count * n);
    qt_decoder_f64s (decoder, rater->p, rater->count);
    for (uint32_t i = 0; i < rater->count && qt_decoder_ok (decoder); i++)
        qt_decoder_check (decoder, rater->p [i] >= -1 && rater->p [i] <= 1, S_INCONSISTENT);
    for (uint32_t f = 0; f < n && qt_decoder_ok (decoder); f++)
        qt_decoder_check (decoder, rater->cov [f * n + f] >= 0, S_INCONSISTENT);
}

int
sc_learn_restore (sc_learn_t *self, sc_pending_t *pending, const uint8_t *data, size_t size,
                  const char **cause)
{
    uint32_t n = self->n_features;
    zchunk_t *identity = zchunk_new (NULL, 0);
    assert (identity);
    s_put_identity (self, identity);
    qt_decoder_t decoder;
    qt_decoder_init (&decoder, data, size);
    qt_decoder_expect (&decoder, S_STATE_MAGIC, strlen (S_STATE_MAGIC), "not a scorer state");
    qt_decoder_expect (&decoder, zchunk_data (identity) + strlen (S_STATE_MAGIC),
                       zchunk_size (identity) - strlen (S_STATE_MAGIC), S_STRANGER);
    zchunk_destroy (&identity);
    //  Decoded into a learner of our own, swapped in once all is read
    sc_learn_t *fresh = NULL;
    sc_pending_t *asked = (sc_pending_t *) malloc (sizeof (sc_pending_t));
    assert (asked);
    if (qt_decoder_ok (&decoder)) {
        fresh = sc_learn_new (&self->config, n, 1, NULL);
        assert (fresh);
        fresh->unit = self->unit;
        s_restore_pending (fresh, &decoder, asked);
        fresh->asked = qt_decoder_u64 (&decoder);
        fresh->learned = qt_decoder_u64 (&decoder);
        fresh->next_rater = qt_decoder_u32 (&decoder);
        fresh->selections = qt_decoder_u64 (&decoder);
        fresh->memory_version = qt_decoder_u64 (&decoder);
        fresh->remembered = qt_decoder_u32 (&decoder);
        uint32_t capacity = self->config.memory ? self->config.memory : S_MAX_SITUATIONS;
        qt_decoder_check (&decoder, fresh->asked <= self->config.comparisons
                          && fresh->next_rater < (self->config.raters ? self->config.raters : 1)
                          && fresh->remembered <= capacity, S_INCONSISTENT);
        for (uint32_t s = 0; s < fresh->remembered && qt_decoder_ok (&decoder); s++) {
            fresh->memory_kind [s] = qt_decoder_u8 (&decoder);
            fresh->memory_seen [s] = qt_decoder_u64 (&decoder);
            qt_decoder_f64s (&decoder, fresh->memory [s], n);
            qt_decoder_check (&decoder, fresh->memory_kind [s] <= S_EPISODE
                              && fresh->memory_seen [s] <= fresh->selections, S_INCONSISTENT);
        }
        uint32_t followed = qt_decoder_u32 (&decoder);
        //  The count before the allocation it sizes
        if (qt_decoder_check (&decoder, followed <= S_MAX_INSTANCES
                              && qt_decoder_left (&decoder) / sizeof (double) / n >= followed,
                              S_INCONSISTENT) && followed) {
            fresh->following = (double *) malloc (sizeof (double) * followed * n);
            assert (fresh->following);
            fresh->followed = followed;
            qt_decoder_f64s (&decoder, fresh->following, (size_t) followed * n);
        }
        fresh->n_ended = qt_decoder_u32 (&decoder);
        if (qt_decoder_check (&decoder, fresh->n_ended <= S_MAX_SITUATIONS, S_INCONSISTENT))
            for (uint32_t e = 0; e < fresh->n_ended; e++)
                qt_decoder_f64s (&decoder, fresh->ended [e], n);
        qt_decoder_f64s (&decoder, fresh->centre, n);
        fresh->centre_weight = qt_decoder_f64 (&decoder);
        qt_decoder_f64s (&decoder, fresh->weights, n);
        fresh->cached = qt_decoder_u32 (&decoder);
        qt_decoder_check (&decoder, fresh->centre_weight >= 0 && fresh->cached <= S_CACHE,
                          S_INCONSISTENT);
        for (uint32_t c = 0; c < fresh->cached && qt_decoder_ok (&decoder); c++) {
            s_cached_t *cached = &fresh->cache [c];
            qt_decoder_f64s (&decoder, cached->features, n);
            cached->score = qt_decoder_f64 (&decoder);
            cached->uncertainty = qt_decoder_f64 (&decoder);
            cached->disagreement = qt_decoder_f64 (&decoder);
        }
        uint64_t learned = 0;
        for (uint32_t r = 0; r < self->config.raters && qt_decoder_ok (&decoder); r++) {
            s_restore_rater (fresh, &decoder, &fresh->raters [r]);
            learned += fresh->raters [r].total;
        }
        if (qt_decoder_finish (&decoder))
            qt_decoder_check (&decoder, learned == fresh->learned, S_INCONSISTENT);
    }
    if (qt_decoder_ok (&decoder)) {
        sc_learn_t swap = *self;
        *self = *fresh;
        *fresh = swap;
        *pending = *asked;
    }
    sc_learn_destroy (&fresh);
    free (asked);
    if (cause)
        *cause = decoder.problem;
    return qt_decoder_ok (&decoder) ? 0 : -1;
}

//  --------------------------------------------------------------------------
//  Selftest

//  A graded preference drawn from the uniform GBT law with utility
//  difference x (the same law the simulated raters use)
static double
s_draw (double x, double u)
{
    if (fabs (x) < 1e-9)
        return 2 * u - 1;
    double a = fabs (x);
    double p = 1 + log (u + (1 - u) * exp (-2 * a)) / a;
    return x > 0 ? p : -p;
}

static uint64_t s_state = 88172645463325252ull;
static double
s_uniform (void)
{
    s_state ^= s_state << 13;
    s_state ^= s_state >> 7;
    s_state ^= s_state << 17;
    return (double) (s_state >> 11) / 9007199254740992.0;
}

//  Error of the recovered weights of one rater after n comparisons of
//  random situations
static double
s_recovery_error (uint32_t comparisons, bool verbose)
{
    const uint32_t n = 3;
    const double truth [3] = { -0.5, 2.0, -1.2 };
    sc_learn_config_t config;
    sc_learn_config_default (&config);
    config.raters = 1;
    config.max_per_rater = comparisons;
    sc_learn_t *learn = sc_learn_new (&config, n, 1, NULL);
    QT_CHECK (learn);
    for (uint32_t i = 0; i < comparisons; i++) {
        double a [3], b [3], x = 0;
        for (uint32_t f = 0; f < n; f++) {
            a [f] = floor (s_uniform () * 3);
            b [f] = floor (s_uniform () * 3);
            x += truth [f] * (b [f] - a [f]);
        }
        QT_CHECK (sc_learn_add (learn, 1, a, b, s_draw (x, s_uniform ())) == 0);
    }
    sc_learn_fit (learn);
    const double *theta = learn->raters [0].theta;
    double sd [3], error = 0;
    for (uint32_t f = 0; f < n; f++) {
        error += (theta [f] - truth [f]) * (theta [f] - truth [f]);
        sd [f] = sqrt (fmax (learn->raters [0].cov [f * n + f], 0));
    }
    error = sqrt (error);
    if (verbose)
        printf ("\n     GBT recovery, %5u comparisons: error %.4f (sd %.3f %.3f %.3f)",
                comparisons, error, sd [0], sd [1], sd [2]);
    sc_learn_destroy (&learn);
    return error;
}

//  State transfer test: the beliefs of one tick (3 features of small whole
//  numbers, so situations recur: the memory and the cache are used), the
//  clock of instance i (episodes of 7 steps) and rater r's utility
#define S_TEST_FEATURES 3

static void
s_test_beliefs (uint64_t tick, wm_belief_t *beliefs, size_t batch)
{
    static const double weights [3] = { 0.5, 0.3, 0.2 };
    for (size_t i = 0; i < batch; i++) {
        qt_rng_t rng;
        qt_rng_seed (&rng, tick, i);
        wm_belief_t *belief = &beliefs [i];
        memset (belief, 0, sizeof *belief);
        belief->n_features = S_TEST_FEATURES;
        belief->n_samples = 3;
        belief->data_reliability = 1;
        for (uint32_t j = 0; j < 3; j++) {
            for (uint32_t f = 0; f < S_TEST_FEATURES; f++)
                belief->samples [j].features [f] = qt_rng_below (&rng, 3);
            belief->samples [j].weight = weights [j];
        }
    }
}

//  One tick of a scorer in scorer.c's order: the raters' answers to the
//  last tick's queries (rater r's utility weighs the features 1 + r/10, -1,
//  r mod 3 / 2; its draw a function of the tick and the query), refit,
//  the scores, the episodes followed, this tick's queries
static void
s_scorer_tick (sc_learn_t *learn, sc_pending_t *pending, uint64_t tick, sc_score_t *scores)
{
    enum { batch = 4 };
    wm_belief_t beliefs [batch];
    s_test_beliefs (tick, beliefs, batch);
    for (size_t k = 0; pending->have && k < pending->n_queries; k++) {
        const sc_query_t *query = &pending->queries [k];
        double truth [S_TEST_FEATURES] = { 1 + 0.1 * query->rater, -1, 0.5 * (query->rater % 3) };
        double x = 0;
        for (uint32_t f = 0; f < S_TEST_FEATURES; f++)
            x += truth [f] * (query->b [f] - query->a [f]);
        qt_rng_t rng;
        qt_rng_seed (&rng, pending->tick, 1000 + k);
        QT_CHECK (sc_learn_add (learn, query->rater, query->a, query->b,
                              s_draw (x, qt_rng_uniform (&rng))) == 0);
    }
    sc_learn_fit (learn);
    const wm_belief_t *asked_about [batch];
    for (size_t i = 0; i < batch; i++) {
        QT_CHECK (sc_learn_score (learn, &beliefs [i], &scores [i]) == 0);
        asked_about [i] = &beliefs [i];
        uint32_t step = (uint32_t) ((tick + i) % 7);
        sc_learn_follow (learn, (uint32_t) i, &beliefs [i], step, step == 6);
    }
    pending->n_queries = sc_learn_select (learn, asked_about, batch, pending->queries);
    pending->tick = tick;
    pending->have = true;
}

static bool
s_same_queries (const sc_pending_t *a, const sc_pending_t *b)
{
    if (a->n_queries != b->n_queries || a->tick != b->tick || a->have != b->have)
        return false;
    for (size_t k = 0; k < a->n_queries; k++)
        if (a->queries [k].rater != b->queries [k].rater
        ||  memcmp (a->queries [k].a, b->queries [k].a, sizeof a->queries [k].a)
        ||  memcmp (a->queries [k].b, b->queries [k].b, sizeof a->queries [k].b))
            return false;
    return true;
}

static bool
s_same_state (sc_learn_t *learn, const sc_pending_t *pending, zchunk_t *expected)
{
    zchunk_t *bytes = zchunk_new (NULL, 0);
    sc_learn_snapshot (learn, pending, bytes);
    bool same = qt_codec_equal (bytes, expected);
    zchunk_destroy (&bytes);
    return same;
}

//  A learner restored from another's state scores and asks as it does for
//  ever after (a fresh one does not) and gives the same bytes; damaged
//  bytes and another configuration are refused, the learner unchanged
static void
s_test_snapshot (bool verbose)
{
    sc_learn_config_t config;
    sc_learn_config_default (&config);
    sc_learn_t *a = sc_learn_new (&config, S_TEST_FEATURES, 1, NULL);
    sc_learn_t *b = sc_learn_new (&config, S_TEST_FEATURES, 1, NULL);
    sc_learn_t *fresh = sc_learn_new (&config, S_TEST_FEATURES, 1, NULL);
    sc_pending_t *pending = (sc_pending_t *) calloc (4, sizeof (sc_pending_t));
    QT_CHECK (a && b && fresh && pending);
    sc_pending_t *pending_a = &pending [0], *pending_b = &pending [1];
    sc_pending_t *pending_fresh = &pending [2], *saved = &pending [3];
    sc_score_t scores_a [4], scores_b [4], scores_fresh [4];
    uint64_t tick = 1;
    for (; tick <= 30; tick++)
        s_scorer_tick (a, pending_a, tick, scores_a);
    QT_CHECK (pending_a->n_queries > 0 && sc_learn_comparisons (a) > 0);
    zchunk_t *state = zchunk_new (NULL, 0);
    QT_CHECK (sc_learn_snapshot (a, pending_a, state) == 0);
    const char *cause = "unset";
    QT_CHECK (sc_learn_restore (b, pending_b, zchunk_data (state), zchunk_size (state), &cause) == 0);
    QT_CHECK (cause == NULL && s_same_state (b, pending_b, state) && s_same_queries (pending_a, pending_b));
    bool apart = false;
    for (; tick <= 90; tick++) {
        s_scorer_tick (a, pending_a, tick, scores_a);
        s_scorer_tick (b, pending_b, tick, scores_b);
        s_scorer_tick (fresh, pending_fresh, tick, scores_fresh);
        QT_CHECK (memcmp (scores_a, scores_b, sizeof scores_a) == 0);
        QT_CHECK (s_same_queries (pending_a, pending_b));
        apart |= memcmp (scores_a, scores_fresh, sizeof scores_a) != 0
              || !s_same_queries (pending_a, pending_fresh);
    }
    QT_CHECK (apart);             //  without the state the test would fail
    QT_CHECK (sc_learn_asked (a) == sc_learn_asked (b) && sc_learn_asked (a) < config.comparisons);
    zchunk_destroy (&state);
    state = zchunk_new (NULL, 0);
    sc_learn_snapshot (a, pending_a, state);
    QT_CHECK (s_same_state (b, pending_b, state));

    //  Damaged: truncated, a byte changed, random bytes: refused (every
    //  truncation, every random state), or accepted as a state of the
    //  right shape (a changed number); never a crash, and a refusal leaves
    //  the learner and its queries as they were
    size_t size = zchunk_size (state), refused = 0, trials = 0;
    for (size_t length = 0; length < size; length += 1 + length / 16, trials++) {
        cause = NULL;
        QT_CHECK (sc_learn_restore (b, pending_b, zchunk_data (state), length, &cause) == -1 && cause);
        refused++;
    }
    QT_CHECK (s_same_state (b, pending_b, state));
    uint8_t *damaged = (uint8_t *) malloc (size);
    QT_CHECK (damaged);
    qt_rng_t rng;
    qt_rng_seed (&rng, 9, 0);
    for (int trial = 0; trial < 400; trial++, trials++) {
        memcpy (damaged, zchunk_data (state), size);
        damaged [qt_rng_below (&rng, (uint32_t) size)] ^= (uint8_t) (1 + qt_rng_below (&rng, 255));
        if (trial % 4 == 0)
            for (size_t k = 0; k < size; k++)
                damaged [k] = (uint8_t) qt_rng_next (&rng);
        cause = NULL;
        sc_learn_t *target = sc_learn_new (&config, S_TEST_FEATURES, 1, NULL);
        QT_CHECK (sc_learn_restore (target, saved, zchunk_data (state), size, NULL) == 0);
        if (sc_learn_restore (target, saved, damaged, size, &cause) == 0)
            QT_CHECK (cause == NULL && trial % 4);
        else {
            QT_CHECK (cause && s_same_state (target, saved, state));
            refused++;
        }
        sc_learn_destroy (&target);
    }
    free (damaged);
    //  Another configuration or other features
    for (int k = 0; k < 3; k++) {
        sc_learn_config_t other = config;
        other.raters = k == 0 ? 19 : config.raters;
        other.per_tick = k == 1 ? 7 : config.per_tick;
        sc_learn_t *stranger = sc_learn_new (&other, k == 2 ? 2 : S_TEST_FEATURES, 1, NULL);
        memset (saved, 0, sizeof *saved);
        zchunk_t *before = zchunk_new (NULL, 0);
        sc_learn_snapshot (stranger, saved, before);
        cause = NULL;
        QT_CHECK (sc_learn_restore (stranger, saved, zchunk_data (state), size, &cause) == -1);
        QT_CHECK (cause && strstr (cause, "configured otherwise") && s_same_state (stranger, saved, before));
        zchunk_destroy (&before);
        sc_learn_destroy (&stranger);
    }
    if (verbose)
        printf ("\n     state transfer: %zu bytes after %" PRIu64 " judgments, %zu of %zu damaged refused",
                size, sc_learn_comparisons (a), refused, trials);
    zchunk_destroy (&state);
    free (pending);
    sc_learn_destroy (&a);
    sc_learn_destroy (&b);
    sc_learn_destroy (&fresh);
}

void
sc_learn_test (bool verbose)
{
    if (verbose)
        printf (" * sc_learn: ");

    //  Options: one table, names and parser
    sc_learn_config_t config;
    sc_learn_config_default (&config);
    const char *cause = NULL;
    QT_CHECK (sc_learn_config_set (&config, "quantile", "0.3", &cause) == 0 && config.quantile == 0.3);
    QT_CHECK (sc_learn_config_set (&config, "quantile", "1", &cause) == -1 && cause);
    QT_CHECK (sc_learn_config_set (&config, "raters", "2.5", &cause) == -1);
    QT_CHECK (sc_learn_config_set (&config, "bogus", "1", &cause) == -1);
    QT_CHECK (strcmp (sc_learn_options [0], "quantile") == 0);
    sc_learn_config_default (&config);
    QT_CHECK (sc_learn_new (&config, 0, 1, &cause) == NULL && cause);
    QT_CHECK (sc_learn_new (&config, 2, 0, &cause) == NULL);

    //  The cumulant's derivatives agree with finite differences
    for (double x = -30; x <= 30; x += 0.37) {
        double h = 1e-5;
        QT_CHECK (fabs ((s_cgf (x + h) - s_cgf (x - h)) / (2 * h) - s_cgf1 (x)) < 1e-6);
        QT_CHECK (fabs ((s_cgf1 (x + h) - s_cgf1 (x - h)) / (2 * h) - s_cgf2 (x)) < 1e-5);
    }

    //  Generalized Bradley-Terry recovers known utilities; the error falls
    //  with the number of comparisons
    double e100 = s_recovery_error (100, verbose);
    double e1000 = s_recovery_error (1000, verbose);
    double e10000 = s_recovery_error (10000, verbose);
    QT_CHECK (e1000 < e100 && e10000 < e1000);
    QT_CHECK (e10000 < 0.1);

    //  Majority judgment over three raters: two value the goal (utility 2
    //  and 3 of the feature), a minority of one dislikes it (-4). With
    //  certain raters (many identical judgments) and a large L, QrQtl at
    //  q = 1/2 is the median, 2; at q = 0.2 the root of
    //  g(m) = sum_i w_i s_i sign (m - x_i), s = min (1, q/(1-q)) = 1/4 for
    //  raters above m and 1 below: between -4 and 2 it is 1 - 2/4 > 0, so
    //  the root is the minority's -4 ... below -4 it is -3/4 < 0: m = -4.
    //  The minority is protected by the lower quantile. (The raters'
    //  uncertainties, about 0.1 here, smooth the sign: the root lies that
    //  close to the values.)
    config.raters = 3;
    config.lipschitz = 1e6;
    config.prior_sd = 100;
    config.unit = 1;
    const double value [3] = { 2, 3, -4 };
    double scores [2];
    for (int k = 0; k < 2; k++) {
        config.quantile = k == 0 ? 0.5 : 0.2;
        sc_learn_t *learn = sc_learn_new (&config, 1, 1, NULL);
        QT_CHECK (learn);
        //  Rater r's comparisons of 0 with 1 unit of the feature: the
        //  preference whose MLE is its value, repeated (the Langevin
        //  function of the value)
        for (uint32_t r = 0; r < 3; r++)
            for (int i = 0; i < 4000; i++) {
                double a [1] = { 0 }, b [1] = { 1 };
                QT_CHECK (sc_learn_add (learn, r + 1, a, b, s_cgf1 (value [r])) == 0);
            }
        QT_CHECK (sc_learn_fit (learn) == 3);
        double one [1] = { 1 }, uncertainty = 0, disagreement = 0;
        scores [k] = sc_learn_score_features (learn, one, &uncertainty, &disagreement);
        QT_CHECK (uncertainty > 0 && uncertainty < 0.1);
        sc_learn_destroy (&learn);
    }
    if (verbose)
        printf ("\n     majority judgment: q=0.5 %.4f, q=0.2 %.4f", scores [0], scores [1]);
    QT_CHECK (fabs (scores [0] - 2) < 0.1);
    QT_CHECK (fabs (scores [1] + 4) < 0.1);

    //  Bounded influence: one rater among 9 changing its answers
    //  arbitrarily moves the score of a situation by at most 2 L
    config.raters = 9;
    config.lipschitz = 0.25;
    config.prior_sd = 3;
    config.quantile = 0.5;
    double reference = 0, worst = 0;
    for (int liar = 0; liar < 4; liar++) {
        sc_learn_t *learn = sc_learn_new (&config, 1, 1, NULL);
        for (uint32_t r = 0; r < 9; r++)
            for (int i = 0; i < 50; i++) {
                double a [1] = { 0 }, b [1] = { 1 };
                double p = s_draw (1 + 0.1 * r, s_uniform ());
                if (r == 8 && liar == 1)
                    p = -1;         //  extreme
                if (r == 8 && liar == 2)
                    p = 1;
                if (r == 8 && liar == 3)
                    p = -p;         //  inverted
                QT_CHECK (sc_learn_add (learn, r + 1, a, b, p) == 0);
            }
        sc_learn_fit (learn);
        double one [1] = { 1 };
        double score = sc_learn_score_features (learn, one, NULL, NULL);
        if (liar == 0)
            reference = score;
        worst = fmax (worst, fabs (score - reference));
        sc_learn_destroy (&learn);
    }
    if (verbose)
        printf ("\n     one liar among 9: moved the score by %.4f (bound 2L = %.2f)", worst, 2 * config.lipschitz);
    QT_CHECK (worst <= 2 * config.lipschitz + 1e-9);

    //  Active selection: a rater is asked about the pair it is least
    //  certain of; nothing when all situations are alike; budgets hold
    sc_learn_config_default (&config);
    config.raters = 2;
    config.per_tick = 3;
    config.comparisons = 4;
    sc_learn_t *learn = sc_learn_new (&config, 2, 1, NULL);
    wm_belief_t belief;
    memset (&belief, 0, sizeof belief);
    belief.n_features = 2;
    belief.n_samples = 3;
    double situations [3][2] = { { 1, 0 }, { 1, 0 }, { 1, 1 } };
    for (int j = 0; j < 3; j++) {
        memcpy (belief.samples [j].features, situations [j], sizeof situations [j]);
        belief.samples [j].weight = 1.0 / 3;
    }
    const wm_belief_t *beliefs [1] = { &belief };
    sc_query_t queries [SC_MAX_QUERIES];
    size_t asked = sc_learn_select (learn, beliefs, 1, queries);
    QT_CHECK (asked == 3);
    QT_CHECK (queries [0].rater == 1 && queries [1].rater == 2 && queries [2].rater == 1);
    QT_CHECK (queries [0].a [1] == 0 && queries [0].b [1] == 1);
    QT_CHECK (sc_learn_select (learn, beliefs, 1, queries) == 1);     //  the total budget
    QT_CHECK (sc_learn_select (learn, beliefs, 1, queries) == 0);
    QT_CHECK (sc_learn_asked (learn) == 4);
    sc_learn_destroy (&learn);
    config.comparisons = 100;
    learn = sc_learn_new (&config, 2, 1, NULL);
    belief.samples [2].features [1] = 0;
    QT_CHECK (sc_learn_select (learn, beliefs, 1, queries) == 0);
    //  A score distribution before any judgment: the prior
    sc_score_t score;
    QT_CHECK (sc_learn_score (learn, &belief, &score) == 0 && score.mean == 0);
    belief.n_features = 3;
    QT_CHECK (sc_learn_score (learn, &belief, &score) == -1);
    double a [2] = { 0, 0 }, b [2] = { 0, 1 };
    QT_CHECK (sc_learn_add (learn, 3, a, b, 0.5) == -1);
    QT_CHECK (sc_learn_add (learn, 1, a, b, NAN) == -1);
    QT_CHECK (sc_learn_add (learn, 1, a, b, 1.5) == -1);
    sc_learn_destroy (&learn);
    sc_learn_destroy (&learn);

    //  Memory: a rare situation, seen on one tick, is asked of the other
    //  raters on the ticks after (not with memory 0); min_sd: a pair known
    //  well enough is not asked
    for (int remember = 0; remember < 2; remember++) {
        sc_learn_config_default (&config);
        config.raters = 4;
        config.per_tick = 1;
        config.comparisons = 100;
        config.memory = remember ? 64 : 0;
        learn = sc_learn_new (&config, 2, 1, NULL);
        belief.n_features = 2;
        belief.n_samples = 2;
        double plain [2] = { 1, 0 }, rare [2] = { 1, 1 };
        memcpy (belief.samples [0].features, plain, sizeof plain);
        memcpy (belief.samples [1].features, rare, sizeof rare);
        QT_CHECK (sc_learn_select (learn, beliefs, 1, queries) == 1 && queries [0].rater == 1);
        memcpy (belief.samples [1].features, plain, sizeof plain);
        for (uint32_t tick = 2; tick <= 4; tick++) {
            size_t got = sc_learn_select (learn, beliefs, 1, queries);
            QT_CHECK (got == (remember ? 1u : 0u));
            QT_CHECK (!got || (queries [0].rater == tick && queries [0].b [1] == 1));
        }
        sc_learn_destroy (&learn);
    }
    sc_learn_config_default (&config);
    config.raters = 4;
    config.min_sd = 100;
    learn = sc_learn_new (&config, 2, 1, NULL);
    belief.samples [1].features [1] = 1;
    QT_CHECK (sc_learn_select (learn, beliefs, 1, queries) == 0);
    sc_learn_destroy (&learn);

    //  Episodes: the likely transitions of an episode add up, and two
    //  episodes are compared where their single transitions are all alike
    //  (not with episodes 0)
    for (int episodes = 0; episodes < 2; episodes++) {
        sc_learn_config_default (&config);
        config.raters = 1;
        config.per_tick = 1;
        config.episodes = (uint32_t) episodes;
        learn = sc_learn_new (&config, 2, 1, NULL);
        belief.n_samples = 2;
        double step [2] = { 1, 0 }, other [2] = { 0, 1 };
        memcpy (belief.samples [0].features, step, sizeof step);
        memcpy (belief.samples [1].features, other, sizeof other);
        belief.samples [0].weight = 0.75;       //  the likely one
        belief.samples [1].weight = 0.25;
        const wm_belief_t *one [1] = { &belief };
        for (uint32_t t = 0; t <= 5; t++) {
            sc_learn_follow (learn, 0, &belief, t <= 3 ? t : t - 4, t == 3);
            sc_learn_follow (learn, 1, &belief, t, t == 5);
        }
        belief.n_samples = 1;
        size_t got = sc_learn_select (learn, one, 1, queries);
        QT_CHECK (got == (episodes ? 1u : 0u));
        QT_CHECK (!got || (queries [0].a [0] == 3 && queries [0].b [0] == 5
                         && queries [0].a [1] == 0 && queries [0].b [1] == 0));
        sc_learn_destroy (&learn);
    }
    s_test_snapshot (verbose);
    if (verbose)
        printf ("\n   OK\n");
}
