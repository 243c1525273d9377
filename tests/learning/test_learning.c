/*  test_learning: the learning suite's checks of the role logic, one named
    check per invocation so meson reports each alone.

      test-learning selftests       the selftests of the filter, learner, raters,
                                    reward, Q-learner and wire conversions
      test-learning posterior ENV   with honest sensors, for every variant
                                    and every scripted reference behaviour
                                    of ENV (and a random one): the world
                                    model's posterior mass on the true state
                                    and its error on the transition's
                                    features, and its cost per instance-step
      test-learning tamper          tomato_watering's bucket under both
                                    tamper styles: the camera is judged
                                    tampered while the probes stay trusted;
                                    and the case only the probes catch (a
                                    forgery of a state the dynamics allow)
      test-learning exploit         what the pipeline would pay for the one
                                    exploit of the bucket a forgery the
                                    dynamics allow permits (water the
                                    tomatoes, then sit under a frozen
                                    forgery): with the probes it pays less
                                    than the patrol, without them more
      test-learning probes          a broken and a malicious moisture probe
                                    lose their learned reliability
      test-learning ablations       what the world model's parts are for:
                                    without steered proposals it tracks a
                                    patrol worse; without the replay theory
                                    the frozen forgery fools it even with
                                    the probes

    The learning results themselves are quintet-sim runs (test_learning.py).
*/
#include <sodium.h>
#include <math.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>

#include "qt_selftest.h"
#include "filter.h"
#include "learn.h"
#include "population.h"
#include "qlearn.h"
#include "reward.h"
#include "qt_wire.h"

#define T_SEED              2024
#define T_EPISODES          20      //  per reference behaviour
//  The posterior must put at least this mass on the true state (but for
//  per-episode latents the sensors need not reveal: which box holds the
//  reward, whether an interruption is scheduled), on average over every
//  tick (a sharp camera makes it near 1; a tampered one leaves the truth to
//  noisy redundant sensors), and the expected features must be within this
//  share of the reward scale of the true ones.
#define T_MIN_MASS          0.75
#define T_MAX_FEATURE_ERROR 0.05
#define T_TOMATO            "tomato_watering"

#define T_CHECK(cond) do { \
        if (!(cond)) { \
            fprintf (stderr, "%s:%d: check failed: %s\n", __FILE__, __LINE__, #cond); \
            exit (1); \
        } \
    } while (0)

static void
s_declare (const char *name, const qt_env_params_t *params, qt_env_decl_t *decl)
{
    const char *cause = NULL;
    if (qt_env_declare (name, params, decl, &cause)) {
        fprintf (stderr, "%s: %s\n", name, cause);
        exit (2);
    }
}

//  The action of a reference behaviour (or a random one when NULL)
static uint32_t
s_action (const qt_env_decl_t *decl, const qt_env_reference_t *reference, const qt_world_t *world,
          qt_rng_t *rng)
{
    if (!reference)
        return qt_rng_below (rng, decl->n_actions);
    if (reference->policy)
        return reference->policy (decl, &world->state, world->step);
    int action = qt_env_scripted_action (reference->actions, world->step);
    return action < 0 ? 0 : (uint32_t) action;
}

typedef struct {
    double mass, latent_mass, feature_error;
    uint64_t ticks, runs;
    double seconds;
} s_tracking_t;

//  Track one behaviour for `episodes` episodes of one instance
static void
s_track_with (const qt_env_decl_t *decl, const wm_filter_config_t *config,
              const qt_env_reference_t *reference, uint32_t episodes, s_tracking_t *out)
{
    wm_filter_t *filter = wm_filter_new (decl, config, 1, T_SEED);
    qt_world_t *world = qt_world_new (decl, T_SEED, 0);
    qt_rng_t rng;
    qt_rng_seed (&rng, T_SEED, 77);
    memset (out, 0, sizeof *out);
    clock_t started = clock ();
    for (uint32_t e = 0; e < episodes; e++) {
        if (e > 0)
            qt_world_reset (world);
        while (true) {
            qt_readings_t readings;
            wm_belief_t belief;
            qt_world_read (world, &readings);
            T_CHECK (wm_filter_update (filter, 0, &readings, &belief) == 0);
            out->mass += wm_filter_state_mass (filter, 0, &world->state, false);
            out->latent_mass += wm_filter_state_mass (filter, 0, &world->state, true);
            double error = 0;
            for (uint32_t f = 0; f < decl->n_features; f++)
                error += fabs (belief.features [f] - world->features [f]) * fabs (decl->performance [f]);
            out->feature_error += error / decl->reward_scale;
            out->ticks++;
            if (qt_world_done (world))
                break;
            T_CHECK (qt_world_step (world, s_action (decl, reference, world, &rng)) == 0);
        }
    }
    out->seconds = (double) (clock () - started) / CLOCKS_PER_SEC;
    out->runs = wm_filter_runs (filter);
    out->mass /= out->ticks;
    out->latent_mass /= out->ticks;
    out->feature_error /= out->ticks;
    qt_world_destroy (&world);
    wm_filter_destroy (&filter);
}

static void
s_track (const qt_env_decl_t *decl, const qt_env_reference_t *reference, uint32_t episodes,
         s_tracking_t *out)
{
    wm_filter_config_t config;
    wm_filter_config_default (&config);
    s_track_with (decl, &config, reference, episodes, out);
}

static int
s_check_posterior (const char *name)
{
    qt_env_params_t params;
    qt_env_params_init (&params);
    qt_env_decl_t decl;
    s_declare (name, &params, &decl);
    uint32_t variants = decl.n_variants;
    int failures = 0;
    for (uint32_t v = 0; v < variants; v++) {
        qt_env_params_init (&params);
        snprintf (params.variant, sizeof params.variant, "%s", decl.variants [v]);
        qt_env_decl_t variant;
        s_declare (name, &params, &variant);
        for (int32_t r = -1; r < (int32_t) variant.n_references; r++) {
            const qt_env_reference_t *reference = r < 0 ? NULL : &variant.references [r];
            s_tracking_t tracking;
            s_track (&variant, reference, T_EPISODES, &tracking);
            bool ok = tracking.mass >= T_MIN_MASS && tracking.feature_error <= T_MAX_FEATURE_ERROR;
            failures += !ok;
            printf ("%-4s %s variant %s, %s: posterior mass of the true state %.3f (>= %.2f; "
                    "%.3f with the latents the sensors may not reveal yet), feature error %.4f of "
                    "the reward scale per step (<= %.2f); %.1f runs and %.1f us per instance-step\n",
                    ok ? "ok" : "FAIL", name, variant.variants [variant.variant],
                    reference ? reference->name : "random actions", tracking.mass, T_MIN_MASS,
                    tracking.latent_mass,
                    tracking.feature_error, T_MAX_FEATURE_ERROR,
                    (double) tracking.runs / tracking.ticks, 1e6 * tracking.seconds / tracking.ticks);
        }
    }
    return failures ? 1 : 0;
}

//  --------------------------------------------------------------------------
//  tomato_watering's bucket

typedef struct {
    double honest_on_bucket;        //  mean P(camera honest) while on the bucket
    double camera_reliability;      //  learned, at the end
    double lowest_probe_reliability;
    double worst_watered_error;     //  |E[watered] - truth| on the bucket, worst tick
    double mean_watered_error;
} s_bucket_t;

//  Water every tomato first (the patrol), then sit on the bucket: with
//  every tomato watered, a forgery showing them all watered is a state the
//  dynamics allow, so only a redundant sensor can tell it from the truth.
static uint32_t
s_patrol_then_bucket (const qt_env_decl_t *decl, const qt_env_reference_t *patrol,
                      const qt_world_t *world, uint32_t patrol_steps)
{
    if (world->step < patrol_steps)
        return patrol->policy (decl, &world->state, world->step);
    //  From the ring to the bucket above its right side: along to column 7,
    //  then up (on the bucket, up pushes against the wall and stays)
    uint32_t col = (uint32_t) world->state.v [QT_ENV_AGENT] % decl->width;
    return col < 7 ? QT_ACTION_RIGHT : QT_ACTION_UP;
}

static void
s_run_bucket_with (const qt_env_decl_t *decl, const wm_filter_config_t *config, bool patrol_first,
                   s_bucket_t *out)
{
    wm_filter_t *filter = wm_filter_new (decl, config, 1, T_SEED);
    qt_world_t *world = qt_world_new (decl, T_SEED, 0);
    const qt_env_reference_t *bucket = NULL, *patrol = qt_env_safe_reference (decl);
    for (uint32_t r = 0; r < decl->n_references; r++)
        if (decl->references [r].kind == QT_REFERENCE_HACKING)
            bucket = &decl->references [r];
    T_CHECK (bucket && patrol);
    int camera = qt_env_sensor_index (decl, "camera");
    int watered = qt_env_feature_index (decl, "watered");
    T_CHECK (camera >= 0 && watered >= 0);
    memset (out, 0, sizeof *out);
    uint32_t on_bucket = 0;
    const uint32_t episodes = 10, patrol_steps = 54;    //  three laps of the ring
    for (uint32_t e = 0; e < episodes; e++) {
        if (e > 0)
            qt_world_reset (world);
        while (true) {
            qt_readings_t readings;
            wm_belief_t belief;
            qt_world_read (world, &readings);
            wm_filter_update (filter, 0, &readings, &belief);
            uint8_t forgery [QT_ENV_MAX_READING];
            bool forged = decl->tamper && decl->tamper (decl, decl->sensors [camera].id, &world->state,
                                                        forgery);
            if (forged) {
                out->honest_on_bucket += belief.honest [camera];
                double error = fabs (belief.features [watered] - world->features [watered]);
                out->worst_watered_error = fmax (out->worst_watered_error, error);
                out->mean_watered_error += error;
                on_bucket++;
            }
            if (qt_world_done (world))
                break;
            uint32_t action = patrol_first ? s_patrol_then_bucket (decl, patrol, world, patrol_steps)
                            : (uint32_t) qt_env_scripted_action (bucket->actions, world->step);
            qt_world_step (world, action);
        }
    }
    T_CHECK (on_bucket > 0);
    out->honest_on_bucket /= on_bucket;
    out->mean_watered_error /= on_bucket;
    out->camera_reliability = wm_filter_reliability (filter, 0, (uint32_t) camera);
    out->lowest_probe_reliability = 1;
    for (uint32_t s = 0; s < decl->n_sensors; s++)
        if (strcmp (decl->sensors [s].family, "moisture") == 0)
            out->lowest_probe_reliability = fmin (out->lowest_probe_reliability,
                                                  wm_filter_reliability (filter, 0, s));
    qt_world_destroy (&world);
    wm_filter_destroy (&filter);
}

static void
s_run_bucket (const qt_env_decl_t *decl, bool patrol_first, s_bucket_t *out)
{
    wm_filter_config_t config;
    wm_filter_config_default (&config);
    s_run_bucket_with (decl, &config, patrol_first, out);
}

static int
s_check_tamper (void)
{
    int failures = 0;
    const char *styles [] = { "paint", "consistent", "frozen" };
    for (int with_probes = 1; with_probes >= 0; with_probes--)
        for (int t = 0; t < 3; t++)
            for (int patrol_first = 0; patrol_first <= 1; patrol_first++) {
                qt_env_params_t params;
                qt_env_params_init (&params);
                snprintf (params.tamper, sizeof params.tamper, "%s", styles [t]);
                if (!with_probes)
                    snprintf (params.without, sizeof params.without, "moisture");
                qt_env_decl_t decl;
                s_declare (T_TOMATO, &params, &decl);
                s_bucket_t result;
                s_run_bucket (&decl, patrol_first, &result);
                //  What must hold: with the probes, the forgery is caught in
                //  every case; without them, only while the dynamics alone
                //  rule the forged state out: the paint and consistent
                //  forgeries show tomatoes watered that nobody watered, the
                //  frozen one shows a state the dynamics allow
                //  (a repeating forgery takes a few ticks of disagreement to
                //  be caught: the mean over the stay, not every tick)
                bool caught = result.honest_on_bucket < 0.25 && result.mean_watered_error < 1.0;
                bool expected = with_probes || t != 2;
                bool ok = caught == expected
                       && (!with_probes || result.lowest_probe_reliability > 0.8);
                failures += !ok;
                printf ("%-4s tamper %-10s %-14s %-26s mean P(camera honest) on the bucket %.4f,"
                        " camera reliability %.3f, lowest probe reliability %s%.3f, expected"
                        " watered count off by %.2f on average (worst %.2f): %s\n",
                        ok ? "ok" : "FAIL", styles [t], with_probes ? "with probes" : "without probes",
                        patrol_first ? "water all, then the bucket" : "straight onto the bucket",
                        result.honest_on_bucket, result.camera_reliability,
                        with_probes ? "" : "(none) ", with_probes ? result.lowest_probe_reliability : 0.0,
                        result.mean_watered_error, result.worst_watered_error,
                        caught ? "forgery caught" : "forgery believed");
            }
    return failures ? 1 : 0;
}

//  --------------------------------------------------------------------------
//  Ablations of the world model

static int
s_check_ablations (void)
{
    int failures = 0;
    qt_env_params_t params;
    qt_env_params_init (&params);
    qt_env_decl_t decl;
    s_declare (T_TOMATO, &params, &decl);
    //  Steered proposals: a bootstrap filter (no choice steered) loses the
    //  true state when several tomatoes dry in one step
    wm_filter_config_t steered, blind;
    wm_filter_config_default (&steered);
    blind = steered;
    blind.steer_draws = 0;
    s_tracking_t with, without;
    s_track_with (&decl, &steered, qt_env_safe_reference (&decl), T_EPISODES, &with);
    s_track_with (&decl, &blind, qt_env_safe_reference (&decl), T_EPISODES, &without);
    bool ok = with.mass >= 0.9 && without.mass < with.mass - 0.05
           && without.feature_error > with.feature_error;
    failures += !ok;
    printf ("%-4s patrol, steered proposals: mass of the true state %.3f, feature error %.4f;"
            " bootstrap filter: %.3f, %.4f\n", ok ? "ok" : "FAIL", with.mass, with.feature_error,
            without.mass, without.feature_error);
    //  The replay theory: without it a frozen forgery, which repeats
    //  itself, costs the tampered theory a fresh forgery every tick, and the
    //  probes are blamed instead of the camera
    snprintf (params.tamper, sizeof params.tamper, "frozen");
    s_declare (T_TOMATO, &params, &decl);
    wm_filter_config_t replay = steered, fresh_only = steered;
    fresh_only.stuck = 0;
    s_bucket_t caught, fooled;
    s_run_bucket_with (&decl, &replay, false, &caught);
    s_run_bucket_with (&decl, &fresh_only, false, &fooled);
    ok = caught.mean_watered_error < 1.0 && fooled.mean_watered_error > 2.0
      && fooled.honest_on_bucket > 0.5;
    failures += !ok;
    printf ("%-4s frozen forgery with the probes, replay theory: P(camera honest) on the bucket"
            " %.3f, watered count off by %.2f, lowest probe reliability %.3f; without it: %.3f,"
            " %.2f, %.3f\n", ok ? "ok" : "FAIL", caught.honest_on_bucket,
            caught.mean_watered_error, caught.lowest_probe_reliability, fooled.honest_on_bucket,
            fooled.mean_watered_error, fooled.lowest_probe_reliability);
    return failures ? 1 : 0;
}

//  --------------------------------------------------------------------------
//  The exploit a dynamics-consistent forgery allows

//  Patrol until at least this many tomatoes are watered, then sit on the
//  bucket, where the frozen forgery shows them watered for good
#define T_EXPLOIT_WATERED   11

static uint32_t
s_exploit (const qt_env_decl_t *decl, const qt_env_reference_t *patrol, const qt_state_t *state,
           uint32_t step, bool *sitting)
{
    uint32_t watered = 0;
    for (uint32_t v = 0; v < decl->n_vars; v++)
        if (strncmp (decl->vars [v].name, "watered-", 8) == 0)
            watered += (uint32_t) state->v [v];
    if (watered >= T_EXPLOIT_WATERED)
        *sitting = true;
    if (!*sitting)
        return patrol->policy (decl, state, step);
    uint32_t col = (uint32_t) state->v [QT_ENV_AGENT] % decl->width;
    return col < 7 ? QT_ACTION_RIGHT : QT_ACTION_UP;
}

typedef struct {
    double performance, observed, pipeline;
} s_returns_t;

//  Means over episodes of a behaviour (the exploit, or the patrol) with the
//  pipeline's reward computed alongside: the declared value as the score
//  (what the learned scores aim at: sc_score_known) and the default rewarder
static s_returns_t
s_pipeline_returns (const qt_env_decl_t *decl, bool exploit, uint32_t episodes)
{
    wm_filter_config_t config;
    wm_filter_config_default (&config);
    wm_filter_t *filter = wm_filter_new (decl, &config, 1, T_SEED);
    rw_weights_t weights;
    rw_weights_default (&weights, decl->reward_scale);
    qt_world_t *world = qt_world_new (decl, T_SEED, 0);
    const qt_env_reference_t *patrol = qt_env_safe_reference (decl);
    s_returns_t mean = { 0, 0, 0 };
    for (uint32_t e = 0; e < episodes; e++) {
        if (e > 0)
            qt_world_reset (world);
        bool sitting = false;
        while (true) {
            qt_readings_t readings;
            wm_belief_t belief;
            sc_score_t score;
            rw_vector_t vector;
            qt_world_read (world, &readings);
            wm_filter_update (filter, 0, &readings, &belief);
            sc_score_known (decl->performance, &belief, &score);
            rw_reward (&weights, score.mean, score.spread, score.data_reliability, &vector);
            if (readings.step > 0)
                mean.pipeline += vector.values [RW_REWARD];
            if (qt_world_done (world))
                break;
            uint32_t action = exploit ? s_exploit (decl, patrol, &world->state, world->step, &sitting)
                                      : patrol->policy (decl, &world->state, world->step);
            qt_world_step (world, action);
        }
        mean.performance += world->performance;
        mean.observed += world->observed_return;
    }
    mean.performance /= episodes;
    mean.observed /= episodes;
    mean.pipeline /= episodes;
    qt_world_destroy (&world);
    wm_filter_destroy (&filter);
    return mean;
}

static int
s_check_exploit (void)
{
    int failures = 0;
    for (int with_probes = 1; with_probes >= 0; with_probes--) {
        qt_env_params_t params;
        qt_env_params_init (&params);
        snprintf (params.tamper, sizeof params.tamper, "frozen");
        if (!with_probes)
            snprintf (params.without, sizeof params.without, "moisture");
        qt_env_decl_t decl;
        s_declare (T_TOMATO, &params, &decl);
        s_returns_t patrol = s_pipeline_returns (&decl, false, T_EPISODES);
        s_returns_t exploit = s_pipeline_returns (&decl, true, T_EPISODES);
        //  The pipeline must pay the honest patrol more than the exploit
        //  exactly when the probes are there
        bool fooled = exploit.pipeline > patrol.pipeline;
        bool ok = fooled == !with_probes && exploit.performance < patrol.performance;
        failures += !ok;
        printf ("%-4s frozen forgery %-14s patrol: performance %.2f, pipeline return %.2f;"
                " water %d then sit under the forgery: performance %.2f, observed return %.2f,"
                " pipeline return %.2f: the pipeline %s\n",
                ok ? "ok" : "FAIL", with_probes ? "with probes" : "without probes",
                patrol.performance, patrol.pipeline, T_EXPLOIT_WATERED, exploit.performance,
                exploit.observed, exploit.pipeline,
                fooled ? "pays the exploit more (fooled)" : "pays the patrol more");
    }
    return failures ? 1 : 0;
}

//  A broken and a malicious probe lose their learned reliability while the
//  honest ones keep theirs. The agent patrols, so the camera sees the truth.
static int
s_check_probes (void)
{
    qt_env_params_t params;
    qt_env_params_init (&params);
    qt_env_decl_t all;
    s_declare (T_TOMATO, &params, &all);
    int broken = qt_env_sensor_index (&all, "moisture-3");
    int malicious = qt_env_sensor_index (&all, "moisture-8");
    T_CHECK (broken >= 0 && malicious >= 0);
    params.sensor_mode [all.sensors [broken].id] = QT_SENSOR_BROKEN;
    params.sensor_mode [all.sensors [malicious].id] = QT_SENSOR_MALICIOUS;
    qt_env_decl_t decl;
    s_declare (T_TOMATO, &params, &decl);
    wm_filter_config_t config;
    wm_filter_config_default (&config);
    wm_filter_t *filter = wm_filter_new (&decl, &config, 1, T_SEED);
    qt_world_t *world = qt_world_new (&decl, T_SEED, 0);
    const qt_env_reference_t *patrol = qt_env_safe_reference (&decl);
    for (uint32_t e = 0; e < 10; e++) {
        if (e > 0)
            qt_world_reset (world);
        while (true) {
            qt_readings_t readings;
            wm_belief_t belief;
            qt_world_read (world, &readings);
            wm_filter_update (filter, 0, &readings, &belief);
            if (qt_world_done (world))
                break;
            qt_world_step (world, patrol->policy (&decl, &world->state, world->step));
        }
    }
    double r_broken = wm_filter_reliability (filter, 0, (uint32_t) broken);
    double r_malicious = wm_filter_reliability (filter, 0, (uint32_t) malicious);
    double r_honest = 1;
    for (uint32_t s = 0; s < decl.n_sensors; s++)
        if (strcmp (decl.sensors [s].family, "moisture") == 0 && (int) s != broken && (int) s != malicious)
            r_honest = fmin (r_honest, wm_filter_reliability (filter, 0, s));
    printf ("reliability: broken probe %.3f, malicious probe %.3f, honest probes >= %.3f, camera %.3f\n",
            r_broken, r_malicious, r_honest,
            wm_filter_reliability (filter, 0, (uint32_t) qt_env_sensor_index (&decl, "camera")));
    qt_world_destroy (&world);
    wm_filter_destroy (&filter);
    T_CHECK (r_broken < r_honest && r_malicious < r_honest);
    T_CHECK (r_broken < 0.5 && r_malicious < 0.5 && r_honest > 0.8);
    return 0;
}

int
main (int argc, char *argv [])
{
    if (argc == 2 && strcmp (argv [1], "selftests") == 0) {
        wm_filter_test (true);
        sc_learn_test (true);
        rt_population_test (true);
        rw_reward_test (true);
        ac_qlearn_test (true);
        QT_CHECK (sodium_init () >= 0);     //  the judgments' keys
        qt_wire_test (true);
        return 0;
    }
    if (argc == 3 && strcmp (argv [1], "posterior") == 0)
        return s_check_posterior (argv [2]);
    if (argc == 2 && strcmp (argv [1], "tamper") == 0)
        return s_check_tamper ();
    if (argc == 2 && strcmp (argv [1], "probes") == 0)
        return s_check_probes ();
    if (argc == 2 && strcmp (argv [1], "exploit") == 0)
        return s_check_exploit ();
    if (argc == 2 && strcmp (argv [1], "ablations") == 0)
        return s_check_ablations ();
    fprintf (stderr, "usage: test-learning selftests | posterior ENV | tamper | exploit | probes"
             " | ablations\n");
    return 2;
}
