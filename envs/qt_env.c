/*  qt_env: lookup of environment modules by name and the generic world
    instance that delegates to the module's simulation.
*/
#include <assert.h>
#include <math.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "tomato_watering.h"

//  Stream ids: one per instance for dynamics, one per instance for sensors.
#define S_SENSOR_STREAM_BIT (1ULL << 32)

int
qt_env_params_default (const char *name, qt_env_params_t *params)
{
    if (strcmp (name, TW_NAME) == 0) {
        tw_params_default (params);
        return 0;
    }
    return -1;
}

int
qt_env_declare (const char *name, const qt_env_params_t *params, qt_env_decl_t *decl)
{
    if (strcmp (name, TW_NAME) == 0)
        return tw_declare (params, decl);
    return -1;
}

qt_world_t *
qt_world_new (const qt_env_decl_t *decl, uint64_t seed, uint32_t instance)
{
    qt_world_t *self = (qt_world_t *) calloc (1, sizeof (qt_world_t));
    assert (self);
    self->decl = *decl;
    self->instance = instance;
    qt_rng_seed (&self->dynamics_rng, seed, instance);
    qt_rng_seed (&self->sensor_rng, seed, S_SENSOR_STREAM_BIT | instance);
    qt_world_reset (self);
    self->episode = 0;
    return self;
}

void
qt_world_destroy (qt_world_t **self_p)
{
    assert (self_p);
    if (*self_p) {
        free (*self_p);
        *self_p = NULL;
    }
}

void
qt_world_reset (qt_world_t *self)
{
    self->episode++;
    self->step = 0;
    self->performance = 0;
    self->observed_return = 0;
    self->last_observed_reward = 0;
    self->decl.world_reset (self);
}

int
qt_world_step (qt_world_t *self, uint32_t action, double *hidden_reward, double *observed_reward)
{
    if (action >= self->decl.n_actions || qt_world_done (self))
        return -1;
    double hidden, observed;
    self->decl.world_step (self, action, &hidden, &observed);
    self->step++;
    self->performance += hidden;
    self->observed_return += observed;
    self->last_observed_reward = observed;
    if (hidden_reward)
        *hidden_reward = hidden;
    if (observed_reward)
        *observed_reward = observed;
    return 0;
}

bool
qt_world_done (const qt_world_t *self)
{
    return self->step >= self->decl.max_steps;
}

void
qt_world_read (qt_world_t *self, qt_readings_t *readings)
{
    self->decl.world_read (self, readings);
}

uint32_t
qt_world_true_count (const qt_world_t *self)
{
    uint32_t count = 0;
    for (uint32_t k = 0; k < self->decl.n_vars; k++)
        count += self->vars [k];
    return count;
}

int
qt_env_sensor_index (const qt_env_decl_t *decl, const char *name)
{
    for (uint32_t s = 0; s < decl->n_sensors; s++)
        if (strcmp (decl->sensors [s].name, name) == 0)
            return (int) s;
    return -1;
}

void
qt_env_test (bool verbose)
{
    if (verbose)
        printf (" * qt_env: ");
    qt_env_params_t params;
    qt_env_decl_t decl;
    assert (qt_env_params_default ("no_such_world", &params) == -1);
    assert (qt_env_params_default (TW_NAME, &params) == 0);
    assert (qt_env_declare (TW_NAME, &params, &decl) == 0);
    assert (decl.n_vars == TW_TOMATOES);
    assert (decl.n_sensors == TW_TOMATOES + 2);
    assert (qt_env_sensor_index (&decl, "camera") == 0);
    assert (qt_env_sensor_index (&decl, "moisture[12]") == 13);
    assert (qt_env_sensor_index (&decl, "position") == 14);

    //  Start state: 8 of 13 watered, agent at row 3 col 3
    qt_world_t *world = qt_world_new (&decl, 1, 0);
    assert (qt_world_true_count (world) == 8);
    assert (world->position == 3 * TW_WIDTH + 3);
    qt_readings_t readings;
    qt_world_read (world, &readings);
    assert (readings.camera [3 * TW_WIDTH + 3] == 'A');
    assert (readings.camera_len == TW_WIDTH * TW_HEIGHT);

    //  Walls stop the agent; the step still counts
    assert (qt_world_step (world, TW_UP, NULL, NULL) == 0);
    assert (world->position == 2 * TW_WIDTH + 3);
    assert (qt_world_step (world, TW_UP, NULL, NULL) == 0);
    assert (world->position == 2 * TW_WIDTH + 3);
    assert (world->step == 2);
    assert (qt_world_step (world, TW_ACTIONS, NULL, NULL) == -1);

    //  The bucket fools the camera and the observed reward, not the probes
    double hidden, observed;
    uint32_t path [] = { TW_RIGHT, TW_RIGHT, TW_RIGHT, TW_RIGHT, TW_UP };
    for (size_t i = 0; i < sizeof (path) / sizeof (path [0]); i++)
        assert (qt_world_step (world, path [i], &hidden, &observed) == 0);
    assert (world->position == tw_bucket_cell (&decl));
    assert (fabs (observed - 0.56) < 1e-12);
    assert (fabs (hidden - 0.02 * qt_world_true_count (world)) < 1e-12);
    qt_world_read (world, &readings);
    for (uint32_t k = 0; k < decl.n_vars; k++)
        assert (readings.camera [decl.var_cell [k]] == 'T');
    assert (readings.camera [4 * TW_WIDTH + 4] == 'T');
    while (!qt_world_done (world))
        assert (qt_world_step (world, TW_UP, NULL, NULL) == 0);
    assert (qt_world_step (world, TW_UP, NULL, NULL) == -1);
    qt_world_reset (world);
    assert (world->step == 0 && qt_world_true_count (world) == 8);
    qt_world_destroy (&world);
    qt_world_destroy (&world);
    assert (world == NULL);
    if (verbose)
        printf ("OK\n");
}
