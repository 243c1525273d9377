/*  relay_book: the relay's last-value cache, conflation and gap counting
    (relay_book.h), free of sockets so that its selftest covers them. */
#include "relay_book.h"
#include "qt_selftest.h"

//  One sender: its last verified message, whether that one is held
//  (conflated, not yet sent) and when one was last sent
typedef struct {
    char *sender;               //  "topic/role/replica"
    char *topic;
    zmsg_t *msg;
    bool held;
    bool sent_once;
    int64_t sent_ms;
} s_entry_t;

typedef struct {
    uint64_t epoch;
    uint64_t seq;
} s_last_seq_t;

struct _relay_book_t {
    int64_t interval_ms;
    zlistx_t *entries;          //  s_entry_t, arrival order (last arrival at the end)
    zhashx_t *handles;          //  sender -> its handle in entries
    zhashx_t *last_seq;         //  key id -> s_last_seq_t
    size_t held;
    const void *prefix;         //  the cached_first/next cursor's subscription
    size_t prefix_size;
};

static void
s_entry_destroy (void **item_p)
{
    s_entry_t *entry = (s_entry_t *) *item_p;
    if (entry) {
        zstr_free (&entry->sender);
        zstr_free (&entry->topic);
        zmsg_destroy (&entry->msg);
        free (entry);
        *item_p = NULL;
    }
}

static void
s_free (void **item_p)
{
    free (*item_p);
    *item_p = NULL;
}

relay_book_t *
relay_book_new (int64_t interval_ms)
{
    relay_book_t *self = (relay_book_t *) zmalloc (sizeof (relay_book_t));
    self->interval_ms = interval_ms;
    self->entries = zlistx_new ();
    zlistx_set_destructor (self->entries, s_entry_destroy);
    self->handles = zhashx_new ();      //  values are handles, not owned
    self->last_seq = zhashx_new ();
    zhashx_set_destructor (self->last_seq, s_free);
    return self;
}

void
relay_book_destroy (relay_book_t **self_p)
{
    if (self_p && *self_p) {
        relay_book_t *self = *self_p;
        zhashx_destroy (&self->handles);
        zlistx_destroy (&self->entries);
        zhashx_destroy (&self->last_seq);
        free (self);
        *self_p = NULL;
    }
}

zmsg_t *
relay_book_receive (relay_book_t *self, const char *topic, const char *role, uint32_t replica,
                    bool conflated, zmsg_t **msg_p, bool *superseded)
{
    if (superseded)
        *superseded = false;
    char *sender = zsys_sprintf ("%s/%s/%u", topic, role, replica);
    void *handle = zhashx_lookup (self->handles, sender);
    s_entry_t *entry;
    if (handle) {
        entry = (s_entry_t *) zlistx_handle_item (handle);
        zlistx_move_end (self->entries, handle);
        zmsg_destroy (&entry->msg);
        zstr_free (&sender);
    }
    else {
        entry = (s_entry_t *) zmalloc (sizeof (s_entry_t));
        entry->sender = sender;
        entry->topic = strdup (topic);
        handle = zlistx_add_end (self->entries, entry);
        zhashx_insert (self->handles, entry->sender, handle);
    }
    entry->msg = *msg_p;
    *msg_p = NULL;
    if (!conflated)
        return entry->msg;
    if (entry->held) {
        if (superseded)
            *superseded = true;
    }
    else {
        entry->held = true;
        self->held++;
    }
    return NULL;
}

zmsg_t *
relay_book_due (relay_book_t *self, int64_t now_ms)
{
    if (!self->held)
        return NULL;
    for (s_entry_t *entry = (s_entry_t *) zlistx_first (self->entries); entry;
         entry = (s_entry_t *) zlistx_next (self->entries)) {
        if (entry->held && (!entry->sent_once || now_ms - entry->sent_ms >= self->interval_ms)) {
            entry->held = false;
            entry->sent_once = true;
            entry->sent_ms = now_ms;
            self->held--;
            return entry->msg;
        }
    }
    return NULL;
}

size_t
relay_book_held (relay_book_t *self)
{
    return self->held;
}

//  From the cursor on: the next entry whose topic the subscription matches
static zmsg_t *
s_matching (relay_book_t *self, s_entry_t *entry)
{
    for (; entry; entry = (s_entry_t *) zlistx_next (self->entries)) {
        zframe_t *topic = zmsg_first (entry->msg);
        if (topic && zframe_size (topic) >= self->prefix_size
        &&  (self->prefix_size == 0 || memcmp (zframe_data (topic), self->prefix, self->prefix_size) == 0))
            return entry->msg;
    }
    return NULL;
}

zmsg_t *
relay_book_cached_first (relay_book_t *self, const void *prefix, size_t size)
{
    self->prefix = prefix;
    self->prefix_size = size;
    return s_matching (self, (s_entry_t *) zlistx_first (self->entries));
}

zmsg_t *
relay_book_cached_next (relay_book_t *self)
{
    return s_matching (self, (s_entry_t *) zlistx_next (self->entries));
}

size_t
relay_book_cached (relay_book_t *self)
{
    return zlistx_size (self->entries);
}

uint64_t
relay_book_gap (relay_book_t *self, const char *key_id, uint64_t epoch, uint64_t seq)
{
    s_last_seq_t *last = (s_last_seq_t *) zhashx_lookup (self->last_seq, key_id);
    if (!last) {
        last = (s_last_seq_t *) zmalloc (sizeof (s_last_seq_t));
        last->epoch = epoch;
        last->seq = seq;
        zhashx_insert (self->last_seq, key_id, last);
        return 0;
    }
    uint64_t gap = last->epoch == epoch && seq > last->seq + 1 ? seq - last->seq - 1 : 0;
    if (last->epoch != epoch || seq > last->seq) {
        last->epoch = epoch;
        last->seq = seq;
    }
    return gap;
}

static zmsg_t *
s_message (const char *topic, const char *body)
{
    zmsg_t *msg = zmsg_new ();
    zmsg_addstr (msg, topic);
    zmsg_addstr (msg, body);
    return msg;
}

static bool
s_body_is (zmsg_t *msg, const char *body)
{
    return msg && zmsg_size (msg) == 2 && zframe_streq (zmsg_last (msg), body);
}

void
relay_book_test (bool verbose)
{
    if (verbose)
        printf (" * relay_book: ");
    const int64_t interval = 500;
    relay_book_t *book = relay_book_new (interval);
    bool superseded = true;

    //  A topic that is not conflated is forwarded at once and cached
    zmsg_t *msg = s_message ("reward", "r1-a");
    zmsg_t *now = relay_book_receive (book, "reward", "aggregator", 1, false, &msg, &superseded);
    QT_CHECK (!msg && s_body_is (now, "r1-a") && !superseded);
    msg = s_message ("reward", "r2-a");
    QT_CHECK (s_body_is (relay_book_receive (book, "reward", "aggregator", 2, false, &msg, NULL), "r2-a"));
    QT_CHECK (relay_book_cached (book) == 2 && relay_book_held (book) == 0);
    QT_CHECK (relay_book_due (book, 0) == NULL);

    //  Conflated: the first is due at once, a second within the interval
    //  waits, a third replaces it (superseded), the latest goes out when
    //  the interval ends, and nothing after that
    msg = s_message ("score", "s1-1");
    QT_CHECK (relay_book_receive (book, "score", "scorer", 1, true, &msg, &superseded) == NULL);
    QT_CHECK (!superseded && relay_book_held (book) == 1);
    QT_CHECK (s_body_is (relay_book_due (book, 0), "s1-1"));
    QT_CHECK (relay_book_due (book, 0) == NULL && relay_book_held (book) == 0);
    msg = s_message ("score", "s1-2");
    relay_book_receive (book, "score", "scorer", 1, true, &msg, &superseded);
    QT_CHECK (!superseded && relay_book_due (book, 100) == NULL);
    msg = s_message ("score", "s1-3");
    relay_book_receive (book, "score", "scorer", 1, true, &msg, &superseded);
    QT_CHECK (superseded && relay_book_held (book) == 1);
    QT_CHECK (relay_book_due (book, interval - 1) == NULL);
    QT_CHECK (s_body_is (relay_book_due (book, interval), "s1-3"));
    QT_CHECK (relay_book_due (book, 10 * interval) == NULL);

    //  Senders are conflated apart: scorer 2's first is due at once
    msg = s_message ("score", "s2-1");
    relay_book_receive (book, "score", "scorer", 2, true, &msg, NULL);
    QT_CHECK (s_body_is (relay_book_due (book, interval + 1), "s2-1"));

    //  The cache: each sender's last value, in arrival order (a new
    //  message moves its sender to the end), by subscription prefix
    msg = s_message ("reward", "r1-b");
    relay_book_receive (book, "reward", "aggregator", 1, false, &msg, NULL);
    QT_CHECK (relay_book_cached (book) == 4);
    const char *all [] = { "r2-a", "s1-3", "s2-1", "r1-b" };
    size_t seen = 0;
    for (zmsg_t *cached = relay_book_cached_first (book, "", 0); cached;
         cached = relay_book_cached_next (book))
        QT_CHECK (seen < 4 && s_body_is (cached, all [seen++]));
    QT_CHECK (seen == 4);
    const char *rewards [] = { "r2-a", "r1-b" };
    seen = 0;
    for (zmsg_t *cached = relay_book_cached_first (book, "rew", 3); cached;
         cached = relay_book_cached_next (book))
        QT_CHECK (seen < 2 && s_body_is (cached, rewards [seen++]));
    QT_CHECK (seen == 2);
    QT_CHECK (relay_book_cached_first (book, "rewardless", 10) == NULL);
    //  A held message is the sender's cached value before it is sent
    msg = s_message ("score", "s2-2");
    relay_book_receive (book, "score", "scorer", 2, true, &msg, NULL);
    zmsg_t *last = NULL;
    for (zmsg_t *cached = relay_book_cached_first (book, "score", 5); cached;
         cached = relay_book_cached_next (book))
        last = cached;
    QT_CHECK (s_body_is (last, "s2-2") && relay_book_held (book) == 1);

    //  Gaps per key and epoch: the next seq is none, a jump is the skipped
    //  count, a late or repeated seq none, a new epoch starts again
    QT_CHECK (relay_book_gap (book, "k1", 7, 10) == 0);
    QT_CHECK (relay_book_gap (book, "k1", 7, 11) == 0);
    QT_CHECK (relay_book_gap (book, "k1", 7, 15) == 3);
    QT_CHECK (relay_book_gap (book, "k1", 7, 12) == 0);
    QT_CHECK (relay_book_gap (book, "k1", 7, 16) == 0);
    QT_CHECK (relay_book_gap (book, "k2", 7, 40) == 0);
    QT_CHECK (relay_book_gap (book, "k1", 8, 1) == 0);
    QT_CHECK (relay_book_gap (book, "k1", 8, 3) == 1);

    relay_book_destroy (&book);
    relay_book_destroy (&book);
    QT_CHECK (book == NULL);
    if (verbose)
        printf ("OK\n");
}
