"""``duetime schedules ...`` through Typer's runner on SQLite."""

from __future__ import annotations

from collections.abc import Callable
from typing import Any

import pytest
from click.testing import Result

Cli = Any  # the ``cli`` fixture (tests/unit/cli/conftest.py)
ErrorLine = Callable[[Result], str]


def add(cli: Cli, name: str, *extra: str) -> Result:
    return cli("schedules", "add", name, "--job", "demo.quick", *extra)


def test_add_then_list_and_show(cli: Cli) -> None:
    result = add(
        cli,
        "nightly",
        "--cron",
        "30 2 * * *",
        "--tz",
        "Europe/Stockholm",
        "--param",
        "greeting=hej",
        "--max-attempts",
        "3",
        "--timeout",
        "5m",
        "--overlap",
        "buffer_one",
        "--retry-backoff",
        "90s",
        "--label",
        "team=ops",
    )
    assert result.exit_code == 0, result.output
    assert "created schedule nightly" in result.stdout
    (item,) = cli.json("schedules", "list")["items"]
    assert item["name"] == "nightly"
    assert item["source"] == "cli"
    assert item["trigger"]["expression"] == "30 2 * * *"
    assert item["timezone"] == "Europe/Stockholm"
    assert item["parameters"] == {"greeting": "hej"}
    assert (item["max_attempts"], item["timeout"], item["retry_backoff"]) == (3, 300, 90)
    assert item["overlap"] == "buffer_one"
    assert item["labels"] == {"team": "ops"}
    assert item["next_run_local"].endswith(("+01:00", "+02:00"))
    shown = cli.json("schedules", "show", "nightly", "--next", "3")
    assert shown["id"] == item["id"]
    assert len(shown["next_fire_times"]) == 3
    text = cli("schedules", "show", item["id"])
    assert text.exit_code == 0
    assert "Europe/Stockholm" in text.stdout


@pytest.mark.parametrize(
    ("option", "value", "check"),
    [
        ("--interval", "15m", lambda t: t["type"] == "interval" and t["seconds"] == 900),
        ("--at", "2099-01-01T09:00:00+00:00", lambda t: t["run_at"].startswith("2099-01-01")),
        (
            "--trigger",
            '{"type": "calendar", "months": 1, "hour": 3}',
            lambda t: t["type"] == "calendar",
        ),
        ("--trigger", "@hourly", lambda t: t["expression"] == "@hourly"),
    ],
)
def test_add_with_each_trigger_option(cli: Cli, option: str, value: str, check: object) -> None:
    assert add(cli, "s", option, value).exit_code == 0
    trigger = cli.json("schedules", "show", "s")["trigger"]
    assert check(trigger)  # type: ignore[operator]


def test_edit_pause_resume_trigger_delete(cli: Cli) -> None:
    assert add(cli, "s", "--cron", "0 * * * *").exit_code == 0
    edited = cli.json(
        "schedules",
        "edit",
        "s",
        "--interval",
        "2h",
        "--priority",
        "5",
        "--description",
        "two-hourly",
    )
    assert (edited["trigger"]["type"], edited["trigger"]["seconds"]) == ("interval", 7200)
    assert (edited["priority"], edited["description"], edited["version"]) == (5, "two-hourly", 2)
    paused = cli.json("schedules", "pause", "s")
    assert (paused["state"], paused["enabled"]) == ("paused", False)
    resumed = cli.json("schedules", "resume", "s")
    assert resumed["state"] == "active"
    run = cli.json("schedules", "trigger", "s", "--param", "greeting=now")
    assert (run["kind"], run["state"], run["parameters"]) == (
        "manual",
        "pending",
        {"greeting": "now"},
    )
    assert cli("schedules", "delete", "s").exit_code == 0
    assert cli.json("schedules", "list")["items"] == []


def test_edit_with_stale_expected_version_is_refused(cli: Cli, error_line: ErrorLine) -> None:
    assert add(cli, "s", "--cron", "0 * * * *").exit_code == 0
    line = error_line(cli("schedules", "edit", "s", "--priority", "1", "--expected-version", "7"))
    assert "version" in line


@pytest.mark.parametrize(
    ("args", "words"),
    [
        (["show", "nope"], "'nope' not found"),
        (["pause", "nope"], "not found"),
        (["delete", "nope"], "not found"),
        (["trigger", "nope"], "not found"),
        (["edit", "nope", "--priority", "1"], "not found"),
        (["add", "x", "--job", "demo.quick", "--cron", "0 0 * * 8"], "day-of-week 8"),
        (
            ["add", "x", "--job", "demo.quick", "--interval", "5 parsecs"],
            "--interval: bad duration",
        ),
        (
            ["add", "x", "--job", "demo.quick", "--cron", "* * * * *", "--timeout", "soon"],
            "--timeout: bad duration",
        ),
        (["add", "x", "--job", "demo.quick"], "give one of --cron"),
        (
            ["add", "x", "--job", "demo.quick", "--cron", "* * * * *", "--interval", "5m"],
            "not several",
        ),
        (["add", "x", "--job", "no.such.job", "--cron", "* * * * *"], "unknown job type"),
        (
            ["add", "x", "--job", "demo.quick", "--cron", "* * * * *", "--tz", "Mars/Base"],
            "unknown time zone",
        ),
        (
            ["add", "x", "--job", "demo.quick", "--cron", "* * * * *", "--param", "novalue"],
            "key=value",
        ),
        (["add", "x", "--job", "demo.quick", "--cron", "* * * * *", "--param", "nope=1"], "nope"),
        (
            ["add", "x", "--job", "demo.quick", "--cron", "* * * * *", "--overlap", "sometimes"],
            "overlap",
        ),
        (["add", "x", "--job", "demo.quick", "--at", "yesterday"], "--at: bad date-time"),
        (["add", "x", "--job", "demo.quick", "--at", "2001-01-01T00:00:00+00:00"], "past"),
        (["add", "x", "--job", "demo.quick", "--trigger", "{bad json"], "--trigger: invalid JSON"),
        (["edit", "x"], "nothing to change"),
    ],
)
def test_bad_input_is_one_line_and_exit_2(
    cli: Cli, error_line: ErrorLine, args: list[str], words: str
) -> None:
    if args[0] == "edit" and args[1] == "x":
        assert add(cli, "x", "--cron", "* * * * *").exit_code == 0
    line = error_line(cli("schedules", *args))
    assert words in line, line


def test_duplicate_name_is_a_conflict(cli: Cli, error_line: ErrorLine) -> None:
    assert add(cli, "dup", "--cron", "* * * * *").exit_code == 0
    assert "dup" in error_line(add(cli, "dup", "--cron", "@daily"))


def test_typer_usage_errors_exit_2(cli: Cli) -> None:
    result = cli("schedules", "add", "x", "--job", "demo.quick", "--max-instances", "0")
    assert result.exit_code == 2
    assert "Traceback" not in result.output


def test_names_that_look_like_markup_are_printed_literally(cli: Cli) -> None:
    name = "Nightly [prod] [/oops]"
    assert add(cli, name, "--cron", "@daily").exit_code == 0
    for args in (["show-schedule"], ["schedules", "list"], ["schedules", "show", name]):
        result = cli(*args)
        assert result.exit_code == 0, result.output
        assert name in result.stdout
    forced = cli("force", name)
    assert forced.exit_code == 0, forced.output
    assert name in forced.stdout


@pytest.mark.parametrize(
    ("args", "words"),
    [
        (["schedules", "list", "--state", "bogus"], "state"),
        (["schedules", "resume", "nope"], "'nope' not found"),
        (["show-schedule", "--tenant", " x"], "tenant"),
        (["status", "--tenant", ""], "tenant"),
        (["schedules", "show", "x", "--database", "mysql://h/db"], "only sqlite"),
    ],
)
def test_more_bad_input_is_one_line_and_exit_2(
    cli: Cli, error_line: ErrorLine, args: list[str], words: str
) -> None:
    assert words in error_line(cli(*args))


def test_add_and_edit_every_field_option(cli: Cli) -> None:
    assert add(cli, "first", "--cron", "@daily").exit_code == 0
    created = cli.json(
        "schedules",
        "add",
        "second",
        "--job",
        "demo.quick",
        "--cron",
        "@hourly",
        "--chain",
        "first",
        "--paused",
        "--misfire-grace",
        "none",
        "--no-coalesce",
        "--executor",
        "thread",
        "--sla",
        "2m",
        "--max-recoveries",
        "0",
        "--max-instances",
        "3",
        "--start",
        "2030-01-01T00:00:00+00:00",
        "--end",
        "2031-01-01T00:00:00+00:00",
        "--jitter",
        "10s",
        "--params-json",
        '{"greeting": "a"}',
        "--param",
        "greeting=b",
    )
    assert created["chain"] == ["first"]
    assert (created["enabled"], created["state"]) == (False, "paused")
    assert (created["misfire_grace_time"], created["coalesce"]) == (None, False)
    assert (created["executor"], created["sla_seconds"]) == ("thread", 120)
    assert (created["max_recoveries"], created["max_instances"]) == (0, 3)
    assert created["start_date"].startswith("2030-01-01T00:00:00")
    assert created["end_date"].startswith("2031-01-01T00:00:00")
    assert created["trigger"]["jitter"] == 10
    assert created["parameters"] == {"greeting": "b"}
    edited = cli.json(
        "schedules",
        "edit",
        "second",
        "--name",
        "renamed",
        "--tz",
        "America/New_York",
        "--misfire-grace",
        "30s",
        "--coalesce",
        "--job",
        "demo.slow",
        "--param",
        "seconds=1",
    )
    assert (edited["name"], edited["timezone"], edited["job"]) == (
        "renamed",
        "America/New_York",
        "demo.slow",
    )
    assert (edited["misfire_grace_time"], edited["coalesce"]) == (30, True)
    assert edited["parameters"] == {"seconds": 1.0}


def test_edit_jitter_alone_keeps_the_trigger(cli: Cli) -> None:
    assert add(cli, "j", "--cron", "*/10 * * * *").exit_code == 0
    edited = cli.json("schedules", "edit", "j", "--jitter", "45s")
    assert (edited["trigger"]["expression"], edited["trigger"]["jitter"]) == ("*/10 * * * *", 45)
