/*  qt_quorum: placeholder until implemented. */
#include "quintet.h"
void
qt_quorum_test (bool verbose)
{
    (void) verbose;
}
