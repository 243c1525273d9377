/*  ac_qlearn: Alice, an epsilon-greedy Q-learner on what the agent observes.

    The observation is the board as the camera shows it (one cell code per
    cell); nothing else about the environment is known to the learner but
    the shape of that image, the code that draws the agent, the number of
    actions and the declared reward scale. No feature is specific to an
    environment: one set of hyperparameters serves every environment.

    State representations (config `representation`):
      image   (default) tabular: one row of Q per distinct image;
      tiles   the sum of three tabular tiles learned together (tile coding):
              the whole image, the agent's cell with its 3 x 3 neighbourhood,
              and the agent's cell alone. The coarse tiles generalise where
              the whole image is rarely seen twice.
      pairs   the whole image, the agent's cell, and one tile per cell of the
              board: (agent's cell, that cell, its code). Linear in what
              each cell shows, given where the agent stands: a code three
              cells left, another above, the goal in the corner.
    Rows live in an open-addressing table keyed by a 64-bit hash of what the
    tile reads; at most max_states rows (later new states share one
    overflow row, counted).

    Targets are n-step returns (nstep rewards, then the discounted greedy
    value of the state reached), which carry a reward back n states per
    update instead of one.

    Step size: per (row, action), n^-alpha_power of its n-th update, floored
    at alpha_min: large while a value is new (its stale bootstrapped targets
    are forgotten), small later (noise is averaged), never so small that
    long training stops tracking. Rewards are
    learned in units of the declared reward scale, so the same settings fit
    rewards of 0.02 and of 50.

    Tick protocol, one call per instance per tick (instances in increasing
    order within a tick, which keeps replicas bit-identical):
      step 0          the episode's first observation (reward ignored): act.
      step k > 0      the observation after the last action and the reward
                      of that transition: update, then act (unless done).
      done            the last tick of the episode: terminal update when the
                      environment terminated it (no bootstrap), a bootstrap
                      when it only reached the time limit (Pardo et al.
                      2018: time is not observed, so the limit is not a
                      terminal state); returns AC_NO_ACTION.
    Exploration decays linearly with the episodes the learner has finished
    (all instances together).

    Checkpoints are written atomically (temporary file, fsync, rename, fsync
    of the directory) and hold the configuration, the table, per-instance
    state and generators; loading refuses another configuration. The same
    bytes are the state a restarted replica takes from its peers
    (ac_qlearn_snapshot, ac_qlearn_restore).
*/
#ifndef AC_QLEARN_H_INCLUDED
#define AC_QLEARN_H_INCLUDED

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>
#include <czmq.h>

#define AC_NO_ACTION (-1)
#define AC_INVALID   (-2)
#define AC_MAX_ACTIONS 8

typedef enum {
    AC_STATE_IMAGE = 0,
    AC_STATE_TILES = 1,
    AC_STATE_PAIRS = 2,
    AC_REPRESENTATIONS
} ac_representation_t;

typedef struct {
    ac_representation_t representation;
    double gamma;                   //  discount
    uint32_t nstep;                 //  learn from n-step returns (1: one-step Q-learning)
    double alpha_power;             //  step size n^-power of a value's n-th update
    double alpha_min;               //  floor of that step size
    double epsilon_start;           //  exploration at the start
    double epsilon_end;             //  exploration from epsilon_episodes on
    uint32_t epsilon_episodes;      //  finished episodes of linear decay
    double q_initial;               //  initial Q values, in reward-scale units
    uint32_t max_states;            //  rows of the table
    //  What the observation looks like and what rewards mean
    uint32_t width, n_cells, n_actions;
    uint8_t agent_code;
    double reward_scale;
} ac_qlearn_config_t;

typedef struct _ac_qlearn_t ac_qlearn_t;

//  The defaults for an image of width x height cells, n_actions, the code
//  drawing the agent and the reward scale.
void ac_qlearn_config_default (ac_qlearn_config_t *config, uint32_t width, uint32_t height,
                               uint32_t n_actions, uint8_t agent_code, double reward_scale);

//  The learning options by name, NULL-terminated: the config keys
//  quintet/actor/<name> and quintet-sim's --learner NAME=VALUE.
extern const char *const ac_qlearn_options [];

//  Set one option from its text. Returns 0, or -1 with a static cause in
//  *cause (may be NULL) for an unknown name or a value out of range.
int ac_qlearn_config_set (ac_qlearn_config_t *config, const char *name, const char *value,
                          const char **cause);

//  A representation by name (image, tiles, pairs); -1 if none.
int ac_representation_parse (const char *name, ac_representation_t *representation);

//  A learner for `batch` instances; NULL on an invalid configuration.
ac_qlearn_t *ac_qlearn_new (const ac_qlearn_config_t *config, uint32_t batch, uint64_t seed);
void ac_qlearn_destroy (ac_qlearn_t **self_p);

//  One tick of one instance (see the protocol above). Returns the action,
//  AC_NO_ACTION when done, or AC_INVALID on invalid arguments (instance out
//  of range, non-finite reward).
int32_t ac_qlearn_act (ac_qlearn_t *self, uint32_t instance, const uint8_t *observation,
                       size_t length, double reward, uint32_t step, bool done, bool terminated);

//  Exploration rate now.
double ac_qlearn_epsilon (const ac_qlearn_t *self);

//  The greedy action for an observation (no learning, no exploration).
int32_t ac_qlearn_greedy (const ac_qlearn_t *self, const uint8_t *observation, size_t length);

//  Q-value of (observation, action), in reward units.
double ac_qlearn_value (const ac_qlearn_t *self, const uint8_t *observation, size_t length,
                        uint32_t action);

//  Transitions learned from, episodes finished, rows in use, and the
//  states that found the table full.
uint64_t ac_qlearn_updates (const ac_qlearn_t *self);
uint64_t ac_qlearn_episodes (const ac_qlearn_t *self);
uint64_t ac_qlearn_rows (const ac_qlearn_t *self);
uint64_t ac_qlearn_overflows (const ac_qlearn_t *self);
//  Bytes of the table in use (its rows, and its slots: the table grows by
//  doubling up to max_states rows): what the learner's memory grows by as
//  it learns, a lower bound of what of it is resident
uint64_t ac_qlearn_table_bytes (const ac_qlearn_t *self);

//  The learner's whole state appended to out (zchunk_extend): the bytes of
//  a checkpoint, deterministic (the same state gives the same bytes), for
//  a restarted replica to take from its peers (qt_role_t snapshot). 0.
int ac_qlearn_snapshot (const ac_qlearn_t *self, zchunk_t *out);

//  The state of ac_qlearn_snapshot (or of a checkpoint file) into a learner
//  of the same configuration, batch and seed. Every size, count, index and
//  number is checked (the bytes may come from the network). Returns 0, or
//  -1 with a static cause in *cause (may be NULL) and the learner unchanged.
int ac_qlearn_restore (ac_qlearn_t *self, const uint8_t *data, size_t size, const char **cause);

//  Atomic checkpoint. Returns 0, or -1 with errno set.
int ac_qlearn_save (const ac_qlearn_t *self, const char *path);

//  Restore a checkpoint into a learner of the same configuration, batch and
//  seed. Returns 0, or -1 with a static cause in *cause (may be NULL) and the
//  learner unchanged.
int ac_qlearn_load (ac_qlearn_t *self, const char *path, const char **cause);

void ac_qlearn_test (bool verbose);

#endif
