/*  qt_log: placeholder until implemented. */
#ifndef QT_LOG_H_INCLUDED
#define QT_LOG_H_INCLUDED
#include <stdbool.h>
void qt_log_test (bool verbose);
#endif
