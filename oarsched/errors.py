"""Exceptions of oarsched. Each names the job, key or row at fault."""
from __future__ import annotations


class OarschedError(Exception):
    """Base class of every error oarsched raises on purpose."""


class UsageError(OarschedError):
    """The command line is wrong (missing or malformed argument)."""


class ConfigError(OarschedError):
    """A configuration file or key is missing or malformed."""


class JobError(OarschedError):
    """A job cannot be understood (bad request, bad type, bad dependency...)."""

    def __init__(self, job_id: int | None, message: str) -> None:
        self.job_id = job_id
        self.message = message
        where = f"job {job_id}: " if job_id is not None else ""
        super().__init__(where + message)


class PropertyError(OarschedError):
    """A property expression is not in the accepted grammar."""


class PlatformError(OarschedError):
    """Resources cannot form a platform (unknown state, bad hierarchy label...)."""


class DatabaseError(OarschedError):
    """The OAR database cannot be read or written as expected."""
