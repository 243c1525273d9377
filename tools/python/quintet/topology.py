"""quintet.topology: the pipeline's roles and topics for the Python tools.

The one table is common/topology.txt (its header says who reads it). This
module gives it two ways, in the same JSON shape as `quintetctl topology
--json`:

    read()              parses common/topology.txt itself: no build needed
                        (the deployment, the verifier, tests, the bench
                        use it at import time); no "byzantine" key
    topology(build_dir) asks BUILD/tools/quintetctl/quintetctl topology
                        --json (cached per build directory): the same roles
                        and topics as the C table, and the Byzantine modes
                        (qt_byzantine's table: "value" attacks and
                        "protocol" faults)

and the shapes the tools use: roles(t), replicated(t), single(t),
publishes(t), upstreams(t), side_topics(t), publisher(t, topic),
dashboard(t), of either. The
one-role-list test checks that read() and quintetctl agree.
"""
import json
import os
import subprocess

HERE = os.path.dirname(os.path.abspath(__file__))
SOURCE = os.path.dirname(os.path.dirname(os.path.dirname(HERE)))     # tools/python/quintet
TOPOLOGY_FILE = os.path.join(SOURCE, "common", "topology.txt")
QUINTETCTL = os.path.join("tools", "quintetctl", "quintetctl")


class TopologyError(RuntimeError):
    """topology.txt is malformed, or quintetctl could not tell."""


def _message_name(c_name):
    # quintet__control_message__descriptor's message is ControlMessage
    return "".join(part.capitalize() for part in c_name.split("_"))


def read(path=TOPOLOGY_FILE):
    """common/topology.txt as {"topics": [...], "roles": [...], "dashboard":
    {"topics": [...], "conflated": [...]}}."""
    topics, roles = [], []
    dashboard = {"topics": [], "conflated": []}
    try:
        text = open(path, encoding="utf-8").read()
    except OSError as e:
        raise TopologyError("cannot read the topology: %s" % e) from None
    for number, line in enumerate(text.splitlines(), 1):
        fields = line.split()
        if not fields or fields[0].startswith("#"):
            continue
        where = "%s:%d: " % (path, number)
        if fields[0] == "topic" and len(fields) == 4:
            topics.append({"name": fields[1], "type": fields[2], "message": _message_name(fields[3])})
        elif fields[0] == "role" and len(fields) == 6:
            types = {t["name"]: t["type"] for t in topics}
            if fields[2] not in types or fields[3] not in ("replicated", "single"):
                raise TopologyError(where + "unknown topic or replication: %r" % line)
            upstreams = []
            for pair in ([] if fields[4] == "-" else fields[4].split(",")):
                role, _, topic = pair.partition(":")
                upstreams.append({"role": role, "topic": topic})
            roles.append({"name": fields[1], "topic": fields[2], "type": types[fields[2]],
                          "replicated": fields[3] == "replicated", "upstreams": upstreams,
                          "side_topics": [] if fields[5] == "-" else fields[5].split(",")})
        elif fields[0] == "dashboard" and len(fields) == 3:
            dashboard = {"topics": fields[1].split(","),
                         "conflated": [] if fields[2] == "-" else fields[2].split(",")}
        else:
            raise TopologyError(where + "expected a topic, a role or a dashboard line: %r" % line)
    return {"topics": topics, "roles": roles, "dashboard": dashboard}


_CACHE = {}


def topology(build_dir):
    """`quintetctl topology --json` of a build, parsed (cached)."""
    ctl = os.path.join(os.path.abspath(build_dir), QUINTETCTL)
    if ctl not in _CACHE:
        try:
            out = subprocess.run([ctl, "topology", "--json"], check=True, capture_output=True,
                                 text=True, timeout=30).stdout
            _CACHE[ctl] = json.loads(out)
        except (OSError, ValueError, subprocess.SubprocessError) as e:
            raise TopologyError("%s topology --json: %s (is the build there? ninja -C %s)"
                                % (ctl, e, build_dir)) from None
    return _CACHE[ctl]


def roles(t):
    """Every role, in pipeline order."""
    return tuple(r["name"] for r in t["roles"])


def replicated(t):
    """The roles with n replicas, in pipeline order."""
    return tuple(r["name"] for r in t["roles"] if r["replicated"])


def single(t):
    """The roles that run as one process whatever n."""
    return tuple(r["name"] for r in t["roles"] if not r["replicated"])


def publishes(t):
    """{role: the topic it publishes}."""
    return {r["name"]: r["topic"] for r in t["roles"]}


def side_topics(t):
    """{role: the other topics it publishes}, for the roles that have some."""
    return {r["name"]: tuple(r["side_topics"]) for r in t["roles"] if r["side_topics"]}


def upstreams(t):
    """{role: ((upstream role, topic), ...)} in the daemon's order."""
    return {r["name"]: tuple((u["role"], u["topic"]) for u in r["upstreams"]) for r in t["roles"]}


def publisher(t, topic):
    """The role publishing a topic as its own, else beside its own; None (control)."""
    for r in t["roles"]:
        if r["topic"] == topic:
            return r["name"]
    for r in t["roles"]:
        if topic in r["side_topics"]:
            return r["name"]
    return None


def dashboard(t):
    """What the dashboard endpoint (quintet-relay) forwards: ((topic, the
    role publishing it), ...) in the file's order."""
    return tuple((topic, publisher(t, topic)) for topic in t["dashboard"]["topics"])


def byzantine(build_dir, family=None):
    """The Byzantine modes of --byzantine: family "value", "protocol", or both."""
    modes = topology(build_dir)["byzantine"]
    return tuple(modes[family]) if family else tuple(modes["value"] + modes["protocol"])
