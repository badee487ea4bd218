"""``duetime run`` keeps its engine in a child process: it serves the API, runs what the API
triggers (woken at once, not at the next SQLite change check), restarts a dead engine and
takes it down with it, even after ``kill -9``."""

from __future__ import annotations

import os
import signal
import statistics
import subprocess
import sys
from collections.abc import Iterator
from dataclasses import dataclass
from datetime import datetime
from pathlib import Path

import httpx
import pytest
from helpers_cli import wait_for

pytestmark = [
    pytest.mark.slow,
    pytest.mark.skipif(not sys.platform.startswith("linux"), reason="reads /proc"),
]

DUETIME = str(Path(sys.executable).with_name("duetime"))
DEADLINE_SECONDS = 30.0
#: SQLite's change check runs every second: a woken engine starts a triggered run far sooner.
WOKEN_START_MS = 300
TRIGGERS = 5


@dataclass
class Live:
    proc: subprocess.Popen[bytes]
    client: httpx.Client
    log: Path

    def child_pids(self) -> list[int]:
        """The engine child(ren) of ``duetime run`` (its direct children, by any thread)."""
        tasks = Path(f"/proc/{self.proc.pid}/task").glob("*/children")
        return sorted(int(pid) for task in tasks for pid in task.read_text().split())


def gone(pid: int) -> bool:
    """True when ``pid`` has exited (a zombie nobody reaped yet counts as exited)."""
    try:
        stat = Path(f"/proc/{pid}/stat").read_text()
    except FileNotFoundError:
        return True
    return stat.rsplit(")", 1)[1].split()[0] == "Z"


@pytest.fixture
def live(tmp_path: Path) -> Iterator[Live]:
    from helpers_cli import free_port

    env = {**os.environ, "DUETIME_DATABASE_URL": f"sqlite:///{tmp_path / 'run.db'}"}
    subprocess.run([DUETIME, "init"], cwd=tmp_path, env=env, check=True, capture_output=True)
    secret = (tmp_path / ".duetime" / "admin.key").read_text().strip()
    port = free_port()
    log = tmp_path / "run.log"
    with log.open("wb") as out:
        proc = subprocess.Popen(
            [DUETIME, "run", "--port", str(port)],
            cwd=tmp_path,
            env=env,
            stdout=out,
            stderr=subprocess.STDOUT,
        )
    client = httpx.Client(
        base_url=f"http://127.0.0.1:{port}/api/v1",
        headers={"Authorization": f"Bearer {secret}"},
        timeout=5,
    )

    def ready() -> bool:
        assert proc.poll() is None, log.read_text()
        try:
            return client.get("/readyz").status_code == 200
        except httpx.TransportError:
            return False

    live = Live(proc, client, log)
    children: list[int] = []
    try:
        wait_for(ready, "duetime run to be ready")
        yield live
    finally:
        if proc.poll() is None:
            children = live.child_pids()
            proc.send_signal(signal.SIGTERM)
            proc.wait(timeout=60)
        client.close()
        for pid in children:
            wait_for(lambda pid=pid: gone(pid), f"engine process {pid} to stop")


def _start_delays_ms(client: httpx.Client, count: int) -> list[float]:
    """Trigger ``tick`` ``count`` times; return each run's created → started delay."""
    delays = []
    for _ in range(count):
        made = client.post("/schedules/tick/trigger")
        assert made.status_code == 201, made.text
        url = f"/runs/{made.json()['id']}"
        done = wait_for(
            lambda url=url: (r := client.get(url).json())["state"] == "succeeded" and r,
            "the triggered run to succeed",
        )
        started = datetime.fromisoformat(done["started_at"])
        delays.append((started - datetime.fromisoformat(done["created_at"])).total_seconds() * 1e3)
    return delays


def test_run_serves_the_api_and_its_engine_child_runs_triggered_runs_at_once(
    live: Live,
) -> None:
    created = live.client.post(
        "/schedules", json={"name": "tick", "job": "duetime.noop", "cron": "0 3 * * *"}
    )
    assert created.status_code == 201, created.text

    delays = _start_delays_ms(live.client, TRIGGERS)

    assert statistics.median(delays) < WOKEN_START_MS, delays
    (child,) = live.child_pids()
    status = live.client.get("/status").json()
    assert status["engine_running"] is True
    engines = [i for i in status["instances"] if i["alive"]]
    assert [f":{child}:" in i["id"] for i in engines] == [True], engines  # jobs run in the child


def test_a_dead_engine_child_is_restarted(live: Live) -> None:
    live.client.post("/schedules", json={"name": "tick", "job": "duetime.noop", "cron": "@daily"})
    (first,) = live.child_pids()

    os.kill(first, signal.SIGKILL)

    second = wait_for(lambda: [p for p in live.child_pids() if p != first], "a new engine")[0]
    assert _start_delays_ms(live.client, 1)
    assert live.proc.poll() is None
    assert f"engine process {first} exited unexpectedly" in live.log.read_text()
    assert second != first


def test_killing_duetime_run_stops_its_engine_child(live: Live) -> None:
    (child,) = live.child_pids()

    os.kill(live.proc.pid, signal.SIGKILL)
    live.proc.wait(timeout=10)

    wait_for(lambda: gone(child), "the orphaned engine to stop")
    text = live.log.read_text()
    assert "the supervising duetime run is gone; stopping" in text
    assert "engine stopped" in text  # a graceful stop: its instance row says so


def test_sigterm_stops_the_api_and_the_engine_child(live: Live) -> None:
    (child,) = live.child_pids()

    live.proc.send_signal(signal.SIGTERM)

    assert live.proc.wait(timeout=60) == 0
    wait_for(lambda: gone(child), "the engine child to stop")
    text = live.log.read_text()
    assert "engine stopped" in text
    assert "exited unexpectedly" not in text
