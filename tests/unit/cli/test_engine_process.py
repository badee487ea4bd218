"""The supervision link of ``duetime run``: readiness, wake-ups, parent loss, start failures,
restarts (the real ``duetime scheduler run`` child is exercised in tests/e2e)."""

from __future__ import annotations

import asyncio
import signal
import socket
import sys
import time
from pathlib import Path
from typing import Any

import pytest

from duetime.cli import engine_process
from duetime.cli.engine_process import EngineProcess, EngineStartError, follow_supervisor
from duetime.config import load_settings

#: A stand-in engine child: reports ready, then echoes every wake-up byte to a file until
#: its supervisor goes away (EOF), like ``duetime scheduler run --supervisor-fd``.
FAKE_CHILD = """
import os, socket, sys
sock = socket.socket(fileno=int(sys.argv[1]))
sock.send(b"R")
with open(sys.argv[2], "ab") as out:
    while data := sock.recv(4096):
        out.write(data)
        out.flush()
"""


def _settings() -> Any:
    return load_settings(database_url="sqlite:///unused.db", shutdown_grace_seconds=1)


def _use_child(monkeypatch: pytest.MonkeyPatch, make: Any) -> None:
    monkeypatch.setattr(engine_process, "child_command", lambda settings, fd: make(fd))


def _wait(condition: Any, what: str, timeout: float = 10.0) -> None:
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        if condition():
            return
        time.sleep(0.02)
    pytest.fail(f"timed out waiting for {what}")


def test_follow_supervisor_reports_ready_wakes_and_stops_when_the_parent_goes() -> None:
    parent, child = socket.socketpair()
    woken: list[int] = []

    async def scenario() -> bool:
        stop = asyncio.Event()
        follow_supervisor(
            asyncio.get_running_loop(), child.detach(), wake=[lambda: woken.append(1)], stop=stop
        )
        assert parent.recv(1) == b"R"  # ready
        parent.send(b"ww")
        await asyncio.sleep(0.05)
        parent.close()
        await asyncio.wait_for(stop.wait(), 5)
        return stop.is_set()

    assert asyncio.run(scenario())
    assert woken  # one wake-up per read: bytes that arrive together coalesce


def test_a_child_that_exits_before_it_is_ready_fails_the_start(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    _use_child(monkeypatch, lambda fd: [sys.executable, "-c", "raise SystemExit(3)"])
    engine = EngineProcess(_settings())

    with pytest.raises(EngineStartError, match="exited with code 3 before it was ready"):
        engine.start()
    assert not engine.alive()


def test_wakes_reach_the_child_and_a_dead_child_is_restarted(
    monkeypatch: pytest.MonkeyPatch, tmp_path: Path
) -> None:
    seen = tmp_path / "wakes"
    _use_child(monkeypatch, lambda fd: [sys.executable, "-c", FAKE_CHILD, str(fd), str(seen)])
    monkeypatch.setattr(engine_process, "RESTART_FIRST_DELAY_SECONDS", 0.05)
    engine = EngineProcess(_settings())
    engine.start()
    try:
        engine.wake()
        _wait(lambda: seen.exists() and seen.read_bytes() == b"w", "the wake-up byte")
        first = engine.pid
        assert first is not None
        assert engine.alive()

        engine._proc.kill()  # type: ignore[union-attr]

        _wait(lambda: engine.pid != first and engine.alive(), "a restarted child")
        assert engine.restarts == 1
        engine.wake()
        _wait(lambda: seen.read_bytes() == b"ww", "a wake-up to the new child")
    finally:
        code = engine.stop()
    assert code == -signal.SIGTERM  # stop() asks with SIGTERM (the real engine drains on it)
    assert not engine.alive()
