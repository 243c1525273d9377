/*  qt_keys: placeholder until implemented. */
#ifndef QT_KEYS_H_INCLUDED
#define QT_KEYS_H_INCLUDED
#include <stdbool.h>
void qt_keys_test (bool verbose);
#endif
