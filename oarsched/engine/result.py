"""What goes in and comes out of a round: the jobs already placed, the decisions."""
from __future__ import annotations

from dataclasses import dataclass, field
from typing import Sequence

import numpy as np

from oarsched._core import bitset


@dataclass
class ScheduledJob:
    """A job already in the gantt: running, an accepted reservation, or placed by a higher-priority queue.

    ``walltime`` is the moldable's walltime as stored (the engine adds the job
    security time and ``suspended_time``).  ``resources`` are resource ids.
    """

    id: int
    start_time: int
    walltime: int
    resources: Sequence[int] | np.ndarray
    moldable_id: int = 0
    types: dict[str, str] = field(default_factory=dict)
    user: str = ""
    project: str = ""
    queue: str = "default"
    name: str = ""
    state: str = "Running"
    suspended_time: int = 0


@dataclass
class Assignment:
    """Where and when a job runs."""

    job_id: int
    moldable_id: int
    start_time: int
    walltime: int
    """Walltime as reserved: the moldable's walltime plus the job security time."""
    runs: np.ndarray = field(repr=False)
    """The resources as runs of consecutive order indices (``(n, 2)``, inclusive): a few bytes per job."""
    rid_of: np.ndarray = field(repr=False)
    """The platform's resource id of each order index."""

    @property
    def res(self) -> np.ndarray:
        """The resources as a bitset over order indices (computed on each access)."""
        return bitset.from_runs(self.runs, self.rid_of.shape[0])

    @property
    def roids(self) -> np.ndarray:
        """Order indices of the resources (computed on each access: large jobs are not kept expanded)."""
        return bitset.runs_to_indices(self.runs)

    @property
    def rids(self) -> np.ndarray:
        """Resource ids, in resource order (as OAR writes them); computed on each access."""
        return self.rid_of[self.roids]

    @property
    def resources(self) -> list[int]:
        """Resource ids, in resource order."""
        return self.rids.tolist()

    @property
    def nb_resources(self) -> int:
        return int((self.runs[:, 1] - self.runs[:, 0]).sum() + self.runs.shape[0])

    def __repr__(self) -> str:
        return (f"Assignment(job_id={self.job_id}, moldable_id={self.moldable_id}, start_time={self.start_time}, "
                f"walltime={self.walltime}, resources={self.resources})")

    @property
    def end_time(self) -> int:
        """Last second reserved (inclusive)."""
        return self.start_time + self.walltime - 1


@dataclass
class ScheduleResult:
    """Decisions of one round."""

    assignments: dict[int, Assignment] = field(default_factory=dict)
    unscheduled: dict[int, str] = field(default_factory=dict)
    """Job id -> why it got no place this round."""
    errors: dict[int, str] = field(default_factory=dict)
    """Job id -> what is wrong with it (the job was skipped, the round went on)."""

    def __getitem__(self, job_id: int) -> Assignment:
        return self.assignments[job_id]

    def __contains__(self, job_id: int) -> bool:
        return job_id in self.assignments

    def __len__(self) -> int:
        return len(self.assignments)
