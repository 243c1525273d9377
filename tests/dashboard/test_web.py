#!/usr/bin/python3
"""The web dashboard in a real browser: a deployment with the dashboard
endpoint (rewarder 3 lying, `gaussian`, so the distance chart has something
to show), quintet-dashboard against it, Debian's headless Chromium on the
page, driven over the DevTools protocol (python3-websocket). Asserted from
the page itself (the counters it writes into data-* of <main>): the SSE
stream connected, rewards, proposals and eval records received, 3 rewarder
replicas and 3 aggregator replicas shown, the environment named (from the
eval records) with the episodes finished. A screenshot is kept as
BUILD/meson-logs/dashboard.png. Then SIGTERM: the dashboard exits 0.

What Charlie learned, on absent_supervisor (three declared features), a
budget of 12 comparisons for 20 raters (8 never judge: excluded), scorer 2
lying (`gaussian`: its learned weights and voting rights are noise, so a
page that showed one replica's learning under another's name fails): read
from the page's tables (the text shown and the exact value in data-value),
for every scorer replica the weights of the declared features (names and
order as `quintetctl env` declares them), comparisons learned / asked /
budget, each rater's voting right and the excluded raters are what that
scorer published at the tick the page shows, read here from the scorer's
own score topic (score_tap), not through the relay or the dashboard.

Exits 77 (skipped) when chromium or python3-websocket is not installed.
"""
import base64
import json
import os
import re
import shutil
import signal
import subprocess
import sys
import tempfile
import time
import urllib.request

sys.path.insert(0, os.path.join(os.path.dirname(os.path.dirname(os.path.abspath(__file__))),
                                "integration"))
import itest  # noqa: E402

opts = itest.args(__doc__)
from quintet import deploy as qd  # noqa: E402
import score_tap  # noqa: E402

BUILD = os.path.abspath(opts.build_dir)
DASHBOARD = os.path.join(os.path.abspath(opts.source_dir), "tools", "dashboard",
                         "quintet-dashboard")
SCREENSHOT = os.path.join(BUILD, "meson-logs", "dashboard.png")
CHROMIUM = shutil.which("chromium") or "/usr/bin/chromium"
CHROMIUM_FLAGS = ["--headless", "--no-sandbox", "--disable-gpu", "--disable-quic",
                  "--no-first-run", "--disable-background-networking",
                  "--disable-component-update", "--disable-sync", "--hide-scrollbars",
                  "--remote-allow-origins=*", "--window-size=1280,1800"]
WAIT_S = 40
ENV = "absent_supervisor"
BUDGET, PER_TICK = 12, 4        # of 20 raters: 8 never asked
LYING_SCORER = 2

# What the page's learning tables show, as text and as the exact values
LEARNING_JS = """JSON.stringify((() => {
  const all = q => [...document.querySelectorAll(q)];
  const by = (row) => Object.fromEntries(all('#weights td[data-row="' + row + '"]').map(
    td => [td.dataset.replica, {text: td.textContent, value: JSON.parse(td.dataset.value || 'null')}]));
  return {
    weights: all('#weights td[data-feature]').map(td => ({replica: +td.dataset.replica,
      feature: td.dataset.feature, text: td.textContent, value: JSON.parse(td.dataset.value)})),
    features: all('#weights tbody th').map(th => th.textContent).filter(t => t.startsWith('weight '))
      .map(t => t.slice(7)),
    tick: by('tick'), comparisons: by('comparisons'), excluded: by('excluded'),
    rights: all('#raters td[data-rater]').map(td => ({replica: +td.dataset.replica,
      rater: +td.dataset.rater, text: td.textContent, value: JSON.parse(td.dataset.value),
      excluded: td.classList.contains('excluded')})),
  };
})())"""


def close_to_shown(text, value):
    """The page shows toPrecision(4) of the exact value."""
    try:
        return abs(float(text) - value) <= 5.001e-4 * abs(value) + 1e-300
    except (TypeError, ValueError):
        return False


def check_learning(shown, tap, d, failures):
    declared = [f["name"] for f in d.declaration["features"]]
    itest.check(shown.get("features") == declared, "the page names the declared features %s "
                "(%s)" % (declared, shown.get("features")), failures)
    replicas = sorted(int(r) for r in shown.get("tick", {}))
    itest.check(replicas == list(range(1, d.replicas + 1)),
                "a learning column per scorer replica (%s)" % replicas, failures)
    for r in replicas:
        tick = shown["tick"][str(r)]["value"]
        published = tap.get(r, tick)
        if published is None:
            itest.check(False, "scorer-%d published tick %s (shown)" % (r, tick), failures)
            continue
        want = dict(zip(published["features"], published["weights"]))
        cells = {c["feature"]: c for c in shown["weights"] if c["replica"] == r}
        itest.check(sorted(cells) == sorted(want) and all(
            cells[f]["value"] == w and close_to_shown(cells[f]["text"], w)
            for f, w in want.items()),
            "scorer-%d, tick %d: the weights shown %s are those it published %s"
            % (r, tick, {f: c["text"] for f, c in cells.items()}, want), failures)
        comparisons = [published["comparisons"], published["asked"], published["budget"]]
        itest.check(shown["comparisons"].get(str(r), {}).get("value") == comparisons
                    and published["budget"] == BUDGET,
                    "scorer-%d: comparisons learned / asked / budget %s shown, %s published"
                    % (r, shown["comparisons"].get(str(r), {}).get("text"), comparisons), failures)
        rights = sorted((c for c in shown["rights"] if c["replica"] == r), key=lambda c: c["rater"])
        itest.check([c["value"] for c in rights] == published["voting_rights"]
                    and len(rights) == d.raters
                    and all(abs(float(c["text"]) - c["value"]) <= 5e-3 * abs(c["value"])
                            for c in rights),
                    "scorer-%d: the %d voting rights shown are those published" % (r, d.raters),
                    failures)
        excluded = published["excluded"]
        itest.check(shown["excluded"].get(str(r), {}).get("value") == excluded
                    and [c["rater"] for c in rights if c["excluded"]] == excluded
                    and len(excluded) >= d.raters - published["asked"] > 0,
                    "scorer-%d: the excluded raters shown (%s) are those published %s (at least "
                    "the %d never asked)" % (r, shown["excluded"].get(str(r), {}).get("text"),
                                             excluded, d.raters - published["asked"]), failures)
    # honest replicas agree bit for bit (when the page shows them on the same tick)
    honest = {}
    for c in shown.get("weights", []):
        if c["replica"] != LYING_SCORER:
            honest.setdefault(c["replica"], {})[c["feature"]] = c["value"]
    ticks = {c["value"] for r, c in shown.get("tick", {}).items() if int(r) != LYING_SCORER}
    if len(ticks) == 1:
        itest.check(len({json.dumps(w, sort_keys=True) for w in honest.values()}) == 1,
                    "the honest scorers show the same weights", failures)


class DevTools:
    """The few DevTools protocol calls the test needs, over one page's websocket."""

    def __init__(self, ws_url):
        import websocket
        self.ws = websocket.create_connection(ws_url, timeout=30)
        self.next_id = 0

    def call(self, method, **params):
        self.next_id += 1
        self.ws.send(json.dumps({"id": self.next_id, "method": method, "params": params}))
        while True:
            reply = json.loads(self.ws.recv())
            if reply.get("id") == self.next_id:
                if "error" in reply:
                    raise RuntimeError("%s: %s" % (method, reply["error"]))
                return reply.get("result", {})

    def close(self):
        self.ws.close()


def start_chromium(profile):
    process = subprocess.Popen([CHROMIUM] + CHROMIUM_FLAGS + [
        "--user-data-dir=" + profile, "--remote-debugging-port=0", "about:blank"],
        stdin=subprocess.DEVNULL, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL,
        start_new_session=True)
    port_file = os.path.join(profile, "DevToolsActivePort")
    deadline = time.monotonic() + 30
    while time.monotonic() < deadline and process.poll() is None:
        try:
            with open(port_file) as f:
                port = int(f.readline().strip())
            targets = json.load(urllib.request.urlopen("http://127.0.0.1:%d/json/list" % port,
                                                       timeout=5))
            pages = [t for t in targets if t.get("type") == "page"]
            if pages:
                return process, pages[0]["webSocketDebuggerUrl"]
        except (OSError, ValueError):
            pass
        time.sleep(0.2)
    raise RuntimeError("chromium did not open its DevTools port (exit status %s)"
                       % process.poll())


def stop(process, timeout=5):
    if process is not None and process.poll() is None:
        try:
            os.killpg(process.pid, signal.SIGTERM)
            process.wait(timeout=timeout)
        except subprocess.TimeoutExpired:
            os.killpg(process.pid, signal.SIGKILL)
            process.wait()


def main():
    if not os.access(CHROMIUM, os.X_OK):
        print("SKIP: chromium is not installed (apt-get install chromium; ./run installs it)")
        return 77
    try:
        import websocket  # noqa: F401
    except ImportError:
        print("SKIP: python3-websocket is not installed (./run installs it)")
        return 77
    holder, state = itest.state_dir("web", opts.keep)
    profile = tempfile.mkdtemp(prefix="quintet-chromium-")
    failures = []
    dashboard = browser = devtools = tap = None
    try:
        with qd.Deployment(build_dir=BUILD, state_dir=state, batch=8, episodes=0,
                           dashboard=True, env=ENV, comparisons=BUDGET, per_tick=PER_TICK,
                           byzantine={("rewarder", 3): "gaussian",
                                      ("scorer", LYING_SCORER): "gaussian"}) as d:
            d.setup()
            tap = score_tap.ScoreTap(d)
            d.start()
            d.pump(1.0)
            dashboard = subprocess.Popen(
                [sys.executable, DASHBOARD, "--state-dir", state, "--listen", "127.0.0.1:0",
                 "--proto-dir", os.path.join(BUILD, "proto")],
                stdout=subprocess.PIPE, stderr=subprocess.STDOUT, text=True,
                start_new_session=True)
            line = dashboard.stdout.readline()
            print("     " + line.strip())
            url = line.split()[-1] if "serving http://" in line else None
            itest.check(url is not None, "quintet-dashboard prints the address it serves",
                        failures)
            if url is None:
                return 1
            with urllib.request.urlopen(url, timeout=5) as r:
                page = r.read().decode()
            assets = re.findall(r'(?:src|href)="([^"]*)"', page)
            print("     assets: %s" % ", ".join(assets))
            itest.check("<canvas" in page and assets and all(
                a.startswith("/") and not a.startswith("//") for a in assets),
                "the page is served with local assets only (no CDN)", failures)
            browser, ws_url = start_chromium(profile)
            devtools = DevTools(ws_url)
            devtools.call("Page.enable")
            devtools.call("Page.navigate", url=url)
            counters = {}
            deadline = time.monotonic() + WAIT_S
            while time.monotonic() < deadline:
                d.pump(0.5)     # keep the deployment's own subscriber drained
                result = devtools.call("Runtime.evaluate", returnByValue=True, expression=(
                    "JSON.stringify(Object.assign({}, "
                    "(document.getElementById('dashboard') || {dataset: {}}).dataset))"))
                counters = json.loads(result.get("result", {}).get("value") or "{}")
                if (counters.get("connected") == "true" and int(counters.get("ticks", 0)) >= 50
                        and int(counters.get("evals", 0)) >= 2
                        and int(counters.get("replicas", 0)) >= 3
                        and int(counters.get("proposals", 0)) > 0
                        and int(counters.get("scorers", 0)) >= 3
                        # the verified count comes with the once-a-second stats event
                        and int(counters.get("verified", 0)) > 0):
                    break
            time.sleep(0.6)     # one more redraw of the charts before the picture
            result = devtools.call("Runtime.evaluate", returnByValue=True, expression=LEARNING_JS)
            learning = json.loads(result.get("result", {}).get("value") or "{}")
            print("     learning on the page: ticks %s, weights %s, excluded %s"
                  % ({r: c["value"] for r, c in learning.get("tick", {}).items()},
                     {"%s/%s" % (c["replica"], c["feature"]): c["text"]
                      for c in learning.get("weights", [])},
                     {r: c["text"] for r, c in learning.get("excluded", {}).items()}))
            print("     from the page: %s" % json.dumps(counters, sort_keys=True))
            shot = devtools.call("Page.captureScreenshot", format="png")
            os.makedirs(os.path.dirname(SCREENSHOT), exist_ok=True)
            with open(SCREENSHOT, "wb") as f:
                f.write(base64.b64decode(shot["data"]))
            print("     screenshot: %s" % SCREENSHOT)
            n = d.replicas
            itest.check(counters.get("connected") == "true", "the page's event stream is live",
                        failures)
            itest.check(int(counters.get("rewards", 0)) > 0 and int(counters.get("ticks", 0)) > 0,
                        "the reward chart received rewards", failures)
            itest.check(int(counters.get("evals", 0)) > 0, "the performance chart received eval "
                        "records", failures)
            itest.check(int(counters.get("proposals", 0)) > 0, "the proposal chart received "
                        "proposals", failures)
            itest.check(int(counters.get("replicas", 0)) == n, "%d rewarder replicas shown" % n,
                        failures)
            itest.check(int(counters.get("aggregators", 0)) == n,
                        "%d aggregator replicas shown" % n, failures)
            itest.check(int(counters.get("verified", 0)) > 0, "the page shows the dashboard's "
                        "verified count", failures)
            itest.check(int(counters.get("scores", 0)) > 0 and int(counters.get("scorers", 0)) == n,
                        "the learning panel received scores from %d scorer replicas (%s)"
                        % (n, counters.get("scorers")), failures)
            check_learning(learning, tap, d, failures)
            itest.check(counters.get("env") == d.env and int(counters.get("episodes", 0)) > 0,
                        "the page names the environment (%s) and the episodes finished (%s)"
                        % (counters.get("env"), counters.get("episodes")), failures)
            devtools.close()
            devtools = None
            stop(browser)
            browser = None
            dashboard.send_signal(signal.SIGTERM)
            try:
                status = dashboard.wait(timeout=10)
            except subprocess.TimeoutExpired:
                status = None
            tail = dashboard.stdout.read().strip() if status is not None else ""
            print("     " + tail.replace("\n", "\n     "))
            itest.check(status == 0, "quintet-dashboard exits 0 on SIGTERM (status %s)" % status,
                        failures)
            itest.check(not d.dead(), "no process died", failures)
    finally:
        if devtools is not None:
            try:
                devtools.close()
            except Exception:   # noqa: BLE001
                pass
        stop(browser)
        stop(dashboard)
        if tap is not None:
            tap.close()
        shutil.rmtree(profile, ignore_errors=True)
        if holder:
            holder.cleanup()
    if failures:
        print("%d check(s) failed" % len(failures))
        return 1
    print("the web dashboard shows the verified stream in Chromium")
    return 0


if __name__ == "__main__":
    sys.exit(main())
