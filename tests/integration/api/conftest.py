"""The API over a real facade on SQLite and PostgreSQL, driven in-process (TestClient)."""

from __future__ import annotations

import warnings
from collections.abc import Iterator
from datetime import UTC, datetime
from typing import Any

import pytest

with warnings.catch_warnings():
    warnings.simplefilter("ignore", DeprecationWarning)
    from fastapi.testclient import TestClient

from api_helpers import Caller

from duetime.api.app import create_app
from duetime.clock import FakeClock
from duetime.keys import ApiKeyService
from duetime.scheduler import Scheduler

START = datetime(2030, 1, 1, tzinfo=UTC)


@pytest.fixture
def clock() -> FakeClock:
    return FakeClock(START)


@pytest.fixture
def scheduler(db_url: str, clock: FakeClock) -> Iterator[Scheduler]:
    s = Scheduler(database_url=db_url, clock=clock)
    yield s
    s.close()


@pytest.fixture
def client(scheduler: Scheduler) -> Iterator[TestClient]:
    with TestClient(create_app(scheduler), raise_server_exceptions=False) as c:
        yield c


@pytest.fixture
def keys(client: TestClient) -> ApiKeyService:
    service: ApiKeyService = client.app.state.keys  # type: ignore[attr-defined]
    return service


@pytest.fixture
def make_caller(client: TestClient, keys: ApiKeyService) -> Any:
    def make(tenant: str = "acme", role: str = "admin") -> Caller:
        return Caller(client, keys.create(tenant, role).secret)

    return make


@pytest.fixture
def admin(make_caller: Any) -> Caller:
    return make_caller("acme", "admin")
