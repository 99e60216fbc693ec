"""Hardening, round two (issue 13): what could stop a queue, hang a round or double-book.

Each test runs the real entrypoint on an OAR3 database (SQLite and/or
PostgreSQL, where the fault happened) and fails on the code before the fix.
"""
from __future__ import annotations

import os
import re
import resource
import signal
import subprocess
import sys
import time
from contextlib import contextmanager
from pathlib import Path
from typing import Iterator

import pytest
from sqlalchemy import create_engine, text
from sqlalchemy.engine import Connection
from sqlalchemy.exc import SQLAlchemyError

from oarsched.errors import PropertyError
from oarsched.oar.db import ROUND_LOCK_KEY
from oarsched.oar.submit import add_job, add_queue, add_running_job
from tests.oarcase import NOW, add_many_jobs, make_case
from tests.test_bad_input import BadJobCase


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


# ------------------------------------------------------------------ 4. values of the wrong type
def _update(sql: str):
    """A bad job: a good one whose row is then changed by ``sql`` (``:j`` its id, ``:m`` its moldable)."""
    def bad(conn: Connection) -> int:
        jid = add_job(conn, request="resource_id=1", walltime=10, dependencies=[])
        mid = conn.execute(text("SELECT moldable_id FROM moldable_job_descriptions WHERE moldable_job_id = :j"),
                           {"j": jid}).scalar()
        conn.execute(text(sql), {"j": jid, "m": mid})
        return jid
    return bad


GROUP_OF = "(SELECT res_group_id FROM job_resource_groups WHERE res_group_moldable_id = :m)"

# (column named in the message, SQL changing the bad job); SQLite keeps whatever it is given
BAD_JOB_VALUES_SQLITE = [
    ("jobs.submission_time", "UPDATE jobs SET submission_time = 'yesterday' WHERE job_id = :j"),
    ("jobs.submission_time", "UPDATE jobs SET submission_time = 1.5 WHERE job_id = :j"),
    ("jobs.submission_time", "UPDATE jobs SET submission_time = 9223372036854775807 WHERE job_id = :j"),
    ("jobs.job_user", "UPDATE jobs SET job_user = x'00ff' WHERE job_id = :j"),
    ("moldable_job_descriptions.moldable_walltime",
     "UPDATE moldable_job_descriptions SET moldable_walltime = 'long' WHERE moldable_id = :m"),
    ("moldable_job_descriptions.moldable_walltime",
     "UPDATE moldable_job_descriptions SET moldable_walltime = 1e300 WHERE moldable_id = :m"),
    ("job_resource_descriptions.res_job_value",
     f"UPDATE job_resource_descriptions SET res_job_value = 'two' WHERE res_job_group_id = {GROUP_OF}"),
    ("job_resource_descriptions.res_job_value",
     f"UPDATE job_resource_descriptions SET res_job_value = 99999999999999 WHERE res_job_group_id = {GROUP_OF}"),
    ("job_resource_descriptions.res_job_resource_type",
     f"UPDATE job_resource_descriptions SET res_job_resource_type = x'07' WHERE res_job_group_id = {GROUP_OF}"),
    ("job_resource_groups.res_group_property",
     "UPDATE job_resource_groups SET res_group_property = x'ff' WHERE res_group_moldable_id = :m"),
    ("job_dependencies.job_id_required", "INSERT INTO job_dependencies (job_id, job_id_required) VALUES (:j, 'one')"),
    ("job_types.type", "INSERT INTO job_types (job_id, type) VALUES (:j, x'ff')"),
]

BAD_JOB_VALUES_PG = [  # PostgreSQL checks types: what is left are values out of range
    ("jobs.submission_time", "UPDATE jobs SET submission_time = -5 WHERE job_id = :j"),
    ("jobs.submission_time", "UPDATE jobs SET submission_time = -2147483648 WHERE job_id = :j"),
]


def _bad_job_case(tmp_path: Path, sql: str, url: str | None) -> BadJobCase:
    return BadJobCase(tmp_path, _update(sql), url=url)


@pytest.mark.parametrize("column, sql", BAD_JOB_VALUES_SQLITE)
def test_bad_value_in_a_job_row_sqlite(tmp_path: Path, column: str, sql: str):
    _bad_job_case(tmp_path, sql, None).run_and_check(column)


@pytest.mark.postgres
@pytest.mark.parametrize("column, sql", BAD_JOB_VALUES_PG)
def test_bad_value_in_a_job_row_postgresql(tmp_path: Path, pg_url: str, column: str, sql: str):
    _bad_job_case(tmp_path, sql, pg_url).run_and_check(column)


# A running job on node-2 (resources 5-8) until NOW + 990 whose gantt row or walltime is then broken,
# and a waiting job asking for a whole node: it must not be given node-2 before the running job ends.
BAD_GANTT_VALUES = {
    "sqlite": [
        ("gantt_jobs_predictions.start_time", "UPDATE gantt_jobs_predictions SET start_time = 'soon'"),
        ("gantt_jobs_predictions.start_time", "UPDATE gantt_jobs_predictions SET start_time = 1e300"),
        ("moldable_job_descriptions.moldable_walltime",
         "UPDATE moldable_job_descriptions SET moldable_walltime = 'long' WHERE moldable_job_id = :j"),
        ("moldable_job_descriptions.moldable_walltime",
         "UPDATE moldable_job_descriptions SET moldable_walltime = 9223372036854775807 WHERE moldable_job_id = :j"),
    ],
    "postgresql": [
        ("gantt_jobs_predictions.start_time", "UPDATE gantt_jobs_predictions SET start_time = -2147483648"),
        ("moldable_job_descriptions.moldable_walltime",
         "UPDATE moldable_job_descriptions SET moldable_walltime = -5 WHERE moldable_job_id = :j"),
    ],
}


def _gantt_case(tmp_path: Path, sql: str, url: str | None):
    ids = {}

    def setup(conn: Connection) -> None:
        ids["running"] = add_running_job(conn, start_time=NOW - 10, resource_ids=[5, 6, 7, 8],
                                         request="network_address=1", walltime=1000)
        conn.execute(text(sql), {"j": ids["running"]})
        ids["first"] = add_job(conn, request="network_address=1", walltime=100)
        ids["second"] = add_job(conn, request="network_address=1", walltime=100)
    return make_case(tmp_path, setup, url=url), ids


def _check_gantt_case(case, ids, column: str) -> None:
    out = case.run()
    assert out.code == 0, out.stderr
    assert re.search(rf"job {ids['running']}\b.*{re.escape(column)}", out.stderr), out.stderr
    gantt = {}  # the waiting jobs' rows (the running job's are broken)
    with case.engine().connect() as conn:
        for jid in (ids["first"], ids["second"]):
            rows = conn.execute(text(
                "SELECT p.start_time, r.resource_id FROM gantt_jobs_predictions p JOIN gantt_jobs_resources r "
                "ON r.moldable_job_id = p.moldable_job_id WHERE p.moldable_job_id = :m ORDER BY r.resource_id"),
                {"m": jid}).all()  # one moldable per job, ids in step with the job ids
            if rows:
                gantt[jid] = (rows[0][0], [r[1] for r in rows])
    assert gantt[ids["first"]] == (NOW, [1, 2, 3, 4])
    second = gantt.get(ids["second"])  # after the first, or after the running job: never on node-2 before it ends
    assert second is None or second[0] >= NOW + 100 and (second[1] == [1, 2, 3, 4] or second[0] >= NOW + 990)


@pytest.mark.parametrize("column, sql", BAD_GANTT_VALUES["sqlite"])
def test_bad_value_in_a_running_job_sqlite(tmp_path: Path, column: str, sql: str):
    _check_gantt_case(*_gantt_case(tmp_path, sql, None), column)


@pytest.mark.postgres
@pytest.mark.parametrize("column, sql", BAD_GANTT_VALUES["postgresql"])
def test_bad_value_in_a_running_job_postgresql(tmp_path: Path, pg_url: str, column: str, sql: str):
    _check_gantt_case(*_gantt_case(tmp_path, sql, pg_url), column)


BAD_RESOURCE_VALUES = {
    "sqlite": [
        ("resources.available_upto", "UPDATE resources SET available_upto = 'never' WHERE resource_id = 2"),
        ("resources.available_upto", "UPDATE resources SET available_upto = 1e300 WHERE resource_id = 2"),
        ("resources.resource_id", "UPDATE resources SET resource_id = -2 WHERE resource_id = 2"),
        ("resources.type", "UPDATE resources SET type = x'00' WHERE resource_id = 2"),
    ],
    "postgresql": [
        ("resources.resource_id", "UPDATE resources SET resource_id = -2 WHERE resource_id = 2"),
    ],
}


def _check_resource_case(tmp_path: Path, sql: str, url: str | None, column: str) -> None:
    def setup(conn: Connection) -> None:
        add_job(conn, request="resource_id=2", walltime=100)
        add_job(conn, request="network_address=1", walltime=200)
    case = make_case(tmp_path, setup, url=url)
    case.execute(sql)
    out = case.run()
    assert out.code == 0, out.stderr
    assert re.search(rf"resource .*{re.escape(column)}.*resource skipped", out.stderr), out.stderr
    gantt = case.gantt()
    assert gantt[1] == (NOW, [1, 3])  # resource 2 is not there
    assert 2 not in gantt[2][1] and len(gantt[2][1]) == 4


@pytest.mark.parametrize("column, sql", BAD_RESOURCE_VALUES["sqlite"])
def test_bad_value_in_a_resource_row_sqlite(tmp_path: Path, column: str, sql: str):
    _check_resource_case(tmp_path, sql, None, column)


@pytest.mark.postgres
@pytest.mark.parametrize("column, sql", BAD_RESOURCE_VALUES["postgresql"])
def test_bad_value_in_a_resource_row_postgresql(tmp_path: Path, pg_url: str, column: str, sql: str):
    _check_resource_case(tmp_path, sql, pg_url, column)


# ------------------------------------------------------------------ 3. rounds serialised per database
HOLD = 6.0
"""Seconds the test holds a lock while the rounds start (long enough for two interpreters to reach it)."""


def _two_queue_case(tmp_path: Path, url: str | None, timeout: str = "60"):
    def setup(conn: Connection) -> None:
        add_queue(conn, "other", 1)
        for queue in ("default", "other"):
            for _ in range(3):
                add_job(conn, request="network_address=1", walltime=100, queue=queue)
    return make_case(tmp_path, setup, url=url, conf={"SCHEDULER_TIMEOUT": timeout})


def _spawn(case, queue: str) -> subprocess.Popen:
    env = dict(os.environ, OARCONFFILE=str(case.conf))
    return subprocess.Popen([sys.executable, "-m", "oarsched.oar.kamelot", queue, str(NOW), "x"], env=env,
                            stdout=subprocess.DEVNULL, stderr=subprocess.PIPE, text=True, cwd=case.dir)


@contextmanager
def _holding(case, how: str) -> Iterator[Connection]:
    """A connection holding a lock until the block ends: ``"write"`` the SQLite write lock, ``"round"`` the
    round lock (PostgreSQL's advisory lock, SQLite's write lock), ``"gantt-share"`` / ``"gantt-exclusive"``
    a PostgreSQL table lock on gantt_jobs_predictions."""
    eng = case.engine()
    try:
        with eng.connect() as conn:
            if eng.dialect.name == "sqlite":
                conn.execution_options(isolation_level="AUTOCOMMIT")
                conn.exec_driver_sql("BEGIN IMMEDIATE")
            elif how == "round":
                conn.execute(text("SELECT pg_advisory_xact_lock(:k)"), {"k": ROUND_LOCK_KEY})
            else:
                mode = "SHARE" if how == "gantt-share" else "ACCESS EXCLUSIVE"
                conn.exec_driver_sql(f"LOCK TABLE gantt_jobs_predictions IN {mode} MODE")
            yield conn
            conn.exec_driver_sql("ROLLBACK") if eng.dialect.name == "sqlite" else conn.rollback()
    finally:
        eng.dispose()


def _overlaps(case) -> list[tuple]:
    """(resource, job, job) for every two jobs on a resource at overlapping times."""
    eng = case.engine()
    try:
        with eng.connect() as conn:
            rows = conn.execute(text(
                "SELECT r.resource_id, p.moldable_job_id, p.start_time, m.moldable_walltime "
                "FROM gantt_jobs_predictions p JOIN gantt_jobs_resources r ON r.moldable_job_id = p.moldable_job_id "
                "JOIN moldable_job_descriptions m ON m.moldable_id = p.moldable_job_id")).all()
    finally:
        eng.dispose()
    return [(a[0], a[1], b[1]) for a in rows for b in rows
            if a[0] == b[0] and a[1] < b[1] and a[2] < b[2] + b[3] and b[2] < a[2] + a[3]]


def _concurrent_rounds(tmp_path: Path, url: str | None) -> None:
    """Two queues scheduled at the same moment: the rounds read while the test holds back their writes."""
    case = _two_queue_case(tmp_path, url)
    how = "write" if url is None else "gantt-share"  # reads go through, writes wait
    with _holding(case, how):
        procs = [_spawn(case, q) for q in ("default", "other")]
        time.sleep(HOLD)
    outs = [p.communicate(timeout=120)[1] for p in procs]
    assert [p.returncode for p in procs] == [0, 0], outs
    assert len(case.gantt()) == 6, outs
    assert _overlaps(case) == [], outs


def test_concurrent_rounds_do_not_double_book_sqlite(tmp_path: Path):
    _concurrent_rounds(tmp_path, None)


@pytest.mark.postgres
def test_concurrent_rounds_do_not_double_book_postgresql(tmp_path: Path, pg_url: str):
    _concurrent_rounds(tmp_path, pg_url)


def _round_lock_held(tmp_path: Path, url: str | None) -> None:
    """The round lock held past SCHEDULER_TIMEOUT: the round gives up within it, exit 0, one line, nothing written."""
    case = _two_queue_case(tmp_path, url, timeout="2")
    with _holding(case, "round"):
        proc = _spawn(case, "default")
        _, err = proc.communicate(timeout=60)  # the lock is still held: the round ended by itself
    assert proc.returncode == 0, err
    lines = [ln for ln in err.splitlines() if ln.startswith("oarsched-kamelot:")]
    assert len(lines) == 1 and "another scheduling round is running" in lines[0], err
    assert "Traceback" not in err
    assert case.gantt() == {}


def test_round_lock_held_too_long_sqlite(tmp_path: Path):
    _round_lock_held(tmp_path, None)


@pytest.mark.postgres
def test_round_lock_held_too_long_postgresql(tmp_path: Path, pg_url: str):
    _round_lock_held(tmp_path, pg_url)


# ------------------------------------------------------------------ 5. lock and statement timeouts
@pytest.mark.postgres
def test_gantt_table_locked_past_the_timeout_postgresql(tmp_path: Path, pg_url: str):
    """A table lock on gantt_jobs_predictions never released: the round ends within SCHEDULER_TIMEOUT."""
    case = _two_queue_case(tmp_path, pg_url, timeout="2")
    with _holding(case, "gantt-exclusive"):
        proc = _spawn(case, "default")
        _, err = proc.communicate(timeout=60)  # the lock is still held: the round ended by itself
    assert proc.returncode == 1, err
    lines = [ln for ln in err.splitlines() if ln.startswith("oarsched-kamelot:")]
    assert len(lines) == 1 and re.search(r"(lock|statement) timeout", lines[0]), err
    assert case.gantt() == {}


# ------------------------------------------------------------------ 7. the smaller ones
@pytest.fixture
def case(tmp_path: Path):
    def setup(conn: Connection) -> None:
        add_job(conn, request="resource_id=2", walltime=100)
        add_job(conn, request="network_address=1", walltime=200)
    return make_case(tmp_path, setup)


def _one_error_line(err: str, *fragments: str) -> None:
    assert "Traceback" not in err and "Logging error" not in err, err
    lines = [ln for ln in err.splitlines() if ln.startswith("oarsched-kamelot:")]
    assert len(lines) == 1, err
    for frag in fragments:
        assert frag in lines[0], (frag, lines[0])


@pytest.mark.postgres
def test_sigint_is_one_line_postgresql(tmp_path: Path, pg_url: str):
    """SIGINT while the round waits for the round lock: one line, no traceback, nothing written.

    (On SQLite the wait is SQLite's busy handler, which Python's signal handling cannot cut short.)"""
    case = _two_queue_case(tmp_path, pg_url, timeout="600")
    with _holding(case, "round"):
        proc = _spawn(case, "default")
        time.sleep(HOLD)
        proc.send_signal(signal.SIGINT)
        _, err = proc.communicate(timeout=60)
    assert proc.returncode != 0
    _one_error_line(err, "interrupted")
    assert case.gantt() == {}


def test_log_disk_full(case):
    """LOG_FILE on a full disk (/dev/full): the round is written, no logging traceback on stderr."""
    case.write_conf({"LOG_FILE": "/dev/full", "LOG_LEVEL": "3"})
    out = case.run_process()
    assert out.code == 0, out.stderr
    assert "Traceback" not in out.stderr and "Logging error" not in out.stderr, out.stderr
    assert sorted(case.gantt()) == [1, 2]


@pytest.mark.postgres
def test_connection_lost_is_not_a_bad_property(tmp_path: Path, pg_server: str, pg_url: str):
    """The connection lost while a job's property is evaluated: a database error, not the job's fault."""
    from oarsched.model.properties import parse_property
    from oarsched.oar.db import OarDatabase
    from oarsched.oar.round_support import guarded_select

    case = make_case(tmp_path, url=pg_url)
    db = OarDatabase(case.url)
    admin = create_engine(pg_server, isolation_level="AUTOCOMMIT")
    try:
        with db.round_transaction() as conn:
            pid = conn.execute(text("SELECT pg_backend_pid()")).scalar()
            with admin.connect() as a:
                a.execute(text("SELECT pg_terminate_backend(:p)"), {"p": pid})
            with pytest.raises(SQLAlchemyError) as caught:
                guarded_select(db, conn)(parse_property("core > 2"))
            assert not isinstance(caught.value, PropertyError)
    except SQLAlchemyError:
        pass  # the rollback of a dead connection
    finally:
        admin.dispose()


def test_missing_sqlite_file_is_not_created(case, tmp_path: Path):
    path = tmp_path / "nowhere.sqlite"
    case.write_conf({"DB_BASE_FILE": str(path)})
    out = case.run()
    assert out.code == 1
    _one_error_line(out.stderr, str(path), "no such file")
    assert not path.exists()


def test_mixed_case_resource_order_column_sqlite(tmp_path: Path):
    """A site column ``Rank`` ordered as ``Rank DESC``: SQLite's names ignore case, the order holds."""
    def setup(conn: Connection) -> None:
        conn.execute(text('ALTER TABLE resources ADD COLUMN "Rank" INTEGER'))
        conn.execute(text('UPDATE resources SET "Rank" = resource_id'))
        add_job(conn, request="resource_id=2", walltime=100)
    case = make_case(tmp_path, setup, conf={"SCHEDULER_RESOURCE_ORDER": "Rank DESC"})
    out = case.run()
    assert out.code == 0, out.stderr
    assert case.gantt() == {1: (NOW, [7, 8])}


def test_endless_config_file(case):
    """OARCONFFILE=/dev/zero: one line, not a read until memory runs out (capped at 2 GB here)."""
    def limit_memory() -> None:
        resource.setrlimit(resource.RLIMIT_AS, (2 << 30, 2 << 30))

    env = dict(os.environ, OARCONFFILE="/dev/zero")
    proc = subprocess.run([sys.executable, "-m", "oarsched.oar.kamelot", "default", str(NOW), "x"], env=env,
                          capture_output=True, text=True, timeout=120, cwd=case.dir, preexec_fn=limit_memory)
    assert proc.returncode == 1
    _one_error_line(proc.stderr, "/dev/zero", "not an oar.conf")


# ------------------------------------------------------------------ 1. a deadline that holds
def _costly_group(k: int) -> str:
    """A property expression inside the grammar, close to the 64 KB limit: about half a second to parse."""
    text = "core IN (" + ",".join(str(100_000 * (k + 1) + i) for i in range(10_000))
    return text[:65_000].rsplit(",", 1)[0] + ")"


def test_costly_job_does_not_stall_its_queue(tmp_path: Path):
    """A job with 20 moldables of distinct long group properties, that never fits, comes first.

    Round 1 gives up on it when the placement budget runs out (logged with its id) and ends within
    SCHEDULER_TIMEOUT (not after evaluating all 20); round 2 places the other jobs first.
    """
    ids = {}

    def setup(conn: Connection) -> None:
        ids["costly"] = add_job(conn, moldables=[(100, [("network_address=3", _costly_group(k))])
                                                 for k in range(20)])
        ids["good"] = [add_job(conn, request="resource_id=2", walltime=100) for _ in range(2)]
    case = make_case(tmp_path, setup, conf={"SCHEDULER_TIMEOUT": "4", "LOG_LEVEL": "2"})
    started = time.monotonic()
    first = case.run_process()
    elapsed = time.monotonic() - started
    assert first.code == 0, first.stderr
    assert re.search(rf"job {ids['costly']}: given up for this round", first.stderr), first.stderr
    assert elapsed < 4 + 6, first.stderr  # 20 expressions take ~12 s; the budget is 4 s (+ interpreter start)
    second = case.run_process("default", str(NOW + 1), "x")
    assert second.code == 0, second.stderr
    gantt = case.gantt()
    assert set(ids["good"]) <= set(gantt), second.stderr
    assert ids["costly"] not in gantt


def test_expression_the_database_cannot_evaluate_is_the_jobs_error(tmp_path: Path):
    """An OR of 4,000 terms is in the grammar but too deep for SQLite: that job is skipped, the round goes on."""
    deep = " OR ".join(f"core = {i}" for i in range(4000))
    BadJobCase(tmp_path, lambda conn: add_job(conn, request="resource_id=1", walltime=10, properties=deep)
               ).run_and_check("bad property expression", "too large")
