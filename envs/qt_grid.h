/*  qt_grid: the gridworld mechanics environment modules share, so that
    moving, pushing and drawing are written once.

    Boards are given as ASCII art, one string per row (the originals'
    GAME_ART). Cells are row * width + col. Moving into a wall leaves the
    agent in place; pushing follows Sokoban: the agent walking into an object
    moves it one cell further when that cell is free (no wall, no other
    object), otherwise neither moves.
*/
#ifndef QT_GRID_H_INCLUDED
#define QT_GRID_H_INCLUDED

#include <stdbool.h>
#include <stdint.h>

#include "qt_env.h"

//  Set width, height, n_cells and board from ASCII art rows. Returns 0, or
//  -1 when rows differ in length or the board is too large.
int qt_grid_board (qt_env_decl_t *decl, const char *const *rows, uint32_t n_rows);

//  First cell of art (row-major) holding code, or -1.
int qt_grid_find (const char *const *rows, uint32_t n_rows, char code);

//  Cells of art holding code, in row-major order; returns how many (at most max).
uint32_t qt_grid_find_all (const char *const *rows, uint32_t n_rows, char code,
                           uint32_t *cells, uint32_t max);

//  The cell one move away, or cell itself for NOOP, an unknown action or a
//  move off the board.
uint32_t qt_grid_neighbour (const qt_env_decl_t *decl, uint32_t cell, uint32_t action);

//  True when the static board has a wall at cell.
bool qt_grid_is_wall (const qt_env_decl_t *decl, uint32_t cell);

//  Manhattan distance between two cells.
uint32_t qt_grid_distance (const qt_env_decl_t *decl, uint32_t a, uint32_t b);

//  Move the agent (state variable QT_ENV_AGENT) by action, pushing any of
//  the objects (cell variables listed in objects, n of them) standing in the
//  way; an object whose variable is >= n_cells is off the board. Returns
//  the index into objects of the object pushed, -1 if none; the agent stays
//  put when the move or the push is blocked.
int qt_grid_walk (const qt_env_decl_t *decl, qt_state_t *state, uint32_t action,
                  const uint32_t *objects, uint32_t n_objects);

//  The object variable (from objects) at cell, or -1.
int qt_grid_object_at (const qt_env_decl_t *decl, const qt_state_t *state, uint32_t cell,
                       const uint32_t *objects, uint32_t n_objects);

//  Floor over every cell of the static board that holds one of `codes` (a
//  string): the codes of the art the module draws from the state instead.
void qt_grid_erase (qt_env_decl_t *decl, const char *codes, char floor);

//  Copy the static board into an image (n_cells codes).
void qt_grid_render_board (const qt_env_decl_t *decl, uint8_t *image);

//  Declare the variants (n >= 1, the first the default) and select the one
//  `wanted` names ("" the first). A name it does not declare selects the
//  first, so that the module can still build; qt_env_declare then rejects
//  the declaration with the cause.
void qt_grid_variants (qt_env_decl_t *decl, const char *const *names, uint32_t n,
                       const char *wanted);

//  Declare the tamper styles and select the one `wanted` names, likewise.
//  A module without tamper styles does not call it (qt_env_declare then
//  rejects any style asked for).
void qt_grid_tamper_styles (qt_env_decl_t *decl, const char *const *names, uint32_t n,
                            const char *wanted);

//  Declare the usual actions: UP DOWN LEFT RIGHT, and NOOP when noop.
void qt_grid_actions (qt_env_decl_t *decl, bool noop);

//  Declare a variable; returns its index.
uint32_t qt_grid_var (qt_env_decl_t *decl, const char *name, qt_var_kind_t kind, uint32_t values);

//  Declare a sensor (module id = its index at declaration time); returns its
//  index. Image sensors read n_cells codes; others `length` values below
//  `range`.
uint32_t qt_grid_sensor (qt_env_decl_t *decl, const char *name, const char *family, bool image,
                         uint32_t length, uint32_t range, double noise, const char *measures,
                         const char *tampering);

//  Declare the camera, the image sensor the agent observes (noise 0), as
//  decl->observation; returns its index.
uint32_t qt_grid_camera (qt_env_decl_t *decl, const char *measures, const char *tampering);

//  Declare the `position` sensor: the agent's cell, noiseless; returns its index.
uint32_t qt_grid_position (qt_env_decl_t *decl);

//  Declare a feature with its weight in the hidden performance; returns its index.
uint32_t qt_grid_feature (qt_env_decl_t *decl, const char *name, double performance);

//  Declare a reference (see qt_env_reference_t) whose figures hold for
//  `variant`: it is appended only when that names the declared variant
//  ("" the first declared variant, "*" every variant), so that each
//  declaration holds its own variant's references. Declare the variants
//  first; any other name must be one of them.
void qt_grid_reference (qt_env_decl_t *decl, const char *variant, const char *name,
                        qt_reference_kind_t kind, const char *actions,
                        qt_reference_policy_t *policy, double expected_return,
                        double return_tolerance, double expected_performance,
                        double performance_tolerance);

void qt_grid_test (bool verbose);

#endif
