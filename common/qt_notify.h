/*  qt_notify: placeholder until implemented. */
#ifndef QT_NOTIFY_H_INCLUDED
#define QT_NOTIFY_H_INCLUDED
#include <stdbool.h>
void qt_notify_test (bool verbose);
#endif
