/*  qt_rng: the seeded deterministic random generator every role uses.

    Honest replicas must agree bit for bit, so nothing in quintet draws from
    rand() or the clock: each consumer of randomness owns a qt_rng_t seeded
    from (config seed, stream id). xoshiro256** seeded through splitmix64; the
    state is a plain value so it can be embedded and checkpointed.
*/
#ifndef QT_RNG_H_INCLUDED
#define QT_RNG_H_INCLUDED

#include <stdbool.h>
#include <stdint.h>

typedef struct {
    uint64_t s[4];
} qt_rng_t;

//  Seed from a seed and a stream id (e.g. instance index): distinct streams
//  of one seed are independent.
void qt_rng_seed (qt_rng_t *rng, uint64_t seed, uint64_t stream);

//  Next 64 random bits.
uint64_t qt_rng_next (qt_rng_t *rng);

//  Uniform double in [0, 1), 53 bits.
double qt_rng_uniform (qt_rng_t *rng);

//  Uniform integer in [0, n), without modulo bias. n > 0.
uint32_t qt_rng_below (qt_rng_t *rng, uint32_t n);

//  True with probability p.
bool qt_rng_bernoulli (qt_rng_t *rng, double p);

//  Standard normal (Box-Muller, one value per call).
double qt_rng_normal (qt_rng_t *rng);

void qt_rng_test (bool verbose);

#endif
