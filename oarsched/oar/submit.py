"""Write resources, queues and jobs into an OAR3 database the way OAR3 does.

The rows are those OAR3's own insertion (``insert_job`` / ``oarsub``) and
meta-scheduler produce, as found in the conformance databases:

- ``jobs``: one row; ``launching_directory=''``, ``checkpoint_signal=0``,
  ``properties=''`` unless given, every other column left to its server
  default unless given (``job_name`` NULL when no name, ``message=''``...);
- ``moldable_job_descriptions``: one row per moldable, in order
  (``moldable_index`` defaults to ``'CURRENT'``);
- ``job_resource_groups``: one row per ``+`` group (``res_group_property``
  ``''`` when the group has no ``{...}``);
- ``job_resource_descriptions``: one row per level, ``res_job_order`` =
  position from the top, ``ALL``/``BEST``/``HALF_BEST`` stored as -1/-2/-3;
- ``job_types``: one row per type string (``timesharing=*,*`` is one row);
- ``job_dependencies``: one row per required job.

Running jobs additionally get ``assigned_moldable_job``, ``assigned_resources``
and the gantt rows the meta-scheduler writes before calling a scheduler, with
the ``jobs.message`` it writes (``R=<n>,J=P,Q=<queue>[,N=<name>]``).  Accepted
advance reservations (``reservation='Scheduled'``, state ``Waiting``) get
their gantt rows only.

All functions take a SQLAlchemy ``Connection`` and leave committing to the
caller.
"""
from __future__ import annotations

import re
from typing import Any, Iterable, Mapping, Sequence

from sqlalchemy import MetaData, Table, insert, select, text, update
from sqlalchemy.engine import Connection
from sqlalchemy.exc import NoSuchTableError

from oarsched.errors import DatabaseError, JobError
from oarsched.model.job import Moldable, ResourceGroup, parse_request, parse_walltime
from oarsched.oar.db import job_message
from oarsched.oar.schema import make_metadata

__all__ = [
    "parse_walltime",
    "normalize_moldables",
    "add_resources",
    "add_queue",
    "add_job",
    "add_running_job",
    "add_reservation",
    "add_prediction",
]

_MD = make_metadata()
T: Mapping[str, Table] = _MD.tables
"""OAR3's tables (``resources`` without site columns: use :func:`add_resources`)."""

# --------------------------------------------------------------------------- parsing
def _new_id(result: Any) -> int:
    """The primary key an INSERT gave its row."""
    key = result.inserted_primary_key
    assert key is not None
    return int(key[0])


def _split_walltime(text: str) -> tuple[str, int | None]:
    """``"nodes=2,walltime=1:0:0"`` -> ``("nodes=2", 3600)``; no walltime -> None.

    Only a trailing ``,walltime=...`` is taken (commas inside ``{...}`` stay);
    a bare ``walltime=...`` means the default ``resource_id=1``.
    """
    m = re.fullmatch(r"\s*walltime\s*=\s*([\d:]+)\s*", text)
    if m:
        return "resource_id=1", parse_walltime(m.group(1))
    m = re.fullmatch(r"(.*?)\s*,\s*walltime\s*=\s*([\d:]+)\s*", text, flags=re.S)
    if m:
        return m.group(1), parse_walltime(m.group(2))
    if "walltime" in text.rsplit("}", 1)[-1]:
        raise JobError(None, f"cannot read the walltime in request {text!r}")
    return text, None


def _groups(request: Any, nodes_label: str) -> list[ResourceGroup]:
    if isinstance(request, str):
        return parse_request(request, nodes_label=nodes_label)
    groups: list[ResourceGroup] = []
    for g in request:
        if isinstance(g, ResourceGroup):
            groups.append(g)
        elif isinstance(g, (tuple, list)) and len(g) == 2 and isinstance(g[0], str):
            # insert_job style: ("switch=1/nodes=2", "property")
            (parsed,) = parse_request(g[0], nodes_label=nodes_label)
            groups.append(ResourceGroup(levels=parsed.levels, property=g[1] or ""))
        else:
            raise JobError(None, f"cannot understand resource group {g!r}")
    if not groups:
        raise JobError(None, "a moldable needs at least one resource group")
    return groups


def normalize_moldables(
    request: Any = None,
    walltime: int | str | None = None,
    moldables: Iterable[Any] | None = None,
    nodes_label: str = "network_address",
) -> list[tuple[int, list[ResourceGroup]]]:
    """Turn the accepted request forms into ``[(walltime, [ResourceGroup, ...]), ...]``.

    - ``request``: an ``oarsub -l`` string (optionally ending in
      ``,walltime=H:M:S``, which wins over ``walltime``), a list of
      :class:`ResourceGroup`, or a list of ``(levels, property)`` pairs as in
      OAR3's ``insert_job``; ``walltime``: seconds or ``H:M:S``;
    - ``moldables``: several alternatives, each a :class:`Moldable`, a
      ``(walltime, request)`` pair, or a string with its ``,walltime=``.
    """
    out: list[tuple[int, list[ResourceGroup]]] = []
    if moldables is not None:
        if request is not None:
            raise JobError(None, "give either request or moldables, not both")
        for m in moldables:
            if isinstance(m, Moldable):
                if m.walltime is None:
                    raise JobError(None, f"moldable {m.id} has no walltime")
                out.append((int(m.walltime), list(m.groups)))
            elif isinstance(m, str):
                req, own = _split_walltime(m)
                w = own if own is not None else walltime
                if w is None:
                    raise JobError(None, f"moldable {m!r} has no walltime")
                out.append((parse_walltime(w), _groups(req, nodes_label)))
            elif isinstance(m, (tuple, list)) and len(m) == 2:
                w, req = m
                out.append((parse_walltime(w), _groups(req, nodes_label)))
            else:
                raise JobError(None, f"cannot understand moldable {m!r}")
        if not out:
            raise JobError(None, "a job needs at least one moldable")
        return out
    if request is None:
        request = "resource_id=1"
    if isinstance(request, str):
        request, w = _split_walltime(request)
        if w is not None:
            walltime = w
    if walltime is None:
        raise JobError(None, "a job needs a walltime")
    return [(parse_walltime(walltime), _groups(request, nodes_label))]


def _type_strings(types: Iterable[str] | Mapping[str, str]) -> list[str]:
    if isinstance(types, Mapping):
        return [f"{k}={v}" if v != "" else k for k, v in types.items()]
    if isinstance(types, str):
        return [types]
    return [str(t) for t in types]


def add_resources(conn: Connection, rows: Sequence[Mapping[str, Any]]) -> list[int]:
    """Insert ``resources`` rows (site columns included) and return their ids, in order.

    Missing columns get their server default; ``resource_id`` may be given
    (then, on PostgreSQL, the id sequence is moved past it).  A column the
    table does not have raises :class:`DatabaseError`.
    """
    rows = [dict(r) for r in rows]
    if not rows:
        return []
    try:
        res = Table("resources", MetaData(), autoload_with=conn)
    except NoSuchTableError:
        raise DatabaseError("the database has no resources table") from None
    unknown = sorted({k for r in rows for k in r} - set(res.c.keys()))
    if unknown:
        raise DatabaseError("resources has no column(s) " + ", ".join(unknown)
                            + " (add them with create_schema(extra_resource_columns=...))")
    ids: list[int] = []
    explicit = False
    for r in rows:  # one by one: ids in order on every backend, rows may differ in keys
        explicit |= "resource_id" in r
        result = conn.execute(insert(res).values(**r))
        ids.append(_new_id(result))
    if explicit:
        _bump_sequence(conn, "resources", "resource_id")
    return ids


def _bump_sequence(conn: Connection, table: str, column: str) -> None:
    """After explicit ids on PostgreSQL, move the SERIAL sequence past the largest id."""
    if conn.dialect.name != "postgresql":
        return
    conn.execute(text(
        f"SELECT setval(pg_get_serial_sequence('{table}', '{column}'), "
        f"COALESCE((SELECT MAX({column}) FROM {table}), 0) + 1, false)"
    ))


def add_queue(conn: Connection, name: str, priority: int = 0, *,
              scheduler_policy: str = "kamelot", state: str = "Active") -> None:
    """Insert a ``queues`` row."""
    conn.execute(insert(T["queues"]).values(
        queue_name=name, priority=priority, scheduler_policy=scheduler_policy, state=state))


def add_job(
    conn: Connection,
    *,
    request: Any = None,
    walltime: int | str | None = None,
    moldables: Iterable[Any] | None = None,
    queue: str = "default",
    user: str = "",
    project: str = "",
    name: str | None = None,
    properties: str = "",
    types: Iterable[str] | Mapping[str, str] = (),
    dependencies: Iterable[int] = (),
    state: str = "Waiting",
    submission_time: int = 0,
    reservation: str = "None",
    start_time: int = 0,
    stop_time: int = 0,
    exit_code: int | None = None,
    message: str = "",
    job_type: str = "PASSIVE",
    suspended: str = "NO",
    nodes_label: str = "network_address",
    state_log: bool = False,
    extra: Mapping[str, Any] | None = None,
) -> int:
    """Insert a job (rows of jobs, moldables, groups, levels, types, dependencies).

    ``request``/``walltime``/``moldables``: see :func:`normalize_moldables`
    (default ``resource_id=1``).  ``types``: OAR type strings
    (``["besteffort", "timesharing=*,*"]``) or a dict ``{name: value}``.
    ``extra``: other ``jobs`` columns (``command``, ``initial_request``,
    ``stdout_file``...).  ``state_log`` also writes the ``job_state_logs`` row
    ``oarsub`` writes (state, ``date_start=submission_time``); the corpus
    databases, made with ``insert_job``, have none.  Returns the job id.
    """
    job_id, _ = _insert_job(
        conn, request=request, walltime=walltime, moldables=moldables, queue=queue,
        user=user, project=project, name=name, properties=properties, types=types,
        dependencies=dependencies, state=state, submission_time=submission_time,
        reservation=reservation, start_time=start_time, stop_time=stop_time,
        exit_code=exit_code, message=message, job_type=job_type, suspended=suspended,
        nodes_label=nodes_label, state_log=state_log, extra=extra)
    return job_id


def _insert_job(conn: Connection, *, request, walltime, moldables, queue, user, project, name,
                properties, types, dependencies, state, submission_time, reservation,
                start_time, stop_time, exit_code, message, job_type, suspended, nodes_label,
                state_log, extra, assigned_moldable_job: int = 0) -> tuple[int, list[int]]:
    molds = normalize_moldables(request, walltime, moldables, nodes_label)
    values: dict[str, Any] = {
        "job_type": job_type,
        "state": state,
        "reservation": reservation,
        "message": message,
        "job_user": user,
        "project": project,
        "job_name": name,
        "queue_name": queue,
        "properties": properties if properties is not None else "",
        "launching_directory": "",
        "submission_time": int(submission_time),
        "start_time": int(start_time),
        "stop_time": int(stop_time),
        "exit_code": exit_code,
        "checkpoint_signal": 0,
        "suspended": suspended,
        "assigned_moldable_job": assigned_moldable_job,
    }
    if extra:
        unknown = sorted(set(extra) - set(T["jobs"].c.keys()))
        if unknown:
            raise DatabaseError("jobs has no column(s) " + ", ".join(unknown))
        values.update(extra)
    if values.get("job_id") is not None:
        raise DatabaseError("job ids are given by the database; do not pass job_id")
    job_id = _new_id(conn.execute(insert(T["jobs"]).values(**values)))

    mld_ids: list[int] = []
    for w, groups in molds:
        mld_id = _new_id(conn.execute(insert(T["moldable_job_descriptions"]).values(
            moldable_job_id=job_id, moldable_walltime=int(w))))
        mld_ids.append(mld_id)
    for mld_id, (_, groups) in zip(mld_ids, molds):
        for g in groups:
            grp_id = _new_id(conn.execute(insert(T["job_resource_groups"]).values(
                res_group_moldable_id=mld_id,
                res_group_property=g.property or "")))
            conn.execute(insert(T["job_resource_descriptions"]), [
                {"res_job_group_id": grp_id, "res_job_resource_type": label,
                 "res_job_value": int(n), "res_job_order": order}
                for order, (label, n) in enumerate(g.levels)
            ])
    type_rows = [{"job_id": job_id, "type": t} for t in _type_strings(types)]
    if type_rows:
        conn.execute(insert(T["job_types"]), type_rows)
    dep_rows = [{"job_id": job_id, "job_id_required": int(d)} for d in dependencies]
    if dep_rows:
        conn.execute(insert(T["job_dependencies"]), dep_rows)
    if state_log:
        conn.execute(insert(T["job_state_logs"]).values(
            job_id=job_id, job_state=state, date_start=int(submission_time)))
    return job_id, mld_ids


def _gantt(conn: Connection, moldable_id: int, start_time: int, resource_ids: Sequence[int]) -> None:
    conn.execute(insert(T["gantt_jobs_predictions"]).values(
        moldable_job_id=moldable_id, start_time=int(start_time)))
    conn.execute(insert(T["gantt_jobs_resources"]), [
        {"moldable_job_id": moldable_id, "resource_id": int(r)} for r in resource_ids])


def _check_rids(resource_ids: Iterable[int], job: str) -> list[int]:
    rids = sorted({int(r) for r in resource_ids})
    if not rids:
        raise JobError(None, f"{job} needs at least one resource id")
    return rids


def add_running_job(
    conn: Connection,
    *,
    start_time: int,
    resource_ids: Iterable[int],
    moldable_index: int = 0,
    state: str = "Running",
    message: str | None = None,
    **job: Any,
) -> int:
    """Insert a job already started, as the meta-scheduler leaves it for a scheduler.

    ``job`` takes the keywords of :func:`add_job` (request, walltime, queue,
    user, types...).  Writes the ``jobs`` row with ``state`` (``Running``,
    ``Suspended``...), ``start_time`` and ``assigned_moldable_job`` (the
    ``moldable_index``-th moldable), the ``assigned_resources`` rows, and the
    gantt rows ``gantt_init_with_running_jobs`` writes (start = ``start_time``)
    with the ``jobs.message`` it sets (``R=<n>,J=P,Q=<queue>[,N=<name>]``).
    Returns the job id.
    """
    rids = _check_rids(resource_ids, "a running job")
    if message is None:
        message = job_message(nb_resources=len(rids), queue=job.get("queue", "default"),
                              name=job.get("name"), job_type=job.get("job_type", "PASSIVE"))
    kwargs = _job_defaults(job)
    job_id, mld_ids = _insert_job(conn, state=state, start_time=start_time, message=message,
                                  **kwargs)
    mld_id = mld_ids[moldable_index]
    conn.execute(update(T["jobs"]).where(T["jobs"].c.job_id == job_id)
                 .values(assigned_moldable_job=mld_id))
    conn.execute(insert(T["assigned_resources"]), [
        {"moldable_job_id": mld_id, "resource_id": r} for r in rids])
    _gantt(conn, mld_id, start_time, rids)
    return job_id


def add_reservation(
    conn: Connection,
    *,
    start_time: int,
    resource_ids: Iterable[int],
    moldable_index: int = 0,
    **job: Any,
) -> int:
    """Insert an accepted advance reservation: ``state='Waiting'``,
    ``reservation='Scheduled'``, ``jobs.start_time`` = reservation start, and
    its gantt rows (kept by the meta-scheduler's flush); no assigned resources,
    empty message.  Returns the job id."""
    rids = _check_rids(resource_ids, "a reservation")
    kwargs = _job_defaults(job)
    kwargs.pop("reservation", None)
    job_id, mld_ids = _insert_job(conn, state="Waiting", reservation="Scheduled",
                                  start_time=start_time, message=kwargs.pop("message", ""),
                                  **kwargs)
    _gantt(conn, mld_ids[moldable_index], start_time, rids)
    return job_id


def add_prediction(
    conn: Connection,
    job_id: int,
    start_time: int,
    resource_ids: Iterable[int],
    *,
    moldable_id: int | None = None,
    security_time: int = 60,
    update_job: bool = True,
) -> int:
    """Record a decision already made this round by a higher-priority queue.

    Writes the gantt rows for ``moldable_id`` (default: the job's first
    moldable) and, with ``update_job``, what the meta-scheduler leaves on the
    waiting job: ``jobs.start_time`` = predicted start and the message
    ``R=<n>,W=<walltime+security_time>,J=P,Q=<queue>[,N=<name>]``.  Returns the
    moldable id.
    """
    rids = _check_rids(resource_ids, f"job {job_id}")
    mjd = T["moldable_job_descriptions"]
    rows = conn.execute(select(mjd.c.moldable_id, mjd.c.moldable_walltime)
                        .where(mjd.c.moldable_job_id == job_id)
                        .order_by(mjd.c.moldable_id)).all()
    if not rows:
        raise JobError(job_id, "no moldable")
    walls = dict(rows)
    if moldable_id is None:
        moldable_id = rows[0][0]
    if moldable_id not in walls:
        raise JobError(job_id, f"moldable {moldable_id} is not one of the job's")
    _gantt(conn, moldable_id, start_time, rids)
    if update_job:
        jobs = T["jobs"]
        q, name, jtype = conn.execute(select(jobs.c.queue_name, jobs.c.job_name, jobs.c.job_type)
                                      .where(jobs.c.job_id == job_id)).one()
        msg = job_message(nb_resources=len(rids), walltime=walls[moldable_id] + security_time,
                          queue=q, name=name, job_type=jtype)
        conn.execute(update(jobs).where(jobs.c.job_id == job_id)
                     .values(start_time=int(start_time), message=msg))
    return moldable_id


_JOB_KEYS = {
    "request": None, "walltime": None, "moldables": None, "queue": "default", "user": "",
    "project": "", "name": None, "properties": "", "types": (), "dependencies": (),
    "submission_time": 0, "reservation": "None", "stop_time": 0, "exit_code": None,
    "job_type": "PASSIVE", "suspended": "NO", "nodes_label": "network_address",
    "state_log": False, "extra": None,
}


def _job_defaults(job: Mapping[str, Any]) -> dict[str, Any]:
    unknown = sorted(set(job) - set(_JOB_KEYS) - {"message"})
    if unknown:
        raise TypeError("unexpected keyword argument(s): " + ", ".join(unknown))
    out = dict(_JOB_KEYS)
    out.update(job)
    return out

