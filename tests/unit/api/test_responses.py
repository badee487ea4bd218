"""Schedules and runs are serialised from the domain objects: the JSON must be exactly what
the documented response models (``ScheduleOut``, ``RunOut``) would give, and no more."""

from __future__ import annotations

import dataclasses
import json
from datetime import UTC, datetime, timedelta
from typing import Any

from duetime.api.responses import (
    run_page_response,
    run_response,
    schedule_page_response,
    schedule_response,
)
from duetime.api.schemas import RunOut, ScheduleOut
from duetime.models import (
    Overlap,
    Run,
    RunError,
    RunKind,
    RunState,
    Schedule,
    ScheduleState,
    Source,
)

AT = datetime(2030, 1, 31, 9, 0, 0, 123456, tzinfo=UTC)


def _schedule() -> Schedule:
    return Schedule(
        id="s1",
        tenant="t",
        name="nightly",
        job="duetime.noop",
        trigger={"version": 1, "type": "cron", "expression": "0 3 * * *"},
        timezone="Europe/Paris",
        description="d",
        parameters={"a": [1, {"b": None}]},
        start_date=AT,
        overlap=Overlap.BUFFER_ONE,
        misfire_grace_time=None,
        chain=["next"],
        labels={"team": "ops"},
        source=Source.MANIFEST,
        state=ScheduleState.PAUSED,
        next_run_at=AT + timedelta(days=1),
        last_run_state=RunState.TIMED_OUT,
        version=7,
        created_at=AT,
        updated_at=AT,
    )


def _run() -> Run:
    return Run(
        id="r1",
        schedule_id="s1",
        tenant="t",
        job="duetime.noop",
        kind=RunKind.RETRY,
        state=RunState.FAILED,
        scheduled_for=AT,
        available_at=AT,
        created_at=AT,
        parameters={"x": 1},
        started_at=AT,
        finished_at=AT + timedelta(seconds=2),
        attempt=2,
        max_attempts=3,
        result={"deep": [1, 2.5, "three"]},
        error=RunError("ValueError", "bad", "Traceback ..."),
        timeout=30.0,
    )


def _body(response: Any) -> Any:
    assert response.media_type == "application/json"
    return json.loads(response.body)


def test_the_domain_objects_have_exactly_the_response_models_fields() -> None:
    assert {f.name for f in dataclasses.fields(Schedule)} == set(ScheduleOut.model_fields)
    assert {f.name for f in dataclasses.fields(Run)} == set(RunOut.model_fields)


def test_a_schedule_serialises_as_schedule_out() -> None:
    schedule = _schedule()
    expected = json.loads(ScheduleOut.of(schedule).model_dump_json())

    response = schedule_response(schedule, status=201, headers={"ETag": '"7"'})

    assert _body(response) == expected
    assert response.status_code == 201
    assert response.headers["etag"] == '"7"'
    assert _body(schedule_page_response([schedule], "c")) == {
        "items": [expected],
        "next_cursor": "c",
    }
    assert _body(schedule_page_response([], None)) == {"items": [], "next_cursor": None}


def test_a_run_serialises_as_run_out() -> None:
    run = _run()
    expected = json.loads(RunOut.of(run).model_dump_json())

    assert _body(run_response(run, status=201)) == expected
    assert _body(run_page_response([run], None)) == {"items": [expected], "next_cursor": None}
