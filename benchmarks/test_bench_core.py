"""The compiled core against the plain-Python reference, on the same step.

:func:`benchmarks.measure.core_vs_reference` runs the matcher and the window
search of one request on a slot set filled by a partial round, with the
compiled core and with :mod:`oarsched.engine.reference`, checks that both
answer alike, and reports both times (and their ratio) from the same run.
"""
from __future__ import annotations

import pytest

from benchmarks import measure


@pytest.mark.quick
@pytest.mark.parametrize("name", ["nodeonly-10k-100", "normal-1k-500"])
def test_core_vs_reference(benchmark, name: str) -> None:
    benchmark.group = "core vs reference"
    out = benchmark.pedantic(measure.core_vs_reference, args=(name,), rounds=1, iterations=1)
    benchmark.extra_info.update(out)
    assert out["windows"] > 0
