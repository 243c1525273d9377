/*  qt_keys: placeholder until implemented. */
#include "quintet.h"
void
qt_keys_test (bool verbose)
{
    (void) verbose;
}
