"""The whole database after a round: what ``oarsched-kamelot`` changes, table by table.

The corpus compares the gantt and three ``jobs`` columns; OAR3's
meta-scheduler also reads back state nobody listed (``jobs.start_time`` was
one).  OAR3's own kamelot was run on every corpus case and every table
compared before and after: it inserts gantt rows and changes ``jobs.message``,
``jobs.last_karma`` and ``jobs.start_time``, and nothing else (the rows where
it differs from oarsched come from the OAR3 bugs the corpus corrects, or from
its crash with quotas on).  This test pins the same footprint for oarsched on
every case: any other table, column or row touched is a failure.
"""
from __future__ import annotations

import json
from pathlib import Path

import pytest
from sqlalchemy import MetaData, create_engine

from oarsched.oar import kamelot
from tests.conftest import load_check, require_shared, shared_dir
from tests.oarrows import dump
from tests.test_conformance import _case_names

GANTT = ("gantt_jobs_predictions", "gantt_jobs_resources")
JOB_COLUMNS_WRITTEN = {"message", "last_karma", "start_time"}


def _snapshot(db: Path) -> tuple[dict[str, list[tuple]], dict[str, list[str]]]:
    engine = create_engine(f"sqlite:///{db}")
    try:
        with engine.connect() as conn:
            md = MetaData()
            md.reflect(bind=conn)
            names = sorted(md.tables)
            return dump(conn, names), {n: [c.name for c in md.tables[n].columns] for n in names}
    finally:
        engine.dispose()


@pytest.mark.parametrize("case", _case_names() if shared_dir() else ["<corpus missing>"])
def test_round_changes_only_what_oar3s_kamelot_changes(case, tmp_path, monkeypatch):
    shared = require_shared()
    check = load_check(shared)
    case_dir = shared / "conformance" / case
    db = check.prepare_run_dir(case_dir, tmp_path)
    before, columns = _snapshot(db)
    monkeypatch.setenv("OARCONFFILE", str(tmp_path / "oar.conf"))
    argv = json.loads((case_dir / "case.json").read_text())["argv"]
    assert kamelot.main(argv) == 0
    after, _ = _snapshot(db)

    assert set(after) == set(before), "tables created or dropped"
    for table in sorted(before):
        if table in GANTT:
            assert set(before[table]) <= set(after[table]), f"{table}: rows removed"
            continue
        if table != "jobs":
            assert after[table] == before[table], f"{table} changed"
            continue
        kept = [i for i, c in enumerate(columns["jobs"]) if c not in JOB_COLUMNS_WRITTEN]
        assert _project(after["jobs"], kept) == _project(before["jobs"], kept), \
            f"jobs columns other than {sorted(JOB_COLUMNS_WRITTEN)} changed"


def _project(rows: list[tuple], kept: list[int]) -> list[tuple]:
    """The rows restricted to the ``kept`` columns, sorted."""
    return sorted((tuple(r[i] for i in kept) for r in rows), key=repr)
