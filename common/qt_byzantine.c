/*  qt_byzantine: value attacks by a walk over the payload's protobuf-c
    descriptor on a decoded copy (the role's own structures are never
    touched), protocol faults by sealing the envelope by hand.
*/
#include "quintet.h"
#include "qt_selftest.h"
#include "qt_byzantine.h"

#define S_CONTEXT_LEN   (sizeof QT_SIGNATURE_CONTEXT - 1)
#define S_DRIFT_FLIP    0.01    //  drift on integers: flip probability per message

static const char *const s_mode_names [QT_BYZANTINE_MODES] = {
    "honest", "sign-flip", "ipm", "alie", "gaussian", "inf", "nan", "mimic", "extreme", "drift",
    "bad-signature", "wrong-role", "replay", "stale-tick", "truncated", "oversized",
    "malformed", "wrong-batch-size", "silence"
};

//  Doubles that validation keeps in [0, 1], and those it keeps >= 0
static const char *const s_probability_fields [] = {
    "reliability", "honest", "data_reliability", "weight", NULL
};
static const char *const s_nonnegative_fields [] = {
    "spread", "entropy", "effective_particles", NULL
};
//  Doubles that are metadata, not values
static const char *const s_untouched_fields [] = { "quantile", NULL };
//  Integers that carry the payload's meaning: actions taken or wanted
static const char *const s_integer_fields [] = { "action", "actions", NULL };
//  Bytes that carry the payload's meaning: sensor readings
static const char *const s_bytes_fields [] = { "values", NULL };

struct _qt_byzantine_t {
    qt_byzantine_mode_t mode;
    qt_rng_t rng;
    uint64_t count;                 //  messages lied about
    char role [QT_ROLE_MAX];
    uint32_t replica;
    qt_keypair_t *foreign;          //  wrong-role: another role's key
    uint64_t epoch;                 //  for envelopes sealed by hand
    uint64_t seq;
    zframe_t *captured;             //  replay: the first message sent
};

const char *
qt_byzantine_mode_name (qt_byzantine_mode_t mode)
{
    return mode < QT_BYZANTINE_MODES ? s_mode_names [mode] : "?";
}

int
qt_byzantine_mode_parse (const char *name, qt_byzantine_mode_t *mode)
{
    for (int i = 0; i < QT_BYZANTINE_MODES; i++)
        if (name && streq (name, s_mode_names [i])) {
            *mode = (qt_byzantine_mode_t) i;
            return 0;
        }
    return -1;
}

bool
qt_byzantine_mode_is_value (qt_byzantine_mode_t mode)
{
    return mode >= QT_BYZANTINE_SIGN_FLIP && mode <= QT_BYZANTINE_DRIFT;
}

static bool
s_in (const char *name, const char *const *list)
{
    for (; *list; list++)
        if (streq (name, *list))
            return true;
    return false;
}

qt_byzantine_t *
qt_byzantine_new (qt_byzantine_mode_t mode, uint64_t seed, const char *role, uint32_t replica,
                  const char *key_dir)
{
    if (mode >= QT_BYZANTINE_MODES || !role)
        return NULL;
    qt_byzantine_t *self = (qt_byzantine_t *) zmalloc (sizeof (qt_byzantine_t));
    self->mode = mode;
    snprintf (self->role, sizeof self->role, "%s", role);
    self->replica = replica;
    //  A stream no honest consumer of this seed uses
    qt_rng_seed (&self->rng, seed ^ 0xb42a171e5ULL, (uint64_t) replica * 131 + strlen (role));
    self->epoch = qt_rng_next (&self->rng);
    if (mode == QT_BYZANTINE_WRONG_ROLE) {
        const char *other = streq (role, "world") ? "collector" : "world";
        if (key_dir) {
            char *path = zsys_sprintf ("%s/%s-1.key", key_dir, other);
            char *error = NULL;
            self->foreign = qt_keypair_load (path, other, 1, &error);
            zstr_free (&error);
            zstr_free (&path);
        }
        if (!self->foreign)
            self->foreign = qt_keypair_generate (other, 1);     //  unknown-key, not wrong-role
    }
    return self;
}

void
qt_byzantine_destroy (qt_byzantine_t **self_p)
{
    assert (self_p);
    if (*self_p) {
        qt_byzantine_t *self = *self_p;
        qt_keypair_destroy (&self->foreign);
        zframe_destroy (&self->captured);
        free (self);
        *self_p = NULL;
    }
}

static double
s_clamp01 (double value)
{
    return value < 0 ? 0 : value > 1 ? 1 : value;
}

//  The lie for one honest double mu
static double
s_lie_double (qt_byzantine_t *self, const char *field, double mu)
{
    double scale = fabs (mu) > 1 ? fabs (mu) : 1;
    double lie = mu;
    switch (self->mode) {
        case QT_BYZANTINE_SIGN_FLIP: lie = -mu; break;
        case QT_BYZANTINE_IPM:       lie = -QT_BYZANTINE_TAU_IPM * mu; break;
        case QT_BYZANTINE_ALIE:      lie = mu + QT_BYZANTINE_TAU_ALIE * QT_BYZANTINE_SPREAD * scale; break;
        case QT_BYZANTINE_GAUSSIAN:  lie = qt_rng_normal (&self->rng); break;
        case QT_BYZANTINE_INF:       return INFINITY;
        case QT_BYZANTINE_NAN:       return NAN;
        case QT_BYZANTINE_MIMIC:     return mu;
        case QT_BYZANTINE_EXTREME:   return mu >= 0 ? -QT_BYZANTINE_EXTREME_VALUE : QT_BYZANTINE_EXTREME_VALUE;
        case QT_BYZANTINE_DRIFT:     lie = mu + (double) self->count * QT_BYZANTINE_DRIFT_RATE * scale; break;
        default:                     return mu;
    }
    if (s_in (field, s_probability_fields)) {
        if (self->mode == QT_BYZANTINE_SIGN_FLIP || self->mode == QT_BYZANTINE_IPM)
            return 1 - mu;
        return s_clamp01 (lie);
    }
    if (s_in (field, s_nonnegative_fields))
        return fabs (lie);
    return lie;
}

//  The lie for one honest integer reading or action
static uint32_t
s_lie_integer (qt_byzantine_t *self, uint32_t value)
{
    switch (self->mode) {
        case QT_BYZANTINE_SIGN_FLIP:
        case QT_BYZANTINE_IPM:
        case QT_BYZANTINE_ALIE:
        case QT_BYZANTINE_EXTREME:
            return value ^ 1;
        case QT_BYZANTINE_GAUSSIAN:
            return value ^ (uint32_t) (qt_rng_next (&self->rng) & 1);
        case QT_BYZANTINE_INF:
        case QT_BYZANTINE_NAN:
            return value + QT_BYZANTINE_OUT_OF_RANGE;
        case QT_BYZANTINE_DRIFT: {
            double p = s_clamp01 ((double) self->count * S_DRIFT_FLIP);
            return qt_rng_bernoulli (&self->rng, p) ? value ^ 1 : value;
        }
        default:
            return value;
    }
}

//  The lie for one honest sensor reading, in place: the same values
//  rearranged (a mirror image, a shuffle, a growing number of swaps) so the
//  lie stays a valid reading that must be outvoted; inf and nan push every
//  value out of range, to be rejected.
static void
s_lie_bytes (qt_byzantine_t *self, uint8_t *values, size_t length)
{
    switch (self->mode) {
        case QT_BYZANTINE_SIGN_FLIP:
        case QT_BYZANTINE_IPM:
        case QT_BYZANTINE_ALIE:
        case QT_BYZANTINE_EXTREME:
            if (length == 1)
                values [0] ^= 1;
            for (size_t i = 0; i < length / 2; i++) {
                uint8_t swap = values [i];
                values [i] = values [length - 1 - i];
                values [length - 1 - i] = swap;
            }
            break;
        case QT_BYZANTINE_GAUSSIAN:
            for (size_t i = length; i > 1; i--) {
                size_t j = qt_rng_below (&self->rng, (uint32_t) i);
                uint8_t swap = values [i - 1];
                values [i - 1] = values [j];
                values [j] = swap;
            }
            break;
        case QT_BYZANTINE_INF:
        case QT_BYZANTINE_NAN:
            for (size_t i = 0; i < length; i++)
                values [i] |= 0x80;
            break;
        case QT_BYZANTINE_DRIFT:
            for (uint64_t k = 0; k < self->count && length > 1; k++) {
                if (!qt_rng_bernoulli (&self->rng, S_DRIFT_FLIP))
                    continue;
                size_t i = qt_rng_below (&self->rng, (uint32_t) length);
                size_t j = qt_rng_below (&self->rng, (uint32_t) length);
                uint8_t swap = values [i];
                values [i] = values [j];
                values [j] = swap;
            }
            break;
        default:
            break;
    }
}

//  Walks every field of a message, recursing into sub-messages
static void
s_corrupt (qt_byzantine_t *self, ProtobufCMessage *message)
{
    const ProtobufCMessageDescriptor *descriptor = message->descriptor;
    for (unsigned f = 0; f < descriptor->n_fields; f++) {
        const ProtobufCFieldDescriptor *field = &descriptor->fields [f];
        char *base = (char *) message + field->offset;
        bool repeated = field->label == PROTOBUF_C_LABEL_REPEATED;
        size_t count = repeated ? *(size_t *) ((char *) message + field->quantifier_offset) : 1;
        if (field->type == PROTOBUF_C_TYPE_DOUBLE && !s_in (field->name, s_untouched_fields)) {
            double *values = repeated ? *(double **) base : (double *) base;
            for (size_t i = 0; i < count; i++)
                values [i] = s_lie_double (self, field->name, values [i]);
        }
        else
        if (field->type == PROTOBUF_C_TYPE_UINT32 && s_in (field->name, s_integer_fields)) {
            uint32_t *values = repeated ? *(uint32_t **) base : (uint32_t *) base;
            for (size_t i = 0; i < count; i++)
                values [i] = s_lie_integer (self, values [i]);
        }
        else
        if (field->type == PROTOBUF_C_TYPE_BYTES && !repeated && s_in (field->name, s_bytes_fields)) {
            ProtobufCBinaryData *bytes = (ProtobufCBinaryData *) base;
            s_lie_bytes (self, bytes->data, bytes->len);
        }
        else
        if (field->type == PROTOBUF_C_TYPE_MESSAGE) {
            ProtobufCMessage **children = repeated ? *(ProtobufCMessage ***) base
                                                   : (ProtobufCMessage **) base;
            for (size_t i = 0; i < count; i++)
                if (children [i])
                    s_corrupt (self, children [i]);
        }
    }
}

static uint8_t *
s_pack (const ProtobufCMessage *payload, size_t *size)
{
    *size = protobuf_c_message_get_packed_size (payload);
    uint8_t *bytes = (uint8_t *) malloc (*size ? *size : 1);
    assert (bytes);
    protobuf_c_message_pack (payload, bytes);
    return bytes;
}

uint8_t *
qt_byzantine_payload (qt_byzantine_t *self, const ProtobufCMessage *payload, size_t *size)
{
    uint8_t *bytes = s_pack (payload, size);
    bool batch_lie = self->mode == QT_BYZANTINE_WRONG_BATCH_SIZE;
    if (!qt_byzantine_mode_is_value (self->mode) && !batch_lie)
        return bytes;
    //  Lie on a decoded copy: the role's structures stay honest
    ProtobufCMessage *copy = protobuf_c_message_unpack (payload->descriptor, NULL, *size, bytes);
    assert (copy);
    if (batch_lie) {
        const ProtobufCFieldDescriptor *field =
            protobuf_c_message_descriptor_get_field_by_name (payload->descriptor, "batch");
        if (field && field->type == PROTOBUF_C_TYPE_UINT32)
            (*(uint32_t *) ((char *) copy + field->offset))++;
    }
    else
        s_corrupt (self, copy);
    free (bytes);
    bytes = s_pack (copy, size);
    protobuf_c_message_free_unpacked (copy, NULL);
    self->count++;
    return bytes;
}

static uint64_t
s_now_ns (void)
{
    struct timespec now;
    clock_gettime (CLOCK_REALTIME, &now);
    return (uint64_t) now.tv_sec * 1000000000ULL + (uint64_t) now.tv_nsec;
}

//  An envelope claiming this replica, signed with any key, sent at any time
static zframe_t *
s_seal_as (qt_byzantine_t *self, const qt_keypair_t *key, Quintet__PayloadType type,
           uint64_t tick, uint64_t sent_ns, const uint8_t *payload, size_t size)
{
    Quintet__Envelope envelope = QUINTET__ENVELOPE__INIT;
    envelope.role = self->role;
    envelope.replica = self->replica;
    envelope.key_id = (char *) key->key_id;
    envelope.epoch = self->epoch;
    envelope.seq = ++self->seq;
    envelope.tick = tick;
    envelope.sent_ns = sent_ns;
    envelope.type = type;
    envelope.payload.data = (uint8_t *) payload;
    envelope.payload.len = size;
    size_t envelope_size = quintet__envelope__get_packed_size (&envelope);
    uint8_t *signed_bytes = (uint8_t *) malloc (S_CONTEXT_LEN + envelope_size);
    assert (signed_bytes);
    memcpy (signed_bytes, QT_SIGNATURE_CONTEXT, S_CONTEXT_LEN);
    quintet__envelope__pack (&envelope, signed_bytes + S_CONTEXT_LEN);
    unsigned char signature [crypto_sign_BYTES];
    crypto_sign_detached (signature, NULL, signed_bytes, S_CONTEXT_LEN + envelope_size,
                          key->secret_key);
    Quintet__SignedMessage message = QUINTET__SIGNED_MESSAGE__INIT;
    message.envelope.data = signed_bytes + S_CONTEXT_LEN;
    message.envelope.len = envelope_size;
    message.signature.data = signature;
    message.signature.len = sizeof signature;
    zframe_t *frame = zframe_new (NULL, quintet__signed_message__get_packed_size (&message));
    quintet__signed_message__pack (&message, zframe_data (frame));
    free (signed_bytes);
    return frame;
}

zframe_t *
qt_byzantine_seal (qt_byzantine_t *self, qt_signer_t *signer, Quintet__PayloadType type,
                   uint64_t tick, const uint8_t *payload, size_t size)
{
    zframe_t *frame = NULL;
    switch (self->mode) {
        case QT_BYZANTINE_SILENCE:
            self->count++;
            return NULL;
        case QT_BYZANTINE_BAD_SIGNATURE:
            //  The signature is the frame's last field: flip a bit of its last byte
            frame = qt_signer_seal_bytes (signer, type, tick, payload, size);
            zframe_data (frame) [zframe_size (frame) - 1] ^= 1;
            break;
        case QT_BYZANTINE_WRONG_ROLE:
            frame = s_seal_as (self, self->foreign, type, tick, s_now_ns (), payload, size);
            break;
        case QT_BYZANTINE_REPLAY:
            if (!self->captured) {
                self->captured = qt_signer_seal_bytes (signer, type, tick, payload, size);
                return zframe_dup (self->captured);     //  the original, sent once
            }
            frame = zframe_dup (self->captured);
            break;
        case QT_BYZANTINE_STALE_TICK:
            frame = s_seal_as (self, qt_signer_keypair (signer), type, tick,
                               s_now_ns () - (uint64_t) QT_BYZANTINE_STALE_S * 1000000000ULL,
                               payload, size);
            break;
        case QT_BYZANTINE_TRUNCATED: {
            zframe_t *whole = qt_signer_seal_bytes (signer, type, tick, payload, size);
            frame = zframe_new (zframe_data (whole), zframe_size (whole) / 2);
            zframe_destroy (&whole);
            break;
        }
        case QT_BYZANTINE_OVERSIZED: {
            if (self->seq++ % QT_BYZANTINE_OVERSIZE_EVERY)
                return NULL;
            zframe_t *whole = qt_signer_seal_bytes (signer, type, tick, payload, size);
            frame = zframe_new (NULL, QT_MESSAGE_SIZE_CAP + 1);
            memset (zframe_data (frame), 0, zframe_size (frame));
            memcpy (zframe_data (frame), zframe_data (whole), zframe_size (whole));
            zframe_destroy (&whole);
            break;
        }
        case QT_BYZANTINE_MALFORMED:
            //  0xff is field 31 of wire type 7, which does not exist
            frame = zframe_new (NULL, size + 16);
            memset (zframe_data (frame), 0xff, zframe_size (frame));
            break;
        default:
            //  Value attacks and wrong-batch-size lie in the payload, signed properly
            return qt_signer_seal_bytes (signer, type, tick, payload, size);
    }
    self->count++;
    return frame;
}

//  --------------------------------------------------------------------------
//  Selftest

static Quintet__ProposalBatch *
s_test_proposal (double *values, Quintet__RewardVector *vector, Quintet__RewardVector **vectors,
                 char **components)
{
    static Quintet__ProposalBatch batch;
    static Quintet__InstanceClock clock;
    quintet__proposal_batch__init (&batch);
    quintet__instance_clock__init (&clock);
    quintet__reward_vector__init (vector);
    vector->clock = &clock;
    vector->n_values = 2;
    vector->values = values;
    vectors [0] = vector;
    batch.batch = 1;
    batch.n_components = 2;
    batch.components = components;
    batch.n_instances = 1;
    batch.instances = vectors;
    return &batch;
}

//  The first instance's values after a value attack
static void
s_test_attack (qt_byzantine_mode_t mode, const ProtobufCMessage *payload, double *out)
{
    qt_byzantine_t *liar = qt_byzantine_new (mode, 1, "rewarder", 2, NULL);
    size_t size = 0;
    uint8_t *bytes = qt_byzantine_payload (liar, payload, &size);
    Quintet__ProposalBatch *lie = quintet__proposal_batch__unpack (NULL, size, bytes);
    QT_CHECK (lie && lie->n_instances == 1 && lie->instances [0]->n_values == 2);
    out [0] = lie->instances [0]->values [0];
    out [1] = lie->instances [0]->values [1];
    quintet__proposal_batch__free_unpacked (lie, NULL);
    free (bytes);
    qt_byzantine_destroy (&liar);
}

void
qt_byzantine_test (bool verbose)
{
    if (verbose)
        printf (" * qt_byzantine: ");
    qt_byzantine_mode_t mode;
    for (int i = 0; i < QT_BYZANTINE_MODES; i++) {
        QT_CHECK (qt_byzantine_mode_parse (qt_byzantine_mode_name ((qt_byzantine_mode_t) i), &mode) == 0);
        QT_CHECK ((int) mode == i);
    }
    QT_CHECK (qt_byzantine_mode_parse ("sign_flip", &mode) == -1);
    QT_CHECK (qt_byzantine_mode_is_value (QT_BYZANTINE_DRIFT));
    QT_CHECK (!qt_byzantine_mode_is_value (QT_BYZANTINE_REPLAY));

    //  Value attacks on a proposal: mu = (2, -0.5)
    double honest [2] = { 2.0, -0.5 };
    char *components [2] = { "reward", "score" };
    Quintet__RewardVector vector, *vectors [1];
    Quintet__ProposalBatch *proposal = s_test_proposal (honest, &vector, vectors, components);
    double lie [2];
    s_test_attack (QT_BYZANTINE_SIGN_FLIP, &proposal->base, lie);
    QT_CHECK (lie [0] == -2.0 && lie [1] == 0.5);
    s_test_attack (QT_BYZANTINE_IPM, &proposal->base, lie);
    QT_CHECK (lie [0] == -4.0 && lie [1] == 1.0);
    s_test_attack (QT_BYZANTINE_ALIE, &proposal->base, lie);
    QT_CHECK (lie [0] == 2.0 + 1.5 * 0.5 * 2.0 && lie [1] == -0.5 + 1.5 * 0.5);
    s_test_attack (QT_BYZANTINE_INF, &proposal->base, lie);
    QT_CHECK (isinf (lie [0]) && lie [0] > 0);
    s_test_attack (QT_BYZANTINE_NAN, &proposal->base, lie);
    QT_CHECK (isnan (lie [0]) && isnan (lie [1]));
    s_test_attack (QT_BYZANTINE_MIMIC, &proposal->base, lie);
    QT_CHECK (lie [0] == 2.0 && lie [1] == -0.5);
    s_test_attack (QT_BYZANTINE_EXTREME, &proposal->base, lie);
    QT_CHECK (lie [0] == -1e300 && lie [1] == 1e300);
    s_test_attack (QT_BYZANTINE_DRIFT, &proposal->base, lie);
    QT_CHECK (lie [0] == 2.0);        //  no bias on the first message
    double first [2];
    s_test_attack (QT_BYZANTINE_GAUSSIAN, &proposal->base, first);
    s_test_attack (QT_BYZANTINE_GAUSSIAN, &proposal->base, lie);
    QT_CHECK (first [0] == lie [0] && first [0] != 2.0);     //  deterministic from the seed
    //  The honest payload itself is untouched
    QT_CHECK (honest [0] == 2.0 && honest [1] == -0.5);

    //  The drift grows per message; a validated proposal NaN is rejected
    qt_byzantine_t *drift = qt_byzantine_new (QT_BYZANTINE_DRIFT, 1, "rewarder", 2, NULL);
    double previous = 2.0;
    for (int k = 0; k < 4; k++) {
        size_t size;
        uint8_t *bytes = qt_byzantine_payload (drift, &proposal->base, &size);
        Quintet__ProposalBatch *drifted = quintet__proposal_batch__unpack (NULL, size, bytes);
        QT_CHECK (k == 0 || drifted->instances [0]->values [0] > previous);
        previous = drifted->instances [0]->values [0];
        quintet__proposal_batch__free_unpacked (drifted, NULL);
        free (bytes);
    }
    QT_CHECK (drift->count == 4);
    qt_byzantine_destroy (&drift);

    //  Probabilities stay probabilities; actions become wrong actions
    double reliability [2] = { 0.25, 1.0 }, honest_p [2] = { 0.5, 0.5 };
    Quintet__InstanceClock clock = QUINTET__INSTANCE_CLOCK__INIT;
    Quintet__StateSample sample = QUINTET__STATE_SAMPLE__INIT;
    Quintet__StateSample *samples [1] = { &sample };
    sample.weight = 1;
    Quintet__Belief belief = QUINTET__BELIEF__INIT;
    Quintet__Belief *beliefs [1] = { &belief };
    char *sensor_names [2] = { "camera", "position" };
    belief.clock = &clock;
    belief.n_reliability = belief.n_honest = 2;
    belief.reliability = reliability;
    belief.honest = honest_p;
    belief.n_samples = 1;
    belief.samples = samples;
    belief.data_reliability = 0.75;
    belief.entropy = 0.5;
    Quintet__BeliefBatch belief_batch = QUINTET__BELIEF_BATCH__INIT;
    belief_batch.batch = 1;
    belief_batch.n_sensors = 2;
    belief_batch.sensors = sensor_names;
    belief_batch.n_instances = 1;
    belief_batch.instances = beliefs;
    qt_byzantine_t *liar = qt_byzantine_new (QT_BYZANTINE_SIGN_FLIP, 1, "worldmodel", 1, NULL);
    size_t size;
    uint8_t *bytes = qt_byzantine_payload (liar, &belief_batch.base, &size);
    Quintet__BeliefBatch *lied = quintet__belief_batch__unpack (NULL, size, bytes);
    QT_CHECK (lied->instances [0]->reliability [0] == 0.75 && lied->instances [0]->reliability [1] == 0.0);
    QT_CHECK (lied->instances [0]->data_reliability == 0.25 && lied->instances [0]->entropy == 0.5);
    QT_CHECK (lied->instances [0]->samples [0]->weight == 0);
    QT_CHECK (qt_payload_validate (QUINTET__PAYLOAD_TYPE__BELIEF_BATCH, &lied->base, 1) == QT_DROP_NONE);
    quintet__belief_batch__free_unpacked (lied, NULL);
    free (bytes);
    qt_byzantine_destroy (&liar);

    //  Readings are rearranged (valid values) or pushed out of range
    uint8_t reading [4] = { '#', ' ', 'A', 'T' };
    Quintet__Readings readings = QUINTET__READINGS__INIT;
    Quintet__Readings *readings_p [1] = { &readings };
    readings.clock = &clock;
    readings.values.data = reading;
    readings.values.len = sizeof reading;
    Quintet__ObservationBatch obs = QUINTET__OBSERVATION_BATCH__INIT;
    obs.batch = 1;
    obs.n_instances = 1;
    obs.instances = readings_p;
    liar = qt_byzantine_new (QT_BYZANTINE_SIGN_FLIP, 1, "collector", 1, NULL);
    bytes = qt_byzantine_payload (liar, &obs.base, &size);
    Quintet__ObservationBatch *mirrored = quintet__observation_batch__unpack (NULL, size, bytes);
    QT_CHECK (memcmp (mirrored->instances [0]->values.data, "TA #", 4) == 0);
    quintet__observation_batch__free_unpacked (mirrored, NULL);
    free (bytes);
    qt_byzantine_destroy (&liar);
    liar = qt_byzantine_new (QT_BYZANTINE_NAN, 1, "collector", 1, NULL);
    bytes = qt_byzantine_payload (liar, &obs.base, &size);
    Quintet__ObservationBatch *garbled = quintet__observation_batch__unpack (NULL, size, bytes);
    for (size_t k = 0; k < sizeof reading; k++)
        QT_CHECK (garbled->instances [0]->values.data [k] >= 0x80);
    quintet__observation_batch__free_unpacked (garbled, NULL);
    free (bytes);
    qt_byzantine_destroy (&liar);
    QT_CHECK (memcmp (reading, "# AT", 4) == 0);

    uint32_t actions [3] = { 0, 1, 3 };
    Quintet__ActionBatch action_batch = QUINTET__ACTION_BATCH__INIT;
    action_batch.batch = 3;
    action_batch.n_actions = 3;
    action_batch.actions = actions;
    liar = qt_byzantine_new (QT_BYZANTINE_EXTREME, 1, "actor", 1, NULL);
    bytes = qt_byzantine_payload (liar, &action_batch.base, &size);
    Quintet__ActionBatch *wrong = quintet__action_batch__unpack (NULL, size, bytes);
    QT_CHECK (wrong->actions [0] == 1 && wrong->actions [1] == 0 && wrong->actions [2] == 2);
    quintet__action_batch__free_unpacked (wrong, NULL);
    free (bytes);
    qt_byzantine_destroy (&liar);

    //  Protocol faults, against a real verifier: each dropped for its cause
    char dir [] = "/tmp/qt_byzantine_test.XXXXXX";
    QT_CHECK (mkdtemp (dir));
    const char *identities [][2] = { { "rewarder", "rewarder-2" }, { "world", "world-1" } };
    for (size_t i = 0; i < 2; i++) {
        qt_keypair_t *pair = qt_keypair_generate (identities [i][0], i == 0 ? 2 : 1);
        char *secret = zsys_sprintf ("%s/%s.key", dir, identities [i][1]);
        char *public = zsys_sprintf ("%s/%s.pub", dir, identities [i][1]);
        QT_CHECK (qt_keypair_save (pair, secret, public) == 0);
        zstr_free (&secret);
        zstr_free (&public);
        qt_keypair_destroy (&pair);
    }
    char *error = NULL;
    qt_trust_t *trust = qt_trust_load (dir, &error);
    QT_CHECK (trust && !error);
    char *secret = zsys_sprintf ("%s/rewarder-2.key", dir);
    qt_keypair_t *pair = qt_keypair_load (secret, "rewarder", 2, &error);
    QT_CHECK (pair);
    zstr_free (&secret);
    qt_signer_t *signer = qt_signer_new (&pair);
    struct {
        qt_byzantine_mode_t mode;
        qt_drop_cause_t cause;
    } faults [] = {
        { QT_BYZANTINE_BAD_SIGNATURE, QT_DROP_BAD_SIGNATURE },
        { QT_BYZANTINE_WRONG_ROLE, QT_DROP_WRONG_ROLE },
        { QT_BYZANTINE_REPLAY, QT_DROP_REPLAY },
        { QT_BYZANTINE_STALE_TICK, QT_DROP_STALE },
        { QT_BYZANTINE_TRUNCATED, QT_DROP_MALFORMED },
        { QT_BYZANTINE_OVERSIZED, QT_DROP_OVERSIZE },
        { QT_BYZANTINE_MALFORMED, QT_DROP_MALFORMED },
        { QT_BYZANTINE_WRONG_BATCH_SIZE, QT_DROP_BATCH_SIZE },
        { QT_BYZANTINE_SIGN_FLIP, QT_DROP_NONE },
        { QT_BYZANTINE_NAN, QT_DROP_INVALID },
    };
    for (size_t i = 0; i < sizeof faults / sizeof faults [0]; i++) {
        qt_verifier_t *verifier = qt_verifier_new (trust, 1);
        liar = qt_byzantine_new (faults [i].mode, 1, "rewarder", 2, dir);
        //  The replay mode's first message is the honest original
        size_t messages = faults [i].mode == QT_BYZANTINE_REPLAY ? 3 : 1;
        for (size_t m = 0; m < messages; m++) {
            bytes = qt_byzantine_payload (liar, &proposal->base, &size);
            zframe_t *frame = qt_byzantine_seal (liar, signer, QUINTET__PAYLOAD_TYPE__PROPOSAL_BATCH,
                                                 7, bytes, size);
            free (bytes);
            QT_CHECK (frame);
            qt_drop_cause_t cause;
            qt_message_t *message = qt_verifier_open (verifier, "proposal", "rewarder",
                                                      zframe_data (frame), zframe_size (frame), &cause);
            bool original = faults [i].mode == QT_BYZANTINE_REPLAY && m == 0;
            QT_CHECK (cause == (original ? QT_DROP_NONE : faults [i].cause));
            QT_CHECK ((message != NULL) == (cause == QT_DROP_NONE));
            qt_message_destroy (&message);
            zframe_destroy (&frame);
        }
        qt_byzantine_destroy (&liar);
        qt_verifier_destroy (&verifier);
    }
    liar = qt_byzantine_new (QT_BYZANTINE_SILENCE, 1, "rewarder", 2, dir);
    bytes = qt_byzantine_payload (liar, &proposal->base, &size);
    QT_CHECK (qt_byzantine_seal (liar, signer, QUINTET__PAYLOAD_TYPE__PROPOSAL_BATCH, 7, bytes, size) == NULL);
    free (bytes);
    qt_byzantine_destroy (&liar);
    qt_signer_destroy (&signer);
    qt_trust_destroy (&trust);
    const char *files [] = { "rewarder-2.key", "rewarder-2.pub", "world-1.key", "world-1.pub" };
    for (size_t i = 0; i < sizeof files / sizeof files [0]; i++) {
        char *path = zsys_sprintf ("%s/%s", dir, files [i]);
        unlink (path);
        zstr_free (&path);
    }
    rmdir (dir);
    if (verbose)
        printf ("OK\n");
}
