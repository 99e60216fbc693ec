"""Shared fixtures: where the shared corpus lives."""
from __future__ import annotations

import os
from pathlib import Path

import pytest

REPO = Path(__file__).resolve().parent.parent


def shared_dir() -> Path | None:
    """``../shared`` beside the checkout (or $OARSCHED_SHARED), where the conformance corpus and benchmarks live."""
    env = os.environ.get("OARSCHED_SHARED")
    path = Path(env) if env else REPO.parent / "shared"
    return path if (path / "conformance" / "check.py").exists() else None


def require_shared() -> Path:
    """The shared folder; in CI its absence is a failure, elsewhere the test is skipped."""
    path = shared_dir()
    if path is None:
        msg = "the shared corpus (../shared or $OARSCHED_SHARED) is not here"
        if os.environ.get("CI"):
            pytest.fail(msg)
        pytest.skip(msg)
    return path


# the throwaway PostgreSQL server and per-test databases, for every test module
from tests.pgserver import pg_server, pg_url  # noqa: E402,F401
