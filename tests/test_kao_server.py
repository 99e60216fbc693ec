"""The resident kao server (``oarsched kao-server``) and the ``oarsched-kao --server`` client.

Real processes and a real Unix socket: the installed ``oarsched-kao`` command
against a server process (or, where a test needs to set what the server
accepts, a server in a thread of this process), on real SQLite databases
with real ZeroMQ listeners.  A round through the server must leave the
database and the notifications exactly as the same round run by the client
process itself.
"""
from __future__ import annotations

import os
import shutil
import signal
import socket
import subprocess
import sys
import threading
import time
import uuid
from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import dataclass
from pathlib import Path

import pytest
from sqlalchemy import event as sa_event

from oarsched.oar import kao as kao_module
from oarsched.oar import kao_client
from oarsched.oar.db import OarDatabase
from oarsched.oar.kao_server import (
    MAX_OUTPUT,
    DatabaseCache,
    KaoServer,
    capped,
    code_stamp,
    peer_uid,
)
from oarsched.oar.metadb import GanttMemo
from oarsched.oar.submit import add_job, add_running_job
from tests.oarcase import NOW, Case, _logging_restored, make_case
from tests.pgserver import create_database, drop_database
from tests.test_kao import dump, endpoints, run


def command(name: str) -> str:
    path = shutil.which(name)
    assert path, f"{name} is not on PATH: install the package (pip install .)"
    return path


def client(case: Case, sock: Path, *extra: str, now: int = NOW) -> subprocess.CompletedProcess:
    """The installed ``oarsched-kao --server SOCK --now NOW``, as Almighty runs it."""
    env = {**os.environ, "OARCONFFILE": str(case.conf), "OARDO_USER": "oar"}
    return subprocess.run([command("oarsched-kao"), "--server", str(sock), *extra, "--now", str(now)],
                          cwd=case.dir, env=env, capture_output=True, text=True, timeout=120, check=False)


@dataclass
class ServerProcess:
    proc: subprocess.Popen
    log: str = ""
    """What the server printed (its journal), once it has exited."""


@contextmanager
def server_process(sock: Path, *extra: str) -> Iterator[ServerProcess]:
    """``oarsched kao-server --socket SOCK`` until the block ends; then SIGTERM: it must exit 0 and remove
    its socket."""
    proc = subprocess.Popen([command("oarsched"), "kao-server", "--socket", str(sock), *extra],
                            stdout=subprocess.PIPE, stderr=subprocess.STDOUT, text=True)
    server = ServerProcess(proc)
    try:
        wait_for(lambda: listening(sock) or proc.poll() is not None)
        assert proc.poll() is None, proc.stdout.read() if proc.stdout else ""
        yield server
    finally:
        if proc.poll() is None:
            proc.send_signal(signal.SIGTERM)
        server.log, _ = proc.communicate(timeout=30)
    assert proc.returncode == 0, server.log
    assert not sock.exists()


def listening(sock: Path) -> bool:
    with socket.socket(socket.AF_UNIX) as s:
        try:
            s.connect(str(sock))
        except OSError:
            return False
        kao_client.send_message(s, {"protocol": -1})  # refused, not a round
        return "refused" in kao_client.recv_message(s)


def wait_for(condition, timeout: float = 60.0) -> None:
    deadline = time.monotonic() + timeout
    while not condition():
        assert time.monotonic() < deadline, "timed out"
        time.sleep(0.02)


@contextmanager
def server_thread(sock: Path, **options) -> Iterator[KaoServer]:
    """A server in a thread of this process (what it accepts set by ``options``), serving one round."""
    server = KaoServer(str(sock), max_rounds=1, **options)
    server.bind()
    thread = threading.Thread(target=server.serve_forever, daemon=True)
    with _logging_restored():
        thread.start()
        try:
            yield server
        finally:
            if thread.is_alive():  # no round came: wake it with one that is refused
                with socket.socket(socket.AF_UNIX) as s:
                    s.connect(str(sock))
                    kao_client.send_message(s, {"protocol": -1})
                    kao_client.recv_message(s)
                server._stopping = True
            thread.join(30)


def two_cases(tmp_path: Path, urls: tuple[str | None, str | None] = (None, None)) -> tuple[Case, Case]:
    """Two identical databases (SQLite files, or the given URLs): running jobs, waiting jobs some of which
    start now, one besteffort job."""
    def setup(c):
        add_running_job(c, start_time=NOW - 100, resource_ids=[1, 2, 3], walltime=7200)
        add_running_job(c, start_time=NOW - 50, resource_ids=[8], walltime=600, queue="besteffort",
                        types=["besteffort"])
        for request in ("resource_id=2", "resource_id=4", "network_address=1", "resource_id=8"):
            add_job(c, request=request, walltime=900)
    return (make_case(tmp_path, setup, name="through_server", url=urls[0]),
            make_case(tmp_path, setup, name="in_process", url=urls[1]))


@pytest.fixture
def two_pg_urls(pg_server: str) -> Iterator[tuple[str, str]]:
    names = ["oarsched_" + uuid.uuid4().hex[:12] for _ in range(2)]
    urls = tuple(create_database(pg_server, n) for n in names)
    try:
        yield urls  # type: ignore[misc]
    finally:
        for n in names:
            drop_database(pg_server, n)


# ------------------------------------------------------------------------------- same round, same outcome

@pytest.mark.parametrize("backend", ["sqlite", pytest.param("postgresql", marks=pytest.mark.postgres)])
def test_a_round_through_the_server_is_the_round_the_client_would_run(tmp_path: Path, backend: str, request):
    urls = request.getfixturevalue("two_pg_urls") if backend == "postgresql" else (None, None)
    served, alone = two_cases(tmp_path, urls)
    sock = tmp_path / "kao.sock"
    with server_process(sock):
        for _ in range(2):  # the first round, then one on its result (the server's database kept open)
            with endpoints(served) as got_served:
                done = client(served, sock)
            with endpoints(alone) as got_alone:
                code, _ = run(alone)
            assert done.returncode == code, done.stderr
            assert dump(served) == dump(alone)
            assert got_served == got_alone
    assert got_served["bipbip"] or got_served["almighty"]  # the case does launch or kill something


def test_the_server_reads_oar_conf_anew_each_round(tmp_path: Path):
    served, _ = two_cases(tmp_path)
    sock = tmp_path / "kao.sock"
    with server_process(sock):
        with endpoints(served):
            assert client(served, sock).returncode in (0, 2)
        served.write_conf({"LOG_FILE": str(tmp_path / "no_such_dir" / "oar.log")})
        done = client(served, sock)
    assert done.returncode == 1
    assert done.stderr.startswith("oarsched-kao: error: LOG_FILE") and "no_such_dir" in done.stderr


def test_errors_come_back_and_the_server_serves_the_next_round(tmp_path: Path):
    served, _ = two_cases(tmp_path)
    sock = tmp_path / "kao.sock"
    served.db.rename(served.dir / "moved.sqlite")
    with server_process(sock) as server:
        done = client(served, sock)
        assert done.returncode == 1
        last = done.stderr.splitlines()[-1]  # what the client process itself would print (the log first)
        assert last.startswith("oarsched-kao: error: cannot open the OAR database") and "no such file" in last
        (served.dir / "moved.sqlite").rename(served.db)
        with endpoints(served) as got:
            assert client(served, sock).returncode in (0, 2)
        assert server.proc.poll() is None
    assert got["bipbip"] or got["almighty"]


# ------------------------------------------------------------------------------- no server: the round still runs

def test_without_a_server_the_client_runs_the_round_and_logs_why(tmp_path: Path):
    served, alone = two_cases(tmp_path)
    with endpoints(served) as got_served:
        done = client(served, tmp_path / "nobody.sock")
    with endpoints(alone) as got_alone:
        code, _ = run(alone)
    assert done.returncode == code
    assert dump(served) == dump(alone) and got_served == got_alone
    assert "no kao server on" in done.stderr and "round run in this process" in done.stderr


def test_a_dead_servers_socket_file_is_replaced(tmp_path: Path):
    served, _ = two_cases(tmp_path)
    sock = tmp_path / "kao.sock"
    dead = socket.socket(socket.AF_UNIX)
    dead.bind(str(sock))
    dead.close()  # the file stays, nobody listens
    done = client(served, sock)  # refused connection: the round runs in the client
    assert "round run in this process" in done.stderr
    with server_process(sock):
        with endpoints(served):
            done = client(served, sock)
    assert done.returncode in (0, 2) and "round run in this process" not in done.stderr


def test_a_second_server_on_a_live_socket_stops_with_one_line(tmp_path: Path):
    sock = tmp_path / "kao.sock"
    with server_process(sock):
        second = subprocess.run([command("oarsched"), "kao-server", "--socket", str(sock)],
                                capture_output=True, text=True, timeout=60, check=False)
        assert second.returncode == 1
        assert second.stderr.strip() == f"oarsched: error: a kao server already listens on {sock}"
        assert sock.exists()


def test_max_rounds_then_exit(tmp_path: Path):
    served, _ = two_cases(tmp_path)
    sock = tmp_path / "kao.sock"
    with server_process(sock, "--max-rounds", "2") as server:
        with endpoints(served):
            for _ in range(2):
                assert "round run in this process" not in client(served, sock).stderr
        server.proc.wait(30)
    assert "round 2: exit" in server.log


# ------------------------------------------------------------------------------- what the server refuses

def test_a_client_of_another_user_is_refused_and_runs_its_round_itself(tmp_path: Path):
    served, _ = two_cases(tmp_path)
    sock = tmp_path / "kao.sock"
    with server_thread(sock, uid=os.getuid() + 1) as server:
        with endpoints(served):
            done = client(served, sock)
    assert server.rounds == 0
    assert "refused the round: client user id" in done.stderr and "round run in this process" in done.stderr
    assert done.returncode in (0, 2)


def test_the_socket_is_private_and_the_peer_is_who_connected(tmp_path: Path):
    sock = tmp_path / "kao.sock"
    server = KaoServer(str(sock))
    server.bind()
    try:
        assert sock.stat().st_mode & 0o777 == 0o600
        with socket.socket(socket.AF_UNIX) as c:
            c.connect(str(sock))
            conn, _ = server._sock.accept()  # type: ignore[union-attr]
            with conn:
                assert peer_uid(conn) == os.getuid()
    finally:
        server.close()
    assert not sock.exists()


def test_changed_package_files_make_the_server_refuse_and_exit(tmp_path: Path):
    package = tmp_path / "pkg"
    package.mkdir()
    (package / "mod.py").write_text("x = 1\n")
    server = KaoServer(str(tmp_path / "kao.sock"), package=str(package))
    request = {"protocol": kao_client.PROTOCOL, "package": str(package), "argv": []}
    assert server.refusal(request, os.getuid()) is None
    assert server.refusal({**request, "package": "/elsewhere"}, os.getuid()).startswith("the client's package")
    assert server.refusal({**request, "protocol": 0}, os.getuid()).startswith("protocol 0")
    (package / "mod.py").write_text("x = 2\n")
    os.utime(package / "mod.py", ns=(time.time_ns() + 10**9, time.time_ns() + 10**9))
    assert "changed on disk" in server.refusal(request, os.getuid())
    assert server._stopping
    assert code_stamp(str(package)) != server.stamp


# ------------------------------------------------------------------------------- databases kept open

def test_an_open_database_is_reused_until_its_schema_or_file_changes(tmp_path: Path, monkeypatch):
    case, other = two_cases(tmp_path)
    monkeypatch.chdir(tmp_path)
    cache = DatabaseCache()
    first = cache.open(case.url)
    assert cache.open(case.url) is first and cache.reflections == 1
    case.execute("ALTER TABLE jobs ADD COLUMN site_note TEXT")
    again = cache.open(case.url)
    assert again is not first and "site_note" in again.tables["jobs"].c and cache.reflections == 2
    shutil.copy(other.db, case.dir / "replacement.sqlite")
    os.replace(case.dir / "replacement.sqlite", case.db)  # another file at the same path
    third = cache.open(case.url)
    assert third is not again and "site_note" not in third.tables["jobs"].c and cache.reflections == 3
    cache.close()


@pytest.mark.postgres
def test_a_postgresql_database_is_reflected_again_when_a_column_changes(tmp_path: Path, pg_url: str, monkeypatch):
    monkeypatch.chdir(tmp_path)
    case = make_case(tmp_path, url=pg_url)
    cache = DatabaseCache()
    first = cache.open(case.url)
    assert cache.open(case.url) is first
    case.execute("CREATE TABLE site_notes (note TEXT)")  # a table oarsched does not read: signature changes too
    second = cache.open(case.url)
    assert second is not first and cache.reflections == 2
    case.execute("ALTER TABLE jobs ALTER COLUMN message TYPE VARCHAR(500)")
    assert cache.open(case.url) is not second and cache.reflections == 3
    assert cache.open(case.url) is cache.open(case.url) and cache.reflections == 3
    cache.close()


def test_the_cache_keeps_few_databases_open(tmp_path: Path, monkeypatch):
    monkeypatch.chdir(tmp_path)
    cases = [make_case(tmp_path, name=f"c{i}") for i in range(3)]
    cache = DatabaseCache(size=2)
    dbs = [cache.open(c.url) for c in cases]
    assert all(isinstance(db, OarDatabase) for db in dbs)
    assert cache.open(cases[2].url) is dbs[2] and cache.open(cases[1].url) is dbs[1]
    assert cache.open(cases[0].url) is not dbs[0]  # the least recently used was closed
    assert cache.reflections == 4
    cache.close()


@pytest.mark.parametrize("argv,expected", [
    (["--now", "5"], (None, ["--now", "5"])),
    (["--server", "/s", "--now", "5"], ("/s", ["--now", "5"])),
    (["--now", "5", "--server=/s"], ("/s", ["--now", "5"])),
])
def test_the_client_takes_out_its_own_option(argv, expected):
    assert kao_client.split_server(argv) == expected


def test_the_client_imports_only_the_standard_library():
    code = ("import sys; import oarsched.oar.kao_client; "
            "print(sorted(m for m in ('numpy', 'sqlalchemy', 'zmq', 'oarsched._core') if m in sys.modules))")
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True,
                         check=True, timeout=60)
    assert out.stdout.strip() == "[]"


def test_a_working_directory_the_server_cannot_enter_is_the_rounds_error(tmp_path: Path):
    server = KaoServer(str(tmp_path / "kao.sock"))
    cwd = os.getcwd()
    answer = server.run_round({"argv": [], "env": dict(os.environ), "cwd": str(tmp_path / "gone")})
    assert answer["exit"] == 1 and answer["stderr"].startswith("oarsched-kao: error: working directory")
    assert os.getcwd() == cwd and server.rounds == 1


def test_long_output_keeps_its_end():
    text = "x" * MAX_OUTPUT + "the last line\n"
    kept = capped(text)
    assert kept.endswith("the last line\n") and len(kept) < MAX_OUTPUT + 100
    assert kept.startswith(f"[{len(text) - MAX_OUTPUT} characters of output dropped]")
    assert capped("short\n") == "short\n"


# ------------------------------------------------------------------------------- the gantt remembered (SQLite)

def test_the_memo_is_trusted_only_on_the_same_connection_with_nothing_committed_since(tmp_path: Path):
    case = make_case(tmp_path)
    db = OarDatabase(case.url)
    memo, runs = GanttMemo(), {7: [(1, 4)], 9: [(5, 5), (7, 8)]}

    def remember() -> None:
        with db.round_transaction() as conn:
            witness = GanttMemo.witness(conn)
        memo.remember(witness, runs)

    remember()
    with db.round_transaction() as conn:
        assert memo.recall(conn) == runs
        assert memo.recall(conn) is None  # used once
    remember()
    case.execute("UPDATE resources SET last_job_date = 1")  # anybody's commit, on any table
    with db.round_transaction() as conn:
        assert memo.recall(conn) is None
    remember()
    with db.engine.connect() as held, db.round_transaction() as conn:  # the round gets another connection
        assert held.connection.driver_connection is not conn.connection.driver_connection
        assert memo.recall(conn) is None
    db.engine.dispose()


def kao_round(case: Case, cache: DatabaseCache, now: int = NOW) -> int:
    """One round of ``oarsched-kao`` as the server runs it (the database from ``cache``)."""
    saved = dict(os.environ)
    os.environ.update({"OARCONFFILE": str(case.conf), "OARDO_USER": "oar"})
    try:
        with _logging_restored(), endpoints(case):
            return kao_module.main(["--now", str(now)], open_database=cache.open)
    finally:
        os.environ.clear()
        os.environ.update(saved)


def gantt_reads(db: OarDatabase) -> list[str]:
    """Statements that read the gantt resource tables row by row (the exact comparison), recorded."""
    seen: list[str] = []
    sa_event.listen(db.engine, "before_cursor_execute",
                    lambda conn, cur, statement, *a: seen.append(statement) if "count(*) FROM gantt_jobs_resources"
                    in statement else None)
    return seen


def test_rounds_with_the_memo_leave_what_rounds_without_it_leave(tmp_path: Path, monkeypatch):
    """Round after round on two copies, one through a server's cache (the gantt remembered between rounds),
    one by fresh processes: the same database each time, including after someone else edits the gantt."""
    monkeypatch.chdir(tmp_path)
    served, alone = two_cases(tmp_path)
    cache = DatabaseCache()
    tamper = ["DELETE FROM gantt_jobs_resources WHERE resource_id = 5",
              "INSERT INTO gantt_jobs_resources_visu VALUES (999, 1)"]
    reads = None
    for step, (now, edit) in enumerate([(NOW, None), (NOW, None), (NOW + 60, None), (NOW + 60, tamper),
                                        (NOW + 120, None), (NOW + 120, None)]):
        for case in (served, alone):
            if edit:
                case.execute(*edit)
        code = kao_round(served, cache, now)
        if reads is None:
            reads = gantt_reads(cache.open(served.url))
        before = len(reads)
        assert code == run(alone, now)[0]
        assert dump(served) == dump(alone), f"step {step}"
        if step in (1, 2, 5):  # nothing committed by anyone else since the last round: compared in memory
            assert len(reads) == before, f"step {step} read the gantt"
    cache.close()


def test_a_silent_client_does_not_stall_the_server(tmp_path: Path, monkeypatch):
    monkeypatch.setattr("oarsched.oar.kao_server.REQUEST_TIMEOUT", 0.5)
    served, _ = two_cases(tmp_path)
    sock = tmp_path / "kao.sock"
    with server_thread(sock) as server, socket.socket(socket.AF_UNIX) as silent:
        silent.connect(str(sock))  # connects, never sends
        with endpoints(served):
            done = client(served, sock)
        assert "round run in this process" not in done.stderr and done.returncode in (0, 2)
        assert server.rounds == 1
