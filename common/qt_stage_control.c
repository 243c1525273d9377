/*  qt_stage_control: the control channel (quintet/control_bind): a
    ROUTER answering verified requests, operators' status and siblings'
    snapshots (qt_catchup), within a budget per peer address.
*/
#include "qt_stage_internal.h"

//  An allowance per peer address: QT_STAGE_CONTROL_RATE requests a second,
//  bursts of QT_STAGE_CONTROL_BURST. The table is bounded: full allowances (idle
//  peers) are forgotten when it fills, and beyond that new peers share one.
static bool
s_control_budget (qt_stage_t *self, const char *peer, int64_t now_ms)
{
    qt_stage_allowance_t *allowance = (qt_stage_allowance_t *) zhashx_lookup (self->control_peers, peer);
    if (!allowance && zhashx_size (self->control_peers) >= QT_STAGE_CONTROL_PEERS) {
        zlist_t *idle = zlist_new ();
        zlist_autofree (idle);
        for (qt_stage_allowance_t *b = (qt_stage_allowance_t *) zhashx_first (self->control_peers); b;
             b = (qt_stage_allowance_t *) zhashx_next (self->control_peers))
            if (b->tokens + (double) (now_ms - b->refilled_ms) * QT_STAGE_CONTROL_RATE / 1000
                >= QT_STAGE_CONTROL_BURST)
                zlist_append (idle, (void *) zhashx_cursor (self->control_peers));
        for (char *key = (char *) zlist_first (idle); key; key = (char *) zlist_next (idle))
            zhashx_delete (self->control_peers, key);
        zlist_destroy (&idle);
        if (zhashx_size (self->control_peers) >= QT_STAGE_CONTROL_PEERS)
            peer = QT_STAGE_CONTROL_OVERFLOW;
        allowance = (qt_stage_allowance_t *) zhashx_lookup (self->control_peers, peer);
    }
    if (!allowance) {
        allowance = (qt_stage_allowance_t *) zmalloc (sizeof (qt_stage_allowance_t));
        allowance->tokens = QT_STAGE_CONTROL_BURST;
        allowance->refilled_ms = now_ms;
        zhashx_insert (self->control_peers, peer, allowance);
    }
    return qt_stage_allowance_take (allowance, QT_STAGE_CONTROL_RATE, QT_STAGE_CONTROL_BURST, now_ms);
}

//  Like the data path's drops: counted by cause (in the control verifier),
//  logged once per cause per interval
static void
s_log_control_drop (qt_stage_t *self, qt_drop_cause_t cause, int64_t now_ms)
{
    char key [64];
    snprintf (key, sizeof key, "%s%s", QT_CONTROL_DROP_PREFIX, qt_drop_cause_name (cause));
    uint64_t suppressed = 0;
    if (qt_ratelimit_pass (self->drop_log, key, now_ms, &suppressed))
        qt_log_event (LOG_WARNING, qt_stage_message_id (cause), UINT64_MAX, NULL, key,
                      "dropped a control request: %s (%" PRIu64 " more of this cause since last report)",
                      qt_drop_cause_name (cause), suppressed);
}

//  The Detail lines of one control reply (qt_role_t.details)
typedef struct {
    Quintet__Detail items [QT_STAGE_MAX_DETAILS];
    Quintet__Detail *pointers [QT_STAGE_MAX_DETAILS];
    size_t count;
    size_t refused;
} s_details_t;

static void
s_detail_add (void *ctx, const char *name, const char *value)
{
    s_details_t *details = (s_details_t *) ctx;
    if (details->count == QT_STAGE_MAX_DETAILS || !name || !value) {
        details->refused++;
        return;
    }
    Quintet__Detail *detail = &details->items [details->count];
    quintet__detail__init (detail);
    detail->name = strdup (name);
    detail->value = strdup (value);
    details->pointers [details->count++] = detail;
}

static void
s_details_free (s_details_t **self_p)
{
    s_details_t *self = *self_p;
    for (size_t k = 0; k < self->count; k++) {
        free (self->items [k].name);
        free (self->items [k].value);
    }
    free (self);
    *self_p = NULL;
}

//  A status reply from the snapshot, and the details: what the stage
//  subscribes to (the topic of every SUB socket of an upstream, as
//  s_connect_endpoint subscribed it), then the role's
static void
s_reply_fill (qt_stage_t *self, int64_t now_ms, Quintet__ControlReply *reply,
              qt_stage_reply_storage_t *storage, s_details_t *details)
{
    qt_stage_status_t status;
    qt_stage_status_fill (self, now_ms, &status);
    qt_stage_status_reply (&status, reply, storage);
    for (size_t i = 0; i < self->role->upstreams; i++) {
        char *name = zsys_sprintf ("subscription/%s", self->role->upstream [i].role);
        s_detail_add (details, name, self->role->upstream [i].topic);
        zstr_free (&name);
    }
    if (self->catchup)
        s_detail_add (details, "catch-up", qt_catchup_state (self->catchup));
    if (self->role->details)
        self->role->details (self->state, s_detail_add, details);
    reply->n_details = details->count;
    reply->details = details->pointers;
}

//  One control request: [identity][empty][SignedMessage] from a REQ peer.
//  Only a verified request signed by a "control" key is answered; the
//  reply carries the stage's counters and echoes the nonce.
//  Signs a reply and sends it back to whoever asked (the ROUTER's routing
//  id and the REQ envelope's empty frame, both taken)
static void
s_control_answer (qt_stage_t *self, Quintet__ControlReply *reply, zframe_t *identity, zframe_t *empty)
{
    self->control_answered++;
    Quintet__ControlMessage body = QUINTET__CONTROL_MESSAGE__INIT;
    body.reply = reply;
    zframe_t *sealed = qt_signer_seal (self->signer, QUINTET__PAYLOAD_TYPE__CONTROL, reply->tick,
                                       &body.base);
    zmsg_t *out = zmsg_new ();
    zmsg_append (out, &identity);
    zmsg_append (out, &empty);
    zmsg_append (out, &sealed);
    zmsg_send (&out, self->control);
}

//  Answers a peer's "snapshot" request (qt_catchup): only the snapshot
//  fields and who answers, signed like every reply
static void
s_control_snapshot (qt_stage_t *self, qt_message_t *message, const Quintet__ControlRequest *request,
                    zframe_t *identity, zframe_t *empty)
{
    Quintet__ControlReply reply = QUINTET__CONTROL_REPLY__INIT;
    reply.nonce = request->nonce;
    reply.role = (char *) self->role->role;
    reply.replica = self->replica;
    reply.tick = self->have_last ? self->last_tick : 0;
    reply.ticks = self->ticks;
    qt_catchup_serve (self->catchup, request, &reply);
    s_control_answer (self, &reply, identity, empty);
    qt_message_destroy (&message);      //  after: the reply's nonce is the request's
}

void
qt_stage_control_serve (qt_stage_t *self, int64_t now_ms)
{
    zmsg_t *msg = zmsg_recv (self->control);
    if (!msg)
        return;
    zframe_t *identity = zmsg_pop (msg);
    zframe_t *empty = zmsg_pop (msg);
    zframe_t *frame = zmsg_pop (msg);
    zmsg_destroy (&msg);
    //  What one peer address may cost, before any decoding or verifying
    //  (the address is metadata of frames read from the wire: not of the
    //  routing id, which the ROUTER socket made up)
    zframe_t *wire = empty ? empty : identity;
    const char *peer = wire ? zframe_meta (wire, "Peer-Address") : NULL;
    if (!s_control_budget (self, peer ? peer : "?", now_ms)) {
        self->control_throttled++;
        uint64_t suppressed = 0;
        if (qt_ratelimit_pass (self->drop_log, QT_CONTROL_DROP_PREFIX QT_STAGE_THROTTLED, now_ms, &suppressed))
            qt_log_event (LOG_WARNING, QT_MSG_MESSAGE_DROPPED, UINT64_MAX, peer,
                          QT_CONTROL_DROP_PREFIX QT_STAGE_THROTTLED,
                          "dropped a control request: %s sends more than %d a second "
                          "(%" PRIu64 " more since last report)", peer ? peer : "a peer",
                          QT_STAGE_CONTROL_RATE, suppressed);
        zframe_destroy (&identity);
        zframe_destroy (&empty);
        zframe_destroy (&frame);
        return;
    }
    qt_drop_cause_t cause = QT_DROP_MALFORMED;
    qt_message_t *message = NULL;
    if (identity && empty && frame && zframe_size (empty) == 0)
        message = qt_verifier_open (self->control_verifier, QT_CONTROL_TOPIC, NULL,
                                    zframe_data (frame), zframe_size (frame), &cause);
    else
        qt_verifier_count (self->control_verifier, QT_DROP_MALFORMED);
    //  Who may ask what: an operator (a control key) for status; another
    //  replica of this role, catching up, for a snapshot (qt_catchup);
    //  any other key nothing
    bool operator = message && streq (message->sender->role, QT_CONTROL_ROLE);
    bool sibling = message && self->catchup && streq (message->sender->role, self->role->role)
                && message->sender->replica != self->replica;
    if (message && !operator && !sibling) {
        cause = QT_DROP_WRONG_ROLE;
        qt_verifier_count (self->control_verifier, cause);
        qt_message_destroy (&message);
    }
    const Quintet__ControlRequest *request = qt_control_request_of (message);
    //  A request says whom it is for: one captured on its way to another
    //  daemon (another role or replica) is not answered here
    bool for_us = qt_control_request_for (request, self->role->role, self->replica);
    const char *command = operator ? "status" : QT_CATCHUP_COMMAND;
    if (!request || !for_us || strneq (request->command, command)) {
        if (message) {
            //  Authentic, but not a request we answer
            cause = request && !for_us ? QT_DROP_WRONG_TARGET : QT_DROP_UNEXPECTED;
            qt_verifier_count (self->control_verifier, cause);
        }
        s_log_control_drop (self, cause, now_ms);
        qt_message_destroy (&message);
        zframe_destroy (&identity);
        zframe_destroy (&empty);
        zframe_destroy (&frame);
        return;     //  no answer: an unauthenticated peer learns nothing
    }
    if (sibling) {
        s_control_snapshot (self, message, request, identity, empty);
        zframe_destroy (&frame);
        return;
    }
    Quintet__ControlReply reply = QUINTET__CONTROL_REPLY__INIT;
    qt_stage_reply_storage_t *storage = (qt_stage_reply_storage_t *) zmalloc (sizeof *storage);
    s_details_t *details = (s_details_t *) zmalloc (sizeof (s_details_t));
    s_reply_fill (self, now_ms, &reply, storage, details);
    reply.nonce = request->nonce;
    s_control_answer (self, &reply, identity, empty);
    s_details_free (&details);
    free (storage);
    qt_message_destroy (&message);
    zframe_destroy (&frame);
}

zframe_t *
qt_stage_control_packed (qt_stage_t *self, int64_t now_ms)
{
    Quintet__ControlReply reply = QUINTET__CONTROL_REPLY__INIT;
    qt_stage_reply_storage_t *storage = (qt_stage_reply_storage_t *) zmalloc (sizeof *storage);
    s_details_t *details = (s_details_t *) zmalloc (sizeof (s_details_t));
    s_reply_fill (self, now_ms, &reply, storage, details);
    zframe_t *packed = zframe_new (NULL, quintet__control_reply__get_packed_size (&reply));
    quintet__control_reply__pack (&reply, zframe_data (packed));
    s_details_free (&details);
    free (storage);
    return packed;
}
