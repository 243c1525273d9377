#!/usr/bin/python3
"""Nothing outside envs/ names an environment or its constants.

The words: every environment's name from the registry itself (quintetctl
envs) and the things the gridworlds are made of (DISTINCTIVE below:
tomato, bucket, lava...; their sensor and variable names are common words:
box, object, button). They are searched, whole-word and
case-insensitive, in the code that must stay environment-free: proto/,
common/, daemons/, tools/ and the systemd units. Tests and the example
configs of deploy/config/ may name environments (they test them, or
configure the default one).
"""
import argparse
import json
import os
import re
import subprocess
import sys

SEARCHED = ("proto", "common", "daemons", "tools", os.path.join("deploy", "systemd"))
SUFFIXES = (".c", ".h", ".proto", ".py", ".js", ".html", ".build", ".in", ".service", ".target",
            ".conf", "")
# What the gridworlds are made of
DISTINCTIVE = ("tomato", "bucket", "moisture", "watered", "supervisor", "punishment",
               "interruption", "interruptible", "sokoban", "boat", "lava", "diamond", "rocks",
               "whisky", "island", "bandit", "conveyor", "vase", "sushi")


def words(ctl):
    names = json.loads(subprocess.run([ctl, "envs"], check=True, capture_output=True,
                                      text=True).stdout)
    found = {word: "the gridworlds" for word in DISTINCTIVE}
    for name in names:
        found[name] = name
    return found, len(names)


def main():
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--quintetctl", required=True)
    parser.add_argument("--source-dir", required=True)
    args = parser.parse_args()
    vocabulary, environments = words(args.quintetctl)
    pattern = re.compile(r"\b(%s)\b" % "|".join(sorted(map(re.escape, vocabulary))), re.I)
    hits = []
    for top in SEARCHED:
        for root, dirs, files in os.walk(os.path.join(args.source_dir, top)):
            dirs[:] = [d for d in dirs if not d.startswith((".", "__"))]
            for name in files:
                if not name.endswith(SUFFIXES):
                    continue
                path = os.path.join(root, name)
                try:
                    text = open(path, encoding="utf-8").read()
                except (UnicodeDecodeError, OSError):
                    continue
                for number, line in enumerate(text.splitlines(), 1):
                    for match in pattern.finditer(line):
                        hits.append("%s:%d: %r (of %s)" % (os.path.relpath(path, args.source_dir),
                                                         number, match.group(0),
                                                         vocabulary[match.group(1).lower()]))
    print("searched %s for %d words of %d environments: %s"
          % (", ".join(SEARCHED), len(vocabulary), environments,
             ", ".join(sorted(vocabulary))))
    for hit in hits:
        print("FAIL " + hit)
    print("%d place(s) name an environment outside envs/" % len(hits))
    return 1 if hits else 0


if __name__ == "__main__":
    sys.exit(main())
