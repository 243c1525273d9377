/*  quintet-raters: the people. A simulated population (rt_population) of
    R raters, each with its own Ed25519 key, answering the scorers'
    comparison queries.

    One process, like the world: people are not replicated. At tick t it
    takes the scorers' QueryBatches of tick t and, in its message of tick
    t + 1 (`judgment`), answers them: each query is put to the rater it
    names, whose answer (a Comparison: the situations as asked and a graded
    preference) is signed by that rater's own key (qt_wire_judgment_seal),
    so that the collectors and scorers can tell what a person said whoever
    relayed it. At start it publishes an empty batch for tick 0, which the
    collectors' first tick needs.

    The scorer replicas are combined by exact bytes: honest scorers ask
    bit-identical questions, so the batch that at least f + 1 replicas sent
    (f = upstream/scorer/faults; the largest such group, ties to the lowest
    replica) is the one answered, and a tick without one is answered with
    nothing (counted). A QueryBatch naming other features than the
    environment declares, or asking more than SC_MAX_QUERIES, is dropped
    (invalid-value); a query of a rater out of 1..raters, or a query index
    asked twice, is refused alone (quintet_raters_refused_total{cause}).

    The people, like the world, may know the environment's intended value;
    they see only the situations they are asked about, never the episodes
    or `eval`.

    Config (quintet/raters/...): every option of daemons/raters/
    population.h by name (raters, variation, minority, minority_factor,
    minority_feature, careless, malicious, malice = inverted | extreme |
    colluding, collude_feature), and key_dir: the directory of the raters'
    secret keys rater-<id>.key, ids 1..raters (quintetctl keygen --raters
    R), each of which must be the trust store's rater-<id>.pub; a relative
    key_dir is taken in $CREDENTIALS_DIRECTORY when set (LoadCredential=).
*/
#include "quintet.h"
#include "qt_wire.h"
#include "population.h"
#include "learn.h"          //  SC_MAX_QUERIES: what the scorers may ask in one tick

typedef struct {
    qt_env_decl_t decl;
    rt_population_t *population;
    uint32_t raters;
    qt_keypair_t **keys;                    //  [rater - 1]
    uint64_t answered;                      //  judgments signed and published
    uint64_t unanswered;                    //  ticks without f + 1 equal query batches
    uint64_t refused_rater, refused_duplicate;
    qt_metric_t *m_answered;                //  quintet_raters_judgments_total
    qt_metric_t *m_refused;                 //  quintet_raters_refused_total{cause}
    Quintet__Judgment judgments [SC_MAX_QUERIES];
    Quintet__Judgment *judgment_p [SC_MAX_QUERIES];
} raters_t;

#define S_REFUSED_RATER     "rater-out-of-range"
#define S_REFUSED_DUPLICATE "duplicate-index"
#define S_REFUSED_NO_MAJORITY "no-majority"     //  a whole tick: counted once

static void
s_raters_destroy (void **state_p)
{
    raters_t *self = (raters_t *) *state_p;
    if (!self)
        return;
    rt_population_destroy (&self->population);
    for (uint32_t r = 0; self->keys && r < self->raters; r++)
        qt_keypair_destroy (&self->keys [r]);
    free (self->keys);
    free (self);
    *state_p = NULL;
}

//  The raters' secret keys, each checked against the trust store: a key
//  that is not rater-<id>.pub would only get its answers dropped downstream
static int
s_load_keys (raters_t *self, qt_stage_t *stage, qt_config_t *config, char **error)
{
    const char *key_dir = NULL;
    if (qt_config_string (config, "quintet/raters/key_dir", NULL, &key_dir)) {
        *error = strdup (qt_config_error (config));
        return -1;
    }
    char *dir = qt_daemon_secret_path (key_dir);
    self->keys = (qt_keypair_t **) zmalloc (sizeof (qt_keypair_t *) * self->raters);
    for (uint32_t r = 1; r <= self->raters && !*error; r++) {
        char *path = zsys_sprintf ("%s/%s-%u.key", dir, QT_RATER_ROLE, r);
        char *problem = NULL;
        self->keys [r - 1] = qt_keypair_load (path, QT_RATER_ROLE, r, &problem);
        const qt_trust_entry_t *entry = self->keys [r - 1]
            ? qt_trust_lookup (qt_stage_trust (stage), self->keys [r - 1]->key_id) : NULL;
        if (!self->keys [r - 1])
            *error = zsys_sprintf ("%s: quintet/raters/key_dir: the key of rater %u of %u: %s",
                                   qt_config_path (config), r, self->raters,
                                   problem ? problem : "cannot be loaded");
        else
        if (!entry || strneq (entry->role, QT_RATER_ROLE) || entry->replica != r)
            *error = zsys_sprintf ("%s: quintet/raters/key_dir: %s is not the trust store's %s-%u.pub",
                                   qt_config_path (config), path, QT_RATER_ROLE, r);
        zstr_free (&problem);
        zstr_free (&path);
    }
    zstr_free (&dir);
    return *error ? -1 : 0;
}

static void *
s_raters_create (qt_stage_t *stage, qt_config_t *config, char **error)
{
    raters_t *self = (raters_t *) zmalloc (sizeof (raters_t));
    void *state = self;
    if (qt_wire_declare_env (stage, config, NULL, &self->decl, error)) {
        free (self);
        return NULL;
    }
    rt_population_config_t population;
    rt_population_config_default (&population);
    int rc = 0;
    for (const char *const *option = rt_population_options; *option && rc == 0; option++) {
        char *key = zsys_sprintf ("quintet/raters/%s", *option);
        const char *value = NULL;
        rc = qt_config_string (config, key, "", &value);
        const char *cause = NULL;
        if (rc == 0 && *value && rt_population_config_set (&population, *option, value, &cause)) {
            *error = zsys_sprintf ("%s: %s: %s", qt_config_path (config), key, cause);
            rc = -1;
        }
        else
        if (rc)
            *error = strdup (qt_config_error (config));
        zstr_free (&key);
    }
    const char *cause = NULL;
    if (rc == 0) {
        self->population = rt_population_new (&self->decl, &population, qt_stage_seed (stage), &cause);
        if (!self->population)
            *error = zsys_sprintf ("%s: quintet/raters: %s", qt_config_path (config),
                                   cause ? cause : "invalid population");
    }
    if (self->population) {
        self->raters = rt_population_size (self->population);
        s_load_keys (self, stage, config, error);
    }
    if (*error) {
        s_raters_destroy (&state);
        return NULL;
    }
    qt_metrics_t *metrics = qt_stage_metrics (stage);
    self->m_answered = qt_metrics_counter (metrics, "quintet_raters_judgments_total",
        "Judgments answered, signed by their raters and published.", NULL);
    self->m_refused = qt_metrics_counter (metrics, "quintet_raters_refused_total",
        "Queries refused, by cause (rater-out-of-range, duplicate-index), and ticks answered "
        "with nothing because no f + 1 scorer replicas asked the same (no-majority).", "cause");
    qt_metric_add (self->m_answered, NULL, 0);
    qt_log (LOG_INFO, "%u raters on %s, keys loaded", self->raters, self->decl.name);
    return self;
}

//  A query batch must speak of the environment's features, in its order,
//  and ask no more than a scorer may in one tick
static qt_drop_cause_t
s_raters_validate (void *state, size_t upstream, const ProtobufCMessage *payload)
{
    raters_t *self = (raters_t *) state;
    (void) upstream;
    const Quintet__QueryBatch *batch = (const Quintet__QueryBatch *) payload;
    if (batch->n_queries > SC_MAX_QUERIES || batch->n_features != self->decl.n_features)
        return QT_DROP_INVALID;
    for (size_t f = 0; f < batch->n_features; f++)
        if (strneq (batch->features [f], self->decl.feature_names [f]))
            return QT_DROP_INVALID;
    //  The generic check (qt_payload_validate) bounds a and b by n_features
    return QT_DROP_NONE;
}

static int
s_publish (raters_t *self, qt_stage_t *stage, uint64_t tick, uint64_t query_tick, size_t count)
{
    Quintet__JudgmentBatch batch = QUINTET__JUDGMENT_BATCH__INIT;
    batch.query_tick = count > 0 ? query_tick : 0;
    batch.n_judgments = count;
    batch.judgments = self->judgment_p;
    int rc = qt_stage_publish (stage, tick, &batch.base);
    for (size_t j = 0; j < count; j++)
        qt_wire_judgment_free (&self->judgments [j]);
    return rc;
}

static int
s_raters_start (void *state, qt_stage_t *stage)
{
    return s_publish ((raters_t *) state, stage, 0, 0, 0);
}

static bool
s_same_payload (const qt_message_t *a, const qt_message_t *b)
{
    return a->envelope->payload.len == b->envelope->payload.len
        && (a->envelope->payload.len == 0
            || memcmp (a->envelope->payload.data, b->envelope->payload.data, a->envelope->payload.len) == 0);
}

//  The query batch f + 1 scorer replicas sent byte for byte (the largest
//  such group, ties to the lowest replica), or NULL
static const Quintet__QueryBatch *
s_agreed (qt_stage_t *stage, qt_message_t **slots)
{
    qt_quorum_t *quorum = qt_stage_quorum (stage, 0);
    uint32_t replicas = qt_quorum_replicas (quorum);
    uint32_t needed = qt_quorum_faults (quorum) + 1;
    const qt_message_t *best = NULL;
    uint32_t best_votes = 0;
    for (uint32_t r = 0; r < replicas; r++) {
        if (!slots [r])
            continue;
        uint32_t votes = 0;
        for (uint32_t o = 0; o < replicas; o++)
            votes += slots [o] && s_same_payload (slots [r], slots [o]);
        if (votes > best_votes) {
            best_votes = votes;
            best = slots [r];
        }
    }
    return best && best_votes >= needed ? (const Quintet__QueryBatch *) best->payload : NULL;
}

static int
s_raters_process (void *state, qt_stage_t *stage, uint64_t tick, qt_message_t **inputs [])
{
    raters_t *self = (raters_t *) state;
    const Quintet__QueryBatch *batch = s_agreed (stage, inputs [0]);
    if (!batch) {
        self->unanswered++;
        qt_metric_add (self->m_refused, S_REFUSED_NO_MAJORITY, 1);
        return s_publish (self, stage, tick + 1, tick, 0);
    }
    size_t count = 0;
    bool asked [SC_MAX_QUERIES] = { false };
    for (size_t q = 0; q < batch->n_queries && count < SC_MAX_QUERIES; q++) {
        const Quintet__Query *query = batch->queries [q];
        if (query->rater < 1 || query->rater > self->raters) {
            self->refused_rater++;
            qt_metric_add (self->m_refused, S_REFUSED_RATER, 1);
            continue;
        }
        if (query->index >= SC_MAX_QUERIES || asked [query->index]) {
            self->refused_duplicate++;
            qt_metric_add (self->m_refused, S_REFUSED_DUPLICATE, 1);
            continue;
        }
        asked [query->index] = true;
        Quintet__Comparison comparison = QUINTET__COMPARISON__INIT;
        comparison.rater = query->rater;
        comparison.query_tick = tick;
        comparison.query_index = query->index;
        comparison.n_a = query->n_a;
        comparison.a = query->a;
        comparison.n_b = query->n_b;
        comparison.b = query->b;
        comparison.preference = rt_population_answer (self->population, query->rater, tick,
                                                      query->index, query->a, query->b);
        if (qt_wire_judgment_seal (self->keys [query->rater - 1], &comparison, &self->judgments [count]))
            continue;       //  cannot happen: key r is rater r's (s_load_keys)
        self->judgment_p [count] = &self->judgments [count];
        count++;
    }
    self->answered += count;
    qt_metric_add (self->m_answered, NULL, (double) count);
    return s_publish (self, stage, tick + 1, tick, count);
}

//  quintetctl status: the population by group and what was answered
static void
s_raters_details (void *state, qt_stage_detail_fn *add, void *ctx)
{
    raters_t *self = (raters_t *) state;
    char value [32];
    uint32_t groups [RT_GROUPS] = { 0 };
    for (uint32_t r = 1; r <= self->raters; r++) {
        rt_group_t group = rt_population_group (self->population, r);
        if (group < RT_GROUPS)
            groups [group]++;
    }
    snprintf (value, sizeof value, "%u", self->raters);
    add (ctx, "raters", value);
    for (int g = 0; g < RT_GROUPS; g++) {
        char name [64];
        snprintf (name, sizeof name, "group/%s", rt_group_names [g]);
        snprintf (value, sizeof value, "%u", groups [g]);
        add (ctx, name, value);
    }
    snprintf (value, sizeof value, "%" PRIu64, self->answered);
    add (ctx, "judgments/answered", value);
    snprintf (value, sizeof value, "%" PRIu64, self->refused_rater);
    add (ctx, "refused/" S_REFUSED_RATER, value);
    snprintf (value, sizeof value, "%" PRIu64, self->refused_duplicate);
    add (ctx, "refused/" S_REFUSED_DUPLICATE, value);
    snprintf (value, sizeof value, "%" PRIu64, self->unanswered);
    add (ctx, "refused/" S_REFUSED_NO_MAJORITY, value);
}

const qt_role_t qt_raters_role = {
    .role = "raters",
    .summary = "The people: a simulated population of raters answering the scorers' comparison "
               "queries, each answer signed by its rater's own key.",
    .create = s_raters_create,
    .destroy = s_raters_destroy,
    .validate = s_raters_validate,
    .start = s_raters_start,
    .process = s_raters_process,
    .details = s_raters_details,
};
