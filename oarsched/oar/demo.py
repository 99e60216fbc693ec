"""A small, deterministic OAR3 database to try the scheduler on.

:func:`build_demo_db` writes the state OAR3's meta-scheduler hands to an
external scheduler (reference §1.6) for a cluster of 2 switches, 8 nodes of 2
cpus x 4 cores (64 resources; ``node-8`` Absent, one core of ``node-2``
Dead):

- queues ``admin`` (10), ``default`` (2), ``besteffort`` (0), policy ``kamelot``;
- two Running jobs with their assigned resources and gantt rows, and one
  accepted advance reservation (``reservation='Scheduled'``, Waiting, gantt rows);
- fifteen Waiting jobs (fourteen in ``default``, one in ``besteffort``): core
  requests, ``switch=1/network_address=2``, ``network_address=1/cpu=2``, a
  job-wide property, a two-shape moldable job, a ``timesharing=*,*`` pair, a
  dependency chain, a besteffort job, a ``placeholder``/``allow`` pair and a
  resource-group property.

:func:`demo_oar_conf` gives a matching ``oar.conf``.  Run the scheduler with
the returned ``argv`` (``default 1735689600 "2025-01-01 00:00:00"``).
"""
from __future__ import annotations

import os
from datetime import datetime, timezone
from typing import Any

from sqlalchemy import Integer, String, create_engine, inspect, select

from oarsched.errors import DatabaseError
from oarsched.oar.schema import OAR_TABLES, create_schema, make_metadata
from oarsched.oar.submit import add_job, add_queue, add_reservation, add_resources, add_running_job

__all__ = ["NOW", "NOW_SQL", "DEMO_EXTRA_RESOURCE_COLUMNS", "HIERARCHY_LABELS",
           "build_demo_db", "demo_oar_conf"]

NOW = 1735689600
"""The demo's clock: 2025-01-01 00:00:00 UTC."""
NOW_SQL = "2025-01-01 00:00:00"

DEMO_EXTRA_RESOURCE_COLUMNS = {
    "core": Integer(),
    "cpu": Integer(),
    "host": String(255),
    "mem": Integer(),
    "switch": String(255),
}
"""Site columns of the demo's ``resources`` (as in the conformance databases)."""

HIERARCHY_LABELS = "resource_id,network_address,cpu,core,switch"

NB_NODES, CPUS_PER_NODE, CORES_PER_CPU = 8, 2, 4
ABSENT_NODE = "node-8"
DEAD_RESOURCE = 12  # a core of node-2


def _url(url_or_path: Any) -> tuple[str, str | None]:
    s = os.fspath(url_or_path) if not isinstance(url_or_path, str) else url_or_path
    if "://" in s:
        return s, None
    path = os.path.abspath(s)
    return "sqlite:///" + path, path


def _resource_rows() -> list[dict[str, Any]]:
    rows = []
    for node in range(1, NB_NODES + 1):
        name = f"node-{node}"
        for cpu in range(CPUS_PER_NODE):
            for core in range(CORES_PER_CPU):
                rid = (node - 1) * CPUS_PER_NODE * CORES_PER_CPU + cpu * CORES_PER_CPU + core + 1
                state = "Alive"
                if name == ABSENT_NODE:
                    state = "Absent"
                elif rid == DEAD_RESOURCE:
                    state = "Dead"
                rows.append({
                    "resource_id": rid,
                    "network_address": name,
                    "host": name,
                    "switch": "sw1" if node <= NB_NODES // 2 else "sw2",
                    "cpu": (node - 1) * CPUS_PER_NODE + cpu + 1,
                    "core": rid,
                    "cpuset": str(cpu * CORES_PER_CPU + core),
                    "mem": 64 if node <= NB_NODES // 2 else 128,
                    "state": state,
                })
    return rows


def _node_rids(node: int) -> list[int]:
    n = CPUS_PER_NODE * CORES_PER_CPU
    return list(range((node - 1) * n + 1, node * n + 1))


def build_demo_db(url_or_path: Any, *, overwrite: bool = False) -> dict[str, Any]:
    """Create the demo database at a SQLite path or a SQLAlchemy URL.

    The database must not hold OAR tables yet, unless ``overwrite`` (then
    they are dropped first).  Returns a description: ``url``, ``path`` (None
    for a non-file URL), ``now``, ``now_sql``, ``queue`` (``"default"``),
    ``argv``, ``queues``, ``nb_resources``, ``jobs`` (label -> job id),
    ``waiting``, ``running``, ``reservations`` (job ids), ``hierarchy_labels``
    and, for SQLite, ``oar_conf`` (the text of :func:`demo_oar_conf`).
    """
    url, path = _url(url_or_path)
    engine = create_engine(url)
    try:
        present = set(inspect(engine).get_table_names()) & set(OAR_TABLES)
        if present:
            if not overwrite:
                raise DatabaseError(
                    f"{url_or_path} already holds OAR tables ({', '.join(sorted(present))}); "
                    "pass overwrite=True to replace them")
            make_metadata(DEMO_EXTRA_RESOURCE_COLUMNS).drop_all(engine)
        create_schema(engine, DEMO_EXTRA_RESOURCE_COLUMNS)
        with engine.begin() as conn:
            jobs = _fill(conn)
    finally:
        engine.dispose()

    waiting = [jobs[k] for k in jobs if not k.startswith(("running", "reservation"))]
    info: dict[str, Any] = {
        "url": url,
        "path": path,
        "now": NOW,
        "now_sql": NOW_SQL,
        "queue": "default",
        "argv": ["default", str(NOW), NOW_SQL],
        "queues": {"admin": 10, "default": 2, "besteffort": 0},
        "nb_resources": NB_NODES * CPUS_PER_NODE * CORES_PER_CPU,
        "jobs": jobs,
        "waiting": sorted(waiting),
        "running": sorted(v for k, v in jobs.items() if k.startswith("running")),
        "reservations": sorted(v for k, v in jobs.items() if k.startswith("reservation")),
        "hierarchy_labels": HIERARCHY_LABELS,
    }
    if path is not None:
        info["oar_conf"] = demo_oar_conf(path)
    return info


def _fill(conn) -> dict[str, int]:
    add_resources(conn, _resource_rows())
    add_queue(conn, "admin", 10)
    add_queue(conn, "default", 2)
    add_queue(conn, "besteffort", 0)

    jobs: dict[str, int] = {}
    sub = iter(range(NOW - 3000, NOW, 100))  # submission times, increasing with job ids

    jobs["running_node"] = add_running_job(
        conn, request="network_address=1", walltime=3600, user="alice", project="projA",
        submission_time=next(sub), start_time=NOW - 600, resource_ids=_node_rids(1))
    jobs["running_cores"] = add_running_job(
        conn, request="core=4", walltime=7200, user="bob", project="projB",
        submission_time=next(sub), start_time=NOW - 1800, resource_ids=_node_rids(5)[:4])
    jobs["reservation"] = add_reservation(
        conn, request="network_address=2", walltime=3600, user="carol", project="projA",
        name="demo-ar", submission_time=next(sub), start_time=NOW + 3600,
        resource_ids=_node_rids(6) + _node_rids(7))

    def waiting(label: str, **kw: Any) -> None:
        kw.setdefault("user", "alice")
        jobs[label] = add_job(conn, submission_time=next(sub), **kw)

    waiting("core1", request="core=1", walltime=600, name="small")
    waiting("core4", request="core=4", walltime=1800, user="bob", project="projB")
    waiting("switch_nodes", request="switch=1/network_address=2", walltime=3600,
            user="carol", project="projB")
    waiting("node_cpus", request="network_address=1/cpu=2", walltime=1200, user="dave")
    waiting("on_node3", request="core=2", walltime=900, properties="network_address='node-3'")
    waiting("moldable", moldables=["core=16,walltime=1:00:00", "core=8,walltime=2:00:00"],
            user="bob", project="projB")
    waiting("ts_a", request="network_address=1", walltime=1800, user="carol", name="ts-a",
            types=["timesharing=*,*"])
    waiting("ts_b", request="network_address=1", walltime=1800, user="dave", name="ts-b",
            types=["timesharing=*,*"])
    waiting("chain_1", request="core=2", walltime=600, user="dave", name="chain-1")
    waiting("chain_2", request="core=2", walltime=600, user="dave", name="chain-2",
            dependencies=[jobs["chain_1"]])
    waiting("chain_3", request="core=2", walltime=600, user="dave", name="chain-3",
            dependencies=[jobs["chain_2"]])
    waiting("besteffort", request="network_address=2", walltime=3600, queue="besteffort",
            types=["besteffort"])
    waiting("placeholder", request="network_address=2", walltime=7200, user="bob",
            types=["placeholder=ph1"])
    waiting("allowed", request="core=4", walltime=1800, user="bob", types=["allow=ph1"])
    waiting("big_mem", request="{mem >= 128}/network_address=1/core=4", walltime=2400,
            user="carol", project="projA")
    return jobs


def demo_oar_conf(db_path: Any, **overrides: Any) -> str:
    """The ``oar.conf`` text for the demo database at ``db_path`` (made absolute).

    ``overrides`` add or replace keys (``SCHEDULER_JOB_SECURITY_TIME=0``...).
    """
    path = os.path.abspath(os.fspath(db_path))
    if "#" in path or '"' in path:
        # OAR's parser cuts lines at '#', even inside quotes.
        raise ValueError(f"OAR cannot read a DB_BASE_FILE containing '#' or '\"': {path}")
    keys: dict[str, Any] = {
        "DB_TYPE": "sqlite",
        "DB_BASE_FILE": path,
        "LOG_LEVEL": "1",
        "LOG_FILE": ":stderr:",
        "METASCHEDULER_MODE": "external",
        "HIERARCHY_LABELS": HIERARCHY_LABELS,
        "OARSUB_NODES_RESOURCES": "network_address",
        "SCHEDULER_RESOURCE_ORDER": (
            "scheduler_priority ASC, state_num ASC, available_upto DESC, "
            "suspended_jobs ASC, network_address ASC, resource_id ASC"),
        "SCHEDULER_JOB_SECURITY_TIME": "60",
        "SCHEDULER_AVAILABLE_SUSPENDED_RESOURCE_TYPE": "default",
        "MAX_JOB_PER_QUEUES_GROUP_SCHEDULING_ROUND": "1000",
        "JOB_PRIORITY": "FIFO",
        "QUOTAS": "no",
    }
    keys.update({k: v for k, v in overrides.items()})
    lines = ["# oar.conf for oarsched's demo database (oarsched.oar.demo)"]
    lines += [f'{k}="{v}"' for k, v in keys.items()]
    return "\n".join(lines) + "\n"


def _ranges(ids: list[int]) -> str:
    """``[1, 2, 3, 7]`` -> ``"1-3,7"``."""
    out: list[str] = []
    start = prev = -2
    for i in sorted(ids):
        if start == -2:
            start = prev = i
        elif i == prev + 1:
            prev = i
        else:
            out.append(f"{start}-{prev}" if prev != start else f"{start}")
            start = prev = i
    if start != -2:
        out.append(f"{start}-{prev}" if prev != start else f"{start}")
    return ",".join(out)


def gantt_table(db, now: int) -> str:
    """A readable table of what the gantt tables hold now."""
    t = db.tables
    jobs, gp, gr, m = t["jobs"], t["gantt_jobs_predictions"], t["gantt_jobs_resources"], t["moldable_job_descriptions"]
    hosts = {}
    with db.engine.connect() as conn:
        for rid, host in conn.execute(select(t["resources"].c.resource_id, t["resources"].c.network_address)):
            hosts[int(rid)] = host
        rows = conn.execute(
            select(jobs.c.job_id, jobs.c.queue_name, jobs.c.state, jobs.c.job_user, jobs.c.reservation,
                   gp.c.start_time, m.c.moldable_walltime, gr.c.resource_id)
            .join(m, m.c.moldable_id == gp.c.moldable_job_id)
            .join(jobs, jobs.c.job_id == m.c.moldable_job_id)
            .join(gr, gr.c.moldable_job_id == gp.c.moldable_job_id)
            .order_by(gp.c.start_time, jobs.c.job_id)
        ).all()
        waiting = conn.execute(
            select(jobs.c.job_id, jobs.c.queue_name, jobs.c.message).where(jobs.c.state == "Waiting")
        ).all()
    by_job: dict[int, dict] = {}
    for r in rows:
        j = by_job.setdefault(r.job_id, {"queue": r.queue_name, "state": r.state, "user": r.job_user,
                                         "ar": r.reservation, "start": r.start_time, "wall": r.moldable_walltime,
                                         "res": []})
        j["res"].append(int(r.resource_id))
    lines = [f"{'job':>4}  {'queue':<10} {'state':<9} {'user':<6} {'start (+s from now)':<27} {'walltime':>8}  "
             f"{'#res':>4}  nodes: resource ids"]
    for jid, j in by_job.items():
        start = datetime.fromtimestamp(j["start"], timezone.utc).strftime("%Y-%m-%d %H:%M:%S")
        state = "AR" if j["ar"] == "Scheduled" else j["state"]
        by_host: dict[str, list[int]] = {}
        for rid in j["res"]:
            by_host.setdefault(str(hosts.get(rid)), []).append(rid)
        where = " ".join(f"{h}:{_ranges(ids)}" for h, ids in by_host.items())
        lines.append(f"{jid:>4}  {j['queue']:<10} {state:<9} {j['user'] or '':<6} {start} ({j['start'] - now:+7d}s)    "
                     f"{j['wall']:>8}  {len(j['res']):>4}  {where}")
    unplaced = [w for w in waiting if w.job_id not in by_job]
    if unplaced:
        lines.append("")
        lines.append("not placed: " + ", ".join(f"{w.job_id} ({w.queue_name})" for w in unplaced))
    return "\n".join(lines)
