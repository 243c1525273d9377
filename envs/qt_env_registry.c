/*  The registry of environments: a row per module, from the list in
    envs/meson.build (qt_env_registry.h is generated from it). Module
    <name> lives in envs/<name>.c and exports <name>_declare.
*/
#include "qt_env.h"
#include "qt_env_registry.h"

#define S_PROTOTYPE(name) int name##_declare (const qt_env_params_t *params, qt_env_decl_t *decl);
QT_ENV_LIST (S_PROTOTYPE)

#define S_ROW(name) { #name, name##_declare },
const qt_env_module_t qt_env_registry [] = {
    QT_ENV_LIST (S_ROW)
    { NULL, NULL }
};
