"""``duetime runs ...``, ``force``, ``show-schedule``, ``status`` and ``cleanup`` on SQLite."""

from __future__ import annotations

from collections.abc import Callable
from typing import Any

import pytest
from click.testing import Result

Cli = Any  # the ``cli`` fixture (tests/unit/cli/conftest.py)
ErrorLine = Callable[[Result], str]


def add(cli: Cli, name: str, job: str, *extra: str) -> None:
    result = cli("schedules", "add", name, "--job", job, "--cron", "0 0 1 1 *", *extra)
    assert result.exit_code == 0, result.output


def run_due(cli: Cli) -> list[Any]:
    """Execute every due run in this process (thread executor), as ``--once`` would."""
    scheduler = cli.scheduler(executor="thread")
    try:
        return list(scheduler.run_pending())
    finally:
        scheduler.close()


@pytest.fixture
def history(cli: Cli) -> dict[str, str]:
    """One succeeded quick run and one failed flaky run (with a traceback)."""
    add(cli, "quick", "demo.quick")
    add(cli, "flaky", "demo.flaky", "--max-attempts", "2", "--retry-backoff", "1h")
    ids = {name: cli.json("force", name)["id"] for name in ("quick", "flaky")}
    run_due(cli)
    return ids


def test_force_creates_a_pending_manual_run_listed_by_runs_list(cli: Cli) -> None:
    add(cli, "quick", "demo.quick")
    result = cli("force", "quick")
    assert result.exit_code == 0, result.output
    assert "pending" in result.stdout
    (run,) = cli.json("runs", "list")["items"]
    assert (run["kind"], run["state"], run["job"]) == ("manual", "pending", "demo.quick")


def test_runs_list_filters_and_show_prints_the_traceback(cli: Cli, history: dict[str, str]) -> None:
    runs = cli.json("runs", "list")["items"]
    states = {r["id"]: r["state"] for r in runs}
    assert states[history["quick"]] == "succeeded"
    assert states[history["flaky"]] == "failed"
    failed = cli.json("runs", "list", "--state", "failed")["items"]
    assert [r["id"] for r in failed] == [history["flaky"]]
    by_schedule = cli.json("runs", "list", "--schedule", "quick")["items"]
    assert [r["id"] for r in by_schedule] == [history["quick"]]
    recent = cli.json("runs", "list", "--since", "1h")["items"]
    assert sorted(r["kind"] for r in recent) == ["manual", "manual", "retry"]  # retry in 1 h
    assert cli.json("runs", "list", "--since", "2099-01-01T00:00:00+00:00")["items"] == []
    shown = cli("runs", "show", history["flaky"])
    assert shown.exit_code == 0, shown.output
    assert "FlakyError" in shown.stdout
    assert "Traceback (most recent call last)" in shown.stdout  # the run's, not ours
    assert "attempt 1 fails on purpose" in shown.stdout
    table = cli("runs", "list")
    assert "flaky" in table.stdout
    assert "succeeded" in table.stdout


def test_runs_show_accepts_a_unique_id_prefix(cli: Cli, history: dict[str, str]) -> None:
    data = cli.json("runs", "show", history["quick"][:8])
    assert data["id"] == history["quick"]
    assert data["result"]["greeting"] == "hello"


def test_rerun_and_cancel(cli: Cli, history: dict[str, str]) -> None:
    rerun = cli.json("runs", "rerun", history["flaky"])
    assert (rerun["kind"], rerun["state"], rerun["parent_run_id"]) == (
        "rerun",
        "pending",
        history["flaky"],
    )
    cancelled = cli.json("runs", "cancel", rerun["id"])
    assert cancelled["state"] == "cancelled"


@pytest.mark.parametrize(
    ("args", "words"),
    [
        (["runs", "show", "00000000-0000-0000-0000-000000000000"], "not found"),
        (["runs", "show", "zzzzzzzz"], "not found"),
        (["runs", "cancel", "nope-nope"], "not found"),
        (["runs", "rerun", "nope-nope"], "not found"),
        (["runs", "list", "--schedule", "nope"], "not found"),
        (["runs", "list", "--state", "exploded"], "unknown run state"),
        (["runs", "list", "--since", "last tuesday"], "--since"),
        (["runs", "list", "--since", "2030-01-01T00:00:00"], "UTC offset"),
        (["force", "nope"], "not found"),
        (["force", "quick", "--wait", "forever"], "--wait: bad duration"),
        (["cleanup", "--older-than", "a while"], "--older-than: bad duration"),
    ],
)
def test_bad_input_is_one_line_and_exit_2(
    cli: Cli, error_line: ErrorLine, args: list[str], words: str
) -> None:
    add(cli, "quick", "demo.quick")
    line = error_line(cli(*args))
    assert words in line, line


def test_rerun_of_a_pending_run_is_refused(cli: Cli, error_line: ErrorLine) -> None:
    add(cli, "quick", "demo.quick")
    run = cli.json("force", "quick")
    assert "still pending" in error_line(cli("runs", "rerun", run["id"]))


def test_force_wait_without_an_engine_gives_up_with_exit_1(cli: Cli) -> None:
    add(cli, "quick", "demo.quick")
    result = cli("force", "quick", "--wait", "0.3s")
    assert result.exit_code == 1
    assert "still pending" in result.stderr


def test_show_schedule_lists_every_schedule_with_local_time(cli: Cli) -> None:
    assert cli("show-schedule").stdout.startswith("no schedules yet")
    add(cli, "a", "demo.quick", "--tz", "Asia/Tokyo")
    add(cli, "b", "demo.slow")
    assert cli("schedules", "pause", "b").exit_code == 0
    items = {s["name"]: s for s in cli.json("show-schedule")["items"]}
    assert set(items) == {"a", "b"}
    a = items["a"]
    for key in ("id", "source", "next_run_at", "next_run_local", "trigger", "state"):
        assert key in a
    assert "last_run_state" in a
    assert a["next_run_local"].endswith("+09:00")
    assert a["trigger_description"]
    assert items["b"]["state"] == "paused"
    table = cli("show-schedule").stdout
    assert "JST" in table
    assert "paused" in table


def test_status_reports_queue_next_fires_and_failures(cli: Cli, history: dict[str, str]) -> None:
    cli.json("force", "quick")
    status = cli.json("status")
    assert status["queue_depth"] == 2  # the forced run and flaky's retry
    assert status["failures_24h"] == 1
    assert [r["id"] for r in status["recent_failures"]] == [history["flaky"]]
    assert {f["name"] for f in status["next_fires"]} == {"quick", "flaky"}
    text = cli("status")
    assert text.exit_code == 0
    assert "failures in the last 24 h" in text.stdout
    assert "queue depth: 2" in text.stdout


def test_cleanup_deletes_old_history_but_keeps_the_last_n(
    cli: Cli, history: dict[str, str]
) -> None:
    kept = cli.json("cleanup", "--older-than", "0s", "--keep-last", "1")
    assert kept["deleted"] == 0  # one finished run per schedule, all kept
    done = cli.json("cleanup", "--older-than", "0s", "--keep-last", "0")
    assert done["deleted"] == 2
    remaining = cli.json("runs", "list")["items"]
    assert [(r["kind"], r["state"]) for r in remaining] == [("retry", "pending")]
    text = cli("cleanup")
    assert text.exit_code == 0
    assert "deleted 0 run(s) older than 30d" in text.stdout
