"""The platform: resources in scheduling order and their hierarchy.

The engine addresses resources by *order index* (OAR's roid): the position of
the resource in the platform's resource order (OAR3's
``SCHEDULER_RESOURCE_ORDER``).  Resource ids (``resources.resource_id``) only
appear at the edges: in requests' constraints coming from properties, and in
the decisions written back.

A hierarchy level (``switch``, ``network_address``, ``cpu``, ``core``,
``resource_id``...) groups the schedulable resources by the value of that
column; each group is a *block*, and blocks are listed in the order of their
first resource.  ``resource_id`` always gives one singleton block per resource.
"""
from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any, Iterable, Mapping, Sequence

import numpy as np

from oarsched._core import slotset as _slotset
from oarsched.errors import PlatformError

MAX_TIME: int = _slotset.MAX_TIME
"""End of the scheduling horizon (OAR3's MAX_TIME), the end of every slot set."""

DEFAULT_AVAILABLE_UPTO = 2**31 - 1

SCHEDULABLE_STATES = ("Alive", "Absent")
RESOURCE_STATES = ("Alive", "Absent", "Suspected", "Dead")


@dataclass
class Resource:
    """One resource (a row of OAR's ``resources`` table).

    ``properties`` holds every other column: hierarchy labels such as
    ``network_address`` or ``cpu`` and any site property used in constraints.
    """

    id: int
    state: str = "Alive"
    type: str = "default"
    available_upto: int = DEFAULT_AVAILABLE_UPTO
    properties: dict[str, Any] = field(default_factory=dict)

    def value(self, column: str) -> Any:
        """The value of a column, OAR-style (``resource_id``/``id`` is the id)."""
        if column in ("resource_id", "id"):
            return self.id
        if column == "state":
            return self.state
        if column == "type":
            return self.type
        if column == "available_upto":
            return self.available_upto
        return self.properties.get(column)


class Platform:
    """Resources in scheduling order, with their hierarchy levels.

    Parameters
    ----------
    resources:
        The resources, already in scheduling order (index = order index).
    hierarchy_labels:
        The hierarchy levels the jobs may request (OAR's ``HIERARCHY_LABELS``).
    suspendable_types:
        Resource types that suspended jobs give back
        (``SCHEDULER_AVAILABLE_SUSPENDED_RESOURCE_TYPE``).
    """

    def __init__(
        self,
        resources: Sequence[Resource],
        hierarchy_labels: Iterable[str] = ("resource_id", "network_address"),
        suspendable_types: Iterable[str] = ("default",),
    ) -> None:
        self.resources: list[Resource] = list(resources)
        self.hierarchy_labels: list[str] = [lbl.strip() for lbl in hierarchy_labels if lbl.strip()]
        n = len(self.resources)
        self.size = n
        self.rids = np.array([r.id for r in self.resources], dtype=np.int64)
        self._rid_order = np.argsort(self.rids, kind="stable")  # for id -> order index look-ups
        self._sorted_rids = self.rids[self._rid_order]
        self.roid_of: dict[int, int] = {}
        for roid, r in enumerate(self.resources):
            if r.state not in RESOURCE_STATES:
                raise PlatformError(f"resource {r.id}: unknown state {r.state!r}")
            if r.id in self.roid_of:
                raise PlatformError(f"resource {r.id}: duplicated resource id")
            self.roid_of[r.id] = roid
        self.schedulable = np.array([r.state in SCHEDULABLE_STATES for r in self.resources], dtype=bool)
        self.absent = np.array([r.state == "Absent" for r in self.resources], dtype=bool)
        self.default_type = np.array([r.type == "default" for r in self.resources], dtype=bool) & self.schedulable
        suspend = set(suspendable_types)
        self.suspendable = np.array([r.type in suspend for r in self.resources], dtype=bool) & self.schedulable
        self.nb_default_not_dead = sum(1 for r in self.resources if r.state != "Dead" and r.type == "default")
        self.nb_not_dead = sum(1 for r in self.resources if r.state != "Dead")
        self._block_ids: dict[str, np.ndarray] = {}
        self._levels: dict[str, list[np.ndarray]] = {}
        for label in self.hierarchy_labels:
            self._block_ids[label] = self._group_blocks(label)

    # -- construction helpers -------------------------------------------------
    @classmethod
    def from_hierarchy(
        cls,
        levels: Mapping[str, int] | Sequence[tuple[str, int]],
        *,
        leaf: str = "core",
        first_id: int = 1,
        properties: Mapping[str, Any] | None = None,
    ) -> "Platform":
        """A regular platform: ``{"switch": 2, "network_address": 4, "cpu": 2, "core": 8}``
        means 2 switches of 4 nodes of 2 cpus of 8 cores (128 resources).

        Each level's values are numbered globally (``network_address`` gets
        ``node-1``... , others integers); the leaf level is one resource.
        """
        items = list(levels.items()) if isinstance(levels, Mapping) else list(levels)
        if not items:
            raise PlatformError("from_hierarchy needs at least one level")
        counts = [int(n) for _, n in items]
        if any(c <= 0 for c in counts):
            raise PlatformError("every level count must be positive")
        total = int(np.prod(counts))
        resources = []
        for i in range(total):
            props: dict[str, Any] = dict(properties or {})
            rem, div = i, total
            for label, c in items:
                div //= c
                idx = i // div  # global block index at this level
                props[label] = f"node-{idx + 1}" if label in ("network_address", "host") else idx + 1
                rem %= div
            resources.append(Resource(id=first_id + i, properties=props))
        labels = ["resource_id"] + [label for label, _ in items if label != "resource_id"]
        if leaf not in labels:
            labels.append(leaf)
        return cls(resources, labels)

    # -- queries ---------------------------------------------------------------
    def _group_blocks(self, label: str) -> np.ndarray:
        """Block id of each order index for a level (-1: not schedulable), ids in order of first appearance."""
        ids = np.full(self.size, -1, dtype=np.int64)
        if label in ("resource_id", "id"):  # one block per schedulable resource, in order
            roids = np.nonzero(self.schedulable)[0]
            ids[roids] = np.arange(roids.shape[0])
            return ids
        missing = _MISSING
        if label in ("state", "type", "available_upto"):
            values = [r.value(label) for r in self.resources]
        else:
            values = [r.properties.get(label, missing) for r in self.resources]
        seen: dict[Any, int] = {}
        schedulable = self.schedulable.tolist()
        for roid, key in enumerate(values):
            if not schedulable[roid]:
                continue
            if key is missing:
                raise PlatformError(f"resource {self.resources[roid].id}: no column {label!r} for hierarchy label {label!r}")
            try:
                block = seen.get(key)
            except TypeError:  # an unhashable value
                key = repr(key)
                block = seen.get(key)
            if block is None:
                block = seen[key] = len(seen)
            ids[roid] = block
        return ids

    def block_ids(self, label: str) -> np.ndarray:
        """Block id of every order index at a hierarchy level (-1 for resources not schedulable)."""
        try:
            return self._block_ids[label]
        except KeyError:
            raise PlatformError(f"unknown hierarchy level {label!r} (HIERARCHY_LABELS: {','.join(self.hierarchy_labels)})") from None

    def level(self, label: str) -> list[np.ndarray]:
        """The blocks (arrays of order indices) of a hierarchy level, in block order."""
        if label not in self._levels:
            ids = self.block_ids(label)
            roids = np.nonzero(ids >= 0)[0]
            order = np.argsort(ids[roids], kind="stable")
            sorted_roids, sorted_ids = roids[order], ids[roids][order]
            cuts = np.nonzero(np.diff(sorted_ids))[0] + 1
            self._levels[label] = [a.astype(np.int64) for a in np.split(sorted_roids, cuts)] if roids.size else []
        return self._levels[label]

    def has_level(self, label: str) -> bool:
        return label in self._block_ids

    def roids(self, rids: Iterable[int], *, schedulable_only: bool = True) -> np.ndarray:
        """Order indices of resource ids, sorted; unknown ids (and, by default, non-schedulable ones) are dropped."""
        wanted = (rids.astype(np.int64, copy=False) if isinstance(rids, np.ndarray)
                  else np.fromiter((int(r) for r in rids), dtype=np.int64))
        if wanted.size == 0 or self.size == 0:
            return np.zeros(0, dtype=np.int64)
        pos = np.searchsorted(self._sorted_rids, wanted)
        pos[pos == self.size] = 0
        found = pos[self._sorted_rids[pos] == wanted]
        out = self._rid_order[found]
        if schedulable_only:
            out = out[self.schedulable[out]]
        return np.sort(out).astype(np.int64)

    def resource_ids(self, roids: Iterable[int]) -> list[int]:
        """Resource ids of order indices, in order-index order (as OAR writes them)."""
        return [int(self.rids[i]) for i in sorted(roids)]

    def __len__(self) -> int:
        return self.size

    def __repr__(self) -> str:
        levels = ", ".join(f"{lbl}:{int(b.max()) + 1 if b.size else 0}" for lbl, b in self._block_ids.items())
        return f"<Platform {self.size} resources; levels {levels}>"


_MISSING = object()
"""A column a resource does not have (distinct from a NULL value)."""
