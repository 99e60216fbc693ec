"""Test helpers: dump OAR tables, and rebuild a corpus database through the
``oarsched.oar.submit`` API (to check it writes the rows OAR3 writes)."""
from __future__ import annotations

import os
import re
import shutil
from pathlib import Path
from typing import Any, Iterable

from sqlalchemy import MetaData, Table, create_engine, select
from sqlalchemy.engine import Connection

from oarsched.oar.schema import create_schema, resource_site_columns
from oarsched.oar.submit import (
    add_job,
    add_prediction,
    add_queue,
    add_reservation,
    add_resources,
    add_running_job,
)

CORPUS = Path("/work/shared/conformance")

# The tables the submit API writes.
SUBMIT_TABLES = (
    "resources", "queues", "jobs", "moldable_job_descriptions", "job_resource_groups",
    "job_resource_descriptions", "job_types", "job_dependencies", "assigned_resources",
    "gantt_jobs_predictions", "gantt_jobs_resources",
)

_KEYWORDS = {-1: "ALL", -2: "BEST", -3: "HALF_BEST"}


def corpus_dbs() -> list[Path]:
    return sorted(CORPUS.glob("*/before.sqlite"))


def ro_engine(path: str | os.PathLike):
    return create_engine(f"sqlite:///file:{os.path.abspath(path)}?mode=ro&uri=true")


def private_copy(path: str | os.PathLike, tmp_path: Path) -> Path:
    """Copy a (read-only, shared) corpus file into the test's tmp folder."""
    dst = tmp_path / (Path(path).parent.name + ".sqlite")
    shutil.copyfile(path, dst)
    return dst


def dump(conn: Connection, tables: Iterable[str]) -> dict[str, list[tuple]]:
    """Every row of ``tables``, sorted, with Python types as the driver returns them."""
    md = MetaData()
    md.reflect(bind=conn, only=list(tables))
    out = {}
    for name in tables:
        t: Table = md.tables[name]
        rows = [tuple(r) for r in conn.execute(select(t))]
        out[name] = sorted(rows, key=lambda r: tuple((x is None, str(type(x)), x) for x in r))
    return out


def oar_conf(case_dir: Path) -> dict[str, str]:
    conf = {}
    for line in (case_dir / "oar.conf").read_text().splitlines():
        line = line.split("#", 1)[0]
        if "=" in line:
            k, v = line.split("=", 1)
            conf[k.strip()] = v.strip().strip("\"'")
    return conf


def _request(src: Connection, moldable_id: int) -> str:
    groups = src.exec_driver_sql(
        "SELECT res_group_id, res_group_property FROM job_resource_groups "
        "WHERE res_group_moldable_id = ? ORDER BY res_group_id", (moldable_id,)).all()
    parts = []
    for gid, prop in groups:
        levels = src.exec_driver_sql(
            "SELECT res_job_resource_type, res_job_value FROM job_resource_descriptions "
            "WHERE res_job_group_id = ? ORDER BY res_job_order", (gid,)).all()
        text = "/".join(f"{lbl}={_KEYWORDS.get(v, v)}" for lbl, v in levels)
        parts.append(("{" + prop + "}" if prop else "") + text)
    return "+".join(parts)


def rebuild(src_path: str | os.PathLike, dst_conn: Connection) -> None:
    """Recreate the corpus case ``src_path`` in ``dst_conn`` (empty database)
    using only ``create_schema`` and the submit API, from the case's rows."""
    case_dir = Path(src_path).parent
    sec = int(oar_conf(case_dir).get("SCHEDULER_JOB_SECURITY_TIME", "60"))
    src_engine = ro_engine(src_path)
    try:
        with src_engine.connect() as src:
            create_schema(dst_conn, resource_site_columns(src))
            res_rows = [dict(r._mapping) for r in src.exec_driver_sql(
                "SELECT * FROM resources ORDER BY resource_id")]
            add_resources(dst_conn, res_rows)
            for q in src.exec_driver_sql("SELECT * FROM queues ORDER BY rowid").mappings():
                add_queue(dst_conn, q["queue_name"], q["priority"],
                          scheduler_policy=q["scheduler_policy"], state=q["state"])
            for j in src.exec_driver_sql("SELECT * FROM jobs ORDER BY job_id").mappings().all():
                _rebuild_job(src, dst_conn, j, sec)
    finally:
        src_engine.dispose()


def _rebuild_job(src: Connection, dst: Connection, j: Any, sec: int) -> None:
    jid = j["job_id"]
    mlds = src.exec_driver_sql(
        "SELECT moldable_id, moldable_walltime FROM moldable_job_descriptions "
        "WHERE moldable_job_id = ? ORDER BY moldable_id", (jid,)).all()
    types = [r[0] for r in src.exec_driver_sql(
        "SELECT type FROM job_types WHERE job_id = ? ORDER BY job_type_id", (jid,))]
    deps = [r[0] for r in src.exec_driver_sql(
        "SELECT job_id_required FROM job_dependencies WHERE job_id = ? ORDER BY rowid", (jid,))]
    kw: dict[str, Any] = dict(
        moldables=[(w, _request(src, mid)) for mid, w in mlds],
        queue=j["queue_name"], user=j["job_user"], project=j["project"], name=j["job_name"],
        properties=j["properties"], types=types, dependencies=deps,
        submission_time=j["submission_time"], stop_time=j["stop_time"],
        exit_code=j["exit_code"], suspended=j["suspended"],
    )
    gantt = src.exec_driver_sql(
        "SELECT p.moldable_job_id, p.start_time FROM gantt_jobs_predictions p "
        "JOIN moldable_job_descriptions m ON m.moldable_id = p.moldable_job_id "
        "WHERE m.moldable_job_id = ?", (jid,)).all()

    def rids(mid: int, table: str) -> list[int]:
        return [r[0] for r in src.exec_driver_sql(
            f"SELECT resource_id FROM {table} WHERE moldable_job_id = ?", (mid,))]

    mld_ids = [m[0] for m in mlds]
    if j["assigned_moldable_job"]:
        mid = j["assigned_moldable_job"]
        new = add_running_job(dst, state=j["state"], start_time=j["start_time"],
                              resource_ids=rids(mid, "assigned_resources"),
                              moldable_index=mld_ids.index(mid), **kw)
    elif j["reservation"] == "Scheduled":
        (mid, start), = gantt
        new = add_reservation(dst, start_time=start,
                              resource_ids=rids(mid, "gantt_jobs_resources"),
                              moldable_index=mld_ids.index(mid), **kw)
    else:
        new = add_job(dst, state=j["state"], reservation=j["reservation"],
                      start_time=0 if gantt else j["start_time"], **kw)
        for mid, start in gantt:  # decided earlier in the round by a higher-priority queue
            add_prediction(dst, new, start, rids(mid, "gantt_jobs_resources"),
                           moldable_id=mid, security_time=sec)
    assert new == jid, (new, jid)


def normalize_ddl(sql: str) -> str:
    return re.sub(r"\s+", " ", sql).strip()
