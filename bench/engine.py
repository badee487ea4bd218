"""The engine against APScheduler 3.11 on the same scenarios (issue 3 §7).

(a) **Throughput**: N one-off no-op runs all due at once, fired, executed and recorded, on
    SQLite (both with ``journal_mode=WAL`` and ``synchronous=NORMAL``) and PostgreSQL.
    duetime: ``Engine`` + thread executor (10 slots); APScheduler: ``BackgroundScheduler`` +
    ``SQLAlchemyJobStore`` + ``ThreadPoolExecutor(10)``. The clock starts when the
    scheduler starts (setup excluded) and stops when the last run is recorded.
(b) **Start lateness** (handler start − scheduled instant), p50/p95/p99: 2,000 one-off runs
    spread over 10 s, and 100 schedules firing every second for 10 s.

Every number is the median of three rounds. PostgreSQL runs when ``DUETIME_BENCH_POSTGRES_URL``
(or ``DUETIME_TEST_POSTGRES_URL``) names a server; each round gets a fresh database.
``DUETIME_BENCH_SIZES=1000,10000`` changes the throughput sizes (default 1,000, 10,000
and 50,000, as issue 3 §7(a) asks);
``DUETIME_BENCH_WORKERS=100`` gives both schedulers 100 slots instead of 10 (100 schedules due
in the same second cannot all start within 20 ms through 10 slots);
``DUETIME_BENCH_EXECUTOR=pool`` measures the engine with a bench-only pooled thread executor
(engine cost without per-run thread creation). Results go to ``bench/results/engine.json``
(``engine-pool.json``).
"""

from __future__ import annotations

import json
import logging
import os
import statistics
import tempfile
import threading
import time
import uuid
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any

import sqlalchemy as sa

from duetime.clock import SystemClock
from duetime.config import Settings
from duetime.engine import Engine
from duetime.executors.factory import create_executor
from duetime.executors.thread import ThreadExecutor
from duetime.jobs.context import RunContext
from duetime.jobs.registry import JobRegistry, default_registry, job
from duetime.store import tables as t
from duetime.store.migrate import upgrade_database
from duetime.store.sqlalchemy import SQLAlchemyStore

RESULTS_DIR = Path(__file__).parent / "results"
ROUNDS = 3
#: Slots of both schedulers; ``DUETIME_BENCH_WORKERS`` changes it for both (default 10).
WORKERS = int(os.environ.get("DUETIME_BENCH_WORKERS", "10"))
DEFAULT_SIZES = (1_000, 10_000, 50_000)  # issue 3 §7(a)
SPREAD_RUNS = 2_000
SPREAD_SECONDS = 10.0
PERIODIC_SCHEDULES = 100
PERIODIC_SECONDS = 10
LEAD_SECONDS = 2.0  # scenarios (b) start this long after setup, so both start idle
TIMEOUT_SECONDS = 600.0
POLL_SECONDS = 0.002
MAX_POLL_SECONDS = 0.05

#: ``DUETIME_BENCH_EXECUTOR=pool`` swaps in :class:`PooledThreadExecutor` (engine cost only);
#: ``process`` uses duetime's forkserver pool with the built-in ``duetime.noop`` (lateness is
#: then read from each run's stored ``lateness_ms``: claim time − available_at).
EXECUTOR = os.environ.get("DUETIME_BENCH_EXECUTOR", "thread")
PROCESS = EXECUTOR == "process"

REGISTRY = JobRegistry()
LATENESS: list[float] = []
NOOP_JOB = "duetime.noop" if PROCESS else "bench.noop"
RECORD_JOB = "duetime.noop" if PROCESS else "bench.record"
LATENESS_LOCK = threading.Lock()


@job("bench.noop", registry=REGISTRY)
def bench_noop() -> None:
    """Do nothing."""


EXECUTED = [0]
ALL_EXECUTED = threading.Event()
EXPECTED = [0]


@job("bench.count", registry=REGISTRY)
def bench_count() -> None:
    """Count executions; the throughput wait polls the database only once all have run."""
    with LATENESS_LOCK:
        EXECUTED[0] += 1
        if EXECUTED[0] >= EXPECTED[0]:
            ALL_EXECUTED.set()


@job("bench.record", registry=REGISTRY)
def bench_record(ctx: RunContext) -> None:
    """Record how late this run started."""
    _record(time.time() - ctx.scheduled_for.timestamp())


def _record(lateness_seconds: float) -> None:
    with LATENESS_LOCK:
        LATENESS.append(lateness_seconds)


def aps_noop() -> None:
    """APScheduler's no-op job (module level: its job store pickles a reference)."""


def aps_record(scheduled_ts: float) -> None:
    """APScheduler's one-off recorder: the scheduled instant is passed as an argument."""
    _record(time.time() - scheduled_ts)


def aps_record_periodic(anchor_ts: float) -> None:
    """APScheduler's periodic recorder: the fire is the last whole second since the anchor."""
    now = time.time()
    _record(now - (anchor_ts + int(now - anchor_ts)))


# ---------------------------------------------------------------- databases


def _postgres_admin_url() -> str | None:
    return os.environ.get("DUETIME_BENCH_POSTGRES_URL") or os.environ.get(
        "DUETIME_TEST_POSTGRES_URL"
    )


@contextmanager
def database(backend: str) -> Iterator[str]:
    """A fresh, empty database URL of ``backend`` for one round."""
    if backend == "sqlite":
        with tempfile.TemporaryDirectory() as tmp:
            yield f"sqlite:///{Path(tmp) / 'bench.db'}"
        return
    admin_url = _postgres_admin_url()
    assert admin_url is not None
    admin = sa.create_engine(
        sa.make_url(admin_url).set(drivername="postgresql+psycopg"),
        isolation_level="AUTOCOMMIT",
        poolclass=sa.pool.NullPool,
    )
    name = f"duetime_bench_{uuid.uuid4().hex[:10]}"
    with admin.connect() as conn:
        conn.execute(sa.text(f'CREATE DATABASE "{name}"'))
    try:
        url = sa.make_url(admin_url).set(drivername="postgresql+psycopg", database=name)
        yield url.render_as_string(hide_password=False)
    finally:
        with admin.connect() as conn:
            conn.execute(sa.text(f'DROP DATABASE IF EXISTS "{name}" WITH (FORCE)'))
        admin.dispose()


def _aps_engine(url: str) -> sa.Engine:
    """APScheduler's engine with the same SQLite settings duetime uses (WAL, NORMAL)."""
    engine = sa.create_engine(url)
    if engine.dialect.name == "sqlite":

        @sa.event.listens_for(engine, "connect")
        def _pragmas(dbapi_conn: Any, _record: Any) -> None:
            cursor = dbapi_conn.cursor()
            cursor.execute("PRAGMA journal_mode = WAL")
            cursor.execute("PRAGMA synchronous = NORMAL")
            cursor.execute("PRAGMA busy_timeout = 30000")
            cursor.close()

    return engine


# ---------------------------------------------------------------- duetime


class PooledThreadExecutor:
    """Bench-only: duetime's job execution on *reused* threads (like APScheduler's pool).

    duetime's ThreadExecutor starts one thread per run; on small VMs that costs 0.1–1 ms of
    the engine loop per run. This adapter isolates the engine's own cost from that.
    No timeouts or cancellation: it exists to measure, not to ship.
    """

    name = "thread-pool"

    def __init__(self, concurrency: int) -> None:
        from concurrent.futures import ThreadPoolExecutor

        self._pool = ThreadPoolExecutor(concurrency)
        self._concurrency = concurrency
        self._active: set[str] = set()
        self._lock = threading.Lock()
        self._on_outcome: Callable[[Any], None] | None = None

    def start(self, on_outcome: Callable[[Any], None]) -> None:
        self._on_outcome = on_outcome

    @property
    def free_slots(self) -> int:
        with self._lock:
            return self._concurrency - len(self._active)

    def submit(self, request: Any) -> None:
        with self._lock:
            self._active.add(request.run_id)
        self._pool.submit(self._run, request)

    def _run(self, request: Any) -> None:
        from duetime.jobs.execute import execute_request

        started = datetime.now(UTC)
        result = execute_request(request, REGISTRY, cancelled=threading.Event())
        with self._lock:
            self._active.discard(request.run_id)
        assert self._on_outcome is not None
        self._on_outcome(result.to_outcome(request, started, datetime.now(UTC)))

    def cancel(self, run_id: str) -> bool:
        return False

    def running(self) -> list[str]:
        with self._lock:
            return list(self._active)

    def shutdown(self, grace_seconds: float) -> None:
        self._pool.shutdown(wait=True)


def _schedule_row(
    name: str, job_name: str, trigger: dict[str, Any], first: datetime
) -> dict[str, Any]:
    now = datetime.now(UTC)
    return {
        "id": str(uuid.uuid4()), "tenant": "default", "name": name, "description": None,
        "job": job_name, "parameters": {}, "trigger": trigger, "timezone": "UTC",
        "start_date": None, "end_date": None, "enabled": True, "state": "active",
        "priority": 0, "max_instances": 1, "overlap": "buffer_all", "misfire_grace_time": None,
        "coalesce": True, "max_attempts": None, "max_recoveries": 3, "retry_backoff": 10.0,
        "timeout": None, "chain": [], "executor": "default", "sla_seconds": 60, "labels": {},
        "source": "code", "created_by": None, "next_run_at": first, "last_run_at": None,
        "last_run_state": None, "version": 1, "created_at": now, "updated_at": now,
        "deleted_at": None,
    }  # fmt: skip


class DuetimeRig:
    """One database with duetime's schema, schedules inserted in bulk, an engine to start."""

    def __init__(self, url: str) -> None:
        upgrade_database(url)
        self.clock = SystemClock()
        self.store = SQLAlchemyStore(url, clock=self.clock)
        registry = default_registry if PROCESS else REGISTRY
        executor: Any = ThreadExecutor(concurrency=WORKERS, registry=REGISTRY, clock=self.clock)
        if EXECUTOR == "pool":
            executor = PooledThreadExecutor(WORKERS)
        elif PROCESS:
            executor = create_executor(
                "process", concurrency=WORKERS, registry=registry, jobs_modules=[], clock=self.clock
            )
        settings = Settings(concurrency=WORKERS, executor="thread", database_url=url)
        self.engine = Engine(
            self.store, registry=registry, executor=executor, clock=self.clock, settings=settings
        )

    def stored_lateness(self) -> list[float]:
        """Seconds between available_at and the claim of every run (process mode)."""
        with self.store.read() as conn:
            rows = conn.execute(sa.select(t.runs.c.lateness_ms)).scalars().all()
        return [ms / 1000.0 for ms in rows if ms is not None]

    def add(self, rows: list[dict[str, Any]]) -> None:
        with self.store.write() as conn:
            for start in range(0, len(rows), 1000):
                conn.execute(sa.insert(t.schedules), rows[start : start + 1000])

    def all_done(self, n: int) -> bool:
        """True once ``n`` runs exist and none is pending or running (cheap index probes)."""
        busy = [
            sa.select(t.runs.c.id).where(sa.text(f"duetime_runs.state = '{state}'")).limit(1)
            for state in ("pending", "running")
        ]
        with self.store.read() as conn:
            if any(conn.execute(query).first() is not None for query in busy):
                return False
            return (
                int(conn.execute(sa.select(sa.func.count()).select_from(t.runs)).scalar_one()) >= n
            )

    def close(self) -> None:
        self.engine.stop(wait=True)
        self.store.dispose()


def _wait(
    condition: Callable[[], bool],
    what: str,
    *,
    since: float | None = None,
    every: float = POLL_SECONDS,
) -> None:
    """Poll ``condition`` ``every`` seconds; with ``since`` (a perf_counter instant), every
    1 % of the time waited since then (at least ``every``, at most MAX_POLL_SECONDS).

    A poll of the database takes the GIL from the engine under test: the process executor's
    throughput has no in-process "all executed" event, and polled every 2 ms for its whole
    run it lost a sixth of the engine process's GIL time to the bench.
    """
    deadline = time.monotonic() + TIMEOUT_SECONDS
    while not condition():
        if time.monotonic() > deadline:
            raise TimeoutError(f"benchmark timed out waiting for {what}")
        pause = every
        if since is not None:
            pause = min(MAX_POLL_SECONDS, max(pause, (time.perf_counter() - since) / 100))
        time.sleep(pause)


def duetime_throughput(url: str, n: int) -> float:
    """Runs per second for ``n`` due one-off no-op runs."""
    rig = DuetimeRig(url)
    try:
        now = datetime.now(UTC)
        spec = {"version": 1, "type": "date", "run_at": now.isoformat()}
        job_name = NOOP_JOB if PROCESS else "bench.count"
        rig.add([_schedule_row(f"t{i}", job_name, spec, now) for i in range(n)])
        EXECUTED[0], EXPECTED[0] = 0, n
        ALL_EXECUTED.clear()
        started = time.perf_counter()
        rig.engine.start_background()
        if not PROCESS:  # like APScheduler's listener: no database polling while runs execute
            ALL_EXECUTED.wait(TIMEOUT_SECONDS)
        # then: every outcome recorded (process executor: polled all along, sparingly)
        _wait(lambda: rig.all_done(n), f"{n} duetime runs", since=started if PROCESS else None)
        return n / (time.perf_counter() - started)
    finally:
        rig.close()


def duetime_spread(url: str) -> list[float]:
    """Lateness of 2,000 one-off runs spread over 10 s."""
    rig = DuetimeRig(url)
    LATENESS.clear()
    try:
        base = datetime.now(UTC) + timedelta(seconds=LEAD_SECONDS)
        step = SPREAD_SECONDS / SPREAD_RUNS
        rows = []
        for i in range(SPREAD_RUNS):
            at = base + timedelta(seconds=i * step)
            spec = {"version": 1, "type": "date", "run_at": at.isoformat()}
            rows.append(_schedule_row(f"s{i}", RECORD_JOB, spec, at))
        rig.add(rows)
        rig.engine.start_background()
        if PROCESS:
            _wait(lambda: rig.all_done(SPREAD_RUNS), "spread runs", every=MAX_POLL_SECONDS)
            return rig.stored_lateness()
        _wait(lambda: len(LATENESS) >= SPREAD_RUNS, "spread runs")
        return list(LATENESS)
    finally:
        rig.close()


def duetime_periodic(url: str) -> list[float]:
    """Lateness of 100 schedules firing every second for 10 s."""
    rig = DuetimeRig(url)
    LATENESS.clear()
    try:
        anchor = datetime.now(UTC).replace(microsecond=0) + timedelta(seconds=LEAD_SECONDS)
        spec = {"version": 1, "type": "interval", "seconds": 1, "anchor": anchor.isoformat()}
        end = anchor + timedelta(seconds=PERIODIC_SECONDS - 0.5)
        rows = [_schedule_row(f"p{i}", RECORD_JOB, spec, anchor) for i in range(100)]
        for row in rows:
            row["end_date"] = end
        rig.add(rows)
        rig.engine.start_background()
        total = PERIODIC_SCHEDULES * PERIODIC_SECONDS
        if PROCESS:
            _wait(lambda: rig.all_done(total), "periodic runs", every=MAX_POLL_SECONDS)
            return rig.stored_lateness()
        _wait(lambda: len(LATENESS) >= total, "periodic runs")
        return list(LATENESS)
    finally:
        rig.close()


# ---------------------------------------------------------------- APScheduler 3


@contextmanager
def aps_scheduler(url: str) -> Iterator[Any]:
    from apscheduler.executors.pool import ThreadPoolExecutor
    from apscheduler.jobstores.sqlalchemy import SQLAlchemyJobStore
    from apscheduler.schedulers.background import BackgroundScheduler

    engine = _aps_engine(url)
    scheduler = BackgroundScheduler(
        jobstores={"default": SQLAlchemyJobStore(engine=engine)},
        executors={"default": ThreadPoolExecutor(WORKERS)},
        job_defaults={"misfire_grace_time": None, "coalesce": True, "max_instances": 1},
        timezone="UTC",
    )
    scheduler.start(paused=True)
    try:
        yield scheduler
    finally:
        scheduler.shutdown(wait=False)
        engine.dispose()


def _count_executed(scheduler: Any, target: int) -> threading.Event:
    from apscheduler.events import EVENT_JOB_ERROR, EVENT_JOB_EXECUTED

    done = threading.Event()
    seen = [0]
    lock = threading.Lock()

    def listener(_event: Any) -> None:
        with lock:
            seen[0] += 1
            if seen[0] >= target:
                done.set()

    scheduler.add_listener(listener, EVENT_JOB_EXECUTED | EVENT_JOB_ERROR)
    return done


def aps_throughput(url: str, n: int) -> float:
    """Runs per second for ``n`` due one-off no-op jobs."""
    with aps_scheduler(url) as scheduler:
        now = datetime.now(UTC)
        for i in range(n):
            scheduler.add_job(aps_noop, "date", run_date=now, id=f"t{i}")
        done = _count_executed(scheduler, n)
        started = time.perf_counter()
        scheduler.resume()
        if not done.wait(TIMEOUT_SECONDS):
            raise TimeoutError(f"APScheduler did not run {n} jobs")
        return n / (time.perf_counter() - started)


def aps_spread(url: str) -> list[float]:
    LATENESS.clear()
    with aps_scheduler(url) as scheduler:
        base = datetime.now(UTC) + timedelta(seconds=LEAD_SECONDS)
        step = SPREAD_SECONDS / SPREAD_RUNS
        for i in range(SPREAD_RUNS):
            at = base + timedelta(seconds=i * step)
            scheduler.add_job(aps_record, "date", run_date=at, args=[at.timestamp()], id=f"s{i}")
        scheduler.resume()
        _wait(lambda: len(LATENESS) >= SPREAD_RUNS, "APScheduler spread runs")
        return list(LATENESS)


def aps_periodic(url: str) -> list[float]:
    LATENESS.clear()
    with aps_scheduler(url) as scheduler:
        anchor = datetime.now(UTC).replace(microsecond=0) + timedelta(seconds=LEAD_SECONDS)
        end = anchor + timedelta(seconds=PERIODIC_SECONDS - 0.5)
        for i in range(PERIODIC_SCHEDULES):
            scheduler.add_job(
                aps_record_periodic, "interval", seconds=1, start_date=anchor, end_date=end,
                args=[anchor.timestamp()], id=f"p{i}",
            )  # fmt: skip
        scheduler.resume()
        total = PERIODIC_SCHEDULES * PERIODIC_SECONDS
        _wait(lambda: len(LATENESS) >= total, "APScheduler periodic runs")
        return list(LATENESS)


# ---------------------------------------------------------------- driver


def _percentiles(samples: list[float]) -> dict[str, float]:
    cuts = statistics.quantiles(samples, n=100, method="inclusive")
    return {"p50": cuts[49] * 1000, "p95": cuts[94] * 1000, "p99": cuts[98] * 1000}


def _median_of(rounds: Callable[[], Any], backend: str) -> Any:
    values = []
    for _ in range(ROUNDS):
        with database(backend) as url:
            values.append(rounds_call(rounds, url))
    if isinstance(values[0], dict):
        return {k: statistics.median(v[k] for v in values) for k in values[0]}
    return statistics.median(values)


def rounds_call(make: Callable[..., Any], url: str) -> Any:
    result = make(url)
    return _percentiles(result) if isinstance(result, list) else result


def _sizes() -> list[int]:
    raw = os.environ.get("DUETIME_BENCH_SIZES")
    return [int(x) for x in raw.split(",")] if raw else list(DEFAULT_SIZES)


def run() -> dict[str, Any]:
    """Run every scenario on every available backend; print a table; write JSON."""
    logging.getLogger("apscheduler").setLevel(logging.ERROR)
    logging.getLogger("duetime").setLevel(logging.ERROR)
    backends = ["sqlite"] + (["postgresql"] if _postgres_admin_url() else [])
    results: dict[str, Any] = {"throughput": [], "lateness": []}
    for backend in backends:
        for n in _sizes():
            ours = _median_of(lambda url, n=n: duetime_throughput(url, n), backend)
            theirs = _median_of(lambda url, n=n: aps_throughput(url, n), backend)
            row = {"backend": backend, "runs": n, "duetime": ours, "apscheduler": theirs}
            results["throughput"].append(row)
            _print_throughput(row)
        for name, ours_fn, theirs_fn in (
            ("2000 one-offs over 10 s", duetime_spread, aps_spread),
            ("100 schedules every 1 s", duetime_periodic, aps_periodic),
        ):
            row = {
                "backend": backend,
                "scenario": name,
                "duetime": _median_of(ours_fn, backend),
                "apscheduler": _median_of(theirs_fn, backend),
            }
            results["lateness"].append(row)
            _print_lateness(row)
    results["executor"] = EXECUTOR
    results["workers"] = WORKERS
    RESULTS_DIR.mkdir(exist_ok=True)
    suffix = "" if EXECUTOR == "thread" else f"-{EXECUTOR}"
    suffix += "" if WORKERS == 10 else f"-{WORKERS}w"
    (RESULTS_DIR / f"engine{suffix}.json").write_text(json.dumps(results, indent=2) + "\n")
    return results


def _print_throughput(row: dict[str, Any]) -> None:
    ratio = row["duetime"] / row["apscheduler"]
    print(
        f"throughput {row['backend']:<10} {row['runs']:>6} runs: duetime "
        f"{row['duetime']:8.0f}/s  APScheduler {row['apscheduler']:8.0f}/s  ×{ratio:.1f}"
    )


def _print_lateness(row: dict[str, Any]) -> None:
    ours, theirs = row["duetime"], row["apscheduler"]
    print(
        f"lateness   {row['backend']:<10} {row['scenario']:<24} duetime p50/p95/p99 "
        f"{ours['p50']:.1f}/{ours['p95']:.1f}/{ours['p99']:.1f} ms  APScheduler "
        f"{theirs['p50']:.1f}/{theirs['p95']:.1f}/{theirs['p99']:.1f} ms"
    )


if __name__ == "__main__":
    run()
