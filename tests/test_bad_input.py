"""``oarsched-kamelot`` on bad input: each case checks the outcome and that the message names the culprit.

A broken setup (arguments, ``oar.conf``, quotas rules, database) exits 1
with one line ``oarsched-kamelot: error: ...`` naming the key, file, line,
table or value at fault, and writes nothing.  A bad job (or resource row) is
logged with its id and left unscheduled, and the round goes on: the other
jobs get exactly the gantt rows they get without it.

Every case runs the real entrypoint (:func:`oarsched.oar.kamelot.main`, a
few as a subprocess) on an OAR3 database written by
:mod:`oarsched.oar.submit` (see :mod:`tests.oarcase`).
"""
from __future__ import annotations

import re
import socket
import time
from pathlib import Path
from typing import Callable

import pytest
from sqlalchemy import event, text
from sqlalchemy.engine import Connection, Engine, make_url

from oarsched.oar.submit import add_job, add_running_job
from tests.oarcase import NOW, Case, Outcome, make_case

# The good jobs around every bad one, and where they go (2 nodes x 4 cores, ids 1-8).
FIRST = {"request": "resource_id=2", "walltime": 100}
LAST = {"request": "network_address=1", "walltime": 200}
FIRST_PLACE = (NOW, [1, 2])
LAST_PLACE = (NOW, [5, 6, 7, 8])


def assert_broken_setup(out: Outcome, *fragments: str) -> None:
    """Exit 1, one error line (no traceback) containing every fragment."""
    assert out.code == 1, out.stderr
    assert "Traceback" not in out.stderr, out.stderr
    assert len(out.error_lines) == 1, out.stderr
    line = out.error_lines[0]
    assert line.startswith("oarsched-kamelot: error: "), line
    assert "[SQL" not in line and "sqlalche.me" not in line, line
    for frag in fragments:
        assert frag in line, f"{frag!r} not in {line!r}"


def nothing_written(case: Case) -> None:
    assert case.gantt() == {}


# ----------------------------------------------------------------------------- cases
@pytest.fixture
def case(tmp_path: Path) -> Case:
    """Two good jobs waiting (resource_id=2, then network_address=1)."""
    def setup(conn: Connection) -> None:
        add_job(conn, **FIRST)
        add_job(conn, **LAST)
    return make_case(tmp_path, setup)


class BadJobCase:
    """A good job, the bad one, a good job; ``bad`` adds the bad one (returns its id)."""

    def __init__(self, tmp_path: Path, bad: Callable[[Connection], int], **kw) -> None:
        self.ids: dict[str, int] = {}

        def setup(conn: Connection) -> None:
            self.ids["first"] = add_job(conn, **FIRST)
            self.ids["bad"] = bad(conn)
            self.ids["last"] = add_job(conn, **LAST)
        self.case = make_case(tmp_path, setup, **kw)

    def run_and_check(self, *fragments: str) -> Outcome:
        """Exit 0; the bad job named with every fragment on one log line; the good jobs placed."""
        out = self.case.run()
        assert out.code == 0, out.stderr
        assert "Traceback" not in out.stderr
        bad = self.ids["bad"]
        lines = [ln for ln in out.stderr.splitlines() if re.search(rf"\bjob {bad}\b", ln)]
        assert any(all(f in ln for f in fragments) for ln in lines), (fragments, out.stderr)
        gantt = self.case.gantt()
        assert gantt == {self.ids["first"]: FIRST_PLACE, self.ids["last"]: LAST_PLACE}, out.stderr
        return out


# ---------------------------------------------------------------------------- config
def test_missing_config_file(case: Case, tmp_path: Path):
    case.conf = tmp_path / "nowhere" / "oar.conf"
    out = case.run()
    assert_broken_setup(out, str(case.conf), "No such file")


def test_missing_config_file_as_a_process(case: Case, tmp_path: Path):
    case.conf = tmp_path / "nowhere" / "oar.conf"
    out = case.run_process()
    assert_broken_setup(out, str(case.conf))
    assert out.stderr.strip() == out.error_lines[0]  # nothing else on stderr


@pytest.mark.parametrize("line, fragment", [
    ("= orphan value", "line 3: no key before '='"),
    (b"KEY=\xff\xfe", "line 3: not valid UTF-8"),
])
def test_malformed_config_line(case: Case, line, fragment):
    raw = case.conf.read_bytes().splitlines()
    raw.insert(2, line.encode() if isinstance(line, str) else line)
    case.conf.write_bytes(b"\n".join(raw) + b"\n")
    assert_broken_setup(case.run(), str(case.conf), fragment)
    nothing_written(case)


def test_unknown_db_type(case: Case):
    case.write_conf({"DB_TYPE": "mysql"})
    assert_broken_setup(case.run(), "DB_TYPE", "'mysql'", str(case.conf))


@pytest.mark.parametrize("key, extra", [
    ("SCHEDULER_JOB_SECURITY_TIME", {}),
    ("SCHEDULER_TIMEOUT", {}),
    ("LOG_LEVEL", {}),
    ("SCHEDULER_FAIRSHARING_WINDOW_SIZE", {"JOB_PRIORITY": "FAIRSHARE"}),
    ("SCHEDULER_FAIRSHARING_COEF_USER", {"JOB_PRIORITY": "FAIRSHARE"}),
    ("QUOTAS_PERIOD", {"QUOTAS": "yes"}),
    ("QUOTAS_WINDOW_TIME_LIMIT", {"QUOTAS": "yes"}),
])
def test_non_numeric_value(case: Case, key, extra):
    case.write_conf({**extra, key: "abc"})
    assert_broken_setup(case.run(), key, "'abc'", str(case.conf))
    nothing_written(case)


def test_non_numeric_db_port(case: Case):
    case.write_conf({"DB_TYPE": "Pg", "DB_HOSTNAME": "localhost", "DB_PORT": "five",
                     "DB_BASE_NAME": "oar", "DB_BASE_LOGIN": "oar"})
    assert_broken_setup(case.run(), "DB_PORT", "'five'")


def test_bad_config_is_reported_even_with_no_waiting_job(tmp_path: Path):
    empty = make_case(tmp_path, conf={"SCHEDULER_JOB_SECURITY_TIME": "-1"})
    assert_broken_setup(empty.run(), "SCHEDULER_JOB_SECURITY_TIME", ">= 0")


def test_unusable_cap_is_ignored_like_oar3(case: Case):
    """OAR3 reads MAX_JOB_PER_QUEUES_GROUP_SCHEDULING_ROUND leniently: no cap, a warning naming the key."""
    case.write_conf({"MAX_JOB_PER_QUEUES_GROUP_SCHEDULING_ROUND": "abc"})
    out = case.run()
    assert out.code == 0
    assert "MAX_JOB_PER_QUEUES_GROUP_SCHEDULING_ROUND is not an integer: 'abc'" in out.stderr
    assert case.gantt() == {1: FIRST_PLACE, 2: LAST_PLACE}


@pytest.mark.parametrize("content, fragments", [
    ('{"quotas": {"*,*,*,*": [1, -1, -1]', ["bad JSON", "line 1 column"]),
    ('{"quotas": {"*,*,*,*": [1, -1, -1]}, "bogus": 1}', ["unknown top-level key 'bogus'"]),
    ('{"quotas": {"*,*,*": [1, -1, -1]}}', ["'*,*,*'"]),
    ('{"quotas": {"*,*,*,*": ["one", -1, -1]}}', ["*,*,*,*"]),
    ('[1, 2]', []),
])
def test_bad_quotas_rules(case: Case, content, fragments):
    rules = case.dir / "quotas.json"
    rules.write_text(content)
    case.write_conf({"QUOTAS": "yes", "QUOTAS_CONF_FILE": str(rules)})
    assert_broken_setup(case.run(), str(rules), *fragments)
    nothing_written(case)


def test_quotas_rules_not_utf8(case: Case):
    rules = case.dir / "quotas.json"
    rules.write_bytes(b'{"quotas": {"*,*,*,\xff": [1, -1, -1]}}')
    case.write_conf({"QUOTAS": "yes", "QUOTAS_CONF_FILE": str(rules)})
    assert_broken_setup(case.run(), str(rules), "not UTF-8")


def test_missing_quotas_rules(case: Case):
    case.write_conf({"QUOTAS": "yes", "QUOTAS_CONF_FILE": str(case.dir / "none.json")})
    assert_broken_setup(case.run(), str(case.dir / "none.json"), "No such file")


# --------------------------------------------------------------------------- database
def test_sqlite_in_a_missing_directory(case: Case, tmp_path: Path):
    path = tmp_path / "missing" / "oar.sqlite"
    case.write_conf({"DB_BASE_FILE": str(path)})
    assert_broken_setup(case.run(), "cannot open the OAR database", str(path))
    assert not path.parent.exists()


def test_empty_sqlite_file_is_not_an_oar_database(case: Case, tmp_path: Path):
    path = tmp_path / "empty.sqlite"
    path.touch()
    case.write_conf({"DB_BASE_FILE": str(path)})
    assert_broken_setup(case.run(), "not an OAR3 database", "missing table(s)", "jobs", "resources")


def _closed_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def test_postgresql_on_a_closed_port(case: Case):
    port = _closed_port()
    case.write_conf({"DB_TYPE": "Pg", "DB_HOSTNAME": "127.0.0.1", "DB_PORT": str(port),
                     "DB_BASE_NAME": "oar", "DB_BASE_LOGIN": "oar", "DB_BASE_PASSWD": "s3cret"})
    out = case.run()
    assert_broken_setup(out, "cannot open the OAR database", f"127.0.0.1:{port}/oar")
    assert "s3cret" not in out.stderr


@pytest.mark.postgres
def test_postgresql_wrong_password(tmp_path: Path, pg_url: str):
    case = make_case(tmp_path, lambda conn: add_job(conn, **FIRST), url=pg_url)
    case.write_conf({"DB_BASE_PASSWD": "not-the-password"})
    out = case.run()
    assert_broken_setup(out, "cannot open the OAR database", "password authentication failed",
                        f'for user "{make_url(pg_url).username}"')
    assert "not-the-password" not in out.stderr


@pytest.mark.postgres
def test_postgresql_unknown_database(tmp_path: Path, pg_url: str):
    case = make_case(tmp_path, url=pg_url)
    case.write_conf({"DB_BASE_NAME": "no_such_db"})
    assert_broken_setup(case.run(), "cannot open the OAR database", "no_such_db")


@pytest.mark.parametrize("breakage, fragments", [
    ("DROP TABLE gantt_jobs_resources", ["missing table(s): gantt_jobs_resources"]),
    ("DROP TABLE job_dependencies", ["missing table(s): job_dependencies"]),
    ("ALTER TABLE jobs DROP COLUMN last_karma", ["missing column(s): jobs.last_karma"]),
    ("ALTER TABLE moldable_job_descriptions DROP COLUMN moldable_walltime",
     ["missing column(s): moldable_job_descriptions.moldable_walltime"]),
])
def test_missing_tables_and_columns(case: Case, breakage, fragments):
    case.execute(breakage)
    assert_broken_setup(case.run(), "not an OAR3 database", *fragments)


def test_hierarchy_label_that_is_not_a_column(case: Case):
    case.write_conf({"HIERARCHY_LABELS": "resource_id,network_address,rack"})
    assert_broken_setup(case.run(), "rack")


def test_resource_order_naming_a_missing_column(case: Case):
    case.write_conf({"SCHEDULER_RESOURCE_ORDER": "rack ASC, resource_id"})
    assert_broken_setup(case.run(), "SCHEDULER_RESOURCE_ORDER", "'rack'")


@pytest.mark.parametrize("key, value", [
    ("SCHEDULER_RESOURCE_ORDER", "resource_id; DROP TABLE sentinel"),
    ("SCHEDULER_RESOURCE_ORDER", "(SELECT secret FROM sentinel)"),
    ("HIERARCHY_LABELS", "resource_id,network_address; DROP TABLE sentinel"),
])
def test_configuration_cannot_run_sql(case: Case, key, value):
    case.execute("CREATE TABLE sentinel (secret TEXT)", "INSERT INTO sentinel VALUES ('x')")
    case.write_conf({key: value})
    with StatementLog() as sql:
        assert_broken_setup(case.run(), key)
    assert all("sentinel" not in s for s in sql.statements)
    with case.engine().connect() as conn:
        assert conn.execute(text("SELECT secret FROM sentinel")).all() == [("x",)]


def test_resource_with_an_unknown_state(case: Case):
    """Not one of Alive/Absent/Suspected/Dead: logged, not schedulable (OAR3: neither usable nor Dead)."""
    case.execute("UPDATE resources SET state = 'Zombie' WHERE resource_id = 2")
    out = case.run()
    assert out.code == 0, out.stderr
    assert re.search(r"resource 2: unknown state 'Zombie'", out.stderr)
    assert case.gantt() == {1: (NOW, [1, 3]), 2: LAST_PLACE}


def test_resource_with_a_null_state(case: Case):
    case.execute("UPDATE resources SET state = NULL WHERE resource_id = 2")
    out = case.run()
    assert out.code == 0
    assert case.gantt() == {1: (NOW, [1, 3]), 2: LAST_PLACE}


def test_null_walltime(tmp_path: Path):
    def bad(conn):
        jid = add_job(conn, request="resource_id=1", walltime=10)
        conn.execute(text("UPDATE moldable_job_descriptions SET moldable_walltime = NULL "
                          "WHERE moldable_job_id = :j"), {"j": jid})
        return jid
    BadJobCase(tmp_path, bad).run_and_check("no walltime", "NULL")


def test_null_resource_count(tmp_path: Path):
    def bad(conn):
        jid = add_job(conn, request="network_address=1/core=2", walltime=10)
        conn.execute(text(
            "UPDATE job_resource_descriptions SET res_job_value = NULL WHERE res_job_resource_type = 'core' "
            "AND res_job_group_id IN (SELECT res_group_id FROM job_resource_groups g "
            "JOIN moldable_job_descriptions m ON m.moldable_id = g.res_group_moldable_id "
            "WHERE m.moldable_job_id = :j)"), {"j": jid})
        return jid
    BadJobCase(tmp_path, bad).run_and_check("'core'", "asks for 0")


def test_null_job_state_is_not_waiting(case: Case):
    """A job whose state is NULL is not a waiting job: ignored, the round goes on."""
    case.execute("UPDATE jobs SET state = NULL WHERE job_id = 1")
    out = case.run()
    assert out.code == 0
    assert case.gantt() == {2: (NOW, [1, 2, 3, 4])}


def test_null_fields_of_a_waiting_job(tmp_path: Path):
    """NULL user, project, name, properties, submission time, type: read as empty, job scheduled."""
    def bad(conn):
        jid = add_job(conn, request="resource_id=1", walltime=10, types=["besteffort"])
        conn.execute(text("UPDATE jobs SET job_user = NULL, project = NULL, job_name = NULL, properties = NULL, "
                          "submission_time = NULL, job_type = NULL WHERE job_id = :j"), {"j": jid})
        conn.execute(text("UPDATE job_types SET type = NULL WHERE job_id = :j"), {"j": jid})
        return jid
    c = BadJobCase(tmp_path, bad)
    out = c.case.run()
    assert out.code == 0, out.stderr
    gantt = c.case.gantt()
    assert gantt[c.ids["bad"]] == (NOW, [3])


def test_gantt_row_on_an_unknown_resource(tmp_path: Path):
    """A running job's gantt row naming a resource that does not exist is ignored."""
    def bad(conn):
        jid = add_running_job(conn, start_time=NOW - 10, resource_ids=[8], request="resource_id=1", walltime=1000)
        conn.execute(text("UPDATE gantt_jobs_resources SET resource_id = 999"))
        return jid
    c = BadJobCase(tmp_path, bad)
    out = c.case.run()
    assert out.code == 0, out.stderr
    gantt = c.case.gantt()
    assert gantt[c.ids["first"]] == FIRST_PLACE and gantt[c.ids["last"]] == LAST_PLACE


def test_null_start_time_in_the_gantt(tmp_path: Path):
    def bad(conn):
        jid = add_running_job(conn, start_time=NOW - 10, resource_ids=[8], request="resource_id=1", walltime=1000)
        conn.execute(text("UPDATE gantt_jobs_predictions SET start_time = NULL"))
        return jid
    c = BadJobCase(tmp_path, bad)
    out = c.case.run()
    assert out.code == 0
    assert 8 not in c.case.gantt()[c.ids["last"]][1]


# ------------------------------------------------------------------------------- jobs
def test_job_without_moldable(tmp_path: Path):
    state: dict[str, int] = {}

    def bad(conn):
        state["bad"] = add_job(conn, request="resource_id=1", walltime=10)
        return state["bad"]
    c = BadJobCase(tmp_path, bad)
    c.case.execute(
        "DELETE FROM job_resource_descriptions WHERE res_job_group_id IN (SELECT res_group_id FROM "
        "job_resource_groups JOIN moldable_job_descriptions ON moldable_id = res_group_moldable_id "
        "WHERE moldable_job_id = :j)",
        "DELETE FROM job_resource_groups WHERE res_group_moldable_id IN "
        "(SELECT moldable_id FROM moldable_job_descriptions WHERE moldable_job_id = :j)",
        "DELETE FROM moldable_job_descriptions WHERE moldable_job_id = :j", j=state["bad"])
    c.run_and_check("no current moldable description")


@pytest.mark.parametrize("walltime", [0, -5])
def test_walltime_not_positive(tmp_path: Path, walltime):
    BadJobCase(tmp_path, lambda conn: add_job(conn, request="resource_id=1", walltime=walltime)).run_and_check(
        "walltime must be a positive number of seconds", f"got {walltime}")


def test_unknown_hierarchy_level(tmp_path: Path):
    BadJobCase(tmp_path, lambda conn: add_job(conn, request="switch=1/core=2", walltime=10)).run_and_check(
        "unknown hierarchy level 'switch'")


@pytest.mark.parametrize("request_text", ["network_address=3", "core=9", "network_address=1/core=5"])
def test_group_asking_more_than_exists(tmp_path: Path, request_text):
    BadJobCase(tmp_path, lambda conn: add_job(conn, request=request_text, walltime=10)).run_and_check(
        "never fits, even on an empty platform")


def test_walltime_beyond_the_end_of_time(tmp_path: Path):
    BadJobCase(tmp_path, lambda conn: add_job(conn, request="resource_id=1", walltime=2**40)).run_and_check(
        "never fits")


@pytest.mark.parametrize("where, expression, fragment", [
    ("job", "core >> 3", "an operator is not allowed"),
    ("job", "core = ", "syntax error"),
    ("job", "nosuch = 1", "unknown column 'nosuch'"),
    ("job", "core = 'abc'", "non-numeric string 'abc'"),
    ("job", "lower(network_address) = 'node-1'", "function call"),
    ("group", "core IN (1,", "syntax error"),
])
def test_property_expression_that_does_not_parse(tmp_path: Path, where, expression, fragment):
    def bad(conn):
        if where == "job":
            return add_job(conn, request="resource_id=1", walltime=10, properties=expression)
        return add_job(conn, request=[("resource_id=1", expression)], walltime=10)
    BadJobCase(tmp_path, bad).run_and_check("bad property expression", fragment)


INJECTIONS = [
    "1=1; DROP TABLE sentinel; --",
    "core = 1); DROP TABLE sentinel; --",
    "core = 1 OR 1=1 UNION SELECT secret FROM sentinel",
    "network_address IN (SELECT secret FROM sentinel)",
    "core = 1 -- ' DROP TABLE sentinel",
    "core = (DELETE FROM sentinel)",
    "sentinel.secret = 'x'",
    "core = load_extension('x')",
]


class StatementLog:
    """Every SQL statement any engine sends while installed (an SQLAlchemy event on :class:`Engine`)."""

    def __init__(self) -> None:
        self.statements: list[str] = []

    def __enter__(self) -> StatementLog:
        event.listen(Engine, "before_cursor_execute", self._record)
        return self

    def __exit__(self, *exc) -> None:
        event.remove(Engine, "before_cursor_execute", self._record)

    def _record(self, conn, cursor, statement, parameters, context, executemany) -> None:
        self.statements.append(statement)

    def writes(self) -> list[str]:
        # reads and transaction control (the round lock: BEGIN IMMEDIATE, SET LOCAL ...) write no table
        return [s for s in self.statements if not re.match(r"\s*(SELECT|PRAGMA|WITH|BEGIN|COMMIT|ROLLBACK|SET)\b", s, re.I)]

    def written_tables(self) -> set[str]:
        """Tables the statements changed (``temp.x`` for temporary ones); raises on any other statement kind."""
        tables = set()
        for stmt in self.writes():
            m = re.match(r"\s*(?:INSERT(?: OR \w+)? INTO|UPDATE|DELETE FROM|CREATE TEMP(?:ORARY)? TABLE"
                         r"(?: IF NOT EXISTS)?|DROP TABLE(?: IF EXISTS)?|TRUNCATE)\s+([\w.]+)", stmt, re.I)
            assert m, f"unexpected statement: {stmt}"
            tables.add(m.group(1))
        return tables


@pytest.mark.parametrize("expression", INJECTIONS)
@pytest.mark.parametrize("where", ["job", "group"])
def test_property_cannot_run_sql(tmp_path: Path, expression, where):
    """Each attempt is refused as a bad expression; the database sees only the scheduler's own statements."""
    def bad(conn):
        conn.execute(text("CREATE TABLE sentinel (secret TEXT)"))
        conn.execute(text("INSERT INTO sentinel VALUES ('x')"))
        if where == "job":
            return add_job(conn, request="resource_id=1", walltime=10, properties=expression)
        return add_job(conn, request=[("resource_id=1", expression)], walltime=10)
    c = BadJobCase(tmp_path, bad)
    with StatementLog() as sql:
        c.run_and_check("bad property expression")
    assert all("sentinel" not in s for s in sql.statements)
    written = sql.written_tables()
    assert {"gantt_jobs_predictions", "gantt_jobs_resources", "jobs"} <= written, written
    assert all(t in ("gantt_jobs_predictions", "gantt_jobs_resources", "jobs") or t.startswith("temp.")
               for t in written), written
    assert all(re.match(r"\s*UPDATE jobs SET (message|last_karma|start_time) ?= ?\S", s)
               for s in sql.writes() if re.match(r"\s*UPDATE\s+jobs\b", s))
    with c.case.engine().connect() as conn:
        assert conn.execute(text("SELECT secret FROM sentinel")).all() == [("x",)]


def test_quotes_in_a_property_stay_a_literal(tmp_path: Path):
    """A well-formed literal holding SQL is compared as a value, bound as a parameter."""
    payload = "x'); DROP TABLE sentinel; --"
    expression = "network_address = '" + payload.replace("'", "''") + "'"

    def bad(conn):
        conn.execute(text("CREATE TABLE sentinel (secret TEXT)"))
        return add_job(conn, request="resource_id=1", walltime=10, properties=expression)
    c = BadJobCase(tmp_path, bad)
    with StatementLog() as sql:
        c.run_and_check("never fits")  # no resource has that network_address
    assert not any("DROP" in s for s in sql.statements)
    with c.case.engine().connect() as conn:
        assert conn.execute(text("SELECT count(*) FROM sentinel")).scalar() == 0


def test_dependency_cycle(tmp_path: Path):
    ids: dict[str, int] = {}

    def bad(conn):
        ids["a"] = add_job(conn, request="resource_id=1", walltime=10)
        ids["b"] = add_job(conn, request="resource_id=1", walltime=10, dependencies=[ids["a"]])
        conn.execute(text("INSERT INTO job_dependencies (job_id, job_id_required) VALUES (:a, :b)"),
                     {"a": ids["a"], "b": ids["b"]})
        ids["dependent"] = add_job(conn, request="resource_id=1", walltime=10, dependencies=[ids["b"]])
        return ids["a"]
    c = BadJobCase(tmp_path, bad)
    out = c.run_and_check(f"dependency cycle among jobs {ids['a']}, {ids['b']}")
    assert re.search(rf"job {ids['b']}: dependency cycle among jobs {ids['a']}, {ids['b']}", out.stderr)
    assert re.search(rf"job {ids['dependent']} not scheduled: depends on waiting job {ids['b']}", out.stderr)


def test_job_depending_on_itself(tmp_path: Path):
    def bad(conn):
        jid = add_job(conn, request="resource_id=1", walltime=10)
        conn.execute(text("INSERT INTO job_dependencies (job_id, job_id_required) VALUES (:j, :j)"), {"j": jid})
        return jid
    c = BadJobCase(tmp_path, bad)
    c.run_and_check("depends on itself")


def test_dependency_on_a_job_that_does_not_exist(tmp_path: Path):
    BadJobCase(tmp_path, lambda conn: add_job(conn, request="resource_id=1", walltime=10, dependencies=[999])
               ).run_and_check("depends on job 999")


@pytest.mark.parametrize("inner", ["inner=777", "inner", "inner=not a number"])
def test_inner_naming_a_missing_container(tmp_path: Path, inner):
    BadJobCase(tmp_path, lambda conn: add_job(conn, request="resource_id=1", walltime=10, types=[inner])
               ).run_and_check("container", "has no slot set")


def test_many_bad_jobs_and_the_round_goes_on(tmp_path: Path):
    """Every kind of bad job in one round: each named once at ERROR/WARNING level, the good ones placed."""
    bad_ids: list[int] = []

    def bad(conn):
        for kw in [dict(walltime=0), dict(request="rack=1"), dict(properties="core >> 1"),
                   dict(types=["inner=5"]), dict(request="core=100"), dict(properties="1; DROP TABLE jobs")]:
            bad_ids.append(add_job(conn, **{"request": "resource_id=1", "walltime": 10, **kw}))
        return bad_ids[0]
    c = BadJobCase(tmp_path, bad)
    out = c.run_and_check("walltime")
    for jid in bad_ids:
        assert re.search(rf"(ERROR|WARNING)\].*\bjob {jid}\b", out.stderr), (jid, out.stderr)


@pytest.mark.postgres
def test_bad_jobs_on_postgresql(tmp_path: Path, pg_url: str):
    """On PostgreSQL an error aborts the whole transaction: a property the server refuses
    (``gpu_ok = 1`` on a site's boolean column: no boolean = integer operator) must still cost only its own
    job."""
    bad_ids: list[int] = []

    def bad(conn):
        conn.execute(text("CREATE TABLE sentinel (secret TEXT)"))
        conn.execute(text("INSERT INTO sentinel VALUES ('x')"))
        conn.execute(text("ALTER TABLE resources ADD COLUMN gpu_ok BOOLEAN"))
        for props in ["gpu_ok = 1", "core IS NULL OR gpu_ok = 1", "core = 99999999999999999999999",
                      *INJECTIONS]:
            bad_ids.append(add_job(conn, request="resource_id=1", walltime=10, properties=props))
        bad_ids.append(add_job(conn, request=[("resource_id=1", "gpu_ok = 1")], walltime=10))
        bad_ids.append(add_job(conn, request="rack=1", walltime=10))
        return bad_ids[0]
    c = BadJobCase(tmp_path, bad, url=pg_url)
    with StatementLog() as sql:
        out = c.run_and_check("the database refused gpu_ok = 1", "operator does not exist")
    for jid in bad_ids:
        assert re.search(rf"(ERROR|WARNING)\].*\bjob {jid}\b", out.stderr), (jid, out.stderr)
    assert all("sentinel" not in s for s in sql.statements)
    with c.case.engine().connect() as conn:
        assert conn.execute(text("SELECT secret FROM sentinel")).all() == [("x",)]


def test_bad_job_as_a_process(tmp_path: Path):
    c = BadJobCase(tmp_path, lambda conn: add_job(conn, request="rack=2", walltime=10))
    out = c.case.run_process()
    assert out.code == 0 and "Traceback" not in out.stderr
    assert f"job {c.ids['bad']}: unknown hierarchy level 'rack'" in out.stderr
    assert c.case.gantt() == {c.ids["first"]: FIRST_PLACE, c.ids["last"]: LAST_PLACE}


# -------------------------------------------------------------------------- arguments
@pytest.mark.parametrize("now", ["soon", "", "nan", "inf", "1e400", "-5", str(2**31), "0x10"])
def test_bad_now(case: Case, now):
    assert_broken_setup(case.run("default", now, "x"), "NOW_SEC", repr(now))
    nothing_written(case)


def test_now_that_looks_like_an_option(case: Case):
    assert_broken_setup(case.run("default", "-inf", "x"), "unrecognized arguments: -inf")


def test_bad_now_as_a_process(case: Case):
    out = case.run_process("default", "tomorrow")
    assert_broken_setup(out, "NOW_SEC", "'tomorrow'")
    assert out.stderr.strip() == out.error_lines[0]


def test_extra_argument(case: Case):
    assert_broken_setup(case.run("default", str(NOW), "x", "surplus"), "unrecognized arguments: surplus")


def test_now_as_oar3_reads_it(case: Case):
    """``int(float(NOW_SEC))``, like OAR3: '1000000.9' is 1000000."""
    assert case.run("default", f"{NOW}.9", "x").code == 0
    assert case.gantt() == {1: FIRST_PLACE, 2: LAST_PLACE}


def test_missing_now_uses_the_clock(case: Case):
    before = int(time.time())
    out = case.run("default")
    after = int(time.time())
    assert out.code == 0, out.stderr
    starts = {start for start, _ in case.gantt().values()}
    assert len(starts) == 1 and before <= starts.pop() <= after


def test_no_argument_means_queue_default(case: Case):
    assert case.run("default").code == 0
    assert set(case.gantt()) == {1, 2}


def test_unknown_queue(case: Case):
    """OAR3 would find no waiting job: exit 0, nothing written, a warning naming the queue."""
    out = case.run(queue="nosuchqueue")
    assert out.code == 0
    assert "queue 'nosuchqueue' is not in the queues table: nothing to schedule" in out.stderr
    nothing_written(case)


def test_queue_without_waiting_job(case: Case):
    out = case.run(queue="besteffort")
    assert out.code == 0
    assert "no waiting job in queue besteffort" in out.stderr
    nothing_written(case)
