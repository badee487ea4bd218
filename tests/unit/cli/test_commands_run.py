"""``duetime run``: the API here and the engine in a supervised child, or the engine alone."""

from __future__ import annotations

from typing import Any, ClassVar

import pytest

from duetime.cli import engine_process
from duetime.cli import run as run_cli

Cli = Any  # the ``cli`` fixture (tests/unit/cli/conftest.py)


class FakeEngineProcess:
    """Records what ``run`` does with its engine child."""

    made: ClassVar[list[FakeEngineProcess]] = []

    def __init__(self, settings: Any) -> None:
        self.settings = settings
        self.events: list[str] = []
        FakeEngineProcess.made.append(self)

    def start(self) -> None:
        self.events.append("start")

    def alive(self) -> bool:
        return "start" in self.events and "stop" not in self.events

    def wake(self) -> None:
        self.events.append("wake")

    def stop(self) -> int:
        self.events.append("stop")
        return 0


def test_run_serves_the_api_with_the_engine_in_a_child(
    cli: Cli, monkeypatch: pytest.MonkeyPatch
) -> None:
    calls: list[dict[str, Any]] = []
    FakeEngineProcess.made.clear()

    def fake_serve(scheduler: Any, **kwargs: Any) -> None:
        calls.append({"tenant": scheduler.tenant, **kwargs})
        assert scheduler.engine_running  # /status reports the child's engine
        scheduler.for_tenant("t").add_schedule("woken", "duetime.noop", "@daily")

    monkeypatch.setattr(run_cli, "find_server", lambda: (fake_serve, ""))
    monkeypatch.setattr(engine_process, "EngineProcess", FakeEngineProcess)
    result = cli("run", "--host", "0.0.0.0", "--port", "8123", "--concurrency", "3")
    assert result.exit_code == 0, result.output
    assert calls == [{"tenant": "default", "host": "0.0.0.0", "port": 8123, "with_engine": False}]
    (child,) = FakeEngineProcess.made
    assert child.settings.concurrency == 3
    assert child.events[0] == "start"
    assert child.events[-1] == "stop"
    assert "wake" in child.events  # a change made through the API wakes the child's engine
    assert "API http://0.0.0.0:8123/api/v1/" in result.stdout
    assert "examples.jobs" in result.stdout


def test_child_command_carries_the_engine_flags_but_not_the_database_url() -> None:
    from duetime.config import load_settings

    settings = load_settings(
        database_url="postgresql://u:secret@db/x", concurrency=7, executor="thread", jobs=["a", "b"]
    )
    argv = engine_process.child_command(settings, 9)
    assert argv[1:5] == ["-m", "duetime.cli.main", "scheduler", "run"]
    assert argv[argv.index("--concurrency") + 1] == "7"
    assert argv[argv.index("--executor") + 1] == "thread"
    assert argv[argv.index("--jobs") + 1] == "a,b"
    assert argv[argv.index("--supervisor-fd") + 1] == "9"
    assert not any("secret" in arg for arg in argv)  # argv is visible in ps


def test_run_engine_only_uses_run_forever(cli: Cli, monkeypatch: pytest.MonkeyPatch) -> None:
    from duetime.scheduler import Scheduler

    ran: list[str] = []
    monkeypatch.setattr(Scheduler, "run_forever", lambda self: ran.append(self.tenant))
    result = cli("run", "--engine-only", "--concurrency", "2", "--executor", "thread")
    assert result.exit_code == 0, result.output
    assert ran == ["default"]
    assert "executor thread, 2 slot(s)" in result.stdout
    assert "engine only" in result.stdout


def test_run_without_the_api_extra_falls_back_to_the_engine(
    cli: Cli, monkeypatch: pytest.MonkeyPatch
) -> None:
    from duetime.scheduler import Scheduler

    monkeypatch.setattr(run_cli, "find_server", lambda: (None, "the REST API is not available"))
    monkeypatch.setattr(Scheduler, "run_forever", lambda self: None)
    result = cli("run")
    assert result.exit_code == 0, result.output
    assert "engine only: the REST API is not available" in result.stdout


def test_run_refuses_an_outdated_database_unless_migrate(
    cli: Cli, monkeypatch: pytest.MonkeyPatch, tmp_path: Any
) -> None:
    from duetime.scheduler import Scheduler

    monkeypatch.setattr(Scheduler, "run_forever", lambda self: None)
    fresh = f"sqlite:///{tmp_path / 'fresh.db'}"
    refused = cli("run", "--engine-only", "--database", fresh)
    assert refused.exit_code == 1
    assert "duetime init" in refused.stderr or "duetime migrate" in refused.stderr
    migrated = cli("run", "--engine-only", "--database", fresh, "--migrate")
    assert migrated.exit_code == 0, migrated.output


@pytest.mark.parametrize(
    ("args", "words"),
    [
        (["--executor", "bogus"], "unknown executor 'bogus'"),
        (["--port", "70000"], "api_port"),
    ],
)
def test_run_bad_options_are_one_line_before_anything_starts(
    cli: Cli, error_line: Any, args: list[str], words: str
) -> None:
    result = cli("run", *args)
    assert words in error_line(result)
    assert result.stdout == ""


def test_run_load_applies_manifests_before_starting(
    cli: Cli, monkeypatch: pytest.MonkeyPatch, tmp_path: Any
) -> None:
    from duetime.scheduler import Scheduler

    seen: list[list[str]] = []
    monkeypatch.setattr(
        Scheduler,
        "run_forever",
        lambda self: seen.append([s.name for s in self.list_schedules().items]),
    )
    manifest = tmp_path / "s.yaml"
    manifest.write_text("schedules: [{name: boot, job: demo.quick, cron: '@daily'}]")
    result = cli("run", "--engine-only", "--load", str(manifest))
    assert result.exit_code == 0, result.output
    assert seen == [["boot"]]
    assert "loaded 1 manifest(s): 1 created, 0 updated" in result.stdout
    bad = tmp_path / "bad.yaml"
    bad.write_text("schedules: [{name: boot, job: demo.quick, cron: '0 0 * * 8'}]")
    refused = cli("run", "--engine-only", "--load", str(bad))
    assert refused.exit_code == 2
    assert "schedules[0].cron" in refused.stderr
    assert seen == [["boot"]]  # the engine never started
