/*  quintet-scorer: process concerns only; the role lives in scorer.c. */
#include "quintet.h"

extern const qt_role_t qt_scorer_role;

int
main (int argc, char *argv [])
{
    return qt_stage_main (&qt_scorer_role, argc, argv);
}
