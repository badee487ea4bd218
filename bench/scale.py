"""Scale and restart against APScheduler 3.11 (issue 3 §7 c and d).

(c) **100,000 schedules**: time for ``load_manifest`` to load a YAML manifest of N cron
    schedules (a fresh process; its peak RSS is reported too), then the engine
    (``duetime scheduler run``, thread executor) idling over them — none is due in the
    window — for 10 s: CPU (utime+stime from ``/proc/<pid>/stat``) and ``VmRSS``.
    APScheduler (``SQLAlchemyJobStore``, ``ThreadPoolExecutor(10)``) adds the same crons with
    ``add_job`` on a started scheduler, then idles the same way. APScheduler is measured on
    ``DUETIME_BENCH_APS_N`` (10,000) schedules and its 100,000 time is extrapolated linearly
    (labelled as such).
(d) **Restart**: 5 runs in progress (3 s sleeps) and 20 one-off fires due during 10 s of
    downtime; ``kill -9``, wait 10 s, restart, count what ran. duetime: real
    ``duetime scheduler run`` subprocesses (lease 5 s, heartbeat 1 s so a killed engine's
    runs are recoverable soon); APScheduler: a ``BackgroundScheduler`` subprocess with
    default job settings (misfire grace 1 s).

SQLite runs with WAL and synchronous=NORMAL for both; PostgreSQL when
``DUETIME_BENCH_POSTGRES_URL`` (or ``DUETIME_TEST_POSTGRES_URL``) names a server, a fresh
database per round. ``DUETIME_BENCH_SCALE_N`` (100000) and ``DUETIME_BENCH_SCALE_ROUNDS`` (3)
change the size and rounds. Results: ``bench/results/scale.json``.
"""

from __future__ import annotations

import json
import logging
import os
import signal
import statistics
import subprocess
import sys
import tempfile
import time
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any

import sqlalchemy as sa
import yaml

from bench.engine import _aps_engine, _postgres_admin_url, database

RESULTS_DIR = Path(__file__).parent / "results"
SCALE_N = int(os.environ.get("DUETIME_BENCH_SCALE_N", "100000"))
APS_N = int(os.environ.get("DUETIME_BENCH_APS_N", "10000"))
ROUNDS = int(os.environ.get("DUETIME_BENCH_SCALE_ROUNDS", "3"))
IDLE_SECONDS = 10.0
WARMUP_SECONDS = 3.0
WORKERS = 10
BUSY_RUNS = 5
BUSY_SECONDS = 3.0
ONE_OFFS = 20
DOWNTIME_SECONDS = 10.0
WAIT_SECONDS = 120.0
POLL_SECONDS = 0.1
CLOCK_TICKS = os.sysconf("SC_CLK_TCK")
#: (c) idles with the default settings; (d) shortens the lease so recovery starts soon.
IDLE_ENV = {"DUETIME_EXECUTOR": "thread"}
RESTART_ENV = {
    "DUETIME_EXECUTOR": "thread",
    "DUETIME_LEASE_SECONDS": "5",
    "DUETIME_HEARTBEAT_SECONDS": "1",
    "DUETIME_SHUTDOWN_GRACE_SECONDS": "1",
}


def cron_for(i: int) -> str:
    """A cron that fires only on January 1st (never in the idle window): 720 distinct ones."""
    return f"{i % 60} {(i // 60) % 12} 1 1 *"


# ---------------------------------------------------------------- /proc sampling


def cpu_seconds(pid: int) -> float:
    """utime + stime of ``pid`` in seconds (``/proc/<pid>/stat``)."""
    fields = Path(f"/proc/{pid}/stat").read_text().rsplit(")", 1)[1].split()
    return (int(fields[11]) + int(fields[12])) / CLOCK_TICKS


def status_mb(pid: int | str, key: str) -> float:
    """A ``/proc/<pid>/status`` size (VmRSS, VmHWM) in MB."""
    for line in Path(f"/proc/{pid}/status").read_text().splitlines():
        if line.startswith(key + ":"):
            return int(line.split()[1]) / 1024
    raise KeyError(key)


def idle_profile(pid: int) -> dict[str, float]:
    """CPU share of one core over ``IDLE_SECONDS`` after a warm-up, and RSS at the end."""
    time.sleep(WARMUP_SECONDS)
    before, started = cpu_seconds(pid), time.monotonic()
    time.sleep(IDLE_SECONDS)
    used, elapsed = cpu_seconds(pid) - before, time.monotonic() - started
    return {"idle_cpu_pct": 100 * used / elapsed, "rss_mb": status_mb(pid, "VmRSS")}


def wait_for(what: str, check: Callable[[], Any], timeout: float = WAIT_SECONDS) -> Any:
    """Poll ``check`` until truthy; TimeoutError naming ``what``."""
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        value = check()
        if value:
            return value
        time.sleep(POLL_SECONDS)
    raise TimeoutError(f"timed out after {timeout:.0f} s waiting for {what}")


def _python(*args: str, env: dict[str, str] | None = None, **kw: Any) -> subprocess.Popen[str]:
    full_env = {**os.environ, **(env or {})}
    full_env.pop("DUETIME_DATABASE_URL", None)
    cwd = Path(__file__).resolve().parent.parent
    return subprocess.Popen([sys.executable, *args], env=full_env, cwd=cwd, text=True, **kw)


def _kill(proc: subprocess.Popen[str], sig: int = signal.SIGKILL) -> None:
    if proc.poll() is None:
        proc.send_signal(sig)
    proc.wait(30)


# ---------------------------------------------------------------- (c) duetime


def write_manifest(path: Path, n: int) -> None:
    """A YAML (or, for ``.json`` paths, JSON) manifest of ``n`` no-op cron schedules."""
    entries = [{"name": f"s{i:06d}", "job": "duetime.noop", "cron": cron_for(i)} for i in range(n)]
    if path.suffix == ".json":
        path.write_text(json.dumps({"schedules": entries}))
    else:
        path.write_text(yaml.safe_dump({"schedules": entries}, sort_keys=False))


def duetime_load_worker(url: str, manifest: str) -> None:
    """Subprocess: load ``manifest`` into ``url``; print seconds and peak RSS as JSON."""
    from duetime.manifest import load_manifest
    from duetime.scheduler import Scheduler

    scheduler = Scheduler(url)
    started, cpu_started = time.perf_counter(), time.process_time()
    plan = load_manifest(scheduler, [manifest])
    seconds, cpu = time.perf_counter() - started, time.process_time() - cpu_started
    scheduler.close()
    peak = status_mb("self", "VmHWM")
    out = {"seconds": seconds, "cpu_seconds": cpu, "peak_rss_mb": peak, "counts": plan.counts()}
    print(json.dumps(out))


def duetime_load(url: str, manifest: Path) -> dict[str, Any]:
    """Load the manifest into a fresh database in a fresh process."""
    from duetime.store.migrate import upgrade_database

    upgrade_database(url)
    out = subprocess.run(
        [sys.executable, "-m", "bench.scale", "dt-load", url, str(manifest)],
        capture_output=True,
        text=True,
        check=True,
        cwd=Path(__file__).resolve().parent.parent,
    )
    loaded: dict[str, Any] = json.loads(out.stdout.strip().splitlines()[-1])
    if loaded["counts"]["create"] != SCALE_N:
        raise RuntimeError(f"expected {SCALE_N} creates, got {loaded['counts']}")
    return loaded


def duetime_scale(url: str, manifest: Path) -> dict[str, Any]:
    """Load the manifest in a fresh process, then profile the idle engine over it."""
    loaded = duetime_load(url, manifest)
    engine = start_engine(url, Path(tempfile.mkdtemp()) / "engine.log", IDLE_ENV)
    try:
        wait_for("the engine to register", lambda: _instance_count(url) > 0)
        loaded.update(idle_profile(engine.pid))
    finally:
        _kill(engine, signal.SIGTERM)
    return loaded


def start_engine(url: str, log: Path, env: dict[str, str]) -> subprocess.Popen[str]:
    """``duetime scheduler run`` on ``url`` with ``env`` (thread executor)."""
    with log.open("a") as out:
        return _python(
            "-m",
            "duetime.cli.main",
            "scheduler",
            "run",
            "--database",
            url,
            env=env,
            stdout=out,
            stderr=subprocess.STDOUT,
        )


def _instance_count(url: str) -> int:
    from duetime.store import tables as t

    engine = sa.create_engine(url.replace("postgresql://", "postgresql+psycopg://", 1))
    try:
        with engine.connect() as conn:
            return int(
                conn.execute(sa.select(sa.func.count()).select_from(t.instances)).scalar_one()
            )
    except sa.exc.DBAPIError:
        return 0
    finally:
        engine.dispose()


# ---------------------------------------------------------------- (c) APScheduler


def aps_noop() -> None:
    """APScheduler's no-op job (module level: its job store pickles a reference)."""


def _aps(url: str, **defaults: Any) -> Any:
    logging.getLogger("apscheduler").setLevel(logging.ERROR)  # "missed by" lines are expected
    from apscheduler.executors.pool import ThreadPoolExecutor  # type: ignore[import-untyped]
    from apscheduler.jobstores.sqlalchemy import SQLAlchemyJobStore  # type: ignore[import-untyped]
    from apscheduler.schedulers.background import BackgroundScheduler  # type: ignore[import-untyped]

    return BackgroundScheduler(
        jobstores={"default": SQLAlchemyJobStore(engine=_aps_engine(url))},
        executors={"default": ThreadPoolExecutor(WORKERS)},
        job_defaults=defaults,
        timezone="UTC",
    )


def aps_load_worker(url: str, count: str) -> None:
    """Subprocess: add ``count`` cron jobs to a started scheduler, report, then idle."""
    from apscheduler.triggers.cron import CronTrigger  # type: ignore[import-untyped]

    from bench.scale import aps_noop

    scheduler = _aps(url)
    scheduler.start()
    started, cpu_started = time.perf_counter(), time.process_time()
    for i in range(int(count)):
        trigger = CronTrigger.from_crontab(cron_for(i), timezone="UTC")
        scheduler.add_job(aps_noop, trigger, id=f"s{i:06d}", name=f"s{i:06d}")
    seconds, cpu = time.perf_counter() - started, time.process_time() - cpu_started
    print(json.dumps({"seconds": seconds, "cpu_seconds": cpu}), flush=True)
    time.sleep(3600)


def aps_scale(url: str) -> dict[str, Any]:
    """APScheduler: time to add ``APS_N`` crons, then its idle CPU and RSS."""
    proc = _python("-m", "bench.scale", "aps-load", url, str(APS_N), stdout=subprocess.PIPE)
    try:
        assert proc.stdout is not None
        line = proc.stdout.readline()
        result: dict[str, Any] = json.loads(line)
        result.update(idle_profile(proc.pid))
    finally:
        _kill(proc)
    result["extrapolated_seconds"] = result["seconds"] * SCALE_N / APS_N
    return result


# ---------------------------------------------------------------- (d) duetime


def duetime_restart(url: str) -> dict[str, Any]:
    """kill -9 with 5 runs in progress and 20 one-offs due while down; count after restart."""
    from duetime.scheduler import Scheduler
    from duetime.store.migrate import upgrade_database

    upgrade_database(url)
    facade = Scheduler(url)
    now = datetime.now(UTC)
    for i in range(BUSY_RUNS):
        facade.add_schedule(
            f"busy{i}",
            "duetime.sleep",
            {"type": "date", "run_at": (now + timedelta(seconds=1)).isoformat()},
            parameters={"seconds": BUSY_SECONDS},
        )
    log = Path(tempfile.mkdtemp()) / "engine.log"
    first = start_engine(url, log, RESTART_ENV)
    try:
        wait_for("5 busy runs running", lambda: _count(url, "busy", "running") == BUSY_RUNS)
        killed_at = datetime.now(UTC)
        for j in range(ONE_OFFS):
            run_at = killed_at + timedelta(seconds=0.5 + j * (DOWNTIME_SECONDS - 1) / ONE_OFFS)
            spec = {"type": "date", "run_at": run_at.isoformat()}
            facade.add_schedule(f"fire{j}", "duetime.noop", spec)
    finally:
        _kill(first)
    facade.close()
    time.sleep(DOWNTIME_SECONDS)
    restarted = time.monotonic()
    second = start_engine(url, log, RESTART_ENV)
    try:
        wait_for(
            "every busy run re-run and every one-off run",
            lambda: _succeeded(url, "busy") == BUSY_RUNS and _succeeded(url, "fire") == ONE_OFFS,
        )
        recovered_in = time.monotonic() - restarted
    except TimeoutError:
        recovered_in = float("nan")
    finally:
        _kill(second, signal.SIGTERM)
    return {
        "in_progress_rerun": _succeeded(url, "busy"),
        "one_offs_run": _succeeded(url, "fire"),
        "duplicate_scheduled": _duplicates(url),
        "all_done_after_restart_s": recovered_in,
    }


def _runs(url: str) -> list[tuple[str, str, str, Any]]:
    from duetime.store import tables as t

    engine = sa.create_engine(url.replace("postgresql://", "postgresql+psycopg://", 1))
    try:
        with engine.connect() as conn:
            query = sa.select(
                t.schedules.c.name, t.runs.c.state, t.runs.c.kind, t.runs.c.scheduled_for
            ).join(t.schedules, t.schedules.c.id == t.runs.c.schedule_id)
            return [tuple(row) for row in conn.execute(query)]
    finally:
        engine.dispose()


def _count(url: str, prefix: str, state: str) -> int:
    return sum(1 for name, st, _, _ in _runs(url) if name.startswith(prefix) and st == state)


def _succeeded(url: str, prefix: str) -> int:
    """Schedules of ``prefix`` with a succeeded run."""
    return len({n for n, st, _, _ in _runs(url) if n.startswith(prefix) and st == "succeeded"})


def _duplicates(url: str) -> int:
    seen: dict[tuple[str, Any], int] = {}
    for name, _, kind, scheduled_for in _runs(url):
        if kind == "scheduled":
            seen[(name, scheduled_for)] = seen.get((name, scheduled_for), 0) + 1
    return sum(1 for n in seen.values() if n > 1)


# ---------------------------------------------------------------- (d) APScheduler


def aps_mark(ledger: str, event: str) -> None:
    """Append ``event`` to the ledger file (one line, O_APPEND: safe across threads)."""
    with open(ledger, "a") as out:
        out.write(event + "\n")


def aps_busy(ledger: str, name: str) -> None:
    """A 3-second job that records its start and end."""
    aps_mark(ledger, f"start {name}")
    time.sleep(BUSY_SECONDS)
    aps_mark(ledger, f"end {name}")


def aps_restart_worker(url: str, ledger: str, phase: str) -> None:
    """Subprocess: phase ``first`` starts 5 busy jobs and adds 20 one-offs; ``second`` idles."""
    from bench.scale import aps_busy, aps_mark  # stored by module path, not __main__

    scheduler = _aps(url)  # APScheduler's defaults: misfire_grace_time 1 s, coalesce False
    scheduler.start()
    if phase == "first":
        now = datetime.now(UTC)
        for i in range(BUSY_RUNS):
            scheduler.add_job(aps_busy, "date", run_date=now, args=[ledger, f"busy{i}"])
        wait_for("busy jobs started", lambda: _ledger(ledger).count("start") >= BUSY_RUNS)
        for j in range(ONE_OFFS):
            run_at = now + timedelta(seconds=0.5 + j * (DOWNTIME_SECONDS - 1) / ONE_OFFS)
            scheduler.add_job(aps_mark, "date", run_date=run_at, args=[ledger, f"fire fire{j}"])
    print("ready", flush=True)
    time.sleep(3600)


def _ledger(path: str) -> str:
    try:
        return Path(path).read_text()
    except FileNotFoundError:
        return ""


def aps_restart(url: str) -> dict[str, Any]:
    """The same restart scenario for APScheduler (kill -9, 10 s down, restart)."""
    ledger = str(Path(tempfile.mkdtemp()) / "ledger.txt")
    first = _python(
        "-m", "bench.scale", "aps-restart", url, ledger, "first", stdout=subprocess.PIPE
    )
    try:
        assert first.stdout is not None
        first.stdout.readline()
    finally:
        _kill(first)
    before = _ledger(ledger).splitlines()
    time.sleep(DOWNTIME_SECONDS)
    second = _python(
        "-m", "bench.scale", "aps-restart", url, ledger, "second", stdout=subprocess.PIPE
    )
    try:
        assert second.stdout is not None
        second.stdout.readline()
        time.sleep(BUSY_SECONDS + 5)  # long enough for anything it still runs to finish
    finally:
        _kill(second)
    after = _ledger(ledger).splitlines()[len(before) :]
    fires = [line for line in _ledger(ledger).splitlines() if line.startswith("fire")]
    return {
        "in_progress_rerun": len({line for line in after if line.startswith("start busy")}),
        "one_offs_run": len(set(fires)),
        "duplicate_scheduled": len(fires) - len(set(fires)),
        "all_done_after_restart_s": None,
    }


# ---------------------------------------------------------------- driver


def _backends() -> list[str]:
    return ["sqlite", "postgresql"] if _postgres_admin_url() else ["sqlite"]


@contextmanager
def _fresh(backend: str) -> Iterator[str]:
    with database(backend) as url:
        yield url


def _median_rounds(measure: Callable[[str], dict[str, Any]], backend: str) -> dict[str, Any]:
    rounds = []
    for _ in range(ROUNDS):
        with _fresh(backend) as url:
            rounds.append(measure(url))
    out: dict[str, Any] = {"rounds": len(rounds)}
    for key, value in rounds[0].items():
        if isinstance(value, int | float) and not isinstance(value, bool):
            out[key] = statistics.median(r[key] for r in rounds)
        else:
            out[key] = value
    return out


def run() -> dict[str, Any]:
    """Run (c) and (d) for both schedulers on each backend; print and save the table."""
    results: dict[str, Any] = {"n": SCALE_N, "aps_n": APS_N, "rounds": ROUNDS, "scale": {}}
    results["restart"] = {}
    with tempfile.TemporaryDirectory() as tmp:
        manifest, as_json = Path(tmp) / "schedules.yaml", Path(tmp) / "schedules.json"
        write_manifest(manifest, SCALE_N)
        write_manifest(as_json, SCALE_N)
        for backend in _backends():
            results["scale"][backend] = {
                "duetime": _median_rounds(lambda u: duetime_scale(u, manifest), backend),
                "duetime_json": _median_rounds(lambda u: duetime_load(u, as_json), backend),
                "apscheduler": _median_rounds(aps_scale, backend),
            }
            with _fresh(backend) as url:
                dt = duetime_restart(url)
            with _fresh(backend) as url:
                aps = aps_restart(url)
            results["restart"][backend] = {"duetime": dt, "apscheduler": aps}
            _save(results)
    _print(results)
    return results


def _save(results: dict[str, Any]) -> None:
    RESULTS_DIR.mkdir(exist_ok=True)
    (RESULTS_DIR / "scale.json").write_text(json.dumps(results, indent=2, default=str) + "\n")


def _print(results: dict[str, Any]) -> None:
    n, aps_n = results["n"], results["aps_n"]
    print(f"\n(c) {n:,} schedules (APScheduler: {aps_n:,} measured, {n:,} extrapolated)")
    print(
        f"{'backend':<11}{'scheduler':<13}{'load s':>9}{'cpu s':>8}{'peak MB':>9}"
        f"{'idle CPU %':>12}{'RSS MB':>8}"
    )
    for backend, row in results["scale"].items():
        dt, aps, dj = row["duetime"], row["apscheduler"], row["duetime_json"]
        print(
            f"{backend:<11}{'duetime':<13}{dt['seconds']:>9.1f}{dt['cpu_seconds']:>8.1f}"
            f"{dt['peak_rss_mb']:>9.0f}{dt['idle_cpu_pct']:>12.2f}{dt['rss_mb']:>8.0f}"
        )
        print(
            f"{'':<11}{'duetime JSON':<13}{dj['seconds']:>9.1f}{dj['cpu_seconds']:>8.1f}"
            f"{dj['peak_rss_mb']:>9.0f}"
        )
        ratio = n / aps_n
        load = f"~{aps['extrapolated_seconds']:.0f}*"
        cpu = f"~{aps['cpu_seconds'] * ratio:.0f}*"
        print(
            f"{'':<11}{'APScheduler':<13}{load:>9}{cpu:>8}{'':>9}{aps['idle_cpu_pct']:>12.2f}"
            f"{aps['rss_mb']:>8.0f}"
        )
    print(f"  * {aps_n:,} added, measured time x {n / aps_n:g}; its idle/RSS with {aps_n:,} jobs")
    print("  duetime: a YAML manifest (JSON: the same schedules as a .json file); idle/RSS are")
    print(f"  the engine's (duetime scheduler run) over all {n:,}, peak MB the loading process's")
    print(
        f"\n(d) restart: {BUSY_RUNS} in progress, {ONE_OFFS} one-offs due in "
        f"{DOWNTIME_SECONDS:.0f} s of downtime"
    )
    print(f"{'backend':<11}{'scheduler':<13}{'re-run':>8}{'one-offs':>10}{'dup':>5}{'done s':>8}")
    for backend, row in results["restart"].items():
        for who, r in (("duetime", row["duetime"]), ("APScheduler", row["apscheduler"])):
            done = r["all_done_after_restart_s"]
            shown = f"{done:.1f}" if isinstance(done, float) else "-"
            print(
                f"{backend:<11}{who:<13}{r['in_progress_rerun']:>5}/{BUSY_RUNS}"
                f"{r['one_offs_run']:>7}/{ONE_OFFS}{r['duplicate_scheduled']:>5}{shown:>8}"
            )


_WORKERS: dict[str, Callable[..., None]] = {
    "dt-load": duetime_load_worker,
    "aps-load": aps_load_worker,
    "aps-restart": aps_restart_worker,
}

if __name__ == "__main__":
    if len(sys.argv) > 1 and sys.argv[1] in _WORKERS:
        _WORKERS[sys.argv[1]](*sys.argv[2:])
    else:
        run()
