"""ProcessExecutor (default): duetime's own pool of forkserver worker processes.

One run per worker at a time. A supervisor thread in the engine process reads every worker
pipe (results, forwarded log records), watches the process sentinels and enforces deadlines
measured with the engine's ``clock.monotonic()``. Timeout and cancel terminate the worker
(SIGTERM, then SIGKILL after ``KILL_GRACE_SECONDS``) together with the processes its job
started (each worker leads its own process group) and start a replacement; the run's
outcome is reported once the process is gone, so a retry can never overlap a still-running
attempt. A worker that dies on its own (``os._exit``, a segfault, the OOM killer) fails its
run with ``WorkerLost``.

Workers start with the engine's environment as it was when they were started (secrets and
allowlists are read from it) and import ``duetime.jobs`` and the job modules; they run the
job types those imports register in :data:`duetime.jobs.default_registry` (job types only
registered in another registry are not known to workers). Workers ignore SIGINT: Ctrl-C in
a terminal reaches the engine, whose graceful shutdown stops them.
"""

from __future__ import annotations

import contextlib
import functools
import logging
import multiprocessing
import os
import select
import selectors
import signal
import threading
from collections.abc import Callable, Sequence
from dataclasses import dataclass
from itertools import count
from multiprocessing import popen_forkserver, spawn
from multiprocessing.connection import Connection
from multiprocessing.context import ForkServerProcess
from multiprocessing.process import BaseProcess
from typing import Any

from duetime.clock import Clock, SystemClock
from duetime.executors._common import (
    SUPERVISOR_TICK_SECONDS,
    WORKER_LOST_ERROR,
    ActiveRun,
    OutcomeReporter,
    cancelled_result,
    check_concurrency,
    deadline_for,
    interrupted_result,
    logger,
    timed_out_result,
)
from duetime.executors._worker import worker_main
from duetime.executors.base import ExecutionRequest, OutcomeCallback, request_fields
from duetime.jobs.context import JOB_LOGGER_PREFIX
from duetime.jobs.execute import ExecutionResult, failure
from duetime.jobs.registry import JobRegistry, default_registry
from duetime.models import RunError, RunState

#: Seconds between SIGTERM and SIGKILL when a worker is stopped.
KILL_GRACE_SECONDS = 5.0
#: Longest pause before replacing a worker that keeps dying before it is ready.
MAX_RESPAWN_DELAY_SECONDS = 5.0
_FIRST_RESPAWN_DELAY_SECONDS = 0.1
_KILLED_HOW = "its worker process was terminated"


_PREPARATION_LOCK = threading.Lock()


def _without_main(original: Callable[[str], dict[str, Any]], name: str) -> dict[str, Any]:
    data = original(name)
    data.pop("init_main_from_name", None)
    data.pop("init_main_from_path", None)
    return data


class _NoMainPopen(popen_forkserver.Popen):
    """Starts a forkserver child without re-running the parent's ``__main__`` in it.

    Workers need only duetime and the job modules (imported by name). Re-running ``__main__``
    would start an unguarded user script once per worker, and import the whole CLI for
    ``duetime scheduler run``. (When ``__main__`` itself defines job types, workers do import
    it, as multiprocessing always does: such scripts need the ``if __name__ == "__main__"``
    guard.)
    """

    def _launch(self, process_obj: Any) -> None:
        with _PREPARATION_LOCK:
            original = spawn.get_preparation_data
            spawn.get_preparation_data = functools.partial(_without_main, original)
            try:
                super()._launch(process_obj)  # type: ignore[misc]
            finally:
                spawn.get_preparation_data = original


class _WorkerProcess(ForkServerProcess):
    """A forkserver process started by :class:`_NoMainPopen`."""

    @staticmethod
    def _Popen(process_obj: Any) -> Any:
        return _NoMainPopen(process_obj)


@dataclass(eq=False)
class _Worker:
    """One worker process and what it is doing."""

    process: BaseProcess
    conn: Connection
    #: Tells without blocking whether ``conn`` has a message (``conn.poll()`` builds a
    #: selector per call, twice per run).
    readable: Any = None
    active: ActiveRun | None = None
    stop_reason: str | None = None  # timeout | cancel | interrupt | retire
    term_at: float | None = None  # real monotonic instant SIGTERM was sent
    ready: bool = False

    @property
    def idle(self) -> bool:
        return self.active is None and self.stop_reason is None


class ProcessExecutor:
    """Runs each request in a pool of ``concurrency`` forkserver worker processes."""

    name = "process"

    def __init__(
        self,
        *,
        concurrency: int = 5,
        jobs_modules: Sequence[str] = (),
        clock: Clock | None = None,
        kill_grace_seconds: float = KILL_GRACE_SECONDS,
        registry: JobRegistry | None = None,
    ) -> None:
        self.concurrency = check_concurrency(concurrency)
        self._registry = registry or default_registry
        self._kill_grace = kill_grace_seconds
        self._modules = [m.strip() for m in jobs_modules if m.strip()]
        self._clock = clock or SystemClock()
        self._real = SystemClock()  # kill escalation is about the OS, not the engine's clock
        self._reporter = OutcomeReporter(self._clock)
        self._mp = multiprocessing.get_context("forkserver")
        self._workers: list[_Worker] = []
        self._cond = threading.Condition()
        self._wake_r, self._wake_w = self._mp.Pipe(duplex=False)
        #: What the supervisor waits on (wake pipe, worker pipes and sentinels), registered
        #: as workers come and go rather than once per wait.
        self._selector = selectors.PollSelector()
        self._selector.register(self._wake_r, selectors.EVENT_READ, self._wake_r)
        #: The engine-clock instant the waiting supervisor looks again (None: not waiting).
        self._looks_at: float | None = None
        self._supervisor: threading.Thread | None = None
        self._closing = False
        self._interrupting = False
        self._respawn_failures = 0
        self._respawn_at: float | None = None
        self._names = count(1)

    # ------------------------------------------------------------------ public API
    def start(self, on_outcome: OutcomeCallback) -> None:
        """Start the workers and the supervisor thread."""
        with self._cond:
            if self._supervisor is not None:
                raise RuntimeError("executor already started")
            self._reporter.attach(on_outcome)
            self._mp.set_forkserver_preload(["duetime.jobs", *self._modules])
            for _ in range(self.concurrency):
                self._workers.append(self._spawn())
            self._supervisor = threading.Thread(
                target=self._supervise, name="duetime-process-supervisor", daemon=True
            )
        self._supervisor.start()

    @property
    def free_slots(self) -> int:
        """Idle workers (started or starting) that can take a request now."""
        with self._cond:
            if self._supervisor is None or self._closing:
                return 0
            return sum(1 for w in self._workers if w.idle)

    def submit(self, request: ExecutionRequest) -> None:
        """Send ``request`` to an idle worker; RuntimeError when none is free."""
        with self._cond:
            worker = self._pick_worker(request)
            active = ActiveRun(request, self._clock.now(), deadline_for(request, self._clock))
            worker.active = active
            active.handle = worker
            # only a deadline before the waiting supervisor's next look needs it awake
            looks_at, deadline = self._looks_at, active.deadline
            wake = deadline is not None and looks_at is not None and deadline < looks_at
        try:  # outside the lock: a worker still starting up may take a while to read
            worker.conn.send(request_fields(request))  # a tuple pickles faster than the class
        except (OSError, ValueError):  # it died meanwhile: its sentinel reports WorkerLost
            logger.warning("worker of run %s died before it got the request", request.run_id)
        if wake:
            self._wake()

    def _pick_worker(self, request: ExecutionRequest) -> _Worker:
        if self._supervisor is None or self._closing:
            raise RuntimeError("executor is not accepting work (not started or shutting down)")
        if any(w.active and w.active.request.run_id == request.run_id for w in self._workers):
            raise RuntimeError(f"run {request.run_id} is already executing here")
        for worker in self._workers:
            if worker.idle:
                return worker
        raise RuntimeError(f"no free slot (concurrency {self.concurrency})")

    def cancel(self, run_id: str) -> bool:
        """Terminate the worker running ``run_id``; its outcome is ``cancelled``."""
        with self._cond:
            worker = self._worker_running(run_id)
            if worker is None or worker.stop_reason is not None:
                return False
            self._terminate(worker, "cancel")
        self._wake()
        return True

    def running(self) -> list[str]:
        """Run ids executing in a worker and not yet reported."""
        with self._cond:
            return [
                w.active.request.run_id
                for w in self._workers
                if w.active is not None and not w.active.reported
            ]

    def worker_pids(self) -> list[int]:
        """Process ids of the current workers (for operators and tests)."""
        with self._cond:
            return [w.process.pid for w in self._workers if w.process.pid is not None]

    def pid_of(self, run_id: str) -> int | None:
        """Process id of the worker running ``run_id``, if any."""
        with self._cond:
            worker = self._worker_running(run_id)
            return worker.process.pid if worker is not None else None

    def shutdown(self, grace_seconds: float) -> None:
        """Stop accepting, wait up to ``grace_seconds``, then stop workers (runs Interrupted)."""
        with self._cond:
            supervisor = self._supervisor
            if supervisor is None:
                return
            self._closing = True
            self._cond.wait_for(self._nothing_running, timeout=max(0.0, grace_seconds))
            self._interrupting = True
        self._wake()
        supervisor.join(timeout=self._kill_grace + 5.0)
        if supervisor.is_alive():
            logger.error("process executor supervisor did not stop in time")

    # ------------------------------------------------------------------ worker lifecycle
    def _spawn(self) -> _Worker:
        parent_end, child_end = self._mp.Pipe(duplex=True)
        process_class = self._mp.Process if self._main_defines_jobs() else _WorkerProcess
        process = process_class(
            target=worker_main,
            args=(child_end, self._modules, dict(os.environ), _forwarded_level()),
            name=f"duetime-worker-{next(self._names)}",
            daemon=True,
        )
        process.start()
        child_end.close()
        readable = select.poll()
        readable.register(parent_end.fileno(), select.POLLIN)
        self._selector.register(parent_end, selectors.EVENT_READ, parent_end)
        self._selector.register(process.sentinel, selectors.EVENT_READ, process.sentinel)
        return _Worker(process, parent_end, readable)

    def _main_defines_jobs(self) -> bool:
        """True when ``__main__`` registered job types: workers must then import it too."""
        return any(t.module == "__main__" for t in self._registry.all())

    def _terminate(self, worker: _Worker, reason: str) -> None:
        """Send SIGTERM (the supervisor escalates to SIGKILL); call with the lock held."""
        worker.stop_reason = reason
        worker.term_at = self._real.monotonic()
        if worker.active is not None:
            worker.active.cancel_event.set()
        _signal_group(worker.process, signal.SIGTERM)

    def _worker_running(self, run_id: str) -> _Worker | None:
        for worker in self._workers:
            if worker.active is not None and worker.active.request.run_id == run_id:
                return worker
        return None

    def _nothing_running(self) -> bool:
        return all(w.active is None for w in self._workers)

    def _wake(self) -> None:
        with contextlib.suppress(OSError, ValueError):
            self._wake_w.send_bytes(b"!")

    # ------------------------------------------------------------------ supervisor
    def _supervise(self) -> None:
        try:
            while self._supervise_once():
                pass
        except Exception:
            logger.exception("process executor supervisor crashed; failing its runs")
            self._fail_everything()
        finally:
            self._selector.close()
            self._wake_r.close()
            self._wake_w.close()

    def _supervise_once(self) -> bool:
        with self._cond:
            if self._interrupting:
                self._stop_all()
            if self._closing and not self._workers:
                return False
            timeout = self._wait_seconds()
            self._looks_at = self._clock.monotonic() + timeout
        ready = [key.data for key, _ in self._selector.select(timeout)]
        with self._cond:
            self._looks_at = None
            self._handle_ready(ready)
            self._enforce_deadlines()
            self._escalate_kills()
            self._respawn_due()
            self._cond.notify_all()
        return True

    def _wait_seconds(self) -> float:
        deadlines = [
            w.active.deadline
            for w in self._workers
            if w.active is not None and w.active.deadline is not None and w.stop_reason is None
        ]
        if not deadlines:
            return SUPERVISOR_TICK_SECONDS
        remaining = min(deadlines) - self._clock.monotonic()
        return max(0.0, min(remaining, SUPERVISOR_TICK_SECONDS))

    def _handle_ready(self, ready: list[Any]) -> None:
        if self._wake_r in ready:
            while self._wake_r.poll():
                self._wake_r.recv_bytes()
        for worker in list(self._workers):
            if worker.conn in ready:
                self._drain(worker)
            if worker.process.sentinel in ready:
                self._on_exit(worker)

    def _drain(self, worker: _Worker) -> None:
        try:
            while worker.readable.poll(0):  # hang-up too: recv then raises EOFError
                self._on_message(worker, worker.conn.recv())
        except (EOFError, OSError):
            pass  # the sentinel reports the exit

    def _on_message(self, worker: _Worker, message: tuple[Any, ...]) -> None:
        kind = message[0]
        if kind == "log":
            _replay_log(message[1])
        elif kind == "ready":
            worker.ready = True
            self._respawn_failures = 0
        elif kind == "done":
            self._on_done(worker, message)

    def _on_done(self, worker: _Worker, message: tuple[Any, ...]) -> None:
        _, run_id, state, result, error = message
        active = worker.active
        if active is None or active.request.run_id != run_id or worker.stop_reason is not None:
            return  # a run we already decided to stop: its late result is discarded
        worker.active = None
        run_error = RunError(**error) if error else None
        self._reporter.report(active, ExecutionResult(RunState(state), result, run_error))

    def _on_exit(self, worker: _Worker) -> None:
        self._drain(worker)
        _kill_leftovers(worker.process)
        worker.process.join(timeout=0)
        self._workers.remove(worker)
        self._selector.unregister(worker.conn)
        self._selector.unregister(worker.process.sentinel)
        worker.conn.close()
        if worker.active is not None:
            self._reporter.report(worker.active, self._exit_result(worker))
        elif worker.stop_reason is None and not worker.ready:
            self._respawn_failures += 1
        if not self._closing:
            self._schedule_respawn()

    def _exit_result(self, worker: _Worker) -> ExecutionResult:
        timeout = worker.active.request.timeout_seconds if worker.active else None
        if worker.stop_reason == "timeout":
            return timed_out_result(timeout, _KILLED_HOW)
        if worker.stop_reason == "cancel":
            return cancelled_result(_KILLED_HOW)
        if worker.stop_reason == "interrupt":
            return interrupted_result()
        return failure(WORKER_LOST_ERROR, _describe_exit(worker.process))

    def _schedule_respawn(self) -> None:
        if self._respawn_failures == 0:
            self._respawn_at = self._real.monotonic()
            self._respawn_due()
            return
        delay = min(
            MAX_RESPAWN_DELAY_SECONDS,
            _FIRST_RESPAWN_DELAY_SECONDS * 2 ** (self._respawn_failures - 1),
        )
        logger.warning("worker died before it was ready; replacing it in %.1f s", delay)
        self._respawn_at = self._real.monotonic() + delay

    def _respawn_due(self) -> None:
        if self._closing or self._respawn_at is None:
            return
        if self._real.monotonic() < self._respawn_at:
            return
        self._respawn_at = None
        try:
            while len(self._workers) < self.concurrency:
                self._workers.append(self._spawn())
        except Exception:  # fork failures (EMFILE, EAGAIN...): retry later, keep serving
            logger.exception("cannot start a worker process; retrying")
            self._respawn_failures += 1
            self._schedule_respawn()

    def _enforce_deadlines(self) -> None:
        now = self._clock.monotonic()
        for worker in self._workers:
            active = worker.active
            if worker.stop_reason or active is None or active.deadline is None:
                continue
            if active.deadline <= now:
                self._terminate(worker, "timeout")

    def _escalate_kills(self) -> None:
        now = self._real.monotonic()
        for worker in self._workers:
            if worker.term_at is not None and now - worker.term_at >= self._kill_grace:
                _signal_group(worker.process, signal.SIGKILL)

    def _stop_all(self) -> None:
        for worker in self._workers:
            if worker.stop_reason is not None:
                continue
            if worker.active is not None:
                self._terminate(worker, "interrupt")
            else:
                self._retire(worker)

    def _retire(self, worker: _Worker) -> None:
        worker.stop_reason = "retire"
        worker.term_at = self._real.monotonic()
        try:
            worker.conn.send(None)
        except (OSError, ValueError):
            _signal_group(worker.process, signal.SIGTERM)

    def _fail_everything(self) -> None:
        with self._cond:
            for worker in self._workers:
                if worker.active is not None:
                    self._reporter.report(worker.active, interrupted_result())
                _signal_group(worker.process, signal.SIGKILL)
            self._workers.clear()
            self._closing = True
            self._cond.notify_all()


def _signal_group(process: BaseProcess, sig: signal.Signals) -> None:
    """Signal a worker's process group: the worker and whatever its job started."""
    pid = process.pid
    if pid is None:
        return
    try:
        os.killpg(pid, sig)
    except (ProcessLookupError, PermissionError):  # not a group leader yet, or gone
        with contextlib.suppress(OSError):
            os.kill(pid, sig)


def _kill_leftovers(process: BaseProcess) -> None:
    """SIGKILL what a dead worker's job left running in its process group."""
    if process.pid is not None:
        with contextlib.suppress(OSError):
            os.killpg(process.pid, signal.SIGKILL)


def _describe_exit(process: BaseProcess) -> str:
    code = process.exitcode
    if code is not None and code < 0:
        try:
            name = signal.Signals(-code).name
        except ValueError:
            name = f"signal {-code}"
        return f"worker process {process.pid} was killed by {name} (exit code {code})"
    return f"worker process {process.pid} exited with code {code} while running the job"


def _forwarded_level() -> int:
    """The lowest level this process wants from job code (workers forward from there up)."""
    return min(
        logging.getLogger().getEffectiveLevel(),
        logging.getLogger(JOB_LOGGER_PREFIX).getEffectiveLevel(),
    )


def _replay_log(data: dict[str, Any]) -> None:
    """Hand a worker's log record to this process's logging."""
    record = logging.makeLogRecord(data)
    target = logging.getLogger(record.name)
    if target.isEnabledFor(record.levelno):
        target.handle(record)
