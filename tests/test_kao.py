"""``oarsched-kao``: the meta round's decisions, its failure modes, and the paths where OAR3 crashes.

Notifications go through real sockets on 127.0.0.1 (ZeroMQ PULL listeners
for Almighty and the bipbip commander, TCP servers for oarsub); the database
is a real SQLite file or a real PostgreSQL server.
"""
from __future__ import annotations

import io
import json
import os
import socket
import threading
import time
from collections.abc import Callable, Iterator
from contextlib import contextmanager, redirect_stderr
from pathlib import Path

import pytest
import zmq
from sqlalchemy import create_engine, event, text

from oarsched.engine.meta import (
    BesteffortJob,
    GanttJob,
    Oar3ResourceIndex,
    besteffort_to_kill,
    checkpoint_first,
    cut_message_walltime,
    late_walltime,
    reservation_status,
)
from oarsched.oar import kao
from oarsched.oar.config import OarConfig
from oarsched.oar.submit import add_job, add_reservation, add_running_job
from tests.oarcase import NOW, Case, _logging_restored, make_case

# ------------------------------------------------------------------------------- the engine's decisions


def test_besteffort_kill_follows_the_last_claimant_of_each_resource():
    be1 = BesteffortJob(id=1, resources=[1, 2])
    be2 = BesteffortJob(id=2, resources=[3, 4])
    be3 = BesteffortJob(id=3, resources=[7])
    jobs = [GanttJob(id=10, moldable_id=10, start_time=NOW, walltime=60, resources=[3, 1]),
            GanttJob(id=11, moldable_id=11, start_time=NOW, walltime=60, resources=[5, 6])]
    kills = besteffort_to_kill(jobs, [be1, be2, be3])
    assert [b.id for b in kills] == [2, 1]  # in order of first claim (resource 3, then 1)
    assert besteffort_to_kill(jobs[1:], [be1, be2, be3]) == []


def test_checkpointable_besteffort_job_gets_its_grace_period():
    be = BesteffortJob(id=1, resources=[1], checkpoint=600)
    assert checkpoint_first(be, None, NOW)  # never asked: ask now
    assert checkpoint_first(be, NOW - 600, NOW)  # grace period running
    assert not checkpoint_first(be, NOW - 601, NOW)  # over: kill
    assert not checkpoint_first(BesteffortJob(id=2, resources=[1]), None, NOW)


def test_late_reservation_keeps_its_end():
    assert late_walltime(1860, NOW - 120, NOW) == 1740
    assert cut_message_walltime("R=4,W=0:30:00,J=R,Q=default", 1740) == "R=4,W=0:29:0,J=R,Q=default"
    assert cut_message_walltime("R=4,W=1860,J=P,Q=default", 1740) == "R=4,W=1860,J=P,Q=default"


@pytest.mark.parametrize("start,states,action", [
    (NOW + 10, ["Alive"] * 4, "none"),                      # not yet
    (NOW - 2000, ["Alive"] * 4, "expire"),                  # W=1000 is over
    (NOW - 10, ["Dead"] * 4, "push"),                       # nothing there: wait
    (NOW - 10, ["Alive", "Suspected", "Alive", "Alive"], "push"),   # within the timeout (OAR3 crashes: M13)
    (NOW - 400, ["Alive", "Suspected", "Alive", "Alive"], "reduce"),  # after it
    (NOW - 10, ["Alive", "Absent", "Alive", "Alive"], "none"),  # Absent counts as there
])
def test_accepted_reservation_status(start, states, action):
    index = Oar3ResourceIndex(list(zip([1, 2, 3, 4], states)))
    job = GanttJob(id=1, moldable_id=1, start_time=start, walltime=1000, resources=[1, 2, 3, 4],
                   reservation="Scheduled")
    assert reservation_status(job, NOW, index, timeout=300).action == action


# ------------------------------------------------------------------------------- real endpoints

class Pull:
    """A ZeroMQ PULL socket on 127.0.0.1 collecting JSON messages in a thread."""

    def __init__(self, on_message: Callable[[dict], None] | None = None) -> None:
        self.ctx = zmq.Context()
        self.sock = self.ctx.socket(zmq.PULL)
        self.sock.setsockopt(zmq.LINGER, 0)
        self.port = self.sock.bind_to_random_port("tcp://127.0.0.1")
        self.messages: list[dict] = []
        self.on_message = on_message
        self.errors: list[BaseException] = []
        self._stop = threading.Event()
        self._thread = threading.Thread(target=self._loop, daemon=True)
        self._thread.start()

    def _loop(self) -> None:
        while not self._stop.is_set():
            if self.sock.poll(50):
                msg = json.loads(self.sock.recv())
                try:
                    if self.on_message:
                        self.on_message(msg)
                except BaseException as exc:  # noqa: BLE001 - reported by the test
                    self.errors.append(exc)
                self.messages.append(msg)

    def close(self, wait: float = 0.5) -> None:
        time.sleep(wait)
        self._stop.set()
        self._thread.join(5)
        self.sock.close()
        self.ctx.term()


class TcpServer:
    """A TCP server on 127.0.0.1 keeping what each connection sent."""

    def __init__(self) -> None:
        self.sock = socket.create_server(("127.0.0.1", 0))
        self.port = self.sock.getsockname()[1]
        self.texts: list[str] = []
        self._thread = threading.Thread(target=self._loop, daemon=True)
        self._thread.start()

    def _loop(self) -> None:
        while True:
            try:
                conn, _ = self.sock.accept()
            except OSError:
                return
            with conn:
                data = b""
                while chunk := conn.recv(4096):
                    data += chunk
                self.texts.append(data.decode())

    def close(self) -> None:
        time.sleep(0.2)
        self.sock.close()


def free_port() -> int:
    s = socket.socket()
    s.bind(("127.0.0.1", 0))
    port = s.getsockname()[1]
    s.close()
    return port


@contextmanager
def endpoints(case: Case, *, bipbip: bool = True, almighty: bool = True,
              on_bipbip: Callable[[dict], None] | None = None) -> Iterator[dict]:
    """Almighty and bipbip listeners (or ports nobody listens on), written into the case's oar.conf."""
    got = {"almighty": Pull() if almighty else None, "bipbip": Pull(on_bipbip) if bipbip else None}
    case.write_conf({"SERVER_HOSTNAME": "127.0.0.1", "BIPBIP_COMMANDER_SERVER": "127.0.0.1",
                     "APPENDICE_SERVER_PORT": str(got["almighty"].port if almighty else free_port()),
                     "BIPBIP_COMMANDER_PORT": str(got["bipbip"].port if bipbip else free_port())})
    out = {"almighty": [], "bipbip": []}
    try:
        yield out
    finally:
        for name, pull in got.items():
            if pull is not None:
                pull.close()
                out[name] = pull.messages
                assert not pull.errors, pull.errors


def run(case: Case, now: int = NOW, env: dict | None = None) -> tuple[int, str]:
    """``oarsched-kao --now NOW`` in this process: (exit code, stderr)."""
    err = io.StringIO()
    saved = dict(os.environ)
    os.environ.update({"OARCONFFILE": str(case.conf), "OARDO_USER": "oar", **(env or {})})
    try:
        with redirect_stderr(err), _logging_restored():
            code = kao.main(["--now", str(now)])
    finally:
        os.environ.clear()
        os.environ.update(saved)
    return code, err.getvalue()


def query(case: Case, sql: str) -> list[tuple]:
    eng = create_engine(case.url)
    try:
        with eng.connect() as conn:
            return [tuple(r) for r in conn.execute(text(sql))]
    finally:
        eng.dispose()


def dump(case: Case) -> dict[str, list[tuple]]:
    """Every row of the tables a round writes."""
    tables = ["jobs", "job_state_logs", "gantt_jobs_predictions", "gantt_jobs_resources",
              "gantt_jobs_predictions_visu", "gantt_jobs_resources_visu", "assigned_resources",
              "event_logs", "frag_jobs", "moldable_job_descriptions", "resources"]
    return {t: sorted(query(case, f"SELECT * FROM {t}"), key=repr) for t in tables}


# ------------------------------------------------------------------------------- launching


def test_a_job_is_told_to_run_only_once_it_is_toLaunch_in_the_database(tmp_path: Path):
    case = make_case(tmp_path, lambda c: add_job(c, request="resource_id=2", walltime=600))

    def launched(msg: dict) -> None:
        assert msg == {"job_id": 1, "cmd": "OARRUN", "args": []}
        assert query(case, "SELECT state, start_time FROM jobs WHERE job_id = 1") == [("toLaunch", NOW)]

    with endpoints(case, on_bipbip=launched) as got:
        code, err = run(case)
    assert code == 0, err
    assert got["bipbip"] == [{"job_id": 1, "cmd": "OARRUN", "args": []}]
    assert query(case, "SELECT resource_id FROM assigned_resources") == [(1,), (2,)]
    assert query(case, "SELECT job_state, date_start FROM job_state_logs") == [("toLaunch", NOW)]


def test_bipbip_commander_down_the_round_is_committed_and_the_failure_logged(tmp_path: Path):
    case = make_case(tmp_path, lambda c: add_job(c, request="resource_id=2", walltime=600))
    with endpoints(case, bipbip=False):
        code, err = run(case)
    assert code == 0, err
    assert query(case, "SELECT state FROM jobs") == [("toLaunch",)]
    assert "cannot notify the bipbip commander" in err


def test_almighty_port_as_a_number_in_oar_conf(tmp_path: Path):
    """OAR3 joins the parsed int to a string and crashes (M15); the port is used as written."""
    case = make_case(tmp_path, lambda c: add_reservation(c, start_time=NOW - 5000, resource_ids=[1],
                                                         walltime=600))
    with endpoints(case) as got:
        code, err = run(case)
    assert code == 0, err
    assert isinstance(OarConfig.load(case.conf).get("APPENDICE_SERVER_PORT"), int)  # what OAR3 trips on
    assert got["almighty"] == [{"cmd": "ChState"}]  # the expired reservation went to Error
    assert query(case, "SELECT state FROM jobs") == [("Error",)]


# ------------------------------------------------------------------------------- OAR3's crash paths


def test_to_error_without_info_type(tmp_path: Path):
    """OAR3 splits a NULL info_type and crashes (M12): the job goes to Error, nobody to tell."""
    case = make_case(tmp_path, lambda c: add_job(c, walltime=600, state="toError", reservation="Scheduled",
                                                 message="This advance reservation cannot run"))
    with endpoints(case) as got:
        code, err = run(case)
    assert code == 0, err
    assert query(case, "SELECT state FROM jobs") == [("Error",)]
    assert got["almighty"] == [{"cmd": "ChState"}]


def test_unreachable_oarsub_of_an_accepted_reservation(tmp_path: Path):
    """OAR3 crashes (M11); intended: event, frag, exit 2."""
    port = free_port()
    case = make_case(tmp_path, lambda c: add_reservation(
        c, start_time=NOW + 3600, resource_ids=[1], walltime=600,
        extra={"state": "toAckReservation", "info_type": f"127.0.0.1:{port}"}))
    with endpoints(case):
        code, err = run(case)
    assert code == kao.EXIT_BESTEFFORT_KILL, err
    assert query(case, "SELECT type, job_id FROM event_logs ORDER BY type") == [
        ("CANNOT_NOTIFY_OARSUB", 1), ("FRAG_JOB_REQUEST", 1)]
    assert query(case, "SELECT frag_id_job, frag_date FROM frag_jobs") == [(1, NOW)]


def test_accepted_reservation_told_and_acknowledged(tmp_path: Path):
    server = TcpServer()
    case = make_case(tmp_path, lambda c: add_reservation(
        c, start_time=NOW + 3600, resource_ids=[1], walltime=600,
        extra={"state": "toAckReservation", "info_type": f"127.0.0.1:{server.port}"}))
    with endpoints(case):
        code, err = run(case)
    server.close()
    assert code == 0, err
    assert server.texts == ["GOOD RESERVATION\n\n"]
    assert query(case, "SELECT state FROM jobs") == [("Waiting",)]


def test_late_reservation_with_a_resource_not_alive_waits_within_the_timeout(tmp_path: Path):
    """OAR3 crashes on its log line (M13); intended: push the start to now+1, launch nothing."""
    def setup(c):
        add_reservation(c, start_time=NOW - 100, resource_ids=[1, 2], walltime=3600)
        c.execute(text("UPDATE resources SET state = 'Suspected' WHERE resource_id = 2"))
    case = make_case(tmp_path, setup, conf={"RESERVATION_WAITING_RESOURCES_TIMEOUT": "300"})
    with endpoints(case) as got:
        code, err = run(case)
    assert code == 0, err
    assert query(case, "SELECT start_time FROM gantt_jobs_predictions") == [(NOW + 1,)]
    assert query(case, "SELECT state FROM jobs") == [("Waiting",)]
    assert got["bipbip"] == []


def test_checkpointable_besteffort_job_is_asked_to_checkpoint_before_being_killed(tmp_path: Path):
    """OAR3 crashes (M10); OAR2's rule: signal first, kill after the grace period."""
    def setup(c):
        add_running_job(c, start_time=NOW - 100, resource_ids=[1, 2, 3, 4, 5, 6, 7, 8], walltime=7200,
                        queue="besteffort", types=["besteffort"], extra={"checkpoint": 600})
        add_job(c, request="resource_id=8", walltime=600)
    case = make_case(tmp_path, setup)
    with endpoints(case) as got:
        code, err = run(case)
    assert code == kao.EXIT_BESTEFFORT_KILL, err
    assert got["almighty"] == [{"cmd": "ChState"}]
    assert query(case, "SELECT type, job_id, date FROM event_logs") == [("CHECKPOINT", 1, NOW)]
    assert query(case, "SELECT * FROM frag_jobs") == []
    assert query(case, "SELECT state FROM jobs ORDER BY job_id") == [("Running",), ("Waiting",)]
    # the grace period over, the next round kills it
    with endpoints(case) as got:
        code, err = run(case, now=NOW + 601)
    assert code == kao.EXIT_BESTEFFORT_KILL, err
    assert query(case, "SELECT frag_id_job FROM frag_jobs") == [(1,)]
    assert sorted(query(case, "SELECT type FROM event_logs")) == [
        ("BESTEFFORT_KILL",), ("CHECKPOINT",), ("FRAG_JOB_REQUEST",)]


# ------------------------------------------------------------------------------- the database lost mid-round

@pytest.mark.postgres
def test_database_lost_mid_round_writes_nothing_and_tells_nobody(tmp_path: Path, pg_server: str, pg_url: str):
    """The round's connection terminated while it launches: exit 1, one line, the database as before, no message."""
    def setup(c):
        add_running_job(c, start_time=NOW - 100, resource_ids=[1, 2], walltime=7200)
        for _ in range(3):
            add_job(c, request="resource_id=2", walltime=600)
    case = make_case(tmp_path, setup, url=pg_url)
    before = dump(case)
    admin = create_engine(pg_server, isolation_level="AUTOCOMMIT")

    def kill_on_launch(conn, cursor, statement, parameters, context, executemany):
        if statement.startswith("INSERT INTO assigned_resources"):
            pid = conn.exec_driver_sql("SELECT pg_backend_pid()").scalar()
            with admin.connect() as a:
                a.execute(text("SELECT pg_terminate_backend(:p)"), {"p": pid})

    from sqlalchemy.engine import Engine

    event.listen(Engine, "before_cursor_execute", kill_on_launch)
    try:
        with endpoints(case) as got:
            code, err = run(case)
    finally:
        event.remove(Engine, "before_cursor_execute", kill_on_launch)
        admin.dispose()
    assert code == 1
    lines = [ln for ln in err.splitlines() if ln.startswith("oarsched-kao:")]
    assert len(lines) == 1 and "database error" in lines[0] and "Traceback" not in err, err
    assert dump(case) == before
    assert got == {"almighty": [], "bipbip": []}


# ------------------------------------------------------------------------------- resuming, energy saving

def test_resuming_noop_job_goes_back_to_running(tmp_path: Path):
    """OAR3 calls set_job_state without its session here (M14)."""
    def setup(c):
        add_running_job(c, start_time=NOW - 100, resource_ids=[1, 2], walltime=7200, state="Resuming",
                        types=["noop"], suspended="YES")
        c.execute(text("UPDATE resources SET suspended_jobs = 'YES' WHERE resource_id IN (1, 2)"))
    case = make_case(tmp_path, setup)
    with endpoints(case):
        code, err = run(case)
    assert code == 0, err
    assert query(case, "SELECT state FROM jobs") == [("Running",)]
    assert query(case, "SELECT job_state, date_start FROM job_state_logs") == [("Running", NOW)]
    assert query(case, "SELECT DISTINCT suspended_jobs FROM resources") == [("NO",)]


def test_resuming_job_whose_resume_script_fails_is_fragged(tmp_path: Path):
    case = make_case(tmp_path, lambda c: add_running_job(c, start_time=NOW - 100, resource_ids=[1], walltime=7200,
                                                         state="Resuming"),
                     conf={"JUST_BEFORE_RESUME_EXEC_FILE": "exit 3 #"})
    with endpoints(case) as got:
        code, err = run(case)
    assert code == 0, err
    assert query(case, "SELECT state FROM jobs") == [("Resuming",)]
    assert sorted(query(case, "SELECT type FROM event_logs")) == [("FRAG_JOB_REQUEST",), ("RESUME_SCRIPT_ERROR",)]
    assert got["almighty"] == [{"cmd": "Qdel"}]


def test_resuming_waits_while_another_job_runs_on_its_resources(tmp_path: Path):
    def setup(c):
        add_running_job(c, start_time=NOW - 100, resource_ids=[1, 2], walltime=7200, state="Resuming", types=["noop"])
        add_running_job(c, start_time=NOW - 50, resource_ids=[2, 3], walltime=7200)
    case = make_case(tmp_path, setup)
    with endpoints(case):
        code, err = run(case)
    assert code == 0, err
    assert query(case, "SELECT state FROM jobs ORDER BY job_id") == [("Resuming",), ("Running",)]


def test_energy_saving_commands_get_the_node_names_on_stdin(tmp_path: Path):
    """OAR3 raises NotImplementedError for these commands (M16)."""
    def setup(c):
        c.execute(text("UPDATE resources SET state = 'Absent' WHERE network_address = 'node-1'"))
        c.execute(text("UPDATE resources SET available_upto = 2147483646, last_job_date = :d "
                       "WHERE network_address = 'node-2'"), {"d": NOW - 3600})
        add_job(c, request="network_address=1", walltime=600, properties="network_address = 'node-1'")
    halted, woken = tmp_path / "halted", tmp_path / "woken"
    case = make_case(tmp_path, setup, conf={
        "ENERGY_SAVING_MODE": "metascheduler_decision_making",
        "SCHEDULER_NODE_MANAGER_SLEEP_CMD": f"cat > {halted}", "SCHEDULER_NODE_MANAGER_WAKE_UP_CMD": f"cat > {woken}",
        "SCHEDULER_NODE_MANAGER_IDLE_TIME": "600", "SCHEDULER_NODE_MANAGER_SLEEP_TIME": "600",
        "SCHEDULER_NODE_MANAGER_WAKEUP_TIME": "60"})
    with endpoints(case) as got:
        code, err = run(case)
    assert code == 0, err
    assert halted.read_text() == "node-2\n"
    assert woken.read_text() == "node-1\n"
    assert got["bipbip"] == []  # the job waits for its Absent node
    assert query(case, "SELECT state FROM jobs") == [("Waiting",)]


def test_energy_saving_through_greta(tmp_path: Path):
    greta = Pull()
    def setup(c):
        c.execute(text("UPDATE resources SET available_upto = 2147483646, last_job_date = :d "
                       "WHERE network_address = 'node-2'"), {"d": NOW - 3600})
    case = make_case(tmp_path, setup, conf={
        "ENERGY_SAVING_MODE": "metascheduler_decision_making", "ENERGY_SAVING_INTERNAL": "yes",
        "ENERGY_SAVING_NODE_MANAGER_SLEEP_CMD": "halt", "SCHEDULER_NODE_MANAGER_IDLE_TIME": "600",
        "SCHEDULER_NODE_MANAGER_SLEEP_TIME": "600", "GRETA_SERVER": "127.0.0.1", "GRETA_PORT": str(greta.port)})
    with endpoints(case):
        code, err = run(case)
    greta.close()
    assert code == 0, err
    assert greta.messages == [{"cmd": "HALT", "nodes": ["node-2"]}]


# ------------------------------------------------------------------------------- walltime change requests

def _walltime_case(tmp_path: Path, pending: int, *, next_job_in: int | None = None, conf: dict | None = None,
                   force: str = "NO"):
    def setup(c):
        add_running_job(c, start_time=NOW - 600, resource_ids=[1, 2], walltime=1200)
        c.execute(text("INSERT INTO walltime_change (job_id, pending, force, delay_next_jobs, granted, "
                       "granted_with_force, granted_with_delay_next_jobs) VALUES (1, :p, :f, 'NO', 0, 0, 0)"),
                  {"p": pending, "f": force})
        if next_job_in is not None:  # a reservation on resource 2 starting then (kept in the gantt)
            add_reservation(c, start_time=NOW + next_job_in, resource_ids=[2], walltime=600)
    return make_case(tmp_path, setup, conf={"WALLTIME_CHANGE_ENABLED": "yes", **(conf or {})})


def test_walltime_extension_granted_whole_when_nothing_follows(tmp_path: Path):
    """OAR3 calls process_walltime_change_requests without session and config (M9)."""
    case = _walltime_case(tmp_path, 1800)
    with endpoints(case):
        code, err = run(case)
    assert code == 0, err
    assert query(case, "SELECT moldable_walltime FROM moldable_job_descriptions WHERE moldable_job_id = 1") == [(3000,)]
    assert query(case, "SELECT pending, granted, force FROM walltime_change") == [(0, 1800, "NO")]
    assert query(case, "SELECT type, description, to_check FROM event_logs") == [
        ("WALLTIME", "walltime changed: 0:50:0 (granted: +0:30:0/pending: 0:0:0)", "NO")]
    # the job's gantt rows use the new walltime: its end moved
    assert query(case, "SELECT message FROM jobs WHERE job_id = 1") == [("R=2,J=P,Q=default",)]


def test_walltime_extension_stops_before_the_next_job(tmp_path: Path):
    case = _walltime_case(tmp_path, 1800, next_job_in=1200)  # the job ends at NOW+600; sec 0
    with endpoints(case):
        code, err = run(case)
    assert code == 0, err
    # possible end: next start - sec - 1 = NOW+1199; granted 599 of 1800
    assert query(case, "SELECT moldable_walltime FROM moldable_job_descriptions WHERE moldable_job_id = 1") == [(1799,)]
    assert query(case, "SELECT pending, granted FROM walltime_change") == [(1201, 599)]


def test_walltime_extension_waits_for_the_apply_time_and_goes_by_increments(tmp_path: Path):
    case = _walltime_case(tmp_path, 1800, conf={"WALLTIME_CHANGE_APPLY_TIME": "300", "WALLTIME_INCREMENT": "600"})
    with endpoints(case):
        run(case)  # ends in 600 s > 300: not yet
    assert query(case, "SELECT pending, granted FROM walltime_change") == [(1800, 0)]
    with endpoints(case):
        run(case, now=NOW + 400)
    assert query(case, "SELECT pending, granted FROM walltime_change") == [(1200, 600)]


def test_walltime_reduction_never_below_the_time_used(tmp_path: Path):
    case = _walltime_case(tmp_path, -1000)  # 600 s left: at most -600
    with endpoints(case):
        run(case)
    assert query(case, "SELECT moldable_walltime FROM moldable_job_descriptions WHERE moldable_job_id = 1") == [(600,)]
    assert query(case, "SELECT pending, granted FROM walltime_change") == [(-400, -600)]


def test_demo_shows_the_whole_meta_round(tmp_path: Path, capsys):
    from oarsched import cli

    with _logging_restored():
        assert cli.main(["demo", "--dir", str(tmp_path)]) == 0
    out = capsys.readouterr().out
    assert "the whole meta-scheduler round (oarsched-kao)" in out
    line = next(ln for ln in out.splitlines() if ln.strip().startswith("launched now"))
    launched = [int(x) for x in line.split(":", 1)[1].replace(",", " ").split()]
    eng = create_engine(f"sqlite:///{tmp_path / 'oar.sqlite'}")
    try:
        with eng.connect() as conn:
            got = [r[0] for r in conn.execute(text("SELECT job_id FROM jobs WHERE state = 'toLaunch' ORDER BY job_id"))]
    finally:
        eng.dispose()
    assert launched and got == launched


# ------------------------------------------------------------------------------- one round at a time

@contextmanager
def round_lock_held(case: Case, seconds: float) -> Iterator[None]:
    """Another scheduling round (``oarsched-kamelot``'s transaction) holding the database for ``seconds``."""
    from oarsched.oar.db import OarDatabase

    db = OarDatabase(case.url)
    taken = threading.Event()

    def hold() -> None:
        with db.round_transaction():
            taken.set()
            time.sleep(seconds)

    t = threading.Thread(target=hold)
    t.start()
    assert taken.wait(30)
    try:
        yield
    finally:
        t.join()
        db.engine.dispose()


@pytest.mark.parametrize("backend", ["sqlite", pytest.param("postgresql", marks=pytest.mark.postgres)])
def test_kao_waits_for_a_running_round_then_runs(tmp_path: Path, backend: str, request):
    url = request.getfixturevalue("pg_url") if backend == "postgresql" else None
    case = make_case(tmp_path, lambda c: add_job(c, request="resource_id=2", walltime=600), url=url)
    with endpoints(case) as got, round_lock_held(case, 1.5):
        code, err = run(case)
    assert code == 0, err
    assert query(case, "SELECT state FROM jobs") == [("toLaunch",)]
    assert got["bipbip"] == [{"job_id": 1, "cmd": "OARRUN", "args": []}]


@pytest.mark.parametrize("backend", ["sqlite", pytest.param("postgresql", marks=pytest.mark.postgres)])
def test_kao_gives_up_a_round_when_another_holds_the_database_too_long(tmp_path: Path, backend: str, request,
                                                                        monkeypatch):
    url = request.getfixturevalue("pg_url") if backend == "postgresql" else None
    case = make_case(tmp_path, lambda c: add_job(c, request="resource_id=2", walltime=600), url=url)
    monkeypatch.setattr(kao, "LOCK_WAIT_MIN", 0.5)
    case.write_conf({"SCHEDULER_TIMEOUT": "0"})
    before = dump(case)
    with endpoints(case) as got, round_lock_held(case, 4):
        code, err = run(case)
    assert code == 0, err
    lines = [ln for ln in err.splitlines() if ln.startswith("oarsched-kao:")]
    assert len(lines) == 1 and "another scheduling round is running" in lines[0], err
    assert dump(case) == before
    assert got == {"almighty": [], "bipbip": []}


def test_interactive_job_without_info_type_is_left_alone(tmp_path: Path):
    """OAR3 splits a NULL info_type (M12, start predictions too): nothing to tell, nothing fragged."""
    def setup(c):
        add_running_job(c, start_time=NOW - 100, resource_ids=list(range(1, 9)), walltime=7200)
        add_job(c, request="resource_id=2", walltime=600, job_type="INTERACTIVE")
    case = make_case(tmp_path, setup)
    with endpoints(case) as got:
        code, err = run(case)
    assert code == 0, err
    assert query(case, "SELECT * FROM frag_jobs") == [] and got["almighty"] == []
    assert query(case, "SELECT state FROM jobs ORDER BY job_id") == [("Running",), ("Waiting",)]


def test_extra_metasched_hook_called_before_each_queue_group(tmp_path: Path):
    from tests import kao_hook

    kao_hook.CALLS.clear()
    def setup(c):
        add_running_job(c, start_time=NOW - 100, resource_ids=[1], walltime=7200)
        add_job(c, request="resource_id=1", walltime=600)
    case = make_case(tmp_path, setup, conf={"EXTRA_METASCHED": "tests.kao_hook:record",
                                            "EXTRA_METASCHED_CONFIG": "alpha"})
    with endpoints(case):
        code, err = run(case)
    assert code == 0, err
    assert [(c["prev"], c["queues"]) for c in kao_hook.CALLS] == [(None, ["default"]), (["default"], ["besteffort"])]
    assert kao_hook.CALLS[0] == {"prev": None, "queues": ["default"], "now": NOW, "config": "alpha",
                                 "slot_sets": ["default"], "resources": 8, "scheduled": [1], "sec": 0, "waiting": 1}


def test_extra_metasched_hook_failure_is_logged_and_the_round_goes_on(tmp_path: Path):
    case = make_case(tmp_path, lambda c: add_job(c, request="resource_id=1", walltime=600),
                     conf={"EXTRA_METASCHED": "tests.kao_hook:broken"})
    with endpoints(case) as got:
        code, err = run(case)
    assert code == 0, err
    assert "EXTRA_METASCHED hook failed" in err and "site hook bug" in err
    assert got["bipbip"] == [{"job_id": 1, "cmd": "OARRUN", "args": []}]


def test_unknown_extra_metasched_is_a_one_line_config_error(tmp_path: Path):
    case = make_case(tmp_path, lambda c: add_job(c, request="resource_id=1", walltime=600),
                     conf={"EXTRA_METASCHED": "no_such_hook"})
    before = dump(case)
    with endpoints(case):
        code, err = run(case)
    assert code == 1
    lines = [ln for ln in err.splitlines() if ln.startswith("oarsched-kao:")]
    assert len(lines) == 1 and "EXTRA_METASCHED='no_such_hook'" in lines[0], err
    assert dump(case) == before


def test_a_second_round_with_nothing_changed_rewrites_no_gantt_row(tmp_path: Path):
    """The gantt and ``_visu`` are written by difference, moldable by moldable (OAR3 empties and refills them)."""
    def setup(c):
        add_running_job(c, start_time=NOW - 100, resource_ids=[1, 2, 3], walltime=7200)
        for request in ("resource_id=2", "resource_id=4", "network_address=1", "resource_id=8"):
            add_job(c, request=request, walltime=900)
    case = make_case(tmp_path, setup)
    with endpoints(case):
        assert run(case)[0] == 0
    after_first = dump(case)
    tables = ["gantt_jobs_predictions", "gantt_jobs_resources", "gantt_jobs_predictions_visu",
              "gantt_jobs_resources_visu"]
    case.execute("CREATE TABLE written (tbl TEXT, op TEXT)",
                 *[f"CREATE TRIGGER w_{t}_{op} AFTER {op} ON {t} BEGIN INSERT INTO written VALUES ('{t}', '{op}'); END"
                   for t in tables for op in ("INSERT", "DELETE", "UPDATE")])
    with endpoints(case) as got:
        assert run(case)[0] == 0
    assert query(case, "SELECT * FROM written") == []
    after_second = dump(case)
    assert {t: v for t, v in after_second.items() if t != "jobs"} == \
        {t: v for t, v in after_first.items() if t != "jobs"}
    # jobs: only the launched jobs' messages change, to the current-job form without W= (M7)
    assert query(case, "SELECT job_id, message FROM jobs WHERE state = 'toLaunch'") == [(2, "R=2,J=P,Q=default")]
    assert got["bipbip"]  # the toLaunch jobs are told again, as OAR3 does (M18)


@pytest.mark.parametrize("backend", ["sqlite", pytest.param("postgresql", marks=pytest.mark.postgres)])
def test_gantt_rows_changed_between_rounds_are_put_back(tmp_path: Path, backend: str, request):
    """The round compares the gantt and ``_visu`` with what it wants exactly, moldable by moldable: a row
    missing from a run of ids, one added next to it, a moldable it did not place, another start in ``_visu``
    are each put back, and the end state is the first round's again."""
    url = request.getfixturevalue("pg_url") if backend == "postgresql" else None

    def setup(c):
        add_running_job(c, start_time=NOW - 100, resource_ids=[1, 2, 3], walltime=7200)
        add_job(c, request="resource_id=2", walltime=900)
        add_job(c, request="resource_id=8", walltime=900)
    case = make_case(tmp_path, setup, url=url)
    with endpoints(case):
        assert run(case)[0] == 0
    want = {t: v for t, v in dump(case).items() if t.startswith("gantt")}
    [(waiting,)] = query(case, "SELECT m.moldable_id FROM moldable_job_descriptions m JOIN jobs j "
                               "ON j.job_id = m.moldable_job_id WHERE j.state = 'Waiting'")
    assert [r for m, r in want["gantt_jobs_resources"] if m == waiting] == list(range(1, 9))
    stale = waiting + 100
    case.execute(f"DELETE FROM gantt_jobs_resources WHERE moldable_job_id = {waiting} AND resource_id = 5",
                 f"DELETE FROM gantt_jobs_resources_visu WHERE moldable_job_id = {waiting} AND resource_id = 8",
                 f"INSERT INTO gantt_jobs_resources_visu VALUES ({waiting}, 9)",
                 f"UPDATE gantt_jobs_predictions_visu SET start_time = start_time + 1 WHERE moldable_job_id = {waiting}",
                 *[f"INSERT INTO {t} VALUES ({stale}, {NOW})" for t in ("gantt_jobs_predictions",
                                                                       "gantt_jobs_predictions_visu")],
                 *[f"INSERT INTO {t} VALUES ({stale}, 4)" for t in ("gantt_jobs_resources",
                                                                   "gantt_jobs_resources_visu")])
    assert {t: v for t, v in dump(case).items() if t.startswith("gantt")} != want
    with endpoints(case):
        assert run(case)[0] == 0
    assert {t: v for t, v in dump(case).items() if t.startswith("gantt")} == want


def test_gantt_comparison_intervals_cover_every_id_once():
    from oarsched.oar.metadb import ID_MAX, ID_MIN, _intervals

    got = _intervals(7, [(1, 3), (5, 5), (6, 9)])
    assert got == [(7, ID_MIN, 0, 0), (7, 1, 3, 3), (7, 4, 4, 0), (7, 5, 5, 1), (7, 6, 9, 4), (7, 10, ID_MAX, 0)]
    assert _intervals(7, []) == [(7, ID_MIN, ID_MAX, 0)]
    assert _intervals(7, [(ID_MIN, ID_MAX)]) == [(7, ID_MIN, ID_MAX, ID_MAX - ID_MIN + 1)]


def test_external_metascheduler_mode_is_scheduled_in_process_and_said(tmp_path: Path):
    """``METASCHEDULER_MODE="external"``: the round is the internal one (every queue by oarsched's engine), with
    a warning saying the queues' scheduler commands are not run."""
    def setup(c):
        add_job(c, request="resource_id=2", walltime=900)
    internal = make_case(tmp_path, setup, name="internal")
    external = make_case(tmp_path, setup, name="external", conf={"METASCHEDULER_MODE": "external"})
    with endpoints(internal):
        assert run(internal)[0] == 0
    with endpoints(external):
        code, err = run(external)
    assert code == 0 and "METASCHEDULER_MODE='external'" in err and "SCHEDULERS_PATH commands are not run" in err
    assert dump(external) == dump(internal)
