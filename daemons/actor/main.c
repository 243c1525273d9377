/*  quintet-actor: process concerns only; the role lives in actor.c. */
#include "quintet.h"

extern const qt_role_t qt_actor_role;

int
main (int argc, char *argv [])
{
    return qt_stage_main (&qt_actor_role, argc, argv);
}
