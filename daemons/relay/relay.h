/*  relay: the dashboard endpoint as an actor (zactor + zloop).

    One SUB socket reads the topics of the topology's dashboard line
    (common/topology.txt) from the replicas that publish them; every
    message goes through the stages' receive path (qt_verifier: size cap,
    signature by a key of the topic's publishing role, replay window,
    payload values) and, verified, its ORIGINAL [topic][SignedMessage]
    frames are re-published untouched on one XPUB socket, so a dashboard
    checks the publishers' own signatures and need not trust the relay.
    What fails is a counted drop (quintet_relay_dropped_total{cause}),
    logged once per cause per interval.

    The pipeline never waits for the relay: its SUB reads from PUB sockets
    that drop when it falls behind, and its XPUB has a small send
    high-water mark; a send that finds a subscriber's queue full is counted
    (cause subscriber-full, once per stall: XPUB_NODROP makes the send
    fail, it is then sent lossy to those with room). A new subscription
    gets each sender's last value from the cache (relay_book); conflated
    topics go out at most once per sender and interval, the latest.

    Commands on the pipe: $TERM. On start the actor sends one string:
    "READY <endpoint>" once its sockets are bound, or "ERROR <text>" (it
    then waits for $TERM).
*/
#ifndef RELAY_H_INCLUDED
#define RELAY_H_INCLUDED

#include <stdint.h>
#include <czmq.h>
#include "qt_keys.h"
#include "qt_metrics.h"

#define RELAY_SNDHWM            16          //  messages queued per subscriber before it loses some
#define RELAY_SNDBUF            (64 * 1024) //  kernel send buffer per subscriber, bytes: keeps the queue small
#define RELAY_RCVHWM            100000      //  upstream messages queued before the PUB side drops
#define RELAY_CONFLATE_MS       500         //  default conflation interval
#define RELAY_DRAIN_MAX         1000        //  upstream messages taken per pass of the loop
#define RELAY_STATUS_MS         1000        //  STATUS= and watchdog
#define RELAY_LOG_STATUS_EVERY  10          //  a status line in the log every this many STATUS=
#define RELAY_DROP_LOG_MS       10000       //  one log line per drop cause per interval
#define RELAY_FLUSH_MIN_MS      10          //  how often held messages are looked at:
#define RELAY_FLUSH_MAX_MS      200         //  a fifth of the interval, within these bounds

typedef struct {
    const char *bind;               //  the dashboard endpoint (XPUB)
    zlist_t *endpoints;             //  upstream endpoints (char *), borrowed
    qt_trust_t *trust;              //  borrowed, outlives the actor
    qt_metrics_t *metrics;          //  borrowed: the relay registers its families there
    size_t batch;                   //  B to check, 0 for none
    int64_t conflate_ms;            //  at most one message per sender of a conflated topic per interval
    int sndhwm;
    int sndbuf;
} relay_options_t;

//  The actor: zactor_new (relay_actor, &options); options must outlive it
void relay_actor (zsock_t *pipe, void *args);

//  The actor in this process on inproc endpoints: forwarding byte for
//  byte, drops counted, conflation, the last-value cache
void relay_test (bool verbose);

#endif
