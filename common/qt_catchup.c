/*  qt_catchup: state transfer between the replicas of one role (see the
    header for the protocol).
*/
#include <sodium.h>
#include <syslog.h>
#include "qt_catchup.h"
#include "qt_selftest.h"
#include "qt_control.h"
#include "qt_keys.h"
#include "qt_log.h"

#define S_MAX_UPSTREAMS 2

typedef enum { S_IDLE, S_WAITING, S_ASKING, S_BACKOFF } s_phase_t;

//  What a peer answered in this attempt
typedef enum { S_NONE, S_PENDING, S_READY, S_PASSED, S_REFUSED } s_answer_t;

typedef struct {
    uint32_t replica;
    char *endpoint;
    zsock_t *dealer;
    uint8_t nonce [QT_CONTROL_NONCE_SIZE];
    bool outstanding;
    int64_t asked_ms;
    int64_t next_ask_ms;
    s_answer_t answer;
    uint64_t last;                              //  its last processed tick, as it said
    uint8_t digest [QT_CATCHUP_DIGEST_SIZE];
    zchunk_t *bytes;                            //  S_READY
} s_peer_t;

typedef struct {
    uint64_t tick;
    zchunk_t *bytes;
    uint8_t digest [QT_CATCHUP_DIGEST_SIZE];
    int64_t taken_ms;
} s_kept_t;

typedef struct {
    uint64_t tick;
    qt_message_t *slots [S_MAX_UPSTREAMS][QT_QUORUM_MAX_REPLICAS];
    double weights [S_MAX_UPSTREAMS][QT_QUORUM_MAX_REPLICAS];
} s_record_t;

struct _qt_catchup_t {
    char *role;
    uint32_t replica, faults;
    bool asking;
    qt_signer_t *signer;            //  borrowed
    qt_verifier_t *verifier;        //  of the peers' answers
    size_t upstreams;
    qt_catchup_ops_t ops;
    s_peer_t peers [QT_QUORUM_MAX_REPLICAS];
    uint32_t n_peers;

    //  Serving
    uint64_t wishes [QT_CATCHUP_WISHES];
    uint32_t n_wishes;
    s_kept_t kept [QT_CATCHUP_KEPT];

    //  Asking
    s_phase_t phase;
    uint64_t target;                //  S
    bool own_ready;
    uint8_t own_digest [QT_CATCHUP_DIGEST_SIZE];
    int64_t began_ms, retry_ms, backoff_ms;
    uint32_t restarts;
    bool fresh;                     //  the next s_begin starts a new attempt (deadline)
    zlistx_t *records;              //  s_record_t, ticks after S in order
    size_t kept_bytes;              //  their inputs' packed size
    uint64_t last_processed;
    bool have_last;

    char state [256];
    uint64_t agreed, restored, failed, served;
};

static void
s_record_destroy (void **item_p);

//  Forgets the kept ticks
static void
s_purge (qt_catchup_t *self)
{
    zlistx_purge (self->records);
    self->kept_bytes = 0;
}

static void
s_record_destroy (void **item_p)
{
    s_record_t *record = (s_record_t *) *item_p;
    if (record) {
        for (size_t u = 0; u < S_MAX_UPSTREAMS; u++)
            for (size_t r = 0; r < QT_QUORUM_MAX_REPLICAS; r++)
                qt_message_destroy (&record->slots [u][r]);
        free (record);
        *item_p = NULL;
    }
}

qt_catchup_t *
qt_catchup_new (const char *role, uint32_t replica, uint32_t faults, bool asking,
                qt_signer_t *signer, qt_trust_t *trust, size_t upstreams,
                const qt_catchup_ops_t *ops)
{
    assert (role && signer && trust && ops);
    if (upstreams > S_MAX_UPSTREAMS)
        return NULL;
    qt_catchup_t *self = (qt_catchup_t *) zmalloc (sizeof (qt_catchup_t));
    self->role = strdup (role);
    self->replica = replica;
    self->faults = faults;
    self->asking = asking;
    self->signer = signer;
    self->verifier = qt_verifier_new (trust, 0);
    qt_verifier_set_size_cap (self->verifier, QT_CATCHUP_MAX_BYTES + 4096);
    self->upstreams = upstreams;
    self->ops = *ops;
    self->records = zlistx_new ();
    zlistx_set_destructor (self->records, s_record_destroy);
    self->backoff_ms = QT_CATCHUP_BACKOFF_MS;
    self->phase = asking ? S_WAITING : S_IDLE;
    self->fresh = true;
    snprintf (self->state, sizeof self->state, asking ? "waiting for the first tick" : "off (serving only)");
    return self;
}

static void
s_peer_forget (s_peer_t *peer)
{
    peer->outstanding = false;
    peer->answer = S_NONE;
    peer->next_ask_ms = 0;
    zchunk_destroy (&peer->bytes);
}

void
qt_catchup_destroy (qt_catchup_t **self_p)
{
    assert (self_p);
    if (*self_p) {
        qt_catchup_t *self = *self_p;
        for (uint32_t i = 0; i < self->n_peers; i++) {
            s_peer_forget (&self->peers [i]);
            zsock_destroy (&self->peers [i].dealer);
            zstr_free (&self->peers [i].endpoint);
        }
        for (int k = 0; k < QT_CATCHUP_KEPT; k++)
            zchunk_destroy (&self->kept [k].bytes);
        zlistx_destroy (&self->records);
        qt_verifier_destroy (&self->verifier);
        zstr_free (&self->role);
        free (self);
        *self_p = NULL;
    }
}

int
qt_catchup_add_peer (qt_catchup_t *self, uint32_t replica, const char *endpoint, char **error)
{
    if (replica == self->replica)
        return 0;       //  a shared list of every replica names this one too
    if (self->n_peers >= QT_QUORUM_MAX_REPLICAS) {
        *error = zsys_sprintf ("more than %d peers", QT_QUORUM_MAX_REPLICAS);
        return -1;
    }
    s_peer_t *peer = &self->peers [self->n_peers];
    memset (peer, 0, sizeof *peer);
    peer->replica = replica;
    peer->endpoint = strdup (endpoint);
    peer->dealer = zsock_new (ZMQ_DEALER);
    assert (peer->dealer);
    zsock_set_linger (peer->dealer, 0);
    zsock_set_maxmsgsize (peer->dealer, (int64_t) QT_CATCHUP_MAX_BYTES + 4096);
    //  Requests queue only while connected: a peer that is down is asked
    //  again when it answers nothing, not flooded on its return
    zsock_set_immediate (peer->dealer, 1);
    zsock_set_sndhwm (peer->dealer, 4);
    if (zsock_connect (peer->dealer, "%s", endpoint) == -1) {
        *error = zsys_sprintf ("cannot connect to %s: %s", endpoint, zmq_strerror (zmq_errno ()));
        zsock_destroy (&peer->dealer);
        zstr_free (&peer->endpoint);
        return -1;
    }
    self->n_peers++;
    return 0;
}

void
qt_catchup_read_on (qt_catchup_t *self, zloop_t *loop, zloop_reader_fn *handler, void *arg)
{
    for (uint32_t i = 0; i < self->n_peers; i++)
        zloop_reader (loop, self->peers [i].dealer, handler, arg);
}

// -- serving ------------------------------------------------------------------

static s_kept_t *
s_kept (qt_catchup_t *self, uint64_t tick)
{
    for (int k = 0; k < QT_CATCHUP_KEPT; k++)
        if (self->kept [k].bytes && self->kept [k].tick == tick)
            return &self->kept [k];
    return NULL;
}

//  Takes the role's snapshot after `tick` and keeps it, evicting the oldest
static s_kept_t *
s_take (qt_catchup_t *self, uint64_t tick, int64_t now_ms)
{
    s_kept_t *kept = s_kept (self, tick);
    if (kept)
        return kept;
    zchunk_t *bytes = zchunk_new (NULL, 0);
    if (self->ops.snapshot (self->ops.ctx, bytes) || zchunk_size (bytes) > QT_CATCHUP_MAX_BYTES) {
        qt_log_event (LOG_WARNING, NULL, tick, NULL, "catch-up",
                      "cannot take a snapshot after tick %" PRIu64 " (%zu bytes)", tick,
                      zchunk_size (bytes));
        zchunk_destroy (&bytes);
        return NULL;
    }
    //  An empty place, else the oldest tick's
    kept = &self->kept [0];
    for (int k = 0; k < QT_CATCHUP_KEPT && kept->bytes; k++)
        if (!self->kept [k].bytes || self->kept [k].tick < kept->tick)
            kept = &self->kept [k];
    zchunk_destroy (&kept->bytes);
    kept->bytes = bytes;
    kept->tick = tick;
    kept->taken_ms = now_ms;
    crypto_generichash (kept->digest, sizeof kept->digest, zchunk_data (bytes), zchunk_size (bytes),
                        NULL, 0);
    return kept;
}

void
qt_catchup_serve (qt_catchup_t *self, const Quintet__ControlRequest *request,
                  Quintet__ControlReply *reply)
{
    uint64_t tick = request->snapshot_tick;
    uint64_t last_processed = self->last_processed;
    bool have_last = self->have_last;
    reply->snapshot_tick = tick;
    reply->last_processed = have_last ? last_processed : 0;
    s_kept_t *kept = s_kept (self, tick);
    if (kept) {
        reply->snapshot_state = "ready";
        reply->snapshot.data = zchunk_data (kept->bytes);
        reply->snapshot.len = zchunk_size (kept->bytes);
        reply->snapshot_digest.data = kept->digest;
        reply->snapshot_digest.len = sizeof kept->digest;
        self->served++;
        return;
    }
    if (have_last && tick <= last_processed) {
        reply->snapshot_state = "passed";
        return;
    }
    if (have_last && tick > last_processed + QT_CATCHUP_MAX_LEAD) {
        reply->snapshot_state = "refused";
        return;
    }
    for (uint32_t w = 0; w < self->n_wishes; w++)
        if (self->wishes [w] == tick) {
            reply->snapshot_state = "pending";
            return;
        }
    if (self->n_wishes >= QT_CATCHUP_WISHES) {
        reply->snapshot_state = "refused";     //  busy: asked for too many ticks at once
        return;
    }
    self->wishes [self->n_wishes++] = tick;
    reply->snapshot_state = "pending";
}

// -- asking -------------------------------------------------------------------

static void
s_set_state (qt_catchup_t *self, const char *fmt, ...)
{
    va_list args;
    va_start (args, fmt);
    vsnprintf (self->state, sizeof self->state, fmt, args);
    va_end (args);
}

//  Starts (or restarts) an attempt at tick S
static void
s_begin (qt_catchup_t *self, uint64_t target, int64_t now_ms)
{
    self->phase = S_ASKING;
    self->target = target;
    self->own_ready = false;
    s_purge (self);
    for (uint32_t i = 0; i < self->n_peers; i++)
        s_peer_forget (&self->peers [i]);
    if (self->fresh) {
        self->began_ms = now_ms;        //  restarts keep the deadline of the attempt
        self->fresh = false;
    }
    s_set_state (self, "asking %u peers for the state after tick %" PRIu64, self->n_peers, target);
}

static void
s_fail (qt_catchup_t *self, int64_t now_ms, const char *fmt, ...)
{
    char why [192];
    va_list args;
    va_start (args, fmt);
    vsnprintf (why, sizeof why, fmt, args);
    va_end (args);
    self->failed++;
    s_purge (self);
    for (uint32_t i = 0; i < self->n_peers; i++)
        s_peer_forget (&self->peers [i]);
    self->phase = S_BACKOFF;
    self->retry_ms = now_ms + self->backoff_ms;
    self->restarts = 0;
    qt_log_event (LOG_WARNING, NULL, self->target, NULL, "catch-up",
                  "catch-up for tick %" PRIu64 " given up: %s; going on from our own state, "
                  "again in %" PRId64 " s", self->target, why, self->backoff_ms / 1000);
    s_set_state (self, "given up at tick %" PRIu64 " (%s); again in %" PRId64 " s", self->target,
                 why, self->backoff_ms / 1000);
    self->backoff_ms = MIN (2 * self->backoff_ms, (int64_t) QT_CATCHUP_BACKOFF_MAX_MS);
}

void
qt_catchup_diverged (qt_catchup_t *self, const char *why)
{
    if (!self || !self->asking || self->n_peers == 0)
        return;
    if (self->phase == S_IDLE) {
        qt_log_event (LOG_NOTICE, NULL, UINT64_MAX, NULL, "catch-up",
                      "%s: catching up from the peers' state", why);
        self->phase = S_WAITING;
        self->fresh = true;
        self->restarts = 0;
        s_set_state (self, "%s: waiting for the next tick", why);
    }
    else
    if (self->phase == S_ASKING && self->own_ready) {
        //  A gap in the ticks kept since S: they could not be replayed.
        //  Start over further ahead, within the same attempt's deadline
        //  (ticks skipped before S do not matter: S's state replaces ours)
        s_purge (self);
        self->phase = S_WAITING;
        s_set_state (self, "%s after tick %" PRIu64 ": asking again", why, self->target);
    }
}

bool
qt_catchup_keeps (qt_catchup_t *self, uint64_t tick)
{
    return self && self->phase == S_ASKING && self->own_ready && tick > self->target;
}

void
qt_catchup_processed (qt_catchup_t *self, uint64_t tick, qt_message_t **taken [],
                      double weights [][QT_QUORUM_MAX_REPLICAS], int64_t now_ms)
{
    self->last_processed = tick;
    self->have_last = true;
    //  Serving: the wished snapshots of this tick; wishes passed are void
    bool wished = false;
    uint32_t kept_wishes = 0;
    for (uint32_t w = 0; w < self->n_wishes; w++) {
        if (self->wishes [w] == tick)
            wished = true;
        else
        if (self->wishes [w] > tick)
            self->wishes [kept_wishes++] = self->wishes [w];
    }
    self->n_wishes = kept_wishes;
    for (int k = 0; k < QT_CATCHUP_KEPT; k++)
        if (self->kept [k].bytes && now_ms - self->kept [k].taken_ms > QT_CATCHUP_KEPT_MS)
            zchunk_destroy (&self->kept [k].bytes);
    bool own = self->phase == S_ASKING && tick == self->target;
    if (wished || own) {
        s_kept_t *kept = s_take (self, tick, now_ms);
        if (own && kept) {
            memcpy (self->own_digest, kept->digest, sizeof self->own_digest);
            self->own_ready = true;
            //  The peers are about as far: ask the pending ones now
            for (uint32_t i = 0; i < self->n_peers; i++)
                if (self->peers [i].answer == S_PENDING)
                    self->peers [i].next_ask_ms = 0;
        }
    }
    if (self->phase == S_WAITING)
        s_begin (self, tick + QT_CATCHUP_LEAD, now_ms);
    else
    if (self->phase == S_ASKING && tick > self->target && !self->own_ready)
        s_begin (self, tick + QT_CATCHUP_LEAD, now_ms);    //  S itself was skipped
    else
    if (taken) {
        s_record_t *record = (s_record_t *) zmalloc (sizeof (s_record_t));
        record->tick = tick;
        for (size_t u = 0; u < self->upstreams; u++)
            for (size_t r = 0; r < QT_QUORUM_MAX_REPLICAS; r++) {
                record->slots [u][r] = taken [u] ? taken [u][r] : NULL;
                record->weights [u][r] = weights [u][r];
            }
        zlistx_add_end (self->records, record);
        for (size_t u = 0; u < self->upstreams; u++)
            for (size_t r = 0; r < QT_QUORUM_MAX_REPLICAS; r++)
                if (record->slots [u][r] && record->slots [u][r]->payload)
                    self->kept_bytes += protobuf_c_message_get_packed_size (record->slots [u][r]->payload);
        if (zlistx_size (self->records) > QT_CATCHUP_MAX_TICKS
        ||  self->kept_bytes > QT_CATCHUP_MAX_KEPT_BYTES)
            s_fail (self, now_ms, "more than %zu ticks (%zu bytes of inputs) kept",
                    zlistx_size (self->records) - 1, self->kept_bytes);
    }
}

static void
s_ask (qt_catchup_t *self, s_peer_t *peer, int64_t now_ms)
{
    randombytes_buf (peer->nonce, sizeof peer->nonce);
    Quintet__ControlRequest request = QUINTET__CONTROL_REQUEST__INIT;
    request.command = QT_CATCHUP_COMMAND;
    request.target_role = self->role;
    request.target_replica = peer->replica;
    request.snapshot_tick = self->target;
    request.nonce.data = peer->nonce;
    request.nonce.len = sizeof peer->nonce;
    Quintet__ControlMessage message = QUINTET__CONTROL_MESSAGE__INIT;
    message.request = &request;
    zframe_t *frame = qt_signer_seal (self->signer, QUINTET__PAYLOAD_TYPE__CONTROL, 0, &message.base);
    zmsg_t *msg = zmsg_new ();
    zmsg_addmem (msg, NULL, 0);         //  the REQ envelope a ROUTER expects
    zmsg_append (msg, &frame);
    //  Non-blocking: a peer not connected is asked again later
    void *handle = zsock_resolve (peer->dealer);
    bool sent = true;
    size_t parts = zmsg_size (msg);
    for (size_t i = 0; i < parts && sent; i++) {
        zframe_t *part = zmsg_pop (msg);
        int flags = ZMQ_DONTWAIT | (i + 1 < parts ? ZMQ_SNDMORE : 0);
        sent = zmq_send (handle, zframe_data (part), zframe_size (part), flags) >= 0;
        zframe_destroy (&part);
    }
    zmsg_destroy (&msg);
    peer->outstanding = sent;
    peer->asked_ms = now_ms;
}

void
qt_catchup_receive (qt_catchup_t *self, void *socket, int64_t now_ms)
{
    s_peer_t *peer = NULL;
    for (uint32_t i = 0; i < self->n_peers; i++)
        if (socket == self->peers [i].dealer)
            peer = &self->peers [i];
    if (!peer)
        return;
    zmsg_t *msg;
    while ((zsock_events (peer->dealer) & ZMQ_POLLIN) && (msg = zmsg_recv (peer->dealer))) {
        zframe_t *empty = zmsg_pop (msg);
        zframe_t *frame = zmsg_pop (msg);
        zmsg_destroy (&msg);
        qt_drop_cause_t cause = QT_DROP_MALFORMED;
        qt_message_t *message = NULL;
        if (empty && frame && zframe_size (empty) == 0)
            message = qt_verifier_open (self->verifier, QT_CONTROL_TOPIC, self->role,
                                        zframe_data (frame), zframe_size (frame), &cause);
        const Quintet__ControlReply *reply = peer->outstanding
                                           ? qt_control_reply_of (message, peer->nonce) : NULL;
        //  An answer of that peer, to our last request, for our tick
        if (reply && message->sender->replica == peer->replica
        &&  self->phase == S_ASKING && reply->snapshot_tick == self->target
        &&  reply->snapshot_state) {
            peer->outstanding = false;
            peer->last = reply->last_processed;
            if (streq (reply->snapshot_state, "pending")) {
                peer->answer = S_PENDING;
                peer->next_ask_ms = now_ms + QT_CATCHUP_POLL_MS;
            }
            else
            if (streq (reply->snapshot_state, "passed"))
                peer->answer = S_PASSED;
            else
            if (streq (reply->snapshot_state, "ready")
            &&  reply->snapshot_digest.len == QT_CATCHUP_DIGEST_SIZE) {
                uint8_t digest [QT_CATCHUP_DIGEST_SIZE];
                crypto_generichash (digest, sizeof digest, reply->snapshot.data,
                                    reply->snapshot.len, NULL, 0);
                if (memcmp (digest, reply->snapshot_digest.data, sizeof digest) == 0) {
                    peer->answer = S_READY;
                    memcpy (peer->digest, digest, sizeof digest);
                    zchunk_destroy (&peer->bytes);
                    peer->bytes = zchunk_new (reply->snapshot.data, reply->snapshot.len);
                }
                else
                    peer->answer = S_REFUSED;   //  bytes and digest disagree: not vouched
            }
            else
                peer->answer = S_REFUSED;
        }
        qt_message_destroy (&message);
        zframe_destroy (&empty);
        zframe_destroy (&frame);
    }
}

//  Restores the vouched state and replays the kept ticks
static int
s_restore (qt_catchup_t *self, s_peer_t *source, uint32_t vouching, int64_t now_ms)
{
    const char *cause = NULL;
    if (self->ops.restore (self->ops.ctx, zchunk_data (source->bytes), zchunk_size (source->bytes),
                           &cause)) {
        s_fail (self, now_ms, "the vouched state does not restore: %s", cause ? cause : "?");
        return 0;
    }
    size_t replayed = 0;
    uint64_t last = self->target;
    s_record_t *record = (s_record_t *) zlistx_first (self->records);
    while (record) {
        qt_message_t **inputs [S_MAX_UPSTREAMS];
        for (size_t u = 0; u < S_MAX_UPSTREAMS; u++)
            inputs [u] = record->slots [u];
        if (self->ops.replay (self->ops.ctx, record->tick, inputs, record->weights))
            return -1;
        last = record->tick;
        replayed++;
        record = (s_record_t *) zlistx_next (self->records);
    }
    s_purge (self);
    self->restored++;
    self->phase = S_IDLE;
    self->restarts = 0;
    self->backoff_ms = QT_CATCHUP_BACKOFF_MS;
    qt_log_event (LOG_NOTICE, NULL, last, NULL, "catch-up",
                  "restored the state after tick %" PRIu64 " vouched for by %u peers "
                  "(%zu bytes), replayed %zu ticks to %" PRIu64,
                  self->target, vouching, zchunk_size (source->bytes), replayed, last);
    s_set_state (self, "restored at tick %" PRIu64 " from %u peers (%zu ticks replayed)",
                 self->target, vouching, replayed);
    return 0;
}

int
qt_catchup_run (qt_catchup_t *self, int64_t now_ms)
{
    if (!self || !self->asking || self->n_peers == 0)
        return 0;
    if (self->phase == S_BACKOFF && now_ms >= self->retry_ms) {
        self->phase = S_WAITING;
        self->fresh = true;
        s_set_state (self, "trying again at the next tick");
    }
    if (self->phase != S_ASKING)
        return 0;
    if (now_ms - self->began_ms > QT_CATCHUP_ATTEMPT_MS) {
        uint32_t count [S_REFUSED + 1] = { 0 };
        for (uint32_t i = 0; i < self->n_peers; i++)
            count [self->peers [i].answer]++;
        s_fail (self, now_ms, "no state vouched for by %u peers within %d s (answers: %u ready, "
                "%u pending, %u none%s)", self->faults + 1, QT_CATCHUP_ATTEMPT_MS / 1000,
                count [S_READY], count [S_PENDING], count [S_NONE],
                count [S_READY] > self->faults ? ", digests differ" : "");
        return 0;
    }
    //  Conclude: f + 1 equal digests, and our own at S
    uint32_t refused = 0, passed = 0;
    uint64_t furthest = self->target;
    for (uint32_t i = 0; i < self->n_peers; i++) {
        s_peer_t *peer = &self->peers [i];
        if (peer->answer == S_REFUSED)
            refused++;
        if (peer->answer == S_PASSED) {
            passed++;
            furthest = MAX (furthest, peer->last);
        }
        if (peer->answer != S_READY || !self->own_ready)
            continue;
        uint32_t vouching = 0;
        for (uint32_t j = 0; j < self->n_peers; j++)
            if (self->peers [j].answer == S_READY
            &&  memcmp (self->peers [j].digest, peer->digest, QT_CATCHUP_DIGEST_SIZE) == 0)
                vouching++;
        if (vouching < self->faults + 1)
            continue;
        if (memcmp (peer->digest, self->own_digest, QT_CATCHUP_DIGEST_SIZE) == 0) {
            s_purge (self);
            self->agreed++;
            self->phase = S_IDLE;
            self->restarts = 0;
            self->backoff_ms = QT_CATCHUP_BACKOFF_MS;
            qt_log_event (LOG_INFO, NULL, self->target, NULL, "catch-up",
                          "our state after tick %" PRIu64 " is the one %u peers vouch for",
                          self->target, vouching);
            s_set_state (self, "agreed at tick %" PRIu64 " with %u peers", self->target, vouching);
            return 0;
        }
        return s_restore (self, peer, vouching, now_ms);
    }
    if (self->n_peers - refused < self->faults + 1) {
        s_fail (self, now_ms, "%u of %u peers refused", refused, self->n_peers);
        return 0;
    }
    if (passed > 0) {
        //  Too late for S there: further ahead, from where that peer is
        if (++self->restarts > QT_CATCHUP_RESTARTS) {
            s_fail (self, now_ms, "the peers were past the tick %d times", QT_CATCHUP_RESTARTS);
            return 0;
        }
        s_begin (self, MAX (furthest, self->last_processed) + QT_CATCHUP_LEAD, now_ms);
    }
    //  Ask who has not answered, or said "pending" a while ago
    for (uint32_t i = 0; i < self->n_peers; i++) {
        s_peer_t *peer = &self->peers [i];
        bool due = peer->answer == S_NONE
                 ? !peer->outstanding || now_ms - peer->asked_ms >= QT_CATCHUP_ASK_AGAIN_MS
                 : peer->answer == S_PENDING && !peer->outstanding && now_ms >= peer->next_ask_ms;
        if (peer->answer == S_PENDING && peer->outstanding && now_ms - peer->asked_ms >= QT_CATCHUP_ASK_AGAIN_MS)
            due = true;
        if (due)
            s_ask (self, peer, now_ms);
    }
    return 0;
}

int64_t
qt_catchup_timeout (qt_catchup_t *self, int64_t now_ms)
{
    if (!self || !self->asking || self->n_peers == 0)
        return -1;
    if (self->phase == S_BACKOFF)
        return MAX (0, self->retry_ms - now_ms);
    if (self->phase == S_ASKING)
        return QT_CATCHUP_POLL_MS;
    return -1;
}

const char *
qt_catchup_state (qt_catchup_t *self)
{
    return self->state;
}

uint64_t qt_catchup_agreed (qt_catchup_t *self) { return self->agreed; }
uint64_t qt_catchup_restored (qt_catchup_t *self) { return self->restored; }
uint64_t qt_catchup_failed (qt_catchup_t *self) { return self->failed; }
uint64_t qt_catchup_served (qt_catchup_t *self) { return self->served; }

//  --------------------------------------------------------------------------
//  Selftest: three replicas of a toy role whose state is a hash of every
//  tick it processed; replica 3 starts elsewhere (a restart from its prior)
//  and catches up over real sockets and signatures. Replica 2 may lie.

typedef struct {
    uint64_t state;
    bool lying;
} s_toy_t;

static int
s_toy_snapshot (void *ctx, zchunk_t *out)
{
    s_toy_t *toy = (s_toy_t *) ctx;
    uint64_t state = toy->lying ? toy->state ^ 1 : toy->state;
    zchunk_extend (out, &state, sizeof state);
    return 0;
}

static int
s_toy_restore (void *ctx, const uint8_t *data, size_t size, const char **cause)
{
    if (size != sizeof (uint64_t)) {
        *cause = "not 8 bytes";
        return -1;
    }
    memcpy (&((s_toy_t *) ctx)->state, data, sizeof (uint64_t));
    return 0;
}

static void
s_toy_step (s_toy_t *toy, uint64_t tick)
{
    toy->state = toy->state * 1099511628211u + tick;
}

static int
s_toy_replay (void *ctx, uint64_t tick, qt_message_t **inputs [],
              double weights [][QT_QUORUM_MAX_REPLICAS])
{
    (void) inputs; (void) weights;
    s_toy_step ((s_toy_t *) ctx, tick);
    return 0;
}

//  What the stage's control socket does with a sibling's request
static void
s_test_serve (zsock_t *router, qt_verifier_t *verifier, qt_catchup_t *catchup,
              qt_signer_t *signer, const char *role, uint32_t replica)
{
    while (zsock_events (router) & ZMQ_POLLIN) {
        zmsg_t *msg = zmsg_recv (router);
        zframe_t *identity = zmsg_pop (msg);
        zframe_t *empty = zmsg_pop (msg);
        zframe_t *frame = zmsg_pop (msg);
        zmsg_destroy (&msg);
        qt_drop_cause_t cause;
        qt_message_t *message = qt_verifier_open (verifier, QT_CONTROL_TOPIC, role,
                                                  zframe_data (frame), zframe_size (frame), &cause);
        const Quintet__ControlRequest *request = qt_control_request_of (message);
        QT_CHECK (request && qt_control_request_for (request, role, replica));
        Quintet__ControlReply reply = QUINTET__CONTROL_REPLY__INIT;
        reply.nonce = request->nonce;
        reply.role = (char *) role;
        reply.replica = replica;
        qt_catchup_serve (catchup, request, &reply);
        Quintet__ControlMessage body = QUINTET__CONTROL_MESSAGE__INIT;
        body.reply = &reply;
        zframe_t *sealed = qt_signer_seal (signer, QUINTET__PAYLOAD_TYPE__CONTROL, 0, &body.base);
        qt_message_destroy (&message);
        zmsg_t *out = zmsg_new ();
        zmsg_append (out, &identity);
        zmsg_append (out, &empty);
        zmsg_append (out, &sealed);
        zmsg_send (&out, router);
        zframe_destroy (&frame);
    }
}

//  Runs 3 replicas for `ticks` ticks; replica 3 asks unless ablated.
//  Returns replica 3's restorations; *same: its state equals replica 1's.
static uint64_t
s_test_run (const char *dir, bool asking, bool liar, uint64_t ticks, bool *same)
{
    const char *role = "worldmodel";
    static int run = 0;     //  inproc names of a closed socket may linger
    run++;
    char *error = NULL;
    qt_trust_t *trust = qt_trust_load (dir, &error);
    QT_CHECK (trust);
    s_toy_t toys [3] = { { 7, false }, { 7, liar }, { 12345, false } };
    qt_signer_t *signers [3];
    qt_catchup_t *catchups [3];
    qt_verifier_t *verifiers [3];
    zsock_t *routers [3];
    for (uint32_t r = 1; r <= 3; r++) {
        char *path = zsys_sprintf ("%s/%s-%u.key", dir, role, r);
        qt_keypair_t *pair = qt_keypair_load (path, role, r, &error);
        QT_CHECK (pair);
        zstr_free (&path);
        signers [r - 1] = qt_signer_new (&pair);
        qt_catchup_ops_t ops = { &toys [r - 1], s_toy_snapshot, s_toy_restore, s_toy_replay };
        catchups [r - 1] = qt_catchup_new (role, r, 1, r == 3 && asking, signers [r - 1], trust, 1, &ops);
        verifiers [r - 1] = qt_control_verifier_new (trust);
        routers [r - 1] = zsock_new (ZMQ_ROUTER);
        QT_CHECK (zsock_bind (routers [r - 1], "inproc://qt-catchup-test-%d-%u", run, r) == 0);
    }
    for (uint32_t r = 1; r <= 3; r++)
        for (uint32_t p = 1; p <= 3; p++) {
            char *endpoint = zsys_sprintf ("inproc://qt-catchup-test-%d-%u", run, p);
            QT_CHECK (qt_catchup_add_peer (catchups [r - 1], p, endpoint, &error) == 0);
            zstr_free (&endpoint);
        }
    QT_CHECK (catchups [2]->n_peers == 2);
    for (uint64_t tick = 1; tick <= ticks; tick++) {
        for (uint32_t r = 0; r < 3; r++) {
            bool keep = qt_catchup_keeps (catchups [r], tick);
            s_toy_step (&toys [r], tick);
            qt_message_t *slots [QT_QUORUM_MAX_REPLICAS] = { NULL };
            qt_message_t **taken [1] = { slots };
            double weights [1][QT_QUORUM_MAX_REPLICAS] = { { 1, 1, 1 } };
            if (keep)
                slots [0] = (qt_message_t *) zmalloc (sizeof (qt_message_t));
            qt_catchup_processed (catchups [r], tick, keep ? taken : NULL, weights, zclock_mono ());
        }
        //  The network, every 7th tick (so that ticks are kept and
        //  replayed): requests and answers go both ways
        for (int pass = 0; pass < 3 && tick % 7 == 0; pass++) {
            QT_CHECK (qt_catchup_run (catchups [2], zclock_mono ()) == 0);
            zclock_sleep (1);
            for (uint32_t r = 0; r < 3; r++)
                s_test_serve (routers [r], verifiers [r], catchups [r], signers [r], role, r + 1);
            zclock_sleep (1);
            for (uint32_t p = 0; p < 2; p++)
                qt_catchup_receive (catchups [2], catchups [2]->peers [p].dealer, zclock_mono ());
        }
    }
    *same = toys [2].state == toys [0].state;
    uint64_t restored = qt_catchup_restored (catchups [2]);
    //  The first replica never asked: every attempt is replica 3's
    QT_CHECK (qt_catchup_restored (catchups [0]) == 0 && qt_catchup_agreed (catchups [0]) == 0);
    if (restored)
        QT_CHECK (strstr (qt_catchup_state (catchups [2]), "ticks replayed")
                && !strstr (qt_catchup_state (catchups [2]), "(0 ticks"));
    for (uint32_t r = 0; r < 3; r++) {
        qt_catchup_destroy (&catchups [r]);
        qt_verifier_destroy (&verifiers [r]);
        qt_signer_destroy (&signers [r]);
        zsock_destroy (&routers [r]);
    }
    qt_trust_destroy (&trust);
    return restored;
}

void
qt_catchup_test (bool verbose)
{
    if (verbose)
        printf (" * qt_catchup: ");
    char dir [] = "/tmp/qt_catchup_test.XXXXXX";
    QT_CHECK (mkdtemp (dir));
    for (uint32_t r = 1; r <= 3; r++) {
        char *secret = zsys_sprintf ("%s/worldmodel-%u.key", dir, r);
        char *public = zsys_sprintf ("%s/worldmodel-%u.pub", dir, r);
        qt_keypair_t *pair = qt_keypair_generate ("worldmodel", r);
        QT_CHECK (qt_keypair_save (pair, secret, public) == 0);
        qt_keypair_destroy (&pair);
        zstr_free (&secret);
        zstr_free (&public);
    }
    bool same = false;
    //  Caught up: the state its peers vouch for, then the ticks since
    QT_CHECK (s_test_run (dir, true, false, 100, &same) == 1);
    QT_CHECK (same);
    //  Ablation: not asking, it never agrees again
    QT_CHECK (s_test_run (dir, false, false, 100, &same) == 0);
    QT_CHECK (!same);
    //  One liar of two peers: no digest has f + 1 = 2 vouchers, nothing
    //  is restored (the liar can make the attempt fail, not succeed)
    QT_CHECK (s_test_run (dir, true, true, 100, &same) == 0);
    QT_CHECK (!same);
    //  Serving: wishes, passed, refused
    {
        char *error = NULL;
        qt_trust_t *trust = qt_trust_load (dir, &error);
        char *path = zsys_sprintf ("%s/worldmodel-1.key", dir);
        qt_keypair_t *pair = qt_keypair_load (path, "worldmodel", 1, &error);
        zstr_free (&path);
        qt_signer_t *signer = qt_signer_new (&pair);
        s_toy_t toy = { 1, false };
        qt_catchup_ops_t ops = { &toy, s_toy_snapshot, s_toy_restore, s_toy_replay };
        qt_catchup_t *catchup = qt_catchup_new ("worldmodel", 1, 1, false, signer, trust, 1, &ops);
        qt_catchup_processed (catchup, 10, NULL, NULL, 0);
        Quintet__ControlRequest request = QUINTET__CONTROL_REQUEST__INIT;
        Quintet__ControlReply reply = QUINTET__CONTROL_REPLY__INIT;
        request.snapshot_tick = 10;
        qt_catchup_serve (catchup, &request, &reply);
        QT_CHECK (streq (reply.snapshot_state, "passed") && reply.last_processed == 10);
        request.snapshot_tick = 10 + QT_CATCHUP_MAX_LEAD + 1;
        qt_catchup_serve (catchup, &request, &reply);
        QT_CHECK (streq (reply.snapshot_state, "refused"));
        for (uint64_t t = 11; t < 11 + QT_CATCHUP_WISHES; t++) {
            request.snapshot_tick = t;
            qt_catchup_serve (catchup, &request, &reply);
            QT_CHECK (streq (reply.snapshot_state, "pending"));
        }
        request.snapshot_tick = 11 + QT_CATCHUP_WISHES;
        qt_catchup_serve (catchup, &request, &reply);
        QT_CHECK (streq (reply.snapshot_state, "refused"));      //  busy
        qt_catchup_processed (catchup, 11, NULL, NULL, 0);
        request.snapshot_tick = 11;
        qt_catchup_serve (catchup, &request, &reply);
        QT_CHECK (streq (reply.snapshot_state, "ready") && reply.snapshot.len == sizeof (uint64_t));
        QT_CHECK (qt_catchup_served (catchup) == 1);
        qt_catchup_destroy (&catchup);
        qt_signer_destroy (&signer);
        qt_trust_destroy (&trust);
    }
    char *command = zsys_sprintf ("rm -rf '%s'", dir);
    QT_CHECK (system (command) == 0);
    zstr_free (&command);
    if (verbose)
        printf ("OK\n");
}
