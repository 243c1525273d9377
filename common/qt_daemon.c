/*  qt_daemon: the process concerns of every daemon (see the header).
*/
#include "quintet.h"
#include "qt_daemon.h"
#include "qt_selftest.h"
#include <getopt.h>

char *
qt_daemon_secret_path (const char *configured)
{
    const char *credentials = getenv ("CREDENTIALS_DIRECTORY");
    if (configured [0] != '/' && credentials && *credentials)
        return zsys_sprintf ("%s/%s", credentials, configured);
    return strdup (configured);
}

int
qt_daemon_mkdir_p (const char *path)
{
    char *copy = strdup (path);
    for (char *slash = strchr (copy + 1, '/'); slash; slash = strchr (slash + 1, '/')) {
        *slash = 0;
        if (mkdir (copy, 0750) == -1 && errno != EEXIST) {
            free (copy);
            return -1;
        }
        *slash = '/';
    }
    free (copy);
    return (mkdir (path, 0750) == -1 && errno != EEXIST) ? -1 : 0;
}

//  systemd notification from the stage's hooks (called in its thread;
//  sd_notify is safe there)
typedef struct {
    uint64_t watchdog_usec;
} s_notify_t;

static void
s_notify_ready (void *ctx)
{
    (void) ctx;
    qt_notify_ready ();
}

static void
s_notify_status (void *ctx, const qt_stage_status_t *status, const char *line)
{
    s_notify_t *notify = (s_notify_t *) ctx;
    qt_notify_status ("%s", line);
    if (notify->watchdog_usec > 0 && status->healthy)
        qt_notify_watchdog ();
}

static void
s_usage (const qt_role_t *role, FILE *out)
{
    fprintf (out,
        "Usage: quintet-%s --config FILE [--check] [--verbose]\n"
        "%s\n\n"
        "  -c, --config FILE   the replica's configuration (ZPL); see quintet(7)/README\n"
        "      --check         load and validate the configuration and keys, then exit\n"
        "      --byzantine MODE  lie (tests, fault injection):",
        role->role, role->summary);
    //  qt_byzantine's modes, wrapped as the lines above
    size_t column = 54;
    for (int mode = QT_BYZANTINE_HONEST + 1; mode < QT_BYZANTINE_MODES; mode++) {
        const char *name = qt_byzantine_mode_name ((qt_byzantine_mode_t) mode);
        if (column + 1 + strlen (name) > 88) {
            fprintf (out, "\n                     ");
            column = 21;
        }
        fprintf (out, " %s", name);
        column += 1 + strlen (name);
    }
    fprintf (out, "\n"
        "  -v, --verbose       log at debug level\n"
        "  -h, --help          this text\n"
        "      --version       print the version\n\n"
        "Publishes \"%s\"", role->topic);
    for (size_t i = 0; i < role->upstreams; i++)
        fprintf (out, "%s\"%s\" from %s", i ? ", " : "; consumes ", role->upstream [i].topic,
                 role->upstream [i].role);
    fprintf (out, ".\nSignals: SIGTERM/SIGINT stop cleanly. Exit status: 0 ok, 1 runtime error, 2 usage or configuration error.\n");
    if (role->usage)
        role->usage (out);
}

//  Runs the stage's actor until it stops (a fatal error, or an interrupt
//  seen in its thread) or this thread is interrupted; then the summary.
static int
s_run (qt_stage_t *stage)
{
    zactor_t *actor = zactor_new (qt_stage_actor, stage);
    char *event = zstr_recv (actor);        //  "STOPPED", or NULL: interrupted here
    zstr_free (&event);
    zactor_destroy (&actor);
    qt_notify_stopping ();
    qt_stage_status_t status;
    qt_stage_status (stage, &status);
    char line [QT_STAGE_STATUS_LINE], causes [QT_STAGE_STATUS_CAUSES];
    qt_stage_status_summary (&status, line, sizeof line, causes, sizeof causes);
    qt_log_event (LOG_NOTICE, QT_MSG_STOPPING, status.published_any ? status.tick : UINT64_MAX,
                  NULL, NULL, "%s", line);
    if (*causes)
        qt_log (LOG_NOTICE, "dropped by cause:%s", causes);
    return qt_stage_result (stage);
}

int
qt_stage_main (const qt_role_t *descriptor, int argc, char *argv [])
{
    qt_role_t filled;
    if (qt_stage_role_fill (descriptor, &filled)) {
        fprintf (stderr, "quintet-%s: role \"%s\" is not in the topology (common/topology.txt)\n",
                 descriptor->role, descriptor->role);
        return 2;
    }
    const qt_role_t *role = &filled;
    enum { OPT_CHECK = 256, OPT_VERSION, OPT_BYZANTINE };
    static const struct option options [] = {
        { "config", required_argument, NULL, 'c' },
        { "check", no_argument, NULL, OPT_CHECK },
        { "verbose", no_argument, NULL, 'v' },
        { "help", no_argument, NULL, 'h' },
        { "version", no_argument, NULL, OPT_VERSION },
        { "byzantine", required_argument, NULL, OPT_BYZANTINE },
        { NULL, 0, NULL, 0 }
    };
    const char *config_path = NULL;
    s_notify_t notify = { 0 };
    qt_stage_options_t stage_options = { .ready = s_notify_ready, .status = s_notify_status,
                                         .ctx = &notify };
    int option;
    while ((option = getopt_long (argc, argv, "c:vh", options, NULL)) != -1) {
        switch (option) {
            case 'c': config_path = optarg; break;
            case OPT_CHECK: stage_options.check = true; break;
            case 'v': stage_options.verbose = true; break;
            case 'h': s_usage (role, stdout); return 0;
            case OPT_VERSION: printf ("quintet-%s %s\n", role->role, QT_VERSION); return 0;
            case OPT_BYZANTINE:
                if (qt_byzantine_mode_parse (optarg, &stage_options.byzantine)) {
                    fprintf (stderr, "quintet-%s: --byzantine: unknown mode \"%s\"\n", role->role, optarg);
                    return 2;
                }
                break;
            default: s_usage (role, stderr); return 2;
        }
    }
    if (!config_path || optind < argc) {
        s_usage (role, stderr);
        return 2;
    }
    qt_log_init (role->role, 0);
    if (sodium_init () < 0) {
        qt_log (LOG_ERR, "libsodium failed to initialise");
        return 1;
    }
    zsys_init ();
    zsys_catch_interrupts ();       //  SIGINT/SIGTERM set zsys_interrupted; the actor ends
    qt_notify_watchdog_usec (&notify.watchdog_usec);
    stage_options.watchdog_usec = notify.watchdog_usec;

    qt_config_t *config = qt_config_load (config_path);
    if (!config)
        return 2;
    char *error = NULL;
    qt_stage_t *stage = qt_stage_new (descriptor, config, &stage_options, &error);
    if (!stage) {
        qt_log_event (LOG_ERR, QT_MSG_CONFIG_ERROR, UINT64_MAX, NULL, "config", "%s", error);
        zstr_free (&error);
        qt_config_destroy (&config);
        return 2;
    }
    int rc = 0;
    if (stage_options.check)
        printf ("%s: configuration and keys are valid\n", config_path);
    else
        rc = s_run (stage);
    qt_stage_destroy (&stage);
    qt_config_destroy (&config);
    return rc ? 1 : 0;
}

void
qt_daemon_test (bool verbose)
{
    if (verbose)
        printf (" * qt_daemon: ");
    //  A relative key is the credentials directory's when there is one
    char *saved = getenv ("CREDENTIALS_DIRECTORY") ? strdup (getenv ("CREDENTIALS_DIRECTORY")) : NULL;
    setenv ("CREDENTIALS_DIRECTORY", "/run/credentials/quintet-scorer@2.service", 1);
    char *path = qt_daemon_secret_path ("scorer-2.key");
    QT_CHECK (streq (path, "/run/credentials/quintet-scorer@2.service/scorer-2.key"));
    zstr_free (&path);
    path = qt_daemon_secret_path ("/etc/quintet/keys/scorer-2.key");
    QT_CHECK (streq (path, "/etc/quintet/keys/scorer-2.key"));
    zstr_free (&path);
    unsetenv ("CREDENTIALS_DIRECTORY");
    path = qt_daemon_secret_path ("keys/scorer-2.key");
    QT_CHECK (streq (path, "keys/scorer-2.key"));
    zstr_free (&path);
    if (saved) {
        setenv ("CREDENTIALS_DIRECTORY", saved, 1);
        free (saved);
    }
    //  A state directory with its parents, twice (the second finds it)
    char base [] = "/tmp/qt_daemon_test.XXXXXX";
    QT_CHECK (mkdtemp (base));
    char *deep = zsys_sprintf ("%s/a/b/c", base);
    QT_CHECK (qt_daemon_mkdir_p (deep) == 0);
    QT_CHECK (qt_daemon_mkdir_p (deep) == 0);
    QT_CHECK (zsys_file_exists (deep));
    char *file = zsys_sprintf ("%s/a/file", base);
    FILE *handle = fopen (file, "w");
    QT_CHECK (handle);
    fclose (handle);
    char *under_file = zsys_sprintf ("%s/x", file);
    QT_CHECK (qt_daemon_mkdir_p (under_file) == -1);
    unlink (file);
    rmdir (deep);
    char *b = zsys_sprintf ("%s/a/b", base);
    rmdir (b);
    char *a = zsys_sprintf ("%s/a", base);
    rmdir (a);
    rmdir (base);
    zstr_free (&a);
    zstr_free (&b);
    zstr_free (&under_file);
    zstr_free (&file);
    zstr_free (&deep);
    if (verbose)
        printf ("OK\n");
}
