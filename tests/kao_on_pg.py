"""Run ``oarsched-kao`` on PostgreSQL for one ``check_meta.py`` case (its command template).

    python tests/kao_on_pg.py {db} {conf} {argv}

``check_meta.py`` prepares a SQLite database and an oar.conf (real ports
filled in); this copies that database into a fresh PostgreSQL database
(``$OARSCHED_KAO_PG_ADMIN`` is the server's admin URL), points a copy of the
oar.conf at it, runs ``oarsched-kao`` there, and copies every table back into
the SQLite file so that the checker's diff sees what PostgreSQL holds.  The
exit status is oarsched-kao's.
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


def copy_back(pg_url: str, sqlite_path: Path) -> None:
    """Every table of the SQLite file gets PostgreSQL's rows."""
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
                dconn.execute(delete(table))
                if rows:
                    dconn.execute(insert(table), rows)
    finally:
        src.dispose()
        dst.dispose()


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
        copy_back(pg_url, db)
        return rc
    finally:
        drop_database(admin, name)


if __name__ == "__main__":
    sys.exit(main(sys.argv[1:]))
