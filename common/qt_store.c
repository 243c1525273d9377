/*  qt_store: placeholder until implemented. */
#include "quintet.h"
void
qt_store_test (bool verbose)
{
    (void) verbose;
}
