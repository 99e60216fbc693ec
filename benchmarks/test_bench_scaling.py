"""Growth and memory: rounds in fresh interpreters, with their peak RSS.

Each case runs :mod:`benchmarks.round_child` in a child process (so that the
peak resident memory is the round's own) and keeps the round's best time,
the load time and the peak RSS in ``extra_info``; the benchmark's own time
is the child's whole run.  The series (time vs jobs at 10k resources, time
vs resources at 500 jobs) and their growth exponents are assembled by
``python -m benchmarks.report``; here every case must complete with its
pinned decisions.  The load scenario (100,000 resources, 20,000 waiting
jobs, running jobs and reservations) is the last, slow case.
"""
from __future__ import annotations

import pytest

from benchmarks import measure, workloads
from tests import test_decision_digests as pinned

PINNED = {**pinned.SHARED, **pinned.GENERATED, **pinned.GENERATED_SLOW}

QUICK = ["nodeonly-10k-500"]
JOBS = [f"{k}-10k-{n}" for k in ("nodeonly", "coreonly", "normal") for n in (100, 2000, 5000)]
RESOURCES = [f"{k}-{r}-500" for k in ("nodeonly", "coreonly", "normal") for r in ("1k", "5k", "20k")]
SLOW = [f"{k}-10k-20000" for k in ("nodeonly", "coreonly", "normal")] + [
    f"{k}-100k-500" for k in ("nodeonly", "coreonly", "normal")] + ["load-100k-20000"]




@pytest.mark.parametrize("name", workloads.tiered_params(QUICK, JOBS + RESOURCES, SLOW))
def test_round_in_fresh_process(benchmark, name: str) -> None:
    benchmark.group = "round in a fresh process"
    run = benchmark.pedantic(measure.round_in_child, args=(name, 1), rounds=1, iterations=1)
    if run.rc != 0 and "not available" in str(run.output):
        pytest.skip("shared bench folder not available")
    assert run.rc == 0 and run.output is not None
    benchmark.extra_info.update(peak_mb=run.peak_mb, round_s=run.output["round_s"], load_s=run.output["load_s"],
                                placed=run.output["placed"])
    assert run.output["digest"] == PINNED[name]
