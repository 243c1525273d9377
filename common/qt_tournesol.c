/*  qt_tournesol: Tournesol's Lipschitz-resilient quantile (QrQtl) and median
    (QrMed), after solidago's primitives, with the root of
    QrQtl's optimality condition found by bisection in a closed-form bracket
    so that it cannot fail or wander, whatever the raters send.
*/
#include "quintet.h"
#include "qt_selftest.h"

//  Seeds and sizes of the property tests.
#define TEST_SEED        20240611
#define TEST_TRIALS      50
#define TEST_RATERS      40

static bool
s_rating_is_valid (const qt_rating_t *rating)
{
    return isfinite (rating->value)
        && isfinite (rating->weight) && rating->weight >= 0
        && isfinite (rating->left) && rating->left >= 0
        && isfinite (rating->right) && rating->right >= 0;
}

//  g(m), QrQtl's optimality condition, in a form that stays accurate where
//  the pulls of the ratings almost cancel (e.g. q = 0.9 with 9 times more
//  weight below m than above, where the root is decided by the prior and
//  the uncertainties, terms 1e-14 of the total pull). Each pull is split
//  into its saturated value w and the deficit w (1 - |delta| / h), computed
//  without cancellation as w D^2 / (h (h + |delta|)), h = hypot (D, delta).
//  The saturated balance s_below W_below - s_above W_above is computed
//  as (keep W_below - q W_above) / max (q, keep), keep = 1 - q, with a
//  fused multiply-add so that it is exactly 0 when the weights balance.
static double
s_condition (const qt_rating_t *ratings, size_t n, double lipschitz,
             double q, double prior, double m)
{
    double weight_below = 0, weight_above = 0;
    double deficit_below = 0, deficit_above = 0;
    for (size_t i = 0; i < n; i++) {
        const qt_rating_t *rating = &ratings [i];
        if (!s_rating_is_valid (rating) || rating->weight == 0)
            continue;
        double delta = m - rating->value;
        if (delta == 0)
            continue;               //  a rating at m pulls neither way
        double uncertainty = delta > 0? rating->right: rating->left;
        double deficit = 0;
        if (uncertainty > 0) {
            double h = hypot (uncertainty, delta);
            deficit = rating->weight * (uncertainty / h) * (uncertainty / (h + fabs (delta)));
        }
        if (delta > 0) {
            weight_below += rating->weight;
            deficit_below += deficit;
        }
        else {
            weight_above += rating->weight;
            deficit_above += deficit;
        }
    }
    double keep = 1 - q;
    double scale = fmax (q, keep);
    double product = q * weight_above;
    double product_error = fma (q, weight_above, -product);
    double saturated = (fma (keep, weight_below, -product) - product_error) / scale;
    double deficits = (q * deficit_above - keep * deficit_below) / scale;
    double regularization = isinf (lipschitz)? 0: (m - prior) / lipschitz;
    return regularization + saturated + deficits;
}

double
qt_qrquantile (const qt_rating_t *ratings, size_t n, double lipschitz,
               double q, double prior, double tolerance)
{
    if ((n > 0 && !ratings) || !(lipschitz > 0) || !(q > 0 && q < 1)
    ||  !isfinite (prior) || isnan (tolerance))
        return NAN;
    if (tolerance <= 0)
        tolerance = QT_TOURNESOL_TOLERANCE;

    //  Bracket: beyond every rating and the prior, all terms pull back
    //  towards them; and since each rating pulls with at most its weight,
    //  |m - prior| / L <= W at the root.
    double low = prior, high = prior, total = 0;
    for (size_t i = 0; i < n; i++) {
        if (!s_rating_is_valid (&ratings [i]) || ratings [i].weight == 0)
            continue;
        low = fmin (low, ratings [i].value);
        high = fmax (high, ratings [i].value);
        total += ratings [i].weight;
    }
    if (total == 0)
        return prior;
    if (isfinite (lipschitz)) {
        low = fmax (low, prior - lipschitz * total);
        high = fmin (high, prior + lipschitz * total);
    }
    while (!(high - low <= tolerance)) {
        double middle = low / 2 + high / 2;
        if (middle <= low || middle >= high)
            break;                  //  no double left between the ends
        double condition = s_condition (ratings, n, lipschitz, q, prior, middle);
        if (condition < 0)
            low = middle;
        else
        if (condition > 0)
            high = middle;
        else
            return middle;
    }
    return low / 2 + high / 2;
}

double
qt_qrmedian (const qt_rating_t *ratings, size_t n, double lipschitz,
             double prior, double tolerance)
{
    return qt_qrquantile (ratings, n, lipschitz, 0.5, prior, tolerance);
}

//  --------------------------------------------------------------------------
//  Selftest

//  Ratings with the same uncertainty on both sides.
static void
s_fill (qt_rating_t *ratings, const double *values, size_t n, double weight,
        double uncertainty)
{
    for (size_t i = 0; i < n; i++)
        ratings [i] = (qt_rating_t) {
            .value = values [i], .weight = weight,
            .left = uncertainty, .right = uncertainty
        };
}

//  Solidago's evaluation of g, term by term in input order, as a float
//  program does it; only to show where its reference value comes from.
static double
s_naive_condition (const qt_rating_t *ratings, size_t n, double lipschitz,
                   double q, double m)
{
    double above = fmin (1, q / (1 - q));
    double below = fmin (1, (1 - q) / q);
    double sum = m / lipschitz;
    for (size_t i = 0; i < n; i++) {
        double delta = m - ratings [i].value;
        double uncertainty = delta < 0? ratings [i].left: ratings [i].right;
        double pull = ratings [i].weight * delta
                    / sqrt (uncertainty * uncertainty + delta * delta);
        sum += pull < 0? pull * above: pull * below;
    }
    return sum;
}

static double
s_naive_root (const qt_rating_t *ratings, size_t n, double lipschitz, double q,
              double low, double high)
{
    while (high - low > QT_TOURNESOL_TOLERANCE) {
        double middle = low / 2 + high / 2;
        if (s_naive_condition (ratings, n, lipschitz, q, middle) < 0)
            low = middle;
        else
            high = middle;
    }
    return low / 2 + high / 2;
}

//  Reference values from solidago's test suite (robust-stats.md).
static void
s_test_reference (void)
{
    qt_rating_t ratings [1000];

    //  QrMed resilience: the lone rating at -10 is outvoted, and the two
    //  above pull the median to 1 against the prior at 0.
    double three [] = { -10, 5, 10 };
    double left [] = { 1e-3, 1e-7, 1e-3 };
    double right [] = { 1e-5, 1e-3, 1e-4 };
    for (size_t i = 0; i < 3; i++)
        ratings [i] = (qt_rating_t) {
            .value = three [i], .weight = 1, .left = left [i], .right = right [i]
        };
    QT_CHECK (fabs (qt_qrmedian (ratings, 3, 1, 0, 0) - 1.0) <= 1e-3);

    //  Certain ratings and a negligible prior: the plain quantile
    double ten [] = { 0, 1, 2, 6, 9, 5, 3, 5, 4, 7 };
    s_fill (ratings, ten, 10, 1, 0);
    QT_CHECK (fabs (qt_qrquantile (ratings, 10, 1e9, 0.21, 0, 0) - 2) <= 1e-3);

    //  Strong prior, half at -1 and half at +1
    for (size_t i = 0; i < 1000; i++)
        ratings [i] = (qt_rating_t) {
            .value = i < 500? -1: 1, .weight = 1, .left = 0.1, .right = 0.1
        };
    QT_CHECK (fabs (qt_qrquantile (ratings, 1000, 0.1, 0.1, 0, 0) - -0.986816) <= 1e-4);

    //  Exactly balanced pulls between 1899 and 1900: the root is set by
    //  the tiny uncertainties and prior, terms 1e-14 of the total pull.
    for (size_t i = 0; i < 1000; i++)
        ratings [i] = (qt_rating_t) {
            .value = 1000 + (double) i, .weight = 1000, .left = 1e-6, .right = 1e-6
        };
    //  Solidago's 1899.1817 is the root of its float evaluation, where each
    //  pull is rounded and summed in input order: the accumulated rounding
    //  (1e-10) outweighs the deciding terms. Summed exactly, the root is
    //  1899.14026 (checked to 1e-10 with 50-digit decimal arithmetic);
    //  permuting the raters moves solidago's answer, not ours.
    double high = qt_qrquantile (ratings, 1000, 1e12, 0.9, 0, 0);
    QT_CHECK (fabs (high - 1899.1402640187) <= 1e-6);
    QT_CHECK (fabs (s_naive_root (ratings, 1000, 1e12, 0.9, 1899, 1900) - 1899.1817) <= 1e-4);
}

//  Random ratings: values N(0, 3), weights in [0.5, 1.5), uncertainties
//  in [0, 0.5).
static void
s_random_ratings (qt_rng_t *rng, qt_rating_t *ratings, size_t n)
{
    for (size_t i = 0; i < n; i++)
        ratings [i] = (qt_rating_t) {
            .value = 3 * qt_rng_normal (rng),
            .weight = 0.5 + qt_rng_uniform (rng),
            .left = 0.5 * qt_rng_uniform (rng),
            .right = 0.5 * qt_rng_uniform (rng)
        };
}

//  Lipschitz resilience: one rater of weight w added anywhere moves QrQtl
//  by at most L w; one rater changing its report arbitrarily, by 2 L w.
//  Also: QrQtl grows with q, and translates with the data and the prior.
static void
s_test_resilience (qt_rng_t *rng)
{
    double lipschitzes [] = { 0.01, 0.1, 1, 10 };
    double quantiles [] = { 0.1, 0.5, 0.9 };
    double far [] = { 1e6, -1e12, 1e300 };
    double slack = 2 * QT_TOURNESOL_TOLERANCE;
    qt_rating_t ratings [TEST_RATERS + 1];
    for (int trial = 0; trial < TEST_TRIALS; trial++) {
        size_t n = 1 + qt_rng_below (rng, TEST_RATERS);
        s_random_ratings (rng, ratings, n);
        double lipschitz = lipschitzes [trial % 4];
        double previous = -INFINITY;
        for (size_t k = 0; k < 3; k++) {
            double q = quantiles [k];
            double base = qt_qrquantile (ratings, n, lipschitz, q, 0, 0);
            QT_CHECK (isfinite (base) && base >= previous - slack);
            previous = base;
            for (size_t f = 0; f < 3; f++) {
                double weight = 2 * qt_rng_uniform (rng);
                ratings [n] = (qt_rating_t) {
                    .value = far [f], .weight = weight, .left = 0, .right = 0
                };
                double added = qt_qrquantile (ratings, n + 1, lipschitz, q, 0, 0);
                QT_CHECK (fabs (added - base) <= lipschitz * weight + slack);
                //  Rater 0 turns from its value to the far one
                qt_rating_t honest = ratings [0];
                ratings [0].value = far [f];
                double changed = qt_qrquantile (ratings, n, lipschitz, q, 0, 0);
                QT_CHECK (fabs (changed - base) <= 2 * lipschitz * honest.weight + slack);
                ratings [0] = honest;
            }
            //  Translation of every value and the prior
            double shift = 100 * qt_rng_normal (rng);
            qt_rating_t shifted [TEST_RATERS];
            for (size_t i = 0; i < n; i++) {
                shifted [i] = ratings [i];
                shifted [i].value += shift;
            }
            double moved = qt_qrquantile (shifted, n, lipschitz, q, shift, 0);
            QT_CHECK (fabs (moved - (base + shift)) <= 1e-6);
        }
    }
}

//  Invalid ratings are ignored; q outside (0, 1) is invalid; a large L and
//  certain ratings give the plain median, INFINITY ignores the prior.
static void
s_test_invalid (qt_rng_t *rng)
{
    qt_rating_t ratings [TEST_RATERS], valid [TEST_RATERS];
    s_random_ratings (rng, ratings, TEST_RATERS);
    ratings [3].value = NAN;
    ratings [5].weight = -1;
    ratings [7].left = -0.5;
    ratings [9].weight = INFINITY;
    size_t kept = 0;
    for (size_t i = 0; i < TEST_RATERS; i++)
        if (i != 3 && i != 5 && i != 7 && i != 9)
            valid [kept++] = ratings [i];
    QT_CHECK (qt_qrmedian (ratings, TEST_RATERS, 0.5, 2, 1e-12)
         == qt_qrmedian (valid, kept, 0.5, 2, 1e-12));
    QT_CHECK (qt_qrquantile (ratings, TEST_RATERS, 0.5, 0.2, 2, 1e-12)
         == qt_qrquantile (valid, kept, 0.5, 0.2, 2, 1e-12));
    //  Tolerance is honoured: default and tight answers agree to it
    QT_CHECK (fabs (qt_qrmedian (valid, kept, 0.5, 2, 0)
                - qt_qrmedian (valid, kept, 0.5, 2, 1e-12)) <= QT_TOURNESOL_TOLERANCE);
    QT_CHECK (isnan (qt_qrquantile (valid, kept, 0.5, 0, 2, 0)));
    QT_CHECK (isnan (qt_qrquantile (valid, kept, 0.5, 1, 2, 0)));
    QT_CHECK (qt_qrmedian (valid, 0, 0.5, 2, 0) == 2);     //  the prior

    double values [] = { 4, -1, 9, 2, 7 };
    s_fill (ratings, values, 5, 1, 0);
    QT_CHECK (fabs (qt_qrmedian (ratings, 5, 1e9, 0, 0) - 4) < 1e-6);
    QT_CHECK (fabs (qt_qrmedian (ratings, 5, INFINITY, 1e6, 0) - 4) < 1e-6);
}

void
qt_tournesol_test (bool verbose)
{
    if (verbose)
        printf (" * qt_tournesol: ");
    qt_rng_t rng;
    qt_rng_seed (&rng, TEST_SEED, 0);
    s_test_reference ();
    s_test_resilience (&rng);
    s_test_invalid (&rng);
    if (verbose)
        printf ("OK\n");
}
