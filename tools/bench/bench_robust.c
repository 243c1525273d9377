/*  bench_robust: wall time and Weiszfeld iterations of the geometric median
    over the input sizes quintet aggregates (n replicas x d coordinates), on
    seeded Gaussian data with one input sent far away, as a Byzantine
    replica would. Prints a table; it measures, it never judges.
*/
#include "quintet.h"

#define BENCH_SEED      20240612
#define BENCH_REPEATS   21          //  odd, so the median run is one run
#define BENCH_OUTLIER   1e6         //  distance of the Byzantine input
#define NS_PER_SECOND   1000000000.0
#define US_PER_SECOND   1000000.0

static const size_t s_replicas [] = { 3, 5, 16, 64 };
static const size_t s_dimensions [] = { 1, 8, 128, 1024 };

static double
s_now (void)
{
    struct timespec now;
    clock_gettime (CLOCK_MONOTONIC, &now);
    return (double) now.tv_sec + (double) now.tv_nsec / NS_PER_SECOND;
}

//  Honest rows N(0, 1), the last row N(0, 1) pushed BENCH_OUTLIER away.
static void
s_fill (qt_rng_t *rng, double *x, size_t n, size_t d)
{
    for (size_t k = 0; k < n * d; k++)
        x [k] = qt_rng_normal (rng);
    for (size_t j = 0; j < d; j++)
        x [(n - 1) * d + j] += BENCH_OUTLIER;
}

int
main (void)
{
    printf ("geometric median: median of %d runs, tolerance %g, cap %d, "
            "one input %g away\n", BENCH_REPEATS, QT_GEOMEDIAN_TOLERANCE,
            QT_GEOMEDIAN_MAX_ITER, BENCH_OUTLIER);
    printf ("%6s %6s %12s %11s %10s\n", "n", "d", "time (us)", "iterations", "converged");
    qt_rng_t rng;
    qt_rng_seed (&rng, BENCH_SEED, 0);
    for (size_t a = 0; a < sizeof (s_replicas) / sizeof (s_replicas [0]); a++)
    for (size_t b = 0; b < sizeof (s_dimensions) / sizeof (s_dimensions [0]); b++) {
        size_t n = s_replicas [a], d = s_dimensions [b];
        double *x = (double *) malloc (n * d * sizeof (double));
        double *z = (double *) malloc (d * sizeof (double));
        double times [BENCH_REPEATS];
        assert (x && z);
        s_fill (&rng, x, n, d);
        qt_geomedian_report_t report;
        for (int run = 0; run < BENCH_REPEATS; run++) {
            double start = s_now ();
            int rc = qt_geomedian (x, NULL, n, d, QT_GEOMEDIAN_TOLERANCE,
                                   QT_GEOMEDIAN_MAX_ITER, z, &report);
            times [run] = s_now () - start;
            assert (rc == 0);
            (void) rc;              //  (unused under NDEBUG)
        }
        double median = qt_median (times, BENCH_REPEATS);
        printf ("%6zu %6zu %12.1f %11d %10s\n", n, d, median * US_PER_SECOND,
                report.iterations, report.converged? "yes": "no");
        free (x);
        free (z);
    }
    return 0;
}
