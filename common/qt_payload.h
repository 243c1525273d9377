/*  qt_payload: what quintet knows about its payload types, in one place.

    Maps each topic to its payload type and protobuf descriptor, and checks
    the values every payload must satisfy whatever the environment: batch
    size B, finite numbers, probabilities in [0, 1]. Environment-specific
    checks (camera size, number of probes) belong to the environment module.
*/
#ifndef QT_PAYLOAD_H_INCLUDED
#define QT_PAYLOAD_H_INCLUDED

#include <stdbool.h>
#include <stddef.h>
#include "quintet.pb-c.h"

//  Why a message was dropped. Every receive-path failure has one cause, and
//  every cause has a counter (design.md section 3).
typedef enum {
    QT_DROP_NONE = 0,
    QT_DROP_OVERSIZE,           //  frame above the size cap
    QT_DROP_MALFORMED,          //  bad framing, SignedMessage or Envelope does not decode
    QT_DROP_UNKNOWN_KEY,        //  key id not in the trust store
    QT_DROP_WRONG_ROLE,         //  key bound to another role or replica than claimed
    QT_DROP_BAD_SIGNATURE,      //  signature does not verify
    QT_DROP_REPLAY,             //  (key, epoch, seq) already seen or too old
    QT_DROP_STALE,              //  send time or tick too far from now
    QT_DROP_WRONG_TYPE,         //  payload type does not match the topic
    QT_DROP_UNEXPECTED,         //  sender's role is not an upstream of this stage
    QT_DROP_BAD_PAYLOAD,        //  payload does not decode
    QT_DROP_BATCH_SIZE,         //  not B instances
    QT_DROP_INVALID,            //  non-finite or out-of-range value
    QT_DROP_WRONG_TARGET,       //  control request addressed to another daemon
    QT_DROP_CAUSES
} qt_drop_cause_t;

//  Stable lower-case name of a cause, as logged and reported ("bad-signature")
const char *qt_drop_cause_name (qt_drop_cause_t cause);

//  Payload type carried on a topic, PAYLOAD_UNSPECIFIED for an unknown topic
Quintet__PayloadType qt_payload_type_of_topic (const char *topic);

//  Topic of a payload type, NULL for none
const char *qt_payload_topic (Quintet__PayloadType type);

//  Protobuf descriptor of a payload type, NULL for none
const ProtobufCMessageDescriptor *qt_payload_descriptor (Quintet__PayloadType type);

//  Checks batch size and values of a decoded payload of the given type.
//  Returns QT_DROP_NONE, QT_DROP_BATCH_SIZE or QT_DROP_INVALID.
qt_drop_cause_t qt_payload_validate (Quintet__PayloadType type,
                                     const ProtobufCMessage *payload, size_t batch);

void qt_payload_test (bool verbose);

#endif
