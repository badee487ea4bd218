"""A live ``duetime run`` subprocess: create a schedule over HTTP, see it fire, pause it,
trigger it, read its history, stop gracefully."""

from __future__ import annotations

import os
import signal
import socket
import subprocess
import sys
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import httpx
import pytest
from helpers_cli import wait_for

pytestmark = pytest.mark.slow

DUETIME = str(Path(sys.executable).with_name("duetime"))
DEADLINE_SECONDS = 30.0


def _free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        port: int = sock.getsockname()[1]
        return port


@pytest.fixture
def live(tmp_path: Path) -> Iterator[tuple[httpx.Client, subprocess.Popen[bytes]]]:
    url = f"sqlite:///{tmp_path / 'live.db'}"
    env = {**os.environ, "DUETIME_DATABASE_URL": url}
    subprocess.run([DUETIME, "init"], cwd=tmp_path, env=env, check=True, capture_output=True)
    secret = (tmp_path / ".duetime" / "admin.key").read_text().strip()
    port = _free_port()
    log = (tmp_path / "run.log").open("wb")
    proc = subprocess.Popen(
        [DUETIME, "run", "--port", str(port)],
        cwd=tmp_path,
        env=env,
        stdout=log,
        stderr=subprocess.STDOUT,
    )
    base = f"http://127.0.0.1:{port}"
    client = httpx.Client(
        base_url=f"{base}/api/v1", headers={"Authorization": f"Bearer {secret}"}, timeout=5
    )

    def ready() -> bool:
        assert proc.poll() is None, (tmp_path / "run.log").read_text()
        try:
            return httpx.get(f"{base}/readyz", timeout=1).status_code == 200
        except httpx.TransportError:
            return False

    try:
        wait_for(ready, "duetime run to be ready")
        yield client, proc
    finally:
        client.close()
        if proc.poll() is None:
            proc.send_signal(signal.SIGTERM)
            proc.wait(timeout=40)
        log.close()
    assert secret not in (tmp_path / "run.log").read_text(), "the API key leaked into the log"


def _runs(client: httpx.Client, **params: Any) -> list[dict[str, Any]]:
    items: list[dict[str, Any]] = client.get("/schedules/tick/runs", params=params).json()["items"]
    return items


def test_live_schedule_fires_pauses_triggers_and_keeps_history(
    live: tuple[httpx.Client, subprocess.Popen[bytes]],
) -> None:
    client, proc = live
    created = client.post(
        "/schedules",
        json={"name": "tick", "job_type": "duetime.noop", "interval_seconds": 1, "tenant": "demo"},
    )
    assert created.status_code == 201, created.text

    fired = wait_for(
        lambda: [r for r in _runs(client, state="succeeded") if r["kind"] == "scheduled"],
        "a scheduled run to succeed",
    )
    assert fired[0]["lateness_ms"] is not None

    paused = client.post("/schedules/tick/pause")
    assert paused.json()["state"] == "paused"
    wait_for(lambda: not _runs(client, state=["pending", "running"]), "in-flight runs to finish")
    scheduled_before = len([r for r in _runs(client, limit=500) if r["kind"] == "scheduled"])

    manual = client.post("/schedules/tick/trigger")
    assert manual.status_code == 201, manual.text
    run_id = manual.json()["id"]
    done = wait_for(
        lambda: (r := client.get(f"/runs/{run_id}").json())["state"] == "succeeded" and r,
        "the manual run to succeed",
    )
    assert done["kind"] == "manual"

    history = _runs(client, limit=500)
    kinds = {r["kind"] for r in history}
    assert kinds == {"scheduled", "manual"}
    assert len([r for r in history if r["kind"] == "scheduled"]) == scheduled_before
    assert client.get("/status").json()["engine_running"] is True

    proc.send_signal(signal.SIGTERM)
    assert proc.wait(timeout=40) == 0


def test_duetime_api_serves_without_engine(tmp_path: Path) -> None:
    url = f"sqlite:///{tmp_path / 'api.db'}"
    env = {**os.environ, "DUETIME_DATABASE_URL": url}
    subprocess.run([DUETIME, "init"], cwd=tmp_path, env=env, check=True, capture_output=True)
    secret = (tmp_path / ".duetime" / "admin.key").read_text().strip()
    port = _free_port()
    proc = subprocess.Popen(
        [DUETIME, "api", "--port", str(port)],
        cwd=tmp_path,
        env=env,
        stdout=subprocess.PIPE,
        stderr=subprocess.STDOUT,
    )
    base = f"http://127.0.0.1:{port}"
    try:

        def ready() -> bool:
            assert proc.poll() is None
            try:
                return httpx.get(f"{base}/readyz", timeout=1).status_code == 200
            except httpx.TransportError:
                return False

        wait_for(ready, "duetime api to be ready")
        assert httpx.get(f"{base}/api/v1/schedules").status_code == 401
        headers = {"Authorization": f"Bearer {secret}"}
        body = {"name": "n", "job": "duetime.noop", "cron": "0 3 * * *", "tenant": "t"}
        created = httpx.post(f"{base}/api/v1/schedules", json=body, headers=headers)
        assert created.status_code == 201, created.text
        status = httpx.get(f"{base}/api/v1/status", headers=headers).json()
        assert status["engine_running"] is False
    finally:
        proc.send_signal(signal.SIGTERM)
        output = proc.communicate(timeout=30)[0].decode()
    assert proc.returncode == 0, output
    assert secret not in output


def test_port_in_use_is_a_one_line_error(tmp_path: Path) -> None:
    url = f"sqlite:///{tmp_path / 'busy.db'}"
    env = {**os.environ, "DUETIME_DATABASE_URL": url}
    subprocess.run([DUETIME, "init"], cwd=tmp_path, env=env, check=True, capture_output=True)
    with socket.socket() as taken:
        taken.bind(("127.0.0.1", 0))
        taken.listen()
        port = taken.getsockname()[1]
        result = subprocess.run(
            [DUETIME, "run", "--port", str(port), "--executor", "thread"],
            cwd=tmp_path,
            env=env,
            capture_output=True,
            text=True,
            timeout=60,
        )
    assert result.returncode == 2, result.stdout + result.stderr
    assert f"error: cannot serve on 127.0.0.1:{port}" in result.stderr
