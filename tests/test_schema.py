"""oarsched.oar.schema / submit / demo against OAR3's own databases (the conformance corpus)."""
from __future__ import annotations

import sqlite3

import pytest
from sqlalchemy import Integer, String, Text, create_engine, select
from sqlalchemy.types import BigInteger

from oarsched.errors import DatabaseError, JobError
from oarsched.oar import demo, submit
from oarsched.oar.schema import (
    OAR_TABLES,
    REQUIRED_COLUMNS,
    STANDARD_RESOURCE_COLUMNS,
    create_schema,
    make_metadata,
    reflect_tables,
    resource_site_columns,
)
from tests.oarrows import (
    SUBMIT_TABLES,
    corpus_dbs,
    dump,
    normalize_ddl,
    private_copy,
    rebuild,
    ro_engine,
)

CORPUS_EXTRAS = {"core": Integer, "cpu": Integer, "host": String(255), "mem": Integer,
                 "switch": String(255)}
BASIC = "/work/shared/conformance/basic_fifo_01/before.sqlite"

pytestmark = pytest.mark.skipif(not corpus_dbs(), reason="conformance corpus not found")


def typed(rows):
    return [tuple((type(v).__name__, v) for v in r) for r in rows]


@pytest.fixture
def engine(tmp_path):
    e = create_engine(f"sqlite:///{tmp_path / 'oar.sqlite'}")
    yield e
    e.dispose()


def _ddl(path) -> dict[str, str]:
    con = sqlite3.connect(f"file:{path}?mode=ro", uri=True)
    try:
        return {n: normalize_ddl(s) for n, s in
                con.execute("SELECT name, sql FROM sqlite_master WHERE sql IS NOT NULL")}
    finally:
        con.close()


# --------------------------------------------------------------------------- schema
def test_create_schema_gives_oar3_ddl(engine, tmp_path):
    create_schema(engine, CORPUS_EXTRAS)
    engine.dispose()
    mine, theirs = _ddl(tmp_path / "oar.sqlite"), _ddl(BASIC)
    assert set(mine) == set(theirs)  # tables and indexes, same names
    for name in theirs:
        assert mine[name] == theirs[name], name


def test_create_then_reflect(engine):
    md = create_schema(engine, {"switch": "VARCHAR(255)", "cpu": Integer(), "licence": Text})
    assert set(md.tables) == set(OAR_TABLES) and len(OAR_TABLES) == 26
    with engine.connect() as conn:
        tables = reflect_tables(conn)
    assert set(tables) == set(OAR_TABLES)
    res_cols = list(tables["resources"].c.keys())
    assert res_cols[: len(STANDARD_RESOURCE_COLUMNS)] == list(STANDARD_RESOURCE_COLUMNS)
    assert res_cols[len(STANDARD_RESOURCE_COLUMNS):] == ["switch", "cpu", "licence"]
    assert isinstance(tables["resources"].c.cpu.type, Integer)
    assert tables["resources"].c.switch.type.length == 255
    assert isinstance(tables["accounting"].c.window_start.type, BigInteger)
    for t, cols in REQUIRED_COLUMNS.items():
        assert set(cols) <= set(tables[t].c.keys())
    # create_schema again is harmless (existing tables are kept)
    create_schema(engine, {"switch": String(255)})


def test_make_metadata_rejects_bad_extra_columns():
    with pytest.raises(DatabaseError, match="state"):
        make_metadata({"state": String(9)})
    with pytest.raises(DatabaseError, match="bad resources column"):
        make_metadata({"no-dash": Integer})
    with pytest.raises(DatabaseError, match="unsupported column type"):
        make_metadata({"x": "GEOMETRY"})


@pytest.mark.parametrize("path", corpus_dbs(), ids=lambda p: p.parent.name)
def test_reflect_every_corpus_db(path):
    e = ro_engine(path)
    try:
        with e.connect() as conn:
            tables = reflect_tables(conn, required_resource_columns=["network_address", "cpu",
                                                                     "core", "switch"])
            assert set(tables) == set(OAR_TABLES)
            assert list(resource_site_columns(conn)) == ["core", "cpu", "host", "mem", "switch"]
            assert {"core", "cpu", "host", "mem", "switch"} <= set(tables["resources"].c.keys())
    finally:
        e.dispose()


def test_missing_table_and_columns_are_named(tmp_path):
    db = private_copy(BASIC, tmp_path)
    con = sqlite3.connect(db)
    con.execute("DROP TABLE gantt_jobs_resources")
    con.execute("DROP TABLE job_state_logs")
    con.execute("DROP INDEX ix_jobs_suspended")
    con.execute("ALTER TABLE jobs DROP COLUMN suspended")
    con.execute("ALTER TABLE jobs DROP COLUMN exit_code")
    con.execute("DROP INDEX ix_moldable_job_descriptions_moldable_index")
    con.execute("ALTER TABLE moldable_job_descriptions DROP COLUMN moldable_index")
    con.commit()
    con.close()
    e = create_engine(f"sqlite:///{db}")
    try:
        with e.connect() as conn, pytest.raises(DatabaseError) as info:
            reflect_tables(conn, required_resource_columns=["rack"])
    finally:
        e.dispose()
    msg = str(info.value)
    for name in ("gantt_jobs_resources", "job_state_logs", "jobs.suspended", "jobs.exit_code",
                 "moldable_job_descriptions.moldable_index", "resources.rack"):
        assert name in msg
    assert info.value.missing_tables == ["gantt_jobs_resources", "job_state_logs"]
    assert "resources.rack" in info.value.missing_columns


def test_empty_database_is_rejected(engine):
    with engine.connect() as conn, pytest.raises(DatabaseError, match="jobs"):
        reflect_tables(conn)


# --------------------------------------------------------------------------- submit
def test_add_job_matches_corpus_job(engine):
    """A corpus job (moldable_02, job 4: three moldables) re-submitted gives the same
    rows, same columns, values and types."""
    src = ro_engine("/work/shared/conformance/moldable_02/before.sqlite")
    with src.connect() as s:
        corpus_job = s.exec_driver_sql("SELECT * FROM jobs WHERE job_id = 4").mappings().one()
        corpus_mlds = s.exec_driver_sql(
            "SELECT * FROM moldable_job_descriptions WHERE moldable_job_id = 4 "
            "ORDER BY moldable_id").all()
        corpus_grps = s.exec_driver_sql(
            "SELECT g.* FROM job_resource_groups g JOIN moldable_job_descriptions m "
            "ON m.moldable_id = g.res_group_moldable_id WHERE m.moldable_job_id = 4").all()
        corpus_descs = s.exec_driver_sql(
            "SELECT d.* FROM job_resource_descriptions d JOIN job_resource_groups g "
            "ON g.res_group_id = d.res_job_group_id JOIN moldable_job_descriptions m "
            "ON m.moldable_id = g.res_group_moldable_id WHERE m.moldable_job_id = 4").all()
        corpus_cols = {t: list(reflect_tables(s)[t].c.keys()) for t in SUBMIT_TABLES}
    src.dispose()
    # job 4 of moldable_02: three moldables network_address=2 / resource_id=6 / network_address=1/cpu=2
    assert [m[2] for m in corpus_mlds] == [900, 300, 1800]

    create_schema(engine, CORPUS_EXTRAS)
    with engine.begin() as conn:
        for _ in range(3):  # ids 1..3 as in the corpus
            submit.add_job(conn, request="resource_id=1", walltime=60)
        jid = submit.add_job(
            conn,
            moldables=["network_address=2,walltime=0:15:0", (300, "resource_id=6"),
                       (1800, "nodes=1/cpu=2")],
            submission_time=corpus_job["submission_time"],
        )
        assert jid == 4
        mine_job = conn.exec_driver_sql("SELECT * FROM jobs WHERE job_id = 4").mappings().one()
        mine_mlds = conn.exec_driver_sql(
            "SELECT * FROM moldable_job_descriptions WHERE moldable_job_id = 4").all()
        mine_grps = conn.exec_driver_sql(
            "SELECT * FROM job_resource_groups WHERE res_group_moldable_id >= 4").all()
        mine_descs = conn.exec_driver_sql(
            "SELECT * FROM job_resource_descriptions WHERE res_job_group_id >= 4").all()
        mine_cols = {t: list(reflect_tables(conn)[t].c.keys()) for t in SUBMIT_TABLES}
    assert mine_cols == corpus_cols
    assert typed([tuple(mine_job.values())]) == typed([tuple(corpus_job.values())])
    assert typed(mine_mlds) == typed(corpus_mlds)
    assert typed(mine_grps) == typed(corpus_grps)
    assert typed(sorted(mine_descs)) == typed(sorted(corpus_descs))


@pytest.mark.parametrize(
    "case",
    ["hierarchy_01", "hierarchy_all_best_01", "properties_03", "moldable_02",
     "dependencies_02", "running_ar_01", "running_suspended", "timesharing_01",
     "placeholder_01", "container_01", "besteffort_01", "states_01", "mix_01"],
)
def test_rebuild_corpus_case_through_submit_api(case, engine):
    """Every row the submit API writes equals OAR3's, values and types, for whole cases
    (resources, queues, waiting/running/terminated jobs, reservations, predictions)."""
    path = f"/work/shared/conformance/{case}/before.sqlite"
    with engine.begin() as conn:
        rebuild(path, conn)
    with engine.connect() as conn:
        mine = dump(conn, SUBMIT_TABLES)
    src = ro_engine(path)
    with src.connect() as conn:
        theirs = dump(conn, SUBMIT_TABLES)
    src.dispose()
    for t in SUBMIT_TABLES:
        assert typed(mine[t]) == typed(theirs[t]), t


def test_add_resources(engine):
    create_schema(engine, CORPUS_EXTRAS)
    with engine.begin() as conn:
        ids = submit.add_resources(conn, [{"network_address": "n1", "cpu": 1, "core": 1},
                                          {"network_address": "n1", "cpu": 1, "core": 2,
                                           "state": "Dead"}])
        assert ids == [1, 2]
        row = conn.exec_driver_sql("SELECT * FROM resources WHERE resource_id = 2").mappings().one()
        assert row["state"] == "Dead" and row["type"] == "default"
        assert row["available_upto"] == 2147483647 and row["switch"] is None
        with pytest.raises(DatabaseError, match="rack"):
            submit.add_resources(conn, [{"network_address": "n2", "rack": 3}])


def test_add_job_details(engine):
    create_schema(engine)
    with engine.begin() as conn:
        j1 = submit.add_job(conn, request="{mem > 32}/switch=1/nodes=BEST+core=ALL",
                            walltime="1:30", types={"timesharing": "user,*", "besteffort": ""},
                            user="alice", name="x", queue="besteffort")
        j2 = submit.add_job(conn, request="core=2,walltime=2", dependencies=[j1], state="Hold",
                            state_log=True, submission_time=5, extra={"command": "sleep 1"})
        rows = conn.exec_driver_sql("SELECT * FROM job_resource_descriptions").all()
        assert [r[1:4] for r in rows] == [("switch", 1, 0), ("network_address", -2, 1),
                                          ("core", -1, 0), ("core", 2, 0)]
        assert conn.exec_driver_sql("SELECT res_group_property FROM job_resource_groups"
                                    ).scalars().all() == ["mem > 32", "", ""]
        assert conn.exec_driver_sql("SELECT moldable_walltime FROM moldable_job_descriptions"
                                    ).scalars().all() == [5400, 7200]
        assert conn.exec_driver_sql("SELECT type FROM job_types").scalars().all() == [
            "timesharing=user,*", "besteffort"]
        assert conn.exec_driver_sql("SELECT * FROM job_dependencies").all() == [
            (j2, j1, "CURRENT")]
        assert conn.exec_driver_sql("SELECT job_id, job_state, date_start FROM job_state_logs"
                                    ).all() == [(j2, "Hold", 5)]
        assert conn.exec_driver_sql(f"SELECT command, state FROM jobs WHERE job_id={j2}"
                                    ).one() == ("sleep 1", "Hold")
        j3 = submit.add_job(conn, request="{network_address IN ('n1','n2')}/core=1,walltime=0:10")
        assert conn.exec_driver_sql(
            "SELECT g.res_group_property, m.moldable_walltime FROM job_resource_groups g JOIN "
            f"moldable_job_descriptions m ON m.moldable_id = g.res_group_moldable_id "
            f"WHERE m.moldable_job_id = {j3}").one() == ("network_address IN ('n1','n2')", 600)
        with pytest.raises(JobError, match="walltime"):
            submit.add_job(conn, request="core=1")
        with pytest.raises(JobError, match="walltime"):
            submit.add_job(conn, request="core=1,walltime=soon")
        with pytest.raises(JobError):
            submit.add_job(conn, request="core=0", walltime=10)
        with pytest.raises(DatabaseError, match="nope"):
            submit.add_job(conn, walltime=10, extra={"nope": 1})


def test_running_job_reservation_prediction(engine):
    create_schema(engine)
    with engine.begin() as conn:
        submit.add_resources(conn, [{"network_address": f"n{i // 2}"} for i in range(8)])
        r = submit.add_running_job(conn, moldables=[(60, "core=1"), (600, "resource_id=2")],
                                   moldable_index=1, start_time=100, resource_ids=[4, 3],
                                   name="run", queue="admin")
        a = submit.add_reservation(conn, request="resource_id=2", walltime=60, start_time=900,
                                   resource_ids=[5, 6])
        w = submit.add_job(conn, request="resource_id=1", walltime=300)
        m = submit.add_prediction(conn, w, 1000, [7], security_time=60)
        jobs = {row[0]: row[1:] for row in conn.exec_driver_sql(
            "SELECT job_id, state, reservation, start_time, assigned_moldable_job, message "
            "FROM jobs")}
        assert jobs[r] == ("Running", "None", 100, 2, "R=2,J=P,Q=admin,N=run")
        assert jobs[a] == ("Waiting", "Scheduled", 900, 0, "")
        assert jobs[w] == ("Waiting", "None", 1000, 0, "R=1,W=360,J=P,Q=default")
        assert conn.exec_driver_sql("SELECT * FROM gantt_jobs_predictions").all() == [
            (2, 100), (3, 900), (m, 1000)]
        assert conn.exec_driver_sql("SELECT * FROM gantt_jobs_resources").all() == [
            (2, 3), (2, 4), (3, 5), (3, 6), (m, 7)]
        assert conn.exec_driver_sql("SELECT * FROM assigned_resources").all() == [
            (2, 3, "CURRENT"), (2, 4, "CURRENT")]


# --------------------------------------------------------------------------- demo
def test_demo_db(tmp_path):
    path = tmp_path / "demo.sqlite"
    info = demo.build_demo_db(path)
    assert info["now"] == 1735689600 and info["queue"] == "default"
    assert info["path"] == str(path) and info["argv"] == ["default", "1735689600",
                                                          "2025-01-01 00:00:00"]
    e = create_engine(info["url"])
    try:
        with e.connect() as conn:
            tables = reflect_tables(conn, required_resource_columns=info["hierarchy_labels"]
                                    .split(","))
            assert set(tables) == set(OAR_TABLES)

            def count(sql):
                return conn.exec_driver_sql(sql).scalar()

            assert count("SELECT COUNT(*) FROM resources") == 64
            assert count("SELECT COUNT(DISTINCT network_address) FROM resources") == 8
            assert count("SELECT COUNT(DISTINCT switch) FROM resources") == 2
            assert count("SELECT COUNT(DISTINCT cpu) FROM resources") == 16
            assert count("SELECT COUNT(*) FROM resources WHERE state='Absent'") == 8
            assert count("SELECT COUNT(DISTINCT network_address) FROM resources "
                         "WHERE state='Absent'") == 1
            assert count("SELECT COUNT(*) FROM resources WHERE state IN ('Dead','Suspected')") == 1
            assert conn.exec_driver_sql("SELECT * FROM queues ORDER BY priority DESC").all() == [
                ("admin", 10, "kamelot", "Active"), ("default", 2, "kamelot", "Active"),
                ("besteffort", 0, "kamelot", "Active")]
            assert count("SELECT COUNT(*) FROM jobs") == 18
            assert count("SELECT COUNT(*) FROM jobs WHERE state='Waiting' "
                         "AND reservation='None'") == 15 == len(info["waiting"])
            assert count("SELECT COUNT(*) FROM jobs WHERE state='Waiting' AND "
                         "reservation='None' AND queue_name='default'") == 14
            assert count("SELECT COUNT(*) FROM jobs WHERE state='Running'") == 2
            assert count("SELECT COUNT(*) FROM jobs WHERE reservation='Scheduled' "
                         "AND state='Waiting'") == 1
            assert count("SELECT COUNT(*) FROM gantt_jobs_predictions") == 3
            assert count("SELECT COUNT(*) FROM gantt_jobs_resources") == 8 + 4 + 16
            assert count("SELECT COUNT(*) FROM assigned_resources") == 12
            assert count("SELECT COUNT(*) FROM job_dependencies") == 2
            assert count("SELECT COUNT(*) FROM moldable_job_descriptions WHERE "
                         f"moldable_job_id = {info['jobs']['moldable']}") == 2
            types = conn.exec_driver_sql("SELECT type FROM job_types").scalars().all()
            assert sorted(types) == sorted(["timesharing=*,*", "timesharing=*,*", "besteffort",
                                            "placeholder=ph1", "allow=ph1"])
            levels = set(conn.exec_driver_sql(
                "SELECT res_job_resource_type FROM job_resource_descriptions").scalars())
            assert levels == {"core", "switch", "network_address", "cpu"}
            # gantt rows only on usable resources, no overlap between running jobs and the AR
            bad = count("SELECT COUNT(*) FROM gantt_jobs_resources g JOIN resources r "
                        "ON r.resource_id = g.resource_id WHERE r.state <> 'Alive'")
            assert bad == 0
    finally:
        e.dispose()
    conf = demo.demo_oar_conf(path)
    assert f'DB_BASE_FILE="{path}"' in conf and 'DB_TYPE="sqlite"' in conf
    assert 'HIERARCHY_LABELS="resource_id,network_address,cpu,core,switch"' in conf
    assert 'SCHEDULER_JOB_SECURITY_TIME="60"' in conf
    assert info["oar_conf"] == conf

    # refuses to overwrite; deterministic when asked to
    with pytest.raises(DatabaseError, match="overwrite"):
        demo.build_demo_db(path)
    e = create_engine(info["url"])
    with e.connect() as conn:
        before = dump(conn, OAR_TABLES)
    e.dispose()
    demo.build_demo_db(path, overwrite=True)
    e = create_engine(info["url"])
    with e.connect() as conn:
        assert dump(conn, OAR_TABLES) == before
    e.dispose()


def test_demo_db_has_the_corpus_shape(tmp_path):
    """Same DDL as OAR3's (the demo's site columns are the corpus's)."""
    demo.build_demo_db(tmp_path / "demo.sqlite")
    assert _ddl(tmp_path / "demo.sqlite") == _ddl(BASIC)


def test_copy_is_read_only_safe():
    """Opening a corpus file through ro_engine cannot write it."""
    e = ro_engine(BASIC)
    try:
        with e.connect() as conn, pytest.raises(Exception):
            conn.exec_driver_sql("INSERT INTO queues VALUES ('x', 1, 'k', 'Active')")
        with e.connect() as conn:
            assert len(conn.execute(select(reflect_tables(conn)["queues"])).all()) == 3
    finally:
        e.dispose()
