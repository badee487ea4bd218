"""Run inserts skip a second ``scheduled`` run of one fire, on both backends."""

from __future__ import annotations

from datetime import UTC, datetime

from test_engine_helpers import add_schedule

from duetime.models import RunKind
from duetime.store import claims
from duetime.store.rows import new_run_values
from duetime.store.sqlalchemy import SQLAlchemyStore

T0 = datetime(2030, 1, 1, tzinfo=UTC)


def _fire_row(schedule_id: str, kind: RunKind = RunKind.SCHEDULED) -> dict[str, object]:
    return new_run_values(
        schedule={"id": schedule_id, "name": "s"}, tenant="default", job="ok", parameters={},
        kind=kind, scheduled_for=T0, available_at=T0, now=T0, max_attempts=1, timeout=None,
        priority=0, executor="default", max_recoveries=3, retry_backoff=10.0,
    )  # fmt: skip


def test_a_second_scheduled_run_of_one_fire_is_skipped(store: SQLAlchemyStore) -> None:
    sid = add_schedule(store, "s", "0 * * * *", now=T0)
    with store.write() as conn:
        first = claims._insert_runs(store, conn, [_fire_row(sid)])
    duplicate, manual = _fire_row(sid), _fire_row(sid, RunKind.MANUAL)
    with store.write() as conn:
        second = claims._insert_runs(store, conn, [duplicate, manual])
    assert len(first) == 1
    assert [r.id for r in second] == [manual["id"]]  # the manual run of that instant stays
