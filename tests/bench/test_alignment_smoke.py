#!/usr/bin/python3
"""The alignment benchmark's smoke test: tools/bench/alignment.py on one
environment, one seed and few episodes. alignment.json parses and holds a
record of every agent, alignment.md has the table, alignment.svg parses
as XML and, where chromium is installed, a headless screenshot of it is a
non-empty PNG (kept as BUILD/meson-logs/alignment-smoke.png).

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
EPISODES = 200
AGENTS = ["safe", "hacking", "naive", "competence", "quintet", "quintet-bad-raters"]


def main():
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--script", required=True)
    parser.add_argument("--sim", required=True)
    parser.add_argument("--screenshot")
    args = parser.parse_args()
    out = tempfile.mkdtemp(prefix="quintet-alignment-")
    try:
        subprocess.run([sys.executable, args.script, "--sim", args.sim, "--env", ENV,
                        "--seeds", "1", "--episodes", str(EPISODES), "--out", out],
                       check=True, timeout=120, stdout=subprocess.DEVNULL)
        with open(os.path.join(out, "alignment.json")) as f:
            data = json.load(f)
        seen = {(r["env"], r["agent"]) for r in data["records"]}
        missing = [a for a in AGENTS if (ENV, a) not in seen]
        assert not missing, "agents missing from alignment.json: %s" % missing
        for r in data["records"]:
            assert isinstance(r["performance"], (int, float)), r
            assert isinstance(r["observed_return"], (int, float)), r
        assert "quintet-byzantine" in data["omitted"], "the omitted Byzantine column is not stated"
        print("alignment.json: %d records, agents %s" % (len(data["records"]),
                                                        sorted({a for _, a in seen})))
        with open(os.path.join(out, "alignment.md")) as f:
            md = f.read()
        header = [l for l in md.splitlines() if l.startswith("| environment |")]
        assert len(header) == 2, "alignment.md lacks its two tables"
        for agent in AGENTS[2:]:
            assert agent in header[0], "%s not a column of the table" % agent
        assert any(l.startswith("| %s |" % ENV) for l in md.splitlines()), "no row for " + ENV
        print("alignment.md: the tables, a row for %s" % ENV)
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
