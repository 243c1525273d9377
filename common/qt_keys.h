/*  qt_keys: Ed25519 identities and the trust store.

    A replica's identity is (role, replica id, key pair). Public keys live in
    a trust store directory as `<role>-<replica>.pub`, 64 hex characters; a
    key therefore signs only as the role and replica its file name binds it
    to. Secret keys are files of 64 hex characters (the 32-byte Ed25519
    seed), readable by their owner alone: a secret key file that group or
    others can read is refused, as ssh does.

    The key id carried in every envelope is the first 8 bytes of
    BLAKE2b-256(public key), as 16 lowercase hex characters.
*/
#ifndef QT_KEYS_H_INCLUDED
#define QT_KEYS_H_INCLUDED

#include <stdbool.h>
#include <stdint.h>
#include <sodium.h>

#define QT_KEY_ID_LEN   16      //  hex characters, without terminator
#define QT_ROLE_MAX     32

//  The roles of design.md section 1, as they appear on the wire, and the
//  trust-store roles of keys that sign no envelope of their own
extern const char *const qt_roles [];

//  A person of the simulated population: key rater-<id>.pub signs that
//  rater's comparisons (qt_wire_judgment_seal), never an envelope
#define QT_RATER_ROLE   "rater"

//  True if name is one of qt_roles
bool qt_role_valid (const char *name);

typedef struct {
    char role [QT_ROLE_MAX];
    uint32_t replica;
    char key_id [QT_KEY_ID_LEN + 1];
    unsigned char public_key [crypto_sign_PUBLICKEYBYTES];
    unsigned char secret_key [crypto_sign_SECRETKEYBYTES];
} qt_keypair_t;

//  Fresh random key pair for a role and replica. NULL on bad role.
qt_keypair_t *qt_keypair_generate (const char *role, uint32_t replica);

//  Load a secret key file for the given identity. Refuses a file readable by
//  group or others. On failure returns NULL and sets *error (caller frees).
qt_keypair_t *qt_keypair_load (const char *secret_path, const char *role,
                               uint32_t replica, char **error);

//  Write the secret key (mode 0600, atomically) and the public key (0644).
//  Either path may be NULL to skip it.
int qt_keypair_save (qt_keypair_t *self, const char *secret_path, const char *public_path);

//  Wipes the secret and frees.
void qt_keypair_destroy (qt_keypair_t **self_p);

//  Key id of a public key, into out (QT_KEY_ID_LEN + 1 bytes)
void qt_key_id (const unsigned char *public_key, char *out);

typedef struct {
    char role [QT_ROLE_MAX];
    uint32_t replica;
    char key_id [QT_KEY_ID_LEN + 1];
    unsigned char public_key [crypto_sign_PUBLICKEYBYTES];
} qt_trust_entry_t;

typedef struct _qt_trust_t qt_trust_t;

//  Load every `<role>-<replica>.pub` in dir. Files that do not match the
//  pattern are ignored; a matching file with a bad key is an error.
qt_trust_t *qt_trust_load (const char *dir, char **error);
void qt_trust_destroy (qt_trust_t **self_p);

//  Entry for a key id, or NULL
const qt_trust_entry_t *qt_trust_lookup (qt_trust_t *self, const char *key_id);

//  Number of keys
size_t qt_trust_size (qt_trust_t *self);

void qt_keys_test (bool verbose);

#endif
