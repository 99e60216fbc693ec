"""The meta-scheduler corpus: OAR3's recorded ``kao`` rounds, replayed through ``oarsched-kao`` (SQLite).

``check_meta.py`` (the corpus' own checker, real ZeroMQ and TCP listeners on
127.0.0.1) runs once for the whole corpus; each case is then a test of its
own, failing with the checker's diff.  Cases tagged with a kamelot bug that
oarsched corrects (22 cases) cannot match OAR3's recorded outcome; for them
the checker runs with ``--oar3-bugs reproduce`` and each must differ only in
the tables its ``case.json`` names (and in ``jobs.start_time`` where it names
the gantt predictions: other predicted starts, trap T22).
"""
from __future__ import annotations

import json
import re
import shutil
import subprocess
import sys

import pytest

from tests.conftest import require_shared, shared_dir
from tests.test_kao_server import server_process


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


def run_check_meta(template: str, env: dict | None = None, extra: list[str] = ()) -> dict[str, str]:
    """``check_meta.py`` on the whole corpus with this command template: case name -> PASS or the diff."""
    shared = require_shared()
    proc = subprocess.run(
        [sys.executable, str(shared / "metasched" / "check_meta.py"), str(shared / "metasched"), template,
         "-v", "-j", "2", *extra],
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


def tagged_only() -> list[str]:
    """check_meta.py's arguments that run only the bug-tagged cases, against OAR3's own outcome."""
    only = [a for name, tagged in metasched_cases() if tagged for a in ("--only", name)]
    return ["--oar3-bugs", "reproduce", "--max-diffs", "1000", *only]


@pytest.fixture(scope="session")
def tagged_outcome() -> dict[str, str]:
    """The tagged cases run against OAR3's own outcome (``--oar3-bugs reproduce``)."""
    require_shared()
    kao = shutil.which("oarsched-kao")
    assert kao, "oarsched-kao is not on PATH: install the package (pip install .)"
    return run_check_meta(f"{kao} {{argv}}", extra=tagged_only())


@pytest.mark.parametrize("case,tagged", metasched_cases(), ids=lambda v: v if isinstance(v, str) else "")
def test_case(case, tagged, request):
    if not tagged:
        outcome = request.getfixturevalue("metasched_outcome")
        assert case in outcome, f"check_meta.py did not report {case}"
        assert outcome[case] == "PASS", outcome[case]
        return
    assert_differs_only_where_named(case, request.getfixturevalue("tagged_outcome"))


def assert_differs_only_where_named(case: str, outcome: dict[str, str]) -> None:
    """A bug-tagged case differs from OAR3's outcome only in the tables its case.json names."""
    assert case in outcome, f"check_meta.py did not report {case}"
    shared = require_shared()
    meta_case = json.loads((shared / "metasched" / case / "case.json").read_text())
    allowed = set(re.findall(r"\b[a-z_]+\b", meta_case["oar3_bugs_note"].split("tables", 1)[1].split(".")[0]))
    if "gantt_jobs_predictions" in allowed:  # other predicted starts are other jobs.start_time (T22); the notes omit it
        allowed.add("jobs")
    if outcome[case] != "PASS":
        differing = set(re.findall(r"(?:^|\|\| )(\w+) (?:inserted|deleted)", outcome[case]))
        # a corrected decision may change which jobs start now, hence which ones bipbip is told to run
        other = [seg for seg in outcome[case].split(" || ") if not re.match(r"\w+ (inserted|deleted)", seg)
                 and not ("jobs" in allowed and seg.startswith("notifications bipbip:"))]
        assert not other, f"differs from OAR3 outside the tables: {other}"
        assert differing <= allowed, f"tables {sorted(differing - allowed)} differ, not named by the case"


def test_the_corpus_through_a_resident_server(tmp_path):
    """Every untagged case passes when ``oarsched-kao --server`` has one resident server run all the rounds
    (databases kept open between cases, each case's oar.conf and environment passed along)."""
    require_shared()
    kao = shutil.which("oarsched-kao")
    assert kao, "oarsched-kao is not on PATH: install the package (pip install .)"
    sock = tmp_path / "kao.sock"
    with server_process(sock) as server:
        outcome = run_check_meta(f"{kao} --server {sock} {{argv}}")
    untagged = [name for name, tagged in metasched_cases() if not tagged]
    assert {name: outcome.get(name, "not reported") for name in untagged} == dict.fromkeys(untagged, "PASS")
    served = re.findall(r"round \d+: exit \d", server.log)
    assert len(served) >= len(untagged), server.log[-2000:]  # the rounds ran in the server, not in fallback clients
