/*  qt_log: placeholder until implemented. */
#include "quintet.h"
void
qt_log_test (bool verbose)
{
    (void) verbose;
}
