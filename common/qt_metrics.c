/*  qt_metrics: registry of metric families and the /metrics HTTP server. */
#include "quintet.h"
#include "qt_selftest.h"
#include "qt_metrics.h"
#include <arpa/inet.h>
#include <microhttpd.h>
#include <netinet/in.h>
#include <pthread.h>
#include <sys/socket.h>

//  What idle or slow connections (a slowloris) can hold: a few per client
//  address, so that they never shut out a scraper at another address, and
//  not for long
#define QT_METRICS_CONNECTIONS  64      //  concurrent connections in all
#define QT_METRICS_PER_ADDRESS  4       //  ... from one client address
#define QT_METRICS_TIMEOUT_S    3       //  an idle connection is closed after this
#define QT_METRICS_LOG_MS       10000   //  the HTTP server's complaints, once per interval
#define QT_METRICS_PATH         "/metrics"
#define QT_METRICS_CONTENT_TYPE "text/plain; version=0.0.4; charset=utf-8"

typedef enum { QT_COUNTER, QT_GAUGE, QT_HISTOGRAM } qt_metric_kind_t;

typedef struct {
    char *value;                        //  label value, NULL without label
    double amount;                      //  counter or gauge
    uint64_t le_counts [QT_METRICS_MAX_BOUNDS];
    uint64_t count;
    double sum;
} qt_series_t;

struct _qt_metric_t {
    qt_metrics_t *owner;
    qt_metric_kind_t kind;
    char *name;
    char *help;
    char *label;
    double bounds [QT_METRICS_MAX_BOUNDS];
    size_t bound_count;
    qt_series_t series [QT_METRICS_MAX_SERIES];
    size_t series_count;
    qt_metric_t *next;
};

struct _qt_metrics_t {
    pthread_mutex_t lock;
    qt_metric_t *first;
    qt_metric_t *last;
    struct MHD_Daemon *http;
    uint16_t port;
    qt_ratelimit_t *http_log;           //  used by the server's thread only
};

qt_metrics_t *
qt_metrics_new (void)
{
    qt_metrics_t *self = (qt_metrics_t *) zmalloc (sizeof (qt_metrics_t));
    pthread_mutex_init (&self->lock, NULL);
    return self;
}

void
qt_metrics_destroy (qt_metrics_t **self_p)
{
    qt_metrics_t *self = *self_p;
    if (!self)
        return;
    if (self->http)
        MHD_stop_daemon (self->http);
    qt_ratelimit_destroy (&self->http_log);
    qt_metric_t *metric = self->first;
    while (metric) {
        qt_metric_t *next = metric->next;
        for (size_t i = 0; i < metric->series_count; i++)
            free (metric->series [i].value);
        free (metric->name);
        free (metric->help);
        free (metric->label);
        free (metric);
        metric = next;
    }
    pthread_mutex_destroy (&self->lock);
    free (self);
    *self_p = NULL;
}

static qt_metric_t *
s_family (qt_metrics_t *self, qt_metric_kind_t kind, const char *name, const char *help,
          const char *label)
{
    pthread_mutex_lock (&self->lock);
    for (qt_metric_t *metric = self->first; metric; metric = metric->next)
        if (streq (metric->name, name)) {
            pthread_mutex_unlock (&self->lock);
            return metric->kind == kind ? metric : NULL;
        }
    qt_metric_t *metric = (qt_metric_t *) zmalloc (sizeof (qt_metric_t));
    metric->owner = self;
    metric->kind = kind;
    metric->name = strdup (name);
    metric->help = strdup (help);
    metric->label = label ? strdup (label) : NULL;
    if (self->last)
        self->last->next = metric;
    else
        self->first = metric;
    self->last = metric;
    pthread_mutex_unlock (&self->lock);
    return metric;
}

qt_metric_t *
qt_metrics_counter (qt_metrics_t *self, const char *name, const char *help, const char *label)
{
    return s_family (self, QT_COUNTER, name, help, label);
}

qt_metric_t *
qt_metrics_gauge (qt_metrics_t *self, const char *name, const char *help, const char *label)
{
    return s_family (self, QT_GAUGE, name, help, label);
}

qt_metric_t *
qt_metrics_histogram (qt_metrics_t *self, const char *name, const char *help, const char *label,
                      const double *bounds, size_t count)
{
    if (count > QT_METRICS_MAX_BOUNDS)
        count = QT_METRICS_MAX_BOUNDS;
    qt_metric_t *metric = s_family (self, QT_HISTOGRAM, name, help, label);
    if (metric && metric->bound_count == 0) {
        memcpy (metric->bounds, bounds, count * sizeof (double));
        metric->bound_count = count;
    }
    return metric;
}

//  The series of a label value, created on first use; caller holds the lock
static qt_series_t *
s_series (qt_metric_t *metric, const char *value)
{
    for (size_t i = 0; i < metric->series_count; i++) {
        const char *have = metric->series [i].value;
        if ((!have && !value) || (have && value && streq (have, value)))
            return &metric->series [i];
    }
    if (metric->series_count == QT_METRICS_MAX_SERIES)
        return NULL;
    qt_series_t *series = &metric->series [metric->series_count++];
    series->value = value ? strdup (value) : NULL;
    return series;
}

void
qt_metric_add (qt_metric_t *metric, const char *value, double amount)
{
    if (!metric)
        return;
    pthread_mutex_lock (&metric->owner->lock);
    qt_series_t *series = s_series (metric, value);
    if (series)
        series->amount += amount;
    pthread_mutex_unlock (&metric->owner->lock);
}

void
qt_metric_set (qt_metric_t *metric, const char *value, double amount)
{
    if (!metric)
        return;
    pthread_mutex_lock (&metric->owner->lock);
    qt_series_t *series = s_series (metric, value);
    if (series)
        series->amount = amount;
    pthread_mutex_unlock (&metric->owner->lock);
}

void
qt_metric_observe (qt_metric_t *metric, const char *value, double sample)
{
    if (!metric || !isfinite (sample))
        return;
    pthread_mutex_lock (&metric->owner->lock);
    qt_series_t *series = s_series (metric, value);
    if (series) {
        for (size_t i = 0; i < metric->bound_count; i++)
            if (sample <= metric->bounds [i])
                series->le_counts [i]++;         //  cumulative, as exposed
        series->count++;
        series->sum += sample;
    }
    pthread_mutex_unlock (&metric->owner->lock);
}

//  Label values and help text escaped as the exposition format wants
static void
s_escaped (zchunk_t *out, const char *text, bool quote)
{
    for (const char *c = text; *c; c++) {
        if (*c == '\\')
            zchunk_extend (out, "\\\\", 2);
        else
        if (*c == '\n')
            zchunk_extend (out, "\\n", 2);
        else
        if (*c == '"' && quote)
            zchunk_extend (out, "\\\"", 2);
        else
            zchunk_extend (out, c, 1);
    }
}

static void
s_printf (zchunk_t *out, const char *format, ...)
{
    va_list args;
    va_start (args, format);
    char *text = zsys_vprintf (format, args);
    va_end (args);
    zchunk_extend (out, text, strlen (text));
    free (text);
}

//  The shortest of %.15g and %.17g that reads back as the same double
static void
s_format (char *buffer, size_t size, double value)
{
    if (isnan (value))
        snprintf (buffer, size, "NaN");
    else
    if (isinf (value))
        snprintf (buffer, size, value > 0 ? "+Inf" : "-Inf");
    else {
        snprintf (buffer, size, "%.15g", value);
        if (strtod (buffer, NULL) != value)
            snprintf (buffer, size, "%.17g", value);
    }
}

static void
s_number (zchunk_t *out, double value)
{
    char buffer [64];
    s_format (buffer, sizeof buffer, value);
    zchunk_extend (out, buffer, strlen (buffer));
}

//  name{label="value",le="bound"} : the labels of one sample
static void
s_labels (zchunk_t *out, qt_metric_t *metric, qt_series_t *series, const char *le)
{
    bool labelled = metric->label && series->value;
    if (!labelled && !le)
        return;
    zchunk_extend (out, "{", 1);
    if (labelled) {
        s_printf (out, "%s=\"", metric->label);
        s_escaped (out, series->value, true);
        zchunk_extend (out, "\"", 1);
    }
    if (le)
        s_printf (out, "%sle=\"%s\"", labelled ? "," : "", le);
    zchunk_extend (out, "}", 1);
}

char *
qt_metrics_render (qt_metrics_t *self)
{
    static const char *const kinds [] = { "counter", "gauge", "histogram" };
    zchunk_t *out = zchunk_new (NULL, 4096);
    pthread_mutex_lock (&self->lock);
    for (qt_metric_t *metric = self->first; metric; metric = metric->next) {
        s_printf (out, "# HELP %s ", metric->name);
        s_escaped (out, metric->help, false);
        s_printf (out, "\n# TYPE %s %s\n", metric->name, kinds [metric->kind]);
        for (size_t i = 0; i < metric->series_count; i++) {
            qt_series_t *series = &metric->series [i];
            if (metric->kind != QT_HISTOGRAM) {
                s_printf (out, "%s", metric->name);
                s_labels (out, metric, series, NULL);
                zchunk_extend (out, " ", 1);
                s_number (out, series->amount);
                zchunk_extend (out, "\n", 1);
                continue;
            }
            for (size_t b = 0; b <= metric->bound_count; b++) {
                char le [64];
                s_format (le, sizeof le, b < metric->bound_count ? metric->bounds [b] : INFINITY);
                s_printf (out, "%s_bucket", metric->name);   //  the exposition format's name
                s_labels (out, metric, series, le);
                s_printf (out, " %" PRIu64 "\n",
                          b < metric->bound_count ? series->le_counts [b] : series->count);
            }
            s_printf (out, "%s_sum", metric->name);
            s_labels (out, metric, series, NULL);
            zchunk_extend (out, " ", 1);
            s_number (out, series->sum);
            s_printf (out, "\n%s_count", metric->name);
            s_labels (out, metric, series, NULL);
            s_printf (out, " %" PRIu64 "\n", series->count);
        }
    }
    pthread_mutex_unlock (&self->lock);
    zchunk_extend (out, "", 1);
    char *text = strdup ((char *) zchunk_data (out));
    zchunk_destroy (&out);
    return text;
}

static enum MHD_Result
s_handle (void *cls, struct MHD_Connection *connection, const char *url, const char *method,
          const char *version, const char *upload_data, size_t *upload_data_size, void **state)
{
    (void) version; (void) upload_data; (void) upload_data_size; (void) state;
    qt_metrics_t *self = (qt_metrics_t *) cls;
    struct MHD_Response *response;
    unsigned int status;
    if (strneq (method, "GET") && strneq (method, "HEAD")) {
        static const char refused [] = "only GET /metrics\n";
        response = MHD_create_response_from_buffer (strlen (refused), (void *) refused,
                                                    MHD_RESPMEM_PERSISTENT);
        status = MHD_HTTP_METHOD_NOT_ALLOWED;
    }
    else
    if (strneq (url, QT_METRICS_PATH)) {
        static const char missing [] = "not found: metrics are on " QT_METRICS_PATH "\n";
        response = MHD_create_response_from_buffer (strlen (missing), (void *) missing,
                                                    MHD_RESPMEM_PERSISTENT);
        status = MHD_HTTP_NOT_FOUND;
    }
    else {
        char *text = qt_metrics_render (self);
        response = MHD_create_response_from_buffer (strlen (text), text, MHD_RESPMEM_MUST_FREE);
        MHD_add_response_header (response, MHD_HTTP_HEADER_CONTENT_TYPE, QT_METRICS_CONTENT_TYPE);
        status = MHD_HTTP_OK;
    }
    enum MHD_Result rc = MHD_queue_response (connection, status, response);
    MHD_destroy_response (response);
    return rc;
}

//  "HOST:PORT" (IPv4) into an address
static int
s_parse_bind (const char *bind, struct sockaddr_in *address, char **error)
{
    memset (address, 0, sizeof *address);
    address->sin_family = AF_INET;
    const char *colon = strrchr (bind, ':');
    char host [64] = "";
    char *end = NULL;
    unsigned long port = colon ? strtoul (colon + 1, &end, 10) : 0;
    if (!colon || (size_t) (colon - bind) >= sizeof host || !end || *end || colon [1] == 0
    ||  port > 65535) {
        *error = zsys_sprintf ("metrics_bind \"%s\": expected HOST:PORT, e.g. 127.0.0.1:9101", bind);
        return -1;
    }
    memcpy (host, bind, (size_t) (colon - bind));
    if (inet_pton (AF_INET, *host ? host : "0.0.0.0", &address->sin_addr) != 1) {
        *error = zsys_sprintf ("metrics_bind \"%s\": \"%s\" is not an IPv4 address", bind, host);
        return -1;
    }
    address->sin_port = htons ((uint16_t) port);
    return 0;
}

int
qt_metrics_check_bind (const char *bind, char **error)
{
    struct sockaddr_in address;
    return s_parse_bind (bind, &address, error);
}

//  libmicrohttpd's error log (a connection refused over a limit, say): one
//  line per interval, so a flood of connections cannot flood the log
static void
s_http_log (void *arg, const char *fmt, va_list args)
{
    qt_metrics_t *self = (qt_metrics_t *) arg;
    uint64_t suppressed = 0;
    if (!qt_ratelimit_pass (self->http_log, "http", zclock_mono (), &suppressed))
        return;
    char message [256];
    vsnprintf (message, sizeof message, fmt, args);
    size_t length = strlen (message);
    while (length > 0 && (message [length - 1] == '\n' || message [length - 1] == '.'))
        message [--length] = 0;
    qt_log (LOG_WARNING, "metrics server: %s (%" PRIu64 " more complaints since last report)",
            message, suppressed);
}

int
qt_metrics_serve (qt_metrics_t *self, const char *bind, char **error)
{
    struct sockaddr_in address;
    if (s_parse_bind (bind, &address, error))
        return -1;
    uint16_t port = ntohs (address.sin_port);
    if (!self->http_log)
        self->http_log = qt_ratelimit_new (QT_METRICS_LOG_MS);
    self->http = MHD_start_daemon (MHD_USE_INTERNAL_POLLING_THREAD | MHD_USE_ERROR_LOG,
                                   (uint16_t) port, NULL, NULL, s_handle, self,
                                   MHD_OPTION_SOCK_ADDR, (struct sockaddr *) &address,
                                   MHD_OPTION_CONNECTION_LIMIT, (unsigned int) QT_METRICS_CONNECTIONS,
                                   MHD_OPTION_PER_IP_CONNECTION_LIMIT, (unsigned int) QT_METRICS_PER_ADDRESS,
                                   MHD_OPTION_CONNECTION_TIMEOUT, (unsigned int) QT_METRICS_TIMEOUT_S,
                                   MHD_OPTION_EXTERNAL_LOGGER, s_http_log, self,
                                   MHD_OPTION_END);
    if (!self->http) {
        *error = zsys_sprintf ("metrics_bind \"%s\": cannot serve HTTP there: %s", bind,
                               strerror (errno));
        return -1;
    }
    const union MHD_DaemonInfo *info = MHD_get_daemon_info (self->http, MHD_DAEMON_INFO_LISTEN_FD);
    struct sockaddr_in bound;
    socklen_t size = sizeof bound;
    if (info && getsockname (info->listen_fd, (struct sockaddr *) &bound, &size) == 0)
        self->port = ntohs (bound.sin_port);
    return 0;
}

uint16_t
qt_metrics_port (qt_metrics_t *self)
{
    return self->port;
}

#define S_TEST_READ_TIMEOUT_S   30
#define S_TEST_IDLE_CONNECTIONS 64      //  a slowloris from one address
#define S_TEST_IDLE_ADDRESS     "127.0.0.2"

//  Fetches a URL path from the server with a plain socket: status line + body
static char *
s_http_get (uint16_t port, const char *path)
{
    int fd = socket (AF_INET, SOCK_STREAM, 0);
    //  A server that never answers fails the test instead of hanging it
    struct timeval timeout = { .tv_sec = S_TEST_READ_TIMEOUT_S };
    setsockopt (fd, SOL_SOCKET, SO_RCVTIMEO, &timeout, sizeof timeout);
    struct sockaddr_in address = { .sin_family = AF_INET, .sin_port = htons (port) };
    inet_pton (AF_INET, "127.0.0.1", &address.sin_addr);
    QT_CHECK (connect (fd, (struct sockaddr *) &address, sizeof address) == 0);
    char *request = zsys_sprintf ("GET %s HTTP/1.0\r\nHost: localhost\r\n\r\n", path);
    QT_CHECK (write (fd, request, strlen (request)) == (ssize_t) strlen (request));
    free (request);
    zchunk_t *reply = zchunk_new (NULL, 4096);
    char buffer [4096];
    ssize_t got;
    while ((got = read (fd, buffer, sizeof buffer)) > 0)
        zchunk_extend (reply, buffer, (size_t) got);
    close (fd);
    zchunk_extend (reply, "", 1);
    char *text = strdup ((char *) zchunk_data (reply));
    zchunk_destroy (&reply);
    return text;
}

void
qt_metrics_test (bool verbose)
{
    printf (" * qt_metrics: ");
    qt_metrics_t *metrics = qt_metrics_new ();
    qt_metric_t *ticks = qt_metrics_counter (metrics, "quintet_ticks_total", "Ticks processed.", NULL);
    qt_metric_t *drops = qt_metrics_counter (metrics, "quintet_messages_dropped_total",
                                             "Messages dropped, by cause.", "cause");
    qt_metric_t *up = qt_metrics_gauge (metrics, "quintet_upstream_replicas_up",
                                        "Live upstream replicas.", "upstream");
    static const double bounds [] = { 0.001, 0.01, 0.1 };
    qt_metric_t *latency = qt_metrics_histogram (metrics, "quintet_tick_seconds",
                                                 "Tick latency.", NULL, bounds, 3);
    QT_CHECK (ticks && drops && up && latency);
    //  The same name again is the same family; of another kind, refused
    QT_CHECK (qt_metrics_counter (metrics, "quintet_ticks_total", "again", NULL) == ticks);
    QT_CHECK (qt_metrics_gauge (metrics, "quintet_ticks_total", "again", NULL) == NULL);

    qt_metric_add (ticks, NULL, 1);
    qt_metric_add (ticks, NULL, 2);
    qt_metric_add (drops, "replay", 4);
    qt_metric_add (drops, "bad \"sig\"\\", 1);
    qt_metric_set (up, "rewarder", 3);
    qt_metric_set (up, "rewarder", 2);
    qt_metric_observe (latency, NULL, 0.005);
    qt_metric_observe (latency, NULL, 0.05);
    qt_metric_observe (latency, NULL, 5);
    qt_metric_observe (latency, NULL, NAN);         //  ignored
    char *text = qt_metrics_render (metrics);
    if (verbose)
        printf ("\n%s", text);
    QT_CHECK (strstr (text, "# TYPE quintet_ticks_total counter\nquintet_ticks_total 3\n"));
    QT_CHECK (strstr (text, "quintet_messages_dropped_total{cause=\"replay\"} 4\n"));
    QT_CHECK (strstr (text, "quintet_messages_dropped_total{cause=\"bad \\\"sig\\\"\\\\\"} 1\n"));
    QT_CHECK (strstr (text, "quintet_upstream_replicas_up{upstream=\"rewarder\"} 2\n"));
    QT_CHECK (strstr (text, "quintet_tick_seconds_bucket{le=\"0.001\"} 0\n"));
    QT_CHECK (strstr (text, "quintet_tick_seconds_bucket{le=\"0.01\"} 1\n"));
    QT_CHECK (strstr (text, "quintet_tick_seconds_bucket{le=\"0.1\"} 2\n"));
    QT_CHECK (strstr (text, "quintet_tick_seconds_bucket{le=\"+Inf\"} 3\n"));
    QT_CHECK (strstr (text, "quintet_tick_seconds_count 3\n"));
    QT_CHECK (strstr (text, "quintet_tick_seconds_sum 5.055\n"));
    free (text);

    //  Served over HTTP on a port the kernel picks
    char *error = NULL;
    QT_CHECK (qt_metrics_serve (metrics, "127.0.0.1:bad", &error) == -1 && error);
    zstr_free (&error);
    QT_CHECK (qt_metrics_serve (metrics, "localhost:0", &error) == -1 && error);
    zstr_free (&error);
    QT_CHECK (qt_metrics_port (metrics) == 0);
    QT_CHECK (qt_metrics_serve (metrics, "127.0.0.1:0", &error) == 0);
    QT_CHECK (qt_metrics_port (metrics) > 0);
    char *reply = s_http_get (qt_metrics_port (metrics), "/metrics");
    QT_CHECK (strstr (reply, "HTTP/1.0 200") || strstr (reply, "HTTP/1.1 200"));
    QT_CHECK (strstr (reply, "text/plain; version=0.0.4"));
    QT_CHECK (strstr (reply, "\r\n\r\n# HELP quintet_ticks_total Ticks processed.\n"));
    free (reply);
    reply = s_http_get (qt_metrics_port (metrics), "/other");
    QT_CHECK (strstr (reply, " 404 "));
    free (reply);

    //  Slowloris: idle connections from one address (they send nothing)
    //  never shut out a scrape from another; each is a loopback address
    int idle [S_TEST_IDLE_CONNECTIONS];
    size_t opened = 0;
    for (size_t i = 0; i < S_TEST_IDLE_CONNECTIONS; i++) {
        idle [i] = socket (AF_INET, SOCK_STREAM, 0);
        struct sockaddr_in source = { .sin_family = AF_INET };
        struct sockaddr_in server = { .sin_family = AF_INET, .sin_port = htons (qt_metrics_port (metrics)) };
        inet_pton (AF_INET, S_TEST_IDLE_ADDRESS, &source.sin_addr);
        inet_pton (AF_INET, "127.0.0.1", &server.sin_addr);
        if (bind (idle [i], (struct sockaddr *) &source, sizeof source) == 0
        &&  connect (idle [i], (struct sockaddr *) &server, sizeof server) == 0)
            opened++;
    }
    int64_t started = zclock_mono ();
    reply = s_http_get (qt_metrics_port (metrics), "/metrics");
    QT_CHECK (opened == 0 || strstr (reply, "HTTP/1.0 200") || strstr (reply, "HTTP/1.1 200"));
    free (reply);
    printf ("(scraped beside %zu idle connections in %" PRId64 " ms) ", opened, zclock_mono () - started);
    for (size_t i = 0; i < S_TEST_IDLE_CONNECTIONS; i++)
        close (idle [i]);

    qt_metrics_destroy (&metrics);
    qt_metrics_destroy (&metrics);      //  idempotent
    QT_CHECK (metrics == NULL);
    printf ("OK\n");
}
