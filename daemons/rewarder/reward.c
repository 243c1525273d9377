/*  rw_reward: the rewarder's formula, its gradients and its sanity check. */
#include <math.h>
#include <stdio.h>
#include <string.h>

#include "reward.h"
#include "qt_selftest.h"

//  See rw_weights_default in reward.h
#define RW_DEFAULT_LAMBDA_U 0.5
#define RW_DEFAULT_LAMBDA_R 0.1

static const char *s_names [RW_COMPONENTS] = {
    "reward", "score", "uncertainty", "reliability",
    "d_score", "d_uncertainty", "d_reliability"
};

const char *
rw_component_name (size_t i)
{
    return i < RW_COMPONENTS? s_names [i]: NULL;
}

void
rw_weights_default (rw_weights_t *weights, double scale)
{
    weights->lambda_uncertainty = RW_DEFAULT_LAMBDA_U;
    weights->lambda_reliability = RW_DEFAULT_LAMBDA_R;
    weights->resource_cost = 0;
    weights->scale = scale;
}

int
rw_weights_check (const rw_weights_t *weights, const char **cause)
{
    const char *problem = NULL;
    if (!isfinite (weights->lambda_uncertainty) || !isfinite (weights->lambda_reliability)
    ||  !isfinite (weights->resource_cost) || !isfinite (weights->scale))
        problem = "reward weights must be finite";
    else
    if (!(weights->scale > 0))
        problem = "the reward scale must be positive";
    else
    if (weights->lambda_uncertainty < 0)
        problem = "lambda_u < 0 rewards uncertainty: the agent would seek states "
                  "the world model cannot vouch for";
    else
    if (weights->lambda_uncertainty > RW_LAMBDA_U_MAX)
        problem = "lambda_u > 3: the indifference point lies beyond the lower tail "
                  "of any plausible score distribution; rewards would rank noise";
    else
    if (weights->lambda_reliability < 0)
        problem = "lambda_r < 0 pays for unreliable data: an incentive to tamper";
    else
    if (weights->lambda_reliability > RW_LAMBDA_R_MAX)
        problem = "lambda_r > 10: the reliability penalty would swamp every score "
                  "(it is counted in units of the environment's reward scale)";
    else
    if (weights->resource_cost < 0)
        problem = "resource cost < 0 pays for spending resources";
    if (cause)
        *cause = problem;
    return problem? -1: 0;
}

int
rw_reward (const rw_weights_t *weights, double score_mean, double score_spread,
           double data_reliability, rw_vector_t *out)
{
    memset (out, 0, sizeof (*out));
    if (!isfinite (score_mean) || !isfinite (score_spread) || score_spread < 0
    ||  !(data_reliability >= 0 && data_reliability <= 1))
        return -1;
    double *v = out->values;
    v [RW_SCORE] = score_mean;
    v [RW_UNCERTAINTY] = score_spread;
    v [RW_RELIABILITY] = data_reliability;
    v [RW_D_SCORE] = 1.0;
    v [RW_D_UNCERTAINTY] = -weights->lambda_uncertainty;
    v [RW_D_RELIABILITY] = weights->scale * weights->lambda_reliability;
    v [RW_REWARD] = score_mean
                  - weights->lambda_uncertainty * score_spread
                  - weights->scale * (weights->lambda_reliability * (1 - data_reliability)
                                      + weights->resource_cost);
    return 0;
}

void
rw_reward_test (bool verbose)
{
    if (verbose)
        printf (" * rw_reward: ");
    rw_weights_t weights;
    rw_weights_default (&weights, 2.0);
    QT_CHECK (rw_weights_check (&weights, NULL) == 0);
    rw_vector_t vector;
    QT_CHECK (rw_reward (&weights, 0.2, 0.02, 0.5, &vector) == 0);
    QT_CHECK (fabs (vector.values [RW_REWARD] - (0.2 - 0.5 * 0.02 - 2.0 * 0.1 * 0.5)) < 1e-12);
    QT_CHECK (vector.values [RW_D_UNCERTAINTY] == -0.5);
    QT_CHECK (vector.values [RW_D_RELIABILITY] == 0.2);
    rw_weights_t wrong = weights;
    wrong.scale = 0;
    QT_CHECK (rw_weights_check (&wrong, NULL) == -1);
    wrong = weights;
    wrong.lambda_reliability = -0.1;
    QT_CHECK (rw_weights_check (&wrong, NULL) == -1);
    QT_CHECK (rw_reward (&weights, NAN, 0, 1, &vector) == -1);
    QT_CHECK (rw_reward (&weights, 0, 0, 1.5, &vector) == -1);
    QT_CHECK (strcmp (rw_component_name (RW_D_RELIABILITY), "d_reliability") == 0);
    QT_CHECK (rw_component_name (RW_COMPONENTS) == NULL);
    if (verbose)
        printf ("OK\n");
}
