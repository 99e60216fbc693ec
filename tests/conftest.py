"""Shared fixtures: where the shared corpus lives."""
from __future__ import annotations

import importlib.util
import logging
import os
from pathlib import Path

import pytest

REPO = Path(__file__).resolve().parent.parent


def shared_dir() -> Path | None:
    """``../shared`` beside the checkout (or $OARSCHED_SHARED), where the conformance corpus and benchmarks live."""
    env = os.environ.get("OARSCHED_SHARED")
    path = Path(env) if env else REPO.parent / "shared"
    return path if (path / "conformance" / "check.py").exists() else None


def missing(msg: str) -> None:
    """Something a test needs is not on this machine: in CI a failure (CI installs it), elsewhere a skip."""
    if os.environ.get("CI"):
        pytest.fail(msg)
    pytest.skip(msg)


def require_shared() -> Path:
    """The shared folder; in CI its absence is a failure, elsewhere the test is skipped."""
    path = shared_dir()
    if path is None:
        missing("the shared corpus (../shared or $OARSCHED_SHARED) is not here")
    return path


def load_check(shared: Path):
    """The conformance corpus' own ``check.py`` as a module (its readers and comparison)."""
    spec = importlib.util.spec_from_file_location("conformance_check", shared / "conformance" / "check.py")
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    return module


@pytest.fixture(autouse=True)
def _restore_oarsched_logger():
    """``setup_logging`` (run by the entrypoints) configures the ``oarsched`` logger for the process:
    give every test the logger as it found it."""
    logger = logging.getLogger("oarsched")
    saved = (list(logger.handlers), logger.propagate, logger.level)
    yield
    for handler in logger.handlers:
        if handler not in saved[0]:
            handler.close()
    logger.handlers[:] = saved[0]
    logger.propagate, logger.level = saved[1], saved[2]


# the throwaway PostgreSQL server and per-test databases, for every test module
from tests.pgserver import pg_server, pg_url  # noqa: E402,F401
