"""Demo job types exercised by the executor tests (module name: ``fixtures_jobs.demo``)."""

from __future__ import annotations

import asyncio
import ctypes
import datetime as dt
import os
import time
from typing import Any

from duetime.jobs import RunContext, job


@job("fx.add")
def add(a: int, b: int = 1) -> dict[str, int]:
    """Add two numbers."""
    return {"sum": a + b, "pid": os.getpid()}


@job("fx.async_add")
async def async_add(ctx: RunContext, a: int, b: int = 1) -> dict[str, Any]:
    """Add after yielding to the loop."""
    await asyncio.sleep(0)
    return {"sum": a + b, "run_id": ctx.run_id}


@job("fx.pid_sleep")
def pid_sleep(seconds: float = 60.0, pid_file: str | None = None) -> dict[str, int]:
    """Write the worker pid to ``pid_file`` then sleep uncooperatively."""
    if pid_file:
        with open(pid_file + ".tmp", "w") as fh:
            fh.write(str(os.getpid()))
        os.replace(pid_file + ".tmp", pid_file)
    time.sleep(seconds)  # deliberately uncooperative: only a kill stops it
    return {"pid": os.getpid()}


@job("fx.coop_sleep")
def coop_sleep(ctx: RunContext, seconds: float = 60.0) -> dict[str, bool]:
    """Sleep cooperatively; report whether the run was cancelled."""
    return {"cancelled": ctx.sleep(seconds)}


@job("fx.async_sleep")
async def async_sleep(seconds: float = 60.0) -> str:
    """Sleep on the loop (cancellable)."""
    await asyncio.sleep(seconds)
    return "done"


def _explode(value: int) -> None:
    raise ValueError(f"bad value {value}")  # the line the traceback must show


@job("fx.boom")
def boom(value: int = 7) -> None:
    """Raise an exception two frames deep."""
    _explode(value)


@job("fx.not_json")
def not_json(kind: str = "set") -> Any:
    """Return something JSON cannot encode."""
    return {1, 2} if kind == "set" else {"at": dt.datetime(2030, 1, 1, tzinfo=dt.UTC)}


@job("fx.big")
def big(size: int = 70_000) -> str:
    """Return a string of ``size`` characters."""
    return "x" * size


@job("fx.exit")
def hard_exit(code: int = 3) -> None:
    """Leave the worker without any cleanup."""
    os._exit(code)


@job("fx.segfault")
def segfault() -> None:
    """Crash the worker with SIGSEGV."""
    ctypes.string_at(0)


@job("fx.echo_secret")
def echo_secret(
    ctx: RunContext, token: str, headers: dict[str, str] | None = None
) -> dict[str, Any]:
    """Log the parameters (must be redacted) and return a digest of the token."""
    ctx.log.info("params", token=token, headers=headers)
    ctx.log.warning("token is %s", token)
    return {"length": len(token), "headers_set": sorted((headers or {}).keys())}


@job("fx.sys_exit")
def sys_exit() -> None:
    """Raise SystemExit inside a handler."""
    raise SystemExit(2)


@job("fx.env")
def env(name: str) -> str | None:
    """Return an environment variable of the executing process."""
    return os.environ.get(name)


@job("fx.ignore_term")
def ignore_term(seconds: float = 60.0) -> None:
    """Ignore SIGTERM, then sleep: only SIGKILL stops this worker."""
    import signal

    signal.signal(signal.SIGTERM, signal.SIG_IGN)
    time.sleep(seconds)


@job("fx.heartbeat")
def heartbeat(ctx: RunContext, beats: int = 3) -> int:
    """Call ctx.heartbeat() a few times."""
    for _ in range(beats):
        ctx.heartbeat()
    return beats


@job("fx.spawn_child")
def spawn_child(pid_file: str, seconds: float = 60.0) -> None:
    """Start a child process that sleeps, record its pid, then wait for it."""
    import subprocess
    import sys

    child = subprocess.Popen([sys.executable, "-c", f"import time; time.sleep({seconds})"])
    with open(pid_file + ".tmp", "w") as fh:
        fh.write(str(child.pid))
    os.replace(pid_file + ".tmp", pid_file)
    child.wait()
