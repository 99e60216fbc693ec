"""Finding plugins: ``find=``/``assign=`` job types, entry points, and OAR3-style functions.

``find=NAME:a:b:k=v`` names the entry point ``NAME`` of group ``oar.find_func``
and passes ``("a", "b")`` and ``{"k": "v"}`` to it (OAR3's parsing: a field
with ``=`` and a non-empty key is a keyword argument, any other field, ``=``
and ``==`` included, is positional; a keyword value keeps its own ``=``).

A function registered under a group is used as is when it carries the mark
of :func:`~oarsched.plugins.api.find_function` /
:func:`~oarsched.plugins.api.assign_function`; any other function is taken to
have OAR3's signature and wrapped by :mod:`oarsched.plugins.oar3` (which needs
the ``procset`` package).
"""
from __future__ import annotations

import logging
from dataclasses import dataclass, field
from importlib.metadata import entry_points
from typing import Any, Callable, Mapping

from oarsched.plugins.api import ASSIGN_GROUP, FIND_GROUP, PluginError, plugin_kind

__all__ = ["PluginCall", "PluginRegistry", "parse_plugin_call"]

log = logging.getLogger("oarsched.plugins")

GROUPS = {"find": FIND_GROUP, "assign": ASSIGN_GROUP}


@dataclass(frozen=True)
class PluginCall:
    """A plugin named by a job type, with its arguments."""

    name: str
    args: tuple[str, ...] = ()
    kwargs: Mapping[str, str] = field(default_factory=dict)


def parse_plugin_call(value: str) -> PluginCall:
    """``"NAME:a:k=v"`` -> ``PluginCall("NAME", ("a",), {"k": "v"})``

    As OAR3's ``extract_find_assign_args``.
    """
    name, *fields = value.split(":")
    args: list[str] = []
    kwargs: dict[str, str] = {}
    for f in fields:
        key, sep, rest = f.partition("=")
        if sep and key:
            kwargs[key] = rest
        else:
            args.append(f)
    return PluginCall(name.strip(), tuple(args), kwargs)


def _entry_point_names(group: str) -> list[str]:
    return sorted({ep.name for ep in entry_points(group=group)})


def load_entry_point(group: str, name: str) -> Callable[..., Any]:
    """The object an entry point names; PluginError-ready messages as ``LookupError``/``ImportError``."""
    found = [ep for ep in entry_points(group=group) if ep.name == name]
    if not found:
        available = ", ".join(_entry_point_names(group)) or "none"
        raise LookupError(f"is not installed (entry point group {group!r}; installed: {available})")
    try:
        return found[0].load()
    except Exception as exc:  # a broken plugin is reported, never fatal for the round
        raise ImportError(f"cannot be loaded from {found[0].value}: {type(exc).__name__}: {exc}") from exc


class PluginRegistry:
    """Where the scheduler finds find and assign functions.

    ``find`` and ``assign`` map names to functions directly (library use and
    tests); other names are looked up in the entry points (``oar.find_func``,
    ``oar.assign_func``) when ``use_entry_points`` is true.  Lookups are
    cached, failures included, so a missing plugin costs one metadata scan
    per round.
    """

    def __init__(self, find: Mapping[str, Callable[..., Any]] | None = None,
                 assign: Mapping[str, Callable[..., Any]] | None = None, *,
                 use_entry_points: bool = True) -> None:
        self._given = {"find": dict(find or {}), "assign": dict(assign or {})}
        self.use_entry_points = use_entry_points
        self._cache: dict[tuple[str, str], Callable[..., Any] | Exception] = {}

    def find(self, name: str, job_id: int | None = None) -> Callable[..., Any]:
        """The find function called ``name``, as an oarsched find function (OAR3 ones adapted)."""
        return self._get("find", name, job_id)

    def assign(self, name: str, job_id: int | None = None) -> Callable[..., Any]:
        """The assign function called ``name``, as an oarsched assign function (OAR3 ones adapted)."""
        return self._get("assign", name, job_id)

    def _get(self, kind: str, name: str, job_id: int | None) -> Callable[..., Any]:
        key = (kind, name)
        hit = self._cache.get(key)
        if hit is None:
            try:
                hit = self._resolve(kind, name)
            except (LookupError, ImportError, TypeError) as exc:
                hit = exc
            self._cache[key] = hit
        if isinstance(hit, Exception):
            raise PluginError(job_id, kind, name, str(hit))
        return hit

    def _resolve(self, kind: str, name: str) -> Callable[..., Any]:
        if not name:
            raise LookupError(f"has no name (job type {kind}= needs NAME[:args])")
        func = self._given[kind].get(name)
        if func is None:
            if not self.use_entry_points:
                known = ", ".join(sorted(self._given[kind])) or "none"
                raise LookupError(f"is not registered (known: {known})")
            func = load_entry_point(GROUPS[kind], name)
        if not callable(func):
            raise TypeError(f"is a {type(func).__name__}, not a function")
        marked = plugin_kind(func)
        if marked == kind:
            return func
        if marked is not None:
            raise TypeError(f"is an oarsched {marked} function, registered as a {kind} function")
        from oarsched.plugins import oar3

        log.debug("%s plugin %r has no oarsched mark: called with OAR3's signature", kind, name)
        return oar3.adapt_find(func) if kind == "find" else oar3.adapt_assign(func)
