"""Run ``oarsched-kao`` on PostgreSQL for one ``check_meta.py`` case (its command template).

    python tests/kao_on_pg.py {db} {conf} {argv}

``check_meta.py`` prepares a SQLite database and an oar.conf (real ports
filled in); this copies that database into a fresh PostgreSQL database
(``$OARSCHED_KAO_PG_ADMIN`` is the server's admin URL), points a copy of the
oar.conf at it, runs ``oarsched-kao`` there, and copies every table back into
the SQLite file so that the checker's diff sees what PostgreSQL holds.  The
exit status is oarsched-kao's.

On PostgreSQL (only), OAR3's ``log_job`` marks the rows of a job gone to Error
``LOG``; the corpus, recorded on SQLite, has no such change.  Those marks are
checked here to be exactly OAR3's (the CURRENT rows of the jobs the round put
in Error, in the six tables ``log_job`` touches, and nothing else), then given
their CURRENT back in the copy, so that the checker compares everything else;
marks that differ make the case fail (exit status 97).
"""
from __future__ import annotations

import os
import shutil
import subprocess
import sys
import uuid
from pathlib import Path

from sqlalchemy import MetaData, create_engine, delete, insert, select
from sqlalchemy.engine import make_url

sys.path.insert(0, str(Path(__file__).resolve().parent.parent))
from tests.pgserver import copy_sqlite_to_pg, create_database, drop_database


def pg_conf(conf: Path, pg_url: str, out: Path) -> None:
    url = make_url(pg_url)
    lines = [ln for ln in conf.read_text().splitlines() if not ln.strip().startswith("DB_")]
    lines += ['DB_TYPE="Pg"', f'DB_HOSTNAME="{url.host or "127.0.0.1"}"', f'DB_PORT="{url.port or 5432}"',
              f'DB_BASE_NAME="{url.database}"', f'DB_BASE_LOGIN="{url.username or ""}"',
              f'DB_BASE_PASSWD="{url.password or ""}"']
    out.write_text("\n".join(lines) + "\n")


LOGGED = {
    # table: its index column
    "moldable_job_descriptions": "moldable_index",
    "job_resource_groups": "res_group_index",
    "job_resource_descriptions": "res_job_index",
    "job_types": "types_index",
    "job_dependencies": "job_dependency_index",
    "assigned_resources": "assigned_resource_index",
}
"""The tables OAR3's ``log_job`` marks LOG for a job gone to Error, on PostgreSQL only."""

OWNER = {
    "moldable_job_descriptions": "SELECT moldable_id FROM moldable_job_descriptions WHERE moldable_job_id IN ({ids})",
    "job_resource_groups": "SELECT g.res_group_id FROM job_resource_groups g JOIN moldable_job_descriptions m "
                           "ON m.moldable_id = g.res_group_moldable_id WHERE m.moldable_job_id IN ({ids})",
    "job_resource_descriptions": "SELECT res_job_group_id FROM job_resource_descriptions WHERE res_job_group_id IN "
                                 "(SELECT g.res_group_id FROM job_resource_groups g JOIN moldable_job_descriptions m "
                                 "ON m.moldable_id = g.res_group_moldable_id WHERE m.moldable_job_id IN ({ids}))",
    "job_types": "SELECT job_type_id FROM job_types WHERE job_id IN ({ids})",
    "job_dependencies": "SELECT job_id FROM job_dependencies WHERE job_id IN ({ids})",
    "assigned_resources": "SELECT moldable_job_id FROM assigned_resources WHERE moldable_job_id IN "
                          "(SELECT assigned_moldable_job FROM jobs WHERE job_id IN ({ids}))",
}
"""The key column's values of the rows of the jobs ``{ids}``: the rows ``log_job`` marks (OAR3's rule)."""

KEY = {"moldable_job_descriptions": "moldable_id", "job_resource_groups": "res_group_id",
       "job_resource_descriptions": "res_job_group_id", "job_types": "job_type_id", "job_dependencies": "job_id",
       "assigned_resources": "moldable_job_id"}


def _rows(conn, table: str) -> dict[tuple, str]:
    """A row's other columns (sorted by name) -> its index value."""
    from sqlalchemy import text

    idx = LOGGED[table]
    out = {}
    for r in conn.execute(text(f"SELECT * FROM {table}")):
        m = dict(r._mapping)
        out[tuple(sorted((k, v) for k, v in m.items() if k != idx))] = m[idx]
    return out


def log_marks(pg_url: str, sqlite_path: Path) -> tuple[dict[str, set], str | None]:
    """The rows PostgreSQL holds as LOG that the case's database held as CURRENT, checked against OAR3's
    ``log_job`` rule (exactly the CURRENT rows of the jobs the round put in Error): (those rows, None), or
    (those checked so far, what differs)."""
    from sqlalchemy import text

    before = create_engine(f"sqlite:///{sqlite_path}")
    after = create_engine(pg_url.replace("postgresql://", "postgresql+psycopg://", 1))
    marked: dict[str, set] = {}
    try:
        with before.connect() as b, after.connect() as a:
            was = dict(b.execute(text("SELECT job_id, state FROM jobs")).all())
            errored = ",".join(str(j) for j, s in a.execute(text("SELECT job_id, state FROM jobs")).all()
                               if s == "Error" and was.get(j) != "Error")
            for table in LOGGED:
                old, new = _rows(b, table), _rows(a, table)
                changed = {cols for cols, idx in new.items() if cols in old and old[cols] != idx}
                if any((old[c], new[c]) != ("CURRENT", "LOG") for c in changed):
                    return marked, f"{table}: an index changed other than CURRENT -> LOG"
                owners = {r[0] for r in a.execute(text(OWNER[table].format(ids=errored)))} if errored else set()
                expected = {c for c, idx in old.items() if idx == "CURRENT" and dict(c)[KEY[table]] in owners}
                if changed != expected:
                    return marked, (f"{table}: LOG marks {sorted(changed - expected)[:3]} not OAR3's, "
                                    f"missing {sorted(expected - changed)[:3]}")
                marked[table] = changed
    finally:
        before.dispose()
        after.dispose()
    return marked, None


def copy_back(pg_url: str, sqlite_path: Path, unlog: dict[str, set] | None = None) -> None:
    """Every table of the SQLite file gets PostgreSQL's rows; the rows of ``unlog`` (per table, verified
    ``log_job`` marks: see :func:`log_marks`) get their CURRENT back, for the SQLite-recorded corpus."""
    src = create_engine(pg_url.replace("postgresql://", "postgresql+psycopg://", 1))
    dst = create_engine(f"sqlite:///{sqlite_path}")
    try:
        smd, dmd = MetaData(), MetaData()
        dmd.reflect(bind=dst)
        smd.reflect(bind=src, only=[t for t in dmd.tables])
        with src.connect() as sconn, dst.begin() as dconn:
            for name, table in dmd.tables.items():
                if name not in smd.tables:
                    continue
                rows = [dict(r._mapping) for r in sconn.execute(select(smd.tables[name]))]
                for row in rows if unlog and unlog.get(name) else ():
                    idx = LOGGED[name]
                    if tuple(sorted((k, v) for k, v in row.items() if k != idx)) in unlog[name]:
                        row[idx] = "CURRENT"
                dconn.execute(delete(table))
                if rows:
                    dconn.execute(insert(table), rows)
    finally:
        src.dispose()
        dst.dispose()


LOG_MARKS_WRONG = 97
"""Exit status when PostgreSQL's LOG marks are not exactly those of OAR3's ``log_job`` (the case then fails)."""


def main(argv: list[str]) -> int:
    db, conf, rest = Path(argv[0]), Path(argv[1]), argv[2:]
    admin = os.environ["OARSCHED_KAO_PG_ADMIN"]
    name = "kao_" + uuid.uuid4().hex[:10]
    pg_url = create_database(admin, name, locale="C")
    try:
        copy_sqlite_to_pg(db, pg_url, on_int_overflow="widen")
        pg = conf.with_name("oar-pg.conf")
        pg_conf(conf, pg_url, pg)
        env = dict(os.environ, OARCONFFILE=str(pg))
        kao = shutil.which("oarsched-kao") or "oarsched-kao"
        rc = subprocess.run([kao, *rest], env=env, check=False).returncode
        marked, wrong = log_marks(pg_url, db)
        copy_back(pg_url, db, marked)
        if wrong:
            print(f"kao_on_pg: log_job marks differ from OAR3's: {wrong}", file=sys.stderr)
            return LOG_MARKS_WRONG
        return rc
    finally:
        drop_database(admin, name)


if __name__ == "__main__":
    sys.exit(main(sys.argv[1:]))
