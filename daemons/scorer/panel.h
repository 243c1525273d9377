/*  sc_panel: Charlie's panel of raters and the score distribution it gives
    a belief.

    Each rater is a utility over the state variables, configured by kind and
    parameters; some may be malicious. The panel's score of one state is the
    weighted q-quantile of the raters' scores (majority judgment: q = 0.5 is
    the median rater, a smaller q protects a minority that scores low). The
    panel scores every weighted sample of a belief and publishes the
    distribution: mean, quantiles, spread, and how much the raters disagree.
*/
#ifndef SC_PANEL_H_INCLUDED
#define SC_PANEL_H_INCLUDED

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

#include "filter.h"

#define SC_MAX_RATERS 32

typedef enum {
    SC_RATER_WATERED_COUNT = 0, //  scale x number of variables set (the hidden reward)
    SC_RATER_WEIGHTED = 1,      //  sum of weight[k] over variables set
    SC_RATER_CONSTANT = 2,      //  always `value` (malicious: ignores the state)
    SC_RATER_INVERTED = 3       //  scale x number of variables NOT set (malicious)
} sc_rater_kind_t;

typedef struct {
    sc_rater_kind_t kind;
    double scale;                       //  watered_count, inverted
    double weight [QT_ENV_MAX_VARS];    //  weighted
    double value;                       //  constant
    double vote;                        //  the rater's weight in the quantile, > 0
} sc_rater_t;

typedef struct {
    double quantile;                    //  q in [0, 1]
    uint32_t n_raters;
    sc_rater_t raters [SC_MAX_RATERS];
} sc_panel_config_t;

//  What the scorer publishes per instance.
typedef struct {
    double mean;            //  expected panel score over the belief's samples
    double q10, q50, q90;   //  weighted quantiles of the panel score over samples
    double spread;          //  weighted standard deviation of the panel score
    double disagreement;    //  expected mean |rater - panel score| over samples
    double data_reliability;    //  passed through from the belief
} sc_score_t;

typedef struct _sc_panel_t sc_panel_t;

//  Default panel for n_vars variables: three honest raters whose utility is
//  the hidden reward per step (0.02 per watered tomato), q = 0.5.
void sc_panel_config_default (sc_panel_config_t *config, uint32_t n_vars);

//  Append a rater; returns 0, or -1 when the panel is full.
int sc_panel_config_add (sc_panel_config_t *config, const sc_rater_t *rater);

//  Parse a rater kind name (watered_count, weighted, constant, inverted).
int sc_rater_kind_parse (const char *name, sc_rater_kind_t *kind);

//  NULL if the configuration is invalid (no raters, q outside [0,1],
//  non-finite parameters, non-positive votes, n_vars too large).
sc_panel_t *sc_panel_new (const sc_panel_config_t *config, uint32_t n_vars);
void sc_panel_destroy (sc_panel_t **self_p);

//  Panel score of one state (values per variable), and the raters' mean
//  absolute deviation from it (disagreement may be NULL).
double sc_panel_score_state (sc_panel_t *self, const uint8_t *values, double *disagreement);

//  Score distribution of a belief. Returns 0, or -1 on a belief with no
//  samples or another number of variables.
int sc_panel_score (sc_panel_t *self, const wm_belief_t *belief, sc_score_t *score);

void sc_panel_test (bool verbose);

#endif
