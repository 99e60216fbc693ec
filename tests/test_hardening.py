"""Hardening, round two (issue 13): what could stop a queue, hang a round or double-book.

Each test runs the real entrypoint on an OAR3 database (SQLite and/or
PostgreSQL, where the fault happened) and fails on the code before the fix.
"""
from __future__ import annotations

from pathlib import Path

import pytest
from sqlalchemy.engine import Connection

from tests.oarcase import NOW, add_many_jobs, make_case, node_resources


# ------------------------------------------------------------------ 2. many waiting jobs
@pytest.mark.postgres
def test_more_waiting_jobs_than_postgresql_parameters(tmp_path: Path, pg_url: str):
    """70,000 waiting jobs (more than the 65,535 bind parameters of one statement) are read and scheduled."""
    def setup(conn: Connection) -> None:
        add_many_jobs(conn, 70_000, level="resource_id", count=1, walltime=60)

    case = make_case(tmp_path, setup, url=pg_url, conf={"MAX_JOB_PER_QUEUES_GROUP_SCHEDULING_ROUND": "16"})
    out = case.run()
    assert out.code == 0, out.stderr
    gantt = case.gantt()
    assert sorted(gantt) == list(range(1, 17))
    assert {start for start, _ in gantt.values()} == {NOW, NOW + 60}
