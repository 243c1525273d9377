#!/usr/bin/env python3
"""Smoke test of tools/bench/pipeline.py: its parsers (callgrind output, the
histogram quantiles) on fixed inputs, then B=32, n=3, few episodes: every
field of the JSON line exists, the rates and the tick latency are numbers
(p50 <= p99 <= max), the CPU shares numbers or null. --instructions is not
run here (callgrind takes minutes)."""
import importlib.util, json, math, os, subprocess, sys, tempfile
script, build = sys.argv[1], sys.argv[2]

spec = importlib.util.spec_from_file_location("pipeline", script)
pipeline = importlib.util.module_from_spec(spec)
spec.loader.exec_module(pipeline)

# callgrind: totals: wins over summary:, every *.out file of the directory summed
with tempfile.TemporaryDirectory() as tmp:
    with open(os.path.join(tmp, "a.out"), "w") as f:
        f.write("# callgrind format\nevents: Ir\nfl=x.c\nfn=main\n3 10\nsummary: 1500\ntotals: 1234\n")
    with open(os.path.join(tmp, "b.out"), "w") as f:
        f.write("events: Ir\nsummary: 766\n")
    with open(os.path.join(tmp, "ignored.txt"), "w") as f:
        f.write("totals: 99999\n")
    assert pipeline.callgrind_sum(tmp) == (2000, 2), pipeline.callgrind_sum(tmp)
    with open(os.path.join(tmp, "empty.out"), "w") as f:
        f.write("events: Ir\n")
    try:
        pipeline.callgrind_sum(tmp)
        raise AssertionError("a callgrind file without totals was accepted")
    except pipeline.BenchError:
        pass

# quantiles: linear within the bucket, the exact max in the +Inf bucket
text = "\n".join([
    "# TYPE quintet_world_round_trip_seconds histogram",
    'quintet_world_round_trip_seconds_bucket{le="0.001"} 0',
    'quintet_world_round_trip_seconds_bucket{le="0.002"} 50',
    'quintet_world_round_trip_seconds_bucket{le="0.004"} 98',
    'quintet_world_round_trip_seconds_bucket{le="+Inf"} 100',
    "quintet_world_round_trip_seconds_count 100",
    "quintet_world_round_trip_max_seconds 0.009"])
buckets, plain = pipeline.parse_histogram(text, pipeline.ROUND_TRIP)
assert len(buckets) == 4 and math.isinf(buckets[-1][0]), buckets
mx = plain[pipeline.ROUND_TRIP_MAX]
assert mx == 0.009, plain
close = lambda x, y: abs(x - y) < 1e-12
assert close(pipeline.histogram_quantile(0.5, buckets, mx), 0.002), pipeline.histogram_quantile(0.5, buckets, mx)
assert close(pipeline.histogram_quantile(0.25, buckets, mx), 0.0015)
assert pipeline.histogram_quantile(0.99, buckets, mx) == 0.009
assert pipeline.histogram_quantile(0.5, [(0.001, 0), (math.inf, 0)]) is None

p = subprocess.run([sys.executable, script, "--batch", "32", "--replicas", "3", "--episodes", "32",
                    "--timeout", "120", "--build-dir", build], capture_output=True, text=True, timeout=200)
sys.stderr.write(p.stderr)
rows = [json.loads(l) for l in p.stdout.splitlines() if l.startswith("{")]
assert len(rows) == 1, p.stdout
r = rows[0]
assert "error" not in r, r
num = lambda v: v is None or isinstance(v, (int, float))
for k in ("inprocess_steps_per_s", "distributed_steps_per_s", "ratio",
          "tick_latency_p50_s", "tick_latency_p99_s", "tick_latency_max_s", "tick_latency_ticks"):
    assert k in r and num(r[k]), (k, r)
assert isinstance(r["inprocess_steps_per_s"], (int, float)), r
assert isinstance(r["distributed_steps_per_s"], (int, float)) and r["distributed_steps_per_s"] > 0, r
assert r["tick_latency_ticks"] > 0, r
assert 0 < r["tick_latency_p50_s"] <= r["tick_latency_p99_s"] <= r["tick_latency_max_s"], r
assert all(num(v) for v in r["cpu_share"].values()), r
assert p.returncode == 0, p.returncode
print("ok", json.dumps(r))
