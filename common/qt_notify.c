/*  qt_notify: thin sd_notify wrappers mapping libsystemd's "> 0 sent,
    0 no socket, < 0 error" onto the house 0 / -1 convention.
*/
#include "quintet.h"
#include "qt_selftest.h"
#include <systemd/sd-daemon.h>
#include <sys/socket.h>
#include <sys/un.h>
#include <sys/time.h>
#include <unistd.h>

static int
s_notify (const char *state)
{
    //  unset_environment = 0: keep $NOTIFY_SOCKET so that every later call
    //  (watchdog pings, status) still reaches systemd
    return sd_notify (0, state) < 0 ? -1 : 0;
}

int
qt_notify_ready (void)
{
    return s_notify ("READY=1");
}

int
qt_notify_status (const char *fmt, ...)
{
    va_list args;
    va_start (args, fmt);
    char *text = NULL;
    int length = vasprintf (&text, fmt, args);
    va_end (args);
    if (length < 0)
        return -1;
    for (char *p = text; *p; p++)
        if (*p == '\n' || *p == '\r')
            *p = ' ';
    char *state = NULL;
    int rc = -1;
    if (asprintf (&state, "STATUS=%s", text) >= 0) {
        rc = s_notify (state);
        free (state);
    }
    free (text);
    return rc;
}

int
qt_notify_watchdog (void)
{
    return s_notify ("WATCHDOG=1");
}

int
qt_notify_stopping (void)
{
    return s_notify ("STOPPING=1");
}

bool
qt_notify_watchdog_usec (uint64_t *usec)
{
    uint64_t timeout = 0;
    //  sd_watchdog_enabled also checks WATCHDOG_PID is us, so a child that
    //  inherited the environment doesn't think it must ping
    if (sd_watchdog_enabled (0, &timeout) > 0) {
        if (usec)
            *usec = timeout;
        return true;
    }
    return false;
}


//  --------------------------------------------------------------------------
//  Selftest

//  Keep an environment variable's value to put it back afterwards.
static char *
s_env_save (const char *name)
{
    const char *value = getenv (name);
    return value ? strdup (value) : NULL;
}

static void
s_env_restore (const char *name, char **value_p)
{
    if (*value_p)
        setenv (name, *value_p, 1);
    else
        unsetenv (name);
    zstr_free (value_p);
}

//  Receive one datagram as a string (caller frees), or NULL on timeout.
static char *
s_receive (int fd)
{
    char buffer [512];
    ssize_t size = recv (fd, buffer, sizeof buffer - 1, 0);
    if (size < 0)
        return NULL;
    buffer [size] = '\0';
    return strdup (buffer);
}

void
qt_notify_test (bool verbose)
{
    if (verbose)
        printf (" * qt_notify: ");
    const int receive_timeout_ms = 2000;
    char *saved_socket = s_env_save ("NOTIFY_SOCKET");
    char *saved_usec = s_env_save ("WATCHDOG_USEC");
    char *saved_pid = s_env_save ("WATCHDOG_PID");

    //  @selftest
    //  Without systemd every call is a successful no-op
    unsetenv ("NOTIFY_SOCKET");
    unsetenv ("WATCHDOG_USEC");
    unsetenv ("WATCHDOG_PID");
    QT_CHECK (qt_notify_ready () == 0);
    QT_CHECK (qt_notify_status ("ticks=%d", 0) == 0);
    QT_CHECK (qt_notify_watchdog () == 0);
    QT_CHECK (qt_notify_stopping () == 0);
    uint64_t usec = 0;
    QT_CHECK (!qt_notify_watchdog_usec (&usec));

    //  Play systemd: a datagram socket named by $NOTIFY_SOCKET
    char tmpdir [] = "/tmp/qt_notify_test.XXXXXX";
    QT_CHECK (mkdtemp (tmpdir));
    struct sockaddr_un address = { .sun_family = AF_UNIX };
    snprintf (address.sun_path, sizeof address.sun_path, "%s/notify", tmpdir);
    int fd = socket (AF_UNIX, SOCK_DGRAM | SOCK_CLOEXEC, 0);
    QT_CHECK (fd >= 0);
    QT_CHECK (bind (fd, (struct sockaddr *) &address, sizeof address) == 0);
    struct timeval timeout = {
        .tv_sec = receive_timeout_ms / 1000,
        .tv_usec = (receive_timeout_ms % 1000) * 1000
    };
    QT_CHECK (setsockopt (fd, SOL_SOCKET, SO_RCVTIMEO, &timeout, sizeof timeout) == 0);
    setenv ("NOTIFY_SOCKET", address.sun_path, 1);

    QT_CHECK (qt_notify_ready () == 0);
    char *message = s_receive (fd);
    QT_CHECK (message && streq (message, "READY=1"));
    zstr_free (&message);

    QT_CHECK (qt_notify_status ("tick %d, %d replicas up\nforged", 42, 5) == 0);
    message = s_receive (fd);
    QT_CHECK (message && streq (message, "STATUS=tick 42, 5 replicas up forged"));
    zstr_free (&message);

    QT_CHECK (qt_notify_watchdog () == 0);
    message = s_receive (fd);
    QT_CHECK (message && streq (message, "WATCHDOG=1"));
    zstr_free (&message);

    QT_CHECK (qt_notify_stopping () == 0);
    message = s_receive (fd);
    QT_CHECK (message && streq (message, "STOPPING=1"));
    zstr_free (&message);

    //  The watchdog timeout is ours only if WATCHDOG_PID names us
    setenv ("WATCHDOG_USEC", "5000000", 1);
    char *pid = zsys_sprintf ("%d", (int) getpid ());
    setenv ("WATCHDOG_PID", pid, 1);
    zstr_free (&pid);
    QT_CHECK (qt_notify_watchdog_usec (&usec));
    QT_CHECK (usec == 5000000);
    setenv ("WATCHDOG_PID", "1", 1);
    QT_CHECK (!qt_notify_watchdog_usec (NULL));

    //  A socket that is gone is an error the daemon can see
    close (fd);
    unlink (address.sun_path);
    QT_CHECK (qt_notify_ready () == -1);
    //  @end

    QT_CHECK (rmdir (tmpdir) == 0);
    s_env_restore ("NOTIFY_SOCKET", &saved_socket);
    s_env_restore ("WATCHDOG_USEC", &saved_usec);
    s_env_restore ("WATCHDOG_PID", &saved_pid);
    if (verbose)
        printf ("OK\n");
}
