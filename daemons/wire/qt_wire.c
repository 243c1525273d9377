/*  qt_wire: protobuf <-> struct conversions and the per-instance clock. */
#include "qt_wire.h"
#include "qt_selftest.h"

void
qt_wire_clock_get (const Quintet__InstanceClock *wire, qt_wire_clock_t *clock)
{
    memset (clock, 0, sizeof *clock);
    if (!wire)
        return;
    clock->episode = wire->episode;
    clock->step = wire->step;
    clock->done = wire->done;
    clock->terminated = wire->terminated;
    clock->idle = wire->idle;
}

void
qt_wire_clock_put (const qt_wire_clock_t *clock, Quintet__InstanceClock *wire)
{
    quintet__instance_clock__init (wire);
    wire->episode = clock->episode;
    wire->step = clock->step;
    wire->done = clock->done;
    wire->terminated = clock->terminated;
    wire->idle = clock->idle;
}

int
qt_wire_readings_get (const Quintet__Readings *wire, qt_readings_t *readings)
{
    memset (readings, 0, sizeof *readings);
    if (!wire->clock || wire->values.len > QT_ENV_MAX_READING)
        return -1;
    readings->episode = wire->clock->episode;
    readings->step = wire->clock->step;
    readings->done = wire->clock->done;
    readings->terminated = wire->clock->terminated;
    readings->action = wire->action;
    readings->observed_reward = wire->observed_reward;
    readings->length = (uint32_t) wire->values.len;
    if (wire->values.len)
        memcpy (readings->values, wire->values.data, wire->values.len);
    return 0;
}

void
qt_wire_readings_put (const qt_readings_t *readings, Quintet__InstanceClock *clock,
                      Quintet__Readings *wire)
{
    quintet__readings__init (wire);
    quintet__instance_clock__init (clock);
    clock->episode = readings->episode;
    clock->step = readings->step;
    clock->done = readings->done;
    clock->terminated = readings->terminated;
    wire->clock = clock;
    wire->action = readings->action;
    wire->observed_reward = readings->observed_reward;
    wire->values.data = (uint8_t *) readings->values;
    wire->values.len = readings->length;
}

int
qt_wire_belief_get (const Quintet__Belief *wire, wm_belief_t *belief)
{
    memset (belief, 0, sizeof *belief);
    if (wire->n_features > QT_ENV_MAX_FEATURES || wire->n_samples > WM_MAX_SAMPLES
    ||  wire->n_samples == 0 || wire->n_reliability > QT_ENV_MAX_SENSORS
    ||  wire->n_honest != wire->n_reliability)
        return -1;
    belief->n_features = (uint32_t) wire->n_features;
    if (wire->n_features)
        memcpy (belief->features, wire->features, wire->n_features * sizeof (double));
    belief->n_samples = (uint32_t) wire->n_samples;
    belief->n_vars = (uint32_t) wire->samples [0]->n_values;
    for (size_t s = 0; s < wire->n_samples; s++) {
        const Quintet__StateSample *sample = wire->samples [s];
        if (sample->n_values != belief->n_vars || sample->n_values > QT_ENV_MAX_VARS
        ||  sample->n_features != wire->n_features)
            return -1;
        for (size_t v = 0; v < sample->n_values; v++) {
            if (sample->values [v] < INT16_MIN || sample->values [v] > INT16_MAX)
                return -1;
            belief->samples [s].values [v] = (int16_t) sample->values [v];
        }
        if (sample->n_features)
            memcpy (belief->samples [s].features, sample->features,
                    sample->n_features * sizeof (double));
        belief->samples [s].weight = sample->weight;
    }
    belief->entropy = wire->entropy;
    belief->n_sensors = (uint32_t) wire->n_reliability;
    if (wire->n_reliability) {
        memcpy (belief->reliability, wire->reliability, wire->n_reliability * sizeof (double));
        memcpy (belief->honest, wire->honest, wire->n_honest * sizeof (double));
    }
    belief->data_reliability = wire->data_reliability;
    belief->effective_particles = wire->effective_particles;
    return 0;
}

void
qt_wire_belief_put (const wm_belief_t *belief, Quintet__InstanceClock *clock,
                    Quintet__Belief *wire)
{
    quintet__belief__init (wire);
    wire->clock = clock;
    wire->n_features = belief->n_features;
    wire->features = (double *) belief->features;
    wire->n_samples = belief->n_samples;
    wire->samples = (Quintet__StateSample **) zmalloc (sizeof (Quintet__StateSample *) * (belief->n_samples + 1));
    for (uint32_t s = 0; s < belief->n_samples; s++) {
        Quintet__StateSample *sample = (Quintet__StateSample *) zmalloc (sizeof (Quintet__StateSample));
        quintet__state_sample__init (sample);
        sample->n_values = belief->n_vars;
        sample->values = (int32_t *) zmalloc (sizeof (int32_t) * (belief->n_vars + 1));
        for (uint32_t v = 0; v < belief->n_vars; v++)
            sample->values [v] = belief->samples [s].values [v];
        sample->n_features = belief->n_features;
        sample->features = (double *) belief->samples [s].features;
        sample->weight = belief->samples [s].weight;
        wire->samples [s] = sample;
    }
    wire->entropy = belief->entropy;
    wire->n_reliability = belief->n_sensors;
    wire->reliability = (double *) belief->reliability;
    wire->n_honest = belief->n_sensors;
    wire->honest = (double *) belief->honest;
    wire->data_reliability = belief->data_reliability;
    wire->effective_particles = belief->effective_particles;
}

void
qt_wire_belief_free (Quintet__Belief *wire)
{
    for (size_t s = 0; s < wire->n_samples; s++) {
        free (wire->samples [s]->values);
        free (wire->samples [s]);
    }
    free (wire->samples);
    wire->samples = NULL;
    wire->n_samples = 0;
}

static bool
s_clock_equal (const Quintet__InstanceClock *a, const Quintet__InstanceClock *b)
{
    return a && b && a->episode == b->episode && a->step == b->step && a->done == b->done
        && a->terminated == b->terminated && a->idle == b->idle;
}

//  A batch payload's instances and where their clocks are, through
//  protobuf-c's reflection (every batch names its instances and their
//  clocks the same way), looked up once per payload, not per instance
typedef struct {
    ProtobufCMessage *const *items;
    size_t count;
    const ProtobufCFieldDescriptor *clock;      //  of items [0]'s type
} s_instances_t;

static void
s_instances (const ProtobufCMessage *batch, s_instances_t *out)
{
    memset (out, 0, sizeof *out);
    if (!batch)
        return;
    const ProtobufCFieldDescriptor *field =
        protobuf_c_message_descriptor_get_field_by_name (batch->descriptor, "instances");
    if (!field || field->type != PROTOBUF_C_TYPE_MESSAGE || field->label != PROTOBUF_C_LABEL_REPEATED)
        return;
    const ProtobufCMessageDescriptor *type = (const ProtobufCMessageDescriptor *) field->descriptor;
    const ProtobufCFieldDescriptor *clock = type
        ? protobuf_c_message_descriptor_get_field_by_name (type, "clock") : NULL;
    if (!clock || clock->type != PROTOBUF_C_TYPE_MESSAGE)
        return;
    out->items = *(ProtobufCMessage *const *const *) ((const char *) batch + field->offset);
    out->count = out->items ? *(const size_t *) ((const char *) batch + field->quantifier_offset) : 0;
    out->clock = clock;
}

//  Instance i's clock, or NULL
static const Quintet__InstanceClock *
s_instance_clock (const s_instances_t *instances, size_t i)
{
    if (i >= instances->count || !instances->items [i])
        return NULL;
    return *(Quintet__InstanceClock *const *) ((const char *) instances->items [i]
                                               + instances->clock->offset);
}

int
qt_wire_gather (qt_message_t **slots, uint32_t replicas, size_t batch,
                const ProtobufCMessage **payloads, qt_wire_clock_t *clocks)
{
    int count = 0;
    s_instances_t instances [QT_QUORUM_MAX_REPLICAS];
    for (uint32_t r = 0; r < replicas && r < QT_QUORUM_MAX_REPLICAS; r++) {
        payloads [r] = slots [r] ? slots [r]->payload : NULL;
        count += payloads [r] != NULL;
        s_instances (payloads [r], &instances [r]);
    }
    if (count == 0)
        return -1;
    for (size_t i = 0; i < batch; i++) {
        const Quintet__InstanceClock *best = NULL;
        size_t best_votes = 0;
        const Quintet__InstanceClock *clock [QT_QUORUM_MAX_REPLICAS];
        for (uint32_t r = 0; r < replicas && r < QT_QUORUM_MAX_REPLICAS; r++)
            clock [r] = s_instance_clock (&instances [r], i);
        for (uint32_t r = 0; r < replicas && r < QT_QUORUM_MAX_REPLICAS; r++) {
            if (!clock [r])
                continue;
            size_t votes = 0;
            for (uint32_t o = 0; o < replicas && o < QT_QUORUM_MAX_REPLICAS; o++)
                votes += s_clock_equal (clock [r], clock [o]);
            if (votes > best_votes) {
                best_votes = votes;
                best = clock [r];
            }
        }
        qt_wire_clock_get (best, &clocks [i]);
    }
    return count;
}

int
qt_wire_declare_env (qt_stage_t *stage, qt_config_t *config, const qt_env_params_t *params,
                     qt_env_decl_t *decl, char **error)
{
    qt_env_params_t options;
    if (params)
        options = *params;
    else
        qt_env_params_init (&options);
    snprintf (options.variant, sizeof options.variant, "%s", qt_stage_env_variant (stage));
    snprintf (options.without, sizeof options.without, "%s", qt_stage_env_without (stage));
    const char *name = *qt_stage_env (stage) ? qt_stage_env (stage) : qt_env_default ();
    const char *cause = NULL;
    if (qt_env_declare (name, &options, decl, &cause)) {
        *error = zsys_sprintf ("%s: cannot declare the environment (quintet/env = \"%s\", "
                               "env_variant = \"%s\", env_without = \"%s\"%s%s%s): %s",
                               qt_config_path (config), name, options.variant, options.without,
                               *options.tamper ? ", world/tamper = \"" : "", options.tamper,
                               *options.tamper ? "\"" : "", cause);
        return -1;
    }
    return 0;
}


#define S_STATE_MAGIC   8

void
qt_wire_state_identity (qt_stage_t *stage, const char *magic, uint32_t version, zchunk_t *identity)
{
    assert (strlen (magic) == S_STATE_MAGIC);
    qt_codec_put_bytes (identity, magic, S_STATE_MAGIC);
    qt_codec_put_u32 (identity, version);
    qt_codec_put_u64 (identity, qt_stage_batch (stage));
    qt_codec_put_string (identity, *qt_stage_env (stage) ? qt_stage_env (stage) : qt_env_default ());
    qt_codec_put_string (identity, qt_stage_env_variant (stage));
    qt_codec_put_string (identity, qt_stage_env_without (stage));
}

const uint8_t *
qt_wire_state_body (zchunk_t *identity, const uint8_t *data, size_t *size, const char **cause)
{
    const uint8_t *expected = zchunk_data (identity);
    size_t length = zchunk_size (identity);
    assert (length >= S_STATE_MAGIC + sizeof (uint32_t));
    qt_decoder_t decoder;
    qt_decoder_init (&decoder, data, *size);
    qt_decoder_expect (&decoder, expected, S_STATE_MAGIC, "not a state of this role");
    qt_decoder_expect (&decoder, expected + S_STATE_MAGIC, sizeof (uint32_t),
                       "a state of another format version");
    qt_decoder_expect (&decoder, expected + S_STATE_MAGIC + sizeof (uint32_t),
                       length - S_STATE_MAGIC - sizeof (uint32_t),
                       "a state of a replica configured otherwise (batch, environment or options)");
    if (cause)
        *cause = decoder.problem;
    if (!qt_decoder_ok (&decoder))
        return NULL;
    *size -= length;
    return data + length;
}

int
qt_wire_judgment_seal (const qt_keypair_t *rater_key, const Quintet__Comparison *comparison,
                       Quintet__Judgment *out)
{
    if (!rater_key || !comparison || strneq (rater_key->role, QT_RATER_ROLE)
    ||  rater_key->replica != comparison->rater)
        return -1;
    size_t context = strlen (QT_WIRE_JUDGMENT_CONTEXT);
    size_t size = quintet__comparison__get_packed_size (comparison);
    uint8_t *signed_bytes = (uint8_t *) zmalloc (context + size + 1);
    memcpy (signed_bytes, QT_WIRE_JUDGMENT_CONTEXT, context);
    quintet__comparison__pack (comparison, signed_bytes + context);
    uint8_t *signature = (uint8_t *) zmalloc (crypto_sign_BYTES);
    crypto_sign_detached (signature, NULL, signed_bytes, context + size, rater_key->secret_key);
    quintet__judgment__init (out);
    out->comparison.data = (uint8_t *) zmalloc (size + 1);
    memcpy (out->comparison.data, signed_bytes + context, size);
    out->comparison.len = size;
    out->signature.data = signature;
    out->signature.len = crypto_sign_BYTES;
    out->key_id = strdup (rater_key->key_id);
    free (signed_bytes);
    return 0;
}

void
qt_wire_judgment_free (Quintet__Judgment *judgment)
{
    if (!judgment)
        return;
    free (judgment->comparison.data);
    free (judgment->signature.data);
    free (judgment->key_id);
    quintet__judgment__init (judgment);
}

static bool
s_finite_values (const double *values, size_t count)
{
    for (size_t i = 0; i < count; i++)
        if (!isfinite (values [i]))
            return false;
    return true;
}

qt_drop_cause_t
qt_wire_judgment_open (qt_trust_t *trust, const Quintet__Judgment *judgment, uint32_t n_features,
                       Quintet__Comparison **comparison)
{
    *comparison = NULL;
    const qt_trust_entry_t *signer = judgment->key_id ? qt_trust_lookup (trust, judgment->key_id) : NULL;
    if (!signer)
        return QT_DROP_UNKNOWN_KEY;
    if (strneq (signer->role, QT_RATER_ROLE))
        return QT_DROP_WRONG_ROLE;      //  a daemon's key speaks for no person
    //  Verify over the bytes exactly as received: protobuf is not canonical
    size_t context = strlen (QT_WIRE_JUDGMENT_CONTEXT);
    size_t size = judgment->comparison.len;
    if (judgment->signature.len != crypto_sign_BYTES || size > QT_MESSAGE_SIZE_CAP)
        return QT_DROP_BAD_SIGNATURE;
    uint8_t *signed_bytes = (uint8_t *) zmalloc (context + size + 1);
    memcpy (signed_bytes, QT_WIRE_JUDGMENT_CONTEXT, context);
    if (size)
        memcpy (signed_bytes + context, judgment->comparison.data, size);
    int verified = crypto_sign_verify_detached (judgment->signature.data, signed_bytes,
                                                context + size, signer->public_key);
    free (signed_bytes);
    if (verified != 0)
        return QT_DROP_BAD_SIGNATURE;
    Quintet__Comparison *decoded = quintet__comparison__unpack (NULL, size, judgment->comparison.data);
    if (!decoded)
        return QT_DROP_BAD_PAYLOAD;
    qt_drop_cause_t cause = QT_DROP_NONE;
    //  Rater 3's key vouches for rater 3's answers only
    if (decoded->rater != signer->replica)
        cause = QT_DROP_WRONG_ROLE;
    else
    if (decoded->n_a != n_features || decoded->n_b != n_features
    ||  !s_finite_values (decoded->a, decoded->n_a) || !s_finite_values (decoded->b, decoded->n_b)
    ||  !(decoded->preference >= -1 && decoded->preference <= 1))      //  false for NaN
        cause = QT_DROP_INVALID;
    if (cause != QT_DROP_NONE)
        quintet__comparison__free_unpacked (decoded, NULL);
    else
        *comparison = decoded;
    return cause;
}

//  The judgment checks, each failure by its cause
static void
s_judgment_test (void)
{
    char dir_template [] = "/tmp/qt_wire_test.XXXXXX";
    char *dir = mkdtemp (dir_template);
    QT_CHECK (dir);
    qt_keypair_t *raters [2] = { qt_keypair_generate (QT_RATER_ROLE, 1),
                                 qt_keypair_generate (QT_RATER_ROLE, 2) };
    qt_keypair_t *daemon = qt_keypair_generate ("raters", 1);
    char *paths [3] = { zsys_sprintf ("%s/rater-1.pub", dir), zsys_sprintf ("%s/rater-2.pub", dir),
                        zsys_sprintf ("%s/raters-1.pub", dir) };
    QT_CHECK (qt_keypair_save (raters [0], NULL, paths [0]) == 0);
    QT_CHECK (qt_keypair_save (raters [1], NULL, paths [1]) == 0);
    QT_CHECK (qt_keypair_save (daemon, NULL, paths [2]) == 0);
    char *error = NULL;
    qt_trust_t *trust = qt_trust_load (dir, &error);
    QT_CHECK (trust);

    double a [3] = { 1, 0, 2 }, b [3] = { 0, 1, 2 };
    Quintet__Comparison comparison = QUINTET__COMPARISON__INIT;
    comparison.rater = 1;
    comparison.query_tick = 41;
    comparison.query_index = 3;
    comparison.n_a = comparison.n_b = 3;
    comparison.a = a;
    comparison.b = b;
    comparison.preference = -0.25;
    Quintet__Judgment judgment;
    Quintet__Comparison *opened = NULL;

    //  Round trip
    QT_CHECK (qt_wire_judgment_seal (raters [0], &comparison, &judgment) == 0);
    QT_CHECK (qt_wire_judgment_open (trust, &judgment, 3, &opened) == QT_DROP_NONE);
    QT_CHECK (opened && opened->rater == 1 && opened->query_tick == 41 && opened->query_index == 3
            && opened->n_a == 3 && opened->b [1] == 1 && opened->preference == -0.25);
    quintet__comparison__free_unpacked (opened, NULL);
    //  Wrong length for the environment
    QT_CHECK (qt_wire_judgment_open (trust, &judgment, 2, &opened) == QT_DROP_INVALID && !opened);
    //  A flipped bit of the comparison, or of the signature
    judgment.comparison.data [judgment.comparison.len - 1] ^= 1;
    QT_CHECK (qt_wire_judgment_open (trust, &judgment, 3, &opened) == QT_DROP_BAD_SIGNATURE && !opened);
    judgment.comparison.data [judgment.comparison.len - 1] ^= 1;
    judgment.signature.data [0] ^= 1;
    QT_CHECK (qt_wire_judgment_open (trust, &judgment, 3, &opened) == QT_DROP_BAD_SIGNATURE);
    judgment.signature.data [0] ^= 1;
    judgment.signature.len = 10;
    QT_CHECK (qt_wire_judgment_open (trust, &judgment, 3, &opened) == QT_DROP_BAD_SIGNATURE);
    judgment.signature.len = crypto_sign_BYTES;
    //  Another key id: unknown, or the daemon's (not a person's)
    char *key_id = judgment.key_id;
    judgment.key_id = "0123456789abcdef";
    QT_CHECK (qt_wire_judgment_open (trust, &judgment, 3, &opened) == QT_DROP_UNKNOWN_KEY);
    judgment.key_id = daemon->key_id;
    QT_CHECK (qt_wire_judgment_open (trust, &judgment, 3, &opened) == QT_DROP_WRONG_ROLE);
    judgment.key_id = NULL;
    QT_CHECK (qt_wire_judgment_open (trust, &judgment, 3, &opened) == QT_DROP_UNKNOWN_KEY);
    judgment.key_id = key_id;
    qt_wire_judgment_free (&judgment);

    //  Rater 2 signing an answer in rater 1's name; the seal refuses it,
    //  so forge it by hand
    QT_CHECK (qt_wire_judgment_seal (raters [1], &comparison, &judgment) == -1);
    comparison.rater = 2;
    QT_CHECK (qt_wire_judgment_seal (raters [1], &comparison, &judgment) == 0);
    comparison.rater = 1;
    size_t context = strlen (QT_WIRE_JUDGMENT_CONTEXT);
    size_t size = quintet__comparison__get_packed_size (&comparison);
    uint8_t *bytes = (uint8_t *) zmalloc (context + size);
    memcpy (bytes, QT_WIRE_JUDGMENT_CONTEXT, context);
    quintet__comparison__pack (&comparison, bytes + context);
    free (judgment.comparison.data);
    judgment.comparison.data = (uint8_t *) zmalloc (size);
    memcpy (judgment.comparison.data, bytes + context, size);
    judgment.comparison.len = size;
    crypto_sign_detached (judgment.signature.data, NULL, bytes, context + size, raters [1]->secret_key);
    QT_CHECK (qt_wire_judgment_open (trust, &judgment, 3, &opened) == QT_DROP_WRONG_ROLE && !opened);
    //  Signed without the context: the signature of another scheme
    crypto_sign_detached (judgment.signature.data, NULL, bytes + context, size, raters [0]->secret_key);
    free (judgment.key_id);
    judgment.key_id = strdup (raters [0]->key_id);
    QT_CHECK (qt_wire_judgment_open (trust, &judgment, 3, &opened) == QT_DROP_BAD_SIGNATURE);
    //  Bytes that do not decode, properly signed
    memcpy (bytes + context, "\xff\xff\xff", 3);
    crypto_sign_detached (judgment.signature.data, NULL, bytes, context + 3, raters [0]->secret_key);
    judgment.comparison.len = 3;
    memcpy (judgment.comparison.data, "\xff\xff\xff", 3);
    QT_CHECK (qt_wire_judgment_open (trust, &judgment, 3, &opened) == QT_DROP_BAD_PAYLOAD);
    free (bytes);
    qt_wire_judgment_free (&judgment);

    //  Values: NaN, out of range, infinite features
    double bad [] = { NAN, 1.5, -1.0000001, INFINITY };
    for (size_t k = 0; k < sizeof bad / sizeof bad [0]; k++) {
        comparison.preference = bad [k];
        QT_CHECK (qt_wire_judgment_seal (raters [0], &comparison, &judgment) == 0);
        QT_CHECK (qt_wire_judgment_open (trust, &judgment, 3, &opened) == QT_DROP_INVALID && !opened);
        qt_wire_judgment_free (&judgment);
    }
    comparison.preference = 1;
    a [2] = NAN;
    QT_CHECK (qt_wire_judgment_seal (raters [0], &comparison, &judgment) == 0);
    QT_CHECK (qt_wire_judgment_open (trust, &judgment, 3, &opened) == QT_DROP_INVALID);
    qt_wire_judgment_free (&judgment);
    a [2] = 2;
    comparison.n_b = 2;
    QT_CHECK (qt_wire_judgment_seal (raters [0], &comparison, &judgment) == 0);
    QT_CHECK (qt_wire_judgment_open (trust, &judgment, 3, &opened) == QT_DROP_INVALID);
    qt_wire_judgment_free (&judgment);

    qt_trust_destroy (&trust);
    for (int k = 0; k < 3; k++) {
        unlink (paths [k]);
        zstr_free (&paths [k]);
    }
    rmdir (dir);
    qt_keypair_destroy (&raters [0]);
    qt_keypair_destroy (&raters [1]);
    qt_keypair_destroy (&daemon);
}

void
qt_wire_test (bool verbose)
{
    if (verbose)
        printf (" * qt_wire: ");
    //  Readings round-trip, with their clock
    qt_readings_t readings;
    memset (&readings, 0, sizeof readings);
    readings.episode = 3;
    readings.step = 7;
    readings.done = readings.terminated = true;
    readings.action = 2;
    readings.observed_reward = 0.5;
    readings.length = 4;
    memcpy (readings.values, "#A T", 4);
    Quintet__InstanceClock clock;
    Quintet__Readings wire;
    qt_wire_readings_put (&readings, &clock, &wire);
    qt_readings_t back;
    QT_CHECK (qt_wire_readings_get (&wire, &back) == 0);
    QT_CHECK (memcmp (&back, &readings, sizeof back) == 0);
    wire.clock = NULL;
    QT_CHECK (qt_wire_readings_get (&wire, &back) == -1);
    wire.clock = &clock;
    //  Empty values are fine (memcpy from NULL never happens)
    wire.values.data = NULL;
    wire.values.len = 0;
    QT_CHECK (qt_wire_readings_get (&wire, &back) == 0 && back.length == 0);

    //  The majority clock of three observation batches, per instance
    Quintet__Readings *instances [3][2];
    Quintet__Readings cells [3][2];
    Quintet__InstanceClock clocks [3][2];
    Quintet__ObservationBatch batches [3];
    qt_message_t messages [3];
    qt_message_t *slots [3];
    for (int r = 0; r < 3; r++) {
        quintet__observation_batch__init (&batches [r]);
        batches [r].batch = 2;
        batches [r].n_instances = 2;
        batches [r].instances = instances [r];
        for (int i = 0; i < 2; i++) {
            quintet__readings__init (&cells [r][i]);
            quintet__instance_clock__init (&clocks [r][i]);
            clocks [r][i].episode = (uint32_t) i;
            clocks [r][i].step = r == 1 ? 99 : 5;      //  replica 2 lies
            cells [r][i].clock = &clocks [r][i];
            instances [r][i] = &cells [r][i];
        }
        memset (&messages [r], 0, sizeof messages [r]);
        messages [r].payload = &batches [r].base;
        slots [r] = &messages [r];
    }
    const ProtobufCMessage *payloads [3];
    qt_wire_clock_t majority [2];
    QT_CHECK (qt_wire_gather (slots, 3, 2, payloads, majority) == 3);
    QT_CHECK (majority [0].step == 5 && majority [1].step == 5 && majority [1].episode == 1);
    slots [0] = slots [1] = slots [2] = NULL;
    QT_CHECK (qt_wire_gather (slots, 3, 2, payloads, majority) == -1);

    s_judgment_test ();

    //  A state's role header: the body after it, or why not
    zchunk_t *identity = zchunk_new (NULL, 0);
    qt_codec_put_bytes (identity, "QTTEST01", 8);
    qt_codec_put_u32 (identity, 1);
    qt_codec_put_u64 (identity, 4);
    zchunk_t *state = zchunk_new (zchunk_data (identity), zchunk_size (identity));
    qt_codec_put_u8 (state, 42);
    size_t size = zchunk_size (state);
    const char *cause = "unset";
    const uint8_t *body = qt_wire_state_body (identity, zchunk_data (state), &size, &cause);
    QT_CHECK (body && size == 1 && *body == 42 && cause == NULL);
    uint8_t *data = zchunk_data (state);
    for (size_t at = 0; at < zchunk_size (identity); at++) {
        data [at] ^= 1;
        size = zchunk_size (state);
        QT_CHECK (!qt_wire_state_body (identity, data, &size, &cause) && cause);
        QT_CHECK (strstr (cause, at < 8 ? "of this role" : at < 12 ? "version" : "configured otherwise"));
        data [at] ^= 1;
    }
    size = 3;
    QT_CHECK (!qt_wire_state_body (identity, data, &size, &cause) && cause);
    zchunk_destroy (&state);
    zchunk_destroy (&identity);
    if (verbose)
        printf ("OK\n");
}
