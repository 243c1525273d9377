/*  relay_book: what the dashboard relay remembers of the verified messages
    it has seen, with no socket: the last-value cache, conflation, and the
    upstream sequence gaps.

    * Last-value cache: the latest verified message of every sender (topic,
      role, replica), in arrival order (a sender's new message moves it to
      the end), so a new subscription gets each sender's last value at once.
    * Conflation (the topology's conflated topics): a sender's message is
      held, not forwarded; relay_book_due hands back, once per sender and
      interval, the latest held one (the trailing edge: what arrived within
      the interval goes out when it ends, unless a newer one replaced it,
      which is then counted as superseded).
    * Gaps: per key id and epoch, how many seq numbers a message skipped.

    Messages are the original [topic][SignedMessage] frames (zmsg_t), kept
    as received: the relay forwards them untouched. Senders are verified
    keys of the trust store, so the book's size is bounded by it.

        relay_book_t *book = relay_book_new (500);
        zmsg_t *now = relay_book_receive (book, "reward", "aggregator", 1, false, &msg, NULL);
        if (now) send a copy of now (the book keeps it);
        while ((msg = relay_book_due (book, now_ms))) send a copy of msg;
*/
#ifndef RELAY_BOOK_H_INCLUDED
#define RELAY_BOOK_H_INCLUDED

#include <stdbool.h>
#include <stdint.h>
#include <czmq.h>

typedef struct _relay_book_t relay_book_t;

//  interval_ms: at most one message per sender of a conflated topic per interval
relay_book_t *relay_book_new (int64_t interval_ms);
void relay_book_destroy (relay_book_t **self_p);

//  A verified message of (topic, role, replica); takes *msg_p. Caches it as
//  the sender's last value. Returns it (the book's: copy it to send) to be
//  forwarded now, or NULL when the topic is conflated: then it is held, and
//  *superseded (if not NULL) says whether it replaced a held one never sent.
zmsg_t *relay_book_receive (relay_book_t *self, const char *topic, const char *role,
                            uint32_t replica, bool conflated, zmsg_t **msg_p, bool *superseded);

//  The next held message whose sender's interval is over at now_ms (the
//  book's: copy it to send), marked sent; NULL when none is due.
zmsg_t *relay_book_due (relay_book_t *self, int64_t now_ms);

//  Messages held, not yet due
size_t relay_book_held (relay_book_t *self);

//  The cache in arrival order, for a subscription to prefix (size bytes,
//  matched against the topic frame as ZeroMQ matches it): the first, then
//  each next message whose topic starts with the prefix (the book's: copy
//  them to send); NULL after the last. Nothing else may change the book in
//  between.
zmsg_t *relay_book_cached_first (relay_book_t *self, const void *prefix, size_t size);
zmsg_t *relay_book_cached_next (relay_book_t *self);

//  Senders in the cache
size_t relay_book_cached (relay_book_t *self);

//  Sequence numbers skipped by (key_id, epoch, seq) since that key's last
//  message of the same epoch: 0 for the first of an epoch, for a seq at or
//  below the last (a late one), and for the next one.
uint64_t relay_book_gap (relay_book_t *self, const char *key_id, uint64_t epoch, uint64_t seq);

void relay_book_test (bool verbose);

#endif
