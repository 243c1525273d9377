/*  qt_keys: Ed25519 key pairs from libsodium, files of hex, the trust store. */
#include "quintet.h"
#include "qt_selftest.h"
#include "qt_topology_table.h"

//  "raters" signs the people's daemon's envelopes; "rater" is one person's
//  key (rater-<id>.pub), which signs that person's comparisons and never an
//  envelope (qt_verifier refuses one claiming it). The topology's roles
//  (common/topology.txt, in pipeline order), then the operator's and the
//  people's keys
const char *const qt_roles [] = {
    QT_TOPOLOGY_ROLE_NAMES, "control", QT_RATER_ROLE, NULL
};

#define S_SEED_HEX_LEN  (crypto_sign_SEEDBYTES * 2)
#define S_PK_HEX_LEN    (crypto_sign_PUBLICKEYBYTES * 2)

bool
qt_role_valid (const char *name)
{
    for (int i = 0; qt_roles [i]; i++)
        if (streq (name, qt_roles [i]))
            return true;
    return false;
}

void
qt_key_id (const unsigned char *public_key, char *out)
{
    unsigned char hash [crypto_generichash_BYTES];
    crypto_generichash (hash, sizeof hash, public_key, crypto_sign_PUBLICKEYBYTES, NULL, 0);
    sodium_bin2hex (out, QT_KEY_ID_LEN + 1, hash, QT_KEY_ID_LEN / 2);
}

static qt_keypair_t *
s_keypair_new (const char *role, uint32_t replica)
{
    if (!role || !qt_role_valid (role))
        return NULL;
    qt_keypair_t *self = (qt_keypair_t *) sodium_malloc (sizeof (qt_keypair_t));
    if (!self)
        return NULL;            //  locked memory exhausted (RLIMIT_MEMLOCK)
    memset (self, 0, sizeof *self);
    snprintf (self->role, sizeof self->role, "%s", role);
    self->replica = replica;
    return self;
}

qt_keypair_t *
qt_keypair_generate (const char *role, uint32_t replica)
{
    qt_keypair_t *self = s_keypair_new (role, replica);
    if (self) {
        crypto_sign_keypair (self->public_key, self->secret_key);
        qt_key_id (self->public_key, self->key_id);
    }
    return self;
}

//  Reads a whole small text file, trims trailing whitespace.
static char *
s_read_text (const char *path, size_t max, char **error)
{
    FILE *file = fopen (path, "r");
    if (!file) {
        *error = zsys_sprintf ("%s: %s", path, strerror (errno));
        return NULL;
    }
    char *text = (char *) zmalloc (max + 2);
    size_t size = fread (text, 1, max + 1, file);
    fclose (file);
    if (size > max) {
        *error = zsys_sprintf ("%s: file too long for a key", path);
        free (text);
        return NULL;
    }
    while (size > 0 && isspace ((unsigned char) text [size - 1]))
        text [--size] = 0;
    return text;
}

qt_keypair_t *
qt_keypair_load (const char *secret_path, const char *role, uint32_t replica, char **error)
{
    *error = NULL;
    if (!role || !qt_role_valid (role)) {
        *error = zsys_sprintf ("unknown role \"%s\"", role ? role : "");
        return NULL;
    }
    struct stat st;
    if (stat (secret_path, &st) == -1) {
        *error = zsys_sprintf ("%s: %s", secret_path, strerror (errno));
        return NULL;
    }
    if (st.st_mode & (S_IRWXG | S_IRWXO)) {
        *error = zsys_sprintf ("%s: secret key is accessible by group or others (mode %04o); chmod 600 it",
                               secret_path, (unsigned) (st.st_mode & 07777));
        return NULL;
    }
    char *text = s_read_text (secret_path, S_SEED_HEX_LEN + 16, error);
    if (!text)
        return NULL;
    unsigned char seed [crypto_sign_SEEDBYTES];
    size_t seed_len = 0;
    int rc = sodium_hex2bin (seed, sizeof seed, text, strlen (text), NULL, &seed_len, NULL);
    sodium_memzero (text, strlen (text));
    free (text);
    if (rc != 0 || seed_len != sizeof seed) {
        *error = zsys_sprintf ("%s: expected %d hex characters (Ed25519 seed)", secret_path, S_SEED_HEX_LEN);
        return NULL;
    }
    qt_keypair_t *self = s_keypair_new (role, replica);
    if (!self) {
        sodium_memzero (seed, sizeof seed);
        *error = zsys_sprintf ("%s: no locked memory for the key (RLIMIT_MEMLOCK)", secret_path);
        return NULL;
    }
    crypto_sign_seed_keypair (self->public_key, self->secret_key, seed);
    sodium_memzero (seed, sizeof seed);
    qt_key_id (self->public_key, self->key_id);
    return self;
}

//  Writes text to path through a temporary file and rename, with a mode
static int
s_write_atomic (const char *path, const char *text, mode_t mode)
{
    char *tmp = zsys_sprintf ("%s.tmp.%d", path, (int) getpid ());
    int fd = open (tmp, O_WRONLY | O_CREAT | O_TRUNC | O_CLOEXEC, mode);
    if (fd == -1) {
        free (tmp);
        return -1;
    }
    size_t len = strlen (text);
    bool ok = write (fd, text, len) == (ssize_t) len && fchmod (fd, mode) == 0 && fsync (fd) == 0;
    close (fd);
    if (ok && rename (tmp, path) == 0) {
        free (tmp);
        return 0;
    }
    unlink (tmp);
    free (tmp);
    return -1;
}

int
qt_keypair_save (qt_keypair_t *self, const char *secret_path, const char *public_path)
{
    assert (self);
    if (secret_path) {
        char hex [S_SEED_HEX_LEN + 2];
        unsigned char seed [crypto_sign_SEEDBYTES];
        crypto_sign_ed25519_sk_to_seed (seed, self->secret_key);
        sodium_bin2hex (hex, sizeof hex - 1, seed, sizeof seed);
        strcat (hex, "\n");
        int rc = s_write_atomic (secret_path, hex, 0600);
        sodium_memzero (seed, sizeof seed);
        sodium_memzero (hex, sizeof hex);
        if (rc)
            return -1;
    }
    if (public_path) {
        char hex [S_PK_HEX_LEN + 2];
        sodium_bin2hex (hex, sizeof hex - 1, self->public_key, sizeof self->public_key);
        strcat (hex, "\n");
        if (s_write_atomic (public_path, hex, 0644))
            return -1;
    }
    return 0;
}

void
qt_keypair_destroy (qt_keypair_t **self_p)
{
    assert (self_p);
    if (*self_p) {
        sodium_free (*self_p);      //  sodium_free wipes the memory
        *self_p = NULL;
    }
}

struct _qt_trust_t {
    zhash_t *by_key_id;         //  key id -> qt_trust_entry_t
};

//  Parses "<role>-<replica>.pub"; false when the name does not match.
static bool
s_parse_pub_name (const char *name, char *role, uint32_t *replica)
{
    size_t len = strlen (name);
    const char *suffix = ".pub";
    if (len <= strlen (suffix) || strcmp (name + len - strlen (suffix), suffix) != 0)
        return false;
    const char *dash = strrchr (name, '-');
    if (!dash || (size_t) (dash - name) >= QT_ROLE_MAX || dash == name)
        return false;
    memcpy (role, name, (size_t) (dash - name));
    role [dash - name] = 0;
    char *end = NULL;
    unsigned long value = strtoul (dash + 1, &end, 10);
    if (end == dash + 1 || strcmp (end, suffix) != 0 || value > UINT32_MAX)
        return false;
    *replica = (uint32_t) value;
    return qt_role_valid (role);
}

qt_trust_t *
qt_trust_load (const char *dir, char **error)
{
    *error = NULL;
    DIR *handle = opendir (dir);
    if (!handle) {
        *error = zsys_sprintf ("trust store %s: %s", dir, strerror (errno));
        return NULL;
    }
    qt_trust_t *self = (qt_trust_t *) zmalloc (sizeof (qt_trust_t));
    self->by_key_id = zhash_new ();
    struct dirent *entry;
    while ((entry = readdir (handle)) && !*error) {
        qt_trust_entry_t trusted;
        memset (&trusted, 0, sizeof trusted);
        if (!s_parse_pub_name (entry->d_name, trusted.role, &trusted.replica))
            continue;
        char *path = zsys_sprintf ("%s/%s", dir, entry->d_name);
        char *text = s_read_text (path, S_PK_HEX_LEN + 16, error);
        if (text) {
            size_t len = 0;
            if (sodium_hex2bin (trusted.public_key, sizeof trusted.public_key, text, strlen (text),
                                NULL, &len, NULL) != 0 || len != sizeof trusted.public_key)
                *error = zsys_sprintf ("%s: expected %d hex characters (Ed25519 public key)", path, S_PK_HEX_LEN);
            else {
                qt_key_id (trusted.public_key, trusted.key_id);
                qt_trust_entry_t *copy = (qt_trust_entry_t *) zmalloc (sizeof trusted);
                *copy = trusted;
                if (zhash_insert (self->by_key_id, copy->key_id, copy) == 0)
                    zhash_freefn (self->by_key_id, copy->key_id, free);
                else {
                    *error = zsys_sprintf ("%s: the same key is already trusted under another name", path);
                    free (copy);
                }
            }
            free (text);
        }
        free (path);
    }
    closedir (handle);
    if (*error)
        qt_trust_destroy (&self);
    return self;
}

void
qt_trust_destroy (qt_trust_t **self_p)
{
    assert (self_p);
    if (*self_p) {
        zhash_destroy (&(*self_p)->by_key_id);
        free (*self_p);
        *self_p = NULL;
    }
}

const qt_trust_entry_t *
qt_trust_lookup (qt_trust_t *self, const char *key_id)
{
    return (const qt_trust_entry_t *) zhash_lookup (self->by_key_id, key_id);
}

size_t
qt_trust_size (qt_trust_t *self)
{
    return zhash_size (self->by_key_id);
}

void
qt_keys_test (bool verbose)
{
    if (verbose)
        printf (" * qt_keys: ");
    QT_CHECK (sodium_init () >= 0);
    char dir_template [] = "/tmp/qt_keys_test.XXXXXX";
    char *dir = mkdtemp (dir_template);
    QT_CHECK (dir);
    QT_CHECK (!qt_keypair_generate ("gardener", 1));

    qt_keypair_t *pair = qt_keypair_generate ("collector", 2);
    QT_CHECK (pair);
    QT_CHECK (strlen (pair->key_id) == QT_KEY_ID_LEN);
    char *secret = zsys_sprintf ("%s/collector-2.key", dir);
    char *public = zsys_sprintf ("%s/collector-2.pub", dir);
    QT_CHECK (qt_keypair_save (pair, secret, public) == 0);

    //  Round trip: the loaded pair is the saved one
    char *error = NULL;
    qt_keypair_t *loaded = qt_keypair_load (secret, "collector", 2, &error);
    QT_CHECK (loaded && !error);
    QT_CHECK (memcmp (loaded->public_key, pair->public_key, sizeof pair->public_key) == 0);
    QT_CHECK (streq (loaded->key_id, pair->key_id));
    qt_keypair_destroy (&loaded);
    qt_keypair_destroy (&loaded);
    QT_CHECK (loaded == NULL);

    //  A secret key others can read is refused
    QT_CHECK (chmod (secret, 0644) == 0);
    loaded = qt_keypair_load (secret, "collector", 2, &error);
    QT_CHECK (!loaded && error && strstr (error, "group or others"));
    zstr_free (&error);
    QT_CHECK (chmod (secret, 0600) == 0);

    //  Garbage in the key file is refused
    char *bad = zsys_sprintf ("%s/bad.key", dir);
    FILE *file = fopen (bad, "w");
    fprintf (file, "not-hex\n");
    fclose (file);
    chmod (bad, 0600);
    QT_CHECK (!qt_keypair_load (bad, "collector", 1, &error) && error);
    zstr_free (&error);

    //  The trust store binds the key to role and replica by file name
    qt_trust_t *trust = qt_trust_load (dir, &error);
    QT_CHECK (trust && !error);
    QT_CHECK (qt_trust_size (trust) == 1);
    const qt_trust_entry_t *entry = qt_trust_lookup (trust, pair->key_id);
    QT_CHECK (entry && streq (entry->role, "collector") && entry->replica == 2);
    QT_CHECK (!qt_trust_lookup (trust, "0000000000000000"));
    qt_trust_destroy (&trust);

    //  A malformed public key is an error naming the file
    char *badpub = zsys_sprintf ("%s/scorer-1.pub", dir);
    file = fopen (badpub, "w");
    fprintf (file, "abcd\n");
    fclose (file);
    QT_CHECK (!qt_trust_load (dir, &error) && error && strstr (error, "scorer-1.pub"));
    zstr_free (&error);

    unlink (badpub);
    unlink (bad);
    unlink (secret);
    unlink (public);
    rmdir (dir);
    zstr_free (&badpub);
    zstr_free (&bad);
    zstr_free (&secret);
    zstr_free (&public);
    qt_keypair_destroy (&pair);
    if (verbose)
        printf ("OK\n");
}
