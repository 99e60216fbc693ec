"""The conformance corpus: OAR3's recorded decisions, replayed through ``oarsched-kamelot`` (SQLite).

``check.py`` (the corpus' own checker) runs once for the whole corpus; each
case is then a test of its own, failing with check.py's diff.
"""
from __future__ import annotations

import json
import re
import shutil
import subprocess
import sys

import pytest

from tests.conftest import require_shared, shared_dir


def _case_names() -> list[str]:
    shared = shared_dir()
    if shared is None:
        return ["<corpus missing>"]
    index = json.loads((shared / "conformance" / "index.json").read_text())
    return [c["name"] for c in index["cases"]]


@pytest.fixture(scope="session")
def corpus_outcome() -> dict[str, str]:
    shared = require_shared()
    kamelot = shutil.which("oarsched-kamelot")
    assert kamelot, "oarsched-kamelot is not on PATH: install the package (pip install .)"
    proc = subprocess.run(
        [sys.executable, str(shared / "conformance" / "check.py"), str(shared / "conformance"),
         f"{kamelot} {{queue}} {{now}} {{now_sql}}", "--messages", "-j", "2"],
        capture_output=True, text=True, timeout=1800,
    )
    outcome = {}
    for line in proc.stdout.splitlines():
        m = re.match(r"^(PASS|FAIL) (\S+?)(?::\s*(.*))?$", line)
        if m:
            outcome[m.group(2)] = "PASS" if m.group(1) == "PASS" else (m.group(3) or "failed")
    assert re.search(r"^\d+ passed, \d+ failed$", proc.stdout, re.M), proc.stdout[-2000:] + proc.stderr[-2000:]
    return outcome


@pytest.mark.parametrize("case", _case_names())
def test_case(case, corpus_outcome):
    assert case in corpus_outcome, f"check.py did not report {case}"
    assert corpus_outcome[case] == "PASS", corpus_outcome[case]
