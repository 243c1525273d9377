/*  quintet-world: process concerns only; the role lives in world.c. */
#include "quintet.h"

extern const qt_role_t qt_world_role;

int
main (int argc, char *argv [])
{
    return qt_stage_main (&qt_world_role, argc, argv);
}
