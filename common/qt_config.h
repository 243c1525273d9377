/*  qt_config: placeholder until implemented. */
#ifndef QT_CONFIG_H_INCLUDED
#define QT_CONFIG_H_INCLUDED
#include <stdbool.h>
void qt_config_test (bool verbose);
#endif
