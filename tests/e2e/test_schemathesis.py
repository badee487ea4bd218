"""Schemathesis against the OpenAPI document: every operation, authenticated, on real SQLite
and (when DUETIME_TEST_POSTGRES_URL is set) PostgreSQL — no 5xx and every response conforms.

The schemas are built at import (schemathesis parametrizes at collection time), each over
its own fresh database with an admin key of tenant ``acme`` and one schedule.
"""

from __future__ import annotations

import atexit
import os
import tempfile
import uuid
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

import pytest
import sqlalchemy as sa

schemathesis = pytest.importorskip("schemathesis")

from hypothesis import HealthCheck, settings  # noqa: E402
from schemathesis import checks  # noqa: E402

from duetime.api.app import create_app  # noqa: E402
from duetime.clock import FakeClock  # noqa: E402
from duetime.scheduler import Scheduler  # noqa: E402
from duetime.store.migrate import upgrade_database  # noqa: E402

pytestmark = pytest.mark.slow

POSTGRES_URL = os.environ.get("DUETIME_TEST_POSTGRES_URL")
SETTINGS = settings(
    max_examples=30, deadline=None, suppress_health_check=list(HealthCheck), derandomize=True
)


def _api(url: str) -> tuple[Any, dict[str, str]]:
    upgrade_database(url)
    scheduler = Scheduler(database_url=url, clock=FakeClock(datetime(2030, 1, 1, tzinfo=UTC)))
    atexit.register(scheduler.close)
    app = create_app(scheduler)
    secret = app.state.keys.create("acme", "admin").secret
    scheduler.for_tenant("acme").add_schedule("nightly", "duetime.noop", "0 3 * * *")
    schema = schemathesis.openapi.from_asgi("/api/v1/openapi.json", app)
    return schema, {"Authorization": f"Bearer {secret}"}


def _pg_database(admin_url: str) -> str:
    name = f"duetime_st_{uuid.uuid4().hex[:10]}"
    url = sa.make_url(admin_url).set(drivername="postgresql+psycopg")
    admin = sa.create_engine(url, isolation_level="AUTOCOMMIT", poolclass=sa.pool.NullPool)
    with admin.connect() as conn:
        conn.execute(sa.text(f'CREATE DATABASE "{name}"'))

    def drop() -> None:
        with admin.connect() as conn:
            conn.execute(sa.text(f'DROP DATABASE IF EXISTS "{name}" WITH (FORCE)'))

    atexit.register(drop)
    return url.set(database=name).render_as_string(hide_password=False)


def _check(case: Any, auth: dict[str, str]) -> None:
    # Schema-valid input may still be refused on meaning (a cron that cannot fire, a cursor
    # this server never issued): 422 is correct there, so "positive data accepted" is off.
    case.call_and_validate(headers=auth, excluded_checks=[checks.positive_data_acceptance])


SQLITE_SCHEMA, SQLITE_AUTH = _api(
    f"sqlite:///{Path(tempfile.mkdtemp(prefix='duetime-st-')) / 'api.db'}"
)


@SQLITE_SCHEMA.parametrize()
@SETTINGS
def test_api_conforms_sqlite(case: Any) -> None:
    _check(case, SQLITE_AUTH)


if POSTGRES_URL:
    PG_SCHEMA, PG_AUTH = _api(_pg_database(POSTGRES_URL))

    @PG_SCHEMA.parametrize()
    @SETTINGS
    def test_api_conforms_postgresql(case: Any) -> None:
        _check(case, PG_AUTH)
