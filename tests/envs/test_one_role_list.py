#!/usr/bin/python3
"""The pipeline's roles are listed in one file, common/topology.txt.

Three checks:
  * `quintetctl topology --json` (the C table meson generated from the
    file) gives the roles and topics quintet.topology.read() parses from it;
  * every daemon's --help says it publishes and consumes what the topology
    says (qt_stage_main takes them from the table);
  * no other file restates the list: no line of the source tree outside the
    topology file has three role names in a row, in pipeline order,
    separated only by blanks, quotes and commas (a Python tuple, a C array,
    a meson list, a comment, a help text), nor three Byzantine modes in a
    row in their order outside qt_byzantine.c and .h (its name table is the
    modes' one list). A few names in another order (a test's plan of who
    lies how) is not a list. Documentation (*.md) and
    recorded results are prose and measurements, not lists the code reads:
    not searched.
"""
import argparse
import json
import os
import re
import subprocess
import sys

TOPOLOGY = os.path.join("common", "topology.txt")
# qt_byzantine's name table is the modes' one list; its header documents them
MODES_HOME = (os.path.join("common", "qt_byzantine.c"), os.path.join("common", "qt_byzantine.h"))
SKIPPED_DIRS = ("build", "results", "state", "subprojects")
SUFFIXES = (".c", ".h", ".proto", ".py", ".js", ".html", ".build", ".in", ".service", ".target",
            ".conf", ".txt", ".sh", "")
SEPARATOR = r"""[\s"',]+"""
IN_A_ROW = 3


def main():
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--build-dir", required=True)
    parser.add_argument("--source-dir", required=True)
    args = parser.parse_args()
    sys.path.insert(0, os.path.join(args.source_dir, "tools", "python"))
    from quintet import topology as qt

    failures = []
    ctl = qt.topology(args.build_dir)
    parsed = qt.read(os.path.join(args.source_dir, TOPOLOGY))
    for key in ("roles", "topics", "dashboard"):
        if ctl[key] != parsed[key]:
            failures.append("quintetctl topology --json's %s differ from %s's: %s != %s"
                            % (key, TOPOLOGY, ctl[key], parsed[key]))
    print("quintetctl topology --json: %d roles, %d topics, %d Byzantine modes"
          % (len(ctl["roles"]), len(ctl["topics"]), len(qt.byzantine(args.build_dir))))

    for role in ctl["roles"]:
        binary = os.path.join(args.build_dir, "daemons", "quintet-" + role["name"])
        out = subprocess.run([binary, "--help"], capture_output=True, text=True).stdout
        wanted = 'Publishes "%s"' % role["topic"] + "".join(
            '%s"%s" from %s' % ("; consumes " if i == 0 else ", ", u["topic"], u["role"])
            for i, u in enumerate(role["upstreams"])) + "."
        if wanted not in out:
            failures.append("quintet-%s --help does not say %r" % (role["name"], wanted))

    def finder(names):
        alternatives = "|".join(sorted(map(re.escape, names), key=len, reverse=True))
        return re.compile(r"(?<![\w-])(?:%s)(?![\w-])" % alternatives)

    def restated(pattern, names, line):
        """The first run of IN_A_ROW names or more, each the next of the
        canonical order, separated only by SEPARATOR; None if there is none.
        A plan that picks a few names in its own order is not a list."""
        run = []
        for match in pattern.finditer(line):
            if run and re.fullmatch(SEPARATOR, line[run[-1].end():match.start()]) \
                    and names.index(match.group(0)) == names.index(run[-1].group(0)) + 1:
                run.append(match)
            else:
                if len(run) >= IN_A_ROW:
                    break
                run = [match]
        return line[run[0].start():run[-1].end()] if len(run) >= IN_A_ROW else None

    roles, modes = list(qt.roles(ctl)), list(qt.byzantine(args.build_dir))
    lists = [(finder(roles), roles, "role", (TOPOLOGY,)),
             (finder(modes), modes, "Byzantine mode", MODES_HOME)]
    searched = 0
    for root, dirs, files in os.walk(args.source_dir):
        rel_root = os.path.relpath(root, args.source_dir)
        dirs[:] = [d for d in dirs if not d.startswith((".git", "__"))
                   and not (rel_root == "." and d in SKIPPED_DIRS) and not d.startswith("build")]
        for name in files:
            path = os.path.join(root, name)
            rel = os.path.relpath(path, args.source_dir)
            if not name.endswith(SUFFIXES) or name.endswith(".md"):
                continue
            try:
                text = open(path, encoding="utf-8").read()
            except (UnicodeDecodeError, OSError):
                continue
            searched += 1
            for number, line in enumerate(text.splitlines(), 1):
                for pattern, names, what, homes in lists:
                    if rel in homes:
                        continue
                    found = restated(pattern, names, line)
                    if found:
                        failures.append("%s:%d: a %s list (%s: take it from %s)"
                                        % (rel, number, what, found, homes[0]))
    print("searched %d files for a list of %d roles or of Byzantine modes" % (searched, len(ctl["roles"])))
    for failure in failures:
        print("FAIL " + failure)
    return 1 if failures else 0


if __name__ == "__main__":
    sys.exit(main())
