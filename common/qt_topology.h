/*  qt_topology: the pipeline's roles and topics, from common/topology.txt.

    The one table of who publishes what and who consumes from whom, in
    pipeline order. meson parses topology.txt and generates
    qt_topology_table.h; this class serves it: qt_payload's topic table,
    qt_keys' roles, each daemon's topic and upstreams (qt_stage_main),
    quintetctl keygen's counts and `quintetctl topology` (JSON, with the
    Byzantine modes of qt_byzantine).
*/
#ifndef QT_TOPOLOGY_H_INCLUDED
#define QT_TOPOLOGY_H_INCLUDED

#include <stdbool.h>
#include <stddef.h>
#include <stdio.h>
#include "quintet.pb-c.h"

#define QT_TOPOLOGY_MAX_UPSTREAMS   2   //  ROLE:TOPIC pairs of one role line
#define QT_TOPOLOGY_MAX_SIDE_TOPICS 2   //  topics besides its own a role publishes

typedef struct {
    const char *role;           //  upstream role
    const char *topic;          //  topic consumed from it
} qt_upstream_spec_t;

typedef struct {
    const char *name;           //  the role, the daemon's quintet-<name>
    const char *topic;          //  the topic it publishes
    Quintet__PayloadType type;  //  that topic's payload type
    bool replicated;            //  n replicas (false: one process whatever n)
    qt_upstream_spec_t upstream [QT_TOPOLOGY_MAX_UPSTREAMS];
    size_t upstreams;
    const char *side_topic [QT_TOPOLOGY_MAX_SIDE_TOPICS];
    size_t side_topics;
} qt_topology_role_t;

typedef struct {
    const char *name;
    Quintet__PayloadType type;
    const ProtobufCMessageDescriptor *descriptor;
} qt_topology_topic_t;

//  Roles in pipeline order: index 0 .. qt_topology_roles () - 1
size_t qt_topology_roles (void);
const qt_topology_role_t *qt_topology_role_at (size_t index);

//  The role of a name; NULL for one the topology does not have
const qt_topology_role_t *qt_topology_role (const char *name);

//  Topics on the wire, in topology.txt's order
size_t qt_topology_topics (void);
const qt_topology_topic_t *qt_topology_topic_at (size_t index);

//  The role that publishes a topic as its own, else the first that
//  publishes it beside its own; NULL if none does (control)
const qt_topology_role_t *qt_topology_publisher (const char *topic);

//  What the dashboard endpoint (quintet-relay) forwards: its topics in
//  topology.txt's order, index 0 .. qt_topology_dashboard_topics () - 1,
//  and whether it conflates one (forwards at most one per sender and
//  interval, the latest)
size_t qt_topology_dashboard_topics (void);
const char *qt_topology_dashboard_topic_at (size_t index);
bool qt_topology_dashboard_conflated (const char *topic);

//  Prints the topology as JSON: {"topics": [...], "roles": [...],
//  "dashboard": {"topics": [...], "conflated": [...]}, "byzantine": {"value": [...], "protocol": [...]}}
void qt_topology_describe (FILE *out);

void qt_topology_test (bool verbose);

#endif
