"""``python -m benchmarks.round_child NAME [REPEAT]``: one workload's round, in this process, as JSON.

Run in a fresh interpreter by :func:`benchmarks.measure.round_in_child`, so
that the parent can read this process's peak memory.  Prints one JSON line:
load time (JSON file to library objects), the best round time of ``REPEAT``
rounds (each with a fresh :class:`~oarsched.engine.scheduler.Scheduler`; wall and CPU time),
the decisions digest and counts.
"""
from __future__ import annotations

import json
import sys
import time

from benchmarks import workloads


def main(argv: list[str]) -> int:
    name = argv[0]
    repeat = int(argv[1]) if len(argv) > 1 else 3
    t = time.perf_counter()
    wl = workloads.load_any(name)
    load_s = time.perf_counter() - t
    rounds, cpu = [], []
    result = None
    for _ in range(max(1, repeat)):
        t, c = time.perf_counter(), time.process_time()
        result = workloads.run_round(wl)
        rounds.append(time.perf_counter() - t)
        cpu.append(time.process_time() - c)
    print(json.dumps({
        "name": name, "kind": wl.kind, "jobs": len(wl.jobs), "resources": wl.nb_resources,
        "scheduled": len(wl.scheduled), "quotas": wl.quotas is not None,
        "load_s": load_s, "round_s": min(rounds), "rounds_s": rounds, "round_cpu_s": min(cpu),
        "placed": len(result.assignments), "unplaced": len(result.unscheduled),
        "digest": workloads.decision_digest(result),
    }))
    return 0


if __name__ == "__main__":
    sys.exit(main(sys.argv[1:]))
