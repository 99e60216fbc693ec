"""Simulation at scale, the simulator as it was beside today's: ``python -m benchmarks.sim_scale``.

Each case runs in a fresh interpreter (its peak RSS is its own) on a synthetic trace
(:func:`oarsched.sim.synthetic.synthetic_workload`, 85 % offered load) on 4,096 cores
(16 switches x 32 nodes x 8 cores), FIFO with OAR3's 60 s security time.  ``replan``:
nothing kept between rounds (``incremental=False``), stopped at its time limit; ``kept``: the
default.  Writes ``benchmarks/results/sim_scale.json`` and ``sim_scale.md``.

``--jobs 50000 200000`` chooses the sizes, ``--limit S`` the time limit of each run (default 900 s),
``--add`` keeps the other rows of the last results.
"""
from __future__ import annotations

import argparse
import json
import platform as host
import subprocess
import sys
import time
from datetime import datetime, timezone
from pathlib import Path

RESULTS = Path(__file__).resolve().parent / "results"

CHILD = r"""
import json, resource, sys, time
from oarsched.sim import platform_from_spec, simulate
from oarsched.sim.synthetic import synthetic_workload

n, mode = int(sys.argv[1]), sys.argv[2]
trace = synthetic_workload(n, nodes=512, cores_per_node=8)
platform = platform_from_spec("switch=16/network_address=32/core=8")
t0, c0 = time.perf_counter(), time.process_time()
result = simulate(trace, platform, config={"SCHEDULER_JOB_SECURITY_TIME": 60}, incremental=mode == "kept")
wall, cpu = time.perf_counter() - t0, time.process_time() - c0
m = result.metrics()
print(json.dumps({"jobs": n, "mode": mode, "seconds": wall, "cpu_seconds": cpu, "rounds": result.rounds,
                  "full_rounds": result.full_rounds, "mean_wait": m.mean_wait, "utilization": m.utilization,
                  "peak_rss_mb": resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024}))
"""


def run_case(n: int, mode: str, limit: float) -> dict:
    t0 = time.perf_counter()
    try:
        out = subprocess.run([sys.executable, "-c", CHILD, str(n), mode], capture_output=True, text=True,
                             timeout=limit, check=True).stdout
    except subprocess.TimeoutExpired:
        return {"jobs": n, "mode": mode, "seconds": None, "stopped_after": round(time.perf_counter() - t0, 1)}
    return json.loads(out.strip().splitlines()[-1])


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--jobs", type=int, nargs="+", default=[50000, 200000])
    parser.add_argument("--modes", nargs="+", default=["kept", "replan"])
    parser.add_argument("--limit", type=float, default=900.0)
    parser.add_argument("--add", action="store_true", help="keep the other rows of the last results file")
    args = parser.parse_args(argv)
    rows = []
    previous = RESULTS / "sim_scale.json"
    if args.add and previous.exists():
        rows = [r for r in json.loads(previous.read_text())["rows"]
                if (r["jobs"], r["mode"]) not in {(n, m) for n in args.jobs for m in args.modes}]
    for n in args.jobs:
        for mode in args.modes:
            row = run_case(n, mode, args.limit)
            print(json.dumps(row), flush=True)
            rows.append(row)
    rows.sort(key=lambda r: (r["jobs"], r["mode"] != "replan"))
    RESULTS.mkdir(exist_ok=True)
    stamp = datetime.now(timezone.utc).strftime("%Y-%m-%d %H:%M UTC")
    (RESULTS / "sim_scale.json").write_text(json.dumps({"measured": stamp, "rows": rows}, indent=1) + "\n")
    lines = ["# Simulation at scale", "",
             f"Measured {stamp} on {host.machine()} ({host.python_version()}), `python -m benchmarks.sim_scale`; "
             "FIFO, 60 s security time, synthetic trace at 85 % offered load on 4,096 cores; each run in a fresh "
             "process. The machine is shared: times are wall-clock of one run (CPU time beside).", "",
             "| jobs | simulator | wall | CPU | rounds (full replans) | peak RSS | mean wait |",
             "|---:|---|---:|---:|---:|---:|---:|"]
    for r in rows:
        if r.get("seconds") is None:
            lines.append(f"| {r['jobs']:,} | {r['mode']} | stopped after {r['stopped_after']} s | | | | |")
            continue
        lines.append(f"| {r['jobs']:,} | {r['mode']} | {r['seconds']:.1f} s | {r['cpu_seconds']:.1f} s | "
                     f"{r['rounds']:,} ({r['full_rounds']:,}) | {r['peak_rss_mb']:.0f} MB | {r['mean_wait']:.0f} s |")
    (RESULTS / "sim_scale.md").write_text("\n".join(lines) + "\n")
    return 0


if __name__ == "__main__":
    sys.exit(main())
