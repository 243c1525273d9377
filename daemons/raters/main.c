/*  quintet-raters: process concerns only; the role lives in raters.c. */
#include "quintet.h"

extern const qt_role_t qt_raters_role;

int
main (int argc, char *argv [])
{
    return qt_stage_main (&qt_raters_role, argc, argv);
}
