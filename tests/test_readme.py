"""Every command and Python block of the README's Simulation and Gantt sections, run as written.

The blocks run in order in one scratch folder (with ``examples/`` linked
there, as from the repository's root), shell blocks through ``bash`` with
this environment's ``oarsched`` first on PATH, Python blocks in one shared
namespace.  ``--serve`` cannot end by itself: that command is started, its
page fetched from the address it prints, then stopped.
"""
from __future__ import annotations

import os
import re
import subprocess
import sys
import urllib.request
from pathlib import Path

from tests.conftest import REPO

SECTIONS = ("## Simulation", "## Gantt charts")


def readme_blocks() -> list[tuple[str, str]]:
    """``(language, code)`` of the fenced blocks of the sections, in order."""
    text = (REPO / "README.md").read_text(encoding="utf-8")
    blocks = []
    for title in SECTIONS:
        start = text.index(title + "\n")
        end = text.find("\n## ", start + len(title))
        section = text[start:end if end >= 0 else len(text)]
        blocks += re.findall(r"```(sh|python)\n(.*?)```", section, flags=re.S)
    return blocks


def shell_commands(code: str) -> list[str]:
    """Commands of a shell block, continuation lines joined."""
    return [c.strip() for c in code.replace("\\\n", " ").splitlines() if c.strip() and not c.startswith("#")]


def test_the_sections_have_commands_and_code():
    kinds = [kind for kind, _ in readme_blocks()]
    assert kinds.count("sh") >= 3 and kinds.count("python") >= 2


def test_readme_workflow_runs(tmp_path):
    (tmp_path / "examples").symlink_to(REPO / "examples")
    env = dict(os.environ, PATH=f"{Path(sys.executable).parent}{os.pathsep}{os.environ.get('PATH', '')}",
               MPLBACKEND="Agg")
    namespace: dict = {}
    cwd = os.getcwd()
    os.chdir(tmp_path)
    try:
        for kind, code in readme_blocks():
            if kind == "python":
                exec(compile(code, "README.md", "exec"), namespace)  # noqa: S102 (the README's own code)
                continue
            for command in shell_commands(code):
                if "--serve" in command:
                    _serve_once(command, env, tmp_path)
                    continue
                proc = subprocess.run(["bash", "-c", command], cwd=tmp_path, env=env, capture_output=True,
                                      text=True, timeout=600)
                assert proc.returncode == 0, f"{command}\n{proc.stdout[-2000:]}\n{proc.stderr[-2000:]}"
    finally:
        os.chdir(cwd)
    # what the workflow says it writes is there
    for name in ("trace.swf", "run-fifo.csv", "run-easy.csv", "run-fairshare.conf.csv", "metrics.png",
                 "batsim/fifo/out_jobs.csv", "batsim/easy/out_schedule.csv", "run-fifo.html", "fifo.html",
                 "easy-day1.png", "live.html", "policies.svg", "fifo.json", "fifo.svg"):
        assert (tmp_path / name).stat().st_size > 0, name


def _serve_once(command: str, env: dict, cwd: Path) -> None:
    proc = subprocess.Popen(["bash", "-c", f"exec {command}"], cwd=cwd, env=env, stdout=subprocess.PIPE,
                            stderr=subprocess.PIPE, text=True)
    try:
        line = proc.stdout.readline()
        match = re.search(r"http://127\.0\.0\.1:\d+/", line)
        assert match, f"{command}: printed {line!r}"
        with urllib.request.urlopen(match.group(0), timeout=30) as page:
            assert b"gantt-data" in page.read()
        with urllib.request.urlopen(match.group(0) + "data.json", timeout=30) as data:
            assert b'"jobs"' in data.read()
    finally:
        proc.terminate()
        proc.wait(30)
