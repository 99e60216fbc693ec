"""The quotas rules file: rule sets, the whole configuration and its parsing.

See :mod:`oarsched.quotas` for the file's format and OAR3's behaviour.
"""
from __future__ import annotations

import datetime as _dt
import json
import math
from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from os import PathLike
from typing import Any

from oarsched.errors import ConfigError
from oarsched.quotas.calendar import (
    DEFAULT_QUOTAS_PERIOD,
    DEFAULT_WINDOW_TIME_LIMIT,
    UNASSIGNED_RULES_ID,
    Calendar,
    parse_calendar,
)
from oarsched.quotas.counters import Counters, Limits, QuotaJob, RuleKey


@dataclass(frozen=True)
class QuotasSettings:
    """Where the quotas rules are and how to apply them (oar.conf's ``QUOTAS_*`` keys, OAR3's defaults).

    Built from oar.conf by :meth:`oarsched.oar.config.OarConfig.quotas_settings`.
    """

    conf_file: str = "/etc/oar/quotas_conf.json"
    """[QUOTAS_CONF_FILE] the rules (JSON)."""
    period: int = 1296000
    """[QUOTAS_PERIOD] temporal-quotas unrolling horizon, seconds."""
    window_time_limit: int = 4 * 1296000
    """[QUOTAS_WINDOW_TIME_LIMIT] seconds."""
    all_nb_resources_mode: str = "default_not_dead"
    """[QUOTAS_ALL_NB_RESOURCES_MODE] what ``ALL`` counts."""


DEFAULT_ALL_MODE = "default_not_dead"

_TOP_LEVEL_KEYS = ("quotas", "job_types", "periodical", "oneshot")


# ---------------------------------------------------------------------------
# Rule sets
# ---------------------------------------------------------------------------


class Rules:
    """One rule set: limits by key, and OAR3's greedy lookup of a job's rule."""

    __slots__ = ("_found", "_tree", "limits")

    def __init__(self, limits: Mapping[RuleKey, Limits]) -> None:
        self.limits: dict[RuleKey, Limits] = dict(limits)
        self._tree: dict[str, Any] = {}
        for key, value in self.limits.items():
            level: dict[str, Any] = self._tree
            for part in key[:-1]:
                level = level.setdefault(part, {})
            level[key[-1]] = value
        self._found: dict[
            tuple[Any, Any, Any, Any], tuple[Limits | None, RuleKey | None, tuple]
        ] = {}

    def __bool__(self) -> bool:
        return bool(self.limits)

    def __len__(self) -> int:
        return len(self.limits)

    def __eq__(self, other: object) -> bool:
        return isinstance(other, Rules) and other.limits == self.limits

    def __repr__(self) -> str:
        return f"Rules({self.limits!r})"

    def find(self, job: QuotaJob) -> tuple[Limits | None, RuleKey | None, tuple]:
        """The rule applying to ``job``: ``(limits, rule_key, counter_key)``.

        ``limits`` and ``rule_key`` are None when the descent hits a dead end
        (then ``counter_key`` is meaningless).  See the module docstring.
        """
        job_type = next(iter(job.types), "*")
        memo = (job.queue, job.project, job_type, job.user)
        found = self._found.get(memo)
        if found is None:
            found = self._descend(*memo)
            self._found[memo] = found
        return found

    def _descend(self, queue: Any, project: Any, job_type: Any, user: Any) -> tuple:
        values = (queue, project, job_type, user)
        chosen: list[Any] = []
        level: Any = self._tree
        for value in values:
            step = _pick_field(level, value)
            if not step:  # OAR3 tests truthiness: an empty-string field is a dead end too
                return None, None, ()
            chosen.append(step)
            level = level[step]
        rule_key: RuleKey = tuple(chosen)  # type: ignore[assignment]
        counter_key = (
            queue if chosen[0] == "/" else chosen[0],
            project if chosen[1] == "/" else chosen[1],
            chosen[2],
            user if chosen[3] == "/" else chosen[3],
        )
        return level, rule_key, counter_key


def _pick_field(level: Mapping[str, Any], value: Any) -> Any:
    """One step of the descent: the value itself, else ``/``, else ``*``, else None."""
    if value in level:
        return value
    if "/" in level:
        return "/"
    if "*" in level:
        return "*"
    return None


# ---------------------------------------------------------------------------
# The whole configuration
# ---------------------------------------------------------------------------


class QuotasConfig:
    """The quotas configuration of a round: default rules, counted types, calendar."""

    def __init__(
        self,
        default_rules: Rules,
        job_types: Sequence[str],
        rule_sets: Sequence[Rules] = (),
        calendar: Calendar | None = None,
        all_value: int = 0,
    ) -> None:
        self.default_rules = default_rules
        self.job_types: list[str] = list(job_types)
        self.rule_sets: list[Rules] = list(rule_sets)
        self.calendar = calendar
        self.all_value = all_value
        self._job_types_tuple = tuple(self.job_types)

    @classmethod
    def from_dict(
        cls,
        rules: Mapping[str, Any],
        *,
        nb_resources_all: int,
        period: int = DEFAULT_QUOTAS_PERIOD,
        window_time_limit: int = DEFAULT_WINDOW_TIME_LIMIT,
        all_mode: str = DEFAULT_ALL_MODE,
        tz: _dt.tzinfo | None = None,
    ) -> QuotasConfig:
        """Build from the parsed rules JSON; raise ConfigError on a malformed one."""
        if not isinstance(rules, Mapping):
            raise ConfigError(
                f"quotas rules: expected a JSON object at the top level, got {_kind(rules)}"
            )
        all_value = (
            int(nb_resources_all) if all_mode == DEFAULT_ALL_MODE else min(1, int(nb_resources_all))
        )
        names = _referenced_rule_sets(rules)
        _reject_unknown_keys(rules, names)
        default_rules = (
            _parse_rule_set(rules["quotas"], all_value, '"quotas"')
            if "quotas" in rules
            else Rules({})
        )
        job_types = ["*"] + _parse_job_types(rules.get("job_types", []))
        rule_sets = [
            _parse_rule_set(rules[name], all_value, f"rule set {name!r}") for name in names
        ]
        calendar = None
        if "periodical" in rules or "oneshot" in rules:
            calendar = parse_calendar(
                rules, names, period=period, window_time_limit=window_time_limit, tz=tz
            )
            rule_sets.append(
                default_rules
            )  # id calendar.gap_rules_id: parts of the week no period covers
        return cls(default_rules, job_types, rule_sets, calendar, all_value)

    @classmethod
    def from_file(cls, path: str | PathLike[str], **kw: Any) -> QuotasConfig:
        """Read ``QUOTAS_CONF_FILE``; ``kw`` as for :meth:`from_dict`."""
        try:
            with open(path, encoding="utf-8") as f:
                text = f.read()
        except OSError as e:
            raise ConfigError(
                f"quotas rules file {path}: cannot read it: {e.strerror or e}"
            ) from None
        except UnicodeDecodeError as e:
            raise ConfigError(f"quotas rules file {path}: not UTF-8 text (byte {e.start})") from None
        try:
            data = json.loads(text)
        except json.JSONDecodeError as e:
            raise ConfigError(f"quotas rules file {path}: bad JSON: {e}") from None
        try:
            return cls.from_dict(data, **kw)
        except ConfigError as e:
            raise ConfigError(f"{path}: {e}") from None

    def rules(self, rules_id: int) -> Rules:
        """The rule set of a rules id (-1: the default rules, ``"quotas"``)."""
        if rules_id == UNASSIGNED_RULES_ID:
            return self.default_rules
        return self.rule_sets[rules_id]

    def slot_rules(self, rules_id: int) -> Rules:
        """The rules OAR3's check applies to a slot with this rules id.

        An empty rule set falls back to the default rules; with a calendar, a
        slot still at -1 (past the horizon) uses the last rule set of the
        calendar (OAR3's ``set_rules(-1)`` on copy).
        """
        if (
            rules_id == UNASSIGNED_RULES_ID
            and self.calendar is not None
            and self.calendar.rule_set_names
        ):
            rules = self.rule_sets[len(self.calendar.rule_set_names) - 1]
        else:
            rules = self.rules(rules_id)
        return rules if rules else self.default_rules

    def new_counters(self) -> Counters:
        """Empty counters counting this configuration's job types."""
        return Counters(self._job_types_tuple)

    @property
    def rule_set_names(self) -> list[str]:
        """Names of the calendar's rule sets, by rules id."""
        return self.calendar.rule_set_names if self.calendar else []


# ---------------------------------------------------------------------------
# Parsing
# ---------------------------------------------------------------------------


def _kind(value: Any) -> str:
    return type(value).__name__ if value is not None else "null"


def _referenced_rule_sets(rules: Mapping[str, Any]) -> list[str]:
    """Rule-set names in order of first appearance: periodical 2nd field, then oneshot 3rd."""
    names: list[str] = []
    for section, min_len, index in (
        ("periodical", 2, 1),
        ("oneshot", 3, 2),
    ):  # + an optional comment
        entries = rules.get(section, [])
        if not isinstance(entries, list):
            raise ConfigError(
                f'quotas rules: "{section}" must be a list of entries, got {_kind(entries)}'
            )
        for i, entry in enumerate(entries):
            where = f'"{section}" entry {i} {json.dumps(entry)}'
            if not isinstance(entry, list) or len(entry) not in (min_len, min_len + 1):
                shape = (
                    "[spec, rule_set, comment]"
                    if section == "periodical"
                    else "[begin, end, rule_set, comment]"
                )
                raise ConfigError(f"quotas rules: {where}: expected a list {shape}")
            name = entry[index]
            if not isinstance(name, str):
                raise ConfigError(f"quotas rules: {where}: the rule set name must be a string")
            if name not in rules:
                raise ConfigError(f"quotas rules: {where}: rule set {name!r} is not defined")
            if name not in names:
                names.append(name)
    return names


def _reject_unknown_keys(rules: Mapping[str, Any], names: Sequence[str]) -> None:
    for key in rules:
        if key not in _TOP_LEVEL_KEYS and key not in names:
            raise ConfigError(
                f"quotas rules: unknown top-level key {key!r} (expected quotas, job_types, "
                "periodical, "
                "oneshot or a rule set named in periodical/oneshot)"
            )


def _parse_job_types(value: Any) -> list[str]:
    if not isinstance(value, list) or not all(isinstance(t, str) for t in value):
        raise ConfigError(
            f'quotas rules: "job_types" must be a list of strings, got {json.dumps(value)}'
        )
    return list(value)


def _parse_rule_set(value: Any, all_value: int, where: str) -> Rules:
    """A ``{"q,p,t,u": [res, jobs, hours]}`` object -> :class:`Rules`."""
    if not isinstance(value, Mapping):
        raise ConfigError(f"quotas rules: {where} must be an object of rules, got {_kind(value)}")
    limits: dict[RuleKey, Limits] = {}
    for key, triple in value.items():
        fields = tuple(key.split(","))
        if len(fields) != 4:
            raise ConfigError(
                f"quotas rules: {where}: key {key!r} must have 4 comma-separated fields "
                f"(queue,project,job_type,user), it has {len(fields)}"
            )
        if not isinstance(triple, list) or len(triple) != 3:
            raise ConfigError(
                f"quotas rules: {where}: value of {key!r} must be a list "
                f"[max_resources, max_jobs, max_resource_hours], got {json.dumps(triple)}"
            )
        res, jobs, hours = (
            _parse_limit(v, all_value, f"{where}: {key!r}[{i}]") for i, v in enumerate(triple)
        )
        limits[fields] = (res, jobs, int(3600 * hours))  # type: ignore[index]
    return Rules(limits)


def _parse_limit(value: Any, all_value: int, where: str) -> int:
    """OAR3's ``alphanum_to_int``: int | number | "number" | "ALL" | "x*ALL" -> truncated int."""
    if isinstance(value, int):
        return int(value)
    try:
        if isinstance(value, float):
            number = value
        elif isinstance(value, str):
            number = _eval_limit_text(value, all_value)
        else:
            raise TypeError(type(value))
        if not math.isfinite(number):
            raise ValueError(number)
        return int(number)
    except (TypeError, ValueError):
        raise ConfigError(
            f"quotas rules: {where}: bad limit {json.dumps(value)} "
            '(expected an integer, a number, "ALL" or "x*ALL")'
        ) from None


def _eval_limit_text(text: str, all_value: int) -> float:
    try:
        return float(text)
    except ValueError:
        pass
    factor = 1.0
    if "*" in text:
        factor_text, text = text.split("*")  # more than one '*' -> ValueError
        factor = float(factor_text)
    if text == "ALL":
        return factor * all_value
    return factor * float(text)
