/*  qt_daemon: the process around a stage, the same for every daemon:
    command line, libsodium and czmq set-up, signals, the config file,
    credentials (systemd's LoadCredential=), the state directory, systemd
    notification (READY=1, STATUS=, WATCHDOG=1, STOPPING=1), the stop
    summary and the exit code. The role's logic runs in the stage's actor
    (qt_stage_actor), which the daemon starts and waits for.
*/
#ifndef QT_DAEMON_H_INCLUDED
#define QT_DAEMON_H_INCLUDED

#include "qt_stage.h"

//  The whole daemon: parses the command line, loads the config, runs the
//  stage's actor until SIGTERM/SIGINT. Returns the process exit code: 0,
//  1 runtime error, 2 usage or configuration error. (Named for the stage
//  it runs: every daemon's main.c is this one call.)
int qt_stage_main (const qt_role_t *role, int argc, char *argv []);

//  Where a configured secret key file is: a relative name is taken in
//  systemd's credentials directory ($CREDENTIALS_DIRECTORY, LoadCredential=)
//  when there is one, else as given. Caller frees.
char *qt_daemon_secret_path (const char *configured);

//  Creates a directory and its parents (mode 0750) if missing: 0, or -1
//  with errno
int qt_daemon_mkdir_p (const char *path);

void qt_daemon_test (bool verbose);

#endif
