/*  qt_envelope: Ed25519 (libsodium, detached) over "quintet-v1:" || envelope
    bytes; replay windows per (key id, epoch), IPsec style: the highest seq
    seen and a bitmap of the QT_REPLAY_WINDOW seqs below it.
*/
#include "quintet.h"
#include "qt_selftest.h"

#define S_CONTEXT_LEN   (sizeof QT_SIGNATURE_CONTEXT - 1)

struct _qt_signer_t {
    qt_keypair_t *keypair;
    uint64_t epoch;
    uint64_t seq;
    zchunk_t *scratch;          //  "quintet-v1:" || envelope, reused per message
};

qt_signer_t *
qt_signer_new (qt_keypair_t **keypair_p)
{
    assert (keypair_p && *keypair_p);
    qt_signer_t *self = (qt_signer_t *) zmalloc (sizeof (qt_signer_t));
    self->keypair = *keypair_p;
    *keypair_p = NULL;
    randombytes_buf (&self->epoch, sizeof self->epoch);
    self->scratch = zchunk_new (NULL, 4096);
    return self;
}

void
qt_signer_destroy (qt_signer_t **self_p)
{
    assert (self_p);
    if (*self_p) {
        qt_signer_t *self = *self_p;
        qt_keypair_destroy (&self->keypair);
        zchunk_destroy (&self->scratch);
        free (self);
        *self_p = NULL;
    }
}

static uint64_t
s_now_ns (void)
{
    struct timespec now;
    clock_gettime (CLOCK_REALTIME, &now);
    return (uint64_t) now.tv_sec * 1000000000ULL + (uint64_t) now.tv_nsec;
}

zframe_t *
qt_signer_seal_bytes (qt_signer_t *self, Quintet__PayloadType type, uint64_t tick,
                      const void *payload, size_t size)
{
    Quintet__Envelope envelope = QUINTET__ENVELOPE__INIT;
    envelope.role = self->keypair->role;
    envelope.replica = self->keypair->replica;
    envelope.key_id = self->keypair->key_id;
    envelope.epoch = self->epoch;
    envelope.seq = ++self->seq;
    envelope.tick = tick;
    envelope.sent_ns = s_now_ns ();
    envelope.type = type;
    envelope.payload.data = (uint8_t *) payload;
    envelope.payload.len = size;

    //  The signed bytes are the context followed by the envelope, encoded once
    size_t envelope_size = quintet__envelope__get_packed_size (&envelope);
    zchunk_resize (self->scratch, S_CONTEXT_LEN + envelope_size);
    byte *signed_bytes = zchunk_data (self->scratch);
    memcpy (signed_bytes, QT_SIGNATURE_CONTEXT, S_CONTEXT_LEN);
    quintet__envelope__pack (&envelope, signed_bytes + S_CONTEXT_LEN);

    unsigned char signature [crypto_sign_BYTES];
    crypto_sign_detached (signature, NULL, signed_bytes, S_CONTEXT_LEN + envelope_size,
                          self->keypair->secret_key);

    Quintet__SignedMessage message = QUINTET__SIGNED_MESSAGE__INIT;
    message.envelope.data = signed_bytes + S_CONTEXT_LEN;
    message.envelope.len = envelope_size;
    message.signature.data = signature;
    message.signature.len = sizeof signature;
    zframe_t *frame = zframe_new (NULL, quintet__signed_message__get_packed_size (&message));
    quintet__signed_message__pack (&message, zframe_data (frame));
    return frame;
}

zframe_t *
qt_signer_seal (qt_signer_t *self, Quintet__PayloadType type, uint64_t tick,
                const ProtobufCMessage *payload)
{
    size_t size = protobuf_c_message_get_packed_size (payload);
    uint8_t *buffer = (uint8_t *) malloc (size ? size : 1);
    assert (buffer);
    protobuf_c_message_pack (payload, buffer);
    zframe_t *frame = qt_signer_seal_bytes (self, type, tick, buffer, size);
    free (buffer);
    return frame;
}

uint64_t
qt_signer_epoch (qt_signer_t *self)
{
    return self->epoch;
}

qt_keypair_t *
qt_signer_keypair (qt_signer_t *self)
{
    return self->keypair;
}

//  The memory of one decoded payload: protobuf-c's allocator over blocks
//  that are only ever freed together. A batch payload decodes into a few
//  allocations per instance (the instance, its clock, its repeated fields):
//  thousands per message at B = 1,024, which malloc and free one by one
//  cost more than the decoding itself. Lifetime: the message's.
typedef struct _s_block_t {
    struct _s_block_t *next;
    size_t size;                //  bytes after the header
    size_t used;
} s_block_t;

#define S_ALIGN         16
#define S_HEADER        ((sizeof (s_block_t) + S_ALIGN - 1) & ~(size_t) (S_ALIGN - 1))
#define S_BLOCK_MIN     4096
#define S_BLOCK_MAX     (4u << 20)

typedef struct {
    ProtobufCAllocator allocator;
    s_block_t *head;
    size_t next_size;
} s_arena_t;

static void *
s_arena_alloc (void *data, size_t size)
{
    s_arena_t *arena = (s_arena_t *) data;
    size = (size + S_ALIGN - 1) & ~(size_t) (S_ALIGN - 1);
    s_block_t *block = arena->head;
    if (!block || block->size - block->used < size) {
        size_t want = MAX (size, arena->next_size);
        block = (s_block_t *) malloc (S_HEADER + want);
        if (!block)
            return NULL;
        block->size = want;
        block->used = 0;
        block->next = arena->head;
        arena->head = block;
        arena->next_size = MIN (arena->next_size * 2, (size_t) S_BLOCK_MAX);
    }
    void *pointer = (char *) block + S_HEADER + block->used;
    block->used += size;
    return pointer;
}

static void
s_arena_free (void *data, void *pointer)
{
    (void) data;        //  with the arena
    (void) pointer;
}

//  An arena for a payload of `packed` bytes: its first block holds what
//  the decoding of most payloads allocates
static s_arena_t *
s_arena_new (size_t packed)
{
    s_arena_t *arena = (s_arena_t *) zmalloc (sizeof (s_arena_t));
    arena->allocator.alloc = s_arena_alloc;
    arena->allocator.free = s_arena_free;
    arena->allocator.allocator_data = arena;
    arena->next_size = MIN (MAX ((size_t) S_BLOCK_MIN, 4 * packed), (size_t) S_BLOCK_MAX);
    return arena;
}

static void
s_arena_destroy (s_arena_t **arena_p)
{
    s_arena_t *arena = *arena_p;
    if (!arena)
        return;
    while (arena->head) {
        s_block_t *next = arena->head->next;
        free (arena->head);
        arena->head = next;
    }
    free (arena);
    *arena_p = NULL;
}

void
qt_message_destroy (qt_message_t **self_p)
{
    assert (self_p);
    if (*self_p) {
        qt_message_t *self = *self_p;
        if (self->arena)
            s_arena_destroy ((s_arena_t **) &self->arena);
        else
        if (self->payload)
            protobuf_c_message_free_unpacked (self->payload, NULL);
        if (self->envelope)
            quintet__envelope__free_unpacked (self->envelope, NULL);
        free (self);
        *self_p = NULL;
    }
}

//  Replay window of one epoch of a key, IPsec style
typedef struct {
    bool used;
    uint64_t epoch;
    uint64_t first_ns;          //  send time of the first message accepted in it
    uint64_t highest;           //  highest seq accepted in this epoch
    uint64_t seen;              //  bit i: seq (highest - i) accepted
} s_epoch_window_t;

//  Replay state of one key: its live epochs, the epochs it retired and the
//  floor below which no epoch is new. Fixed size, so one key costs the same
//  whatever it (or someone replaying it) sends; keys come from the trust
//  store, so the whole table is bounded too.
typedef struct {
    s_epoch_window_t live [QT_REPLAY_LIVE_EPOCHS_MAX];
    uint64_t retired [QT_RETIRED_EPOCHS];
    size_t retired_next;
    uint64_t floor_ns;          //  first send time of the newest retired epoch
    int64_t heard_ms;           //  receiver's clock (monotonic) at the last accept
} s_replay_t;

//  What the replay window makes of a (key, epoch, seq, send time), decided
//  before anything is recorded
typedef enum {
    S_REPLAY_IN_WINDOW,         //  a new seq of a live epoch
    S_REPLAY_NEW_EPOCH,         //  an epoch that may be admitted (into a free or the oldest window)
    S_REPLAY_REFUSED,           //  a replay
} s_replay_verdict_t;

struct _qt_verifier_t {
    qt_trust_t *trust;
    size_t batch;
    size_t size_cap;
    int64_t max_age_ms;
    size_t live_epochs;         //  epochs live at once per key
    zhash_t *replay;            //  key id -> s_replay_t
    zchunk_t *scratch;
    uint64_t drops [QT_DROP_CAUSES];
    uint64_t accepted;
};

qt_verifier_t *
qt_verifier_new (qt_trust_t *trust, size_t batch)
{
    assert (trust);
    qt_verifier_t *self = (qt_verifier_t *) zmalloc (sizeof (qt_verifier_t));
    self->trust = trust;
    self->batch = batch;
    self->size_cap = QT_MESSAGE_SIZE_CAP;
    self->max_age_ms = QT_MESSAGE_MAX_AGE_MS;
    self->live_epochs = 1;
    self->replay = zhash_new ();
    self->scratch = zchunk_new (NULL, 4096);
    return self;
}

void
qt_verifier_destroy (qt_verifier_t **self_p)
{
    assert (self_p);
    if (*self_p) {
        qt_verifier_t *self = *self_p;
        zhash_destroy (&self->replay);
        zchunk_destroy (&self->scratch);
        free (self);
        *self_p = NULL;
    }
}

void
qt_verifier_set_size_cap (qt_verifier_t *self, size_t size_cap)
{
    self->size_cap = size_cap;
}

void
qt_verifier_set_max_age (qt_verifier_t *self, int64_t max_age_ms)
{
    self->max_age_ms = max_age_ms;
}

void
qt_verifier_set_live_epochs (qt_verifier_t *self, size_t epochs)
{
    self->live_epochs = epochs < 1 ? 1 : epochs > QT_REPLAY_LIVE_EPOCHS_MAX
                      ? QT_REPLAY_LIVE_EPOCHS_MAX : epochs;
}

//  The live window with the oldest first send time (the one a newer epoch
//  displaces), or a free one
static s_epoch_window_t *
s_replay_slot (qt_verifier_t *self, s_replay_t *state)
{
    s_epoch_window_t *oldest = NULL;
    for (size_t i = 0; i < self->live_epochs; i++) {
        s_epoch_window_t *window = &state->live [i];
        if (!window->used)
            return window;
        if (!oldest || window->first_ns < oldest->first_ns)
            oldest = window;
    }
    return oldest;
}

//  Classifies (key, epoch, seq, sent) without recording anything, so a
//  message refused later (stale, say) never moves the window. In a live
//  epoch, a seq seen already or older than the window is a replay. An
//  unknown epoch is new only if it was sent after the floor, was never
//  retired, and finds a free window or was first sent after the oldest
//  live epoch: an older-sent epoch never displaces a newer one, so frames
//  captured before a restart cannot evict the restarted process's epoch,
//  however many restarts ago they were captured and whoever replays them.
static s_replay_verdict_t
s_replay_check (qt_verifier_t *self, s_replay_t *state, uint64_t epoch, uint64_t seq,
                uint64_t sent_ns, s_epoch_window_t **window_p)
{
    *window_p = NULL;
    if (seq == 0)
        return S_REPLAY_REFUSED;
    if (!state)
        return S_REPLAY_NEW_EPOCH;
    for (size_t i = 0; i < self->live_epochs; i++) {
        s_epoch_window_t *window = &state->live [i];
        if (!window->used || window->epoch != epoch)
            continue;
        *window_p = window;
        if (seq > window->highest)
            return S_REPLAY_IN_WINDOW;
        uint64_t offset = window->highest - seq;
        return offset >= QT_REPLAY_WINDOW || (window->seen & (1ULL << offset))
             ? S_REPLAY_REFUSED : S_REPLAY_IN_WINDOW;
    }
    if (sent_ns <= state->floor_ns)
        return S_REPLAY_REFUSED;
    for (size_t i = 0; i < QT_RETIRED_EPOCHS; i++)
        if (state->retired [i] == epoch)
            return S_REPLAY_REFUSED;
    s_epoch_window_t *slot = s_replay_slot (self, state);
    if (slot->used && sent_ns <= slot->first_ns)
        return S_REPLAY_REFUSED;
    *window_p = slot;
    return S_REPLAY_NEW_EPOCH;
}

//  Records an accepted (epoch, seq): into its window, or into the window
//  s_replay_check chose for a new epoch, retiring the epoch it held
static void
s_replay_record (qt_verifier_t *self, const char *key_id, s_replay_t *state,
                 s_epoch_window_t *window, uint64_t epoch, uint64_t seq, uint64_t sent_ns)
{
    if (!state) {
        state = (s_replay_t *) zmalloc (sizeof (s_replay_t));
        zhash_insert (self->replay, key_id, state);
        zhash_freefn (self->replay, key_id, free);
        window = &state->live [0];
    }
    if (!window->used || window->epoch != epoch) {
        if (window->used) {
            state->retired [state->retired_next] = window->epoch;
            state->retired_next = (state->retired_next + 1) % QT_RETIRED_EPOCHS;
            if (window->first_ns > state->floor_ns)
                state->floor_ns = window->first_ns;
        }
        memset (window, 0, sizeof *window);
        window->used = true;
        window->epoch = epoch;
        window->first_ns = sent_ns;
    }
    if (seq > window->highest) {
        uint64_t shift = seq - window->highest;
        window->seen = shift >= QT_REPLAY_WINDOW ? 0 : window->seen << shift;
        window->seen |= 1;
        window->highest = seq;
    }
    else
        window->seen |= 1ULL << (window->highest - seq);
    state->heard_ms = zclock_mono ();
}

//  The key's replay state, forgotten when the key has been silent for longer
//  than the age window: whatever it sent before then is stale anyway, and a
//  sender whose clock stepped back across a restart is locked out for at
//  most that long
static s_replay_t *
s_replay_state (qt_verifier_t *self, const char *key_id)
{
    s_replay_t *state = (s_replay_t *) zhash_lookup (self->replay, key_id);
    if (state && self->max_age_ms > 0 && zclock_mono () - state->heard_ms > self->max_age_ms) {
        zhash_delete (self->replay, key_id);
        state = NULL;
    }
    return state;
}

static qt_message_t *
s_drop (qt_verifier_t *self, qt_drop_cause_t cause, qt_drop_cause_t *cause_p,
        Quintet__SignedMessage *signed_message, Quintet__Envelope *envelope)
{
    self->drops [cause]++;
    if (cause_p)
        *cause_p = cause;
    if (envelope)
        quintet__envelope__free_unpacked (envelope, NULL);
    if (signed_message)
        quintet__signed_message__free_unpacked (signed_message, NULL);
    return NULL;
}

qt_message_t *
qt_verifier_open (qt_verifier_t *self, const char *topic, const char *expected_role,
                  const void *data, size_t size, qt_drop_cause_t *cause)
{
    return qt_verifier_open_from (self, topic, expected_role, 0, data, size, cause);
}

qt_message_t *
qt_verifier_open_from (qt_verifier_t *self, const char *topic, const char *expected_role,
                       uint32_t expected_replica, const void *data, size_t size,
                       qt_drop_cause_t *cause)
{
    if (cause)
        *cause = QT_DROP_NONE;
    if (size > self->size_cap)
        return s_drop (self, QT_DROP_OVERSIZE, cause, NULL, NULL);
    Quintet__SignedMessage *signed_message = quintet__signed_message__unpack (NULL, size, data);
    if (!signed_message)
        return s_drop (self, QT_DROP_MALFORMED, cause, NULL, NULL);
    Quintet__Envelope *envelope = quintet__envelope__unpack (NULL, signed_message->envelope.len,
                                                             signed_message->envelope.data);
    if (!envelope)
        return s_drop (self, QT_DROP_MALFORMED, cause, signed_message, NULL);

    const qt_trust_entry_t *sender = qt_trust_lookup (self->trust, envelope->key_id);
    if (!sender)
        return s_drop (self, QT_DROP_UNKNOWN_KEY, cause, signed_message, envelope);
    if (strneq (sender->role, envelope->role) || sender->replica != envelope->replica)
        return s_drop (self, QT_DROP_WRONG_ROLE, cause, signed_message, envelope);
    //  A rater's key signs its comparisons only: an envelope under it is no
    //  daemon's, whatever it carries
    if (streq (sender->role, QT_RATER_ROLE))
        return s_drop (self, QT_DROP_WRONG_ROLE, cause, signed_message, envelope);
    //  Arrived where only one replica publishes: anyone else's message there
    //  was relayed or replayed by that endpoint, and is refused before its
    //  signature costs anything
    if (expected_replica
    &&  (sender->replica != expected_replica || (expected_role && strneq (expected_role, sender->role))))
        return s_drop (self, QT_DROP_UNEXPECTED, cause, signed_message, envelope);

    //  Verify over the bytes exactly as received
    size_t signed_size = S_CONTEXT_LEN + signed_message->envelope.len;
    zchunk_resize (self->scratch, signed_size);
    byte *signed_bytes = zchunk_data (self->scratch);
    memcpy (signed_bytes, QT_SIGNATURE_CONTEXT, S_CONTEXT_LEN);
    memcpy (signed_bytes + S_CONTEXT_LEN, signed_message->envelope.data, signed_message->envelope.len);
    if (signed_message->signature.len != crypto_sign_BYTES
    ||  crypto_sign_verify_detached (signed_message->signature.data, signed_bytes, signed_size,
                                     sender->public_key) != 0)
        return s_drop (self, QT_DROP_BAD_SIGNATURE, cause, signed_message, envelope);

    //  Authentic from here on: replay and freshness, then what it carries.
    //  The window is only consulted until the message is known fresh, and
    //  only then recorded: a stale message never moves epoch state.
    s_replay_t *replay = s_replay_state (self, envelope->key_id);
    s_epoch_window_t *window = NULL;
    if (s_replay_check (self, replay, envelope->epoch, envelope->seq, envelope->sent_ns,
                        &window) == S_REPLAY_REFUSED)
        return s_drop (self, QT_DROP_REPLAY, cause, signed_message, envelope);
    if (self->max_age_ms > 0) {
        int64_t age_ms = ((int64_t) s_now_ns () - (int64_t) envelope->sent_ns) / 1000000;
        if (age_ms > self->max_age_ms || age_ms < -self->max_age_ms)
            return s_drop (self, QT_DROP_STALE, cause, signed_message, envelope);
    }
    s_replay_record (self, envelope->key_id, replay, window, envelope->epoch, envelope->seq,
                     envelope->sent_ns);
    if (envelope->type != qt_payload_type_of_topic (topic))
        return s_drop (self, QT_DROP_WRONG_TYPE, cause, signed_message, envelope);
    if (expected_role && strneq (expected_role, sender->role))
        return s_drop (self, QT_DROP_UNEXPECTED, cause, signed_message, envelope);

    const ProtobufCMessageDescriptor *descriptor = qt_payload_descriptor (envelope->type);
    s_arena_t *arena = s_arena_new (envelope->payload.len);
    ProtobufCMessage *payload = descriptor
        ? protobuf_c_message_unpack (descriptor, &arena->allocator, envelope->payload.len,
                                     envelope->payload.data)
        : NULL;
    if (!payload) {
        s_arena_destroy (&arena);
        return s_drop (self, QT_DROP_BAD_PAYLOAD, cause, signed_message, envelope);
    }
    if (self->batch > 0) {
        qt_drop_cause_t invalid = qt_payload_validate (envelope->type, payload, self->batch);
        if (invalid != QT_DROP_NONE) {
            s_arena_destroy (&arena);
            return s_drop (self, invalid, cause, signed_message, envelope);
        }
    }
    quintet__signed_message__free_unpacked (signed_message, NULL);
    qt_message_t *message = (qt_message_t *) zmalloc (sizeof (qt_message_t));
    message->envelope = envelope;
    message->payload = payload;
    message->arena = arena;
    message->sender = sender;
    self->accepted++;
    return message;
}

void
qt_verifier_count (qt_verifier_t *self, qt_drop_cause_t cause)
{
    if (cause > QT_DROP_NONE && cause < QT_DROP_CAUSES)
        self->drops [cause]++;
}

uint64_t
qt_verifier_drops (qt_verifier_t *self, qt_drop_cause_t cause)
{
    return cause < QT_DROP_CAUSES ? self->drops [cause] : 0;
}

uint64_t
qt_verifier_drops_total (qt_verifier_t *self)
{
    uint64_t total = 0;
    for (int cause = QT_DROP_NONE + 1; cause < QT_DROP_CAUSES; cause++)
        total += self->drops [cause];
    return total;
}

uint64_t
qt_verifier_accepted (qt_verifier_t *self)
{
    return self->accepted;
}

//  Test helper: an action batch of B actions, sealed
static zframe_t *
s_test_actions (qt_signer_t *signer, uint64_t tick, size_t batch)
{
    uint32_t actions [8] = { 0 };
    Quintet__ActionBatch payload = QUINTET__ACTION_BATCH__INIT;
    payload.batch = (uint32_t) batch;
    payload.n_actions = batch;
    payload.actions = actions;
    return qt_signer_seal (signer, QUINTET__PAYLOAD_TYPE__ACTION_BATCH, tick, &payload.base);
}

static void
s_expect_drop (qt_verifier_t *verifier, const char *topic, zframe_t *frame, qt_drop_cause_t expected)
{
    qt_drop_cause_t cause;
    uint64_t before = qt_verifier_drops (verifier, expected);
    qt_message_t *message = qt_verifier_open (verifier, topic, NULL, zframe_data (frame),
                                              zframe_size (frame), &cause);
    QT_CHECK (!message);
    QT_CHECK (cause == expected);
    QT_CHECK (qt_verifier_drops (verifier, expected) == before + 1);
}

//  Opens a frame and says whether it was accepted
static bool
s_test_accepts (qt_verifier_t *verifier, zframe_t *frame)
{
    qt_drop_cause_t cause;
    qt_message_t *message = qt_verifier_open (verifier, "action", NULL, zframe_data (frame),
                                              zframe_size (frame), &cause);
    bool accepted = message != NULL;
    qt_message_destroy (&message);
    return accepted;
}

static qt_signer_t *
s_test_signer (const char *key_path)
{
    char *error = NULL;
    qt_keypair_t *pair = qt_keypair_load (key_path, "actor", 1, &error);
    QT_CHECK (pair);
    return qt_signer_new (&pair);
}

#define S_TEST_CAPTURED 8       //  frames a passive observer captured
#define S_TEST_RESTARTS 9       //  one more than QT_RETIRED_EPOCHS
#define S_TEST_MAX_AGE_MS 1000  //  short age window, to make a message stale by waiting

static void
s_test_epoch_rollback (const char *key_path, size_t batch, qt_trust_t *trust)
{
    //  Epoch 0 publishes; an observer captures 8 of its frames
    qt_signer_t *old = s_test_signer (key_path);
    zframe_t *captured [S_TEST_CAPTURED];
    for (size_t i = 0; i < S_TEST_CAPTURED; i++)
        captured [i] = s_test_actions (old, 100 + i, batch);

    //  The sender restarts (epoch 1); a receiver that never saw epoch 0
    //  (restarted too) hears it, then the captured frames: all refused, and
    //  the current epoch goes on being accepted
    qt_signer_t *current = s_test_signer (key_path);
    qt_verifier_t *receiver = qt_verifier_new (trust, batch);
    zframe_t *frame = s_test_actions (current, 200, batch);
    QT_CHECK (s_test_accepts (receiver, frame));
    zframe_destroy (&frame);
    for (size_t i = 0; i < S_TEST_CAPTURED; i++) {
        s_expect_drop (receiver, "action", captured [i], QT_DROP_REPLAY);
        frame = s_test_actions (current, 201 + i, batch);
        QT_CHECK (s_test_accepts (receiver, frame));
        zframe_destroy (&frame);
    }
    qt_verifier_destroy (&receiver);

    //  The replayed frames arrive first: they are all this receiver knows,
    //  but the restarted epoch, sent later, displaces them for good
    receiver = qt_verifier_new (trust, batch);
    QT_CHECK (s_test_accepts (receiver, captured [0]));
    frame = s_test_actions (current, 300, batch);
    QT_CHECK (s_test_accepts (receiver, frame));
    zframe_destroy (&frame);
    for (size_t i = 1; i < S_TEST_CAPTURED; i++)
        s_expect_drop (receiver, "action", captured [i], QT_DROP_REPLAY);
    frame = s_test_actions (current, 301, batch);
    QT_CHECK (s_test_accepts (receiver, frame));
    zframe_destroy (&frame);
    qt_verifier_destroy (&receiver);

    //  No receiver restart, but more sender restarts than retired epochs
    //  are remembered: epoch 0 is long forgotten by the ring, and still its
    //  frames never come back
    receiver = qt_verifier_new (trust, batch);
    QT_CHECK (s_test_accepts (receiver, captured [0]));
    qt_signer_t *latest = NULL;
    for (size_t k = 0; k < S_TEST_RESTARTS; k++) {
        qt_signer_destroy (&latest);
        latest = s_test_signer (key_path);
        frame = s_test_actions (latest, 400 + k, batch);
        QT_CHECK (s_test_accepts (receiver, frame));
        zframe_destroy (&frame);
    }
    for (size_t i = 1; i < S_TEST_CAPTURED; i++) {
        s_expect_drop (receiver, "action", captured [i], QT_DROP_REPLAY);
        frame = s_test_actions (latest, 500 + i, batch);
        QT_CHECK (s_test_accepts (receiver, frame));
        zframe_destroy (&frame);
    }
    qt_verifier_destroy (&receiver);

    //  A stale message of a new epoch moves nothing: freshness comes first
    receiver = qt_verifier_new (trust, batch);
    qt_verifier_set_max_age (receiver, S_TEST_MAX_AGE_MS);
    frame = s_test_actions (latest, 600, batch);
    QT_CHECK (s_test_accepts (receiver, frame));
    zframe_destroy (&frame);
    qt_signer_t *newer = s_test_signer (key_path);
    zframe_t *late = s_test_actions (newer, 601, batch);
    //  ... wait until it is stale, hearing the current epoch meanwhile (a
    //  key silent for the whole age window would be forgotten)
    for (int64_t waited = 0; waited <= S_TEST_MAX_AGE_MS; waited += S_TEST_MAX_AGE_MS / 10) {
        zclock_sleep (S_TEST_MAX_AGE_MS / 10);
        frame = s_test_actions (latest, 602, batch);
        QT_CHECK (s_test_accepts (receiver, frame));
        zframe_destroy (&frame);
    }
    s_expect_drop (receiver, "action", late, QT_DROP_STALE);
    frame = s_test_actions (latest, 603, batch);
    QT_CHECK (s_test_accepts (receiver, frame));
    zframe_destroy (&frame);
    zframe_destroy (&late);
    qt_signer_destroy (&newer);
    qt_verifier_destroy (&receiver);

    //  Several live epochs per key (control requests): each process's
    //  first message may arrive out of order, an epoch sent before all of
    //  the live ones is refused once they are full
    receiver = qt_verifier_new (trust, batch);
    qt_verifier_set_live_epochs (receiver, 2);
    qt_signer_t *first = s_test_signer (key_path);
    qt_signer_t *second = s_test_signer (key_path);
    zframe_t *early = s_test_actions (first, 700, batch);
    frame = s_test_actions (second, 701, batch);
    QT_CHECK (s_test_accepts (receiver, frame));
    QT_CHECK (s_test_accepts (receiver, early));
    s_expect_drop (receiver, "action", early, QT_DROP_REPLAY);
    zframe_destroy (&frame);
    zframe_destroy (&early);
    for (size_t i = 0; i < S_TEST_CAPTURED; i++)
        s_expect_drop (receiver, "action", captured [i], QT_DROP_REPLAY);
    qt_signer_destroy (&first);
    qt_signer_destroy (&second);
    qt_verifier_destroy (&receiver);

    for (size_t i = 0; i < S_TEST_CAPTURED; i++)
        zframe_destroy (&captured [i]);
    qt_signer_destroy (&latest);
    qt_signer_destroy (&current);
    qt_signer_destroy (&old);
}

void
qt_envelope_test (bool verbose)
{
    if (verbose)
        printf (" * qt_envelope: ");
    QT_CHECK (sodium_init () >= 0);
    char dir_template [] = "/tmp/qt_envelope_test.XXXXXX";
    char *dir = mkdtemp (dir_template);
    QT_CHECK (dir);
    qt_keypair_t *actor = qt_keypair_generate ("actor", 1);
    qt_keypair_t *scorer = qt_keypair_generate ("scorer", 1);
    char *actor_pub = zsys_sprintf ("%s/actor-1.pub", dir);
    char *scorer_pub = zsys_sprintf ("%s/scorer-1.pub", dir);
    char *actor_key = zsys_sprintf ("%s/actor-1.key", dir);
    QT_CHECK (qt_keypair_save (actor, actor_key, actor_pub) == 0);
    QT_CHECK (qt_keypair_save (scorer, NULL, scorer_pub) == 0);
    qt_keypair_t *rater = qt_keypair_generate (QT_RATER_ROLE, 1);
    char *rater_pub = zsys_sprintf ("%s/" QT_RATER_ROLE "-1.pub", dir);
    QT_CHECK (qt_keypair_save (rater, NULL, rater_pub) == 0);
    char *error = NULL;
    qt_trust_t *trust = qt_trust_load (dir, &error);
    QT_CHECK (trust);

    const size_t batch = 4;
    qt_signer_t *signer = qt_signer_new (&actor);
    QT_CHECK (actor == NULL);
    qt_verifier_t *verifier = qt_verifier_new (trust, batch);

    //  Round trip
    zframe_t *frame = s_test_actions (signer, 7, batch);
    qt_drop_cause_t cause;
    qt_message_t *message = qt_verifier_open (verifier, "action", "actor", zframe_data (frame),
                                              zframe_size (frame), &cause);
    QT_CHECK (message && cause == QT_DROP_NONE);
    QT_CHECK (message->envelope->tick == 7 && message->envelope->seq == 1);
    QT_CHECK (streq (message->sender->role, "actor") && message->sender->replica == 1);
    QT_CHECK (((Quintet__ActionBatch *) message->payload)->n_actions == batch);
    qt_message_destroy (&message);

    //  The same bytes again: a replay
    s_expect_drop (verifier, "action", frame, QT_DROP_REPLAY);
    zframe_destroy (&frame);

    //  Read from another replica's endpoint: refused before the signature
    //  or the replay window is consulted (so it is not recorded as seen)
    frame = s_test_actions (signer, 7, batch);
    message = qt_verifier_open_from (verifier, "action", "actor", 2, zframe_data (frame),
                                     zframe_size (frame), &cause);
    QT_CHECK (!message && cause == QT_DROP_UNEXPECTED);
    message = qt_verifier_open_from (verifier, "action", "actor", 1, zframe_data (frame),
                                     zframe_size (frame), &cause);
    QT_CHECK (message);
    qt_message_destroy (&message);
    zframe_destroy (&frame);

    //  Every single flipped byte is refused (and never accepted)
    frame = s_test_actions (signer, 8, batch);
    for (size_t i = 0; i < zframe_size (frame); i++) {
        zframe_t *copy = zframe_dup (frame);
        zframe_data (copy) [i] ^= 0x01;
        message = qt_verifier_open (verifier, "action", NULL, zframe_data (copy), zframe_size (copy), &cause);
        QT_CHECK (!message);
        QT_CHECK (cause != QT_DROP_NONE);
        zframe_destroy (&copy);
    }
    //  ... while the original still verifies: the flips were never recorded as seen
    message = qt_verifier_open (verifier, "action", NULL, zframe_data (frame), zframe_size (frame), &cause);
    QT_CHECK (message);
    qt_message_destroy (&message);
    zframe_destroy (&frame);

    //  Out-of-order delivery inside the window is fine, once
    zframe_t *early = s_test_actions (signer, 9, batch);
    zframe_t *late = s_test_actions (signer, 10, batch);
    message = qt_verifier_open (verifier, "action", NULL, zframe_data (late), zframe_size (late), &cause);
    QT_CHECK (message);
    qt_message_destroy (&message);
    message = qt_verifier_open (verifier, "action", NULL, zframe_data (early), zframe_size (early), &cause);
    QT_CHECK (message);
    qt_message_destroy (&message);
    s_expect_drop (verifier, "action", early, QT_DROP_REPLAY);
    zframe_destroy (&early);
    zframe_destroy (&late);

    //  A valid signature by a key of another role, claiming to be an actor
    qt_signer_t *impostor = qt_signer_new (&scorer);
    Quintet__Envelope forged = QUINTET__ENVELOPE__INIT;
    forged.role = "actor";
    forged.replica = 1;
    forged.key_id = qt_signer_keypair (impostor)->key_id;
    forged.epoch = 1;
    forged.seq = 1;
    forged.type = QUINTET__PAYLOAD_TYPE__ACTION_BATCH;
    size_t forged_size = quintet__envelope__get_packed_size (&forged);
    byte *forged_bytes = (byte *) zmalloc (S_CONTEXT_LEN + forged_size);
    memcpy (forged_bytes, QT_SIGNATURE_CONTEXT, S_CONTEXT_LEN);
    quintet__envelope__pack (&forged, forged_bytes + S_CONTEXT_LEN);
    unsigned char signature [crypto_sign_BYTES];
    crypto_sign_detached (signature, NULL, forged_bytes, S_CONTEXT_LEN + forged_size,
                          qt_signer_keypair (impostor)->secret_key);
    Quintet__SignedMessage forged_message = QUINTET__SIGNED_MESSAGE__INIT;
    forged_message.envelope.data = forged_bytes + S_CONTEXT_LEN;
    forged_message.envelope.len = forged_size;
    forged_message.signature.data = signature;
    forged_message.signature.len = sizeof signature;
    frame = zframe_new (NULL, quintet__signed_message__get_packed_size (&forged_message));
    quintet__signed_message__pack (&forged_message, zframe_data (frame));
    s_expect_drop (verifier, "action", frame, QT_DROP_WRONG_ROLE);
    zframe_destroy (&frame);
    free (forged_bytes);

    //  A scorer's honest message is fine on its topic, but not where an actor is expected
    Quintet__ScoreBatch scores = QUINTET__SCORE_BATCH__INIT;
    frame = qt_signer_seal (impostor, QUINTET__PAYLOAD_TYPE__SCORE_BATCH, 1, &scores.base);
    s_expect_drop (verifier, "action", frame, QT_DROP_WRONG_TYPE);
    zframe_destroy (&frame);

    //  Oversized, truncated and garbage frames
    qt_verifier_set_size_cap (verifier, 64);
    frame = zframe_new (NULL, 65);
    memset (zframe_data (frame), 0x55, 65);
    s_expect_drop (verifier, "action", frame, QT_DROP_OVERSIZE);
    zframe_destroy (&frame);
    qt_verifier_set_size_cap (verifier, QT_MESSAGE_SIZE_CAP);
    frame = zframe_new ("\xff\xff\xff\xff garbage", 12);
    s_expect_drop (verifier, "action", frame, QT_DROP_MALFORMED);
    zframe_destroy (&frame);
    zframe_t *whole = s_test_actions (signer, 11, batch);
    frame = zframe_new (zframe_data (whole), zframe_size (whole) / 2);
    message = qt_verifier_open (verifier, "action", NULL, zframe_data (frame), zframe_size (frame), &cause);
    QT_CHECK (!message && (cause == QT_DROP_MALFORMED || cause == QT_DROP_BAD_SIGNATURE));
    zframe_destroy (&frame);
    zframe_destroy (&whole);

    //  Wrong batch size: authentic but refused
    frame = s_test_actions (signer, 12, batch - 1);
    s_expect_drop (verifier, "action", frame, QT_DROP_BATCH_SIZE);
    zframe_destroy (&frame);

    //  A restarted signer (new epoch) is accepted; its old epoch then is not
    qt_keypair_t *again = qt_keypair_load (actor_key, "actor", 1, &error);
    QT_CHECK (again);
    qt_signer_t *restarted = qt_signer_new (&again);
    QT_CHECK (qt_signer_epoch (restarted) != qt_signer_epoch (signer));
    frame = s_test_actions (restarted, 13, batch);
    message = qt_verifier_open (verifier, "action", NULL, zframe_data (frame), zframe_size (frame), &cause);
    QT_CHECK (message);
    qt_message_destroy (&message);
    zframe_destroy (&frame);
    frame = s_test_actions (signer, 14, batch);
    s_expect_drop (verifier, "action", frame, QT_DROP_REPLAY);
    zframe_destroy (&frame);
    qt_signer_destroy (&restarted);

    //  A rater's key, in the trust store under its own name, signs no
    //  envelope: refused even where any sender is welcome
    qt_signer_t *person = qt_signer_new (&rater);
    frame = s_test_actions (person, 15, batch);
    s_expect_drop (verifier, "action", frame, QT_DROP_WRONG_ROLE);
    zframe_destroy (&frame);
    qt_signer_destroy (&person);

    QT_CHECK (qt_verifier_accepted (verifier) == 6);
    QT_CHECK (qt_verifier_drops_total (verifier) >= 8);

    //  Epoch rollback (issue 8): frames captured from a previous epoch, by
    //  a passive subscriber, are replayed by someone else after the sender
    //  restarted. They must never evict the restarted sender's epoch.
    s_test_epoch_rollback (actor_key, batch, trust);

    qt_verifier_destroy (&verifier);
    qt_signer_destroy (&impostor);
    qt_signer_destroy (&signer);
    qt_signer_destroy (&signer);
    qt_trust_destroy (&trust);
    unlink (actor_pub);
    unlink (actor_key);
    unlink (scorer_pub);
    unlink (rater_pub);
    zstr_free (&rater_pub);
    zstr_free (&actor_key);
    rmdir (dir);
    zstr_free (&actor_pub);
    zstr_free (&scorer_pub);
    if (verbose)
        printf ("OK\n");
}
