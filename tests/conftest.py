"""Shared fixtures: service URLs with CI-strict skipping."""

from __future__ import annotations

import os

import pytest

IN_CI = os.environ.get("CI", "").lower() in {"1", "true", "yes"}
POSTGRES_URL_ENV = "DUETIME_TEST_POSTGRES_URL"


def require_service(env_var: str, what: str) -> str:
    """Return the URL in ``env_var``; skip (or fail in CI) when it is not set."""
    url = os.environ.get(env_var)
    if url:
        return url
    message = f"{what} tests need {env_var} (e.g. {env_var}=postgresql://postgres@127.0.0.1/postgres)"
    if IN_CI:
        pytest.fail(f"CI=true but {message}")
    pytest.skip(message)


@pytest.fixture(scope="session")
def postgres_url() -> str:
    """The admin URL of a real PostgreSQL server (tests create their own databases)."""
    return require_service(POSTGRES_URL_ENV, "PostgreSQL")
