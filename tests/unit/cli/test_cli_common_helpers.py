"""cli/common: error → exit-code mapping, parameters, JSON output, durations."""

from __future__ import annotations

import json
from datetime import UTC, datetime
from typing import Any

import pytest
import typer
from typer.testing import CliRunner

from duetime.cli.common import (
    fmt_seconds,
    handle_errors,
    jsonable,
    parse_duration,
    parse_param,
    parse_params,
)
from duetime.errors import (
    ConflictError,
    NotFoundError,
    SchemaOutdatedError,
    ValidationError,
)
from duetime.models import RunState


def invoke(exc: BaseException, monkeypatch: pytest.MonkeyPatch, debug: bool = False) -> Any:
    app = typer.Typer()

    @app.command()
    @handle_errors
    def boom() -> None:
        raise exc

    if debug:
        monkeypatch.setenv("DUETIME_DEBUG", "1")
    else:
        monkeypatch.delenv("DUETIME_DEBUG", raising=False)
    return CliRunner().invoke(app, [])


@pytest.mark.parametrize(
    ("exc", "code", "line"),
    [
        (ValidationError("is bad", field="cron"), 2, "error: cron: is bad"),
        (NotFoundError("schedule 'x' not found"), 2, "error: schedule 'x' not found"),
        (ConflictError("name taken"), 2, "error: name taken"),
        (SchemaOutdatedError("run `duetime migrate`"), 1, "error: run `duetime migrate`"),
        (
            RuntimeError("disk on fire\nsecond line"),
            1,
            "error: unexpected RuntimeError: disk on fire (set DUETIME_DEBUG=1 for the traceback)",
        ),
    ],
)
def test_errors_become_one_line_and_an_exit_code(
    monkeypatch: pytest.MonkeyPatch, exc: BaseException, code: int, line: str
) -> None:
    result = invoke(exc, monkeypatch)
    assert result.exit_code == code
    assert result.stderr.strip() == line
    assert "Traceback" not in result.output


def test_debug_env_shows_the_real_exception(monkeypatch: pytest.MonkeyPatch) -> None:
    result = invoke(RuntimeError("why"), monkeypatch, debug=True)
    assert isinstance(result.exception, RuntimeError)


def test_parse_param_reads_json_values_else_text() -> None:
    assert parse_param("days=7") == ("days", 7)
    assert parse_param("on=true") == ("on", True)
    assert parse_param("tags=[1, 2]") == ("tags", [1, 2])
    assert parse_param("who=ops team") == ("who", "ops team")
    assert parse_param("eq=a=b") == ("eq", "a=b")
    assert parse_params(["a=1", "a=2"]) == {"a": 2}
    with pytest.raises(ValidationError, match="key=value"):
        parse_param("=1")


def test_jsonable_handles_enums_datetimes_and_nesting() -> None:
    when = datetime(2030, 1, 1, tzinfo=UTC)
    data = jsonable({"state": RunState.FAILED, "at": [when], "n": (1, 2)})
    assert data == {"state": "failed", "at": ["2030-01-01T00:00:00+00:00"], "n": [1, 2]}
    json.dumps(data)


def test_durations_round_trip_through_the_formatter() -> None:
    assert parse_duration("1h30m") == 5400
    assert fmt_seconds(5400) == "1h30m"
    assert fmt_seconds(90) == "1m30s"
    assert fmt_seconds(86400) == "1d"
    assert fmt_seconds(0.5) == "0.5s"
    assert fmt_seconds(None) == "-"


def test_database_driver_errors_are_one_clear_line(monkeypatch: pytest.MonkeyPatch) -> None:
    from sqlalchemy.exc import OperationalError

    exc = OperationalError("SELECT 1", {}, Exception("connection refused\ndetails"))
    result = invoke(exc, monkeypatch)
    assert result.exit_code == 1
    assert result.stderr.strip() == "error: database error: connection refused"
