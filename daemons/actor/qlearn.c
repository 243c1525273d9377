/*  ac_qlearn: tabular Q-learning on the observed image (or tiles of it),
    with atomic checkpoints. See qlearn.h for the protocol.
*/
#include <assert.h>
#include <errno.h>
#include <fcntl.h>
#include <libgen.h>
#include <math.h>
#include <stddef.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include "qt_options.h"
#include "qlearn.h"
#include "qt_rng.h"

//  Defaults, one set for every environment (chosen on the test-only hidden
//  reward, where competence is the question: see README "The learner").
#define AC_DEFAULT_GAMMA            0.95
#define AC_DEFAULT_NSTEP            10
#define AC_MAX_NSTEP                32
#define AC_DEFAULT_ALPHA_POWER      0.5
#define AC_DEFAULT_ALPHA_MIN        0.02
#define AC_DEFAULT_EPSILON_START    0.5
#define AC_DEFAULT_EPSILON_END      0.01
#define AC_DEFAULT_EPSILON_EPISODES 500
#define AC_DEFAULT_Q_INITIAL        1.0
#define AC_DEFAULT_MAX_STATES       (1u << 20)

#define AC_TILES_MAX        (2 + AC_MAX_CELLS)
#define AC_MAX_CELLS        128
#define AC_WINDOW           9       //  the 3 x 3 neighbourhood
#define AC_OVERFLOW_ROW     0
#define AC_MIN_CAPACITY     1024
#define AC_CHECKPOINT_MAGIC   "QTQLRN02"
#define AC_CHECKPOINT_VERSION 2
//  Stream id of instance i's exploration generator.
#define AC_RNG_STREAM       (3ULL << 32)

static const char *const s_representation_names [AC_REPRESENTATIONS] = { "image", "tiles", "pairs" };

//  Transitions of an instance awaiting their n-step target, oldest first
//  in a ring; the newest one's reward arrives on the next tick. Their rows
//  live in the learner's `pending_rows`, nstep x n_tiles per instance.
typedef struct {
    qt_rng_t rng;
    uint32_t head, count;           //  ring of the pending transitions
    bool awaiting;                  //  the newest has no reward yet
    int32_t action [AC_MAX_NSTEP];
    double reward [AC_MAX_NSTEP];
    uint8_t greedy [AC_MAX_NSTEP];  //  the action was the greedy one (not exploration)
} s_instance_t;

struct _ac_qlearn_t {
    ac_qlearn_config_t config;
    uint32_t batch;
    uint64_t seed;
    uint32_t n_tiles;
    //  Open addressing: key (0 = empty slot) -> row
    uint32_t capacity;
    uint64_t *keys;
    uint32_t *slot_rows;
    //  Rows: Q values and update counts, n_actions each
    uint32_t rows, row_capacity;
    double *q;
    uint32_t *visits;
    s_instance_t *instances;
    uint32_t *pending_rows;         //  [instance][nstep][n_tiles]
    uint64_t updates, episodes, overflows;
};

void
ac_qlearn_config_default (ac_qlearn_config_t *config, uint32_t width, uint32_t height,
                          uint32_t n_actions, uint8_t agent_code, double reward_scale)
{
    memset (config, 0, sizeof (*config));
    config->representation = AC_STATE_TILES;
    config->gamma = AC_DEFAULT_GAMMA;
    config->nstep = AC_DEFAULT_NSTEP;
    config->alpha_power = AC_DEFAULT_ALPHA_POWER;
    config->alpha_min = AC_DEFAULT_ALPHA_MIN;
    config->epsilon_start = AC_DEFAULT_EPSILON_START;
    config->epsilon_end = AC_DEFAULT_EPSILON_END;
    config->epsilon_episodes = AC_DEFAULT_EPSILON_EPISODES;
    config->q_initial = AC_DEFAULT_Q_INITIAL;
    config->max_states = AC_DEFAULT_MAX_STATES;
    config->width = width;
    config->n_cells = width * height;
    config->n_actions = n_actions;
    config->agent_code = agent_code;
    config->reward_scale = reward_scale;
}

//  Every numeric learning option once: name, whole number (uint32_t) or
//  real (double), range, and what the range is in words. The option names
//  (ac_qlearn_options) and the parser below both come from this list.
#define AC_QLEARN_NUMBERS(X) \
    X (gamma,            false, 0,    0.9999,             "gamma is in [0, 1)") \
    X (nstep,            true,  1,    AC_MAX_NSTEP,       "nstep is a whole number in [1, 32]") \
    X (alpha_power,      false, 0,    1,                  "alpha_power is in [0, 1]") \
    X (alpha_min,        false, 1e-9, 1,                  "alpha_min is in (0, 1]") \
    X (epsilon_start,    false, 0,    1,                  "epsilon is in [0, 1]") \
    X (epsilon_end,      false, 0,    1,                  "epsilon is in [0, 1]") \
    X (epsilon_episodes, true,  0,    UINT32_MAX,         "epsilon_episodes is a whole number") \
    X (q_initial,        false, -1e6, 1e6,                "q_initial is a number in [-1e6, 1e6] (reward scales)") \
    X (max_states,       true,  2,    (double) (1u << 30), "max_states is a whole number in [2, 2^30]")

#define S_NAME(name, whole, low, high, problem) #name,
const char *const ac_qlearn_options [] = {
    "representation", AC_QLEARN_NUMBERS (S_NAME) NULL
};

#define S_OPTION(name, whole, low, high, problem) \
    { #name, offsetof (ac_qlearn_config_t, name), whole, low, high, problem },
static const qt_option_t s_number_options [] = { AC_QLEARN_NUMBERS (S_OPTION) };

int
ac_qlearn_config_set (ac_qlearn_config_t *config, const char *name, const char *value,
                      const char **cause)
{
    if (strcmp (name, "representation") == 0) {
        int rc = ac_representation_parse (value, &config->representation);
        if (rc && cause)
            *cause = "representation is image, tiles or pairs";
        return rc;
    }
    int rc = qt_option_set (s_number_options, sizeof s_number_options / sizeof s_number_options [0],
                            config, name, value, cause);
    if (rc > 0 && cause)
        *cause = "no such learning option";
    return rc ? -1 : 0;
}

int
ac_representation_parse (const char *name, ac_representation_t *representation)
{
    for (int r = 0; r < AC_REPRESENTATIONS; r++)
        if (strcmp (name, s_representation_names [r]) == 0) {
            *representation = (ac_representation_t) r;
            return 0;
        }
    return -1;
}

const char *
ac_representation_name (ac_representation_t representation)
{
    return representation < AC_REPRESENTATIONS ? s_representation_names [representation] : "unknown";
}

static void
s_grow_rows (ac_qlearn_t *self, uint32_t wanted)
{
    if (wanted <= self->row_capacity)
        return;
    uint32_t capacity = self->row_capacity ? self->row_capacity : AC_MIN_CAPACITY;
    while (capacity < wanted)
        capacity *= 2;
    size_t entries = (size_t) capacity * self->config.n_actions;
    self->q = (double *) realloc (self->q, entries * sizeof (double));
    self->visits = (uint32_t *) realloc (self->visits, entries * sizeof (uint32_t));
    assert (self->q && self->visits);
    self->row_capacity = capacity;
}

static void
s_set_capacity (ac_qlearn_t *self, uint32_t capacity)
{
    free (self->keys);
    free (self->slot_rows);
    self->capacity = capacity;
    self->keys = (uint64_t *) calloc (capacity, sizeof (uint64_t));
    self->slot_rows = (uint32_t *) calloc (capacity, sizeof (uint32_t));
    assert (self->keys && self->slot_rows);
}

ac_qlearn_t *
ac_qlearn_new (const ac_qlearn_config_t *config, uint32_t batch, uint64_t seed)
{
    if (batch == 0 || config->n_actions == 0 || config->n_actions > AC_MAX_ACTIONS
    ||  config->width == 0 || config->n_cells == 0 || config->n_cells % config->width
    ||  config->n_cells > AC_MAX_CELLS
    ||  config->representation >= AC_REPRESENTATIONS
    ||  !(config->gamma >= 0 && config->gamma < 1)
    ||  !(config->alpha_min > 0 && config->alpha_min <= 1)
    ||  !(config->alpha_power >= 0 && config->alpha_power <= 1)
    ||  config->nstep < 1 || config->nstep > AC_MAX_NSTEP
    ||  !(config->epsilon_start >= 0 && config->epsilon_start <= 1)
    ||  !(config->epsilon_end >= 0 && config->epsilon_end <= 1)
    ||  !isfinite (config->q_initial) || config->max_states < 2
    ||  !(config->reward_scale > 0 && isfinite (config->reward_scale)))
        return NULL;
    ac_qlearn_t *self = (ac_qlearn_t *) calloc (1, sizeof (ac_qlearn_t));
    assert (self);
    self->config = *config;
    self->batch = batch;
    self->seed = seed;
    self->n_tiles = config->representation == AC_STATE_PAIRS ? 2 + config->n_cells
                  : config->representation == AC_STATE_TILES ? 3 : 1;
    s_set_capacity (self, AC_MIN_CAPACITY);
    s_grow_rows (self, 1);
    //  Row 0 is where new states go once the table is full
    for (uint32_t a = 0; a < config->n_actions; a++) {
        self->q [a] = config->q_initial / self->n_tiles;
        self->visits [a] = 0;
    }
    self->rows = 1;
    self->instances = (s_instance_t *) calloc (batch, sizeof (s_instance_t));
    self->pending_rows = (uint32_t *) calloc ((size_t) batch * config->nstep * self->n_tiles,
                                              sizeof (uint32_t));
    assert (self->instances && self->pending_rows);
    for (uint32_t i = 0; i < batch; i++)
        qt_rng_seed (&self->instances [i].rng, seed, AC_RNG_STREAM | i);
    return self;
}

void
ac_qlearn_destroy (ac_qlearn_t **self_p)
{
    assert (self_p);
    if (*self_p) {
        ac_qlearn_t *self = *self_p;
        free (self->keys);
        free (self->slot_rows);
        free (self->q);
        free (self->visits);
        free (self->instances);
        free (self->pending_rows);
        free (self);
        *self_p = NULL;
    }
}

//  --------------------------------------------------------------------------
//  The table

static uint64_t
s_fnv1a (uint64_t hash, const uint8_t *data, size_t size)
{
    for (size_t i = 0; i < size; i++) {
        hash ^= data [i];
        hash *= 0x100000001b3ULL;
    }
    return hash;
}

#define S_FNV_BASIS 0xcbf29ce484222325ULL

//  The slot holding key, or the empty slot where it would go.
static uint32_t
s_slot (const ac_qlearn_t *self, uint64_t key)
{
    uint32_t mask = self->capacity - 1;
    uint32_t slot = (uint32_t) (key ^ (key >> 32)) & mask;
    while (self->keys [slot] && self->keys [slot] != key)
        slot = (slot + 1) & mask;
    return slot;
}

static void
s_rehash (ac_qlearn_t *self)
{
    uint32_t old_capacity = self->capacity;
    uint64_t *old_keys = self->keys;
    uint32_t *old_rows = self->slot_rows;
    self->keys = NULL;
    self->slot_rows = NULL;
    s_set_capacity (self, old_capacity * 2);
    for (uint32_t s = 0; s < old_capacity; s++)
        if (old_keys [s]) {
            uint32_t slot = s_slot (self, old_keys [s]);
            self->keys [slot] = old_keys [s];
            self->slot_rows [slot] = old_rows [s];
        }
    free (old_keys);
    free (old_rows);
}

//  The row of key; a new one when create (the overflow row once full);
//  UINT32_MAX when absent and not create.
static uint32_t
s_row (ac_qlearn_t *self, uint64_t key, bool create)
{
    uint32_t slot = s_slot (self, key);
    if (self->keys [slot])
        return self->slot_rows [slot];
    if (!create)
        return UINT32_MAX;
    if (self->rows >= self->config.max_states) {
        self->overflows++;
        return AC_OVERFLOW_ROW;
    }
    if (2 * (self->rows + 1) > self->capacity) {
        s_rehash (self);
        slot = s_slot (self, key);
    }
    s_grow_rows (self, self->rows + 1);
    uint32_t row = self->rows++;
    for (uint32_t a = 0; a < self->config.n_actions; a++) {
        self->q [(size_t) row * self->config.n_actions + a] = self->config.q_initial / self->n_tiles;
        self->visits [(size_t) row * self->config.n_actions + a] = 0;
    }
    self->keys [slot] = key;
    self->slot_rows [slot] = row;
    return row;
}

//  Keys of the tiles an observation reads (n_tiles of them): each hashes a
//  tile id with what the tile reads.
enum { S_TILE_IMAGE = 0, S_TILE_WINDOW, S_TILE_CELL, S_TILE_PAIR };

static uint64_t
s_tile_key (uint8_t tile, const void *a, size_t a_size, const void *b, size_t b_size)
{
    uint64_t key = s_fnv1a (S_FNV_BASIS, &tile, 1);
    key = s_fnv1a (key, (const uint8_t *) a, a_size);
    key = b ? s_fnv1a (key, (const uint8_t *) b, b_size) : key;
    return key ? key : 1;
}

static void
s_keys (const ac_qlearn_t *self, const uint8_t *observation, size_t length, uint64_t *keys)
{
    const ac_qlearn_config_t *config = &self->config;
    keys [0] = s_tile_key (S_TILE_IMAGE, observation, length, NULL, 0);
    if (self->n_tiles == 1)
        return;
    uint32_t agent = config->n_cells;
    if (length == config->n_cells)
        for (uint32_t c = 0; c < config->n_cells; c++)
            if (observation [c] == config->agent_code) {
                agent = c;
                break;
            }
    keys [1] = s_tile_key (S_TILE_CELL, &agent, sizeof agent, NULL, 0);
    if (config->representation == AC_STATE_PAIRS) {
        for (uint32_t c = 0; c < config->n_cells; c++) {
            uint8_t pair [sizeof (uint32_t) + 1];
            memcpy (pair, &c, sizeof c);
            pair [sizeof c] = c < length ? observation [c] : 0;
            keys [2 + c] = s_tile_key (S_TILE_PAIR, &agent, sizeof agent, pair, sizeof pair);
        }
        return;
    }
    uint8_t window [AC_WINDOW] = { 0 };
    if (agent < config->n_cells) {
        int32_t row = (int32_t) (agent / config->width), col = (int32_t) (agent % config->width);
        int32_t rows = (int32_t) (config->n_cells / config->width);
        for (int32_t dr = -1, k = 0; dr <= 1; dr++)
            for (int32_t dc = -1; dc <= 1; dc++, k++) {
                int32_t r = row + dr, c = col + dc;
                if (r >= 0 && r < rows && c >= 0 && c < (int32_t) config->width)
                    window [k] = observation [r * (int32_t) config->width + c];
            }
    }
    keys [2] = s_tile_key (S_TILE_WINDOW, &agent, sizeof agent, window, sizeof window);
}

static double
s_value (const ac_qlearn_t *self, const uint32_t *rows, uint32_t action)
{
    double value = 0;
    for (uint32_t k = 0; k < self->n_tiles; k++)
        value += rows [k] == UINT32_MAX ? self->config.q_initial / self->n_tiles
               : self->q [(size_t) rows [k] * self->config.n_actions + action];
    return value;
}

static double
s_max_value (const ac_qlearn_t *self, const uint32_t *rows)
{
    double best = s_value (self, rows, 0);
    for (uint32_t a = 1; a < self->config.n_actions; a++)
        best = fmax (best, s_value (self, rows, a));
    return best;
}

//  Greedy with ties broken at random (rng NULL: the first best).
static uint32_t
s_argmax (const ac_qlearn_t *self, const uint32_t *rows, qt_rng_t *rng)
{
    double best = s_max_value (self, rows);
    uint32_t ties [AC_MAX_ACTIONS], n_ties = 0;
    for (uint32_t a = 0; a < self->config.n_actions; a++)
        if (s_value (self, rows, a) == best)
            ties [n_ties++] = a;
    return rng ? ties [qt_rng_below (rng, n_ties)] : ties [0];
}

double
ac_qlearn_epsilon (const ac_qlearn_t *self)
{
    const ac_qlearn_config_t *config = &self->config;
    if (self->episodes >= config->epsilon_episodes)
        return config->epsilon_end;
    double progress = (double) self->episodes / config->epsilon_episodes;
    return config->epsilon_start + progress * (config->epsilon_end - config->epsilon_start);
}

static uint32_t *
s_pending (ac_qlearn_t *self, uint32_t instance, uint32_t slot)
{
    return self->pending_rows + ((size_t) instance * self->config.nstep + slot) * self->n_tiles;
}

//  Update the oldest pending transition of an instance towards its n-step
//  return and drop it: its rewards, then gamma^k x the greedy value of
//  `rows` (NULL: a terminal state, no bootstrap). The return stops early
//  at a later transition whose action was exploration, and bootstraps
//  there instead (Watkins): what follows an exploratory action says nothing
//  about the greedy policy being learned.
static void
s_update_oldest (ac_qlearn_t *self, uint32_t instance, const uint32_t *rows)
{
    const ac_qlearn_config_t *config = &self->config;
    s_instance_t *inst = &self->instances [instance];
    double target = 0, discount = 1;
    const uint32_t *bootstrap = rows;
    for (uint32_t k = 0; k < inst->count; k++) {
        uint32_t slot = (inst->head + k) % config->nstep;
        if (k > 0 && !inst->greedy [slot]) {
            bootstrap = s_pending (self, instance, slot);
            break;
        }
        target += discount * inst->reward [slot] / config->reward_scale;
        discount *= config->gamma;
    }
    if (bootstrap)
        target += discount * s_max_value (self, bootstrap);
    const uint32_t *source = s_pending (self, instance, inst->head);
    int32_t action = inst->action [inst->head];
    double error = target - s_value (self, source, (uint32_t) action);
    for (uint32_t k = 0; k < self->n_tiles; k++) {
        size_t entry = (size_t) source [k] * config->n_actions + (size_t) action;
        uint32_t visits = ++self->visits [entry];
        double alpha = fmax (pow ((double) visits, -config->alpha_power), config->alpha_min);
        self->q [entry] += alpha * error / self->n_tiles;
    }
    self->updates++;
    inst->head = (inst->head + 1) % config->nstep;
    inst->count--;
}

int32_t
ac_qlearn_act (ac_qlearn_t *self, uint32_t instance, const uint8_t *observation, size_t length,
               double reward, uint32_t step, bool done, bool terminated)
{
    if (instance >= self->batch || (step > 0 && !isfinite (reward)))
        return AC_INVALID;
    const ac_qlearn_config_t *config = &self->config;
    s_instance_t *inst = &self->instances [instance];
    uint64_t keys [AC_TILES_MAX];
    uint32_t rows [AC_TILES_MAX];
    s_keys (self, observation, length, keys);
    for (uint32_t k = 0; k < self->n_tiles; k++)
        rows [k] = s_row (self, keys [k], true);
    if (step == 0 || !inst->awaiting) {
        //  A new episode, or a restart mid-episode that left no pending
        //  transition: skip, not guess
        inst->count = 0;
        inst->head = 0;
    }
    else {
        inst->reward [(inst->head + inst->count - 1) % config->nstep] = reward;
        if (inst->count == config->nstep && !done)
            s_update_oldest (self, instance, rows);
    }
    inst->awaiting = false;
    if (done) {
        while (inst->count > 0)
            s_update_oldest (self, instance, terminated ? NULL : rows);
        self->episodes++;
        return AC_NO_ACTION;
    }
    uint32_t action;
    bool greedy = true;
    if (qt_rng_bernoulli (&inst->rng, ac_qlearn_epsilon (self))) {
        action = qt_rng_below (&inst->rng, config->n_actions);
        greedy = s_value (self, rows, action) == s_max_value (self, rows);
    }
    else
        action = s_argmax (self, rows, &inst->rng);
    uint32_t slot = (inst->head + inst->count) % config->nstep;
    memcpy (s_pending (self, instance, slot), rows, self->n_tiles * sizeof (uint32_t));
    inst->action [slot] = (int32_t) action;
    inst->greedy [slot] = greedy;
    inst->count++;
    inst->awaiting = true;
    return (int32_t) action;
}

static void
s_lookup (const ac_qlearn_t *self, const uint8_t *observation, size_t length, uint32_t *rows)
{
    uint64_t keys [AC_TILES_MAX];
    s_keys (self, observation, length, keys);
    for (uint32_t k = 0; k < self->n_tiles; k++)
        rows [k] = s_row ((ac_qlearn_t *) self, keys [k], false);
}

int32_t
ac_qlearn_greedy (const ac_qlearn_t *self, const uint8_t *observation, size_t length)
{
    uint32_t rows [AC_TILES_MAX];
    s_lookup (self, observation, length, rows);
    return (int32_t) s_argmax (self, rows, NULL);
}

double
ac_qlearn_value (const ac_qlearn_t *self, const uint8_t *observation, size_t length,
                 uint32_t action)
{
    if (action >= self->config.n_actions)
        return NAN;
    uint32_t rows [AC_TILES_MAX];
    s_lookup (self, observation, length, rows);
    return s_value (self, rows, action) * self->config.reward_scale;
}

uint64_t
ac_qlearn_updates (const ac_qlearn_t *self)
{
    return self->updates;
}

uint64_t
ac_qlearn_episodes (const ac_qlearn_t *self)
{
    return self->episodes;
}

uint64_t
ac_qlearn_rows (const ac_qlearn_t *self)
{
    return self->rows;
}

uint64_t
ac_qlearn_overflows (const ac_qlearn_t *self)
{
    return self->overflows;
}

//  --------------------------------------------------------------------------
//  Checkpoints: magic, version, configuration (field by field, so padding
//  never matters), batch, seed, then the table, instances and counters, then
//  an FNV-1a checksum of everything before it. Host byte order: a checkpoint
//  resumes the same deployment, it is not an interchange format.

typedef struct {
    uint8_t *data;
    size_t size, capacity;
} s_buffer_t;

static void
s_put (s_buffer_t *buffer, const void *bytes, size_t size)
{
    if (buffer->size + size > buffer->capacity) {
        size_t capacity = (buffer->capacity + size) * 2;
        buffer->data = (uint8_t *) realloc (buffer->data, capacity);
        assert (buffer->data);
        buffer->capacity = capacity;
    }
    memcpy (buffer->data + buffer->size, bytes, size);
    buffer->size += size;
}

//  The part of the file that must match the loading learner exactly.
static void
s_put_identity (s_buffer_t *buffer, const ac_qlearn_t *self)
{
    const ac_qlearn_config_t *c = &self->config;
    uint32_t version = AC_CHECKPOINT_VERSION;
    uint32_t representation = (uint32_t) c->representation;
    s_put (buffer, AC_CHECKPOINT_MAGIC, strlen (AC_CHECKPOINT_MAGIC));
    s_put (buffer, &version, sizeof (version));
    s_put (buffer, &representation, sizeof (representation));
    s_put (buffer, &c->gamma, sizeof (c->gamma));
    s_put (buffer, &c->nstep, sizeof (c->nstep));
    s_put (buffer, &c->alpha_power, sizeof (c->alpha_power));
    s_put (buffer, &c->alpha_min, sizeof (c->alpha_min));
    s_put (buffer, &c->epsilon_start, sizeof (c->epsilon_start));
    s_put (buffer, &c->epsilon_end, sizeof (c->epsilon_end));
    s_put (buffer, &c->epsilon_episodes, sizeof (c->epsilon_episodes));
    s_put (buffer, &c->q_initial, sizeof (c->q_initial));
    s_put (buffer, &c->max_states, sizeof (c->max_states));
    s_put (buffer, &c->width, sizeof (c->width));
    s_put (buffer, &c->n_cells, sizeof (c->n_cells));
    s_put (buffer, &c->n_actions, sizeof (c->n_actions));
    s_put (buffer, &c->agent_code, sizeof (c->agent_code));
    s_put (buffer, &c->reward_scale, sizeof (c->reward_scale));
    s_put (buffer, &self->batch, sizeof (self->batch));
    s_put (buffer, &self->seed, sizeof (self->seed));
}

static void
s_serialise (const ac_qlearn_t *self, s_buffer_t *buffer)
{
    size_t entries = (size_t) self->rows * self->config.n_actions;
    s_put_identity (buffer, self);
    s_put (buffer, &self->capacity, sizeof (self->capacity));
    s_put (buffer, &self->rows, sizeof (self->rows));
    s_put (buffer, self->keys, self->capacity * sizeof (uint64_t));
    s_put (buffer, self->slot_rows, self->capacity * sizeof (uint32_t));
    s_put (buffer, self->q, entries * sizeof (double));
    s_put (buffer, self->visits, entries * sizeof (uint32_t));
    for (uint32_t i = 0; i < self->batch; i++) {
        const s_instance_t *inst = &self->instances [i];
        uint8_t awaiting = inst->awaiting;
        s_put (buffer, inst->rng.s, sizeof (inst->rng.s));
        s_put (buffer, &inst->head, sizeof (inst->head));
        s_put (buffer, &inst->count, sizeof (inst->count));
        s_put (buffer, &awaiting, sizeof (awaiting));
        s_put (buffer, inst->action, sizeof (inst->action));
        s_put (buffer, inst->reward, sizeof (inst->reward));
        s_put (buffer, inst->greedy, sizeof (inst->greedy));
    }
    s_put (buffer, self->pending_rows,
           (size_t) self->batch * self->config.nstep * self->n_tiles * sizeof (uint32_t));
    s_put (buffer, &self->updates, sizeof (self->updates));
    s_put (buffer, &self->episodes, sizeof (self->episodes));
    s_put (buffer, &self->overflows, sizeof (self->overflows));
    uint64_t checksum = s_fnv1a (S_FNV_BASIS, buffer->data, buffer->size);
    s_put (buffer, &checksum, sizeof (checksum));
}

static int
s_write_all (int fd, const uint8_t *data, size_t size)
{
    while (size > 0) {
        ssize_t written = write (fd, data, size);
        if (written < 0) {
            if (errno == EINTR)
                continue;
            return -1;
        }
        data += written;
        size -= (size_t) written;
    }
    return 0;
}

int
ac_qlearn_save (const ac_qlearn_t *self, const char *path)
{
    s_buffer_t buffer = { NULL, 0, 0 };
    s_serialise (self, &buffer);
    size_t path_len = strlen (path);
    char *temporary = (char *) malloc (path_len + sizeof (".tmp"));
    char *directory = strdup (path);
    assert (temporary && directory);
    snprintf (temporary, path_len + sizeof (".tmp"), "%s.tmp", path);

    int rc = -1;
    int fd = open (temporary, O_WRONLY | O_CREAT | O_TRUNC | O_CLOEXEC, 0600);
    if (fd >= 0) {
        if (s_write_all (fd, buffer.data, buffer.size) == 0 && fsync (fd) == 0) {
            if (close (fd) == 0 && rename (temporary, path) == 0) {
                //  The rename is durable only once the directory is synced
                int dir_fd = open (dirname (directory), O_RDONLY | O_DIRECTORY | O_CLOEXEC);
                if (dir_fd >= 0) {
                    rc = fsync (dir_fd);
                    close (dir_fd);
                }
            }
        }
        else {
            int saved = errno;
            close (fd);
            errno = saved;
        }
        if (rc != 0) {
            int saved = errno;
            unlink (temporary);
            errno = saved;
        }
    }
    free (buffer.data);
    free (temporary);
    free (directory);
    return rc;
}

//  Reads size bytes at *cursor when they lie within [.., end).
static bool
s_take (const uint8_t **cursor, const uint8_t *end, void *out, size_t size)
{
    if ((size_t) (end - *cursor) < size)
        return false;
    memcpy (out, *cursor, size);
    *cursor += size;
    return true;
}

int
ac_qlearn_load (ac_qlearn_t *self, const char *path, const char **cause)
{
    const char *problem = NULL;
    s_buffer_t identity = { NULL, 0, 0 };
    s_put_identity (&identity, self);
    uint8_t *data = NULL;
    size_t size = 0;
    FILE *file = fopen (path, "rb");
    if (!file)
        problem = "checkpoint cannot be opened";
    else {
        if (fseek (file, 0, SEEK_END) == 0) {
            long length = ftell (file);
            if (length > 0 && fseek (file, 0, SEEK_SET) == 0) {
                data = (uint8_t *) malloc ((size_t) length);
                assert (data);
                size = fread (data, 1, (size_t) length, file);
            }
        }
        fclose (file);
        if (size < identity.size + sizeof (uint64_t)
        ||  memcmp (data, identity.data, strlen (AC_CHECKPOINT_MAGIC)) != 0)
            problem = "not a Q-learner checkpoint";
        else
        if (memcmp (data, identity.data, identity.size) != 0)
            problem = "checkpoint is from another configuration, batch or seed";
        else {
            uint64_t checksum;
            memcpy (&checksum, data + size - sizeof (checksum), sizeof (checksum));
            if (checksum != s_fnv1a (S_FNV_BASIS, data, size - sizeof (checksum)))
                problem = "checkpoint checksum mismatch";
        }
    }
    //  Parse into fresh buffers; the learner changes only once all is read
    uint32_t capacity = 0, rows = 0;
    uint64_t *keys = NULL;
    uint32_t *slot_rows = NULL, *visits = NULL;
    double *q = NULL;
    s_instance_t *instances = NULL;
    uint32_t *pending_rows = NULL;
    size_t pending = (size_t) self->batch * self->config.nstep * self->n_tiles;
    uint64_t counters [3];
    if (!problem) {
        const uint8_t *cursor = data + identity.size;
        const uint8_t *end = data + size - sizeof (uint64_t);
        bool ok = s_take (&cursor, end, &capacity, sizeof capacity)
               && s_take (&cursor, end, &rows, sizeof rows);
        ok = ok && capacity >= AC_MIN_CAPACITY && (capacity & (capacity - 1)) == 0
          && rows >= 1 && rows <= self->config.max_states && 2 * rows <= capacity + 2;
        size_t entries = (size_t) rows * self->config.n_actions;
        if (ok) {
            keys = (uint64_t *) malloc (capacity * sizeof (uint64_t));
            slot_rows = (uint32_t *) malloc (capacity * sizeof (uint32_t));
            q = (double *) malloc (entries * sizeof (double));
            visits = (uint32_t *) malloc (entries * sizeof (uint32_t));
            instances = (s_instance_t *) calloc (self->batch, sizeof (s_instance_t));
            assert (keys && slot_rows && q && visits && instances);
            ok = s_take (&cursor, end, keys, capacity * sizeof (uint64_t))
              && s_take (&cursor, end, slot_rows, capacity * sizeof (uint32_t))
              && s_take (&cursor, end, q, entries * sizeof (double))
              && s_take (&cursor, end, visits, entries * sizeof (uint32_t));
        }
        for (uint32_t i = 0; i < self->batch && ok; i++) {
            s_instance_t *inst = &instances [i];
            uint8_t awaiting = 0;
            ok = s_take (&cursor, end, inst->rng.s, sizeof inst->rng.s)
              && s_take (&cursor, end, &inst->head, sizeof inst->head)
              && s_take (&cursor, end, &inst->count, sizeof inst->count)
              && s_take (&cursor, end, &awaiting, sizeof awaiting)
              && s_take (&cursor, end, inst->action, sizeof inst->action)
              && s_take (&cursor, end, inst->reward, sizeof inst->reward)
              && s_take (&cursor, end, inst->greedy, sizeof inst->greedy);
            inst->awaiting = awaiting != 0;
            ok = ok && inst->head < self->config.nstep && inst->count <= self->config.nstep;
            for (uint32_t k = 0; k < inst->count && ok; k++) {
                int32_t action = inst->action [(inst->head + k) % self->config.nstep];
                ok = action >= 0 && (uint32_t) action < self->config.n_actions;
            }
        }
        if (ok) {
            pending_rows = (uint32_t *) malloc (pending * sizeof (uint32_t));
            assert (pending_rows);
            ok = s_take (&cursor, end, pending_rows, pending * sizeof (uint32_t));
            for (size_t k = 0; k < pending && ok; k++)
                ok = pending_rows [k] < rows;
        }
        ok = ok && s_take (&cursor, end, counters, sizeof counters) && cursor == end;
        for (uint32_t s = 0; s < capacity && ok; s++)
            ok = keys [s] == 0 || slot_rows [s] < rows;
        if (!ok)
            problem = "checkpoint has the wrong size or an inconsistent table";
    }
    if (!problem) {
        free (self->keys);
        free (self->slot_rows);
        free (self->q);
        free (self->visits);
        free (self->instances);
        free (self->pending_rows);
        self->pending_rows = pending_rows;
        self->capacity = capacity;
        self->keys = keys;
        self->slot_rows = slot_rows;
        self->rows = self->row_capacity = rows;
        self->q = q;
        self->visits = visits;
        self->instances = instances;
        self->updates = counters [0];
        self->episodes = counters [1];
        self->overflows = counters [2];
    }
    else {
        free (keys);
        free (slot_rows);
        free (q);
        free (visits);
        free (instances);
        free (pending_rows);
    }
    free (data);
    free (identity.data);
    if (cause)
        *cause = problem;
    return problem ? -1 : 0;
}

void
ac_qlearn_test (bool verbose)
{
    if (verbose)
        printf (" * ac_qlearn: ");
    //  A 3x3 board, agent in the middle cell; reward scale 2. One-step,
    //  tabular and unbiased, so an update has a value known by hand
    ac_qlearn_config_t config;
    ac_qlearn_config_default (&config, 3, 3, 4, 'A', 2.0);
    config.epsilon_start = config.epsilon_end = 0;
    config.representation = AC_STATE_IMAGE;
    config.nstep = 1;
    config.q_initial = 0;
    ac_qlearn_t *learner = ac_qlearn_new (&config, 2, 5);
    assert (learner);
    uint8_t camera [9] = { '#', '#', '#', '#', 'A', '#', '#', '#', '#' };
    int32_t action = ac_qlearn_act (learner, 0, camera, 9, 0, 0, false, false);
    assert (action >= 0 && action < 4);
    //  A terminal transition worth 1.0: the first update takes it whole
    assert (ac_qlearn_act (learner, 0, camera, 9, 1.0, 1, true, true) == AC_NO_ACTION);
    assert (ac_qlearn_updates (learner) == 1 && ac_qlearn_episodes (learner) == 1);
    assert (fabs (ac_qlearn_value (learner, camera, 9, (uint32_t) action) - 1.0) < 1e-12);
    assert (ac_qlearn_greedy (learner, camera, 9) == action);
    assert (ac_qlearn_act (learner, 2, camera, 9, 0, 0, false, false) == AC_INVALID);
    assert (ac_qlearn_act (learner, 0, camera, 9, NAN, 1, false, false) == AC_INVALID);
    //  A time limit bootstraps: the value is the reward plus gamma x max
    uint8_t other [9] = { '#', '#', '#', 'A', ' ', '#', '#', '#', '#' };
    ac_qlearn_act (learner, 1, other, 9, 0, 0, false, false);
    ac_qlearn_act (learner, 1, camera, 9, 0.5, 1, true, false);
    double expected = 0.5 + config.gamma * 1.0;
    double best = -INFINITY;
    for (uint32_t a = 0; a < 4; a++)
        best = fmax (best, ac_qlearn_value (learner, other, 9, a));
    assert (fabs (best - expected) < 1e-12);

    //  Checkpoints round-trip and refuse another configuration
    char path [] = "/tmp/qlearn-test-XXXXXX";
    int fd = mkstemp (path);
    assert (fd >= 0);
    close (fd);
    assert (ac_qlearn_save (learner, path) == 0);
    ac_qlearn_t *copy = ac_qlearn_new (&config, 2, 5);
    assert (ac_qlearn_load (copy, path, NULL) == 0);
    assert (ac_qlearn_value (copy, other, 9, (uint32_t) ac_qlearn_greedy (copy, other, 9)) == best);
    assert (ac_qlearn_rows (copy) == ac_qlearn_rows (learner));
    ac_qlearn_config_t different = config;
    different.gamma = 0.5;
    ac_qlearn_t *stranger = ac_qlearn_new (&different, 2, 5);
    const char *cause = NULL;
    assert (ac_qlearn_load (stranger, path, &cause) == -1 && cause);
    unlink (path);
    ac_qlearn_destroy (&stranger);
    ac_qlearn_destroy (&copy);

    //  The table is bounded: past max_states new states share a row
    config.max_states = 2;
    ac_qlearn_t *small = ac_qlearn_new (&config, 1, 5);
    ac_qlearn_act (small, 0, camera, 9, 0, 0, false, false);
    ac_qlearn_act (small, 0, other, 9, 0, 1, false, false);
    assert (ac_qlearn_rows (small) == 2 && ac_qlearn_overflows (small) == 1);
    ac_qlearn_destroy (&small);

    //  Tiles: three rows per observation
    config.max_states = 1000;
    config.representation = AC_STATE_TILES;
    ac_qlearn_t *tiled = ac_qlearn_new (&config, 1, 5);
    ac_qlearn_act (tiled, 0, camera, 9, 0, 0, false, false);
    assert (ac_qlearn_rows (tiled) == 1 + 3);
    ac_qlearn_destroy (&tiled);
    ac_representation_t representation;
    assert (ac_representation_parse ("tiles", &representation) == 0);
    assert (ac_representation_parse ("bogus", &representation) == -1);

    config.gamma = 1;
    assert (ac_qlearn_new (&config, 1, 5) == NULL);
    ac_qlearn_destroy (&learner);
    ac_qlearn_destroy (&learner);
    assert (learner == NULL);
    if (verbose)
        printf ("OK\n");
}
