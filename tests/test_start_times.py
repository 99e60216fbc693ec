"""``jobs.start_time`` after a round: the state OAR3's meta-scheduler reads back (trap T22).

After an external scheduler returns, OAR3's meta-scheduler reads the queue's
new gantt rows ordered by ``jobs.start_time`` and splits its slot set in that
order; its splits assert that they come in start order.  These tests replay
that read-back contract without OAR3, on SQLite and on a real PostgreSQL
server:

* the predicted jobs of the queue, ordered by ``jobs.start_time`` (then id),
  come in gantt start order, and each holds its gantt start;
* every job considered but not placed holds -1; jobs never reached (round
  cap) keep their value;
* jobs already in the gantt hold their gantt start (OAR3's kamelot loads them
  as ORM rows and sets it).
"""
from __future__ import annotations

from pathlib import Path

import pytest
from sqlalchemy import text
from sqlalchemy.engine import Connection

from oarsched.oar.submit import add_job, add_reservation, add_running_job
from tests.oarcase import NOW, Case, make_case
from tests.pgserver import pg_server, pg_url  # noqa: F401  (fixtures)

OLD = 12345
"""A ``jobs.start_time`` no round writes: what a job never reached keeps."""


def _setup(conn: Connection) -> dict[str, int]:
    """2 nodes x 4 cores: a running job and a reservation in the gantt, then waiting jobs that
    start in an order unlike their ids, one that never fits, one that depends on it."""
    ids = {
        "running": add_running_job(conn, start_time=NOW - 50, resource_ids=[1, 2, 3, 4], walltime=1000),
        # its gantt start differs from jobs.start_time, as after a push to now+1 by the meta-scheduler
        "ar": add_reservation(conn, start_time=NOW + 5000, resource_ids=[5, 6], walltime=100),
        "big": add_job(conn, request="network_address=2", walltime=300, start_time=OLD),
        "small": add_job(conn, request="resource_id=2", walltime=100, start_time=OLD),
        "never": add_job(conn, request="resource_id=9", walltime=100, start_time=OLD),
        "after": add_job(conn, request="resource_id=1", walltime=100, dependencies=[0], start_time=OLD),
        "tail": add_job(conn, request="resource_id=1", walltime=100, start_time=OLD),
    }
    conn.execute(text("UPDATE job_dependencies SET job_id_required = :n WHERE job_id = :a"),
                 {"n": ids["never"], "a": ids["after"]})
    conn.execute(text("UPDATE jobs SET start_time = :s WHERE job_id = :j"), {"s": NOW + 4000, "j": ids["ar"]})
    return ids


def _make(tmp_path: Path, url: str | None = None, **conf: str) -> tuple[Case, dict[str, int]]:
    ids: dict[str, int] = {}
    case = make_case(tmp_path, lambda conn: ids.update(_setup(conn)), url=url, conf=conf)
    return case, ids


def _start_times(case: Case) -> dict[int, int]:
    eng = case.engine()
    try:
        with eng.connect() as conn:
            return {int(j): int(s) for j, s in conn.execute(text("SELECT job_id, start_time FROM jobs"))}
    finally:
        eng.dispose()


def _read_back_order(case: Case, queue: str = "default") -> list[tuple[int, int]]:
    """(job id, gantt start) of the queue's predicted waiting jobs, in the meta-scheduler's read-back order."""
    eng = case.engine()
    try:
        with eng.connect() as conn:
            rows = conn.execute(text(
                "SELECT j.job_id, p.start_time FROM jobs j "
                "JOIN moldable_job_descriptions m ON m.moldable_job_id = j.job_id "
                "JOIN gantt_jobs_predictions p ON p.moldable_job_id = m.moldable_id "
                "WHERE j.queue_name = :q AND j.state = 'Waiting' AND j.reservation = 'None' "
                "AND m.moldable_index = 'CURRENT' ORDER BY j.start_time, j.job_id"), {"q": queue}).all()
            return [(int(j), int(s)) for j, s in rows]
    finally:
        eng.dispose()


def _check_round(case: Case, ids: dict[str, int]) -> None:
    out = case.run()
    assert out.code == 0, out.stderr
    order = _read_back_order(case)
    starts = [s for _, s in order]
    assert starts == sorted(starts), order
    st = _start_times(case)
    for jid, start in order:
        assert st[jid] == start
    placed = {j for j, _ in order}
    assert placed == {ids["big"], ids["small"], ids["tail"]}
    # "small" fits beside the running job now; "big" needs both nodes: after the running job
    assert st[ids["small"]] == NOW and st[ids["big"]] > st[ids["small"]]
    assert st[ids["never"]] == -1 and st[ids["after"]] == -1
    assert st[ids["running"]] == NOW - 50
    assert st[ids["ar"]] == NOW + 5000


def test_read_back_contract_sqlite(tmp_path):
    case, ids = _make(tmp_path)
    _check_round(case, ids)


@pytest.mark.postgres
def test_read_back_contract_postgresql(tmp_path, pg_url):  # noqa: F811
    case, ids = _make(tmp_path, url=pg_url)
    _check_round(case, ids)


def test_jobs_past_the_round_cap_keep_their_start_time(tmp_path):
    case, ids = _make(tmp_path, MAX_JOB_PER_QUEUES_GROUP_SCHEDULING_ROUND="2")
    out = case.run()
    assert out.code == 0, out.stderr
    st = _start_times(case)
    assert st[ids["big"]] > NOW and st[ids["small"]] == NOW
    for name in ("never", "after", "tail"):
        assert st[ids[name]] == OLD, name


def test_a_queue_with_no_waiting_job_writes_nothing(tmp_path):
    """OAR3's kamelot stops before reading the gantt when the queue is empty: nothing is flushed."""
    case, ids = _make(tmp_path)
    out = case.run(queue="besteffort")
    assert out.code == 0, out.stderr
    st = _start_times(case)
    assert st[ids["ar"]] == NOW + 4000
    assert st[ids["big"]] == OLD
