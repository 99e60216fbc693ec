"""The quotas model moved to :mod:`oarsched.quotas` (``rules``, ``calendar``, ``counters``); old import path."""
from oarsched.quotas import *  # noqa: F403
from oarsched.quotas import __all__  # noqa: F401
