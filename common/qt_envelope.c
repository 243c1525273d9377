/*  qt_envelope: placeholder until implemented. */
#include "quintet.h"
void
qt_envelope_test (bool verbose)
{
    (void) verbose;
}
