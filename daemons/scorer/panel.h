/*  sc_panel: Charlie's panel of raters and the score distribution it gives
    a belief.

    A rater's utility is a weighted sum of the transition features the
    environment declares (the vocabulary in which value is expressed), with
    weights the configuration gives; some raters may be malicious (constant,
    inverted). The panel's score of one likely state is the weighted
    q-quantile of its raters' utilities of the features of the transition
    into it (majority judgment: q = 0.5 is the median rater, a smaller q
    protects a minority that scores low). The panel scores every weighted
    sample of a belief and publishes the distribution: mean, quantiles,
    spread, and how much the raters disagree.

    The scorer never reads the environment's hidden performance: the panel
    is configuration (until raters are learned from judgments).
*/
#ifndef SC_PANEL_H_INCLUDED
#define SC_PANEL_H_INCLUDED

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

#include "filter.h"
#include "learn.h"

#define SC_PANEL_MAX_RATERS 32

typedef enum {
    SC_RATER_WEIGHTED = 0,      //  sum of weight[f] x feature[f]
    SC_RATER_CONSTANT = 1,      //  always `value` (malicious: ignores the state)
    SC_RATER_INVERTED = 2,      //  minus the weighted sum (malicious)
    SC_RATER_KINDS
} sc_rater_kind_t;

typedef struct {
    sc_rater_kind_t kind;
    double weight [QT_ENV_MAX_FEATURES];    //  per declared feature
    double value;                           //  constant
    double vote;                            //  the rater's weight in the quantile, > 0
} sc_rater_t;

typedef struct {
    double quantile;                    //  q in (0, 1)
    uint32_t n_raters;
    sc_rater_t raters [SC_PANEL_MAX_RATERS];
} sc_panel_config_t;


typedef struct _sc_panel_t sc_panel_t;

//  An empty panel with q = 0.5.
void sc_panel_config_init (sc_panel_config_t *config);

//  Append a rater; returns 0, or -1 when the panel is full.
int sc_panel_config_add (sc_panel_config_t *config, const sc_rater_t *rater);

//  A rater kind by name (weighted, constant, inverted); -1 if none.
int sc_rater_kind_parse (const char *name, sc_rater_kind_t *kind);
const char *sc_rater_kind_name (sc_rater_kind_t kind);

//  NULL if the configuration is invalid (no raters, q outside (0,1),
//  non-finite parameters, non-positive votes, n_features too large).
sc_panel_t *sc_panel_new (const sc_panel_config_t *config, uint32_t n_features);
void sc_panel_destroy (sc_panel_t **self_p);

//  Panel score of one transition's features, and the raters' mean absolute
//  deviation from it (disagreement may be NULL).
double sc_panel_score_features (sc_panel_t *self, const double *features, double *disagreement);

//  Score distribution of a belief. Returns 0, or -1 on a belief with no
//  samples or another number of features.
int sc_panel_score (sc_panel_t *self, const wm_belief_t *belief, sc_score_t *score);

void sc_panel_test (bool verbose);

#endif
