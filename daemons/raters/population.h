/*  rt_population: a simulated population of people who answer comparison
    queries ("situation A or situation B, and how strongly").

    Rater r (1..raters) has a utility over the environment's declared
    features, in comparison units: u_r(s) = w_r . f(s). An honest rater holds
    the environment's intended value (its declared performance weights,
    which the people, like the world, may know) in comparison units (times
    SC_COMPARISON_SCALE / reward_scale), each weight scaled by its own factor
    1 + variation * N(0, 1): people agree on what matters, not on how much.
    It answers a graded preference p in [-1, 1] drawn from the generalized
    Bradley-Terry law of density proportional to exp (p * (u_r(B) - u_r(A)))
    (solidago's uniform GBT; > 0 prefers B).

    Groups besides the honest, as fractions of the population (the raters
    with the highest ids, malicious last, then careless, then the minority):
      minority   other values: the intended value with the weight of one
                 feature multiplied by minority_factor (minority_feature,
                 -1: the feature of largest |weight|);
      careless   a uniform random answer, whatever is asked;
      malicious  malice = inverted (the opposite of the intended value, with
                 the same noise), extreme (always +-1 for what the intended
                 value dislikes), colluding (all of them always push the one
                 situation with more of collude_feature: -1, the feature the
                 intended value dislikes most).

    Answers are deterministic given (seed, rater, query tick, query index):
    replicas of the raters daemon agree, and a re-sent query gets the same
    answer. Raters see only the situations they are asked about.
*/
#ifndef RT_POPULATION_H_INCLUDED
#define RT_POPULATION_H_INCLUDED

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

#include "qt_env.h"

#define RT_MAX_RATERS 256

typedef enum { RT_HONEST = 0, RT_MINORITY, RT_CARELESS, RT_MALICIOUS, RT_GROUPS } rt_group_t;
typedef enum { RT_INVERTED = 0, RT_EXTREME, RT_COLLUDING, RT_MALICES } rt_malice_t;

//  The options (quintet/raters/<name>, quintet-sim --raters-option NAME=VALUE)
#define RT_POPULATION_NUMBERS(X) \
    X (raters,           true,  1,    RT_MAX_RATERS, "raters is a whole number in [1, 256]") \
    X (variation,        false, 0,    10,   "variation is in [0, 10]") \
    X (minority,         false, 0,    1,    "minority is a fraction in [0, 1]") \
    X (minority_factor,  false, -1e3, 1e3,  "minority_factor is in [-1000, 1000]") \
    X (minority_feature, false, -1,   63,   "minority_feature is a feature index or -1") \
    X (careless,         false, 0,    1,    "careless is a fraction in [0, 1]") \
    X (malicious,        false, 0,    1,    "malicious is a fraction in [0, 1]") \
    X (collude_feature,  false, -1,   63,   "collude_feature is a feature index or -1")

typedef struct {
    uint32_t raters;
    double variation;
    double minority, minority_factor, minority_feature;
    double careless;
    double malicious;
    double collude_feature;
    rt_malice_t malice;         //  option "malice": inverted | extreme | colluding
} rt_population_config_t;

extern const char *const rt_population_options [];      //  NULL-terminated
extern const char *const rt_malice_names [];            //  RT_MALICES, NULL-terminated
extern const char *const rt_group_names [];             //  RT_GROUPS, NULL-terminated

void rt_population_config_default (rt_population_config_t *config);
int rt_population_config_set (rt_population_config_t *config, const char *name,
                              const char *value, const char **cause);

typedef struct _rt_population_t rt_population_t;

//  NULL on an invalid configuration (fractions summing over 1, a feature
//  index the environment does not declare), with a static cause
rt_population_t *rt_population_new (const qt_env_decl_t *decl, const rt_population_config_t *config,
                                    uint64_t seed, const char **cause);
void rt_population_destroy (rt_population_t **self_p);

uint32_t rt_population_size (rt_population_t *self);
rt_group_t rt_population_group (rt_population_t *self, uint32_t rater);
//  Rater's utility weights, comparison units (n_features values); -1 when
//  out of range (a careless rater's are 0)
int rt_population_utility (rt_population_t *self, uint32_t rater, double *weights);

//  The answer of rater (1..raters) to query (tick, index): a preference in
//  [-1, 1], > 0 for b. NAN for a rater out of range.
double rt_population_answer (rt_population_t *self, uint32_t rater, uint64_t tick,
                             uint32_t index, const double *a, const double *b);

void rt_population_test (bool verbose);

#endif
