"""The CLI as users run it: real ``duetime`` subprocesses against a SQLite file."""

from __future__ import annotations

import json
import os
import subprocess
import sys
from pathlib import Path
from typing import Any

import pytest

pytestmark = pytest.mark.slow

REPO_ROOT = Path(__file__).resolve().parents[2]
DUETIME = str(Path(sys.executable).parent / "duetime")
DEMO = str(REPO_ROOT / "examples" / "demo.yaml")
COMMAND_TIMEOUT = 60


def environment(tmp_path: Path) -> dict[str, str]:
    env = {k: v for k, v in os.environ.items() if not k.startswith("DUETIME_")}
    env.update(
        DUETIME_DATABASE_URL=f"sqlite:///{tmp_path / 'duetime.db'}",
        DUETIME_JOBS="examples.jobs",
        PYTHONPATH=str(REPO_ROOT),
        COLUMNS="200",
    )
    return env


class Duetime:
    """Runs ``duetime`` in a temporary directory with its own database."""

    def __init__(self, tmp_path: Path) -> None:
        self.cwd = tmp_path
        self.env = environment(tmp_path)

    def __call__(self, *args: str) -> subprocess.CompletedProcess[str]:
        return subprocess.run(
            [DUETIME, *args],
            cwd=self.cwd,
            env=self.env,
            capture_output=True,
            text=True,
            timeout=COMMAND_TIMEOUT,
            check=False,
        )

    def ok(self, *args: str) -> str:
        done = self(*args)
        assert done.returncode == 0, (args, done.stdout, done.stderr)
        return done.stdout

    def json(self, *args: str) -> Any:
        return json.loads(self.ok(*args, "--json"))


@pytest.fixture
def duetime(tmp_path: Path) -> Duetime:
    tool = Duetime(tmp_path)
    tool.ok("init")
    return tool


def test_load_then_show_schedule_json(duetime: Duetime) -> None:
    assert "5 created" in duetime.ok("load", DEMO)
    items = duetime.json("show-schedule")["items"]
    assert {s["name"] for s in items} == {
        "quick-hello",
        "slow-report",
        "flaky-sync",
        "api-health",
        "weekday-digest",
    }
    assert {s["source"] for s in items} == {"manifest"}
    digest = next(s for s in items if s["name"] == "weekday-digest")
    assert digest["timezone"] == "Europe/Stockholm"
    assert digest["next_run_local"].endswith(("+01:00", "+02:00"))
    assert "0 created, 0 updated, 5 unchanged" in duetime.ok("load", DEMO)
    assert duetime.json("load", DEMO, "--dry-run")["counts"]["unchanged"] == 5


def test_force_then_runs_list(duetime: Duetime) -> None:
    duetime.ok("load", DEMO)
    run = duetime.json("force", "quick-hello")
    listed = duetime.json("runs", "list", "--schedule", "quick-hello")["items"]
    assert [(r["id"], r["kind"], r["state"]) for r in listed] == [(run["id"], "manual", "pending")]
    assert run["id"] in duetime.ok("runs", "show", run["id"])


@pytest.mark.parametrize(
    ("args", "words"),
    [
        (["force", "no-such-schedule"], "no-such-schedule"),
        (["schedules", "add", "x", "--job", "demo.quick", "--cron", "0 0 * * 8"], "day-of-week 8"),
        (
            ["schedules", "add", "x", "--job", "demo.quick", "--interval", "15 furlongs"],
            "bad duration",
        ),
        (["runs", "show", "00000000-0000-0000-0000-000000000000"], "not found"),
        (["cleanup", "--older-than", "ages"], "bad duration"),
    ],
)
def test_bad_input_exits_2_with_one_line(duetime: Duetime, args: list[str], words: str) -> None:
    done = duetime(*args)
    assert done.returncode == 2, done
    assert "Traceback" not in done.stderr + done.stdout
    (line,) = done.stderr.strip().splitlines()
    assert line.startswith("error: ")
    assert words in line


def test_malformed_yaml_exits_2_and_names_the_file(duetime: Duetime, tmp_path: Path) -> None:
    bad = tmp_path / "bad.yaml"
    bad.write_text("schedules:\n  - name: [unclosed\n")
    done = duetime("load", str(bad))
    assert done.returncode == 2
    (line,) = done.stderr.strip().splitlines()
    assert line.startswith(f"error: {bad}: invalid YAML at line 3, column 1")
    assert duetime.json("show-schedule")["items"] == []


def test_commands_refuse_an_uninitialised_database(tmp_path: Path) -> None:
    done = Duetime(tmp_path)("show-schedule")
    assert done.returncode == 1
    assert "duetime init" in done.stderr
    assert "Traceback" not in done.stderr


def test_add_force_run_once_then_runs_list_shows_success(duetime: Duetime) -> None:
    duetime.ok(
        "schedules",
        "add",
        "yearly",
        "--job",
        "demo.quick",
        "--cron",
        "0 0 1 1 *",
        "--param",
        "greeting=hej",
    )
    run = duetime.json("force", "yearly")
    duetime.ok("scheduler", "run", "--once", "--executor", "thread")
    (done,) = duetime.json("runs", "list", "--schedule", "yearly")["items"]
    assert (done["id"], done["state"], done["result"]["greeting"]) == (
        run["id"],
        "succeeded",
        "hej",
    )
    shown = duetime.json("schedules", "show", "yearly")
    assert shown["last_run_state"] == "succeeded"
