/*  quintet-collector: process concerns only; the role lives in collector.c. */
#include "quintet.h"

extern const qt_role_t qt_collector_role;

int
main (int argc, char *argv [])
{
    return qt_stage_main (&qt_collector_role, argc, argv);
}
