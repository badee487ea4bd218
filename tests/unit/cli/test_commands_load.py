"""``duetime load``: plans, dry runs, upserts, pruning and all-or-nothing errors."""

from __future__ import annotations

from collections.abc import Callable
from pathlib import Path
from typing import Any

import pytest
from click.testing import Result

Cli = Any  # the ``cli`` fixture (tests/unit/cli/conftest.py)
ErrorLine = Callable[[Result], str]

MANIFEST = """
schedules:
  - name: hello
    job: demo.quick
    cron: "*/5 * * * *"
    parameters: {greeting: hi}
  - name: flaky
    job: demo.flaky
    interval_minutes: 10
    max_attempts: 3
    retry_backoff: 2s
"""


def write(tmp_path: Path, text: str, name: str = "m.yaml") -> str:
    path = tmp_path / name
    path.write_text(text)
    return str(path)


def names(cli: Cli) -> dict[str, Any]:
    return {s["name"]: s for s in cli.json("show-schedule")["items"]}


def test_dry_run_plans_and_changes_nothing(cli: Cli, tmp_path: Path) -> None:
    plan = cli.json("load", write(tmp_path, MANIFEST), "--dry-run")
    assert plan["dry_run"] is True
    assert plan["applied"] is False
    assert plan["counts"] == {"create": 2, "update": 0, "unchanged": 0, "delete": 0}
    assert names(cli) == {}
    text = cli("load", write(tmp_path, MANIFEST), "--dry-run")
    assert "dry run (nothing changed): 2 to create" in text.stdout


def test_load_creates_then_reload_is_unchanged_then_edit_is_a_field_diff(
    cli: Cli, tmp_path: Path
) -> None:
    path = write(tmp_path, MANIFEST)
    created = cli.json("load", path)
    assert created["counts"]["create"] == 2
    assert created["applied"] is True
    loaded = names(cli)
    assert loaded["hello"]["source"] == "manifest"
    assert loaded["flaky"]["max_attempts"] == 3
    assert cli.json("load", path)["counts"]["unchanged"] == 2
    path = write(tmp_path, MANIFEST.replace("*/5", "*/10").replace("greeting: hi", "greeting: yo"))
    plan = cli.json("load", path, "--dry-run")
    (update,) = [i for i in plan["items"] if i["action"] == "update"]
    fields = {c["field"]: c for c in update["changes"]}
    assert set(fields) == {"trigger", "parameters"}
    assert fields["parameters"] == {
        "field": "parameters",
        "old": {"greeting": "hi"},
        "new": {"greeting": "yo"},
    }
    assert names(cli)["hello"]["trigger"]["expression"] == "*/5 * * * *"  # dry run
    text = cli("load", path)
    assert text.exit_code == 0
    assert "parameters:" in text.stdout
    assert "1 updated" in text.stdout
    after = names(cli)["hello"]
    assert after["trigger"]["expression"] == "*/10 * * * *"
    assert after["version"] == 2


def test_prune_deletes_manifest_schedules_missing_from_the_files(cli: Cli, tmp_path: Path) -> None:
    cli.json("load", write(tmp_path, MANIFEST))
    assert (
        cli("schedules", "add", "by-hand", "--job", "demo.quick", "--cron", "@daily").exit_code == 0
    )
    only_hello = MANIFEST.split("  - name: flaky")[0]
    plan = cli.json("load", write(tmp_path, only_hello), "--prune")
    assert [(i["action"], i["name"]) for i in plan["items"]] == [
        ("unchanged", "hello"),
        ("delete", "flaky"),
    ]
    assert set(names(cli)) == {"hello", "by-hand"}


def test_several_files_load_together(cli: Cli, tmp_path: Path) -> None:
    a = write(tmp_path, "schedules: [{name: a, job: demo.quick, cron: '@daily'}]", "a.yaml")
    b = write(
        tmp_path, '{"schedules": [{"name": "b", "job": "demo.quick", "cron": "@hourly"}]}', "b.json"
    )
    assert cli.json("load", a, b)["counts"]["create"] == 2
    assert set(names(cli)) == {"a", "b"}


@pytest.mark.parametrize(
    ("text", "words"),
    [
        ("schedules:\n  - name: [unclosed\n", "invalid YAML at line"),
        (
            "schedules:\n  - {name: x, job: demo.quick, cron: '0 0 * * 8'}\n",
            "schedules[0].cron: day-of-week 8 is out of range 0–7",
        ),
        (
            "schedules:\n  - {name: x, job: demo.quick, cron: '@daily', timeout: 5parsecs}\n",
            "schedules[0].timeout: bad duration",
        ),
        (
            "schedules:\n  - {name: x, job: demo.nope, cron: '@daily'}\n",
            "schedules[0].job: unknown job type 'demo.nope'",
        ),
        (
            "schedules:\n  - {name: x, job: demo.quick, cron: '@daily',"
            " parameters: {greeting: 1}}\n",
            "schedules[0].parameters.greeting",
        ),
    ],
)
def test_invalid_manifest_is_one_line_exit_2_naming_file_and_field(
    cli: Cli, tmp_path: Path, error_line: ErrorLine, text: str, words: str
) -> None:
    path = write(tmp_path, text)
    line = error_line(cli("load", path))
    assert line.startswith(f"error: {path}: ")
    assert words in line, line


def test_an_invalid_file_changes_nothing_even_after_valid_ones(cli: Cli, tmp_path: Path) -> None:
    good = write(tmp_path, MANIFEST, "good.yaml")
    bad = write(
        tmp_path,
        "schedules:\n  - {name: late, job: demo.quick, at: 1}\n"
        "  - {name: bad-params, job: demo.quick, cron: '@daily', parameters: {nope: 1}}\n",
        "bad.yaml",
    )
    result = cli("load", good, bad)
    assert result.exit_code == 2
    assert "bad.yaml: schedules[0].at: unknown field" in result.stderr
    assert names(cli) == {}
    only_param_error = write(
        tmp_path,
        "schedules:\n  - {name: bad-params, job: demo.quick, cron: '@daily',"
        " parameters: {nope: 1}}\n",
        "late.yaml",
    )
    result = cli("load", good, only_param_error)  # caught by the facade while applying
    assert result.exit_code == 2
    assert "late.yaml: schedules[0].parameters" in result.stderr
    assert names(cli) == {}


def test_missing_file_is_exit_2(cli: Cli, tmp_path: Path, error_line: ErrorLine) -> None:
    line = error_line(cli("load", str(tmp_path / "nope.yaml")))
    assert "nope.yaml: file not found" in line
