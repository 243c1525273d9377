/*  rw_reward: Bob's reward vector from a score distribution.

    reward = expected score - lambda_u * spread
             - scale * (lambda_r * (1 - data_reliability) + resource_cost)

    scale is the environment's declared reward scale (the largest per-step
    reward: a fraction of one where a score accrues per step, 50 where a
    goal pays 50), so the same weights mean the same thing in every
    environment: lambda_r is the share of the largest reward that data
    nobody can vouch for costs per step.

    The vector also carries the inputs and the gradients of the reward with
    respect to each of them (the paper's "backpropagating signals"), so the
    aggregator's geometric median runs over all of them and an actor or a
    dashboard can see why a reward is what it is.

    Sanity check. The reward is a certainty equivalent: a state whose score
    has spread s is worth as much as a sure score lower by lambda_u * s (the
    indifference point). lambda_u < 0 makes the agent seek uncertainty, i.e.
    prefer states the world model cannot vouch for, which is exactly how a
    tampering agent profits: refused. lambda_u > RW_LAMBDA_U_MAX puts the
    indifference point more than that many standard deviations below the
    mean, beyond the lower tail of any plausible score distribution (for a
    normal, 3 sigma is the 0.13 % quantile; Cantelli bounds any distribution
    at 10 %), so the reward would rank states by the world model's noise
    rather than by their score: refused. lambda_r < 0 would pay for unreliable
    data (an incentive to tamper with sensors): refused; so are lambda_r above
    RW_LAMBDA_R_MAX (the penalty would swamp every score), a negative resource
    cost, a non-positive scale, and anything non-finite.
*/
#ifndef RW_REWARD_H_INCLUDED
#define RW_REWARD_H_INCLUDED

#include <stdbool.h>
#include <stddef.h>

#define RW_LAMBDA_U_MAX     3.0
#define RW_LAMBDA_R_MAX     10.0

//  Components of the reward vector, in order (ProposalBatch.components).
enum {
    RW_REWARD = 0, RW_SCORE, RW_UNCERTAINTY, RW_RELIABILITY,
    RW_D_SCORE, RW_D_UNCERTAINTY, RW_D_RELIABILITY,
    RW_COMPONENTS
};

typedef struct {
    double lambda_uncertainty;  //  lambda_u, per unit of score spread
    double lambda_reliability;  //  lambda_r, scales per unit of missing reliability
    double resource_cost;       //  scales per step
    double scale;               //  the environment's reward scale
} rw_weights_t;

typedef struct {
    double values [RW_COMPONENTS];
} rw_vector_t;

//  The defaults for an environment's reward scale: lambda_u 0.5 (the
//  spread breaks ties between equally scored states), lambda_r 0.1 (data
//  nobody can vouch for costs at most a tenth of the largest reward per
//  step), cost 0.
void rw_weights_default (rw_weights_t *weights, double scale);

//  0 if the weights are sane, else -1 and a static cause (cause may be NULL).
int rw_weights_check (const rw_weights_t *weights, const char **cause);

//  The reward vector for one instance. Returns 0, or -1 if an input is not
//  finite or data_reliability lies outside [0, 1] (out is then zeroed).
int rw_reward (const rw_weights_t *weights, double score_mean, double score_spread,
               double data_reliability, rw_vector_t *out);

//  Name of component i ("reward", "score", ...), NULL out of range.
const char *rw_component_name (size_t i);

void rw_reward_test (bool verbose);

#endif
