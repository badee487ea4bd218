"""Keyset pagination never skips nor repeats a row, whatever the ties and page sizes."""

from __future__ import annotations

from collections.abc import Iterator
from datetime import UTC, datetime, timedelta
from pathlib import Path

import pytest
import sqlalchemy as sa
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from duetime.clock import FakeClock
from duetime.models import RunKind
from duetime.store import rows, tables
from duetime.store.migrate import upgrade_database
from duetime.store.sqlalchemy import SQLAlchemyStore

START = datetime(2030, 1, 1, tzinfo=UTC)


@pytest.fixture(scope="module")
def store(tmp_path_factory: pytest.TempPathFactory) -> Iterator[SQLAlchemyStore]:
    path: Path = tmp_path_factory.mktemp("pages") / "pages.db"
    url = f"sqlite:///{path}"
    upgrade_database(url)
    s = SQLAlchemyStore(url, clock=FakeClock(START))
    yield s
    s.dispose()


def _reset(store: SQLAlchemyStore, offsets: list[int]) -> None:
    with store.write() as conn:
        conn.execute(sa.delete(tables.runs))
        for offset in offsets:
            at = START + timedelta(seconds=offset)
            values = rows.new_run_values(
                schedule=None,
                tenant="t",
                job="j",
                parameters={},
                kind=RunKind.MANUAL,
                scheduled_for=at,
                available_at=at,
                now=at,
                max_attempts=1,
                timeout=None,
                priority=0,
                executor="default",
                max_recoveries=0,
                retry_backoff=0,
            )
            conn.execute(sa.insert(tables.runs).values(**values))


@settings(
    max_examples=40, deadline=None, suppress_health_check=[HealthCheck.function_scoped_fixture]
)
@given(
    offsets=st.lists(st.integers(min_value=0, max_value=4), min_size=0, max_size=40),
    limit=st.integers(min_value=1, max_value=12),
)
def test_pages_cover_every_run_once_in_order(
    store: SQLAlchemyStore, offsets: list[int], limit: int
) -> None:
    _reset(store, offsets)
    seen = []
    cursor = None
    while True:
        page = store.list_runs("t", limit=limit, cursor=cursor)
        assert len(page.items) <= limit
        seen += [(run.created_at, run.id) for run in page.items]
        cursor = page.next_cursor
        if cursor is None:
            break
    assert seen == sorted(seen, reverse=True)
    assert len(seen) == len(set(seen)) == len(offsets)
