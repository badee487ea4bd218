"""`make run`'s steps, read from the Makefile, show succeeded runs within 10 seconds."""

from __future__ import annotations

import json
import os
import re
import shutil
import subprocess
import sys
import time
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import httpx
import pytest
from helpers_cli import free_port, stop_process
from typer.testing import CliRunner

pytestmark = pytest.mark.slow

REPO_ROOT = Path(__file__).resolve().parents[2]
BIN = Path(sys.executable).parent
#: The promise of the README: a new user sees runs succeeding this soon after `make run`.
FIRST_SUCCESS_SECONDS = 10.0
POLL_SECONDS = 0.3


def make_run_steps() -> list[list[str]]:
    """The ``duetime`` command lines of the Makefile's ``run`` recipe, in order."""
    text = (REPO_ROOT / "Makefile").read_text()
    recipe = re.search(r"^run: \$\(STAMP\)\n((?:\t.*\n)+)", text, re.MULTILINE)
    assert recipe, "the Makefile has no `run: $(STAMP)` recipe"
    steps = []
    for line in recipe.group(1).splitlines():
        command = line.strip()
        if command.startswith("$(BIN)/duetime"):
            steps.append(command.replace("$(BIN)/", "").split())
    return steps


@pytest.fixture
def demo_dir(tmp_path: Path) -> Path:
    """A fresh checkout-like directory holding only the examples."""
    shutil.copytree(REPO_ROOT / "examples", tmp_path / "examples")
    return tmp_path


def environment(cwd: Path, port: int) -> dict[str, str]:
    env = {k: v for k, v in os.environ.items() if not k.startswith("DUETIME_")}
    env.update(
        PYTHONPATH=f"{cwd}{os.pathsep}{REPO_ROOT / 'src'}",
        DUETIME_JOBS="examples.jobs",  # the Makefile's `run: export DUETIME_JOBS`
        DUETIME_API_PORT=str(port),
        DUETIME_EXECUTOR="process",
    )
    return env


def step_argv(step: list[str]) -> list[str]:
    return [str(BIN / step[0]), *step[1:]]


def run_step(step: list[str], cwd: Path, env: dict[str, str]) -> str:
    """Run one ``duetime ...`` step as a real subprocess; assert it succeeded; its stdout."""
    done = subprocess.run(
        step_argv(step),
        cwd=cwd,
        env=env,
        capture_output=True,
        text=True,
        timeout=60,
        check=False,
    )
    assert done.returncode == 0, (step, done.stdout, done.stderr)
    return done.stdout


@pytest.fixture
def started(demo_dir: Path) -> Iterator[tuple[subprocess.Popen[str], dict[str, str], float]]:
    """Run every step of `make run`; the last one (``duetime run ...``) stays in the background."""
    port = free_port()
    env = environment(demo_dir, port)
    *setup, serve = make_run_steps()
    assert serve[:2] == ["duetime", "run"]
    began = time.monotonic()
    for step in setup:
        run_step(step, demo_dir, env)
    proc = subprocess.Popen(
        step_argv(serve),
        cwd=demo_dir,
        env=env,
        stdout=subprocess.PIPE,
        stderr=subprocess.STDOUT,
        text=True,
    )
    env["TEST_PORT"] = str(port)
    try:
        yield proc, env, began
    finally:
        if proc.poll() is None:
            stop_process(proc)


def runs(cwd: Path, env: dict[str, str]) -> list[dict[str, Any]]:
    """``duetime runs list --json`` as a real subprocess."""
    stdout = run_step(["duetime", "runs", "list", "--json"], cwd, env)
    items: list[dict[str, Any]] = json.loads(stdout)["items"]
    return items


def runs_in_process(cwd: Path) -> list[dict[str, Any]]:
    """The same command through Typer's runner: polling must not load the machine it measures."""
    from duetime.cli.main import app

    env = {"DUETIME_DATABASE_URL": f"sqlite:///{cwd / 'duetime.db'}", "DUETIME_JOBS": ""}
    result = CliRunner().invoke(app, ["runs", "list", "--json"], env=env)
    assert result.exit_code == 0, result.output
    items: list[dict[str, Any]] = json.loads(result.stdout)["items"]
    return items


def test_make_run_shows_succeeded_runs_within_ten_seconds(
    demo_dir: Path, started: tuple[subprocess.Popen[str], dict[str, str], float]
) -> None:
    proc, env, began = started
    deadline = began + FIRST_SUCCESS_SECONDS
    succeeded: list[dict[str, Any]] = []
    while time.monotonic() < deadline and not succeeded:
        assert proc.poll() is None, proc.stdout.read() if proc.stdout else ""
        if (demo_dir / "duetime.db").exists():
            succeeded = [r for r in runs_in_process(demo_dir) if r["state"] == "succeeded"]
        if not succeeded:
            time.sleep(POLL_SECONDS)
    elapsed = time.monotonic() - began
    assert succeeded, f"no succeeded run {elapsed:.1f}s after the first `make run` step"
    print(f"first succeeded run visible {elapsed:.2f}s after `make run` began")
    listed = runs(demo_dir, env)  # and as the user types it
    assert {r["job"] for r in listed if r["state"] == "succeeded"} >= {"demo.quick"}
    port = env["TEST_PORT"]
    health = httpx.get(f"http://127.0.0.1:{port}/healthz", timeout=5)
    assert health.status_code == 200
    key = (demo_dir / ".duetime" / "admin.key").read_text().strip()
    api = httpx.get(
        f"http://127.0.0.1:{port}/api/v1/runs",
        params={"state": "succeeded"},
        headers={"Authorization": f"Bearer {key}"},
        timeout=5,
    )
    assert api.status_code == 200, api.text
    assert api.json()["items"], "the API shows the succeeded runs too"
    shown = json.loads(run_step(["duetime", "show-schedule", "--json"], demo_dir, env))
    names = {s["name"] for s in shown["items"]}
    assert "quick-hello" in names


def test_init_and_demo_load_are_idempotent(demo_dir: Path) -> None:
    env = environment(demo_dir, free_port())
    *setup, serve = make_run_steps()
    manifest = serve[serve.index("--load") + 1]
    outputs = []
    for _round in range(2):
        for step in [*setup, ["duetime", "load", manifest]]:
            outputs.append(run_step(step, demo_dir, env))
    assert "5 created" in outputs[1]
    assert "0 created, 0 updated, 5 unchanged" in outputs[3]
