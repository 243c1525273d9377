/*  fuzz_signed: authentic messages with arbitrary contents, which only a
    Byzantine replica (a key holder) can send. The first byte picks what:

      0..8    an arbitrary payload on topic fuzz_topics [byte], sealed by the
              role that publishes it: payload decode and value validation
      9       arbitrary envelope bytes, signed as they are (non-canonical,
              unknown fields, any epoch, seq, tick, send time, type)
      10, 11  an arbitrary payload on query, judgment (fuzz_topics [9], [10])
      12..    payloads for the control channel: requests and replies

    Each input is opened by a fresh verifier (and by one of batch 0, which
    skips the batch checks), then the payload is read as a daemon would.
*/
#include "fuzz_keys.h"

#define S_RAW_ENVELOPE  9
#define S_QUERY         10      //  and S_QUERY + 1: judgment
#define S_CONTROL       12

int LLVMFuzzerTestOneInput (const uint8_t *data, size_t size);

//  Seals arbitrary envelope bytes with the key of role: signature over the
//  bytes exactly as given
static zframe_t *
s_sign_raw (const char *role, const uint8_t *envelope, size_t size)
{
    qt_keypair_t *pair = qt_signer_keypair (fuzz_signer (role));
    size_t context = strlen (QT_SIGNATURE_CONTEXT);
    uint8_t *signed_bytes = (uint8_t *) malloc (context + size + 1);
    QT_CHECK (signed_bytes);
    memcpy (signed_bytes, QT_SIGNATURE_CONTEXT, context);
    if (size)
        memcpy (signed_bytes + context, envelope, size);
    unsigned char signature [crypto_sign_BYTES];
    crypto_sign_detached (signature, NULL, signed_bytes, context + size, pair->secret_key);
    Quintet__SignedMessage message = QUINTET__SIGNED_MESSAGE__INIT;
    message.envelope.data = signed_bytes + context;
    message.envelope.len = size;
    message.signature.data = signature;
    message.signature.len = sizeof signature;
    zframe_t *frame = zframe_new (NULL, quintet__signed_message__get_packed_size (&message));
    quintet__signed_message__pack (&message, zframe_data (frame));
    free (signed_bytes);
    return frame;
}

static void
s_open (qt_verifier_t *verifier, const char *topic, zframe_t *frame)
{
    qt_drop_cause_t cause = QT_DROP_NONE;
    qt_message_t *message = qt_verifier_open (verifier, topic, NULL, zframe_data (frame),
                                              zframe_size (frame), &cause);
    if (message && streq (topic, QT_CONTROL_TOPIC)) {
        //  What the daemon and quintetctl read of it
        const Quintet__ControlRequest *request = qt_control_request_of (message);
        if (request)
            QT_CHECK (request->command && request->nonce.len == QT_CONTROL_NONCE_SIZE);
        uint8_t nonce [QT_CONTROL_NONCE_SIZE] = { 0 };
        const Quintet__ControlReply *reply = qt_control_reply_of (message, nonce);
        if (reply)
            for (size_t i = 0; i < reply->n_upstreams; i++)
                QT_CHECK (reply->upstreams [i]);
    }
    qt_message_destroy (&message);
}

int
LLVMFuzzerTestOneInput (const uint8_t *data, size_t size)
{
    if (size < 1)
        return 0;
    uint8_t mode = data [0];
    data++;
    size--;
    qt_verifier_t *checked = qt_verifier_new (fuzz_trust (), FUZZ_BATCH);
    qt_verifier_t *unchecked = qt_verifier_new (fuzz_trust (), 0);
    if (mode == S_RAW_ENVELOPE) {
        //  Signed by the key the envelope names, when it names one of ours
        Quintet__Envelope *envelope = quintet__envelope__unpack (NULL, size, data);
        const char *role = envelope && envelope->role && fuzz_signer (envelope->role)
                         ? envelope->role : "collector";
        zframe_t *frame = s_sign_raw (role, data, size);
        if (envelope)
            quintet__envelope__free_unpacked (envelope, NULL);
        for (size_t i = 0; fuzz_topics [i]; i++)
            s_open (checked, fuzz_topics [i], frame);
        zframe_destroy (&frame);
    }
    else {
        const char *topic = mode < S_RAW_ENVELOPE ? fuzz_topics [mode]
                          : mode < S_CONTROL ? fuzz_topics [mode - 1] : QT_CONTROL_TOPIC;
        qt_signer_t *signer = fuzz_signer (fuzz_role_of_topic (topic));
        zframe_t *frame = qt_signer_seal_bytes (signer, qt_payload_type_of_topic (topic), 1, data, size);
        s_open (checked, topic, frame);
        s_open (unchecked, topic, frame);
        zframe_destroy (&frame);
    }
    qt_verifier_destroy (&checked);
    qt_verifier_destroy (&unchecked);
    return 0;
}
