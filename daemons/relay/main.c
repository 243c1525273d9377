/*  quintet-relay: process concerns only (flags, trust store, signals,
    metrics server, systemd notification); the relay lives in relay.c.

    Configured by flags, not a ZPL file: the relay has no key, no state and
    no role section, only endpoints and a few numbers, and its systemd unit
    passes them from an EnvironmentFile (deploy/systemd/quintet-relay.service.in).
    The upstream flags are the topology's: one --ROLE ENDPOINT (repeatable)
    per role publishing a topic of the dashboard line of common/topology.txt.
*/
#include <getopt.h>
#include <math.h>
#include "quintet.h"
#include "relay.h"

#define RELAY_MAX_FLAGS     32      //  fixed flags plus one per publishing role
#define RELAY_BATCH_MAX     4096    //  as the stages' (QT_STAGE_BATCH_MAX)

enum { OPT_TRUST = 256, OPT_BIND, OPT_INTERVAL, OPT_BATCH, OPT_SNDHWM, OPT_SNDBUF, OPT_METRICS,
       OPT_VERSION, OPT_CHECK, OPT_ROLE };

//  The roles publishing the dashboard's topics, each once, in the
//  topology's order of those topics; count in *roles
static void
s_publishers (const qt_topology_role_t **publishers, size_t *roles)
{
    *roles = 0;
    for (size_t i = 0; i < qt_topology_dashboard_topics (); i++) {
        const qt_topology_role_t *role = qt_topology_publisher (qt_topology_dashboard_topic_at (i));
        bool seen = false;
        for (size_t r = 0; r < *roles; r++)
            seen = seen || publishers [r] == role;
        if (role && !seen)
            publishers [(*roles)++] = role;
    }
}

static void
s_usage (FILE *out, const qt_topology_role_t **publishers, size_t roles)
{
    fprintf (out,
        "Usage: quintet-relay --trust-dir DIR --bind ENDPOINT [--ROLE ENDPOINT]... [options]\n"
        "The dashboard endpoint: verifies every message of the dashboard's topics (common/topology.txt)\n"
        "and re-publishes the original frames untouched on one XPUB, with a last-value cache.\n"
        "Forwards");
    for (size_t i = 0; i < qt_topology_dashboard_topics (); i++) {
        const char *topic = qt_topology_dashboard_topic_at (i);
        fprintf (out, "%s\"%s\" from %s%s", i ? ", " : " ", topic, qt_topology_publisher (topic)->name,
                 qt_topology_dashboard_conflated (topic) ? " (conflated)" : "");
    }
    fprintf (out, ".\n\n"
        "  --trust-dir DIR         the trust store (<role>-<replica>.pub)\n"
        "  --bind ENDPOINT         the dashboard endpoint, e.g. tcp://127.0.0.1:7900\n");
    for (size_t r = 0; r < roles; r++)
        fprintf (out, "  --%-12s ENDPOINT  one %s replica's endpoint (repeat for each)\n",
                 publishers [r]->name, publishers [r]->name);
    fprintf (out,
        "  --conflate-interval S   at most one message of a conflated topic per sender every S\n"
        "                          seconds, the latest (default %.1f)\n"
        "  --batch B               expected batch size (default: not checked)\n"
        "  --sndhwm N              messages queued per subscriber (default %d)\n"
        "  --sndbuf BYTES          kernel send buffer per subscriber (default %d)\n"
        "  --metrics-bind HOST:PORT  serve GET /metrics\n"
        "  --check                 check the flags and the trust store, bind nothing, exit\n"
        "  -v, --verbose           debug logging\n"
        "  -h, --help              this text\n"
        "      --version\n"
        "Signals: SIGTERM/SIGINT stop cleanly. Exit status: 0 ok, 1 runtime error, 2 usage error.\n",
        RELAY_CONFLATE_MS / 1000.0, RELAY_SNDHWM, RELAY_SNDBUF);
}

//  A whole number in [low, high] from text; -1 if it is not
static int
s_whole (const char *text, long low, long high, long *value)
{
    char *end = NULL;
    errno = 0;
    long parsed = strtol (text, &end, 10);
    if (errno || end == text || *end || parsed < low || parsed > high)
        return -1;
    *value = parsed;
    return 0;
}

int
main (int argc, char *argv [])
{
    const qt_topology_role_t *publishers [RELAY_MAX_FLAGS];
    size_t roles = 0;
    s_publishers (publishers, &roles);
    struct option options [RELAY_MAX_FLAGS] = {
        { "trust-dir", required_argument, NULL, OPT_TRUST },
        { "bind", required_argument, NULL, OPT_BIND },
        { "conflate-interval", required_argument, NULL, OPT_INTERVAL },
        { "batch", required_argument, NULL, OPT_BATCH },
        { "sndhwm", required_argument, NULL, OPT_SNDHWM },
        { "sndbuf", required_argument, NULL, OPT_SNDBUF },
        { "metrics-bind", required_argument, NULL, OPT_METRICS },
        { "verbose", no_argument, NULL, 'v' },
        { "help", no_argument, NULL, 'h' },
        { "version", no_argument, NULL, OPT_VERSION },
        { "check", no_argument, NULL, OPT_CHECK },
    };
    size_t fixed = 11;
    for (size_t r = 0; r < roles && fixed + r + 1 < RELAY_MAX_FLAGS; r++)
        options [fixed + r] = (struct option) { publishers [r]->name, required_argument, NULL,
                                                OPT_ROLE + (int) r };
    //  the rest of the array is zero: the terminating entry

    const char *trust_dir = NULL, *metrics_bind = NULL;
    relay_options_t relay = { .conflate_ms = RELAY_CONFLATE_MS, .sndhwm = RELAY_SNDHWM,
                              .sndbuf = RELAY_SNDBUF, .endpoints = zlist_new () };
    bool verbose = false, check = false;
    char *error = NULL;
    int option;
    while (!error && (option = getopt_long (argc, argv, "vh", options, NULL)) != -1) {
        long whole = 0;
        switch (option) {
            case OPT_TRUST: trust_dir = optarg; break;
            case OPT_BIND: relay.bind = optarg; break;
            case OPT_METRICS: metrics_bind = optarg; break;
            case OPT_INTERVAL: {
                char *end = NULL;
                double seconds = strtod (optarg, &end);
                if (end == optarg || *end || !isfinite (seconds) || seconds < 0 || seconds > 3600)
                    error = zsys_sprintf ("--conflate-interval: expected seconds in [0, 3600], got \"%s\"", optarg);
                relay.conflate_ms = (int64_t) llround (seconds * 1000);
                break;
            }
            case OPT_BATCH:
                if (s_whole (optarg, 1, RELAY_BATCH_MAX, &whole))
                    error = zsys_sprintf ("--batch: expected an integer in [1, %d], got \"%s\"", RELAY_BATCH_MAX, optarg);
                relay.batch = (size_t) whole;
                break;
            case OPT_SNDHWM:
                if (s_whole (optarg, 1, INT32_MAX, &whole))
                    error = zsys_sprintf ("--sndhwm: expected a positive integer, got \"%s\"", optarg);
                relay.sndhwm = (int) whole;
                break;
            case OPT_SNDBUF:
                if (s_whole (optarg, 0, INT32_MAX, &whole))
                    error = zsys_sprintf ("--sndbuf: expected bytes (0: the system's default), got \"%s\"", optarg);
                relay.sndbuf = (int) whole;
                break;
            case 'v': verbose = true; break;
            case OPT_CHECK: check = true; break;
            case 'h': s_usage (stdout, publishers, roles); zlist_destroy (&relay.endpoints); return 0;
            case OPT_VERSION: printf ("quintet-relay %s\n", QT_VERSION); zlist_destroy (&relay.endpoints); return 0;
            default:
                if (option >= OPT_ROLE && option < OPT_ROLE + (int) roles) {
                    if (qt_transport_check_endpoint (optarg, &error) == 0)
                        zlist_append (relay.endpoints, optarg);
                    break;
                }
                s_usage (stderr, publishers, roles);
                zlist_destroy (&relay.endpoints);
                return 2;
        }
    }
    if (!error && (!trust_dir || !relay.bind || optind < argc))
        error = strdup ("--trust-dir and --bind are required, and nothing else (--help)");
    if (!error && zlist_size (relay.endpoints) == 0)
        error = strdup ("nothing to relay: give the publishers' endpoints (--help)");
    if (!error)
        qt_transport_check_endpoint (relay.bind, &error);
    if (!error && metrics_bind)
        qt_metrics_check_bind (metrics_bind, &error);
    qt_log_init ("relay", QT_LOG_NO_REPLICA);
    if (verbose)
        qt_log_set_level (LOG_DEBUG);
    if (error) {
        qt_log_event (LOG_ERR, QT_MSG_CONFIG_ERROR, QT_LOG_NO_TICK, NULL, "config", "%s", error);
        zstr_free (&error);
        zlist_destroy (&relay.endpoints);
        return 2;
    }
    if (sodium_init () < 0) {
        qt_log (LOG_ERR, "libsodium failed to initialise");
        zlist_destroy (&relay.endpoints);
        return 1;
    }
    zsys_init ();
    zsys_catch_interrupts ();       //  SIGINT/SIGTERM set zsys_interrupted: main stops the actor
    relay.trust = qt_trust_load (trust_dir, &error);
    if (!relay.trust) {
        qt_log_event (LOG_ERR, QT_MSG_CONFIG_ERROR, QT_LOG_NO_TICK, NULL, "config", "%s: %s",
                      trust_dir, error ? error : "cannot load the trust store");
        zstr_free (&error);
        zlist_destroy (&relay.endpoints);
        return 2;
    }
    if (check) {
        printf ("quintet-relay: flags and trust store (%zu keys) are valid\n", qt_trust_size (relay.trust));
        qt_trust_destroy (&relay.trust);
        zlist_destroy (&relay.endpoints);
        return 0;
    }
    relay.metrics = qt_metrics_new ();
    zactor_t *actor = zactor_new (relay_actor, &relay);
    char *started = zstr_recv (actor);
    int rc = 0;
    if (!started || strncmp (started, "READY ", 6) != 0) {
        qt_log_event (LOG_ERR, QT_MSG_CONFIG_ERROR, QT_LOG_NO_TICK, NULL, "config", "%s",
                      started ? started + strlen ("ERROR ") : "the relay did not start");
        rc = 2;
    }
    else
    if (metrics_bind && qt_metrics_serve (relay.metrics, metrics_bind, &error)) {
        qt_log_event (LOG_ERR, QT_MSG_CONFIG_ERROR, QT_LOG_NO_TICK, NULL, "config",
                      "--metrics-bind: %s", error);
        zstr_free (&error);
        rc = 2;
    }
    if (rc == 0) {
        qt_log_event (LOG_NOTICE, QT_MSG_STARTED, QT_LOG_NO_TICK, NULL, NULL,
                      "publishing on %s, %zu upstream endpoints, %zu keys trusted%s%s",
                      started + strlen ("READY "), zlist_size (relay.endpoints),
                      qt_trust_size (relay.trust), metrics_bind ? ", metrics on " : "",
                      metrics_bind ? metrics_bind : "");
        qt_notify_ready ();
        //  The actor ends only on $TERM: a message from it now is unexpected
        zpoller_t *poller = zpoller_new (actor, NULL);
        while (!zsys_interrupted && !zpoller_wait (poller, RELAY_STATUS_MS))
            ;
        zpoller_destroy (&poller);
        qt_notify_stopping ();
    }
    zstr_free (&started);
    zactor_destroy (&actor);
    qt_metrics_destroy (&relay.metrics);
    qt_trust_destroy (&relay.trust);
    zlist_destroy (&relay.endpoints);
    return rc;
}
