#!/usr/bin/python3
"""The alignment benchmark's smoke test: tools/bench/alignment.py on two
environments (one with held-out variants), one seed and few episodes.
alignment.json parses and holds a record of every agent, and for the
environment with held-out variants a test-phase record of every run agent
on each of them; alignment.md has the tables, a row per held-out variant
and the Byzantine column saying "not run"; alignment.svg parses as XML
and, where chromium is installed, a headless screenshot of it is a
non-empty PNG (kept as BUILD/meson-logs/alignment-smoke.png).

With --distributed (the test alignment-distributed-smoke): one short
environment also through the daemons, honest and Byzantine (alignment.py
--distributed, DISTRIBUTED_EPISODES episodes): both records equal the
in-process figures, the Byzantine column is filled for it and says "not
run" for the other.

    test_alignment_smoke.py --script tools/bench/alignment.py --sim build/tools/sim/quintet-sim
"""
import argparse
import json
import os
import shutil
import subprocess
import sys
import tempfile
import xml.etree.ElementTree as ET

ENV = "absent_supervisor"
SHIFTED = "distributional_shift"        # declares held-out variants
EPISODES = 200
DISTRIBUTED_EPISODES = 64
AGENTS = ["safe", "hacking", "naive", "competence", "quintet", "quintet-bad-raters"]
BYZANTINE = "quintet-byzantine"


def main():
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--script", required=True)
    parser.add_argument("--sim", required=True)
    parser.add_argument("--screenshot")
    parser.add_argument("--build-dir", help="with --distributed: the build directory")
    parser.add_argument("--distributed", action="store_true")
    args = parser.parse_args()
    out = tempfile.mkdtemp(prefix="quintet-alignment-")
    described = json.loads(subprocess.run([args.sim, "--describe-env", SHIFTED], check=True,
                                          capture_output=True, text=True).stdout)
    held_out = [v for v in described["variants"] if v.startswith("test")]
    assert held_out, "%s declares no held-out variant" % SHIFTED
    command = [sys.executable, args.script, "--sim", args.sim, "--env", ENV, "--env", SHIFTED,
               "--seeds", "1", "--episodes", str(EPISODES), "--eval-episodes", "50",
               "--out", out]
    if args.distributed:
        command += ["--build-dir", args.build_dir, "--distributed", "--distributed-env", ENV,
                    "--distributed-episodes", str(DISTRIBUTED_EPISODES)]
    try:
        subprocess.run(command, check=True, timeout=150, stdout=subprocess.DEVNULL)
        with open(os.path.join(out, "alignment.json")) as f:
            data = json.load(f)
        seen = {(r["env"], r["agent"]) for r in data["records"]}
        missing = [(e, a) for e in (ENV, SHIFTED) for a in AGENTS if (e, a) not in seen]
        assert not missing, "agents missing from alignment.json: %s" % missing
        for r in data["records"]:
            assert isinstance(r["performance"], (int, float)), r
            assert isinstance(r["observed_return"], (int, float)), r
            assert r["phase"] in ("train", "test"), r
        tested = {(r["agent"], r["variant"]) for r in data["records"]
                  if r["env"] == SHIFTED and r["phase"] == "test" and r["run"] == "in-process"}
        missing = [(a, v) for a in AGENTS[2:] for v in held_out if (a, v) not in tested]
        assert not missing, "held-out evaluations missing: %s" % missing
        assert not any(r["phase"] == "test" for r in data["records"] if r["env"] == ENV), \
            "%s has no held-out variant, yet test records" % ENV
        assert [list(r) for r in data["rows"]].count([SHIFTED, held_out[0], "test"]) == 1
        print("alignment.json: %d records, agents %s; held out: %s" % (
            len(data["records"]), sorted({a for _, a in seen}), ", ".join(held_out)))
        with open(os.path.join(out, "alignment.md")) as f:
            md = f.read()
        lines = md.splitlines()
        header = [l for l in lines if l.startswith("| environment | safe")]
        assert len(header) == 2, "alignment.md lacks its two tables"
        for agent in AGENTS[2:] + [BYZANTINE]:
            assert agent in header[0], "%s not a column of the table" % agent
        for row in [ENV, SHIFTED] + ["%s, %s" % (SHIFTED, v) for v in held_out]:
            assert any(l.startswith("| %s |" % row) for l in lines), "no row for " + row
        byzantine = header[0].split(" | ").index(BYZANTINE)
        shifted_row = next(l for l in lines if l.startswith("| %s |" % SHIFTED))
        assert shifted_row.split(" | ")[byzantine] == "not run", shifted_row
        assert data["not_run"][BYZANTINE] == ([SHIFTED] if args.distributed else [ENV, SHIFTED])
        print("alignment.md: the tables, the rows, %s not run where it was not" % BYZANTINE)
        if args.distributed:
            runs = [r for r in data["records"] if r["run"] == "distributed"]
            assert sorted(r["agent"] for r in runs) == ["quintet", BYZANTINE], runs
            for r in runs:
                assert r["env"] == ENV and r["episodes"] == DISTRIBUTED_EPISODES, r
                assert r["equal"] and all(abs(r[k] - r["in_process"][k]) <= 1e-6
                                          for k in r["in_process"]), r
            assert len([r for r in runs if r["byzantine"]]) == 1
            row = next(l for l in lines if l.startswith("| %s |" % ENV))
            assert "= in-process" in row.split(" | ")[byzantine], row
            assert "## Through the daemons" in md
            print("through the daemons: %s" % "; ".join(
                "%s %.4f = in-process %.4f" % (r["agent"], r["performance"],
                                              r["in_process"]["performance"]) for r in runs))
        svg = os.path.join(out, "alignment.svg")
        root = ET.parse(svg).getroot()
        assert root.tag.endswith("svg"), root.tag
        assert len(root.findall(".//{http://www.w3.org/2000/svg}rect")) >= 5, "no bars"
        print("alignment.svg: XML, %d rects" % len(root.findall(
            ".//{http://www.w3.org/2000/svg}rect")))
        chromium = shutil.which("chromium") or "/usr/bin/chromium"
        if not os.access(chromium, os.X_OK):
            print("chromium is not installed: the screenshot is not taken")
            return
        shot = args.screenshot or os.path.join(out, "alignment.png")
        profile = tempfile.mkdtemp(prefix="quintet-chromium-")
        try:
            subprocess.run([chromium, "--headless", "--no-sandbox", "--disable-gpu",
                            "--no-first-run", "--disable-background-networking",
                            "--disable-component-update", "--disable-sync", "--hide-scrollbars",
                            "--user-data-dir=" + profile, "--window-size=900,600",
                            "--screenshot=" + shot, "file://" + os.path.abspath(svg)],
                           timeout=60, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
        finally:
            shutil.rmtree(profile, ignore_errors=True)
        with open(shot, "rb") as f:
            png = f.read()
        assert png.startswith(b"\x89PNG") and len(png) > 1000, "empty screenshot"
        print("chromium screenshot: %d bytes (%s)" % (len(png), shot))
    finally:
        shutil.rmtree(out, ignore_errors=True)
    print("the alignment benchmark's outputs are complete")


if __name__ == "__main__":
    main()
