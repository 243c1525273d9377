/*  qt_config: ZPL config files through czmq's zconfig, with typed,
    range-checked getters that remember which keys were read so that unread
    (misspelt) keys are reported instead of ignored.

    zconfig reports syntax errors only on stdout and returns NULL, and treats
    a missing file the same way; so we read the file ourselves (to tell
    "missing" from "unreadable" from "not ZPL"), hand the text to
    zconfig_chunk_load, and on failure find the first line at which a prefix
    of the file stops parsing, to name the line in the error.
*/
#include "quintet.h"
#include "qt_selftest.h"
#include <errno.h>
#include <sys/stat.h>
#include <fcntl.h>
#include <unistd.h>

//  zconfig silently truncates longer lines; we refuse them instead.
#define QT_CONFIG_MAX_LINE  1024
//  A config file is a few hundred lines; anything this big is a mistake.
#define QT_CONFIG_MAX_SIZE  (1024 * 1024)
//  Longest excerpt of an offending line quoted in an error.
#define QT_CONFIG_MAX_QUOTE 60

//  How much of a key has been accounted for, in increasing order: an
//  ancestor of a key that was read, a key read by a typed getter.
typedef enum {
    QT_CONFIG_UNREAD = 0,
    QT_CONFIG_CONTAINER,
    QT_CONFIG_KEY
} qt_config_read_t;

struct _qt_config_t {
    char *path;                 //  As given, to name the file in errors
    zconfig_t *root;            //  The parsed tree
    zhashx_t *read;             //  Key path -> qt_config_read_t
    char *error;                //  Last error, or NULL
};

//  Set the error to "<path>: <message>" and return -1.
static int
s_fail (qt_config_t *self, const char *fmt, ...)
    __attribute__ ((format (printf, 2, 3)));

static int
s_fail (qt_config_t *self, const char *fmt, ...)
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

//  Read the whole file into a chunk; NULL and an error when we can't.
static zchunk_t *
s_read_file (qt_config_t *self)
{
    FILE *file = fopen (self->path, "r");
    if (!file) {
        s_fail (self, "cannot open: %s", strerror (errno));
        return NULL;
    }
    struct stat st;
    if (fstat (fileno (file), &st) == -1 || !S_ISREG (st.st_mode)) {
        s_fail (self, "cannot read: not a regular file");
        fclose (file);
        return NULL;
    }
    if (st.st_size > QT_CONFIG_MAX_SIZE) {
        s_fail (self, "cannot read: larger than %d bytes", QT_CONFIG_MAX_SIZE);
        fclose (file);
        return NULL;
    }
    zchunk_t *chunk = zchunk_new (NULL, (size_t) st.st_size);
    assert (chunk);
    size_t size = fread (zchunk_data (chunk), 1, (size_t) st.st_size, file);
    bool failed = ferror (file);
    int error = errno;
    fclose (file);
    if (failed) {
        s_fail (self, "cannot read: %s", strerror (error));
        zchunk_destroy (&chunk);
        return NULL;
    }
    zchunk_set (chunk, zchunk_data (chunk), size);
    return chunk;
}

//  Quote a line for an error message: control characters shown as '?',
//  long lines cut. Caller frees.
static char *
s_quote_line (const char *line, size_t length)
{
    bool cut = length > QT_CONFIG_MAX_QUOTE;
    if (cut)
        length = QT_CONFIG_MAX_QUOTE;
    char *text = (char *) zmalloc (length + 4);
    assert (text);
    for (size_t i = 0; i < length; i++) {
        unsigned char c = (unsigned char) line [i];
        text [i] = c < 0x20 || c == 0x7f ? '?' : (char) c;
    }
    if (cut)
        strcpy (text + length, "...");
    return text;
}

//  The text is not ZPL: find the first line whose prefix fails to parse and
//  report it. Parsing is line by line, so a prefix fails exactly when it
//  contains the bad line.
static void
s_report_syntax (qt_config_t *self, const char *data, size_t size)
{
    size_t start = 0;
    int lineno = 1;
    while (start < size) {
        const char *eoln = (const char *) memchr (data + start, '\n', size - start);
        size_t end = eoln ? (size_t) (eoln - data) : size;
        zchunk_t *prefix = zchunk_new (data, end);
        assert (prefix);
        zconfig_t *tree = zconfig_chunk_load (prefix);
        zchunk_destroy (&prefix);
        if (!tree) {
            char *quoted = s_quote_line (data + start, end - start);
            s_fail (self, "line %d: not valid ZPL (sections nest by exactly "
                    "4 spaces, no tabs; items are name = value): \"%s\"",
                    lineno, quoted);
            free (quoted);
            return;
        }
        zconfig_destroy (&tree);
        start = end + 1;
        lineno++;
    }
    s_fail (self, "not valid ZPL");
}

//  zconfig truncates long lines without a word; catch them first.
static int
s_check_line_length (qt_config_t *self, const char *data, size_t size)
{
    size_t start = 0;
    int lineno = 1;
    while (start < size) {
        const char *eoln = (const char *) memchr (data + start, '\n', size - start);
        size_t end = eoln ? (size_t) (eoln - data) : size;
        if (end - start > QT_CONFIG_MAX_LINE)
            return s_fail (self, "line %d: longer than %d characters",
                           lineno, QT_CONFIG_MAX_LINE);
        if (memchr (data + start, '\0', end - start))
            return s_fail (self, "line %d: contains a NUL byte", lineno);
        start = end + 1;
        lineno++;
    }
    return 0;
}

//  Join a parent path and a name ("" parent: the name alone). Caller frees.
static char *
s_join (const char *parent, const char *name)
{
    char *path = *parent ? zsys_sprintf ("%s/%s", parent, name) : strdup (name);
    assert (path);
    return path;
}

//  Structural checks zconfig doesn't make: a name holding '/' can never be
//  found by path, and a repeated key would silently shadow the other.
static int
s_check_tree (qt_config_t *self, zconfig_t *node, const char *path)
{
    for (zconfig_t *child = zconfig_child (node); child; child = zconfig_next (child)) {
        const char *name = zconfig_name (child);
        char *child_path = s_join (path, name);
        int rc = 0;
        if (strchr (name, '/'))
            rc = s_fail (self, "%s: '/' is not allowed in a name; nest the key "
                         "under its section instead", child_path);
        for (zconfig_t *other = zconfig_next (child); rc == 0 && other;
             other = zconfig_next (other))
            if (streq (zconfig_name (other), name))
                rc = s_fail (self, "%s: duplicate key", child_path);
        if (rc == 0)
            rc = s_check_tree (self, child, child_path);
        free (child_path);
        if (rc)
            return -1;
    }
    return 0;
}

qt_config_t *
qt_config_open (const char *path, char **error)
{
    assert (path);
    qt_config_t *self = (qt_config_t *) zmalloc (sizeof (qt_config_t));
    assert (self);
    self->path = strdup (path);
    assert (self->path);
    self->read = zhashx_new ();
    assert (self->read);

    zchunk_t *chunk = s_read_file (self);
    if (chunk) {
        const char *data = (const char *) zchunk_data (chunk);
        size_t size = zchunk_size (chunk);
        if (s_check_line_length (self, data, size) == 0) {
            self->root = zconfig_chunk_load (chunk);
            if (!self->root)
                s_report_syntax (self, data, size);
            else
            if (s_check_tree (self, self->root, ""))
                zconfig_destroy (&self->root);
        }
        zchunk_destroy (&chunk);
    }
    if (!self->root) {
        if (error)
            *error = strdup (self->error);
        qt_config_destroy (&self);
    }
    return self;
}

qt_config_t *
qt_config_load (const char *path)
{
    char *error = NULL;
    qt_config_t *self = qt_config_open (path, &error);
    if (!self) {
        qt_log_event (LOG_ERR, QT_MSG_CONFIG_ERROR, QT_LOG_NO_TICK, NULL,
                      NULL, "%s", error);
        zstr_free (&error);
    }
    return self;
}

void
qt_config_destroy (qt_config_t **self_p)
{
    assert (self_p);
    if (*self_p) {
        qt_config_t *self = *self_p;
        zconfig_destroy (&self->root);
        zhashx_destroy (&self->read);
        zstr_free (&self->path);
        zstr_free (&self->error);
        free (self);
        *self_p = NULL;
    }
}

const char *
qt_config_error (qt_config_t *self)
{
    assert (self);
    return self->error;
}

const char *
qt_config_path (qt_config_t *self)
{
    assert (self);
    return self->path;
}

//  Record that a key was read (and its ancestors as containers); return
//  its node, or NULL if the file doesn't have it.
static zconfig_t *
s_lookup (qt_config_t *self, const char *key, qt_config_read_t how)
{
    assert (key);
    while (*key == '/')
        key++;
    char *path = strdup (key);
    assert (path);
    qt_config_read_t level = how;
    while (true) {
        qt_config_read_t known = (qt_config_read_t) (intptr_t) zhashx_lookup (self->read, path);
        if (level > known)
            zhashx_update (self->read, path, (void *) (intptr_t) level);
        char *slash = strrchr (path, '/');
        if (!slash)
            break;
        *slash = '\0';
        level = QT_CONFIG_CONTAINER;
    }
    free (path);
    return zconfig_locate (self->root, key);
}

//  The value of a key present in the file, or NULL if absent.
static const char *
s_value (qt_config_t *self, const char *key)
{
    zconfig_t *node = s_lookup (self, key, QT_CONFIG_KEY);
    return node ? zconfig_value (node) : NULL;
}

int
qt_config_string (qt_config_t *self, const char *key, const char *dflt,
                  const char **value)
{
    assert (self);
    assert (value);
    const char *text = s_value (self, key);
    *value = dflt;
    if (!text) {
        if (!dflt)
            return s_fail (self, "%s: required key is missing (expected a "
                           "non-empty string)", key);
        return 0;
    }
    if (!dflt && *text == '\0')
        return s_fail (self, "%s: expected a non-empty string, got \"\"", key);
    *value = text;
    return 0;
}

int
qt_config_uint (qt_config_t *self, const char *key, bool required,
                uint64_t dflt, uint64_t min, uint64_t max, uint64_t *value)
{
    assert (self);
    assert (value);
    assert (min <= max);
    *value = required ? 0 : dflt;
    const char *text = s_value (self, key);
    if (!text) {
        if (required)
            return s_fail (self, "%s: required key is missing (expected an "
                           "integer in [%" PRIu64 ", %" PRIu64 "])", key, min, max);
        return 0;
    }
    //  strtoull would take " 12", "+12" and, worse, "-1" as 2^64-1
    char *end = NULL;
    errno = 0;
    unsigned long long number = 0;
    if (isdigit ((unsigned char) *text))
        number = strtoull (text, &end, 10);
    if (!end || *end != '\0' || errno == ERANGE || number < min || number > max)
        return s_fail (self, "%s: expected an integer in [%" PRIu64 ", %" PRIu64
                       "], got \"%s\"", key, min, max, text);
    *value = number;
    return 0;
}

int
qt_config_double (qt_config_t *self, const char *key, bool required,
                  double dflt, double min, double max, double *value)
{
    assert (self);
    assert (value);
    assert (min <= max);
    *value = required ? 0 : dflt;
    const char *text = s_value (self, key);
    if (!text) {
        if (required)
            return s_fail (self, "%s: required key is missing (expected a "
                           "number in [%g, %g])", key, min, max);
        return 0;
    }
    char *end = NULL;
    errno = 0;
    double number = NAN;
    if (*text && !isspace ((unsigned char) *text))
        number = strtod (text, &end);
    //  Overflow gives ±HUGE_VAL, caught by isfinite; underflow to a tiny
    //  number is harmless, so ERANGE alone is not an error
    if (!end || *end != '\0' || !isfinite (number) || number < min || number > max)
        return s_fail (self, "%s: expected a finite number in [%g, %g], got \"%s\"",
                       key, min, max, text);
    *value = number;
    return 0;
}

int
qt_config_bool (qt_config_t *self, const char *key, bool required,
                bool dflt, bool *value)
{
    assert (self);
    assert (value);
    *value = required ? false : dflt;
    const char *text = s_value (self, key);
    if (!text) {
        if (required)
            return s_fail (self, "%s: required key is missing (expected "
                           "true/false, yes/no or 1/0)", key);
        return 0;
    }
    if (strcasecmp (text, "true") == 0 || strcasecmp (text, "yes") == 0
    ||  streq (text, "1"))
        *value = true;
    else
    if (strcasecmp (text, "false") == 0 || strcasecmp (text, "no") == 0
    ||  streq (text, "0"))
        *value = false;
    else
        return s_fail (self, "%s: expected true/false, yes/no or 1/0, got \"%s\"",
                       key, text);
    return 0;
}

//  "\"a\", \"b\", \"c\"" for an error message. Caller frees.
static char *
s_choice_list (const char *const *choices)
{
    char *list = strdup ("");
    assert (list);
    for (int i = 0; choices [i]; i++) {
        char *longer = zsys_sprintf ("%s%s\"%s\"", list, i ? ", " : "", choices [i]);
        assert (longer);
        free (list);
        list = longer;
    }
    return list;
}

int
qt_config_choice (qt_config_t *self, const char *key,
                  const char *const *choices, const char *dflt, int *index)
{
    assert (self);
    assert (choices && choices [0]);
    assert (index);
    *index = 0;
    int default_index = -1;
    for (int i = 0; dflt && choices [i]; i++)
        if (streq (choices [i], dflt))
            default_index = i;
    assert (!dflt || default_index >= 0);       //  A bug in the caller
    if (dflt)
        *index = default_index;

    const char *text = s_value (self, key);
    if (!text && dflt)
        return 0;
    for (int i = 0; text && choices [i]; i++)
        if (streq (choices [i], text)) {
            *index = i;
            return 0;
        }
    char *list = s_choice_list (choices);
    if (text)
        s_fail (self, "%s: expected one of %s, got \"%s\"", key, list, text);
    else
        s_fail (self, "%s: required key is missing (expected one of %s)", key, list);
    free (list);
    return -1;
}

zlist_t *
qt_config_children (qt_config_t *self, const char *key)
{
    assert (self);
    zlist_t *names = zlist_new ();
    assert (names);
    zlist_autofree (names);
    zconfig_t *section = s_lookup (self, key, QT_CONFIG_CONTAINER);
    for (zconfig_t *child = section ? zconfig_child (section) : NULL;
         child; child = zconfig_next (child))
        zlist_append (names, zconfig_name (child));
    return names;
}

//  Collect the paths of keys nobody read. An unread key is reported
//  whole, not its children; a key read as a value still has its children
//  checked (a value doesn't vouch for what is nested under it).
static void
s_collect_unread (qt_config_t *self, zconfig_t *node, const char *path,
                  zlist_t *unread)
{
    for (zconfig_t *child = zconfig_child (node); child; child = zconfig_next (child)) {
        char *child_path = s_join (path, zconfig_name (child));
        qt_config_read_t known =
            (qt_config_read_t) (intptr_t) zhashx_lookup (self->read, child_path);
        const char *value = zconfig_value (child);
        bool has_value = value && *value;
        if (known == QT_CONFIG_UNREAD
        || (known == QT_CONFIG_CONTAINER && has_value))
            zlist_append (unread, child_path);
        else
            s_collect_unread (self, child, child_path, unread);
        free (child_path);
    }
}

int
qt_config_check_unknown (qt_config_t *self)
{
    assert (self);
    zlist_t *unread = zlist_new ();
    assert (unread);
    zlist_autofree (unread);
    s_collect_unread (self, self->root, "", unread);
    int rc = 0;
    if (zlist_size (unread) > 0) {
        char *list = strdup ("");
        assert (list);
        for (const char *key = (const char *) zlist_first (unread);
             key; key = (const char *) zlist_next (unread)) {
            char *longer = zsys_sprintf ("%s%s\"%s\"", list, *list ? ", " : "", key);
            assert (longer);
            free (list);
            list = longer;
        }
        rc = s_fail (self, "unknown key%s %s", zlist_size (unread) > 1 ? "s" : "",
                     list);
        free (list);
    }
    zlist_destroy (&unread);
    return rc;
}


//  --------------------------------------------------------------------------
//  Selftest

//  Write a test file; returns its path (caller frees).
static char *
s_write (const char *dir, const char *name, const char *text)
{
    char *path = zsys_sprintf ("%s/%s", dir, name);
    FILE *file = fopen (path, "w");
    QT_CHECK (file);
    QT_CHECK (fputs (text, file) >= 0);
    QT_CHECK (fclose (file) == 0);
    return path;
}

//  zconfig prints its syntax diagnostics on stdout; keep them out of the
//  test report while we provoke them on purpose.
static int
s_stdout_mute (void)
{
    fflush (stdout);
    int saved = dup (STDOUT_FILENO);
    QT_CHECK (saved >= 0);
    int null = open ("/dev/null", O_WRONLY);
    QT_CHECK (null >= 0);
    QT_CHECK (dup2 (null, STDOUT_FILENO) == STDOUT_FILENO);
    close (null);
    return saved;
}

static void
s_stdout_restore (int saved)
{
    fflush (stdout);
    QT_CHECK (dup2 (saved, STDOUT_FILENO) == STDOUT_FILENO);
    close (saved);
}

//  Assert that the error is exactly "<path>: <expected>".
static void
s_assert_error (qt_config_t *self, const char *expected)
{
    const char *error = qt_config_error (self);
    QT_CHECK (error);
    size_t length = strlen (self->path);
    if (strncmp (error, self->path, length) != 0 || error [length] != ':'
    ||  strneq (error + length + 2, expected)) {
        fprintf (stderr, "\nunexpected error: %s\n  expected: %s\n", error, expected);
        QT_CHECK (false);
    }
}

//  Open a one-key file and read it as an integer in [1, 4096]; returns rc.
static int
s_try_uint (const char *dir, const char *value, uint64_t *result, char **error)
{
    char *text = zsys_sprintf ("quintet\n    batch = %s\n", value);
    char *path = s_write (dir, "batch.conf", text);
    qt_config_t *config = qt_config_open (path, NULL);
    QT_CHECK (config);
    int rc = qt_config_uint (config, "quintet/batch", true, 0, 1, 4096, result);
    if (rc)
        *error = strdup (qt_config_error (config));
    qt_config_destroy (&config);
    unlink (path);
    zstr_free (&path);
    zstr_free (&text);
    return rc;
}

void
qt_config_test (bool verbose)
{
    if (verbose)
        printf (" * qt_config: ");
    char tmpdir [] = "/tmp/qt_config_test.XXXXXX";
    QT_CHECK (mkdtemp (tmpdir));

    //  @selftest
    //  A good file: every kind of key, and dynamic sections
    char *path = s_write (tmpdir, "collector-1.conf",
        "#   collector-1\n"
        "quintet\n"
        "    replica = 1\n"
        "    batch = 64              # environments per tick\n"
        "    deadline = 0.25\n"
        "    verbose = yes\n"
        "    mode = median\n"
        "    endpoint = \"tcp://127.0.0.1:5555\"\n"
        "    upstream\n"
        "        rewarder\n"
        "            1 = tcp://127.0.0.1:6001\n"
        "            2 = tcp://127.0.0.1:6002\n"
        "    scorer\n"
        "        rater\n"
        "            alice\n"
        "                weight = 1.5\n"
        "            bob\n"
        "                weight = 2\n");
    char *error = NULL;
    qt_config_t *config = qt_config_open (path, &error);
    QT_CHECK (config);
    QT_CHECK (error == NULL);
    QT_CHECK (streq (qt_config_path (config), path));
    QT_CHECK (qt_config_error (config) == NULL);

    uint64_t replica, batch, missing;
    QT_CHECK (qt_config_uint (config, "quintet/replica", true, 0, 1, 16, &replica) == 0);
    QT_CHECK (replica == 1);
    QT_CHECK (qt_config_uint (config, "/quintet/batch", false, 32, 1, 4096, &batch) == 0);
    QT_CHECK (batch == 64);
    QT_CHECK (qt_config_uint (config, "quintet/absent", false, 7, 1, 10, &missing) == 0);
    QT_CHECK (missing == 7);
    double deadline;
    QT_CHECK (qt_config_double (config, "quintet/deadline", true, 0, 0.001, 60, &deadline) == 0);
    QT_CHECK (deadline == 0.25);
    bool verbose_flag, dry_run;
    QT_CHECK (qt_config_bool (config, "quintet/verbose", false, false, &verbose_flag) == 0);
    QT_CHECK (verbose_flag);
    QT_CHECK (qt_config_bool (config, "quintet/dry-run", false, false, &dry_run) == 0);
    QT_CHECK (!dry_run);
    const char *const modes [] = { "mean", "median", "quantile", NULL };
    int mode;
    QT_CHECK (qt_config_choice (config, "quintet/mode", modes, "mean", &mode) == 0);
    QT_CHECK (mode == 1);
    const char *endpoint, *name;
    QT_CHECK (qt_config_string (config, "quintet/endpoint", NULL, &endpoint) == 0);
    QT_CHECK (streq (endpoint, "tcp://127.0.0.1:5555"));
    QT_CHECK (qt_config_string (config, "quintet/name", "collector", &name) == 0);
    QT_CHECK (streq (name, "collector"));

    //  A section's children read by name
    zlist_t *rewarders = qt_config_children (config, "quintet/upstream/rewarder");
    QT_CHECK (zlist_size (rewarders) == 2);
    for (const char *item = (const char *) zlist_first (rewarders);
         item; item = (const char *) zlist_next (rewarders)) {
        char *key = zsys_sprintf ("quintet/upstream/rewarder/%s", item);
        QT_CHECK (qt_config_string (config, key, NULL, &endpoint) == 0);
        QT_CHECK (strncmp (endpoint, "tcp://", 6) == 0);
        zstr_free (&key);
    }
    zlist_destroy (&rewarders);

    //  Dynamic sub-sections read key by key, so typos inside are caught
    zlist_t *raters = qt_config_children (config, "quintet/scorer/rater");
    QT_CHECK (zlist_size (raters) == 2);
    double weight_sum = 0;
    for (const char *rater = (const char *) zlist_first (raters);
         rater; rater = (const char *) zlist_next (raters)) {
        char *key = zsys_sprintf ("quintet/scorer/rater/%s/weight", rater);
        double weight;
        QT_CHECK (qt_config_double (config, key, true, 0, 0, 10, &weight) == 0);
        weight_sum += weight;
        zstr_free (&key);
    }
    QT_CHECK (weight_sum == 3.5);
    zlist_destroy (&raters);
    zlist_t *none = qt_config_children (config, "quintet/nothing");
    QT_CHECK (zlist_size (none) == 0);
    zlist_destroy (&none);

    //  Everything in the file was read
    QT_CHECK (qt_config_check_unknown (config) == 0);
    qt_config_destroy (&config);
    qt_config_destroy (&config);
    QT_CHECK (config == NULL);
    unlink (path);
    zstr_free (&path);

    //  Missing file; a directory is not a config file
    path = zsys_sprintf ("%s/absent.conf", tmpdir);
    QT_CHECK (qt_config_open (path, &error) == NULL);
    QT_CHECK (strstr (error, path) == error);
    QT_CHECK (strstr (error, ": cannot open: No such file or directory"));
    zstr_free (&error);
    zstr_free (&path);
    QT_CHECK (qt_config_open (tmpdir, &error) == NULL);
    QT_CHECK (strstr (error, "not a regular file"));
    zstr_free (&error);
    QT_CHECK (qt_config_open (tmpdir, NULL) == NULL);

    //  Unparseable files name the line. (zconfig also prints a diagnostic
    //  on stdout, which a daemon can't silence; the test mutes it.)
    path = s_write (tmpdir, "bad.conf", "quintet\n    replica = 1\n   batch = 3\n");
    int saved_stdout = s_stdout_mute ();
    QT_CHECK (qt_config_open (path, &error) == NULL);
    s_stdout_restore (saved_stdout);
    QT_CHECK (strstr (error, ": line 3: not valid ZPL"));
    QT_CHECK (strstr (error, "\"   batch = 3\""));
    zstr_free (&error);
    unlink (path);
    zstr_free (&path);
    path = s_write (tmpdir, "tab.conf", "quintet\n\treplica = 1\n");
    saved_stdout = s_stdout_mute ();
    QT_CHECK (qt_config_open (path, &error) == NULL);
    s_stdout_restore (saved_stdout);
    QT_CHECK (strstr (error, ": line 2: not valid ZPL"));
    QT_CHECK (strstr (error, "\"?replica = 1\""));
    zstr_free (&error);
    unlink (path);
    zstr_free (&path);

    //  Duplicates would shadow each other; '/' in a name can't be looked up
    path = s_write (tmpdir, "dup.conf", "quintet\n    batch = 1\n    batch = 2\n");
    QT_CHECK (qt_config_open (path, &error) == NULL);
    QT_CHECK (strstr (error, ": quintet/batch: duplicate key"));
    zstr_free (&error);
    unlink (path);
    zstr_free (&path);
    path = s_write (tmpdir, "slash.conf", "quintet/batch = 1\n");
    QT_CHECK (qt_config_open (path, &error) == NULL);
    QT_CHECK (strstr (error, ": quintet/batch: '/' is not allowed in a name"));
    zstr_free (&error);
    unlink (path);
    zstr_free (&path);

    //  Missing required keys, of each type
    path = s_write (tmpdir, "empty.conf", "quintet\n    name =\n");
    config = qt_config_open (path, NULL);
    QT_CHECK (config);
    QT_CHECK (qt_config_uint (config, "quintet/replica", true, 9, 1, 16, &replica) == -1);
    QT_CHECK (replica == 0);
    s_assert_error (config, "quintet/replica: required key is missing "
                    "(expected an integer in [1, 16])");
    QT_CHECK (qt_config_double (config, "quintet/q", true, 0, 0, 1, &deadline) == -1);
    s_assert_error (config, "quintet/q: required key is missing "
                    "(expected a number in [0, 1])");
    QT_CHECK (qt_config_bool (config, "quintet/flag", true, false, &dry_run) == -1);
    QT_CHECK (qt_config_choice (config, "quintet/mode", modes, NULL, &mode) == -1);
    s_assert_error (config, "quintet/mode: required key is missing "
                    "(expected one of \"mean\", \"median\", \"quantile\")");
    QT_CHECK (qt_config_string (config, "quintet/key", NULL, &endpoint) == -1);
    s_assert_error (config, "quintet/key: required key is missing "
                    "(expected a non-empty string)");
    QT_CHECK (qt_config_string (config, "quintet/name", NULL, &endpoint) == -1);
    s_assert_error (config, "quintet/name: expected a non-empty string, got \"\"");
    qt_config_destroy (&config);
    unlink (path);
    zstr_free (&path);

    //  Integers: syntax, sign, overflow and range
    uint64_t result;
    QT_CHECK (s_try_uint (tmpdir, "4096", &result, &error) == 0);
    QT_CHECK (result == 4096);
    const char *bad_integers [] = {
        "abc", "-1", "+5", "12abc", "0x10", "1.5", "", "0", "4097",
        "99999999999999999999999", NULL
    };
    for (int i = 0; bad_integers [i]; i++) {
        QT_CHECK (s_try_uint (tmpdir, bad_integers [i], &result, &error) == -1);
        char *expected = zsys_sprintf ("%s/batch.conf: quintet/batch: expected an "
                                       "integer in [1, 4096], got \"%s\"",
                                       tmpdir, bad_integers [i]);
        QT_CHECK (streq (error, expected));
        zstr_free (&expected);
        zstr_free (&error);
    }

    //  Numbers, booleans and choices that don't fit
    path = s_write (tmpdir, "values.conf",
        "quintet\n"
        "    nan = nan\n"
        "    inf = -inf\n"
        "    huge = 1e400\n"
        "    far = 1.5\n"
        "    junk = 0.5x\n"
        "    flag = maybe\n"
        "    mode = mode\n");
    config = qt_config_open (path, NULL);
    QT_CHECK (config);
    const char *bad_numbers [] = { "nan", "inf", "huge", "far", "junk", NULL };
    for (int i = 0; bad_numbers [i]; i++) {
        char *key = zsys_sprintf ("quintet/%s", bad_numbers [i]);
        QT_CHECK (qt_config_double (config, key, false, 0.5, 0, 1, &deadline) == -1);
        QT_CHECK (deadline == 0.5);
        QT_CHECK (strstr (qt_config_error (config), "expected a finite number in [0, 1]"));
        zstr_free (&key);
    }
    s_assert_error (config, "quintet/junk: expected a finite number in [0, 1], got \"0.5x\"");
    QT_CHECK (qt_config_bool (config, "quintet/flag", false, true, &dry_run) == -1);
    QT_CHECK (dry_run);
    s_assert_error (config, "quintet/flag: expected true/false, yes/no or 1/0, got \"maybe\"");
    QT_CHECK (qt_config_choice (config, "quintet/mode", modes, "mean", &mode) == -1);
    QT_CHECK (mode == 0);
    s_assert_error (config, "quintet/mode: expected one of \"mean\", \"median\", "
                    "\"quantile\", got \"mode\"");
    qt_config_destroy (&config);
    unlink (path);
    zstr_free (&path);

    //  Unknown keys: a typo, an unread section, a key under a value, and a
    //  typo inside a dynamic sub-section
    path = s_write (tmpdir, "typo.conf",
        "quintet\n"
        "    bacth = 64\n"
        "    replica = 2\n"
        "        extra = 1\n"
        "    plugins\n"
        "        a = 1\n"
        "    scorer\n"
        "        rater\n"
        "            alice\n"
        "                wieght = 1\n");
    config = qt_config_open (path, NULL);
    QT_CHECK (config);
    QT_CHECK (qt_config_uint (config, "quintet/replica", true, 0, 1, 16, &replica) == 0);
    QT_CHECK (qt_config_uint (config, "quintet/batch", false, 32, 1, 4096, &batch) == 0);
    raters = qt_config_children (config, "quintet/scorer/rater");
    for (const char *rater = (const char *) zlist_first (raters);
         rater; rater = (const char *) zlist_next (raters)) {
        char *key = zsys_sprintf ("quintet/scorer/rater/%s/weight", rater);
        double weight;
        QT_CHECK (qt_config_double (config, key, false, 1, 0, 10, &weight) == 0);
        zstr_free (&key);
    }
    zlist_destroy (&raters);
    QT_CHECK (qt_config_check_unknown (config) == -1);
    s_assert_error (config, "unknown keys \"quintet/bacth\", \"quintet/replica/extra\", "
                    "\"quintet/plugins\", \"quintet/scorer/rater/alice/wieght\"");
    qt_config_destroy (&config);

    //  One unknown key, singular; reading the others clears them
    config = qt_config_open (path, NULL);
    QT_CHECK (qt_config_uint (config, "quintet/bacth", true, 0, 1, 4096, &batch) == 0);
    QT_CHECK (qt_config_uint (config, "quintet/replica", true, 0, 1, 16, &replica) == 0);
    QT_CHECK (qt_config_uint (config, "quintet/replica/extra", true, 0, 0, 16, &replica) == 0);
    double weight;
    QT_CHECK (qt_config_double (config, "quintet/scorer/rater/alice/wieght", true, 0, 0, 10,
                                &weight) == 0);
    QT_CHECK (qt_config_check_unknown (config) == -1);
    s_assert_error (config, "unknown key \"quintet/plugins\"");
    qt_config_destroy (&config);
    unlink (path);
    zstr_free (&path);
    //  @end

    QT_CHECK (rmdir (tmpdir) == 0);
    if (verbose)
        printf ("OK\n");
}
