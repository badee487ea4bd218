"""rows.py: insert dicts, row conversion and settings resolution."""

from __future__ import annotations

import uuid
from dataclasses import dataclass
from datetime import UTC, datetime

import pytest

from duetime.models import RunKind, RunState, Schedule
from duetime.store import rows
from duetime.store.tables import runs

NOW = datetime(2030, 1, 1, tzinfo=UTC)


def _schedule(**kw: object) -> Schedule:
    base: dict[str, object] = {
        "id": "s1", "tenant": "default", "name": "n", "job": "j", "trigger": {}, "timezone": "UTC"
    }  # fmt: skip
    base.update(kw)
    return Schedule(**base)  # type: ignore[arg-type]


def _run_values(**kw: object) -> dict[str, object]:
    args: dict[str, object] = {
        "schedule": _schedule(),
        "tenant": "default",
        "job": "j",
        "parameters": {"a": 1},
        "kind": RunKind.MANUAL,
        "scheduled_for": NOW,
        "available_at": NOW,
        "now": NOW,
        "max_attempts": 2,
        "timeout": 5.0,
        "priority": 3,
        "executor": "default",
        "max_recoveries": 3,
        "retry_backoff": 10.0,
    }
    args.update(kw)
    return rows.new_run_values(**args)  # type: ignore[arg-type]


def test_new_run_values_fill_every_column_with_a_fresh_id() -> None:
    a, b = _run_values(), _run_values()
    assert set(a) == {c.name for c in runs.columns}
    assert a["id"] != b["id"]
    assert a["schedule_id"] == "s1"
    assert a["schedule_name"] == "n"
    assert a["state"] == "pending"
    assert a["kind"] == "manual"


def test_new_run_values_accept_extra_columns_and_refuse_unknown() -> None:
    v = _run_values(state=RunState.MISSED, missed_count=4, missed_until=NOW)
    assert (v["state"], v["missed_count"]) == ("missed", 4)
    with pytest.raises(TypeError, match="bogus"):
        _run_values(bogus=1)


def test_row_to_run_round_trips_an_insert_dict() -> None:
    values = _run_values(error={"type": "E", "message": "m", "traceback": "tb"})
    run = rows.row_to_run(values)
    assert run.state == "pending"
    assert run.kind is RunKind.MANUAL
    assert run.error is not None
    assert run.error.message == "m"
    assert run.parameters == {"a": 1}


@pytest.mark.parametrize(
    "extra",
    [
        {},
        {"error": {"type": "E", "message": "m", "traceback": "tb"}, "state": RunState.FAILED},
        {"state": RunState.RUNNING, "worker": "w", "lease_token": "t", "cancel_requested": 1},
        {"state": RunState.MISSED, "missed_count": 4, "missed_until": NOW},
    ],
)
def test_run_from_insert_is_row_to_run_of_the_same_dict(extra: dict[str, object]) -> None:
    values = _run_values(**extra)
    fast, slow = rows.run_from_insert(values), rows.row_to_run(values)
    assert fast == slow
    assert type(fast.kind) is RunKind
    assert type(fast.state) is RunState
    assert fast.cancel_requested is slow.cancel_requested


@dataclass
class _JobType:
    timeout: float | None
    max_attempts: int | None


class _Registry:
    def find(self, name: str) -> _JobType | None:
        return _JobType(timeout=300, max_attempts=3) if name == "j" else None


@pytest.mark.parametrize(
    ("schedule_kw", "source", "expected"),
    [
        ({}, None, {"max_attempts": 1, "timeout": 1800.0}),
        ({}, _Registry(), {"max_attempts": 3, "timeout": 300.0}),
        ({"job": "other"}, _Registry(), {"max_attempts": 1, "timeout": 1800.0}),
        ({"timeout": 7, "max_attempts": 2}, _Registry(), {"max_attempts": 2, "timeout": 7.0}),
        ({}, _JobType(timeout=None, max_attempts=4), {"max_attempts": 4, "timeout": 1800.0}),
        ({}, {"timeout": 60, "max_attempts": 5}, {"max_attempts": 5, "timeout": 60.0}),
    ],
)
def test_resolve_run_settings_schedule_then_job_then_instance(
    schedule_kw: dict[str, object], source: object, expected: dict[str, object]
) -> None:
    assert rows.resolve_run_settings(_schedule(**schedule_kw), source) == expected


def test_readers_match_row_conversion_whatever_the_column_order() -> None:
    schedule = _schedule(parameters={"a": 1}, labels={"team": "x"}, chain=["b"])
    row = {**schedule.to_dict(), "created_by": "*:admin"}  # a column the domain lacks
    row.update(overlap="skip", source="api", state="active", last_run_state="failed")
    keys = sorted(row, reverse=True)
    converted = rows.schedule_reader(keys)(tuple(row[k] for k in keys))
    assert converted == rows.row_to_schedule(row)
    assert converted.last_run_state == RunState.FAILED
    run_row = {c.name: None for c in runs.c} | _run_values()
    run_row["error"] = {"type": "E", "message": "m"}
    run_keys = list(reversed(list(run_row)))
    run = rows.run_reader(run_keys)(tuple(run_row[k] for k in run_keys))
    assert run == rows.row_to_run(run_row)
    assert run.error is not None
    assert run.error.type == "E"


def test_new_uuid_is_a_random_rfc_4122_version_4_uuid() -> None:
    made = [rows.new_uuid() for _ in range(2000)]
    parsed = [uuid.UUID(text) for text in made]
    assert all(str(u) == text for u, text in zip(parsed, made, strict=True))  # canonical text
    assert {u.version for u in parsed} == {4}
    assert {u.variant for u in parsed} == {uuid.RFC_4122}
    assert len(set(made)) == len(made)
