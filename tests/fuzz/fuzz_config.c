/*  fuzz_config: the config loader (czmq's zconfig ZPL parser and
    qt_config's typed reads) on arbitrary file contents, read the way
    qt_stage and the roles read a replica's config.
*/
#include "fuzz_keys.h"
#include <unistd.h>

int LLVMFuzzerTestOneInput (const uint8_t *data, size_t size);

static const char *const s_strings [] = {
    "quintet/role", "quintet/env", "quintet/secret_key", "quintet/trust_dir", "quintet/state_dir",
    "quintet/bind", "quintet/control_bind", "quintet/metrics_bind", "quintet/upstream/world/1", NULL
};
static const char *const s_numbers [] = {
    "quintet/replica", "quintet/batch", "quintet/seed", "quintet/resend_ms", "quintet/status_ms",
    "quintet/upstream/world/faults", "quintet/collector/retain_rows", NULL
};
static const char *const s_levels [] = { "error", "warning", "notice", "info", "debug", NULL };

int
LLVMFuzzerTestOneInput (const uint8_t *data, size_t size)
{
    fuzz_trust ();      //  quiet logs, once
    char path [] = "/tmp/quintet-fuzz-config.XXXXXX";
    int fd = mkstemp (path);
    QT_CHECK (fd >= 0);
    QT_CHECK (write (fd, data, size) == (ssize_t) size);
    close (fd);
    char *error = NULL;
    qt_config_t *config = qt_config_open (path, &error);
    if (config) {
        const char *text = NULL;
        uint64_t number = 0;
        double real = 0;
        bool flag = false;
        int choice = 0;
        for (const char *const *key = s_strings; *key; key++)
            qt_config_string (config, *key, "", &text);
        for (const char *const *key = s_numbers; *key; key++)
            qt_config_uint (config, *key, false, 1, 0, UINT64_MAX, &number);
        qt_config_double (config, "quintet/scorer/quantile", false, 0.5, 0, 1, &real);
        qt_config_bool (config, "quintet/flag", false, false, &flag);
        qt_config_choice (config, "quintet/log_level", s_levels, "info", &choice);
        zlist_t *children = qt_config_children (config, "quintet/upstream/world");
        zlist_destroy (&children);
        qt_config_check_unknown (config);
        qt_config_destroy (&config);
    }
    zstr_free (&error);
    unlink (path);
    return 0;
}
