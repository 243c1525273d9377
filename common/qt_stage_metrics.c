/*  qt_stage_metrics: the families every stage exposes on /metrics, and
    their refresh from the status snapshot.
*/
#include "qt_stage_internal.h"

//  Every latency histogram's bounds (the stages' and the world's round trip):
//  0.1 ms steps below 1 ms and 0.2 ms steps to 2 ms, so that a p99 against a
//  2 ms goal can be read off, coarser above
static const double s_seconds_bounds [] = {
    0.0001, 0.0002, 0.0003, 0.0004, 0.0005, 0.0006, 0.0007, 0.0008, 0.0009, 0.001,
    0.0012, 0.0014, 0.0016, 0.0018, 0.002, 0.0025, 0.003, 0.004, 0.005, 0.0075,
    0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1, 2.5, 5, 10
};

const double *
qt_stage_seconds_bounds (size_t *count)
{
    *count = sizeof s_seconds_bounds / sizeof s_seconds_bounds [0];
    return s_seconds_bounds;
}

void
qt_stage_metrics_new (qt_stage_t *self)
{
    qt_metrics_t *m = self->metrics = qt_metrics_new ();
    size_t bounds = sizeof s_seconds_bounds / sizeof s_seconds_bounds [0];
    self->metric [M_INFO] = qt_metrics_gauge (m, "quintet_stage_info",
        "This daemon: role-replica, always 1.", "stage");
    self->metric [M_TICKS] = qt_metrics_counter (m, "quintet_ticks_total",
        "Ticks processed (the world: ticks stepped).", NULL);
    self->metric [M_PROCESS] = qt_metrics_histogram (m, "quintet_tick_process_seconds",
        "Time the role takes to compute and publish one tick.", NULL, s_seconds_bounds, bounds);
    self->metric [M_LATENCY] = qt_metrics_histogram (m, "quintet_tick_latency_seconds",
        "From the first upstream replica's send time of a tick to this stage's output "
        "(network, quorum wait and processing), by upstream role.", "upstream",
        s_seconds_bounds, bounds);
    self->metric [M_PUBLISHED] = qt_metrics_counter (m, "quintet_messages_published_total",
        "Messages published (re-sends included).", NULL);
    self->metric [M_ACCEPTED] = qt_metrics_counter (m, "quintet_messages_accepted_total",
        "Upstream messages that passed the receive path.", NULL);
    self->metric [M_DROPPED] = qt_metrics_counter (m, "quintet_messages_dropped_total",
        "Upstream messages dropped, by cause.", "cause");
    self->metric [M_RESENDS] = qt_metrics_counter (m, "quintet_resends_total",
        "Re-sends of the last output while the pipeline made no progress.", NULL);
    self->metric [M_UP] = qt_metrics_gauge (m, "quintet_upstream_replicas_up",
        "Upstream replicas not marked down, by upstream role.", "upstream");
    self->metric [M_REPLICAS] = qt_metrics_gauge (m, "quintet_upstream_replicas",
        "Upstream replicas configured, by upstream role.", "upstream");
    self->metric [M_LAST_TICK] = qt_metrics_gauge (m, "quintet_last_tick",
        "The last tick this stage published.", NULL);
    self->metric [M_CONTROL_ANSWERED] = qt_metrics_counter (m, "quintet_control_answered_total",
        "Control requests (quintetctl status) answered.", NULL);
    self->metric [M_CONTROL_DROPPED] = qt_metrics_counter (m, "quintet_control_dropped_total",
        "Control requests dropped unanswered, by cause.", "cause");
    self->metric [M_TICK_FAILURES] = qt_metrics_counter (m, "quintet_tick_failures_total",
        "Ticks the role could not complete, so published nothing for, by cause "
        "(durable-log: the collector's append failed).", "cause");
    self->metric [M_PAUSED] = qt_metrics_counter (m, "quintet_upstream_paused_total",
        "Times an upstream endpoint sent more than its budget of messages a second "
        "and was not read for a while.", NULL);
    self->metric [M_CATCHUP] = qt_metrics_counter (m, "quintet_catchup_total",
        "State transfer between the replicas of a role with state: attempts concluded "
        "(agreed: our state was the vouched one; restored: it was not, the vouched one "
        "was restored), given up (failed), and snapshots served to siblings (served).",
        "outcome");
    self->metric [M_LATE] = qt_metrics_counter (m, "quintet_upstream_late_total",
        "Upstream messages for a tick already processed or given up (a replica slower "
        "than the deadline, or a re-send), by upstream role.", "upstream");
    self->metric [M_SKIPPED] = qt_metrics_counter (m, "quintet_upstream_skipped_total",
        "Upstream ticks given up unprocessed (a newer tick completed first, or the "
        "stage resynchronised on replicas far ahead), by upstream role.", "upstream");
    self->metric [M_EVICTED] = qt_metrics_counter (m, "quintet_upstream_evicted_total",
        "Pending upstream ticks evicted from a full quorum window (or left out of it "
        "by the first processed tick), by upstream role.", "upstream");
    self->metric [M_UNAGREED] = qt_metrics_counter (m, "quintet_upstream_unagreed_total",
        "Upstream ticks processed with replicas missing and without f + 1 that agree "
        "(after the agreement wait, upstream/<role>/agree_ms), by upstream role.", "upstream");
    self->metric [M_REWEIGHTED] = qt_metrics_counter (m, "quintet_upstream_reweighted_total",
        "Upstream ticks whose f + 1 agreeing replicas were given full weight over the "
        "reputation's (they held no majority of the weight), by upstream role.", "upstream");
    char *stage = zsys_sprintf ("%s-%u", self->role->role, self->replica);
    qt_metric_set (self->metric [M_INFO], stage, 1);
    zstr_free (&stage);
}

void
qt_stage_metrics_tick (qt_stage_t *self, qt_message_t **inputs [], int64_t started_ns, uint64_t tick)
{
    //  Latency is against the senders' sent_ns, which is CLOCK_REALTIME
    struct timespec ts;
    clock_gettime (CLOCK_REALTIME, &ts);
    int64_t now_ns = (int64_t) ts.tv_sec * 1000000000 + ts.tv_nsec;
    qt_metric_add (self->metric [M_TICKS], NULL, 1);
    qt_metric_observe (self->metric [M_PROCESS], NULL, (double) (zclock_usecs () * 1000 - started_ns) / 1e9);
    (void) tick;        //  quintet_last_tick is set where a tick is published
    for (size_t i = 0; i < self->role->upstreams; i++) {
        int64_t first_ns = INT64_MAX;
        for (uint32_t r = 0; r < qt_quorum_replicas (self->quorum [i]); r++)
            if (inputs [i][r] && (int64_t) inputs [i][r]->envelope->sent_ns < first_ns)
                first_ns = (int64_t) inputs [i][r]->envelope->sent_ns;
        if (first_ns != INT64_MAX)
            qt_metric_observe (self->metric [M_LATENCY], self->role->upstream [i].role,
                               (double) (now_ns - first_ns) / 1e9);
    }
}

//  /metrics, from the snapshot (qt_stage_status_fill)
void
qt_stage_metrics_refresh (qt_stage_t *self, const qt_stage_status_t *status)
{
    qt_metric_set (self->metric [M_PUBLISHED], NULL, (double) status->published);
    qt_metric_set (self->metric [M_ACCEPTED], NULL, (double) status->accepted);
    for (int cause = QT_DROP_NONE + 1; cause < QT_DROP_CAUSES; cause++)
        qt_metric_set (self->metric [M_DROPPED], qt_drop_cause_name ((qt_drop_cause_t) cause),
                       (double) status->drops [cause]);
    qt_metric_set (self->metric [M_PAUSED], NULL, (double) status->paused);
    qt_metric_set (self->metric [M_RESENDS], NULL, (double) status->resends);
    if (status->control) {
        qt_metric_set (self->metric [M_CONTROL_ANSWERED], NULL, (double) status->control_answered);
        for (int cause = QT_DROP_NONE + 1; cause < QT_DROP_CAUSES; cause++)
            qt_metric_set (self->metric [M_CONTROL_DROPPED], qt_drop_cause_name ((qt_drop_cause_t) cause),
                           (double) status->control_drops [cause]);
        qt_metric_set (self->metric [M_CONTROL_DROPPED], QT_STAGE_THROTTLED,
                       (double) status->control_throttled);
    }
    if (status->catchup) {
        qt_metric_set (self->metric [M_CATCHUP], "agreed", (double) status->catchup_agreed);
        qt_metric_set (self->metric [M_CATCHUP], "restored", (double) status->catchup_restored);
        qt_metric_set (self->metric [M_CATCHUP], "failed", (double) status->catchup_failed);
        qt_metric_set (self->metric [M_CATCHUP], "served", (double) status->catchup_served);
    }
    for (size_t i = 0; i < status->upstreams; i++) {
        const qt_stage_upstream_status_t *up = &status->upstream [i];
        qt_metric_set (self->metric [M_UP], up->role, up->up);
        qt_metric_set (self->metric [M_REPLICAS], up->role, up->replicas);
        qt_metric_set (self->metric [M_LATE], up->role, (double) up->late);
        qt_metric_set (self->metric [M_SKIPPED], up->role, (double) up->skipped);
        qt_metric_set (self->metric [M_EVICTED], up->role, (double) up->evicted);
        qt_metric_set (self->metric [M_UNAGREED], up->role, (double) up->unagreed);
        qt_metric_set (self->metric [M_REWEIGHTED], up->role, (double) up->reweighted);
    }
}

