/*  qt_envelope: signed envelopes, the only thing quintet puts on the wire.

    A signer seals a payload into SignedMessage bytes: it fills the Envelope
    (role, replica, key id, epoch, seq, tick, send time, type, payload),
    encodes it once, and signs "quintet-v1:" || envelope bytes with Ed25519.

    A verifier opens what arrives, in the order of design.md section 3: size
    cap, SignedMessage and Envelope decode, key id in the trust store and
    bound to the claimed role and replica, signature over the bytes as
    received, replay window per (key id, epoch) and freshness, payload
    decode, payload values. Each failure is dropped and counted by cause;
    nothing that fails a step reaches the caller.

    The replay window is built so that replaying captured frames, by anyone
    and however long after, can never evict a sender's current epoch: a
    message must be fresh (send time within the age window) before it moves
    any epoch state, and an epoch displaces a live one only if it was sent
    after it (first send times compared), was never retired, and is newer
    than every retired one. A key's state is fixed size.
*/
#ifndef QT_ENVELOPE_H_INCLUDED
#define QT_ENVELOPE_H_INCLUDED

#include <stdbool.h>
#include <stdint.h>
#include <czmq.h>
#include "quintet.pb-c.h"
#include "qt_keys.h"
#include "qt_payload.h"

#define QT_SIGNATURE_CONTEXT        "quintet-v1:"
#define QT_MESSAGE_SIZE_CAP         (4u << 20)  //  default cap on one SignedMessage, bytes
#define QT_REPLAY_WINDOW            64          //  out-of-order tolerance, in seq numbers
#define QT_MESSAGE_MAX_AGE_MS       60000       //  default: older send times are stale
#define QT_RETIRED_EPOCHS           8           //  old epochs remembered per key
#define QT_REPLAY_LIVE_EPOCHS_MAX   16          //  epochs of one key accepted side by side, at most

typedef struct _qt_signer_t qt_signer_t;

//  Takes ownership of the key pair. The epoch is random per signer.
qt_signer_t *qt_signer_new (qt_keypair_t **keypair_p);
void qt_signer_destroy (qt_signer_t **self_p);

//  Seals an encoded payload. Returns the SignedMessage bytes as a frame.
zframe_t *qt_signer_seal_bytes (qt_signer_t *self, Quintet__PayloadType type, uint64_t tick,
                                const void *payload, size_t size);

//  Encodes and seals a payload message.
zframe_t *qt_signer_seal (qt_signer_t *self, Quintet__PayloadType type, uint64_t tick,
                          const ProtobufCMessage *payload);

uint64_t qt_signer_epoch (qt_signer_t *self);

//  The key pair, for the Byzantine modes that sign as someone else
qt_keypair_t *qt_signer_keypair (qt_signer_t *self);

//  A verified message: the decoded envelope and payload, and who sent it
typedef struct {
    Quintet__Envelope *envelope;
    ProtobufCMessage *payload;
    const qt_trust_entry_t *sender;     //  owned by the trust store
    void *arena;                        //  the payload's memory when not NULL
                                        //  (qt_verifier_open): freed at once
} qt_message_t;

void qt_message_destroy (qt_message_t **self_p);

typedef struct _qt_verifier_t qt_verifier_t;

//  trust is borrowed and must outlive the verifier. batch is B (0: do not
//  check batch sizes).
qt_verifier_t *qt_verifier_new (qt_trust_t *trust, size_t batch);
void qt_verifier_destroy (qt_verifier_t **self_p);

//  Size cap, and maximum age of a message's send time (0: no age check)
void qt_verifier_set_size_cap (qt_verifier_t *self, size_t size_cap);
void qt_verifier_set_max_age (qt_verifier_t *self, int64_t max_age_ms);

//  Epochs of one key accepted side by side (1..QT_REPLAY_LIVE_EPOCHS_MAX).
//  1, the default, for a key one process signs with: a restart supersedes
//  the previous epoch. More for a key that signs from several short-lived
//  processes at once (operators' quintetctl requests, one epoch each): the
//  newest ones stay live, an older-sent one is refused once they are full.
void qt_verifier_set_live_epochs (qt_verifier_t *self, size_t epochs);

//  Opens one received message published on topic. If expected_role is not
//  NULL, a sender of another role is dropped. Returns NULL and sets *cause
//  when the message is dropped (and counts it).
qt_message_t *qt_verifier_open (qt_verifier_t *self, const char *topic, const char *expected_role,
                                const void *data, size_t size, qt_drop_cause_t *cause);

//  The same, for a message read from an endpoint only one replica publishes
//  on: a sender other than (expected_role, expected_replica) is dropped as
//  unexpected before its signature is checked (0: any replica).
qt_message_t *qt_verifier_open_from (qt_verifier_t *self, const char *topic,
                                     const char *expected_role, uint32_t expected_replica,
                                     const void *data, size_t size, qt_drop_cause_t *cause);

//  Counts a drop decided by the caller (e.g. environment-specific checks)
void qt_verifier_count (qt_verifier_t *self, qt_drop_cause_t cause);

uint64_t qt_verifier_drops (qt_verifier_t *self, qt_drop_cause_t cause);
uint64_t qt_verifier_drops_total (qt_verifier_t *self);
uint64_t qt_verifier_accepted (qt_verifier_t *self);

void qt_envelope_test (bool verbose);

#endif
