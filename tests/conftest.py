"""Shared fixtures. Each test module keeps its own small models/data; only cross-cutting fixtures live here."""

from __future__ import annotations

import os
from pathlib import Path

import pytest

REPO_ROOT = Path(__file__).resolve().parents[1]


def shared_data_dir() -> Path:
    """`DEPARA_SHARED_DATA` or `../shared/data` beside the repository (the library's one rule)."""
    from depara.io.files import shared_data_dir as library_rule

    return library_rule()


@pytest.fixture(scope="session")
def shared_data() -> Path:
    """The project's shared reference data folder; tests that need it skip when it is absent."""
    path = shared_data_dir()
    if not path.is_dir():
        pytest.skip(f"shared data not found at {path} (set DEPARA_SHARED_DATA)")
    return path


@pytest.fixture(scope="session")
def depara_cache(tmp_path_factory) -> Path:
    """One cache folder for the whole test session, so pipelines run by several tests (tiny task bank,
    tiny layer demo, `depara demo`) are computed once and reused, as a user's second run would."""
    path = tmp_path_factory.mktemp("depara_cache")
    os.environ["DEPARA_CACHE"] = str(path)
    return path
