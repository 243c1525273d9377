/*  test_envs: the environment suite, one named check per invocation so
    meson reports each alone (tests/envs/meson.build runs it once per
    registered environment).

      test-envs selftests           qt_chance, qt_grid, qt_env selftests
                                    (every registered environment resets,
                                    steps and reads validly)
      test-envs references NAME     NAME declared in every variant and
                                    tamper style: each declaration has a
                                    safe reference (the bar for its
                                    variant), and each of its references
                                    reproduces the original's figures: mean
                                    observed return and mean performance
                                    over T_EPISODES seeded episodes, each
                                    within its own tolerance
*/
#include <math.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "qt_env.h"
#include "qt_grid.h"

#define T_EPISODES  2000
#define T_SEED      2024

#define T_CHECK(cond) do { \
        if (!(cond)) { \
            fprintf (stderr, "%s:%d: check failed: %s\n", __FILE__, __LINE__, #cond); \
            exit (1); \
        } \
    } while (0)

static int
s_references (const char *name, const qt_env_params_t *params, uint32_t *checked)
{
    qt_env_decl_t decl;
    const char *cause = NULL;
    if (qt_env_declare (name, params, &decl, &cause)) {
        fprintf (stderr, "%s: %s\n", name, cause);
        return 1;
    }
    int failures = 0;
    //  The declaration holds its variant's references only: its bar too
    if (!qt_env_safe_reference (&decl)) {
        printf ("FAIL %s%s%s%s%s: no safe reference\n", name,
                *params->variant ? " variant " : "", params->variant,
                *params->tamper ? " tamper " : "", params->tamper);
        failures++;
    }
    for (uint32_t r = 0; r < decl.n_references; r++) {
        const qt_env_reference_t *reference = &decl.references [r];
        T_CHECK (reference->return_tolerance > 0 && reference->performance_tolerance > 0);
        double mean_return, mean_performance;
        T_CHECK (qt_env_run_reference (&decl, reference, T_SEED, T_EPISODES, &mean_return,
                                       &mean_performance) == 0);
        bool ok = fabs (mean_return - reference->expected_return) <= reference->return_tolerance
               && fabs (mean_performance - reference->expected_performance)
                  <= reference->performance_tolerance;
        printf ("%-4s %s%s%s%s%s %s: return %.2f (reference %.2f +- %g), performance %.2f"
                " (reference %.2f +- %g)\n",
                ok ? "ok" : "FAIL", name,
                *params->variant ? " variant " : "", params->variant,
                *params->tamper ? " tamper " : "", params->tamper, reference->name,
                mean_return, reference->expected_return, reference->return_tolerance,
                mean_performance, reference->expected_performance,
                reference->performance_tolerance);
        failures += !ok;
        (*checked)++;
    }
    return failures;
}

static int
s_check_references (const char *name)
{
    qt_env_params_t params;
    qt_env_params_init (&params);
    qt_env_decl_t decl;
    const char *cause = NULL;
    if (qt_env_declare (name, &params, &decl, &cause)) {
        fprintf (stderr, "%s: %s\n", name, cause);
        return 1;
    }
    uint32_t checked = 0;
    int failures = 0;
    for (uint32_t v = 0; v < decl.n_variants; v++)
        for (uint32_t t = 0; t < (decl.n_tamper_styles ? decl.n_tamper_styles : 1); t++) {
            qt_env_params_init (&params);
            if (v > 0)
                snprintf (params.variant, sizeof params.variant, "%s", decl.variants [v]);
            if (t > 0)
                snprintf (params.tamper, sizeof params.tamper, "%s", decl.tamper_styles [t]);
            failures += s_references (name, &params, &checked);
        }
    T_CHECK (checked >= 1);
    printf ("%s: %u reference figures checked, %d off\n", name, checked, failures);
    return failures ? 1 : 0;
}

int
main (int argc, char *argv [])
{
    if (argc == 2 && strcmp (argv [1], "selftests") == 0) {
        qt_chance_test (true);
        qt_grid_test (true);
        qt_env_test (true);
        return 0;
    }
    if (argc == 3 && strcmp (argv [1], "references") == 0)
        return s_check_references (argv [2]);
    fprintf (stderr, "usage: test-envs selftests | references NAME\n");
    return 2;
}
