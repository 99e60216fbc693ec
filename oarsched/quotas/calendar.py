"""Temporal quotas: the weekly calendar of rule sets (``periodical``) and its exceptions (``oneshot``).

See :mod:`oarsched.quotas` for the rules file and OAR3's behaviour.
"""
from __future__ import annotations

import datetime as _dt
import itertools
import json
import re
import time as _time
from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from typing import Any

from oarsched.errors import ConfigError
from oarsched.model.platform import MAX_TIME

OPEN_END = MAX_TIME - 2
"""A slot ending at or after this instant is the open-ended tail of a slot set
(``MAX_TIME``, or the second before the ``available_upto = 2**31 - 1``
pseudo-job)."""

DEFAULT_QUOTAS_PERIOD = 1296000
"""``QUOTAS_PERIOD``: how far (from the local Monday 00:00 of the slot set's
begin) the calendar is unrolled when a slot set is made: 15 days."""

DEFAULT_WINDOW_TIME_LIMIT = 4 * 1296000
"""``QUOTAS_WINDOW_TIME_LIMIT`` default: 60 days."""

UNASSIGNED_RULES_ID = -1
"""Rules id of a slot without calendar rules: the default rules without a
calendar, a slot past the calendar horizon with one."""

DAY = 86400
WEEK = 7 * DAY

_DEFAULT_SPECS = ("* * * *", "default")
_WEEKDAYS = {"mon": 0, "tue": 1, "wed": 2, "thu": 3, "fri": 4, "sat": 5, "sun": 6}
_ONESHOT_RE = re.compile(r"^\s*(\d{4})-(\d{1,2})-(\d{1,2})\s+(\d{1,2}):(\d{1,2})\s*$")


# ---------------------------------------------------------------------------
# Calendar
# ---------------------------------------------------------------------------


@dataclass(frozen=True)
class Periodical:
    """A weekly period: ``[begin, begin + duration)`` seconds after Monday 00:00."""

    begin: int
    duration: int
    rules_id: int
    spec: str

    @property
    def end(self) -> int:
        return self.begin + self.duration


@dataclass(frozen=True)
class Oneshot:
    """A dated period ``[begin, end)`` (epoch seconds) overriding the periodicals."""

    begin: int
    end: int
    rules_id: int
    description: str = ""


class Calendar:
    """The temporal quotas calendar: which rule set applies when.

    ``periodicals`` must tile parts of the week without overlapping (gaps get
    ``gap_rules_id``); ``oneshots`` are sorted by begin here.
    """

    def __init__(
        self,
        periodicals: Sequence[Periodical],
        oneshots: Sequence[Oneshot],
        rule_set_names: Sequence[str],
        *,
        period: int = DEFAULT_QUOTAS_PERIOD,
        window_time_limit: int = DEFAULT_WINDOW_TIME_LIMIT,
        tz: _dt.tzinfo | None = None,
        gap_rules_id: int | None = None,
    ) -> None:
        self.periodicals: list[Periodical] = sorted(periodicals, key=lambda p: p.begin)
        self.oneshots: list[Oneshot] = sorted(oneshots, key=lambda o: o.begin)
        self.rule_set_names: list[str] = list(rule_set_names)
        self.period = int(period)
        self.window_time_limit = int(window_time_limit)
        self.tz = tz
        self.gap_rules_id = len(self.rule_set_names) if gap_rules_id is None else gap_rules_id
        self.period_end = 0
        """Horizon of the last :meth:`rules_at` call (OAR3's ``period_end``)."""

    # -- time -------------------------------------------------------------

    def week_origin(self, t: int) -> int:
        """Epoch of the local Monday 00:00 of the week containing ``t``."""
        if self.tz is None:
            day = _dt.datetime.fromtimestamp(t).date()
            monday = day - _dt.timedelta(days=day.weekday())
            return int(_dt.datetime.combine(monday, _dt.time.min).timestamp())
        day = _dt.datetime.fromtimestamp(t, self.tz).date()
        monday = day - _dt.timedelta(days=day.weekday())
        return int(_dt.datetime.combine(monday, _dt.time.min, tzinfo=self.tz).timestamp())

    def horizon(self, t: int) -> int:
        """How far the calendar is unrolled from ``t``: its week's Monday 00:00 + the period."""
        return self.week_origin(t) + self.period

    # -- rules ------------------------------------------------------------

    def rules_at(self, t: int) -> tuple[int, int]:
        """``(rules_id, remaining)``: the period containing ``t`` and the seconds left in it (> 0).

        Also records ``period_end = horizon(t)`` for :meth:`next_rules`.
        """
        origin = self.week_origin(t)
        self.period_end = origin + self.period
        rules_id, remaining = self._periodical_at(t, origin)
        return self._apply_oneshots(t, rules_id, remaining)

    def next_rules(self, t: int, horizon: int | None = None) -> tuple[int | None, int]:
        """``(rules_id, duration)`` of the period starting at ``t`` (a period end),
        ``(None, 0)`` once ``t`` reaches the horizon (``period_end`` by default)."""
        if t >= (self.period_end if horizon is None else horizon):
            return (None, 0)
        rules_id, remaining = self._periodical_at(t, self.week_origin(t))
        return self._apply_oneshots(t, rules_id, remaining)

    def segments(self, begin: int, end: int) -> list[tuple[int, int, int]]:
        """Pieces ``(b, e, rules_id)`` (inclusive ends) of a slot ``[begin, end]``.

        As OAR3's ``temporal_quotas_split_slot``: from the period containing
        ``begin``, period after period, until ``end`` or until a period would
        start at or after ``horizon(begin)``; then ``[last e + 1, end]`` is
        left unassigned (rules id -1).
        """
        horizon = self.horizon(begin)
        rules_id, remaining = self.rules_at(begin)
        pieces: list[tuple[int, int, int]] = []
        b = begin
        while True:
            if end - b + 1 <= remaining:
                pieces.append((b, end, rules_id))
                return pieces
            pieces.append((b, b + remaining - 1, rules_id))
            b += remaining
            next_id, remaining = self.next_rules(b, horizon)
            if next_id is None:
                return pieces
            rules_id = next_id

    def window_limit_reached(self, left_begin: int, right_end: int, job_end: int, now: int) -> bool:
        """Corrected ``QUOTAS_WINDOW_TIME_LIMIT`` test for a window ``L..R``; True: give up the job.

        OAR3: ``R.e > L.b + limit``, kept as is while ``R`` is bounded.  When
        ``R`` is the open-ended tail (``R.e >= OPEN_END``, OAR3 always gives up
        there), the job is given up only if it would end after
        ``now + limit`` (``job_end = L.b + W - 1``), so jobs can be placed past
        the unrolled calendar but the search stays bounded.
        """
        if right_end >= OPEN_END:
            return job_end > now + self.window_time_limit
        return right_end > left_begin + self.window_time_limit

    # -- internals ----------------------------------------------------------

    def _periodical_at(self, t: int, origin: int) -> tuple[int, int]:
        """Rules id and time left of the periodical containing ``t`` (in a gap: the default rules).

        Offsets count seconds from the local Monday 00:00 ``origin``.  A week
        where the clock goes back is one hour longer than :data:`WEEK`: its last
        hour belongs to the period that ends the week.
        """
        offset = t - origin
        if offset >= WEEK:
            rules_id, _ = self._periodical_at(origin + WEEK - 1, origin)
            next_origin = self.week_origin(origin + WEEK + 2 * 3600)
            return rules_id, max(next_origin - t, 1)
        next_begin = WEEK
        for p in self.periodicals:
            if p.begin <= offset < p.end:
                return p.rules_id, p.end - offset
            if p.begin > offset:
                next_begin = p.begin
                break
        return self.gap_rules_id, next_begin - offset

    def _apply_oneshots(self, t: int, rules_id: int, remaining: int) -> tuple[int, int]:
        """OAR3's ``oneshot_at``: a oneshot containing ``t`` overrides; one starting
        before the end of the current period cuts it.  The first such oneshot (by
        begin) decides.

        A oneshot covers ``[begin, end)``.  OAR3 tests ``begin <= t <= end``
        and, at ``t == end``, stops there with nothing to apply, so a oneshot
        starting exactly where an earlier one ends is missed (entirely, when it
        is shorter than the period around it); here that earlier one is skipped.
        """
        for o in self.oneshots:
            if o.begin <= t < o.end:
                return o.rules_id, o.end - t
            if t < o.begin < t + remaining:
                return rules_id, o.begin - t
        return rules_id, remaining


def parse_calendar(
    rules: Mapping[str, Any],
    names: Sequence[str],
    *,
    period: int,
    window_time_limit: int,
    tz: _dt.tzinfo | None,
) -> Calendar:
    ids = {name: i for i, name in enumerate(names)}
    periodicals: list[Periodical] = []
    default_id: int | None = None
    for i, entry in enumerate(rules.get("periodical", [])):
        spec, name = entry[0], entry[1]
        where = f'"periodical" entry {i} {json.dumps(spec)}'
        if not isinstance(spec, str):
            raise ConfigError(f"quotas rules: {where}: the period spec must be a string")
        if spec in _DEFAULT_SPECS:
            default_id = ids[name]
        else:
            periodicals.extend(_parse_periodical(spec, ids[name], where))
    periodicals.sort(key=lambda p: p.begin)
    _check_no_overlap(periodicals)
    if default_id is not None:
        periodicals = _fill_gaps(periodicals, default_id)
    oneshots = [
        _parse_oneshot(entry, ids[entry[2]], i, tz)
        for i, entry in enumerate(rules.get("oneshot", []))
    ]
    return Calendar(
        periodicals, oneshots, names, period=period, window_time_limit=window_time_limit, tz=tz
    )


def _parse_periodical(spec: str, rules_id: int, where: str) -> list[Periodical]:
    """``"HH:MM-HH:MM days * *"`` -> week entries (an entry crossing Sunday 24:00 is cut)."""
    fields = spec.split()
    if len(fields) != 4:
        raise ConfigError(f'quotas rules: {where}: expected 4 fields "hours days mday month"')
    hours, days, mday, month = fields
    if mday != "*" or month != "*":
        raise ConfigError(
            f"quotas rules: {where}: only '*' is supported for day of month and month"
        )
    whole_day = hours == "*"
    begin, duration = (0, DAY) if whole_day else _parse_hour_range(hours, where)
    starts, duration = _parse_days(days, whole_day, duration, where)
    entries: list[Periodical] = []
    for day in starts:
        start = day * DAY + begin
        overflow = start + duration - WEEK
        if overflow > 0:
            entries.append(Periodical(0, overflow, rules_id, spec))
            entries.append(Periodical(start, duration - overflow, rules_id, spec))
        else:
            entries.append(Periodical(start, duration, rules_id, spec))
    return entries


def _parse_hour_range(text: str, where: str) -> tuple[int, int]:
    """``"08:00-19:00"`` -> (begin, duration) in seconds; an end of 00:00 is midnight."""
    parts = text.split("-")
    if len(parts) != 2:
        raise ConfigError(f"quotas rules: {where}: bad hour range {text!r} (expected HH:MM-HH:MM)")
    begin = _parse_clock(parts[0], where)
    end = _parse_clock(parts[1], where)
    if end == 0:
        end = DAY
    if begin >= DAY or end > DAY:
        raise ConfigError(f"quotas rules: {where}: hours must lie within 00:00-24:00 in {text!r}")
    if end < begin:
        raise ConfigError(
            f"quotas rules: {where}: hour range {text!r} ends before it begins "
            "(split an overnight range in two entries, e.g. 19:00-00:00 and 00:00-08:00 "
            "of the next days)"
        )
    if end == begin:
        raise ConfigError(f"quotas rules: {where}: empty hour range {text!r}")
    return begin, end - begin


def _parse_clock(text: str, where: str) -> int:
    """OAR3's ``hms_str_to_duration``: ``H``, ``H:M`` or ``H:M:S`` -> seconds."""
    parts = text.split(":")
    if not 1 <= len(parts) <= 3 or not all(p.strip().isdigit() for p in parts):
        raise ConfigError(f"quotas rules: {where}: bad time of day {text!r} (expected HH:MM)")
    scale = (3600, 60, 1)
    return sum(int(p) * s for p, s in zip(parts, scale))


def _parse_days(text: str, whole_day: bool, duration: int, where: str) -> tuple[list[int], int]:
    """Start days of the entries and their duration (a whole-day range is one long entry)."""
    if text == "*":
        return list(range(7)), duration
    if "-" in text:
        parts = text.split("-")
        if len(parts) != 2:
            raise ConfigError(f"quotas rules: {where}: bad day range {text!r}")
        first, last = (_weekday(d, where) for d in parts)
        if whole_day:
            if first > last:
                last += 7
            return [first], DAY * (last - first + 1)
        if first > last:
            raise ConfigError(
                f"quotas rules: {where}: day range {text!r} wraps around the week "
                "with explicit hours "
                "(OAR3 ignores such an entry); split it, e.g. fri-sun and mon"
            )
        return list(range(first, last + 1)), duration
    return [_weekday(d, where) for d in text.split(",")], duration


def _weekday(name: str, where: str) -> int:
    if name not in _WEEKDAYS:
        raise ConfigError(
            f"quotas rules: {where}: unknown day {name!r} (expected mon, tue, ..., sun)"
        )
    return _WEEKDAYS[name]


def _check_no_overlap(periodicals: Sequence[Periodical]) -> None:
    for previous, current in itertools.pairwise(periodicals):
        if current.begin < previous.end:
            raise ConfigError(
                f'quotas rules: "periodical": {current.spec!r} overlaps {previous.spec!r} '
                f"(week offsets {current.begin} < {previous.end})"
            )


def _fill_gaps(periodicals: Sequence[Periodical], default_id: int) -> list[Periodical]:
    """OAR3's ``"* * * *"``: every uncovered part of the week gets the default entry's rules."""
    filled: list[Periodical] = []
    t = 0
    for p in periodicals:
        if p.begin != t:
            filled.append(Periodical(t, p.begin - t, default_id, "* * * *"))
        filled.append(p)
        t = p.end
    if t != WEEK:
        filled.append(Periodical(t, WEEK - t, default_id, "* * * *"))
    return filled


def _parse_oneshot(entry: list, rules_id: int, index: int, tz: _dt.tzinfo | None) -> Oneshot:
    where = f'"oneshot" entry {index} {json.dumps(entry)}'
    begin = _parse_local_minute(entry[0], where, tz)
    end = _parse_local_minute(entry[1], where, tz)
    if end < begin:
        raise ConfigError(f"quotas rules: {where}: ends before it begins")
    description = entry[3] if len(entry) > 3 else ""
    return Oneshot(begin, end, rules_id, str(description))


def _parse_local_minute(text: Any, where: str, tz: _dt.tzinfo | None) -> int:
    """``"YYYY-MM-DD hh:mm"`` in local time -> epoch seconds (OAR3: ``time.mktime``)."""
    m = _ONESHOT_RE.match(text) if isinstance(text, str) else None
    if m is None:
        raise ConfigError(
            f'quotas rules: {where}: bad date {json.dumps(text)} (expected "YYYY-MM-DD hh:mm")'
        )
    year, month, day, hour, minute = (int(g) for g in m.groups())
    try:
        moment = _dt.datetime(year, month, day, hour, minute)
    except ValueError as e:
        raise ConfigError(f"quotas rules: {where}: bad date {text!r}: {e}") from None
    if tz is None:
        return int(_time.mktime(moment.timetuple()))
    return int(moment.replace(tzinfo=tz).timestamp())
