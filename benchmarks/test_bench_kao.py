"""The whole ``oarsched-kao`` process (:mod:`benchmarks.kao`): a meta round, then one with nothing changed.

Interpreter start to last notification, the bipbip commander and Almighty
being real ZeroMQ PULL sockets of this process; SQLite and PostgreSQL.  The
second round's time and each round's peak memory go to ``extra_info``.
"""
from __future__ import annotations

import shutil
import tempfile
from pathlib import Path

import pytest

from benchmarks import kao, workloads

QUICK = ["normal-10k-100"]
FULL = ["nodeonly-10k-500"]


@pytest.fixture
def scratch():
    path = Path(tempfile.mkdtemp(prefix="kao-bench-"))
    yield path
    shutil.rmtree(path, ignore_errors=True)


def _need(name: str) -> None:
    bench = workloads.shared_bench_dir()
    if bench is None or not (bench / name / "before.sqlite").is_file():
        pytest.skip(f"bench case {name} not available (shared bench folder missing)")


@pytest.mark.parametrize("resident", [False, True], ids=["fresh", "resident"])
@pytest.mark.parametrize("name", workloads.tiered_params(QUICK, FULL, []))
def test_kao_sqlite(benchmark, scratch: Path, name: str, resident: bool) -> None:
    """Both rounds by fresh processes, or through a resident ``oarsched kao-server`` (``oarsched-kao --server``)."""
    _need(name)
    benchmark.group = "oarsched-kao sqlite"
    out = benchmark.pedantic(lambda: kao.two_rounds(*kao.sqlite_case(name, scratch), resident=resident), rounds=1,
                             iterations=1)
    assert out["exit"] in (0, 2) and out["launched"] > 0
    if resident:  # the client stays small: the round ran in the server
        assert out["second_peak_mb"] < out["server_peak_mb"] / 2
    benchmark.extra_info.update(out)


@pytest.mark.postgres
@pytest.mark.parametrize("name", workloads.tiered_params(QUICK, FULL, []))
def test_kao_postgresql(benchmark, pg_server: str, scratch: Path, name: str) -> None:
    _need(name)
    benchmark.group = "oarsched-kao postgresql"
    out = benchmark.pedantic(lambda: kao.two_rounds(*kao.pg_case(name, scratch, pg_server)), rounds=1,
                             iterations=1)
    assert out["exit"] in (0, 2) and out["launched"] > 0
    benchmark.extra_info.update(out)
