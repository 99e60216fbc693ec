"""Site commands run by the round (energy saving, resume script, users' notification commands)."""
from __future__ import annotations

from dataclasses import dataclass


@dataclass(frozen=True)
class ShellRun:
    code: int | None
    """Exit status; None when the command was killed at its timeout."""
    stderr: str = ""


def run_shell(cmd: str, timeout: float, stdin: str | None = None) -> ShellRun:
    """Run ``cmd`` through the shell in a session of its own, fed ``stdin``; at ``timeout`` its whole
    process group is killed (a shell's children would outlive a kill of the shell alone).  OSError
    (no shell) propagates."""
    import os
    import signal
    import subprocess

    proc = subprocess.Popen(cmd, shell=True, text=True, start_new_session=True,
                            stdin=subprocess.DEVNULL if stdin is None else subprocess.PIPE,
                            stdout=subprocess.DEVNULL, stderr=subprocess.PIPE)
    try:
        _, err = proc.communicate(stdin, timeout=timeout)
    except subprocess.TimeoutExpired:
        os.killpg(proc.pid, signal.SIGKILL)
        proc.communicate()
        return ShellRun(None)
    return ShellRun(proc.returncode, err or "")
