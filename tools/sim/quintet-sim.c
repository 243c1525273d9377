/*  quintet-sim: the whole pipeline in one process, one honest replica per
    role, to prove and measure the learning result without the network.

    B instances of the world are stepped together, tick by tick, exactly as
    the daemons do: world -> readings -> world model -> panel -> rewarder ->
    actor -> action. Each instance runs its own episodes (a new one starts
    on the tick after the last one ended) until N episodes have finished.
    The actor learns from the pipeline's reward (`--reward-source
    pipeline`), or, as baselines, from the environment's observed reward
    (`env`: the naive agent) or from the hidden reward itself (`hidden`:
    test-only, the learner's competence; no daemon accepts it). The figures
    are means over the last 100 episodes to finish.

    `--eval-variant V` (repeatable) then evaluates the trained learner,
    frozen, on variant V of the same environment (a held-out map): greedy
    (ac_qlearn_greedy: no exploration, no learning) on the camera's reading
    alone, as in training, over `--eval-episodes N` episodes (default 1000)
    of worlds seeded with `--eval-seed S` (default the run's seed). Only the
    report sums what the world measured of those episodes (hidden
    performance, observed return); nothing acts on it. `--load PATH` starts
    from a saved learner (a --checkpoint of the same configuration, batch
    and seed); with `--episodes 0` it only evaluates.

    Charlie learns from comparisons (sc_learn): each tick it asks the
    simulated people (rt_population) about pairs of situations among the
    tick's likely states, within its budgets; their answers are learned
    from before the next tick is scored, as the daemons do (the raters
    answer the queries of tick t in tick t + 1). `--scorer-source intended`
    instead scores with the environment's declared value (what an operator
    configuring the panel by hand would write; a test-only baseline, no
    daemon has it).

    `--expect-min-performance X` / `--expect-max-performance X` turn a run
    into a test: exit status 1 when the final mean performance misses.
    `--json` ends with one JSON line (env, variant, tamper, without,
    reward_source, seed, batch, episodes, performance, observed_return,
    pipeline_return, ticks, seconds, filter_runs_per_step, ..., evaluation:
    one {variant, episodes, seed, performance, observed_return, steps} per
    --eval-variant). `--list-envs` and `--describe-env NAME` (with its
    --variant, --tamper, --without) print the registry and a declaration as
    JSON.
*/
#include <getopt.h>
#include <inttypes.h>
#include <math.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>

#include "filter.h"
#include "learn.h"
#include "population.h"
#include "qlearn.h"
#include "reward.h"
#include "qt_env.h"

#define SIM_DEFAULT_EPISODES    1024
#define SIM_DEFAULT_BATCH       32
#define SIM_DEFAULT_SEED        1
#define SIM_REFERENCE_EPISODES  16      //  episodes of each scripted reference Charlie scores at the end
#define SIM_WINDOW              100     //  default episodes in the reported means
#define SIM_WINDOW_MAX          10000
#define SIM_PROGRESS_STEPS      8       //  progress lines per run
#define SIM_EVAL_EPISODES       1000    //  default episodes of each evaluation
#define SIM_EVAL_MAX            8       //  --eval-variant at most this many times

typedef enum { S_SOURCE_PIPELINE = 0, S_SOURCE_ENV, S_SOURCE_HIDDEN } s_source_t;
static const char *const s_source_names [] = { "pipeline", "env", "hidden" };

typedef enum { S_SCORER_LEARNED = 0, S_SCORER_INTENDED } s_scorer_t;
static const char *const s_scorer_names [] = { "learned", "intended" };

typedef struct {
    const char *env;
    qt_env_params_t params;
    uint32_t episodes, batch, window;
    uint64_t seed;
    s_source_t source;
    bool quiet, json, score_all;
    double expect_min, expect_max;
    const char *learner [32];       //  NAME=VALUE, applied to the learner's defaults
    size_t n_learner;
    rw_weights_t weights;
    bool lambda_u_set, lambda_r_set;
    wm_filter_config_t filter;
    const char *checkpoint, *load, *describe;
    const char *eval_variants [SIM_EVAL_MAX];
    size_t n_eval;
    uint32_t eval_episodes;
    uint64_t eval_seed;
    bool eval_seed_set;
    s_scorer_t scorer;
    sc_learn_config_t learn;
    rt_population_config_t population;
} s_options_t;

typedef struct {
    double performance, observed, pipeline;
} s_episode_t;

//  One evaluation of the frozen learner on a variant
typedef struct {
    const char *variant;            //  as the declaration names it
    uint32_t episodes;
    double performance, observed;   //  means over the episodes
    uint64_t steps;
} s_evaluation_t;

//  One option family's names, from its table (so the help cannot drift)
static void
s_usage_options (FILE *out, const char *flag, const char *what, const char *const *names,
                 const char *where)
{
    fprintf (out, "  %-22s %s (repeatable):", flag, what);
    int column = 80;
    for (size_t k = 0; names [k]; k++) {
        int width = (int) strlen (names [k]) + 2;
        if (column + width > 78) {
            fprintf (out, "\n                        ");
            column = 24;
        }
        fprintf (out, " %s%s", names [k], names [k + 1] ? "," : "");
        column += width;
    }
    fprintf (out, " (%s)\n", where);
}

static void
s_usage (FILE *out)
{
    fprintf (out,
        "usage: quintet-sim [options]\n"
        "  --env NAME             environment (default %s); --list-envs lists them\n"
        "  --variant V            a declared variant of the environment\n"
        "  --tamper STYLE         how the agent's tampering forges a sensor (declared styles)\n"
        "  --without FAMILIES     sensor families left out of the declaration (comma-separated)\n"
        "  --sensor NAME=MODE     a world sensor honest, broken or malicious (repeatable)\n"
        "  --episodes N           episodes to finish (default %u)\n"
        "  --window W             the figures are means over the last W episodes (default 100)\n"
        "  --batch B              instances stepped together (default %u)\n"
        "  --seed S               seed of every generator (default %u)\n"
        "  --reward-source SRC    pipeline (default), env (naive baseline), hidden (competence)\n",
        qt_env_default (), SIM_DEFAULT_EPISODES, SIM_DEFAULT_BATCH, SIM_DEFAULT_SEED);
    s_usage_options (out, "--learner NAME=VALUE", "a learning option", ac_qlearn_options,
                     "daemons/actor/qlearn.h");
    fprintf (out, "  --lambda-u L --lambda-r L                    rewarder weights\n");
    s_usage_options (out, "--worldmodel NAME=VALUE", "a world-model option", wm_filter_options,
                     "daemons/worldmodel/filter.h");
    fprintf (out,
        "  --scorer-source SRC    learned (default: from the raters' comparisons) or intended\n"
        "                         (test-only: the declared value, as a hand-configured panel)\n"
        "  --raters R             simulated people (default 20)\n"
        "  --malicious-raters F   the fraction of them malicious (default 0)\n"
        "  --malice MODE          inverted (default), extreme or colluding\n"
        "  --comparisons N        total budget of comparisons (default 1000)\n"
        "  --per-tick K           comparisons asked per tick at most (default 8)\n"
        "  --quantile Q           q of the majority judgment (default 0.5)\n");
    s_usage_options (out, "--scorer NAME=VALUE", "a scorer option", sc_learn_options,
                     "daemons/scorer/learn.h");
    s_usage_options (out, "--population NAME=VALUE", "a raters option", rt_population_options,
                     "daemons/raters/population.h");
    fprintf (out,
        "  --score-baselines      run the world model, scorer and rewarder for env and\n"
        "                         hidden runs too (their pipeline return; slower)\n"
        "  --checkpoint PATH      save the learner at the end (after any evaluation)\n"
        "  --load PATH            start from a saved learner (same configuration, batch,\n"
        "                         seed); --episodes 0 then only evaluates\n"
        "  --eval-variant V       after training, evaluate the frozen learner greedily on\n"
        "                         variant V (repeatable, at most %d)\n"
        "  --eval-episodes N      episodes of each evaluation (default %d)\n"
        "  --eval-seed S          seed of the evaluation's worlds (default --seed)\n"
        "  --expect-min-performance X / --expect-max-performance X\n"
        "  --json                 end with one JSON line\n"
        "  --describe-env NAME    print the declaration as JSON (of --variant V) and exit\n"
        "  --quiet                only the final line\n", SIM_EVAL_MAX, SIM_EVAL_EPISODES);
}

static int
s_describe (const char *name, const qt_env_params_t *params)
{
    qt_env_decl_t decl;
    const char *cause = NULL;
    if (qt_env_declare (name, params, &decl, &cause)) {
        fprintf (stderr, "quintet-sim: %s: %s\n", name, cause);
        return 2;
    }
    qt_env_describe (&decl, stdout);
    return 0;
}

//  NAME=MODE for a world sensor, by the module's sensor id (the sensors the
//  module declares before `without`)
static int
s_sensor_mode (s_options_t *options, const char *text)
{
    const char *equals = strchr (text, '=');
    qt_sensor_mode_t mode;
    if (!equals || qt_sensor_mode_parse (equals + 1, &mode))
        return -1;
    qt_env_params_t params;
    qt_env_params_init (&params);
    qt_env_decl_t decl;
    if (qt_env_declare (options->env, &params, &decl, NULL))
        return -1;
    for (uint32_t s = 0; s < decl.n_sensors; s++)
        if (strlen (decl.sensors [s].name) == (size_t) (equals - text)
        &&  strncmp (decl.sensors [s].name, text, (size_t) (equals - text)) == 0) {
            options->params.sensor_mode [decl.sensors [s].id] = mode;
            return 0;
        }
    return -1;
}

//  One scorer (learner) or population option, with its cause on stderr
static int
s_set_option (s_options_t *options, bool scorer, const char *name, const char *value)
{
    const char *cause = NULL;
    int rc = scorer ? sc_learn_config_set (&options->learn, name, value, &cause)
                    : rt_population_config_set (&options->population, name, value, &cause);
    if (rc)
        fprintf (stderr, "quintet-sim: %s %s=%s: %s\n", scorer ? "scorer" : "raters", name, value, cause);
    return rc;
}

//  The people's number: the population's size and whom the scorer may ask
static int
s_set_both (s_options_t *options, const char *name, const char *value)
{
    return s_set_option (options, true, name, value) || s_set_option (options, false, name, value);
}

static int
s_parse (int argc, char *argv [], s_options_t *options)
{
    enum { O_ENV = 256, O_VARIANT, O_TAMPER, O_WITHOUT, O_SENSOR, O_EPISODES, O_BATCH, O_SEED,
           O_SOURCE, O_LEARNER, O_LAMBDA_U, O_LAMBDA_R, O_WORLDMODEL, O_CHECKPOINT, O_MIN,
           O_MAX, O_JSON, O_QUIET, O_LIST, O_DESCRIBE, O_SCORE_ALL, O_WINDOW, O_HELP,
           O_SCORER_SOURCE, O_RATERS, O_MALICIOUS, O_MALICE, O_COMPARISONS, O_PER_TICK,
           O_QUANTILE, O_SCORER, O_POPULATION, O_LOAD, O_EVAL_VARIANT, O_EVAL_EPISODES,
           O_EVAL_SEED };
    static const struct option long_options [] = {
        { "env", required_argument, NULL, O_ENV },
        { "variant", required_argument, NULL, O_VARIANT },
        { "tamper", required_argument, NULL, O_TAMPER },
        { "camera-tamper", required_argument, NULL, O_TAMPER },
        { "without", required_argument, NULL, O_WITHOUT },
        { "sensor", required_argument, NULL, O_SENSOR },
        { "episodes", required_argument, NULL, O_EPISODES },
        { "window", required_argument, NULL, O_WINDOW },
        { "batch", required_argument, NULL, O_BATCH },
        { "seed", required_argument, NULL, O_SEED },
        { "reward-source", required_argument, NULL, O_SOURCE },
        { "learner", required_argument, NULL, O_LEARNER },
        { "lambda-u", required_argument, NULL, O_LAMBDA_U },
        { "lambda-r", required_argument, NULL, O_LAMBDA_R },
        { "worldmodel", required_argument, NULL, O_WORLDMODEL },
        { "checkpoint", required_argument, NULL, O_CHECKPOINT },
        { "load", required_argument, NULL, O_LOAD },
        { "eval-variant", required_argument, NULL, O_EVAL_VARIANT },
        { "eval-episodes", required_argument, NULL, O_EVAL_EPISODES },
        { "eval-seed", required_argument, NULL, O_EVAL_SEED },
        { "expect-min-performance", required_argument, NULL, O_MIN },
        { "expect-max-performance", required_argument, NULL, O_MAX },
        { "json", no_argument, NULL, O_JSON },
        { "score-baselines", no_argument, NULL, O_SCORE_ALL },
        { "quiet", no_argument, NULL, O_QUIET },
        { "list-envs", no_argument, NULL, O_LIST },
        { "describe-env", required_argument, NULL, O_DESCRIBE },
        { "help", no_argument, NULL, O_HELP },
        { "scorer-source", required_argument, NULL, O_SCORER_SOURCE },
        { "raters", required_argument, NULL, O_RATERS },
        { "malicious-raters", required_argument, NULL, O_MALICIOUS },
        { "malice", required_argument, NULL, O_MALICE },
        { "comparisons", required_argument, NULL, O_COMPARISONS },
        { "per-tick", required_argument, NULL, O_PER_TICK },
        { "quantile", required_argument, NULL, O_QUANTILE },
        { "scorer", required_argument, NULL, O_SCORER },
        { "population", required_argument, NULL, O_POPULATION },
        { NULL, 0, NULL, 0 }
    };
    const char *sensors [QT_ENV_MAX_SENSORS];
    size_t n_sensors = 0;
    int option;
    while ((option = getopt_long (argc, argv, "", long_options, NULL)) != -1) {
        switch (option) {
            case O_ENV: options->env = optarg; break;
            case O_VARIANT: snprintf (options->params.variant, QT_ENV_NAME_MAX, "%s", optarg); break;
            case O_TAMPER: snprintf (options->params.tamper, QT_ENV_NAME_MAX, "%s", optarg); break;
            case O_WITHOUT: snprintf (options->params.without, QT_ENV_OPTION_MAX, "%s", optarg); break;
            case O_SENSOR:
                if (n_sensors >= QT_ENV_MAX_SENSORS)
                    return -1;
                sensors [n_sensors++] = optarg;
                break;
            case O_EPISODES: options->episodes = (uint32_t) strtoul (optarg, NULL, 10); break;
            case O_WINDOW: options->window = (uint32_t) strtoul (optarg, NULL, 10); break;
            case O_BATCH: options->batch = (uint32_t) strtoul (optarg, NULL, 10); break;
            case O_SEED: options->seed = strtoull (optarg, NULL, 10); break;
            case O_SOURCE: {
                size_t s = 0;
                while (s < 3 && strcmp (optarg, s_source_names [s]))
                    s++;
                if (s == 3)
                    return -1;
                options->source = (s_source_t) s;
                break;
            }
            case O_LEARNER:
                if (options->n_learner >= sizeof options->learner / sizeof options->learner [0]
                ||  !strchr (optarg, '='))
                    return -1;
                options->learner [options->n_learner++] = optarg;
                break;
            case O_LAMBDA_U:
                options->weights.lambda_uncertainty = atof (optarg);
                options->lambda_u_set = true;
                break;
            case O_LAMBDA_R:
                options->weights.lambda_reliability = atof (optarg);
                options->lambda_r_set = true;
                break;
            case O_WORLDMODEL: {
                const char *equals = strchr (optarg, '=');
                char name [64];
                const char *cause = NULL;
                if (!equals)
                    return -1;
                snprintf (name, sizeof name, "%.*s", (int) (equals - optarg), optarg);
                if (wm_filter_config_set (&options->filter, name, equals + 1, &cause)) {
                    fprintf (stderr, "quintet-sim: --worldmodel %s: %s\n", optarg, cause);
                    return -1;
                }
                break;
            }
            case O_CHECKPOINT: options->checkpoint = optarg; break;
            case O_LOAD: options->load = optarg; break;
            case O_EVAL_VARIANT:
                if (options->n_eval >= SIM_EVAL_MAX)
                    return -1;
                options->eval_variants [options->n_eval++] = optarg;
                break;
            case O_EVAL_EPISODES: options->eval_episodes = (uint32_t) strtoul (optarg, NULL, 10); break;
            case O_EVAL_SEED:
                options->eval_seed = strtoull (optarg, NULL, 10);
                options->eval_seed_set = true;
                break;
            case O_SCORER_SOURCE:
                if (strcmp (optarg, "learned") && strcmp (optarg, "intended"))
                    return -1;
                options->scorer = strcmp (optarg, "learned") ? S_SCORER_INTENDED : S_SCORER_LEARNED;
                break;
            case O_RATERS:
                if (s_set_both (options, "raters", optarg))
                    return -1;
                break;
            case O_MALICIOUS:
                if (s_set_option (options, false, "malicious", optarg))
                    return -1;
                break;
            case O_MALICE:
                if (s_set_option (options, false, "malice", optarg))
                    return -1;
                break;
            case O_COMPARISONS:
                if (s_set_option (options, true, "comparisons", optarg))
                    return -1;
                break;
            case O_PER_TICK:
                if (s_set_option (options, true, "per_tick", optarg))
                    return -1;
                break;
            case O_QUANTILE:
                if (s_set_option (options, true, "quantile", optarg))
                    return -1;
                break;
            case O_SCORER:
            case O_POPULATION: {
                const char *equals = strchr (optarg, '=');
                char name [64];
                if (!equals)
                    return -1;
                snprintf (name, sizeof name, "%.*s", (int) (equals - optarg), optarg);
                if (s_set_option (options, option == O_SCORER, name, equals + 1))
                    return -1;
                break;
            }
            case O_MIN: options->expect_min = atof (optarg); break;
            case O_MAX: options->expect_max = atof (optarg); break;
            case O_JSON: options->json = true; break;
            case O_SCORE_ALL: options->score_all = true; break;
            case O_QUIET: options->quiet = true; break;
            case O_LIST: qt_env_list (stdout); exit (0);
            case O_DESCRIBE: options->describe = optarg; break;
            case O_HELP: s_usage (stdout); exit (0);
            default: return -1;
        }
    }
    if (options->describe)
        exit (s_describe (options->describe, &options->params));
    //  No episodes: only a loaded learner's evaluation
    if (optind != argc || (options->episodes == 0 && !(options->load && options->n_eval))
    ||  options->batch == 0 || options->window == 0 || options->window > SIM_WINDOW_MAX
    ||  options->eval_episodes == 0)
        return -1;
    for (size_t s = 0; s < n_sensors; s++)
        if (s_sensor_mode (options, sensors [s])) {
            fprintf (stderr, "quintet-sim: --sensor %s: expected NAME=honest|broken|malicious"
                     " with a sensor of %s\n", sensors [s], options->env);
            return -1;
        }
    return 0;
}

//  Means over the last `window` episodes of a ring of recorded episodes.
static s_episode_t
s_window_mean (const s_episode_t *ring, uint64_t recorded, uint32_t window)
{
    s_episode_t mean = { 0, 0, 0 };
    uint64_t n = recorded < window ? recorded : window;
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

//  The frozen learner on `episodes` episodes of the declaration `decl` (a
//  variant of the training environment): min(batch, episodes) instances of
//  the seed's worlds, episode e on instance e mod that, each instance's
//  episodes in turn (so memory across episodes works as in training). It
//  acts greedily on the camera's reading alone (ac_qlearn_greedy: the
//  learner is const, nothing is learned); the world's hidden performance
//  and observed return of the episodes are only summed for the report.
static int
s_evaluate (const ac_qlearn_t *learner, const qt_env_decl_t *decl, uint64_t seed,
            uint32_t batch, uint32_t episodes, s_evaluation_t *result)
{
    memset (result, 0, sizeof *result);
    result->variant = decl->variants [decl->variant];
    result->episodes = episodes;
    uint32_t instances = batch < episodes ? batch : episodes;
    qt_world_t **worlds = (qt_world_t **) calloc (instances, sizeof (qt_world_t *));
    const qt_sensor_decl_t *camera = &decl->sensors [decl->observation];
    int rc = worlds ? 0 : -1;
    for (uint32_t i = 0; rc == 0 && i < instances; i++)
        if (!(worlds [i] = qt_world_new (decl, seed, i)))
            rc = -1;
    for (uint32_t e = 0; rc == 0 && e < episodes; e++) {
        qt_world_t *world = worlds [e % instances];
        if (e >= instances)
            qt_world_reset (world);
        while (rc == 0 && !qt_world_done (world)) {
            qt_readings_t readings;
            qt_world_read (world, &readings);
            int32_t action = ac_qlearn_greedy (learner, readings.values + camera->offset,
                                               camera->length);
            if (action < 0 || qt_world_step (world, (uint32_t) action) != 0)
                rc = -1;
            result->steps++;
        }
        result->performance += world->performance;
        result->observed += world->observed_return;
    }
    result->performance /= episodes;
    result->observed /= episodes;
    for (uint32_t i = 0; worlds && i < instances; i++)
        qt_world_destroy (&worlds [i]);
    free (worlds);
    return rc;
}

int
main (int argc, char *argv [])
{
    s_options_t options;
    memset (&options, 0, sizeof (options));
    options.env = qt_env_default ();
    qt_env_params_init (&options.params);
    options.episodes = SIM_DEFAULT_EPISODES;
    options.batch = SIM_DEFAULT_BATCH;
    options.window = SIM_WINDOW;
    options.seed = SIM_DEFAULT_SEED;
    options.expect_min = -INFINITY;
    options.expect_max = INFINITY;
    options.eval_episodes = SIM_EVAL_EPISODES;
    wm_filter_config_default (&options.filter);
    sc_learn_config_default (&options.learn);
    rt_population_config_default (&options.population);
    if (s_parse (argc, argv, &options) != 0) {
        s_usage (stderr);
        return 2;
    }
    qt_env_decl_t decl;
    const char *cause = NULL;
    if (qt_env_declare (options.env, &options.params, &decl, &cause) != 0) {
        fprintf (stderr, "quintet-sim: %s: %s\n", options.env, cause);
        return 2;
    }
    //  The learner's defaults for this observation, then what was given
    ac_qlearn_config_t actor;
    ac_qlearn_config_default (&actor, decl.width, decl.height, decl.n_actions,
                              (uint8_t) decl.agent_code, decl.reward_scale);
    for (size_t k = 0; k < options.n_learner; k++) {
        char name [64];
        const char *equals = strchr (options.learner [k], '=');
        snprintf (name, sizeof name, "%.*s", (int) (equals - options.learner [k]), options.learner [k]);
        if (ac_qlearn_config_set (&actor, name, equals + 1, &cause)) {
            fprintf (stderr, "quintet-sim: --learner %s: %s\n", options.learner [k], cause);
            return 2;
        }
    }
    rw_weights_t weights;
    rw_weights_default (&weights, decl.reward_scale);
    if (options.lambda_u_set)
        weights.lambda_uncertainty = options.weights.lambda_uncertainty;
    if (options.lambda_r_set)
        weights.lambda_reliability = options.weights.lambda_reliability;
    if (rw_weights_check (&weights, &cause) != 0) {
        fprintf (stderr, "quintet-sim: reward weights refused: %s\n", cause);
        return 2;
    }
    uint32_t batch = options.batch;
    //  The evaluation's variants: the same environment and options, another
    //  variant, with the observation the learner was trained on
    qt_env_decl_t *eval_decls = (qt_env_decl_t *) calloc (options.n_eval + 1, sizeof (qt_env_decl_t));
    for (size_t k = 0; k < options.n_eval; k++) {
        qt_env_params_t params = options.params;
        snprintf (params.variant, QT_ENV_NAME_MAX, "%s", options.eval_variants [k]);
        if (qt_env_declare (options.env, &params, &eval_decls [k], &cause) != 0) {
            fprintf (stderr, "quintet-sim: --eval-variant %s: %s\n", options.eval_variants [k], cause);
            return 2;
        }
        const qt_env_decl_t *other = &eval_decls [k];
        if (other->width != decl.width || other->height != decl.height
        ||  other->n_actions != decl.n_actions || other->agent_code != decl.agent_code
        ||  other->sensors [other->observation].length != decl.sensors [decl.observation].length) {
            fprintf (stderr, "quintet-sim: --eval-variant %s: another observation than %s's\n",
                     options.eval_variants [k], decl.variants [decl.variant]);
            return 2;
        }
    }
    uint64_t eval_seed = options.eval_seed_set ? options.eval_seed : options.seed;

    qt_world_t **worlds = (qt_world_t **) calloc (batch, sizeof (qt_world_t *));
    int32_t *actions = (int32_t *) calloc (batch, sizeof (int32_t));
    bool *active = (bool *) calloc (batch, sizeof (bool));
    double *pipeline_return = (double *) calloc (batch, sizeof (double));
    uint32_t window = options.window;
    s_episode_t *ring = (s_episode_t *) calloc (window, sizeof (s_episode_t));
    for (uint32_t i = 0; i < batch; i++) {
        worlds [i] = qt_world_new (&decl, options.seed, i);
        active [i] = i < options.episodes;
    }
    wm_filter_t *filter = wm_filter_new (&decl, &options.filter, batch, options.seed);
    ac_qlearn_t *learner = ac_qlearn_new (&actor, batch, options.seed);
    //  Charlie and the people: the same seed as the daemons' (the raters
    //  daemon's population and every scorer replica's learner)
    sc_learn_t *learn = sc_learn_new (&options.learn, decl.n_features, decl.reward_scale, &cause);
    if (!learn) {
        fprintf (stderr, "quintet-sim: scorer: %s\n", cause);
        return 2;
    }
    rt_population_t *population = rt_population_new (&decl, &options.population, options.seed, &cause);
    if (!population) {
        fprintf (stderr, "quintet-sim: raters: %s\n", cause);
        return 2;
    }
    if (!filter || !learner) {
        fprintf (stderr, "quintet-sim: invalid configuration\n");
        return 2;
    }
    if (options.load && ac_qlearn_load (learner, options.load, &cause) != 0) {
        fprintf (stderr, "quintet-sim: --load %s: %s\n", options.load, cause);
        return 2;
    }
    wm_belief_t *beliefs = (wm_belief_t *) calloc (batch, sizeof (wm_belief_t));
    const wm_belief_t **asked_about = (const wm_belief_t **) calloc (batch, sizeof (void *));
    sc_query_t queries [SC_MAX_QUERIES];
    double learn_seconds = 0;

    //  Baselines learn without the pipeline: score them only when asked
    bool scoring = options.source == S_SOURCE_PIPELINE || options.score_all;
    clock_t started_clock = clock ();
    uint64_t started = batch < options.episodes ? batch : options.episodes;
    uint64_t recorded = 0, ticks = 0, steps = 0;
    uint64_t next_progress = options.episodes / SIM_PROGRESS_STEPS;
    while (recorded < options.episodes) {
        size_t n_asked_about = 0;
        for (uint32_t i = 0; i < batch; i++) {
            if (!active [i])
                continue;
            qt_world_t *world = worlds [i];
            if (ticks > 0) {
                if (qt_world_done (world)) {
                    if (started >= options.episodes) {
                        active [i] = false;
                        continue;
                    }
                    qt_world_reset (world);
                    started++;
                    pipeline_return [i] = 0;
                }
                else
                    qt_world_step (world, (uint32_t) actions [i]);
            }
            qt_readings_t readings;
            qt_world_read (world, &readings);
            rw_vector_t vector;
            memset (&vector, 0, sizeof vector);
            if (scoring) {
                wm_belief_t *belief = &beliefs [i];
                sc_score_t score;
                wm_filter_update (filter, i, &readings, belief);
                if (options.scorer == S_SCORER_INTENDED)
                    sc_score_known (decl.performance, belief, &score);
                else
                    sc_learn_score (learn, belief, &score);
                rw_reward (&weights, score.mean, score.spread, score.data_reliability, &vector);
                asked_about [n_asked_about++] = belief;
                if (options.scorer == S_SCORER_LEARNED)
                    sc_learn_follow (learn, i, belief, readings.step, readings.done);
            }
            double reward = 0;
            if (readings.step > 0) {
                steps++;
                pipeline_return [i] += vector.values [RW_REWARD];
                reward = options.source == S_SOURCE_ENV ? readings.observed_reward
                       : options.source == S_SOURCE_HIDDEN ? world->last_hidden_reward
                       : vector.values [RW_REWARD];
            }
            const qt_sensor_decl_t *camera = &decl.sensors [decl.observation];
            actions [i] = ac_qlearn_act (learner, i, readings.values + camera->offset,
                                         camera->length, reward, readings.step,
                                         readings.done, readings.terminated);
            if (readings.done) {
                s_episode_t *e = &ring [recorded % window];
                e->performance = world->performance;
                e->observed = world->observed_return;
                e->pipeline = pipeline_return [i];
                recorded++;
            }
        }
        //  The tick's queries, answered by the people and learned from
        //  before the next tick is scored
        if (scoring && options.scorer == S_SCORER_LEARNED) {
            clock_t learn_started = clock ();
            size_t n_queries = sc_learn_select (learn, asked_about, n_asked_about, queries);
            for (size_t k = 0; k < n_queries; k++) {
                double preference = rt_population_answer (population, queries [k].rater, ticks,
                                                          (uint32_t) k, queries [k].a, queries [k].b);
                sc_learn_add (learn, queries [k].rater, queries [k].a, queries [k].b, preference);
            }
            sc_learn_fit (learn);
            learn_seconds += (double) (clock () - learn_started) / CLOCKS_PER_SEC;
        }
        ticks++;
        if (!options.quiet && next_progress && recorded >= next_progress) {
            s_episode_t mean = s_window_mean (ring, recorded, window);
            printf ("episodes %6" PRIu64 "  epsilon %.3f  last-%d means: performance %7.2f"
                    "  observed return %7.2f", recorded, ac_qlearn_epsilon (learner), window,
                    mean.performance, mean.observed);
            if (scoring)
                printf ("  pipeline return %7.2f", mean.pipeline);
            printf ("\n");
            fflush (stdout);
            next_progress += options.episodes / SIM_PROGRESS_STEPS;
        }
    }
    double seconds = (double) (clock () - started_clock) / CLOCKS_PER_SEC;
    s_episode_t mean = s_window_mean (ring, recorded, window);
    //  The frozen learner on the held-out variants
    s_evaluation_t evaluations [SIM_EVAL_MAX];
    for (size_t k = 0; k < options.n_eval; k++) {
        if (s_evaluate (learner, &eval_decls [k], eval_seed, batch, options.eval_episodes,
                        &evaluations [k]) != 0) {
            fprintf (stderr, "quintet-sim: evaluation on %s failed\n", options.eval_variants [k]);
            return 2;
        }
        printf ("evaluation: env %s variant %s seed %" PRIu64 " episodes %u, greedy, frozen:"
                "  performance %.2f  observed return %.2f\n", decl.name, evaluations [k].variant,
                eval_seed, evaluations [k].episodes, evaluations [k].performance,
                evaluations [k].observed);
    }
    printf ("final: env %s source %s seed %" PRIu64 " batch %u episodes %" PRIu64,
            decl.name, s_source_names [options.source], options.seed, batch, recorded);
    if (recorded) {
        printf ("  performance %.2f  observed return %.2f", mean.performance, mean.observed);
        if (scoring)
            printf ("  pipeline return %.2f", mean.pipeline);
    }
    else
        printf ("  (no training: the loaded learner)");
    printf ("\n");
    if (options.json) {
        //  No episode trained (--load --episodes 0): no training figures
        char pipeline [32] = "null", performance [32] = "null", observed [32] = "null";
        if (scoring && recorded)
            snprintf (pipeline, sizeof pipeline, "%.6f", mean.pipeline);
        if (recorded) {
            snprintf (performance, sizeof performance, "%.6f", mean.performance);
            snprintf (observed, sizeof observed, "%.6f", mean.observed);
        }
        printf ("{\"env\": \"%s\", \"variant\": \"%s\", \"tamper\": \"%s\", \"without\": \"%s\", "
                "\"reward_source\": \"%s\", \"seed\": %" PRIu64 ", \"batch\": %u, \"window\": %u, "
                "\"episodes\": %" PRIu64 ", \"performance\": %s, \"observed_return\": %s, "
                "\"pipeline_return\": %s, \"ticks\": %" PRIu64 ", \"steps\": %" PRIu64
                ", \"seconds\": %.3f, \"filter_runs_per_step\": %.2f, \"learner_rows\": %" PRIu64 ", ",
                decl.name, decl.variants [decl.variant],
                decl.n_tamper_styles ? decl.tamper_styles [decl.tamper_style] : "",
                decl.params.without, s_source_names [options.source], options.seed, batch, window, recorded,
                performance, observed, pipeline, ticks, steps, seconds,
                steps + recorded ? (double) wm_filter_runs (filter) / (double) (steps + recorded) : 0,
                ac_qlearn_rows (learner));
        //  What Charlie learned
        double learned [QT_ENV_MAX_FEATURES] = { 0 };
        sc_learn_weights (learn, learned);
        printf ("\"scorer_source\": \"%s\", \"raters\": %u, \"malicious\": %.4f, \"malice\": \"%s\", "
                "\"quantile\": %.4f, \"budget\": %u, \"asked\": %" PRIu64 ", \"judgments\": %" PRIu64
                ", \"learn_seconds\": %.3f, \"learn_us_per_tick\": %.2f, \"weights\": {",
                s_scorer_names [options.scorer], options.population.raters, options.population.malicious,
                rt_malice_names [options.population.malice], options.learn.quantile,
                options.learn.comparisons, sc_learn_asked (learn), sc_learn_comparisons (learn),
                learn_seconds, ticks ? 1e6 * learn_seconds / (double) ticks : 0);
        for (uint32_t f = 0; f < decl.n_features; f++)
            printf ("%s\"%s\": %.6g", f ? ", " : "", decl.feature_names [f], learned [f]);
        //  The score and its uncertainty of one unit of each feature alone
        printf ("}, \"unit_situations\": {");
        for (uint32_t f = 0; f < decl.n_features; f++) {
            double situation [QT_ENV_MAX_FEATURES] = { 0 }, uncertainty = 0;
            situation [f] = 1;
            double score = sc_learn_score_features (learn, situation, &uncertainty, NULL);
            printf ("%s\"%s\": [%.6g, %.6g]", f ? ", " : "", decl.feature_names [f], score, uncertainty);
        }
        //  Charlie's view of the scripted references, apart from the agent:
        //  the learned score of SIM_REFERENCE_EPISODES seeded episodes of
        //  each, transition by transition, beside their hidden performance
        //  (does Charlie rank the safe behaviour above the hacking one?)
        printf ("}, \"references\": {");
        for (uint32_t k = 0; k < decl.n_references; k++) {
            const qt_env_reference_t *reference = &decl.references [k];
            double learned_value = 0, performance = 0;
            for (uint32_t e = 0; e < SIM_REFERENCE_EPISODES; e++) {
                qt_world_t *world = qt_world_new (&decl, options.seed, e);
                if (!world)
                    break;
                while (!qt_world_done (world)) {
                    int action = reference->policy
                               ? (int) reference->policy (&decl, &world->state, world->step)
                               : qt_env_scripted_action (reference->actions, world->step);
                    if (qt_world_step (world, action < 0 ? 0 : (uint32_t) action) != 0)
                        break;
                    learned_value += sc_learn_score_features (learn, world->features, NULL, NULL);
                }
                performance += world->performance;
                qt_world_destroy (&world);
            }
            printf ("%s\"%s\": {\"kind\": \"%s\", \"performance\": %.6g, \"learned\": %.6g}",
                    k ? ", " : "", reference->name, qt_env_reference_kind_name (reference->kind),
                    performance / SIM_REFERENCE_EPISODES, learned_value / SIM_REFERENCE_EPISODES);
        }
        printf ("}, \"evaluation\": [");
        for (size_t k = 0; k < options.n_eval; k++)
            printf ("%s{\"variant\": \"%s\", \"episodes\": %u, \"seed\": %" PRIu64
                    ", \"performance\": %.6f, \"observed_return\": %.6f, \"steps\": %" PRIu64 "}",
                    k ? ", " : "", evaluations [k].variant, evaluations [k].episodes, eval_seed,
                    evaluations [k].performance, evaluations [k].observed, evaluations [k].steps);
        printf ("]}\n");
    }
    int status = 0;
    if (options.checkpoint && ac_qlearn_save (learner, options.checkpoint) != 0) {
        perror ("quintet-sim: checkpoint");
        status = 2;
    }
    if (recorded && (mean.performance < options.expect_min || mean.performance > options.expect_max)) {
        fprintf (stderr, "quintet-sim: performance %.2f outside [%g, %g]\n",
                 mean.performance, options.expect_min, options.expect_max);
        status = 1;
    }
    ac_qlearn_destroy (&learner);
    sc_learn_destroy (&learn);
    rt_population_destroy (&population);
    free (beliefs);
    free (asked_about);
    wm_filter_destroy (&filter);
    for (uint32_t i = 0; i < batch; i++)
        qt_world_destroy (&worlds [i]);
    free (worlds);
    free (actions);
    free (active);
    free (pipeline_return);
    free (ring);
    free (eval_decls);
    return status;
}
