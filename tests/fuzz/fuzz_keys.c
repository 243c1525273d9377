/*  fuzz_keys: fixed keys, trust store and signers for the fuzz targets.
    Process-wide on purpose: a fuzz target's entry point has no state
    argument, and the keys must be made once, not per input.
*/
#include "fuzz_keys.h"

#define S_ROLES 10      //  every role of qt_roles: rater keys too, which sign no envelope

const char *const fuzz_topics [] = {
    "sensor", "obs", "belief", "score", "proposal", "reward", "action", "eval", "control",
    "query", "judgment", NULL
};

static struct {
    char *dir;
    qt_trust_t *trust;
    char *key_path [S_ROLES];
    qt_signer_t *signer [S_ROLES];
} s_fuzz;

static size_t
s_role_index (const char *role)
{
    for (size_t i = 0; qt_roles [i]; i++)
        if (streq (qt_roles [i], role))
            return i;
    return S_ROLES;
}

const char *
fuzz_role_of_topic (const char *topic)
{
    //  The topology's publisher of the topic; the control channel's is the
    //  operator's key
    for (size_t i = 0; fuzz_topics [i]; i++)
        if (streq (fuzz_topics [i], topic)) {
            const qt_topology_role_t *publisher = qt_topology_publisher (topic);
            return publisher ? publisher->name : "control";
        }
    return NULL;
}

//  Writes <dir>/keys/<role>-1.key and <dir>/trust/<role>-1.pub for every role
static void
s_make_keys (void)
{
    QT_CHECK (sodium_init () >= 0);
    zsys_init ();
    qt_log_init ("fuzz", QT_LOG_NO_REPLICA);
    qt_log_set_level (LOG_EMERG);       //  drops are the point: keep them quiet
    char template [] = "/tmp/quintet-fuzz.XXXXXX";
    QT_CHECK (mkdtemp (template));
    s_fuzz.dir = strdup (template);
    char *keys = zsys_sprintf ("%s/keys", s_fuzz.dir);
    char *trust = zsys_sprintf ("%s/trust", s_fuzz.dir);
    QT_CHECK (mkdir (keys, 0700) == 0 && mkdir (trust, 0755) == 0);
    for (size_t i = 0; qt_roles [i] && i < S_ROLES; i++) {
        char *name = zsys_sprintf ("%s%s-1", FUZZ_SEED_CONTEXT, qt_roles [i]);
        unsigned char seed [crypto_sign_SEEDBYTES];
        crypto_generichash (seed, sizeof seed, (const unsigned char *) name, strlen (name), NULL, 0);
        zstr_free (&name);
        qt_keypair_t *pair = (qt_keypair_t *) zmalloc (sizeof (qt_keypair_t));
        snprintf (pair->role, sizeof pair->role, "%s", qt_roles [i]);
        pair->replica = 1;
        crypto_sign_seed_keypair (pair->public_key, pair->secret_key, seed);
        qt_key_id (pair->public_key, pair->key_id);
        s_fuzz.key_path [i] = zsys_sprintf ("%s/%s-1.key", keys, qt_roles [i]);
        char *pub = zsys_sprintf ("%s/%s-1.pub", trust, qt_roles [i]);
        QT_CHECK (qt_keypair_save (pair, s_fuzz.key_path [i], pub) == 0);
        zstr_free (&pub);
        s_fuzz.signer [i] = qt_signer_new (&pair);
    }
    char *error = NULL;
    s_fuzz.trust = qt_trust_load (trust, &error);
    QT_CHECK (s_fuzz.trust);
    zstr_free (&keys);
    zstr_free (&trust);
}

//  The temporary directory goes when the process does
static void
s_remove_keys (void)
{
    if (!s_fuzz.dir)
        return;
    zdir_t *dir = zdir_new (s_fuzz.dir, NULL);
    if (dir) {
        zdir_remove (dir, true);
        zdir_destroy (&dir);
    }
}

qt_trust_t *
fuzz_trust (void)
{
    if (!s_fuzz.trust) {
        s_make_keys ();
        atexit (s_remove_keys);
    }
    return s_fuzz.trust;
}

qt_signer_t *
fuzz_signer (const char *role)
{
    fuzz_trust ();
    size_t index = s_role_index (role);
    return index < S_ROLES ? s_fuzz.signer [index] : NULL;
}

const char *
fuzz_key_path (const char *role)
{
    fuzz_trust ();
    size_t index = s_role_index (role);
    return index < S_ROLES ? s_fuzz.key_path [index] : NULL;
}
