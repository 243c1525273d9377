/*  qt_robust: Byzantine-resilient aggregation.

    Every place where one role consumes the outputs of another role's
    replicas goes through one of these. Inputs are n rows of dimension d,
    row-major. Rows holding NaN or +-inf are rejected before aggregation
    (reported, never propagated). Functions return 0 on success, -1 when no
    usable row is left or arguments are invalid.

    Honest replicas must agree bit for bit, so every aggregator here that is
    permutation invariant by definition is also bitwise permutation
    invariant: rows are put in a canonical order before any floating-point
    sum is taken. Krum and Multi-Krum break score ties by row index, so they
    depend on the order by definition.
*/
#ifndef QT_ROBUST_H_INCLUDED
#define QT_ROBUST_H_INCLUDED

#include <stdbool.h>
#include <stddef.h>

//  Default relative tolerance and iteration cap of the geometric median.
#define QT_GEOMEDIAN_TOLERANCE 1e-10
#define QT_GEOMEDIAN_MAX_ITER  1000

typedef struct {
    int iterations;     //  Weiszfeld steps taken
    bool converged;     //  true: relative objective change <= tolerance
                        //  (or exact: median is a data point); false: cap hit
    double objective;   //  sum_i w_i |x_i - z| at the result
    size_t used;        //  rows that took part (finite, weight > 0)
    size_t rejected;    //  rows dropped for non-finite values
} qt_geomedian_report_t;

//  Weighted geometric median (Weiszfeld with the Vardi-Zhang modification),
//  started at the weighted coordinate-wise median, stopped when the relative
//  change of the objective is <= tol or after max_iter steps. w may be NULL
//  (unit weights). Writes d values to z. report may be NULL.
//  tol <= 0 selects QT_GEOMEDIAN_TOLERANCE, max_iter <= 0 selects
//  QT_GEOMEDIAN_MAX_ITER. Rows whose weight is NaN, infinite or negative are
//  rejected like non-finite rows; rows of weight 0 are ignored.
//  The answer is exact (a copy of the data row) when the median is a data
//  point, also when that point wins by its weight. With d = 1 the result is
//  the weighted median, qt_quantile (x, w, n, 0.5). The computation is
//  scale-free: scaling the input by a power of two scales the result
//  bit for bit; there is no absolute smoothing constant.
int qt_geomedian (const double *x, const double *w, size_t n, size_t d,
                  double tol, int max_iter, double *z, qt_geomedian_report_t *report);

//  Coordinate-wise median (mean of the two middle values for even counts).
int qt_coordmedian (const double *x, size_t n, size_t d, double *z);

//  Median of n doubles, non-finite values ignored. Returns NAN when none.
double qt_median (const double *v, size_t n);

//  Weighted q-quantile of n values (majority judgment: q = 0.5 is the median
//  rater; the result s satisfies: weight below s <= q, weight above <= 1-q).
//  w may be NULL. Non-finite values ignored. Returns NAN when none.
//  When a whole interval satisfies this (the weight splits exactly at q),
//  the result is the middle of that interval, so q = 0.5 with unit weights
//  is the usual median. Values of weight <= 0 or non-finite weight are
//  ignored; q outside [0, 1] returns NAN.
double qt_quantile (const double *v, const double *w, size_t n, double q);

//  Weighted mean of the finite rows (w may be NULL): not robust, the
//  baseline the others are compared with.
int qt_mean (const double *x, const double *w, size_t n, size_t d, double *z);

//  Coordinate-wise trimmed mean: per coordinate, drop the f smallest and the
//  f largest values and average the rest. Needs more than 2f finite rows.
int qt_trimmed_mean (const double *x, size_t n, size_t d, size_t f, double *z);

//  Krum (Blanchard et al. 2017, ByzFL's scoring): the score of a row is the
//  sum of squared distances to its n-f-2 nearest other rows (n counting the
//  finite rows only; no neighbours when that is <= 0); the row of lowest
//  score is copied to z, ties to the lowest index. index, if not NULL,
//  receives that row's index in x.
int qt_krum (const double *x, size_t n, size_t d, size_t f, double *z, size_t *index);

//  Multi-Krum: the mean of the m rows of best Krum score (ties to the lowest
//  index). m is clamped to the number of finite rows; m = 0 is invalid.
int qt_multikrum (const double *x, size_t n, size_t d, size_t f, size_t m, double *z);

//  Centered clipping (Karimireddy et al. 2021): start at the coordinate-wise
//  median and repeat `rounds` times v <- v + mean_i clip (x_i - v, radius),
//  where clip scales a vector down to norm radius when it is longer.
int qt_centered_clip (const double *x, size_t n, size_t d, double radius,
                      int rounds, double *z);

void qt_robust_test (bool verbose);

#endif
