/*  qt_stage_loop: the stage's actor on a zloop: readers for the SUB sockets
    of upstream messages, the control channel and the catch-up peers;
    timers for quorum deadlines, re-sends, status and flood pauses; the
    actor's pipe ($TERM, STATUS).
*/
#include "qt_stage_internal.h"

static int s_on_resume (zloop_t *loop, int timer_id, void *arg);

//  What one upstream endpoint may cost: QT_STAGE_ENDPOINT_RATE messages a
//  second read and verified. Over that, it is not read, nor polled, until
//  a quarter of its burst has refilled: what it sends meanwhile queues up
//  to the high-water marks and is dropped by ZeroMQ, costing us nothing.
//  An honest replica sends a message per tick and a few re-sends.
static void
s_pause (qt_stage_t *self, qt_stage_endpoint_t *endpoint, int64_t now_ms)
{
    int64_t pause_ms = (int64_t) (QT_STAGE_ENDPOINT_BURST / 4 * 1000 / QT_STAGE_ENDPOINT_RATE);
    endpoint->paused_until = now_ms + pause_ms;
    zloop_reader_end (self->loop, endpoint->sub);
    zloop_timer (self->loop, (size_t) pause_ms, 1, s_on_resume, endpoint);
    self->paused++;
    char *peer = zsys_sprintf ("%s-%u", self->role->upstream [endpoint->upstream].role, endpoint->replica);
    uint64_t suppressed = 0;
    if (qt_ratelimit_pass (self->drop_log, QT_STAGE_THROTTLED, now_ms, &suppressed))
        qt_log_event (LOG_WARNING, QT_MSG_MESSAGE_DROPPED, UINT64_MAX, peer, QT_STAGE_THROTTLED,
                      "the endpoint of %s sends more than %d messages a second: not read for %" PRId64
                      " ms (%" PRIu64 " more pauses since last report)", peer, QT_STAGE_ENDPOINT_RATE,
                      pause_ms, suppressed);
    zstr_free (&peer);
}

//  Drains what is queued before deciding, so a burst costs one pass: one
//  message from each readable endpoint in turn (a flooding one gets its
//  turn, not the loop), QT_STAGE_DRAIN_MAX in all, so a flood cannot keep
//  the loop here
static void
s_drain (qt_stage_t *self, int64_t now_ms)
{
    int drained = 0;
    bool took = true;
    while (took && drained < QT_STAGE_DRAIN_MAX) {
        took = false;
        for (size_t k = 0; k < self->subs && drained < QT_STAGE_DRAIN_MAX; k++) {
            qt_stage_endpoint_t *endpoint = &self->sub [k];
            if (endpoint->paused_until || !(zsock_events (endpoint->sub) & ZMQ_POLLIN))
                continue;
            if (qt_stage_allowance_take (&endpoint->budget, QT_STAGE_ENDPOINT_RATE, QT_STAGE_ENDPOINT_BURST, now_ms)) {
                qt_stage_receive (self, endpoint, now_ms);
                drained++;
                took = true;
            }
            else
                s_pause (self, endpoint, now_ms);
        }
    }
}

// -- the actor's loop ---------------------------------------------------------

static int s_on_resend (zloop_t *loop, int timer_id, void *arg);
static int s_on_deadline (zloop_t *loop, int timer_id, void *arg);
static int s_on_catchup (zloop_t *loop, int timer_id, void *arg);

//  A one-shot timer to fire at at_ms (now_ms when past), replacing the one
//  armed before unless it fires then already
static void
s_arm (qt_stage_t *self, int *timer, int64_t *armed_at, int64_t at_ms, int64_t now_ms,
       zloop_timer_fn handler)
{
    if (*timer >= 0 && *armed_at == at_ms)
        return;
    if (*timer >= 0)
        zloop_timer_end (self->loop, *timer);
    *timer = zloop_timer (self->loop, (size_t) MAX (at_ms - now_ms, 0), 1, handler, self);
    *armed_at = at_ms;
}

//  The timers for what is due next: a re-send once resend_ms pass without
//  progress, the earliest quorum deadline, catch-up's next step
static void
s_arm_timers (qt_stage_t *self, int64_t now_ms)
{
    int64_t quiet_since = MAX (self->last_progress_ms, self->last_resend_ms);
    s_arm (self, &self->resend_timer, &self->resend_at, quiet_since + self->resend_ms, now_ms,
           s_on_resend);
    int64_t deadline = -1;
    for (size_t i = 0; i < self->role->upstreams; i++) {
        int64_t left = qt_quorum_timeout (self->quorum [i], now_ms);
        if (left >= 0 && (deadline < 0 || left < deadline))
            deadline = left;
    }
    if (deadline >= 0)
        s_arm (self, &self->deadline_timer, &self->deadline_at, now_ms + deadline, now_ms,
               s_on_deadline);
    int64_t catching_up = qt_catchup_timeout (self->catchup, now_ms);
    if (catching_up >= 0)
        s_arm (self, &self->catchup_timer, &self->catchup_at, now_ms + catching_up, now_ms,
               s_on_catchup);
}

//  After anything happened: control requests served (on every pass,
//  whatever woke the loop: under a flood the SUB sockets are always
//  readable), every ready tick processed, catch-up's step, the timers
//  re-armed. -1 ends the loop on a fatal error of the role.
static int
s_pass (qt_stage_t *self, int64_t now_ms)
{
    for (int served = 0; self->control && served < QT_STAGE_DRAIN_MAX
         && (zsock_events (self->control) & ZMQ_POLLIN); served++)
        qt_stage_control_serve (self, now_ms);
    int rc = qt_stage_process_ready (self, now_ms);
    if (rc == 0 && self->catchup)
        rc = qt_catchup_run (self->catchup, now_ms);
    if (rc) {
        self->rc = -1;
        return -1;
    }
    s_arm_timers (self, now_ms);
    return 0;
}

static int
s_on_upstream (zloop_t *loop, zsock_t *reader, void *arg)
{
    (void) loop; (void) reader;
    qt_stage_t *self = (qt_stage_t *) arg;
    int64_t now_ms = zclock_mono ();
    s_drain (self, now_ms);
    return s_pass (self, now_ms);
}

static int
s_on_control (zloop_t *loop, zsock_t *reader, void *arg)
{
    (void) loop; (void) reader;
    qt_stage_t *self = (qt_stage_t *) arg;
    return s_pass (self, zclock_mono ());
}

static int
s_on_peer (zloop_t *loop, zsock_t *reader, void *arg)
{
    (void) loop;
    qt_stage_t *self = (qt_stage_t *) arg;
    int64_t now_ms = zclock_mono ();
    qt_catchup_receive (self->catchup, reader, now_ms);
    return s_pass (self, now_ms);
}

//  An endpoint's pause is over: read it again
static int
s_on_resume (zloop_t *loop, int timer_id, void *arg)
{
    (void) timer_id;
    qt_stage_endpoint_t *endpoint = (qt_stage_endpoint_t *) arg;
    qt_stage_t *self = endpoint->stage;
    endpoint->paused_until = 0;
    zloop_reader (loop, endpoint->sub, s_on_upstream, self);
    return s_pass (self, zclock_mono ());
}

static int
s_on_resend (zloop_t *loop, int timer_id, void *arg)
{
    (void) loop; (void) timer_id;
    qt_stage_t *self = (qt_stage_t *) arg;
    int64_t now_ms = zclock_mono ();
    self->resend_timer = -1;
    if (now_ms - MAX (self->last_progress_ms, self->last_resend_ms) >= self->resend_ms) {
        qt_stage_resend (self, now_ms);
        self->last_resend_ms = now_ms;
    }
    return s_pass (self, now_ms);
}

static int
s_on_deadline (zloop_t *loop, int timer_id, void *arg)
{
    (void) loop; (void) timer_id;
    qt_stage_t *self = (qt_stage_t *) arg;
    self->deadline_timer = -1;
    return s_pass (self, zclock_mono ());
}

static int
s_on_catchup (zloop_t *loop, int timer_id, void *arg)
{
    (void) loop; (void) timer_id;
    qt_stage_t *self = (qt_stage_t *) arg;
    self->catchup_timer = -1;
    return s_pass (self, zclock_mono ());
}

static int
s_on_status (zloop_t *loop, int timer_id, void *arg)
{
    (void) loop; (void) timer_id;
    qt_stage_t *self = (qt_stage_t *) arg;
    qt_stage_status_tick (self, zclock_mono ());
    return 0;
}

//  STATUS: the packed control reply (unsigned: the pipe is in-process)
//  and the STATUS= line
static void
s_pipe_status (qt_stage_t *self)
{
    int64_t now_ms = zclock_mono ();
    zframe_t *packed = qt_stage_control_packed (self, now_ms);
    qt_stage_status_t status;
    qt_stage_status_fill (self, now_ms, &status);
    char line [QT_STAGE_STATUS_LINE];
    qt_stage_status_line (&status, line, sizeof line);
    zmsg_t *msg = zmsg_new ();
    zmsg_append (msg, &packed);
    zmsg_addstr (msg, line);
    zmsg_send (&msg, self->pipe);
}

static int
s_on_pipe (zloop_t *loop, zsock_t *pipe, void *arg)
{
    (void) loop;
    qt_stage_t *self = (qt_stage_t *) arg;
    char *command = zstr_recv (pipe);
    if (!command)
        return -1;          //  interrupted
    int rc = 0;
    if (streq (command, "$TERM")) {
        self->terminated = true;
        rc = -1;
    }
    else
    if (streq (command, "STATUS"))
        s_pipe_status (self);
    else
        qt_log (LOG_WARNING, "stage actor: unknown command \"%s\"", command);
    zstr_free (&command);
    return rc;
}

static int
s_run (qt_stage_t *self, zsock_t *pipe)
{
    zloop_t *loop = self->loop = zloop_new ();
    self->pipe = pipe;
    self->resend_timer = self->deadline_timer = self->catchup_timer = -1;
    zloop_reader (loop, pipe, s_on_pipe, self);
    for (size_t k = 0; k < self->subs; k++) {
        self->sub [k].stage = self;
        zloop_reader (loop, self->sub [k].sub, s_on_upstream, self);
    }
    if (self->control)
        zloop_reader (loop, self->control, s_on_control, self);
    if (self->catchup)
        qt_catchup_read_on (self->catchup, loop, s_on_peer, self);
    int64_t now_ms = zclock_mono ();
    self->last_progress_ms = now_ms;
    self->last_resend_ms = now_ms;
    self->last_status_ms = now_ms;
    //  Ping at least twice per watchdog interval
    if (self->watchdog_usec > 0 && self->status_ms > (int64_t) (self->watchdog_usec / 2000))
        self->status_ms = MAX (1, (int64_t) (self->watchdog_usec / 2000));
    self->status_timer = zloop_timer (loop, (size_t) self->status_ms, 0, s_on_status, self);
    if (self->role->start && self->role->start (self->state, self)) {
        zloop_destroy (&self->loop);
        return -1;
    }
    qt_log_event (LOG_NOTICE, QT_MSG_STARTED, UINT64_MAX, NULL, NULL,
                  "quintet-%s replica %u publishing %s on %s", self->role->role, self->replica,
                  self->role->topic, self->endpoint);
    qt_stage_status_tick (self, now_ms);        //  READY=1 at once if there is nothing to wait for
    int rc = s_pass (self, now_ms);
    if (rc == 0)
        zloop_start (loop);
    zloop_destroy (&self->loop);
    return self->rc;
}

void
qt_stage_actor (zsock_t *pipe, void *stage)
{
    qt_stage_t *self = (qt_stage_t *) stage;
    zsock_signal (pipe, 0);
    self->rc = s_run (self, pipe);
    if (self->terminated)
        return;
    //  Not asked to stop ($TERM), or asked and already gone: say so, and
    //  wait for $TERM (zactor_destroy), answering STATUS meanwhile
    zstr_send (pipe, "STOPPED");
    while (true) {
        char *command = zstr_recv (pipe);
        if (!command) {
            if (zmq_errno () == EINTR)
                continue;
            break;
        }
        bool term = streq (command, "$TERM");
        if (streq (command, "STATUS"))
            s_pipe_status (self);
        zstr_free (&command);
        if (term)
            break;
    }
}
