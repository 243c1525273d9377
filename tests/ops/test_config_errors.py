"""Config errors: every daemon refuses a bad configuration with exit status 2
and one message naming the file and the key (README "Running the daemons by
hand"). Each case starts from a config that passes --check, breaks one thing,
and expects exactly one error line holding the file's name and the key.
The environment's keys too: quintet/env, env_variant and env_without of any
role, the world's tamper style and sensor modes, the scorer's options (the
learner's: a utility written in its config is refused), the aggregator's
rule (quintet/aggregator/aggregation, pre_aggregation, clip_radius).
--check also refuses a secret key that is not the trust store's
<role>-<replica>.pub, and binds nothing (it passes while the ports are held).
"""
import os
import shutil
import socket
import stat
import subprocess
import sys

HERE = os.path.dirname(os.path.abspath(__file__))
sys.path.insert(0, os.path.join(os.path.dirname(HERE), "integration"))
import itest  # noqa: E402

TIMEOUT_S = 20


# The upstreams of each role tried, the first one's faults configurable
UPSTREAM = {"collector": ("world", "raters"), "world": ("actor",),
            "scorer": ("worldmodel", "collector"), "aggregator": ("rewarder",)}
PANEL = ("    scorer", "        rater", "            honest-1", "                weight",
         "                    watered = 0.02")


def config(tmp, extra="", batch="4", faults=None, key=None, trust="trust", role="collector",
           section=(), bind="tcp://127.0.0.1:*"):
    key = key or "keys/%s-1.key" % role
    lines = ["quintet", "    role = %s" % role, "    replica = 1", "    batch = %s" % batch,
             '    secret_key = "%s/%s"' % (tmp, key), '    trust_dir = "%s/%s"' % (tmp, trust),
             '    state_dir = "%s/state"' % tmp, '    bind = "%s"' % bind]
    if extra:
        lines.append(extra)
    lines += ["    upstream"]
    for k, upstream in enumerate(UPSTREAM[role]):
        lines.append("        " + upstream)
        if faults is not None and k == 0:
            lines.append("            faults = %d" % faults)
        if upstream == "raters":
            lines.append("            faults = 0")
        lines.append('            1 = "tcp://127.0.0.1:%d"' % (9 + k))
    lines += list(section)
    return "\n".join(lines) + "\n"


def world(*lines):
    return ("    world",) + tuple("        " + line for line in lines)


def main():
    args = itest.args("config errors: exit 2, one message naming file and key")
    failures = []
    holder, tmp = itest.state_dir("config-errors", args.keep)
    daemon = os.path.join(args.build_dir, "daemons", "quintet-collector")
    ctl = os.path.join(args.build_dir, "tools", "quintetctl", "quintetctl")
    try:
        subprocess.run([ctl, "keygen", "--dir", tmp, "--replicas", "3"], check=True,
                       stdout=subprocess.DEVNULL, timeout=TIMEOUT_S)
        with open(os.path.join(tmp, "keys", "garbage.key"), "w") as f:
            f.write("not a key\n")
        os.chmod(os.path.join(tmp, "keys", "garbage.key"), 0o600)
        shutil.copy(os.path.join(tmp, "keys", "collector-1.key"), os.path.join(tmp, "keys", "open.key"))
        os.chmod(os.path.join(tmp, "keys", "open.key"), 0o644)
        # a trust store without collector-1's public key
        shutil.copytree(os.path.join(tmp, "trust"), os.path.join(tmp, "trust-partial"))
        os.unlink(os.path.join(tmp, "trust-partial", "collector-1.pub"))
        # ports a running replica holds: --check must not need them
        held = [socket.socket(socket.AF_INET, socket.SOCK_STREAM) for _ in range(3)]
        for sock in held:
            sock.bind(("127.0.0.1", 0))
            sock.listen(1)
        held_ports = [sock.getsockname()[1] for sock in held]
        beside = config(tmp, bind="tcp://127.0.0.1:%d" % held_ports[0],
                        extra='    control_bind = "tcp://127.0.0.1:%d"\n    metrics_bind = "127.0.0.1:%d"'
                        % (held_ports[1], held_ports[2]))
        cases = [
            # name, config text (None: no file), strings the one message must hold
            ("valid", config(tmp), None),
            ("missing file", None, ["missing.conf", "cannot open"]),
            ("unknown key", config(tmp, extra="    resend_msec = 5"), ["quintet/resend_msec", "unknown"]),
            ("bad value", config(tmp, batch="abc"), ["quintet/batch", '"abc"']),
            ("value out of range", config(tmp, batch="0"), ["quintet/batch", "[1, 4096]"]),
            ("n < 2f+1", config(tmp, faults=1), ["quintet/upstream/world/faults", "2f+1"]),
            ("missing key file", config(tmp, key="keys/nobody-1.key"), ["quintet/secret_key", "nobody-1.key"]),
            ("unreadable key", config(tmp, key="keys/garbage.key"), ["quintet/secret_key", "garbage.key"]),
            ("key readable by others", config(tmp, key="keys/open.key"), ["quintet/secret_key", "open.key"]),
            ("no trust store", config(tmp, trust="nowhere"), ["quintet/trust_dir", "nowhere"]),
            ("another replica's key", config(tmp, key="keys/collector-2.key"),
             ["quintet/secret_key", "collector-2", "not of collector-1"]),
            ("own public key missing", config(tmp, trust="trust-partial"),
             ["quintet/secret_key", "collector-1.pub"]),
            ("bind nonsense", config(tmp, bind="nonsense"), ["quintet/bind", "nonsense"]),
            ("upstream nonsense", config(tmp).replace('"tcp://127.0.0.1:9"', '"tcp:/x"'),
             ["quintet/upstream/world/1", "tcp:/x"]),
            ("ports in use", beside, None),
            ("not ZPL", "quintet\n\tbatch = 4\n", ["line 2", "ZPL"]),
            # the environment, for any role
            ("unknown env", config(tmp, extra="    env = nowhere"),
             ["quintet/env", '"nowhere"', "unknown environment"]),
            ("unknown variant", config(tmp, extra="    env_variant = nope"),
             ["env_variant", '"nope"']),
            ("unknown sensor family", config(tmp, extra="    env_without = nofamily"),
             ["env_without", '"nofamily"']),
            ("world valid", config(tmp, role="world", section=world(
                "episodes = 0", "tamper = frozen", "sensor", "    moisture-3 = broken")), None),
            ("unknown tamper style", config(tmp, role="world", section=world("tamper = glue")),
             ["world/tamper", "no tamper style"]),
            ("unknown sensor", config(tmp, role="world", section=world(
                "sensor", "    moisture-99 = broken")),
             ["quintet/world/sensor/moisture-99", "no sensor"]),
            ("bad sensor mode", config(tmp, role="world", section=world(
                "sensor", "    moisture-3 = sideways")),
             ["quintet/world/sensor/moisture-3", '"sideways"']),
            # the scorer learns: its options are the learner's, a panel is refused
            ("scorer valid", config(tmp, role="scorer", section=(
                "    scorer", "        quantile = 0.3", "        comparisons = 500")), None),
            ("scorer defaults", config(tmp, role="scorer"), None),
            ("scorer with a panel", config(tmp, role="scorer", section=PANEL),
             ["quintet/scorer/rater", "holds no utility"]),
            ("scorer bad quantile", config(tmp, role="scorer", section=(
                "    scorer", "        quantile = 1.5")),
             ["quintet/scorer/quantile", "quantile is in (0, 1)"]),
            # the aggregator's rule: a name of qt_robust's table
            ("aggregator valid", config(tmp, role="aggregator", section=(
                "    aggregator", "        aggregation = centered-clipping",
                "        pre_aggregation = nnm", "        clip_radius = 0.5")), None),
            ("unknown aggregation", config(tmp, role="aggregator", section=(
                "    aggregator", "        aggregation = median")),
             ["quintet/aggregator/aggregation", '"median"', "geomedian"]),
            ("unknown pre-aggregation", config(tmp, role="aggregator", section=(
                "    aggregator", "        pre_aggregation = mixing")),
             ["quintet/aggregator/pre_aggregation", '"mixing"', "nnm"]),
            ("clip radius 0", config(tmp, role="aggregator", section=(
                "    aggregator", "        clip_radius = 0")),
             ["quintet/aggregator/clip_radius"]),
        ]
        for name, text, expected in cases:
            path = os.path.join(tmp, name.replace(" ", "-").replace("<", "lt") + ".conf")
            if text is None:
                path = os.path.join(tmp, "missing.conf")
            else:
                with open(path, "w") as f:
                    f.write(text)
            role = "collector"
            if text is not None:
                role = text.split("role = ", 1)[1].split()[0] if "role = " in text else role
            daemon = os.path.join(args.build_dir, "daemons", "quintet-" + role)
            result = subprocess.run([daemon, "--config", path, "--check"], stdout=subprocess.PIPE,
                                    stderr=subprocess.PIPE, text=True, timeout=TIMEOUT_S)
            errors = [line for line in result.stderr.splitlines() if line.strip()]
            if expected is None:
                itest.check(result.returncode == 0, "%s: --check passes (%s)"
                            % (name, result.stderr.strip()), failures)
                continue
            message = errors[0] if errors else ""
            holds = [os.path.basename(path)] + expected
            itest.check(result.returncode == 2 and len(errors) == 1
                        and all(s in message for s in holds),
                        "%s: exit %d, %d line(s): %s" % (name, result.returncode, len(errors), message),
                        failures)
        # Without --check the bind itself fails: the message names file and key too
        path = os.path.join(tmp, "bind-nonsense.conf")
        collector = os.path.join(args.build_dir, "daemons", "quintet-collector")
        result = subprocess.run([collector, "--config", path], stdout=subprocess.PIPE,
                                stderr=subprocess.PIPE, text=True, timeout=TIMEOUT_S)
        errors = [line for line in result.stderr.splitlines() if line.strip()]
        itest.check(result.returncode == 2 and len(errors) == 1 and "bind-nonsense.conf" in errors[0]
                    and "quintet/bind" in errors[0],
                    "bind nonsense, started: exit %d: %s" % (result.returncode, errors), failures)
        for sock in held:
            sock.close()
    finally:
        if holder:
            holder.cleanup()
    if failures:
        print("%d check(s) failed" % len(failures))
        return 1
    return 0


if __name__ == "__main__":
    sys.exit(main())
