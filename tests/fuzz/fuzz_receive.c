/*  fuzz_receive: the receive path with raw bytes. Whatever arrives on a
    topic goes through qt_verifier_open as a daemon's SUB socket would hand
    it over: size cap, decodes, key binding, signature, replay window,
    payload decode and validation. Nothing may crash, leak or read out of
    bounds, and nothing that is not a correctly signed message of a trusted
    key may come out.
*/
#include "fuzz_keys.h"

int LLVMFuzzerTestOneInput (const uint8_t *data, size_t size);

int
LLVMFuzzerTestOneInput (const uint8_t *data, size_t size)
{
    qt_verifier_t *verifier = qt_verifier_new (fuzz_trust (), FUZZ_BATCH);
    //  And one without an age window: the seeds are real frames re-signed
    //  with our keys some time ago, stale by now, and past freshness there is
    //  the replay window, the payload decode and validation to reach
    qt_verifier_t *ageless = qt_verifier_new (fuzz_trust (), FUZZ_BATCH);
    qt_verifier_set_max_age (ageless, 0);
    for (size_t i = 0; fuzz_topics [i]; i++) {
        qt_drop_cause_t ignored;
        qt_message_t *fresh = qt_verifier_open (ageless, fuzz_topics [i], NULL, data, size, &ignored);
        qt_message_destroy (&fresh);
        qt_drop_cause_t cause = QT_DROP_NONE;
        qt_message_t *message = qt_verifier_open (verifier, fuzz_topics [i], NULL, data, size, &cause);
        //  Raw bytes that verify were signed with one of our fixed keys (a
        //  corpus seed, made by make_corpus.py): then they must be whole
        QT_CHECK (message ? cause == QT_DROP_NONE && message->payload && message->sender
                        : cause != QT_DROP_NONE);
        qt_message_destroy (&message);
        //  The same bytes from one replica's endpoint (the stage's path)
        message = qt_verifier_open_from (verifier, fuzz_topics [i], fuzz_role_of_topic (fuzz_topics [i]),
                                         1, data, size, &cause);
        qt_message_destroy (&message);
    }
    qt_verifier_destroy (&verifier);
    qt_verifier_destroy (&ageless);
    return 0;
}
