/*  quintet-scorer (Charlie): how desirable the likely states are.

    Beliefs from the world-model replicas are combined robustly first
    (coordinate-wise median, samples from the replica nearest the median:
    wm_belief_combine). Every sampled state is then scored by each rater of
    the configured panel, from the features of the transition into it, and
    the panel's score is the q-quantile of the raters' scores (majority
    judgment); the distribution of that score over the likely states is
    published (sc_panel), with each instance's clock.

    The panel is configuration: raters' utilities are weights over the
    features the environment declares. The scorer never reads the
    environment's hidden performance.

    Config (quintet/scorer/...): quantile (q, default 0.5), and at least one
    rater as rater/<name>/ with kind = weighted | constant | inverted, vote
    (its weight in the quantile, default 1), value (constant), and
    weight/<feature> per declared feature (default 0).
*/
#include "quintet.h"
#include "qt_wire.h"
#include "panel.h"

typedef struct {
    qt_env_decl_t decl;
    size_t batch;
    double quantile;
    uint32_t raters;
    sc_panel_t *panel;
    wm_belief_t *replica_belief;            //  [replica], scratch
    qt_wire_clock_t *clocks;
    Quintet__InstanceClock *wire_clocks;
} scorer_t;

static void
s_scorer_destroy (void **state_p)
{
    scorer_t *self = (scorer_t *) *state_p;
    if (!self)
        return;
    sc_panel_destroy (&self->panel);
    free (self->replica_belief);
    free (self->clocks);
    free (self->wire_clocks);
    free (self);
    *state_p = NULL;
}

//  One rater from quintet/scorer/rater/<name>/...
static int
s_read_rater (qt_config_t *config, const char *name, const qt_env_decl_t *decl, sc_rater_t *rater,
              char **error)
{
    static const char *const kinds [] = { "weighted", "constant", "inverted", NULL };
    memset (rater, 0, sizeof *rater);
    char *base = zsys_sprintf ("quintet/scorer/rater/%s", name);
    char *key = zsys_sprintf ("%s/kind", base);
    int kind = 0;
    int rc = qt_config_choice (config, key, kinds, "weighted", &kind);
    rater->kind = (sc_rater_kind_t) kind;
    zstr_free (&key);
    key = zsys_sprintf ("%s/value", base);
    rc |= qt_config_double (config, key, false, 0, -1e6, 1e6, &rater->value);
    zstr_free (&key);
    key = zsys_sprintf ("%s/vote", base);
    rc |= qt_config_double (config, key, false, 1, 1e-9, 1e9, &rater->vote);
    zstr_free (&key);
    char *weights = zsys_sprintf ("%s/weight", base);
    zlist_t *children = qt_config_children (config, weights);
    for (char *feature = (char *) zlist_first (children); feature && rc == 0;
         feature = (char *) zlist_next (children)) {
        int index = qt_env_feature_index (decl, feature);
        key = zsys_sprintf ("%s/%s", weights, feature);
        if (index < 0) {
            *error = zsys_sprintf ("%s: %s: %s declares no feature \"%s\"", qt_config_path (config),
                                   key, decl->name, feature);
            rc = -1;
        }
        else
            rc = qt_config_double (config, key, false, 0, -1e9, 1e9, &rater->weight [index]);
        zstr_free (&key);
    }
    zlist_destroy (&children);
    zstr_free (&weights);
    zstr_free (&base);
    if (rc && !*error)
        *error = strdup (qt_config_error (config));
    return rc;
}

static void *
s_scorer_create (qt_stage_t *stage, qt_config_t *config, char **error)
{
    scorer_t *self = (scorer_t *) zmalloc (sizeof (scorer_t));
    self->batch = qt_stage_batch (stage);
    if (qt_wire_declare_env (stage, config, NULL, &self->decl, error)) {
        free (self);
        return NULL;
    }
    sc_panel_config_t panel;
    sc_panel_config_init (&panel);
    int rc = qt_config_double (config, "quintet/scorer/quantile", false, panel.quantile,
                               1e-6, 1 - 1e-6, &panel.quantile);
    zlist_t *names = qt_config_children (config, "quintet/scorer/rater");
    if (rc == 0 && zlist_size (names) == 0) {
        *error = zsys_sprintf ("%s: quintet/scorer/rater: no rater configured; the panel is "
                               "configuration (rater/<name>/weight/<feature> = value)",
                               qt_config_path (config));
        rc = -1;
    }
    for (char *name = (char *) zlist_first (names); name && rc == 0; name = (char *) zlist_next (names)) {
        sc_rater_t rater;
        rc = s_read_rater (config, name, &self->decl, &rater, error);
        if (rc == 0 && sc_panel_config_add (&panel, &rater)) {
            *error = zsys_sprintf ("%s: quintet/scorer/rater: at most %d raters",
                                   qt_config_path (config), SC_PANEL_MAX_RATERS);
            rc = -1;
        }
    }
    zlist_destroy (&names);
    if (rc == 0) {
        self->panel = sc_panel_new (&panel, self->decl.n_features);
        if (!self->panel) {
            *error = zsys_sprintf ("%s: quintet/scorer: invalid rater panel", qt_config_path (config));
            rc = -1;
        }
    }
    if (rc) {
        if (!*error)
            *error = strdup (qt_config_error (config));
        free (self);
        return NULL;
    }
    self->quantile = panel.quantile;
    self->raters = panel.n_raters;
    self->replica_belief = (wm_belief_t *) zmalloc (sizeof (wm_belief_t) * QT_QUORUM_MAX_REPLICAS);
    self->clocks = (qt_wire_clock_t *) zmalloc (sizeof (qt_wire_clock_t) * self->batch);
    self->wire_clocks = (Quintet__InstanceClock *) zmalloc (sizeof (Quintet__InstanceClock) * self->batch);
    return self;
}

static qt_drop_cause_t
s_scorer_validate (void *state, size_t upstream, const ProtobufCMessage *payload)
{
    scorer_t *self = (scorer_t *) state;
    (void) upstream;
    const Quintet__BeliefBatch *beliefs = (const Quintet__BeliefBatch *) payload;
    if (beliefs->n_sensors != self->decl.n_sensors || beliefs->n_features != self->decl.n_features
    ||  beliefs->n_variables != self->decl.n_vars)
        return QT_DROP_INVALID;
    return QT_DROP_NONE;
}

static int
s_scorer_process (void *state, qt_stage_t *stage, uint64_t tick, qt_message_t **inputs [])
{
    scorer_t *self = (scorer_t *) state;
    uint32_t replicas = qt_quorum_replicas (qt_stage_quorum (stage, 0));
    const Quintet__BeliefBatch *beliefs [QT_QUORUM_MAX_REPLICAS] = { NULL };
    if (qt_wire_gather (inputs [0], replicas, self->batch, (const ProtobufCMessage **) beliefs,
                        self->clocks) < 0)
        return 0;

    Quintet__ScoreDistribution *scores = (Quintet__ScoreDistribution *) zmalloc (sizeof (Quintet__ScoreDistribution) * self->batch);
    Quintet__ScoreDistribution **scores_p = (Quintet__ScoreDistribution **) zmalloc (sizeof (void *) * self->batch);
    const wm_belief_t *views [QT_QUORUM_MAX_REPLICAS];
    //  Reputation: an excluded world model is left out of the median (the
    //  median is not weighted: a down-weighted one still counts); each
    //  one's distance is the L2 of its expected features to the combined
    //  belief's, averaged over the batch
    const wm_belief_t *used [QT_QUORUM_MAX_REPLICAS];
    double distance [QT_QUORUM_MAX_REPLICAS] = { 0 };
    bool comparable [QT_QUORUM_MAX_REPLICAS];
    for (uint32_t r = 0; r < replicas; r++)
        comparable [r] = beliefs [r] != NULL;
    for (size_t i = 0; i < self->batch; i++) {
        for (uint32_t r = 0; r < replicas; r++) {
            views [r] = NULL;
            if (beliefs [r] && qt_wire_belief_get (beliefs [r]->instances [i], &self->replica_belief [r]) == 0)
                views [r] = &self->replica_belief [r];
            used [r] = qt_stage_replica_weight (stage, 0, r + 1) > 0 ? views [r] : NULL;
        }
        wm_belief_t combined;
        sc_score_t score;
        memset (&score, 0, sizeof score);
        score.data_reliability = 1;
        if (wm_belief_combine (used, replicas, &combined) == 0) {
            sc_panel_score (self->panel, &combined, &score);
            for (uint32_t r = 0; r < replicas; r++) {
                if (!views [r] || views [r]->n_features != combined.n_features) {
                    comparable [r] = false;
                    continue;
                }
                double squared = 0;
                for (uint32_t f = 0; f < combined.n_features; f++) {
                    double delta = views [r]->features [f] - combined.features [f];
                    squared += delta * delta;
                }
                distance [r] += sqrt (squared) / (double) self->batch;
            }
        }
        quintet__score_distribution__init (&scores [i]);
        qt_wire_clock_put (&self->clocks [i], &self->wire_clocks [i]);
        scores [i].clock = &self->wire_clocks [i];
        scores [i].mean = score.mean;
        scores [i].q10 = score.q10;
        scores [i].q50 = score.q50;
        scores [i].q90 = score.q90;
        scores [i].spread = score.spread;
        scores [i].disagreement = score.disagreement;
        scores [i].data_reliability = score.data_reliability;
        scores_p [i] = &scores [i];
    }
    Quintet__ScoreBatch batch = QUINTET__SCORE_BATCH__INIT;
    batch.batch = (uint32_t) self->batch;
    batch.quantile = self->quantile;
    batch.raters = self->raters;
    batch.n_instances = self->batch;
    batch.instances = scores_p;
    int rc = qt_stage_publish (stage, tick, &batch.base);
    for (uint32_t r = 0; r < replicas; r++)
        if (beliefs [r])
            qt_stage_report_distance (stage, 0, r + 1, comparable [r] ? distance [r] : INFINITY);
    free (scores_p);
    free (scores);
    return rc;
}

const qt_role_t qt_scorer_role = {
    .role = "scorer",
    .topic = "score",
    .type = QUINTET__PAYLOAD_TYPE__SCORE_BATCH,
    .upstream = { { "worldmodel", "belief" } },
    .upstreams = 1,
    .summary = "Charlie: scores the likely states by majority judgment over a panel of raters.",
    .create = s_scorer_create,
    .destroy = s_scorer_destroy,
    .validate = s_scorer_validate,
    .process = s_scorer_process,
};
