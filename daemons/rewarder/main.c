/*  quintet-rewarder: process concerns only; the role lives in rewarder.c. */
#include "quintet.h"

extern const qt_role_t qt_rewarder_role;

int
main (int argc, char *argv [])
{
    return qt_stage_main (&qt_rewarder_role, argc, argv);
}
