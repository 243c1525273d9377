/*  qt_agree: a field-by-field comparison driven by the protobuf-c
    descriptors, so that a new payload field is compared without anyone
    remembering to add it; only the exceptions are listed. */
#include "quintet.h"
#include "qt_agree.h"
#include "qt_selftest.h"

//  The fields that differ between honest replicas of one role: what they
//  say of the replica itself, not of the tick. Every other field is
//  compared. Named, and resolved against the descriptors in the selftest,
//  so a renamed field fails the selftest rather than being compared.
static const struct {
    const ProtobufCMessageDescriptor *message;
    const char *field;
} s_replica_specific [] = {
    //  a collector's own durable log row, and which copy of the upstream
    //  frame it relayed (a re-send has a new seq)
    { &quintet__observation_batch__descriptor, "log_index" },
    { &quintet__observation_batch__descriptor, "source_epoch" },
    { &quintet__observation_batch__descriptor, "source_seq" },
    { &quintet__judgment_batch__descriptor, "log_index" },
    { &quintet__judgment_batch__descriptor, "source_epoch" },
    { &quintet__judgment_batch__descriptor, "source_seq" },
    //  wall-clock time a scorer spent learning
    { &quintet__learning__descriptor, "learn_seconds" },
    //  an aggregator's view of the rewarder replicas (arrival, reputation)
    { &quintet__reward_batch__descriptor, "replicas" },
};

static bool
s_skipped (const ProtobufCMessageDescriptor *message, const ProtobufCFieldDescriptor *field)
{
    for (size_t i = 0; i < sizeof s_replica_specific / sizeof s_replica_specific [0]; i++)
        if (s_replica_specific [i].message == message
        &&  streq (s_replica_specific [i].field, field->name))
            return true;
    return false;
}

static size_t
s_element_size (ProtobufCType type)
{
    switch (type) {
        case PROTOBUF_C_TYPE_INT32: case PROTOBUF_C_TYPE_SINT32: case PROTOBUF_C_TYPE_SFIXED32:
        case PROTOBUF_C_TYPE_UINT32: case PROTOBUF_C_TYPE_FIXED32: case PROTOBUF_C_TYPE_FLOAT:
        case PROTOBUF_C_TYPE_ENUM:
            return 4;
        case PROTOBUF_C_TYPE_INT64: case PROTOBUF_C_TYPE_SINT64: case PROTOBUF_C_TYPE_SFIXED64:
        case PROTOBUF_C_TYPE_UINT64: case PROTOBUF_C_TYPE_FIXED64: case PROTOBUF_C_TYPE_DOUBLE:
            return 8;
        case PROTOBUF_C_TYPE_BOOL:
            return sizeof (protobuf_c_boolean);
        case PROTOBUF_C_TYPE_STRING:
            return sizeof (char *);
        case PROTOBUF_C_TYPE_BYTES:
            return sizeof (ProtobufCBinaryData);
        case PROTOBUF_C_TYPE_MESSAGE:
            return sizeof (ProtobufCMessage *);
    }
    return 0;
}

static bool s_equal (const ProtobufCMessage *a, const ProtobufCMessage *b);

//  One value of a field (an element of a repeated one), at a and b
static bool
s_value_equal (ProtobufCType type, const void *a, const void *b)
{
    if (type == PROTOBUF_C_TYPE_STRING) {
        const char *x = *(char *const *) a, *y = *(char *const *) b;
        return streq (x ? x : "", y ? y : "");
    }
    if (type == PROTOBUF_C_TYPE_BYTES) {
        const ProtobufCBinaryData *x = (const ProtobufCBinaryData *) a;
        const ProtobufCBinaryData *y = (const ProtobufCBinaryData *) b;
        return x->len == y->len && (x->len == 0 || memcmp (x->data, y->data, x->len) == 0);
    }
    if (type == PROTOBUF_C_TYPE_MESSAGE) {
        const ProtobufCMessage *x = *(ProtobufCMessage *const *) a;
        const ProtobufCMessage *y = *(ProtobufCMessage *const *) b;
        if (!x || !y)
            return x == y;
        return s_equal (x, y);
    }
    return memcmp (a, b, s_element_size (type)) == 0;
}

static bool
s_equal (const ProtobufCMessage *a, const ProtobufCMessage *b)
{
    const ProtobufCMessageDescriptor *desc = a->descriptor;
    if (b->descriptor != desc)
        return false;
    const char *x = (const char *) a, *y = (const char *) b;
    for (unsigned f = 0; f < desc->n_fields; f++) {
        const ProtobufCFieldDescriptor *field = &desc->fields [f];
        if (s_skipped (desc, field))
            continue;
        if (field->label == PROTOBUF_C_LABEL_REPEATED) {
            size_t n = *(const size_t *) (x + field->quantifier_offset);
            if (n != *(const size_t *) (y + field->quantifier_offset))
                return false;
            const char *xs = *(char *const *) (x + field->offset);
            const char *ys = *(char *const *) (y + field->offset);
            size_t size = s_element_size (field->type);
            for (size_t i = 0; i < n; i++)
                if (!s_value_equal (field->type, xs + i * size, ys + i * size))
                    return false;
            continue;
        }
        //  proto3 has no presence but for messages (a NULL pointer) and
        //  oneofs, which quintet.proto has none of: the value is the field
        if (field->quantifier_offset
        &&  memcmp (x + field->quantifier_offset, y + field->quantifier_offset,
                    field->flags & PROTOBUF_C_FIELD_FLAG_ONEOF ? sizeof (uint32_t)
                                                               : sizeof (protobuf_c_boolean)))
            return false;
        if (!s_value_equal (field->type, x + field->offset, y + field->offset))
            return false;
    }
    return true;
}

bool
qt_agree_payloads (const ProtobufCMessage *a, const ProtobufCMessage *b)
{
    if (!a || !b)
        return false;
    return s_equal (a, b);
}

void
qt_agree_test (bool verbose)
{
    printf (" * qt_agree: ");
    //  Every exception names a field of its message
    for (size_t i = 0; i < sizeof s_replica_specific / sizeof s_replica_specific [0]; i++)
        QT_CHECK (protobuf_c_message_descriptor_get_field_by_name (
                      s_replica_specific [i].message, s_replica_specific [i].field));

    Quintet__InstanceClock clock_a = QUINTET__INSTANCE_CLOCK__INIT, clock_b = clock_a;
    clock_a.step = clock_b.step = 7;
    Quintet__Readings reading_a = QUINTET__READINGS__INIT, reading_b = reading_a;
    uint8_t values [3] = { 1, 2, 3 }, other [3] = { 1, 2, 4 };
    reading_a.clock = &clock_a;
    reading_b.clock = &clock_b;
    reading_a.values.data = values;
    reading_b.values.data = values;
    reading_a.values.len = reading_b.values.len = 3;
    reading_a.observed_reward = reading_b.observed_reward = 0.5;
    Quintet__Readings *list_a [1] = { &reading_a }, *list_b [1] = { &reading_b };
    Quintet__ObservationBatch obs_a = QUINTET__OBSERVATION_BATCH__INIT, obs_b = obs_a;
    obs_a.env = obs_b.env = (char *) "grid";
    obs_a.batch = obs_b.batch = 1;
    obs_a.n_instances = obs_b.n_instances = 1;
    obs_a.instances = list_a;
    obs_b.instances = list_b;
    //  A collector's own log row and relayed seq do not matter
    obs_a.log_index = 10;
    obs_b.log_index = 12;
    obs_b.source_seq = 99;
    QT_CHECK (qt_agree_payloads (&obs_a.base, &obs_b.base));
    //  Every value of a nested message does
    reading_b.values.data = other;
    QT_CHECK (!qt_agree_payloads (&obs_a.base, &obs_b.base));
    reading_b.values.data = values;
    clock_b.step = 8;
    QT_CHECK (!qt_agree_payloads (&obs_a.base, &obs_b.base));
    clock_b.step = 7;
    reading_b.clock = NULL;
    QT_CHECK (!qt_agree_payloads (&obs_a.base, &obs_b.base));
    reading_b.clock = &clock_b;
    //  Doubles bit for bit: -0 is not 0
    reading_b.observed_reward = 0.5;
    QT_CHECK (qt_agree_payloads (&obs_a.base, &obs_b.base));
    reading_a.observed_reward = 0.0;
    reading_b.observed_reward = -0.0;
    QT_CHECK (!qt_agree_payloads (&obs_a.base, &obs_b.base));
    reading_b.observed_reward = 0.0;
    //  Repeated counts and strings
    obs_b.n_instances = 0;
    QT_CHECK (!qt_agree_payloads (&obs_a.base, &obs_b.base));
    obs_b.n_instances = 1;
    obs_b.env = (char *) "grid2";
    QT_CHECK (!qt_agree_payloads (&obs_a.base, &obs_b.base));
    obs_b.env = (char *) "grid";
    QT_CHECK (qt_agree_payloads (&obs_a.base, &obs_b.base));

    //  Another type never agrees; NULL neither
    Quintet__ActionBatch actions = QUINTET__ACTION_BATCH__INIT;
    QT_CHECK (!qt_agree_payloads (&obs_a.base, &actions.base));
    QT_CHECK (!qt_agree_payloads (NULL, &actions.base));

    //  A scorer's learning time is its own; its weights are not
    double weights_a [2] = { 1, 2 }, weights_b [2] = { 1, 2 };
    Quintet__Learning learning_a = QUINTET__LEARNING__INIT, learning_b = learning_a;
    learning_a.n_weights = learning_b.n_weights = 2;
    learning_a.weights = weights_a;
    learning_b.weights = weights_b;
    learning_a.learn_seconds = 0.01;
    learning_b.learn_seconds = 0.02;
    Quintet__ScoreBatch score_a = QUINTET__SCORE_BATCH__INIT, score_b = score_a;
    score_a.learning = &learning_a;
    score_b.learning = &learning_b;
    QT_CHECK (qt_agree_payloads (&score_a.base, &score_b.base));
    weights_b [1] = 2.5;
    QT_CHECK (!qt_agree_payloads (&score_a.base, &score_b.base));
    if (verbose)
        printf ("(%zu replica-specific fields) ",
                sizeof s_replica_specific / sizeof s_replica_specific [0]);
    printf ("OK\n");
}
