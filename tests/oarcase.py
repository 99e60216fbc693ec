"""A small OAR3 database and ``oar.conf`` in a temporary folder, to run ``oarsched-kamelot`` on.

Used by the bad-input and fault tests: :func:`make_case` creates the schema
(:mod:`oarsched.oar.schema`), two nodes of four cores (resource ids 1-8) and
whatever jobs the ``setup`` callback adds with :mod:`oarsched.oar.submit`;
:meth:`Case.run` runs the entrypoint in this process
(:func:`oarsched.oar.kamelot.main`), :meth:`Case.run_process` as a
subprocess, and :meth:`Case.gantt` reads the decisions back.
"""
from __future__ import annotations

import io
import logging
import os
import subprocess
import sys
from contextlib import contextmanager, redirect_stderr
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Callable, Iterator, Mapping

from sqlalchemy import Integer, create_engine, event, text
from sqlalchemy.engine import Connection, Engine, make_url

from oarsched.oar import config as config_module
from oarsched.oar import kamelot
from oarsched.oar.schema import create_schema
from oarsched.oar.submit import add_queue, add_resources

NOW = 1_000_000
"""The clock of every case."""

BASE_CONF: dict[str, str] = {
    "DB_TYPE": "sqlite",
    "LOG_LEVEL": "2",
    "LOG_FILE": ":stderr:",
    "HIERARCHY_LABELS": "resource_id,network_address,core",
    "SCHEDULER_RESOURCE_ORDER": "resource_id ASC",
    "SCHEDULER_JOB_SECURITY_TIME": "0",
    "JOB_PRIORITY": "FIFO",
    "QUOTAS": "no",
}


@dataclass
class Outcome:
    """What a run of the entrypoint gave."""

    code: int
    stderr: str

    @property
    def error_lines(self) -> list[str]:
        """The ``oarsched-kamelot: error...`` lines (the one-line message of a broken setup)."""
        return [ln for ln in self.stderr.splitlines() if ln.startswith("oarsched-kamelot:")]


@dataclass
class Case:
    """A database (SQLite file or PostgreSQL URL) and an ``oar.conf`` naming it."""

    dir: Path
    url: str
    conf: Path
    conf_values: dict[str, str] = field(default_factory=dict)

    @property
    def db(self) -> Path:
        """The SQLite file (SQLite cases only)."""
        return Path(make_url(self.url).database or "")

    def engine(self) -> Engine:
        return create_engine(self.url)

    def execute(self, *statements: str, **params: Any) -> None:
        """Run SQL statements in one transaction (to break the database on purpose)."""
        eng = self.engine()
        try:
            with eng.begin() as conn:
                for stmt in statements:
                    conn.execute(text(stmt), params)
        finally:
            eng.dispose()

    def write_conf(self, values: Mapping[str, str] | None = None, *, raw: str | None = None) -> None:
        """Rewrite ``oar.conf`` from ``values`` (merged over the case's) or as ``raw`` text."""
        if raw is None:
            self.conf_values.update(values or {})
            raw = "".join(f'{k}="{v}"\n' for k, v in self.conf_values.items())
        self.conf.write_text(raw)

    def run(self, *argv: str, queue: str = "default", now: int | None = NOW) -> Outcome:
        """``oarsched-kamelot QUEUE NOW NOW_SQL`` in this process (``argv`` replaces the arguments when given)."""
        args = list(argv) if argv else [queue, str(now), "1970-01-12 13:46:40"]
        err = io.StringIO()
        old = os.environ.get("OARCONFFILE")
        os.environ["OARCONFFILE"] = str(self.conf)
        try:
            with redirect_stderr(err), _logging_restored():
                code = kamelot.main(args)
        finally:
            if old is None:
                os.environ.pop("OARCONFFILE", None)
            else:
                os.environ["OARCONFFILE"] = old
        return Outcome(code, err.getvalue())

    def run_process(self, *argv: str, env: Mapping[str, str] | None = None, timeout: float = 120) -> Outcome:
        """The same, as a subprocess (``python -m oarsched.oar.kamelot``)."""
        args = list(argv) if argv else ["default", str(NOW), "1970-01-12 13:46:40"]
        full_env = dict(os.environ, OARCONFFILE=str(self.conf), **(env or {}))
        proc = subprocess.run([sys.executable, "-m", "oarsched.oar.kamelot", *args], env=full_env,
                              capture_output=True, text=True, timeout=timeout, cwd=self.dir)
        return Outcome(proc.returncode, proc.stderr)

    def gantt(self) -> dict[int, tuple[int | None, list[int]]]:
        """Job id -> (start time, resource ids) of every job with gantt rows."""
        eng = self.engine()
        try:
            with eng.connect() as conn:
                return read_gantt(conn)
        finally:
            eng.dispose()


@contextmanager
def _logging_restored() -> Iterator[None]:
    """Undo what ``setup_logging`` does to the ``oarsched`` logger (handlers, level, propagation)."""
    logger = logging.getLogger("oarsched")
    saved = (list(logger.handlers), logger.level, logger.propagate)
    installed = list(config_module._installed_handlers)
    try:
        yield
    finally:
        for handler in logger.handlers:
            if handler not in saved[0]:
                logger.removeHandler(handler)
                handler.close()
        logger.handlers[:] = saved[0]
        logger.setLevel(saved[1])
        logger.propagate = saved[2]
        config_module._installed_handlers[:] = installed


def read_gantt(conn: Connection) -> dict[int, tuple[int | None, list[int]]]:
    """Job id -> (start time, sorted resource ids) from the gantt tables."""
    rows = conn.execute(text(
        "SELECT m.moldable_job_id, p.start_time, r.resource_id FROM gantt_jobs_predictions p "
        "JOIN moldable_job_descriptions m ON m.moldable_id = p.moldable_job_id "
        "LEFT JOIN gantt_jobs_resources r ON r.moldable_job_id = p.moldable_job_id "
        "ORDER BY m.moldable_job_id, r.resource_id")).all()
    out: dict[int, tuple[int, list[int]]] = {}
    for jid, start, rid in rows:
        entry = out.setdefault(int(jid), (None if start is None else int(start), []))
        if rid is not None:
            entry[1].append(int(rid))
    return out


def node_resources(nodes: int = 2, cores: int = 4) -> list[dict[str, Any]]:
    """``nodes`` x ``cores`` Alive default resources, ids from 1, node names ``node-1``..."""
    return [{"network_address": f"node-{n + 1}", "core": n * cores + c + 1}
            for n in range(nodes) for c in range(cores)]


def conf_for_url(url: str) -> dict[str, str]:
    """The ``DB_*`` keys of ``oar.conf`` naming a SQLAlchemy URL (SQLite or PostgreSQL)."""
    u = make_url(url)
    if u.get_backend_name() == "sqlite":
        return {"DB_TYPE": "sqlite", "DB_BASE_FILE": str(u.database)}
    return {"DB_TYPE": "Pg", "DB_HOSTNAME": str(u.host), "DB_PORT": str(u.port),
            "DB_BASE_NAME": str(u.database), "DB_BASE_LOGIN": str(u.username),
            "DB_BASE_PASSWD": str(u.password or "")}


def make_case(tmp_path: Path, setup: Callable[[Connection], Any] | None = None, *,
              conf: Mapping[str, str] | None = None, resources: list[dict[str, Any]] | None = None,
              name: str = "case", url: str | None = None) -> Case:
    """An OAR3 database with ``resources`` (default 2 nodes x 4 cores), queues ``default`` and
    ``besteffort``, the jobs ``setup(conn)`` adds, and an ``oar.conf`` (:data:`BASE_CONF` + ``conf``).

    ``url``: an empty database to fill (PostgreSQL); default a new SQLite file in the case folder.
    """
    folder = tmp_path / name
    folder.mkdir(parents=True, exist_ok=True)
    url = url or f"sqlite:///{folder / 'oar.sqlite'}"
    eng = create_engine(url)
    if eng.dialect.name == "sqlite":  # building only: no fsync per DDL statement (the schema has ~60)
        event.listen(eng, "connect", lambda dbapi_conn, _: dbapi_conn.execute("PRAGMA synchronous = OFF"))
    try:
        with eng.begin() as conn:
            create_schema(conn, {"core": Integer()})
            add_resources(conn, resources if resources is not None else node_resources())
            add_queue(conn, "default", 2)
            add_queue(conn, "besteffort", 0)
            if setup is not None:
                setup(conn)
    finally:
        eng.dispose()
    case = Case(dir=folder, url=url, conf=folder / "oar.conf",
                conf_values={**BASE_CONF, **conf_for_url(url), **(conf or {})})
    case.write_conf()
    return case


# ----------------------------------------------------------------------------- big databases
def _series(conn: Connection, n: int) -> str:
    """SQL of a row source ``s(k)`` for k = 0 .. n-1 (PostgreSQL's generate_series, SQLite's recursive CTE)."""
    if conn.dialect.name == "postgresql":
        return f"(SELECT k FROM generate_series(0, {int(n) - 1}) AS k) AS s"
    return (f"(WITH RECURSIVE r(k) AS (SELECT 0 UNION ALL SELECT k + 1 FROM r WHERE k < {int(n) - 1}) "
            "SELECT k FROM r) AS s")


def _bump_sequences(conn: Connection, *columns: tuple[str, str]) -> None:
    if conn.dialect.name != "postgresql":
        return
    for table, column in columns:
        conn.execute(text(f"SELECT setval(pg_get_serial_sequence('{table}', '{column}'), "
                          f"(SELECT MAX({column}) FROM {table}) + 1, false)"))


def add_many_resources(conn: Connection, n: int, *, cores_per_node: int = 32) -> None:
    """``n`` Alive default resources (ids 1..n, ``core`` = id, ``cores_per_node`` a node) in one statement."""
    conn.execute(text(
        "INSERT INTO resources (resource_id, network_address, core) "
        f"SELECT k + 1, 'node-' || CAST(k / {int(cores_per_node)} + 1 AS TEXT), k + 1 FROM {_series(conn, n)}"))
    _bump_sequences(conn, ("resources", "resource_id"))


def add_many_jobs(conn: Connection, n: int, *, first_id: int = 1, queue: str = "default",
                  level: str = "resource_id", count: int = 1, walltime: int = 60) -> list[int]:
    """``n`` waiting jobs ``level=count`` of ``walltime`` (job, moldable and group ids ``first_id``...),
    written the way :func:`~oarsched.oar.submit.add_job` writes them, four statements in all."""
    s, f = _series(conn, n), int(first_id)
    conn.execute(text(
        "INSERT INTO jobs (job_id, job_type, state, reservation, message, job_user, project, queue_name, "
        "properties, launching_directory, submission_time, start_time, stop_time, checkpoint_signal, "
        "suspended, assigned_moldable_job) "
        f"SELECT {f} + k, 'PASSIVE', 'Waiting', 'None', '', 'user', '', :queue, '', '', {f} + k, 0, 0, 0, 'NO', 0 "
        f"FROM {s}"), {"queue": queue})
    conn.execute(text("INSERT INTO moldable_job_descriptions (moldable_id, moldable_job_id, moldable_walltime) "
                      f"SELECT {f} + k, {f} + k, :w FROM {s}"), {"w": int(walltime)})
    conn.execute(text("INSERT INTO job_resource_groups (res_group_id, res_group_moldable_id, res_group_property) "
                      f"SELECT {f} + k, {f} + k, '' FROM {s}"))
    conn.execute(text("INSERT INTO job_resource_descriptions (res_job_group_id, res_job_resource_type, "
                      f"res_job_value, res_job_order) SELECT {f} + k, :level, :count, 0 FROM {s}"),
                 {"level": level, "count": int(count)})
    _bump_sequences(conn, ("jobs", "job_id"), ("moldable_job_descriptions", "moldable_id"),
                    ("job_resource_groups", "res_group_id"))
    return list(range(f, f + n))
