/*  qt_control: the authenticated control channel between quintetctl and
    every daemon.

    A daemon with quintet/control_bind set binds a ROUTER socket there. A
    request is one frame, a SignedMessage (payload type CONTROL, a
    ControlMessage holding a ControlRequest) signed by a key of role
    "control" from the daemon's trust store; anything else is dropped and
    counted. A request names the daemon it is for (target role and
    replica): one captured on its way to a replica and replayed to another
    within its age window is dropped there (wrong-target). The reply is a
    SignedMessage signed by the daemon, holding a ControlReply that echoes
    the request's random nonce, so a recorded reply cannot answer a later
    request. Commands: "status".

    quintetctl side:

        uint8_t nonce [QT_CONTROL_NONCE_SIZE];
        zframe_t *request = qt_control_request (signer, "status", "worldmodel", 1, nonce);
        ... send on a REQ socket, receive frame ...
        qt_message_t *message = qt_verifier_open (verifier, QT_CONTROL_TOPIC, role, ...);
        const Quintet__ControlReply *reply = qt_control_reply_of (message, nonce);
*/
#ifndef QT_CONTROL_H_INCLUDED
#define QT_CONTROL_H_INCLUDED

#include <stdint.h>
#include <czmq.h>
#include "quintet.pb-c.h"
#include "qt_envelope.h"

#define QT_CONTROL_TOPIC        "control"
#define QT_CONTROL_ROLE         "control"   //  the trust store role of operators' keys
#define QT_CONTROL_NONCE_SIZE   16
#define QT_CONTROL_TIMEOUT_MS   2000        //  quintetctl's wait for a reply
#define QT_CONTROL_DROP_PREFIX  "control/" //  control drops in ControlReply.drops: "control/<cause>"
#define QT_CONTROL_LIVE_EPOCHS  QT_REPLAY_LIVE_EPOCHS_MAX   //  quintetctl runs answered side by side

//  Seals a request for command, addressed to the daemon target_role-
//  target_replica; fills nonce with fresh random bytes.
zframe_t *qt_control_request (qt_signer_t *signer, const char *command, const char *target_role,
                              uint32_t target_replica, uint8_t *nonce);

//  The daemon side's verifier of requests. Every quintetctl run signs with
//  a new epoch of the same control key, and several may run at once, so
//  the newest QT_CONTROL_LIVE_EPOCHS epochs are live side by side; a
//  captured request is refused however many newer ones were made since
//  (qt_envelope's replay window).
qt_verifier_t *qt_control_verifier_new (qt_trust_t *trust);

//  The request in a verified message, or NULL if it holds none
const Quintet__ControlRequest *qt_control_request_of (const qt_message_t *message);

//  True if request is addressed to the daemon role-replica (false when it
//  names no target or another one)
bool qt_control_request_for (const Quintet__ControlRequest *request, const char *role, uint32_t replica);

//  The reply in a verified message if it answers nonce, else NULL
const Quintet__ControlReply *qt_control_reply_of (const qt_message_t *message, const uint8_t *nonce);

void qt_control_test (bool verbose);

#endif
