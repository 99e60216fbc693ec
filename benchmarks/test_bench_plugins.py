"""What the find/assign extension points cost: nothing when unused, and how much per plugin job.

* ``test_plugins_unused``: one round of ``normal-10k-500`` (no job names a
  plugin) with the scheduler as the drop-in builds it, then with a plugin
  registry loaded (the shipped plugins imported and registered).  The
  decisions must be identical and the times the same: jobs without
  ``find=``/``assign=`` types stay on the compiled path.
* ``test_plugin_jobs``: the same round with every tenth job (or every job)
  naming a plugin, to show what a plugin job costs.  ``find=same`` returns
  :meth:`Window.default_match`, so it isolates the price of the Python window
  search (its decisions equal the compiled ones, which is checked).

``python -m pytest benchmarks/test_bench_plugins.py --benchmark-enable``
"""
from __future__ import annotations

import pytest

from benchmarks import workloads
from oarsched.model.job import Job
from oarsched.plugins import PluginRegistry, assign_function, find_function
from oarsched.plugins.builtin import assign_start_now, find_best_fit, find_contiguous

WORKLOAD = "normal-10k-500"


@find_function
def same(window):
    """The default matcher through the plugin machinery."""
    return window.default_match()


@assign_function
def default(ctx):
    """The scheduler's own placement through the plugin machinery."""
    return ctx.default()


REGISTRY = dict(find={"contiguous": find_contiguous, "best_fit": find_best_fit, "same": same},
                assign={"start_now": assign_start_now, "default": default})


def _round(wl: workloads.Workload, jobs: list[Job], registry: PluginRegistry | None):
    scheduler = workloads.make_scheduler(wl)
    if registry is not None:
        scheduler.plugins = registry
    return scheduler.schedule(jobs, wl.now, wl.scheduled)


def _typed(jobs: list[Job], type_text: str, every: int) -> list[Job]:
    """Copies of ``jobs`` where one job in ``every`` also has the type ``type_text``."""
    name, value = type_text.split("=", 1)
    return [Job(id=j.id, moldables=j.moldables, user=j.user, project=j.project, queue=j.queue,
                submission_time=j.submission_time,
                types={**j.types, name: value} if k % every == 0 else dict(j.types))
            for k, j in enumerate(jobs)]


@pytest.mark.quick
@pytest.mark.parametrize("machinery", ["not-loaded", "loaded"])
def test_plugins_unused(benchmark, load_workload, machinery: str) -> None:
    wl = load_workload(WORKLOAD)
    registry = PluginRegistry(**REGISTRY, use_entry_points=False) if machinery == "loaded" else None
    benchmark.group = f"plugins unused ({WORKLOAD})"
    result = benchmark.pedantic(_round, args=(wl, wl.jobs, registry), rounds=10, iterations=1, warmup_rounds=1)
    assert workloads.decision_digest(result) == workloads.decision_digest(workloads.run_round(wl))


@pytest.mark.parametrize("type_text, every", [
    ("find=same", 10), ("find=same", 1), ("assign=default", 10), ("assign=default", 1),
    ("find=contiguous", 10), ("find=best_fit", 10), ("assign=start_now", 10),
])
def test_plugin_jobs(benchmark, load_workload, type_text: str, every: int) -> None:
    wl = load_workload(WORKLOAD)
    jobs = _typed(wl.jobs, type_text, every)
    registry = PluginRegistry(**REGISTRY, use_entry_points=False)
    benchmark.group = f"plugin jobs ({WORKLOAD})"
    benchmark.extra_info.update(plugin=type_text, plugin_jobs=len(range(0, len(jobs), every)))
    result = benchmark.pedantic(_round, args=(wl, jobs, registry), rounds=3, iterations=1, warmup_rounds=0)
    assert not result.errors
    if type_text in ("find=same", "assign=default"):
        assert workloads.decision_digest(result) == workloads.decision_digest(workloads.run_round(wl))
