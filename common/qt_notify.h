/*  qt_notify: tells systemd how a daemon is doing (sd_notify).

    Type=notify units wait for READY=1 before starting what depends on them,
    read STATUS= into `systemctl status`, and restart a daemon whose
    WATCHDOG=1 pings stop. Outside systemd ($NOTIFY_SOCKET unset: tests,
    demo, development) every call is a no-op that succeeds, so daemons call
    these unconditionally.
*/
#ifndef QT_NOTIFY_H_INCLUDED
#define QT_NOTIFY_H_INCLUDED

#include <stdbool.h>
#include <stdint.h>

//  READY=1: sockets are bound and keys loaded. 0 on success (or no
//  systemd), -1 if the notification could not be sent.
int qt_notify_ready (void);

//  STATUS=<text>: one line of live counters for `systemctl status`.
//  Newlines in the text become spaces (a newline would end the field).
int qt_notify_status (const char *fmt, ...)
    __attribute__ ((format (printf, 1, 2)));

//  WATCHDOG=1: send only after a real health check (ticks progressing).
int qt_notify_watchdog (void);

//  STOPPING=1: shutdown has begun.
int qt_notify_stopping (void);

//  True if systemd expects watchdog pings from this process; *usec (if not
//  NULL) is then the timeout. Ping at half of it at least.
bool qt_notify_watchdog_usec (uint64_t *usec);

void qt_notify_test (bool verbose);

#endif
