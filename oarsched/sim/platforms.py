"""Platforms and queues for simulations: from a short spec, a JSON file or an OAR3 database.

* :func:`platform_from_spec` -- ``"switch=2/network_address=4/core=8"`` (also
  ``,``-separated): a regular hierarchy, as :meth:`Platform.from_hierarchy`;
  a path to a JSON file is read with :func:`platform_from_json`.
* :func:`platform_from_json` -- ``{"hierarchy_labels": [...], "resources":
  [{"id": 1, "state": "Alive", "type": "default", "network_address": "n1", ...}]}``
  (or just the list of resources; labels then default to ``resource_id`` and
  ``network_address``), in scheduling order.
* :func:`~oarsched.oar.readers.platform_from_db` /
  :func:`~oarsched.oar.readers.queues_from_db` (the OAR adapter's) -- the
  resources (in ``SCHEDULER_RESOURCE_ORDER``) and the active queues of the OAR3
  database an ``oar.conf`` names.
"""
from __future__ import annotations

import os
import re
from collections.abc import Mapping
from typing import Any

from oarsched.errors import PlatformError
from oarsched.jsonfile import read_json_file
from oarsched.model.platform import Platform, Resource
from oarsched.oar.readers import platform_from_db, queues_from_db

__all__ = ["load_platform", "platform_from_data", "platform_from_db", "platform_from_json", "platform_from_spec",
           "queues_from_db"]


_LEVEL_RE = re.compile(r"^\s*([A-Za-z_][A-Za-z0-9_]*)\s*=\s*(\d+)\s*$")


def platform_from_spec(spec: str) -> Platform:
    """A platform from ``LABEL=N/LABEL=N/...`` (top level first, the last level is one resource), or a JSON file."""
    if os.path.isfile(spec):
        return platform_from_json(spec)
    parts = [p for p in re.split(r"[/,]", spec) if p.strip()]
    if not parts:
        raise PlatformError(f"empty platform spec {spec!r} (expected e.g. 'switch=2/network_address=4/core=8')")
    levels = []
    for part in parts:
        m = _LEVEL_RE.match(part)
        if not m:
            raise PlatformError(f"platform spec {spec!r}: {part.strip()!r} is not LABEL=COUNT "
                                "(e.g. 'switch=2/network_address=4/core=8', or a JSON file of resources)")
        levels.append((m.group(1), int(m.group(2))))
    labels = [label for label, _ in levels]
    if len(set(labels)) != len(labels):
        raise PlatformError(f"platform spec {spec!r}: a level is given twice")
    return Platform.from_hierarchy(levels, leaf=levels[-1][0])


def platform_from_json(path: str | os.PathLike[str]) -> Platform:
    """Resources in scheduling order from a JSON file (see the module docstring)."""
    return platform_from_data(read_json_file(path, PlatformError), os.fspath(path))


def platform_from_data(data: Any, source: str = "platform") -> Platform:
    """A platform from parsed JSON: ``{"hierarchy_labels": [...], "resources": [...]}`` or the resources alone."""
    labels: Any = ["resource_id", "network_address"]
    if isinstance(data, Mapping):
        labels = data.get("hierarchy_labels", labels)
        data = data.get("resources")
    if not isinstance(data, list) or not data:
        raise PlatformError(f"{source}: expected a non-empty list of resources (or {{'resources': [...]}})")
    if isinstance(labels, str):
        labels = labels.split(",")
    resources = [_resource(source, i, item) for i, item in enumerate(data)]
    return Platform(resources, labels)


def _resource(source: str, index: int, item: Any) -> Resource:
    where = f"{source}, resource {index + 1}"
    if not isinstance(item, Mapping):
        raise PlatformError(f"{where}: expected an object, got {type(item).__name__}")
    rid = item.get("id", item.get("resource_id"))
    if isinstance(rid, bool) or not isinstance(rid, int):
        raise PlatformError(f"{where}: field 'id' must be an integer, got {rid!r}")
    props = {k: v for k, v in item.items() if k not in ("id", "resource_id", "state", "type", "available_upto")}
    upto = item.get("available_upto", 2**31 - 1)
    if isinstance(upto, bool) or not isinstance(upto, int):
        raise PlatformError(f"{where}: field 'available_upto' must be an integer, got {upto!r}")
    return Resource(id=rid, state=str(item.get("state", "Alive")), type=str(item.get("type", "default")),
                    available_upto=upto, properties=props)


def load_platform(spec: str | None = None, *, config=None) -> Platform:
    """``spec`` (see :func:`platform_from_spec`) when given, else the database of ``config``."""
    if spec:
        return platform_from_spec(spec)
    if config is None:
        raise PlatformError("no platform: give a spec (e.g. 'switch=2/network_address=4/core=8') or an oar.conf")
    return platform_from_db(config)
