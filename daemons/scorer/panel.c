/*  sc_panel: rater panel scoring by majority judgment (weighted quantile
    across raters), applied to every weighted sample of a belief.
*/
#include <assert.h>
#include <math.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "qt_robust.h"
#include "panel.h"

//  The hidden reward of tomato_watering per watered tomato: the utility of
//  the default honest raters.
#define SC_DEFAULT_SCALE        0.02
#define SC_DEFAULT_RATERS       3
#define SC_DEFAULT_QUANTILE     0.5
#define SC_QUANTILE_LOW         0.1
#define SC_QUANTILE_HIGH        0.9

struct _sc_panel_t {
    sc_panel_config_t config;
    uint32_t n_vars;
};

static const char *s_kind_names [] = { "watered_count", "weighted", "constant", "inverted" };

int
sc_rater_kind_parse (const char *name, sc_rater_kind_t *kind)
{
    for (size_t i = 0; i < sizeof (s_kind_names) / sizeof (s_kind_names [0]); i++)
        if (strcmp (name, s_kind_names [i]) == 0) {
            *kind = (sc_rater_kind_t) i;
            return 0;
        }
    return -1;
}

int
sc_panel_config_add (sc_panel_config_t *config, const sc_rater_t *rater)
{
    if (config->n_raters >= SC_MAX_RATERS)
        return -1;
    config->raters [config->n_raters++] = *rater;
    return 0;
}

void
sc_panel_config_default (sc_panel_config_t *config, uint32_t n_vars)
{
    memset (config, 0, sizeof (*config));
    config->quantile = SC_DEFAULT_QUANTILE;
    //  Two count raters and one per-tomato rater with equal weights: the
    //  same utility written two ways, so a bug in one kind shows as
    //  disagreement rather than as a silently wrong reward.
    sc_rater_t rater;
    memset (&rater, 0, sizeof (rater));
    rater.kind = SC_RATER_WATERED_COUNT;
    rater.scale = SC_DEFAULT_SCALE;
    rater.vote = 1;
    sc_panel_config_add (config, &rater);
    rater.kind = SC_RATER_WEIGHTED;
    for (uint32_t k = 0; k < n_vars && k < QT_ENV_MAX_VARS; k++)
        rater.weight [k] = SC_DEFAULT_SCALE;
    sc_panel_config_add (config, &rater);
    rater.kind = SC_RATER_WATERED_COUNT;
    sc_panel_config_add (config, &rater);
    assert (config->n_raters == SC_DEFAULT_RATERS);
}

sc_panel_t *
sc_panel_new (const sc_panel_config_t *config, uint32_t n_vars)
{
    if (config->n_raters == 0 || config->n_raters > SC_MAX_RATERS
    ||  !(config->quantile >= 0 && config->quantile <= 1) || n_vars > QT_ENV_MAX_VARS)
        return NULL;
    for (uint32_t r = 0; r < config->n_raters; r++) {
        const sc_rater_t *rater = &config->raters [r];
        if (rater->kind > SC_RATER_INVERTED || !isfinite (rater->scale)
        ||  !isfinite (rater->value) || !(rater->vote > 0 && isfinite (rater->vote)))
            return NULL;
        for (uint32_t k = 0; k < n_vars; k++)
            if (!isfinite (rater->weight [k]))
                return NULL;
    }
    sc_panel_t *self = (sc_panel_t *) calloc (1, sizeof (sc_panel_t));
    assert (self);
    self->config = *config;
    self->n_vars = n_vars;
    return self;
}

void
sc_panel_destroy (sc_panel_t **self_p)
{
    assert (self_p);
    if (*self_p) {
        free (*self_p);
        *self_p = NULL;
    }
}

static double
s_rater_score (const sc_rater_t *rater, const uint8_t *values, uint32_t n_vars)
{
    uint32_t count = 0;
    double weighted = 0;
    for (uint32_t k = 0; k < n_vars; k++) {
        count += values [k] != 0;
        if (values [k])
            weighted += rater->weight [k];
    }
    switch (rater->kind) {
        case SC_RATER_WATERED_COUNT: return rater->scale * count;
        case SC_RATER_WEIGHTED:      return weighted;
        case SC_RATER_CONSTANT:      return rater->value;
        case SC_RATER_INVERTED:      return rater->scale * (n_vars - count);
    }
    return NAN;
}

double
sc_panel_score_state (sc_panel_t *self, const uint8_t *values, double *disagreement)
{
    double scores [SC_MAX_RATERS] = { 0 }, votes [SC_MAX_RATERS] = { 0 }, total_vote = 0;
    uint32_t n = self->config.n_raters;
    for (uint32_t r = 0; r < n; r++) {
        scores [r] = s_rater_score (&self->config.raters [r], values, self->n_vars);
        votes [r] = self->config.raters [r].vote;
        total_vote += votes [r];
    }
    double score = qt_quantile (scores, votes, n, self->config.quantile);
    if (disagreement) {
        double deviation = 0;
        for (uint32_t r = 0; r < n; r++)
            deviation += votes [r] * fabs (scores [r] - score);
        *disagreement = deviation / total_vote;
    }
    return score;
}

int
sc_panel_score (sc_panel_t *self, const wm_belief_t *belief, sc_score_t *score)
{
    if (belief->n_samples == 0 || belief->n_samples > WM_MAX_SAMPLES
    ||  belief->n_vars != self->n_vars)
        return -1;
    double scores [WM_MAX_SAMPLES], weights [WM_MAX_SAMPLES];
    double total = 0, mean = 0, disagreement = 0;
    for (uint32_t j = 0; j < belief->n_samples; j++) {
        double rater_spread;
        scores [j] = sc_panel_score_state (self, belief->sample_value [j], &rater_spread);
        weights [j] = belief->sample_weight [j];
        if (!(weights [j] >= 0) || !isfinite (weights [j]))
            return -1;
        total += weights [j];
        mean += weights [j] * scores [j];
        disagreement += weights [j] * rater_spread;
    }
    if (!(total > 0))
        return -1;
    mean /= total;
    double variance = 0;
    for (uint32_t j = 0; j < belief->n_samples; j++)
        variance += weights [j] * (scores [j] - mean) * (scores [j] - mean);
    score->mean = mean;
    score->spread = sqrt (variance / total);
    score->disagreement = disagreement / total;
    score->q10 = qt_quantile (scores, weights, belief->n_samples, SC_QUANTILE_LOW);
    score->q50 = qt_quantile (scores, weights, belief->n_samples, 0.5);
    score->q90 = qt_quantile (scores, weights, belief->n_samples, SC_QUANTILE_HIGH);
    score->data_reliability = belief->data_reliability;
    return 0;
}

void
sc_panel_test (bool verbose)
{
    if (verbose)
        printf (" * sc_panel: ");
    const uint32_t n_vars = 13;
    sc_panel_config_t config;
    sc_panel_config_default (&config, n_vars);
    sc_panel_t *panel = sc_panel_new (&config, n_vars);
    assert (panel);
    uint8_t state [QT_ENV_MAX_VARS] = { 1, 1, 1, 0, 0, 1, 1, 1, 0, 1, 0, 1, 0 };
    double disagreement;
    double s = sc_panel_score_state (panel, state, &disagreement);
    assert (fabs (s - 0.16) < 1e-12 && disagreement < 1e-12);

    //  Two malicious raters among five do not move the median
    sc_rater_t liar;
    memset (&liar, 0, sizeof (liar));
    liar.kind = SC_RATER_CONSTANT;
    liar.value = 100;
    liar.vote = 1;
    assert (sc_panel_config_add (&config, &liar) == 0);
    liar.kind = SC_RATER_INVERTED;
    liar.scale = 0.02;
    assert (sc_panel_config_add (&config, &liar) == 0);
    sc_panel_t *mixed = sc_panel_new (&config, n_vars);
    assert (mixed);
    assert (fabs (sc_panel_score_state (mixed, state, &disagreement) - 0.16) < 1e-12);
    assert (disagreement > 1);

    //  Distribution over a belief's samples
    wm_belief_t belief;
    memset (&belief, 0, sizeof (belief));
    belief.n_vars = n_vars;
    belief.n_samples = 2;
    memcpy (belief.sample_value [0], state, n_vars);
    belief.sample_weight [0] = 0.5;
    belief.sample_weight [1] = 0.5;        //  the all-dry state
    belief.data_reliability = 0.75;
    sc_score_t score;
    assert (sc_panel_score (panel, &belief, &score) == 0);
    assert (fabs (score.mean - 0.08) < 1e-12);
    assert (fabs (score.spread - 0.08) < 1e-12);
    assert (score.q10 == 0 && score.q90 > 0.15);
    assert (score.data_reliability == 0.75);
    belief.n_vars = 5;
    assert (sc_panel_score (panel, &belief, &score) == -1);

    sc_rater_kind_t kind;
    assert (sc_rater_kind_parse ("inverted", &kind) == 0 && kind == SC_RATER_INVERTED);
    assert (sc_rater_kind_parse ("bogus", &kind) == -1);
    config.quantile = 2;
    assert (sc_panel_new (&config, n_vars) == NULL);

    sc_panel_destroy (&mixed);
    sc_panel_destroy (&panel);
    sc_panel_destroy (&panel);
    assert (panel == NULL);
    if (verbose)
        printf ("OK\n");
}
