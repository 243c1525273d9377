/*  quintet-worldmodel: process concerns only; the role lives in worldmodel.c. */
#include "quintet.h"

extern const qt_role_t qt_worldmodel_role;

int
main (int argc, char *argv [])
{
    return qt_stage_main (&qt_worldmodel_role, argc, argv);
}
