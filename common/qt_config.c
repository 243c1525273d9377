/*  qt_config: placeholder until implemented. */
#include "quintet.h"
void
qt_config_test (bool verbose)
{
    (void) verbose;
}
