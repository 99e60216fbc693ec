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
