"""Fixtures of the FakeClock engine tests: asyncio under anyio, a clock at T0, a store."""

from __future__ import annotations

from collections.abc import Iterator
from datetime import UTC, datetime

import pytest
from test_engine_helpers import open_store

from duetime.clock import FakeClock
from duetime.store.sqlalchemy import SQLAlchemyStore

#: The instant every engine test starts at.
T0 = datetime(2030, 1, 1, tzinfo=UTC)


@pytest.fixture
def anyio_backend() -> str:
    return "asyncio"


@pytest.fixture
def clock() -> FakeClock:
    return FakeClock(T0)


@pytest.fixture
def store(db_url: str, clock: FakeClock) -> Iterator[SQLAlchemyStore]:
    with open_store(db_url, clock) as s:
        yield s
