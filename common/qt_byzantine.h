/*  qt_byzantine: a replica that lies, for tests and fault injection.

    `--byzantine MODE` on any daemon makes its stage publish through this
    class instead of honestly. Two families of modes (shared/robust-stats.md):

    Value attacks change what the role publishes, generically, by walking the
    payload's protobuf-c descriptor (nested messages included):
        sign-flip   -mu             ipm       -tau mu (tau = 2)
        alie        mu + tau sigma (tau = 1.5)
        gaussian    N(0, 1) i.i.d.  inf       +inf      nan   NaN
        mimic       mu (a copy of an honest input)
        extreme     -sign(mu) 1e300
        drift       mu + k delta max(|mu|, 1), k = messages sent so far
    A single replica sees no other honest output of its tick, but honest
    replicas are bit-for-bit identical, so mu = its own honest output is
    exactly the honest mean (and mimic is, here, indistinguishable from an
    honest replica: the attack a robust aggregator must simply tolerate).
    The honest spread is therefore 0; alie uses a documented stand-in,
    sigma = QT_BYZANTINE_SPREAD * max(|mu|, 1) per coordinate.
    Doubles a validator bounds are lied about within their range so the lie
    is accepted and must be outvoted: probabilities (marginals, reliability,
    honest, data_reliability, weight) are mirrored (1 - mu) by sign-flip and
    ipm and clamped to [0, 1] otherwise; spread and entropy are kept >= 0.
    inf, nan and extreme are never mapped: they exist to be rejected.
    Payloads lie in their integers and sensor readings too: actions are
    flipped (v xor 1, a wrong action), random bits for gaussian, flipped with
    a probability growing per tick for drift, and out of range (v + 1000,
    rejected) for inf, nan; a reading's values are rearranged so the lie
    stays valid (mirrored for sign-flip, ipm, alie and extreme, a one-value
    reading xor 1; shuffled for gaussian; a growing number of swaps for
    drift) or pushed out of range (inf, nan). Metadata (batch, clocks,
    quantile, strings, other bytes) is left alone.

    Protocol faults change what goes on the wire:
        bad-signature   the honest message with one signature bit flipped
        wrong-role      a valid signature by another role's key (loaded
                        from the key directory; a throwaway key if none)
        replay          the first message, then that captured message again
        stale-tick      signed, with a send time an hour in the past
        truncated       the first half of the honest frame
        oversized       a frame one byte over the size cap (every 8th tick)
        malformed       bytes that do not decode as a SignedMessage
        wrong-batch-size  signed, with batch = B + 1
        silence         nothing at all
    Everything is deterministic given (seed, role, replica).
*/
#ifndef QT_BYZANTINE_H_INCLUDED
#define QT_BYZANTINE_H_INCLUDED

#include <stdbool.h>
#include <stdint.h>
#include <czmq.h>
#include "quintet.pb-c.h"
#include "qt_envelope.h"

#define QT_BYZANTINE_TAU_IPM        2.0
#define QT_BYZANTINE_TAU_ALIE       1.5
#define QT_BYZANTINE_SPREAD         0.5     //  sigma stand-in, relative to max(|mu|, 1)
#define QT_BYZANTINE_EXTREME_VALUE  1e300
#define QT_BYZANTINE_DRIFT_RATE     1e-3    //  bias added per message, relative
#define QT_BYZANTINE_OUT_OF_RANGE   1000    //  added to integers by inf and nan
#define QT_BYZANTINE_STALE_S        3600    //  stale-tick: send time this far back
#define QT_BYZANTINE_OVERSIZE_EVERY 8       //  oversized: one frame per this many ticks

typedef enum {
    QT_BYZANTINE_HONEST = 0,
    QT_BYZANTINE_SIGN_FLIP,
    QT_BYZANTINE_IPM,
    QT_BYZANTINE_ALIE,
    QT_BYZANTINE_GAUSSIAN,
    QT_BYZANTINE_INF,
    QT_BYZANTINE_NAN,
    QT_BYZANTINE_MIMIC,
    QT_BYZANTINE_EXTREME,
    QT_BYZANTINE_DRIFT,
    QT_BYZANTINE_BAD_SIGNATURE,         //  first protocol fault
    QT_BYZANTINE_WRONG_ROLE,
    QT_BYZANTINE_REPLAY,
    QT_BYZANTINE_STALE_TICK,
    QT_BYZANTINE_TRUNCATED,
    QT_BYZANTINE_OVERSIZED,
    QT_BYZANTINE_MALFORMED,
    QT_BYZANTINE_WRONG_BATCH_SIZE,
    QT_BYZANTINE_SILENCE,
    QT_BYZANTINE_MODES
} qt_byzantine_mode_t;

//  Stable name of a mode ("sign-flip"), as given on the command line
const char *qt_byzantine_mode_name (qt_byzantine_mode_t mode);

//  Mode of a name; -1 for an unknown name
int qt_byzantine_mode_parse (const char *name, qt_byzantine_mode_t *mode);

//  True for the value attacks (sign-flip .. drift)
bool qt_byzantine_mode_is_value (qt_byzantine_mode_t mode);

typedef struct _qt_byzantine_t qt_byzantine_t;

//  A liar for one replica of a role. key_dir (may be NULL) holds the
//  deployment's secret keys: wrong-role signs with another role's key there.
qt_byzantine_t *qt_byzantine_new (qt_byzantine_mode_t mode, uint64_t seed, const char *role,
                                  uint32_t replica, const char *key_dir);
void qt_byzantine_destroy (qt_byzantine_t **self_p);

//  The encoded payload to publish for an honest payload (the lie for value
//  attacks and wrong-batch-size, the honest encoding otherwise). The caller
//  frees the returned bytes.
uint8_t *qt_byzantine_payload (qt_byzantine_t *self, const ProtobufCMessage *payload,
                               size_t *size);

//  The frame to send for encoded payload bytes, or NULL to send nothing.
zframe_t *qt_byzantine_seal (qt_byzantine_t *self, qt_signer_t *signer, Quintet__PayloadType type,
                             uint64_t tick, const uint8_t *payload, size_t size);

void qt_byzantine_test (bool verbose);

#endif
