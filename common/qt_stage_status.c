/*  qt_stage_status: the renderings of one stage snapshot (see the header).
*/
#include "quintet.h"
#include "qt_stage_status.h"
#include "qt_selftest.h"

void
qt_stage_status_line (const qt_stage_status_t *self, char *line, size_t size)
{
    char upstreams [512] = "";
    size_t used = 0;
    for (size_t i = 0; i < self->upstreams && used < sizeof upstreams; i++) {
        const qt_stage_upstream_status_t *up = &self->upstream [i];
        used += (size_t) snprintf (upstreams + used, sizeof upstreams - used,
                                   "%s%s %u/%u up, %u heard%s", i ? ", " : "", up->role, up->up,
                                   up->replicas, up->heard, up->holding ? " (holding)" : "");
    }
    char control [64] = "";
    if (self->control_dropped > 0)
        snprintf (control, sizeof control, ", %" PRIu64 " control requests dropped",
                  self->control_dropped);
    snprintf (line, size, "%s; tick %" PRIu64 ", %" PRIu64 " ticks, upstream %s, %" PRIu64
              " accepted, %" PRIu64 " dropped, %" PRIu64 " re-sent%s", self->state,
              self->tick, self->ticks, upstreams, self->accepted, self->dropped, self->resends,
              control);
}

void
qt_stage_status_summary (const qt_stage_status_t *self, char *line, size_t size,
                         char *causes, size_t causes_size)
{
    snprintf (line, size, "stopping after %" PRIu64 " ticks: %" PRIu64 " published, %" PRIu64
              " accepted, %" PRIu64 " dropped, %" PRIu64 " re-sent", self->ticks, self->published,
              self->accepted, self->dropped, self->resends);
    size_t used = 0;
    causes [0] = 0;
    for (int cause = QT_DROP_NONE + 1; cause < QT_DROP_CAUSES; cause++)
        if (self->drops [cause] && used < causes_size)
            used += (size_t) snprintf (causes + used, causes_size - used, " %s=%" PRIu64,
                                       qt_drop_cause_name ((qt_drop_cause_t) cause),
                                       self->drops [cause]);
}

static void
s_add_drop (Quintet__ControlReply *reply, qt_stage_reply_storage_t *storage, char *cause,
            uint64_t count)
{
    Quintet__DropCount *drop = &storage->drops [reply->n_drops];
    quintet__drop_count__init (drop);
    drop->cause = cause;
    drop->count = count;
    storage->drop_p [reply->n_drops++] = drop;
}

void
qt_stage_status_reply (const qt_stage_status_t *self, Quintet__ControlReply *reply,
                       qt_stage_reply_storage_t *storage)
{
    reply->role = (char *) self->role;
    reply->replica = self->replica;
    reply->state = (char *) self->state;
    reply->tick = self->tick;
    reply->ticks = self->ticks;
    reply->accepted = self->accepted;
    reply->resends = self->resends;
    reply->endpoint = (char *) self->endpoint;
    for (size_t i = 0; i < self->upstreams; i++) {
        const qt_stage_upstream_status_t *up = &self->upstream [i];
        Quintet__UpstreamStatus *out = &storage->upstreams [i];
        quintet__upstream_status__init (out);
        out->role = (char *) up->role;
        out->replicas = up->replicas;
        out->faults = up->faults;
        out->up = up->up;
        out->heard = up->heard;
        //  Reputation: the ladder's standing and the weight of the last tick
        for (uint32_t r = 0; r < up->replicas; r++) {
            storage->replica_up [i][r] = up->replica_up [r];
            storage->standing [i][r] = (char *) up->standing [r];
            storage->reason [i][r] = (char *) up->reason [r];
            storage->weight [i][r] = up->weight [r];
        }
        out->n_replica_up = out->n_replica_status = out->n_replica_reason
                          = out->n_replica_weight = up->replicas;
        out->replica_up = storage->replica_up [i];
        out->replica_status = storage->standing [i];
        out->replica_reason = storage->reason [i];
        out->replica_weight = storage->weight [i];
        storage->upstream_p [i] = out;
    }
    reply->n_upstreams = self->upstreams;
    reply->upstreams = storage->upstream_p;
    //  Drops by cause: the data path's, then the control channel's under
    //  "control/<cause>" (ControlReply has one list; quintetctl splits it)
    reply->n_drops = 0;
    for (int c = QT_DROP_NONE + 1; c < QT_DROP_CAUSES; c++)
        if (self->drops [c])
            s_add_drop (reply, storage, (char *) qt_drop_cause_name ((qt_drop_cause_t) c),
                        self->drops [c]);
    for (int c = QT_DROP_NONE + 1; c < QT_DROP_CAUSES; c++) {
        if (!self->control_drops [c])
            continue;
        snprintf (storage->control_cause [c], sizeof storage->control_cause [c], "%s%s",
                  QT_CONTROL_DROP_PREFIX, qt_drop_cause_name ((qt_drop_cause_t) c));
        s_add_drop (reply, storage, storage->control_cause [c], self->control_drops [c]);
    }
    if (self->control_throttled > 0)
        s_add_drop (reply, storage, QT_CONTROL_DROP_PREFIX QT_STAGE_THROTTLED,
                    self->control_throttled);
    reply->drops = storage->drop_p;
}

void
qt_stage_status_test (bool verbose)
{
    if (verbose)
        printf (" * qt_stage_status: ");
    qt_stage_status_t status;
    memset (&status, 0, sizeof status);
    status.role = "worldmodel";
    status.replica = 2;
    status.endpoint = "tcp://127.0.0.1:5555";
    status.state = "running";
    status.tick = 42;
    status.ticks = 41;
    status.published = 50;
    status.accepted = 120;
    status.drops [QT_DROP_REPLAY] = 3;
    status.drops [QT_DROP_STALE] = 2;
    status.dropped = 5;
    status.resends = 9;
    status.control_drops [QT_DROP_BAD_SIGNATURE] = 1;
    status.control_throttled = 2;
    status.control_dropped = 3;
    status.upstreams = 1;
    qt_stage_upstream_status_t *up = &status.upstream [0];
    up->role = "collector";
    up->replicas = 3;
    up->faults = 1;
    up->up = 2;
    up->heard = 3;
    up->holding = true;
    for (uint32_t r = 0; r < 3; r++) {
        up->replica_up [r] = r != 1;
        up->standing [r] = "trusted";
        up->reason [r] = "";
        up->weight [r] = r == 1 ? 0 : 1;
    }

    //  The line the tests and operators read (tests/ops/test_notify.py)
    char line [QT_STAGE_STATUS_LINE];
    qt_stage_status_line (&status, line, sizeof line);
    QT_CHECK (streq (line, "running; tick 42, 41 ticks, upstream collector 2/3 up, 3 heard (holding), "
                           "120 accepted, 5 dropped, 9 re-sent, 3 control requests dropped"));
    char causes [QT_STAGE_STATUS_CAUSES];
    qt_stage_status_summary (&status, line, sizeof line, causes, sizeof causes);
    QT_CHECK (streq (line, "stopping after 41 ticks: 50 published, 120 accepted, 5 dropped, 9 re-sent"));
    QT_CHECK (streq (causes, " replay=3 stale=2"));

    //  The control reply carries the same counters, and survives a round trip
    Quintet__ControlReply reply = QUINTET__CONTROL_REPLY__INIT;
    qt_stage_reply_storage_t *storage = (qt_stage_reply_storage_t *) zmalloc (sizeof *storage);
    qt_stage_status_reply (&status, &reply, storage);
    size_t size = quintet__control_reply__get_packed_size (&reply);
    uint8_t *bytes = (uint8_t *) malloc (size);
    QT_CHECK (bytes);
    quintet__control_reply__pack (&reply, bytes);
    Quintet__ControlReply *back = quintet__control_reply__unpack (NULL, size, bytes);
    QT_CHECK (back);
    QT_CHECK (streq (back->role, "worldmodel") && back->replica == 2 && back->tick == 42);
    QT_CHECK (back->n_upstreams == 1 && back->upstreams [0]->up == 2
              && back->upstreams [0]->n_replica_weight == 3
              && back->upstreams [0]->replica_weight [1] == 0);
    QT_CHECK (back->n_drops == 4);
    QT_CHECK (streq (back->drops [2]->cause, "control/bad-signature"));
    QT_CHECK (streq (back->drops [3]->cause, "control/" QT_STAGE_THROTTLED)
              && back->drops [3]->count == 2);
    quintet__control_reply__free_unpacked (back, NULL);
    free (bytes);
    free (storage);

    //  Nothing dropped: no causes
    memset (status.drops, 0, sizeof status.drops);
    qt_stage_status_summary (&status, line, sizeof line, causes, sizeof causes);
    QT_CHECK (streq (causes, ""));
    if (verbose)
        printf ("OK\n");
}
