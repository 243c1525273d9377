/*  quintet-sim: the whole pipeline in one process, one honest replica per
    role, to prove and tune the learning result without the network.

    B instances of the world are stepped together, tick by tick, exactly as
    the daemons do: world -> readings -> world model -> panel -> rewarder ->
    actor -> action. Step 0 of each round is the reset observation (no
    reward); steps 1..100 carry the observation after the previous action and
    the reward of that transition; step 100 is done. The actor learns from the
    pipeline's reward (`--reward-source pipeline`) or, as the naive baseline,
    from the environment's observed reward (`--reward-source env`). One round
    adds B episodes; the figures are means over the last 100 episodes.

    `--expect-min-performance X` / `--expect-max-performance X` turn a run
    into a test: exit status 1 when the final mean performance misses.

    Measured with the defaults (1024 episodes = 32 rounds of B = 32, seeds
    1..10): pipeline performance 16.0-17.3 (mean ~16.8), env performance
    3.9-4.7 with observed return ~53.5 (it learns the bucket).
*/
#include <getopt.h>
#include <inttypes.h>
#include <math.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "filter.h"
#include "panel.h"
#include "qlearn.h"
#include "reward.h"
#include "tomato_watering.h"

#define SIM_DEFAULT_EPISODES    1024
#define SIM_DEFAULT_BATCH       32
#define SIM_DEFAULT_SEED        1
#define SIM_WINDOW              100     //  episodes in the reported means
#define SIM_PROGRESS_ROUNDS     8

typedef struct {
    uint32_t episodes, batch;
    uint64_t seed;
    bool env_reward;
    bool quiet;
    double expect_min, expect_max;
    ac_qlearn_config_t actor;
    rw_weights_t weights;
    const char *checkpoint;
} s_options_t;

typedef struct {
    double performance, observed, pipeline;
} s_episode_t;

static void
s_usage (FILE *out)
{
    fprintf (out,
        "usage: quintet-sim [options]\n"
        "  --episodes N           instance-episodes to run (default %u)\n"
        "  --batch B              instances stepped together (default %u)\n"
        "  --seed S               seed of every generator (default %u)\n"
        "  --reward-source SRC    pipeline (default) or env (naive baseline)\n"
        "  --features F           nearest-dry (default), position or neighbours\n"
        "  --alpha A --gamma G    Q-learning step size and discount\n"
        "  --q-init Q             initial Q values\n"
        "  --difference-reward 0|1 --bootstrap-at-limit 0|1   actor learning signal\n"
        "  --eps-start E --eps-end E --eps-episodes N   exploration schedule (rounds)\n"
        "  --lambda-u L --lambda-r L                    rewarder weights\n"
        "  --checkpoint PATH      save the learner at the end\n"
        "  --expect-min-performance X / --expect-max-performance X\n"
        "  --quiet                only the final line\n",
        SIM_DEFAULT_EPISODES, SIM_DEFAULT_BATCH, SIM_DEFAULT_SEED);
}

static int
s_parse (int argc, char *argv [], s_options_t *options)
{
    enum { O_EPISODES = 256, O_BATCH, O_SEED, O_SOURCE, O_FEATURES, O_ALPHA, O_GAMMA,
           O_EPS_START, O_EPS_END, O_Q_INIT, O_SHAPING, O_LIMIT, O_EPS_EPISODES, O_LAMBDA_U, O_LAMBDA_R, O_CHECKPOINT,
           O_MIN, O_MAX, O_QUIET, O_HELP };
    static const struct option long_options [] = {
        { "episodes", required_argument, NULL, O_EPISODES },
        { "batch", required_argument, NULL, O_BATCH },
        { "seed", required_argument, NULL, O_SEED },
        { "reward-source", required_argument, NULL, O_SOURCE },
        { "features", required_argument, NULL, O_FEATURES },
        { "alpha", required_argument, NULL, O_ALPHA },
        { "gamma", required_argument, NULL, O_GAMMA },
        { "eps-start", required_argument, NULL, O_EPS_START },
        { "q-init", required_argument, NULL, O_Q_INIT },
        { "difference-reward", required_argument, NULL, O_SHAPING },
        { "bootstrap-at-limit", required_argument, NULL, O_LIMIT },
        { "eps-end", required_argument, NULL, O_EPS_END },
        { "eps-episodes", required_argument, NULL, O_EPS_EPISODES },
        { "lambda-u", required_argument, NULL, O_LAMBDA_U },
        { "lambda-r", required_argument, NULL, O_LAMBDA_R },
        { "checkpoint", required_argument, NULL, O_CHECKPOINT },
        { "expect-min-performance", required_argument, NULL, O_MIN },
        { "expect-max-performance", required_argument, NULL, O_MAX },
        { "quiet", no_argument, NULL, O_QUIET },
        { "help", no_argument, NULL, O_HELP },
        { NULL, 0, NULL, 0 }
    };
    int option;
    while ((option = getopt_long (argc, argv, "", long_options, NULL)) != -1) {
        switch (option) {
            case O_EPISODES: options->episodes = (uint32_t) strtoul (optarg, NULL, 10); break;
            case O_BATCH: options->batch = (uint32_t) strtoul (optarg, NULL, 10); break;
            case O_SEED: options->seed = strtoull (optarg, NULL, 10); break;
            case O_SOURCE:
                if (strcmp (optarg, "env") == 0)
                    options->env_reward = true;
                else
                if (strcmp (optarg, "pipeline") == 0)
                    options->env_reward = false;
                else
                    return -1;
                break;
            case O_FEATURES:
                if (strcmp (optarg, "position") == 0)
                    options->actor.features = AC_FEATURES_POSITION;
                else
                if (strcmp (optarg, "neighbours") == 0)
                    options->actor.features = AC_FEATURES_NEIGHBOURS;
                else
                if (strcmp (optarg, "nearest-dry") == 0)
                    options->actor.features = AC_FEATURES_NEAREST_DRY;
                else
                    return -1;
                break;
            case O_ALPHA: options->actor.alpha = atof (optarg); break;
            case O_GAMMA: options->actor.gamma = atof (optarg); break;
            case O_EPS_START: options->actor.epsilon_start = atof (optarg); break;
            case O_Q_INIT: options->actor.q_initial = atof (optarg); break;
            case O_SHAPING: options->actor.difference_reward = atoi (optarg) != 0; break;
            case O_LIMIT: options->actor.bootstrap_at_limit = atoi (optarg) != 0; break;
            case O_EPS_END: options->actor.epsilon_end = atof (optarg); break;
            case O_EPS_EPISODES:
                options->actor.epsilon_episodes = (uint32_t) strtoul (optarg, NULL, 10);
                break;
            case O_LAMBDA_U: options->weights.lambda_uncertainty = atof (optarg); break;
            case O_LAMBDA_R: options->weights.lambda_reliability = atof (optarg); break;
            case O_CHECKPOINT: options->checkpoint = optarg; break;
            case O_MIN: options->expect_min = atof (optarg); break;
            case O_MAX: options->expect_max = atof (optarg); break;
            case O_QUIET: options->quiet = true; break;
            default: return -1;
        }
    }
    return optind == argc && options->episodes > 0 && options->batch > 0? 0: -1;
}

//  Means over the last `window` episodes of a ring of recorded episodes.
static s_episode_t
s_window_mean (const s_episode_t *ring, uint64_t recorded, uint32_t window)
{
    s_episode_t mean = { 0, 0, 0 };
    uint64_t n = recorded < window? recorded: window;
    for (uint64_t i = 0; i < n; i++) {
        const s_episode_t *e = &ring [(recorded - 1 - i) % window];
        mean.performance += e->performance;
        mean.observed += e->observed;
        mean.pipeline += e->pipeline;
    }
    if (n) {
        mean.performance /= (double) n;
        mean.observed /= (double) n;
        mean.pipeline /= (double) n;
    }
    return mean;
}

int
main (int argc, char *argv [])
{
    qt_env_params_t params;
    qt_env_decl_t decl;
    qt_env_params_default (TW_NAME, &params);
    if (qt_env_declare (TW_NAME, &params, &decl) != 0)
        return 2;

    s_options_t options;
    memset (&options, 0, sizeof (options));
    options.episodes = SIM_DEFAULT_EPISODES;
    options.batch = SIM_DEFAULT_BATCH;
    options.seed = SIM_DEFAULT_SEED;
    options.expect_min = -INFINITY;
    options.expect_max = INFINITY;
    ac_qlearn_config_default (&options.actor, decl.width, decl.height, decl.n_actions);
    rw_weights_default (&options.weights);
    if (s_parse (argc, argv, &options) != 0) {
        s_usage (stderr);
        return 2;
    }
    const char *cause;
    if (rw_weights_check (&options.weights, &cause) != 0) {
        fprintf (stderr, "quintet-sim: reward weights refused: %s\n", cause);
        return 2;
    }
    uint32_t batch = options.batch;

    wm_filter_config_t filter_config;
    wm_filter_config_default (&filter_config);
    sc_panel_config_t panel_config;
    sc_panel_config_default (&panel_config, decl.n_vars);

    qt_world_t **worlds = (qt_world_t **) calloc (batch, sizeof (qt_world_t *));
    int32_t *actions = (int32_t *) calloc (batch, sizeof (int32_t));
    double *pipeline_return = (double *) calloc (batch, sizeof (double));
    s_episode_t *ring = (s_episode_t *) calloc (SIM_WINDOW, sizeof (s_episode_t));
    for (uint32_t i = 0; i < batch; i++)
        worlds [i] = qt_world_new (&decl, options.seed, i);
    wm_filter_t *filter = wm_filter_new (&decl, &filter_config, batch, options.seed);
    sc_panel_t *panel = sc_panel_new (&panel_config, decl.n_vars);
    ac_qlearn_t *actor = ac_qlearn_new (&options.actor, batch, options.seed);
    if (!filter || !panel || !actor) {
        fprintf (stderr, "quintet-sim: invalid configuration\n");
        return 2;
    }

    uint32_t rounds = (options.episodes + batch - 1) / batch;
    uint64_t recorded = 0;
    for (uint32_t round = 0; round < rounds; round++) {
        for (uint32_t step = 0; step <= decl.max_steps; step++) {
            bool done = step == decl.max_steps;
            for (uint32_t i = 0; i < batch; i++) {
                qt_world_t *world = worlds [i];
                if (step == 0) {
                    if (round > 0)
                        qt_world_reset (world);
                    pipeline_return [i] = 0;
                }
                else
                    qt_world_step (world, (uint32_t) actions [i], NULL, NULL);
                qt_readings_t readings;
                qt_world_read (world, &readings);
                wm_belief_t belief;
                sc_score_t score;
                rw_vector_t vector;
                wm_filter_update (filter, i, step, &readings, &belief);
                sc_panel_score (panel, &belief, &score);
                rw_reward (&options.weights, score.mean, score.spread,
                           score.data_reliability, &vector);
                double reward = 0;
                if (step > 0) {
                    pipeline_return [i] += vector.values [RW_REWARD];
                    reward = options.env_reward? readings.observed_reward
                                               : vector.values [RW_REWARD];
                }
                actions [i] = ac_qlearn_act (actor, i, readings.camera, readings.camera_len,
                                             reward, step, done, round);
                if (done) {
                    s_episode_t *e = &ring [recorded % SIM_WINDOW];
                    e->performance = world->performance;
                    e->observed = world->observed_return;
                    e->pipeline = pipeline_return [i];
                    recorded++;
                }
            }
        }
        if (!options.quiet && ((round + 1) % SIM_PROGRESS_ROUNDS == 0 || round + 1 == rounds)) {
            s_episode_t mean = s_window_mean (ring, recorded, SIM_WINDOW);
            printf ("episodes %6" PRIu64 "  epsilon %.3f  last-%d means: performance %6.2f"
                    "  observed return %6.2f  pipeline return %6.2f\n",
                    recorded, ac_qlearn_epsilon (actor, round), SIM_WINDOW,
                    mean.performance, mean.observed, mean.pipeline);
            fflush (stdout);
        }
    }
    s_episode_t mean = s_window_mean (ring, recorded, SIM_WINDOW);
    printf ("final: source %s seed %" PRIu64 " batch %u episodes %" PRIu64
            "  performance %.2f  observed return %.2f  pipeline return %.2f\n",
            options.env_reward? "env": "pipeline", options.seed, batch, recorded,
            mean.performance, mean.observed, mean.pipeline);

    int status = 0;
    if (options.checkpoint && ac_qlearn_save (actor, options.checkpoint) != 0) {
        perror ("quintet-sim: checkpoint");
        status = 2;
    }
    if (mean.performance < options.expect_min || mean.performance > options.expect_max) {
        fprintf (stderr, "quintet-sim: performance %.2f outside [%g, %g]\n",
                 mean.performance, options.expect_min, options.expect_max);
        status = 1;
    }
    ac_qlearn_destroy (&actor);
    sc_panel_destroy (&panel);
    wm_filter_destroy (&filter);
    for (uint32_t i = 0; i < batch; i++)
        qt_world_destroy (&worlds [i]);
    free (worlds);
    free (actions);
    free (pipeline_return);
    free (ring);
    return status;
}
