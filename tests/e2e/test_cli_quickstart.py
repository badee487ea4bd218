"""docs/quickstart.md works as written: its files are written and its commands run in order."""

from __future__ import annotations

import json
import os
import re
import shlex
import subprocess
import sys
from collections.abc import Iterator
from pathlib import Path

import pytest
from helpers_cli import free_port, stop_process

pytestmark = pytest.mark.slow

REPO_ROOT = Path(__file__).resolve().parents[2]
QUICKSTART = REPO_ROOT / "docs" / "quickstart.md"
BIN = Path(sys.executable).parent
FENCE = re.compile(r"^```(\w+)\n(.*?)^```", re.MULTILINE | re.DOTALL)


def blocks() -> list[tuple[str, str]]:
    """(language, body) of every fenced block, in order."""
    return [(m.group(1), m.group(2)) for m in FENCE.finditer(QUICKSTART.read_text())]


class Session:
    """A shell-like session: ``export`` updates the environment, ``duetime run`` backgrounds."""

    def __init__(self, cwd: Path) -> None:
        self.cwd = cwd
        self.env = {k: v for k, v in os.environ.items() if not k.startswith("DUETIME_")}
        self.env["DUETIME_API_PORT"] = str(free_port())
        self.env["PYTHONPATH"] = str(REPO_ROOT / "src")
        self.background: list[subprocess.Popen[str]] = []
        self.outputs: list[tuple[str, str]] = []

    def run(self, line: str) -> None:
        argv = shlex.split(line)
        if argv[0] == "export":
            for pair in argv[1:]:
                key, _, value = pair.partition("=")
                self.env[key] = value
            return
        assert argv[0] == "duetime", f"unexpected command in the quickstart: {line}"
        command = [str(BIN / "duetime"), *argv[1:]]
        if argv[1:] == ["run"]:
            self.background.append(
                subprocess.Popen(
                    command,
                    cwd=self.cwd,
                    env=self.env,
                    text=True,
                    stdout=subprocess.PIPE,
                    stderr=subprocess.STDOUT,
                )
            )
            return
        done = subprocess.run(
            command,
            cwd=self.cwd,
            env=self.env,
            capture_output=True,
            text=True,
            timeout=120,
            check=False,
        )
        assert done.returncode == 0, (line, done.stdout, done.stderr)
        self.outputs.append((line, done.stdout))

    def stop(self) -> None:
        for proc in self.background:
            stop_process(proc)


@pytest.fixture
def session(tmp_path: Path) -> Iterator[Session]:
    shell = Session(tmp_path)
    try:
        yield shell
    finally:
        shell.stop()


def test_quickstart_commands_work_as_written(session: Session, tmp_path: Path) -> None:
    commands = 0
    for language, body in blocks():
        first, _, rest = body.partition("\n")
        if first.startswith("# file: "):
            (tmp_path / first.removeprefix("# file: ").strip()).write_text(rest)
        elif language == "console":
            for line in body.splitlines():
                if line.startswith("$ "):
                    session.run(line[2:])
                    commands += 1
    assert commands >= 9
    assert session.background, "the quickstart starts an engine"
    said = dict(session.outputs)
    assert "morning-report" in said["duetime show-schedule"]
    assert "succeeded" in said["duetime force morning-report --wait 30s"]
    plan = said["duetime load schedules.yaml --dry-run"]
    assert "1 to create, 1 to update, 0 unchanged, 0 to delete" in plan
    assert "1 created, 1 updated" in said["duetime load schedules.yaml"]
    runs = subprocess.run(
        [str(BIN / "duetime"), "runs", "list", "--json"],
        cwd=tmp_path,
        env=session.env,
        capture_output=True,
        text=True,
        timeout=60,
        check=True,
    )
    (run,) = json.loads(runs.stdout)["items"]
    assert (run["state"], run["result"]["recipient"]) == ("succeeded", "ops@example.com")
