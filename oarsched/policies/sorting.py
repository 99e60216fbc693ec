"""Waiting-job orderings of OAR3's kamelot: FIFO, FAIRSHARE (karma), MULTIFACTOR, CUSTOM.

Everything here works on plain data (``Job`` objects, :class:`AccountingRow`
tuples and :class:`SortingSettings`, which :meth:`OarConfig.sorting_settings
<oarsched.oar.config.OarConfig.sorting_settings>` builds from oar.conf); the
accounting rows are read by the adapter (:meth:`oarsched.oar.db.OarDatabase.read_accounting`).

The arithmetic is OAR3's (``oar/kao/karma.py``, ``oar/kao/multifactor_priority.py``),
with the same operation order, so a karma is the very float OAR3 computes (it
ends up in ``jobs.message`` as ``(Karma=<repr>)`` and in ``jobs.last_karma``).

**Karma** of a job (all sums over ``accounting`` rows of the scheduled queues
whose ``window_start >= now - SCHEDULER_FAIRSHARING_WINDOW_SIZE``)::

    karma = Cp * (used[project] / USED - tgt_project / 100.0)
          + Cu * (used[user]    / USED - tgt_user / 100.0)
          + Ca * (asked[user]   / ASKED - tgt_user / 100.0)

``USED``/``ASKED`` and ``used[project]`` count rows with ``window_stop < now``;
``used[user]``/``asked[user]`` rows with ``window_stop <= now`` (OAR3's bounds,
kept: trap T15).  A missing total is 1; a missing per-project/user sum is 0; a
target is the job's exact project/user key in the Perl hash (``default`` is
not a fallback), else 0.  Jobs are sorted by ascending karma, ties in job-id
order.

Deliberate differences from OAR3 (its crashes fixed, documented choices):

* user targets: OAR3 divides the *string* read from the hash by 100 (TypeError
  as soon as a job's user has a target); here targets are floats divided by
  100 once, as OAR3 intends;
* a consumption total of 0 (OAR3: ZeroDivisionError) is treated like a missing
  one (1), with a warning; rows with a NULL consumption are skipped (as SQL
  ``SUM`` does; a group of NULLs only counts as missing);
* MULTIFACTOR without ``PRIORITY_CONF_FILE`` (OAR3: KeyError), with an
  unreadable or malformed file (OAR3: NameError) or a non-numeric weight:
  :class:`~oarsched.errors.ConfigError`; an empty file means all weights 0;
* MULTIFACTOR ``work``/``size``/``qos``/``nice`` terms: OAR3 reads job
  attributes that are never set (AttributeError when their weight is > 0).
  They are ignored here, with a warning, so the order is OAR3's whenever OAR3
  does not crash;
* MULTIFACTOR karma factor ``1 / (1 + karma)``: OAR3 computes it even with a
  zero weight and crashes for ``karma == -1``; here a zero weight skips it and
  ``karma == -1`` gives an infinite factor (its limit from above), with a warning;
* CUSTOM: an unknown plugin name is a ConfigError (OAR3: TypeError); a plugin
  that raises falls back to FIFO and ids it drops are appended in FIFO order
  (OAR3 then crashes in ``save_assigns``), both logged.
"""
from __future__ import annotations

import logging
import math
from collections.abc import Iterable, Mapping, Sequence
from dataclasses import dataclass, field
from importlib.metadata import entry_points
from numbers import Real
from typing import Any, Callable, Protocol, TypeGuard

from oarsched.errors import ConfigError
from oarsched.model.job import Job

__all__ = [
    "AccountingRow",
    "CUSTOM_SORTING_GROUP",
    "PriorityWeights",
    "SortingConfig",
    "SortingSettings",
    "compute_karma",
    "fifo_order",
    "karma_window_start",
    "load_priority_weights",
    "needs_accounting",
    "order_jobs",
    "sort_fairshare",
    "sort_multifactor",
]

logger = logging.getLogger("oarsched.sorting")

#: Entry-point group of CUSTOM sorting plugins (OAR3's name).
CUSTOM_SORTING_GROUP = "oar.jobs_sorting_func"

ASKED, USED = "ASKED", "USED"


@dataclass(frozen=True)
class AccountingRow:
    """One row of OAR's ``accounting`` table (``accounting_user``/``accounting_project`` renamed)."""

    window_start: int
    window_stop: int
    user: str
    project: str
    queue: str
    consumption_type: str
    consumption: int


class SortingConfig(Protocol):
    """What the orderings read (``oar.conf`` keys in the names); :class:`SortingSettings` or an ``OarConfig``."""

    @property
    def job_priority(self) -> str: ...
    @property
    def fairsharing_window_size(self) -> int: ...
    @property
    def fairsharing_project_targets(self) -> Mapping[str, float]: ...
    @property
    def fairsharing_user_targets(self) -> Mapping[str, float]: ...
    @property
    def fairsharing_coef_project(self) -> float: ...
    @property
    def fairsharing_coef_user(self) -> float: ...
    @property
    def fairsharing_coef_user_ask(self) -> float: ...
    @property
    def priority_conf_file(self) -> str | None: ...
    @property
    def custom_job_sorting(self) -> str: ...
    @property
    def custom_job_sorting_config(self) -> str: ...
    @property
    def path(self) -> str | None: ...


@dataclass(frozen=True)
class SortingSettings:
    """The ordering's settings: ``JOB_PRIORITY`` and the keys it reads (OAR3's defaults).

    Built from oar.conf by :meth:`oarsched.oar.config.OarConfig.sorting_settings`.
    """

    job_priority: str = "FIFO"
    fairsharing_window_size: int = 30 * 24 * 3600
    fairsharing_project_targets: Mapping[str, float] = field(default_factory=lambda: {"default": 21.0})
    fairsharing_user_targets: Mapping[str, float] = field(default_factory=lambda: {"default": 22.0})
    fairsharing_coef_project: float = 0.0
    fairsharing_coef_user: float = 1.0
    fairsharing_coef_user_ask: float = 1.0
    priority_conf_file: str | None = None
    """MULTIFACTOR weights (YAML)."""
    custom_job_sorting: str = ""
    """CUSTOM: entry-point name in group ``oar.jobs_sorting_func``."""
    custom_job_sorting_config: str = "{}"
    path: str | None = None
    """The configuration file these come from (for messages)."""


# ------------------------------------------------------------------------ helpers

def fifo_order(jobs: Iterable[Job]) -> list[int]:
    """Job ids in increasing id order (OAR3 reads waiting jobs ``ORDER BY job_id``)."""
    return sorted(job.id for job in jobs)


def _by_id(jobs: Iterable[Job]) -> dict[int, Job]:
    return {job.id: job for job in jobs}


def needs_accounting(config: SortingConfig) -> bool:
    """True when :func:`order_jobs` uses accounting rows for this configuration."""
    return config.job_priority in ("FAIRSHARE", "MULTIFACTOR")


def karma_window_start(now: int, config: SortingConfig) -> int:
    """First ``window_start`` taken into account: ``now - SCHEDULER_FAIRSHARING_WINDOW_SIZE``."""
    return now - config.fairsharing_window_size


# -------------------------------------------------------------------------- karma

def _sum_by(
    rows: Iterable[AccountingRow], key: Callable[[AccountingRow], Any]
) -> dict[tuple[Any, str], int]:
    """Sum of the non-NULL consumptions per ``(key(row), consumption_type)``."""
    sums: dict[tuple[Any, str], int] = {}
    for row in rows:
        if row.consumption is None:
            continue
        k = (key(row), row.consumption_type)
        sums[k] = sums.get(k, 0) + row.consumption
    return sums


def _total(sums: Mapping[tuple[Any, str], int], ctype: str) -> float | int:
    """OAR3's ``get_sum_accounting_window`` default: 1 when absent (and, fixed here, when 0)."""
    if (None, ctype) not in sums:
        return 1
    value = float(sums[(None, ctype)])
    if value == 0.0:
        logger.warning(
            "karma: total %s consumption of the window is 0, using 1 (OAR3 divides by zero)", ctype
        )
        return 1
    return value


def compute_karma(
    jobs: Iterable[Job],
    accounting: Sequence[AccountingRow],
    queues: Sequence[str],
    now: int,
    config: SortingConfig,
) -> dict[int, float]:
    """Karma of every job (OAR3's ``evaluate_jobs_karma``), keyed by job id.

    ``accounting`` may hold more rows than needed (e.g. other queues, a wider
    window): the queue and window filters of OAR3 are applied here.
    """
    window_start = karma_window_start(now, config)
    proj_targets = config.fairsharing_project_targets
    user_targets = config.fairsharing_user_targets
    coef_proj = config.fairsharing_coef_project
    coef_user = config.fairsharing_coef_user
    coef_user_ask = config.fairsharing_coef_user_ask

    queue_set = set(queues)
    rows = [r for r in accounting if r.queue in queue_set and r.window_start >= window_start]
    closed = [r for r in rows if r.window_stop < now]  # totals and projects: stop < now
    upto_now = [r for r in rows if r.window_stop <= now]  # users: stop <= now

    totals = _sum_by(closed, lambda r: None)
    sum_asked = _total(totals, ASKED)
    sum_used = _total(totals, USED)
    by_project = _sum_by(closed, lambda r: r.project)
    by_user = _sum_by(upto_now, lambda r: r.user)

    karma: dict[int, float] = {}
    for job in jobs:
        proj_used = float(by_project[(job.project, USED)]) if (job.project, USED) in by_project else 0.0
        user_used = float(by_user[(job.user, USED)]) if (job.user, USED) in by_user else 0.0
        user_asked = float(by_user[(job.user, ASKED)]) if (job.user, ASKED) in by_user else 0.0
        proj_target = proj_targets.get(job.project, 0.0)
        user_target = user_targets.get(job.user, 0.0)

        # Same expression shapes and order as OAR3 (the result must be bit-identical).
        project_part = coef_proj * ((proj_used / sum_used) - (proj_target / 100.0))
        user_part = coef_user * ((user_used / sum_used) - (user_target / 100.0))
        user_ask_part = coef_user_ask * ((user_asked / sum_asked) - (user_target / 100.0))
        karma[job.id] = project_part + user_part + user_ask_part
    return karma


def sort_fairshare(
    jobs: Iterable[Job],
    accounting: Sequence[AccountingRow],
    queues: Sequence[str],
    now: int,
    config: SortingConfig,
) -> tuple[list[int], dict[int, float]]:
    """FAIRSHARE: ids by ascending karma (stable: ties in id order), and the karma per id."""
    jobs = list(jobs)
    karma = compute_karma(jobs, accounting, queues, now, config)
    order = sorted(fifo_order(jobs), key=karma.__getitem__)
    return order, karma


# -------------------------------------------------------------------- multifactor

@dataclass(frozen=True)
class PriorityWeights:
    """MULTIFACTOR weights (``PRIORITY_CONF_FILE``), OAR3's defaults."""

    age_weight: float = 0
    age_coef: float = 1.65e-06
    queue_weight: float = 0
    queue_coefs: Mapping[str, float] = field(default_factory=dict)
    work_weight: float = 0
    work_mode: float = 0
    size_weight: float = 0
    size_mode: float = 0
    karma_weight: float = 0
    qos_weight: float = 0
    nice_weight: float = 0

    @classmethod
    def from_mapping(
        cls, data: Mapping[str, Any] | None, source: str = "priority weights"
    ) -> "PriorityWeights":
        """Validate a mapping (parsed YAML); numbers are kept as given (int or float).

        Unknown keys are logged and ignored; a non-numeric weight raises :class:`ConfigError`.
        """
        if data is None:
            logger.warning("%s: empty, every weight is 0", source)
            return cls()
        if not isinstance(data, Mapping):
            raise ConfigError(f"{source}: expected a mapping of weights, got {type(data).__name__}")
        names = {f for f in cls.__dataclass_fields__}
        kwargs: dict[str, Any] = {}
        for key, value in data.items():
            if key not in names:
                logger.warning("%s: unknown key %r ignored", source, key)
                continue
            if key == "queue_coefs":
                if value is None:
                    value = {}
                if not isinstance(value, Mapping):
                    raise ConfigError(f"{source}: queue_coefs must map queue names to numbers")
                for q, coef in value.items():
                    if not _is_number(coef):
                        raise ConfigError(f"{source}: queue_coefs[{q!r}] must be a number, got {coef!r}")
                kwargs[key] = {str(q): coef for q, coef in value.items()}
            else:
                if not _is_number(value):
                    raise ConfigError(f"{source}: {key} must be a number, got {value!r}")
                kwargs[key] = value
        return cls(**kwargs)


def _is_number(value: Any) -> TypeGuard[float]:
    return isinstance(value, Real) and not isinstance(value, bool)


def load_priority_weights(path: str) -> PriorityWeights:
    """Read MULTIFACTOR weights from a YAML (or JSON) file; ConfigError when unreadable or malformed."""
    import yaml

    try:
        with open(path, encoding="utf-8") as stream:
            data = yaml.safe_load(stream)
    except OSError as e:
        raise ConfigError(f"PRIORITY_CONF_FILE {path}: cannot read it: {e.strerror or e}") from e
    except yaml.YAMLError as e:
        raise ConfigError(f"PRIORITY_CONF_FILE {path}: not valid YAML: {e}") from e
    return PriorityWeights.from_mapping(data, source=f"PRIORITY_CONF_FILE {path}")


def _weights_for(
    config: SortingConfig, weights: Mapping[str, Any] | PriorityWeights | None
) -> PriorityWeights:
    if isinstance(weights, PriorityWeights):
        return weights
    if weights is not None:
        return PriorityWeights.from_mapping(weights)
    path = config.priority_conf_file
    if path is None:
        where = f" (in {config.path})" if config.path else ""
        raise ConfigError(f"JOB_PRIORITY=MULTIFACTOR needs PRIORITY_CONF_FILE{where}")
    return load_priority_weights(path)


def sort_multifactor(
    jobs: Iterable[Job],
    accounting: Sequence[AccountingRow],
    queues: Sequence[str],
    now: int,
    config: SortingConfig,
    weights: Mapping[str, Any] | PriorityWeights | None = None,
) -> tuple[list[int], dict[int, float]]:
    """MULTIFACTOR: ids by descending priority (stable: ties in id order), and the karma per id.

    ``priority = age_weight * max(1.0, age_coef * (now - submission_time))
    + queue_weight * queue_coefs[queue]`` (when ``queue_weight > 0`` and the
    queue has a coefficient) ``+ karma_weight * (1.0 / (1.0 + karma))``.
    ``weights`` default to the ``PRIORITY_CONF_FILE`` YAML.
    """
    w = _weights_for(config, weights)
    jobs = list(jobs)
    karma = compute_karma(jobs, accounting, queues, now, config)
    for name in ("work_weight", "size_weight", "qos_weight", "nice_weight"):
        if getattr(w, name) > 0.0:
            logger.warning("MULTIFACTOR: %s is not supported (OAR3 crashes on it), term ignored", name)

    priority: dict[int, float] = {}
    for job in jobs:
        p = w.age_weight * max(1.0, w.age_coef * (now - job.submission_time))
        if w.queue_weight > 0.0:
            if job.queue in w.queue_coefs:
                p += w.queue_weight * w.queue_coefs[job.queue]
            else:
                logger.warning(
                    "MULTIFACTOR: queue %r has no queue_coefs entry, queue term ignored", job.queue
                )
        k = karma[job.id]
        logger.debug("job %d karma %r", job.id, k)
        if w.karma_weight != 0:
            if 1.0 + k == 0.0:
                logger.warning("MULTIFACTOR: job %d has karma -1, its karma factor is infinite", job.id)
                factor = math.inf
            else:
                factor = 1.0 / (1.0 + k)
            p += w.karma_weight * factor
        priority[job.id] = p
    order = sorted(fifo_order(jobs), key=priority.__getitem__, reverse=True)
    return order, karma


# ------------------------------------------------------------------------- custom

def _find_custom_sorting(name: str) -> Callable[..., Any]:
    found = [ep for ep in entry_points(group=CUSTOM_SORTING_GROUP) if ep.name == name]
    if not found:
        available = sorted({ep.name for ep in entry_points(group=CUSTOM_SORTING_GROUP)})
        raise ConfigError(
            f"CUSTOM_JOB_SORTING={name!r}: no such entry point in group {CUSTOM_SORTING_GROUP!r}"
            f" (available: {', '.join(available) or 'none'})"
        )
    try:
        return found[0].load()
    except Exception as e:  # a broken plugin is an installation problem
        raise ConfigError(f"CUSTOM_JOB_SORTING={name!r}: cannot load {found[0].value}: {e}") from e


def _sort_custom(
    jobs: list[Job], queues: Sequence[str], now: int, config: SortingConfig
) -> tuple[list[int], dict[int, float]]:
    name = config.custom_job_sorting
    if not name:
        raise ConfigError("JOB_PRIORITY=CUSTOM needs CUSTOM_JOB_SORTING (an entry point name)")
    func = _find_custom_sorting(name)
    fifo = fifo_order(jobs)
    by_id = _by_id(jobs)
    try:
        # OAR3 passes (queues, now, waiting_ids, waiting_jobs, CUSTOM_JOB_SORTING_CONFIG, platform);
        # oarsched has no OAR3 Platform to give: the last argument is None.
        result = list(func(list(queues), now, list(fifo), by_id, config.custom_job_sorting_config, None))
    except Exception:
        logger.exception("CUSTOM_JOB_SORTING %r failed: FIFO order used", name)
        return fifo, {}

    order: list[int] = []
    seen: set[int] = set()
    for jid in result:
        if isinstance(jid, bool) or not isinstance(jid, int) or jid not in by_id:
            logger.warning("CUSTOM_JOB_SORTING %r returned %r, not a waiting job id: ignored", name, jid)
            continue
        if jid in seen:
            continue
        seen.add(jid)
        order.append(jid)
    missing = [jid for jid in fifo if jid not in seen]
    if missing:
        logger.warning(
            "CUSTOM_JOB_SORTING %r dropped jobs %s: appended in FIFO order",
            name,
            ", ".join(map(str, missing)),
        )
        order.extend(missing)
    # A plugin may set job.karma as OAR3's own sortings do; it is then reported like theirs.
    karma = {
        jid: float(k)
        for jid, job in by_id.items()
        if _is_number(k := getattr(job, "karma", None))
    }
    return order, karma


# ----------------------------------------------------------------------- dispatch

def order_jobs(
    jobs: Iterable[Job],
    accounting: Sequence[AccountingRow],
    queues: Sequence[str],
    now: int,
    config: SortingConfig,
) -> tuple[list[int], dict[int, float]]:
    """Order waiting jobs per ``JOB_PRIORITY`` (OAR3's ``kamelot.jobs_sorting``).

    Returns the ordered ids and the karma per id (empty for FIFO; CUSTOM: the
    ``karma`` attributes a plugin set).  ``accounting`` is only used by
    FAIRSHARE and MULTIFACTOR (see :func:`needs_accounting`).
    """
    jobs = list(jobs)
    priority = config.job_priority
    if priority == "FAIRSHARE":
        return sort_fairshare(jobs, accounting, queues, now, config)
    if priority == "MULTIFACTOR":
        return sort_multifactor(jobs, accounting, queues, now, config)
    if priority == "CUSTOM":
        return _sort_custom(jobs, queues, now, config)
    return fifo_order(jobs), {}
