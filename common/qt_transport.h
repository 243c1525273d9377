/*  qt_transport: the ZeroMQ sockets of a stage, on czmq.

    Every replica binds one PUB socket and publishes [topic][SignedMessage];
    every consumer connects one SUB socket to all replicas of its upstream
    roles and subscribes to exactly the topics it consumes (never a prefix
    of another topic, never the empty subscription). Binding to
    tcp://127.0.0.1:* picks a free port; the resolved endpoint is returned.
*/
#ifndef QT_TRANSPORT_H_INCLUDED
#define QT_TRANSPORT_H_INCLUDED

#include <czmq.h>

#define QT_TRANSPORT_SNDHWM         1000    //  messages queued per subscriber
#define QT_TRANSPORT_RCVHWM         1000
#define QT_TRANSPORT_LINGER_MS      200     //  on close, time to flush what is queued

//  A PUB socket bound to bind (e.g. "tcp://127.0.0.1:*"). *endpoint gets the
//  resolved endpoint (caller frees). NULL and *error on failure.
zsock_t *qt_transport_publisher (const char *bind, char **endpoint, char **error);

//  A SUB socket connected to every endpoint of a NULL-terminated list and
//  subscribed to every topic of a NULL-terminated list. maxmsgsize bounds
//  what libzmq accepts at all (peers sending more are disconnected).
zsock_t *qt_transport_subscriber (const char *const *endpoints, const char *const *topics,
                                  int64_t maxmsgsize, char **error);

//  Connects an open SUB socket to one more endpoint.
int qt_transport_connect (zsock_t *sub, const char *endpoint, char **error);

//  Whether endpoint has a form ZeroMQ binds or connects (tcp://HOST:PORT
//  with a port number or *, ipc://PATH, inproc://NAME), judged without
//  binding or connecting anything (for --check beside a running replica).
//  0, or -1 and *error (caller frees).
int qt_transport_check_endpoint (const char *endpoint, char **error);

//  Sends [topic][frame]; takes the frame.
int qt_transport_send (zsock_t *pub, const char *topic, zframe_t **frame_p);

//  Receives one message. 0 and topic (caller frees) and frame on success; -1
//  when the message was not two frames (it is consumed and discarded).
int qt_transport_recv (zsock_t *sub, char **topic, zframe_t **frame);

void qt_transport_test (bool verbose);

#endif
