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
#include <stdint.h>
#include <stdio.h>

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

//  Coordinate-wise trimmed mean: per coordinate, drop the f smallest and the
//  f largest values and average the rest. Needs more than 2f finite rows.
int qt_trimmed_mean (const double *x, size_t n, size_t d, size_t f, double *z);

//  Krum (Blanchard et al. 2017, with ByzFL's neighbourhood): the score of a
//  row is the sum of squared distances to its n-f-1 nearest other rows (its
//  n-f nearest neighbours, itself included; n counting the finite rows only,
//  no neighbours when that is <= 0); the row of lowest score is copied to z,
//  ties to the lowest index. index, if not NULL, receives that row's index
//  in x. (Blanchard's n-f-2 others would leave n = 3, f = 1 with no
//  neighbour at all, every score 0 and the first row, liar or not, chosen.)
int qt_krum (const double *x, size_t n, size_t d, size_t f, double *z, size_t *index);

//  Multi-Krum: the mean of the m rows of best Krum score (ties to the lowest
//  index). m is clamped to the number of finite rows; m = 0 is invalid.
int qt_multikrum (const double *x, size_t n, size_t d, size_t f, size_t m, double *z);

//  Centered clipping (Karimireddy et al. 2021): start at the coordinate-wise
//  median and repeat `rounds` times v <- v + mean_i clip (x_i - v, radius),
//  where clip scales a vector down to norm radius when it is longer.
int qt_centered_clip (const double *x, size_t n, size_t d, double radius,
                      int rounds, double *z);

//  Mean around the median (Xie et al. 2018, ByzFL's Meamed): per
//  coordinate, the mean of the n-f values nearest the coordinate's median
//  (n counting the finite rows; ties in distance to the smaller value, then
//  the lower one in the canonical order, so the result does not depend on
//  the order of the rows). Needs more than f finite rows.
int qt_meamed (const double *x, size_t n, size_t d, size_t f, double *z);

//  Pre-aggregations: n rows in, rows out (y, room for n * d values), the
//  count written to *out. Rows with a non-finite value are dropped first.
//  Nearest-neighbour mixing (Allouah et al. 2023): each row replaced by the
//  mean of its n-f nearest rows, itself included (ties to the lower index
//  in the canonical order); *out = the finite rows.
int qt_nnm (const double *x, size_t n, size_t d, size_t f, double *y, size_t *out);

//  Bucketing (Karimireddy et al. 2022): the finite rows, put in the
//  canonical order and then shuffled by a permutation drawn from seed (so
//  every honest replica draws the same one), averaged in buckets of s
//  consecutive rows (the last one may hold fewer); *out = ceil(rows / s).
//  s = 0 is invalid.
int qt_bucketing (const double *x, size_t n, size_t d, size_t s, uint64_t seed,
                  double *y, size_t *out);

//  The aggregation rules, in ONE place: the aggregator's configuration
//  (quintet/aggregator/aggregation), its --help, `quintetctl aggregations`
//  and through it the demo and the tests read this table. X (ENUM, name,
//  weighted, summary): weighted rules use the reputation weights, the
//  others use every row of weight > 0 alike. The first is the default.
#define QT_AGGREGATION_TABLE(X) \
    X (GEOMEDIAN, "geomedian", true, \
       "weighted geometric median (Weiszfeld, Vardi-Zhang, to tolerance)") \
    X (COORDMEDIAN, "coordmedian", true, \
       "weighted coordinate-wise median") \
    X (TRIMMED_MEAN, "trimmed-mean", false, \
       "coordinate-wise mean after dropping the f smallest and f largest values") \
    X (KRUM, "krum", false, \
       "the row nearest its n-f-1 nearest others (Krum)") \
    X (MULTIKRUM, "multi-krum", false, \
       "mean of the n-f rows of best Krum score") \
    X (CENTERED_CLIPPING, "centered-clipping", false, \
       "from the coordinate-wise median, clip_rounds steps of clipped mean (radius clip_radius)") \
    X (MEAMED, "meamed", false, \
       "coordinate-wise mean of the n-f values nearest the median")

#define QT_PRE_AGGREGATION_TABLE(X) \
    X (NONE, "none", "the rows as proposed") \
    X (NNM, "nnm", "nearest-neighbour mixing: each row the mean of its n-f nearest") \
    X (BUCKETING, "bucketing", "seeded shuffle, means of groups of bucket_size rows")

#define QT_AGGREGATION_ENUM(id, name, weighted, summary) QT_AGGREGATION_##id,
typedef enum { QT_AGGREGATION_TABLE (QT_AGGREGATION_ENUM) QT_AGGREGATIONS } qt_aggregation_t;
#undef QT_AGGREGATION_ENUM
#define QT_PRE_AGGREGATION_ENUM(id, name, summary) QT_PRE_AGGREGATION_##id,
typedef enum { QT_PRE_AGGREGATION_TABLE (QT_PRE_AGGREGATION_ENUM) QT_PRE_AGGREGATIONS } qt_pre_aggregation_t;
#undef QT_PRE_AGGREGATION_ENUM

//  NULL-terminated name lists, in table order (for qt_config_choice).
extern const char *const qt_aggregation_names [];
extern const char *const qt_pre_aggregation_names [];
const char *qt_aggregation_summary (qt_aggregation_t rule);
bool qt_aggregation_weighted (qt_aggregation_t rule);
const char *qt_pre_aggregation_summary (qt_pre_aggregation_t pre);
//  The table as JSON: {"aggregation": [{"name", "weighted", "summary"}...],
//  "pre_aggregation": [{"name", "summary"}...]}, defaults first.
void qt_aggregation_describe (FILE *out);

//  The centered clipping defaults: radius in the rows' own units.
#define QT_CLIP_RADIUS  0.1
#define QT_CLIP_ROUNDS  3

typedef struct {
    qt_aggregation_t rule;
    qt_pre_aggregation_t pre;
    size_t f;                   //  tolerated faulty rows (clamped to (rows - 1) / 2)
    double tolerance;           //  geomedian: <= 0 for the default
    int max_iterations;         //  geomedian: <= 0 for the default
    double clip_radius;         //  centered clipping (> 0)
    int clip_rounds;            //  centered clipping (>= 0)
    size_t bucket_size;         //  bucketing: 0 for the largest s leaving
                                //  ceil(rows / s) >= 2f + 1 buckets
    uint64_t seed;              //  bucketing's permutation
} qt_aggregate_params_t;

//  Defaults: geomedian, no pre-aggregation, f = 0, QT_CLIP_RADIUS ...
void qt_aggregate_params_init (qt_aggregate_params_t *params);

//  One aggregation: the rows of weight > 0 (w may be NULL: unit weights;
//  a NaN, infinite or negative weight rejects its row), pre-aggregated
//  (which leaves unit weights), then combined by the rule (weighted rules
//  with the weights, the others without). report (may be NULL): for the
//  geometric median qt_geomedian's; for the other rules 0 iterations,
//  converged, used and rejected counted before pre-aggregation.
int qt_aggregate (const qt_aggregate_params_t *params, const double *x, const double *w,
                  size_t n, size_t d, double *z, qt_geomedian_report_t *report);

void qt_robust_test (bool verbose);

#endif
