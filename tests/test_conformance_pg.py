"""The conformance corpus on a real PostgreSQL server.

Each case's SQLite database is copied into a fresh PostgreSQL database, the
case's oar.conf is pointed at it (``DB_TYPE="Pg"``), ``oarsched-kamelot`` runs
as OAR3's meta-scheduler would run it, and the gantt rows read back from
PostgreSQL are compared with the corpus' expectations by the corpus' own
``check.py`` functions.
"""
from __future__ import annotations

import json
import os
import shutil
import sqlite3
import subprocess
import tempfile
import uuid
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path

import pytest
from sqlalchemy import create_engine, text
from sqlalchemy.engine import make_url

from tests.conftest import load_check, require_shared, shared_dir
from tests.pgserver import copy_sqlite_to_pg, create_database, drop_database
from tests.test_conformance import _case_names

pytestmark = pytest.mark.postgres


def _pg_conf(check, case_dir: Path, pg_url: str, out: Path) -> None:
    url = make_url(pg_url)
    pairs = [(k, v) for k, v in check.read_conf(case_dir / "oar.conf") if not k.startswith("DB_")]
    for i, (k, v) in enumerate(pairs):
        if k in ("QUOTAS_CONF_FILE", "PRIORITY_CONF_FILE") and not os.path.isabs(v):
            pairs[i] = (k, str(case_dir / v))
    pairs += [("DB_TYPE", "Pg"), ("DB_HOSTNAME", url.host or "127.0.0.1"), ("DB_PORT", str(url.port or 5432)),
              ("DB_BASE_NAME", url.database), ("DB_BASE_LOGIN", url.username or ""),
              ("DB_BASE_PASSWD", url.password or "")]
    check.write_conf(out, pairs)


def _copy_gantt_back(pg_url: str, before: Path, after: Path) -> tuple[dict[int, str], dict[int, int]]:
    """A copy of the case's SQLite file whose gantt tables hold what PostgreSQL now holds; and the jobs'
    messages and start times."""
    shutil.copy(before, after)
    engine = create_engine(pg_url)
    try:
        with engine.connect() as conn:
            preds = conn.execute(text("SELECT moldable_job_id, start_time FROM gantt_jobs_predictions")).all()
            res = conn.execute(text("SELECT moldable_job_id, resource_id FROM gantt_jobs_resources")).all()
            jobs = conn.execute(text("SELECT job_id, message, start_time FROM jobs")).all()
    finally:
        engine.dispose()
    con = sqlite3.connect(after)
    with con:
        con.execute("DELETE FROM gantt_jobs_predictions")
        con.execute("DELETE FROM gantt_jobs_resources")
        con.executemany("INSERT INTO gantt_jobs_predictions (moldable_job_id, start_time) VALUES (?, ?)", preds)
        con.executemany("INSERT INTO gantt_jobs_resources (moldable_job_id, resource_id) VALUES (?, ?)", res)
    con.close()
    return {int(j): m for j, m, _ in jobs}, {int(j): s for j, _, s in jobs}


def _run_case(check, kamelot: str, admin_url: str, case_dir: Path) -> str:
    case = json.loads((case_dir / "case.json").read_text())
    expected = json.loads(check.expected_file(case_dir).read_text())
    name = "conf_" + uuid.uuid4().hex[:10]
    pg_url = create_database(admin_url, name, locale="C")
    tmp = Path(tempfile.mkdtemp(prefix=f"pgconf-{case_dir.name}-"))
    try:
        copy_sqlite_to_pg(case_dir / "before.sqlite", pg_url, on_int_overflow="widen")
        _pg_conf(check, case_dir, pg_url, tmp / "oar.conf")
        env = dict(os.environ, OARCONFFILE=str(tmp / "oar.conf"), **case.get("env", {}))
        proc = subprocess.run([kamelot, *case["argv"]], env=env, cwd=tmp, capture_output=True, text=True, timeout=600)
        if proc.returncode != 0:
            return f"exit code {proc.returncode}: {proc.stderr.strip()[-300:]}"
        msgs, starts = _copy_gantt_back(pg_url, case_dir / "before.sqlite", tmp / "after.sqlite")
        got = check.decisions(case_dir / "before.sqlite", tmp / "after.sqlite", case["queue"])
        got_msgs = {str(j): msgs.get(int(j)) for j in expected.get("messages", {})}
        got_starts = {str(j): starts.get(int(j)) for j in expected.get("job_start_times", {})}
        diffs = check.compare(expected, got, True, got_msgs, got_starts)
        return "; ".join(diffs[:3]) if diffs else "PASS"
    finally:
        drop_database(admin_url, name)
        shutil.rmtree(tmp, ignore_errors=True)


@pytest.fixture(scope="session")
def pg_corpus_outcome(pg_server) -> dict[str, str]:
    shared = require_shared()
    check = load_check(shared)
    kamelot = shutil.which("oarsched-kamelot")
    assert kamelot, "oarsched-kamelot is not on PATH: install the package (pip install .)"
    cases = [shared / "conformance" / n for n in _case_names()]
    with ThreadPoolExecutor(max_workers=2) as pool:
        outcomes = list(pool.map(lambda c: _run_case(check, kamelot, pg_server, c), cases))
    return {c.name: o for c, o in zip(cases, outcomes)}


@pytest.mark.parametrize("case", _case_names() if shared_dir() else ["<corpus missing>"])
def test_case_on_postgresql(case, pg_corpus_outcome):
    assert pg_corpus_outcome.get(case) == "PASS", pg_corpus_outcome.get(case)
