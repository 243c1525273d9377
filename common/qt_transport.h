/*  qt_transport: placeholder until implemented. */
#ifndef QT_TRANSPORT_H_INCLUDED
#define QT_TRANSPORT_H_INCLUDED
#include <stdbool.h>
void qt_transport_test (bool verbose);
#endif
