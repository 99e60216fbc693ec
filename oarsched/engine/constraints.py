"""Which resources a resource group may use: OAR3's rule over property expressions.

With no property at all (or the group property ``type = 'default'``, OAR3's
fast path), a group may use the schedulable resources of type ``default``;
otherwise every schedulable resource the job's and the group's expressions
both select, whatever its type.  Resources that are not schedulable (Dead,
Suspected) are never available, even when an expression names them.
"""
from __future__ import annotations

from typing import Callable, Iterable

import numpy as np

from oarsched._core import bitset
from oarsched.errors import JobError, PropertyError
from oarsched.model import properties
from oarsched.model.job import Job, ResourceGroup
from oarsched.model.platform import Platform

DEFAULT_TYPE_PROPERTY = "type = 'default'"

Selector = Callable[[properties.Expr | None], Iterable[int]]
"""Resource ids an expression selects (in memory, or by the database)."""


class GivenUp(JobError):
    """A job whose placement ran out of the round's time: given up for this round, not malformed."""


class GroupConstraints:
    """Constraint sets (bitsets) of resource groups, cached per (job, group) property text.

    ``should_stop``: asked before each expression not seen yet (parsing and
    evaluating one may take a second: a job with many long ones could hold a
    round far past its deadline); once it says True, the job being placed
    is given up for this round (:class:`GivenUp`, its id in :attr:`given_up`).
    """

    def __init__(self, platform: Platform, select: Selector | None = None,
                 should_stop: Callable[[], bool] | None = None) -> None:
        self.platform = platform
        self.default_set = bitset.from_mask(platform.default_type)
        self._select = select or self._select_in_memory
        self._cache: dict[tuple[str, str], np.ndarray] = {}
        self.should_stop = should_stop
        self.given_up: set[int] = set()

    def _select_in_memory(self, expr: properties.Expr | None) -> list[int]:
        positions = properties.select_resources(expr, self.platform.resources)
        return [self.platform.resources[i].id for i in positions]

    def __call__(self, job: Job, group: ResourceGroup) -> np.ndarray:
        key = (job.properties or "", group.property or "")
        hit = self._cache.get(key)
        if hit is not None:
            return hit
        if not key[0] and key[1] in ("", DEFAULT_TYPE_PROPERTY):
            result = self.default_set
        else:
            if self.should_stop is not None and self.should_stop():
                self.given_up.add(job.id)
                raise GivenUp(job.id, "given up for this round: its property expressions were still being "
                                      "evaluated when the round's time budget ran out")
            try:
                # the AND of both expressions as written (OAR3 pastes the texts, see docs/differences)
                expr = properties.combine(key[0], key[1], oar_precedence=False)
                rids = self._select(expr)
            except PropertyError as exc:
                raise JobError(job.id, f"bad property expression: {exc}") from None
            result = bitset.from_indices(self.platform.roids(rids), self.platform.size)
        self._cache[key] = result
        return result
