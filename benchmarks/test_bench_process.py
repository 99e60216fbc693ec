"""The whole drop-in: ``oarsched-kamelot QUEUE NOW NOW_SQL`` as OAR3's meta-scheduler runs it.

Interpreter start, configuration, database read, scheduling and database
write, on a fresh copy of a drop-in case each round, with SQLite and with
PostgreSQL (a throwaway server from ``tests/pgserver.py``; skipped without
PostgreSQL programs).  Each phase's share comes from
:mod:`benchmarks.phases`, run once per case and kept in ``extra_info``.
"""
from __future__ import annotations

import shutil
import tempfile
import uuid
from pathlib import Path

import pytest

from benchmarks import measure, workloads

QUICK = ["normal-10k-100"]
FULL = ["nodeonly-10k-500", "normal-10k-500", "coreonly-10k-500", "normal-quotas-10k-500"]
LARGE = ["nodeonly-10k-2000", "normal-10k-2000"]




def _case_dir(name: str) -> Path:
    bench = workloads.shared_bench_dir()
    if bench is None or not (bench / name / "before.sqlite").is_file():
        pytest.skip(f"drop-in case {name} not available (shared bench folder missing)")
    return bench / name


@pytest.fixture
def scratch():
    path = Path(tempfile.mkdtemp(prefix="oarsched-bench-"))
    yield path
    shutil.rmtree(path, ignore_errors=True)


@pytest.mark.parametrize("name", workloads.tiered_params(QUICK, FULL, LARGE))
def test_dropin_sqlite(benchmark, scratch: Path, name: str) -> None:
    src = _case_dir(name)
    copies = iter(range(10**6))

    def fresh():
        dst = scratch / f"{name}-{next(copies)}"
        shutil.copytree(src, dst)
        return (dst,), {}

    benchmark.group = "drop-in sqlite"
    run = benchmark.pedantic(measure.dropin_process, setup=fresh, rounds=2, iterations=1)
    benchmark.extra_info["peak_mb"] = run.peak_mb
    phases = measure.dropin_phases(fresh()[0][0]).output
    benchmark.extra_info.update({f"phase_{k}": v for k, v in phases.items()})


@pytest.mark.postgres
@pytest.mark.parametrize("name", workloads.tiered_params(QUICK, FULL, LARGE))
def test_dropin_postgresql(benchmark, pg_server: str, scratch: Path, name: str) -> None:
    from tests.pgserver import copy_sqlite_to_pg, create_database, drop_database

    src = _case_dir(name)
    made: list[str] = []

    def fresh():
        db = "bench_" + uuid.uuid4().hex[:10]
        url = create_database(pg_server, db)
        made.append(db)
        copy_sqlite_to_pg(src / "before.sqlite", url)
        dst = scratch / db
        shutil.copytree(src, dst, ignore=shutil.ignore_patterns("before.sqlite"))
        return (dst, measure.pg_conf(dst, url)), {}

    benchmark.group = "drop-in postgresql"
    try:
        run = benchmark.pedantic(measure.dropin_process, setup=fresh, rounds=2, iterations=1)
        benchmark.extra_info["peak_mb"] = run.peak_mb
        case, conf = fresh()[0]
        phases = measure.dropin_phases(case, conf).output
        benchmark.extra_info.update({f"phase_{k}": v for k, v in phases.items()})
    finally:
        for db in made:
            drop_database(pg_server, db)
