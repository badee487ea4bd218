"""Schedule input normalisation: aliases and trigger shapes from other schedulers."""

from __future__ import annotations

import pytest

from duetime.api.normalize import normalize_schedule_input, reject_nul
from duetime.errors import ValidationError


def test_aliases_map_to_canonical_fields() -> None:
    out = normalize_schedule_input(
        {
            "job_name": "nightly",
            "job_type": "duetime.noop",
            "is_enabled": False,
            "timeout_seconds": 30,
            "cron_expression": "0 3 * * *",
        }
    )
    assert out == {
        "name": "nightly",
        "job": "duetime.noop",
        "enabled": False,
        "timeout": 30,
        "trigger": {"type": "cron", "expression": "0 3 * * *"},
    }


def test_cron_shortcut() -> None:
    out = normalize_schedule_input({"name": "a", "cron": "*/5 * * * *"})
    assert out["trigger"] == {"type": "cron", "expression": "*/5 * * * *"}
    assert "cron" not in out


def test_interval_shortcuts_combine() -> None:
    out = normalize_schedule_input({"interval_hours": 1, "interval_minutes": 30})
    assert out == {"trigger": {"type": "interval", "hours": 1, "minutes": 30}}


def test_apscheduler_trigger_and_kwargs() -> None:
    out = normalize_schedule_input({"trigger": "cron", "trigger_kwargs": {"hour": 3}})
    assert out["trigger"] == {"trigger": "cron", "trigger_kwargs": {"hour": 3}}


def test_canonical_trigger_passes_through() -> None:
    spec = {"type": "date", "run_at": "2030-01-01T00:00:00Z"}
    assert normalize_schedule_input({"trigger": spec})["trigger"] == spec
    assert normalize_schedule_input({"trigger": "0 3 * * *"})["trigger"] == "0 3 * * *"


def test_recurrence_block_is_lifted() -> None:
    out = normalize_schedule_input(
        {"recurrence": {"cron": "0 9 * * 1-5", "timezone": "Europe/Stockholm"}}
    )
    assert out == {
        "timezone": "Europe/Stockholm",
        "trigger": {"type": "cron", "expression": "0 9 * * 1-5"},
    }


@pytest.mark.parametrize(
    ("data", "field"),
    [
        ({"cron": "* * * * *", "trigger": {"type": "interval", "seconds": 5}}, "trigger"),
        ({"job": "a", "job_type": "b"}, "job_type"),
        ({"trigger_kwargs": {"hour": 1}}, "trigger_kwargs"),
        ({"trigger": "cron", "trigger_kwargs": [1]}, "trigger_kwargs"),
        ({"cron": 5}, "cron"),
        ({"interval_seconds": "ten"}, "interval_seconds"),
        ({"recurrence": {"cron": "* * * * *", "colour": 1}}, "recurrence"),
    ],
)
def test_conflicts_and_bad_shapes_name_the_field(data: dict[str, object], field: str) -> None:
    with pytest.raises(ValidationError) as err:
        normalize_schedule_input(data)
    assert err.value.field == field


def test_same_value_under_alias_and_name_is_fine() -> None:
    assert normalize_schedule_input({"job": "a", "job_type": "a"}) == {"job": "a"}


def test_reject_nul_names_the_nested_field() -> None:
    reject_nul({"a": ["ok", {"b": "fine"}]}, "parameters")
    with pytest.raises(ValidationError) as err:
        reject_nul({"a": ["ok", {"b": "x\x00"}]}, "parameters")
    assert err.value.field == "parameters.a.1.b"
