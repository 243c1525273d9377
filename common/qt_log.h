/*  qt_log: how every quintet process reports events to its operator.

    Under systemd the journal gets structured fields (ROLE, REPLICA, TICK,
    PEER, CAUSE, a fixed MESSAGE_ID for the events an operator greps for), so
    `journalctl MESSAGE_ID=... REPLICA=2` answers "what happened to replica
    2"; anywhere else each event is one UTC-timestamped line on stderr. The
    journal is detected the way systemd documents it: $JOURNAL_STREAM names
    the device and inode of the stream journald connected to stderr.

    The process identity (role, replica), the level and the journal decision
    are the one piece of process-wide state in libquintet: main() sets them
    once with qt_log_init() (and optionally qt_log_set_level()) before it
    starts any actor thread; after that they are only read, so logging from
    any thread is safe. Each event is emitted with a single write, so lines
    from concurrent threads never interleave.

    qt_ratelimit_t keeps a flood of identical drops (a peer sending garbage at
    line rate) down to one log line per cause per interval, with a count of
    what was suppressed.
*/
#ifndef QT_LOG_H_INCLUDED
#define QT_LOG_H_INCLUDED

#include <stdbool.h>
#include <stdint.h>
#include <stdarg.h>
#include <syslog.h>

//  Fixed journal MESSAGE_IDs; deploy/catalog/quintet.catalog explains each.
//  Never change one: operators' queries and alerts are keyed on them.
#define QT_MSG_SIGNATURE_REJECTED   "cd67cfffaaa840109779c573d2eacc7b"
#define QT_MSG_REPLAY_DROPPED       "aaa234df908848dbaeb1e4509789460d"
#define QT_MSG_MESSAGE_DROPPED      "777773956cce43a1b193ffc3297cdd71"
#define QT_MSG_REPLICA_DOWN         "6f9577588625498b91b39a0aac5b0089"
#define QT_MSG_REPLICA_UP           "22a134d8635b49b08da8c3844f992d23"
#define QT_MSG_REPLICA_EXCLUDED     "b4d9e063aa7d4a3e889fac27bbe7e520"
#define QT_MSG_QUORUM_LOST          "dc5f4187a87543cdb329af28d226b968"
#define QT_MSG_QUORUM_REGAINED      "24f3792986424d1ebc798b963e04b8d0"
#define QT_MSG_CONFIG_ERROR         "0e92efe317fb449094093f9a9160a08d"
#define QT_MSG_STARTED              "020722d707ef46adbdb3fbc606a162df"
#define QT_MSG_STOPPING             "a8b03aeb9d994046966f7057e51b655a"

//  Pass as replica to qt_log_init() for processes that are not a replica
//  (tools): the identity is then the role alone.
#define QT_LOG_NO_REPLICA   UINT32_MAX

//  Pass as tick to qt_log_event() when the event belongs to no tick.
#define QT_LOG_NO_TICK      UINT64_MAX

//  Set the process identity ("collector", 1 -> "collector-1") and decide
//  between journal and stderr. Call once from main, before starting threads.
//  Without it the identity is the program name.
void qt_log_init (const char *role, uint32_t replica);

//  Drop events less severe than priority (a syslog LOG_* value); the default
//  is LOG_INFO. Call from main, before starting threads.
void qt_log_set_level (int priority);

//  True when stderr is connected to journald ($JOURNAL_STREAM matches
//  stderr's device and inode). qt_log_init() records this once.
bool qt_log_journal_detect (void);

//  Log one event with no structured context.
void qt_log (int priority, const char *fmt, ...)
    __attribute__ ((format (printf, 2, 3)));

//  Log one event with its context. message_id (a QT_MSG_ constant), peer and
//  cause may be NULL; tick may be QT_LOG_NO_TICK. On stderr:
//  2026-11-22T10:00:00.123Z collector-1 warning: signature rejected [peer=collector-2 cause=bad-signature tick=12]
void qt_log_event (int priority, const char *message_id, uint64_t tick,
                   const char *peer, const char *cause, const char *fmt, ...)
    __attribute__ ((format (printf, 6, 7)));

//  Same, with a va_list.
void qt_log_eventv (int priority, const char *message_id, uint64_t tick,
                    const char *peer, const char *cause, const char *fmt,
                    va_list args)
    __attribute__ ((format (printf, 6, 0)));

//  Rate limiter: one pass per key per interval.
typedef struct _qt_ratelimit_t qt_ratelimit_t;

//  Create a limiter that lets each key pass at most once per interval_ms.
qt_ratelimit_t *qt_ratelimit_new (int64_t interval_ms);

//  Destroy the limiter; idempotent, nulls the caller's pointer.
void qt_ratelimit_destroy (qt_ratelimit_t **self_p);

//  True if an event with this key (a cause, say) should be logged now: the
//  first time a key is seen, and then at most once per interval. When it
//  returns true, *suppressed (if not NULL) is the number of events of this key
//  that returned false since the previous pass, so the line can say "and 4711
//  more". A limiter belongs to one thread. It tracks a bounded number of keys;
//  beyond that, new keys share one overflow entry so a peer inventing keys
//  cannot grow it without bound.
bool qt_ratelimit_pass (qt_ratelimit_t *self, const char *key, int64_t now_ms,
                        uint64_t *suppressed);

void qt_log_test (bool verbose);

#endif
