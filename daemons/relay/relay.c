/*  relay: the dashboard endpoint's actor (relay.h): sockets, the receive
    path, the cache and conflation (relay_book), metrics, notification. */
#include "quintet.h"
#include "relay.h"
#include "relay_book.h"

enum {
    M_RECEIVED, M_FORWARDED, M_DROPPED, M_CONFLATED, M_CACHE_SENDS, M_UPSTREAM_GAPS,
    M_SUBSCRIPTIONS, M_ENV_INFO, M_START_TIME, M_FAMILIES
};

//  The families, in the order of the enum; names are the dashboards'
//  contract (README "Metrics")
static const struct {
    const char *name;
    bool gauge;
    const char *label;
    const char *help;
} s_families [M_FAMILIES] = {
    { "quintet_relay_received_total", false, "topic",
      "Messages received from the publishers of the dashboard's topics, by topic." },
    { "quintet_relay_forwarded_total", false, "topic",
      "Verified messages published on the dashboard endpoint, by topic." },
    { "quintet_relay_dropped_total", false, "cause",
      "Messages dropped, by cause: verification causes, and subscriber-full (a subscriber's "
      "queue overflowed; counted once per stall, its seq shows how many it missed)." },
    { "quintet_relay_conflated_total", false, "topic",
      "Verified messages of a conflated topic never forwarded: a newer one of the same sender "
      "arrived within the interval." },
    { "quintet_relay_cache_sends_total", false, NULL,
      "Messages sent from the last-value cache to new subscriptions." },
    { "quintet_relay_upstream_gaps_total", false, NULL,
      "Messages the relay never received (jumps in the seq of a publisher whose seq counts "
      "nothing else)." },
    { "quintet_relay_subscriptions", true, NULL,
      "Subscriptions currently open on the dashboard endpoint." },
    { "quintet_relay_env_info", true, "env",
      "The environment the world simulates (from its eval records): 1." },
    { "quintet_relay_start_time_seconds", true, NULL,
      "Start time of the relay since the Unix epoch." },
};

#define SUBSCRIBER_FULL  "subscriber-full"
#define ZMQ_SUBSCRIBE_BYTE    1       //  first byte of an XPUB subscription message
#define ZMQ_UNSUBSCRIBE_BYTE  0

typedef struct {
    const relay_options_t *options;
    zsock_t *sub;
    zsock_t *xpub;
    qt_verifier_t *verifier;
    relay_book_t *book;
    qt_ratelimit_t *drop_log;
    qt_metric_t *metric [M_FAMILIES];
    char *env;                      //  EvalRecord.env of the latest eval
    uint64_t forwarded;
    uint64_t dropped;
    int64_t subscriptions;
    unsigned statuses;
} s_relay_t;

//  The dashboard topic a topic frame names exactly (the topology's own
//  string), or NULL: SUB matches prefixes, so a longer topic can arrive
static const char *
s_dashboard_topic (zframe_t *frame)
{
    for (size_t i = 0; i < qt_topology_dashboard_topics (); i++) {
        const char *topic = qt_topology_dashboard_topic_at (i);
        if (frame && zframe_size (frame) == strlen (topic)
        &&  memcmp (zframe_data (frame), topic, strlen (topic)) == 0)
            return topic;
    }
    return NULL;
}

static const char *
s_message_id_of_cause (qt_drop_cause_t cause)
{
    if (cause == QT_DROP_BAD_SIGNATURE || cause == QT_DROP_UNKNOWN_KEY || cause == QT_DROP_WRONG_ROLE)
        return QT_MSG_SIGNATURE_REJECTED;
    if (cause == QT_DROP_REPLAY)
        return QT_MSG_REPLAY_DROPPED;
    return QT_MSG_MESSAGE_DROPPED;
}

static void
s_drop (s_relay_t *self, const char *cause_name, const char *message_id, const char *topic)
{
    self->dropped++;
    qt_metric_add (self->metric [M_DROPPED], cause_name, 1);
    uint64_t suppressed = 0;
    if (qt_ratelimit_pass (self->drop_log, cause_name, zclock_mono (), &suppressed))
        qt_log_event (LOG_WARNING, message_id, QT_LOG_NO_TICK, NULL, cause_name,
                      "dropped a message on %s: %s (%" PRIu64 " more of this cause since last report)",
                      topic, cause_name, suppressed);
}

static int
s_send_dontwait (zsock_t *xpub, zmsg_t *msg)
{
    void *handle = zsock_resolve (xpub);
    size_t parts = zmsg_size (msg), part = 0;
    for (zframe_t *frame = zmsg_first (msg); frame; frame = zmsg_next (msg)) {
        int flags = ZMQ_DONTWAIT | (++part < parts ? ZMQ_SNDMORE : 0);
        if (zmq_send (handle, zframe_data (frame), zframe_size (frame), flags) < 0)
            return -1;
    }
    return 0;
}

//  Sends to every subscriber with room. With XPUB_NODROP a full subscriber
//  makes the send fail: that is how an overflow is counted; the message
//  then goes, lossy, to the subscribers that have room (ZeroMQ then sets
//  the full one aside until it reads again, so one overflow is counted per
//  stall, not per message it lost).
static void
s_publish (s_relay_t *self, zmsg_t *msg, const char *topic)
{
    if (s_send_dontwait (self->xpub, msg)) {
        self->dropped++;
        qt_metric_add (self->metric [M_DROPPED], SUBSCRIBER_FULL, 1);
        zsock_set_xpub_nodrop (self->xpub, 0);
        s_send_dontwait (self->xpub, msg);
        zsock_set_xpub_nodrop (self->xpub, 1);
    }
    if (topic) {
        self->forwarded++;
        qt_metric_add (self->metric [M_FORWARDED], topic, 1);
    }
}

//  Forwards the held message of every sender whose interval is over
static void
s_flush (s_relay_t *self)
{
    zmsg_t *msg;
    while ((msg = relay_book_due (self->book, zclock_mono ())))
        s_publish (self, msg, s_dashboard_topic (zmsg_first (msg)));
}

static void
s_note_env (s_relay_t *self, const qt_message_t *message)
{
    if (message->envelope->type != QUINTET__PAYLOAD_TYPE__EVAL_RECORD)
        return;
    const char *env = ((const Quintet__EvalRecord *) message->payload)->env;
    if (self->env && streq (self->env, env))
        return;
    if (self->env)
        qt_metric_set (self->metric [M_ENV_INFO], self->env, 0);
    zstr_free (&self->env);
    self->env = strdup (env);
    qt_metric_set (self->metric [M_ENV_INFO], env, 1);
}

//  One upstream message through the receive path, then cached and
//  forwarded (or held, conflated)
static void
s_receive (s_relay_t *self)
{
    zmsg_t *msg = zmsg_recv (self->sub);
    if (!msg)
        return;
    const char *topic = zmsg_size (msg) == 2 ? s_dashboard_topic (zmsg_first (msg)) : NULL;
    if (zmsg_size (msg) != 2) {
        s_drop (self, qt_drop_cause_name (QT_DROP_MALFORMED), QT_MSG_MESSAGE_DROPPED, "?");
        zmsg_destroy (&msg);
        return;
    }
    if (!topic) {
        //  A topic we never subscribed to exactly (a longer one with our prefix)
        s_drop (self, qt_drop_cause_name (QT_DROP_WRONG_TYPE), QT_MSG_MESSAGE_DROPPED, "?");
        zmsg_destroy (&msg);
        return;
    }
    qt_metric_add (self->metric [M_RECEIVED], topic, 1);
    const qt_topology_role_t *publisher = qt_topology_publisher (topic);
    zframe_t *signed_frame = zmsg_last (msg);
    qt_drop_cause_t cause = QT_DROP_NONE;
    qt_message_t *message = qt_verifier_open (self->verifier, topic, publisher->name,
                                              zframe_data (signed_frame), zframe_size (signed_frame),
                                              &cause);
    if (!message) {
        s_drop (self, qt_drop_cause_name (cause), s_message_id_of_cause (cause), topic);
        zmsg_destroy (&msg);
        return;
    }
    s_note_env (self, message);
    //  A role that publishes nothing but its own topic numbers only those
    //  messages: a jump in its seq is one the relay never received (the
    //  world's seq also counts sensor frames, a scorer's its queries)
    uint64_t gap = relay_book_gap (self->book, message->envelope->key_id, message->envelope->epoch,
                                   message->envelope->seq);
    if (gap && publisher->side_topics == 0 && streq (publisher->topic, topic))
        qt_metric_add (self->metric [M_UPSTREAM_GAPS], NULL, (double) gap);
    bool conflated = qt_topology_dashboard_conflated (topic), superseded = false;
    zmsg_t *now = relay_book_receive (self->book, topic, message->sender->role,
                                      message->sender->replica, conflated, &msg, &superseded);
    qt_message_destroy (&message);
    if (superseded)
        qt_metric_add (self->metric [M_CONFLATED], topic, 1);
    if (now)
        s_publish (self, now, topic);
    else
        s_flush (self);
}

static int
s_on_upstream (zloop_t *loop, zsock_t *reader, void *arg)
{
    (void) loop;
    s_relay_t *self = (s_relay_t *) arg;
    //  Bounded, so subscriptions and timers get their turn under a flood
    for (size_t n = 0; n < RELAY_DRAIN_MAX && (zsock_events (reader) & ZMQ_POLLIN); n++)
        s_receive (self);
    return 0;
}

//  A subscription or unsubscription (XPUB_VERBOSE: every one): a new one
//  gets the last value of every sender whose topic it matches
static int
s_on_subscription (zloop_t *loop, zsock_t *reader, void *arg)
{
    (void) loop;
    s_relay_t *self = (s_relay_t *) arg;
    while (zsock_events (reader) & ZMQ_POLLIN) {
        zframe_t *frame = zframe_recv (reader);
        if (!frame)
            break;
        const byte *data = zframe_data (frame);
        size_t size = zframe_size (frame);
        if (size > 0 && data [0] == ZMQ_SUBSCRIBE_BYTE) {
            self->subscriptions++;
            for (zmsg_t *cached = relay_book_cached_first (self->book, data + 1, size - 1); cached;
                 cached = relay_book_cached_next (self->book)) {
                s_publish (self, cached, NULL);
                qt_metric_add (self->metric [M_CACHE_SENDS], NULL, 1);
            }
        }
        else
        if (size > 0 && data [0] == ZMQ_UNSUBSCRIBE_BYTE && self->subscriptions > 0)
            self->subscriptions--;
        qt_metric_set (self->metric [M_SUBSCRIPTIONS], NULL, (double) self->subscriptions);
        zframe_destroy (&frame);
    }
    return 0;
}

static int
s_on_flush_timer (zloop_t *loop, int timer_id, void *arg)
{
    (void) loop;
    (void) timer_id;
    s_flush ((s_relay_t *) arg);
    return 0;
}

//  The loop's own health is the relay's: it serves subscriptions and the
//  cache whether or not the pipeline ticks (a stalled pipeline is the
//  stages' watchdogs' business; restarting the relay would only empty
//  the cache dashboards need then)
static int
s_on_status_timer (zloop_t *loop, int timer_id, void *arg)
{
    (void) loop;
    (void) timer_id;
    s_relay_t *self = (s_relay_t *) arg;
    qt_notify_status ("%s: forwarded %" PRIu64 ", dropped %" PRIu64 ", %" PRId64
                      " subscriptions, %zu senders cached", self->env ? self->env : "no eval yet",
                      self->forwarded, self->dropped, self->subscriptions,
                      relay_book_cached (self->book));
    qt_notify_watchdog ();
    if (++self->statuses % RELAY_LOG_STATUS_EVERY == 0)
        qt_log (LOG_INFO, "%s: forwarded %" PRIu64 ", dropped %" PRIu64 ", %" PRId64 " subscriptions",
                self->env ? self->env : "no eval yet", self->forwarded, self->dropped,
                self->subscriptions);
    return 0;
}

static int
s_on_pipe (zloop_t *loop, zsock_t *reader, void *arg)
{
    (void) loop;
    (void) arg;
    char *command = zstr_recv (reader);
    bool term = !command || streq (command, "$TERM");
    zstr_free (&command);
    return term ? -1 : 0;
}

//  The sockets; NULL and *error on failure
static char *
s_open (s_relay_t *self)
{
    const relay_options_t *options = self->options;
    self->sub = zsock_new (ZMQ_SUB);
    self->xpub = zsock_new (ZMQ_XPUB);
    if (!self->sub || !self->xpub)
        return zsys_sprintf ("cannot create sockets: %s", zmq_strerror (zmq_errno ()));
    zsock_set_linger (self->sub, 0);
    zsock_set_rcvhwm (self->sub, RELAY_RCVHWM);
    //  Above the verifier's cap, which then counts it as oversize, below
    //  what would let a peer make us buffer anything
    zsock_set_maxmsgsize (self->sub, (int) QT_MESSAGE_SIZE_CAP * 2);
    for (size_t i = 0; i < qt_topology_dashboard_topics (); i++)
        zsock_set_subscribe (self->sub, qt_topology_dashboard_topic_at (i));
    for (const char *endpoint = (const char *) zlist_first (options->endpoints); endpoint;
         endpoint = (const char *) zlist_next (options->endpoints))
        if (zsock_connect (self->sub, "%s", endpoint) < 0)
            return zsys_sprintf ("cannot connect to %s: %s", endpoint, zmq_strerror (zmq_errno ()));
    zsock_set_linger (self->xpub, 0);
    zsock_set_xpub_verbose (self->xpub, 1);     //  every subscription, not only the first
    zsock_set_sndhwm (self->xpub, options->sndhwm);
    zsock_set_sndbuf (self->xpub, options->sndbuf);
    zsock_set_xpub_nodrop (self->xpub, 1);      //  see s_publish
    if (zsock_bind (self->xpub, "%s", options->bind) < 0)
        return zsys_sprintf ("cannot bind %s: %s", options->bind, zmq_strerror (zmq_errno ()));
    return NULL;
}

void
relay_actor (zsock_t *pipe, void *args)
{
    s_relay_t self_ = { .options = (const relay_options_t *) args };
    s_relay_t *self = &self_;
    for (int m = 0; m < M_FAMILIES; m++)
        self->metric [m] = s_families [m].gauge
            ? qt_metrics_gauge (self->options->metrics, s_families [m].name, s_families [m].help,
                                s_families [m].label)
            : qt_metrics_counter (self->options->metrics, s_families [m].name, s_families [m].help,
                                  s_families [m].label);
    //  The series a dashboard looks for exist from the start, at 0
    for (size_t i = 0; i < qt_topology_dashboard_topics (); i++) {
        qt_metric_add (self->metric [M_RECEIVED], qt_topology_dashboard_topic_at (i), 0);
        qt_metric_add (self->metric [M_FORWARDED], qt_topology_dashboard_topic_at (i), 0);
    }
    qt_metric_add (self->metric [M_DROPPED], SUBSCRIBER_FULL, 0);
    qt_metric_set (self->metric [M_START_TIME], NULL, (double) zclock_time () / 1000.0);
    qt_metric_set (self->metric [M_SUBSCRIPTIONS], NULL, 0);

    self->verifier = qt_verifier_new (self->options->trust, self->options->batch);
    self->book = relay_book_new (self->options->conflate_ms);
    self->drop_log = qt_ratelimit_new (RELAY_DROP_LOG_MS);
    zsock_signal (pipe, 0);
    char *error = s_open (self);
    if (error) {
        zstr_sendf (pipe, "ERROR %s", error);
        zstr_free (&error);
        while (true) {
            char *command = zstr_recv (pipe);
            bool term = !command || streq (command, "$TERM");
            zstr_free (&command);
            if (term)
                break;
        }
    }
    else {
        zstr_sendf (pipe, "READY %s", zsock_endpoint (self->xpub));
        zloop_t *loop = zloop_new ();
        zloop_set_nonstop (loop, true);         //  main decides when to stop ($TERM)
        zloop_reader (loop, pipe, s_on_pipe, self);
        zloop_reader (loop, self->sub, s_on_upstream, self);
        zloop_reader (loop, self->xpub, s_on_subscription, self);
        int64_t flush_ms = self->options->conflate_ms / 5;
        flush_ms = flush_ms < RELAY_FLUSH_MIN_MS ? RELAY_FLUSH_MIN_MS
                 : flush_ms > RELAY_FLUSH_MAX_MS ? RELAY_FLUSH_MAX_MS : flush_ms;
        zloop_timer (loop, (size_t) flush_ms, 0, s_on_flush_timer, self);
        zloop_timer (loop, RELAY_STATUS_MS, 0, s_on_status_timer, self);
        zloop_start (loop);
        zloop_destroy (&loop);
        qt_log_event (LOG_NOTICE, QT_MSG_STOPPING, QT_LOG_NO_TICK, NULL, NULL,
                      "stopping: %" PRIu64 " forwarded, %" PRIu64 " accepted, %" PRIu64 " dropped",
                      self->forwarded, qt_verifier_accepted (self->verifier), self->dropped);
    }
    zsock_destroy (&self->sub);
    zsock_destroy (&self->xpub);
    zstr_free (&self->env);
    qt_ratelimit_destroy (&self->drop_log);
    relay_book_destroy (&self->book);
    qt_verifier_destroy (&self->verifier);
}
