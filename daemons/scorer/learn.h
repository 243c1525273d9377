/*  sc_learn: Charlie learns what people want from their comparisons, and
    scores likely states by a Lipschitz-resilient majority judgment.

    Per rater, a generalized Bradley-Terry model (solidago's uniform GBT)
    over the features the environment declares: rater r has a utility
    u_r(s) = theta_r . f(s) of a situation s (the features of a transition),
    and answers "A or B, and how strongly" with a graded preference
    p in [-1, 1] of density proportional to exp (p * (u_r(B) - u_r(A))).
    theta_r is the MAP estimate under a Gaussian prior N(0, prior_sd^2 I)
    (Newton's method: the negative log-likelihood, log (sinh d / d) - p d,
    is convex), and its uncertainty the Laplace approximation (the inverse
    Hessian at the MAP).

    Across raters, the score of a situation is QrQtl (qt_tournesol) of the
    raters' utilities of it, each with its own uncertainty (the standard
    deviation of theta_r . f under the Laplace posterior) and a voting right
    (1 for a rater with at least one judgment, 0 before): one rater, however
    it answers, moves the score by at most 2 L (L = lipschitz), and q < 1/2
    protects a minority that scores low. Utilities are in comparison units
    (a difference of SC_COMPARISON_SCALE is a strong preference); scores are
    published in reward units, times `unit` (the environment's reward scale
    / SC_COMPARISON_SCALE unless configured: the convention that people
    feel one reward scale of value as a strong preference).

    Active selection: each tick at most per_tick comparisons (and at most
    `comparisons` in all) are asked, each of one rater, round robin; for
    rater r the pair of distinct situations that maximises the posterior
    variance of u_r(B) - u_r(A) (where the model is least certain), the
    posterior then updated with the expected information of that comparison
    before the next pick. The situations are those of the tick's likely
    states and the last `memory` distinct ones seen before (least recently
    seen forgotten first): a rare situation, seen on one tick, is asked of
    every rater in the ticks after, not only of the few asked that tick.
    Situations are transitions and, with `episodes`, whole episodes (the
    features of an episode's likely transitions added up, as people compare
    trajectory segments rather than moments in Christiano et al. 2017): a
    cost paid on every step (1/50 of the reward scale in some gridworlds)
    is too small to feel in one transition, but not over an episode of 9
    steps against one of 20; pairs are of one kind (transition with
    transition, episode with episode), and one linear model learns from
    both. A pair is asked only while its posterior standard deviation exceeds
    min_sd (comparison units): what the model already knows costs no
    budget, which stays for the situations the agent has not met yet (the
    budget is otherwise gone on the first ticks, before a competent agent
    reaches the situations that decide its behaviour).

    Learning time is bounded: a rater's model is refit only when it has new
    judgments, from its last MAP (warm start); comparisons per rater are
    capped at max_per_rater (the oldest are forgotten).

    The learner reads judgments only: it never sees the hidden performance,
    `eval` or the intended value.
*/
#ifndef SC_LEARN_H_INCLUDED
#define SC_LEARN_H_INCLUDED

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>
#include <czmq.h>

#include "filter.h"

//  A preference of strength ~0.8 (utility difference 3): the scale of
//  comparison units in reward scales (see `unit`)
#define SC_COMPARISON_SCALE     3.0
#define SC_MAX_RATERS           256
#define SC_MAX_QUERIES          64      //  per tick

//  The options (quintet/scorer/<name>, quintet-sim --scorer NAME=VALUE):
//  name, whole number?, range, what the range is in words
#define SC_LEARN_NUMBERS(X) \
    X (quantile,      false, 1e-6, 1 - 1e-6,  "quantile is in (0, 1)") \
    X (lipschitz,     false, 1e-6, 1e6,       "lipschitz is a number in [1e-6, 1e6] (comparison units)") \
    X (prior_sd,      false, 1e-3, 1e3,       "prior_sd is a number in [1e-3, 1e3]") \
    X (raters,        true,  0,    SC_MAX_RATERS, "raters is a whole number in [0, 256]") \
    X (comparisons,   true,  0,    (double) UINT32_MAX, "comparisons is a whole number") \
    X (per_tick,      true,  0,    SC_MAX_QUERIES, "per_tick is a whole number in [0, 64]") \
    X (max_per_rater, true,  1,    1e6,       "max_per_rater is a whole number in [1, 1e6]") \
    X (min_sd,        false, 0,    1e3,       "min_sd is a number in [0, 1e3] (comparison units)") \
    X (memory,        true,  0,    64,        "memory is a whole number in [0, 64] (situations)") \
    X (episodes,      true,  0,    1,         "episodes is 0 or 1 (whole episodes are compared too)") \
    X (unit,          false, 0,    1e9,       "unit is a number in [0, 1e9] (0: reward scale / 3)")

typedef struct {
    double quantile;            //  q of the majority judgment
    double lipschitz;           //  L: one rater moves a score by at most 2 L (comparison units)
    double prior_sd;            //  of each weight, comparison units per feature unit
    uint32_t raters;            //  ids 1..raters may be asked
    uint32_t comparisons;       //  total budget of comparisons asked
    uint32_t per_tick;          //  budget per tick
    uint32_t max_per_rater;     //  judgments kept per rater
    double min_sd;              //  a pair is asked while its posterior sd exceeds this
    uint32_t memory;            //  distinct situations remembered for selection (0: the tick's only)
    uint32_t episodes;          //  1: whole episodes are situations too
    double unit;                //  reward units per comparison unit (0: reward_scale / 3)
} sc_learn_config_t;

//  The option names, NULL-terminated (from SC_LEARN_NUMBERS)
extern const char *const sc_learn_options [];

void sc_learn_config_default (sc_learn_config_t *config);

//  Set one option from its text: 0, or -1 with a static cause
int sc_learn_config_set (sc_learn_config_t *config, const char *name, const char *value,
                         const char **cause);

//  One comparison to ask.
typedef struct {
    uint32_t rater;                         //  1..raters
    double a [QT_ENV_MAX_FEATURES];
    double b [QT_ENV_MAX_FEATURES];
} sc_query_t;

//  The queries asked at a tick, which the judgments of the next tick
//  answer: part of the scorer's state from one tick to the next.
typedef struct {
    sc_query_t queries [SC_MAX_QUERIES];
    size_t n_queries;
    uint64_t tick;                          //  when they were asked
    bool have;                              //  false before the first tick
} sc_pending_t;

//  What the scorer publishes per instance.
typedef struct {
    double mean;            //  expected score over the likely states
    double q10, q50, q90;   //  quantiles of the score: the mixture over likely
                            //  states of the learned score's uncertainty
    double spread;          //  its standard deviation (states and model)
    double disagreement;    //  expected weighted mean |u_r - score| over raters
    double data_reliability;    //  passed through from the belief
} sc_score_t;

typedef struct _sc_learn_t sc_learn_t;

//  A learner for n_features declared features; reward_scale gives the
//  default unit. NULL on an invalid configuration (with a static cause).
sc_learn_t *sc_learn_new (const sc_learn_config_t *config, uint32_t n_features,
                          double reward_scale, const char **cause);
void sc_learn_destroy (sc_learn_t **self_p);

//  Choose this tick's queries among the likely states of the beliefs
//  (n of them), the situations remembered and the episodes followed
//  (sc_learn_follow) that ended since the last call, within the budgets;
//  writes at most SC_MAX_QUERIES, returns how many. They count as asked.
size_t sc_learn_select (sc_learn_t *self, const wm_belief_t *const *beliefs, size_t n,
                        sc_query_t *queries);

//  Follow instance i's episode (before this tick's sc_learn_select):
//  the features of its likely transition this tick (the heaviest sample)
//  add up to the episode's; step is the instance's step in its episode
//  (0: it began, no transition yet) and done says it ended with this one.
void sc_learn_follow (sc_learn_t *self, uint32_t instance, const wm_belief_t *belief,
                      uint32_t step, bool done);

//  One judgment: rater (1..raters) compared a with b and said preference
//  (in [-1, 1], > 0 prefers b). -1 (ignored) when out of range.
int sc_learn_add (sc_learn_t *self, uint32_t rater, const double *a, const double *b,
                  double preference);

//  Refit the raters with new judgments. Returns the number refit.
uint32_t sc_learn_fit (sc_learn_t *self);

//  The majority judgment of one situation, in reward units; its
//  uncertainty (may be NULL) and the raters' disagreement (may be NULL)
double sc_learn_score_features (sc_learn_t *self, const double *features,
                                double *uncertainty, double *disagreement);

//  Score distribution of a belief: 0, or -1 on a belief without samples.
int sc_learn_score (sc_learn_t *self, const wm_belief_t *belief, sc_score_t *score);

//  A belief scored by a known utility (weights over the features, reward
//  units): what the learned scores aim at. For tests and quintet-sim's
//  `intended` baseline only; the scorer daemon has no utility to give it.
int sc_score_known (const double *weights, const wm_belief_t *belief, sc_score_t *score);

//  What has been learned: per feature, the raters' weights aggregated by
//  QrMed, in reward units (weights: n_features values)
void sc_learn_weights (sc_learn_t *self, double *weights);
double sc_learn_voting_right (sc_learn_t *self, uint32_t rater);
uint32_t sc_learn_rater_comparisons (sc_learn_t *self, uint32_t rater);
uint64_t sc_learn_comparisons (sc_learn_t *self);       //  judgments learned from
uint64_t sc_learn_asked (sc_learn_t *self);
uint64_t sc_learn_budget (sc_learn_t *self);          //  comparisons that may be asked in all
uint32_t sc_learn_per_tick (sc_learn_t *self);
double sc_learn_quantile (sc_learn_t *self);
uint32_t sc_learn_raters (sc_learn_t *self);

//  State transfer (the scorer's qt_role_t snapshot/restore): the learner's
//  whole state and the queries pending, appended to out, deterministic
//  (the same state gives the same bytes) and complete (a learner restored
//  from them scores and asks as this one for ever after). 0.
int sc_learn_snapshot (sc_learn_t *self, const sc_pending_t *pending, zchunk_t *out);

//  Those bytes into a learner of the same configuration and features, and
//  the queries into pending. Every count, index and number is checked
//  (the bytes may come from the network). 0, or -1 with a static cause in
//  *cause (may be NULL), the learner and pending unchanged.
int sc_learn_restore (sc_learn_t *self, sc_pending_t *pending, const uint8_t *data, size_t size,
                      const char **cause);

void sc_learn_test (bool verbose);

#endif
