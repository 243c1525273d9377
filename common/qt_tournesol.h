/*  qt_tournesol: placeholder until implemented. */
#ifndef QT_TOURNESOL_H_INCLUDED
#define QT_TOURNESOL_H_INCLUDED
#include <stdbool.h>
void qt_tournesol_test (bool verbose);
#endif
