"""Shared fixtures: service URLs with CI-strict skipping."""

from __future__ import annotations

import os
from typing import TYPE_CHECKING

import pytest

if TYPE_CHECKING:
    from duetime.scheduler import Scheduler

IN_CI = os.environ.get("CI", "").lower() in {"1", "true", "yes"}
POSTGRES_URL_ENV = "DUETIME_TEST_POSTGRES_URL"


def require_service(env_var: str, what: str) -> str:
    """Return the URL in ``env_var``; skip (or fail in CI) when it is not set."""
    url = os.environ.get(env_var)
    if url:
        return url
    message = (
        f"{what} tests need {env_var} (e.g. {env_var}=postgresql://postgres@127.0.0.1/postgres)"
    )
    if IN_CI:
        pytest.fail(f"CI=true but {message}")
    pytest.skip(message)


@pytest.fixture(scope="session")
def postgres_url() -> str:
    """The admin URL of a real PostgreSQL server (tests create their own databases)."""
    return require_service(POSTGRES_URL_ENV, "PostgreSQL")


# ---------------------------------------------------------------- databases
# Every store/engine/facade test runs against both backends through ``db_url``:
# a fresh SQLite file, or a fresh PostgreSQL database cloned from a migrated template.

import uuid  # noqa: E402
from collections.abc import Iterator  # noqa: E402
from pathlib import Path  # noqa: E402

import sqlalchemy as sa  # noqa: E402


def _pg_admin(admin_url: str) -> sa.Engine:
    url = sa.make_url(admin_url).set(drivername="postgresql+psycopg")
    return sa.create_engine(url, isolation_level="AUTOCOMMIT", poolclass=sa.pool.NullPool)


def _pg_url_for(admin_url: str, database: str) -> str:
    url = sa.make_url(admin_url).set(drivername="postgresql+psycopg", database=database)
    return url.render_as_string(hide_password=False)


@pytest.fixture(scope="session")
def pg_template(postgres_url: str) -> Iterator[str]:
    """A migrated PostgreSQL database used as a template for per-test databases."""
    from duetime.store.migrate import upgrade_database

    name = f"duetime_tpl_{uuid.uuid4().hex[:10]}"
    admin = _pg_admin(postgres_url)
    with admin.connect() as conn:
        conn.execute(sa.text(f'CREATE DATABASE "{name}"'))
    upgrade_database(_pg_url_for(postgres_url, name))
    yield name
    with admin.connect() as conn:
        conn.execute(sa.text(f'DROP DATABASE IF EXISTS "{name}" WITH (FORCE)'))
    admin.dispose()


@pytest.fixture
def pg_url(postgres_url: str, pg_template: str) -> Iterator[str]:
    """A fresh, migrated PostgreSQL database for one test (dropped afterwards)."""
    name = f"duetime_t_{uuid.uuid4().hex[:12]}"
    admin = _pg_admin(postgres_url)
    with admin.connect() as conn:
        conn.execute(sa.text(f'CREATE DATABASE "{name}" TEMPLATE "{pg_template}"'))
    yield _pg_url_for(postgres_url, name)
    with admin.connect() as conn:
        conn.execute(sa.text(f'DROP DATABASE IF EXISTS "{name}" WITH (FORCE)'))
    admin.dispose()


@pytest.fixture
def sqlite_url(tmp_path: Path) -> str:
    """A fresh, migrated SQLite file database for one test."""
    from duetime.store.migrate import upgrade_database

    url = f"sqlite:///{tmp_path / 'duetime.db'}"
    upgrade_database(url)
    return url


@pytest.fixture(params=["sqlite", "postgresql"])
def db_url(request: pytest.FixtureRequest) -> str:
    """A fresh, migrated database of each backend (the same suite runs on both)."""
    name = "sqlite_url" if request.param == "sqlite" else "pg_url"
    return str(request.getfixturevalue(name))


@pytest.fixture
def scheduler(db_url: str) -> Iterator[Scheduler]:
    """A facade on ``db_url`` (each backend), closed after the test; closer conftests override."""
    from duetime.scheduler import Scheduler

    facade = Scheduler(db_url)
    try:
        yield facade
    finally:
        facade.close()
