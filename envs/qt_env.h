/*  qt_env: the generic declaration of an environment, and a world instance.

    An environment module declares what the rest of quintet may know about it:
    the board, the actions, the episode length, its binary state variables
    with their initial values and dynamics, its sensors (what each measures,
    the honest noise model, how it can be tampered) and its hidden performance.
    The world daemon simulates instances of it (qt_world_t); the world model
    uses the very same declaration as its prior, so the two can never drift
    apart. Declarations are plain values filled by qt_env_declare(), so there
    is no static mutable state and each caller owns its copy.

    Sensors, in declaration order: `camera` (sensor 0), then one binary probe
    per state variable (`moisture[k]` in tomato_watering, sensor 1 + k), then
    `position` (sensor 1 + n_vars).
*/
#ifndef QT_ENV_H_INCLUDED
#define QT_ENV_H_INCLUDED

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

#include "qt_rng.h"

//  Capacities of the fixed-size arrays below; every gridworld fits.
#define QT_ENV_MAX_CELLS    128
#define QT_ENV_MAX_VARS     32
#define QT_ENV_MAX_SENSORS  (QT_ENV_MAX_VARS + 2)
#define QT_ENV_MAX_ACTIONS  5
#define QT_ENV_MAX_CODES    16
#define QT_ENV_NAME_MAX     32

typedef enum {
    QT_SENSOR_CAMERA = 0,       //  the whole board, one cell code per cell
    QT_SENSOR_PROBE = 1,        //  one binary reading of one state variable
    QT_SENSOR_POSITION = 2      //  the agent's cell index
} qt_sensor_kind_t;

//  How a world instance drives one binary probe (fault injection).
typedef enum {
    QT_PROBE_HONEST = 0,        //  truth, flipped with probability probe_flip
    QT_PROBE_BROKEN = 1,        //  uniform random reading, unrelated to truth
    QT_PROBE_MALICIOUS = 2      //  always reads 1 (tomato_watering: "watered")
} qt_probe_mode_t;

typedef struct {
    char name [QT_ENV_NAME_MAX];    //  "camera", "moisture[3]", "position"
    qt_sensor_kind_t kind;
    int32_t variable;           //  probes: the variable measured; otherwise -1
    double honest_noise;        //  probe: P(reading != truth); camera: P(a cell
                                //  shows another code than the true board)
    const char *measures;       //  for operators and docs
    const char *tampering;      //  how this sensor can be fooled
} qt_sensor_decl_t;

//  Parameters of an environment instance: noise and fault injection.
typedef struct {
    double dry_prob;            //  P(a watered variable turns dry) per step
    double probe_flip;          //  honest probe noise
    double camera_noise;        //  P(a camera cell is replaced by a random code)
    qt_probe_mode_t probe_mode [QT_ENV_MAX_VARS];
} qt_env_params_t;

typedef struct qt_env_decl_t qt_env_decl_t;
typedef struct qt_world_t qt_world_t;

//  What the sensors of one instance read after a step (or at reset).
typedef struct {
    uint32_t position;                      //  row * width + col
    uint32_t camera_len;                    //  width * height
    uint8_t camera [QT_ENV_MAX_CELLS];      //  one ASCII cell code per cell
    uint32_t moisture_count;                //  n_vars
    uint8_t moisture [QT_ENV_MAX_VARS];     //  1 watered, 0 dry
    double observed_reward;                 //  of the last step; 0 at reset
} qt_readings_t;

struct qt_env_decl_t {
    char name [QT_ENV_NAME_MAX];
    uint32_t width, height, n_cells;
    uint32_t n_actions;
    const char *action_names [QT_ENV_MAX_ACTIONS];
    uint32_t max_steps;                     //  steps per episode
    char board [QT_ENV_MAX_CELLS + 1];      //  initial board, row-major, without the agent
    char codes [QT_ENV_MAX_CODES + 1];      //  every code the camera can show
    char agent_code;                        //  'A'
    char wall_code;                         //  '#'
    uint32_t start_position;

    //  State: binary variables, one per cell of the board (tomatoes).
    uint32_t n_vars;
    uint32_t var_cell [QT_ENV_MAX_VARS];
    double var_initial [QT_ENV_MAX_VARS];   //  P(variable = 1) at step 0
    char var_true_code, var_false_code;     //  'T' watered, 't' dry
    double var_decay;                       //  P(1 -> 0) per step

    //  Sensors (see the file comment for the order).
    uint32_t n_sensors;
    qt_sensor_decl_t sensors [QT_ENV_MAX_SENSORS];
    uint32_t camera_sensor, first_probe_sensor, position_sensor;

    //  Hidden performance: hidden reward per step = per_var * true count.
    double hidden_reward_per_var;

    //  Parameters the instances are simulated with (noise, probe modes).
    qt_env_params_t params;

    //  Dynamics. Where the agent lands after an action.
    uint32_t (*move) (const qt_env_decl_t *decl, uint32_t position, uint32_t action);
    //  P(variable = 1 after the step) given P(= 1 before) and where the agent
    //  landed: the world model's prediction step.
    double (*predict) (const qt_env_decl_t *decl, uint32_t var, double p_before,
                       uint32_t new_position);
    //  The honest camera image of a state (agent drawn over its cell).
    void (*render) (const qt_env_decl_t *decl, uint32_t position,
                    const uint8_t *vars, uint8_t *camera);
    //  True when the cell can hold the agent.
    bool (*walkable) (const qt_env_decl_t *decl, uint32_t position);

    //  Simulation of one instance (used through qt_world_*).
    void (*world_reset) (qt_world_t *world);
    void (*world_step) (qt_world_t *world, uint32_t action,
                        double *hidden_reward, double *observed_reward);
    void (*world_read) (qt_world_t *world, qt_readings_t *readings);
};

//  One simulated instance. Fields are public for tests and the world daemon;
//  change them only through the functions below.
struct qt_world_t {
    qt_env_decl_t decl;
    uint32_t instance;
    qt_rng_t dynamics_rng;      //  drying
    qt_rng_t sensor_rng;        //  sensor noise, so reading never alters dynamics
    uint32_t episode;           //  episodes started by this instance, from 0
    uint32_t step;              //  actions taken in this episode
    uint32_t position;
    uint8_t vars [QT_ENV_MAX_VARS];
    double last_observed_reward;
    double performance;         //  sum of hidden rewards this episode
    double observed_return;     //  sum of observed rewards this episode
};

//  Default parameters for the named environment: honest probes, the noise
//  of gridworlds.md. Returns -1 for an unknown name.
int qt_env_params_default (const char *name, qt_env_params_t *params);

//  Fill a declaration for the named environment and parameters.
//  Returns 0, or -1 for an unknown name or out-of-range parameters.
int qt_env_declare (const char *name, const qt_env_params_t *params, qt_env_decl_t *decl);

//  A new instance, reset to the start of episode 0. Instance i of one seed
//  has its own random streams, so B instances are independent.
qt_world_t *qt_world_new (const qt_env_decl_t *decl, uint64_t seed, uint32_t instance);
void qt_world_destroy (qt_world_t **self_p);

//  Start a new episode (the first one is started by qt_world_new).
void qt_world_reset (qt_world_t *self);

//  One step. Returns 0, or -1 for an invalid action or an episode already
//  done. Reward pointers may be NULL.
int qt_world_step (qt_world_t *self, uint32_t action,
                   double *hidden_reward, double *observed_reward);

//  True once max_steps actions have been taken.
bool qt_world_done (const qt_world_t *self);

//  What the sensors read now (draws sensor noise).
void qt_world_read (qt_world_t *self, qt_readings_t *readings);

//  Number of variables currently 1.
uint32_t qt_world_true_count (const qt_world_t *self);

//  Find a sensor by name; -1 if none.
int qt_env_sensor_index (const qt_env_decl_t *decl, const char *name);

void qt_env_test (bool verbose);

#endif
