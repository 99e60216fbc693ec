"""Tests of oarsched.oar.config: OAR3's oar.conf rules, defaults, typed keys, DB URL, logging."""
from __future__ import annotations

import glob
import logging
import math
from pathlib import Path

import pytest
from sqlalchemy.engine import make_url

from oarsched.errors import ConfigError
from oarsched.oar import config as config_mod
from oarsched.oar.config import (
    DEFAULTS,
    OarConfig,
    convert_value,
    parse_perl_hash,
    parse_resource_order,
    read_conf_file,
    setup_logging,
)

CONFORMANCE = Path("/work/shared/conformance")


def write(tmp_path: Path, text: str, name: str = "oar.conf", encoding: str = "utf-8") -> Path:
    path = tmp_path / name
    path.write_bytes(text.encode(encoding) if isinstance(text, str) else text)
    return path


@pytest.fixture(autouse=True)
def restore_oarsched_logger():
    """setup_logging turns propagation off; put the logger back for caplog-based tests."""
    log = logging.getLogger("oarsched")
    saved = (list(log.handlers), log.level, log.propagate)
    yield
    for h in list(log.handlers):
        if h not in saved[0]:
            log.removeHandler(h)
            h.close()
    log.setLevel(saved[1])
    log.propagate = saved[2]
    config_mod._installed_handlers.clear()


# ----------------------------------------------------------------------------- parsing

def test_values_are_converted_like_oar3(tmp_path):
    path = write(
        tmp_path,
        'A="60"\nB=1e3\nC=2.5\nD=-3\nE=abc\nF=0x10\nG=""\nH=1_000\nI=nan\nJ=+7\n',
    )
    conf = read_conf_file(path)
    assert conf["A"] == 60 and type(conf["A"]) is int
    assert conf["B"] == 1000.0 and type(conf["B"]) is float
    assert conf["C"] == 2.5
    assert conf["D"] == -3
    assert conf["E"] == "abc"
    assert conf["F"] == "0x10"
    assert conf["G"] == ""
    assert conf["H"] == 1000
    assert math.isnan(conf["I"])
    assert conf["J"] == 7


def test_convert_value_keeps_snan_as_text():
    # Decimal accepts sNaN, int/float do not: OAR3 stores None, oarsched the text.
    assert convert_value("sNaN") == "sNaN"
    assert convert_value("Infinity") == math.inf


def test_hash_cuts_the_line_even_inside_quotes(tmp_path, caplog):
    path = write(tmp_path, 'DB_BASE_PASSWD="ab#cd"\nX="value" # a comment\n# full comment\n   # indented\n')
    with caplog.at_level(logging.WARNING, logger="oarsched.config"):
        conf = read_conf_file(path)
    assert conf == {"DB_BASE_PASSWD": "ab", "X": "value"}
    assert any("line 1" in r.getMessage() and "'#'" in r.getMessage() for r in caplog.records)
    assert not any("line 2" in r.getMessage() for r in caplog.records)


def test_split_on_first_equal_and_strip_quotes(tmp_path):
    path = write(
        tmp_path,
        "A=b=c\n  B  =   \"'quoted'\"  \nC=' spaced '\nD = \"\"\"x\"\n",
    )
    conf = read_conf_file(path)
    assert conf["A"] == "b=c"
    assert conf["B"] == "quoted"
    assert conf["C"] == " spaced "  # blanks inside the quotes stay, as in OAR3
    assert conf["D"] == "x"


def test_last_occurrence_wins_and_keys_are_case_sensitive(tmp_path):
    conf = read_conf_file(write(tmp_path, "KEY=1\nkey=2\nKEY=3\n"))
    assert conf == {"KEY": 3, "key": 2}


def test_lines_without_equal_are_ignored_with_a_warning(tmp_path, caplog):
    path = write(tmp_path, "JUST_A_WORD\n\n   \nA=1\n")
    with caplog.at_level(logging.WARNING, logger="oarsched.config"):
        conf = read_conf_file(path)
    assert conf == {"A": 1}
    warnings = [r.getMessage() for r in caplog.records]
    assert len(warnings) == 1 and "line 1" in warnings[0] and str(path) in warnings[0]


def test_crlf_and_cr_line_ends_and_bom(tmp_path):
    conf = read_conf_file(write(tmp_path, b'\xef\xbb\xbfA="1"\r\nB=2\rC=three\r\n'))
    assert conf == {"A": 1, "B": 2, "C": "three"}


def test_empty_key_is_an_error_naming_file_and_line(tmp_path):
    path = write(tmp_path, "A=1\n= orphan value\n")
    with pytest.raises(ConfigError) as e:
        read_conf_file(path)
    assert str(path) in str(e.value) and "line 2" in str(e.value)


def test_non_utf8_line_is_an_error(tmp_path):
    path = write(tmp_path, b"A=1\nB=\xff\xfe\n")
    with pytest.raises(ConfigError, match="line 2"):
        read_conf_file(path)


def test_unreadable_file_is_an_error(tmp_path):
    missing = tmp_path / "nope.conf"
    with pytest.raises(ConfigError, match="nope.conf"):
        read_conf_file(missing)
    with pytest.raises(ConfigError, match=str(tmp_path)):
        read_conf_file(tmp_path)  # a directory


# ------------------------------------------------------------------------------ loading

def test_load_explicit_path_merges_over_defaults(tmp_path):
    path = write(tmp_path, "SCHEDULER_JOB_SECURITY_TIME=30\nNEW_KEY=x\n")
    cfg = OarConfig.load(path)
    assert cfg.path == str(path)
    assert cfg.get("SCHEDULER_JOB_SECURITY_TIME") == 30
    assert cfg.get("NEW_KEY") == "x"
    assert cfg.get("HIERARCHY_LABELS") == "resource_id,network_address"
    assert cfg.get("MISSING") is None and cfg.get("MISSING", 5) == 5


def test_load_uses_oarconffile_then_etc(tmp_path, monkeypatch):
    env_file = write(tmp_path, "JOB_PRIORITY=FAIRSHARE\n", name="env.conf")
    etc_file = write(tmp_path, "JOB_PRIORITY=MULTIFACTOR\n", name="etc.conf")
    monkeypatch.setattr(config_mod, "DEFAULT_CONFIG_FILE", str(etc_file))
    assert OarConfig.load(env={"OARCONFFILE": str(env_file)}).job_priority == "FAIRSHARE"
    cfg = OarConfig.load(env={})
    assert cfg.job_priority == "MULTIFACTOR" and cfg.path == str(etc_file)
    monkeypatch.setattr(config_mod, "DEFAULT_CONFIG_FILE", str(tmp_path / "absent.conf"))
    cfg = OarConfig.load(env={})
    assert cfg.path is None and cfg.values == DEFAULTS


def test_load_missing_oarconffile_is_an_error(tmp_path):
    with pytest.raises(ConfigError, match="missing.conf"):
        OarConfig.load(env={"OARCONFFILE": str(tmp_path / "missing.conf")})


def test_defaults_are_oar3s():
    cfg = OarConfig.from_mapping({})
    assert cfg.job_security_time == 60
    assert cfg.resource_order == "resource_id ASC"
    assert cfg.resource_order_terms == [("resource_id", "ASC", None)]
    assert cfg.hierarchy_labels == ["resource_id", "network_address"]
    assert cfg.max_jobs_per_round == 1000
    assert cfg.job_priority == "FIFO"
    assert cfg.quotas_enabled is False
    assert cfg.quotas_conf_file == "/etc/oar/quotas_conf.json"
    assert cfg.quotas_period == 1296000
    assert cfg.quotas_window_time_limit == 5184000
    assert cfg.quotas_all_nb_resources_mode == "default_not_dead"
    assert cfg.suspendable_types == ["default"]
    assert cfg.nodes_label == "network_address"
    assert cfg.fairsharing_window_size == 2592000
    assert cfg.fairsharing_project_targets == {"default": 21.0}
    assert cfg.fairsharing_user_targets == {"default": 22.0}
    assert (cfg.fairsharing_coef_project, cfg.fairsharing_coef_user, cfg.fairsharing_coef_user_ask) == (0.0, 1.0, 1.0)
    assert cfg.custom_job_sorting == "" and cfg.custom_job_sorting_config == "{}"
    assert cfg.priority_conf_file is None
    assert cfg.log_level == logging.DEBUG
    assert cfg.get("LOG_FILE") == ":stderr:"
    assert cfg.get("DB_TYPE") == "Pg" and cfg.get("DB_PORT") == "5432"
    assert cfg.log_job_scheduling_time is False
    cfg.validate()


# ---------------------------------------------------------------------------- typed keys

def test_get_int_errors_name_key_file_and_text(tmp_path):
    path = write(tmp_path, "SCHEDULER_JOB_SECURITY_TIME=soon\nQUOTAS_PERIOD=1.5\n")
    cfg = OarConfig.load(path)
    with pytest.raises(ConfigError) as e:
        cfg.job_security_time
    msg = str(e.value)
    assert "SCHEDULER_JOB_SECURITY_TIME must be an integer, got 'soon'" in msg and str(path) in msg
    with pytest.raises(ConfigError, match="QUOTAS_PERIOD must be an integer, got '1.5'"):
        cfg.quotas_period
    with pytest.raises(ConfigError, match="UNKNOWN"):
        cfg.get_int("UNKNOWN")


def test_get_int_accepts_integral_floats_and_decimal_strings(tmp_path):
    cfg = OarConfig.load(write(tmp_path, "QUOTAS_PERIOD=1e6\nSCHEDULER_JOB_SECURITY_TIME=0\n"))
    assert cfg.quotas_period == 1000000 and type(cfg.quotas_period) is int
    assert cfg.job_security_time == 0
    assert OarConfig.from_mapping({"X": " 42 "}).get_int("X") == 42
    with pytest.raises(ConfigError):
        OarConfig.from_mapping({"X": True}).get_int("X")
    with pytest.raises(ConfigError, match=">= 0"):
        OarConfig.from_mapping({"SCHEDULER_JOB_SECURITY_TIME": -1}).job_security_time


def test_raw_text_is_kept_for_strings(tmp_path):
    cfg = OarConfig.load(write(tmp_path, 'DB_BASE_PASSWD="0123"\nOTHER=1e3\n'))
    assert cfg.get("DB_BASE_PASSWD") == 123  # what OAR3 sees
    assert cfg.get_str("DB_BASE_PASSWD") == "0123"
    assert cfg.get_str("OTHER") == "1e3"
    cfg.values["OTHER"] = "changed"  # a programmatic override wins over the file text
    assert cfg.get_str("OTHER") == "changed"
    with pytest.raises(ConfigError):
        cfg.get_str("SQLALCHEMY_POOL_SIZE")  # None


@pytest.mark.parametrize(
    "value, expected",
    [("5", 5), ("0", None), ("-3", None), ("abc", None), ("12.7", 12), ("inf", None), ("nan", None), ("", None)],
)
def test_max_jobs_per_round(tmp_path, value, expected):
    cfg = OarConfig.load(write(tmp_path, f'MAX_JOB_PER_QUEUES_GROUP_SCHEDULING_ROUND="{value}"\n'))
    assert cfg.max_jobs_per_round == expected


def test_max_jobs_per_round_absent_key_means_no_cap():
    cfg = OarConfig.from_mapping({})
    del cfg.values["MAX_JOB_PER_QUEUES_GROUP_SCHEDULING_ROUND"]
    assert cfg.max_jobs_per_round is None


@pytest.mark.parametrize(
    "value, expected",
    [
        ("FIFO", "FIFO"),
        ("FAIRSHARE", "FAIRSHARE"),
        ("MULTIFACTOR", "MULTIFACTOR"),
        ("CUSTOM", "CUSTOM"),
        ("fairshare", "FIFO"),  # case-sensitive, as OAR3
        ("KARMA", "FIFO"),
        ("3", "FIFO"),
    ],
)
def test_job_priority(tmp_path, value, expected):
    assert OarConfig.load(write(tmp_path, f"JOB_PRIORITY={value}\n")).job_priority == expected


def test_quotas_keys(tmp_path):
    cfg = OarConfig.load(
        write(
            tmp_path,
            'QUOTAS="yes"\nQUOTAS_CONF_FILE="/x/q.json"\nQUOTAS_PERIOD=86400\n'
            'QUOTAS_WINDOW_TIME_LIMIT=10800\nQUOTAS_ALL_NB_RESOURCES_MODE="all"\n',
        )
    )
    assert cfg.quotas_enabled
    assert (cfg.quotas_conf_file, cfg.quotas_period, cfg.quotas_window_time_limit) == ("/x/q.json", 86400, 10800)
    assert cfg.quotas_all_nb_resources_mode == "all"
    assert not OarConfig.from_mapping({"QUOTAS": "YES"}).quotas_enabled  # exact "yes", as OAR3


def test_list_keys(tmp_path):
    cfg = OarConfig.load(
        write(
            tmp_path,
            'HIERARCHY_LABELS="resource_id, network_address,cpu ,core"\n'
            'SCHEDULER_AVAILABLE_SUSPENDED_RESOURCE_TYPE="default  token"\n'
            'OARSUB_NODES_RESOURCES="host"\n',
        )
    )
    assert cfg.hierarchy_labels == ["resource_id", "network_address", "cpu", "core"]
    assert cfg.suspendable_types == ["default", "token"]
    assert cfg.nodes_label == "host"
    for bad in ("resource_id,,core", "resource_id,net work", ""):
        with pytest.raises(ConfigError, match="HIERARCHY_LABELS"):
            OarConfig.from_mapping({"HIERARCHY_LABELS": bad}).hierarchy_labels


def test_fairsharing_keys(tmp_path):
    cfg = OarConfig.load(
        write(
            tmp_path,
            'SCHEDULER_FAIRSHARING_PROJECT_TARGETS="{ first => 75, default => 25 }"\n'
            'SCHEDULER_FAIRSHARING_USER_TARGETS="{}"\n'
            "SCHEDULER_FAIRSHARING_COEF_PROJECT=0.5\nSCHEDULER_FAIRSHARING_COEF_USER=2\n"
            "SCHEDULER_FAIRSHARING_COEF_USER_ASK=x\nSCHEDULER_FAIRSHARING_WINDOW_SIZE=86400\n",
        )
    )
    assert cfg.fairsharing_project_targets == {"first": 75.0, "default": 25.0}
    assert cfg.fairsharing_user_targets == {}
    assert cfg.fairsharing_coef_project == 0.5 and cfg.fairsharing_coef_user == 2.0
    assert cfg.fairsharing_window_size == 86400
    with pytest.raises(ConfigError, match="SCHEDULER_FAIRSHARING_COEF_USER_ASK must be a number"):
        cfg.fairsharing_coef_user_ask
    bad = OarConfig.from_mapping({"SCHEDULER_FAIRSHARING_USER_TARGETS": "{alice => lots}"})
    with pytest.raises(ConfigError, match="SCHEDULER_FAIRSHARING_USER_TARGETS"):
        bad.fairsharing_user_targets


def test_parse_perl_hash():
    assert parse_perl_hash("{default => 21.0}") == {"default": 21.0}
    assert parse_perl_hash("{ toto => 75, titi => 10, tutu => 15 }") == {"toto": 75.0, "titi": 10.0, "tutu": 15.0}
    assert parse_perl_hash("{}") == {} and parse_perl_hash("") == {} and parse_perl_hash("{ }") == {}
    assert parse_perl_hash("{a => 1,}") == {"a": 1.0}
    assert parse_perl_hash("a=>1") == {"a": 1.0}  # braces optional, as OAR3
    assert parse_perl_hash("{'alice' => '10'}") == {"alice": 10.0}
    assert parse_perl_hash("{my user => 1}") == {"myuser": 1.0}  # OAR3 removes every blank
    for bad in ("{a => }", "{a}", "{=> 1}", "{a => 1", "a => 1}", "{a => 1,,b => 2}", "{a => {b => 1}}", "{a => 1 => 2}",
                "{a => nan}", "{a => inf}"):
        with pytest.raises(ConfigError):
            parse_perl_hash(bad)


# ---------------------------------------------------------------------- resource order

def test_resource_order_terms_accepts_order_by_lists():
    packaged = (
        "scheduler_priority ASC, state_num ASC, available_upto DESC, suspended_jobs ASC, "
        "network_address ASC, resource_id ASC"
    )
    assert parse_resource_order(packaged) == [
        ("scheduler_priority", "ASC", None),
        ("state_num", "ASC", None),
        ("available_upto", "DESC", None),
        ("suspended_jobs", "ASC", None),
        ("network_address", "ASC", None),
        ("resource_id", "ASC", None),
    ]
    assert parse_resource_order("mem desc,Resource_ID") == [("mem", "DESC", None), ("resource_id", "ASC", None)]
    assert parse_resource_order('switch DESC NULLS LAST, "Odd" asc nulls first, resources.core') == [
        ("switch", "DESC", "LAST"),
        ("Odd", "ASC", "FIRST"),
        ("core", "ASC", None),
    ]


@pytest.mark.parametrize(
    "text",
    [
        "",
        "   ",
        "resource_id ASC,",
        "resource_id UP",
        "resource_id; DROP TABLE resources",
        "(CASE WHEN state='Alive' THEN 0 ELSE 1 END)",
        "random()",
        "resource_id ASC DESC",
        "resource_id NULLS",
        "1",
    ],
)
def test_resource_order_rejects_anything_else(text):
    with pytest.raises(ConfigError, match="SCHEDULER_RESOURCE_ORDER"):
        parse_resource_order(text)
    with pytest.raises(ConfigError, match="SCHEDULER_RESOURCE_ORDER"):
        OarConfig.from_mapping({"SCHEDULER_RESOURCE_ORDER": text}).resource_order_terms


# ------------------------------------------------------------------------ database URL

def test_sqlite_url(tmp_path):
    assert OarConfig.from_mapping({"DB_TYPE": "sqlite", "DB_BASE_FILE": "before.sqlite"}).sqlalchemy_url() == (
        "sqlite:///before.sqlite"
    )
    assert OarConfig.from_mapping({"DB_TYPE": "SQLite", "DB_BASE_FILE": "/var/lib/oar.db"}).sqlalchemy_url() == (
        "sqlite:////var/lib/oar.db"
    )
    assert OarConfig.from_mapping({"DB_TYPE": "sqlite", "DB_BASE_FILE": ":memory:"}).sqlalchemy_url() == (
        "sqlite:///:memory:"
    )
    with pytest.raises(ConfigError, match="DB_BASE_FILE"):
        OarConfig.from_mapping({"DB_TYPE": "sqlite"}).sqlalchemy_url()


PG = {"DB_HOSTNAME": "db.example", "DB_BASE_NAME": "oar", "DB_BASE_LOGIN": "oar"}


@pytest.mark.parametrize("db_type", ["Pg", "pg", "PSQL", "pgsql", "postgresql"])
def test_postgresql_url(db_type):
    cfg = OarConfig.from_mapping({**PG, "DB_TYPE": db_type, "DB_BASE_PASSWD": "secret"})
    assert cfg.sqlalchemy_url() == "postgresql+psycopg://oar:secret@db.example:5432/oar"


def test_postgresql_url_without_password_and_with_port():
    cfg = OarConfig.from_mapping({**PG, "DB_BASE_PASSWD": "", "DB_PORT": 6543})
    assert cfg.sqlalchemy_url() == "postgresql+psycopg://oar@db.example:6543/oar"
    assert OarConfig.from_mapping(PG).sqlalchemy_url() == "postgresql+psycopg://oar@db.example:5432/oar"


def test_postgresql_url_escapes_login_and_password(tmp_path):
    path = write(
        tmp_path,
        'DB_TYPE="Pg"\nDB_HOSTNAME="h"\nDB_BASE_NAME="oar"\nDB_BASE_LOGIN="o@r"\n'
        'DB_BASE_PASSWD="p:w/d%@!"\n',
    )
    url = make_url(OarConfig.load(path).sqlalchemy_url())
    assert (url.username, url.password, url.host, url.port, url.database) == ("o@r", "p:w/d%@!", "h", 5432, "oar")


def test_postgresql_url_keeps_numeric_password_text(tmp_path):
    path = write(tmp_path, 'DB_HOSTNAME="h"\nDB_BASE_NAME="oar"\nDB_BASE_LOGIN="oar"\nDB_BASE_PASSWD="0123"\n')
    assert make_url(OarConfig.load(path).sqlalchemy_url()).password == "0123"


@pytest.mark.parametrize("missing", ["DB_BASE_NAME", "DB_BASE_LOGIN", "DB_HOSTNAME"])
def test_postgresql_url_missing_key(missing):
    values = {k: v for k, v in PG.items() if k != missing}
    with pytest.raises(ConfigError, match=missing):
        OarConfig.from_mapping(values).sqlalchemy_url()


def test_unknown_db_type_lists_accepted_ones():
    with pytest.raises(ConfigError) as e:
        OarConfig.from_mapping({**PG, "DB_TYPE": "mysql"}).sqlalchemy_url()
    assert "mysql" in str(e.value)
    for accepted in ("sqlite", "Pg", "psql", "pgsql"):
        assert accepted in str(e.value)


def test_bad_port():
    with pytest.raises(ConfigError, match="DB_PORT"):
        OarConfig.from_mapping({**PG, "DB_PORT": "fivefour"}).sqlalchemy_url()


def test_db_is_sqlite():
    assert OarConfig.from_mapping({"DB_TYPE": "SQLITE"}).db_is_sqlite
    assert not OarConfig.from_mapping({}).db_is_sqlite


# ---------------------------------------------------------------------------- logging

@pytest.mark.parametrize("level, expected", [(0, logging.ERROR), (1, logging.WARNING), (2, logging.INFO), (3, logging.DEBUG)])
def test_setup_logging_levels(level, expected):
    log = setup_logging(OarConfig.from_mapping({"LOG_LEVEL": level}))
    assert log.name == "oarsched" and log.level == expected
    assert len(log.handlers) == 1 and log.propagate is False


def test_setup_logging_stderr_and_stdout(capsys):
    log = setup_logging(OarConfig.from_mapping({"LOG_LEVEL": 2, "LOG_FORMAT": "%(levelname)s:%(message)s"}))
    log.info("to stderr")
    log.debug("hidden")
    assert capsys.readouterr().err == "INFO:to stderr\n"
    log = setup_logging(OarConfig.from_mapping({"LOG_FILE": ":stdout:", "LOG_FORMAT": "%(message)s"}))
    assert len(log.handlers) == 1  # the previous handler was replaced
    logging.getLogger("oarsched.sorting").warning("child to stdout")
    out = capsys.readouterr()
    assert out.out == "child to stdout\n" and out.err == ""


def test_setup_logging_to_a_file(tmp_path):
    path = tmp_path / "oar.log"
    log = setup_logging(OarConfig.from_mapping({"LOG_FILE": str(path), "LOG_LEVEL": 1}))
    log.info("not written")
    log.warning("written")
    for h in log.handlers:
        h.flush()
    text = path.read_text()
    assert "written" in text and "not written" not in text


def test_setup_logging_errors(tmp_path):
    with pytest.raises(ConfigError, match="LOG_FILE"):
        setup_logging(OarConfig.from_mapping({"LOG_FILE": str(tmp_path / "no" / "such" / "dir.log")}))
    for bad in (4, "debug", -1, 2.5):
        with pytest.raises(ConfigError, match="LOG_LEVEL"):
            setup_logging(OarConfig.from_mapping({"LOG_LEVEL": bad}))


# ----------------------------------------------------------------------- corpus files

CORPUS_CONFS = sorted(glob.glob(str(CONFORMANCE / "*" / "oar.conf")))


@pytest.mark.skipif(not CORPUS_CONFS, reason="conformance corpus not available")
def test_every_corpus_oar_conf_loads_and_validates():
    for path in CORPUS_CONFS:
        cfg = OarConfig.load(path)
        cfg.validate()
        assert cfg.sqlalchemy_url() == "sqlite:///before.sqlite"
        assert cfg.log_level == logging.WARNING
        assert all(d in ("ASC", "DESC") for _, d, _ in cfg.resource_order_terms)
        assert cfg.hierarchy_labels[:4] == ["resource_id", "network_address", "cpu", "core"]
    assert len(CORPUS_CONFS) >= 90
