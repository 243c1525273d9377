/*  quintetctl: the operator's command line for a quintet deployment.

    keygen     writes the Ed25519 keys of a topology: the trust store
               (<dir>/trust/<role>-<replica>.pub) and one secret key per
               replica (<dir>/keys/<role>-<replica>.key, mode 0600), the
               names the daemons' secret_key/trust_dir settings and systemd's
               LoadCredential= expect.
    endpoints  prints the publish endpoint of every replica of a deployment,
               from its per-replica config files (--config-dir, or the demo's
               --state-dir, whose configs are in etc/).
    status     asks every daemon of a deployment, over the authenticated
               control channel (qt_control), for its state and counters.
    log        lists the rows of a collector's durable log (qt_store, opened
               read-only beside the running collector).
    topology   prints the roles, topics and Byzantine modes as JSON.
    config     prints values of a daemon config, as the daemons read it.
*/
#include "quintet.h"
#include "qt_env.h"
#include <getopt.h>

#define S_DEFAULT_REPLICAS  3
#define S_MAX_REPLICAS      QT_QUORUM_MAX_REPLICAS
#define S_MAX_RATERS        256     //  RT_MAX_RATERS: rater ids 1..256

static void
s_usage (FILE *out)
{
    fprintf (out,
        "Usage: quintetctl COMMAND [OPTIONS]\n\n"
        "Commands:\n"
        "  keygen --dir DIR [--replicas N] [--raters R] [--role ROLE=N]... [--force]\n"
        "      Generate keys for the world, the raters daemon and control (1 each), N\n"
        "      replicas (default %d) of every pipeline role, and R people (rater-1..R,\n"
        "      default 0: the raters daemon's key_dir); --role overrides one role's count.\n"
        "      Writes DIR/trust/*.pub and DIR/keys/*.key (0600). Refuses to overwrite\n"
        "      existing keys without --force.\n"
        "  endpoints (--state-dir DIR | --config-dir DIR) [--json]\n"
        "      Print every replica's publish endpoint: the quintet/bind of each *.conf in\n"
        "      a config directory; --state-dir DIR means DIR/etc (the demo's layout).\n"
        "  status (--state-dir DIR | --config-dir DIR --key FILE --trust DIR) [--json]\n"
        "         [--timeout MS]\n"
        "      Ask every daemon whose config sets quintet/control_bind for role, replica,\n"
        "      state, tick, upstream replicas up/heard, drops by cause (control/CAUSE: the\n"
        "      control channel's), reputation (upstream\n"
        "      replicas warned, down-weighted or excluded) and what it says of itself\n"
        "      (details: its subscriptions, what the scorer learned...); print a table\n"
        "      (details indented under their replica) or JSON. Requests are signed\n"
        "      with a control key (keygen writes control-1),\n"
        "      replies are verified against the trust store. --state-dir DIR means\n"
        "      DIR/etc, DIR/keys/control-1.key and DIR/trust (the demo's layout).\n"
        "      Exit 1 if any daemon did not answer.\n"
        "  log FILE [--from INDEX] [--count N] [--json]\n"
        "      List the rows of a collector's durable log (its state_dir's readings.sqlite\n"
        "      or judgments.sqlite), opened read-only beside the running collector: index,\n"
        "      tick, topic and payload bytes, from row INDEX on (default the first), at most\n"
        "      N rows (default all); each row's digest is checked. Exit 1 on a damaged row\n"
        "      (the rows before it are listed).\n"
        "  envs\n"
        "      Print the registered environments as a JSON list (the first is the default).\n"
        "  aggregations\n"
        "      Print the aggregator's rules (quintet/aggregator/aggregation) and\n"
        "      pre-aggregations (pre_aggregation) as JSON, the defaults first.\n"
        "  topology [--json]\n"
        "      Print the pipeline's topology as JSON (common/topology.txt): its topics, its\n"
        "      roles in pipeline order (topic, payload type, replicated or single, upstreams\n"
        "      as role and topic, side topics) and the Byzantine modes of --byzantine, value\n"
        "      attacks and protocol faults.\n"
        "  config FILE KEY...\n"
        "      Print each KEY's value in a daemon config (ZPL, as the daemons read it), one\n"
        "      a line, e.g. quintet/upstream/collector/faults. Exit 1 if one has none.\n"
        "  env NAME [--variant V]\n"
        "      Print an environment's declaration as JSON: its features with the weights of\n"
        "      its hidden performance, sensors, variants, tamper styles, references.\n"
        "  help, --help\n"
        "      This text.\n\n"
        "Exit status: 0 ok, 1 failure, 2 usage error.\n", S_DEFAULT_REPLICAS);
}

static int
s_mkdir (const char *path, mode_t mode)
{
    if (mkdir (path, mode) == -1 && errno != EEXIST) {
        fprintf (stderr, "quintetctl: cannot create %s: %s\n", path, strerror (errno));
        return -1;
    }
    return 0;
}

//  Roles that run as one process whatever the replication: the topology's
//  single roles, and the operator
static bool
s_single_role (const char *role)
{
    const qt_topology_role_t *topology = qt_topology_role (role);
    return topology ? !topology->replicated : streq (role, "control");
}

static int
s_keygen (int argc, char *argv [])
{
    static const struct option options [] = {
        { "dir", required_argument, NULL, 'd' },
        { "replicas", required_argument, NULL, 'n' },
        { "role", required_argument, NULL, 'r' },
        { "raters", required_argument, NULL, 'R' },
        { "force", no_argument, NULL, 'f' },
        { NULL, 0, NULL, 0 }
    };
    const char *dir = NULL;
    bool force = false;
    long counts [16];
    size_t roles = 0;
    while (qt_roles [roles])
        roles++;
    //  One process each: the world, the people's daemon, the operator; the
    //  people themselves only when asked (--raters)
    for (size_t i = 0; i < roles; i++)
        counts [i] = s_single_role (qt_roles [i]) ? 1
                   : streq (qt_roles [i], QT_RATER_ROLE) ? 0 : S_DEFAULT_REPLICAS;
    int option;
    while ((option = getopt_long (argc, argv, "d:n:r:R:f", options, NULL)) != -1) {
        if (option == 'd')
            dir = optarg;
        else
        if (option == 'f')
            force = true;
        else
        if (option == 'n') {
            long n = strtol (optarg, NULL, 10);
            if (n < 1 || n > S_MAX_REPLICAS) {
                fprintf (stderr, "quintetctl keygen: --replicas: expected 1..%d, got \"%s\"\n", S_MAX_REPLICAS, optarg);
                return 2;
            }
            for (size_t i = 0; i < roles; i++)
                if (!s_single_role (qt_roles [i]) && strneq (qt_roles [i], QT_RATER_ROLE))
                    counts [i] = n;
        }
        else
        if (option == 'R') {
            char *end = NULL;
            long n = strtol (optarg, &end, 10);
            if (end == optarg || *end || n < 0 || n > S_MAX_RATERS) {
                fprintf (stderr, "quintetctl keygen: --raters: expected 0..%d, got \"%s\"\n", S_MAX_RATERS, optarg);
                return 2;
            }
            for (size_t i = 0; i < roles; i++)
                if (streq (qt_roles [i], QT_RATER_ROLE))
                    counts [i] = n;
        }
        else
        if (option == 'r') {
            char *equals = strchr (optarg, '=');
            bool found = false;
            long n = equals ? strtol (equals + 1, NULL, 10) : 0;
            long most = S_MAX_REPLICAS;
            for (size_t i = 0; equals && i < roles; i++)
                if (strlen (qt_roles [i]) == (size_t) (equals - optarg)
                &&  strncmp (qt_roles [i], optarg, (size_t) (equals - optarg)) == 0) {
                    counts [i] = n;
                    found = true;
                    if (streq (qt_roles [i], QT_RATER_ROLE))
                        most = S_MAX_RATERS;
                }
            if (!found || n < 0 || n > most) {
                fprintf (stderr, "quintetctl keygen: --role: expected ROLE=N with a known role and 0..%d, got \"%s\"\n",
                         S_MAX_REPLICAS, optarg);
                return 2;
            }
        }
        else
            return 2;
    }
    if (!dir) {
        fprintf (stderr, "quintetctl keygen: --dir is required\n");
        return 2;
    }
    char *trust = zsys_sprintf ("%s/trust", dir);
    char *keys = zsys_sprintf ("%s/keys", dir);
    int rc = (s_mkdir (dir, 0755) || s_mkdir (trust, 0755) || s_mkdir (keys, 0700)) ? 1 : 0;
    size_t written = 0;
    for (size_t i = 0; i < roles && rc == 0; i++)
        for (long r = 1; r <= counts [i] && rc == 0; r++) {
            char *secret = zsys_sprintf ("%s/%s-%ld.key", keys, qt_roles [i], r);
            char *public = zsys_sprintf ("%s/%s-%ld.pub", trust, qt_roles [i], r);
            if (!force && access (secret, F_OK) == 0) {
                fprintf (stderr, "quintetctl keygen: %s exists; use --force to replace it\n", secret);
                rc = 1;
            }
            else {
                qt_keypair_t *pair = qt_keypair_generate (qt_roles [i], (uint32_t) r);
                if (qt_keypair_save (pair, secret, public)) {
                    fprintf (stderr, "quintetctl keygen: cannot write %s: %s\n", secret, strerror (errno));
                    rc = 1;
                }
                else
                    written++;
                qt_keypair_destroy (&pair);
            }
            zstr_free (&secret);
            zstr_free (&public);
        }
    if (rc == 0)
        printf ("wrote %zu key pairs: secret keys in %s, trust store in %s\n", written, keys, trust);
    zstr_free (&trust);
    zstr_free (&keys);
    return rc;
}

static int
s_endpoints_configs (const char *config_dir, bool json)
{
    zdir_t *dir = zdir_new (config_dir, NULL);
    if (!dir) {
        fprintf (stderr, "quintetctl endpoints: cannot read directory %s\n", config_dir);
        return 1;
    }
    zlist_t *files = zdir_list (dir);
    if (!json)
        printf ("%-12s %-8s %s\n", "ROLE", "REPLICA", "ENDPOINT");
    else
        printf ("[");
    int rc = 0, printed = 0;
    for (zfile_t *file = (zfile_t *) zlist_first (files); file; file = (zfile_t *) zlist_next (files)) {
        const char *name = zfile_filename (file, NULL);
        size_t len = strlen (name);
        if (len < 5 || strcmp (name + len - 5, ".conf") != 0)
            continue;
        char *error = NULL;
        qt_config_t *config = qt_config_open (name, &error);
        const char *role = NULL, *bind = NULL;
        uint64_t replica = 0;
        if (!config
        ||  qt_config_string (config, "quintet/role", NULL, &role)
        ||  qt_config_uint (config, "quintet/replica", true, 0, 0, UINT32_MAX, &replica)
        ||  qt_config_string (config, "quintet/bind", NULL, &bind)) {
            fprintf (stderr, "quintetctl endpoints: %s\n", config ? qt_config_error (config) : error);
            rc = 1;
        }
        else
        if (json)
            printf ("%s{\"role\": \"%s\", \"replica\": %" PRIu64 ", \"endpoint\": \"%s\"}",
                    printed++ ? ", " : "", role, replica, bind);
        else
            printf ("%-12s %-8" PRIu64 " %s\n", role, replica, bind);
        zstr_free (&error);
        qt_config_destroy (&config);
    }
    if (json)
        printf ("]\n");
    zlist_destroy (&files);
    zdir_destroy (&dir);
    return rc;
}

static int
s_endpoints (int argc, char *argv [])
{
    static const struct option options [] = {
        { "state-dir", required_argument, NULL, 's' },
        { "config-dir", required_argument, NULL, 'c' },
        { "json", no_argument, NULL, 'j' },
        { NULL, 0, NULL, 0 }
    };
    const char *state_dir = NULL, *config_dir = NULL;
    bool json = false;
    int option;
    while ((option = getopt_long (argc, argv, "s:c:j", options, NULL)) != -1) {
        if (option == 's')
            state_dir = optarg;
        else
        if (option == 'c')
            config_dir = optarg;
        else
        if (option == 'j')
            json = true;
        else
            return 2;
    }
    if (!state_dir == !config_dir) {
        fprintf (stderr, "quintetctl endpoints: give one of --state-dir or --config-dir\n");
        return 2;
    }
    //  A deployment's configs are the one source: the demo's state dir keeps
    //  them in etc/, as endpoints.json's source
    char *owned = state_dir ? zsys_sprintf ("%s/etc", state_dir) : NULL;
    int rc = s_endpoints_configs (owned ? owned : config_dir, json);
    zstr_free (&owned);
    return rc;
}

//  One daemon to ask: from its config file
typedef struct {
    char *name;                     //  <role>-<replica>
    char *role;
    uint32_t replica;
    char *endpoint;                 //  control endpoint to connect to, or NULL
    zsock_t *socket;
    uint8_t nonce [QT_CONTROL_NONCE_SIZE];
    qt_message_t *answer;           //  the verified reply
    const Quintet__ControlReply *reply;
    const char *problem;            //  why there is no reply
} s_target_t;

static void
s_target_destroy (s_target_t **self_p)
{
    s_target_t *self = *self_p;
    if (!self)
        return;
    zstr_free (&self->name);
    zstr_free (&self->role);
    zstr_free (&self->endpoint);
    zsock_destroy (&self->socket);
    qt_message_destroy (&self->answer);
    free (self);
    *self_p = NULL;
}

//  A wildcard bind address is reached on loopback
static char *
s_connect_endpoint (const char *bind)
{
    if (strncmp (bind, "tcp://0.0.0.0:", 14) == 0)
        return zsys_sprintf ("tcp://127.0.0.1:%s", bind + 14);
    if (strncmp (bind, "tcp://*:", 8) == 0)
        return zsys_sprintf ("tcp://127.0.0.1:%s", bind + 8);
    return strdup (bind);
}

//  Every *.conf of a directory, in name order
static zlist_t *
s_targets (const char *config_dir, int *rc)
{
    zlist_t *targets = zlist_new ();
    zdir_t *dir = zdir_new (config_dir, NULL);
    if (!dir) {
        fprintf (stderr, "quintetctl status: cannot read directory %s\n", config_dir);
        *rc = 1;
        return targets;
    }
    zlist_t *files = zdir_list (dir);
    zlist_t *names = zlist_new ();
    zlist_autofree (names);
    for (zfile_t *file = (zfile_t *) zlist_first (files); file; file = (zfile_t *) zlist_next (files)) {
        const char *name = zfile_filename (file, NULL);
        size_t len = strlen (name);
        if (len >= 5 && strcmp (name + len - 5, ".conf") == 0)
            zlist_append (names, (void *) name);
    }
    zlist_sort (names, (zlist_compare_fn *) strcmp);
    for (char *name = (char *) zlist_first (names); name; name = (char *) zlist_next (names)) {
        char *error = NULL;
        qt_config_t *config = qt_config_open (name, &error);
        const char *role = NULL, *bind = NULL;
        uint64_t replica = 0;
        if (!config
        ||  qt_config_string (config, "quintet/role", NULL, &role)
        ||  qt_config_uint (config, "quintet/replica", true, 0, 1, QT_QUORUM_MAX_REPLICAS, &replica)
        ||  qt_config_string (config, "quintet/control_bind", "", &bind)) {
            fprintf (stderr, "quintetctl status: %s\n", config ? qt_config_error (config) : error);
            *rc = 1;
        }
        else {
            s_target_t *target = (s_target_t *) zmalloc (sizeof (s_target_t));
            target->name = zsys_sprintf ("%s-%u", role, (unsigned) replica);
            target->role = strdup (role);
            target->replica = (uint32_t) replica;
            if (*bind)
                target->endpoint = s_connect_endpoint (bind);
            else
                target->problem = "no quintet/control_bind";
            zlist_append (targets, target);
        }
        zstr_free (&error);
        qt_config_destroy (&config);
    }
    zlist_destroy (&names);
    zlist_destroy (&files);
    zdir_destroy (&dir);
    return targets;
}

static const char *
s_state_word (const s_target_t *target)
{
    return target->reply ? target->reply->state : target->problem ? target->problem : "no reply";
}

static void
s_print_table (zlist_t *targets)
{
    printf ("%-14s %-30s %10s %10s  %-34s %-24s %s\n", "REPLICA", "STATE", "TICK", "TICKS",
            "UPSTREAM (up/heard/n, f)", "DROPS", "REPUTATION");
    for (s_target_t *t = (s_target_t *) zlist_first (targets); t; t = (s_target_t *) zlist_next (targets)) {
        if (!t->reply) {
            printf ("%-14s %-30s %10s %10s  %-34s %-24s %s\n", t->name, s_state_word (t), "-", "-", "-",
                    "-", "-");
            continue;
        }
        const Quintet__ControlReply *r = t->reply;
        char upstream [256] = "", drops [256] = "";
        size_t used = 0;
        for (size_t i = 0; i < r->n_upstreams && used < sizeof upstream; i++)
            used += (size_t) snprintf (upstream + used, sizeof upstream - used, "%s%s %u/%u/%u f=%u",
                                       i ? ", " : "", r->upstreams [i]->role, r->upstreams [i]->up,
                                       r->upstreams [i]->heard, r->upstreams [i]->replicas,
                                       r->upstreams [i]->faults);
        used = 0;
        for (size_t i = 0; i < r->n_drops && used < sizeof drops; i++)
            used += (size_t) snprintf (drops + used, sizeof drops - used, "%s%s=%" PRIu64,
                                       i ? " " : "", r->drops [i]->cause, r->drops [i]->count);
        //  Reputation: the upstream replicas that are not ok, with their weight
        char reputation [256] = "";
        used = 0;
        for (size_t i = 0; i < r->n_upstreams && used < sizeof reputation; i++) {
            const Quintet__UpstreamStatus *u = r->upstreams [i];
            for (size_t k = 0; k < u->n_replica_status && used < sizeof reputation; k++)
                if (strneq (u->replica_status [k], "ok"))
                    used += (size_t) snprintf (reputation + used, sizeof reputation - used,
                                               "%s%s-%zu %s (w %g)", used ? ", " : "", u->role, k + 1,
                                               u->replica_status [k],
                                               k < u->n_replica_weight ? u->replica_weight [k] : 1.0);
        }
        printf ("%-14s %-30s %10" PRIu64 " %10" PRIu64 "  %-34s %-24s %s\n", t->name, r->state, r->tick,
                r->ticks, upstream, *drops ? drops : "0", *reputation ? reputation : "ok");
        //  What the daemon says of itself (its subscriptions, what it
        //  learned...), indented under its row
        for (size_t i = 0; i < r->n_details; i++)
            printf ("    %-36s %s\n", r->details [i]->name, r->details [i]->value);
    }
}

//  A JSON string of our own daemons' text: quotes, backslashes and control
//  characters escaped
static void
s_print_json_string (const char *text)
{
    putchar ('"');
    for (const char *c = text ? text : ""; *c; c++)
        if (*c == '"' || *c == '\\')
            printf ("\\%c", *c);
        else
        if ((unsigned char) *c < 0x20)
            printf ("\\u%04x", (unsigned char) *c);
        else
            putchar (*c);
    putchar ('"');
}

static bool
s_is_control_drop (const char *cause)
{
    return strncmp (cause, QT_CONTROL_DROP_PREFIX, strlen (QT_CONTROL_DROP_PREFIX)) == 0;
}

//  One JSON object's members: the drops of the data path or of the control
//  channel (without the prefix)
static void
s_print_drops (const Quintet__ControlReply *r, bool control)
{
    int printed = 0;
    for (size_t i = 0; i < r->n_drops; i++) {
        const char *cause = r->drops [i]->cause;
        if (s_is_control_drop (cause) != control)
            continue;
        printf ("%s\"%s\": %" PRIu64, printed++ ? ", " : "",
                control ? cause + strlen (QT_CONTROL_DROP_PREFIX) : cause, r->drops [i]->count);
    }
}

static void
s_print_json (zlist_t *targets)
{
    printf ("[");
    int n = 0;
    for (s_target_t *t = (s_target_t *) zlist_first (targets); t; t = (s_target_t *) zlist_next (targets)) {
        printf ("%s\n  {\"name\": \"%s\", \"role\": \"%s\", \"replica\": %u, \"answered\": %s, "
                "\"state\": \"%s\"", n++ ? "," : "", t->name, t->role, t->replica,
                t->reply ? "true" : "false", s_state_word (t));
        const Quintet__ControlReply *r = t->reply;
        if (r) {
            printf (", \"tick\": %" PRIu64 ", \"ticks\": %" PRIu64 ", \"accepted\": %" PRIu64
                    ", \"resends\": %" PRIu64 ", \"endpoint\": \"%s\", \"upstreams\": [",
                    r->tick, r->ticks, r->accepted, r->resends, r->endpoint);
            for (size_t i = 0; i < r->n_upstreams; i++) {
                const Quintet__UpstreamStatus *u = r->upstreams [i];
                printf ("%s{\"role\": \"%s\", \"replicas\": %u, \"faults\": %u, \"up\": %u, "
                        "\"heard\": %u, \"replica_up\": [", i ? ", " : "", u->role, u->replicas,
                        u->faults, u->up, u->heard);
                for (size_t k = 0; k < u->n_replica_up; k++)
                    printf ("%s%s", k ? ", " : "", u->replica_up [k] ? "true" : "false");
                printf ("], \"reputation\": [");
                for (size_t k = 0; k < u->n_replica_status; k++) {
                    printf ("%s{\"replica\": %zu, \"status\": \"%s\", \"weight\": %g, \"reason\": \"",
                            k ? ", " : "", k + 1, u->replica_status [k],
                            k < u->n_replica_weight ? u->replica_weight [k] : 1.0);
                    //  Reasons are our own text, but escape what JSON requires anyway
                    for (const char *c = k < u->n_replica_reason ? u->replica_reason [k] : ""; *c; c++)
                        if (*c == '"' || *c == '\\')
                            printf ("\\%c", *c);
                        else
                        if ((unsigned char) *c >= 0x20)
                            putchar (*c);
                    printf ("\"}");
                }
                printf ("]}");
            }
            //  The data path's drops, and the control channel's apart
            //  (ControlReply.drops holds those as "control/<cause>")
            printf ("], \"drops\": {");
            s_print_drops (r, false);
            printf ("}, \"control_drops\": {");
            s_print_drops (r, true);
            printf ("}, \"details\": [");
            for (size_t i = 0; i < r->n_details; i++) {
                printf ("%s{\"name\": ", i ? ", " : "");
                s_print_json_string (r->details [i]->name);
                printf (", \"value\": ");
                s_print_json_string (r->details [i]->value);
                printf ("}");
            }
            printf ("]");
        }
        printf ("}");
    }
    printf ("\n]\n");
}

static int
s_status (int argc, char *argv [])
{
    static const struct option options [] = {
        { "state-dir", required_argument, NULL, 's' },
        { "config-dir", required_argument, NULL, 'c' },
        { "key", required_argument, NULL, 'k' },
        { "trust", required_argument, NULL, 't' },
        { "json", no_argument, NULL, 'j' },
        { "timeout", required_argument, NULL, 'T' },
        { NULL, 0, NULL, 0 }
    };
    const char *state_dir = NULL, *config_dir = NULL, *key = NULL, *trust_dir = NULL;
    bool json = false;
    long timeout_ms = QT_CONTROL_TIMEOUT_MS;
    int option;
    while ((option = getopt_long (argc, argv, "s:c:k:t:jT:", options, NULL)) != -1) {
        switch (option) {
            case 's': state_dir = optarg; break;
            case 'c': config_dir = optarg; break;
            case 'k': key = optarg; break;
            case 't': trust_dir = optarg; break;
            case 'j': json = true; break;
            case 'T':
                timeout_ms = strtol (optarg, NULL, 10);
                if (timeout_ms < 1 || timeout_ms > 600000) {
                    fprintf (stderr, "quintetctl status: --timeout: expected 1..600000 ms, got \"%s\"\n", optarg);
                    return 2;
                }
                break;
            default: return 2;
        }
    }
    if (!state_dir == !config_dir || (config_dir && (!key || !trust_dir))) {
        fprintf (stderr, "quintetctl status: give --state-dir DIR, or --config-dir DIR --key FILE --trust DIR\n");
        return 2;
    }
    char *owned_config = state_dir ? zsys_sprintf ("%s/etc", state_dir) : NULL;
    char *owned_key = state_dir && !key ? zsys_sprintf ("%s/keys/control-1.key", state_dir) : NULL;
    char *owned_trust = state_dir && !trust_dir ? zsys_sprintf ("%s/trust", state_dir) : NULL;
    if (state_dir) {
        config_dir = owned_config;
        key = key ? key : owned_key;
        trust_dir = trust_dir ? trust_dir : owned_trust;
    }
    int rc = 0;
    char *error = NULL;
    qt_keypair_t *pair = qt_keypair_load (key, QT_CONTROL_ROLE, 1, &error);
    qt_trust_t *trust = pair ? qt_trust_load (trust_dir, &error) : NULL;
    zlist_t *targets = NULL;
    if (!trust) {
        fprintf (stderr, "quintetctl status: %s\n", error);
        zstr_free (&error);
        qt_keypair_destroy (&pair);
        rc = 1;
        goto done;
    }
    qt_signer_t *signer = qt_signer_new (&pair);
    qt_verifier_t *verifier = qt_verifier_new (trust, 0);
    targets = s_targets (config_dir, &rc);

    //  Ask everyone at once, then wait for the answers until the deadline
    zpoller_t *poller = zpoller_new (NULL);
    size_t pending = 0;
    for (s_target_t *t = (s_target_t *) zlist_first (targets); t; t = (s_target_t *) zlist_next (targets)) {
        if (!t->endpoint)
            continue;
        t->socket = zsock_new (ZMQ_REQ);
        zsock_set_linger (t->socket, 0);
        zsock_set_maxmsgsize (t->socket, QT_MESSAGE_SIZE_CAP);
        if (zsock_connect (t->socket, "%s", t->endpoint) == -1) {
            t->problem = "bad control endpoint";
            continue;
        }
        zframe_t *request = qt_control_request (signer, "status", t->role, t->replica, t->nonce);
        zframe_send (&request, t->socket, 0);
        zpoller_add (poller, t->socket);
        pending++;
    }
    int64_t deadline = zclock_mono () + timeout_ms;
    while (pending > 0) {
        int64_t left = deadline - zclock_mono ();
        if (left <= 0)
            break;
        zsock_t *which = (zsock_t *) zpoller_wait (poller, (int) left);
        if (!which)
            break;
        for (s_target_t *t = (s_target_t *) zlist_first (targets); t; t = (s_target_t *) zlist_next (targets)) {
            if (t->socket != which)
                continue;
            zframe_t *frame = zframe_recv (which);
            qt_drop_cause_t cause = QT_DROP_NONE;
            t->answer = frame ? qt_verifier_open (verifier, QT_CONTROL_TOPIC, t->role, zframe_data (frame),
                                                  zframe_size (frame), &cause) : NULL;
            t->reply = qt_control_reply_of (t->answer, t->nonce);
            if (t->reply && t->answer->sender->replica != t->replica)
                t->reply = NULL;
            if (!t->reply)
                t->problem = "reply failed verification";
            zframe_destroy (&frame);
            zpoller_remove (poller, which);
            pending--;
        }
    }
    zpoller_destroy (&poller);
    if (json)
        s_print_json (targets);
    else
        s_print_table (targets);
    for (s_target_t *t = (s_target_t *) zlist_first (targets); t; t = (s_target_t *) zlist_next (targets))
        if (!t->reply)
            rc = 1;
    qt_verifier_destroy (&verifier);
    qt_signer_destroy (&signer);
    qt_trust_destroy (&trust);
done:
    if (targets) {
        s_target_t *t;
        while ((t = (s_target_t *) zlist_pop (targets)))
            s_target_destroy (&t);
        zlist_destroy (&targets);
    }
    zstr_free (&owned_config);
    zstr_free (&owned_key);
    zstr_free (&owned_trust);
    return rc;
}

//  quintetctl config FILE KEY...: each key's value, one a line, as the
//  daemons' loader (qt_config) reads the file; exit 1 if one is missing
static int
s_config (int argc, char *argv [])
{
    if (argc < 3 || argv [1][0] == '-') {
        fprintf (stderr, "quintetctl config: expected FILE KEY... (e.g. quintet/upstream/collector/faults)\n");
        return 2;
    }
    char *error = NULL;
    qt_config_t *config = qt_config_open (argv [1], &error);
    if (!config) {
        fprintf (stderr, "quintetctl config: %s\n", error ? error : argv [1]);
        zstr_free (&error);
        return 1;
    }
    int rc = 0;
    for (int i = 2; i < argc && rc == 0; i++) {
        const char *value = NULL;
        if (qt_config_string (config, argv [i], "", &value) || !*value) {
            fprintf (stderr, "quintetctl config: %s: no value for %s\n", argv [1], argv [i]);
            rc = 1;
        }
        else
            printf ("%s\n", value);
    }
    qt_config_destroy (&config);
    return rc;
}

//  quintetctl env NAME [--variant V]: the declaration as JSON
static int
s_env (int argc, char *argv [])
{
    qt_env_params_t params;
    qt_env_params_init (&params);
    const char *name = NULL;
    for (int i = 1; i < argc; i++) {
        if (streq (argv [i], "--variant") && i + 1 < argc)
            snprintf (params.variant, sizeof params.variant, "%s", argv [++i]);
        else
        if (!name && argv [i][0] != '-')
            name = argv [i];
        else {
            fprintf (stderr, "quintetctl env: unexpected \"%s\"\n", argv [i]);
            return 2;
        }
    }
    if (!name) {
        fprintf (stderr, "quintetctl env: which environment? (quintetctl envs lists them)\n");
        return 2;
    }
    qt_env_decl_t decl;
    const char *cause = NULL;
    if (qt_env_declare (name, &params, &decl, &cause)) {
        fprintf (stderr, "quintetctl env: %s: %s\n", name, cause);
        return 2;
    }
    qt_env_describe (&decl, stdout);
    return 0;
}

typedef struct {
    bool json;
    uint64_t left;              //  rows still to list (UINT64_MAX: all)
    uint64_t listed;
} s_log_t;

static int
s_log_row (uint64_t index, uint64_t tick, const char *topic, const void *data, size_t size,
           void *arg)
{
    (void) data;
    s_log_t *self = (s_log_t *) arg;
    if (self->left == 0)
        return 1;
    if (self->json) {
        printf ("%s{\"index\": %" PRIu64 ", \"tick\": %" PRIu64 ", \"topic\": ",
                self->listed ? ",\n " : "", index, tick);
        s_print_json_string (topic);
        printf (", \"bytes\": %zu}", size);
    }
    else
        printf ("%10" PRIu64 " %10" PRIu64 " %-40s %8zu\n", index, tick, topic, size);
    self->listed++;
    self->left--;
    return 0;
}

static int
s_log (int argc, char *argv [])
{
    static const struct option options [] = {
        { "from", required_argument, NULL, 'f' },
        { "count", required_argument, NULL, 'n' },
        { "json", no_argument, NULL, 'j' },
        { NULL, 0, NULL, 0 }
    };
    s_log_t self = { false, UINT64_MAX, 0 };
    uint64_t from = 1;
    int option;
    while ((option = getopt_long (argc, argv, "f:n:j", options, NULL)) != -1) {
        char *end = NULL;
        if (option == 'f' || option == 'n') {
            errno = 0;
            uint64_t value = strtoull (optarg, &end, 10);
            if (errno || !*optarg || *end || optarg [0] == '-') {
                fprintf (stderr, "quintetctl log: --%s wants a number, not \"%s\"\n",
                         option == 'f' ? "from" : "count", optarg);
                return 2;
            }
            *(option == 'f' ? &from : &self.left) = value;
        }
        else
        if (option == 'j')
            self.json = true;
        else
            return 2;
    }
    if (optind != argc - 1) {
        fprintf (stderr, "quintetctl log: give one durable log file\n");
        return 2;
    }
    char *error = NULL;
    qt_store_t *store = qt_store_open_read (argv [optind], &error);
    if (!store) {
        fprintf (stderr, "quintetctl log: %s\n", error);
        zstr_free (&error);
        return 1;
    }
    if (self.json)
        printf ("[");
    else
        printf ("%10s %10s %-40s %8s\n", "INDEX", "TICK", "TOPIC", "BYTES");
    int rc = qt_store_replay (store, from, s_log_row, &self);
    if (self.json)
        printf ("]\n");
    if (rc)
        fprintf (stderr, "quintetctl log: %s\n", qt_store_error (store));
    qt_store_destroy (&store);
    return rc ? 1 : 0;
}

int
main (int argc, char *argv [])
{
    if (argc < 2) {
        s_usage (stderr);
        return 2;
    }
    if (sodium_init () < 0)
        return 1;
    const char *command = argv [1];
    if (streq (command, "help") || streq (command, "--help") || streq (command, "-h")) {
        s_usage (stdout);
        return 0;
    }
    if (streq (command, "--version")) {
        printf ("quintetctl %s\n", QT_VERSION);
        return 0;
    }
    if (streq (command, "keygen"))
        return s_keygen (argc - 1, argv + 1);
    if (streq (command, "endpoints"))
        return s_endpoints (argc - 1, argv + 1);
    if (streq (command, "status"))
        return s_status (argc - 1, argv + 1);
    if (streq (command, "log"))
        return s_log (argc - 1, argv + 1);
    if (streq (command, "envs")) {
        qt_env_list (stdout);
        return 0;
    }
    if (streq (command, "env"))
        return s_env (argc - 1, argv + 1);
    if (streq (command, "topology")) {
        if (argc > 3 || (argc == 3 && strneq (argv [2], "--json"))) {
            fprintf (stderr, "quintetctl topology: expected no argument but --json\n");
            return 2;
        }
        qt_topology_describe (stdout);
        return 0;
    }
    if (streq (command, "config"))
        return s_config (argc - 1, argv + 1);
    if (streq (command, "aggregations")) {
        qt_aggregation_describe (stdout);
        return 0;
    }
    fprintf (stderr, "quintetctl: unknown command \"%s\"\n", command);
    s_usage (stderr);
    return 2;
}
