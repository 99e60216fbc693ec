"""Fixtures and markers of the benchmark suites.

Markers:

* ``quick``: a bounded subset (small workloads, one round each when
  benchmarks are disabled) that CI runs so the benchmarks never rot:
  ``python -m pytest benchmarks -q -m quick -p no:randomly`` (under a minute).
* ``slow``: the large ones (20,000 jobs, 100,000 resources, the load scenario).

The project's ``addopts`` disable timing (``--benchmark-disable``: each
benchmark runs once, as a test); pass ``--benchmark-enable`` to measure.
"""
from __future__ import annotations

import pytest

from benchmarks import workloads


def pytest_configure(config: pytest.Config) -> None:
    config.addinivalue_line("markers", "quick: bounded benchmark subset run by CI")


@pytest.fixture(scope="session")
def workload_cache() -> dict[str, workloads.Workload]:
    """Workloads loaded once per session, by name."""
    return {}


@pytest.fixture
def load_workload(workload_cache):
    """``load_workload(name)``: a shared or generated workload (skips when a shared one is missing)."""
    def load(name: str) -> workloads.Workload:
        if name not in workload_cache:
            if name not in workloads.GENERATED and name not in workloads.suite_names():
                pytest.skip(f"workload {name} not available (shared bench folder missing)")
            workload_cache[name] = workloads.load_any(name)
        return workload_cache[name]
    return load


# the PostgreSQL server fixture of the test suite (one throwaway server per session)
from tests.pgserver import pg_server  # noqa: E402, F401
