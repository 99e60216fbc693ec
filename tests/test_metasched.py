"""The meta-scheduler corpus: OAR3's recorded ``kao`` rounds, replayed through ``oarsched-kao`` (SQLite).

``check_meta.py`` (the corpus' own checker, real ZeroMQ and TCP listeners on
127.0.0.1) runs once for the whole corpus; each case is then a test of its
own, failing with the checker's diff.  Cases tagged with a kamelot bug that
oarsched corrects are skipped by the checker and reported as skipped here.
"""
from __future__ import annotations

import json
import re
import shutil
import subprocess
import sys

import pytest

from tests.conftest import require_shared, shared_dir


def metasched_cases() -> list[tuple[str, bool]]:
    """``(name, tagged with an OAR3 kamelot bug)`` of every case of the corpus."""
    shared = shared_dir()
    if shared is None:
        return [("<corpus missing>", False)]
    root = shared / "metasched"
    index = json.loads((root / "index.json").read_text())
    out = []
    for c in index["cases"]:
        case = json.loads((root / c["name"] / "case.json").read_text())
        out.append((c["name"], bool(case.get("oar3_bugs"))))
    return out


def parse_outcome(stdout: str) -> dict[str, str]:
    outcome = {}
    for line in stdout.splitlines():
        m = re.match(r"^(PASS|FAIL) (\S+?)(?::\s*(.*))?(?:\s+\(\d.*s\))?$", line)
        if m:
            outcome[m.group(2)] = "PASS" if m.group(1) == "PASS" else (m.group(3) or "failed")
    return outcome


def run_check_meta(template: str, env: dict | None = None) -> dict[str, str]:
    """``check_meta.py`` on the whole corpus with this command template: case name -> PASS or the diff."""
    shared = require_shared()
    proc = subprocess.run(
        [sys.executable, str(shared / "metasched" / "check_meta.py"), str(shared / "metasched"), template,
         "-v", "-j", "2"],
        capture_output=True, text=True, timeout=3600, check=False, env=env,
    )
    assert re.search(r"^\d+ passed, \d+ failed$", proc.stdout, re.MULTILINE), proc.stdout[-2000:] + proc.stderr[-2000:]
    return parse_outcome(proc.stdout)


@pytest.fixture(scope="session")
def metasched_outcome() -> dict[str, str]:
    require_shared()
    kao = shutil.which("oarsched-kao")
    assert kao, "oarsched-kao is not on PATH: install the package (pip install .)"
    return run_check_meta(f"{kao} {{argv}}")


@pytest.mark.parametrize("case,tagged", metasched_cases(), ids=lambda v: v if isinstance(v, str) else "")
def test_case(case, tagged, metasched_outcome):
    if tagged:
        pytest.skip("outcome rests on an OAR3 kamelot bug that oarsched corrects (case.json: oar3_bugs)")
    assert case in metasched_outcome, f"check_meta.py did not report {case}"
    assert metasched_outcome[case] == "PASS", metasched_outcome[case]
