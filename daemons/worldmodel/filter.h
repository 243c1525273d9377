/*  wm_filter: Dave's Bayesian filter over an environment's declared state.

    Sequential Monte Carlo over full states, per instance: N weighted
    particles, each a complete qt_state_t. The transition model is the
    environment's own step function (the very code the world simulates
    with) run on the executed action the readings report; the observation
    model is the declared sensors.

    Sensors. Every sensor has two theories: honest (the declared reading of
    the particle's state, each value replaced by another valid one with its
    declared noise, at least noise_floor: even a noiseless sensor is modelled
    as slightly noisy) and tampered-or-broken. The tampered theory does not
    hinge on any one tamper style: a tampered sensor shows a *plausible*
    reading unrelated to the state — each value drawn as the sensor would
    read a random plausible state (every variable uniform over its values,
    cells over the board's non-wall cells: a forged image consistent with
    the board is as likely as a real one), mixed with arbitrary garbage. So a
    forgery that is consistent with the board is caught only because the
    redundant sensors (or the dynamics) disagree with it, never by an
    artefact of how it was drawn. A tampered sensor may also replay its last
    reading (frozen or replayed, the classic stuck-sensor fault): a forgery
    that repeats itself costs the tampered theory nothing, while the honest
    one must explain why the world stood still. Per tick the likelihood of a
    reading is
    the mixture reliability x honest + (1 - reliability) x tampered, per
    sensor; reliabilities are learned per instance and sensor as a running
    average of the posterior P(honest | data), and persist across episodes.

    Steered proposals. A plain bootstrap filter propagates each particle by
    sampling the step function's random choices blind; with sharp sensors
    and many independent choices per step (a dozen flags changing) no particle
    may match what the sensors read, and the tampered theory then wins by
    default. Instead each random choice of the step function (qt_chance) is
    steered: its outcomes are tried in turn (later choices at their most
    likely outcome), one is drawn in proportion to prior x likelihood of the
    resulting reading, and the particle's weight carries the exact importance
    correction prior / proposal. This is a valid importance sampler for any
    environment (the proposal only depends on the particle, the action and
    the reading), and for choices whose effects the sensors see separately
    it is close to the optimal proposal. Cost per instance-step: particles x
    (1 + sum of the outcomes of the steered choices) runs of step + sense;
    choices beyond steer_draws, or with more than QT_CHANCE_MAX_OUTCOMES /
    2 outcomes, are sampled blind.

    Published per instance: posterior expected features of the last
    transition, a weighted sample of likely states (distinct states, at most
    `samples`, each with the features of the transition into it), the
    entropy of the posterior over states (bits), per-sensor learned
    reliability and this tick's P(honest | data), and data_reliability: the
    mean of P(honest) over sensors weighted by the values each reads.

    Everything is deterministic given the seed and the sequence of calls, so
    honest replicas agree bit for bit; and a filter restored from another's
    snapshot (particles, weights, learned reliabilities, counters and
    generator state) goes on exactly as that one would.
*/
#ifndef WM_FILTER_H_INCLUDED
#define WM_FILTER_H_INCLUDED

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>
#include <czmq.h>

#include "qt_env.h"

#define WM_MAX_SAMPLES      16
#define WM_MAX_PARTICLES    1024

typedef struct {
    uint32_t particles;         //  N per instance
    uint32_t samples;           //  likely states published, <= WM_MAX_SAMPLES
    uint32_t steer_draws;       //  random choices per step steered (0: a bootstrap filter)
    double reliability_prior;   //  initial reliability of every sensor
    double reliability_min;     //  learned reliabilities stay in [min, max]
    double reliability_max;
    double learning_warmup;     //  running average over the first ticks: 1/(n + warmup)
    double learning_rate_min;   //  then an exponential average at this rate
    double noise_floor;         //  the model's least noise on any sensor value
    double garbage;             //  share of arbitrary values in a fresh forgery
    double stuck;               //  share of replays (the last reading again) among forgeries
    uint32_t plausible_draws;   //  random plausible states that model a forgery
} wm_filter_config_t;

//  One likely state, with the features of the transition into it.
typedef struct {
    int16_t values [QT_ENV_MAX_VARS];
    double features [QT_ENV_MAX_FEATURES];
    double weight;
} wm_sample_t;

//  What the world model publishes per instance and tick.
typedef struct {
    uint32_t n_vars, n_features, n_sensors;
    double features [QT_ENV_MAX_FEATURES];          //  posterior expectation
    uint32_t n_samples;
    wm_sample_t samples [WM_MAX_SAMPLES];           //  weights sum to 1
    double entropy;                                 //  bits, over distinct states
    double reliability [QT_ENV_MAX_SENSORS];        //  learned
    double honest [QT_ENV_MAX_SENSORS];             //  P(honest | this tick's data)
    double data_reliability;                        //  in [0, 1]
    double effective_particles;                     //  1 / sum w^2, before resampling
} wm_belief_t;

typedef struct _wm_filter_t wm_filter_t;

void wm_filter_config_default (wm_filter_config_t *config);

//  The options by name, NULL-terminated: the config keys
//  quintet/worldmodel/<name> and quintet-sim's --worldmodel NAME=VALUE.
extern const char *const wm_filter_options [];

//  Set one option from its text. Returns 0, or -1 with a static cause in
//  *cause (may be NULL) for an unknown name or a value out of range
//  (wm_filter_new checks the combination).
int wm_filter_config_set (wm_filter_config_t *config, const char *name, const char *value,
                          const char **cause);

//  A filter for `batch` instances of the declared environment. The decl is
//  copied. Returns NULL on an invalid configuration.
wm_filter_t *wm_filter_new (const qt_env_decl_t *decl, const wm_filter_config_t *config,
                            uint32_t batch, uint64_t seed);
void wm_filter_destroy (wm_filter_t **self_p);

//  Incorporate one tick's (combined) readings of one instance: step 0
//  starts the instance's episode from the declared reset distribution,
//  step k > 0 follows the executed action. Readings must have passed
//  wm_readings_validate. Returns 0, or -1 on a bad instance.
int wm_filter_update (wm_filter_t *self, uint32_t instance, const qt_readings_t *readings,
                      wm_belief_t *belief);

//  The belief of an idle instance (no episode running): no transition,
//  so no features; the heaviest particle as its one sample; reliabilities
//  as learned. Nothing is learned. Returns 0, or -1 on a bad instance.
int wm_filter_idle (wm_filter_t *self, uint32_t instance, wm_belief_t *belief);

//  Learned reliability of one sensor of one instance.
double wm_filter_reliability (wm_filter_t *self, uint32_t instance, uint32_t sensor);

//  Posterior probability that the instance's current state equals `state`
//  in every variable, or (latents false) in every variable but the
//  per-episode latents, which the sensors may not reveal yet.
double wm_filter_state_mass (wm_filter_t *self, uint32_t instance, const qt_state_t *state,
                             bool latents);

//  State transfer (a restarted world-model replica catches up from its
//  peers'): snapshot appends the filter's whole state to out, the same
//  bytes for the same state on any host. Returns 0.
int wm_filter_snapshot (wm_filter_t *self, zchunk_t *out);

//  Replace the filter's state with a snapshot's, which must come from a
//  filter of the same declaration, options, batch and seed. Checks every
//  size, count and value (weights, reliabilities, states within the
//  declared domains) and the snapshot's digest. Returns 0, or -1 with a
//  static cause in *cause (may be NULL) and the filter unchanged.
int wm_filter_restore (wm_filter_t *self, const uint8_t *data, size_t size,
                       const char **cause);

//  Step-and-sense runs made so far (all instances): the filter's cost.
uint64_t wm_filter_runs (const wm_filter_t *self);

//  Check readings against the declaration: sizes, values, episode clock,
//  action and finite reward. Returns 0, or -1 with a static cause in *cause
//  (cause may be NULL).
int wm_readings_validate (const qt_env_decl_t *decl, const qt_readings_t *readings,
                          const char **cause);

//  Combine the readings of n collector replicas (NULL entries are missing):
//  majority per value and for the clock and action (ties: the smallest),
//  median of the observed reward, among the replicas with the most common
//  reading length. Returns 0, or -1 if none is present.
int wm_readings_combine (const qt_readings_t *const *replicas, size_t n, qt_readings_t *out);

//  Combine the beliefs of n world-model replicas (NULL entries are missing):
//  coordinate-wise median of features, entropy, reliabilities, honest and
//  data_reliability; samples from the present replica whose features are
//  closest (L2) to the median. Returns 0, or -1 if none is present or their
//  sizes disagree with the first present one.
int wm_belief_combine (const wm_belief_t *const *beliefs, size_t n, wm_belief_t *out);

void wm_filter_test (bool verbose);

#endif
