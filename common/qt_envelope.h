/*  qt_envelope: placeholder until implemented. */
#ifndef QT_ENVELOPE_H_INCLUDED
#define QT_ENVELOPE_H_INCLUDED
#include <stdbool.h>
void qt_envelope_test (bool verbose);
#endif
