/*  qt_agree: whether two replicas of one role sent the same input.

    Honest replicas are deterministic (design.md section 1): given the same
    inputs they publish the same payload, except for a few fields that say
    something about the replica itself rather than about the tick (its own
    durable log row, the seq of the upstream frame it happened to relay,
    the time it spent learning, its view of its own upstreams). Two payloads
    agree when they are equal in every other field, compared bit for bit
    (doubles included: -0 and 0, or two NaN encodings, differ).

    The consumer's quorum uses it (qt_quorum_set_agreement): f + 1 agreeing
    replicas carry an honest value, since at most f lie; so a tick whose
    present replicas do not yet include f + 1 that agree is worth waiting
    for past the deadline, and then every honest consumer combines the same
    value whichever replicas arrived first (see qt_stage.c "Agreement").
*/
#ifndef QT_AGREE_H_INCLUDED
#define QT_AGREE_H_INCLUDED

#include <stdbool.h>
#include "quintet.pb-c.h"

//  True when a and b (the same message type) are equal in every field but
//  the replica-specific ones (the table in qt_agree.c); false for
//  different types.
bool qt_agree_payloads (const ProtobufCMessage *a, const ProtobufCMessage *b);

void qt_agree_test (bool verbose);

#endif
