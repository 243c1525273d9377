/*  fuzz_control: the daemon side of the control channel. The first byte
    picks what the rest is:

      even    raw bytes from a peer, into the control verifier (16 live
              epochs of the control key, qt_control_verifier_new)
      odd     a ControlMessage signed by the control key (an operator's, or
              a stolen one): what the daemon reads of the request, and what
              quintetctl reads of a reply; then the same frame again, which
              must be a replay

    A request that is not a well-formed "status" with a 16-byte nonce must
    never be taken for one.
*/
#include "fuzz_keys.h"

int LLVMFuzzerTestOneInput (const uint8_t *data, size_t size);

static void
s_read (const qt_message_t *message)
{
    const Quintet__ControlRequest *request = qt_control_request_of (message);
    if (request) {
        QT_CHECK (request->command && request->nonce.len == QT_CONTROL_NONCE_SIZE);
        //  Whom it is for: an empty or absent target is nobody
        if (qt_control_request_for (request, "worldmodel", 1))
            QT_CHECK (request->target_role && streq (request->target_role, "worldmodel")
                    && request->target_replica == 1);
    }
    uint8_t nonce [QT_CONTROL_NONCE_SIZE] = { 0 };
    const Quintet__ControlReply *reply = qt_control_reply_of (message, nonce);
    if (reply) {
        QT_CHECK (reply->nonce.len == QT_CONTROL_NONCE_SIZE);
        for (size_t i = 0; i < reply->n_drops; i++)
            QT_CHECK (reply->drops [i]);
    }
}

int
LLVMFuzzerTestOneInput (const uint8_t *data, size_t size)
{
    if (size < 1)
        return 0;
    bool signed_payload = data [0] & 1;
    data++;
    size--;
    qt_verifier_t *verifier = qt_control_verifier_new (fuzz_trust ());
    qt_drop_cause_t cause = QT_DROP_NONE;
    if (signed_payload) {
        zframe_t *frame = qt_signer_seal_bytes (fuzz_signer (QT_CONTROL_ROLE), QUINTET__PAYLOAD_TYPE__CONTROL,
                                                0, data, size);
        qt_message_t *message = qt_verifier_open (verifier, QT_CONTROL_TOPIC, QT_CONTROL_ROLE,
                                                  zframe_data (frame), zframe_size (frame), &cause);
        s_read (message);
        qt_message_destroy (&message);
        message = qt_verifier_open (verifier, QT_CONTROL_TOPIC, QT_CONTROL_ROLE, zframe_data (frame),
                                    zframe_size (frame), &cause);
        QT_CHECK (!message && cause == QT_DROP_REPLAY);      //  recorded before its payload was read
        zframe_destroy (&frame);
    }
    else {
        qt_message_t *message = qt_verifier_open (verifier, QT_CONTROL_TOPIC, QT_CONTROL_ROLE,
                                                  data, size, &cause);
        s_read (message);
        qt_message_destroy (&message);
    }
    qt_verifier_destroy (&verifier);
    return 0;
}
