#!/usr/bin/python3
"""quintet-sim's held-out evaluation (--eval-variant, --load): the trained
learner, frozen and greedy, on another variant of its environment.

    test_sim_eval.py --sim build/tools/sim/quintet-sim

On distributional_shift (trained on `train`; held out: `test`, which draws
one of the two shifted maps per episode, and `test-top`, `test-bottom`,
which fix it), competence runs (--reward-source hidden: seconds) of
EPISODES episodes; invariants:

  - frozen: a run with the evaluations leaves the learner as a run without
    them does (the two checkpoints are byte for byte equal: no update, no
    draw of its generators) and its training figures are the same;
  - reproducible: a fresh process that loads the checkpoint and only
    evaluates (--load, --episodes 0) gives the same evaluation figures, and
    so does evaluating one variant alone (the evaluations are independent);
  - the variant asked is the one played: the JSON names it, every episode
    ends within the declared step limit, and, the greedy policy being a
    function of the camera (exact) and each fixed map deterministic, every
    `test` episode returns the `test-top` or the `test-bottom` figure, so
    the `test` mean lies between them;
  - the shift is seen: for at least one of SEEDS the `test` figure differs
    from the `train` one (a learner that takes the short way along the
    training lava walks into the shifted lava; the runs print each seed's).
"""
import argparse
import filecmp
import json
import os
import subprocess
import sys
import tempfile

ENV = "distributional_shift"
EPISODES = 10000
EVAL_EPISODES = 200
SEEDS = (1, 2, 3)
FIXED = ("test-top", "test-bottom")


def run(sim, *extra):
    command = [sim, "--env", ENV, "--reward-source", "hidden", "--episodes", str(EPISODES),
               "--eval-episodes", str(EVAL_EPISODES), "--quiet", "--json"] + list(extra)
    out = subprocess.run(command, check=True, capture_output=True, text=True, timeout=300).stdout
    return json.loads(out.strip().splitlines()[-1])


def main():
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--sim", required=True)
    args = parser.parse_args()
    described = json.loads(subprocess.run([args.sim, "--describe-env", ENV], check=True,
                                          capture_output=True, text=True).stdout)
    held_out = [v for v in described["variants"] if v != described["variant"]]
    variants = [described["variant"]] + held_out
    evaluate = [a for v in variants for a in ("--eval-variant", v)]
    failures = []

    def check(condition, message):
        print("%s %s" % ("ok  " if condition else "FAIL", message), flush=True)
        if not condition:
            failures.append(message)

    def figures(result):
        return {e["variant"]: (e["performance"], e["observed_return"]) for e in result["evaluation"]}

    with tempfile.TemporaryDirectory(prefix="quintet-sim-eval-") as tmp:
        with_eval, without = os.path.join(tmp, "with.ckpt"), os.path.join(tmp, "without.ckpt")
        a = run(args.sim, "--seed", "1", "--checkpoint", with_eval, *evaluate)
        b = run(args.sim, "--seed", "1", "--checkpoint", without)
        check([e["variant"] for e in a["evaluation"]] == variants
              and all(e["episodes"] == EVAL_EPISODES and e["seed"] == 1 for e in a["evaluation"]),
              "the evaluations named in the JSON: %s" % ", ".join(
                  "%s %.2f" % (v, p) for v, (p, _) in figures(a).items()))
        check(all(e["steps"] <= EVAL_EPISODES * described["max_steps"] for e in a["evaluation"]),
              "every evaluated episode within %d steps" % described["max_steps"])
        check(b["evaluation"] == [], "no evaluation asked: none reported")
        check(all(a[k] == b[k] for k in ("performance", "observed_return", "ticks", "steps",
                                          "learner_rows")),
              "the training figures do not depend on the evaluation (%.2f, %.2f)"
              % (a["performance"], b["performance"]))
        check(filecmp.cmp(with_eval, without, shallow=False),
              "frozen: the checkpoint after evaluating equals the one without (%d bytes)"
              % os.path.getsize(without))
        c = json.loads(subprocess.run(
            [args.sim, "--env", ENV, "--reward-source", "hidden", "--episodes", "0", "--load",
             with_eval, "--seed", "1", "--eval-episodes", str(EVAL_EPISODES), "--quiet", "--json"]
            + evaluate, check=True, capture_output=True, text=True).stdout.splitlines()[-1])
        check(figures(c) == figures(a) and c["performance"] is None and c["episodes"] == 0,
              "a fresh process evaluating the loaded learner (--load, --episodes 0) gives the "
              "same figures, and no training figure")
        alone = run(args.sim, "--seed", "1", "--eval-variant", held_out[0])
        check(figures(alone)[held_out[0]] == figures(a)[held_out[0]],
              "evaluating %s alone gives its figure among the others" % held_out[0])
        shifted = []
        for seed in SEEDS:
            result = a if seed == 1 else run(args.sim, "--seed", str(seed), *evaluate)
            f = figures(result)
            top, bottom = f[FIXED[0]][0], f[FIXED[1]][0]
            check(min(top, bottom) - 1e-9 <= f["test"][0] <= max(top, bottom) + 1e-9,
                  "seed %d: test %.2f between test-top %.2f and test-bottom %.2f (train %.2f)"
                  % (seed, f["test"][0], top, bottom, f[described["variant"]][0]))
            shifted.append(f["test"][0] != f[described["variant"]][0])
        check(any(shifted), "the shift is seen: the test figure differs from the training "
              "one for seeds %s" % [s for s, d in zip(SEEDS, shifted) if d])
    print("%d check(s) failed" % len(failures) if failures else "every check held")
    return 1 if failures else 0


if __name__ == "__main__":
    sys.exit(main())
