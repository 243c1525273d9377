/*  qt_chance: the only way an environment module draws randomness.

    An environment's reset and step functions never touch a generator
    directly: every random choice goes through a qt_chance_t, one call per
    choice, with the probabilities of its outcomes. The world backs it with a
    seeded generator (qt_chance_rng_t: it simply samples). The world model
    backs it with its own implementation, which may *steer* the choices of a
    particle towards what the sensors read and knows the probability of every
    outcome it took; that is how the world model uses the very step function
    the world simulates with as its transition model, and still gets an
    importance weight for a steered particle (see daemons/worldmodel/filter.h).

    A choice has at most QT_CHANCE_MAX_OUTCOMES outcomes; a step makes at most
    QT_CHANCE_MAX_DRAWS choices (more are still answered, by sampling, but a
    steering implementation only steers the first ones).
*/
#ifndef QT_CHANCE_H_INCLUDED
#define QT_CHANCE_H_INCLUDED

#include <stdbool.h>
#include <stdint.h>

#include "qt_rng.h"

#define QT_CHANCE_MAX_OUTCOMES  16
#define QT_CHANCE_MAX_DRAWS     64

typedef struct qt_chance_t qt_chance_t;

struct qt_chance_t {
    //  One choice among n outcomes with probabilities p [0..n-1] (they sum
    //  to 1; zero entries are allowed). Returns the outcome taken.
    uint32_t (*pick) (qt_chance_t *self, const double *p, uint32_t n);
};

//  True with probability p.
bool qt_chance_bernoulli (qt_chance_t *chance, double p);

//  Uniform among n outcomes, 1 <= n <= QT_CHANCE_MAX_OUTCOMES.
uint32_t qt_chance_below (qt_chance_t *chance, uint32_t n);

//  A chance that samples from a seeded generator (the world's).
typedef struct {
    qt_chance_t base;
    qt_rng_t *rng;
} qt_chance_rng_t;

//  Bind a sampling chance to a generator the caller owns.
void qt_chance_rng_init (qt_chance_rng_t *self, qt_rng_t *rng);

//  Sample an outcome of p [0..n-1] with one uniform draw u in [0, 1)
//  (shared by every implementation, so they agree on what u means).
uint32_t qt_chance_sample (const double *p, uint32_t n, double u);

void qt_chance_test (bool verbose);

#endif
