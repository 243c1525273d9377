/*  qt_control: sealing control requests and reading control messages; the
    daemon side lives in qt_stage (it reports the stage's counters).
*/
#include "quintet.h"
#include "qt_selftest.h"
#include "qt_control.h"

zframe_t *
qt_control_request (qt_signer_t *signer, const char *command, const char *target_role,
                    uint32_t target_replica, uint8_t *nonce)
{
    randombytes_buf (nonce, QT_CONTROL_NONCE_SIZE);
    Quintet__ControlRequest request = QUINTET__CONTROL_REQUEST__INIT;
    request.command = (char *) command;
    request.target_role = (char *) target_role;
    request.target_replica = target_replica;
    request.nonce.data = nonce;
    request.nonce.len = QT_CONTROL_NONCE_SIZE;
    Quintet__ControlMessage message = QUINTET__CONTROL_MESSAGE__INIT;
    message.request = &request;
    return qt_signer_seal (signer, QUINTET__PAYLOAD_TYPE__CONTROL, 0, &message.base);
}

qt_verifier_t *
qt_control_verifier_new (qt_trust_t *trust)
{
    qt_verifier_t *verifier = qt_verifier_new (trust, 0);
    qt_verifier_set_live_epochs (verifier, QT_CONTROL_LIVE_EPOCHS);
    return verifier;
}

static const Quintet__ControlMessage *
s_control_message (const qt_message_t *message)
{
    if (!message || message->envelope->type != QUINTET__PAYLOAD_TYPE__CONTROL)
        return NULL;
    return (const Quintet__ControlMessage *) message->payload;
}

const Quintet__ControlRequest *
qt_control_request_of (const qt_message_t *message)
{
    const Quintet__ControlMessage *control = s_control_message (message);
    if (!control || !control->request || control->reply || !control->request->command
    ||  control->request->nonce.len != QT_CONTROL_NONCE_SIZE)
        return NULL;
    return control->request;
}

bool
qt_control_request_for (const Quintet__ControlRequest *request, const char *role, uint32_t replica)
{
    return request && request->target_role && *request->target_role
        && streq (request->target_role, role) && request->target_replica == replica;
}

const Quintet__ControlReply *
qt_control_reply_of (const qt_message_t *message, const uint8_t *nonce)
{
    const Quintet__ControlMessage *control = s_control_message (message);
    if (!control || !control->reply || control->request
    ||  control->reply->nonce.len != QT_CONTROL_NONCE_SIZE
    ||  sodium_memcmp (control->reply->nonce.data, nonce, QT_CONTROL_NONCE_SIZE) != 0)
        return NULL;
    return control->reply;
}


//  --------------------------------------------------------------------------
//  Selftest

#define S_TEST_EPOCH_ROLLBACK_RUNS  9   //  one more than QT_RETIRED_EPOCHS: the ring forgot it
#define S_TEST_NEWER_RUNS           40  //  more than QT_CONTROL_LIVE_EPOCHS too

void
qt_control_test (bool verbose)
{
    if (verbose)
        printf (" * qt_control: ");
    //  @selftest
    char tmpdir [] = "/tmp/qt_control_test.XXXXXX";
    QT_CHECK (mkdtemp (tmpdir));
    char *secret = zsys_sprintf ("%s/control-1.key", tmpdir);
    char *public = zsys_sprintf ("%s/control-1.pub", tmpdir);
    qt_keypair_t *pair = qt_keypair_generate (QT_CONTROL_ROLE, 1);
    QT_CHECK (qt_keypair_save (pair, secret, public) == 0);
    qt_signer_t *signer = qt_signer_new (&pair);
    char *error = NULL;
    qt_trust_t *trust = qt_trust_load (tmpdir, &error);
    QT_CHECK (trust);
    qt_verifier_t *verifier = qt_control_verifier_new (trust);

    uint8_t nonce [QT_CONTROL_NONCE_SIZE];
    zframe_t *frame = qt_control_request (signer, "status", "worldmodel", 1, nonce);
    qt_drop_cause_t cause = QT_DROP_NONE;
    qt_message_t *message = qt_verifier_open (verifier, QT_CONTROL_TOPIC, QT_CONTROL_ROLE,
                                              zframe_data (frame), zframe_size (frame), &cause);
    QT_CHECK (message);
    const Quintet__ControlRequest *request = qt_control_request_of (message);
    QT_CHECK (request && streq (request->command, "status"));
    QT_CHECK (memcmp (request->nonce.data, nonce, QT_CONTROL_NONCE_SIZE) == 0);
    //  It names the daemon it is for, and no other
    QT_CHECK (qt_control_request_for (request, "worldmodel", 1));
    QT_CHECK (!qt_control_request_for (request, "worldmodel", 2));
    QT_CHECK (!qt_control_request_for (request, "collector", 1));
    QT_CHECK (!qt_control_request_for (NULL, "worldmodel", 1));
    //  A request is not a reply
    QT_CHECK (qt_control_reply_of (message, nonce) == NULL);
    qt_message_destroy (&message);

    //  The same bytes again are a replay
    message = qt_verifier_open (verifier, QT_CONTROL_TOPIC, QT_CONTROL_ROLE,
                                zframe_data (frame), zframe_size (frame), &cause);
    QT_CHECK (!message && cause == QT_DROP_REPLAY);
    zframe_destroy (&frame);

    //  A reply answers only its own nonce
    Quintet__ControlReply reply = QUINTET__CONTROL_REPLY__INIT;
    reply.nonce.data = nonce;
    reply.nonce.len = QT_CONTROL_NONCE_SIZE;
    reply.role = "control";
    Quintet__ControlMessage body = QUINTET__CONTROL_MESSAGE__INIT;
    body.reply = &reply;
    frame = qt_signer_seal (signer, QUINTET__PAYLOAD_TYPE__CONTROL, 0, &body.base);
    message = qt_verifier_open (verifier, QT_CONTROL_TOPIC, QT_CONTROL_ROLE,
                                zframe_data (frame), zframe_size (frame), &cause);
    QT_CHECK (message && qt_control_reply_of (message, nonce));
    uint8_t other [QT_CONTROL_NONCE_SIZE] = { 0 };
    QT_CHECK (qt_control_reply_of (message, other) == NULL);
    qt_message_destroy (&message);
    zframe_destroy (&frame);

    //  A captured request is never answered again, however many newer
    //  requests (each quintetctl run is a new epoch) came since, and two
    //  runs at once are both answered whichever arrives first
    frame = qt_control_request (signer, "status", "worldmodel", 1, nonce);
    message = qt_verifier_open (verifier, QT_CONTROL_TOPIC, QT_CONTROL_ROLE,
                                zframe_data (frame), zframe_size (frame), &cause);
    QT_CHECK (qt_control_request_of (message));
    qt_message_destroy (&message);
    zframe_t *captured = frame;
    for (int run = 0; run < S_TEST_NEWER_RUNS; run++) {
        qt_keypair_t *again = qt_keypair_load (secret, QT_CONTROL_ROLE, 1, &error);
        QT_CHECK (again);
        qt_signer_t *newer = qt_signer_new (&again);
        frame = qt_control_request (newer, "status", "worldmodel", 1, nonce);
        message = qt_verifier_open (verifier, QT_CONTROL_TOPIC, QT_CONTROL_ROLE,
                                    zframe_data (frame), zframe_size (frame), &cause);
        QT_CHECK (qt_control_request_of (message));
        qt_message_destroy (&message);
        zframe_destroy (&frame);
        qt_signer_destroy (&newer);
        if (run == S_TEST_EPOCH_ROLLBACK_RUNS - 1 || run == S_TEST_NEWER_RUNS - 1) {
            message = qt_verifier_open (verifier, QT_CONTROL_TOPIC, QT_CONTROL_ROLE,
                                        zframe_data (captured), zframe_size (captured), &cause);
            QT_CHECK (!message && cause == QT_DROP_REPLAY);
        }
    }
    zframe_destroy (&captured);
    qt_keypair_t *pair_a = qt_keypair_load (secret, QT_CONTROL_ROLE, 1, &error);
    qt_keypair_t *pair_b = qt_keypair_load (secret, QT_CONTROL_ROLE, 1, &error);
    qt_signer_t *run_a = qt_signer_new (&pair_a);
    qt_signer_t *run_b = qt_signer_new (&pair_b);
    zframe_t *first = qt_control_request (run_a, "status", "worldmodel", 1, nonce);
    zframe_t *second = qt_control_request (run_b, "status", "worldmodel", 1, nonce);
    message = qt_verifier_open (verifier, QT_CONTROL_TOPIC, QT_CONTROL_ROLE,
                                zframe_data (second), zframe_size (second), &cause);
    QT_CHECK (message);
    qt_message_destroy (&message);
    message = qt_verifier_open (verifier, QT_CONTROL_TOPIC, QT_CONTROL_ROLE,
                                zframe_data (first), zframe_size (first), &cause);
    QT_CHECK (message);
    qt_message_destroy (&message);
    zframe_destroy (&first);
    zframe_destroy (&second);
    qt_signer_destroy (&run_a);
    qt_signer_destroy (&run_b);
    //  @end

    qt_verifier_destroy (&verifier);
    qt_trust_destroy (&trust);
    qt_signer_destroy (&signer);
    unlink (secret);
    unlink (public);
    zstr_free (&secret);
    zstr_free (&public);
    QT_CHECK (rmdir (tmpdir) == 0);
    if (verbose)
        printf ("OK\n");
}
