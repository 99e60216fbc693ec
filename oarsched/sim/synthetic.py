"""Synthetic traces shaped like the Parallel Workloads Archive's, for benchmarks, tests and examples.

Deterministic for a seed: Poisson arrivals sized for an offered ``load`` of
the platform, half the jobs asking cores (1 to 256, capped at the
platform) and half whole nodes (1 to 32, capped), exponential run times
(mean ``mean_runtime``), walltimes over-estimated 1x to 3x (plus a minute)
as users do, ``users`` users of unequal activity (user ``u0`` submits the
most: FAIRSHARE has something to correct).
"""
from __future__ import annotations

import random

from oarsched.sim.workload import Workload, WorkloadJob

__all__ = ["synthetic_workload"]

CORE_REQUESTS = (1, 2, 4, 8, 16, 32, 64, 128, 256)
NODE_REQUESTS = (1, 2, 4, 8, 16, 32)


def synthetic_workload(n: int, *, nodes: int = 128, cores_per_node: int = 8, load: float = 0.85, seed: int = 1,
                       users: int = 20, mean_runtime: int = 1800) -> Workload:
    """``n`` jobs offering about ``load`` of ``nodes`` x ``cores_per_node`` cores (see the module docstring).

    Requests are ``resource_id=N`` (cores) and ``network_address=N`` (nodes);
    the header carries ``MaxNodes``/``MaxProcs`` as an SWF trace's does.
    """
    rng = random.Random(seed)
    cores = nodes * cores_per_node
    core_sizes = [c for c in CORE_REQUESTS if c <= cores] or [1]
    node_sizes = [k for k in NODE_REQUESTS if k <= nodes] or [1]
    mean_cores = (sum(core_sizes) / len(core_sizes) + cores_per_node * sum(node_sizes) / len(node_sizes)) / 2
    mean_gap = mean_cores * mean_runtime / (cores * load)
    weights = [1.0 / (k + 1) for k in range(users)]
    jobs, t = [], 0
    for i in range(1, n + 1):
        t += int(rng.expovariate(1 / mean_gap))
        runtime = int(rng.expovariate(1 / mean_runtime)) + 1
        walltime = int(runtime * rng.uniform(1.0, 3.0)) + 60
        if rng.random() < 0.5:
            request = f"resource_id={rng.choice(core_sizes)}"
        else:
            request = f"network_address={rng.choice(node_sizes)}"
        user = rng.choices(range(users), weights)[0]
        jobs.append(WorkloadJob(id=i, submit=t, runtime=runtime, walltime=walltime, request=request,
                                user=f"u{user}"))
    header = {"MaxNodes": str(nodes), "MaxProcs": str(cores), "Note": f"oarsched synthetic trace, seed {seed}"}
    return Workload(jobs=jobs, source=f"synthetic-{n}", header=header)
