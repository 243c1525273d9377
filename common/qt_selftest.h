//  qt_selftest.h: QT_CHECK (cond), the selftests' check. Unlike assert () it
//  is not compiled out by NDEBUG (-Db_ndebug=true), so a selftest cannot
//  pass vacuously: a false condition prints file:line and the expression,
//  then abort ()s.
#ifndef QT_SELFTEST_H_INCLUDED
#define QT_SELFTEST_H_INCLUDED
#include <stdio.h>
#include <stdlib.h>

#define QT_CHECK(cond) \
    do { \
        if (!(cond)) { \
            fprintf (stderr, "%s:%d: check failed: %s\n", __FILE__, __LINE__, #cond); \
            abort (); \
        } \
    } while (0)

#endif
