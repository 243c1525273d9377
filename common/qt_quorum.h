/*  qt_quorum: placeholder until implemented. */
#ifndef QT_QUORUM_H_INCLUDED
#define QT_QUORUM_H_INCLUDED
#include <stdbool.h>
void qt_quorum_test (bool verbose);
#endif
