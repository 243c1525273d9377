/*  qt_wire: conversions between the wire messages (protobuf) and the plain
    structs of the environment and role logic, shared by the daemons so each
    conversion is written once. Converting from the wire also bounds every
    size by the structs' capacities: a message that does not fit is invalid.
*/
#ifndef QT_WIRE_H_INCLUDED
#define QT_WIRE_H_INCLUDED

#include "quintet.h"
#include "qt_env.h"
#include "filter.h"

//  Readings: wire -> struct. -1 when a size exceeds the capacities.
int qt_wire_readings_get (const Quintet__Readings *wire, qt_readings_t *readings);

//  Readings: struct -> wire. The wire message points into readings and
//  moisture (n_vars uint32 of storage), which must outlive it.
void qt_wire_readings_put (const qt_readings_t *readings, uint32_t *moisture,
                           Quintet__Readings *wire);

//  Belief: wire -> struct. -1 when sizes exceed capacities or disagree.
int qt_wire_belief_get (const Quintet__Belief *wire, wm_belief_t *belief);

//  Belief: struct -> wire, allocating what the message needs; free it with
//  qt_wire_belief_free.
void qt_wire_belief_put (const wm_belief_t *belief, Quintet__Belief *wire);
void qt_wire_belief_free (Quintet__Belief *wire);


//  Where a tick stands in the episode, as every batch carries it
typedef struct {
    uint32_t episode;
    uint32_t step;
    bool done;
} qt_wire_clock_t;

//  The clock most of the n present replicas agree on (missing ones have
//  present [i] false); ties go to the lowest replica. -1 when none present.
int qt_wire_clock_majority (const qt_wire_clock_t *clocks, const bool *present, size_t n,
                            qt_wire_clock_t *out);

//  The payloads of one tick's upstream replicas, by replica - 1 (NULL where
//  missing), and the clock most of them agree on (read by field name from
//  any batch that has episode, step and done). Returns how many are
//  present, or -1 when none is.
int qt_wire_gather (qt_message_t **slots, uint32_t replicas, const ProtobufCMessage **payloads,
                    qt_wire_clock_t *clock);

//  Declares the environment a stage is configured for (quintet/env), with
//  the default parameters. -1 and *error (caller frees) for an unknown one.
int qt_wire_declare_env (qt_stage_t *stage, qt_config_t *config, qt_env_decl_t *decl, char **error);

#endif
