"""Job-layer fixtures: a private registry per test; tests/ on sys.path for fixtures_jobs."""

from __future__ import annotations

import sys
from pathlib import Path

import pytest

from duetime.jobs.registry import JobRegistry

TESTS_DIR = str(Path(__file__).resolve().parents[2])
if TESTS_DIR not in sys.path:
    sys.path.insert(0, TESTS_DIR)


@pytest.fixture
def registry() -> JobRegistry:
    """An empty registry, so tests do not leak job types into each other."""
    return JobRegistry()
