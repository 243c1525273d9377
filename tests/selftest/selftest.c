/*  selftest: runs the selftest of one class of libquintet, by name, so that
    meson reports each class as its own test. `selftest all` runs them all.
*/
#include "quintet.h"

typedef struct {
    const char *name;
    void (*test) (bool verbose);
} test_item_t;

//  The classes, from tests/selftest/meson.build's list
#include "selftest_classes.h"
#define QT_SELFTEST_CLASS(name) { #name, qt_##name##_test },
static test_item_t s_tests [] = {
    QT_SELFTEST_CLASSES
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
