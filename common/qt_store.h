/*  qt_store: the collector's durable local log of what it observed.

    A collector persists each observation before it signs and publishes it,
    so that what it claimed can be audited and replayed after a crash. The
    log is an SQLite database (WAL journal, synchronous=FULL): when
    qt_store_append() returns 0 the entry's transaction is committed and
    fsync'd, so a crash or kill -9 a moment later cannot lose it. Each entry
    also carries a BLAKE2b digest of its contents, checked on every read, so
    a damaged entry is reported instead of replayed.

    Retention is bounded by entries and/or bytes of entry data: once an
    append takes the store over a bound, the oldest entries are deleted
    (the newest acknowledged ones always survive, the newest of all
    always), and SQLite reuses their pages, so the file stays bounded.

    A qt_store_t belongs to one thread; one process writes a given store,
    others may read it meanwhile (qt_store_open_read: quintetctl log).
*/
#ifndef QT_STORE_H_INCLUDED
#define QT_STORE_H_INCLUDED

#include <czmq.h>
#include <stdbool.h>
#include <stdint.h>

typedef struct _qt_store_t qt_store_t;

//  Open or create the store at path. NULL on failure (not a quintet store,
//  unwritable, WAL unavailable, ...); then *error (if not NULL) says why and
//  is the caller's to free.
qt_store_t *qt_store_open (const char *path, char **error);

//  Open an existing store read-only, beside its writer: replay, count and
//  last work, append fails. Counts are those at open.
qt_store_t *qt_store_open_read (const char *path, char **error);

//  Close; idempotent, nulls the caller's pointer.
void qt_store_destroy (qt_store_t **self_p);

//  The last error, or NULL.
const char *qt_store_error (qt_store_t *self);

//  Append one entry in its own transaction; returns 0 once it is on disk,
//  and *index (if not NULL) is its index: positive, increasing, never
//  reused. -1 on failure, and then nothing was written.
int qt_store_append (qt_store_t *self, uint64_t tick, const char *topic,
                     const void *data, size_t size, uint64_t *index);

//  Keep at most rows entries and bytes of entry data (0: no bound of that
//  kind). Once an append takes the store over a bound, the oldest entries
//  are deleted in one transaction until it is 1/16 below each bound; the
//  newest entry is never deleted. Applied at once too. 0, or -1 when
//  pruning failed (the error says why; the store stays as it was).
int qt_store_set_retention (qt_store_t *self, uint64_t rows, uint64_t bytes);

//  Entries held, bytes of their data, and entries deleted by retention
//  since open: kept up to date by append and pruning, so cheap to ask.
uint64_t qt_store_count (qt_store_t *self);
uint64_t qt_store_bytes (qt_store_t *self);
uint64_t qt_store_pruned (qt_store_t *self);

//  Tick and index of the newest entry; -1 when the store is empty (or on
//  failure, with an error).
int qt_store_last (qt_store_t *self, uint64_t *tick, uint64_t *index);

//  Replay handler: return 0 to continue, anything else to stop. The
//  pointers are valid only during the call.
typedef int (qt_store_fn) (uint64_t index, uint64_t tick, const char *topic,
                           const void *data, size_t size, void *arg);

//  Call handler for each entry with index >= from_index, in index order.
//  0 when done or stopped by the handler, -1 on failure or a damaged entry.
int qt_store_replay (qt_store_t *self, uint64_t from_index,
                     qt_store_fn *handler, void *arg);

void qt_store_test (bool verbose);

#endif
