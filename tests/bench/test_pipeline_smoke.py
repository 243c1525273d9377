#!/usr/bin/env python3
"""Smoke test of tools/bench/pipeline.py: B=32, n=3, few episodes; every field
of the JSON line exists and is a number or null."""
import json, subprocess, sys
script, build = sys.argv[1], sys.argv[2]
p = subprocess.run([sys.executable, script, "--batch", "32", "--replicas", "3", "--episodes", "32",
                    "--timeout", "120", "--build-dir", build], capture_output=True, text=True, timeout=200)
sys.stderr.write(p.stderr)
rows = [json.loads(l) for l in p.stdout.splitlines() if l.startswith("{")]
assert len(rows) == 1, p.stdout
r = rows[0]
num = lambda v: v is None or isinstance(v, (int, float))
for k in ("inprocess_steps_per_s", "distributed_steps_per_s", "ratio",
          "tick_latency_p50_s", "tick_latency_p99_s", "tick_latency_max_s"):
    assert k in r and num(r[k]), (k, r)
assert isinstance(r["inprocess_steps_per_s"], (int, float)), r
assert isinstance(r["distributed_steps_per_s"], (int, float)) and r["distributed_steps_per_s"] > 0, r
assert all(num(v) for v in r["cpu_share"].values()), r
print("ok", json.dumps(r))
