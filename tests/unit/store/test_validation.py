"""Pure pieces of the store and facade: cursors, names, field checks, trigger planning."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta
from typing import Any

import pytest

from duetime.clock import FakeClock
from duetime.errors import InvalidTriggerError, ValidationError
from duetime.scheduler import check_name, plan_trigger, validate_fields
from duetime.store.base import Store
from duetime.store.sqlalchemy import SQLAlchemyStore, check_limit, decode_cursor, encode_cursor

NOW = datetime(2030, 1, 1, tzinfo=UTC)


def test_cursor_round_trips_and_is_opaque() -> None:
    cursor = encode_cursor(NOW, "abc")
    assert "abc" not in cursor
    assert decode_cursor(cursor) == (NOW, "abc")


@pytest.mark.parametrize("bad", ["", "x", "bm90IGpzb24", encode_cursor(NOW, "a")[:-3], "W10"])
def test_bad_cursors_name_the_field(bad: str) -> None:
    with pytest.raises(ValidationError) as info:
        decode_cursor(bad)
    assert info.value.field == "cursor"


@pytest.mark.parametrize("limit", [0, 501, True, 2.5, "10"])
def test_limits(limit: Any) -> None:
    with pytest.raises(ValidationError):
        check_limit(limit)
    assert check_limit(500) == 500


@pytest.mark.parametrize("name", ["a", "Nightly Product Validation", "x" * 200, "é-✓ 1"])
def test_check_name_accepts(name: str) -> None:
    assert check_name(name) == name


@pytest.mark.parametrize(
    "name", ["", " a", "a ", "a\nb", "a\u200bb", "a\u2028b", "x" * 201, None, 3]
)
def test_check_name_refuses(name: Any) -> None:
    with pytest.raises(ValidationError) as info:
        check_name(name, "tenant")
    assert info.value.field == "tenant"


def test_validate_fields_normalises_numbers_and_refuses_unknown() -> None:
    assert validate_fields({"priority": 3.0, "timeout": 5}) == {"priority": 3, "timeout": 5.0}
    assert validate_fields({"executor": "celery:q1"}) == {"executor": "celery:q1"}
    for fields, field in [({"next_run_at": None}, "next_run_at"), ({"foo": 1}, "foo")]:
        with pytest.raises(ValidationError) as info:
            validate_fields(fields)
        assert info.value.field == field


def _plan(spec: Any, **kw: Any) -> tuple[dict[str, Any], datetime]:
    args: dict[str, Any] = {
        "timezone": "UTC",
        "start_at": None,
        "end_at": None,
        "anchor_default": NOW,
        "now": NOW,
        "misfire_grace_time": 60.0,
    }
    args.update(kw)
    return plan_trigger(spec, **args)


def test_plan_trigger_first_fire_is_strictly_after_now() -> None:
    spec, first = _plan("0 0 * * *")
    assert first == NOW + timedelta(days=1)
    assert spec["expression"] == "0 0 * * *"
    _spec, interval_first = _plan({"interval_seconds": 30})
    assert interval_first == NOW + timedelta(seconds=30)


def test_plan_trigger_date_in_the_window() -> None:
    run_at = NOW - timedelta(seconds=10)
    with pytest.raises(InvalidTriggerError) as info:
        _plan({"type": "date", "run_at": run_at.isoformat()}, start_at=NOW)
    assert info.value.field == "trigger.run_at"
    assert _plan({"type": "date", "run_at": NOW.isoformat()})[1] == NOW


def test_store_satisfies_the_protocol(tmp_path: Any) -> None:
    store = SQLAlchemyStore(f"sqlite:///{tmp_path / 'x.db'}", clock=FakeClock(NOW))
    assert isinstance(store, Store)
    store.dispose()
