/*  sc_panel: rater panel scoring by majority judgment (weighted quantile
    across raters) of the features of every weighted sample of a belief.
*/
#include <assert.h>
#include <math.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "qt_robust.h"
#include "panel.h"

#define SC_DEFAULT_QUANTILE     0.5
#define SC_QUANTILE_LOW         0.1
#define SC_QUANTILE_HIGH        0.9

struct _sc_panel_t {
    sc_panel_config_t config;
    uint32_t n_features;
};

static const char *const s_kind_names [SC_RATER_KINDS] = { "weighted", "constant", "inverted" };

int
sc_rater_kind_parse (const char *name, sc_rater_kind_t *kind)
{
    for (int k = 0; k < SC_RATER_KINDS; k++)
        if (strcmp (name, s_kind_names [k]) == 0) {
            *kind = (sc_rater_kind_t) k;
            return 0;
        }
    return -1;
}

const char *
sc_rater_kind_name (sc_rater_kind_t kind)
{
    return kind < SC_RATER_KINDS ? s_kind_names [kind] : "unknown";
}

void
sc_panel_config_init (sc_panel_config_t *config)
{
    memset (config, 0, sizeof (*config));
    config->quantile = SC_DEFAULT_QUANTILE;
}

int
sc_panel_config_add (sc_panel_config_t *config, const sc_rater_t *rater)
{
    if (config->n_raters >= SC_PANEL_MAX_RATERS)
        return -1;
    config->raters [config->n_raters++] = *rater;
    return 0;
}

sc_panel_t *
sc_panel_new (const sc_panel_config_t *config, uint32_t n_features)
{
    if (config->n_raters == 0 || config->n_raters > SC_PANEL_MAX_RATERS
    ||  !(config->quantile > 0 && config->quantile < 1) || n_features > QT_ENV_MAX_FEATURES)
        return NULL;
    for (uint32_t r = 0; r < config->n_raters; r++) {
        const sc_rater_t *rater = &config->raters [r];
        if (rater->kind >= SC_RATER_KINDS || !isfinite (rater->value)
        ||  !(rater->vote > 0 && isfinite (rater->vote)))
            return NULL;
        for (uint32_t f = 0; f < n_features; f++)
            if (!isfinite (rater->weight [f]))
                return NULL;
    }
    sc_panel_t *self = (sc_panel_t *) calloc (1, sizeof (sc_panel_t));
    assert (self);
    self->config = *config;
    self->n_features = n_features;
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
s_rater_utility (const sc_rater_t *rater, const double *features, uint32_t n_features)
{
    double weighted = 0;
    for (uint32_t f = 0; f < n_features; f++)
        weighted += rater->weight [f] * features [f];
    switch (rater->kind) {
        case SC_RATER_WEIGHTED: return weighted;
        case SC_RATER_CONSTANT: return rater->value;
        case SC_RATER_INVERTED: return -weighted;
        default:                return NAN;
    }
}

double
sc_panel_score_features (sc_panel_t *self, const double *features, double *disagreement)
{
    double scores [SC_PANEL_MAX_RATERS] = { 0 }, votes [SC_PANEL_MAX_RATERS] = { 0 }, total_vote = 0;
    uint32_t n = self->config.n_raters;
    for (uint32_t r = 0; r < n; r++) {
        scores [r] = s_rater_utility (&self->config.raters [r], features, self->n_features);
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
    ||  belief->n_features != self->n_features)
        return -1;
    double scores [WM_MAX_SAMPLES], weights [WM_MAX_SAMPLES];
    double total = 0, mean = 0, disagreement = 0;
    for (uint32_t j = 0; j < belief->n_samples; j++) {
        double rater_spread;
        scores [j] = sc_panel_score_features (self, belief->samples [j].features, &rater_spread);
        weights [j] = belief->samples [j].weight;
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
    //  Features: (step, goal); raters value the goal and dislike steps
    const uint32_t n_features = 2;
    sc_panel_config_t config;
    sc_panel_config_init (&config);
    sc_rater_t honest;
    memset (&honest, 0, sizeof honest);
    honest.kind = SC_RATER_WEIGHTED;
    honest.weight [0] = -1;
    honest.weight [1] = 50;
    honest.vote = 1;
    for (int r = 0; r < 3; r++)
        assert (sc_panel_config_add (&config, &honest) == 0);
    sc_panel_t *panel = sc_panel_new (&config, n_features);
    assert (panel);
    double goal [2] = { 1, 1 }, walk [2] = { 1, 0 };
    double disagreement;
    assert (sc_panel_score_features (panel, goal, &disagreement) == 49 && disagreement == 0);
    assert (sc_panel_score_features (panel, walk, NULL) == -1);

    //  Two malicious raters among five do not move the median
    sc_rater_t liar;
    memset (&liar, 0, sizeof liar);
    liar.kind = SC_RATER_CONSTANT;
    liar.value = 1000;
    liar.vote = 1;
    assert (sc_panel_config_add (&config, &liar) == 0);
    liar = honest;
    liar.kind = SC_RATER_INVERTED;
    assert (sc_panel_config_add (&config, &liar) == 0);
    sc_panel_t *mixed = sc_panel_new (&config, n_features);
    assert (mixed);
    assert (sc_panel_score_features (mixed, goal, &disagreement) == 49);
    assert (disagreement > 100);

    //  Distribution over a belief's samples
    wm_belief_t belief;
    memset (&belief, 0, sizeof (belief));
    belief.n_features = n_features;
    belief.n_samples = 2;
    memcpy (belief.samples [0].features, goal, sizeof goal);
    memcpy (belief.samples [1].features, walk, sizeof walk);
    belief.samples [0].weight = 0.5;
    belief.samples [1].weight = 0.5;
    belief.data_reliability = 0.75;
    sc_score_t score;
    assert (sc_panel_score (panel, &belief, &score) == 0);
    assert (fabs (score.mean - 24) < 1e-12);
    assert (fabs (score.spread - 25) < 1e-12);
    assert (score.q10 == -1 && score.q90 == 49);
    assert (score.data_reliability == 0.75);
    belief.n_features = 5;
    assert (sc_panel_score (panel, &belief, &score) == -1);

    sc_rater_kind_t kind;
    assert (sc_rater_kind_parse ("inverted", &kind) == 0 && kind == SC_RATER_INVERTED);
    assert (sc_rater_kind_parse ("bogus", &kind) == -1);
    config.quantile = 1;
    assert (sc_panel_new (&config, n_features) == NULL);

    sc_panel_destroy (&mixed);
    sc_panel_destroy (&panel);
    sc_panel_destroy (&panel);
    assert (panel == NULL);
    if (verbose)
        printf ("OK\n");
}
