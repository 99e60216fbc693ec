"""Fuzzing the parsers of untrusted input: they return a value or raise their documented error, nothing else.

- ``oarsched.model.job.parse_request`` (``oarsub -l`` text): ``JobError``;
- ``oarsched.oar.config.read_conf_file`` / ``OarConfig`` accessors, ``parse_perl_hash``,
  ``parse_resource_order``: ``ConfigError``;
- ``oarsched.quotas.QuotasConfig.from_dict`` / ``from_file``: ``ConfigError``;
- property expressions: ``tests/test_properties.py`` fuzzes the parser, its
  SQL and its evaluation; here only ``combine`` (the job AND group filter) and
  the expressions PostgreSQL refuses after SQLite accepted them.
"""
from __future__ import annotations

import json
import math
import re
from pathlib import Path
from typing import Any

import pytest
import sqlalchemy as sa
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from oarsched.errors import ConfigError, JobError, PropertyError
from oarsched.model import properties
from oarsched.model.job import (
    HALF_BEST,
    Dependency,
    Job,
    dependency_cycles,
    parse_request,
    validate_job,
)
from oarsched.oar.config import OarConfig, parse_perl_hash, parse_resource_order, read_conf_file
from oarsched.oar.property_sql import to_sqlalchemy
from oarsched.quotas import QuotasConfig

FUZZ = settings(max_examples=200, deadline=None, suppress_health_check=[HealthCheck.function_scoped_fixture])
IDENT = re.compile(r"[A-Za-z_][A-Za-z0-9_]*\Z")


# ------------------------------------------------------------------- resource requests
REQUEST_TOKENS = [
    "nodes", "core", "switch", "resource_id", "network_address", "cpu", "=", "1", "2", "0", "-1", "-7",
    "10", "99999999999999999999", "ALL", "BEST", "HALF_BEST", "best", "all", "/", "+", "{", "}",
    "{core > 2}", "{type = 'default'}", "'", "a b", " ", ",", "walltime", "walltime=1:00", "=1", "==",
    "\n", "\t", "é", "1.5", "1e3", "core=", "=core", "{}", "}{", "/+", "+/", "{+}", "{/}",
]
token_soup = st.lists(st.sampled_from(REQUEST_TOKENS), max_size=12).map("".join)


def check_groups(groups, nodes_label: str) -> None:
    """What a parsed request always satisfies."""
    assert groups
    for grp in groups:
        assert grp.levels
        keywords = [n for _, n in grp.levels if n < 0]
        assert len(keywords) <= 1
        for label, count in grp.levels:
            assert IDENT.match(label) and label != "nodes"
            assert count > 0 or HALF_BEST <= count <= -1
        assert isinstance(grp.property, str)


@FUZZ
@given(st.one_of(st.text(max_size=60), token_soup), st.sampled_from(["network_address", "host"]))
def test_parse_request_returns_groups_or_job_error(text: str, nodes_label: str):
    try:
        groups = parse_request(text, job_id=7, nodes_label=nodes_label)
    except JobError as exc:
        assert exc.job_id == 7 and exc.message
        return
    check_groups(groups, nodes_label)


@st.composite
def requests(draw) -> tuple[str, list[tuple[str, list[tuple[str, int]]]]]:
    """A well-formed request text and the groups it means."""
    groups = []
    for _ in range(draw(st.integers(1, 3))):
        labels = draw(st.lists(st.sampled_from(["switch", "nodes", "cpu", "core", "resource_id"]),
                               min_size=1, max_size=4))
        counts = [draw(st.integers(1, 10**6)) for _ in labels]
        if draw(st.booleans()):
            counts[-1] = draw(st.sampled_from(["ALL", "BEST", "HALF_BEST"]))
        prop = draw(st.sampled_from(["", "core > 2", "type = 'default'", "a = 'x/y+z'"]))
        groups.append((prop, list(zip(labels, counts))))
    text = "+".join((f"{{{p}}}/" if p else "") + "/".join(f"{lbl}={n}" for lbl, n in lv) for p, lv in groups)
    keyword = {"ALL": -1, "BEST": -2, "HALF_BEST": -3}
    meaning = [(p, [("network_address" if lbl == "nodes" else lbl, keyword.get(n, n)) for lbl, n in lv])
               for p, lv in groups]
    return text, meaning


@st.composite
def mangled_requests(draw) -> str:
    """A well-formed request with a few characters inserted, deleted or replaced."""
    text = list(draw(requests())[0])
    for _ in range(draw(st.integers(1, 3))):
        i = draw(st.integers(0, len(text)))
        op = draw(st.sampled_from(["insert", "delete", "replace"]))
        char = draw(st.sampled_from(list("=/+{}-0 ,'a") + ["ALL", "\n", "é"]))
        if op == "insert":
            text.insert(i, char)
        elif i < len(text):
            text[i:i + 1] = [] if op == "delete" else [char]
    return "".join(text)


@FUZZ
@given(mangled_requests())
def test_mangled_requests(text: str):
    try:
        groups = parse_request(text, job_id=9)
    except JobError as exc:
        assert exc.job_id == 9
        return
    check_groups(groups, "network_address")


@FUZZ
@given(requests(), st.integers(1, 10**7))
def test_well_formed_requests_parse_to_what_they_say(req, walltime):
    text, meaning = req
    groups = parse_request(text)
    assert [(g.property, g.levels) for g in groups] == meaning
    job = Job(id=1, walltime=walltime, request=text)
    validate_job(job)  # what the parser accepts, the validator accepts


@FUZZ
@given(st.one_of(st.text(max_size=40), token_soup), st.one_of(st.none(), st.integers(-5, 10**6)))
def test_job_construction_raises_only_job_error(text, walltime):
    try:
        job = Job(id=3, walltime=walltime, request=text)
    except JobError as exc:
        assert exc.job_id == 3
        return
    try:
        validate_job(job)
    except JobError as exc:
        assert exc.job_id == 3 and walltime is not None and walltime <= 0


@FUZZ
@given(st.dictionaries(st.integers(1, 12), st.lists(st.tuples(st.integers(0, 14), st.sampled_from(
    ["Waiting", "Waiting", "Running", "Terminated"])), max_size=4), max_size=12))
def test_dependency_cycles_are_the_jobs_that_reach_themselves(graph):
    """Against brute force: a job is reported iff following waiting dependencies leads back to it."""
    jobs = [Job(id=j, walltime=1, dependencies=[Dependency(d, state) for d, state in deps])
            for j, deps in graph.items()]
    edges = {j: {d for d, state in deps if state == "Waiting" and d in graph} for j, deps in graph.items()}

    def reach(j: int) -> set[int]:
        seen, todo = set(), list(edges[j])
        while todo:
            k = todo.pop()
            if k not in seen:
                seen.add(k)
                todo.extend(edges[k])
        return seen
    reachable = {j: reach(j) for j in graph}
    cycles = dependency_cycles(jobs)
    assert set(cycles) == {j for j in graph if j in reachable[j]}
    for j, members in cycles.items():
        assert j in members and members == sorted(members)
        assert set(members) == {k for k in graph if k in reachable[j] and j in reachable[k]}


# ----------------------------------------------------------------------------- oar.conf
KEYS = ["DB_TYPE", "DB_BASE_FILE", "DB_PORT", "DB_HOSTNAME", "DB_BASE_NAME", "DB_BASE_LOGIN",
        "DB_BASE_PASSWD", "LOG_LEVEL", "HIERARCHY_LABELS", "SCHEDULER_RESOURCE_ORDER",
        "SCHEDULER_JOB_SECURITY_TIME", "SCHEDULER_TIMEOUT", "MAX_JOB_PER_QUEUES_GROUP_SCHEDULING_ROUND",
        "JOB_PRIORITY", "SCHEDULER_FAIRSHARING_WINDOW_SIZE", "SCHEDULER_FAIRSHARING_USER_TARGETS",
        "SCHEDULER_FAIRSHARING_COEF_USER", "QUOTAS", "QUOTAS_PERIOD", "QUOTAS_WINDOW_TIME_LIMIT",
        "SCHEDULER_AVAILABLE_SUSPENDED_RESOURCE_TYPE", "OARSUB_NODES_RESOURCES", "CUSTOM_JOB_SORTING",
        "PRIORITY_CONF_FILE", "x", " ", ""]
VALUES = ["", "0", "-1", "60", "1e3", "1_000", "nan", "inf", "-Infinity", "sNaN", "1e999", "12.7", "abc",
          "FAIRSHARE", "MULTIFACTOR", "CUSTOM", "FIFO", "yes", "sqlite", "Pg", "mysql", "/tmp/x.db",
          "resource_id ASC", "a DESC NULLS LAST, b", "x; DROP TABLE y", "resource_id,network_address",
          "a,,b", "{alice => 10, default => 21}", "{a=>}", "{", "0123", "é", "\x00", "a b"]
conf_line = st.tuples(st.sampled_from(KEYS), st.sampled_from(["=", " = ", "==", ""]),
                      st.sampled_from(["", '"', "'"]), st.sampled_from(VALUES),
                      st.sampled_from(["", '"', "'"]), st.sampled_from(["", " # c", "#", " '#'"]),
                      ).map("".join)
conf_bytes = st.one_of(
    st.binary(max_size=200),
    st.lists(st.one_of(conf_line, st.text(max_size=30)), max_size=12).flatmap(
        lambda lines: st.sampled_from(["\n", "\r\n", "\r"]).map(lambda eol: eol.join(lines).encode())),
)


def exercise(config: OarConfig) -> None:
    """Every accessor the scheduler uses: a value or ConfigError."""
    for name in ("job_security_time", "resource_order_terms", "hierarchy_labels", "max_jobs_per_round",
                 "job_priority", "custom_job_sorting", "priority_conf_file", "fairsharing_window_size",
                 "fairsharing_user_targets", "fairsharing_project_targets", "fairsharing_coef_user",
                 "quotas_enabled", "quotas_period", "quotas_window_time_limit", "suspendable_types",
                 "nodes_label", "log_level", "db_is_sqlite"):
        try:
            getattr(config, name)
        except ConfigError:
            pass
    for call in (config.validate, config.sqlalchemy_url, lambda: config.get_float("SCHEDULER_TIMEOUT")):
        try:
            call()
        except ConfigError:
            pass


@pytest.fixture(scope="module")
def scratch(tmp_path_factory) -> Path:
    """One folder for the files the fuzzers write (rewritten by each example)."""
    return tmp_path_factory.mktemp("fuzz")


@FUZZ
@given(conf_bytes)
def test_conf_reader_returns_values_or_config_error(scratch: Path, data: bytes):
    path = scratch / "oar.conf"
    path.write_bytes(data)
    try:
        values = read_conf_file(path)
    except ConfigError as exc:
        assert str(path) in str(exc)
        return
    for key, value in values.items():
        assert key and key == key.strip() and "#" not in key and "=" not in key
        assert isinstance(value, (str, int, float))
        if isinstance(value, str):
            assert "#" not in value and value == value.strip("\"'")  # blanks inside quotes stay, as in OAR3
    exercise(OarConfig.load(path))


@FUZZ
@given(st.dictionaries(st.sampled_from(KEYS[:-2]), st.sampled_from(VALUES), max_size=10))
def test_config_accessors_raise_only_config_error(values: dict[str, str]):
    exercise(OarConfig.from_mapping(values))


perl_tokens = st.lists(st.sampled_from(["{", "}", "alice", "'bob'", '"c d"', "=>", "=", ">", ",", "10", "-2.5",
                                        "nan", "inf", "1e999", " ", "x", "''", "default"]), max_size=12).map("".join)


@FUZZ
@given(st.one_of(st.text(max_size=40), perl_tokens))
def test_perl_hash_parser(text: str):
    try:
        result = parse_perl_hash(text)
    except ConfigError:
        return
    assert all(isinstance(v, float) and math.isfinite(v) for v in result.values())


order_tokens = st.lists(st.sampled_from(["resource_id", "network_address", "resources.", '"Odd Col"', '"', " ",
                                         "ASC", "desc", "NULLS", "FIRST", "last", ",", ";", "(", ")", "--",
                                         "1", "x y", "DROP"]), max_size=10).map("".join)


@FUZZ
@given(st.one_of(st.text(max_size=40), order_tokens))
def test_resource_order_parser(text: str):
    try:
        terms = parse_resource_order(text)
    except ConfigError:
        return
    assert terms
    for column, direction, nulls in terms:
        assert column and '"' not in column
        assert direction in ("ASC", "DESC") and nulls in (None, "FIRST", "LAST")


# ------------------------------------------------------------------------------- quotas
json_scalars = st.one_of(st.none(), st.booleans(), st.integers(-10**6, 10**6),
                         st.floats(allow_nan=True, allow_infinity=True), st.text(max_size=12))
json_values = st.recursive(json_scalars, lambda kids: st.one_of(
    st.lists(kids, max_size=4), st.dictionaries(st.text(max_size=8), kids, max_size=4)), max_leaves=12)

LIMITS = [1, 0, -1, "ALL", "0.5*ALL", "2*ALL", "34.5", "x", "ALL*2", "", None, 1.5, True, [1], "1e999", "nan"]
quota_keys = st.one_of(
    st.tuples(*[st.sampled_from(["*", "/", "default", "besteffort", "alice", "", " x"])] * 4).map(",".join),
    st.text(max_size=10))
rule_sets = st.one_of(
    st.dictionaries(quota_keys, st.one_of(st.lists(st.sampled_from(LIMITS), max_size=4), json_values), max_size=4),
    json_values)
PERIODS = ["* * * *", "08:00-19:00 mon-fri * *", "00:00-24:00 sat-sun * *", "25:00-26:00 * * *",
           "08:00-07:00 mon * *", "* xyz * *", "* * *", "", "19:00-08:00 fri-mon * *", "* mon-sun * *"]
DATES = ["2025-07-23 19:30", "2025-08-29 08:30", "2025-13-01 00:00", "yesterday", "", "2025-07-23"]


@st.composite
def quota_rules(draw) -> Any:
    """Rules JSON from the plausible (well-formed parts, wrong values) to the absurd."""
    if draw(st.integers(0, 4)) == 0:
        return draw(json_values)
    names = draw(st.lists(st.sampled_from(["rules_a", "rules_b", "quotas", "job_types"]), max_size=3))
    rules: dict[str, Any] = {}
    if draw(st.booleans()):
        rules["quotas"] = draw(rule_sets)
    if draw(st.booleans()):
        rules["job_types"] = draw(st.one_of(st.lists(st.sampled_from(["besteffort", "*", "", 1, None]),
                                                     max_size=3), json_values))
    if draw(st.booleans()):
        rules["periodical"] = draw(st.one_of(st.lists(st.lists(st.one_of(
            st.sampled_from(PERIODS), st.sampled_from(names or ["rules_a"]), st.text(max_size=4), json_scalars),
            min_size=0, max_size=4), max_size=3), json_values))
    if draw(st.booleans()):
        rules["oneshot"] = draw(st.one_of(st.lists(st.lists(st.one_of(
            st.sampled_from(DATES), st.sampled_from(names or ["rules_b"]), st.text(max_size=4), json_scalars),
            min_size=0, max_size=5), max_size=2), json_values))
    for name in names:
        if name not in rules:
            rules[name] = draw(rule_sets)
    if draw(st.integers(0, 5)) == 0:
        rules[draw(st.text(max_size=6))] = draw(json_values)
    return rules


@FUZZ
@given(quota_rules(), st.integers(0, 10**5), st.sampled_from(["default_not_dead", "default"]),
       st.integers(-10, 10**7), st.integers(-10, 10**7))
def test_quotas_rules_parser(rules, nb_all, mode, period, window):
    try:
        cfg = QuotasConfig.from_dict(rules, nb_resources_all=nb_all, all_mode=mode, period=period,
                                     window_time_limit=window)
    except ConfigError as exc:
        assert str(exc).startswith("quotas rules")
        return
    assert cfg.job_types[0] == "*"
    cfg.new_counters()


@FUZZ
@given(st.one_of(st.text(max_size=80), quota_rules().map(json.dumps)))
def test_quotas_rules_file(scratch: Path, data: str):
    path = scratch / "quotas.json"
    path.write_text(data, encoding="utf-8")
    try:
        QuotasConfig.from_file(path, nb_resources_all=10)
    except ConfigError as exc:
        assert str(path) in str(exc)


def test_quotas_rules_file_not_utf8(tmp_path: Path):
    path = tmp_path / "quotas.json"
    path.write_bytes(b'{"quotas": {"*,*,*,*": [1, -1, -1]}, "x": "\xff"}')
    with pytest.raises(ConfigError, match=str(path)):
        QuotasConfig.from_file(path, nb_resources_all=10)


# -------------------------------------------------------------------- property filters
prop_texts = st.one_of(st.none(), st.just(""), st.sampled_from(
    ["core > 2", "type = 'default'", "a OR b", "x = 'y' OR y = 1", "mem >= 4 AND (a = 1 OR b = 2)", "1 = 1",
     "NOT (x IS NULL)", "x LIKE 'a%'", "x; DROP", "x = ", "(", "TRUE", "x IN (1, 'a')"]), st.text(max_size=30))


@FUZZ
@given(prop_texts, prop_texts, st.booleans())
def test_combine_job_and_group_filters(job_text, group_text, oar_precedence):
    try:
        expr = properties.combine(job_text, group_text, oar_precedence=oar_precedence)
    except PropertyError:
        return
    if expr is None:
        assert not (job_text or "").strip() and not (group_text or "").strip()
        return
    assert properties.parse_property(str(expr)) == expr


PG_REFUSED = ["a = TRUE", "TRUE = a", "a <> TRUE", "a IN (TRUE, 1)", "a BETWEEN TRUE AND 2", "f = TRUE",
              "a = s", "a < s", "s = f"]
"""Expressions the grammar accepts and SQLite runs, that PostgreSQL refuses when pasted as OAR3 does (no such
operator)."""

MIXED_COLUMNS = {"a = s", "a < s", "s = f"}
FLOAT_TEXT = ["f >= '1'", "f = '2.5'"]
"""A string literal meeting a float column (SQLAlchemy 2.1's Float is no Numeric: it once went unconverted)."""


@pytest.mark.postgres
def test_property_accepted_by_sqlite_is_accepted_by_postgresql(pg_url: str):
    """Both backends select the same resources, or both refuse the expression before the database sees it:
    TRUE/FALSE meeting a number are 1/0 (as evaluated in Python); a number column meeting a text column is
    a PropertyError."""
    table = sa.Table("resources", sa.MetaData(), sa.Column("resource_id", sa.Integer, primary_key=True),
                     sa.Column("a", sa.Integer), sa.Column("s", sa.String(10)), sa.Column("f", sa.Float))
    rows = [{"resource_id": 1, "a": 0, "s": "0", "f": 0.0}, {"resource_id": 2, "a": 1, "s": "1", "f": 1.0},
            {"resource_id": 3, "a": 2, "s": "x", "f": 2.5}, {"resource_id": 4, "a": None, "s": None, "f": None}]
    outcome: dict[str, dict[str, object]] = {}
    for url in ("sqlite://", pg_url):
        engine = sa.create_engine(url)
        got = outcome.setdefault(engine.dialect.name, {})
        try:
            table.metadata.create_all(engine)
            with engine.begin() as conn:
                conn.execute(table.insert(), rows)
            for text in PG_REFUSED + FLOAT_TEXT:
                try:
                    where = to_sqlalchemy(properties.parse_property(text), table)
                except PropertyError:
                    got[text] = "PropertyError"
                    continue
                with engine.begin() as conn:
                    got[text] = set(conn.execute(sa.select(table.c.resource_id).where(where)).scalars())
        finally:
            engine.dispose()
    assert outcome["sqlite"] == outcome["postgresql"]
    evaluated = {t: {r["resource_id"] for r in rows if properties.parse_property(t).evaluate(r) is True}
                 for t in PG_REFUSED + FLOAT_TEXT if t not in MIXED_COLUMNS}
    assert outcome["sqlite"] == {**evaluated, **dict.fromkeys(MIXED_COLUMNS, "PropertyError")}
    assert outcome["sqlite"]["a = TRUE"] == {2} and outcome["sqlite"]["f >= '1'"] == {2, 3}

