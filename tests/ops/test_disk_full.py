"""A collector whose durable log can no longer grow (disk full).

collector-2 of a loopback deployment (world + 3 replicas of every role,
batch 4) runs with a file size limit (RLIMIT_FSIZE, SIGXFSZ ignored), so
once its SQLite log reaches the limit every append fails with EFBIG, as
it would with ENOSPC on a full disk. A fake systemd ($NOTIFY_SOCKET,
WATCHDOG_USEC = 2 s) receives every daemon's notifications. Checks:

  * the collector stops publishing (what is not on disk is not published)
    and reports it: STATUS= and quintetctl status say "degraded", and
    WATCHDOG=1 stops (so systemd would restart it), while collector-1
    keeps pinging;
  * /metrics counts the failures (quintet_tick_failures_total
    {cause="durable-log"}) and quintet_last_tick stays at the last tick it
    published, behind collector-1's, while the failures go on;
  * the failure is logged rate-limited (one line per 10 s), not per tick;
  * the pipeline goes on with the other two collectors;
  * collector-1, configured with retain_rows = 64, holds at most 64 rows of
    the thousand and more it logged, the newest ones; its /metrics say so
    (quintet_durable_log_rows, _bytes, _pruned_total {log="readings"}), and
    `quintetctl log` lists them, beside the running collector and after
    (the same indexes and payload sizes as SQLite's rows).
"""
import json
import os
import re
import sqlite3
import subprocess
import sys
import time
import urllib.request

HERE = os.path.dirname(os.path.abspath(__file__))
sys.path.insert(0, os.path.join(os.path.dirname(HERE), "integration"))
import itest  # noqa: E402
from test_notify import FakeSystemd  # noqa: E402

WATCHDOG_USEC = 2000000
FSIZE_BLOCKS = 512              # ulimit -f: 512-byte blocks, 256 KiB
FAIL_TIMEOUT_S = 60.0           # until the log is full and appends fail
SETTLE_S = 3.0                  # > the 2 s watchdog window
OBSERVE_S = 3.0
LOG_INTERVAL_S = 10.0           # the stage's rate limit
LOG_LINE = b"durable log append failed"
RETAIN_ROWS = 64
RETAIN_LOGGED = 10 * RETAIN_ROWS


def scrape(port):
    with urllib.request.urlopen("http://127.0.0.1:%d/metrics" % port, timeout=10) as r:
        return r.read().decode()


def sample(page, name, labels=""):
    match = re.search(r"^%s%s (\S+)$" % (re.escape(name), re.escape(labels)), page, re.M)
    return float(match.group(1)) if match else None


def main():
    args = itest.args("a collector whose durable log cannot grow")
    from quintet import ports as qports, deploy as qd
    failures = []

    def check(condition, message):
        itest.check(condition, message, failures)

    ctl = os.path.join(args.build_dir, "tools", "quintetctl", "quintetctl")
    holder, state = itest.state_dir("disk-full", args.keep)
    systemd = FakeSystemd(os.path.join(state, "notify.sock"))
    saved = {k: os.environ.get(k) for k in ("NOTIFY_SOCKET", "WATCHDOG_USEC", "WATCHDOG_PID")}
    ports = qports.free_ports(2)
    # The limit applies to every file the process writes beyond it; SIGXFSZ
    # ignored (inherited across exec) turns the signal into EFBIG
    limited = ["sh", "-c", 'trap "" XFSZ; ulimit -f %d; exec "$@"' % FSIZE_BLOCKS, "sh"]
    d = qd.Deployment(build_dir=args.build_dir, state_dir=os.path.join(state, "d"), batch=4,
                      replicas=3, episodes=4 * 100000, seed=1,
                      placement={("collector", 2): ("127.0.0.1", limited)},
                      overrides={"collector-1": {"metrics_bind": "127.0.0.1:%d" % ports[0],
                                                 "collector": {"retain_rows": RETAIN_ROWS}},
                                 "collector-2": {"metrics_bind": "127.0.0.1:%d" % ports[1]}})
    try:
        d.setup()
        os.environ["NOTIFY_SOCKET"] = systemd.path
        os.environ["WATCHDOG_USEC"] = str(WATCHDOG_USEC)
        os.environ.pop("WATCHDOG_PID", None)
        d.start()
        started = time.monotonic()
        full, healthy = d.replica[("collector", 2)], d.replica[("collector", 1)]
        deadline = time.monotonic() + FAIL_TIMEOUT_S
        failed = None
        while time.monotonic() < deadline:
            d.pump(0.5)
            failed = sample(scrape(ports[1]), "quintet_tick_failures_total", '{cause="durable-log"}')
            if failed:
                break
        check(bool(failed), "collector-2's appends fail once its log reaches the limit (%s)" % failed)
        d.pump(SETTLE_S)
        since = time.monotonic()
        before = scrape(ports[1])
        d.pump(OBSERVE_S)
        after = scrape(ports[1])
        other = scrape(ports[0])

        pings = systemd.of(full.process.pid, "WATCHDOG=1", since)
        others = systemd.of(healthy.process.pid, "WATCHDOG=1", since)
        statuses = systemd.of(full.process.pid, "STATUS=", since)
        last_status = statuses[-1][1] if statuses else ""
        print("     collector-2: %d WATCHDOG=1 in %.0f s (collector-1: %d); %s"
              % (len(pings), OBSERVE_S, len(others), last_status))
        check(not pings and others, "collector-2 stops feeding the watchdog, collector-1 does not")
        check(last_status.startswith("STATUS=degraded"), "STATUS= says degraded")
        result = subprocess.run([ctl, "status", "--state-dir", d.state_dir, "--json", "--timeout", "3000"],
                                stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True, timeout=30)
        rows = {row["name"]: row for row in json.loads(result.stdout)} if result.stdout.strip() else {}
        check(rows.get("collector-2", {}).get("state", "").startswith("degraded")
              and rows.get("collector-1", {}).get("state") == "running",
              "quintetctl status: collector-2 %r, collector-1 %r"
              % (rows.get("collector-2", {}).get("state"), rows.get("collector-1", {}).get("state")))

        counts = [sample(page, "quintet_tick_failures_total", '{cause="durable-log"}') or 0
                  for page in (before, after)]
        last = [sample(page, "quintet_last_tick") for page in (before, after)]
        published = [sample(page, "quintet_messages_published_total") for page in (before, after)]
        other_last = sample(other, "quintet_last_tick")
        print("     collector-2 /metrics: failures %s, last tick %s, published %s; collector-1 last tick %s"
              % (counts, last, published, other_last))
        check(counts[1] > counts[0], "the failures are counted (quintet_tick_failures_total)")
        check(last[0] is not None and last[0] == last[1] and other_last is not None
              and other_last > last[1], "quintet_last_tick shows only what was published")
        check(published[0] == published[1], "nothing is published (nor re-sent) meanwhile")

        with open(full.log_path, "rb") as f:
            lines = f.read().count(LOG_LINE)
        allowed = 2 + int((time.monotonic() - started) / LOG_INTERVAL_S)
        print("     %d log lines about failed appends (at most %d allowed)" % (lines, allowed))
        check(0 < lines <= allowed, "the failure is logged rate-limited")
        check(not d.dead(), "no process died; the pipeline goes on (ticks %d)" % d.progress.ticks)

        # enough rows logged for retention to have pruned several times
        deadline = time.monotonic() + FAIL_TIMEOUT_S
        while (time.monotonic() < deadline
               and (sample(scrape(ports[0]), "quintet_last_tick") or 0) < RETAIN_LOGGED):
            d.pump(0.5)
        page = scrape(ports[0])
        held, held_bytes, pruned = (sample(page, "quintet_durable_log_" + name, '{log="readings"}')
                                    for name in ("rows", "bytes", "pruned_total"))
        log_path = os.path.join(healthy.run_dir, "readings.sqlite")

        def ctl_log(*options):
            result = subprocess.run([ctl, "log", log_path, "--json"] + list(options),
                                    stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True,
                                    timeout=30)
            return result.returncode, json.loads(result.stdout) if result.returncode == 0 else []
        live_rc, live = ctl_log()
        d.stop()
        db = sqlite3.connect(log_path)
        rows, oldest, newest, logged = db.execute(
            "SELECT count(*), min(id), max(id), (SELECT seq FROM sqlite_sequence WHERE name = 'entry') "
            "FROM entry").fetchone()
        sizes = db.execute("SELECT id, tick, length(data) FROM entry ORDER BY id").fetchall()
        db.close()
        print("     collector-1 (retain_rows = %d): %d rows held, ids %s..%s of %s logged"
              % (RETAIN_ROWS, rows, oldest, newest, logged))
        check(0 < rows <= RETAIN_ROWS and logged >= RETAIN_LOGGED and newest == logged
              and newest - oldest + 1 == rows, "the durable log is bounded, the newest rows kept")
        print("     collector-1 /metrics: durable log rows %s, bytes %s, pruned %s"
              % (held, held_bytes, pruned))
        check(held is not None and 0 < held <= RETAIN_ROWS and held_bytes > 0
              and pruned > 0 and held + pruned <= logged,
              "/metrics: the durable log's rows (within the bound), bytes and rows pruned")
        rc, listed = ctl_log()
        _rc, last = ctl_log("--from", str(newest), "--count", "1")
        print("     quintetctl log: %d rows beside the running collector (exit %d), %d after"
              % (len(live), live_rc, len(listed)))
        check(live_rc == 0 and 0 < len(live) <= RETAIN_ROWS,
              "quintetctl log reads the log beside the running collector")
        check(rc == 0 and [(r["index"], r["tick"], r["bytes"]) for r in listed] == sizes
              and [r["index"] for r in last] == [newest],
              "quintetctl log lists SQLite's rows: index, tick, payload bytes; --from, --count")
    finally:
        d.stop()
        systemd.close()
        for key, value in saved.items():
            if value is None:
                os.environ.pop(key, None)
            else:
                os.environ[key] = value
        if holder:
            holder.cleanup()
    if failures:
        print("%d check(s) failed" % len(failures))
        return 1
    return 0


if __name__ == "__main__":
    sys.exit(main())
