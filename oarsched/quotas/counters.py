"""Quota counters of a slot, and the check of a job against the rules over a window of slots.

See :mod:`oarsched.quotas` for OAR3's behaviour.
"""
from __future__ import annotations

from collections.abc import Iterable, Iterator, Mapping, Sequence
from typing import TYPE_CHECKING, Protocol

if TYPE_CHECKING:
    from oarsched.quotas.rules import QuotasConfig, Rules

RuleKey = tuple[str, str, str, str]
"""``(queue, project, job_type, user)`` as written in the rules file."""

Limits = tuple[int, int, int]
"""``(max_resources, max_jobs, max_resource_seconds)``; negative = no limit."""

Count = tuple[int, int, int]
"""``(resources, jobs, resource_seconds)``."""

CheckResult = tuple[bool, str, RuleKey | None, int | None]

MSG_OK = "quotas ok"
MSG_RESOURCES = "nb resources quotas failed"
MSG_JOBS = "nb jobs quotas failed"
MSG_RESOURCE_TIME = "resources hours quotas failed"


class QuotaJob(Protocol):
    """What the quotas read of a job (attributes, read-only is enough)."""

    @property
    def queue(self) -> str: ...

    @property
    def project(self) -> str: ...

    @property
    def user(self) -> str: ...

    @property
    def types(self) -> Mapping[str, str]: ...


# ---------------------------------------------------------------------------
# Counters
# ---------------------------------------------------------------------------


class Counters:
    """Quota counters of one slot: ``{(queue, project, type, user): (res, jobs, res_seconds)}``."""

    __slots__ = ("_counts", "job_types")

    def __init__(
        self, job_types: Sequence[str] = ("*",), counts: Mapping[tuple, Count] | None = None
    ) -> None:
        self.job_types: tuple[str, ...] = tuple(job_types)
        self._counts: dict[tuple, Count] = dict(counts) if counts else {}

    def copy(self) -> Counters:
        """An independent copy (for a slot split)."""
        clone = Counters.__new__(Counters)
        clone.job_types = self.job_types
        clone._counts = self._counts.copy()
        return clone

    def update(self, job: QuotaJob, nb_res: int, walltime: int) -> None:
        """Count ``job`` (``nb_res`` default resources for ``walltime`` seconds) in this slot."""
        counts = self._counts
        work = nb_res * walltime
        for key in counted_keys(job, self.job_types):
            r, j, s = counts.get(key, (0, 0, 0))
            counts[key] = (r + nb_res, j + 1, s + work)

    def get(self, key: tuple) -> Count | None:
        """The counter of ``key``, None when no job touched it."""
        return self._counts.get(key)

    def items(self) -> Iterable[tuple[tuple, Count]]:
        return self._counts.items()

    def __len__(self) -> int:
        return len(self._counts)

    def __eq__(self, other: object) -> bool:
        return isinstance(other, Counters) and other._counts == self._counts

    def __repr__(self) -> str:
        return f"Counters({self._counts!r})"


def counted_keys(job: QuotaJob, job_types: Sequence[str]) -> Iterator[tuple]:
    """The keys OAR3's ``Quotas.update`` increments for ``job``, with repetitions."""
    queue, project, user, types = job.queue, job.project, job.user, job.types
    for t in job_types:
        if t == "*" or t in types:
            for q in (queue, "*"):
                for p in (project, "*"):
                    for u in (user, "*"):
                        yield (q, p, t, u)


# ---------------------------------------------------------------------------
# Window check
# ---------------------------------------------------------------------------


def check_window(
    config: QuotasConfig,
    window: Sequence[tuple[int, Counters]],
    job: QuotaJob,
    nb_res: int,
    walltime: int,
) -> CheckResult:
    """Check whether ``job`` fits the quotas over a window (OAR3's ``check_slots_quotas``).

    ``window`` lists ``(rules_id, counters)`` for each slot ``L..R`` in time
    order; ``nb_res`` is the number of default-type resources the job would
    get and ``walltime`` its walltime with the security time.  Returns
    ``(True, "quotas ok", None, None)`` or ``(False, message, rule_key,
    limit)`` for the first group of slots (by rules id, in order of first
    appearance) whose rule is exceeded.
    """
    if not window:
        raise ValueError("check_window needs at least one slot")
    groups: dict[int, list[Counters]] = {}
    for rules_id, counters in window:
        groups.setdefault(rules_id, []).append(counters)
    for rules_id, slots in groups.items():
        result = _check_group(
            config.slot_rules(rules_id), slots, config.job_types, job, nb_res, walltime
        )
        if not result[0]:
            return result
    return (True, MSG_OK, None, None)


def _check_group(
    rules: Rules,
    slots: Sequence[Counters],
    job_types: Sequence[str],
    job: QuotaJob,
    nb_res: int,
    walltime: int,
) -> CheckResult:
    """Check one group of slots sharing a rule set."""
    limits, rule_key, counter_key = rules.find(job)
    if limits is None:
        return (True, MSG_OK, None, None)
    count = combined_count(slots, counter_key)
    repeats = sum(1 for key in counted_keys(job, job_types) if key == counter_key)
    if repeats:
        r, j, s = count or (0, 0, 0)
        count = (r + repeats * nb_res, j + repeats, s + repeats * nb_res * walltime)
    if count is None:  # a counter nobody touched (e.g. a type not in job_types)
        return (True, MSG_OK, None, None)
    return compare_limits(limits, count, rule_key)


def combined_count(slots: Sequence[Counters], key: tuple) -> Count | None:
    """Counters of ``key`` over slots: max of resources and jobs, sum of resource-seconds."""
    combined: Count | None = None
    for counters in slots:
        value = counters.get(key)
        if value is None:
            continue
        if combined is None:
            combined = value
        else:
            combined = (
                max(combined[0], value[0]),
                max(combined[1], value[1]),
                combined[2] + value[2],
            )
    return combined


def compare_limits(limits: Limits, count: Count, rule_key: RuleKey | None) -> CheckResult:
    """OAR3's test: fail when ``limit > -1 and limit < counter``."""
    for limit, value, message in zip(limits, count, (MSG_RESOURCES, MSG_JOBS, MSG_RESOURCE_TIME)):
        if limit > -1 and limit < value:
            return (False, message, rule_key, limit)
    return (True, MSG_OK, None, None)
