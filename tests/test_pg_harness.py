"""The PostgreSQL test harness (tests/pgserver.py) and OAR3's schema on PostgreSQL."""
from __future__ import annotations

import pytest
from sqlalchemy import create_engine, text

from oarsched.oar import demo, submit
from oarsched.oar.schema import OAR_TABLES, reflect_tables
from tests.oarrows import SUBMIT_TABLES, dump, private_copy, rebuild, ro_engine
from tests.pgserver import copy_sqlite_to_pg, create_database, drop_database

pytestmark = pytest.mark.postgres

CORPUS = "/work/shared/conformance"


def typed(rows):
    return [tuple((type(v).__name__, v) for v in r) for r in rows]


def _counts(url: str) -> dict[str, int]:
    e = create_engine(url)
    try:
        with e.connect() as conn:
            return {t: conn.execute(text(f"SELECT COUNT(*) FROM {t}")).scalar() for t in OAR_TABLES}
    finally:
        e.dispose()


def test_server_answers(pg_server):
    assert pg_server.startswith("postgresql+psycopg://")
    e = create_engine(pg_server)
    try:
        with e.connect() as conn:
            assert conn.execute(text("SELECT version()")).scalar().startswith("PostgreSQL")
    finally:
        e.dispose()


def test_create_and_drop_database(pg_server):
    url = create_database(pg_server, "oarsched_harness_tmp")
    assert url.endswith("/oarsched_harness_tmp")
    url2 = create_database(pg_server, "oarsched_harness_tmp")  # recreate: fresh again
    assert url2 == url
    drop_database(pg_server, "oarsched_harness_tmp")


def test_copy_basic_fifo_01(pg_url, tmp_path):
    src = private_copy(f"{CORPUS}/basic_fifo_01/before.sqlite", tmp_path)
    copied = copy_sqlite_to_pg(src, pg_url)
    assert set(copied) == set(OAR_TABLES)
    sqlite_counts = _counts(f"sqlite:///{src}")
    assert _counts(pg_url) == sqlite_counts == copied
    assert sqlite_counts["jobs"] == 16 and sqlite_counts["resources"] == 16


@pytest.mark.parametrize("case", ["basic_fifo_01", "running_ar_01", "sorting_fairshare_01",
                                  "running_suspended", "mix_01"])
def test_copy_preserves_rows_and_types(case, pg_url, tmp_path):
    src = private_copy(f"{CORPUS}/{case}/before.sqlite", tmp_path)
    copy_sqlite_to_pg(src, pg_url)
    se, pe = ro_engine(src), create_engine(pg_url)
    try:
        with se.connect() as s, pe.connect() as p:
            tables = reflect_tables(p, required_resource_columns=["cpu", "core", "switch"])
            assert list(tables["resources"].c.keys())[-5:] == ["core", "cpu", "host", "mem",
                                                               "switch"]
            a, b = dump(s, OAR_TABLES), dump(p, OAR_TABLES)
            for t in OAR_TABLES:
                assert typed(a[t]) == typed(b[t]), t
    finally:
        se.dispose()
        pe.dispose()


def test_sequences_follow_copied_ids(pg_url, tmp_path):
    src = private_copy(f"{CORPUS}/running_ar_01/before.sqlite", tmp_path)
    copy_sqlite_to_pg(src, pg_url)
    e = create_engine(pg_url)
    try:
        with e.begin() as conn:
            top = conn.execute(text("SELECT MAX(job_id) FROM jobs")).scalar()
            top_r = conn.execute(text("SELECT MAX(resource_id) FROM resources")).scalar()
            jid = submit.add_job(conn, request="nodes=1", walltime=60)
            (rid,) = submit.add_resources(conn, [{"network_address": "new"}])
        assert (jid, rid) == (top + 1, top_r + 1)
    finally:
        e.dispose()


def test_submit_api_on_postgres(pg_url):
    """Rebuilding a corpus case on PostgreSQL gives OAR3's rows (ids from SERIALs)."""
    path = f"{CORPUS}/mix_01/before.sqlite"
    e = create_engine(pg_url)
    try:
        with e.begin() as conn:
            rebuild(path, conn)
        with e.connect() as conn:
            mine = dump(conn, SUBMIT_TABLES)
    finally:
        e.dispose()
    se = ro_engine(path)
    with se.connect() as s:
        theirs = dump(s, SUBMIT_TABLES)
    se.dispose()
    for t in SUBMIT_TABLES:
        assert typed(mine[t]) == typed(theirs[t]), t


def test_demo_db_on_postgres(pg_url, tmp_path):
    info = demo.build_demo_db(pg_url)
    assert info["path"] is None and "oar_conf" not in info
    ref = demo.build_demo_db(tmp_path / "demo.sqlite")
    assert info["jobs"] == ref["jobs"]
    pe, se = create_engine(pg_url), create_engine(ref["url"])
    try:
        with pe.connect() as p, se.connect() as s:
            assert set(reflect_tables(p)) == set(OAR_TABLES)
            a, b = dump(p, OAR_TABLES), dump(s, OAR_TABLES)
            for t in OAR_TABLES:
                assert typed(a[t]) == typed(b[t]), t
    finally:
        pe.dispose()
        se.dispose()


def test_int32_overflow_is_named_or_widened(pg_url, tmp_path):
    """unschedulable_01 has a 2**31 s walltime: fine for SQLite, not for PostgreSQL INTEGER."""
    src = private_copy(f"{CORPUS}/unschedulable_01/before.sqlite", tmp_path)
    with pytest.raises(ValueError, match=r"moldable_job_descriptions\.moldable_walltime=2147483648"):
        copy_sqlite_to_pg(src, pg_url)
    assert _counts_or_none(pg_url) is None  # nothing created on error
    copy_sqlite_to_pg(src, pg_url, on_int_overflow="widen")
    assert _counts(pg_url) == _counts(f"sqlite:///{src}")
    e = create_engine(pg_url)
    try:
        with e.connect() as conn:
            assert conn.execute(text(
                "SELECT data_type FROM information_schema.columns WHERE table_name = "
                "'moldable_job_descriptions' AND column_name = 'moldable_walltime'")).scalar() \
                == "bigint"
            assert conn.execute(text("SELECT MAX(moldable_walltime) FROM "
                                     "moldable_job_descriptions")).scalar() == 2**31
    finally:
        e.dispose()


def _counts_or_none(url: str):
    e = create_engine(url)
    try:
        with e.connect() as conn:
            n = conn.execute(text("SELECT COUNT(*) FROM information_schema.tables "
                                  "WHERE table_schema = 'public'")).scalar()
            return None if n == 0 else n
    finally:
        e.dispose()
