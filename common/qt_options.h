/*  qt_options: numeric options of a configuration struct, set from text by
    a table (one row per option: name, where the field is, whether it is a
    whole number held in a uint32_t or a double, its range, and what the
    range is in words). The learner, the scorer's learner and the raters'
    population declare their rows with an X-macro, so the option names
    (config keys, quintet-sim flags) and the parser come from one list.
*/
#ifndef QT_OPTIONS_H_INCLUDED
#define QT_OPTIONS_H_INCLUDED

#include <stdbool.h>
#include <stddef.h>

typedef struct {
    const char *name;
    size_t offset;              //  of the field in the configuration struct
    bool whole;                 //  a uint32_t field, else a double
    double low, high;
    const char *problem;        //  the range in words, the cause when out of it
} qt_option_t;

//  Set option `name` of config from its text. 0; -1 with the row's problem
//  in *cause (may be NULL) when the text is not a number in range; 1 when
//  no row has that name (*cause untouched: the caller may know it).
int qt_option_set (const qt_option_t *table, size_t rows, void *config, const char *name,
                   const char *value, const char **cause);

void qt_options_test (bool verbose);

#endif
