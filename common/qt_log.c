/*  qt_log: journal fields under systemd, one line per event on stderr
    otherwise, and a per-key rate limiter for drop floods. See qt_log.h for
    the one piece of process-wide state and why it is safe.
*/
#include "quintet.h"
#include "qt_selftest.h"
//  Every event would otherwise carry CODE_FILE/LINE of s_emit_journal,
//  which tells an operator nothing
#define SD_JOURNAL_SUPPRESS_LOCATION
#include <systemd/sd-journal.h>
#include <sys/stat.h>
#include <sys/uio.h>
#include <errno.h>
#include <fcntl.h>
#include <time.h>
#include <unistd.h>

//  Longest role name kept; roles are short words like "worldmodel".
#define QT_LOG_ROLE_MAX     32
//  Identity is role + "-" + a 32-bit replica number.
#define QT_LOG_IDENTITY_MAX (QT_LOG_ROLE_MAX + 12)
//  Journal fields we may send for one event (see s_emit_journal).
#define QT_LOG_MAX_FIELDS   10
//  Where journald listens for native (structured) messages.
#define QT_LOG_JOURNAL_SOCKET   "/run/systemd/journal/socket"
//  Keys a rate limiter tracks before new keys share the overflow entry.
#define QT_RATELIMIT_MAX_KEYS   1024
#define QT_RATELIMIT_OVERFLOW   "(other keys)"

//  The process-wide logging state: written by main before threads start
//  (qt_log_init, qt_log_set_level), only read afterwards.
static struct {
    bool initialized;
    bool journal;
    int level;
    uint32_t replica;
    char role [QT_LOG_ROLE_MAX];
    char identity [QT_LOG_IDENTITY_MAX];
} s_log = { false, false, LOG_INFO, QT_LOG_NO_REPLICA, "", "" };

bool
qt_log_journal_detect (void)
{
    //  systemd sets $JOURNAL_STREAM to "<dev>:<ino>" of the stream it gave us;
    //  if stderr is still that stream (not redirected since), it's journald.
    const char *stream = getenv ("JOURNAL_STREAM");
    if (!stream)
        return false;
    unsigned long long dev, ino;
    int consumed = 0;
    if (sscanf (stream, "%llu:%llu%n", &dev, &ino, &consumed) != 2
    ||  stream [consumed] != '\0')
        return false;
    struct stat st;
    if (fstat (STDERR_FILENO, &st) == -1)
        return false;
    return (unsigned long long) st.st_dev == dev
        && (unsigned long long) st.st_ino == ino;
}

void
qt_log_init (const char *role, uint32_t replica)
{
    assert (role);
    snprintf (s_log.role, sizeof s_log.role, "%s", role);
    s_log.replica = replica;
    if (replica == QT_LOG_NO_REPLICA)
        snprintf (s_log.identity, sizeof s_log.identity, "%s", s_log.role);
    else
        snprintf (s_log.identity, sizeof s_log.identity, "%s-%" PRIu32,
                  s_log.role, replica);
    //  sd_journal_sendv succeeds silently when journald's socket is missing
    //  (say a container whose stderr a host journald captured), which would
    //  lose every event; then the stderr line is the one that gets through
    s_log.journal = qt_log_journal_detect ()
                 && access (QT_LOG_JOURNAL_SOCKET, F_OK) == 0;
    s_log.initialized = true;
}

void
qt_log_set_level (int priority)
{
    s_log.level = priority;
}

static const char *
s_priority_name (int priority)
{
    static const char *names [] = {
        "emerg", "alert", "crit", "error", "warning", "notice", "info", "debug"
    };
    if (priority < LOG_EMERG || priority > LOG_DEBUG)
        return "info";
    return names [priority];
}

//  Text from the network (peer ids, causes) or from callers can hold
//  newlines or escape sequences; on a line-oriented stream they would forge
//  extra events or garble terminals, so control characters become '?'.
static void
s_sanitize (char *text)
{
    for (unsigned char *p = (unsigned char *) text; *p; p++)
        if (*p < 0x20 || *p == 0x7f)
            *p = '?';
}

//  The " [peer=... cause=... tick=...]" context suffix, or "" when there
//  is none. Caller frees.
static char *
s_context (uint64_t tick, const char *peer, const char *cause)
{
    char tickbuf [24] = "";
    if (tick != QT_LOG_NO_TICK)
        snprintf (tickbuf, sizeof tickbuf, "%" PRIu64, tick);
    const char *labels [] = { "peer=", "cause=", "tick=" };
    const char *values [] = { peer, cause, *tickbuf ? tickbuf : NULL };
    char *text = strdup ("");
    for (int i = 0; text && i < 3; i++) {
        if (!values [i])
            continue;
        char *longer = NULL;
        if (asprintf (&longer, "%s%s%s%s", text, *text ? " " : " [",
                      labels [i], values [i]) == -1)
            longer = NULL;
        free (text);
        text = longer;
    }
    if (text && *text) {
        char *closed = NULL;
        if (asprintf (&closed, "%s]", text) == -1)
            closed = NULL;
        free (text);
        text = closed;
    }
    return text;
}

static void
s_write_all (int fd, const char *data, size_t size)
{
    while (size > 0) {
        ssize_t sent = write (fd, data, size);
        if (sent == -1) {
            if (errno == EINTR)
                continue;
            return;                     //  Nowhere left to report it
        }
        data += sent;
        size -= (size_t) sent;
    }
}

static void
s_emit_stderr (int priority, const char *message)
{
    struct timespec now;
    clock_gettime (CLOCK_REALTIME, &now);
    struct tm utc;
    gmtime_r (&now.tv_sec, &utc);
    char stamp [32];
    strftime (stamp, sizeof stamp, "%Y-%m-%dT%H:%M:%S", &utc);
    const char *identity = s_log.initialized ? s_log.identity
                                             : program_invocation_short_name;
    char *line = NULL;
    int length = asprintf (&line, "%s.%03ldZ %s %s: %s\n", stamp,
                           now.tv_nsec / 1000000L, identity,
                           s_priority_name (priority), message);
    if (length < 0)
        return;
    //  One write per event so concurrent threads never interleave lines
    s_write_all (STDERR_FILENO, line, (size_t) length);
    free (line);
}

//  Returns 0 if journald took the event, -1 if we should fall back to stderr.
static int
s_emit_journal (int priority, const char *message_id, uint64_t tick,
                const char *peer, const char *cause, const char *message)
{
    char *fields [QT_LOG_MAX_FIELDS];
    int count = 0;
    int rc = 0;
#define S_FIELD(...) \
    if (rc == 0 && asprintf (&fields [count], __VA_ARGS__) >= 0) count++; \
    else rc = -1
    S_FIELD ("MESSAGE=%s", message);
    S_FIELD ("PRIORITY=%d", priority);
    S_FIELD ("SYSLOG_IDENTIFIER=%s", program_invocation_short_name);
    if (message_id) {
        S_FIELD ("MESSAGE_ID=%s", message_id);
    }
    if (s_log.initialized) {
        S_FIELD ("ROLE=%s", s_log.role);
        if (s_log.replica != QT_LOG_NO_REPLICA) {
            S_FIELD ("REPLICA=%" PRIu32, s_log.replica);
        }
    }
    if (tick != QT_LOG_NO_TICK) {
        S_FIELD ("TICK=%" PRIu64, tick);
    }
    if (peer) {
        S_FIELD ("PEER=%s", peer);
    }
    if (cause) {
        S_FIELD ("CAUSE=%s", cause);
    }
#undef S_FIELD
    assert (count <= QT_LOG_MAX_FIELDS);
    if (rc == 0) {
        struct iovec iov [QT_LOG_MAX_FIELDS];
        for (int i = 0; i < count; i++) {
            iov [i].iov_base = fields [i];
            iov [i].iov_len = strlen (fields [i]);
        }
        rc = sd_journal_sendv (iov, count) < 0 ? -1 : 0;
    }
    for (int i = 0; i < count; i++)
        free (fields [i]);
    return rc;
}

void
qt_log_eventv (int priority, const char *message_id, uint64_t tick,
               const char *peer, const char *cause, const char *fmt,
               va_list args)
{
    if (priority > s_log.level)
        return;
    char *text = NULL;
    if (vasprintf (&text, fmt, args) == -1)
        return;
    char *context = s_context (tick, peer, cause);
    char *message = NULL;
    if (context && asprintf (&message, "%s%s", text, context) >= 0) {
        if (!s_log.journal
        ||  s_emit_journal (priority, message_id, tick, peer, cause, message)) {
            s_sanitize (message);
            s_emit_stderr (priority, message);
        }
        free (message);
    }
    free (context);
    free (text);
}

void
qt_log_event (int priority, const char *message_id, uint64_t tick,
              const char *peer, const char *cause, const char *fmt, ...)
{
    va_list args;
    va_start (args, fmt);
    qt_log_eventv (priority, message_id, tick, peer, cause, fmt, args);
    va_end (args);
}

void
qt_log (int priority, const char *fmt, ...)
{
    va_list args;
    va_start (args, fmt);
    qt_log_eventv (priority, NULL, QT_LOG_NO_TICK, NULL, NULL, fmt, args);
    va_end (args);
}


//  --------------------------------------------------------------------------
//  Rate limiter

struct _qt_ratelimit_t {
    int64_t interval_ms;
    zhashx_t *keys;             //  key -> s_window_t
};

typedef struct {
    int64_t last_pass_ms;       //  When this key last passed
    uint64_t suppressed;        //  Events refused since then
} s_window_t;

static void
s_window_destroy (void **item_p)
{
    free (*item_p);
    *item_p = NULL;
}

qt_ratelimit_t *
qt_ratelimit_new (int64_t interval_ms)
{
    assert (interval_ms >= 0);
    qt_ratelimit_t *self = (qt_ratelimit_t *) zmalloc (sizeof (qt_ratelimit_t));
    assert (self);
    self->interval_ms = interval_ms;
    self->keys = zhashx_new ();
    assert (self->keys);
    zhashx_set_destructor (self->keys, s_window_destroy);
    return self;
}

void
qt_ratelimit_destroy (qt_ratelimit_t **self_p)
{
    assert (self_p);
    if (*self_p) {
        qt_ratelimit_t *self = *self_p;
        zhashx_destroy (&self->keys);
        free (self);
        *self_p = NULL;
    }
}

//  Forget keys that have been quiet for a whole interval and owe no count:
//  they would pass at once anyway, so forgetting them changes nothing.
static void
s_ratelimit_purge (qt_ratelimit_t *self, int64_t now_ms)
{
    zlist_t *stale = zlist_new ();
    assert (stale);
    zlist_autofree (stale);
    for (s_window_t *window = (s_window_t *) zhashx_first (self->keys);
         window; window = (s_window_t *) zhashx_next (self->keys))
        if (window->suppressed == 0
        &&  now_ms - window->last_pass_ms >= self->interval_ms)
            zlist_append (stale, (void *) zhashx_cursor (self->keys));
    for (const char *key = (const char *) zlist_first (stale);
         key; key = (const char *) zlist_next (stale))
        zhashx_delete (self->keys, key);
    zlist_destroy (&stale);
}

bool
qt_ratelimit_pass (qt_ratelimit_t *self, const char *key, int64_t now_ms,
                   uint64_t *suppressed)
{
    assert (self);
    assert (key);
    s_window_t *window = (s_window_t *) zhashx_lookup (self->keys, key);
    if (!window) {
        if (zhashx_size (self->keys) >= QT_RATELIMIT_MAX_KEYS
        &&  strneq (key, QT_RATELIMIT_OVERFLOW)) {
            s_ratelimit_purge (self, now_ms);
            if (zhashx_size (self->keys) >= QT_RATELIMIT_MAX_KEYS)
                return qt_ratelimit_pass (self, QT_RATELIMIT_OVERFLOW,
                                          now_ms, suppressed);
        }
        window = (s_window_t *) zmalloc (sizeof (s_window_t));
        assert (window);
        window->last_pass_ms = now_ms;
        zhashx_insert (self->keys, key, window);
        if (suppressed)
            *suppressed = 0;
        return true;
    }
    if (now_ms - window->last_pass_ms >= self->interval_ms) {
        if (suppressed)
            *suppressed = window->suppressed;
        window->suppressed = 0;
        window->last_pass_ms = now_ms;
        return true;
    }
    window->suppressed++;
    if (suppressed)
        *suppressed = window->suppressed;
    return false;
}


//  --------------------------------------------------------------------------
//  Selftest

//  Redirect stderr to a file, to read back what was logged.
static void
s_capture_begin (const char *path, int *saved_fd)
{
    fflush (stderr);
    *saved_fd = dup (STDERR_FILENO);
    QT_CHECK (*saved_fd >= 0);
    int fd = open (path, O_WRONLY | O_CREAT | O_TRUNC, 0600);
    QT_CHECK (fd >= 0);
    QT_CHECK (dup2 (fd, STDERR_FILENO) == STDERR_FILENO);
    close (fd);
}

//  Restore stderr; returns what was written (caller frees).
static char *
s_capture_end (const char *path, int saved_fd)
{
    QT_CHECK (dup2 (saved_fd, STDERR_FILENO) == STDERR_FILENO);
    close (saved_fd);
    FILE *file = fopen (path, "r");
    QT_CHECK (file);
    char *text = (char *) zmalloc (4096);
    QT_CHECK (text);
    size_t size = fread (text, 1, 4095, file);
    text [size] = '\0';
    fclose (file);
    return text;
}

void
qt_log_test (bool verbose)
{
    if (verbose)
        printf (" * qt_log: ");

    //  @selftest
    //  What main does once, before starting actors. The test runner's
    //  stderr may be journald's; force the stderr path so we can read it.
    char tmpdir [] = "/tmp/qt_log_test.XXXXXX";
    QT_CHECK (mkdtemp (tmpdir));
    char *path = zsys_sprintf ("%s/stderr", tmpdir);
    char *saved_stream = getenv ("JOURNAL_STREAM");
    if (saved_stream)
        saved_stream = strdup (saved_stream);
    unsetenv ("JOURNAL_STREAM");
    qt_log_init ("collector", 1);
    QT_CHECK (!s_log.journal);

    //  An event with full context is one line, in the documented layout
    int saved_fd;
    s_capture_begin (path, &saved_fd);
    qt_log_event (LOG_WARNING, QT_MSG_SIGNATURE_REJECTED, 12, "collector-2",
                  "bad-signature", "signature rejected");
    qt_log (LOG_INFO, "started with batch=%d", 64);
    qt_log (LOG_DEBUG, "not shown at the default level");
    qt_log_event (LOG_ERR, NULL, QT_LOG_NO_TICK, "evil\npeer", NULL,
                  "forged\nline");
    qt_log_event (LOG_NOTICE, NULL, 7, NULL, NULL, "tick only");
    char *text = s_capture_end (path, saved_fd);
    char *lines [5] = { NULL };
    int nlines = 0;
    for (char *line = strtok (text, "\n"); line && nlines < 5;
         line = strtok (NULL, "\n"))
        lines [nlines++] = line;
    QT_CHECK (nlines == 4);
    //  2026-11-22T10:00:00.123Z is 24 characters
    QT_CHECK (strlen (lines [0]) > 24);
    QT_CHECK (lines [0][4] == '-' && lines [0][10] == 'T' && lines [0][19] == '.'
         && lines [0][23] == 'Z' && lines [0][24] == ' ');
    QT_CHECK (streq (lines [0] + 25, "collector-1 warning: signature rejected "
                   "[peer=collector-2 cause=bad-signature tick=12]"));
    QT_CHECK (streq (lines [1] + 25, "collector-1 info: started with batch=64"));
    //  Control characters from peers can't forge a second line
    QT_CHECK (streq (lines [2] + 25, "collector-1 error: forged?line [peer=evil?peer]"));
    QT_CHECK (streq (lines [3] + 25, "collector-1 notice: tick only [tick=7]"));
    free (text);

    //  The level filters; a tool without replica logs under its role alone
    qt_log_set_level (LOG_DEBUG);
    qt_log_init ("quintetctl", QT_LOG_NO_REPLICA);
    s_capture_begin (path, &saved_fd);
    qt_log (LOG_DEBUG, "now shown");
    text = s_capture_end (path, saved_fd);
    QT_CHECK (strstr (text, " quintetctl debug: now shown\n"));
    free (text);
    qt_log_set_level (LOG_INFO);

    //  Journal detection: only when $JOURNAL_STREAM names stderr itself
    s_capture_begin (path, &saved_fd);
    struct stat st;
    QT_CHECK (fstat (STDERR_FILENO, &st) == 0);
    char *stream = zsys_sprintf ("%llu:%llu", (unsigned long long) st.st_dev,
                                 (unsigned long long) st.st_ino);
    setenv ("JOURNAL_STREAM", stream, 1);
    bool detected = qt_log_journal_detect ();
    setenv ("JOURNAL_STREAM", "1:2", 1);
    bool other = qt_log_journal_detect ();
    setenv ("JOURNAL_STREAM", "garbage", 1);
    bool garbage = qt_log_journal_detect ();
    //  Under journald the event goes there as fields; where journald's
    //  socket is missing after all, it goes to stderr, never lost
    setenv ("JOURNAL_STREAM", stream, 1);
    qt_log_init ("collector", 3);
    bool journald = access (QT_LOG_JOURNAL_SOCKET, F_OK) == 0;
    QT_CHECK (s_log.journal == journald);
    if (!journald)
        qt_log_event (LOG_ERR, QT_MSG_REPLICA_DOWN, 5, "scorer-2", "deadline",
                      "replica down");
    text = s_capture_end (path, saved_fd);
    if (!journald)
        QT_CHECK (strstr (text, " collector-3 error: replica down "
                        "[peer=scorer-2 cause=deadline tick=5]\n"));
    free (text);
    zstr_free (&stream);
    QT_CHECK (detected && !other && !garbage);
    if (saved_stream)
        setenv ("JOURNAL_STREAM", saved_stream, 1);
    else
        unsetenv ("JOURNAL_STREAM");
    free (saved_stream);

    //  Message ids are 128-bit ids in journald's form
    const char *ids [] = {
        QT_MSG_SIGNATURE_REJECTED, QT_MSG_REPLAY_DROPPED, QT_MSG_MESSAGE_DROPPED,
        QT_MSG_REPLICA_DOWN, QT_MSG_REPLICA_UP, QT_MSG_REPLICA_EXCLUDED,
        QT_MSG_QUORUM_LOST, QT_MSG_QUORUM_REGAINED, QT_MSG_CONFIG_ERROR,
        QT_MSG_STARTED, QT_MSG_STOPPING, NULL
    };
    for (int i = 0; ids [i]; i++) {
        QT_CHECK (strlen (ids [i]) == 32);
        QT_CHECK (strspn (ids [i], "0123456789abcdef") == 32);
        for (int j = 0; j < i; j++)
            QT_CHECK (strneq (ids [i], ids [j]));
    }

    //  A flood of drops passes once per key per interval, with a count
    qt_ratelimit_t *limit = qt_ratelimit_new (1000);
    uint64_t suppressed = 99;
    QT_CHECK (qt_ratelimit_pass (limit, "bad-signature", 0, &suppressed));
    QT_CHECK (suppressed == 0);
    for (int i = 1; i <= 500; i++)
        QT_CHECK (!qt_ratelimit_pass (limit, "bad-signature", i, NULL));
    //  Another cause is limited separately
    QT_CHECK (qt_ratelimit_pass (limit, "replay", 10, &suppressed));
    QT_CHECK (!qt_ratelimit_pass (limit, "replay", 20, &suppressed));
    QT_CHECK (!qt_ratelimit_pass (limit, "bad-signature", 999, &suppressed));
    QT_CHECK (qt_ratelimit_pass (limit, "bad-signature", 1000, &suppressed));
    QT_CHECK (suppressed == 501);
    QT_CHECK (!qt_ratelimit_pass (limit, "bad-signature", 1500, &suppressed));
    QT_CHECK (qt_ratelimit_pass (limit, "bad-signature", 2000, &suppressed));
    QT_CHECK (suppressed == 1);
    //  After a quiet interval a key passes at once, owing nothing
    QT_CHECK (qt_ratelimit_pass (limit, "bad-signature", 9000, &suppressed));
    QT_CHECK (suppressed == 0);

    //  Keys invented by a peer can't grow the limiter without bound: they
    //  end up sharing one entry
    int passed = 0;
    for (int i = 0; i < 3 * QT_RATELIMIT_MAX_KEYS; i++) {
        char key [32];
        snprintf (key, sizeof key, "cause-%d", i);
        if (qt_ratelimit_pass (limit, key, 10000, NULL))
            passed++;
    }
    QT_CHECK (zhashx_size (limit->keys) <= QT_RATELIMIT_MAX_KEYS + 1);
    QT_CHECK (passed <= QT_RATELIMIT_MAX_KEYS + 1);
    //  ... and once they've gone quiet, they are forgotten for new ones
    QT_CHECK (qt_ratelimit_pass (limit, "fresh", 20000, NULL));
    QT_CHECK (zhashx_lookup (limit->keys, "fresh"));
    qt_ratelimit_destroy (&limit);
    qt_ratelimit_destroy (&limit);
    QT_CHECK (limit == NULL);
    //  @end

    unlink (path);
    zstr_free (&path);
    QT_CHECK (rmdir (tmpdir) == 0);
    if (verbose)
        printf ("OK\n");
}
