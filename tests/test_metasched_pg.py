"""The meta-scheduler corpus on a real PostgreSQL server.

``check_meta.py`` runs every case with ``tests/kao_on_pg.py`` as its command:
the case's database is copied into a fresh PostgreSQL database, ``oarsched-kao``
runs on it (real ZeroMQ and TCP listeners, as on SQLite), and the tables are
copied back for the checker's diff.
"""
from __future__ import annotations

import os
import sys
from pathlib import Path

import pytest

from tests.conftest import require_shared
from tests.test_metasched import (
    assert_differs_only_where_named,
    metasched_cases,
    run_check_meta,
    tagged_only,
)

pytestmark = pytest.mark.postgres

WRAPPER = Path(__file__).resolve().parent / "kao_on_pg.py"


@pytest.fixture(scope="session")
def metasched_pg_outcome(pg_server) -> dict[str, str]:
    require_shared()
    env = dict(os.environ, OARSCHED_KAO_PG_ADMIN=pg_server)
    return run_check_meta(f"{sys.executable} {WRAPPER} {{db}} {{conf}} {{argv}}", env)


@pytest.fixture(scope="session")
def tagged_pg_outcome(pg_server) -> dict[str, str]:
    """The bug-tagged cases on PostgreSQL, against OAR3's own outcome."""
    require_shared()
    env = dict(os.environ, OARSCHED_KAO_PG_ADMIN=pg_server)
    return run_check_meta(f"{sys.executable} {WRAPPER} {{db}} {{conf}} {{argv}}", env, extra=tagged_only())


@pytest.mark.parametrize("case,tagged", metasched_cases(), ids=lambda v: v if isinstance(v, str) else "")
def test_case_on_postgresql(case, tagged, request):
    if tagged:
        assert_differs_only_where_named(case, request.getfixturevalue("tagged_pg_outcome"))
        return
    outcome = request.getfixturevalue("metasched_pg_outcome")
    assert outcome.get(case) == "PASS", outcome.get(case)


def test_log_job_marks_are_checked_to_be_exactly_oar3s(pg_server, tmp_path):
    """``kao_on_pg.py`` gives PostgreSQL's LOG marks their CURRENT back only when they are exactly OAR3's
    ``log_job`` rows of the jobs put in Error; a mark more or less makes the case fail."""
    import json
    import shutil
    import uuid

    from sqlalchemy import text

    from oarsched.oar.db import OarDatabase
    from oarsched.oar.metadb import MetaDb
    from tests.kao_on_pg import log_marks
    from tests.pgserver import copy_sqlite_to_pg, create_database, drop_database

    case = require_shared() / "metasched" / "meta_pre_states_01"
    errored = [r["job_id"] for r in json.loads((case / "expected.json").read_text())["tables"]["jobs"]["inserted"]
               if r["state"] == "Error"]
    assert errored == [4, 5]
    before = tmp_path / "before.sqlite"
    shutil.copy(case / "before.sqlite", before)
    name = "logmarks_" + uuid.uuid4().hex[:8]
    url = create_database(pg_server, name, locale="C")
    try:
        copy_sqlite_to_pg(before, url, on_int_overflow="widen")
        db = OarDatabase(url.replace("postgresql://", "postgresql+psycopg://", 1))

        def sql(statement: str) -> None:
            with db.engine.begin() as conn:
                conn.execute(text(statement))

        sql("UPDATE jobs SET state = 'Error' WHERE job_id IN (4, 5)")
        with db.engine.begin() as conn:
            MetaDb(db, conn, 0, "oar").log_jobs(errored)
        marked, wrong = log_marks(url, before)
        assert wrong is None, wrong
        assert {t: len(rows) for t, rows in marked.items() if rows} == {
            "moldable_job_descriptions": 2, "job_resource_groups": 2, "job_resource_descriptions": 2}
        sql("UPDATE moldable_job_descriptions SET moldable_index = 'LOG' WHERE moldable_job_id = 7")  # not in Error
        assert "not OAR3's" in (log_marks(url, before)[1] or "")
        sql("UPDATE moldable_job_descriptions SET moldable_index = 'CURRENT' WHERE moldable_job_id IN (4, 7)")
        assert "missing" in (log_marks(url, before)[1] or "")
        db.engine.dispose()
    finally:
        drop_database(pg_server, name)
