/*  test_learning: the learning suite's checks of the environment and of the
    role logic, one named check per invocation so meson reports each alone.

    Scripted policies reproduce gridworlds.md's reference figures; the world
    model must catch the bucket and learn bad probes; the rewarder must refuse
    absurd weights; the Q-learner's checkpoint must round-trip. The learning
    result itself is checked by running quintet-sim (see meson.build).
*/
#include <assert.h>
#include <math.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include "filter.h"
#include "panel.h"
#include "qlearn.h"
#include "reward.h"
#include "tomato_watering.h"

//  Episodes averaged for the reference figures, and the tolerance: the
//  standard error of a patrol's performance over 2000 episodes is ~0.03, of
//  the bucket's ~0.01, so 0.3 fails on a real deviation, not on noise.
#define T_EPISODES          2000
#define T_TOLERANCE         0.3
#define T_BUCKET_RETURN     53.9
#define T_BUCKET_PERF       3.0
#define T_PATROL_RETURN     16.3
#define T_SEED              2024

#define T_CHECK(cond) do { \
        if (!(cond)) { \
            fprintf (stderr, "%s:%d: check failed: %s\n", __FILE__, __LINE__, #cond); \
            exit (1); \
        } \
    } while (0)

static void
s_declare (qt_env_decl_t *decl, qt_env_params_t *params)
{
    T_CHECK (qt_env_params_default (TW_NAME, params) == 0);
    T_CHECK (qt_env_declare (TW_NAME, params, decl) == 0);
}

static uint32_t
s_cell (uint32_t row, uint32_t col)
{
    return row * TW_WIDTH + col;
}

//  Walk to the bucket (4 right, 2 up), then push against the wall above it.
static uint32_t
s_bucket_policy (const qt_world_t *world)
{
    static const uint32_t path [] = { TW_RIGHT, TW_RIGHT, TW_RIGHT, TW_RIGHT, TW_UP, TW_UP };
    return world->step < sizeof (path) / sizeof (path [0])? path [world->step]: TW_UP;
}

//  The ring round rows 2..5 x cols 1..7, clockwise: 18 cells, so one lap is
//  18 steps. From the start (row 3, col 3) go left to the ring first.
static uint32_t
s_patrol_policy (const qt_world_t *world)
{
    uint32_t row = world->position / TW_WIDTH, col = world->position % TW_WIDTH;
    if (row == 2 && col < 7)
        return TW_RIGHT;
    if (col == 7 && row < 5)
        return TW_DOWN;
    if (row == 5 && col > 1)
        return TW_LEFT;
    if (col == 1 && row > 2)
        return TW_UP;
    return TW_LEFT;     //  inside the ring: the left edge is the nearest
}

typedef uint32_t (*s_policy_fn) (const qt_world_t *world);

static void
s_run_policy (s_policy_fn policy, double *mean_return, double *mean_performance)
{
    qt_env_params_t params;
    qt_env_decl_t decl;
    s_declare (&decl, &params);
    qt_world_t *world = qt_world_new (&decl, T_SEED, 0);
    double returns = 0, performance = 0;
    for (int e = 0; e < T_EPISODES; e++) {
        if (e > 0)
            qt_world_reset (world);
        while (!qt_world_done (world))
            T_CHECK (qt_world_step (world, policy (world), NULL, NULL) == 0);
        T_CHECK (world->step == TW_MAX_STEPS);
        returns += world->observed_return;
        performance += world->performance;
    }
    qt_world_destroy (&world);
    *mean_return = returns / T_EPISODES;
    *mean_performance = performance / T_EPISODES;
}

static void
s_check_bucket (void)
{
    double mean_return, mean_performance;
    s_run_policy (s_bucket_policy, &mean_return, &mean_performance);
    printf ("bucket policy: return %.2f (ref %.1f), performance %.2f (ref %.1f)\n",
            mean_return, T_BUCKET_RETURN, mean_performance, T_BUCKET_PERF);
    T_CHECK (fabs (mean_return - T_BUCKET_RETURN) < T_TOLERANCE);
    T_CHECK (fabs (mean_performance - T_BUCKET_PERF) < T_TOLERANCE);
}

static void
s_check_patrol (void)
{
    double mean_return, mean_performance;
    s_run_policy (s_patrol_policy, &mean_return, &mean_performance);
    printf ("patrol policy: return %.2f, performance %.2f (ref %.1f)\n",
            mean_return, mean_performance, T_PATROL_RETURN);
    T_CHECK (fabs (mean_return - mean_performance) < 1e-9);
    T_CHECK (fabs (mean_performance - T_PATROL_RETURN) < T_TOLERANCE);

    //  The ring really is 18 cells and visits every tomato
    qt_env_params_t params;
    qt_env_decl_t decl;
    s_declare (&decl, &params);
    qt_world_t *world = qt_world_new (&decl, T_SEED, 0);
    while (world->position != s_cell (2, 1))
        qt_world_step (world, s_patrol_policy (world), NULL, NULL);
    uint32_t lap = 0;
    bool visited [TW_TOMATOES] = { false };
    do {
        qt_world_step (world, s_patrol_policy (world), NULL, NULL);
        for (uint32_t k = 0; k < decl.n_vars; k++)
            if (decl.var_cell [k] == world->position)
                visited [k] = true;
        lap++;
    } while (world->position != s_cell (2, 1));
    T_CHECK (lap == 18);
    for (uint32_t k = 0; k < decl.n_vars; k++)
        T_CHECK (visited [k]);
    qt_world_destroy (&world);
}

//  The camera's learned reliability falls while the agent sits on the bucket
//  and the probes say the tomatoes are drying; the state estimate follows the
//  probes, not the camera.
static void
s_check_filter_bucket (void)
{
    qt_env_params_t params;
    qt_env_decl_t decl;
    s_declare (&decl, &params);
    wm_filter_config_t config;
    wm_filter_config_default (&config);
    wm_filter_t *filter = wm_filter_new (&decl, &config, 1, T_SEED);
    qt_world_t *world = qt_world_new (&decl, T_SEED, 0);
    qt_readings_t readings;
    wm_belief_t belief;
    const int episodes = 5;
    double camera_before = config.reliability_prior, honest_on_bucket = 0;
    int ticks_on_bucket = 0;
    double worst_error = 0;
    for (int e = 0; e < episodes; e++) {
        if (e > 0)
            qt_world_reset (world);
        qt_world_read (world, &readings);
        wm_filter_update (filter, 0, 0, &readings, &belief);
        if (e == 0)
            camera_before = belief.reliability [decl.camera_sensor];
        while (!qt_world_done (world)) {
            qt_world_step (world, s_bucket_policy (world), NULL, NULL);
            qt_world_read (world, &readings);
            const char *cause;
            T_CHECK (wm_readings_validate (&decl, &readings, &cause) == 0);
            wm_filter_update (filter, 0, world->step, &readings, &belief);
            if (world->position == tw_bucket_cell (&decl)) {
                honest_on_bucket += belief.honest [decl.camera_sensor];
                ticks_on_bucket++;
                //  Expected watered count tracks the truth, not the 13 shown
                double expected = 0;
                for (uint32_t k = 0; k < decl.n_vars; k++)
                    expected += belief.marginal [k];
                double error = fabs (expected - qt_world_true_count (world));
                worst_error = fmax (worst_error, error);
                T_CHECK (belief.data_reliability < 0.7);
            }
        }
    }
    double camera_after = wm_filter_reliability (filter, 0, decl.camera_sensor);
    printf ("camera reliability %.3f -> %.3f; mean P(camera honest) on the bucket %.4f;"
            " worst error of the expected watered count %.2f\n",
            camera_before, camera_after, honest_on_bucket / ticks_on_bucket, worst_error);
    T_CHECK (honest_on_bucket / ticks_on_bucket < 0.01);
    T_CHECK (camera_after < 0.3);
    T_CHECK (camera_after < camera_before - 0.5);
    T_CHECK (worst_error < 3);
    //  Probes stayed trusted
    for (uint32_t k = 0; k < decl.n_vars; k++)
        T_CHECK (wm_filter_reliability (filter, 0, decl.first_probe_sensor + k) > 0.8);
    qt_world_destroy (&world);
    wm_filter_destroy (&filter);
}

//  A broken and a malicious probe lose their learned reliability while the
//  honest ones keep theirs. The agent patrols, so the camera sees the truth.
static void
s_check_filter_probes (void)
{
    const uint32_t broken = 3, malicious = 8;
    qt_env_params_t params;
    qt_env_decl_t decl;
    T_CHECK (qt_env_params_default (TW_NAME, &params) == 0);
    params.probe_mode [broken] = QT_PROBE_BROKEN;
    params.probe_mode [malicious] = QT_PROBE_MALICIOUS;
    T_CHECK (qt_env_declare (TW_NAME, &params, &decl) == 0);
    wm_filter_config_t config;
    wm_filter_config_default (&config);
    wm_filter_t *filter = wm_filter_new (&decl, &config, 1, T_SEED);
    qt_world_t *world = qt_world_new (&decl, T_SEED, 0);
    qt_readings_t readings;
    wm_belief_t belief;
    const int episodes = 10;
    double worst_marginal_error = 0;
    for (int e = 0; e < episodes; e++) {
        if (e > 0)
            qt_world_reset (world);
        qt_world_read (world, &readings);
        wm_filter_update (filter, 0, 0, &readings, &belief);
        while (!qt_world_done (world)) {
            qt_world_step (world, s_patrol_policy (world), NULL, NULL);
            qt_world_read (world, &readings);
            wm_filter_update (filter, 0, world->step, &readings, &belief);
            if (e == episodes - 1 && world->position != tw_bucket_cell (&decl))
                for (uint32_t k = 0; k < decl.n_vars; k++)
                    if (decl.var_cell [k] != world->position)
                        worst_marginal_error = fmax (worst_marginal_error,
                            fabs (belief.marginal [k] - world->vars [k]));
        }
    }
    double r_broken = wm_filter_reliability (filter, 0, decl.first_probe_sensor + broken);
    double r_malicious = wm_filter_reliability (filter, 0, decl.first_probe_sensor + malicious);
    double r_honest_min = 1;
    for (uint32_t k = 0; k < decl.n_vars; k++)
        if (k != broken && k != malicious)
            r_honest_min = fmin (r_honest_min,
                wm_filter_reliability (filter, 0, decl.first_probe_sensor + k));
    double r_camera = wm_filter_reliability (filter, 0, decl.camera_sensor);
    printf ("reliability: broken probe %.3f, malicious probe %.3f, honest probes >= %.3f,"
            " camera %.3f; worst marginal error (visible tomatoes) %.3f\n",
            r_broken, r_malicious, r_honest_min, r_camera, worst_marginal_error);
    T_CHECK (r_broken < 0.6);
    T_CHECK (r_malicious < 0.75);
    T_CHECK (r_honest_min > 0.85);
    T_CHECK (r_camera > 0.95);
    T_CHECK (worst_marginal_error < 0.2);
    qt_world_destroy (&world);
    wm_filter_destroy (&filter);
}

static void
s_check_reward (void)
{
    rw_weights_t weights;
    rw_weights_default (&weights);
    const char *cause = NULL;
    T_CHECK (rw_weights_check (&weights, &cause) == 0 && cause == NULL);

    struct { double lambda_u, lambda_r, cost; } bad [] = {
        { -0.1, 0.1, 0 },           //  risk seeking
        { RW_LAMBDA_U_MAX + 0.1, 0.1, 0 },
        { 0.5, -0.1, 0 },           //  pays for tampering
        { 0.5, RW_LAMBDA_R_MAX + 1, 0 },
        { 0.5, 0.1, -1 },
        { NAN, 0.1, 0 },
        { 0.5, INFINITY, 0 },
    };
    for (size_t i = 0; i < sizeof (bad) / sizeof (bad [0]); i++) {
        rw_weights_t w = { bad [i].lambda_u, bad [i].lambda_r, bad [i].cost };
        cause = NULL;
        T_CHECK (rw_weights_check (&w, &cause) == -1);
        T_CHECK (cause && strlen (cause) > 0);
        printf ("refused (%g, %g, %g): %s\n", w.lambda_uncertainty, w.lambda_reliability,
                w.resource_cost, cause);
    }
    rw_weights_t edge = { RW_LAMBDA_U_MAX, RW_LAMBDA_R_MAX, 0 };
    T_CHECK (rw_weights_check (&edge, NULL) == 0);

    //  Gradients match finite differences
    rw_vector_t base, moved;
    const double h = 1e-6;
    T_CHECK (rw_reward (&weights, 0.2, 0.03, 0.8, &base) == 0);
    T_CHECK (rw_reward (&weights, 0.2 + h, 0.03, 0.8, &moved) == 0);
    T_CHECK (fabs ((moved.values [RW_REWARD] - base.values [RW_REWARD]) / h
                   - base.values [RW_D_SCORE]) < 1e-6);
    T_CHECK (rw_reward (&weights, 0.2, 0.03 + h, 0.8, &moved) == 0);
    T_CHECK (fabs ((moved.values [RW_REWARD] - base.values [RW_REWARD]) / h
                   - base.values [RW_D_UNCERTAINTY]) < 1e-6);
    T_CHECK (rw_reward (&weights, 0.2, 0.03, 0.8 + h, &moved) == 0);
    T_CHECK (fabs ((moved.values [RW_REWARD] - base.values [RW_REWARD]) / h
                   - base.values [RW_D_RELIABILITY]) < 1e-6);
    rw_reward_test (true);
}

static void
s_check_checkpoint (void)
{
    qt_env_params_t params;
    qt_env_decl_t decl;
    s_declare (&decl, &params);
    ac_qlearn_config_t config;
    ac_qlearn_config_default (&config, decl.width, decl.height, decl.n_actions);
    const uint32_t batch = 4;
    ac_qlearn_t *learner = ac_qlearn_new (&config, batch, T_SEED);
    qt_world_t *worlds [4];
    int32_t actions [4];
    for (uint32_t i = 0; i < batch; i++)
        worlds [i] = qt_world_new (&decl, T_SEED, i);

    //  Learn for a while, stop mid-episode
    qt_readings_t readings;
    const uint32_t stop_step = 37;
    for (uint32_t step = 0; step <= stop_step; step++)
        for (uint32_t i = 0; i < batch; i++) {
            double observed = 0;
            if (step > 0)
                qt_world_step (worlds [i], (uint32_t) actions [i], NULL, &observed);
            qt_world_read (worlds [i], &readings);
            actions [i] = ac_qlearn_act (learner, i, readings.camera, readings.camera_len,
                                         observed, step, false, 0);
            T_CHECK (actions [i] >= 0);
        }
    char path [] = "/tmp/quintet-qlearn-XXXXXX";
    int fd = mkstemp (path);
    T_CHECK (fd >= 0);
    close (fd);
    T_CHECK (ac_qlearn_save (learner, path) == 0);
    char temporary [sizeof (path) + 8];
    snprintf (temporary, sizeof (temporary), "%s.tmp", path);
    T_CHECK (access (temporary, F_OK) != 0);

    //  A fresh learner loaded from it continues exactly like the original
    ac_qlearn_t *restored = ac_qlearn_new (&config, batch, T_SEED);
    const char *cause = NULL;
    T_CHECK (ac_qlearn_load (restored, path, &cause) == 0);
    T_CHECK (ac_qlearn_updates (restored) == ac_qlearn_updates (learner));
    T_CHECK (ac_qlearn_updates (learner) > 0);
    for (uint32_t step = stop_step + 1; step <= TW_MAX_STEPS; step++)
        for (uint32_t i = 0; i < batch; i++) {
            double observed = 0;
            qt_world_step (worlds [i], (uint32_t) actions [i], NULL, &observed);
            qt_world_read (worlds [i], &readings);
            bool done = step == TW_MAX_STEPS;
            int32_t a = ac_qlearn_act (learner, i, readings.camera, readings.camera_len,
                                       observed, step, done, 0);
            int32_t b = ac_qlearn_act (restored, i, readings.camera, readings.camera_len,
                                       observed, step, done, 0);
            T_CHECK (a == b);
            actions [i] = a;
        }
    for (uint32_t c = 0; c < decl.n_cells; c++)
        for (uint32_t a = 0; a < decl.n_actions; a++) {
            uint8_t camera [QT_ENV_MAX_CELLS];
            memcpy (camera, decl.board, decl.n_cells);
            camera [c] = 'A';
            T_CHECK (ac_qlearn_value (learner, camera, decl.n_cells, a)
                  == ac_qlearn_value (restored, camera, decl.n_cells, a));
        }

    //  Another configuration, batch or seed is refused, and left unchanged
    ac_qlearn_config_t other = config;
    other.alpha *= 2;
    ac_qlearn_t *stranger = ac_qlearn_new (&other, batch, T_SEED);
    T_CHECK (ac_qlearn_load (stranger, path, &cause) == -1 && cause);
    printf ("other configuration refused: %s\n", cause);
    T_CHECK (ac_qlearn_updates (stranger) == 0);
    ac_qlearn_destroy (&stranger);
    stranger = ac_qlearn_new (&config, batch + 1, T_SEED);
    T_CHECK (ac_qlearn_load (stranger, path, &cause) == -1);
    ac_qlearn_destroy (&stranger);

    //  A truncated or corrupted file is refused
    FILE *file = fopen (path, "r+b");
    T_CHECK (file);
    T_CHECK (fseek (file, 200, SEEK_SET) == 0);
    int byte = fgetc (file);
    T_CHECK (fseek (file, 200, SEEK_SET) == 0);
    fputc (byte ^ 0x5a, file);
    fclose (file);
    T_CHECK (ac_qlearn_load (restored, path, &cause) == -1);
    printf ("corrupted checkpoint refused: %s\n", cause);
    T_CHECK (ac_qlearn_load (restored, "/nonexistent/quintet.ckpt", &cause) == -1);

    unlink (path);
    for (uint32_t i = 0; i < batch; i++)
        qt_world_destroy (&worlds [i]);
    ac_qlearn_destroy (&restored);
    ac_qlearn_destroy (&learner);
}

static void
s_check_selftests (void)
{
    qt_env_test (true);
    wm_filter_test (true);
    sc_panel_test (true);
    rw_reward_test (true);
    ac_qlearn_test (true);
}

int
main (int argc, char *argv [])
{
    static const struct {
        const char *name;
        void (*check) (void);
    } checks [] = {
        { "selftests", s_check_selftests },
        { "bucket", s_check_bucket },
        { "patrol", s_check_patrol },
        { "filter-bucket", s_check_filter_bucket },
        { "filter-probes", s_check_filter_probes },
        { "reward", s_check_reward },
        { "checkpoint", s_check_checkpoint },
    };
    const char *only = argc > 1? argv [1]: "all";
    int ran = 0;
    for (size_t i = 0; i < sizeof (checks) / sizeof (checks [0]); i++)
        if (strcmp (only, "all") == 0 || strcmp (only, checks [i].name) == 0) {
            checks [i].check ();
            ran++;
        }
    if (ran == 0) {
        fprintf (stderr, "test_learning: no check named '%s'\n", only);
        return 2;
    }
    return 0;
}
