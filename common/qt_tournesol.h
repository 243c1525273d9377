/*  qt_tournesol: Lipschitz-resilient scalar aggregation of weighted ratings
    (Tournesol's solidago primitives: QrQtl, QrMed, BrMean).

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

    Two ways to use it: the stateless functions on an array of qt_rating_t,
    or the qt_tournesol_t class, which collects ratings one by one and keeps
    the parameters.

        qt_tournesol_t *poll = qt_tournesol_new (0.1);
        qt_tournesol_add (poll, 3.5, 1.0, 0.2, 0.2);
        ...
        double score = qt_tournesol_median (poll);
        qt_tournesol_destroy (&poll);
*/
#ifndef QT_TOURNESOL_H_INCLUDED
#define QT_TOURNESOL_H_INCLUDED

#include <stdbool.h>
#include <stddef.h>

//  Default absolute tolerance on the result of QrQtl, QrMed and BrMean.
#define QT_TOURNESOL_TOLERANCE 1e-9

typedef struct {
    double value;       //  the rater's score
    double weight;      //  voting right, >= 0 (0: does not count)
    double left;        //  left uncertainty, >= 0
    double right;       //  right uncertainty, >= 0
} qt_rating_t;

//  Stateless API. Ratings with a non-finite field, a negative weight or a
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

//  BrMean, the Lipschitz-resilient mean (Allouah, Guerraoui, Hoang,
//  Villemaud, "Robust Sparse Voting", AISTATS 2024): the weighted mean of
//  the values clipped to [c - r, c + r], with c = QrMed at L/4 and
//  r = L W / 4, W the total weight. It is the weighted mean when
//  participation is large enough for every value to lie within r of c.
//  Returns prior when the total weight is 0. Needs a finite lipschitz.
double qt_brmean (const qt_rating_t *ratings, size_t n, double lipschitz,
                  double prior, double tolerance);

//  Class API: a poll collecting the ratings of one entity.
typedef struct _qt_tournesol_t qt_tournesol_t;

//  New poll with Lipschitz resilience lipschitz (> 0), prior 0 and the
//  default tolerance. NULL when lipschitz is invalid.
qt_tournesol_t *qt_tournesol_new (double lipschitz);

//  Destroy a poll; idempotent, sets *self_p to NULL.
void qt_tournesol_destroy (qt_tournesol_t **self_p);

//  Set the prior (the result without ratings; default 0).
void qt_tournesol_set_prior (qt_tournesol_t *self, double prior);

//  Set the absolute tolerance of the results (<= 0: the default).
void qt_tournesol_set_tolerance (qt_tournesol_t *self, double tolerance);

//  Add one rating. Returns -1 (and ignores it) when a field is non-finite,
//  the weight or an uncertainty is negative.
int qt_tournesol_add (qt_tournesol_t *self, double value, double weight,
                      double left, double right);

//  Number of ratings held.
size_t qt_tournesol_size (qt_tournesol_t *self);

//  Forget all ratings, keep the parameters.
void qt_tournesol_reset (qt_tournesol_t *self);

//  QrQtl, QrMed and BrMean of the ratings held.
double qt_tournesol_quantile (qt_tournesol_t *self, double q);
double qt_tournesol_median (qt_tournesol_t *self);
double qt_tournesol_mean (qt_tournesol_t *self);

void qt_tournesol_test (bool verbose);

#endif
