"""Shared by the integration tests: command line, paths, the deploy library.

Every test is run by meson as
    /usr/bin/python3 test_X.py --build-dir BUILD --source-dir SOURCE
and can be run by hand the same way (the defaults are the checkout's build/).
"""
import argparse
import os
import sys
import tempfile

HERE = os.path.dirname(os.path.abspath(__file__))
SOURCE = os.path.dirname(os.path.dirname(HERE))


def args(description, extra=None):
    parser = argparse.ArgumentParser(description=description)
    parser.add_argument("--build-dir", default=os.path.join(SOURCE, "build"))
    parser.add_argument("--source-dir", default=SOURCE)
    parser.add_argument("--keep", action="store_true",
                        help="keep the state directory (printed) instead of removing it")
    if extra:
        extra(parser)
    parsed = parser.parse_args()
    sys.path.insert(0, os.path.join(os.path.abspath(parsed.source_dir), "tools", "python"))
    return parsed


def state_dir(name, keep=False):
    """A fresh temporary state directory (removed at exit unless keep)."""
    if keep:
        path = tempfile.mkdtemp(prefix="quintet-%s-" % name)
        print("state dir: %s" % path)
        return None, path
    holder = tempfile.TemporaryDirectory(prefix="quintet-%s-" % name)
    return holder, holder.name


def check(condition, message, failures):
    print("%s %s" % ("ok  " if condition else "FAIL", message), flush=True)
    if not condition:
        failures.append(message)
