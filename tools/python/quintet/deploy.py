"""quintet.deploy: a whole quintet deployment on loopback, as a library.

Used by the demo (tools/demo/quintet-demo) and by the integration tests
(tests/integration/). One `Deployment` is the world plus `n` replicas of every
other role, each replica a separate process with its own key, config file,
log, state directory and loopback port:

    STATE/keys/<role>-<r>.key      secret keys (quintetctl keygen, 0600)
    STATE/trust/<role>-<r>.pub     the trust store (public keys only)
    STATE/etc/<role>-<r>.conf      one ZPL config per replica
    STATE/logs/<role>-<r>.log      its stdout and stderr
    STATE/run/<role>-<r>/          its state_dir (collector log, checkpoints)
    STATE/endpoints.json           every replica's publish endpoint, by role

    with Deployment(build_dir="build", state_dir="state", env="ENV",
                    episodes=512) as d:
        d.setup()
        d.start()
        summary = d.run_to_completion(on_progress=print)

The environment is configuration: every replica's config names it
(quintet/env, env_variant, env_without, the same everywhere). Nobody writes
what is wanted: the scorers learn it from the judgments of the raters
daemon's simulated people (quintet/raters/: how many, the fraction
malicious and how), collected by the collectors; their config holds only
how to learn (quantile, the comparison budgets).

The deployment's own view of the run comes from two subscriptions only, the
same any dashboard would have: the world's `eval` topic (hidden performance
and observed return of every finished episode) and the aggregators'
`reward` topic (the pipeline return per instance and episode, from the
per-instance clocks). Every message is verified by quintet.verifier (the
C receive path's rules); what fails is counted and dropped. The figures are means over the last `window` episodes to
finish, in finishing order (tick, then instance): quintet-sim's, which
honest daemons reproduce exactly (Deployment.sim_command).

Processes are always stopped: on stop(), on leaving the context manager, at
interpreter exit, and (PR_SET_PDEATHSIG) when the launcher itself dies.
"""

import atexit
import collections
import json
import math
import os
import shutil
import signal
import subprocess
import sys
import time
import weakref

import zmq

from . import topology
from .build import (DeploymentError, daemon_path, describe_env, list_aggregations, list_envs,
                    load_pb2, quintetctl_path, sim_path)
from .ports import free_ports
from .progress import Progress
from .replica import Relay, Replica, set_pdeathsig, tail
from .trust import TrustStore
from .verifier import MESSAGE_SIZE_CAP, Verifier
from .zpl import deep_merge, render_zpl

# The topology (common/topology.txt, quintet.topology): every role in
# pipeline order, the topic each one publishes (its own; the collectors also
# publish `judgment`, the scorers `query`, the world `eval`: SIDE_TOPICS),
# the roles that run one process whatever the replication (SINGLE) and what
# each role consumes, (upstream role, topic) in the daemon's order
TOPOLOGY = topology.read()
ROLES = topology.roles(TOPOLOGY)
PUBLISHES = topology.publishes(TOPOLOGY)
SIDE_TOPICS = topology.side_topics(TOPOLOGY)
SINGLE = topology.single(TOPOLOGY)
UPSTREAMS = topology.upstreams(TOPOLOGY)

# Role-specific configuration, rendered into quintet/<role>/ of every replica
# of that role (nested dicts become nested sections): the rewarder's weights
# (lambda_uncertainty, lambda_reliability, resource_cost), the actor's
# learning options (representation, gamma, nstep, alpha_power, alpha_min,
# epsilon_start, epsilon_end, epsilon_episodes, q_initial, max_states,
# checkpoint_ticks), the world model's (samples, particles, steer_draws,
# reliability_prior), the scorer's learning options (sc_learn: the names of
# SC_LEARN_NUMBERS in daemons/scorer/learn.h),
# the raters' population (rt_population: raters, variation, minority,
# minority_factor, minority_feature, careless, malicious, malice,
# collude_feature). Filled in from the Deployment's parameters: the actor's
# `reward_source`; the world's `episodes`, `tamper` and `sensor/<name>`;
# the scorer's quantile, raters, comparisons and per_tick; the raters'
# raters, malicious, malice and key_dir.
ROLE_SECTIONS = {
    "actor": {"reward_source": "pipeline"},
}
MALICES = ("inverted", "extreme", "colluding")

# The demo's defaults (quintet-demo)
DEFAULT_EPISODES = 2048     # finished episodes over all instances; the README's demo table
                            # gives what it reaches (measured with quintet-sim)
DEFAULT_BATCH = 32
DEFAULT_REPLICAS = 3
DEFAULT_SEED = 1
DEFAULT_WINDOW = 100        # the figures are means over the last 100 episodes to finish
DEFAULT_RATERS = 20         # people in the simulated population
DEFAULT_MALICIOUS = 0.0     # the fraction of them malicious ...
DEFAULT_MALICE = "inverted" # ... and how
DEFAULT_COMPARISONS = 1000  # the scorers' total budget of comparisons asked
DEFAULT_QUANTILE = 0.5      # q of the majority judgment
DEFAULT_PER_TICK = 8        # comparisons asked per tick, at most
SENSOR_MODES = ("honest", "broken", "malicious")

START_GRACE_S = 0.5


_live = weakref.WeakSet()


@atexit.register
def _stop_all():
    for deployment in list(_live):
        try:
            deployment.stop()
        except Exception:
            pass


class Deployment:
    """The world and `replicas` replicas of every other role on loopback.

    env, variant, without: the environment (default: the registry's
    default, the first of `quintetctl envs`), its variant and the sensor
    families left out of its declaration (comma-separated; the
    families are in `quintetctl env NAME`): written as quintet/env, env_variant, env_without into
    every replica's config (they must agree across roles). tamper: how the
    agent's tampering forges a sensor (one of the env's tamper styles),
    quintet/world/tamper. sensors: {sensor name: honest | broken |
    malicious}, quintet/world/sensor/<name> (fault injection). episodes:
    episodes to finish over all instances (quintet/world/episodes; 0 runs
    until stopped). window: the summary's means are over the last `window`
    episodes to finish. raters: people in the raters daemon's population
    (each with a key rater-<id>, quintetctl keygen --raters), of which the
    fraction malicious_raters is malicious in the way `malice` says
    (inverted, extreme, colluding); comparisons: the scorers' total budget
    of comparisons asked, per_tick: at most per tick; quantile: q of their
    majority judgment. aggregation, pre_aggregation: the aggregators' rule
    (a name of `quintetctl aggregations`; None: the daemon's default).
    metrics: every daemon serves /metrics (quintet/metrics_bind; the
    dashboard implies it), the URLs under "metrics" in endpoints.json.
    daemon_prefix: a command every daemon is started under (its command
    line appended; "{name}" in an argument becomes the replica's name,
    e.g. ["valgrind", "--tool=callgrind",
    "--callgrind-out-file=DIR/{name}.out"]); a placement's prefix, if any,
    comes first. stop_grace_s: how long stop() waits after SIGTERM before
    SIGKILL (a daemon under valgrind takes longer to exit).
    role_sections and overrides are merged last."""

    def __init__(self, build_dir="build", state_dir="state", batch=DEFAULT_BATCH,
                 replicas=DEFAULT_REPLICAS, faults=None, seed=DEFAULT_SEED,
                 reward_source="pipeline", episodes=DEFAULT_EPISODES,
                 env=None, variant=None, without=None, tamper=None, sensors=None,
                 window=DEFAULT_WINDOW, overrides=None, role_sections=None,
                 byzantine=None, dashboard=False, placement=None, raters=DEFAULT_RATERS,
                 malicious_raters=DEFAULT_MALICIOUS, malice=DEFAULT_MALICE,
                 comparisons=DEFAULT_COMPARISONS, quantile=DEFAULT_QUANTILE,
                 per_tick=DEFAULT_PER_TICK, aggregation=None, pre_aggregation=None,
                 metrics=False, daemon_prefix=None, stop_grace_s=5.0):
        if replicas < 1:
            raise ValueError("replicas must be >= 1")
        if reward_source not in ("pipeline", "env"):
            raise ValueError("reward_source is pipeline or env")
        if int(episodes) < 0 or int(window) < 1:
            raise ValueError("episodes must be >= 0 (0: until stopped), window >= 1")
        self.build_dir = os.path.abspath(build_dir)
        self.state_dir = os.path.abspath(state_dir)
        self.batch = int(batch)
        self.replicas = int(replicas)
        self.faults = (self.replicas - 1) // 2 if faults is None else int(faults)
        if self.replicas < 2 * self.faults + 1:
            raise ValueError("%d replicas cannot tolerate %d faults (n >= 2f+1)"
                             % (self.replicas, self.faults))
        self.seed = int(seed)
        self.reward_source = reward_source
        self.episodes = int(episodes)
        self.window = int(window)
        envs = list_envs(self.build_dir)
        self.env = env or envs[0]
        if self.env not in envs:
            raise ValueError("no environment %r (quintetctl envs: %s)" % (self.env, ", ".join(envs)))
        self.declaration = describe_env(self.build_dir, self.env, variant or None)
        self.variant = variant or ""
        self.without = without or ""
        self.tamper = tamper or ""
        if self.tamper and self.tamper not in self.declaration.get("tamper_styles", []):
            raise ValueError("%s has no tamper style %r (%s)" % (
                self.env, self.tamper, ", ".join(self.declaration.get("tamper_styles", []))
                or "it declares none"))
        self.sensors = collections.OrderedDict(sensors or {})
        declared = [s["name"] for s in self.declaration["sensors"]]
        for name, mode in self.sensors.items():
            if name not in declared or mode not in SENSOR_MODES:
                raise ValueError("sensor %s=%s: expected a sensor of %s (%s) = %s"
                                 % (name, mode, self.env, ", ".join(declared),
                                    " | ".join(SENSOR_MODES)))
        self.raters = int(raters)
        self.malicious_raters = float(malicious_raters)
        self.malice = malice
        self.comparisons = int(comparisons)
        self.quantile = float(quantile)
        self.per_tick = int(per_tick)
        if not 1 <= self.raters <= 256:
            raise ValueError("raters is 1..256")
        if not 0 <= self.malicious_raters <= 1:
            raise ValueError("malicious_raters is a fraction in [0, 1]")
        if self.malice not in MALICES:
            raise ValueError("malice is one of %s" % ", ".join(MALICES))
        if self.comparisons < 0 or not 0 <= self.per_tick <= 64:
            raise ValueError("comparisons must be >= 0, per_tick in 0..64")
        if not 0 < self.quantile < 1:
            raise ValueError("quantile is in (0, 1)")
        # the aggregators' rule (quintet/aggregator/aggregation, pre_aggregation):
        # None leaves the daemon's default; a name the binary's table does not
        # hold is refused here, with the table's names
        self.aggregation = aggregation or ""
        self.pre_aggregation = pre_aggregation or ""
        if self.aggregation or self.pre_aggregation:
            table = list_aggregations(self.build_dir)
            for key, value in (("aggregation", self.aggregation),
                               ("pre_aggregation", self.pre_aggregation)):
                if value and value not in table[key]:
                    raise ValueError("%s %r: expected one of %s (quintetctl aggregations)"
                                     % (key, value, ", ".join(table[key])))
        # overrides: {"<role>" or "<role>-<r>": {key: value | {nested}}},
        # merged into that replica's `quintet` section
        self.overrides = overrides or {}
        # byzantine: {(role, replica): mode}: those replicas run with
        # --byzantine MODE (qt_byzantine: value attacks, protocol faults)
        self.byzantine = {}
        for (b_role, b_replica), mode in (byzantine or {}).items():
            if b_role not in ROLES or not 1 <= int(b_replica) <= (1 if b_role in SINGLE else self.replicas):
                raise ValueError("--byzantine: no replica %s-%s" % (b_role, b_replica))
            self.byzantine[(b_role, int(b_replica))] = mode
        self.role_sections = deep_merge(ROLE_SECTIONS, role_sections or {})
        # placement: {(role, replica): (address, command prefix)}: that replica
        # binds (bind, control_bind, metrics_bind) on `address` instead of
        # 127.0.0.1 and is started as prefix + its command line, e.g.
        # ("10.231.1.3", ["ip", "netns", "exec", "ns3"]) (tests/ops/test_netns.py)
        self.placement = dict(placement or {})
        self.pb2 = load_pb2(self.build_dir)
        self.replica = {}           # (role, r) -> Replica
        self.context = None
        self.sub = None
        self.verifier = None
        self.progress = Progress(self.batch)
        self.started_at = None
        self.finished_at = None
        # dashboard: also run quintet-relay, the dashboard endpoint (reward + eval)
        self.dashboard = dashboard
        self.metrics = bool(metrics or dashboard)
        self.daemon_prefix = list(daemon_prefix or [])
        self.stop_grace_s = float(stop_grace_s)
        self.relay = None
        self.strays_stopped = []    # [(name, pid)] others restarted, stopped by stop()
        self.strays_left = []       # ... and those stop() could not stop
        _live.add(self)

    def sim_command(self, reward_source=None, episodes=None, window=None):
        """The quintet-sim command line of this run's logic in one process
        (the figures honest daemons reproduce exactly)."""
        command = [sim_path(self.build_dir), "--env", self.env,
                   "--episodes", str(episodes or self.episodes), "--batch", str(self.batch),
                   "--seed", str(self.seed), "--reward-source", reward_source or self.reward_source,
                   "--window", str(window or self.window), "--json", "--quiet"]
        for flag, value in (("--variant", self.variant), ("--tamper", self.tamper),
                            ("--without", self.without)):
            if value:
                command += [flag, value]
        for name, mode in self.sensors.items():
            command += ["--sensor", "%s=%s" % (name, mode)]
        command += ["--raters", str(self.raters), "--malicious-raters", repr(self.malicious_raters),
                    "--malice", self.malice, "--comparisons", str(self.comparisons),
                    "--quantile", repr(self.quantile), "--per-tick", str(self.per_tick)]
        return command

    # -- topology -----------------------------------------------------------
    def count(self, role):
        return 1 if role in SINGLE else self.replicas

    def replicas_of(self, role):
        return [self.replica[(role, r)] for r in range(1, self.count(role) + 1)]

    def endpoints(self, role):
        return [rep.endpoint for rep in self.replicas_of(role)]

    def path(self, *parts):
        return os.path.join(self.state_dir, *parts)

    # -- setup --------------------------------------------------------------
    def setup(self):
        """Fresh state dir, keys, ports, configs, endpoints.json."""
        for role in ROLES:
            if not os.access(daemon_path(self.build_dir, role), os.X_OK):
                raise DeploymentError("%s is not built (ninja -C %s)"
                                      % (daemon_path(self.build_dir, role), self.build_dir))
        os.makedirs(self.state_dir, exist_ok=True)
        for name in ("keys", "trust", "etc", "logs", "run", "endpoints.json", "summary.json"):
            target = self.path(name)
            if os.path.isdir(target) and not os.path.islink(target):
                shutil.rmtree(target)
            elif os.path.lexists(target):
                os.unlink(target)
        ctl = quintetctl_path(self.build_dir)
        result = subprocess.run([ctl, "keygen", "--dir", self.state_dir,
                                 "--replicas", str(self.replicas), "--raters", str(self.raters)],
                                stdout=subprocess.PIPE, stderr=subprocess.STDOUT, text=True)
        if result.returncode != 0:
            raise DeploymentError("quintetctl keygen failed (%d): %s"
                                  % (result.returncode, result.stdout.strip()))
        for name in ("etc", "logs", "run"):
            os.makedirs(self.path(name), exist_ok=True)
        identities = [(role, r) for role in ROLES for r in range(1, self.count(role) + 1)]
        # with metrics (the dashboard), every daemon also serves /metrics (quintet/metrics_bind)
        ports = free_ports(len(identities) * (2 if self.metrics else 1))
        # every daemon answers quintetctl status on a control socket (quintet/control_bind)
        self.control_port = dict(zip(identities, free_ports(len(identities), avoid=ports)))
        self.metrics_port = dict(zip(identities, ports[len(identities):]))
        for (role, r), port in zip(identities, ports):
            name = "%s-%d" % (role, r)
            self.replica[(role, r)] = Replica(role, r, port, self.path("etc", name + ".conf"),
                                              self.path("logs", name + ".log"),
                                              self.path("run", name),
                                              self.placement.get((role, r), ("127.0.0.1",))[0])
        for (role, r) in identities:
            rep = self.replica[(role, r)]
            with open(rep.config_path, "w") as f:
                f.write(self.config_text(role, r))
        with open(self.path("endpoints.json"), "w") as f:
            endpoints = {role: self.endpoints(role) for role in ROLES}
            if self.metrics:
                endpoints["metrics"] = {"%s-%d" % identity: "http://%s:%d/metrics"
                                        % (self.replica[identity].address, port)
                                        for identity, port in self.metrics_port.items()}
            if self.dashboard:
                self.relay = Relay(self.path("logs", "relay.log"))
                endpoints["dashboard"] = [self.relay.endpoint]
                endpoints["metrics"]["relay"] = "http://%s/metrics" % self.relay.metrics
            endpoints["control"] = {"%s-%d" % identity: "tcp://%s:%d"
                                    % (self.replica[identity].address, port)
                                    for identity, port in self.control_port.items()}
            json.dump(endpoints, f, indent=2)
            f.write("\n")
        self.trust = TrustStore(self.path("trust"))
        self.verifier = Verifier(self.pb2, self.trust, self.batch)

    def role_section(self, role):
        section = collections.OrderedDict()
        if role == "world":
            section["episodes"] = self.episodes
            if self.tamper:
                section["tamper"] = self.tamper
            if self.sensors:
                section["sensor"] = collections.OrderedDict(self.sensors)
        if role == "scorer":
            # how to learn, never what is wanted (that comes from judgments)
            section["quantile"] = self.quantile
            section["raters"] = self.raters
            section["comparisons"] = self.comparisons
            section["per_tick"] = self.per_tick
        if role == "raters":
            section["raters"] = self.raters
            section["malicious"] = self.malicious_raters
            section["malice"] = self.malice
            section["key_dir"] = self.path("keys")
        if role == "actor":
            section["reward_source"] = self.reward_source
        if role == "aggregator":
            if self.aggregation:
                section["aggregation"] = self.aggregation
            if self.pre_aggregation:
                section["pre_aggregation"] = self.pre_aggregation
        section = deep_merge(section, self.role_sections.get(role, {}))
        if role == "actor":
            section["reward_source"] = self.reward_source
        return section

    def config_tree(self, role, r):
        rep = self.replica[(role, r)]
        tree = collections.OrderedDict()
        tree["role"] = role
        tree["replica"] = r
        tree["batch"] = self.batch
        tree["seed"] = self.seed
        tree["env"] = self.env
        tree["env_variant"] = self.variant
        tree["env_without"] = self.without
        tree["secret_key"] = self.path("keys", rep.name + ".key")
        tree["trust_dir"] = self.path("trust")
        tree["state_dir"] = rep.run_dir
        tree["bind"] = rep.endpoint
        if (role, r) in getattr(self, "control_port", {}):
            tree["control_bind"] = "tcp://%s:%d" % (rep.address, self.control_port[(role, r)])
        if (role, r) in getattr(self, "metrics_port", {}):
            tree["metrics_bind"] = "%s:%d" % (rep.address, self.metrics_port[(role, r)])
        upstream = collections.OrderedDict()
        for up_role, _topic in UPSTREAMS[role]:
            section = collections.OrderedDict()
            section["faults"] = 0 if up_role in SINGLE else self.faults
            for i, endpoint in enumerate(self.endpoints(up_role), 1):
                section[str(i)] = endpoint
            upstream[up_role] = section
        tree["upstream"] = upstream
        # every replica of a replicated role knows its siblings' control
        # endpoints: a stateful one catches up from their state (qt_catchup)
        if role not in SINGLE and all((role, i) in getattr(self, "control_port", {})
                                      for i in range(1, self.count(role) + 1)):
            tree["peers"] = collections.OrderedDict(
                (str(i), "tcp://%s:%d" % (self.replica[(role, i)].address,
                                          self.control_port[(role, i)]))
                for i in range(1, self.count(role) + 1))
        section = self.role_section(role)
        if section:
            tree[role] = section
        tree = deep_merge(tree, self.overrides.get(role))
        tree = deep_merge(tree, self.overrides.get(rep.name))
        return tree

    def config_text(self, role, r):
        return render_zpl("quintet", self.config_tree(role, r))

    # -- processes ----------------------------------------------------------
    def _spawn(self, rep):
        if rep.log_file:
            rep.log_file.close()
        rep.log_file = open(rep.log_path, "ab")
        rep.expected_exit = False
        prefix = list(self.placement.get((rep.role, rep.replica), (None, []))[1])
        prefix += [arg.replace("{name}", rep.name) for arg in self.daemon_prefix]
        rep.process = subprocess.Popen(
            prefix + [daemon_path(self.build_dir, rep.role), "--config", rep.config_path]
            + (["--byzantine", self.byzantine[(rep.role, rep.replica)]]
               if (rep.role, rep.replica) in self.byzantine else []),
            stdin=subprocess.DEVNULL, stdout=rep.log_file, stderr=subprocess.STDOUT,
            start_new_session=True, preexec_fn=set_pdeathsig, close_fds=True)

    def _check_started(self, reps):
        deadline = time.monotonic() + START_GRACE_S
        while time.monotonic() < deadline:
            if any(not rep.alive() for rep in reps):
                break
            time.sleep(0.05)
        failed = [rep for rep in reps if not rep.alive()]
        if failed:
            report = []
            for rep in failed:
                report.append("%s exited with status %s at start; %s ends with:\n%s"
                              % (rep.name, rep.process.returncode, rep.log_path,
                                 tail(rep.log_path)))
            self.stop()
            raise DeploymentError("\n\n".join(report))

    def subscribe(self):
        """SUB on the world's eval topic and the aggregators' reward topic.
        Connected before the daemons start, so nothing is missed."""
        if self.sub is not None:
            return
        self.context = zmq.Context()
        self.sub = self.context.socket(zmq.SUB)
        self.sub.setsockopt(zmq.LINGER, 0)
        self.sub.setsockopt(zmq.RCVHWM, 100000)
        self.sub.setsockopt(zmq.MAXMSGSIZE, MESSAGE_SIZE_CAP * 2)
        self.sub.setsockopt(zmq.SUBSCRIBE, b"eval")
        self.sub.setsockopt(zmq.SUBSCRIBE, b"reward")
        for endpoint in self.endpoints("world") + self.endpoints("aggregator"):
            self.sub.connect(endpoint)

    def start(self):
        """Starts every replica, world last (it is the tick source)."""
        self.subscribe()
        if self.relay is not None:
            self.relay.start(self)
        reps = [rep for role in reversed(ROLES) for rep in self.replicas_of(role)]
        self.started_at = time.monotonic()
        try:
            for rep in reps:
                self._spawn(rep)
        except Exception:
            self.stop()
            raise
        self._check_started(reps)
        self.progress.last_change = time.monotonic()

    def kill(self, role, replica, sig=signal.SIGKILL):
        rep = self.replica[(role, replica)]
        if rep.alive():
            rep.expected_exit = True
            os.killpg(rep.process.pid, sig)
            if sig in (signal.SIGKILL, signal.SIGTERM, signal.SIGINT):
                try:
                    rep.process.wait(timeout=5)
                except subprocess.TimeoutExpired:
                    os.killpg(rep.process.pid, signal.SIGKILL)
                    rep.process.wait()

    def restart(self, role, replica, byzantine=False):
        """Same config: same port, key and state dir. byzantine: a mode to
        restart it lying in, None to restart it honest, False: as before."""
        rep = self.replica[(role, replica)]
        if byzantine is None:
            self.byzantine.pop((role, replica), None)
        elif byzantine:
            self.byzantine[(role, replica)] = byzantine
        if rep.alive():
            self.kill(role, replica, signal.SIGTERM)
        self._spawn(rep)
        self._check_started([rep])

    def strays(self):
        """Replicas of this deployment that are not our children: processes
        running a daemon with --config in our etc/ (tools/faultinject
        restarts replicas as its own processes). [(name, pid)]."""
        ours = {rep.process.pid for rep in self.replica.values()
                if rep.process is not None and rep.alive()}
        configs = {rep.config_path.encode(): rep.name for rep in self.replica.values()}
        found = []
        for entry in os.listdir("/proc"):
            if not entry.isdigit() or int(entry) in ours or int(entry) == os.getpid():
                continue
            try:
                with open("/proc/%s/cmdline" % entry, "rb") as f:
                    argv = f.read().split(b"\0")
                with open("/proc/%s/stat" % entry, "rb") as f:
                    zombie = f.read().rsplit(b")", 1)[-1].split()[0] == b"Z"
            except (OSError, IndexError):
                continue
            if zombie or not argv or not os.path.basename(argv[0]).startswith(b"quintet-"):
                continue
            for i, arg in enumerate(argv[:-1]):
                if arg == b"--config" and argv[i + 1] in configs:
                    found.append((configs[argv[i + 1]], int(entry)))
        return sorted(found)

    def _stop_strays(self):
        """SIGTERM to strays, up to 5 s, then SIGKILL; what remains (not ours
        to signal, say) is left in self.strays_left."""
        strays = self.strays()
        if not strays:
            self.strays_left = []
            return
        for sig in (signal.SIGCONT, signal.SIGTERM):     # a stalled one, too
            for _name, pid in strays:
                try:
                    os.kill(pid, sig)
                except OSError:
                    pass
        deadline = time.monotonic() + 5
        while strays and time.monotonic() < deadline and self.strays():
            time.sleep(0.05)
        for _name, pid in self.strays():
            try:
                os.kill(pid, signal.SIGKILL)
            except OSError:
                pass
        time.sleep(0.05)
        self.strays_left = self.strays()
        self.strays_stopped += [s for s in strays if s not in self.strays_left]

    def stop(self):
        """SIGTERM to every replica, up to stop_grace_s (5 s), then SIGKILL; then the same
        to replicas of this deployment that others restarted (strays()).
        Idempotent."""
        reps = [rep for rep in self.replica.values() if rep.process is not None]
        for rep in reps:
            if rep.alive():
                rep.expected_exit = True
                try:
                    os.killpg(rep.process.pid, signal.SIGTERM)
                except ProcessLookupError:
                    pass
        deadline = time.monotonic() + self.stop_grace_s
        for rep in reps:
            try:
                rep.process.wait(timeout=max(0.01, deadline - time.monotonic()))
            except subprocess.TimeoutExpired:
                pass
        for rep in reps:
            if rep.alive():
                try:
                    os.killpg(rep.process.pid, signal.SIGKILL)
                except ProcessLookupError:
                    pass
                rep.process.wait()
            if rep.log_file:
                rep.log_file.close()
                rep.log_file = None
        if self.started_at is not None:
            self._stop_strays()
        if self.relay is not None:
            self.relay.stop()
        if self.sub is not None:
            self.sub.close(0)
            self.sub = None
        if self.context is not None:
            self.context.term()
            self.context = None
        if self.started_at is not None and self.finished_at is None:
            self.finished_at = time.monotonic()

    def __enter__(self):
        return self

    def __exit__(self, *exc):
        self.stop()
        return False

    def dead(self):
        """Replicas that exited without being asked to."""
        return [rep for rep in self.replica.values()
                if rep.process is not None and not rep.alive() and not rep.expected_exit]

    def log_tails(self, lines=5, reps=None):
        out = []
        for rep in reps if reps is not None else self.replica.values():
            out.append("--- %s (%s)\n%s" % (rep.name, rep.log_path, tail(rep.log_path, lines)))
        return "\n".join(out)

    # -- monitoring ---------------------------------------------------------
    def pump(self, timeout_s):
        """Receives and verifies what arrives within timeout_s; returns the
        number of messages accepted."""
        accepted = 0
        deadline = time.monotonic() + timeout_s
        poller = zmq.Poller()
        poller.register(self.sub, zmq.POLLIN)
        while True:
            left = deadline - time.monotonic()
            if left > 0:
                poller.poll(int(left * 1000) + 1)
            drained = 0
            while drained < 10000:
                try:
                    frames = self.sub.recv_multipart(zmq.NOBLOCK)
                except zmq.Again:
                    break
                drained += 1
                opened = self.verifier.open(frames)
                if opened is None:
                    continue
                topic, envelope, payload = opened
                if topic == "eval":
                    self.progress.add_eval(envelope, payload)
                else:
                    self.progress.add_reward(envelope, payload)
                accepted += 1
            if time.monotonic() >= deadline:
                return accepted

    def elapsed(self):
        if self.started_at is None:
            return 0.0
        return (self.finished_at or time.monotonic()) - self.started_at

    def complete(self):
        """Every episode's eval received and every finished episode's done
        reward seen (never, for a deployment that runs until stopped)."""
        p = self.progress
        return self.episodes > 0 and p.episodes_done >= self.episodes and p.rewards_closed()

    def _where(self):
        p = self.progress
        return "tick %d, %d/%s episodes" % (p.ticks, p.episodes_done,
                                            self.episodes if self.episodes else "unbounded")

    def run_to_completion(self, on_progress=None, interval=2.0, stall_timeout=60.0,
                          timeout=None, tail_grace=5.0, before_stop=None):
        """Pumps until every episode has its eval (and its done reward),
        calling on_progress(self) every `interval` s. Raises DeploymentError
        when nothing progresses for stall_timeout s or after timeout s. Once
        finished, calls before_stop(self) (if given: the daemons still run,
        e.g. to scrape their /metrics), then stops the deployment and
        returns summary()."""
        began = time.monotonic()
        next_report = began + interval
        evals_complete_at = None
        warned = set()
        try:
            while True:
                self.pump(min(0.25, interval))
                now = time.monotonic()
                for rep in self.dead():
                    if rep.name not in warned:
                        warned.add(rep.name)
                        sys.stderr.write("warning: %s exited with status %s:\n%s\n"
                                         % (rep.name, rep.process.returncode,
                                            tail(rep.log_path, 8)))
                if self.complete():
                    break
                if self.episodes and self.progress.episodes_done >= self.episodes:
                    # the world is done; the last rewards are still in flight
                    evals_complete_at = evals_complete_at or now
                    if now - evals_complete_at > tail_grace:
                        break
                if now - self.progress.last_change > stall_timeout:
                    raise DeploymentError(
                        "no progress for %.0f s (%s); last log lines:\n%s"
                        % (stall_timeout, self._where(), self.log_tails()))
                if timeout is not None and now - began > timeout:
                    raise DeploymentError(
                        "not finished after %.0f s (%s); last log lines:\n%s"
                        % (timeout, self._where(), self.log_tails()))
                if on_progress and now >= next_report:
                    on_progress(self)
                    next_report = now + interval
            self.finished_at = time.monotonic()
            if before_stop:
                before_stop(self)
        finally:
            self.finished_at = self.finished_at or time.monotonic()
            self.stop()
        return self.summary()

    def summary(self):
        """The run's figures. performance, observed_return, pipeline_return:
        means over the last `window` finished episodes (quintet-sim's JSON
        keys and order, unrounded); mean_*_last100: the same over 100,
        rounded to 3 decimals."""
        p = self.progress
        elapsed = self.elapsed()
        ticks = p.ticks
        verifier = self.verifier
        return collections.OrderedDict([
            ("env", self.env),
            ("variant", self.declaration.get("variant", self.variant)),
            # the world's tamper style: the one given, else the env's default (its first)
            ("tamper", self.tamper or (self.declaration.get("tamper_styles") or [""])[0]),
            ("without", self.without),
            ("sensors", dict(self.sensors)),
            ("episodes", p.episodes()),
            ("episodes_planned", self.episodes),
            ("ticks", ticks),
            ("steps", p.steps),
            ("batch", self.batch),
            ("replicas", self.replicas),
            ("faults", self.faults),
            ("seed", self.seed),
            ("reward_source", self.reward_source),
            ("aggregation", self.aggregation or None),
            ("pre_aggregation", self.pre_aggregation or None),
            ("elapsed_seconds", round(elapsed, 3)),
            ("steps_per_second", round(p.steps / elapsed, 1) if elapsed > 0 else 0.0),
            ("ticks_per_second", round(ticks / elapsed, 1) if elapsed > 0 else 0.0),
            ("window", self.window),
            ("performance", _finite(p.performance_last(self.window))),
            ("observed_return", _finite(p.observed_last(self.window))),
            ("pipeline_return", _finite(p.pipeline_last(self.window))),
            ("mean_observed_return_last100", _round(p.observed_last())),
            ("mean_pipeline_return_last100", _round(p.pipeline_last())),
            ("mean_performance_last100", _round(p.performance_last())),
            ("eval_gaps", p.eval_gaps),
            ("rewards_closed", p.rewards_closed()),
            ("messages_verified", verifier.verified if verifier else 0),
            ("messages_rejected", verifier.rejected_total if verifier else 0),
            ("rejected_by_cause", dict(verifier.rejected) if verifier else {}),
            ("reward_mismatches", p.reward_mismatches),
            ("state_dir", self.state_dir),
        ])

    def write_summary(self, summary=None):
        summary = summary or self.summary()
        path = self.path("summary.json")
        tmp = path + ".tmp"
        with open(tmp, "w") as f:
            json.dump(summary, f, indent=2, allow_nan=False, default=str)
            f.write("\n")
        os.replace(tmp, path)
        return path


def _finite(x):
    return None if x is None or not math.isfinite(x) else x


def _round(x, digits=3):
    return None if x is None or not math.isfinite(x) else round(x, digits)
