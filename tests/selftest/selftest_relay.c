/*  selftest-relay: the dashboard relay (daemons/relay), in the unit suite:
    its bookkeeping (relay_book: the last-value cache, the conflation of a
    topic to one message per sender and interval, the upstream gaps), then
    the actor itself in this process (relay: forwarding, drops, the cache).
*/
#include "relay_book.h"
#include "relay.h"

int
main (void)
{
    zsys_init ();
    zsys_set_logstream (stderr);
    relay_book_test (true);
    relay_test (true);
    return 0;
}
