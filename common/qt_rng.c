/*  qt_rng: xoshiro256** (Blackman & Vigna) with splitmix64 seeding. */
#include "quintet.h"
#include "qt_selftest.h"

static uint64_t
s_splitmix64 (uint64_t *x)
{
    uint64_t z = (*x += 0x9E3779B97F4A7C15ULL);
    z = (z ^ (z >> 30)) * 0xBF58476D1CE4E5B9ULL;
    z = (z ^ (z >> 27)) * 0x94D049BB133111EBULL;
    return z ^ (z >> 31);
}

void
qt_rng_seed (qt_rng_t *rng, uint64_t seed, uint64_t stream)
{
    uint64_t x = seed ^ s_splitmix64 (&stream);
    for (int i = 0; i < 4; i++)
        rng->s [i] = s_splitmix64 (&x);
}

static inline uint64_t
s_rotl (uint64_t x, int k)
{
    return (x << k) | (x >> (64 - k));
}

uint64_t
qt_rng_next (qt_rng_t *rng)
{
    uint64_t *s = rng->s;
    uint64_t result = s_rotl (s [1] * 5, 7) * 9;
    uint64_t t = s [1] << 17;
    s [2] ^= s [0];
    s [3] ^= s [1];
    s [1] ^= s [2];
    s [0] ^= s [3];
    s [2] ^= t;
    s [3] = s_rotl (s [3], 45);
    return result;
}

double
qt_rng_uniform (qt_rng_t *rng)
{
    return (double) (qt_rng_next (rng) >> 11) * 0x1.0p-53;
}

uint32_t
qt_rng_below (qt_rng_t *rng, uint32_t n)
{
    assert (n > 0);
    //  Lemire's multiply-shift with rejection of the biased low range
    uint64_t m = (uint64_t) (uint32_t) (qt_rng_next (rng) >> 32) * n;
    uint32_t low = (uint32_t) m;
    if (low < n) {
        uint32_t threshold = (uint32_t) -n % n;
        while (low < threshold) {
            m = (uint64_t) (uint32_t) (qt_rng_next (rng) >> 32) * n;
            low = (uint32_t) m;
        }
    }
    return (uint32_t) (m >> 32);
}

bool
qt_rng_bernoulli (qt_rng_t *rng, double p)
{
    return qt_rng_uniform (rng) < p;
}

double
qt_rng_normal (qt_rng_t *rng)
{
    double u1 = qt_rng_uniform (rng);
    double u2 = qt_rng_uniform (rng);
    if (u1 < 1e-300)
        u1 = 1e-300;
    return sqrt (-2.0 * log (u1)) * cos (2.0 * M_PI * u2);
}

void
qt_rng_test (bool verbose)
{
    if (verbose)
        printf (" * qt_rng: ");
    qt_rng_t a, b, c;
    qt_rng_seed (&a, 42, 0);
    qt_rng_seed (&b, 42, 0);
#ifdef QT_SELFTEST_BREAK
    //  tests/selftest's ndebug-broken only: c seeded as a, so the check
    //  that two streams differ must fail (and abort, even under NDEBUG)
    qt_rng_seed (&c, 42, 0);
#else
    qt_rng_seed (&c, 42, 1);
#endif
    bool differ = false;
    for (int i = 0; i < 1000; i++) {
        uint64_t x = qt_rng_next (&a);
        QT_CHECK (x == qt_rng_next (&b));
        if (x != qt_rng_next (&c))
            differ = true;
    }
    QT_CHECK (differ);

    //  Moments of uniform and normal, and range of below()
    double sum = 0, sumsq = 0, nsum = 0, nsumsq = 0;
    uint32_t counts [7] = { 0 };
    const int draws = 200000;
    for (int i = 0; i < draws; i++) {
        double u = qt_rng_uniform (&a);
        QT_CHECK (u >= 0 && u < 1);
        sum += u;
        sumsq += u * u;
        double z = qt_rng_normal (&a);
        nsum += z;
        nsumsq += z * z;
        uint32_t k = qt_rng_below (&a, 7);
        QT_CHECK (k < 7);
        counts [k]++;
    }
    QT_CHECK (fabs (sum / draws - 0.5) < 0.01);
    QT_CHECK (fabs (sumsq / draws - 1.0 / 3) < 0.01);
    QT_CHECK (fabs (nsum / draws) < 0.02);
    QT_CHECK (fabs (nsumsq / draws - 1) < 0.02);
    for (int k = 0; k < 7; k++)
        QT_CHECK (fabs (counts [k] / (double) draws - 1.0 / 7) < 0.01);
    if (verbose)
        printf ("OK\n");
}
