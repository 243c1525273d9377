/*  qt_config: one instance's configuration file, read and validated.

    Files are ZPL (ZeroMQ RFC 4/ZPL), parsed by czmq's zconfig: sections
    nest by four spaces, `name = value` per line, `#` comments. Keys are
    zconfig paths such as "quintet/batch". A daemon asks for each key through
    a typed getter that checks it and records it as read; at the end
    qt_config_check_unknown() turns every key nobody read into an error, so a
    misspelt key is never silently ignored. Every error is one line naming the
    file, the key and what was expected:

        collector-1.conf: quintet/batch: expected an integer in [1, 4096], got "abc"

    Usage in main:

        char *error = NULL;
        qt_config_t *config = qt_config_open (path, &error);
        if (!config) { qt_log_event (LOG_ERR, QT_MSG_CONFIG_ERROR, ...error); ... }
        uint64_t batch;
        int rc = qt_config_uint (config, "quintet/batch", false, 64, 1, 4096, &batch);
        ...
        if (rc || qt_config_check_unknown (config)) -> log qt_config_error (config)

    A qt_config_t belongs to one thread.
*/
#ifndef QT_CONFIG_H_INCLUDED
#define QT_CONFIG_H_INCLUDED

#include <czmq.h>
#include <stdbool.h>
#include <stdint.h>

typedef struct _qt_config_t qt_config_t;

//  Load and parse a config file. NULL if it is missing, unreadable, not ZPL
//  (the message gives the offending line), has duplicate keys or a key with
//  '/' in its name; then *error (if error is not NULL) is the message, which
//  the caller frees.
qt_config_t *qt_config_open (const char *path, char **error);

//  Same, for a daemon's main: on failure the message is logged as a
//  QT_MSG_CONFIG_ERROR event at LOG_ERR.
qt_config_t *qt_config_load (const char *path);

//  Destroy; idempotent, nulls the caller's pointer.
void qt_config_destroy (qt_config_t **self_p);

//  The last error a getter or check reported, or NULL.
const char *qt_config_error (qt_config_t *self);

//  The path the config was loaded from.
const char *qt_config_path (qt_config_t *self);

//  The getters: each returns 0 and sets *value, or returns -1, sets the
//  error, and sets *value to the default (0 when required) so it is never
//  left undefined. Each records the key as read.

//  String. dflt NULL means required; a required key must not be empty. The
//  value belongs to the config.
int qt_config_string (qt_config_t *self, const char *key, const char *dflt,
                      const char **value);

//  Unsigned decimal integer in [min, max].
int qt_config_uint (qt_config_t *self, const char *key, bool required,
                    uint64_t dflt, uint64_t min, uint64_t max, uint64_t *value);

//  Finite number in [min, max] (NaN and infinities are rejected).
int qt_config_double (qt_config_t *self, const char *key, bool required,
                      double dflt, double min, double max, double *value);

//  true/false, yes/no, 1/0 (case-insensitive).
int qt_config_bool (qt_config_t *self, const char *key, bool required,
                    bool dflt, bool *value);

//  One of a NULL-terminated list of words; *index is its position. dflt NULL
//  means required.
int qt_config_choice (qt_config_t *self, const char *key,
                      const char *const *choices, const char *dflt, int *index);

//  The names of a section's children, in file order (an empty list if the
//  section is absent); the caller destroys the list. This does not mark
//  the children as read: read each
//  with the typed getters under "key/name/...", so misspellings inside
//  dynamic sub-sections (quintet/scorer/rater/<name>/...) are still caught.
zlist_t *qt_config_children (qt_config_t *self, const char *key);

//  After everything has been read: -1 if the file holds any key nobody
//  read, with an error naming them (unknown key "quintet/bacth").
int qt_config_check_unknown (qt_config_t *self);

void qt_config_test (bool verbose);

#endif
