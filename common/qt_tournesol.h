/*  qt_tournesol: Lipschitz-resilient scalar aggregation of weighted ratings
    (Tournesol's solidago primitives: QrQtl, QrMed).

    A rating is a value with a voting right (weight) and left and right
    uncertainties. QrQtl is the root m of

        g(m) = (m - prior) / L + sum_i w_i s_i (m - x_i) / sqrt(D_i^2 + (m - x_i)^2)

    where D_i is the left uncertainty of rating i when m < x_i and its right
    uncertainty when m > x_i, and s_i = min (1, q / (1 - q)) for ratings above
    m, min (1, (1 - q) / q) for ratings below. g is increasing, so the root
    is unique; it is found by bisection inside a bracket known in closed form,
    to an absolute tolerance on m. Adding, removing or changing the weight of
    one rating of weight w moves QrQtl by at most L w (2 L w when it changes
    its report arbitrarily): no single rater can drag the result far, however
    extreme its value. The prior is the result when there is no rating.
*/
#ifndef QT_TOURNESOL_H_INCLUDED
#define QT_TOURNESOL_H_INCLUDED

#include <stdbool.h>
#include <stddef.h>

//  Default absolute tolerance on the result of QrQtl and QrMed.
#define QT_TOURNESOL_TOLERANCE 1e-9

typedef struct {
    double value;       //  the rater's score
    double weight;      //  voting right, >= 0 (0: does not count)
    double left;        //  left uncertainty, >= 0
    double right;       //  right uncertainty, >= 0
} qt_rating_t;

//  Ratings with a non-finite field, a negative weight or a
//  negative uncertainty are ignored. lipschitz must be > 0 (INFINITY: no
//  regularization, the plain uncertain quantile). tolerance <= 0 selects
//  QT_TOURNESOL_TOLERANCE; the result is within max (tolerance, one ulp)
//  of the exact root. Return NAN on invalid arguments.

//  QrQtl, the Lipschitz-resilient q-quantile, 0 < q < 1.
double qt_qrquantile (const qt_rating_t *ratings, size_t n, double lipschitz,
                      double q, double prior, double tolerance);

//  QrMed: QrQtl with q = 1/2.
double qt_qrmedian (const qt_rating_t *ratings, size_t n, double lipschitz,
                    double prior, double tolerance);

void qt_tournesol_test (bool verbose);

#endif
