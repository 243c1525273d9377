/*  fuzz_keys: what every fuzz target shares. A trust store of fixed keys
    (one <role>-1 per role, each seed BLAKE2b-256 of "quintet-fuzz:<role>-1",
    so tests/fuzz/make_corpus.py can sign seeds with the same keys), made
    once per process in a temporary directory, and a signer per role.
*/
#ifndef FUZZ_KEYS_H_INCLUDED
#define FUZZ_KEYS_H_INCLUDED

#include "quintet.h"
#include "qt_selftest.h"

#define FUZZ_BATCH          4       //  B the verifiers check (make_corpus.py runs batch 4)
#define FUZZ_SEED_CONTEXT   "quintet-fuzz:"

//  The trust store (every role's key), made on first use
qt_trust_t *fuzz_trust (void);

//  The signer of <role>-1, made on first use
qt_signer_t *fuzz_signer (const char *role);

//  Path of the fixed secret key file of <role>-1 (in the trust store's parent)
const char *fuzz_key_path (const char *role);

//  The role that publishes a topic
const char *fuzz_role_of_topic (const char *topic);

//  Every topic, NULL-terminated
extern const char *const fuzz_topics [];

#endif
