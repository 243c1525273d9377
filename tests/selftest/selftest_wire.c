/*  selftest-wire: the wire conversions' selftest (daemons/wire), in the
    unit suite: the judgment seal and its checks are part of the receive
    path, not of the learning.
*/
#include "qt_wire.h"

int
main (void)
{
    zsys_init ();
    zsys_set_logstream (stderr);
    qt_wire_test (true);
    return 0;
}
