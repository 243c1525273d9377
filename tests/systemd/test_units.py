"""The units suite: deploy/ as systemd sees it.

    verify    `systemd-analyze verify` prints nothing for any unit (it exits 0
              on unknown keys, so any output at all is a failure); the units
              checked are the build-* copies meson makes from the same
              templates with ExecStart= in build/daemons, so the binaries
              resolve
    security  `systemd-analyze security --offline=yes --threshold=20` passes
              for every service (systemd 252 counts exposure in tenths:
              20 is the 2.0 shown in its table); the exposure is printed
    install   `meson install --destdir` puts units, catalog, sysusers.d,
              tmpfiles.d, example configs and binaries where systemd and
              operators look, and the installed catalog compiles
              (journalctl --root --update-catalog) with every MESSAGE_ID of
              common/qt_log.h
    examples  every example config in deploy/config passes `--check` of its
              daemon, with keys from quintetctl keygen handed over the way
              LoadCredential= does ($CREDENTIALS_DIRECTORY)

Each check also runs on a deliberately broken input and must fail there, so
a check that can no longer fail is caught.

Run by meson as: python3 test_units.py CHECK --build-dir B --source-dir S
"""
import argparse
import glob
import json
import os
import re
import shutil
import subprocess
import sys
import tempfile

ANALYZE = shutil.which("systemd-analyze") or "/usr/bin/systemd-analyze"
JOURNALCTL = shutil.which("journalctl") or "/usr/bin/journalctl"
THRESHOLD = 20          # 2.0 in systemd-analyze's table
TIMEOUT_S = 60
sys.path.insert(0, os.path.join(os.path.dirname(os.path.dirname(os.path.dirname(
    os.path.abspath(__file__)))), "tools", "python"))
from quintet import topology  # noqa: E402

# The roles (common/topology.txt); the single ones run one process each: a
# plain unit, not a template
TOPOLOGY = topology.read()
ROLES = topology.roles(TOPOLOGY)
SINGLE = topology.single(TOPOLOGY)
RATERS = 20                         # the population the raters' unit and example hand keys to
# and the dashboard relay's (daemons/relay: no role, no replicas)
UNITS = ["quintet-%s.service" % role for role in SINGLE] + ["quintet-relay.service",
                                                            "quintet.target"] + [
    "quintet-%s@.service" % role for role in ROLES if role not in SINGLE]

failures = []


def check(condition, message):
    print("%s %s" % ("ok  " if condition else "FAIL", message), flush=True)
    if not condition:
        failures.append(message)


def run(argv, **kwargs):
    return subprocess.run(argv, stdout=subprocess.PIPE, stderr=subprocess.STDOUT,
                          text=True, timeout=TIMEOUT_S, **kwargs)


def build_units(build_dir, into):
    """The build-* units under their real names in `into`."""
    for unit in UNITS:
        source = os.path.join(build_dir, "deploy", "build-" + unit)
        if not os.path.exists(source):
            check(False, "%s was not generated (meson configure_file)" % source)
            continue
        shutil.copy(source, os.path.join(into, unit))
    return [os.path.join(into, unit) for unit in UNITS]


def verify_output(path):
    result = run([ANALYZE, "verify", "--man=no", path], cwd=os.path.dirname(path))
    return result.returncode, result.stdout.strip()


def test_verify(build_dir, tmp):
    for path in build_units(build_dir, tmp):
        rc, output = verify_output(path)
        check(rc == 0 and output == "", "verify %s: silent%s"
              % (os.path.basename(path), "" if not output else ":\n" + output))
    #  The check can fail: an unknown key only warns, and must be caught
    broken = os.path.join(tmp, "quintet-broken@.service")
    with open(os.path.join(tmp, "quintet-collector@.service")) as f:
        text = f.read().replace("[Service]\n", "[Service]\nWatchDogSec=30s\n", 1)
    with open(broken, "w") as f:
        f.write(text)
    rc, output = verify_output(broken)
    check("WatchDogSec" in output, "verify reports a misspelt key (rc %d, output %r)" % (rc, output[:80]))


def security(path):
    result = run([ANALYZE, "security", "--offline=yes", "--no-pager",
                  "--threshold=%d" % THRESHOLD, path], cwd=os.path.dirname(path))
    match = re.search(r"Overall exposure level for \S+: ([0-9.]+)", result.stdout)
    return result.returncode, float(match.group(1)) if match else None


def test_security(build_dir, tmp):
    for path in build_units(build_dir, tmp):
        if not path.endswith(".service"):
            continue        # a target runs nothing: no exposure to score
        rc, exposure = security(path)
        check(rc == 0 and exposure is not None and exposure <= THRESHOLD / 10,
              "security %s: exposure %s (threshold %.1f)"
              % (os.path.basename(path), exposure, THRESHOLD / 10))
    weak = os.path.join(tmp, "weak.service")
    with open(weak, "w") as f:
        f.write("[Service]\nType=notify\nExecStart=%s\n" % sys.executable)
    rc, exposure = security(weak)
    check(rc != 0, "security fails an unhardened service (exposure %s, rc %d)" % (exposure, rc))


def installed_paths(build_dir):
    """meson's own list: built file -> installed absolute path"""
    result = run(["meson", "introspect", "--installed", build_dir])
    return json.loads(result.stdout) if result.returncode == 0 else {}


def test_install(build_dir, source_dir, tmp):
    destdir = os.path.join(tmp, "dest")
    result = run(["meson", "install", "-C", build_dir, "--destdir", destdir,
                  "--no-rebuild", "--quiet"])
    check(result.returncode == 0, "meson install --destdir (rc %d) %s"
          % (result.returncode, result.stdout.strip()[-400:]))
    installed = list(installed_paths(build_dir).values())
    check(installed, "meson introspect --installed lists the installed files")

    def where(name):
        found = [p for p in installed if os.path.basename(p) == name]
        return found[0] if found else None

    def present(path):
        return path is not None and os.path.exists(destdir + path)

    for unit in UNITS:
        path = where(unit)
        check(present(path) and os.path.dirname(path).endswith("/lib/systemd/system"),
              "unit %s installed in a systemd unit directory (%s)" % (unit, path))
    #  The installed units name the installed binaries
    world = where("quintet-world.service")
    if present(world):
        with open(destdir + world) as f:
            exec_start = re.search(r"^ExecStart=(\S+)", f.read(), re.M).group(1)
        check(os.access(destdir + exec_start, os.X_OK),
              "ExecStart=%s is installed and executable" % exec_start)
    catalog = where("quintet.catalog")
    check(catalog == "/usr/lib/systemd/catalog/quintet.catalog" and present(catalog),
          "catalog installed where journalctl reads it (%s)" % catalog)
    for kind in ("sysusers.d", "tmpfiles.d"):
        path = [p for p in installed if p.endswith("/lib/%s/quintet.conf" % kind)]
        check(path and present(path[0]), "%s snippet installed (%s)" % (kind, path))
    #  install_subdir is listed as a directory: look at what landed
    examples = glob.glob(os.path.join(destdir, "**", "doc", "quintet", "examples", "*.conf"),
                         recursive=True)
    check(examples and len(examples) == len(glob.glob(os.path.join(source_dir, "deploy", "config",
                                                                   "*.conf"))),
          "%d example configs installed under share/doc/quintet/examples" % len(examples))
    for binary in ["quintetctl", "quintet-relay"] + ["quintet-" + role for role in ROLES]:
        path = where(binary)
        check(present(path) and os.access(destdir + path, os.X_OK), "%s installed (%s)" % (binary, path))

    #  The catalog compiles in place and holds every MESSAGE_ID of qt_log.h
    if present(catalog):
        result = run([JOURNALCTL, "--root=" + destdir, "--update-catalog"])
        check(result.returncode == 0, "journalctl --update-catalog on the installed catalog")
        listed = run([JOURNALCTL, "--root=" + destdir, "--list-catalog"]).stdout
        with open(os.path.join(source_dir, "common", "qt_log.h")) as f:
            ids = re.findall(r'#define QT_MSG_\w+\s+"([0-9a-f]{32})"', f.read())
        missing = [i for i in ids if i not in listed]
        check(ids and not missing, "catalog explains all %d MESSAGE_IDs (missing %s)" % (len(ids), missing))


def test_examples(build_dir, source_dir, tmp):
    ctl = os.path.join(build_dir, "tools", "quintetctl", "quintetctl")
    result = run([ctl, "keygen", "--dir", tmp, "--replicas", "3", "--raters", str(RATERS)])
    check(result.returncode == 0, "quintetctl keygen (%s)" % result.stdout.strip())
    configs = sorted(glob.glob(os.path.join(source_dir, "deploy", "config", "*.conf")))
    check(len(configs) == 20, "20 example configs (world, raters + 3 of each role): %d" % len(configs))
    env = dict(os.environ, CREDENTIALS_DIRECTORY=os.path.join(tmp, "keys"))
    for i, config in enumerate(configs):
        name = os.path.basename(config)[:-len(".conf")]
        role = name.rsplit("-", 1)[0]
        with open(config) as f:
            text = f.read()
        #  Where the units' paths are not ours to use, point at the test's:
        #  the trust store and state under tmp, an ephemeral port
        text = text.replace('"/etc/quintet/trust"', '"%s/trust"' % tmp)
        text = text.replace('"/var/lib/quintet/', '"%s/state/' % tmp)
        text = re.sub(r'(control_)?bind = "tcp://127.0.0.1:\d+"', r'\1bind = "tcp://127.0.0.1:*"', text)
        local = os.path.join(tmp, name + ".conf")
        with open(local, "w") as f:
            f.write(text)
        daemon = os.path.join(build_dir, "daemons", "quintet-" + role)
        result = run([daemon, "--config", local, "--check"], env=env)
        check(result.returncode == 0, "%s --check%s" % (name, "" if result.returncode == 0
                                                         else ": " + result.stdout.strip()))
    #  The relay's flags (relay.env, the unit's EnvironmentFile=) pass its
    #  --check, with the unit's own --trust-dir pointed at the test's
    with open(os.path.join(source_dir, "deploy", "config", "relay.env")) as f:
        relay_flags = re.search(r'^QUINTET_RELAY_OPTIONS="([^"]*)"$', f.read(), re.M)
    relay = [os.path.join(build_dir, "daemons", "quintet-relay"), "--trust-dir",
             os.path.join(tmp, "trust"), "--check"] + (relay_flags.group(1).split() if relay_flags else [])
    result = run(relay)
    check(relay_flags and result.returncode == 0, "relay.env: quintet-relay --check%s"
          % ("" if result.returncode == 0 else ": " + result.stdout.strip()))
    result = run(relay + ["--aggregator", "tcp://127.0.0.1:port"])
    check(result.returncode == 2, "quintet-relay --check refuses a bad endpoint (rc %d)" % result.returncode)
    #  The environment: every example names the same one
    names = set()
    for config in configs:
        with open(config) as f:
            found = re.findall(r"^    env = (\S+)$", f.read(), re.M)
        names.update(found or [None])
    check(len(names) == 1 and None not in names, "every example names one environment: %s"
          % sorted(str(n) for n in names))
    #  The scorers hold how to learn, never what is wanted: under scorer/
    #  only numbers of the learner's options, and the raters they ask are
    #  the raters daemon's population
    population = None
    with open(os.path.join(source_dir, "deploy", "config", "raters-1.conf")) as f:
        found = re.search(r"^        raters = (\d+)$", f.read(), re.M)
        population = found and found.group(1)
    for config in configs:
        if not os.path.basename(config).startswith("scorer-"):
            continue
        with open(config) as f:
            text = f.read()
        section = text[text.index("\n    scorer\n"):] if "\n    scorer\n" in text else ""
        options = dict(re.findall(r"^        (\S+) = (\S+)$", section, re.M))
        odd = [k for k, v in options.items() if not re.match(r"^[0-9.eE+-]+$", v)
               or k not in ("quantile", "lipschitz", "prior_sd", "raters", "comparisons",
                            "per_tick", "max_per_rater", "unit")]
        check(options and not odd and options.get("raters") == population,
              "%s: the learner's options only (%s), asking the %s raters of raters-1.conf%s"
              % (os.path.basename(config), options, population, " (odd: %s)" % odd if odd else ""))
    #  A scorer given a utility is refused: nobody writes what is wanted
    written = os.path.join(tmp, "scorer-written.conf")
    with open(os.path.join(tmp, "scorer-1.conf")) as f:
        text = f.read()
    with open(written, "w") as f:
        f.write(text.replace("    scorer\n", "    scorer\n        rater\n            honest-1\n"
                             "                weight\n                    watered = 0.02\n", 1))
    result = run([os.path.join(build_dir, "daemons", "quintet-scorer"), "--config", written,
                  "--check"], env=env)
    check(result.returncode == 2 and "rater" in result.stdout,
          "--check refuses a scorer whose config writes a rater's utility (rc %d)" % result.returncode)
    #  The raters refuse to start without every person's key, and say whose
    os.rename(os.path.join(tmp, "keys", "rater-%d.key" % RATERS), os.path.join(tmp, "moved.key"))
    result = run([os.path.join(build_dir, "daemons", "quintet-raters"), "--config",
                  os.path.join(tmp, "raters-1.conf"), "--check"], env=env)
    check(result.returncode == 2 and ("rater %d of %d" % (RATERS, RATERS)) in result.stdout,
          "--check fails for the raters without rater-%d.key (rc %d): %s"
          % (RATERS, result.returncode, result.stdout.strip()[-160:]))
    #  and the check can fail: a key that is not there
    env["CREDENTIALS_DIRECTORY"] = os.path.join(tmp, "nowhere")
    result = run([os.path.join(build_dir, "daemons", "quintet-world"), "--config",
                  os.path.join(tmp, "world-1.conf"), "--check"], env=env)
    check(result.returncode == 2 and "world-1.key" in result.stdout,
          "--check fails when the credential is missing (rc %d)" % result.returncode)


def main():
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("check", choices=("verify", "security", "install", "examples"))
    parser.add_argument("--build-dir", required=True)
    parser.add_argument("--source-dir", required=True)
    args = parser.parse_args()
    build_dir = os.path.abspath(args.build_dir)
    source_dir = os.path.abspath(args.source_dir)
    if args.check in ("verify", "security") and not os.access(ANALYZE, os.X_OK):
        print("FAIL systemd-analyze is missing (Debian package systemd, in ./run's PACKAGES)")
        return 1
    with tempfile.TemporaryDirectory(prefix="quintet-units-") as tmp:
        if args.check == "verify":
            test_verify(build_dir, tmp)
        elif args.check == "security":
            test_security(build_dir, tmp)
        elif args.check == "install":
            test_install(build_dir, source_dir, tmp)
        else:
            test_examples(build_dir, source_dir, tmp)
    if failures:
        print("%d check(s) failed" % len(failures))
        return 1
    return 0


if __name__ == "__main__":
    sys.exit(main())
