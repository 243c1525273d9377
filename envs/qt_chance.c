/*  qt_chance: random choices of environment modules, and the sampling
    implementation the world uses.
*/
#include <assert.h>
#include <math.h>
#include <stdio.h>

#include "qt_chance.h"
#include "qt_selftest.h"

uint32_t
qt_chance_sample (const double *p, uint32_t n, double u)
{
    assert (n > 0);
    double cumulative = 0;
    for (uint32_t k = 0; k + 1 < n; k++) {
        cumulative += p [k];
        if (u < cumulative)
            return k;
    }
    //  Rounding never picks an outcome of probability 0 at the end
    uint32_t last = n - 1;
    while (last > 0 && p [last] <= 0)
        last--;
    return last;
}

bool
qt_chance_bernoulli (qt_chance_t *chance, double p)
{
    double outcomes [2] = { 1 - p, p };
    return chance->pick (chance, outcomes, 2) == 1;
}

uint32_t
qt_chance_below (qt_chance_t *chance, uint32_t n)
{
    assert (n >= 1 && n <= QT_CHANCE_MAX_OUTCOMES);
    double outcomes [QT_CHANCE_MAX_OUTCOMES];
    for (uint32_t k = 0; k < n; k++)
        outcomes [k] = 1.0 / n;
    return chance->pick (chance, outcomes, n);
}

static uint32_t
s_rng_pick (qt_chance_t *base, const double *p, uint32_t n)
{
    qt_chance_rng_t *self = (qt_chance_rng_t *) base;
    return qt_chance_sample (p, n, qt_rng_uniform (self->rng));
}

void
qt_chance_rng_init (qt_chance_rng_t *self, qt_rng_t *rng)
{
    self->base.pick = s_rng_pick;
    self->rng = rng;
}

void
qt_chance_test (bool verbose)
{
    if (verbose)
        printf (" * qt_chance: ");
    double p [3] = { 0.25, 0.0, 0.75 };
    QT_CHECK (qt_chance_sample (p, 3, 0.0) == 0);
    QT_CHECK (qt_chance_sample (p, 3, 0.2499) == 0);
    QT_CHECK (qt_chance_sample (p, 3, 0.25) == 2);
    QT_CHECK (qt_chance_sample (p, 3, 0.999999) == 2);
    double tail [3] = { 0.5, 0.5, 0.0 };
    QT_CHECK (qt_chance_sample (tail, 3, 0.9999999999) == 1);

    qt_rng_t rng;
    qt_rng_seed (&rng, 7, 0);
    qt_chance_rng_t chance;
    qt_chance_rng_init (&chance, &rng);
    uint32_t ones = 0, counts [4] = { 0 };
    const uint32_t draws = 20000;
    for (uint32_t i = 0; i < draws; i++) {
        ones += qt_chance_bernoulli (&chance.base, 0.3);
        counts [qt_chance_below (&chance.base, 4)]++;
    }
    QT_CHECK (fabs (ones / (double) draws - 0.3) < 0.02);
    for (uint32_t k = 0; k < 4; k++)
        QT_CHECK (fabs (counts [k] / (double) draws - 0.25) < 0.02);
    if (verbose)
        printf ("OK\n");
}
