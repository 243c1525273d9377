/*  relay: the dashboard endpoint's actor (relay.h): sockets, the receive
    path, the cache and conflation (relay_book), metrics, notification. */
#include "quintet.h"
#include "relay.h"
#include "relay_book.h"
#include "qt_selftest.h"

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
        s_drop (self, qt_drop_cause_name (cause), qt_stage_message_id (cause), topic);
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
                qt_metric_add (self->metric [M_CACHE_SENDS], NULL, 1);
                s_publish (self, cached, NULL);
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
    for (size_t i = 0; i < qt_topology_dashboard_topics (); i++)
        if (qt_topology_dashboard_conflated (qt_topology_dashboard_topic_at (i)))
            qt_metric_add (self->metric [M_CONFLATED], qt_topology_dashboard_topic_at (i), 0);
    qt_metric_add (self->metric [M_DROPPED], SUBSCRIBER_FULL, 0);
    qt_metric_add (self->metric [M_CACHE_SENDS], NULL, 0);
    qt_metric_add (self->metric [M_UPSTREAM_GAPS], NULL, 0);
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

//  -------------------------------------------------------------------------
//  Selftest: the actor in this process, on inproc endpoints, fed by a test
//  publisher signing as aggregator-1 and scorer-1. Every wait is bounded
//  and ends as soon as what it waits for arrives: nothing is timed.

#define RELAY_TEST_WAIT_MS   5000        //  bound on one expected message
#define RELAY_TEST_CONFLATE  3600000     //  an interval no test run outlasts

static zframe_t *
s_test_reward (qt_signer_t *signer, uint64_t tick)
{
    Quintet__InstanceClock clock = QUINTET__INSTANCE_CLOCK__INIT;
    Quintet__AggregatedReward instance = QUINTET__AGGREGATED_REWARD__INIT;
    Quintet__AggregatedReward *instances [1] = { &instance };
    instance.clock = &clock;
    instance.reward = 0.5;
    Quintet__RewardBatch rewards = QUINTET__REWARD_BATCH__INIT;
    rewards.batch = 1;
    rewards.n_instances = 1;
    rewards.instances = instances;
    return qt_signer_seal (signer, QUINTET__PAYLOAD_TYPE__REWARD_BATCH, tick, &rewards.base);
}

static zframe_t *
s_test_score (qt_signer_t *signer, uint64_t tick)
{
    Quintet__InstanceClock clock = QUINTET__INSTANCE_CLOCK__INIT;
    Quintet__ScoreDistribution instance = QUINTET__SCORE_DISTRIBUTION__INIT;
    Quintet__ScoreDistribution *instances [1] = { &instance };
    instance.clock = &clock;
    instance.data_reliability = 1;
    Quintet__ScoreBatch scores = QUINTET__SCORE_BATCH__INIT;
    scores.batch = 1;
    scores.quantile = 0.5;
    scores.n_instances = 1;
    scores.instances = instances;
    return qt_signer_seal (signer, QUINTET__PAYLOAD_TYPE__SCORE_BATCH, tick, &scores.base);
}

//  Publishes [topic][frame]; returns a copy of the frame to compare with
static zframe_t *
s_test_send (zsock_t *pub, const char *topic, zframe_t *frame)
{
    zframe_t *copy = zframe_dup (frame);
    zmsg_t *msg = zmsg_new ();
    zmsg_addstr (msg, topic);
    zmsg_append (msg, &frame);
    zmsg_send (&msg, pub);
    return copy;
}

//  The next message on sub within the bound, or NULL
static zmsg_t *
s_test_recv (zsock_t *sub)
{
    zpoller_t *poller = zpoller_new (sub, NULL);
    zmsg_t *msg = zpoller_wait (poller, RELAY_TEST_WAIT_MS) ? zmsg_recv (sub) : NULL;
    zpoller_destroy (&poller);
    return msg;
}

static bool
s_test_is (zmsg_t *msg, const char *topic, zframe_t *frame)
{
    return msg && zmsg_size (msg) == 2 && zframe_streq (zmsg_first (msg), topic)
        && zframe_eq (zmsg_last (msg), frame);
}

static bool
s_test_metric (qt_metrics_t *metrics, const char *line)
{
    char *text = qt_metrics_render (metrics);
    bool found = strstr (text, line) != NULL;
    free (text);
    return found;
}

//  The value of a sample without labels, -1 if it is not there
static double
s_test_value (qt_metrics_t *metrics, const char *name)
{
    char *text = qt_metrics_render (metrics);
    char *needle = zsys_sprintf ("\n%s ", name);
    char *at = strstr (text, needle);
    double value = at ? atof (at + strlen (needle)) : -1;
    zstr_free (&needle);
    free (text);
    return value;
}

void
relay_test (bool verbose)
{
    if (verbose)
        printf (" * relay: ");
    QT_CHECK (qt_topology_dashboard_conflated ("score") && !qt_topology_dashboard_conflated ("reward"));
    //  A trust store of the two publishers
    char *dir = zsys_sprintf ("/tmp/relay-test-%d", (int) getpid ());
    QT_CHECK (zsys_dir_create ("%s", dir) == 0);
    qt_keypair_t *aggregator_key = qt_keypair_generate ("aggregator", 1);
    qt_keypair_t *scorer_key = qt_keypair_generate ("scorer", 1);
    char *aggregator_pub = zsys_sprintf ("%s/aggregator-1.pub", dir);
    char *scorer_pub = zsys_sprintf ("%s/scorer-1.pub", dir);
    QT_CHECK (qt_keypair_save (aggregator_key, NULL, aggregator_pub) == 0);
    QT_CHECK (qt_keypair_save (scorer_key, NULL, scorer_pub) == 0);
    char *error = NULL;
    qt_trust_t *trust = qt_trust_load (dir, &error);
    QT_CHECK (trust && qt_trust_size (trust) == 2);
    qt_signer_t *aggregator = qt_signer_new (&aggregator_key);
    qt_signer_t *scorer = qt_signer_new (&scorer_key);

    char *upstream = zsys_sprintf ("inproc://relay-test-upstream-%d", (int) getpid ());
    zsock_t *pub = zsock_new_pub (upstream);
    QT_CHECK (pub);
    relay_options_t options = {
        .bind = "inproc://relay-test-dashboard", .endpoints = zlist_new (), .trust = trust,
        .metrics = qt_metrics_new (), .batch = 1, .conflate_ms = RELAY_TEST_CONFLATE,
        .sndhwm = RELAY_SNDHWM, .sndbuf = RELAY_SNDBUF,
    };
    zlist_append (options.endpoints, upstream);
    zactor_t *relay = zactor_new (relay_actor, &options);
    char *started = zstr_recv (relay);
    QT_CHECK (started && streq (started, "READY inproc://relay-test-dashboard"));
    zstr_free (&started);
    zsock_t *dashboard = zsock_new_sub (options.bind, "reward");
    zsock_set_subscribe (dashboard, "score");

    //  Once the relay has read both subscriptions (libzmq applies one
    //  before the relay reads it), what it forwards reaches the dashboard;
    //  the cache is empty, so nothing else does
    for (size_t tries = 0; tries < RELAY_TEST_WAIT_MS / 10
         && s_test_value (options.metrics, "quintet_relay_subscriptions") < 2; tries++)
        zclock_sleep (10);
    QT_CHECK (s_test_value (options.metrics, "quintet_relay_subscriptions") == 2);
    uint64_t tick = 0;
    zframe_t *last = s_test_send (pub, "reward", s_test_reward (aggregator, ++tick));
    zmsg_t *msg = s_test_recv (dashboard);
    QT_CHECK (s_test_is (msg, "reward", last));     //  a genuine reward, byte for byte
    zmsg_destroy (&msg);

    //  A forged reward (one signature byte flipped) and a one-frame message
    //  are counted drops; the genuine one after them is the next forwarded
    zframe_t *forged = s_test_reward (aggregator, ++tick);
    zframe_data (forged) [zframe_size (forged) - 1] ^= 1;
    zframe_t *dropped = s_test_send (pub, "reward", forged);
    zframe_destroy (&dropped);
    zstr_send (pub, "reward");
    zframe_destroy (&last);
    last = s_test_send (pub, "reward", s_test_reward (aggregator, ++tick));
    msg = s_test_recv (dashboard);
    QT_CHECK (s_test_is (msg, "reward", last));
    zmsg_destroy (&msg);
    QT_CHECK (s_test_metric (options.metrics, "quintet_relay_dropped_total{cause=\"bad-signature\"} 1\n"));
    QT_CHECK (s_test_metric (options.metrics, "quintet_relay_dropped_total{cause=\"malformed\"} 1\n"));

    //  Score is conflated: the first of a scorer goes out at once, the
    //  next is held for the interval and superseded by a third; the reward
    //  sent after them comes next, so nothing else of the scorer went out
    zframe_t *first = s_test_send (pub, "score", s_test_score (scorer, ++tick));
    zframe_t *held = s_test_send (pub, "score", s_test_score (scorer, ++tick));
    zframe_t *latest = s_test_send (pub, "score", s_test_score (scorer, ++tick));
    zframe_destroy (&last);
    last = s_test_send (pub, "reward", s_test_reward (aggregator, ++tick));
    msg = s_test_recv (dashboard);
    QT_CHECK (s_test_is (msg, "score", first));
    zmsg_destroy (&msg);
    msg = s_test_recv (dashboard);
    QT_CHECK (s_test_is (msg, "reward", last));
    zmsg_destroy (&msg);
    QT_CHECK (s_test_metric (options.metrics, "quintet_relay_conflated_total{topic=\"score\"} 1\n"));
    QT_CHECK (s_test_metric (options.metrics, "quintet_relay_forwarded_total{topic=\"score\"} 1\n"));

    //  A late joiner gets each sender's last value at once: the last
    //  reward, and the latest score although it was never forwarded
    double cache_sends = s_test_value (options.metrics, "quintet_relay_cache_sends_total");
    zsock_t *late = zsock_new_sub (options.bind, "");
    zmsg_t *one = s_test_recv (late), *two = s_test_recv (late);
    QT_CHECK ((s_test_is (one, "score", latest) && s_test_is (two, "reward", last))
           || (s_test_is (one, "reward", last) && s_test_is (two, "score", latest)));
    zmsg_destroy (&one);
    zmsg_destroy (&two);
    QT_CHECK (cache_sends >= 0
           && s_test_value (options.metrics, "quintet_relay_cache_sends_total") == cache_sends + 2);
    zsock_destroy (&late);

    zframe_destroy (&first);
    zframe_destroy (&held);
    zframe_destroy (&latest);
    zframe_destroy (&last);
    zsock_destroy (&dashboard);
    zactor_destroy (&relay);
    zsock_destroy (&pub);
    zlist_destroy (&options.endpoints);
    qt_metrics_destroy (&options.metrics);
    qt_signer_destroy (&aggregator);
    qt_signer_destroy (&scorer);
    qt_trust_destroy (&trust);
    zsys_file_delete (aggregator_pub);
    zsys_file_delete (scorer_pub);
    zsys_dir_delete ("%s", dir);
    zstr_free (&aggregator_pub);
    zstr_free (&scorer_pub);
    zstr_free (&upstream);
    zstr_free (&dir);
    if (verbose)
        printf ("OK\n");
}
