/*  qt_transport: placeholder until implemented. */
#include "quintet.h"
void
qt_transport_test (bool verbose)
{
    (void) verbose;
}
