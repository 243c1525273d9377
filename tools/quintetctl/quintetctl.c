/*  quintetctl: the operator's command line for a quintet deployment.

    keygen     writes the Ed25519 keys of a topology: the trust store
               (<dir>/trust/<role>-<replica>.pub) and one secret key per
               replica (<dir>/keys/<role>-<replica>.key, mode 0600), the
               names the daemons' secret_key/trust_dir settings and systemd's
               LoadCredential= expect.
    endpoints  prints the publish endpoint of every replica of a deployment:
               from the demo's endpoints.json (--state-dir) or from a
               directory of per-replica config files (--config-dir).
*/
#include "quintet.h"
#include <getopt.h>

#define S_DEFAULT_REPLICAS  3
#define S_MAX_REPLICAS      QT_QUORUM_MAX_REPLICAS

static void
s_usage (FILE *out)
{
    fprintf (out,
        "Usage: quintetctl COMMAND [OPTIONS]\n\n"
        "Commands:\n"
        "  keygen --dir DIR [--replicas N] [--role ROLE=N]... [--force]\n"
        "      Generate keys for the world (1 replica) and N replicas (default %d) of every\n"
        "      other role; --role overrides one role's count. Writes DIR/trust/*.pub and\n"
        "      DIR/keys/*.key (0600). Refuses to overwrite existing keys without --force.\n"
        "  endpoints (--state-dir DIR | --config-dir DIR) [--json]\n"
        "      Print every replica's publish endpoint, from DIR/endpoints.json (the demo)\n"
        "      or from the quintet/bind of each *.conf in a config directory.\n"
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

static int
s_keygen (int argc, char *argv [])
{
    static const struct option options [] = {
        { "dir", required_argument, NULL, 'd' },
        { "replicas", required_argument, NULL, 'n' },
        { "role", required_argument, NULL, 'r' },
        { "force", no_argument, NULL, 'f' },
        { NULL, 0, NULL, 0 }
    };
    const char *dir = NULL;
    bool force = false;
    long counts [16];
    size_t roles = 0;
    while (qt_roles [roles])
        roles++;
    for (size_t i = 0; i < roles; i++)
        counts [i] = streq (qt_roles [i], "world") ? 1 : streq (qt_roles [i], "control") ? 1 : S_DEFAULT_REPLICAS;
    int option;
    while ((option = getopt_long (argc, argv, "d:n:r:f", options, NULL)) != -1) {
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
                if (strneq (qt_roles [i], "world") && strneq (qt_roles [i], "control"))
                    counts [i] = n;
        }
        else
        if (option == 'r') {
            char *equals = strchr (optarg, '=');
            bool found = false;
            long n = equals ? strtol (equals + 1, NULL, 10) : 0;
            for (size_t i = 0; equals && i < roles; i++)
                if (strlen (qt_roles [i]) == (size_t) (equals - optarg)
                &&  strncmp (qt_roles [i], optarg, (size_t) (equals - optarg)) == 0) {
                    counts [i] = n;
                    found = true;
                }
            if (!found || n < 0 || n > S_MAX_REPLICAS) {
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

//  endpoints.json is written by the demo; it is printed as a table, or as is
static int
s_endpoints_json (const char *state_dir, bool json)
{
    char *path = zsys_sprintf ("%s/endpoints.json", state_dir);
    zfile_t *file = zfile_new (NULL, path);
    zchunk_t *chunk = NULL;
    if (file && zfile_input (file) == 0)
        chunk = zfile_read (file, zfile_cursize (file), 0);
    zfile_destroy (&file);
    if (!chunk) {
        fprintf (stderr, "quintetctl endpoints: cannot read %s: is a deployment running there?\n", path);
        zstr_free (&path);
        return 1;
    }
    zstr_free (&path);
    char *text = zchunk_strdup (chunk);
    zchunk_destroy (&chunk);
    if (json) {
        printf ("%s", text);
        free (text);
        return 0;
    }
    //  A small, fixed shape: {"role": ["endpoint", ...], ...}; printed
    //  without a JSON library by walking the quoted strings
    printf ("%-12s %-8s %s\n", "ROLE", "REPLICA", "ENDPOINT");
    char role [64] = "";
    int replica = 0;
    int depth = 0;
    for (char *cursor = text; *cursor; cursor++) {
        if (*cursor == '[')
            depth++;
        else
        if (*cursor == ']')
            depth--;
        else
        if (*cursor == '"') {
            char *end = strchr (cursor + 1, '"');
            if (!end)
                break;
            *end = 0;
            if (depth == 0) {
                snprintf (role, sizeof role, "%s", cursor + 1);
                replica = 0;
            }
            else
                printf ("%-12s %-8d %s\n", role, ++replica, cursor + 1);
            cursor = end;
        }
    }
    free (text);
    return 0;
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
    return state_dir ? s_endpoints_json (state_dir, json) : s_endpoints_configs (config_dir, json);
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
    fprintf (stderr, "quintetctl: unknown command \"%s\"\n", command);
    s_usage (stderr);
    return 2;
}
