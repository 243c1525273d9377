/*  selftest: runs the selftest of one class of libquintet, by name, so that
    meson reports each class as its own test. `selftest all` runs them all.
*/
#include "quintet.h"

typedef struct {
    const char *name;
    void (*test) (bool verbose);
} test_item_t;

static test_item_t s_tests [] = {
    { "rng",       qt_rng_test },
    { "robust",    qt_robust_test },
    { "tournesol", qt_tournesol_test },
    { "options", qt_options_test },
    { "log",       qt_log_test },
    { "notify",    qt_notify_test },
    { "config",    qt_config_test },
    { "store",     qt_store_test },
    { "keys",      qt_keys_test },
    { "payload",   qt_payload_test },
    { "envelope",  qt_envelope_test },
    { "transport", qt_transport_test },
    { "quorum",    qt_quorum_test },
    { "metrics",   qt_metrics_test },
    { "byzantine", qt_byzantine_test },
    { "control",   qt_control_test },
    { "catchup",   qt_catchup_test },
    { "reputation", qt_reputation_test },
    { "codec",     qt_codec_test },
    { NULL, NULL }
};

int
main (int argc, char *argv [])
{
    const char *only = argc > 1 ? argv [1] : "all";
    int ran = 0;
    zsys_init ();
    zsys_set_logstream (stderr);
    for (test_item_t *item = s_tests; item->name; item++) {
        if (streq (only, "all") || streq (only, item->name)) {
            item->test (true);
            ran++;
        }
    }
    if (ran == 0) {
        fprintf (stderr, "selftest: no test named '%s'\n", only);
        return 2;
    }
    return 0;
}
