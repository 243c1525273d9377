/*  wm_filter: Dave's Bayesian filter over an environment's declared state.

    Per instance, a factored posterior P(variable = 1) per declared binary
    variable, predicted with the declaration's dynamics and updated with the
    sensors. Each sensor's likelihood is a mixture of its honest model
    (declared noise) and a tampered model (uninformative: the reading carries
    no information about the state), weighted by the sensor's reliability. The
    camera's single tamper variable couples all variables, so each tick
    computes the exact two-component mixture (camera honest / tampered), each
    component factored, then collapses back to marginals. Reliabilities are
    learned online per instance and sensor as a running average of the
    posterior P(honest | data); they persist across episodes, while the state
    posterior resets to the declared prior at step 0. The agent position is
    taken from the position sensor (combined across collectors by majority).

    data_reliability: evidence-weighted mean of this tick's P(honest) over the
    camera and the probes, the camera weighing as many variables as it
    observes (n_vars), each probe weighing 1; position is trusted and left out.

    Everything is deterministic given the seed and the sequence of calls, so
    honest replicas agree bit for bit.
*/
#ifndef WM_FILTER_H_INCLUDED
#define WM_FILTER_H_INCLUDED

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

#include "qt_env.h"

#define WM_MAX_SAMPLES 16

typedef struct {
    double reliability_prior;   //  initial reliability of every sensor
    double reliability_min;     //  learned reliabilities stay in [min, max]
    double reliability_max;
    double learning_warmup;     //  running average over the first ticks: 1/(n + warmup)
    double learning_rate_min;   //  then an exponential average at this rate
    double prior_floor;         //  slack on the declared initial state
    uint32_t samples;           //  weighted states published, <= WM_MAX_SAMPLES
} wm_filter_config_t;

//  What the world model publishes per instance and tick.
typedef struct {
    uint32_t position;
    uint32_t n_vars;
    double marginal [QT_ENV_MAX_VARS];              //  P(variable = 1)
    uint32_t n_samples;
    uint8_t sample_value [WM_MAX_SAMPLES][QT_ENV_MAX_VARS];
    double sample_weight [WM_MAX_SAMPLES];          //  sums to 1
    double entropy;                                 //  bits, factored posterior
    uint32_t n_sensors;                             //  declaration order
    double reliability [QT_ENV_MAX_SENSORS];        //  learned
    double honest [QT_ENV_MAX_SENSORS];             //  P(honest | this tick's data)
    double data_reliability;                        //  in [0, 1]
} wm_belief_t;

typedef struct _wm_filter_t wm_filter_t;

void wm_filter_config_default (wm_filter_config_t *config);

//  A filter for `batch` instances of the declared environment. The decl is
//  copied. Returns NULL on an invalid configuration.
wm_filter_t *wm_filter_new (const qt_env_decl_t *decl, const wm_filter_config_t *config,
                            uint32_t batch, uint64_t seed);
void wm_filter_destroy (wm_filter_t **self_p);

//  Incorporate one tick's (combined) readings of one instance. Step 0 resets
//  the state posterior to the declared prior before the update. Readings
//  must have passed wm_readings_validate. Returns 0, or -1 on a bad instance.
int wm_filter_update (wm_filter_t *self, uint32_t instance, uint32_t step,
                      const qt_readings_t *readings, wm_belief_t *belief);

//  Learned reliability of one sensor of one instance.
double wm_filter_reliability (wm_filter_t *self, uint32_t instance, uint32_t sensor);

//  Check readings against the declaration: sizes, cell codes, position on a
//  walkable cell, probe values 0/1, finite reward. Returns 0, or -1 with a
//  static cause string in *cause (cause may be NULL).
int wm_readings_validate (const qt_env_decl_t *decl, const qt_readings_t *readings,
                          const char **cause);

//  Combine the readings of n collector replicas (NULL entries are missing):
//  majority per moisture bit (ties read dry), per camera cell (ties: the
//  smallest code) and for position (ties: the smallest cell), median of the
//  observed reward. Only replicas with the most common camera length and
//  moisture count take part in those. Returns 0, or -1 if none is present.
int wm_readings_combine (const qt_readings_t *const *replicas, size_t n, qt_readings_t *out);

//  Combine the beliefs of n world-model replicas (NULL entries are missing):
//  coordinate-wise median of marginals, entropy, reliabilities, honest and
//  data_reliability; position by majority; samples from the present replica
//  whose marginals are closest (L2) to the median marginals. Returns 0, or -1
//  if none is present or their sizes disagree with the first present one.
int wm_belief_combine (const wm_belief_t *const *beliefs, size_t n, wm_belief_t *out);

void wm_filter_test (bool verbose);

#endif
