"""Schemathesis against the OpenAPI document: every operation, authenticated, on a real
SQLite database — no 5xx and every response conforms to the document."""

from __future__ import annotations

import tempfile
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

import pytest

schemathesis = pytest.importorskip("schemathesis")

from hypothesis import HealthCheck, settings  # noqa: E402
from schemathesis import checks  # noqa: E402

from duetime.api.app import create_app  # noqa: E402
from duetime.clock import FakeClock  # noqa: E402
from duetime.scheduler import Scheduler  # noqa: E402
from duetime.store.migrate import upgrade_database  # noqa: E402

pytestmark = pytest.mark.slow

_DIR = Path(tempfile.mkdtemp(prefix="duetime-schemathesis-"))
_URL = f"sqlite:///{_DIR / 'api.db'}"
upgrade_database(_URL)
_SCHEDULER = Scheduler(database_url=_URL, clock=FakeClock(datetime(2030, 1, 1, tzinfo=UTC)))
APP = create_app(_SCHEDULER)
_ADMIN = APP.state.keys.create("acme", "admin").secret
_SCHEDULER.for_tenant("acme").add_schedule("nightly", "duetime.noop", "0 3 * * *")
AUTH = {"Authorization": f"Bearer {_ADMIN}"}

schema = schemathesis.openapi.from_asgi("/api/v1/openapi.json", APP)


@schema.parametrize()
@settings(
    max_examples=30,
    deadline=None,
    suppress_health_check=list(HealthCheck),
    derandomize=True,
)
def test_api_conforms(case: Any) -> None:
    # Schema-valid input may still be refused on meaning (a cron that cannot fire, a cursor
    # this server never issued): 422 is correct there, so "positive data accepted" is off.
    case.call_and_validate(headers=AUTH, excluded_checks=[checks.positive_data_acceptance])
