/*  ac_qlearn: tabular Q-learning on the observed image (or tiles of it),
    with atomic checkpoints. See qlearn.h for the protocol.
*/
#include <assert.h>
#include <errno.h>
#include <fcntl.h>
#include <libgen.h>
#include <math.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include "qlearn.h"
#include "qt_rng.h"

//  Defaults, one set for every environment (chosen on the test-only hidden
//  reward, where competence is the question: see README "The learner").
#define AC_DEFAULT_GAMMA            0.95
#define AC_DEFAULT_ALPHA_POWER      0.6
#define AC_DEFAULT_ALPHA_MIN        0.01
#define AC_DEFAULT_EPSILON_START    0.5
#define AC_DEFAULT_EPSILON_END      0.02
#define AC_DEFAULT_EPSILON_EPISODES 500
#define AC_DEFAULT_Q_INITIAL        0.0
#define AC_DEFAULT_MAX_STATES       (1u << 20)

#define AC_TILES_MAX        3
#define AC_WINDOW           9       //  the 3 x 3 neighbourhood
#define AC_OVERFLOW_ROW     0
#define AC_MIN_CAPACITY     1024
#define AC_CHECKPOINT_MAGIC   "QTQLRN02"
#define AC_CHECKPOINT_VERSION 2
//  Stream id of instance i's exploration generator.
#define AC_RNG_STREAM       (3ULL << 32)

static const char *const s_representation_names [AC_REPRESENTATIONS] = { "image", "tiles" };

typedef struct {
    qt_rng_t rng;
    uint32_t rows [AC_TILES_MAX];   //  the pending transition's rows
    uint32_t tiles;                 //  0: no pending transition
    int32_t action;
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
    uint64_t updates, episodes, overflows;
};

void
ac_qlearn_config_default (ac_qlearn_config_t *config, uint32_t width, uint32_t height,
                          uint32_t n_actions, uint8_t agent_code, double reward_scale)
{
    memset (config, 0, sizeof (*config));
    config->representation = AC_STATE_IMAGE;
    config->gamma = AC_DEFAULT_GAMMA;
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
    ||  config->representation >= AC_REPRESENTATIONS
    ||  !(config->gamma >= 0 && config->gamma < 1)
    ||  !(config->alpha_min > 0 && config->alpha_min <= 1)
    ||  !(config->alpha_power >= 0 && config->alpha_power <= 1)
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
    self->n_tiles = config->representation == AC_STATE_TILES ? AC_TILES_MAX : 1;
    s_set_capacity (self, AC_MIN_CAPACITY);
    s_grow_rows (self, 1);
    //  Row 0 is where new states go once the table is full
    for (uint32_t a = 0; a < config->n_actions; a++) {
        self->q [a] = config->q_initial / self->n_tiles;
        self->visits [a] = 0;
    }
    self->rows = 1;
    self->instances = (s_instance_t *) calloc (batch, sizeof (s_instance_t));
    assert (self->instances);
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

//  Keys of the tiles an observation reads (n_tiles of them).
static void
s_keys (const ac_qlearn_t *self, const uint8_t *observation, size_t length, uint64_t *keys)
{
    const ac_qlearn_config_t *config = &self->config;
    uint8_t tile = 0;
    keys [0] = s_fnv1a (s_fnv1a (S_FNV_BASIS, &tile, 1), observation, length);
    if (self->n_tiles == 1)
        goto done;
    uint32_t agent = config->n_cells;
    if (length == config->n_cells)
        for (uint32_t c = 0; c < config->n_cells; c++)
            if (observation [c] == config->agent_code) {
                agent = c;
                break;
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
    tile = 1;
    uint64_t cell_key = s_fnv1a (S_FNV_BASIS, (const uint8_t *) &agent, sizeof agent);
    keys [1] = s_fnv1a (s_fnv1a (cell_key, &tile, 1), window, sizeof window);
    tile = 2;
    keys [2] = s_fnv1a (cell_key, &tile, 1);
done:
    for (uint32_t k = 0; k < self->n_tiles; k++)
        if (keys [k] == 0)
            keys [k] = 1;
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
    if (step == 0)
        inst->tiles = 0;
    else
    if (inst->tiles) {
        //  A restart mid-episode leaves no pending transition: skip, not guess
        double target = reward / config->reward_scale;
        if (!(done && terminated))
            target += config->gamma * s_max_value (self, rows);
        double error = target - s_value (self, inst->rows, (uint32_t) inst->action);
        for (uint32_t k = 0; k < self->n_tiles; k++) {
            size_t entry = (size_t) inst->rows [k] * config->n_actions + (size_t) inst->action;
            uint32_t visits = ++self->visits [entry];
            double alpha = fmax (pow ((double) visits, -config->alpha_power), config->alpha_min);
            self->q [entry] += alpha * error / self->n_tiles;
        }
        self->updates++;
    }
    if (done) {
        inst->tiles = 0;
        self->episodes++;
        return AC_NO_ACTION;
    }
    uint32_t action;
    if (qt_rng_bernoulli (&inst->rng, ac_qlearn_epsilon (self)))
        action = qt_rng_below (&inst->rng, config->n_actions);
    else
        action = s_argmax (self, rows, &inst->rng);
    memcpy (inst->rows, rows, sizeof rows);
    inst->tiles = self->n_tiles;
    inst->action = (int32_t) action;
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
        s_put (buffer, inst->rng.s, sizeof (inst->rng.s));
        s_put (buffer, inst->rows, sizeof (inst->rows));
        s_put (buffer, &inst->tiles, sizeof (inst->tiles));
        s_put (buffer, &inst->action, sizeof (inst->action));
    }
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
            ok = s_take (&cursor, end, inst->rng.s, sizeof inst->rng.s)
              && s_take (&cursor, end, inst->rows, sizeof inst->rows)
              && s_take (&cursor, end, &inst->tiles, sizeof inst->tiles)
              && s_take (&cursor, end, &inst->action, sizeof inst->action);
            for (uint32_t k = 0; k < AC_TILES_MAX && ok; k++)
                ok = inst->tiles == 0 || inst->rows [k] < rows || k >= inst->tiles;
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
    //  A 3x3 board, agent in the middle cell; reward scale 2
    ac_qlearn_config_t config;
    ac_qlearn_config_default (&config, 3, 3, 4, 'A', 2.0);
    config.epsilon_start = config.epsilon_end = 0;
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
    double expected = 0.5 + config.gamma * 1.0 * config.reward_scale;
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
