"""Platforms and queues for simulations: specs, JSON files, OAR3 databases."""
from __future__ import annotations

import json

import pytest

from oarsched.errors import PlatformError
from oarsched.sim import load_platform, platform_from_db, platform_from_spec, queues_from_db
from oarsched.sim.platforms import platform_from_json


@pytest.mark.parametrize("spec, size, labels", [
    ("switch=2/network_address=4/core=8", 64, ["resource_id", "switch", "network_address", "core"]),
    ("network_address=3,core=2", 6, ["resource_id", "network_address", "core"]),
    ("resource_id=10", 10, ["resource_id"]),
    ("network_address=3/resource_id=4", 12, ["resource_id", "network_address"]),
])
def test_spec(spec, size, labels):
    platform = platform_from_spec(spec)
    assert platform.size == size and platform.hierarchy_labels == labels


@pytest.mark.parametrize("spec, message", [
    ("", "empty platform spec"),
    ("switch=2/core", "'core' is not LABEL=COUNT"),
    ("core=2/core=3", "a level is given twice"),
    ("core=0", "positive"),
])
def test_bad_spec(spec, message):
    with pytest.raises(PlatformError, match=message):
        platform_from_spec(spec)


def test_json_platform(tmp_path):
    path = tmp_path / "p.json"
    path.write_text(json.dumps({"hierarchy_labels": "resource_id,network_address", "resources": [
        {"id": 1, "network_address": "a"}, {"id": 2, "network_address": "a", "state": "Dead"},
        {"id": 3, "network_address": "b", "type": "gpu", "available_upto": 100}]}))
    platform = platform_from_spec(str(path))
    assert platform.size == 3 and list(platform.schedulable) == [True, False, True]
    assert platform.resources[2].type == "gpu" and platform.resources[2].available_upto == 100
    path.write_text(json.dumps([{"id": 1}, {"id": "x"}]))
    with pytest.raises(PlatformError, match="p.json, resource 2: field 'id' must be an integer"):
        platform_from_json(path)
    path.write_text("[")
    with pytest.raises(PlatformError, match="p.json, line 1: not JSON"):
        platform_from_json(path)


def test_database_platform_and_queues(tmp_path):
    from oarsched.oar import demo
    from oarsched.oar.config import OarConfig

    db_path = tmp_path / "oar.sqlite"
    demo.build_demo_db(db_path)
    conf = tmp_path / "oar.conf"
    conf.write_text(demo.demo_oar_conf(db_path))
    config = OarConfig.load(conf)
    platform = platform_from_db(config)
    assert platform.size == 64 and int(platform.schedulable.sum()) == 63
    assert load_platform(None, config=config).size == 64
    assert queues_from_db(config) == {"admin": 10, "default": 2, "besteffort": 0}
    with pytest.raises(PlatformError, match="no platform"):
        load_platform(None)
