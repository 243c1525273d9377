//  Built with -DNDEBUG: proves QT_CHECK is not compiled out. It checks a
//  false invariant on purpose, so it must abort (registered should_fail);
//  a vacuous QT_CHECK would make it exit 0 and the test fail.
#include "qt_selftest.h"
#include <stdbool.h>

int
main (void)
{
    volatile int one = 1;
    QT_CHECK (one == 2);
    return 0;
}
