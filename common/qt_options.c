/*  qt_options: see qt_options.h.
*/
#include <math.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "qt_options.h"
#include "qt_selftest.h"

int
qt_option_set (const qt_option_t *table, size_t rows, void *config, const char *name,
               const char *value, const char **cause)
{
    for (size_t i = 0; i < rows; i++) {
        const qt_option_t *option = &table [i];
        if (strcmp (name, option->name) != 0)
            continue;
        char *end = NULL;
        double number = strtod (value, &end);
        if (end == value || *end || !(number >= option->low && number <= option->high)
        ||  (option->whole && number != floor (number))) {
            if (cause)
                *cause = option->problem;
            return -1;
        }
        char *field = (char *) config + option->offset;
        if (option->whole)
            *(uint32_t *) field = (uint32_t) number;
        else
            *(double *) field = number;
        return 0;
    }
    return 1;
}

void
qt_options_test (bool verbose)
{
    if (verbose)
        printf (" * qt_options: ");
    typedef struct { double rate; uint32_t count; } config_t;
    const qt_option_t table [] = {
        { "rate", offsetof (config_t, rate), false, 0, 1, "rate is in [0, 1]" },
        { "count", offsetof (config_t, count), true, 1, 10, "count is a whole number in [1, 10]" },
    };
    config_t config = { 0.5, 1 };
    const char *cause = NULL;
    QT_CHECK (qt_option_set (table, 2, &config, "rate", "0.25", &cause) == 0 && config.rate == 0.25);
    QT_CHECK (qt_option_set (table, 2, &config, "count", "7", &cause) == 0 && config.count == 7);
    QT_CHECK (qt_option_set (table, 2, &config, "count", "2.5", &cause) == -1
            && strcmp (cause, "count is a whole number in [1, 10]") == 0 && config.count == 7);
    QT_CHECK (qt_option_set (table, 2, &config, "rate", "nan", &cause) == -1);
    QT_CHECK (qt_option_set (table, 2, &config, "rate", "", &cause) == -1);
    QT_CHECK (qt_option_set (table, 2, &config, "rate", "0.3x", &cause) == -1);
    cause = NULL;
    QT_CHECK (qt_option_set (table, 2, &config, "bogus", "1", &cause) == 1 && cause == NULL);
    if (verbose)
        printf ("OK\n");
}
