"""Hypothesis strategies shared by the tests: random nested platforms and requests."""
from __future__ import annotations

import numpy as np
from hypothesis import strategies as st

from oarsched.model.platform import Platform, Resource


@st.composite
def nested_platforms(draw, max_switches=3, max_nodes=4, max_cores=5, states=True):
    """A switch/node/core platform with irregular sizes, some resources not schedulable, shuffled ids."""
    resources = []
    rid = 1
    nsw = draw(st.integers(1, max_switches))
    for s in range(nsw):
        for n in range(draw(st.integers(1, max_nodes))):
            for c in range(draw(st.integers(1, max_cores))):
                state = draw(st.sampled_from(["Alive"] * 6 + ["Absent", "Dead", "Suspected"])) if states else "Alive"
                resources.append(Resource(id=rid, state=state, properties={
                    "switch": f"sw{s}", "network_address": f"n{s}-{n}", "core": rid}))
                rid += 1
    return Platform(resources, ["resource_id", "switch", "network_address", "core"])


LEVEL_CHAINS = [
    ["network_address"], ["resource_id"], ["core"], ["switch"],
    ["switch", "network_address"], ["network_address", "core"], ["switch", "core"],
    ["switch", "network_address", "core"], ["network_address", "resource_id"],
    ["switch", "network_address", "resource_id"],
]


@st.composite
def requests(draw, max_groups=2, keywords=True):
    """A list of groups, each a list of (label, count)."""
    groups = []
    for _ in range(draw(st.integers(1, max_groups))):
        chain = draw(st.sampled_from(LEVEL_CHAINS))
        if keywords and len(chain) == 1 and draw(st.booleans()) and draw(st.booleans()):
            groups.append([(chain[0], draw(st.sampled_from([-1, -2, -3])))])
        else:
            groups.append([(lbl, draw(st.integers(1, 3))) for lbl in chain])
    return groups


def free_mask(draw_bools, platform: Platform) -> np.ndarray:
    return np.array(draw_bools, dtype=bool)[: platform.size] & platform.schedulable
