"""Library-level rounds: ``Scheduler(platform).schedule(jobs)`` on each workload (loading excluded).

Each benchmark builds a fresh :class:`~oarsched.engine.scheduler.Scheduler`
(the hierarchy tables included) and runs one round, as ``oarsched-kamelot``
does once it has read the database.  Loading (JSON to library objects) is
benchmarked on its own.  The decisions digest of the last round is checked
against the pinned one (``tests/test_decision_digests.py``): a benchmark of
a round that decides differently is a failure, not a result.
"""
from __future__ import annotations

import pytest

from benchmarks import workloads
from tests import test_decision_digests as pinned

QUICK = ["nodeonly-10k-100", "coreonly-10k-100", "normal-10k-100", "normal-quotas-10k-100", "normal-1k-500",
         "mixed-nodeonly-20k-1000"]
SUITE = [f"{k}-10k-{n}" for k in ("nodeonly", "coreonly", "normal") for n in (200, 500, 1000, 2000)] + [
    "normal-quotas-10k-500", "nodeonly-1k-5000", "mixed-quotas-20k-1000"]
LARGE = [f"{k}-10k-{n}" for k in ("nodeonly", "coreonly", "normal") for n in (5000, 10000, 20000)] + [
    f"{k}-{r}-500" for k in ("nodeonly", "coreonly", "normal") for r in ("50k", "100k")]

PINNED = {**pinned.SHARED, **pinned.GENERATED, **pinned.GENERATED_SLOW}




@pytest.mark.parametrize("name", workloads.tiered_params(QUICK, SUITE, LARGE))
def test_round(benchmark, load_workload, name: str) -> None:
    wl = load_workload(name)
    benchmark.group = f"round {wl.kind}"
    benchmark.extra_info.update(jobs=len(wl.jobs), resources=wl.nb_resources, quotas=wl.quotas is not None)
    result = benchmark.pedantic(workloads.run_round, args=(wl,), rounds=3, iterations=1, warmup_rounds=0)
    assert workloads.decision_digest(result) == PINNED[name]


@pytest.mark.quick
@pytest.mark.parametrize("name", ["normal-quotas-10k-100"])
def test_round_quotas_off(benchmark, load_workload, name: str) -> None:
    """The same workload with its quotas off: the price of quotas is the ratio of the two."""
    wl = load_workload(name)
    off = workloads.Workload(**{**wl.__dict__, "quotas": None})
    benchmark.group = "quotas off/on"
    result = benchmark.pedantic(workloads.run_round, args=(off,), rounds=3, iterations=1)
    assert len(result.assignments) == len(wl.jobs)


@pytest.mark.quick
@pytest.mark.parametrize("name", ["normal-10k-500"])
def test_load(benchmark, name: str) -> None:
    """``workload.json`` to ``Platform`` and ``Job`` objects (what the round benchmarks exclude)."""
    if name not in workloads.suite_names():
        pytest.skip("shared bench folder not available")
    benchmark.group = "load"
    wl = benchmark.pedantic(workloads.load, args=(name,), rounds=3, iterations=1)
    assert wl.nb_resources == 10_000
