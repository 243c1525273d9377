/*  fuzz_wire: raw bytes at the ZMTP level, into libzmq and the receive path.

    A daemon's sockets are opened as the stage opens them, and a raw peer
    (a plain stream socket, no libzmq) writes the fuzz input to them as
    the bytes of a connection: greeting, handshake commands, frames. The
    first byte picks the socket:

      even    a SUB socket (qt_transport_subscriber, every topic, the
              stage's maxmsgsize) that connects to the raw peer; whatever
              libzmq makes of the bytes goes through qt_transport_recv and
              qt_verifier_open_from (as from one replica's endpoint)
      odd     the control channel's ROUTER socket (linger 0, the stage's
              maxmsgsize), which the raw peer connects to; whatever comes
              out goes through the control verifier and, if it is a status
              request for worldmodel-1, is answered with a signed reply

    Each input is one connection: the peer writes the bytes, half-closes
    (FIN), and reads what libzmq sends back until libzmq closes its side,
    which it does once it has read the end of the stream (or earlier, on a
    protocol error); meanwhile and then, the socket is drained. Every wait
    is bounded (S_WAIT_MS); a wait that ends by its bound is no failure,
    only a crash, a sanitizer finding or a hang is. The transport is ipc://
    (AF_UNIX): the same ZMTP engine as tcp://, without a TIME_WAIT port
    per connection at thousands of connections a second. Sockets are new
    for every input, so an input's outcome does not depend on the previous.

    With FUZZ_WIRE_EXPECT_VERIFIED set (the corpus replay), the process
    fails at exit if no message at all was verified: the seeds are real
    frames in valid ZMTP, so none getting through means the harness, not
    the input, is broken.
*/
#include "fuzz_keys.h"
#include <fcntl.h>
#include <poll.h>
#include <sys/socket.h>
#include <sys/un.h>

int LLVMFuzzerTestOneInput (const uint8_t *data, size_t size);

#define S_WAIT_MS           2000        //  bound on one input's connection
#define S_CONTROL_ROLE      "worldmodel"    //  whom the control socket stands for
#define S_CONTROL_REPLICA   1

static struct {
    char *dir;
    char *peer_path;            //  the raw peer's listening socket (SUB mode)
    int listener;
    uint64_t inputs;
    uint64_t connections;
    uint64_t messages;          //  what libzmq handed over
    uint64_t verified;          //  ... of which verified
    uint64_t answered;          //  control requests answered
} s_wire = { .listener = -1 };

static void
s_report (void)
{
    fprintf (stderr, "fuzz_wire: %" PRIu64 " inputs, %" PRIu64 " connections, %" PRIu64
             " messages out of libzmq, %" PRIu64 " verified, %" PRIu64 " control requests answered\n",
             s_wire.inputs, s_wire.connections, s_wire.messages, s_wire.verified, s_wire.answered);
    if (s_wire.listener >= 0)
        close (s_wire.listener);
    if (s_wire.peer_path)
        unlink (s_wire.peer_path);
    if (s_wire.dir)
        rmdir (s_wire.dir);
    if (getenv ("FUZZ_WIRE_EXPECT_VERIFIED") && s_wire.verified == 0) {
        fprintf (stderr, "fuzz_wire: no message of the seeds was verified: the harness is broken\n");
        _exit (1);
    }
}

static void
s_init (void)
{
    if (s_wire.dir)
        return;
    fuzz_trust ();
    char template [] = "/tmp/quintet-fuzz-wire.XXXXXX";
    QT_CHECK (mkdtemp (template));
    s_wire.dir = strdup (template);
    s_wire.peer_path = zsys_sprintf ("%s/peer", s_wire.dir);
    s_wire.listener = socket (AF_UNIX, SOCK_STREAM | SOCK_CLOEXEC, 0);
    QT_CHECK (s_wire.listener >= 0);
    struct sockaddr_un address = { .sun_family = AF_UNIX };
    QT_CHECK (strlen (s_wire.peer_path) < sizeof address.sun_path);
    strcpy (address.sun_path, s_wire.peer_path);
    QT_CHECK (bind (s_wire.listener, (struct sockaddr *) &address, sizeof address) == 0);
    QT_CHECK (listen (s_wire.listener, 16) == 0);
    atexit (s_report);
}

static int
s_nonblocking (int fd)
{
    int flags = fcntl (fd, F_GETFL, 0);
    return flags < 0 ? -1 : fcntl (fd, F_SETFL, flags | O_NONBLOCK);
}

//  One message from the SUB socket through the receive path
static void
s_receive (zsock_t *sub, qt_verifier_t *verifier)
{
    char *topic = NULL;
    zframe_t *frame = NULL;
    if (qt_transport_recv (sub, &topic, &frame) == 0) {
        s_wire.messages++;
        const char *role = fuzz_role_of_topic (topic);
        qt_drop_cause_t cause = QT_DROP_NONE;
        qt_message_t *message = NULL;
        if (role)       //  else a longer topic with a subscribed prefix: the stage drops it too
            message = qt_verifier_open_from (verifier, topic, role, 1, zframe_data (frame),
                                             zframe_size (frame), &cause);
        QT_CHECK (message ? cause == QT_DROP_NONE && message->payload && message->sender : true);
        if (message)
            s_wire.verified++;
        qt_message_destroy (&message);
    }
    zstr_free (&topic);
    zframe_destroy (&frame);
}

//  One request from the control socket, as the stage's s_control takes it
static void
s_control (zsock_t *router, qt_verifier_t *verifier)
{
    zmsg_t *msg = zmsg_recv (router);
    if (!msg)
        return;
    s_wire.messages++;
    zframe_t *identity = zmsg_pop (msg);
    zframe_t *empty = zmsg_pop (msg);
    zframe_t *frame = zmsg_pop (msg);
    zmsg_destroy (&msg);
    zframe_t *wire = empty ? empty : identity;
    const char *peer = wire ? zframe_meta (wire, "Peer-Address") : NULL;
    (void) peer;
    qt_drop_cause_t cause = QT_DROP_MALFORMED;
    qt_message_t *message = NULL;
    if (identity && empty && frame && zframe_size (empty) == 0)
        message = qt_verifier_open (verifier, QT_CONTROL_TOPIC, QT_CONTROL_ROLE,
                                    zframe_data (frame), zframe_size (frame), &cause);
    if (message)
        s_wire.verified++;
    const Quintet__ControlRequest *request = qt_control_request_of (message);
    if (qt_control_request_for (request, S_CONTROL_ROLE, S_CONTROL_REPLICA)
    &&  streq (request->command, "status")) {
        Quintet__ControlReply reply = QUINTET__CONTROL_REPLY__INIT;
        reply.nonce = request->nonce;
        reply.role = S_CONTROL_ROLE;
        reply.replica = S_CONTROL_REPLICA;
        reply.state = "running";
        Quintet__ControlMessage body = QUINTET__CONTROL_MESSAGE__INIT;
        body.reply = &reply;
        zframe_t *answer = qt_signer_seal (fuzz_signer (S_CONTROL_ROLE), QUINTET__PAYLOAD_TYPE__CONTROL, 0,
                                           &body.base);
        //  To a peer that may be gone, half-closed or never reading
        if (zframe_send (&identity, router, ZFRAME_MORE | ZFRAME_DONTWAIT) == 0
        &&  zframe_send (&empty, router, ZFRAME_MORE | ZFRAME_DONTWAIT) == 0
        &&  zframe_send (&answer, router, ZFRAME_DONTWAIT) == 0)
            s_wire.answered++;
        zframe_destroy (&answer);
    }
    qt_message_destroy (&message);
    zframe_destroy (&identity);
    zframe_destroy (&empty);
    zframe_destroy (&frame);
}

//  Writes data to fd and half-closes, reads until libzmq closes its side,
//  and drains the libzmq socket all along and once more at the end
//
//  A ZMTP 3 peer sends nothing past its greeting before it has the other
//  side's (the NULL mechanism's READY follows the greeting exchange), and
//  libzmq 4.3 relies on it: a greeting and what follows it arriving in one
//  read stall the handshake (the rest is not read until more comes). So,
//  when the input starts as a ZMTP 3 signature and version, the raw peer
//  writes the 64 bytes of greeting, waits for libzmq's greeting and first
//  command (more than 64 bytes read) or its close, then writes the rest.
#define S_GREETING_SIZE 64

static size_t
s_first_write (const uint8_t *data, size_t size)
{
    if (size > S_GREETING_SIZE && data [0] == 0xff && (data [9] & 1) && data [10] >= 3)
        return S_GREETING_SIZE;
    return size;
}

static void
s_converse (int fd, zsock_t *socket, bool control, qt_verifier_t *verifier,
            const uint8_t *data, size_t size)
{
    size_t written = 0, received = 0, first = s_first_write (data, size);
    bool half_closed = false, closed = false;
    int64_t deadline = zclock_mono () + S_WAIT_MS;
    if (size == 0) {
        shutdown (fd, SHUT_WR);
        half_closed = true;
    }
    while (!closed) {
        int64_t left = deadline - zclock_mono ();
        if (left <= 0)
            break;
        //  Past the greeting only once libzmq answered it
        size_t limit = written < first || received > S_GREETING_SIZE ? (written < first ? first : size) : written;
        bool writing = !half_closed && written < limit;
        zmq_pollitem_t items [] = {
            { zsock_resolve (socket), 0, ZMQ_POLLIN, 0 },
            { NULL, fd, (short) (ZMQ_POLLIN | (writing ? ZMQ_POLLOUT : 0)), 0 }
        };
        if (zmq_poll (items, 2, (long) left) < 0)
            break;
        if (items [0].revents & ZMQ_POLLIN) {
            if (control)
                s_control (socket, verifier);
            else
                s_receive (socket, verifier);
        }
        if (writing && (items [1].revents & ZMQ_POLLOUT)) {
            ssize_t sent = send (fd, data + written, limit - written, MSG_NOSIGNAL);
            if (sent > 0)
                written += (size_t) sent;
            if ((sent < 0 && errno != EAGAIN && errno != EINTR) || written == size) {
                shutdown (fd, SHUT_WR);
                half_closed = true;
            }
        }
        if (items [1].revents & (ZMQ_POLLIN | ZMQ_POLLERR)) {
            uint8_t sink [4096];
            ssize_t got = recv (fd, sink, sizeof sink, 0);
            if (got > 0)
                received += (size_t) got;
            if (got == 0 || (got < 0 && errno != EAGAIN && errno != EINTR))
                closed = true;
        }
    }
    //  What libzmq decoded before it closed is in the socket's pipe
    for (int rounds = 0; rounds < 100000; rounds++) {
        zmq_pollitem_t item = { zsock_resolve (socket), 0, ZMQ_POLLIN, 0 };
        if (zmq_poll (&item, 1, 0) <= 0 || !(item.revents & ZMQ_POLLIN))
            break;
        if (control)
            s_control (socket, verifier);
        else
            s_receive (socket, verifier);
    }
}

//  The raw peer listens; the daemon's SUB socket connects to it
static void
s_subscriber (const uint8_t *data, size_t size)
{
    char *error = NULL;
    zsock_t *sub = qt_transport_subscriber (NULL, fuzz_topics, (int64_t) QT_MESSAGE_SIZE_CAP * 2, &error);
    QT_CHECK (sub);
    //  One connection per input, no second: not -1 (no reconnection), with
    //  which libzmq ends the session and drops what it had not handed over
    zsock_set_reconnect_ivl (sub, 3600 * 1000);
    char *endpoint = zsys_sprintf ("ipc://%s", s_wire.peer_path);
    QT_CHECK (qt_transport_connect (sub, endpoint, &error) == 0);
    zstr_free (&endpoint);
    struct pollfd pending = { .fd = s_wire.listener, .events = POLLIN };
    int fd = poll (&pending, 1, S_WAIT_MS) == 1 ? accept4 (s_wire.listener, NULL, NULL, SOCK_CLOEXEC) : -1;
    if (fd >= 0 && s_nonblocking (fd) == 0) {
        s_wire.connections++;
        qt_verifier_t *verifier = qt_verifier_new (fuzz_trust (), FUZZ_BATCH);
        //  The seeds are real frames re-signed some time ago: past freshness
        //  there is the replay window, the payload decode and validation
        qt_verifier_set_max_age (verifier, 0);
        s_converse (fd, sub, false, verifier, data, size);
        qt_verifier_destroy (&verifier);
    }
    if (fd >= 0)
        close (fd);
    zsock_destroy (&sub);
}

//  The control socket binds; the raw peer connects to it
static void
s_router (const uint8_t *data, size_t size)
{
    char *path = zsys_sprintf ("%s/control-%" PRIu64, s_wire.dir, s_wire.inputs);
    zsock_t *router = zsock_new (ZMQ_ROUTER);
    QT_CHECK (router);
    zsock_set_linger (router, 0);
    zsock_set_maxmsgsize (router, QT_MESSAGE_SIZE_CAP);
    int fd = -1;
    if (zsock_bind (router, "ipc://%s", path) == 0) {
        fd = socket (AF_UNIX, SOCK_STREAM | SOCK_CLOEXEC, 0);
        struct sockaddr_un address = { .sun_family = AF_UNIX };
        QT_CHECK (strlen (path) < sizeof address.sun_path);
        strcpy (address.sun_path, path);
        if (fd >= 0 && connect (fd, (struct sockaddr *) &address, sizeof address) == 0
        &&  s_nonblocking (fd) == 0) {
            s_wire.connections++;
            qt_verifier_t *verifier = qt_control_verifier_new (fuzz_trust ());
            qt_verifier_set_max_age (verifier, 0);
            s_converse (fd, router, true, verifier, data, size);
            qt_verifier_destroy (&verifier);
        }
    }
    if (fd >= 0)
        close (fd);
    zsock_destroy (&router);
    unlink (path);
    zstr_free (&path);
}

int
LLVMFuzzerTestOneInput (const uint8_t *data, size_t size)
{
    if (size < 1)
        return 0;
    s_init ();
    s_wire.inputs++;
    if (data [0] & 1)
        s_router (data + 1, size - 1);
    else
        s_subscriber (data + 1, size - 1);
    return 0;
}
