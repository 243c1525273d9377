/*  qt_robust: Byzantine-resilient aggregation.

    Every place where one role consumes the outputs of another role's
    replicas goes through one of these. Inputs are n rows of dimension d,
    row-major. Rows holding NaN or +-inf are rejected before aggregation
    (reported, never propagated). Functions return 0 on success, -1 when no
    usable row is left or arguments are invalid.
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
int qt_geomedian (const double *x, const double *w, size_t n, size_t d,
                  double tol, int max_iter, double *z, qt_geomedian_report_t *report);

//  Coordinate-wise median (mean of the two middle values for even counts).
int qt_coordmedian (const double *x, size_t n, size_t d, double *z);

//  Median of n doubles, non-finite values ignored. Returns NAN when none.
double qt_median (const double *v, size_t n);

//  Weighted q-quantile of n values (majority judgment: q = 0.5 is the median
//  rater; the result s satisfies: weight below s <= q, weight above <= 1-q).
//  w may be NULL. Non-finite values ignored. Returns NAN when none.
double qt_quantile (const double *v, const double *w, size_t n, double q);

void qt_robust_test (bool verbose);

#endif
