/*  qt_topology: the pipeline's roles and topics, from common/topology.txt.
    The tables below are meson's translation of that file
    (qt_topology_table.h in the build directory): edit topology.txt, not
    them. */
#include "quintet.h"
#include "qt_selftest.h"
#include "qt_topology_table.h"

static const qt_topology_topic_t s_topics [] = { QT_TOPOLOGY_TOPIC_TABLE };
static const qt_topology_role_t s_roles [] = { QT_TOPOLOGY_ROLE_TABLE };
static const char *const s_dashboard [] = { QT_TOPOLOGY_DASHBOARD_TOPICS };
static const char *const s_conflated [] = { QT_TOPOLOGY_DASHBOARD_CONFLATED };

size_t
qt_topology_roles (void)
{
    return sizeof s_roles / sizeof s_roles [0];
}

const qt_topology_role_t *
qt_topology_role_at (size_t index)
{
    return index < qt_topology_roles () ? &s_roles [index] : NULL;
}

const qt_topology_role_t *
qt_topology_role (const char *name)
{
    for (size_t i = 0; name && i < qt_topology_roles (); i++)
        if (streq (s_roles [i].name, name))
            return &s_roles [i];
    return NULL;
}

size_t
qt_topology_topics (void)
{
    return sizeof s_topics / sizeof s_topics [0];
}

const qt_topology_topic_t *
qt_topology_topic_at (size_t index)
{
    return index < qt_topology_topics () ? &s_topics [index] : NULL;
}

const qt_topology_role_t *
qt_topology_publisher (const char *topic)
{
    for (size_t i = 0; i < qt_topology_roles (); i++)
        if (streq (s_roles [i].topic, topic))
            return &s_roles [i];
    for (size_t i = 0; i < qt_topology_roles (); i++)
        for (size_t s = 0; s < s_roles [i].side_topics; s++)
            if (streq (s_roles [i].side_topic [s], topic))
                return &s_roles [i];
    return NULL;
}

size_t
qt_topology_dashboard_topics (void)
{
    return sizeof s_dashboard / sizeof s_dashboard [0] - 1;     //  without the NULL
}

const char *
qt_topology_dashboard_topic_at (size_t index)
{
    return index < qt_topology_dashboard_topics () ? s_dashboard [index] : NULL;
}

bool
qt_topology_dashboard_conflated (const char *topic)
{
    for (size_t i = 0; topic && s_conflated [i]; i++)
        if (streq (s_conflated [i], topic))
            return true;
    return false;
}

static const char *
s_type_name (Quintet__PayloadType type)
{
    const ProtobufCEnumValue *value =
        protobuf_c_enum_descriptor_get_value (&quintet__payload_type__descriptor, (int) type);
    return value ? value->name : "PAYLOAD_UNSPECIFIED";
}

void
qt_topology_describe (FILE *out)
{
    //  Every name is a plain identifier: nothing to escape
    fprintf (out, "{\"topics\": [");
    for (size_t i = 0; i < qt_topology_topics (); i++)
        fprintf (out, "%s\n  {\"name\": \"%s\", \"type\": \"%s\", \"message\": \"%s\"}", i? ",": "",
                 s_topics [i].name, s_type_name (s_topics [i].type), s_topics [i].descriptor->short_name);
    fprintf (out, "],\n \"roles\": [");
    for (size_t i = 0; i < qt_topology_roles (); i++) {
        const qt_topology_role_t *role = &s_roles [i];
        fprintf (out, "%s\n  {\"name\": \"%s\", \"topic\": \"%s\", \"type\": \"%s\", \"replicated\": %s, "
                 "\"upstreams\": [", i? ",": "", role->name, role->topic, s_type_name (role->type),
                 role->replicated? "true": "false");
        for (size_t u = 0; u < role->upstreams; u++)
            fprintf (out, "%s{\"role\": \"%s\", \"topic\": \"%s\"}", u? ", ": "",
                     role->upstream [u].role, role->upstream [u].topic);
        fprintf (out, "], \"side_topics\": [");
        for (size_t s = 0; s < role->side_topics; s++)
            fprintf (out, "%s\"%s\"", s? ", ": "", role->side_topic [s]);
        fprintf (out, "]}");
    }
    fprintf (out, "],\n \"dashboard\": {\"topics\": [");
    for (size_t i = 0; i < qt_topology_dashboard_topics (); i++)
        fprintf (out, "%s\"%s\"", i? ", ": "", s_dashboard [i]);
    fprintf (out, "], \"conflated\": [");
    for (size_t i = 0; s_conflated [i]; i++)
        fprintf (out, "%s\"%s\"", i? ", ": "", s_conflated [i]);
    //  The Byzantine modes: qt_byzantine's table, split as it splits them
    fprintf (out, "]},\n \"byzantine\": {");
    for (int value = 1; value >= 0; value--) {
        fprintf (out, "%s\"%s\": [", value? "": ", ", value? "value": "protocol");
        bool first = true;
        for (int mode = QT_BYZANTINE_HONEST + 1; mode < QT_BYZANTINE_MODES; mode++)
            if (qt_byzantine_mode_is_value ((qt_byzantine_mode_t) mode) == (bool) value) {
                fprintf (out, "%s\"%s\"", first? "": ", ", qt_byzantine_mode_name ((qt_byzantine_mode_t) mode));
                first = false;
            }
        fprintf (out, "]");
    }
    fprintf (out, "}}\n");
}

void
qt_topology_test (bool verbose)
{
    if (verbose)
        printf (" * qt_topology: ");
    //  Every role publishes a declared topic of its own type, consumes
    //  declared topics from declared roles that publish them, and appears once
    QT_CHECK (qt_topology_roles () == QT_TOPOLOGY_ROLE_COUNT && qt_topology_roles () > 0);
    QT_CHECK (qt_topology_topics () == QT_TOPOLOGY_TOPIC_COUNT);
    for (size_t i = 0; i < qt_topology_roles (); i++) {
        const qt_topology_role_t *role = qt_topology_role_at (i);
        QT_CHECK (qt_topology_role (role->name) == role);
        QT_CHECK (qt_payload_type_of_topic (role->topic) == role->type);
        QT_CHECK (role->upstreams <= QT_TOPOLOGY_MAX_UPSTREAMS);
        QT_CHECK (role->upstreams <= QT_STAGE_MAX_UPSTREAMS);
        for (size_t u = 0; u < role->upstreams; u++) {
            const qt_topology_role_t *up = qt_topology_role (role->upstream [u].role);
            QT_CHECK (up);
            bool published = streq (up->topic, role->upstream [u].topic);
            for (size_t s = 0; s < up->side_topics; s++)
                published |= streq (up->side_topic [s], role->upstream [u].topic);
            QT_CHECK (published);
        }
        for (size_t s = 0; s < role->side_topics; s++)
            QT_CHECK (qt_payload_type_of_topic (role->side_topic [s]) != QUINTET__PAYLOAD_TYPE__PAYLOAD_UNSPECIFIED);
    }
    for (size_t i = 0; i < qt_topology_topics (); i++) {
        const qt_topology_topic_t *topic = qt_topology_topic_at (i);
        QT_CHECK (topic->descriptor && qt_payload_descriptor (topic->type) == topic->descriptor);
        for (size_t j = 0; j < i; j++)
            QT_CHECK (strneq (qt_topology_topic_at (j)->name, topic->name));
    }
    QT_CHECK (qt_topology_role_at (qt_topology_roles ()) == NULL);
    QT_CHECK (qt_topology_role ("bogus") == NULL && qt_topology_role (NULL) == NULL);
    //  The wire's topics are the topology's: every role's topic has a
    //  publisher, the control channel none
    const qt_topology_role_t *first = qt_topology_role_at (0);
    QT_CHECK (qt_topology_publisher (first->topic) == first);
    QT_CHECK (qt_topology_publisher (QT_CONTROL_TOPIC) == NULL);
    //  Every role's name is a key role
    for (size_t i = 0; i < qt_topology_roles (); i++)
        QT_CHECK (qt_role_valid (qt_topology_role_at (i)->name));

    //  The JSON names every role and both families of Byzantine modes
    char *json = NULL;
    size_t size = 0;
    //  The dashboard's topics are declared and published by a role
    for (size_t i = 0; i < qt_topology_dashboard_topics (); i++)
        QT_CHECK (qt_topology_publisher (qt_topology_dashboard_topic_at (i)));
    QT_CHECK (!qt_topology_dashboard_topic_at (qt_topology_dashboard_topics ()));
    QT_CHECK (!qt_topology_dashboard_conflated ("no-such-topic"));
    FILE *stream = open_memstream (&json, &size);
    QT_CHECK (stream);
    qt_topology_describe (stream);
    fclose (stream);
    for (size_t i = 0; i < qt_topology_roles (); i++) {
        char *needle = zsys_sprintf ("{\"name\": \"%s\"", qt_topology_role_at (i)->name);
        QT_CHECK (strstr (json, needle));
        zstr_free (&needle);
    }
    QT_CHECK (strstr (json, "\"dashboard\": {\"topics\": ["));
    QT_CHECK (strstr (json, "\"value\": [\"sign-flip\"") && strstr (json, "\"protocol\": [\"bad-signature\""));
    free (json);
    if (verbose)
        printf ("OK\n");
}
