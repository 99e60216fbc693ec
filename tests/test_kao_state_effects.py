"""What OAR3's ``set_job_state`` does besides the state, in ``oarsched-kao``'s round.

- ``SCHEDULER_PRIORITY_HIERARCHY_ORDER``: resources' ``scheduler_priority`` when besteffort and timesharing
  jobs start (toLaunch) and end (Error);
- ``jobs.notify``: the user's mail (a real SMTP server on 127.0.0.1) or command (a real script standing for
  ``OPENSSH_CMD``), sent after the round's commit;
- ``log_job``: an Error job's rows marked ``LOG`` on PostgreSQL (as OAR3; not on SQLite).
"""
from __future__ import annotations

import json
import socket
import stat
import threading
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path

import pytest
from aiosmtpd.controller import Controller
from sqlalchemy import text

from oarsched.errors import ConfigError
from oarsched.oar.metadb import priority_levels
from oarsched.oar.schema import make_metadata
from oarsched.oar.submit import add_job, add_reservation, add_running_job
from oarsched.oar.user_notify import ALL_TAGS, parse
from tests.oarcase import NOW, make_case
from tests.test_kao import TcpServer, endpoints, free_port, query, run

BACKENDS = ["sqlite", pytest.param("postgresql", marks=pytest.mark.postgres)]


def _url(backend: str, request) -> str | None:
    return request.getfixturevalue("pg_url") if backend == "postgresql" else None


def schema_tables():
    return make_metadata().tables


def priorities(case) -> dict[int, int]:
    return {int(r): int(p) for r, p in query(case, "SELECT resource_id, scheduler_priority FROM resources")}


def events(case, kind_prefix: str = "") -> list[tuple]:
    return sorted(query(case, "SELECT type, job_id, date, description FROM event_logs "
                              f"WHERE type LIKE '{kind_prefix}%'"))


# ------------------------------------------------------------------------------- scheduler priority


@pytest.mark.parametrize("backend", BACKENDS)
def test_launched_besteffort_and_timesharing_jobs_raise_their_resources_priority(tmp_path: Path, backend: str,
                                                                                  request):
    def setup(c):
        add_job(c, request="resource_id=2", walltime=600, types=["timesharing=*,*"])  # r1, r2: coeff 1
        add_job(c, request="resource_id=1", walltime=600, queue="besteffort", types=["besteffort"])  # r3: coeff 10
        add_job(c, request="network_address=1", walltime=600)  # node-2: an ordinary job, no change
    case = make_case(tmp_path, setup, url=_url(backend, request),
                     conf={"SCHEDULER_PRIORITY_HIERARCHY_ORDER": "network_address/resource_id"})
    with endpoints(case) as got:
        code, err = run(case)
    assert code == 0, err
    assert sorted(m["job_id"] for m in got["bipbip"]) == [1, 2, 3]
    # level 1 (network_address): +2*1*coeff on node-1's four resources for each job; level 2 (resource_id):
    # +2*2*coeff on each job's own resources
    assert priorities(case) == {1: 2 + 20 + 4, 2: 2 + 20 + 4, 3: 2 + 20 + 40, 4: 2 + 20,
                                5: 0, 6: 0, 7: 0, 8: 0}
    assert events(case, "SCHEDULER_PRIORITY") == [
        ("SCHEDULER_PRIORITY_UPDATED_START", jid, NOW, f"Scheduler priority for job {jid} updated "
         "(network_address/resource_id)") for jid in (1, 2)]


def _error_job(c, rids, *, started: bool, **job):
    jid = add_running_job(c, start_time=NOW - 100, resource_ids=rids, walltime=3600, state="toError", **job)
    if started:
        c.execute(text("INSERT INTO event_logs (type, job_id, date, description, to_check) "
                       "VALUES ('SCHEDULER_PRIORITY_UPDATED_START', :j, 1, 'earlier', 'YES')"), {"j": jid})
    return jid


@pytest.mark.parametrize("backend", BACKENDS)
def test_a_job_gone_to_error_gives_the_priority_back_once(tmp_path: Path, backend: str, request):
    def setup(c):
        c.execute(text("UPDATE resources SET scheduler_priority = 50"))
        _error_job(c, [1, 2], started=True, queue="besteffort", types=["besteffort"])  # coeff 10
        _error_job(c, [5], started=True, types=["besteffort", "timesharing=*,*"])  # coeff 1
        _error_job(c, [7], started=False, queue="besteffort", types=["besteffort"])  # never raised: untouched
        _error_job(c, [8], started=True)  # neither besteffort nor timesharing
    case = make_case(tmp_path, setup, url=_url(backend, request),
                     conf={"SCHEDULER_PRIORITY_HIERARCHY_ORDER": "resource_id"})
    with endpoints(case) as got:
        code, err = run(case)
    assert code == 0, err
    assert query(case, "SELECT DISTINCT state FROM jobs") == [("Error",)]
    assert got["almighty"] == [{"cmd": "ChState"}] * 4
    assert priorities(case) == {1: 30, 2: 30, 3: 50, 4: 50, 5: 48, 6: 50, 7: 50, 8: 50}
    assert [(t, j) for t, j, *_ in events(case, "SCHEDULER_PRIORITY_UPDATED_STOP")] == [
        ("SCHEDULER_PRIORITY_UPDATED_STOP", 1), ("SCHEDULER_PRIORITY_UPDATED_STOP", 2)]


def test_without_the_key_no_priority_changes(tmp_path: Path):
    case = make_case(tmp_path, lambda c: add_job(c, request="resource_id=1", walltime=600, queue="besteffort",
                                                 types=["besteffort"]))
    with endpoints(case):
        code, err = run(case)
    assert code == 0, err
    assert set(priorities(case).values()) == {0}
    assert events(case) == []


def test_priority_levels_are_read_as_oar3_reads_them():
    resources = schema_tables()["resources"]
    assert priority_levels("resource_id", resources) == ["resource_id"]
    assert priority_levels("/network_address//id/", resources) == ["network_address", "resource_id"]
    assert priority_levels("", resources) == []
    with pytest.raises(ConfigError, match="no column switch"):
        priority_levels("switch/resource_id", resources)


def test_an_empty_priority_order_writes_only_the_event(tmp_path: Path):
    """OAR3 loops over no level, then writes the event anyway (the early return is inside the loop)."""
    case = make_case(tmp_path, lambda c: add_job(c, request="resource_id=1", walltime=600, queue="besteffort",
                                                 types=["besteffort"]),
                     conf={"SCHEDULER_PRIORITY_HIERARCHY_ORDER": ""})
    with endpoints(case):
        code, err = run(case)
    assert code == 0, err
    assert set(priorities(case).values()) == {0}
    assert events(case) == [("SCHEDULER_PRIORITY_UPDATED_START", 1, NOW, "Scheduler priority for job 1 updated ()")]


def test_an_unknown_priority_level_is_a_one_line_config_error(tmp_path: Path):
    case = make_case(tmp_path, lambda c: add_job(c, request="resource_id=1", walltime=600, queue="besteffort",
                                                 types=["besteffort"]),
                     conf={"SCHEDULER_PRIORITY_HIERARCHY_ORDER": "switch/resource_id"})
    with endpoints(case) as got:
        code, err = run(case)
    assert code == 1
    lines = [ln for ln in err.splitlines() if ln.startswith("oarsched-kao:")]
    assert len(lines) == 1 and "SCHEDULER_PRIORITY_HIERARCHY_ORDER" in lines[0] and "switch" in lines[0], err
    assert query(case, "SELECT state FROM jobs") == [("Waiting",)]  # nothing written
    assert got["bipbip"] == []


# ------------------------------------------------------------------------------- log_job


LOGGED_TABLES = {
    "moldable_job_descriptions": "SELECT moldable_index FROM moldable_job_descriptions WHERE moldable_job_id = :j",
    "job_resource_groups": "SELECT g.res_group_index FROM job_resource_groups g JOIN moldable_job_descriptions m "
                           "ON m.moldable_id = g.res_group_moldable_id WHERE m.moldable_job_id = :j",
    "job_resource_descriptions": "SELECT d.res_job_index FROM job_resource_descriptions d JOIN job_resource_groups g "
                                 "ON g.res_group_id = d.res_job_group_id JOIN moldable_job_descriptions m "
                                 "ON m.moldable_id = g.res_group_moldable_id WHERE m.moldable_job_id = :j",
    "job_types": "SELECT types_index FROM job_types WHERE job_id = :j",
    "job_dependencies": "SELECT job_dependency_index FROM job_dependencies WHERE job_id = :j",
    "assigned_resources": "SELECT a.assigned_resource_index FROM assigned_resources a JOIN jobs j "
                          "ON j.assigned_moldable_job = a.moldable_job_id WHERE j.job_id = :j",
}


def indexes(case, job_id: int) -> dict[str, set[str]]:
    out = {}
    eng = case.engine()
    try:
        with eng.connect() as conn:
            for name, sql in LOGGED_TABLES.items():
                out[name] = {r[0] for r in conn.execute(text(sql), {"j": job_id})}
    finally:
        eng.dispose()
    return out


@pytest.mark.parametrize("backend", BACKENDS)
def test_an_error_job_rows_are_logged_on_postgresql_only(tmp_path: Path, backend: str, request):
    def setup(c):
        add_running_job(c, start_time=NOW - 100, resource_ids=[1, 2], walltime=3600)  # job 1: keeps running
        _error_job(c, [3, 4], started=False, types=["besteffort"], dependencies=[1],
                   moldables=[(3600, "resource_id=2"), (7200, "resource_id=1")])
    case = make_case(tmp_path, setup, url=_url(backend, request))
    with endpoints(case):
        code, err = run(case)
    assert code == 0, err
    assert query(case, "SELECT job_id, state FROM jobs ORDER BY job_id") == [(1, "Running"), (2, "Error")]
    current = dict.fromkeys(LOGGED_TABLES, {"CURRENT"})
    assert indexes(case, 1) == {**current, "job_types": set(), "job_dependencies": set()}
    assert indexes(case, 2) == (dict.fromkeys(LOGGED_TABLES, {"LOG"}) if backend == "postgresql" else current)


# ------------------------------------------------------------------------------- users' notifications


def test_notify_is_read_as_oar3_reads_it():
    assert parse("mail:a@b.org", "ERROR") == ("mail", "a@b.org")
    assert parse("exec:/bin/tell me", "RUNNING") == ("exec", "/bin/tell me")
    assert parse("[ERROR,END]mail:a@b.org", "ERROR") == ("mail", "a@b.org")
    assert parse("[ERROR,END]mail:a@b.org", "RUNNING") is None
    assert parse("[ERROR, RUNNING]mail:a@b.org", "RUNNING") is None  # tags are not stripped
    assert parse("exec:rm -rf ~;true", "ERROR") is None  # not a plain command
    assert parse("", "ERROR") is None and parse(None, "ERROR") is None
    assert all(parse("mail:x@y", tag) for tag in ALL_TAGS) and parse("mail:x@y", "OTHER") is None


class Smtp:
    """A real SMTP server on 127.0.0.1 keeping the messages it receives."""

    def __init__(self) -> None:
        self.messages: list[tuple[str, list[str], str]] = []
        self.received = threading.Event()
        self.controller = Controller(self, hostname="127.0.0.1", port=free_port())

    async def handle_DATA(self, server, session, envelope):  # noqa: N802 - aiosmtpd's handler name
        self.messages.append((envelope.mail_from, list(envelope.rcpt_tos), envelope.content.decode()))
        self.received.set()
        return "250 OK"

    @property
    def address(self) -> str:
        return f"127.0.0.1:{self.controller.port}"


@contextmanager
def smtp_server() -> Iterator[Smtp]:
    smtp = Smtp()
    smtp.controller.start()
    try:
        yield smtp
    finally:
        smtp.controller.stop()


def _mail_conf(address: str) -> dict[str, str]:
    return {"MAIL_SMTP_SERVER": address, "MAIL_SENDER": "oar@cluster.example"}


def test_a_job_gone_to_error_mails_its_user(tmp_path: Path):
    def setup(c):
        add_job(c, walltime=600, state="toError", name="sim42", user="alice", extra={"notify": "mail:alice@lab.example"})
        add_job(c, walltime=600, state="toError", extra={"notify": "[ERROR,END]mail:bob@lab.example"})
        add_job(c, walltime=600, state="toError", extra={"notify": "[RUNNING]mail:carol@lab.example"})  # not asked
    with smtp_server() as smtp:
        case = make_case(tmp_path, setup, conf=_mail_conf(smtp.address))
        with endpoints(case):
            code, err = run(case)
    assert code == 0, err
    assert [(t, j, d, s) for t, j, d, s in events(case)] == [
        ("USER_MAIL_NOTIFICATION", 1, NOW, "Send a mail to alice@lab.example: state: ERROR"),
        ("USER_MAIL_NOTIFICATION", 2, NOW, "Send a mail to bob@lab.example: state: ERROR")]
    host = socket.gethostname()
    got = sorted(smtp.messages, key=lambda m: m[1])
    assert [(m[0], m[1]) for m in got] == [("oar@cluster.example", ["alice@lab.example"]),
                                           ("oar@cluster.example", ["bob@lab.example"])]
    assert f"Subject: *OAR* [ERROR] (sim42) on {host}" in got[0][2]
    assert f"Subject: *OAR* [ERROR]  on {host}" in got[1][2]  # no name: nothing between the spaces, as OAR3
    assert all("Job stopped abnormally or an OAR error occured." in m[2] for m in got)


def test_a_resumed_job_mails_running(tmp_path: Path):
    def setup(c):
        add_running_job(c, start_time=NOW - 100, resource_ids=[1], walltime=7200, state="Resuming", types=["noop"],
                        extra={"notify": "[RUNNING]mail:dave@lab.example"})
    with smtp_server() as smtp:
        case = make_case(tmp_path, setup, conf=_mail_conf(smtp.address))
        with endpoints(case):
            code, err = run(case)
    assert code == 0, err
    assert query(case, "SELECT state FROM jobs") == [("Running",)]
    assert [m[1] for m in smtp.messages] == [["dave@lab.example"]]
    assert "[RUNNING]" in smtp.messages[0][2] and "Job is running." in smtp.messages[0][2]


def test_an_expired_reservation_mails_its_user(tmp_path: Path):
    def setup(c):
        add_reservation(c, start_time=NOW - 5000, resource_ids=[1], walltime=600,
                        extra={"notify": "[ERROR]mail:erin@lab.example"})
    with smtp_server() as smtp:
        case = make_case(tmp_path, setup, conf=_mail_conf(smtp.address))
        with endpoints(case):
            code, err = run(case)
    assert code == 0, err
    assert query(case, "SELECT state, message FROM jobs") == [("Error", "Reservation expired and couldn't be started.")]
    assert [m[1] for m in smtp.messages] == [["erin@lab.example"]]
    assert [e[:2] for e in events(case)] == [("USER_MAIL_NOTIFICATION", 1)]


def test_mail_server_down_the_round_is_committed_and_the_failure_logged(tmp_path: Path):
    case = make_case(tmp_path, lambda c: add_job(c, walltime=600, state="toError",
                                                 extra={"notify": "mail:alice@lab.example"}),
                     conf=_mail_conf(f"127.0.0.1:{free_port()}"))
    with endpoints(case) as got:
        code, err = run(case)
    assert code == 0, err
    assert query(case, "SELECT state FROM jobs") == [("Error",)]
    assert [e[0] for e in events(case)] == ["USER_MAIL_NOTIFICATION"]
    assert got["almighty"] == [{"cmd": "ChState"}]
    assert "cannot mail alice@lab.example" in err


def test_mail_notification_is_sent_after_the_commit(tmp_path: Path):
    """The mail arrives when the job is already Error in the database."""
    seen: list[list[tuple]] = []

    class Checking(Smtp):
        async def handle_DATA(self, server, session, envelope):  # noqa: N802
            seen.append(query(case, "SELECT state FROM jobs"))
            return await super().handle_DATA(server, session, envelope)

    smtp = Checking()
    smtp.controller.start()
    try:
        case = make_case(tmp_path, lambda c: add_job(c, walltime=600, state="toError",
                                                     extra={"notify": "mail:alice@lab.example"}),
                         conf=_mail_conf(smtp.address))
        with endpoints(case):
            code, err = run(case)
    finally:
        smtp.controller.stop()
    assert code == 0, err
    assert seen == [[("Error",)]]


def recorder(tmp_path: Path, body: str = "") -> tuple[Path, Path]:
    """A script standing for ``OPENSSH_CMD``: it writes its arguments (JSON) to a file, then runs ``body``."""
    log = tmp_path / "ssh-args.json"
    script = tmp_path / "fake-ssh"
    script.write_text("#!/usr/bin/env python3\nimport json, sys\n"
                      f"open({str(log)!r}, 'a').write(json.dumps(sys.argv[1:]) + '\\n')\n{body}\n")
    script.chmod(script.stat().st_mode | stat.S_IXUSR)
    return script, log


def _exec_case(tmp_path: Path, script: Path, *, name: str | None = "sim42", timeout: str = "30",
               url: str | None = None):
    return make_case(tmp_path, lambda c: add_job(
        c, walltime=600, state="toError", name=name, user="alice",
        extra={"notify": "[ERROR]exec:/home/alice/bin/tell", "info_type": "frontend.lab:40001"}),
        conf={"OPENSSH_CMD": str(script), "OAR_SSH_CONNECTION_TIMEOUT": timeout}, url=url)


@pytest.mark.parametrize("backend", BACKENDS)
def test_exec_notification_runs_the_command_on_the_submission_host(tmp_path: Path, backend: str, request):
    script, log = recorder(tmp_path)
    case = _exec_case(tmp_path, script, url=_url(backend, request))
    with endpoints(case):
        code, err = run(case)
    assert code == 0, err
    args = [json.loads(line) for line in log.read_text().splitlines()]
    assert args == [["-x", "-T", "frontend.lab", "OARDO_BECOME_USER=alice oardodo /home/alice/bin/tell 1 sim42 "
                     "ERROR 'Job stopped abnormally or an OAR error occured.'"]]
    (kind, jid, date, description), = events(case)
    assert (kind, jid, date) == ("USER_EXEC_NOTIFICATION", 1, NOW)
    assert description.startswith(f"Launched user notification command : {script} -x -T frontend.lab ")


def test_exec_notification_failing_or_hanging_is_an_error_event(tmp_path: Path):
    (tmp_path / "a").mkdir()
    script, _ = recorder(tmp_path / "a", "sys.exit(3)")
    case = _exec_case(tmp_path / "a", script)
    with endpoints(case):
        code, err = run(case)
    assert code == 0, err
    assert [(e[0], e[3].split(" (cmd:")[0]) for e in events(case)] == [
        ("USER_EXEC_NOTIFICATION_ERROR", "User notification failed: exit status 3")]

    (tmp_path / "b").mkdir()
    script, _ = recorder(tmp_path / "b", "import time; time.sleep(60)")
    case = _exec_case(tmp_path / "b", script, timeout="1")
    with endpoints(case):
        code, err = run(case)
    assert code == 0, err
    assert query(case, "SELECT state FROM jobs") == [("Error",)]
    assert [(e[0], e[3].split(" (cmd:")[0]) for e in events(case)] == [
        ("USER_EXEC_NOTIFICATION_ERROR", "User notification failed: ssh timeout")]
    assert "User notification failed: ssh timeout" in err


def test_a_job_name_runs_nothing_on_the_server(tmp_path: Path):
    script, log = recorder(tmp_path)
    pwned = tmp_path / "pwned"
    case = _exec_case(tmp_path, script, name=f"x$(touch {pwned})")
    with endpoints(case):
        code, err = run(case)
    assert code == 0, err
    assert not pwned.exists()
    (args,) = [json.loads(line) for line in log.read_text().splitlines()]
    assert f"'x$(touch {pwned})'" in args[3]


def test_exec_notification_without_a_submission_host_is_skipped(tmp_path: Path):
    script, log = recorder(tmp_path)
    case = make_case(tmp_path, lambda c: add_job(c, walltime=600, state="toError",
                                                 extra={"notify": "exec:/bin/tell"}),
                     conf={"OPENSSH_CMD": str(script)})
    with endpoints(case):
        code, err = run(case)
    assert code == 0, err
    assert query(case, "SELECT state FROM jobs") == [("Error",)]
    assert not log.exists() and events(case) == []


def test_notifications_to_oarsub_still_go_with_a_user_notification(tmp_path: Path):
    """An interactive job in error: oarsub told (TCP) and the user mailed."""
    oarsub = TcpServer()
    with smtp_server() as smtp:
        case = make_case(tmp_path, lambda c: add_job(
            c, walltime=600, state="toError", job_type="INTERACTIVE", message="bad",
            extra={"notify": "mail:alice@lab.example", "info_type": f"127.0.0.1:{oarsub.port}"}),
            conf=_mail_conf(smtp.address))
        with endpoints(case):
            code, err = run(case)
    oarsub.close()
    assert code == 0, err
    assert oarsub.texts == ["bad\n\n", "BAD JOB\n\n"]
    assert len(smtp.messages) == 1
