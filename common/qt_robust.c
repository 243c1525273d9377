/*  qt_robust: Byzantine-resilient aggregators (geometric median, coordinate
    median, quantile, trimmed mean, Krum, Multi-Krum, centered clipping,
    mean around the median), the pre-aggregations (nearest-neighbour mixing,
    bucketing) and the table of rules the aggregator is configured with.

    Common shape of every aggregator: collect the usable rows (finite
    values, usable weight), put them in a canonical order so that sums do not
    depend on arrival order, scale them by a power of two so that the
    largest magnitude is below 1 (exact, so results are bitwise scale
    equivariant for powers of two, and squared norms of rows near 1e300
    cannot overflow), compute, and scale back.
*/
#include "quintet.h"
#include "qt_selftest.h"
#include <float.h>

//  Distances below this, relative to the magnitude of the points compared,
//  are a coincidence: far under the rounding error of any iterate, so
//  treating the point as "at" the iterate loses nothing.
#define GEOMEDIAN_COINCIDENT 0x1p-100

//  Seeds and sizes of the property tests.
#define TEST_SEED       20240607
#define TEST_TRIALS     20
#define TEST_TOLERANCE  1e-15
#define TEST_MAX_ITER   100000

//  A usable input row, with what the canonical order needs.
typedef struct {
    const double *values;
    double weight;
    size_t dimension;
    size_t index;       //  position in the caller's array
} s_row_t;

//  A value with its weight, for quantiles.
typedef struct {
    double value;
    double weight;
} s_pair_t;

static bool
s_row_is_finite (const double *row, size_t d)
{
    for (size_t j = 0; j < d; j++)
        if (!isfinite (row [j]))
            return false;
    return true;
}

//  Lexicographic on the values, then the weight: identical rows are
//  interchangeable, so any order among them gives the same sums.
static int
s_row_compare (const void *a, const void *b)
{
    const s_row_t *left = (const s_row_t *) a;
    const s_row_t *right = (const s_row_t *) b;
    for (size_t j = 0; j < left->dimension; j++) {
        if (left->values [j] < right->values [j])
            return -1;
        if (left->values [j] > right->values [j])
            return 1;
    }
    return (left->weight > right->weight) - (left->weight < right->weight);
}

static int
s_pair_compare (const void *a, const void *b)
{
    const s_pair_t *left = (const s_pair_t *) a;
    const s_pair_t *right = (const s_pair_t *) b;
    if (left->value != right->value)
        return (left->value > right->value) - (left->value < right->value);
    return (left->weight > right->weight) - (left->weight < right->weight);
}

static int
s_double_compare (const void *a, const void *b)
{
    double left = *(const double *) a;
    double right = *(const double *) b;
    return (left > right) - (left < right);
}

//  Collects the usable rows of x into rows (capacity n). Returns how many;
//  *rejected counts rows with a non-finite value or an invalid weight.
//  With canonical, the rows are sorted into the canonical order.
static size_t
s_collect (const double *x, const double *w, size_t n, size_t d, bool canonical,
           s_row_t *rows, size_t *rejected)
{
    size_t used = 0;
    *rejected = 0;
    for (size_t i = 0; i < n; i++) {
        double weight = w? w [i]: 1.0;
        if (!s_row_is_finite (x + i * d, d) || !isfinite (weight) || weight < 0) {
            (*rejected)++;
            continue;
        }
        if (weight == 0)
            continue;
        rows [used++] = (s_row_t) {
            .values = x + i * d, .weight = weight, .dimension = d, .index = i
        };
    }
    if (canonical && used > 1)
        qsort (rows, used, sizeof (s_row_t), s_row_compare);
    return used;
}

//  Binary exponent e such that every value of the rows divided by 2^e has
//  magnitude below 1. 0 when all values are 0.
static int
s_scale_exponent (const s_row_t *rows, size_t used, size_t d)
{
    double largest = 0;
    for (size_t i = 0; i < used; i++)
        for (size_t j = 0; j < d; j++)
            largest = fmax (largest, fabs (rows [i].values [j]));
    int exponent = 0;
    if (largest > 0)
        frexp (largest, &exponent);
    return exponent;
}

//  value * 2^exponent. A multiplication by a power of two built from its
//  bits rounds exactly like ldexp and costs a fraction of the call, which
//  matters: it runs on every input value.
static inline double
s_scale (double value, int exponent)
{
    if (exponent >= DBL_MIN_EXP - 1 && exponent <= DBL_MAX_EXP - 1) {
        uint64_t bits = (uint64_t) (exponent + DBL_MAX_EXP - 1) << (DBL_MANT_DIG - 1);
        double power;
        memcpy (&power, &bits, sizeof (power));
        return value * power;
    }
    return ldexp (value, exponent);
}

//  Weighted q-quantile of pairs already sorted by value, all weights > 0:
//  the middle of the interval [low, high] of values s with
//  weight below s <= q W and weight above s <= (1 - q) W.
static double
s_quantile_sorted (const s_pair_t *pairs, size_t count, double q)
{
    double total = 0;
    for (size_t i = 0; i < count; i++)
        total += pairs [i].weight;
    double target = q * total;
    double low = pairs [count - 1].value;
    double high = pairs [0].value;
    bool have_low = false;
    double before = 0;              //  weight strictly before pair i
    for (size_t i = 0; i < count; i++) {
        double through = before + pairs [i].weight;
        if (!have_low && through >= target) {
            low = pairs [i].value;
            have_low = true;
        }
        if (before <= target)
            high = pairs [i].value;
        before = through;
    }
    //  Halving first keeps the midpoint of huge values finite
    return low / 2 + high / 2;
}

double
qt_quantile (const double *v, const double *w, size_t n, double q)
{
    if (!v || !(q >= 0 && q <= 1))
        return NAN;
    s_pair_t *pairs = (s_pair_t *) malloc ((n? n: 1) * sizeof (s_pair_t));
    if (!pairs)
        return NAN;
    size_t count = 0;
    for (size_t i = 0; i < n; i++) {
        double weight = w? w [i]: 1.0;
        if (isfinite (v [i]) && isfinite (weight) && weight > 0)
            pairs [count++] = (s_pair_t) { .value = v [i], .weight = weight };
    }
    double result = NAN;
    if (count > 0) {
        qsort (pairs, count, sizeof (s_pair_t), s_pair_compare);
        result = s_quantile_sorted (pairs, count, q);
    }
    free (pairs);
    return result;
}

double
qt_median (const double *v, size_t n)
{
    return qt_quantile (v, NULL, n, 0.5);
}

//  Rounds of partitioning after which selection gives up on its pivots
//  (crafted inputs can defeat median-of-three) and sorts instead.
#define SELECT_ROUNDS_PER_BIT 2

//  Puts the k-th smallest of v [0..count) at v [k], smaller ones before it,
//  larger ones after (Hoare's quickselect, sorting when pivots go badly).
static void
s_select (double *v, size_t count, size_t k)
{
    size_t low = 0, high = count - 1;
    size_t budget = SELECT_ROUNDS_PER_BIT * (size_t) (log2 ((double) count) + 1);
    while (low < high) {
        if (budget-- == 0) {
            qsort (v + low, high - low + 1, sizeof (double), s_double_compare);
            return;
        }
        //  Median of three as the pivot
        size_t middle = low + (high - low) / 2;
        double a = v [low], b = v [middle], c = v [high];
        double pivot = a < b? (b < c? b: (a < c? c: a)): (a < c? a: (b < c? c: b));
        size_t i = low, j = high;
        while (i <= j) {
            while (v [i] < pivot)
                i++;
            while (v [j] > pivot)
                j--;
            if (i <= j) {
                double swap = v [i];
                v [i] = v [j];
                v [j] = swap;
                i++;
                if (j == 0)
                    break;
                j--;
            }
        }
        if (k <= j)
            high = j;
        else
        if (k >= i)
            low = i;
        else
            return;
    }
}

//  Median of count unweighted values, the same value s_quantile_sorted
//  gives at q = 0.5 with unit weights, without sorting them all.
static double
s_median_unweighted (double *v, size_t count)
{
    size_t upper = count / 2;
    s_select (v, count, upper);
    double high = v [upper];
    if (count % 2)
        return high;
    double low = v [0];
    for (size_t i = 1; i < upper; i++)
        low = fmax (low, v [i]);
    return low / 2 + high / 2;
}

//  Weighted coordinate-wise median of the rows, values divided by 2^exponent.
//  pairs has room for used entries.
static void
s_coordmedian_rows (const s_row_t *rows, size_t used, size_t d, int exponent,
                    s_pair_t *pairs, double *z)
{
    bool unit = true;
    for (size_t i = 0; i < used; i++)
        if (rows [i].weight != 1)
            unit = false;
    //  Unit weights (the usual case): select into the pairs' memory
    double *column = (double *) pairs;
    for (size_t j = 0; j < d; j++) {
        if (unit) {
            for (size_t i = 0; i < used; i++)
                column [i] = s_scale (rows [i].values [j], -exponent);
            z [j] = s_median_unweighted (column, used);
            continue;
        }
        for (size_t i = 0; i < used; i++)
            pairs [i] = (s_pair_t) {
                .value = s_scale (rows [i].values [j], -exponent),
                .weight = rows [i].weight
            };
        qsort (pairs, used, sizeof (s_pair_t), s_pair_compare);
        z [j] = s_quantile_sorted (pairs, used, 0.5);
    }
}

int
qt_coordmedian (const double *x, size_t n, size_t d, double *z)
{
    if (!x || !z || n == 0 || d == 0)
        return -1;
    s_row_t *rows = (s_row_t *) malloc (n * sizeof (s_row_t));
    s_pair_t *pairs = (s_pair_t *) malloc (n * sizeof (s_pair_t));
    int rc = -1;
    size_t rejected;
    size_t used = rows && pairs? s_collect (x, NULL, n, d, false, rows, &rejected): 0;
    if (used > 0) {
        s_coordmedian_rows (rows, used, d, 0, pairs, z);
        rc = 0;
    }
    free (rows);
    free (pairs);
    return rc;
}

//  Sums of squares below this have lost digits to underflow: it happens
//  only when differences are 2^-450 of the largest input (one input near
//  1e300 next to honest ones near 1), and then the distance is recomputed
//  with its own scale.
#define DISTANCE_UNDERFLOW 0x1p-900

//  Euclidean distance between two rows of the scaled copy (magnitudes < 1,
//  so the sum of squares cannot overflow).
static double
s_distance (const double *a, const double *b, size_t d)
{
    double sum = 0;
    for (size_t j = 0; j < d; j++) {
        double diff = a [j] - b [j];
        sum += diff * diff;
    }
    if (sum >= DISTANCE_UNDERFLOW)
        return sqrt (sum);
    double largest = 0;
    for (size_t j = 0; j < d; j++)
        largest = fmax (largest, fabs (a [j] - b [j]));
    if (largest == 0)
        return 0;
    sum = 0;
    for (size_t j = 0; j < d; j++) {
        double diff = (a [j] - b [j]) / largest;
        sum += diff * diff;
    }
    return largest * sqrt (sum);
}

//  Largest magnitude of a row.
static double
s_magnitude (const double *row, size_t d)
{
    double largest = 0;
    for (size_t j = 0; j < d; j++)
        largest = fmax (largest, fabs (row [j]));
    return largest;
}

//  Two points this close, relative to their own magnitude, are one point
//  for the Weiszfeld step: the distance is rounding noise, and w / distance
//  would swamp every other term (or overflow).
static bool
s_coincide (double distance, double magnitude)
{
    return distance <= GEOMEDIAN_COINCIDENT * magnitude;
}

//  Is data point `vertex` the geometric median? Its optimality condition:
//  the weight sitting on it is at least the norm of the pull R of all the
//  others (sum of w_i times the unit vector towards x_i). Writes the
//  objective at the vertex to *objective; pull is scratch of d values.
static bool
s_vertex_is_median (const double *data, const double *weight, const double *magnitude,
                    size_t used, size_t d, size_t vertex, double *pull, double *objective)
{
    const double *point = data + vertex * d;
    double resting = 0;
    double sum = 0;
    memset (pull, 0, d * sizeof (double));
    for (size_t i = 0; i < used; i++) {
        const double *row = data + i * d;
        double distance = s_distance (row, point, d);
        double pull_scale = weight [i] / distance;
        if (s_coincide (distance, fmax (magnitude [i], magnitude [vertex]))
        ||  isinf (pull_scale)) {
            resting += weight [i];
            continue;
        }
        sum += weight [i] * distance;
        for (size_t j = 0; j < d; j++)
            pull [j] += pull_scale * (row [j] - point [j]);
    }
    *objective = sum;
    double pull_norm = 0;
    for (size_t j = 0; j < d; j++)
        pull_norm += pull [j] * pull [j];
    return sqrt (pull_norm) <= resting;
}

//  Weighted median of rows in one dimension, which is the geometric median
//  there: no iteration needed.
static void
s_geomedian_line (const s_row_t *rows, size_t used, s_pair_t *pairs,
                  double *z, qt_geomedian_report_t *report)
{
    for (size_t i = 0; i < used; i++)
        pairs [i] = (s_pair_t) { .value = rows [i].values [0], .weight = rows [i].weight };
    qsort (pairs, used, sizeof (s_pair_t), s_pair_compare);
    z [0] = s_quantile_sorted (pairs, used, 0.5);
    double objective = 0;
    for (size_t i = 0; i < used; i++)
        objective += pairs [i].weight * fabs (pairs [i].value - z [0]);
    report->iterations = 0;
    report->converged = true;
    report->objective = objective;
}

//  Weiszfeld iteration with the Vardi-Zhang step on the scaled copy.
//  Returns the index of the data point that is the exact median, or used
//  when the median is the iterate y.
static size_t
s_weiszfeld (const double *data, const double *weight, const double *magnitude,
             size_t used, size_t d, double tol, int max_iter, double *y,
             double *scratch, bool *checked, qt_geomedian_report_t *report)
{
    double *target = scratch;           //  plain Weiszfeld target T(y)
    double *pull = scratch + d;
    double previous = INFINITY;
    size_t exact = used;
    report->iterations = 0;
    report->converged = false;
    while (true) {
        //  One pass over the data at y: objective, resting weight, the
        //  Weiszfeld sums over the others, and the nearest data point.
        double objective = 0, resting = 0, denominator = 0;
        double nearest_distance = INFINITY;
        size_t nearest = 0;
        double y_magnitude = s_magnitude (y, d);
        memset (target, 0, d * sizeof (double));
        for (size_t i = 0; i < used; i++) {
            const double *row = data + i * d;
            double distance = s_distance (row, y, d);
            objective += weight [i] * distance;
            if (distance < nearest_distance) {
                nearest_distance = distance;
                nearest = i;
            }
            double share = weight [i] / distance;
            if (s_coincide (distance, fmax (magnitude [i], y_magnitude))
            ||  isinf (share)) {
                resting += weight [i];
                continue;
            }
            denominator += share;
            for (size_t j = 0; j < d; j++)
                target [j] += share * row [j];
        }
        report->objective = objective;
        if (report->iterations > 0 && fabs (previous - objective) <= tol * objective) {
            report->converged = true;
            break;
        }
        //  Weiszfeld only approaches a median that is a data point, so test
        //  each data point once, when the iterate first comes nearest to it:
        //  when it is the median, that is the exact answer.
        if (!checked [nearest]) {
            checked [nearest] = true;
            double vertex_objective;
            if (s_vertex_is_median (data, weight, magnitude, used, d, nearest,
                                    pull, &vertex_objective)) {
                report->objective = vertex_objective;
                report->converged = true;
                exact = nearest;
                break;
            }
        }
        if (report->iterations >= max_iter || denominator == 0)
            break;
        //  Vardi-Zhang: with weight resting on y, move only by the part of
        //  the pull that exceeds it; |R| = denominator * |T - y|.
        double step_norm = 0;
        for (size_t j = 0; j < d; j++) {
            target [j] /= denominator;
            step_norm += (target [j] - y [j]) * (target [j] - y [j]);
        }
        double pull_norm = denominator * sqrt (step_norm);
        if (resting >= pull_norm) {
            report->converged = true;   //  y satisfies the optimality condition
            break;
        }
        double stay = resting / pull_norm;
        for (size_t j = 0; j < d; j++)
            y [j] = (1 - stay) * target [j] + stay * y [j];
        previous = objective;
        report->iterations++;
    }
    return exact;
}

int
qt_geomedian (const double *x, const double *w, size_t n, size_t d,
              double tol, int max_iter, double *z, qt_geomedian_report_t *report)
{
    qt_geomedian_report_t scratch_report;
    if (!report)
        report = &scratch_report;
    memset (report, 0, sizeof (*report));
    if (!x || !z || n == 0 || d == 0 || isnan (tol))
        return -1;
    if (tol <= 0)
        tol = QT_GEOMEDIAN_TOLERANCE;
    if (max_iter <= 0)
        max_iter = QT_GEOMEDIAN_MAX_ITER;

    s_row_t *rows = (s_row_t *) malloc (n * sizeof (s_row_t));
    s_pair_t *pairs = (s_pair_t *) malloc (n * sizeof (s_pair_t));
    if (!rows || !pairs) {
        free (rows);
        free (pairs);
        return -1;
    }
    report->used = s_collect (x, w, n, d, true, rows, &report->rejected);
    size_t used = report->used;
    int rc = -1;
    if (used > 0 && d == 1) {
        s_geomedian_line (rows, used, pairs, z, report);
        rc = 0;
    }
    else
    if (used > 0) {
        int exponent = s_scale_exponent (rows, used, d);
        double *data = (double *) malloc (used * d * sizeof (double));
        double *weight = (double *) malloc (used * sizeof (double));
        double *magnitude = (double *) malloc (used * sizeof (double));
        double *work = (double *) malloc (3 * d * sizeof (double));
        bool *checked = (bool *) calloc (used, sizeof (bool));
        if (data && weight && magnitude && work && checked) {
            for (size_t i = 0; i < used; i++) {
                weight [i] = rows [i].weight;
                for (size_t j = 0; j < d; j++)
                    data [i * d + j] = s_scale (rows [i].values [j], -exponent);
                magnitude [i] = s_magnitude (data + i * d, d);
            }
            double *y = work;
            s_coordmedian_rows (rows, used, d, exponent, pairs, y);
            size_t exact = s_weiszfeld (data, weight, magnitude, used, d, tol,
                                        max_iter, y, work + d, checked, report);
            if (exact < used)
                memcpy (z, rows [exact].values, d * sizeof (double));
            else
                for (size_t j = 0; j < d; j++)
                    z [j] = s_scale (y [j], exponent);
            report->objective = s_scale (report->objective, exponent);
            rc = 0;
        }
        free (data);
        free (weight);
        free (magnitude);
        free (work);
        free (checked);
    }
    free (rows);
    free (pairs);
    return rc;
}

int
qt_trimmed_mean (const double *x, size_t n, size_t d, size_t f, double *z)
{
    if (!x || !z || n == 0 || d == 0)
        return -1;
    s_row_t *rows = (s_row_t *) malloc (n * sizeof (s_row_t));
    double *column = (double *) malloc (n * sizeof (double));
    int rc = -1;
    size_t rejected;
    size_t used = rows && column? s_collect (x, NULL, n, d, false, rows, &rejected): 0;
    if (used > 2 * f) {
        int exponent = s_scale_exponent (rows, used, d);
        size_t kept = used - 2 * f;
        for (size_t j = 0; j < d; j++) {
            for (size_t i = 0; i < used; i++)
                column [i] = s_scale (rows [i].values [j], -exponent);
            qsort (column, used, sizeof (double), s_double_compare);
            double sum = 0;
            for (size_t i = f; i < used - f; i++)
                sum += column [i];
            z [j] = s_scale (sum / (double) kept, exponent);
        }
        rc = 0;
    }
    free (rows);
    free (column);
    return rc;
}

//  Krum scores of the usable rows (in the caller's order): the sum of the
//  squared distances to the used-f-1 nearest others, in units of 2^(2e).
//  Returns the number of usable rows, 0 on failure; *rows_p and *scores_p
//  are the caller's to free.
static size_t
s_krum_scores (const double *x, size_t n, size_t d, size_t f,
               s_row_t **rows_p, double **scores_p)
{
    *rows_p = NULL;
    *scores_p = NULL;
    s_row_t *rows = (s_row_t *) malloc (n * sizeof (s_row_t));
    if (!rows)
        return 0;
    size_t rejected;
    size_t used = s_collect (x, NULL, n, d, false, rows, &rejected);
    double *scores = (double *) malloc ((used? used: 1) * sizeof (double));
    double *squared = (double *) malloc ((used? used * used: 1) * sizeof (double));
    double *others = (double *) malloc ((used? used: 1) * sizeof (double));
    if (used == 0 || !scores || !squared || !others) {
        free (rows);
        free (scores);
        free (squared);
        free (others);
        return 0;
    }
    int exponent = s_scale_exponent (rows, used, d);
    for (size_t a = 0; a < used; a++) {
        squared [a * used + a] = 0;
        for (size_t b = a + 1; b < used; b++) {
            double sum = 0;
            for (size_t j = 0; j < d; j++) {
                double diff = s_scale (rows [a].values [j], -exponent)
                            - s_scale (rows [b].values [j], -exponent);
                sum += diff * diff;
            }
            squared [a * used + b] = squared [b * used + a] = sum;
        }
    }
    size_t neighbours = used > f + 1? used - f - 1: 0;
    for (size_t a = 0; a < used; a++) {
        size_t count = 0;
        for (size_t b = 0; b < used; b++)
            if (b != a)
                others [count++] = squared [a * used + b];
        qsort (others, count, sizeof (double), s_double_compare);
        double score = 0;
        for (size_t k = 0; k < neighbours; k++)
            score += others [k];
        scores [a] = score;
    }
    free (squared);
    free (others);
    *rows_p = rows;
    *scores_p = scores;
    return used;
}

int
qt_krum (const double *x, size_t n, size_t d, size_t f, double *z, size_t *index)
{
    if (!x || !z || n == 0 || d == 0)
        return -1;
    s_row_t *rows;
    double *scores;
    size_t used = s_krum_scores (x, n, d, f, &rows, &scores);
    if (used == 0)
        return -1;
    size_t best = 0;
    for (size_t a = 1; a < used; a++)
        if (scores [a] < scores [best])
            best = a;
    memcpy (z, rows [best].values, d * sizeof (double));
    if (index)
        *index = rows [best].index;
    free (rows);
    free (scores);
    return 0;
}

//  Multi-Krum's selection order: score, then row index.
typedef struct {
    double score;
    size_t position;
} s_ranked_t;

static int
s_ranked_compare (const void *a, const void *b)
{
    const s_ranked_t *left = (const s_ranked_t *) a;
    const s_ranked_t *right = (const s_ranked_t *) b;
    if (left->score != right->score)
        return (left->score > right->score) - (left->score < right->score);
    return (left->position > right->position) - (left->position < right->position);
}

int
qt_multikrum (const double *x, size_t n, size_t d, size_t f, size_t m, double *z)
{
    if (!x || !z || n == 0 || d == 0 || m == 0)
        return -1;
    s_row_t *rows;
    double *scores;
    size_t used = s_krum_scores (x, n, d, f, &rows, &scores);
    if (used == 0)
        return -1;
    s_ranked_t *ranked = (s_ranked_t *) malloc (used * sizeof (s_ranked_t));
    s_row_t *chosen = (s_row_t *) malloc (used * sizeof (s_row_t));
    int rc = -1;
    if (ranked && chosen) {
        for (size_t a = 0; a < used; a++)
            ranked [a] = (s_ranked_t) { .score = scores [a], .position = a };
        qsort (ranked, used, sizeof (s_ranked_t), s_ranked_compare);
        if (m > used)
            m = used;
        for (size_t k = 0; k < m; k++)
            chosen [k] = rows [ranked [k].position];
        int exponent = s_scale_exponent (chosen, m, d);
        for (size_t j = 0; j < d; j++) {
            double sum = 0;
            for (size_t k = 0; k < m; k++)
                sum += s_scale (chosen [k].values [j], -exponent);
            z [j] = s_scale (sum / (double) m, exponent);
        }
        rc = 0;
    }
    free (ranked);
    free (chosen);
    free (rows);
    free (scores);
    return rc;
}

int
qt_centered_clip (const double *x, size_t n, size_t d, double radius,
                  int rounds, double *z)
{
    if (!x || !z || n == 0 || d == 0 || !(radius > 0) || rounds < 0)
        return -1;
    s_row_t *rows = (s_row_t *) malloc (n * sizeof (s_row_t));
    s_pair_t *pairs = (s_pair_t *) malloc (n * sizeof (s_pair_t));
    double *work = (double *) malloc (2 * d * sizeof (double));
    int rc = -1;
    size_t rejected;
    size_t used = rows && pairs && work? s_collect (x, NULL, n, d, true, rows, &rejected): 0;
    if (used > 0) {
        int exponent = s_scale_exponent (rows, used, d);
        double scaled_radius = s_scale (radius, -exponent);
        double *center = work;
        double *shift = work + d;
        s_coordmedian_rows (rows, used, d, exponent, pairs, center);
        for (int round = 0; round < rounds; round++) {
            memset (shift, 0, d * sizeof (double));
            for (size_t i = 0; i < used; i++) {
                double norm = 0;
                for (size_t j = 0; j < d; j++) {
                    double diff = s_scale (rows [i].values [j], -exponent) - center [j];
                    norm += diff * diff;
                }
                norm = sqrt (norm);
                double clip = norm > scaled_radius? scaled_radius / norm: 1.0;
                for (size_t j = 0; j < d; j++)
                    shift [j] += clip * (s_scale (rows [i].values [j], -exponent) - center [j]);
            }
            for (size_t j = 0; j < d; j++)
                center [j] += shift [j] / (double) used;
        }
        for (size_t j = 0; j < d; j++)
            z [j] = s_scale (center [j], exponent);
        rc = 0;
    }
    free (rows);
    free (pairs);
    free (work);
    return rc;
}

//  Mean around the median: one coordinate's values sorted by their
//  distance to the median, then by value.
int
qt_meamed (const double *x, size_t n, size_t d, size_t f, double *z)
{
    if (!x || !z || n == 0 || d == 0)
        return -1;
    s_row_t *rows = (s_row_t *) malloc (n * sizeof (s_row_t));
    double *column = (double *) malloc (n * sizeof (double));
    s_pair_t *pairs = (s_pair_t *) malloc (n * sizeof (s_pair_t));
    int rc = -1;
    size_t rejected;
    size_t used = rows && column && pairs? s_collect (x, NULL, n, d, false, rows, &rejected): 0;
    if (used > f) {
        int exponent = s_scale_exponent (rows, used, d);
        size_t kept = used - f;
        for (size_t j = 0; j < d; j++) {
            for (size_t i = 0; i < used; i++)
                column [i] = s_scale (rows [i].values [j], -exponent);
            double median = s_median_unweighted (column, used);
            //  (distance, value) pairs: s_pair_compare orders by the first
            for (size_t i = 0; i < used; i++) {
                double value = s_scale (rows [i].values [j], -exponent);
                pairs [i] = (s_pair_t) { .value = fabs (value - median), .weight = value };
            }
            qsort (pairs, used, sizeof (s_pair_t), s_pair_compare);
            for (size_t i = 0; i < kept; i++)
                column [i] = pairs [i].weight;
            qsort (column, kept, sizeof (double), s_double_compare);
            double sum = 0;
            for (size_t i = 0; i < kept; i++)
                sum += column [i];
            z [j] = s_scale (sum / (double) kept, exponent);
        }
        rc = 0;
    }
    free (rows);
    free (column);
    free (pairs);
    return rc;
}

//  Mean of the rows listed in `members` (positions in rows, in increasing
//  order), values divided by 2^exponent, written back in the rows' scale.
static void
s_rows_mean (const s_row_t *rows, const size_t *members, size_t count, size_t d,
             int exponent, double *z)
{
    for (size_t j = 0; j < d; j++) {
        double sum = 0;
        for (size_t k = 0; k < count; k++)
            sum += s_scale (rows [members [k]].values [j], -exponent);
        z [j] = s_scale (sum / (double) count, exponent);
    }
}

static int
s_size_compare (const void *a, const void *b)
{
    size_t left = *(const size_t *) a;
    size_t right = *(const size_t *) b;
    return (left > right) - (left < right);
}

int
qt_nnm (const double *x, size_t n, size_t d, size_t f, double *y, size_t *out)
{
    if (!x || !y || !out || n == 0 || d == 0)
        return -1;
    *out = 0;
    s_row_t *rows = (s_row_t *) malloc (n * sizeof (s_row_t));
    double *data = (double *) malloc (n * d * sizeof (double));
    s_ranked_t *ranked = (s_ranked_t *) malloc (n * sizeof (s_ranked_t));
    size_t *members = (size_t *) malloc (n * sizeof (size_t));
    int rc = -1;
    size_t rejected;
    size_t used = rows && data && ranked && members?
                  s_collect (x, NULL, n, d, true, rows, &rejected): 0;
    if (used > 0) {
        int exponent = s_scale_exponent (rows, used, d);
        for (size_t i = 0; i < used; i++)
            for (size_t j = 0; j < d; j++)
                data [i * d + j] = s_scale (rows [i].values [j], -exponent);
        size_t kept = used - (f < used? f: used - 1);
        for (size_t a = 0; a < used; a++) {
            for (size_t b = 0; b < used; b++)
                ranked [b] = (s_ranked_t) {
                    .score = s_distance (data + a * d, data + b * d, d), .position = b
                };
            qsort (ranked, used, sizeof (s_ranked_t), s_ranked_compare);
            for (size_t k = 0; k < kept; k++)
                members [k] = ranked [k].position;
            qsort (members, kept, sizeof (size_t), s_size_compare);
            s_rows_mean (rows, members, kept, d, exponent, y + a * d);
        }
        *out = used;
        rc = 0;
    }
    free (rows);
    free (data);
    free (ranked);
    free (members);
    return rc;
}

int
qt_bucketing (const double *x, size_t n, size_t d, size_t s, uint64_t seed,
              double *y, size_t *out)
{
    if (!x || !y || !out || n == 0 || d == 0 || s == 0)
        return -1;
    *out = 0;
    s_row_t *rows = (s_row_t *) malloc (n * sizeof (s_row_t));
    size_t *order = (size_t *) malloc (n * sizeof (size_t));
    int rc = -1;
    size_t rejected;
    size_t used = rows && order? s_collect (x, NULL, n, d, true, rows, &rejected): 0;
    if (used > 0) {
        int exponent = s_scale_exponent (rows, used, d);
        qt_rng_t rng;
        qt_rng_seed (&rng, seed, 0);
        for (size_t i = 0; i < used; i++)
            order [i] = i;
        for (size_t i = used - 1; i > 0; i--) {
            size_t k = qt_rng_below (&rng, (uint32_t) (i + 1));
            size_t swap = order [i];
            order [i] = order [k];
            order [k] = swap;
        }
        size_t buckets = 0;
        for (size_t start = 0; start < used; start += s) {
            size_t count = used - start < s? used - start: s;
            s_rows_mean (rows, order + start, count, d, exponent, y + buckets * d);
            buckets++;
        }
        *out = buckets;
        rc = 0;
    }
    free (rows);
    free (order);
    return rc;
}

//  The table (qt_robust.h), expanded
#define S_NAME(id, name, weighted, summary) name,
const char *const qt_aggregation_names [] = { QT_AGGREGATION_TABLE (S_NAME) NULL };
#undef S_NAME
#define S_SUMMARY(id, name, weighted, summary) summary,
static const char *const s_aggregation_summaries [] = { QT_AGGREGATION_TABLE (S_SUMMARY) };
#undef S_SUMMARY
#define S_WEIGHTED(id, name, weighted, summary) weighted,
static const bool s_aggregation_weighted [] = { QT_AGGREGATION_TABLE (S_WEIGHTED) };
#undef S_WEIGHTED
#define S_NAME(id, name, summary) name,
const char *const qt_pre_aggregation_names [] = { QT_PRE_AGGREGATION_TABLE (S_NAME) NULL };
#undef S_NAME
#define S_SUMMARY(id, name, summary) summary,
static const char *const s_pre_aggregation_summaries [] = { QT_PRE_AGGREGATION_TABLE (S_SUMMARY) };
#undef S_SUMMARY

const char *
qt_aggregation_summary (qt_aggregation_t rule)
{
    return rule < QT_AGGREGATIONS? s_aggregation_summaries [rule]: NULL;
}

bool
qt_aggregation_weighted (qt_aggregation_t rule)
{
    return rule < QT_AGGREGATIONS && s_aggregation_weighted [rule];
}

const char *
qt_pre_aggregation_summary (qt_pre_aggregation_t pre)
{
    return pre < QT_PRE_AGGREGATIONS? s_pre_aggregation_summaries [pre]: NULL;
}

void
qt_aggregation_describe (FILE *out)
{
    //  Names and summaries are plain ASCII without quotes or backslashes
    fprintf (out, "{\"aggregation\": [");
    for (int rule = 0; rule < QT_AGGREGATIONS; rule++)
        fprintf (out, "%s\n  {\"name\": \"%s\", \"weighted\": %s, \"summary\": \"%s\"}",
                 rule? ",": "", qt_aggregation_names [rule],
                 s_aggregation_weighted [rule]? "true": "false", s_aggregation_summaries [rule]);
    fprintf (out, "],\n \"pre_aggregation\": [");
    for (int pre = 0; pre < QT_PRE_AGGREGATIONS; pre++)
        fprintf (out, "%s\n  {\"name\": \"%s\", \"summary\": \"%s\"}", pre? ",": "",
                 qt_pre_aggregation_names [pre], s_pre_aggregation_summaries [pre]);
    fprintf (out, "]}\n");
}

void
qt_aggregate_params_init (qt_aggregate_params_t *params)
{
    memset (params, 0, sizeof (*params));
    params->rule = QT_AGGREGATION_GEOMEDIAN;
    params->pre = QT_PRE_AGGREGATION_NONE;
    params->tolerance = QT_GEOMEDIAN_TOLERANCE;
    params->max_iterations = QT_GEOMEDIAN_MAX_ITER;
    params->clip_radius = QT_CLIP_RADIUS;
    params->clip_rounds = QT_CLIP_ROUNDS;
}

//  The largest bucket_size leaving at least 2f + 1 buckets of rows rows.
static size_t
s_bucket_size (size_t rows, size_t f)
{
    size_t size = 1;
    while (size < rows && (rows + size) / (size + 1) >= 2 * f + 1)
        size++;
    return size;
}

int
qt_aggregate (const qt_aggregate_params_t *params, const double *x, const double *w,
              size_t n, size_t d, double *z, qt_geomedian_report_t *report)
{
    qt_geomedian_report_t scratch_report;
    if (!report)
        report = &scratch_report;
    memset (report, 0, sizeof (*report));
    if (!params || !x || !z || n == 0 || d == 0
    ||  params->rule >= QT_AGGREGATIONS || params->pre >= QT_PRE_AGGREGATIONS)
        return -1;
    //  The rows of weight > 0, compacted
    double *data = (double *) malloc (n * d * sizeof (double));
    double *mixed = (double *) malloc (n * d * sizeof (double));
    double *weight = (double *) malloc (n * sizeof (double));
    if (!data || !mixed || !weight) {
        free (data);
        free (mixed);
        free (weight);
        return -1;
    }
    size_t used = 0, rejected = 0;
    for (size_t i = 0; i < n; i++) {
        double row_weight = w? w [i]: 1.0;
        if (!s_row_is_finite (x + i * d, d) || !isfinite (row_weight) || row_weight < 0) {
            rejected++;
            continue;
        }
        if (row_weight == 0)
            continue;
        memcpy (data + used * d, x + i * d, d * sizeof (double));
        weight [used++] = row_weight;
    }
    int rc = -1;
    size_t f = used? (params->f < (used - 1) / 2? params->f: (used - 1) / 2): 0;
    const double *rows = data;
    size_t count = used;
    bool weighted = qt_aggregation_weighted (params->rule);
    if (used > 0 && params->pre == QT_PRE_AGGREGATION_NNM) {
        if (qt_nnm (data, used, d, f, mixed, &count))
            count = 0;
        rows = mixed;
        weighted = false;
    }
    else
    if (used > 0 && params->pre == QT_PRE_AGGREGATION_BUCKETING) {
        size_t size = params->bucket_size? params->bucket_size: s_bucket_size (used, f);
        if (qt_bucketing (data, used, d, size, params->seed, mixed, &count))
            count = 0;
        rows = mixed;
        weighted = false;
        if (count > 0 && f > (count - 1) / 2)
            f = (count - 1) / 2;
    }
    if (count > 0) {
        const double *rule_weight = weighted? weight: NULL;
        switch (params->rule) {
            case QT_AGGREGATION_GEOMEDIAN:
                rc = qt_geomedian (rows, rule_weight, count, d, params->tolerance,
                                   params->max_iterations, z, report);
                break;
            case QT_AGGREGATION_COORDMEDIAN: {
                s_row_t *collected = (s_row_t *) malloc (count * sizeof (s_row_t));
                s_pair_t *pairs = (s_pair_t *) malloc (count * sizeof (s_pair_t));
                size_t unused;
                size_t kept = collected && pairs?
                              s_collect (rows, rule_weight, count, d, false, collected, &unused): 0;
                if (kept > 0) {
                    s_coordmedian_rows (collected, kept, d, 0, pairs, z);
                    rc = 0;
                }
                free (collected);
                free (pairs);
                break;
            }
            case QT_AGGREGATION_TRIMMED_MEAN:
                rc = qt_trimmed_mean (rows, count, d, f, z);
                break;
            case QT_AGGREGATION_KRUM:
                rc = qt_krum (rows, count, d, f, z, NULL);
                break;
            case QT_AGGREGATION_MULTIKRUM:
                rc = qt_multikrum (rows, count, d, f, count - f, z);
                break;
            case QT_AGGREGATION_CENTERED_CLIPPING:
                rc = qt_centered_clip (rows, count, d, params->clip_radius,
                                       params->clip_rounds, z);
                break;
            case QT_AGGREGATION_MEAMED:
                rc = qt_meamed (rows, count, d, f, z);
                break;
            default:
                break;
        }
    }
    if (params->rule != QT_AGGREGATION_GEOMEDIAN || params->pre != QT_PRE_AGGREGATION_NONE) {
        //  Counted before pre-aggregation; rules without iterations converge
        if (params->rule != QT_AGGREGATION_GEOMEDIAN) {
            report->iterations = 0;
            report->converged = rc == 0;
            report->objective = 0;
        }
        report->used = used;
    }
    report->rejected = rejected;
    free (data);
    free (mixed);
    free (weight);
    return rc;
}

//  --------------------------------------------------------------------------
//  Selftest

//  Largest |a_j - b_j|.
static double
s_max_diff (const double *a, const double *b, size_t d)
{
    double largest = 0;
    for (size_t j = 0; j < d; j++)
        largest = fmax (largest, fabs (a [j] - b [j]));
    return largest;
}

//  Norm of the objective's gradient at z (over the rows z is not at),
//  relative to the total weight: 0 at the median unless z is a data point.
static double
s_gradient (const double *x, const double *w, size_t n, size_t d, const double *z)
{
    double gradient [8] = { 0 };
    double total = 0;
    QT_CHECK (d <= 8);
    for (size_t i = 0; i < n; i++) {
        double weight = w? w [i]: 1;
        double distance = 0;
        for (size_t j = 0; j < d; j++)
            distance += (x [i * d + j] - z [j]) * (x [i * d + j] - z [j]);
        distance = sqrt (distance);
        total += weight;
        if (distance > 0)
            for (size_t j = 0; j < d; j++)
                gradient [j] += weight * (z [j] - x [i * d + j]) / distance;
    }
    double norm = 0;
    for (size_t j = 0; j < d; j++)
        norm += gradient [j] * gradient [j];
    return sqrt (norm) / total;
}

//  A random rotation of dimension d (2 or 3): Gram-Schmidt on Gaussian rows.
static void
s_random_rotation (qt_rng_t *rng, size_t d, double *rotation)
{
    for (size_t a = 0; a < d; a++) {
        double *row = rotation + a * d;
        for (size_t j = 0; j < d; j++)
            row [j] = qt_rng_normal (rng);
        for (size_t b = 0; b < a; b++) {
            double dot = 0;
            for (size_t j = 0; j < d; j++)
                dot += row [j] * rotation [b * d + j];
            for (size_t j = 0; j < d; j++)
                row [j] -= dot * rotation [b * d + j];
        }
        double norm = 0;
        for (size_t j = 0; j < d; j++)
            norm += row [j] * row [j];
        for (size_t j = 0; j < d; j++)
            row [j] /= sqrt (norm);
    }
}

//  The reference values of robust-stats.md.
static void
s_test_reference (void)
{
    double x [] = { 1, 2, 3,  4, 5, 6,  7, 8, 9 };
    double z [3];
    double expected [] = { 4, 5, 6 };
    qt_geomedian_report_t report;
    QT_CHECK (qt_geomedian (x, NULL, 3, 3, 0, 0, z, &report) == 0);
    QT_CHECK (memcmp (z, expected, sizeof (z)) == 0);
    QT_CHECK (report.converged && report.used == 3 && report.rejected == 0);
    QT_CHECK (fabs (report.objective - 2 * sqrt (27)) < 1e-12);
    QT_CHECK (qt_coordmedian (x, 3, 3, z) == 0);
    QT_CHECK (memcmp (z, expected, sizeof (z)) == 0);
    QT_CHECK (qt_trimmed_mean (x, 3, 3, 1, z) == 0);
    QT_CHECK (memcmp (z, expected, sizeof (z)) == 0);
    size_t index = 99;
    QT_CHECK (qt_krum (x, 3, 3, 1, z, &index) == 0);
    QT_CHECK (index == 0 && z [0] == 1 && z [1] == 2 && z [2] == 3);
}

//  The median is a data point: the answer is that row, bit for bit.
static void
s_test_exact (qt_rng_t *rng)
{
    //  5 points, 3 identical
    double five [] = { 0.1, 0.7,  0.1, 0.7,  3, -2,  0.1, 0.7,  -5, 9 };
    double z [3];
    qt_geomedian_report_t report;
    QT_CHECK (qt_geomedian (five, NULL, 5, 2, 0, 0, z, &report) == 0);
    QT_CHECK (z [0] == 0.1 && z [1] == 0.7 && report.converged);

    //  Obtuse triangle (angle > 120 degrees at the origin): the Fermat
    //  point is the vertex, though the start (0, 1) is not a data point
    double obtuse [] = { 0, 0,  10, 1,  -10, 1 };
    QT_CHECK (qt_geomedian (obtuse, NULL, 3, 2, 0, 0, z, &report) == 0);
    QT_CHECK (z [0] == 0 && z [1] == 0 && report.converged);

    //  Weighted: a point whose weight equals 1.01 times the pull of the
    //  others is the median, 0.99 times is not
    for (int trial = 0; trial < TEST_TRIALS; trial++) {
        const size_t n = 7, d = 3;
        double x [7 * 3], w [7];
        for (size_t k = 0; k < n * d; k++)
            x [k] = qt_rng_normal (rng);
        double pull [3] = { 0 };
        for (size_t i = 1; i < n; i++) {
            w [i] = 0.5 + qt_rng_uniform (rng);
            double distance = 0;
            for (size_t j = 0; j < d; j++)
                distance += (x [i * d + j] - x [j]) * (x [i * d + j] - x [j]);
            distance = sqrt (distance);
            for (size_t j = 0; j < d; j++)
                pull [j] += w [i] * (x [i * d + j] - x [j]) / distance;
        }
        double pull_norm = sqrt (pull [0] * pull [0] + pull [1] * pull [1] + pull [2] * pull [2]);
        w [0] = 1.01 * pull_norm;
        QT_CHECK (qt_geomedian (x, w, n, d, 0, 0, z, &report) == 0);
        QT_CHECK (memcmp (z, x, d * sizeof (double)) == 0 && report.converged);
        w [0] = 0.99 * pull_norm;
        QT_CHECK (qt_geomedian (x, w, n, d, TEST_TOLERANCE, TEST_MAX_ITER, z, &report) == 0);
        QT_CHECK (memcmp (z, x, d * sizeof (double)) != 0);
        QT_CHECK (s_gradient (x, w, n, d, z) < 1e-6);
    }
}

//  Degenerate inputs: n = 1, all identical, collinear, d = 1, no usable row.
static void
s_test_degenerate (qt_rng_t *rng)
{
    double z [4];
    qt_geomedian_report_t report;
    double one [] = { 1.5, -2, 1e-300, 7 };
    QT_CHECK (qt_geomedian (one, NULL, 1, 4, 0, 0, z, &report) == 0);
    QT_CHECK (memcmp (z, one, sizeof (one)) == 0 && report.converged);
    QT_CHECK (report.iterations == 0 && report.objective == 0 && report.used == 1);

    double same [4 * 3];
    for (size_t i = 0; i < 4; i++)
        memcpy (same + i * 3, one, 3 * sizeof (double));
    QT_CHECK (qt_geomedian (same, NULL, 4, 3, 0, 0, z, &report) == 0);
    QT_CHECK (memcmp (z, one, 3 * sizeof (double)) == 0 && report.iterations == 0);

    //  Collinear, odd count, points given out of order along the line:
    //  the middle point. Even count: a point of the middle segment.
    double line [5 * 2];
    double positions [] = { 3, -1, 10, 0.5, 2 };
    for (size_t i = 0; i < 5; i++) {
        line [2 * i] = 1 + 2 * positions [i];
        line [2 * i + 1] = 4 - 3 * positions [i];
    }
    QT_CHECK (qt_geomedian (line, NULL, 5, 2, 0, 0, z, &report) == 0);
    QT_CHECK (z [0] == 1 + 2 * 2.0 && z [1] == 4 - 3 * 2.0);
    QT_CHECK (qt_geomedian (line, NULL, 4, 2, 0, 0, z, &report) == 0);
    double t = (z [0] - 1) / 2;
    QT_CHECK (t >= 0.5 - 1e-9 && t <= 3 + 1e-9);
    QT_CHECK (fabs (z [1] - (4 - 3 * t)) < 1e-9);

    //  d = 1: the weighted median, exactly
    for (int trial = 0; trial < TEST_TRIALS; trial++) {
        size_t n = 1 + qt_rng_below (rng, 12);
        double x [12], w [12];
        for (size_t i = 0; i < n; i++) {
            x [i] = qt_rng_normal (rng);
            w [i] = trial % 2? qt_rng_uniform (rng): 1;
        }
        QT_CHECK (qt_geomedian (x, w, n, 1, 0, 0, z, &report) == 0);
        QT_CHECK (z [0] == qt_quantile (x, w, n, 0.5));
    }

    //  No usable row
    double bad [] = { NAN, 1, INFINITY, 2, 3, -INFINITY };
    QT_CHECK (qt_geomedian (bad, NULL, 3, 2, 0, 0, z, &report) == -1);
    QT_CHECK (report.rejected == 3 && report.used == 0);
    double zero [] = { 0, 0 };
    QT_CHECK (qt_geomedian (one, zero, 2, 2, 0, 0, z, &report) == -1);
    QT_CHECK (qt_geomedian (one, NULL, 0, 2, 0, 0, z, &report) == -1);
    QT_CHECK (qt_coordmedian (bad, 3, 2, z) == -1);
    QT_CHECK (qt_trimmed_mean (bad, 3, 2, 0, z) == -1);
    QT_CHECK (qt_krum (bad, 3, 2, 0, z, NULL) == -1);
}

//  Rows with NaN or inf are dropped and counted, never propagated: the
//  result is the one without them, bit for bit.
static void
s_test_rejection (qt_rng_t *rng)
{
    const size_t n = 9, d = 4;
    double x [9 * 4], clean [9 * 4], z [4], reference [4];
    for (size_t k = 0; k < n * d; k++)
        x [k] = qt_rng_normal (rng);
    size_t kept = 0;
    for (size_t i = 0; i < n; i++) {
        if (i == 2 || i == 5 || i == 6)
            continue;
        memcpy (clean + kept++ * d, x + i * d, d * sizeof (double));
    }
    x [2 * d + 1] = NAN;
    x [5 * d + 3] = INFINITY;
    x [6 * d + 0] = -INFINITY;
    qt_geomedian_report_t report;
    QT_CHECK (qt_geomedian (x, NULL, n, d, 0, 0, z, &report) == 0);
    QT_CHECK (report.rejected == 3 && report.used == 6);
    QT_CHECK (qt_geomedian (clean, NULL, kept, d, 0, 0, reference, NULL) == 0);
    QT_CHECK (memcmp (z, reference, sizeof (z)) == 0);
    for (size_t j = 0; j < d; j++)
        QT_CHECK (isfinite (z [j]));
    QT_CHECK (qt_coordmedian (x, n, d, z) == 0);
    QT_CHECK (qt_coordmedian (clean, kept, d, reference) == 0);
    QT_CHECK (memcmp (z, reference, sizeof (z)) == 0);
    QT_CHECK (qt_trimmed_mean (x, n, d, 1, z) == 0);
    QT_CHECK (qt_trimmed_mean (clean, kept, d, 1, reference) == 0);
    QT_CHECK (memcmp (z, reference, sizeof (z)) == 0);
    size_t index;
    QT_CHECK (qt_krum (x, n, d, 1, z, &index) == 0);
    QT_CHECK (index != 2 && index != 5 && index != 6);

    //  A non-finite or negative weight rejects its row too
    double w [9] = { 1, 1, 1, 1, NAN, 1, 1, -1, 1 };
    QT_CHECK (qt_geomedian (x, w, n, d, 0, 0, z, &report) == 0);
    QT_CHECK (report.rejected == 5 && report.used == 4);
}

//  Equivariance and invariance of the geometric median, on random data.
static void
s_test_properties (qt_rng_t *rng)
{
    for (int trial = 0; trial < TEST_TRIALS; trial++) {
        size_t d = 2 + (size_t) (trial % 2);
        size_t n = 3 + qt_rng_below (rng, 10);
        double x [13 * 3], y [13 * 3], w [13], v [13];
        double z [3], moved [3], expected [3], rotation [9];
        for (size_t k = 0; k < n * d; k++)
            x [k] = qt_rng_normal (rng);
        for (size_t i = 0; i < n; i++)
            w [i] = 0.1 + qt_rng_uniform (rng);
        qt_geomedian_report_t report;
        QT_CHECK (qt_geomedian (x, w, n, d, TEST_TOLERANCE, TEST_MAX_ITER, z, &report) == 0);
        QT_CHECK (report.converged);
        //  Optimal: zero gradient, or resting on a data point
        bool at_row = false;
        for (size_t i = 0; i < n; i++)
            if (memcmp (z, x + i * d, d * sizeof (double)) == 0)
                at_row = true;
        QT_CHECK (at_row || s_gradient (x, w, n, d, z) < 1e-6);

        //  Permutation: bit for bit, thanks to the canonical order
        for (size_t i = 0; i < n; i++) {
            memcpy (y + i * d, x + (n - 1 - i) * d, d * sizeof (double));
            v [i] = w [n - 1 - i];
        }
        for (size_t i = n - 1; i > 0; i--) {
            size_t k = qt_rng_below (rng, (uint32_t) (i + 1));
            double swap [3];
            memcpy (swap, y + i * d, d * sizeof (double));
            memcpy (y + i * d, y + k * d, d * sizeof (double));
            memcpy (y + k * d, swap, d * sizeof (double));
            double swap_weight = v [i];
            v [i] = v [k];
            v [k] = swap_weight;
        }
        QT_CHECK (qt_geomedian (y, v, n, d, TEST_TOLERANCE, TEST_MAX_ITER, moved, NULL) == 0);
        QT_CHECK (memcmp (z, moved, d * sizeof (double)) == 0);
        QT_CHECK (qt_coordmedian (y, n, d, moved) == 0);
        QT_CHECK (qt_coordmedian (x, n, d, expected) == 0);
        QT_CHECK (memcmp (expected, moved, d * sizeof (double)) == 0);

        //  Translation
        double shift [3];
        for (size_t j = 0; j < d; j++)
            shift [j] = 100 * qt_rng_normal (rng);
        for (size_t i = 0; i < n; i++)
            for (size_t j = 0; j < d; j++)
                y [i * d + j] = x [i * d + j] + shift [j];
        QT_CHECK (qt_geomedian (y, w, n, d, TEST_TOLERANCE, TEST_MAX_ITER, moved, NULL) == 0);
        for (size_t j = 0; j < d; j++)
            expected [j] = z [j] + shift [j];
        QT_CHECK (s_max_diff (moved, expected, d) < 1e-6);

        //  Rotation
        s_random_rotation (rng, d, rotation);
        for (size_t i = 0; i < n; i++)
            for (size_t a = 0; a < d; a++) {
                y [i * d + a] = 0;
                for (size_t j = 0; j < d; j++)
                    y [i * d + a] += rotation [a * d + j] * x [i * d + j];
            }
        QT_CHECK (qt_geomedian (y, w, n, d, TEST_TOLERANCE, TEST_MAX_ITER, moved, NULL) == 0);
        for (size_t a = 0; a < d; a++) {
            expected [a] = 0;
            for (size_t j = 0; j < d; j++)
                expected [a] += rotation [a * d + j] * z [j];
        }
        QT_CHECK (s_max_diff (moved, expected, d) < 1e-6);

        //  Positive scale: bit for bit for a power of two, else to rounding
        double factor = ldexp (1, (int) qt_rng_below (rng, 200) - 100);
        for (size_t k = 0; k < n * d; k++)
            y [k] = x [k] * factor;
        QT_CHECK (qt_geomedian (y, w, n, d, TEST_TOLERANCE, TEST_MAX_ITER, moved, NULL) == 0);
        for (size_t j = 0; j < d; j++)
            QT_CHECK (moved [j] == z [j] * factor);
        factor = exp (20 * qt_rng_uniform (rng) - 10);
        for (size_t k = 0; k < n * d; k++)
            y [k] = x [k] * factor;
        QT_CHECK (qt_geomedian (y, w, n, d, TEST_TOLERANCE, TEST_MAX_ITER, moved, NULL) == 0);
        for (size_t j = 0; j < d; j++)
            expected [j] = z [j] * factor;
        QT_CHECK (s_max_diff (moved, expected, d) < 1e-6 * factor);
    }
}

//  Breakdown: one input sent arbitrarily far cannot drag the median of
//  n >= 3 inputs away. Bound checked: with c the centroid of the n - 1
//  honest inputs and r their largest distance to c, the median z satisfies
//  |z - c| <= 2 r (n - 1) / (n - 2), whatever the outlier. (Comparing the
//  objective at z and at c: each honest term grows by at least |z - c| - 2r,
//  the outlier's term shrinks by at most |z - c|.)
static void
s_test_outlier (qt_rng_t *rng)
{
    double distances [] = { 1e6, 1e12, 1e300 };
    for (int trial = 0; trial < TEST_TRIALS; trial++) {
        size_t n = 3 + qt_rng_below (rng, 8);
        size_t d = 1 + qt_rng_below (rng, 8);
        double x [11 * 8], centroid [8] = { 0 }, direction [8], z [8];
        for (size_t i = 0; i + 1 < n; i++)
            for (size_t j = 0; j < d; j++) {
                x [i * d + j] = qt_rng_normal (rng);
                centroid [j] += x [i * d + j] / (double) (n - 1);
            }
        double radius = 0;
        for (size_t i = 0; i + 1 < n; i++) {
            double distance = 0;
            for (size_t j = 0; j < d; j++)
                distance += (x [i * d + j] - centroid [j]) * (x [i * d + j] - centroid [j]);
            radius = fmax (radius, sqrt (distance));
        }
        double bound = 2 * radius * (double) (n - 1) / (double) (n - 2);
        for (size_t j = 0; j < d; j++)
            direction [j] = qt_rng_normal (rng);
        for (size_t k = 0; k < sizeof (distances) / sizeof (distances [0]); k++) {
            double *outlier = x + (n - 1) * d;
            for (size_t j = 0; j < d; j++)
                outlier [j] = direction [j] * distances [k];
            qt_geomedian_report_t report;
            QT_CHECK (qt_geomedian (x, NULL, n, d, 0, 0, z, &report) == 0);
            QT_CHECK (report.converged && report.used == n);
            double distance = 0;
            for (size_t j = 0; j < d; j++)
                distance += (z [j] - centroid [j]) * (z [j] - centroid [j]);
            QT_CHECK (sqrt (distance) <= bound);
            //  Krum and the trimmed mean are not fooled either
            size_t index;
            QT_CHECK (qt_krum (x, n, d, 1, z, &index) == 0);
            QT_CHECK (index != n - 1);
            QT_CHECK (qt_trimmed_mean (x, n, d, 1, z) == 0);
            for (size_t j = 0; j < d; j++)
                QT_CHECK (fabs (z [j]) < 1e3);
        }
    }
}

//  Quantiles and the simple aggregators.
static void
s_test_others (qt_rng_t *rng)
{
    //  Selection (unit weights) agrees with sorting, duplicates included
    for (int trial = 0; trial < 10 * TEST_TRIALS; trial++) {
        size_t n = 1 + qt_rng_below (rng, 40);
        double column [40], z;
        uint32_t levels = 1 + qt_rng_below (rng, 10);
        for (size_t i = 0; i < n; i++)
            column [i] = (double) qt_rng_below (rng, levels);
        QT_CHECK (qt_coordmedian (column, n, 1, &z) == 0);
        QT_CHECK (z == qt_median (column, n));
    }

    double v [] = { 5, NAN, 1, 4, 2, INFINITY, 3 };
    QT_CHECK (qt_median (v, 7) == 3);
    QT_CHECK (qt_median (v, 5) == 3);             //  5, 1, 4, 2: even count
    QT_CHECK (isnan (qt_median (v + 1, 1)));
    QT_CHECK (isnan (qt_quantile (v, NULL, 7, 1.5)));
    //  Majority judgment: 10% quantile of 10 raters
    double scores [] = { 9, 1, 8, 2, 7, 3, 6, 4, 5, 0 };
    QT_CHECK (qt_quantile (scores, NULL, 10, 0.1) == 0.5);
    QT_CHECK (qt_quantile (scores, NULL, 10, 0.15) == 1);
    QT_CHECK (qt_quantile (scores, NULL, 10, 0) == 0);
    QT_CHECK (qt_quantile (scores, NULL, 10, 1) == 9);
    //  One rater holding 60% of the weight is the median
    double weights [] = { 6, 1, 1, 1, 1, 0, 0, 0, 0, 0 };
    QT_CHECK (qt_quantile (scores, weights, 10, 0.5) == 9);
    QT_CHECK (qt_quantile (scores, weights, 10, 0.45) == 9);
    QT_CHECK (qt_quantile (scores, weights, 10, 0.3) == 7.5);
    QT_CHECK (qt_quantile (scores, weights, 10, 0.2) == 4.5);

    double x [] = { 0, 0,  1, 0,  2, 0,  3, 0,  100, 100 };
    double z [2];
    QT_CHECK (qt_trimmed_mean (x, 5, 2, 1, z) == 0);
    QT_CHECK (z [0] == 2 && z [1] == 0);
    QT_CHECK (qt_trimmed_mean (x, 5, 2, 3, z) == -1);
    QT_CHECK (qt_multikrum (x, 5, 2, 1, 4, z) == 0);
    QT_CHECK (z [0] == 1.5 && z [1] == 0);
    QT_CHECK (qt_multikrum (x, 5, 2, 1, 0, z) == -1);
    size_t index;
    QT_CHECK (qt_krum (x, 5, 2, 1, z, &index) == 0);
    QT_CHECK (index == 1 && z [0] == 1);
    //  Centered clipping: the outlier's pull is capped at the radius
    QT_CHECK (qt_centered_clip (x, 5, 2, 1, 3, z) == 0);
    QT_CHECK (fabs (z [0] - 2) < 1 && fabs (z [1]) < 1);
    QT_CHECK (qt_centered_clip (x, 5, 2, INFINITY, 1, z) == 0);
    QT_CHECK (fabs (z [0] - 21.2) < 1e-12 && fabs (z [1] - 20) < 1e-12);
    QT_CHECK (qt_centered_clip (x, 5, 2, 0, 1, z) == -1);
}

//  Mean around the median, the pre-aggregations and the rule table.
static void
s_test_meamed (qt_rng_t *rng)
{
    //  ByzFL's example: medians 4 5 6, the nearest two per coordinate are
    //  the middle row and (a tie at distance 3) the smaller value
    double x [] = { 1, 2, 3,  4, 5, 6,  7, 8, 9 };
    double z [3];
    QT_CHECK (qt_meamed (x, 3, 3, 1, z) == 0);
    QT_CHECK (z [0] == 2.5 && z [1] == 3.5 && z [2] == 4.5);
    QT_CHECK (qt_meamed (x, 3, 3, 0, z) == 0);
    QT_CHECK (z [0] == 4 && z [1] == 5 && z [2] == 6);         //  f = 0: the mean
    QT_CHECK (qt_meamed (x, 3, 3, 3, z) == -1);                //  nothing left
    double bad [] = { NAN, 1, INFINITY, 2 };
    QT_CHECK (qt_meamed (bad, 2, 2, 0, z) == -1);
    //  Permutation: bit for bit; rows with NaN dropped
    for (int trial = 0; trial < TEST_TRIALS; trial++) {
        size_t n = 3 + qt_rng_below (rng, 8), d = 1 + qt_rng_below (rng, 4);
        size_t f = qt_rng_below (rng, (uint32_t) ((n - 1) / 2 + 1));
        double rows [10 * 4], reversed [11 * 4], a [4], b [4];
        for (size_t k = 0; k < n * d; k++)
            rows [k] = trial % 2? qt_rng_normal (rng): (double) qt_rng_below (rng, 3);
        for (size_t i = 0; i < n; i++)
            memcpy (reversed + i * d, rows + (n - 1 - i) * d, d * sizeof (double));
        for (size_t j = 0; j < d; j++)
            reversed [n * d + j] = NAN;
        QT_CHECK (qt_meamed (rows, n, d, f, a) == 0);
        QT_CHECK (qt_meamed (reversed, n + 1, d, f, b) == 0);
        QT_CHECK (memcmp (a, b, d * sizeof (double)) == 0);
        //  Inside the range of the values, per coordinate
        for (size_t j = 0; j < d; j++) {
            double low = INFINITY, high = -INFINITY;
            for (size_t i = 0; i < n; i++) {
                low = fmin (low, rows [i * d + j]);
                high = fmax (high, rows [i * d + j]);
            }
            QT_CHECK (a [j] >= low && a [j] <= high);
        }
    }
}

static void
s_test_pre_aggregation (qt_rng_t *rng)
{
    //  ByzFL's example of nearest-neighbour mixing (f = 1: means of pairs)
    double x [] = { 1, 2, 3,  4, 5, 6,  7, 8, 9 };
    double y [4 * 3];
    size_t out;
    QT_CHECK (qt_nnm (x, 3, 3, 1, y, &out) == 0 && out == 3);
    double mixed [] = { 2.5, 3.5, 4.5,  2.5, 3.5, 4.5,  5.5, 6.5, 7.5 };
    QT_CHECK (memcmp (y, mixed, sizeof (mixed)) == 0);
    QT_CHECK (qt_nnm (x, 3, 3, 0, y, &out) == 0 && out == 3);  //  f = 0: every row the mean
    for (size_t i = 0; i < 3; i++)
        QT_CHECK (y [3 * i] == 4 && y [3 * i + 1] == 5 && y [3 * i + 2] == 6);
    QT_CHECK (qt_nnm (x, 3, 3, 5, y, &out) == 0);               //  f clamped: rows kept
    QT_CHECK (memcmp (y, x, sizeof (x)) == 0);
    QT_CHECK (qt_nnm (x, 0, 3, 1, y, &out) == -1);

    //  Bucketing: s = 1 permutes the rows, s = n is the mean, the same seed
    //  gives the same buckets whatever the rows' order
    QT_CHECK (qt_bucketing (x, 3, 3, 0, 1, y, &out) == -1);
    QT_CHECK (qt_bucketing (x, 3, 3, 3, 1, y, &out) == 0 && out == 1);
    QT_CHECK (y [0] == 4 && y [1] == 5 && y [2] == 6);
    QT_CHECK (qt_bucketing (x, 3, 3, 2, 1, y, &out) == 0 && out == 2);
    for (int trial = 0; trial < TEST_TRIALS; trial++) {
        size_t n = 2 + qt_rng_below (rng, 9), d = 1 + qt_rng_below (rng, 3);
        size_t s = 1 + qt_rng_below (rng, (uint32_t) n);
        uint64_t seed = qt_rng_next (rng);
        double rows [10 * 3], reversed [10 * 3], a [10 * 3], b [10 * 3];
        for (size_t k = 0; k < n * d; k++)
            rows [k] = qt_rng_normal (rng);
        for (size_t i = 0; i < n; i++)
            memcpy (reversed + i * d, rows + (n - 1 - i) * d, d * sizeof (double));
        size_t a_out, b_out;
        QT_CHECK (qt_bucketing (rows, n, d, s, seed, a, &a_out) == 0);
        QT_CHECK (qt_bucketing (reversed, n, d, s, seed, b, &b_out) == 0);
        QT_CHECK (a_out == (n + s - 1) / s && a_out == b_out);
        QT_CHECK (memcmp (a, b, a_out * d * sizeof (double)) == 0);
        QT_CHECK (qt_bucketing (rows, n, d, 1, seed, a, &a_out) == 0 && a_out == n);
        for (size_t i = 0; i < n; i++) {
            bool found = false;
            for (size_t k = 0; k < n; k++)
                found |= memcmp (a + i * d, rows + k * d, d * sizeof (double)) == 0;
            QT_CHECK (found);
        }
        //  Nearest-neighbour mixing is permutation invariant as a multiset
        QT_CHECK (qt_nnm (rows, n, d, (n - 1) / 2, a, &a_out) == 0 && a_out == n);
        QT_CHECK (qt_nnm (reversed, n, d, (n - 1) / 2, b, &b_out) == 0);
        QT_CHECK (memcmp (a, b, n * d * sizeof (double)) == 0);    //  canonical order out
    }
    QT_CHECK (s_bucket_size (3, 1) == 1 && s_bucket_size (7, 1) == 3);
    QT_CHECK (s_bucket_size (5, 2) == 1 && s_bucket_size (4, 0) == 4);
}

//  The table, and every rule through qt_aggregate under one liar of three
//  when the two honest rows are bit-identical: exact except centered
//  clipping, which moves by at most radius * f / (n - f) (each round the
//  honest rows pull back unclipped, the liar adds at most radius / n).
static void
s_test_rules (qt_rng_t *rng)
{
    QT_CHECK (qt_aggregation_names [QT_AGGREGATIONS] == NULL);
    QT_CHECK (qt_pre_aggregation_names [QT_PRE_AGGREGATIONS] == NULL);
    QT_CHECK (streq (qt_aggregation_names [0], "geomedian"));
    QT_CHECK (streq (qt_pre_aggregation_names [0], "none"));
    for (int rule = 0; rule < QT_AGGREGATIONS; rule++)
        QT_CHECK (qt_aggregation_names [rule] && qt_aggregation_summary ((qt_aggregation_t) rule));
    QT_CHECK (qt_aggregation_weighted (QT_AGGREGATION_GEOMEDIAN));
    QT_CHECK (!qt_aggregation_weighted (QT_AGGREGATION_KRUM));
    QT_CHECK (!qt_aggregation_summary (QT_AGGREGATIONS));
    QT_CHECK (qt_pre_aggregation_summary (QT_PRE_AGGREGATION_NNM));
    char *json = NULL;
    size_t json_size = 0;
    FILE *stream = open_memstream (&json, &json_size);
    QT_CHECK (stream);
    qt_aggregation_describe (stream);
    fclose (stream);
    QT_CHECK (strstr (json, "\"name\": \"centered-clipping\"") && strstr (json, "\"nnm\""));
    free (json);

    qt_aggregate_params_t params;
    qt_aggregate_params_init (&params);
    QT_CHECK (params.rule == QT_AGGREGATION_GEOMEDIAN && params.pre == QT_PRE_AGGREGATION_NONE);
    double liars [] = { 0, 1e6, 1e300, -1e300 };
    for (int trial = 0; trial < TEST_TRIALS; trial++) {
        const size_t d = 4;
        double honest [4], x [3 * 4], z [4];
        for (size_t j = 0; j < d; j++)
            honest [j] = qt_rng_normal (rng);
        size_t liar = qt_rng_below (rng, 3);
        for (size_t i = 0; i < 3; i++)
            for (size_t j = 0; j < d; j++)
                x [i * d + j] = i == liar? (trial % 4? liars [trial % 4] * (j % 2? -1: 1)
                                                     : honest [j] + qt_rng_normal (rng))
                                         : honest [j];
        for (int pre = 0; pre < QT_PRE_AGGREGATIONS; pre++)
            for (int rule = 0; rule < QT_AGGREGATIONS; rule++) {
                params.rule = (qt_aggregation_t) rule;
                params.pre = (qt_pre_aggregation_t) pre;
                params.f = 1;
                params.seed = (uint64_t) trial;
                qt_geomedian_report_t report;
                QT_CHECK (qt_aggregate (&params, x, NULL, 3, d, z, &report) == 0);
                QT_CHECK (report.converged && report.used == 3 && report.rejected == 0);
                if (rule == QT_AGGREGATION_CENTERED_CLIPPING && pre != QT_PRE_AGGREGATION_NNM) {
                    double deviation = 0;
                    for (size_t j = 0; j < d; j++)
                        deviation += (z [j] - honest [j]) * (z [j] - honest [j]);
                    QT_CHECK (sqrt (deviation) <= params.clip_radius / 2 * (1 + 1e-12));
                }
                else
                if (rule == QT_AGGREGATION_CENTERED_CLIPPING) {
                    //  After mixing the liar's row is (honest + liar) / 2:
                    //  the same bound holds
                    double deviation = 0;
                    for (size_t j = 0; j < d; j++)
                        deviation += (z [j] - honest [j]) * (z [j] - honest [j]);
                    QT_CHECK (sqrt (deviation) <= params.clip_radius / 2 * (1 + 1e-12));
                }
                else
                    QT_CHECK (memcmp (z, honest, sizeof (honest)) == 0);
            }
    }
    //  The liar first: Krum's n - f - 1 = 1 neighbour picks an honest row
    double first [] = { 9, 9,  1, 2,  1, 2 };
    double z [2];
    size_t index;
    QT_CHECK (qt_krum (first, 3, 2, 1, z, &index) == 0 && index == 1);

    //  Weights: a row of weight 0 takes no part, NaN rejects, the
    //  geometric median is qt_geomedian's bit for bit
    double rows [] = { 100, 100,  0, 1,  2, 3 };
    double weights [] = { 0, 1, 1 };
    qt_geomedian_report_t report;
    params.pre = QT_PRE_AGGREGATION_NONE;
    params.f = 1;
    for (int rule = 0; rule < QT_AGGREGATIONS; rule++) {
        params.rule = (qt_aggregation_t) rule;
        QT_CHECK (qt_aggregate (&params, rows, weights, 3, 2, z, &report) == 0);
        QT_CHECK (report.used == 2 && z [0] <= 2 && z [1] <= 3);
    }
    params.rule = QT_AGGREGATION_TRIMMED_MEAN;         //  f clamped to 0: the mean
    QT_CHECK (qt_aggregate (&params, rows, weights, 3, 2, z, &report) == 0);
    QT_CHECK (z [0] == 1 && z [1] == 2);
    double bad_weights [] = { NAN, 1, 1 };
    QT_CHECK (qt_aggregate (&params, rows, bad_weights, 3, 2, z, &report) == 0);
    QT_CHECK (report.rejected == 1 && report.used == 2);
    for (int trial = 0; trial < TEST_TRIALS; trial++) {
        double points [7 * 3], w [7], a [3], b [3];
        for (size_t k = 0; k < 7 * 3; k++)
            points [k] = qt_rng_normal (rng);
        for (size_t i = 0; i < 7; i++)
            w [i] = trial % 2? 0.2 + qt_rng_uniform (rng): 1;
        params.rule = QT_AGGREGATION_GEOMEDIAN;
        params.f = 3;
        QT_CHECK (qt_aggregate (&params, points, w, 7, 3, a, &report) == 0);
        QT_CHECK (qt_geomedian (points, w, 7, 3, params.tolerance, params.max_iterations, b, NULL) == 0);
        QT_CHECK (memcmp (a, b, sizeof (a)) == 0);
        params.rule = QT_AGGREGATION_COORDMEDIAN;
        QT_CHECK (qt_aggregate (&params, points, NULL, 7, 3, a, &report) == 0);
        QT_CHECK (qt_coordmedian (points, 7, 3, b) == 0);
        QT_CHECK (memcmp (a, b, sizeof (a)) == 0);
        for (size_t j = 0; j < 3; j++) {
            double column [7];
            for (size_t i = 0; i < 7; i++)
                column [i] = points [i * 3 + j];
            QT_CHECK (qt_aggregate (&params, points, w, 7, 3, a, &report) == 0);
            QT_CHECK (a [j] == qt_quantile (column, w, 7, 0.5));
        }
    }
    params.rule = QT_AGGREGATIONS;
    QT_CHECK (qt_aggregate (&params, rows, NULL, 3, 2, z, &report) == -1);
    params.rule = QT_AGGREGATION_KRUM;
    QT_CHECK (qt_aggregate (&params, rows, NULL, 0, 2, z, &report) == -1);
    double none [] = { NAN, 0 };
    QT_CHECK (qt_aggregate (&params, none, NULL, 1, 2, z, &report) == -1);
}

void
qt_robust_test (bool verbose)
{
    if (verbose)
        printf (" * qt_robust: ");
    qt_rng_t rng;
    qt_rng_seed (&rng, TEST_SEED, 0);
    s_test_reference ();
    s_test_exact (&rng);
    s_test_degenerate (&rng);
    s_test_rejection (&rng);
    s_test_properties (&rng);
    s_test_outlier (&rng);
    s_test_others (&rng);
    s_test_meamed (&rng);
    s_test_pre_aggregation (&rng);
    s_test_rules (&rng);
    if (verbose)
        printf ("OK\n");
}
