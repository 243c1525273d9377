/*  selftest-relay: the dashboard relay's bookkeeping (daemons/relay/
    relay_book), in the unit suite: the last-value cache, the conflation of
    a topic to one message per sender and interval, the upstream gaps.
*/
#include "relay_book.h"

int
main (void)
{
    zsys_init ();
    zsys_set_logstream (stderr);
    relay_book_test (true);
    return 0;
}
