"""The processes of a deployment: a replica (its endpoint, config, log,
state dir and process) and the dashboard relay; the log tail a failure
report quotes; PR_SET_PDEATHSIG, so that no daemon outlives its launcher.
"""
import ctypes
import os
import signal
import subprocess

from . import topology
from .build import daemon_path
from .ports import free_ports

LOG_TAIL_LINES = 15


def tail(path, lines=LOG_TAIL_LINES):
    try:
        with open(path, "rb") as f:
            f.seek(0, os.SEEK_END)
            size = f.tell()
            f.seek(max(0, size - 64 * 1024))
            text = f.read().decode("utf-8", "replace")
    except OSError as e:
        return "(no log: %s)" % e
    return "\n".join(text.splitlines()[-lines:])


def set_pdeathsig():
    """In the child: die (SIGTERM, a clean stop) when the launcher dies."""
    try:
        libc = ctypes.CDLL("libc.so.6", use_errno=True)
        libc.prctl(1, signal.SIGTERM)   # PR_SET_PDEATHSIG
    except OSError:
        pass


# --------------------------------------------------------------------------
# The deployment


class Replica:
    def __init__(self, role, replica, port, config_path, log_path, run_dir, address="127.0.0.1"):
        self.role = role
        self.replica = replica
        self.port = port
        self.address = address      # what it binds on (placement; loopback by default)
        self.endpoint = "tcp://%s:%d" % (address, port)
        self.config_path = config_path
        self.log_path = log_path
        self.run_dir = run_dir
        self.process = None
        self.log_file = None
        self.expected_exit = False

    @property
    def name(self):
        return "%s-%d" % (self.role, self.replica)

    def alive(self):
        return self.process is not None and self.process.poll() is None


class Relay:
    """quintet-relay (daemons/relay/), the dashboard endpoint: the topics of
    the topology's dashboard line (the aggregators' reward, the world's
    eval, the scorers' score, conflated), verified, re-published untouched
    on one XPUB with a last-value cache; its counters on /metrics."""

    def __init__(self, log_path):
        port, metrics_port = free_ports(2)
        self.endpoint = "tcp://127.0.0.1:%d" % port
        self.metrics = "127.0.0.1:%d" % metrics_port
        self.log_path = log_path
        self.process = None
        self.log_file = None

    def start(self, d):
        self.log_file = open(self.log_path, "ab")
        command = [daemon_path(d.build_dir, "relay"), "--trust-dir", d.path("trust"),
                   "--bind", self.endpoint, "--batch", str(d.batch),
                   "--metrics-bind", self.metrics]
        # one --ROLE flag per endpoint of each role publishing a dashboard topic
        for role in dict.fromkeys(role for _topic, role in topology.dashboard(topology.read())):
            for endpoint in d.endpoints(role):
                command += ["--" + role, endpoint]
        self.process = subprocess.Popen(command, stdin=subprocess.DEVNULL, stdout=self.log_file,
                                        stderr=subprocess.STDOUT, start_new_session=True,
                                        preexec_fn=set_pdeathsig, close_fds=True)

    def alive(self):
        return self.process is not None and self.process.poll() is None

    def stop(self):
        if self.alive():
            os.killpg(self.process.pid, signal.SIGTERM)
            try:
                self.process.wait(timeout=5)
            except subprocess.TimeoutExpired:
                os.killpg(self.process.pid, signal.SIGKILL)
                self.process.wait()
        if self.log_file:
            self.log_file.close()
            self.log_file = None
