"""Reading a big OAR3 database: 200,000 resources, and a round with 70,000 waiting jobs.

What ``oarsched-kamelot`` reads before it places anything (issue 13, point
6): every resource in ``SCHEDULER_RESOURCE_ORDER`` with the hierarchy
labels, as the round reads them, on SQLite and on PostgreSQL (a throwaway
server from ``tests/pgserver.py``).  And a whole round (read, place, write;
no deadline) with 70,000 waiting jobs on PostgreSQL, more than the 65,535
bind parameters one statement may carry.  The databases are built once per
module with a few ``INSERT ... SELECT`` (:mod:`tests.oarcase`).

Measure: ``python -m pytest benchmarks/test_bench_dbread.py --benchmark-enable``.
"""
from __future__ import annotations

import time
from pathlib import Path

import pytest
from sqlalchemy import text

from oarsched.oar.db import OarDatabase
from oarsched.oar.kamelot import schedule_queue
from oarsched.oar.config import OarConfig
from tests.oarcase import NOW, add_many_jobs, add_many_resources, make_case

RESOURCES = 200_000
WAITING = 70_000
ORDER = [("resource_id", "ASC", None)]
LABELS = ["resource_id", "network_address", "core"]


def _platform(tmp: Path, url: str | None, jobs: int = 0):
    def setup(conn) -> None:
        add_many_resources(conn, RESOURCES)
        if jobs:
            add_many_jobs(conn, jobs, level="resource_id", count=1, walltime=3600)

    case = make_case(tmp, setup, url=url, resources=[])
    if url is not None:  # as autovacuum leaves a database: statistics present
        with OarDatabase(case.url).engine.begin() as conn:
            conn.execute(text("ANALYZE"))
    return case


@pytest.fixture(scope="module")
def sqlite_case(tmp_path_factory):
    return _platform(tmp_path_factory.mktemp("read-sqlite"), None)


@pytest.fixture(scope="module")
def pg_case(tmp_path_factory, pg_server):
    from tests.pgserver import create_database, drop_database

    url = create_database(pg_server, "bench_read")
    yield _platform(tmp_path_factory.mktemp("read-pg"), url, jobs=WAITING)
    drop_database(pg_server, "bench_read")


def _read(db: OarDatabase) -> int:
    with db.round_transaction() as conn:
        return len(db.read_resources(conn, ORDER, properties=LABELS))


@pytest.mark.quick
def test_read_200k_resources_sqlite(benchmark, sqlite_case) -> None:
    db = OarDatabase(sqlite_case.url)
    benchmark.group = "read 200k resources"
    assert benchmark(_read, db) == RESOURCES


@pytest.mark.postgres
def test_read_200k_resources_postgresql(benchmark, pg_case) -> None:
    db = OarDatabase(pg_case.url)
    benchmark.group = "read 200k resources"
    assert benchmark(_read, db) == RESOURCES


@pytest.mark.postgres
def test_round_70k_waiting_jobs_postgresql(benchmark, pg_case, monkeypatch) -> None:
    """One round, nothing written (``write=False``), so every repetition sees the same queue."""
    monkeypatch.setenv("OARCONFFILE", str(pg_case.conf))
    config = OarConfig.load()
    db = OarDatabase(pg_case.url)
    benchmark.group = "round 70k waiting jobs"
    report = benchmark.pedantic(schedule_queue, args=(db, config, "default", NOW), kwargs={"write": False},
                                rounds=2, iterations=1)
    assert len(report.result.assignments) == min(WAITING, config.max_jobs_per_round or WAITING)
    benchmark.extra_info.update({f"phase_{k}": v for k, v in report.timings.items()})
