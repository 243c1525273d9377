/*  qt_store: an append-only log table in SQLite. SQLite gives us atomic,
    fsync'd commits and crash recovery; we add a schema identity (so that a
    path pointing at some other database is refused rather than written
    into) and a per-entry digest (so that damage is detected on read).
*/
#include "quintet.h"
#include "qt_selftest.h"
#include <sqlite3.h>
#include <errno.h>
#include <signal.h>
#include <sys/stat.h>
#include <sys/wait.h>
#include <unistd.h>

//  PRAGMA application_id: "QTst", so `file` and we can tell our databases.
#define QT_STORE_APPLICATION_ID 0x51547374
//  PRAGMA user_version: bump with any schema change.
#define QT_STORE_SCHEMA_VERSION 1
//  Another process holding the database is a misconfiguration, not a
//  contention to wait out for long.
#define QT_STORE_BUSY_TIMEOUT_MS 1000
//  Bytes of BLAKE2b digest kept per entry: damage detection, not security.
#define QT_STORE_DIGEST_SIZE 16
//  Retention prunes down to this fraction below a bound (1/16), so that
//  one delete transaction covers many appends instead of one each.
#define QT_STORE_PRUNE_SLACK 16

struct _qt_store_t {
    char *path;
    sqlite3 *db;
    bool read_only;             //  opened by a reader (quintetctl log)
    sqlite3_stmt *insert;
    sqlite3_stmt *last;
    sqlite3_stmt *replay;
    sqlite3_stmt *oldest;
    sqlite3_stmt *prune;
    char *error;
    uint64_t rows;              //  entries held, and bytes of their data
    uint64_t bytes;
    uint64_t retain_rows;       //  bounds (0: none)
    uint64_t retain_bytes;
    uint64_t pruned;            //  entries deleted by retention
};

static int
s_fail (qt_store_t *self, const char *fmt, ...)
    __attribute__ ((format (printf, 2, 3)));

//  Set the error to "<path>: <message>" and return -1.
static int
s_fail (qt_store_t *self, const char *fmt, ...)
{
    va_list args;
    va_start (args, fmt);
    char *message = zsys_vprintf (fmt, args);
    va_end (args);
    assert (message);
    zstr_free (&self->error);
    self->error = zsys_sprintf ("%s: %s", self->path, message);
    assert (self->error);
    zstr_free (&message);
    return -1;
}

//  Same, adding SQLite's explanation of its last failure.
static int
s_fail_sqlite (qt_store_t *self, const char *what)
{
    return s_fail (self, "%s: %s", what, sqlite3_errmsg (self->db));
}

//  The digest covers the tick and topic too, so an entry can't be damaged
//  into a different but self-consistent one.
static void
s_digest (uint64_t tick, const char *topic, const void *data, size_t size,
          unsigned char *digest)
{
    crypto_generichash_state state;
    crypto_generichash_init (&state, NULL, 0, QT_STORE_DIGEST_SIZE);
    unsigned char tick_le [sizeof (uint64_t)];
    for (size_t i = 0; i < sizeof tick_le; i++)
        tick_le [i] = (unsigned char) (tick >> (8 * i));
    crypto_generichash_update (&state, tick_le, sizeof tick_le);
    crypto_generichash_update (&state, (const unsigned char *) topic, strlen (topic) + 1);
    crypto_generichash_update (&state, (const unsigned char *) data, size);
    crypto_generichash_final (&state, digest, QT_STORE_DIGEST_SIZE);
}

//  Run one statement returning at most one integer; -1 on failure.
static int
s_query_int (qt_store_t *self, const char *sql, int64_t *result)
{
    sqlite3_stmt *stmt = NULL;
    if (sqlite3_prepare_v2 (self->db, sql, -1, &stmt, NULL) != SQLITE_OK)
        return s_fail_sqlite (self, sql);
    int rc = sqlite3_step (stmt);
    if (rc == SQLITE_ROW && result)
        *result = sqlite3_column_int64 (stmt, 0);
    sqlite3_finalize (stmt);
    if (rc != SQLITE_ROW && rc != SQLITE_DONE)
        return s_fail_sqlite (self, sql);
    return 0;
}

static int
s_exec (qt_store_t *self, const char *sql)
{
    if (sqlite3_exec (self->db, sql, NULL, NULL, NULL) != SQLITE_OK)
        return s_fail_sqlite (self, sql);
    return 0;
}

//  Create the schema in a new database, or check that an existing one is
//  ours and of our version. In one transaction so two first opens can't
//  both create it.
static int
s_schema (qt_store_t *self)
{
    if (s_exec (self, self->read_only ? "BEGIN" : "BEGIN IMMEDIATE"))
        return -1;
    int64_t application_id = 0, version = 0, objects = 0;
    int rc = s_query_int (self, "PRAGMA application_id", &application_id);
    if (rc == 0)
        rc = s_query_int (self, "PRAGMA user_version", &version);
    if (rc == 0)
        rc = s_query_int (self, "SELECT count(*) FROM sqlite_master", &objects);
    if (rc == 0 && application_id == 0 && objects == 0 && !self->read_only) {
        char *sql = zsys_sprintf (
            "PRAGMA application_id = %d;"
            "PRAGMA user_version = %d;"
            //  AUTOINCREMENT: an index is never reused, even after the
            //  newest entry is lost, so an index names one entry forever
            "CREATE TABLE entry ("
            "    id INTEGER PRIMARY KEY AUTOINCREMENT,"
            "    tick INTEGER NOT NULL,"
            "    topic TEXT NOT NULL,"
            "    data BLOB NOT NULL,"
            "    digest BLOB NOT NULL"
            ");", QT_STORE_APPLICATION_ID, QT_STORE_SCHEMA_VERSION);
        rc = s_exec (self, sql);
        zstr_free (&sql);
    }
    else
    if (rc == 0 && application_id != QT_STORE_APPLICATION_ID)
        rc = s_fail (self, "not a quintet store (application_id %" PRId64 ")",
                     application_id);
    else
    if (rc == 0 && version != QT_STORE_SCHEMA_VERSION)
        rc = s_fail (self, "store schema version %" PRId64 ", this build "
                     "reads version %d", version, QT_STORE_SCHEMA_VERSION);
    if (rc == 0)
        return s_exec (self, "COMMIT");
    sqlite3_exec (self->db, "ROLLBACK", NULL, NULL, NULL);
    return -1;
}

static int
s_prepare (qt_store_t *self, const char *sql, sqlite3_stmt **stmt)
{
    if (sqlite3_prepare_v3 (self->db, sql, -1, SQLITE_PREPARE_PERSISTENT,
                            stmt, NULL) != SQLITE_OK)
        return s_fail_sqlite (self, "prepare");
    return 0;
}

//  Entries and data bytes held, counted once; appends and pruning keep
//  them up to date
static int
s_measure (qt_store_t *self)
{
    int64_t rows = 0, bytes = 0;
    if (s_query_int (self, "SELECT count(*) FROM entry", &rows)
    ||  s_query_int (self, "SELECT total(length(data)) FROM entry", &bytes))
        return -1;
    self->rows = (uint64_t) rows;
    self->bytes = (uint64_t) bytes;
    return 0;
}

//  The writer's journal: WAL, every commit fsync'd
static int
s_journal (qt_store_t *self)
{
    //  WAL: a commit is one append + fsync of the log, and readers don't
    //  block the writer. The pragma answers with the mode it got.
    sqlite3_stmt *stmt = NULL;
    if (sqlite3_prepare_v2 (self->db, "PRAGMA journal_mode = WAL", -1,
                            &stmt, NULL) != SQLITE_OK)
        return s_fail_sqlite (self, "cannot open");
    int rc = sqlite3_step (stmt);
    bool wal = rc == SQLITE_ROW
            && sqlite3_column_text (stmt, 0)
            && strcasecmp ((const char *) sqlite3_column_text (stmt, 0), "wal") == 0;
    sqlite3_finalize (stmt);
    if (rc != SQLITE_ROW)
        return s_fail_sqlite (self, "cannot open");
    if (!wal)
        return s_fail (self, "cannot switch to the WAL journal");

    //  FULL: in WAL mode, fsync the log at every commit, so a committed
    //  append survives a crash (NORMAL would only sync at checkpoints)
    return s_exec (self, "PRAGMA synchronous = FULL");
}

static int
s_open (qt_store_t *self)
{
    if (sodium_init () < 0)
        return s_fail (self, "libsodium failed to initialise");
    int rc = sqlite3_open_v2 (self->path, &self->db, self->read_only ? SQLITE_OPEN_READONLY
                              : SQLITE_OPEN_READWRITE | SQLITE_OPEN_CREATE, NULL);
    if (rc != SQLITE_OK) {
        if (!self->db)
            return s_fail (self, "cannot open: out of memory");
        return s_fail_sqlite (self, "cannot open");
    }
    sqlite3_extended_result_codes (self->db, 1);
    sqlite3_busy_timeout (self->db, QT_STORE_BUSY_TIMEOUT_MS);

    //  A reader leaves the journal to the writer (WAL already)
    if ((!self->read_only && s_journal (self)) || s_schema (self))
        return -1;
    return s_prepare (self, "INSERT INTO entry (tick, topic, data, digest) "
                            "VALUES (?, ?, ?, ?)", &self->insert)
        || s_prepare (self, "SELECT id, tick FROM entry ORDER BY id DESC LIMIT 1",
                      &self->last)
        || s_prepare (self, "SELECT id, tick, topic, data, digest FROM entry "
                            "WHERE id >= ? ORDER BY id", &self->replay)
        || s_prepare (self, "SELECT id, length(data) FROM entry ORDER BY id", &self->oldest)
        || s_prepare (self, "DELETE FROM entry WHERE id <= ?", &self->prune)
        || s_measure (self) ? -1 : 0;
}

static qt_store_t *
s_new (const char *path, bool read_only, char **error)
{
    assert (path);
    qt_store_t *self = (qt_store_t *) zmalloc (sizeof (qt_store_t));
    assert (self);
    self->read_only = read_only;
    self->path = strdup (path);
    assert (self->path);
    if (s_open (self)) {
        if (error)
            *error = strdup (self->error);
        qt_store_destroy (&self);
    }
    return self;
}

qt_store_t *
qt_store_open (const char *path, char **error)
{
    return s_new (path, false, error);
}

qt_store_t *
qt_store_open_read (const char *path, char **error)
{
    return s_new (path, true, error);
}

void
qt_store_destroy (qt_store_t **self_p)
{
    assert (self_p);
    if (*self_p) {
        qt_store_t *self = *self_p;
        sqlite3_finalize (self->insert);
        sqlite3_finalize (self->last);
        sqlite3_finalize (self->replay);
        sqlite3_finalize (self->oldest);
        sqlite3_finalize (self->prune);
        //  Closing the last connection checkpoints the WAL into the database
        sqlite3_close_v2 (self->db);
        zstr_free (&self->path);
        zstr_free (&self->error);
        free (self);
        *self_p = NULL;
    }
}

const char *
qt_store_error (qt_store_t *self)
{
    assert (self);
    return self->error;
}

static int
s_prune (qt_store_t *self);

int
qt_store_append (qt_store_t *self, uint64_t tick, const char *topic,
                 const void *data, size_t size, uint64_t *index)
{
    assert (self);
    assert (topic);
    assert (data || size == 0);

    unsigned char digest [QT_STORE_DIGEST_SIZE];
    s_digest (tick, topic, data, size, digest);
    //  SQLite integers are signed 64-bit; the cast round-trips in read
    sqlite3_bind_int64 (self->insert, 1, (sqlite3_int64) tick);
    sqlite3_bind_text (self->insert, 2, topic, -1, SQLITE_STATIC);
    //  A NULL pointer would bind SQL NULL; an empty entry is an empty blob
    sqlite3_bind_blob64 (self->insert, 3, size ? data : "", size, SQLITE_STATIC);
    sqlite3_bind_blob (self->insert, 4, digest, sizeof digest, SQLITE_STATIC);
    //  Autocommit: this one statement is the whole transaction, committed
    //  (and, with synchronous=FULL, fsync'd) before step returns
    int rc = sqlite3_step (self->insert);
    sqlite3_reset (self->insert);
    sqlite3_clear_bindings (self->insert);
    if (rc != SQLITE_DONE)
        return s_fail_sqlite (self, "append");
    if (index)
        *index = (uint64_t) sqlite3_last_insert_rowid (self->db);
    self->rows++;
    self->bytes += size;
    //  The entry is committed whatever pruning does: a failed prune (a
    //  full disk) only leaves the store over its bounds until the next
    s_prune (self);
    return 0;
}

//  Retention: deletes the oldest entries, in one transaction, until the
//  store is QT_STORE_PRUNE_SLACK below each bound; never the newest entry
static int
s_prune (qt_store_t *self)
{
    bool over_rows = self->retain_rows && self->rows > self->retain_rows;
    bool over_bytes = self->retain_bytes && self->bytes > self->retain_bytes;
    if (!over_rows && !over_bytes)
        return 0;
    uint64_t target_rows = self->retain_rows
                         ? self->retain_rows - self->retain_rows / QT_STORE_PRUNE_SLACK : UINT64_MAX;
    uint64_t target_bytes = self->retain_bytes
                          ? self->retain_bytes - self->retain_bytes / QT_STORE_PRUNE_SLACK : UINT64_MAX;
    uint64_t rows = self->rows, bytes = self->bytes, cut = 0;
    while (rows > 1 && (rows > target_rows || bytes > target_bytes)
    &&     sqlite3_step (self->oldest) == SQLITE_ROW) {
        cut = (uint64_t) sqlite3_column_int64 (self->oldest, 0);
        uint64_t size = (uint64_t) sqlite3_column_int64 (self->oldest, 1);
        rows--;
        bytes = bytes > size ? bytes - size : 0;
    }
    sqlite3_reset (self->oldest);
    if (cut == 0)
        return 0;
    sqlite3_bind_int64 (self->prune, 1, (sqlite3_int64) cut);
    int rc = sqlite3_step (self->prune);
    sqlite3_reset (self->prune);
    if (rc != SQLITE_DONE)
        return s_fail_sqlite (self, "prune");
    self->pruned += self->rows - rows;
    self->rows = rows;
    self->bytes = bytes;
    return 0;
}

int
qt_store_set_retention (qt_store_t *self, uint64_t rows, uint64_t bytes)
{
    assert (self);
    self->retain_rows = rows;
    self->retain_bytes = bytes;
    return s_prune (self);
}

uint64_t
qt_store_bytes (qt_store_t *self)
{
    assert (self);
    return self->bytes;
}

uint64_t
qt_store_pruned (qt_store_t *self)
{
    assert (self);
    return self->pruned;
}

uint64_t
qt_store_count (qt_store_t *self)
{
    assert (self);
    return self->rows;
}

int
qt_store_last (qt_store_t *self, uint64_t *tick, uint64_t *index)
{
    assert (self);
    int rc = sqlite3_step (self->last);
    if (rc == SQLITE_ROW) {
        if (index)
            *index = (uint64_t) sqlite3_column_int64 (self->last, 0);
        if (tick)
            *tick = (uint64_t) sqlite3_column_int64 (self->last, 1);
    }
    else
    if (rc != SQLITE_DONE)
        s_fail_sqlite (self, "last");
    sqlite3_reset (self->last);
    return rc == SQLITE_ROW ? 0 : -1;
}

//  Check an entry row (tick, topic, data, digest at columns first..first+3)
//  against its digest.
static int
s_check_row (qt_store_t *self, sqlite3_stmt *stmt, int first, uint64_t index)
{
    uint64_t tick = (uint64_t) sqlite3_column_int64 (stmt, first);
    const char *topic = (const char *) sqlite3_column_text (stmt, first + 1);
    const void *data = sqlite3_column_blob (stmt, first + 2);
    size_t size = (size_t) sqlite3_column_bytes (stmt, first + 2);
    const void *stored = sqlite3_column_blob (stmt, first + 3);
    int stored_size = sqlite3_column_bytes (stmt, first + 3);
    unsigned char digest [QT_STORE_DIGEST_SIZE];
    s_digest (tick, topic ? topic : "", size ? data : "", size, digest);
    if (!topic || !stored || stored_size != QT_STORE_DIGEST_SIZE
    ||  memcmp (stored, digest, QT_STORE_DIGEST_SIZE) != 0)
        return s_fail (self, "entry %" PRIu64 " is damaged (digest mismatch)", index);
    return 0;
}

int
qt_store_replay (qt_store_t *self, uint64_t from_index,
                 qt_store_fn *handler, void *arg)
{
    assert (self);
    assert (handler);
    sqlite3_bind_int64 (self->replay, 1, (sqlite3_int64) from_index);
    int result = 0;
    while (result == 0) {
        int rc = sqlite3_step (self->replay);
        if (rc == SQLITE_DONE)
            break;
        if (rc != SQLITE_ROW) {
            result = s_fail_sqlite (self, "replay");
            break;
        }
        uint64_t index = (uint64_t) sqlite3_column_int64 (self->replay, 0);
        if (s_check_row (self, self->replay, 1, index)) {
            result = -1;
            break;
        }
        if (handler (index,
                     (uint64_t) sqlite3_column_int64 (self->replay, 1),
                     (const char *) sqlite3_column_text (self->replay, 2),
                     sqlite3_column_blob (self->replay, 3),
                     (size_t) sqlite3_column_bytes (self->replay, 3), arg))
            break;
    }
    sqlite3_reset (self->replay);
    return result;
}


//  --------------------------------------------------------------------------
//  Selftest

//  The test entry for sequence number i: its size and bytes follow from i,
//  so any entry can be checked without remembering what was written.
#define S_TEST_MAX_SIZE 1000

static size_t
s_test_entry (uint64_t i, unsigned char *buffer)
{
    size_t size = (size_t) ((i * 37) % S_TEST_MAX_SIZE);
    for (size_t j = 0; j < size; j++)
        buffer [j] = (unsigned char) (i * 131 + j * 7);
    return size;
}

static bool
s_test_entry_ok (uint64_t i, zchunk_t *chunk)
{
    unsigned char expected [S_TEST_MAX_SIZE];
    size_t size = s_test_entry (i, expected);
    return zchunk_size (chunk) == size
        && (size == 0 || memcmp (zchunk_data (chunk), expected, size) == 0);
}

typedef struct {
    uint64_t next_tick;
    uint64_t seen;
} s_replay_state_t;

static int
s_test_replay (uint64_t index, uint64_t tick, const char *topic,
               const void *data, size_t size, void *arg)
{
    s_replay_state_t *state = (s_replay_state_t *) arg;
    QT_CHECK (index > 0);
    QT_CHECK (tick == state->next_tick);
    QT_CHECK (streq (topic, "obs"));
    unsigned char expected [S_TEST_MAX_SIZE];
    QT_CHECK (s_test_entry (tick, expected) == size);
    QT_CHECK (size == 0 || memcmp (data, expected, size) == 0);
    state->next_tick++;
    state->seen++;
    return 0;
}

//  The entry at index, through replay: *tick, and *data (if not NULL, a
//  new chunk). -1 if there is no such entry or it is damaged.
typedef struct {
    uint64_t index;
    uint64_t tick;
    zchunk_t *data;
} s_read_t;

static int
s_test_read_one (uint64_t index, uint64_t tick, const char *topic,
                 const void *data, size_t size, void *arg)
{
    (void) topic;
    s_read_t *read = (s_read_t *) arg;
    read->index = index;
    read->tick = tick;
    read->data = zchunk_new (data, size);
    return 1;
}

static int
s_test_read (qt_store_t *store, uint64_t index, uint64_t *tick, zchunk_t **data)
{
    s_read_t read = { 0, 0, NULL };
    int rc = qt_store_replay (store, index, s_test_read_one, &read);
    if (rc == 0 && read.index == index) {
        if (tick)
            *tick = read.tick;
        if (data)
            *data = read.data;
        else
            zchunk_destroy (&read.data);
        return 0;
    }
    zchunk_destroy (&read.data);
    return -1;
}

//  One acknowledgement from the crash child: the entry is on disk.
typedef struct {
    uint64_t index;
    uint64_t tick;
} s_ack_t;

//  The crash-test child: append forever, acknowledging each entry only
//  after qt_store_append has returned. Never returns.
static void
s_crash_child (const char *path, int ack_fd)
{
    qt_store_t *store = qt_store_open (path, NULL);
    if (!store)
        _exit (1);
    unsigned char buffer [S_TEST_MAX_SIZE];
    for (uint64_t tick = 0; ; tick++) {
        size_t size = s_test_entry (tick, buffer);
        s_ack_t ack = { 0, tick };
        if (qt_store_append (store, tick, "obs", buffer, size, &ack.index))
            _exit (1);
        //  Under PIPE_BUF, so each acknowledgement arrives whole
        if (write (ack_fd, &ack, sizeof ack) != (ssize_t) sizeof ack)
            _exit (1);
    }
}

#define S_TEST_RETAIN_ROWS      100
#define S_TEST_RETAIN_BYTES     (50 * 1000)
#define S_TEST_RETAIN_APPENDS   5000            //  ~2.5 MB of data unbounded
#define S_TEST_RETAIN_FILE_MAX  (512 * 1024)    //  the database file, once closed

static void
s_test_retention (const char *tmpdir, uint64_t rows, uint64_t bytes)
{
    char *path = zsys_sprintf ("%s/retain-%" PRIu64 "-%" PRIu64 ".db", tmpdir, rows, bytes);
    qt_store_t *store = qt_store_open (path, NULL);
    QT_CHECK (store);
    QT_CHECK (qt_store_set_retention (store, rows, bytes) == 0);
    unsigned char buffer [S_TEST_MAX_SIZE];
    uint64_t index = 0;
    for (uint64_t i = 0; i < S_TEST_RETAIN_APPENDS; i++) {
        size_t size = s_test_entry (i, buffer);
        QT_CHECK (qt_store_append (store, i, "obs", buffer, size, &index) == 0);
        uint64_t count = qt_store_count (store);
        QT_CHECK (count >= 1);
        QT_CHECK (rows == 0 || count <= rows);
        QT_CHECK (bytes == 0 || qt_store_bytes (store) <= bytes);
    }
    QT_CHECK (qt_store_pruned (store) > 0);
    //  The newest entries, all of them: the last count indexes, in order
    uint64_t count = qt_store_count (store);
    uint64_t held = 0;
    for (uint64_t k = 0; k < count; k++) {
        zchunk_t *chunk = NULL;
        uint64_t tick;
        QT_CHECK (s_test_read (store, index - k, &tick, &chunk) == 0);
        QT_CHECK (tick == S_TEST_RETAIN_APPENDS - 1 - k);
        QT_CHECK (s_test_entry_ok (tick, chunk));
        held += zchunk_size (chunk);
        zchunk_destroy (&chunk);
    }
    QT_CHECK (s_test_read (store, index - count, NULL, NULL) == -1);
    QT_CHECK (held == qt_store_bytes (store));
    //  Enough is kept: pruning stops 1/16 below a bound, not far below
    QT_CHECK (rows == 0 || count >= rows - rows / 8);
    QT_CHECK (bytes == 0 || held >= bytes - bytes / 8);
    qt_store_destroy (&store);
    struct stat info;
    QT_CHECK (stat (path, &info) == 0);
    QT_CHECK (info.st_size <= S_TEST_RETAIN_FILE_MAX);
    //  Reopened, it measures the same
    store = qt_store_open (path, NULL);
    QT_CHECK (qt_store_count (store) == count && qt_store_bytes (store) == held);
    qt_store_destroy (&store);
    zstr_free (&path);
}

void
qt_store_test (bool verbose)
{
    if (verbose)
        printf (" * qt_store: ");
    char tmpdir [] = "/tmp/qt_store_test.XXXXXX";
    QT_CHECK (mkdtemp (tmpdir));
    char *path = zsys_sprintf ("%s/collector-1.db", tmpdir);
    const uint64_t entries = 100;
    unsigned char buffer [S_TEST_MAX_SIZE];

    //  @selftest
    //  A new store is empty
    char *error = NULL;
    qt_store_t *store = qt_store_open (path, &error);
    QT_CHECK (store);
    QT_CHECK (error == NULL);
    QT_CHECK (qt_store_count (store) == 0);
    uint64_t tick, index, previous = 0;
    QT_CHECK (qt_store_last (store, &tick, &index) == -1);

    //  Append; indexes increase
    for (uint64_t i = 0; i < entries; i++) {
        size_t size = s_test_entry (i, buffer);
        QT_CHECK (qt_store_append (store, i, "obs", buffer, size, &index) == 0);
        QT_CHECK (index > previous);
        previous = index;
    }
    QT_CHECK (qt_store_count (store) == entries);
    QT_CHECK (qt_store_last (store, &tick, &index) == 0);
    QT_CHECK (tick == entries - 1 && index == previous);
    qt_store_destroy (&store);
    qt_store_destroy (&store);
    QT_CHECK (store == NULL);

    //  Reopen and read back, by index and by replay
    store = qt_store_open (path, NULL);
    QT_CHECK (store);
    QT_CHECK (qt_store_count (store) == entries);
    for (uint64_t i = 0; i < entries; i++) {
        zchunk_t *chunk = NULL;
        QT_CHECK (s_test_read (store, i + 1, &tick, &chunk) == 0);
        QT_CHECK (tick == i);
        QT_CHECK (s_test_entry_ok (i, chunk));
        zchunk_destroy (&chunk);
    }
    QT_CHECK (s_test_read (store, entries + 1, &tick, NULL) == -1);
    s_replay_state_t state = { 0, 0 };
    QT_CHECK (qt_store_replay (store, 1, s_test_replay, &state) == 0);
    QT_CHECK (state.seen == entries);
    state = (s_replay_state_t) { 90, 0 };
    QT_CHECK (qt_store_replay (store, 91, s_test_replay, &state) == 0);
    QT_CHECK (state.seen == 10);

    //  A reader beside the writer: the same entries, no appends
    qt_store_t *reader = qt_store_open_read (path, &error);
    QT_CHECK (reader && error == NULL);
    QT_CHECK (qt_store_count (reader) == entries);
    state = (s_replay_state_t) { 0, 0 };
    QT_CHECK (qt_store_replay (reader, 1, s_test_replay, &state) == 0);
    QT_CHECK (state.seen == entries);
    QT_CHECK (qt_store_append (reader, entries, "obs", "x", 1, NULL) == -1);
    QT_CHECK (qt_store_count (reader) == entries);
    qt_store_destroy (&reader);

    //  Ticks use all 64 bits
    QT_CHECK (qt_store_append (store, UINT64_MAX, "eval", "x", 1, &index) == 0);
    QT_CHECK (qt_store_last (store, &tick, NULL) == 0 && tick == UINT64_MAX);
    QT_CHECK (s_test_read (store, index, &tick, NULL) == 0 && tick == UINT64_MAX);
    qt_store_destroy (&store);

    //  Damage is detected on read, not replayed
    sqlite3 *db = NULL;
    QT_CHECK (sqlite3_open (path, &db) == SQLITE_OK);
    QT_CHECK (sqlite3_exec (db, "UPDATE entry SET data = x'00' WHERE id = 50",
                          NULL, NULL, NULL) == SQLITE_OK);
    sqlite3_close (db);
    store = qt_store_open (path, NULL);
    QT_CHECK (store);
    QT_CHECK (s_test_read (store, 49, NULL, NULL) == 0);
    QT_CHECK (s_test_read (store, 50, NULL, NULL) == -1);
    QT_CHECK (strstr (qt_store_error (store), "entry 50 is damaged"));
    state = (s_replay_state_t) { 0, 0 };
    QT_CHECK (qt_store_replay (store, 1, s_test_replay, &state) == -1);
    QT_CHECK (state.seen == 49);
    qt_store_destroy (&store);

    //  A path that is some other file is refused, not written into
    char *other = zsys_sprintf ("%s/other.db", tmpdir);
    FILE *file = fopen (other, "w");
    QT_CHECK (file);
    fputs ("not a database, just some text that is long enough to matter\n", file);
    fclose (file);
    QT_CHECK (qt_store_open (other, &error) == NULL);
    QT_CHECK (error && strstr (error, other));
    zstr_free (&error);
    unlink (other);
    QT_CHECK (sqlite3_open (other, &db) == SQLITE_OK);
    QT_CHECK (sqlite3_exec (db, "CREATE TABLE t (x)", NULL, NULL, NULL) == SQLITE_OK);
    sqlite3_close (db);
    QT_CHECK (qt_store_open (other, &error) == NULL);
    QT_CHECK (strstr (error, "not a quintet store"));
    zstr_free (&error);
    QT_CHECK (qt_store_open_read (other, &error) == NULL);
    QT_CHECK (strstr (error, "not a quintet store"));
    zstr_free (&error);
    unlink (other);
    QT_CHECK (qt_store_open_read (other, &error) == NULL);      //  a reader creates nothing
    QT_CHECK (access (other, F_OK) == -1);
    zstr_free (&error);

    //  Crash test: a child appends as fast as it can and acknowledges each
    //  append after it returns; kill -9 it at an arbitrary point. Every
    //  acknowledged entry must be there, intact; at most the one in flight
    //  may be too.
    zstr_free (&path);
    path = zsys_sprintf ("%s/crash.db", tmpdir);
    int ack_pipe [2];
    QT_CHECK (pipe (ack_pipe) == 0);
    fflush (stdout);
    fflush (stderr);
    pid_t child = fork ();
    QT_CHECK (child >= 0);
    if (child == 0) {
        close (ack_pipe [0]);
        s_crash_child (path, ack_pipe [1]);
    }
    close (ack_pipe [1]);
    //  Kill after a varying number of appends, so runs hit different moments
    const uint64_t kill_after = 200 + randombytes_uniform (200);
    s_ack_t *acks = (s_ack_t *) zmalloc (sizeof (s_ack_t) * (kill_after + 1));
    QT_CHECK (acks);
    uint64_t acked = 0;
    bool killed = false;
    while (true) {
        if (acked == kill_after && !killed) {
            QT_CHECK (kill (child, SIGKILL) == 0);
            killed = true;
        }
        s_ack_t ack;
        ssize_t got = read (ack_pipe [0], &ack, sizeof ack);
        if (got == -1 && errno == EINTR)
            continue;
        if (got == 0)
            break;                      //  The child is gone
        QT_CHECK (got == (ssize_t) sizeof ack);
        //  Acks sent between kill() and the child's death count too
        acks = (s_ack_t *) realloc (acks, sizeof (s_ack_t) * (acked + 1));
        QT_CHECK (acks);
        acks [acked++] = ack;
    }
    close (ack_pipe [0]);
    int status;
    QT_CHECK (waitpid (child, &status, 0) == child);
    QT_CHECK (WIFSIGNALED (status) && WTERMSIG (status) == SIGKILL);
    QT_CHECK (acked >= kill_after);

    store = qt_store_open (path, &error);
    QT_CHECK (store);
    for (uint64_t i = 0; i < acked; i++) {
        zchunk_t *chunk = NULL;
        QT_CHECK (s_test_read (store, acks [i].index, &tick, &chunk) == 0);
        QT_CHECK (tick == acks [i].tick);
        QT_CHECK (s_test_entry_ok (tick, chunk));
        zchunk_destroy (&chunk);
    }
    uint64_t count = qt_store_count (store);
    QT_CHECK (count == acked || count == acked + 1);
    QT_CHECK (qt_store_last (store, &tick, &index) == 0);
    QT_CHECK (index >= acks [acked - 1].index);
    //  Appending continues after the crash
    QT_CHECK (qt_store_append (store, tick + 1, "obs", "", 0, &index) == 0);
    zchunk_t *chunk = NULL;
    QT_CHECK (s_test_read (store, index, NULL, &chunk) == 0);
    QT_CHECK (zchunk_size (chunk) == 0);
    zchunk_destroy (&chunk);
    qt_store_destroy (&store);
    free (acks);

    //  Retention, by entries and by bytes: the store stays bounded, on disk
    //  too, and the newest entries survive, contiguous and intact
    s_test_retention (tmpdir, S_TEST_RETAIN_ROWS, 0);
    s_test_retention (tmpdir, 0, S_TEST_RETAIN_BYTES);
    //  @end

    zdir_t *dir = zdir_new (tmpdir, NULL);
    QT_CHECK (dir);
    zdir_remove (dir, true);
    zdir_destroy (&dir);
    zstr_free (&other);
    zstr_free (&path);
    if (verbose)
        printf ("OK\n");
}
