/*  qt_wire: conversions between the wire messages (protobuf) and the plain
    structs of the environment and role logic, shared by the daemons so each
    conversion is written once; the per-instance clock every payload
    carries, and its majority across upstream replicas. Converting from the
    wire also bounds every size by the structs' capacities: a message that
    does not fit is invalid.
*/
#ifndef QT_WIRE_H_INCLUDED
#define QT_WIRE_H_INCLUDED

#include "quintet.h"
#include "qt_env.h"
#include "filter.h"

//  Where an instance stands in its episode (Quintet__InstanceClock)
typedef struct {
    uint32_t episode;
    uint32_t step;
    bool done;
    bool terminated;
    bool idle;
} qt_wire_clock_t;

void qt_wire_clock_get (const Quintet__InstanceClock *wire, qt_wire_clock_t *clock);
//  The wire clock points at nothing: it can live on the stack.
void qt_wire_clock_put (const qt_wire_clock_t *clock, Quintet__InstanceClock *wire);

//  Readings: wire -> struct. -1 when the values do not fit.
int qt_wire_readings_get (const Quintet__Readings *wire, qt_readings_t *readings);

//  Readings: struct -> wire. The wire message points into readings and
//  clock, which must outlive it.
void qt_wire_readings_put (const qt_readings_t *readings, Quintet__InstanceClock *clock,
                           Quintet__Readings *wire);

//  Belief: wire -> struct. -1 when sizes exceed capacities or disagree.
int qt_wire_belief_get (const Quintet__Belief *wire, wm_belief_t *belief);

//  Belief: struct -> wire, allocating what the message needs; free it with
//  qt_wire_belief_free. The clock is pointed at, not copied.
void qt_wire_belief_put (const wm_belief_t *belief, Quintet__InstanceClock *clock,
                         Quintet__Belief *wire);
void qt_wire_belief_free (Quintet__Belief *wire);

//  The payloads of one tick's upstream replicas, by replica - 1 (NULL where
//  missing), and per instance the clock most of them agree on (every batch
//  payload holds `instances`, each with a `clock`; ties go to the lowest
//  replica). clocks holds `batch` entries. Returns how many are present, or
//  -1 when none is.
int qt_wire_gather (qt_message_t **slots, uint32_t replicas, size_t batch,
                    const ProtobufCMessage **payloads, qt_wire_clock_t *clocks);

//  Declares the environment a stage is configured for (quintet/env,
//  env_variant, env_without; "" is the registry's default) with `params`
//  (may be NULL: defaults) for the world-only options. -1 and *error
//  (caller frees) when it cannot be declared.
int qt_wire_declare_env (qt_stage_t *stage, qt_config_t *config, const qt_env_params_t *params,
                         qt_env_decl_t *decl, char **error);

//  Judgments: one rater's Comparison, signed by that rater's own key (trust
//  store file rater-<id>.pub) over QT_WIRE_JUDGMENT_CONTEXT || the encoded
//  comparison, so that a collector or scorer can tell what a person said
//  whoever relayed it. The context keeps these signatures apart from
//  envelope signatures ("quintet-v1:"): neither can pass for the other.
#define QT_WIRE_JUDGMENT_CONTEXT "quintet-judgment-v1:"

//  Encodes and signs comparison with rater_key (role QT_RATER_ROLE, replica
//  = comparison->rater) into out, whose bytes and strings it allocates:
//  release them with qt_wire_judgment_free. -1 (out untouched) when the key
//  is not that rater's.
int qt_wire_judgment_seal (const qt_keypair_t *rater_key, const Quintet__Comparison *comparison,
                           Quintet__Judgment *out);
void qt_wire_judgment_free (Quintet__Judgment *judgment);

//  Checks one judgment as received, in this order: key id in the trust
//  store (unknown-key), bound to role rater (wrong-role), signature over the
//  context and the bytes as received (bad-signature), decode (bad-payload),
//  the signer is the rater the comparison names (wrong-role), a and b of
//  n_features finite values each and a finite preference in [-1, 1]
//  (invalid-value). On QT_DROP_NONE *comparison is the decoded comparison
//  (free with quintet__comparison__free_unpacked (c, NULL)), else NULL.
qt_drop_cause_t qt_wire_judgment_open (qt_trust_t *trust, const Quintet__Judgment *judgment,
                                       uint32_t n_features, Quintet__Comparison **comparison);

//  State transfer (qt_role_t snapshot/restore): what a role's state starts
//  with, so that a replica configured otherwise refuses it: the role's
//  magic (8 characters) and format version, the batch and the environment
//  (quintet/env, env_variant, env_without). Appended to identity; a role
//  appends its own options that must match after it.
void qt_wire_state_identity (qt_stage_t *stage, const char *magic, uint32_t version,
                             zchunk_t *identity);

//  What follows that identity at the start of a state (*size bytes, set),
//  or NULL with a static cause (another role's state, another format
//  version, a replica configured otherwise)
const uint8_t *qt_wire_state_body (zchunk_t *identity, const uint8_t *data, size_t *size,
                                   const char **cause);

void qt_wire_test (bool verbose);

#endif
