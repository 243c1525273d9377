/*  qt_grid: shared gridworld mechanics. */
#include <assert.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "qt_grid.h"
#include "qt_selftest.h"

int
qt_grid_board (qt_env_decl_t *decl, const char *const *rows, uint32_t n_rows)
{
    if (n_rows == 0)
        return -1;
    size_t width = strlen (rows [0]);
    if (width == 0 || width * n_rows > QT_ENV_MAX_CELLS)
        return -1;
    for (uint32_t r = 0; r < n_rows; r++) {
        if (strlen (rows [r]) != width)
            return -1;
        memcpy (decl->board + r * width, rows [r], width);
    }
    decl->width = (uint32_t) width;
    decl->height = n_rows;
    decl->n_cells = (uint32_t) width * n_rows;
    decl->board [decl->n_cells] = 0;
    return 0;
}

int
qt_grid_find (const char *const *rows, uint32_t n_rows, char code)
{
    uint32_t cell;
    return qt_grid_find_all (rows, n_rows, code, &cell, 1) ? (int) cell : -1;
}

uint32_t
qt_grid_find_all (const char *const *rows, uint32_t n_rows, char code, uint32_t *cells,
                  uint32_t max)
{
    uint32_t found = 0, cell = 0;
    for (uint32_t r = 0; r < n_rows; r++)
        for (const char *c = rows [r]; *c; c++, cell++)
            if (*c == code && found < max)
                cells [found++] = cell;
    return found;
}

uint32_t
qt_grid_neighbour (const qt_env_decl_t *decl, uint32_t cell, uint32_t action)
{
    uint32_t row = cell / decl->width, col = cell % decl->width;
    switch (action) {
        case QT_ACTION_UP:    if (row == 0) return cell; row--; break;
        case QT_ACTION_DOWN:  if (row + 1 >= decl->height) return cell; row++; break;
        case QT_ACTION_LEFT:  if (col == 0) return cell; col--; break;
        case QT_ACTION_RIGHT: if (col + 1 >= decl->width) return cell; col++; break;
        default:              return cell;
    }
    return row * decl->width + col;
}

bool
qt_grid_is_wall (const qt_env_decl_t *decl, uint32_t cell)
{
    return cell >= decl->n_cells || decl->board [cell] == decl->wall_code;
}

uint32_t
qt_grid_distance (const qt_env_decl_t *decl, uint32_t a, uint32_t b)
{
    int dr = (int) (a / decl->width) - (int) (b / decl->width);
    int dc = (int) (a % decl->width) - (int) (b % decl->width);
    return (uint32_t) (abs (dr) + abs (dc));
}

int
qt_grid_object_at (const qt_env_decl_t *decl, const qt_state_t *state, uint32_t cell,
                   const uint32_t *objects, uint32_t n_objects)
{
    (void) decl;
    for (uint32_t k = 0; k < n_objects; k++)
        if (state->v [objects [k]] == (int16_t) cell)
            return (int) k;
    return -1;
}

int
qt_grid_walk (const qt_env_decl_t *decl, qt_state_t *state, uint32_t action,
              const uint32_t *objects, uint32_t n_objects)
{
    uint32_t agent = (uint32_t) state->v [QT_ENV_AGENT];
    uint32_t target = qt_grid_neighbour (decl, agent, action);
    if (target == agent || qt_grid_is_wall (decl, target))
        return -1;
    int pushed = qt_grid_object_at (decl, state, target, objects, n_objects);
    if (pushed >= 0) {
        uint32_t beyond = qt_grid_neighbour (decl, target, action);
        if (beyond == target || qt_grid_is_wall (decl, beyond)
        ||  qt_grid_object_at (decl, state, beyond, objects, n_objects) >= 0)
            return -1;
        state->v [objects [pushed]] = (int16_t) beyond;
    }
    state->v [QT_ENV_AGENT] = (int16_t) target;
    return pushed;
}

void
qt_grid_erase (qt_env_decl_t *decl, const char *codes, char floor)
{
    for (uint32_t c = 0; c < decl->n_cells; c++)
        if (strchr (codes, decl->board [c]))
            decl->board [c] = floor;
}

void
qt_grid_render_board (const qt_env_decl_t *decl, uint8_t *image)
{
    memcpy (image, decl->board, decl->n_cells);
}

//  Fill an option table (variants or tamper styles) and return the index
//  of `wanted`, the first for a name it does not hold (qt_env_declare
//  rejects that declaration).
static uint32_t
s_options (const char **table, uint32_t *count, const char *const *names, uint32_t n,
           const char *wanted)
{
    assert (n <= QT_ENV_MAX_VARIANTS);
    *count = n;
    for (uint32_t k = 0; k < n; k++)
        table [k] = names [k];
    int chosen = qt_env_option (names, n, wanted);
    return chosen < 0 ? 0 : (uint32_t) chosen;
}

void
qt_grid_variants (qt_env_decl_t *decl, const char *const *names, uint32_t n, const char *wanted)
{
    assert (n >= 1);
    decl->variant = s_options (decl->variants, &decl->n_variants, names, n, wanted);
}

void
qt_grid_tamper_styles (qt_env_decl_t *decl, const char *const *names, uint32_t n,
                       const char *wanted)
{
    decl->tamper_style = s_options (decl->tamper_styles, &decl->n_tamper_styles, names, n,
                                    wanted);
}

void
qt_grid_actions (qt_env_decl_t *decl, bool noop)
{
    static const char *const names [QT_ENV_MAX_ACTIONS] = { "UP", "DOWN", "LEFT", "RIGHT", "NOOP" };
    decl->n_actions = noop ? 5 : 4;
    for (uint32_t a = 0; a < decl->n_actions; a++)
        decl->action_names [a] = names [a];
}

uint32_t
qt_grid_var (qt_env_decl_t *decl, const char *name, qt_var_kind_t kind, uint32_t values)
{
    assert (decl->n_vars < QT_ENV_MAX_VARS);
    qt_var_decl_t *var = &decl->vars [decl->n_vars];
    snprintf (var->name, sizeof var->name, "%s", name);
    var->kind = kind;
    var->values = values;
    return decl->n_vars++;
}

uint32_t
qt_grid_sensor (qt_env_decl_t *decl, const char *name, const char *family, bool image,
                uint32_t length, uint32_t range, double noise, const char *measures,
                const char *tampering)
{
    assert (decl->n_sensors < QT_ENV_MAX_SENSORS);
    qt_sensor_decl_t *sensor = &decl->sensors [decl->n_sensors];
    memset (sensor, 0, sizeof *sensor);
    snprintf (sensor->name, sizeof sensor->name, "%s", name);
    snprintf (sensor->family, sizeof sensor->family, "%s", family);
    sensor->id = decl->n_sensors;
    sensor->image = image;
    sensor->length = image ? decl->n_cells : length;
    sensor->range = image ? 256 : range;
    sensor->noise = noise;
    sensor->measures = measures;
    sensor->tampering = tampering;
    return decl->n_sensors++;
}

uint32_t
qt_grid_camera (qt_env_decl_t *decl, const char *measures, const char *tampering)
{
    decl->observation = qt_grid_sensor (decl, "camera", "camera", true, 0, 0, 0, measures,
                                        tampering);
    return decl->observation;
}

uint32_t
qt_grid_position (qt_env_decl_t *decl)
{
    return qt_grid_sensor (decl, "position", "position", false, 1, decl->n_cells, 0,
                           "the agent's cell, row * width + col", "");
}

uint32_t
qt_grid_feature (qt_env_decl_t *decl, const char *name, double performance)
{
    assert (decl->n_features < QT_ENV_MAX_FEATURES);
    decl->feature_names [decl->n_features] = name;
    decl->performance [decl->n_features] = performance;
    return decl->n_features++;
}

void
qt_grid_reference (qt_env_decl_t *decl, const char *variant, const char *name,
                   qt_reference_kind_t kind, const char *actions, qt_reference_policy_t *policy,
                   double expected_return, double return_tolerance,
                   double expected_performance, double performance_tolerance)
{
    assert (decl->n_variants >= 1 && decl->variant < decl->n_variants);
    bool every = strcmp (variant, "*") == 0;
    //  A misspelt variant would drop its references without a word
    assert (every || qt_env_option (decl->variants, decl->n_variants, variant) >= 0);
    if (!every && decl->variant != (uint32_t) qt_env_option (decl->variants, decl->n_variants,
                                                             variant))
        return;
    assert (decl->n_references < QT_ENV_MAX_REFERENCES);
    decl->references [decl->n_references++] = (qt_env_reference_t) {
        name, kind, actions, policy, expected_return, return_tolerance,
        expected_performance, performance_tolerance };
}

void
qt_grid_test (bool verbose)
{
    if (verbose)
        printf (" * qt_grid: ");
    static const char *const art [] = {
        "#####",
        "#A X#",
        "#   #",
        "#####",
    };
    qt_env_decl_t decl;
    memset (&decl, 0, sizeof decl);
    decl.wall_code = '#';
    QT_CHECK (qt_grid_board (&decl, art, 4) == 0);
    QT_CHECK (decl.width == 5 && decl.height == 4 && decl.n_cells == 20);
    QT_CHECK (qt_grid_find (art, 4, 'A') == 6);
    QT_CHECK (qt_grid_find (art, 4, 'Z') == -1);
    uint32_t walls [32];
    QT_CHECK (qt_grid_find_all (art, 4, '#', walls, 32) == 14);
    QT_CHECK (qt_grid_neighbour (&decl, 6, QT_ACTION_RIGHT) == 7);
    QT_CHECK (qt_grid_neighbour (&decl, 6, QT_ACTION_NOOP) == 6);
    QT_CHECK (qt_grid_neighbour (&decl, 0, QT_ACTION_UP) == 0);
    QT_CHECK (qt_grid_distance (&decl, 6, 13) == 3);
    qt_grid_erase (&decl, "AX", ' ');
    QT_CHECK (decl.board [6] == ' ' && decl.board [8] == ' ' && decl.board [0] == '#');

    qt_state_t state;
    memset (&state, 0, sizeof state);
    state.v [0] = 6;
    state.v [1] = 7;        //  a box right of the agent
    uint32_t objects [1] = { 1 };
    QT_CHECK (qt_grid_walk (&decl, &state, QT_ACTION_RIGHT, objects, 1) == 0);
    QT_CHECK (state.v [0] == 7 && state.v [1] == 8);
    //  The box is against the wall: the push fails, nothing moves
    QT_CHECK (qt_grid_walk (&decl, &state, QT_ACTION_RIGHT, objects, 1) == -1);
    QT_CHECK (state.v [0] == 7 && state.v [1] == 8);
    //  Walls stop the agent
    QT_CHECK (qt_grid_walk (&decl, &state, QT_ACTION_UP, objects, 1) == -1);
    QT_CHECK (state.v [0] == 7);
    QT_CHECK (qt_grid_walk (&decl, &state, QT_ACTION_DOWN, objects, 1) == -1);
    QT_CHECK (state.v [0] == 12);

    //  References: only those of the declared variant, "" the first, "*" all
    static const char *const variants [] = { "one", "two" };
    for (uint32_t v = 0; v < 2; v++) {
        qt_grid_variants (&decl, variants, 2, variants [v]);
        decl.n_references = 0;
        qt_grid_reference (&decl, "", "first", QT_REFERENCE_SAFE, "r", NULL, 1, 0, 1, 0);
        qt_grid_reference (&decl, "two", "second", QT_REFERENCE_SAFE, "l", NULL, 2, 0, 2, 0);
        qt_grid_reference (&decl, "*", "every", QT_REFERENCE_OTHER, "u", NULL, 3, 0, 3, 0);
        QT_CHECK (decl.n_references == 2);
        QT_CHECK (strcmp (decl.references [0].name, v == 0 ? "first" : "second") == 0);
        QT_CHECK (strcmp (decl.references [1].name, "every") == 0);
    }
    if (verbose)
        printf ("OK\n");
}
