/*  qt_env: what an environment declares, the registry of environments, and
    a simulated world instance.

    An environment is a module (envs/<name>.c) and one row of the registry
    (envs/qt_env_registry.c). Its declaration (qt_env_decl_t, filled by the
    module's declare function) is everything the rest of quintet may know
    about it, and nothing outside envs/ names an environment:

      * the board: width x height cells, the static background (walls and
        fixed tiles), and every cell code an image of it may show;
      * the actions (UP DOWN LEFT RIGHT, and NOOP where the original has it);
      * a typed state: variables, each a board cell (the agent is variable 0;
        movable objects), a flag (watered, switch position, button pressed,
        whisky drunk...) or a latent drawn at reset and constant for the
        episode (supervisor present, interruption drawn, test-map variant);
      * its reset distribution and stochastic step function, which draw every
        random choice through qt_chance (so the world model can run the very
        same function as its transition model) and end an episode by setting
        `terminated` (goal reached, lava, water); the world also ends every
        episode after max_steps actions;
      * the observed reward, as the environment pays it: what a naive agent
        learns from, tamperable where the original is;
      * its sensors: what each reads of a state (sense), its honest noise,
        and how the agent's own actions in that world can tamper with it
        (tamper; only the world calls it, the world model must not rely on
        knowing how an attack works);
      * a named feature vector per transition: the vocabulary in which value
        is expressed (watered tomatoes, entered the punishment cell, goal
        reached, step...). The hidden performance is a declared linear
        function of it (`performance`, per step); only the world (for eval)
        and simulated raters may read those weights.

    Declarations are plain values: each caller owns its copy and the modules
    keep no static mutable state.
*/
#ifndef QT_ENV_H_INCLUDED
#define QT_ENV_H_INCLUDED

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>
#include <stdio.h>

#include "qt_chance.h"
#include "qt_rng.h"

//  Capacities of the fixed-size arrays below; every gridworld fits.
#define QT_ENV_MAX_CELLS        128     //  width x height
#define QT_ENV_MAX_VARS         32      //  state variables
#define QT_ENV_MAX_SENSORS      32
#define QT_ENV_MAX_READING      256     //  values of all sensors of one instance
#define QT_ENV_MAX_FEATURES     16
#define QT_ENV_MAX_ACTIONS      5
#define QT_ENV_MAX_CODES        24      //  cell codes an image may show
#define QT_ENV_MAX_VARIANTS     8
#define QT_ENV_MAX_MEMORY       8       //  doubles the world remembers across episodes
#define QT_ENV_NAME_MAX         32
#define QT_ENV_OPTION_MAX       128
#define QT_ENV_MAX_REFERENCES   24
#define QT_ENV_MAX_MODULE       64      //  constants a module keeps in its declaration

//  Variable 0 of every environment is the agent's cell.
#define QT_ENV_AGENT            0

//  The action codes of the original gridworlds.
enum { QT_ACTION_UP = 0, QT_ACTION_DOWN, QT_ACTION_LEFT, QT_ACTION_RIGHT, QT_ACTION_NOOP };

typedef enum {
    QT_VAR_CELL = 0,        //  a board cell, row * width + col (agent, boxes, rocks)
    QT_VAR_FLAG = 1,        //  a small integer the steps change
    QT_VAR_LATENT = 2       //  drawn at reset, constant for the episode
} qt_var_kind_t;

typedef struct {
    char name [QT_ENV_NAME_MAX];    //  "agent", "box", "watered-3", "supervisor"
    qt_var_kind_t kind;
    uint32_t values;                //  takes values 0 .. values - 1 (cells: n_cells)
} qt_var_decl_t;

typedef struct {
    int16_t v [QT_ENV_MAX_VARS];    //  one value per declared variable
    uint8_t terminated;             //  the environment ended the episode
} qt_state_t;

//  How the world drives a sensor (fault injection; world only).
typedef enum {
    QT_SENSOR_HONEST = 0,       //  the declared honest model
    QT_SENSOR_BROKEN = 1,       //  uniform random values, unrelated to the state
    QT_SENSOR_MALICIOUS = 2,    //  always the largest value of its range (a stuck lie)
    QT_SENSOR_MODES
} qt_sensor_mode_t;

typedef struct {
    char name [QT_ENV_NAME_MAX];    //  "camera", "moisture-3", "position"
    char family [QT_ENV_NAME_MAX];  //  "moisture": what `without` removes
    uint32_t id;                    //  the module's own index (for sense/tamper)
    bool image;                     //  values are cell codes of the board (length n_cells)
    uint32_t length;                //  values it reads
    uint32_t range;                 //  non-image: each value in [0, range)
    double noise;                   //  honest: P(a value is replaced by a random valid one)
    uint32_t offset;                //  where its values start in a reading
    const char *measures;           //  for operators and docs
    const char *tampering;          //  how the agent can fool it here ("" if it cannot)
} qt_sensor_decl_t;

//  Options of an environment (config keys quintet/env_variant,
//  quintet/env_without; quintet/world/tamper and world/sensor/<name>).
typedef struct {
    char variant [QT_ENV_NAME_MAX];         //  "" = the first declared variant
    char without [QT_ENV_OPTION_MAX];       //  sensor families left out, comma-separated
    char tamper [QT_ENV_NAME_MAX];          //  world only: "" = the first tamper style
    //  World only, by module sensor id: fault injection
    qt_sensor_mode_t sensor_mode [QT_ENV_MAX_SENSORS];
} qt_env_params_t;

typedef struct qt_env_decl_t qt_env_decl_t;

//  A scripted reference behaviour and the figures of the original for it
//  (gridworlds.md, the v1.5 demonstrations): means over seeded episodes.
//  `safe` references are the behaviour we want (the first one's
//  performance is the bar learners are measured against); `hacking` ones
//  game the observed reward. A declaration holds only the references that
//  hold for its declared variant (modules append them with
//  qt_grid_reference), so that qt_env_safe_reference is the bar for that
//  variant; every variant has one.
typedef enum { QT_REFERENCE_SAFE = 0, QT_REFERENCE_HACKING = 1, QT_REFERENCE_OTHER = 2 } qt_reference_kind_t;

//  A reference's policy of the true state (step = actions taken so far).
typedef uint32_t (qt_reference_policy_t) (const qt_env_decl_t *decl, const qt_state_t *state,
                                          uint32_t step);

typedef struct {
    const char *name;
    qt_reference_kind_t kind;
    //  Fixed actions as letters u d l r n, the last one repeating to the
    //  end of the episode, or with a trailing '*' the whole string
    //  repeating ("rl*": back and forth); or NULL
    const char *actions;
    qt_reference_policy_t *policy;  //  or a policy (actions NULL)
    //  The figures and how far the test's mean over 2000 seeded episodes
    //  may be from each: 1e-9 where the mean is deterministic, else about
    //  4 standard errors of that mean (each module says how it got the
    //  standard deviation)
    double expected_return;         //  mean observed return
    double return_tolerance;
    double expected_performance;    //  mean hidden performance
    double performance_tolerance;
} qt_env_reference_t;

struct qt_env_decl_t {
    char name [QT_ENV_NAME_MAX];
    const char *summary;
    uint32_t variant;                       //  index into variants
    uint32_t n_variants;
    const char *variants [QT_ENV_MAX_VARIANTS];
    uint32_t tamper_style;                  //  index into tamper_styles
    uint32_t n_tamper_styles;
    const char *tamper_styles [QT_ENV_MAX_VARIANTS];

    //  Board
    uint32_t width, height, n_cells;
    char board [QT_ENV_MAX_CELLS + 1];      //  static background, row-major
    //  Every code an image may show in any sensor mode: what sense and
    //  tamper draw, and every code of the static board (the malicious mode
    //  shows the board as it is; qt_env_declare checks it). Broken images
    //  and honest noise draw from it, and readings are validated against it.
    char codes [QT_ENV_MAX_CODES + 1];
    char wall_code;
    char agent_code;

    //  Actions and episodes
    uint32_t n_actions;
    const char *action_names [QT_ENV_MAX_ACTIONS];
    uint32_t max_steps;                     //  the world ends an episode after this many actions

    //  State
    uint32_t n_vars;
    qt_var_decl_t vars [QT_ENV_MAX_VARS];

    //  Sensors, in reading order; the agent observes one of them
    uint32_t n_sensors;
    qt_sensor_decl_t sensors [QT_ENV_MAX_SENSORS];
    uint32_t reading_length;                //  sum of the sensors' lengths
    uint32_t observation;                   //  index of the sensor the agent sees (the camera)

    //  Features of a transition and the hidden performance per step
    uint32_t n_features;
    const char *feature_names [QT_ENV_MAX_FEATURES];
    double performance [QT_ENV_MAX_FEATURES];   //  hidden reward = sum performance[f] * feature[f]
    //  The largest magnitude of a per-step HIDDEN reward (> 0): its largest
    //  term, to within the step cost (island_navigation's water step is -51
    //  against 50), the unit rewarders weight in. Observed rewards may
    //  exceed it: tomato_watering's bucket pays 0.56 a step against a scale
    //  of 0.26, boat_race's checkpoint +2 against 1.
    double reward_scale;

    //  Scripted references (see qt_env_reference_t)
    uint32_t n_references;
    qt_env_reference_t references [QT_ENV_MAX_REFERENCES];

    qt_env_params_t params;
    uint32_t module_sensors;                //  sensors the module declared, before `without`
    //  Constants the module derives at declaration for its own functions
    //  (cells of its tiles...): modules keep no static mutable state
    uint32_t module [QT_ENV_MAX_MODULE];

    //  Dynamics. Every random choice goes through chance. `memory` is what
    //  the world remembers across episodes (NULL in the world model: it
    //  does not know it, and the module then draws from its model prior).
    void (*reset) (const qt_env_decl_t *decl, qt_chance_t *chance, const double *memory,
                   qt_state_t *state);
    //  One action from a state that is not terminated: the next state, the
    //  features of the transition and the observed reward. `next` never
    //  aliases `state`. The caller zeroes `features` (all
    //  QT_ENV_MAX_FEATURES) before the call, and step writes the features it
    //  sets: a module may leave the others at zero. It always writes
    //  *observed_reward.
    void (*step) (const qt_env_decl_t *decl, const qt_state_t *state, uint32_t action,
                  qt_chance_t *chance, qt_state_t *next, double *features,
                  double *observed_reward);
    //  What sensor `id` reads of a state, noiseless (images: the board).
    void (*sense) (const qt_env_decl_t *decl, uint32_t id, const qt_state_t *state,
                   uint8_t *values);
    //  World only: true when the agent's state tampers with sensor `id`,
    //  with the forged reading written to values. May be NULL.
    bool (*tamper) (const qt_env_decl_t *decl, uint32_t id, const qt_state_t *state,
                    uint8_t *values);
    //  World only: update the cross-episode memory from an episode's final
    //  state. May be NULL.
    void (*remember) (const qt_env_decl_t *decl, const qt_state_t *final, double *memory);
    //  The memory of a new world. May be NULL (all zero).
    void (*memory_init) (const qt_env_decl_t *decl, double *memory);
};

//  One row of the registry: the module's declare function, which fills a
//  declaration from params (variant, tamper style, sensor modes; the
//  options and `without` are checked and applied by qt_env_declare, which
//  zeroes decl first). Returns 0, or -1 when it cannot declare itself.
typedef struct {
    const char *name;
    int (*declare) (const qt_env_params_t *params, qt_env_decl_t *decl);
} qt_env_module_t;

//  The registry, NULL-terminated, in the order of the list in
//  envs/meson.build (one row per environment; the first is the default).
extern const qt_env_module_t qt_env_registry [];

//  Number of registered environments, and the default one's name.
size_t qt_env_count (void);
const char *qt_env_default (void);

//  Params with every option at its default.
void qt_env_params_init (qt_env_params_t *params);

//  Declare the named environment. Returns 0, or -1 with a static cause in
//  *cause (may be NULL): unknown name, a variant or tamper style the module
//  does not declare (any tamper style where it declares none: "this
//  environment has no tamper style"), `without` naming no sensor family or
//  the agent's observation. Modules declare their options (qt_grid_variants,
//  qt_grid_tamper_styles) and leave checking them to this function.
int qt_env_declare (const char *name, const qt_env_params_t *params, qt_env_decl_t *decl,
                    const char **cause);

//  The index of `wanted` among n option names, or -1 when it names none.
//  "" is the first, or with n = 0 the absence of any: 0 (a module without
//  tamper styles takes the default).
int qt_env_option (const char *const *names, uint32_t n, const char *wanted);

//  Index of a sensor or feature by name; -1 if none.
int qt_env_sensor_index (const qt_env_decl_t *decl, const char *name);
int qt_env_feature_index (const qt_env_decl_t *decl, const char *name);

//  Hidden reward of a transition's features.
double qt_env_hidden_reward (const qt_env_decl_t *decl, const double *features);

//  True when a reading's values are valid for the declaration: image values
//  among the codes, the others below their range. *cause (may be NULL) says
//  what is wrong.
bool qt_env_reading_valid (const qt_env_decl_t *decl, const uint8_t *values, uint32_t length,
                           const char **cause);

//  A sensor mode by name (honest, broken, malicious); -1 if none.
int qt_sensor_mode_parse (const char *name, qt_sensor_mode_t *mode);

//  --------------------------------------------------------------------------
//  A simulated world instance: episodes follow one another (a new one starts
//  at reset), each ends when the environment terminates it or after
//  max_steps actions.

//  What the sensors of one instance read, with where the episode stands.
typedef struct {
    uint32_t episode;                       //  this instance's episode, from 0
    uint32_t step;                          //  0 = reset state, k = after k actions
    bool done;                              //  last reading of the episode
    bool terminated;                        //  ended by the environment, not the time limit
    uint32_t action;                        //  the action executed to get here (step > 0)
    double observed_reward;                 //  of that step; 0 at reset
    uint32_t length;                        //  decl->reading_length
    uint8_t values [QT_ENV_MAX_READING];    //  sensors' values, in declaration order
} qt_readings_t;

typedef struct {
    qt_env_decl_t decl;
    uint32_t instance;
    qt_rng_t dynamics_rng;      //  the step function's choices
    qt_rng_t sensor_rng;        //  sensor noise, so reading never alters dynamics
    qt_chance_rng_t chance;
    qt_state_t state;
    uint32_t episode;           //  episodes started before this one
    uint32_t step;              //  actions taken in this episode
    uint32_t last_action;
    double features [QT_ENV_MAX_FEATURES];  //  of the last transition
    double last_hidden_reward;
    double last_observed_reward;
    double performance;         //  sum of hidden rewards this episode
    double observed_return;     //  sum of observed rewards this episode
    double memory [QT_ENV_MAX_MEMORY];
} qt_world_t;

//  A new instance, at the start of its episode 0. Instance i of one seed
//  has its own random streams, so B instances are independent.
qt_world_t *qt_world_new (const qt_env_decl_t *decl, uint64_t seed, uint32_t instance);
void qt_world_destroy (qt_world_t **self_p);

//  Start the next episode (remembering the last one first).
void qt_world_reset (qt_world_t *self);

//  One action. Returns 0, or -1 for an invalid action or a done episode.
int qt_world_step (qt_world_t *self, uint32_t action);

//  True once the episode has ended (terminated or max_steps actions).
bool qt_world_done (const qt_world_t *self);

//  What the sensors read now: honest model and noise, fault modes, and
//  the agent's tampering.
void qt_world_read (qt_world_t *self, qt_readings_t *readings);

//  "safe", "hacking" or "other"
const char *qt_env_reference_kind_name (qt_reference_kind_t kind);

//  The safe reference: the first reference of kind safe, or NULL.
const qt_env_reference_t *qt_env_safe_reference (const qt_env_decl_t *decl);

//  The action a script of letters takes at step (see qt_env_reference_t:
//  the last letter repeats, or with a trailing '*' the whole string, so
//  "rl*" goes back and forth for good); -1 for a bad letter or no letter.
int qt_env_scripted_action (const char *actions, uint32_t step);

//  Run a reference behaviour for `episodes` episodes of one instance seeded
//  with seed: mean observed return and mean performance. Returns 0, or -1
//  when it takes an invalid action.
int qt_env_run_reference (const qt_env_decl_t *decl, const qt_env_reference_t *reference,
                          uint64_t seed, uint32_t episodes, double *mean_return,
                          double *mean_performance);

//  The declaration as one line of JSON (name, summary, board size, actions,
//  steps, reward scale, variants, tamper styles, features with their
//  performance weights, sensors, variables, references): what operators
//  and tools read (quintetctl env, quintet-sim --describe-env).
void qt_env_describe (const qt_env_decl_t *decl, FILE *out);

//  The registry's names as a JSON list.
void qt_env_list (FILE *out);

void qt_env_test (bool verbose);

#endif
