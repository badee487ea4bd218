"""ProcessExecutor with real forkserver workers: kills, crashes, limits, shutdown, secrets, logs."""

from __future__ import annotations

import asyncio
import logging
import os
import sys
import threading
from collections.abc import Iterator
from pathlib import Path

import pytest

TESTS_DIR = Path(__file__).resolve().parents[1]
for extra in (TESTS_DIR, TESTS_DIR / "unit" / "executors"):
    if str(extra) not in sys.path:
        sys.path.insert(0, str(extra))

from executor_helpers import WAIT_SECONDS, Outcomes, request, wait_until  # noqa: E402

from duetime.clock import FakeClock, SystemClock  # noqa: E402
from duetime.executors.base import Outcome  # noqa: E402
from duetime.executors.process import ProcessExecutor  # noqa: E402
from duetime.models import RunState  # noqa: E402

pytestmark = pytest.mark.slow
JOBS = ["fixtures_jobs.demo"]
SECRET = "tok-9f8e7d6c5b"


def gone(pid: int) -> bool:
    """True when ``pid`` no longer runs (a zombie waiting for a reaper counts as gone)."""
    try:
        stat = Path(f"/proc/{pid}/stat").read_text()
    except (FileNotFoundError, ProcessLookupError):
        return True
    return stat.rsplit(")", 1)[1].split()[0] == "Z"


@pytest.fixture
def outcomes() -> Outcomes:
    return Outcomes()


@pytest.fixture
def executor(outcomes: Outcomes) -> Iterator[ProcessExecutor]:
    ex = ProcessExecutor(concurrency=2, jobs_modules=JOBS)
    ex.start(outcomes)
    yield ex
    ex.shutdown(0.5)
    outcomes.assert_once_each()


def test_sync_and_async_handlers_run_in_workers(
    executor: ProcessExecutor, outcomes: Outcomes
) -> None:
    executor.submit(request("s", "fx.add", a=1, b=2))
    executor.submit(request("a", "fx.async_add", a=5))
    s, a = outcomes.wait("s"), outcomes.wait("a")
    assert executor.free_slots == 2  # freed before the outcome is reported
    assert s.state is RunState.SUCCEEDED
    assert s.result["sum"] == 3
    assert s.result["pid"] in executor.worker_pids()
    assert s.result["pid"] != os.getpid()
    assert (a.state, a.result) == (RunState.SUCCEEDED, {"sum": 6, "run_id": "a"})


def test_timeout_kills_the_worker_and_replaces_it(
    executor: ProcessExecutor, outcomes: Outcomes
) -> None:
    clock = SystemClock()
    began = clock.monotonic()
    executor.submit(request("t", "fx.pid_sleep", timeout=1, seconds=60))
    pid = executor.pid_of("t")
    assert pid is not None
    outcome = outcomes.wait("t")
    elapsed = clock.monotonic() - began
    assert outcome.state is RunState.TIMED_OUT
    assert 0.9 <= elapsed < 2.0, elapsed
    assert gone(pid)
    assert pid not in executor.worker_pids()
    executor.submit(request("next", "fx.add", a=1))
    assert outcomes.wait("next").state is RunState.SUCCEEDED


def test_cancel_kills_the_worker(executor: ProcessExecutor, outcomes: Outcomes) -> None:
    executor.submit(request("c", "fx.pid_sleep", seconds=60))
    pid = executor.pid_of("c")
    assert pid is not None
    assert executor.cancel("c")
    assert not executor.cancel("c")
    assert not executor.cancel("never-submitted")
    outcome = outcomes.wait("c")
    assert outcome.state is RunState.CANCELLED
    assert gone(pid)
    wait_until(lambda: executor.free_slots == 2)


def test_exception_with_full_traceback(executor: ProcessExecutor, outcomes: Outcomes) -> None:
    executor.submit(request("e", "fx.boom", value=4))
    outcome = outcomes.wait("e")
    assert outcome.state is RunState.FAILED
    assert outcome.error is not None
    assert (outcome.error.type, outcome.error.message) == ("ValueError", "bad value 4")
    assert "the line the traceback must show" in (outcome.error.traceback or "")


@pytest.mark.parametrize(("job", "params"), [
    ("fx.not_json", {"kind": "set"}),
    ("fx.not_json", {"kind": "datetime"}),
    ("fx.big", {"size": 70_000}),
])  # fmt: skip
def test_bad_results_are_result_errors(
    executor: ProcessExecutor, outcomes: Outcomes, job: str, params: dict[str, object]
) -> None:
    executor.submit(request("r", job, **params))
    outcome = outcomes.wait("r")
    assert outcome.state is RunState.FAILED
    assert outcome.error is not None
    assert outcome.error.type == "ResultError"


@pytest.mark.parametrize(("job", "fragment"), [
    ("fx.exit", "exited with code 3"),
    ("fx.segfault", "killed by SIGSEGV"),
])  # fmt: skip
def test_dead_worker_is_worker_lost_and_pool_recovers(
    executor: ProcessExecutor, outcomes: Outcomes, job: str, fragment: str
) -> None:
    executor.submit(request("x", job))
    outcome = outcomes.wait("x")
    assert outcome.state is RunState.FAILED
    assert outcome.error is not None
    assert outcome.error.type == "WorkerLost"
    assert fragment in outcome.error.message
    wait_until(lambda: executor.free_slots == 2)
    executor.submit(request("after-1", "fx.add", a=1))
    executor.submit(request("after-2", "fx.add", a=2))
    assert outcomes.wait("after-1").state is RunState.SUCCEEDED
    assert outcomes.wait("after-2").state is RunState.SUCCEEDED


def test_concurrency_limit(executor: ProcessExecutor, outcomes: Outcomes) -> None:
    assert executor.free_slots == 2
    executor.submit(request("p1", "fx.pid_sleep", seconds=60))
    executor.submit(request("p2", "fx.pid_sleep", seconds=60))
    assert executor.free_slots == 0
    assert sorted(executor.running()) == ["p1", "p2"]
    with pytest.raises(RuntimeError, match="no free slot"):
        executor.submit(request("p3", "fx.add", a=1))
    executor.cancel("p1")
    executor.cancel("p2")
    outcomes.wait("p1")
    outcomes.wait("p2")


def test_unregistered_job_fails_cleanly(executor: ProcessExecutor, outcomes: Outcomes) -> None:
    executor.submit(request("u", "fx.nobody"))
    outcome = outcomes.wait("u")
    assert outcome.error is not None
    assert outcome.error.type == "UnknownJobError"
    assert "not registered in this worker; set DUETIME_JOBS" in outcome.error.message


def test_shutdown_interrupts_running_runs(outcomes: Outcomes) -> None:
    ex = ProcessExecutor(concurrency=2, jobs_modules=JOBS)
    ex.start(outcomes)
    ex.submit(request("quick", "fx.add", a=1))
    ex.submit(request("slow", "fx.pid_sleep", seconds=60))
    pids = ex.worker_pids()
    ex.shutdown(0.3)
    assert outcomes.wait("quick").state is RunState.SUCCEEDED
    slow = outcomes.wait("slow")
    assert slow.state is RunState.FAILED
    assert slow.error is not None
    assert (slow.error.type, slow.error.message) == ("Interrupted", "interrupted by shutdown")
    assert all(gone(pid) for pid in pids)
    assert ex.worker_pids() == []
    assert ex.free_slots == 0
    with pytest.raises(RuntimeError):
        ex.submit(request("late", "fx.add", a=1))
    outcomes.assert_once_each()


def test_secrets_come_from_the_engine_environment_and_logs_are_redacted(
    monkeypatch: pytest.MonkeyPatch, caplog: pytest.LogCaptureFixture, outcomes: Outcomes
) -> None:
    monkeypatch.setenv("DUETIME_SECRET_TOKEN", SECRET)
    monkeypatch.setenv("DUETIME_HTTP_ALLOW_HOSTS", "intranet.example")
    caplog.set_level(logging.INFO)
    ex = ProcessExecutor(concurrency=1, jobs_modules=JOBS)
    ex.start(outcomes)
    try:
        ex.submit(request("s", "fx.echo_secret", token={"$secret": "TOKEN"}))
        assert outcomes.wait("s").result == {"length": len(SECRET), "headers_set": []}
        ex.submit(request("env", "fx.env", name="DUETIME_HTTP_ALLOW_HOSTS"))
        assert outcomes.wait("env").result == "intranet.example"
        ex.submit(request("m", "fx.echo_secret", token={"$secret": "MISSING"}))
        missing = outcomes.wait("m")
    finally:
        ex.shutdown(0.5)
    assert missing.error is not None
    assert "'MISSING'" in missing.error.message
    forwarded = [r for r in caplog.records if r.name == "duetime.job.fx.echo_secret"]
    assert {r.getMessage() for r in forwarded} >= {
        "params token='***' headers=None",
        "token is ***",
    }
    assert all(r.process != os.getpid() for r in forwarded)  # they came from the worker
    assert all(SECRET not in repr(r.__dict__) for r in caplog.records)


def test_timeouts_follow_the_engine_clock(outcomes: Outcomes) -> None:
    clock = FakeClock()
    ex = ProcessExecutor(concurrency=1, jobs_modules=JOBS, clock=clock)
    ex.start(outcomes)
    try:
        ex.submit(request("f", "fx.pid_sleep", timeout=5, seconds=60))
        with pytest.raises(AssertionError):
            outcomes.wait("f", timeout=0.5)  # real time passes, the engine clock does not
        clock.advance(6)
        assert outcomes.wait("f").state is RunState.TIMED_OUT
    finally:
        ex.shutdown(0.5)


def test_broken_job_module_is_named_in_run_errors(outcomes: Outcomes) -> None:
    ex = ProcessExecutor(concurrency=1, jobs_modules=["fixtures_jobs.no_such_module"])
    ex.start(outcomes)
    try:
        ex.submit(request("b", "fx.add", a=1))
        outcome = outcomes.wait("b")
    finally:
        ex.shutdown(0.5)
    assert outcome.error is not None
    assert outcome.error.type == "UnknownJobError"
    assert "could not import its job modules" in outcome.error.message
    assert "fixtures_jobs.no_such_module" in outcome.error.message


def test_works_from_an_asyncio_loop_in_a_background_thread() -> None:
    result: dict[str, Outcome] = {}
    failure: list[BaseException] = []

    async def engine_like() -> None:
        loop = asyncio.get_running_loop()
        done: asyncio.Future[Outcome] = loop.create_future()
        ex = ProcessExecutor(concurrency=1, jobs_modules=JOBS)
        ex.start(lambda o: loop.call_soon_threadsafe(done.set_result, o))
        try:
            ex.submit(request("loop", "fx.async_add", a=41))
            result["outcome"] = await asyncio.wait_for(done, WAIT_SECONDS)
        finally:
            await asyncio.to_thread(ex.shutdown, 0.5)

    def thread_main() -> None:
        try:
            asyncio.run(engine_like())
        except BaseException as exc:
            failure.append(exc)

    thread = threading.Thread(target=thread_main)
    thread.start()
    thread.join(WAIT_SECONDS * 2)
    assert not failure, failure
    assert result["outcome"].result == {"sum": 42, "run_id": "loop"}


def test_worker_ignoring_sigterm_is_killed(outcomes: Outcomes) -> None:
    ex = ProcessExecutor(concurrency=1, jobs_modules=JOBS, kill_grace_seconds=0.3)
    ex.start(outcomes)
    try:
        ex.submit(request("i", "fx.ignore_term", timeout=0.5))
        pid = ex.pid_of("i")
        assert pid is not None
        outcome = outcomes.wait("i")
        assert outcome.state is RunState.TIMED_OUT
        assert gone(pid)
        ex.submit(request("after", "fx.add", a=1))
        assert outcomes.wait("after").state is RunState.SUCCEEDED
    finally:
        ex.shutdown(0.5)


UNGUARDED_SCRIPT = """
import sys
sys.path.insert(0, {tests!r})
from duetime.executors.base import ExecutionRequest
from duetime.executors.process import ProcessExecutor
from datetime import datetime, UTC
import queue
print("main module ran", flush=True)
got = queue.Queue()
ex = ProcessExecutor(concurrency=2, jobs_modules=["fixtures_jobs.demo"])
ex.start(got.put)
ex.submit(ExecutionRequest(run_id="r", job="fx.add", parameters={{"a": 1}}, attempt=1,
    lease_token="l", timeout_seconds=None, scheduled_for=datetime(2030, 1, 1, tzinfo=UTC)))
print("result", got.get(timeout=20).result["sum"], flush=True)
ex.shutdown(1)
"""


def test_unguarded_main_script_is_not_rerun_in_workers(tmp_path: Path) -> None:
    import subprocess

    script = tmp_path / "engine_script.py"
    script.write_text(UNGUARDED_SCRIPT.format(tests=str(TESTS_DIR)))
    done = subprocess.run(
        [sys.executable, str(script)], capture_output=True, text=True, timeout=60, check=False
    )
    assert done.returncode == 0, done.stderr
    assert done.stdout.splitlines() == ["main module ran", "result 2"]


def test_sigkill_from_outside_is_worker_lost(executor: ProcessExecutor, outcomes: Outcomes) -> None:
    import signal

    executor.submit(request("k", "fx.pid_sleep", seconds=60))
    pid = executor.pid_of("k")
    assert pid is not None
    os.kill(pid, signal.SIGKILL)
    outcome = outcomes.wait("k")
    assert outcome.state is RunState.FAILED
    assert outcome.error is not None
    assert outcome.error.type == "WorkerLost"
    assert "SIGKILL" in outcome.error.message
    assert str(pid) in outcome.error.message


def test_idle_worker_death_is_repaired(executor: ProcessExecutor, outcomes: Outcomes) -> None:
    import signal

    executor.submit(request("warm", "fx.heartbeat"))  # also: heartbeats do not disturb anything
    assert outcomes.wait("warm").result == 3
    victim = executor.worker_pids()[0]
    os.kill(victim, signal.SIGKILL)
    wait_until(lambda: victim not in executor.worker_pids() and len(executor.worker_pids()) == 2)
    assert executor.free_slots == 2
    executor.submit(request("a1", "fx.add", a=1))
    executor.submit(request("a2", "fx.add", a=2))
    assert outcomes.wait("a1").state is RunState.SUCCEEDED
    assert outcomes.wait("a2").state is RunState.SUCCEEDED


GUARDED_SCRIPT_WITH_JOBS = """
import queue, sys
from datetime import datetime, UTC
from duetime.executors.base import ExecutionRequest
from duetime.executors.process import ProcessExecutor
from duetime.jobs import job


@job("main.hello")
def hello(name: str) -> str:
    return "hello " + name


if __name__ == "__main__":
    got = queue.Queue()
    ex = ProcessExecutor(concurrency=1)
    ex.start(got.put)
    ex.submit(ExecutionRequest(run_id="r", job="main.hello", parameters={"name": "w"},
        attempt=1, lease_token="l", timeout_seconds=None,
        scheduled_for=datetime(2030, 1, 1, tzinfo=UTC)))
    outcome = got.get(timeout=20)
    print(outcome.state, outcome.result, outcome.error, flush=True)
    ex.shutdown(1)
"""


def test_jobs_defined_in_a_guarded_main_script_run_in_workers(tmp_path: Path) -> None:
    import subprocess

    script = tmp_path / "script_with_jobs.py"
    script.write_text(GUARDED_SCRIPT_WITH_JOBS)
    done = subprocess.run(
        [sys.executable, str(script)], capture_output=True, text=True, timeout=60, check=False
    )
    assert done.returncode == 0, done.stderr
    assert done.stdout.strip() == "succeeded hello w None"


def test_job_logs_follow_the_engine_logger_levels(outcomes: Outcomes) -> None:
    """Like ``duetime scheduler run``: the duetime logger at INFO, the root left at WARNING."""
    records: list[logging.LogRecord] = []

    class Keep(logging.Handler):
        def emit(self, record: logging.LogRecord) -> None:
            records.append(record)

    duetime_logger = logging.getLogger("duetime")
    handler, old_level = Keep(), duetime_logger.level
    duetime_logger.addHandler(handler)
    duetime_logger.setLevel(logging.INFO)
    try:
        assert logging.getLogger().getEffectiveLevel() == logging.WARNING
        ex = ProcessExecutor(concurrency=1, jobs_modules=JOBS)
        ex.start(outcomes)
        ex.submit(request("l", "fx.echo_secret", token="plain"))
        outcomes.wait("l")
        ex.shutdown(0.5)
    finally:
        duetime_logger.removeHandler(handler)
        duetime_logger.setLevel(old_level)
    params = [r for r in records if getattr(r, "event", None) == "params"]
    assert params, [r.getMessage() for r in records]
    assert params[0].levelno == logging.INFO
    assert params[0].fields == {"token": "plain", "headers": None}  # type: ignore[attr-defined]
    assert params[0].run_id == "l"  # type: ignore[attr-defined]


@pytest.mark.parametrize("stop", ["timeout", "cancel"])
def test_stopping_a_run_also_kills_what_its_job_started(
    executor: ProcessExecutor, outcomes: Outcomes, tmp_path: Path, stop: str
) -> None:
    pid_file = tmp_path / "child.pid"
    timeout = 1.0 if stop == "timeout" else None
    executor.submit(request("g", "fx.spawn_child", timeout=timeout, pid_file=str(pid_file)))
    wait_until(pid_file.exists)
    child = int(pid_file.read_text())
    assert not gone(child)
    if stop == "cancel":
        executor.cancel("g")
    outcome = outcomes.wait("g")
    assert outcome.state in {RunState.TIMED_OUT, RunState.CANCELLED}
    wait_until(lambda: gone(child))


def test_only_a_deadline_before_the_supervisors_next_look_wakes_it(
    outcomes: Outcomes, monkeypatch: pytest.MonkeyPatch
) -> None:
    from duetime.executors import process as process_module

    # without a wake-up the supervisor would wait a minute: only a wake can time "short" out
    monkeypatch.setattr(process_module, "SUPERVISOR_TICK_SECONDS", 60.0)
    ex = ProcessExecutor(concurrency=3, jobs_modules=JOBS)
    ex.start(outcomes)
    wakes: list[int] = []
    real_wake = ex._wake

    def counting_wake() -> None:
        wakes.append(1)
        real_wake()

    monkeypatch.setattr(ex, "_wake", counting_wake)
    try:
        wait_until(lambda: all(w.ready for w in ex._workers))
        ex.submit(request("long", "fx.pid_sleep", timeout=3600, seconds=60))
        wait_until(lambda: ex._looks_at is not None)  # waiting, to look again in ~a minute
        ex.submit(request("later", "fx.pid_sleep", timeout=7200, seconds=60))
        assert wakes == []  # a deadline after its next look: no wake-up
        ex.submit(request("short", "fx.pid_sleep", timeout=0.5, seconds=60))
        assert outcomes.wait("short").state is RunState.TIMED_OUT  # well before a minute
    finally:
        ex.shutdown(0.5)
