/*  ac_qlearn: Alice, a tabular epsilon-greedy Q-learner on the camera image.

    Tick protocol, one call per instance per tick, instances in increasing
    order within a tick (the shared Q table is updated in that order, which
    keeps replicas bit-identical):
      step 0          reset observation, reward ignored: choose a_0.
      step k, 1..N-1  observation after a_{k-1} and reward r_k of that
                      transition: update Q(s_{k-1}, a_{k-1}), choose a_k.
      step N, done    terminal update (no bootstrap), no action (returns
                      AC_NO_ACTION).
    `episode` is the episode round (all B instances share it, from 0); the
    exploration rate decays linearly with it.

    State features, read from the camera bytes only (the agent never sees the
    world's internals; a camera without the agent code maps to one extra
    "unknown" state):
      AC_FEATURES_POSITION    the agent's cell.
      AC_FEATURES_NEIGHBOURS  the cell plus, per move, whether it lands on a
                              dry-looking cell (16x the states).
      AC_FEATURES_NEAREST_DRY (default) the cell plus the first move of a
                              shortest walk to the nearest dry-looking cell,
                              or "none": 5x the states, 29 x 5 x 4 entries on
                              tomato_watering. The full board would be 2^13 x
                              29 states; this 5-valued summary is what a good
                              waterer needs, yet carries no reward: the learner
                              must still find out whether following it pays
                              (from the environment's observed reward it
                              learns to ignore it and sit on the bucket, where
                              the camera shows no dry cell at all).

    Learning signal. With difference_reward (default) the learner uses
    potential-based shaping (Ng, Harada & Russell 1999) with potential
    Phi_k = r_k / (1 - gamma), i.e. it learns from (r_k - r_{k-1}) / (1 - gamma);
    at step 1 (no r_0) the shaped reward is 0. Such shaping leaves the optimal
    policies of the underlying decision process unchanged, and it removes the
    reward level: tomato_watering's reward is mostly the count of tomatoes
    watered long ago, which the tabular state cannot see, and that level
    drowned the effect of one action (measured: below 10 of performance
    without it, ~17 with it). The done update is terminal (no bootstrap) as
    the protocol says, unless bootstrap_at_limit is set (Pardo et al. 2018:
    a time limit is not a terminal state when time is not observed).

    Checkpoints are written atomically (temporary file, fsync, rename, fsync
    of the directory) and hold the configuration, Q table, visit counts,
    per-instance state and generators; loading refuses another configuration.
*/
#ifndef AC_QLEARN_H_INCLUDED
#define AC_QLEARN_H_INCLUDED

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

#define AC_NO_ACTION (-1)
#define AC_INVALID   (-2)
#define AC_MAX_ACTIONS 8

typedef enum {
    AC_FEATURES_POSITION = 0,
    AC_FEATURES_NEIGHBOURS = 1,
    AC_FEATURES_NEAREST_DRY = 2
} ac_features_t;

typedef struct {
    //  Learning
    double alpha;                   //  step size
    double gamma;                   //  discount
    double epsilon_start;           //  exploration at episode 0
    double epsilon_end;             //  exploration from epsilon_episodes on
    uint32_t epsilon_episodes;      //  rounds of linear decay
    double q_initial;               //  initial Q values
    ac_features_t features;
    bool difference_reward;         //  learn from the shaped reward, see above
    bool bootstrap_at_limit;        //  the done update bootstraps, see above
    //  What the camera looks like (from the environment declaration)
    uint32_t width, n_cells, n_actions;
    uint8_t agent_code;             //  'A'
    uint8_t dry_code;               //  't', for the neighbour features
    uint8_t wall_code;              //  '#', for AC_FEATURES_NEAREST_DRY
} ac_qlearn_config_t;

typedef struct _ac_qlearn_t ac_qlearn_t;

//  Tuned defaults for a board of width x height cells and n_actions.
void ac_qlearn_config_default (ac_qlearn_config_t *config, uint32_t width,
                               uint32_t height, uint32_t n_actions);

//  A learner for `batch` instances; NULL on an invalid configuration.
ac_qlearn_t *ac_qlearn_new (const ac_qlearn_config_t *config, uint32_t batch, uint64_t seed);
void ac_qlearn_destroy (ac_qlearn_t **self_p);

//  One tick of one instance (see the protocol above). Returns the action,
//  AC_NO_ACTION when done, or AC_INVALID on invalid arguments (instance
//  out of range, non-finite reward).
int32_t ac_qlearn_act (ac_qlearn_t *self, uint32_t instance, const uint8_t *camera,
                       size_t camera_len, double reward, uint32_t step, bool done,
                       uint32_t episode);

//  Exploration rate for an episode round.
double ac_qlearn_epsilon (const ac_qlearn_t *self, uint32_t episode);

//  The greedy action for a camera image (no learning, no exploration).
int32_t ac_qlearn_greedy (const ac_qlearn_t *self, const uint8_t *camera, size_t camera_len);

//  Q-value of (state, action), state as computed from a camera image.
double ac_qlearn_value (const ac_qlearn_t *self, const uint8_t *camera, size_t camera_len,
                        uint32_t action);

//  Transitions learned from so far.
uint64_t ac_qlearn_updates (const ac_qlearn_t *self);

//  Atomic checkpoint. Returns 0, or -1 with errno set.
int ac_qlearn_save (const ac_qlearn_t *self, const char *path);

//  Restore a checkpoint into a learner of the same configuration, batch and
//  seed. Returns 0, or -1 with a static cause in *cause (may be NULL) and the
//  learner unchanged.
int ac_qlearn_load (ac_qlearn_t *self, const char *path, const char **cause);

void ac_qlearn_test (bool verbose);

#endif
