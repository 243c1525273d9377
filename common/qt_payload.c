/*  qt_payload: topics' payload types and generic validation of payload values. */
#include "quintet.h"
#include "qt_selftest.h"

static const char *const s_cause_names [QT_DROP_CAUSES] = {
    [QT_DROP_NONE] = "none",
    [QT_DROP_OVERSIZE] = "oversize",
    [QT_DROP_MALFORMED] = "malformed",
    [QT_DROP_UNKNOWN_KEY] = "unknown-key",
    [QT_DROP_WRONG_ROLE] = "wrong-role",
    [QT_DROP_BAD_SIGNATURE] = "bad-signature",
    [QT_DROP_REPLAY] = "replay",
    [QT_DROP_STALE] = "stale",
    [QT_DROP_WRONG_TYPE] = "wrong-type",
    [QT_DROP_UNEXPECTED] = "unexpected-sender",
    [QT_DROP_BAD_PAYLOAD] = "bad-payload",
    [QT_DROP_BATCH_SIZE] = "batch-size",
    [QT_DROP_INVALID] = "invalid-value",
    [QT_DROP_WRONG_TARGET] = "wrong-target",
};

const char *
qt_drop_cause_name (qt_drop_cause_t cause)
{
    return cause < QT_DROP_CAUSES ? s_cause_names [cause] : "unknown";
}

//  The topic table is the topology's (common/topology.txt, qt_topology)
Quintet__PayloadType
qt_payload_type_of_topic (const char *topic)
{
    for (size_t i = 0; i < qt_topology_topics (); i++)
        if (streq (qt_topology_topic_at (i)->name, topic))
            return qt_topology_topic_at (i)->type;
    return QUINTET__PAYLOAD_TYPE__PAYLOAD_UNSPECIFIED;
}

const char *
qt_payload_topic (Quintet__PayloadType type)
{
    for (size_t i = 0; i < qt_topology_topics (); i++)
        if (qt_topology_topic_at (i)->type == type)
            return qt_topology_topic_at (i)->name;
    return NULL;
}

const ProtobufCMessageDescriptor *
qt_payload_descriptor (Quintet__PayloadType type)
{
    for (size_t i = 0; i < qt_topology_topics (); i++)
        if (qt_topology_topic_at (i)->type == type)
            return qt_topology_topic_at (i)->descriptor;
    return NULL;
}

static bool
s_all_finite (const double *values, size_t count)
{
    for (size_t i = 0; i < count; i++)
        if (!isfinite (values [i]))
            return false;
    return true;
}

static bool
s_probabilities (const double *values, size_t count)
{
    for (size_t i = 0; i < count; i++)
        if (!(values [i] >= 0 && values [i] <= 1))     //  false for NaN
            return false;
    return true;
}

static qt_drop_cause_t
s_readings_valid (Quintet__Readings **instances, size_t count)
{
    for (size_t i = 0; i < count; i++)
        if (!instances [i] || !instances [i]->clock || !isfinite (instances [i]->observed_reward))
            return QT_DROP_INVALID;
    return QT_DROP_NONE;
}

static qt_drop_cause_t
s_belief_valid (const Quintet__BeliefBatch *batch)
{
    size_t sensors = batch->n_sensors, features = batch->n_features;
    for (size_t i = 0; i < batch->n_instances; i++) {
        const Quintet__Belief *belief = batch->instances [i];
        if (!belief->clock || belief->n_features != features
        ||  !s_all_finite (belief->features, belief->n_features)
        ||  !s_probabilities (belief->reliability, belief->n_reliability)
        ||  !s_probabilities (belief->honest, belief->n_honest)
        ||  !s_probabilities (&belief->data_reliability, 1)
        ||  !isfinite (belief->entropy) || belief->entropy < 0
        ||  !isfinite (belief->effective_particles) || belief->effective_particles < 0
        ||  belief->n_reliability != sensors || belief->n_honest != sensors
        ||  belief->n_samples == 0)
            return QT_DROP_INVALID;
        for (size_t s = 0; s < belief->n_samples; s++) {
            const Quintet__StateSample *sample = belief->samples [s];
            if (!(sample->weight >= 0 && sample->weight <= 1)
            ||  sample->n_values != batch->n_variables || sample->n_features != features
            ||  !s_all_finite (sample->features, sample->n_features))
                return QT_DROP_INVALID;
        }
    }
    return QT_DROP_NONE;
}

qt_drop_cause_t
qt_payload_validate (Quintet__PayloadType type, const ProtobufCMessage *payload, size_t batch)
{
    switch (type) {
        case QUINTET__PAYLOAD_TYPE__SENSOR_FRAME: {
            const Quintet__SensorFrame *frame = (const Quintet__SensorFrame *) payload;
            if (frame->batch != batch || frame->n_instances != batch)
                return QT_DROP_BATCH_SIZE;
            if (frame->n_sensors != frame->n_sensor_lengths || frame->observation >= frame->n_sensors)
                return QT_DROP_INVALID;
            size_t length = 0;
            for (size_t s = 0; s < frame->n_sensor_lengths; s++)
                length += frame->sensor_lengths [s];
            for (size_t i = 0; i < frame->n_instances; i++)
                if (frame->instances [i] && frame->instances [i]->values.len != length)
                    return QT_DROP_INVALID;
            return s_readings_valid (frame->instances, frame->n_instances);
        }
        case QUINTET__PAYLOAD_TYPE__OBSERVATION_BATCH: {
            const Quintet__ObservationBatch *obs = (const Quintet__ObservationBatch *) payload;
            if (obs->batch != batch || obs->n_instances != batch)
                return QT_DROP_BATCH_SIZE;
            return s_readings_valid (obs->instances, obs->n_instances);
        }
        case QUINTET__PAYLOAD_TYPE__BELIEF_BATCH: {
            const Quintet__BeliefBatch *beliefs = (const Quintet__BeliefBatch *) payload;
            if (beliefs->batch != batch || beliefs->n_instances != batch)
                return QT_DROP_BATCH_SIZE;
            return s_belief_valid (beliefs);
        }
        case QUINTET__PAYLOAD_TYPE__SCORE_BATCH: {
            const Quintet__ScoreBatch *scores = (const Quintet__ScoreBatch *) payload;
            if (scores->batch != batch || scores->n_instances != batch)
                return QT_DROP_BATCH_SIZE;
            if (!(scores->quantile > 0 && scores->quantile < 1))
                return QT_DROP_INVALID;
            for (size_t i = 0; i < scores->n_instances; i++) {
                const Quintet__ScoreDistribution *score = scores->instances [i];
                double values [] = { score->mean, score->q10, score->q50, score->q90,
                                     score->spread, score->disagreement };
                if (!score->clock || !s_all_finite (values, sizeof values / sizeof values [0])
                ||  score->spread < 0 || !s_probabilities (&score->data_reliability, 1))
                    return QT_DROP_INVALID;
            }
            return QT_DROP_NONE;
        }
        case QUINTET__PAYLOAD_TYPE__PROPOSAL_BATCH: {
            const Quintet__ProposalBatch *proposals = (const Quintet__ProposalBatch *) payload;
            if (proposals->batch != batch || proposals->n_instances != batch)
                return QT_DROP_BATCH_SIZE;
            for (size_t i = 0; i < proposals->n_instances; i++) {
                const Quintet__RewardVector *vector = proposals->instances [i];
                if (!vector->clock || vector->n_values != proposals->n_components
                ||  vector->n_values == 0 || !s_all_finite (vector->values, vector->n_values))
                    return QT_DROP_INVALID;
            }
            return QT_DROP_NONE;
        }
        case QUINTET__PAYLOAD_TYPE__REWARD_BATCH: {
            const Quintet__RewardBatch *rewards = (const Quintet__RewardBatch *) payload;
            if (rewards->batch != batch || rewards->n_instances != batch)
                return QT_DROP_BATCH_SIZE;
            for (size_t i = 0; i < rewards->n_instances; i++) {
                const Quintet__AggregatedReward *reward = rewards->instances [i];
                if (!reward->clock || !isfinite (reward->reward)
                ||  !s_all_finite (reward->vector, reward->n_vector))
                    return QT_DROP_INVALID;
            }
            return QT_DROP_NONE;
        }
        case QUINTET__PAYLOAD_TYPE__ACTION_BATCH: {
            const Quintet__ActionBatch *actions = (const Quintet__ActionBatch *) payload;
            if (actions->batch != batch || actions->n_actions != batch)
                return QT_DROP_BATCH_SIZE;
            return QT_DROP_NONE;
        }
        case QUINTET__PAYLOAD_TYPE__EVAL_RECORD: {
            const Quintet__EvalRecord *eval = (const Quintet__EvalRecord *) payload;
            if (eval->batch != batch || eval->n_results > batch)
                return QT_DROP_BATCH_SIZE;
            for (size_t i = 0; i < eval->n_results; i++)
                if (eval->results [i]->instance >= batch
                ||  !isfinite (eval->results [i]->performance)
                ||  !isfinite (eval->results [i]->observed_return))
                    return QT_DROP_INVALID;
            return QT_DROP_NONE;
        }
        case QUINTET__PAYLOAD_TYPE__QUERY_BATCH: {
            //  Situations as the features name them: one finite value each
            const Quintet__QueryBatch *queries = (const Quintet__QueryBatch *) payload;
            if (queries->asked < queries->n_queries)
                return QT_DROP_INVALID;
            for (size_t q = 0; q < queries->n_queries; q++) {
                const Quintet__Query *query = queries->queries [q];
                if (query->n_a != queries->n_features || query->n_b != queries->n_features
                ||  !s_all_finite (query->a, query->n_a) || !s_all_finite (query->b, query->n_b))
                    return QT_DROP_INVALID;
            }
            return QT_DROP_NONE;
        }
        case QUINTET__PAYLOAD_TYPE__JUDGMENT_BATCH:
            //  Each judgment is signed by its rater and checked alone, by
            //  whoever consumes it (qt_wire_judgment_open): one bad answer
            //  must not cost the others
            return QT_DROP_NONE;
        default:
            return QT_DROP_WRONG_TYPE;
    }
}

void
qt_payload_test (bool verbose)
{
    if (verbose)
        printf (" * qt_payload: ");
    QT_CHECK (qt_payload_type_of_topic ("belief") == QUINTET__PAYLOAD_TYPE__BELIEF_BATCH);
    QT_CHECK (qt_payload_type_of_topic ("bogus") == QUINTET__PAYLOAD_TYPE__PAYLOAD_UNSPECIFIED);
    QT_CHECK (streq (qt_payload_topic (QUINTET__PAYLOAD_TYPE__REWARD_BATCH), "reward"));
    QT_CHECK (streq (qt_drop_cause_name (QT_DROP_BAD_SIGNATURE), "bad-signature"));
    QT_CHECK (qt_payload_type_of_topic ("query") == QUINTET__PAYLOAD_TYPE__QUERY_BATCH);
    QT_CHECK (streq (qt_payload_topic (QUINTET__PAYLOAD_TYPE__JUDGMENT_BATCH), "judgment"));

    //  Queries: as many finite values per situation as features named
    {
        char *features [2] = { "goal", "step" };
        double a [2] = { 1, 0 }, b [2] = { 0, 1 };
        Quintet__Query query = QUINTET__QUERY__INIT;
        Quintet__Query *queries [1] = { &query };
        query.rater = 1;
        query.n_a = query.n_b = 2;
        query.a = a;
        query.b = b;
        Quintet__QueryBatch asked = QUINTET__QUERY_BATCH__INIT;
        asked.n_features = 2;
        asked.features = features;
        asked.n_queries = 1;
        asked.queries = queries;
        asked.asked = 1;
        Quintet__PayloadType type = QUINTET__PAYLOAD_TYPE__QUERY_BATCH;
        QT_CHECK (qt_payload_validate (type, &asked.base, 4) == QT_DROP_NONE);
        b [1] = NAN;
        QT_CHECK (qt_payload_validate (type, &asked.base, 4) == QT_DROP_INVALID);
        b [1] = 1;
        query.n_b = 1;
        QT_CHECK (qt_payload_validate (type, &asked.base, 4) == QT_DROP_INVALID);
        query.n_b = 2;
        asked.asked = 0;
        QT_CHECK (qt_payload_validate (type, &asked.base, 4) == QT_DROP_INVALID);
    }

    //  A proposal batch: right size passes; wrong size, NaN, inf do not
    double good [2] = { 0.5, 1.0 };
    double nan_values [2] = { NAN, 1.0 };
    double inf_values [2] = { INFINITY, 1.0 };
    char *components [2] = { "reward", "score" };
    Quintet__InstanceClock clock = QUINTET__INSTANCE_CLOCK__INIT;
    Quintet__RewardVector vector = QUINTET__REWARD_VECTOR__INIT;
    vector.clock = &clock;
    Quintet__RewardVector *instances [1] = { &vector };
    Quintet__ProposalBatch batch = QUINTET__PROPOSAL_BATCH__INIT;
    batch.batch = 1;
    batch.n_instances = 1;
    batch.instances = instances;
    batch.n_components = 2;
    batch.components = components;
    vector.n_values = 2;
    vector.values = good;
    Quintet__PayloadType type = QUINTET__PAYLOAD_TYPE__PROPOSAL_BATCH;
    QT_CHECK (qt_payload_validate (type, &batch.base, 1) == QT_DROP_NONE);
    QT_CHECK (qt_payload_validate (type, &batch.base, 2) == QT_DROP_BATCH_SIZE);
    vector.values = nan_values;
    QT_CHECK (qt_payload_validate (type, &batch.base, 1) == QT_DROP_INVALID);
    vector.values = inf_values;
    QT_CHECK (qt_payload_validate (type, &batch.base, 1) == QT_DROP_INVALID);
    vector.values = good;
    vector.n_values = 1;
    QT_CHECK (qt_payload_validate (type, &batch.base, 1) == QT_DROP_INVALID);
    vector.n_values = 2;
    vector.clock = NULL;
    QT_CHECK (qt_payload_validate (type, &batch.base, 1) == QT_DROP_INVALID);
    vector.clock = &clock;

    //  Probabilities out of range in a belief
    double reliability = 1.5, feature = 2;
    Quintet__StateSample sample = QUINTET__STATE_SAMPLE__INIT;
    Quintet__StateSample *samples [1] = { &sample };
    sample.weight = 1;
    sample.n_features = 1;
    sample.features = &feature;
    Quintet__Belief belief = QUINTET__BELIEF__INIT;
    Quintet__Belief *beliefs [1] = { &belief };
    char *names [1] = { "camera" };
    Quintet__BeliefBatch belief_batch = QUINTET__BELIEF_BATCH__INIT;
    belief_batch.batch = 1;
    belief_batch.n_instances = 1;
    belief_batch.instances = beliefs;
    belief_batch.n_sensors = 1;
    belief_batch.sensors = names;
    belief_batch.n_features = 1;
    belief_batch.features = names;
    belief.clock = &clock;
    belief.n_reliability = belief.n_honest = 1;
    belief.reliability = belief.honest = &reliability;
    belief.n_features = 1;
    belief.features = &feature;
    belief.n_samples = 1;
    belief.samples = samples;
    belief.data_reliability = 1;
    type = QUINTET__PAYLOAD_TYPE__BELIEF_BATCH;
    QT_CHECK (qt_payload_validate (type, &belief_batch.base, 1) == QT_DROP_INVALID);
    reliability = 0.25;
    QT_CHECK (qt_payload_validate (type, &belief_batch.base, 1) == QT_DROP_NONE);
    feature = NAN;
    QT_CHECK (qt_payload_validate (type, &belief_batch.base, 1) == QT_DROP_INVALID);
    if (verbose)
        printf ("OK\n");
}
