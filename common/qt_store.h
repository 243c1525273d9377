/*  qt_store: placeholder until implemented. */
#ifndef QT_STORE_H_INCLUDED
#define QT_STORE_H_INCLUDED
#include <stdbool.h>
void qt_store_test (bool verbose);
#endif
