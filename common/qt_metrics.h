/*  qt_metrics: Prometheus metrics of one daemon, served on GET /metrics.

    A registry of metric families (counter, gauge, histogram), each with at
    most one label (e.g. cause="replay"); the daemon's loop updates them, an
    HTTP server (libmicrohttpd, its own thread) renders them in the text
    exposition format (version 0.0.4). Updates and rendering take one mutex:
    the loop never waits on a slow scraper longer than one rendering.

        qt_metrics_t *metrics = qt_metrics_new ();
        qt_metric_t *ticks = qt_metrics_counter (metrics, "quintet_ticks_total",
                                                 "Ticks processed.", NULL);
        qt_metric_add (ticks, NULL, 1);
        qt_metrics_serve (metrics, "127.0.0.1:0", &error);   //  GET /metrics
*/
#ifndef QT_METRICS_H_INCLUDED
#define QT_METRICS_H_INCLUDED

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

#define QT_METRICS_MAX_BOUNDS  32
#define QT_METRICS_MAX_SERIES   64      //  label values per family

typedef struct _qt_metrics_t qt_metrics_t;
typedef struct _qt_metric_t qt_metric_t;

qt_metrics_t *qt_metrics_new (void);
//  Stops the HTTP server, if any, and frees every family
void qt_metrics_destroy (qt_metrics_t **self_p);

//  Families. label is the one label's name, or NULL for none. Names and
//  label names must be valid Prometheus names; a family of the same name
//  is returned again rather than registered twice.
qt_metric_t *qt_metrics_counter (qt_metrics_t *self, const char *name, const char *help,
                                 const char *label);
qt_metric_t *qt_metrics_gauge (qt_metrics_t *self, const char *name, const char *help,
                               const char *label);
//  bounds: upper bounds of the histogram's ranges, increasing (+Inf is implicit)
qt_metric_t *qt_metrics_histogram (qt_metrics_t *self, const char *name, const char *help,
                                   const char *label, const double *bounds, size_t count);

//  value: the label's value (NULL when the family has no label). Beyond
//  QT_METRICS_MAX_SERIES label values, new ones are ignored.
void qt_metric_add (qt_metric_t *metric, const char *value, double amount);
void qt_metric_set (qt_metric_t *metric, const char *value, double amount);
void qt_metric_observe (qt_metric_t *metric, const char *value, double sample);

//  The exposition text; caller frees
char *qt_metrics_render (qt_metrics_t *self);

//  Serves GET /metrics on "HOST:PORT" (IPv4; port 0 picks one). 0, or -1
//  and *error (caller frees). Connections are bounded in all and per client
//  address, idle ones closed after a few seconds: a slowloris from one
//  address never shuts out a scraper at another.
int qt_metrics_serve (qt_metrics_t *self, const char *bind, char **error);
//  Whether bind is a "HOST:PORT" qt_metrics_serve takes, without serving
//  (for --check). 0, or -1 and *error (caller frees).
int qt_metrics_check_bind (const char *bind, char **error);
//  The port served on, 0 when not serving
uint16_t qt_metrics_port (qt_metrics_t *self);

void qt_metrics_test (bool verbose);

#endif
