"""OAR3's database schema as SQLAlchemy Core tables.

The definitions reproduce the tables OAR3 creates (``oar/lib/models.py``):
same table and column names, types, server defaults, primary keys, check
constraints and index names, so that :func:`create_schema` gives, on SQLite,
the DDL found in the conformance databases and, on PostgreSQL, what OAR3
itself creates there (``SERIAL`` for the single-integer primary keys).

The ``resources`` table carries site-specific columns (added by
``oarproperty``: ``core``, ``cpu``, ``switch``...).  They are passed to
:func:`make_metadata` / :func:`create_schema`, or seen by reflecting an
existing database with :func:`reflect_tables`.
"""
from __future__ import annotations

import re
from typing import Any, Iterable, Mapping

from sqlalchemy import (
    BigInteger,
    CheckConstraint,
    Column,
    Float,
    Index,
    Integer,
    MetaData,
    String,
    Table,
    Text,
    inspect,
    text,
)
from sqlalchemy.engine import Connection, Engine
from sqlalchemy.types import TypeEngine

from oarsched.errors import DatabaseError

__all__ = [
    "OAR_TABLES",
    "STANDARD_RESOURCE_COLUMNS",
    "REQUIRED_COLUMNS",
    "make_metadata",
    "create_schema",
    "reflect_tables",
    "resource_site_columns",
    "coerce_type",
]

_NULL = text("NULL")


def _c(name: str, type_: Any, default: str | None = None, *, pk: bool = False,
       index: bool = False, null_default: bool = False, **kw: Any) -> Column:
    """A column the way OAR3 declares them (string server defaults)."""
    if null_default:
        kw["server_default"] = _NULL
    elif default is not None:
        kw["server_default"] = default
    return Column(name, type_, primary_key=pk, index=index, **kw)


def _standard_tables(md: MetaData) -> None:
    Table(
        "accounting", md,
        _c("window_start", BigInteger, pk=True, autoincrement=False),
        _c("window_stop", BigInteger, "0", pk=True, autoincrement=False),
        _c("accounting_user", String(255), "", pk=True, index=True),
        _c("accounting_project", String(255), "", pk=True, index=True),
        _c("queue_name", String(100), "", pk=True, index=True),
        _c("consumption_type", String(5), "ASKED", pk=True, index=True),
        _c("consumption", BigInteger, "0"),
    )
    Table(
        "admission_rules", md,
        _c("id", Integer, pk=True),
        _c("rule", Text),
        _c("priority", Integer, "0"),
        _c("enabled", String(3), "YES"),
    )
    Table(
        "assigned_resources", md,
        _c("moldable_job_id", Integer, "0", pk=True, autoincrement=False, index=True),
        _c("resource_id", Integer, "0", pk=True),
        _c("assigned_resource_index", String(7), "CURRENT", index=True),
    )
    Table(
        "challenges", md,
        _c("job_id", Integer, "0", pk=True, autoincrement=False, index=True),
        _c("challenge", String(255), ""),
        _c("ssh_private_key", Text, ""),
        _c("ssh_public_key", Text, ""),
    )
    Table(
        "event_log_hostnames", md,
        _c("event_id", Integer, "0", pk=True, autoincrement=False),
        _c("hostname", String(255), "", pk=True, index=True),
    )
    Table(
        "event_logs", md,
        _c("event_id", Integer, pk=True),
        _c("type", String(100), "", index=True),
        _c("job_id", Integer, "0", index=True),
        _c("date", Integer, "0"),
        _c("description", String(255), ""),
        _c("to_check", String(3), "YES", index=True),
    )
    Table(
        "files", md,
        _c("file_id", Integer, pk=True),
        _c("md5sum", String(255), null_default=True, index=True, nullable=True),
        _c("location", String(255), null_default=True, nullable=True),
        _c("method", String(255), null_default=True, nullable=True),
        _c("compression", String(255), null_default=True, nullable=True),
        _c("size", Integer, "0"),
    )
    Table(
        "frag_jobs", md,
        _c("frag_id_job", Integer, "0", pk=True),
        _c("frag_date", Integer, "0"),
        _c("frag_state", String(16), "LEON", index=True),
    )
    for suffix in ("", "_visu"):
        Table(
            "gantt_jobs_predictions" + suffix, md,
            _c("moldable_job_id", Integer, "0", pk=True, autoincrement=False),
            _c("start_time", Integer, "0"),
        )
    Table(
        "gantt_jobs_predictions_log", md,
        _c("sched_date", Integer, "0", pk=True, autoincrement=False),
        _c("moldable_job_id", Integer, "0", pk=True),
        _c("start_time", Integer, "0"),
    )
    for suffix in ("", "_visu"):
        Table(
            "gantt_jobs_resources" + suffix, md,
            _c("moldable_job_id", Integer, "0", pk=True, autoincrement=False),
            _c("resource_id", Integer, "0", pk=True),
        )
    Table(
        "gantt_jobs_resources_log", md,
        _c("sched_date", Integer, "0", pk=True, autoincrement=False),
        _c("moldable_job_id", Integer, "0", pk=True),
        _c("resource_id", Integer, "0", pk=True),
    )
    Table(
        "job_dependencies", md,
        _c("job_id", Integer, "0", pk=True, autoincrement=False, index=True),
        _c("job_id_required", Integer, "0", pk=True),
        _c("job_dependency_index", String(7), "CURRENT", index=True),
    )
    Table(
        "job_resource_descriptions", md,
        _c("res_job_group_id", Integer, "0", pk=True, autoincrement=False, index=True),
        _c("res_job_resource_type", String(255), "", pk=True),
        _c("res_job_value", Integer, "0"),
        _c("res_job_order", Integer, "0", pk=True),
        _c("res_job_index", String(7), "CURRENT", index=True),
    )
    Table(
        "job_resource_groups", md,
        _c("res_group_id", Integer, pk=True),
        _c("res_group_moldable_id", Integer, "0", index=True),
        _c("res_group_property", Text, nullable=True),
        _c("res_group_index", String(7), "CURRENT", index=True),
    )
    Table(
        "job_state_logs", md,
        _c("job_state_log_id", Integer, pk=True),
        _c("job_id", Integer, "0", index=True),
        _c("job_state", String(16), "Waiting", index=True),
        _c("date_start", Integer, "0"),
        _c("date_stop", Integer, "0"),
    )
    Table(
        "job_types", md,
        _c("job_type_id", Integer, pk=True),
        _c("job_id", Integer, "0", index=True),
        _c("type", String(255), "", index=True),
        _c("types_index", String(7), "CURRENT", index=True),
    )
    Table(
        "jobs", md,
        _c("job_id", Integer, pk=True),
        _c("array_id", Integer, "0", index=True),
        _c("array_index", Integer, "1"),
        _c("initial_request", Text, nullable=True),
        _c("job_name", String(100), nullable=True),
        _c("job_env", Text, nullable=True),
        _c("job_type", String(11), "PASSIVE"),
        _c("info_type", String(255), null_default=True, nullable=True),
        _c("state", String(16), "Waiting", index=True),
        _c("reservation", String(10), "None", index=True),
        _c("message", String(255), ""),
        _c("scheduler_info", String(255), ""),
        _c("job_user", String(255), ""),
        _c("project", String(255), ""),
        _c("job_group", String(255), ""),
        _c("command", Text, nullable=True),
        _c("exit_code", Integer, nullable=True),
        _c("queue_name", String(100), "", index=True),
        _c("properties", Text, nullable=True),
        _c("launching_directory", Text),
        _c("submission_time", Integer, "0"),
        _c("start_time", Integer, "0"),
        _c("stop_time", Integer, "0"),
        _c("file_id", Integer, nullable=True),
        _c("accounted", String(3), "NO", index=True),
        _c("notify", String(255), null_default=True, nullable=True),
        _c("assigned_moldable_job", Integer, "0", nullable=True),
        _c("checkpoint", Integer, "0"),
        _c("checkpoint_signal", Integer),
        _c("stdout_file", Text, nullable=True),
        _c("stderr_file", Text, nullable=True),
        _c("resubmit_job_id", Integer, "0"),
        _c("suspended", String(3), "NO", index=True),
        _c("last_karma", Float, nullable=True),
        Index("state_id", "state", "job_id"),
    )
    Table(
        "moldable_job_descriptions", md,
        _c("moldable_id", Integer, pk=True),
        _c("moldable_job_id", Integer, "0", index=True),
        _c("moldable_walltime", Integer, "0"),
        _c("moldable_index", String(7), "CURRENT", index=True),
    )
    Table(
        "queues", md,
        _c("queue_name", String(100), "", pk=True),
        _c("priority", Integer, "0"),
        _c("scheduler_policy", String(100), ""),
        _c("state", String(9), "Active"),
    )
    Table(
        "resource_logs", md,
        _c("resource_log_id", Integer, pk=True),
        _c("resource_id", Integer, "0", index=True),
        _c("attribute", String(255), "", index=True),
        _c("value", String(255), "", index=True),
        _c("date_start", Integer, "0", index=True),
        _c("date_stop", Integer, "0", index=True),
        _c("finaud_decision", String(3), "NO", index=True),
    )
    Table(
        "scheduler", md,
        _c("name", String(100), pk=True),
        _c("script", String(100)),
        _c("description", String(255)),
    )
    Table(
        "walltime_change", md,
        _c("job_id", Integer, "0", pk=True, autoincrement=False, index=True),
        _c("pending", Integer, "0"),
        _c("force", String(3), "NO", index=True),
        _c("delay_next_jobs", String(3), "NO", index=True),
        _c("granted", Integer, "0"),
        _c("granted_with_force", Integer, "0"),
        _c("granted_with_delay_next_jobs", Integer, "0"),
        CheckConstraint("force IN ('NO', 'YES')"),
        CheckConstraint("delay_next_jobs IN ('NO', 'YES')"),
    )


def _standard_resource_columns() -> list[Column]:
    return [
        _c("resource_id", Integer, pk=True),
        _c("type", String(100), "default", index=True),
        _c("network_address", String(100), "", index=True),
        _c("state", String(9), "Alive", index=True),
        _c("next_state", String(9), "UnChanged", index=True),
        _c("finaud_decision", String(3), "NO"),
        _c("next_finaud_decision", String(3), "NO"),
        _c("state_num", Integer, "0"),
        _c("suspended_jobs", String(3), "NO", index=True),
        _c("scheduler_priority", BigInteger, "0"),
        _c("cpuset", String(255), "0"),
        _c("besteffort", String(3), "YES"),
        _c("deploy", String(3), "NO"),
        _c("expiry_date", Integer, "0"),
        _c("desktop_computing", String(3), "NO"),
        _c("last_job_date", Integer, "0"),
        _c("available_upto", Integer, "2147483647"),
        _c("last_available_upto", Integer, "0"),
        _c("drain", String(3), "NO"),
    ]


STANDARD_RESOURCE_COLUMNS: tuple[str, ...] = tuple(c.name for c in _standard_resource_columns())
"""Columns of ``resources`` created by OAR3 itself (anything else is a site property)."""

def _all_table_names() -> tuple[str, ...]:
    md = MetaData()
    _standard_tables(md)
    return tuple(sorted(list(md.tables) + ["resources"]))


OAR_TABLES: tuple[str, ...] = _all_table_names()
"""Every table of OAR3's schema (26)."""

REQUIRED_COLUMNS: dict[str, tuple[str, ...]] = {
    "jobs": (
        "job_id", "state", "reservation", "queue_name", "properties", "job_user",
        "project", "job_name", "job_type", "submission_time", "start_time",
        "suspended", "exit_code", "message", "last_karma",
    ),
    "moldable_job_descriptions": (
        "moldable_id", "moldable_job_id", "moldable_walltime", "moldable_index",
    ),
    "job_resource_groups": (
        "res_group_id", "res_group_moldable_id", "res_group_property", "res_group_index",
    ),
    "job_resource_descriptions": (
        "res_job_group_id", "res_job_resource_type", "res_job_value", "res_job_order",
        "res_job_index",
    ),
    "job_types": ("job_id", "type"),
    "job_dependencies": ("job_id", "job_id_required", "job_dependency_index"),
    "resources": ("resource_id", "type", "state", "available_upto"),
    "gantt_jobs_predictions": ("moldable_job_id", "start_time"),
    "gantt_jobs_resources": ("moldable_job_id", "resource_id"),
    "job_state_logs": ("job_id", "job_state", "date_start", "date_stop"),
    "accounting": (
        "window_start", "window_stop", "accounting_user", "accounting_project",
        "queue_name", "consumption_type", "consumption",
    ),
}
"""What the scheduler reads or writes (reference §1.5): table -> columns."""


_TYPE_NAMES: dict[str, Any] = {
    "INTEGER": Integer, "INT": Integer, "SMALLINT": Integer,
    "BIGINT": BigInteger,
    "TEXT": Text,
    "FLOAT": Float, "REAL": Float, "DOUBLE": Float, "DOUBLE PRECISION": Float,
    "VARCHAR": String, "CHARACTER VARYING": String, "STRING": String,
}


def coerce_type(value: Any) -> TypeEngine:
    """A SQLAlchemy type from a type instance, a type class or a SQL name (``"VARCHAR(255)"``)."""
    if isinstance(value, TypeEngine):
        return value
    if isinstance(value, type) and issubclass(value, TypeEngine):
        return value()
    if isinstance(value, str):
        m = re.fullmatch(r"\s*([A-Za-z ]+?)\s*(?:\(\s*(\d+)\s*\))?\s*", value)
        if m and m.group(1).upper() in _TYPE_NAMES:
            cls = _TYPE_NAMES[m.group(1).upper()]
            if m.group(2) and cls is String:
                return String(int(m.group(2)))
            return cls()
    raise DatabaseError(f"unsupported column type {value!r} for a resources column")


def make_metadata(extra_resource_columns: Mapping[str, Any] = {}) -> MetaData:  # noqa: B006
    """A fresh ``MetaData`` holding OAR3's 26 tables.

    ``extra_resource_columns`` maps site columns of ``resources`` (``core``,
    ``switch``...) to their type (a ``TypeEngine`` instance or class, or a SQL
    type name); they come after OAR3's own columns, nullable, no default, as
    ``oarproperty -a`` adds them.
    """
    md = MetaData()
    _standard_tables(md)
    cols = _standard_resource_columns()
    for name, type_ in dict(extra_resource_columns).items():
        if name in STANDARD_RESOURCE_COLUMNS:
            raise DatabaseError(f"resources column {name!r} is one of OAR3's own columns")
        if not re.fullmatch(r"[A-Za-z_][A-Za-z0-9_]*", name):
            raise DatabaseError(f"bad resources column name {name!r}")
        cols.append(Column(name, coerce_type(type_)))
    Table("resources", md, *cols)
    return md


def create_schema(engine_or_conn: Engine | Connection,
                  extra_resource_columns: Mapping[str, Any] = {}) -> MetaData:  # noqa: B006
    """Create OAR3's tables (those not present yet) and return their ``MetaData``.

    With an ``Engine`` the DDL is committed; with a ``Connection`` it runs in the
    connection's transaction (the caller commits).
    """
    md = make_metadata(extra_resource_columns)
    md.create_all(engine_or_conn)
    return md


def resource_site_columns(conn: Engine | Connection) -> dict[str, TypeEngine]:
    """Site columns of an existing ``resources`` table, with their reflected types, in order."""
    insp = inspect(conn)
    return {
        col["name"]: col["type"]
        for col in insp.get_columns("resources")
        if col["name"] not in STANDARD_RESOURCE_COLUMNS
    }


def reflect_tables(
    conn: Engine | Connection,
    *,
    required_resource_columns: Iterable[str] = (),
) -> dict[str, Table]:
    """Reflect the OAR3 tables of an existing database.

    Returns ``{table name: Table}`` for every table of OAR3's schema present in
    the database (reflected, so ``resources`` has its site columns).  Raises
    :class:`~oarsched.errors.DatabaseError` naming every missing table and
    column the scheduler needs (:data:`REQUIRED_COLUMNS`, plus
    ``required_resource_columns``, e.g. the hierarchy labels in use); the
    exception has ``missing_tables`` and ``missing_columns`` (``table.column``)
    attributes.
    """
    try:
        insp = inspect(conn)
        present = set(insp.get_table_names())
    except Exception as exc:  # pragma: no cover - depends on the driver
        raise DatabaseError(f"cannot read the database's table list: {exc}") from exc
    names = [t for t in OAR_TABLES if t in present]
    md = MetaData()
    try:
        md.reflect(bind=conn, only=names)
    except Exception as exc:  # pragma: no cover - depends on the driver
        raise DatabaseError(f"cannot reflect the OAR tables: {exc}") from exc

    required = {t: list(cols) for t, cols in REQUIRED_COLUMNS.items()}
    for col in required_resource_columns:
        if col not in required["resources"]:
            required["resources"].append(col)

    missing_tables = sorted(t for t in required if t not in md.tables)
    missing_columns = [
        f"{t}.{c}"
        for t, cols in required.items()
        if t in md.tables
        for c in cols
        if c not in md.tables[t].c
    ]
    if missing_tables or missing_columns:
        parts = []
        if missing_tables:
            parts.append("missing table(s): " + ", ".join(missing_tables))
        if missing_columns:
            parts.append("missing column(s): " + ", ".join(missing_columns))
        err = DatabaseError("not an OAR3 database usable by the scheduler: " + "; ".join(parts))
        err.missing_tables = missing_tables  # type: ignore[attr-defined]
        err.missing_columns = missing_columns  # type: ignore[attr-defined]
        raise err
    return {name: md.tables[name] for name in names}
