#include "quintet.h"
void
qt_robust_test (bool verbose)
{
    (void) verbose;
}
