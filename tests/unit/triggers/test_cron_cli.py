"""``duetime cron validate|next`` through Typer's CliRunner (in process)."""

from __future__ import annotations

import json
from datetime import UTC, datetime

import pytest
from typer.testing import CliRunner

from duetime.cli import cron as cron_cli
from duetime.cli.main import app
from duetime.clock import FakeClock

runner = CliRunner()
NOW = datetime(2026, 3, 28, 12, 0, tzinfo=UTC)


@pytest.fixture(autouse=True)
def fixed_now(monkeypatch: pytest.MonkeyPatch) -> None:
    """Make "now" 2026-03-28T12:00Z so outputs are exact."""
    monkeypatch.setattr(cron_cli, "SystemClock", lambda: FakeClock(NOW))


def test_validate_valid_expression() -> None:
    result = runner.invoke(app, ["cron", "validate", "30 2 * * *", "--tz", "Europe/Stockholm"])
    assert result.exit_code == 0, result.output
    assert "valid: 30 2 * * * (Europe/Stockholm)" in result.stdout
    assert "at 02:30, every day" in result.stdout
    # the spring-forward night: 02:30 does not exist, Debian cron runs it at 03:00
    assert "2026-03-29T01:00:00+00:00" in result.stdout
    assert "2026-03-29T03:00:00+02:00" in result.stdout
    assert "2026-04-02T02:30:00+02:00" in result.stdout  # the fifth fire
    assert "2026-04-03" not in result.stdout


@pytest.mark.parametrize(
    ("args", "message"),
    [
        (["0 0 32 * *"], 'invalid: day-of-month 32 is out of range 1–31 in "0 0 32 * *"'),
        (["0 0 30 2 *"], "can never fire"),
        (["* * * *"], "got 4"),
        (["0 3 * * *", "--tz", "Mars/Base"], "unknown time zone 'Mars/Base'"),
    ],
)
def test_validate_invalid_exits_2_with_one_line(args: list[str], message: str) -> None:
    result = runner.invoke(app, ["cron", "validate", *args])
    assert result.exit_code == 2
    assert message in result.output
    assert len(result.output.strip().splitlines()) == 1
    assert "Traceback" not in result.output


def test_next_json_in_zone() -> None:
    result = runner.invoke(
        app,
        [
            "cron",
            "next",
            "0 1-3 * * *",
            "--tz",
            "Europe/Stockholm",
            "--after",
            "2026-03-29T00:00:00+01:00",
            "--count",
            "3",
            "--json",
        ],
    )
    assert result.exit_code == 0, result.output
    assert json.loads(result.stdout) == [
        "2026-03-29T01:00:00+01:00",
        "2026-03-29T03:00:00+02:00",
        "2026-03-30T01:00:00+02:00",
    ]


def test_next_plain_lines_and_default_count() -> None:
    result = runner.invoke(app, ["cron", "next", "@daily", "--after", "2026-01-01T00:00:00Z"])
    assert result.exit_code == 0, result.output
    assert result.stdout.splitlines() == [f"2026-01-0{d}T00:00:00+00:00" for d in range(2, 7)]


def test_next_naive_after_is_read_in_tz() -> None:
    result = runner.invoke(
        app,
        [
            "cron",
            "next",
            "0 9 * * *",
            "--tz",
            "America/New_York",
            "--after",
            "2026-01-01T08:59",
            "--count",
            "1",
            "--json",
        ],
    )
    assert result.exit_code == 0, result.output
    assert json.loads(result.stdout) == ["2026-01-01T09:00:00-05:00"]


def test_next_after_defaults_to_the_clock() -> None:
    result = runner.invoke(app, ["cron", "next", "0 * * * *", "--count", "2", "--json"])
    assert result.exit_code == 0, result.output
    assert json.loads(result.stdout) == ["2026-03-28T13:00:00+00:00", "2026-03-28T14:00:00+00:00"]


def test_next_stops_when_the_trigger_ends() -> None:
    result = runner.invoke(app, ["cron", "next", "0 0 0 1 1 * 2027", "--count", "3", "--json"])
    assert result.exit_code == 0, result.output
    assert json.loads(result.stdout) == ["2027-01-01T00:00:00+00:00"]


@pytest.mark.parametrize(
    ("args", "message"),
    [
        (["--after", "yesterday"], "--after 'yesterday' is not an ISO-8601 date-time"),
        (["--count", "0"], "--count must be between 1 and 1000, not 0"),
        (["--count", "many"], "--count must be a whole number, not 'many'"),
        (["--count", "1001"], "--count must be between 1 and 1000"),
        (["--tz", "Nowhere/Land"], "unknown time zone 'Nowhere/Land'"),
    ],
)
def test_next_bad_input_exits_2_with_one_line(args: list[str], message: str) -> None:
    result = runner.invoke(app, ["cron", "next", "0 3 * * *", *args])
    assert result.exit_code == 2
    assert message in result.stderr
    assert len(result.stderr.strip().splitlines()) == 1
    assert result.stdout == ""


def test_next_bad_expression_exits_2() -> None:
    result = runner.invoke(app, ["cron", "next", "*/0 * * * *"])
    assert result.exit_code == 2
    assert "minute step 0 in '*/0' must be at least 1" in result.stderr


@pytest.mark.parametrize("after", ["0001-01-01T00:00", "9999-12-31T20:00-14:00"])
def test_next_after_out_of_range_is_bad_input(after: str) -> None:
    """An --after whose UTC instant falls outside year 1–9999 crashed with OverflowError."""
    result = runner.invoke(
        app, ["cron", "next", "* * * * *", "--after", after, "--tz", "Asia/Tokyo"]
    )
    assert result.exit_code == 2, result.output
    assert "--after" in result.output
