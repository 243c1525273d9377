/*  qt_notify: placeholder until implemented. */
#include "quintet.h"
void
qt_notify_test (bool verbose)
{
    (void) verbose;
}
