/*  quintet-aggregator: process concerns only; the role lives in aggregator.c. */
#include "quintet.h"

extern const qt_role_t qt_aggregator_role;

int
main (int argc, char *argv [])
{
    return qt_stage_main (&qt_aggregator_role, argc, argv);
}
