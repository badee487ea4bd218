"""The engine's due-schedules read: range searches in priority order, no scan, no sort."""

from __future__ import annotations

from datetime import UTC, datetime
from pathlib import Path
from typing import Any

import sqlalchemy as sa
from test_engine_helpers import add_schedule

from duetime.clock import FakeClock, SystemClock
from duetime.store import claims
from duetime.store.migrate import upgrade_database
from duetime.store.sqlalchemy import SQLAlchemyStore


def test_the_due_read_searches_its_indexes_and_sorts_nothing_of_priority_0(
    tmp_path: Path,
) -> None:
    url = f"sqlite:///{tmp_path / 'plan.db'}"
    upgrade_database(url)
    store = SQLAlchemyStore(url, clock=SystemClock())
    seen: list[tuple[str, Any]] = []

    def capture(_c: Any, _cur: Any, statement: str, parameters: Any, *_: Any) -> None:
        if "FROM duetime_schedules" in statement and "ORDER BY" in statement:  # 3 segments
            seen.append((statement, parameters))

    sa.event.listen(store.engine, "before_cursor_execute", capture)
    try:
        now = datetime.now(UTC)
        with store.write() as conn:
            claims._due_schedules(store, conn, now, now, 100)
            sa.event.remove(store.engine, "before_cursor_execute", capture)
            plans = [
                [row[3] for row in conn.exec_driver_sql(f"EXPLAIN QUERY PLAN {sql}", params)]
                for sql, params in seen
            ]
    finally:
        store.dispose()
    above, default, below = plans
    # with the horizon only inside the OR, SQLite scanned the whole index: 100,000 active
    # schedules cost 13.7 ms a cycle instead of 0.27 ms
    assert any("USING INDEX ix_duetime_schedules_due (next_run_at<" in s for s in default)
    # priority 0 in index order: no sort of every due row (11 ms a batch with 50,000 due)
    assert not any("TEMP B-TREE" in step for step in default), default
    # other priorities: searched by due time too (migration 0006). Keyed by priority first
    # (0005), the search was by priority alone and read every prioritized schedule, due or
    # not: 100,000 of them with 100 due cost 12.5 ms a read instead of 1.4 ms
    for plan in (above, below):
        searched = "USING INDEX ix_duetime_schedules_due_prioritized (next_run_at<"
        assert any(searched in s for s in plan), plan


def test_due_schedules_come_by_priority_then_next_run_at_across_segments(
    store: SQLAlchemyStore, clock: FakeClock
) -> None:
    names = {}
    for name, priority, minute in [
        ("zero-late", 0, 7), ("low", -2, 1), ("high", 7, 9), ("mid", 3, 2), ("zero-early", 0, 3),
    ]:  # fmt: skip
        sid = add_schedule(store, name, f"{minute} * * * *", now=clock.now(), priority=priority)
        names[sid] = name
    clock.advance(3600)
    now = clock.now()

    def batch(size: int) -> list[str]:
        with store.write() as conn:
            return [names[s.id] for s, _ in claims._due_schedules(store, conn, now, now, size)]

    everything = ["high", "mid", "zero-early", "zero-late", "low"]
    for size in range(1, 7):
        assert batch(size) == everything[:size]
