/*  qt_tournesol: placeholder until implemented. */
#include "quintet.h"
void
qt_tournesol_test (bool verbose)
{
    (void) verbose;
}
