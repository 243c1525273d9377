/*  qt_transport: PUB/SUB on czmq with the options quintet relies on. */
#include "quintet.h"
#include "qt_selftest.h"

zsock_t *
qt_transport_publisher (const char *bind, char **endpoint, char **error)
{
    *error = NULL;
    zsock_t *pub = zsock_new (ZMQ_PUB);
    assert (pub);
    zsock_set_sndhwm (pub, QT_TRANSPORT_SNDHWM);
    zsock_set_linger (pub, QT_TRANSPORT_LINGER_MS);
    if (zsock_bind (pub, "%s", bind) == -1) {
        *error = zsys_sprintf ("cannot bind %s: %s", bind, zmq_strerror (zmq_errno ()));
        zsock_destroy (&pub);
        return NULL;
    }
    *endpoint = zsock_last_endpoint (pub);
    return pub;
}

#define S_PORT_MAX 65535

int
qt_transport_check_endpoint (const char *endpoint, char **error)
{
    const char *separator = strstr (endpoint, "://");
    const char *address = separator ? separator + 3 : NULL;
    if (!separator || !*address) {
        *error = zsys_sprintf ("\"%s\" is not an endpoint: expected e.g. tcp://127.0.0.1:7102", endpoint);
        return -1;
    }
    size_t transport = (size_t) (separator - endpoint);
    if ((transport == 3 && strncmp (endpoint, "ipc", 3) == 0)
    ||  (transport == 6 && strncmp (endpoint, "inproc", 6) == 0))
        return 0;
    if (transport != 3 || strncmp (endpoint, "tcp", 3) != 0) {
        *error = zsys_sprintf ("\"%s\": unknown transport (tcp, ipc or inproc)", endpoint);
        return -1;
    }
    const char *colon = strrchr (address, ':');
    const char *port = colon ? colon + 1 : NULL;
    bool valid = colon && colon > address && *port;
    if (valid && strneq (port, "*")) {
        char *end = NULL;
        unsigned long number = strtoul (port, &end, 10);
        valid = isdigit ((unsigned char) *port) && *end == 0 && number <= S_PORT_MAX;
    }
    if (!valid) {
        *error = zsys_sprintf ("\"%s\": expected tcp://HOST:PORT (a port number or *)", endpoint);
        return -1;
    }
    return 0;
}

int
qt_transport_connect (zsock_t *sub, const char *endpoint, char **error)
{
    if (zsock_connect (sub, "%s", endpoint) == -1) {
        *error = zsys_sprintf ("cannot connect to %s: %s", endpoint, zmq_strerror (zmq_errno ()));
        return -1;
    }
    return 0;
}

zsock_t *
qt_transport_subscriber (const char *const *endpoints, const char *const *topics,
                         int64_t maxmsgsize, char **error)
{
    *error = NULL;
    zsock_t *sub = zsock_new (ZMQ_SUB);
    assert (sub);
    zsock_set_rcvhwm (sub, QT_TRANSPORT_RCVHWM);
    zsock_set_linger (sub, 0);
    if (maxmsgsize > 0)
        zsock_set_maxmsgsize (sub, (int) maxmsgsize);
    for (size_t i = 0; topics && topics [i]; i++) {
        assert (*topics [i]);   //  the empty subscription would include eval
        zsock_set_subscribe (sub, topics [i]);
    }
    for (size_t i = 0; endpoints && endpoints [i]; i++)
        if (qt_transport_connect (sub, endpoints [i], error)) {
            zsock_destroy (&sub);
            return NULL;
        }
    return sub;
}

int
qt_transport_send (zsock_t *pub, const char *topic, zframe_t **frame_p)
{
    zframe_t *topic_frame = zframe_new (topic, strlen (topic));
    if (zframe_send (&topic_frame, pub, ZFRAME_MORE | ZFRAME_DONTWAIT) == -1) {
        zframe_destroy (&topic_frame);
        zframe_destroy (frame_p);
        return -1;
    }
    return zframe_send (frame_p, pub, ZFRAME_DONTWAIT);
}

int
qt_transport_recv (zsock_t *sub, char **topic, zframe_t **frame)
{
    *topic = NULL;
    *frame = NULL;
    zmsg_t *msg = zmsg_recv (sub);
    if (!msg)
        return -1;
    if (zmsg_size (msg) != 2) {
        zmsg_destroy (&msg);
        return -1;
    }
    *topic = zmsg_popstr (msg);
    *frame = zmsg_pop (msg);
    zmsg_destroy (&msg);
    return 0;
}

void
qt_transport_test (bool verbose)
{
    if (verbose)
        printf (" * qt_transport: ");
    char *endpoint = NULL, *error = NULL;
    //  Endpoint forms, judged without binding anything
    const char *good [] = { "tcp://127.0.0.1:*", "tcp://0.0.0.0:7102", "tcp://[::1]:9",
                            "tcp://eth0:7102", "ipc:///run/quintet/x", "inproc://a", NULL };
    const char *bad [] = { "nonsense", "tcp://", "tcp://127.0.0.1", "tcp://:7102",
                           "tcp://127.0.0.1:x", "tcp://127.0.0.1:65536", "udp://1.2.3.4:5", NULL };
    for (const char **e = good; *e; e++)
        QT_CHECK (qt_transport_check_endpoint (*e, &error) == 0 && !error);
    for (const char **e = bad; *e; e++) {
        QT_CHECK (qt_transport_check_endpoint (*e, &error) == -1 && strstr (error, *e));
        zstr_free (&error);
    }
    zsock_t *pub = qt_transport_publisher ("tcp://127.0.0.1:*", &endpoint, &error);
    QT_CHECK (pub && endpoint && !error);
    QT_CHECK (strneq (endpoint, "tcp://127.0.0.1:*"));
    const char *endpoints [] = { endpoint, NULL };
    const char *topics [] = { "obs", NULL };
    zsock_t *sub = qt_transport_subscriber (endpoints, topics, 0, &error);
    QT_CHECK (sub);

    //  A second bind on the same port fails with a clear error
    zsock_t *clash = qt_transport_publisher (endpoint, &endpoint, &error);
    QT_CHECK (!clash && error && strstr (error, "cannot bind"));
    zstr_free (&error);

    //  Slow joiner: publish until the subscription has propagated
    char *topic = NULL;
    zframe_t *frame = NULL;
    zpoller_t *poller = zpoller_new (sub, NULL);
    bool received = false;
    for (int attempt = 0; attempt < 100 && !received; attempt++) {
        zframe_t *other = zframe_new ("x", 1);
        QT_CHECK (qt_transport_send (pub, "eval", &other) == 0);
        zframe_t *out = zframe_new ("hello", 5);
        QT_CHECK (qt_transport_send (pub, "obs", &out) == 0);
        if (zpoller_wait (poller, 20) == sub) {
            QT_CHECK (qt_transport_recv (sub, &topic, &frame) == 0);
            //  Only the subscribed topic arrives
            QT_CHECK (streq (topic, "obs"));
            QT_CHECK (zframe_streq (frame, "hello"));
            zstr_free (&topic);
            zframe_destroy (&frame);
            received = true;
        }
    }
    QT_CHECK (received);

    //  A one-frame message is refused and consumed
    zsock_t *raw = zsock_new (ZMQ_PUB);
    int port = zsock_bind (raw, "tcp://127.0.0.1:*");
    QT_CHECK (port > 0);
    QT_CHECK (zsock_connect (sub, "tcp://127.0.0.1:%d", port) == 0);
    bool refused = false;
    for (int attempt = 0; attempt < 100 && !refused; attempt++) {
        zstr_send (raw, "obs-only-one-frame");
        if (zpoller_wait (poller, 20) == sub) {
            QT_CHECK (qt_transport_recv (sub, &topic, &frame) == -1);
            QT_CHECK (!topic && !frame);
            refused = true;
        }
    }
    QT_CHECK (refused);
    zsock_destroy (&raw);
    zpoller_destroy (&poller);
    zsock_destroy (&sub);
    zsock_destroy (&pub);
    zstr_free (&endpoint);
    if (verbose)
        printf ("OK\n");
}
