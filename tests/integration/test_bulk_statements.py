"""The engine's tuple-bound batch writes store exactly what SQLAlchemy's typed path stores."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta
from typing import Any

import pytest
import sqlalchemy as sa

from duetime.models import RunKind, RunState
from duetime.store import tables as t
from duetime.store.bulk import insert_statement, update_statement
from duetime.store.rows import new_run_values
from duetime.store.sqlalchemy import SQLAlchemyStore

T0 = datetime(2030, 1, 1, 12, 30, 15, 123456, tzinfo=UTC)


def _run(**extra: Any) -> dict[str, Any]:
    return new_run_values(
        schedule=None, tenant="default", job="ok", parameters={"a": [1, "x"], "n": None},
        kind=RunKind.MANUAL, scheduled_for=T0, available_at=T0, now=T0, max_attempts=2,
        timeout=1.5, priority=3, executor="default", max_recoveries=3, retry_backoff=10.0,
        **extra,
    )  # fmt: skip


def _raw(store: SQLAlchemyStore, run_id: str) -> tuple[Any, ...]:
    """The stored columns as the driver returns them (no type processing)."""
    names = ", ".join(f'"{c.name}"' for c in t.runs.columns if c.name != "id")
    with store.read() as conn:
        row = conn.exec_driver_sql(f"SELECT {names} FROM duetime_runs WHERE id = '{run_id}'")
        return tuple(row.one())


def test_bulk_insert_stores_what_sqlalchemy_stores(store: SQLAlchemyStore) -> None:
    bulk = _run(cancel_requested=True, lateness_ms=5, started_at=T0 + timedelta(seconds=1))
    typed = {**bulk, "id": "typed"}
    with store.write() as conn:
        conn.execute(sa.insert(t.runs), [typed])
        assert insert_statement(t.runs, store.dialect).execute(conn, [bulk]) == 1
    assert _raw(store, bulk["id"]) == _raw(store, "typed")  # JSON null, booleans, instants


def test_bulk_update_converts_instants_json_and_counts_rows(store: SQLAlchemyStore) -> None:
    run = _run()
    later = T0 + timedelta(seconds=2)
    finish = update_statement(
        t.runs,
        store.dialect,
        set_columns={"state": "state", "finished_at": "at", "result": "result", "error": "e"},
        where_columns={"id": "b_id", "state": "b_was"},
    )
    with store.write() as conn:
        conn.execute(sa.insert(t.runs), [run])
        rows = [
            {"state": "succeeded", "at": later, "result": {"k": [1]}, "e": None, "b_id": run["id"],
             "b_was": RunState.PENDING.value},
            {"state": "succeeded", "at": later, "result": None, "e": None, "b_id": "missing",
             "b_was": RunState.PENDING.value},
        ]  # fmt: skip
        assert finish.execute(conn, rows) == 1
    with store.read() as conn:
        stored = conn.execute(sa.select(t.runs).where(t.runs.c.id == run["id"])).one()
    assert (stored.state, stored.finished_at, stored.result) == ("succeeded", later, {"k": [1]})
    assert stored.error is None


def test_naive_instants_are_refused(store: SQLAlchemyStore) -> None:
    naive = _run(started_at=datetime(2030, 1, 1))
    with pytest.raises(ValueError, match="naive datetime"), store.write() as conn:
        insert_statement(t.runs, store.dialect).execute(conn, [naive])
