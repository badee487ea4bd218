"""The read cache is exact: any commit, by any process or connection, shows on the next request.

The API runs over a real SQLite file (the cache is on) and PostgreSQL (no data version, so
nothing is cached and the same answers must come from the database every time). Writes come
from the API itself, from a second facade (its own connection pool) and from a separate
Python process. "Served from the cache" is proven by counting the store's reads.
"""

from __future__ import annotations

import os
import subprocess
import sys
from collections.abc import Callable, Iterator
from typing import Any

import pytest
from api_helpers import Caller, new_schedule

from duetime.keys import ApiKeyService
from duetime.scheduler import Scheduler

#: The cache needs SQLite's data version: these tests run on SQLite only (not skipped on
#: PostgreSQL — there the uncached behaviour is what the other tests check).
sqlite_only = pytest.mark.parametrize("db_url", ["sqlite"], indirect=True)


@pytest.fixture
def store_calls(scheduler: Scheduler, monkeypatch: pytest.MonkeyPatch) -> dict[str, int]:
    """Count the store reads behind the cacheable GETs."""
    calls = {"list_schedules": 0, "get_schedule": 0, "list_runs": 0, "get_run": 0}

    def counting(name: str) -> Callable[..., Any]:
        original = getattr(scheduler.store, name)

        def wrapper(*args: Any, **kwargs: Any) -> Any:
            calls[name] += 1
            return original(*args, **kwargs)

        return wrapper

    for name in calls:
        monkeypatch.setattr(scheduler.store, name, counting(name))
    return calls


@pytest.fixture
def other(db_url: str) -> Iterator[Scheduler]:
    """A second facade on the same database: its own engine and connections."""
    s = Scheduler(database_url=db_url)
    yield s
    s.close()


def _in_another_process(db_url: str, code: str) -> None:
    """Run ``code`` (with ``s``, a Scheduler on ``db_url``) in a fresh Python process."""
    script = (
        "import sys\n"
        "from duetime.scheduler import Scheduler\n"
        "s = Scheduler(database_url=sys.argv[1])\n"
        f"{code}\n"
        "s.close()\n"
    )
    env = {k: v for k, v in os.environ.items() if not k.startswith("DUETIME_")}
    subprocess.run([sys.executable, "-c", script, db_url], check=True, env=env, timeout=120)


@sqlite_only
def test_a_repeated_get_is_served_from_the_cache(
    admin: Caller, store_calls: dict[str, int]
) -> None:
    created = new_schedule(admin, "nightly")
    first = admin.get("/schedules?limit=20")
    assert store_calls["list_schedules"] == 1
    again = admin.get("/schedules?limit=20")
    assert store_calls["list_schedules"] == 1
    assert again.status_code == 200
    assert again.content == first.content
    assert again.headers["content-type"] == first.headers["content-type"]
    by_id = admin.get(f"/schedules/{created['id']}")
    by_name = admin.get("/schedules/nightly")
    reads = store_calls["get_schedule"]
    assert admin.get(f"/schedules/{created['id']}").content == by_id.content
    assert admin.get("/schedules/nightly").content == by_name.content == by_id.content
    assert store_calls["get_schedule"] == reads
    assert by_id.headers["etag"] == by_name.headers["etag"] == '"1"'


@sqlite_only
def test_query_order_does_not_matter_but_values_do(
    admin: Caller, store_calls: dict[str, int]
) -> None:
    for i in range(3):
        new_schedule(admin, f"s{i}")
    a = admin.get("/schedules?limit=2&name_prefix=s")
    reads = store_calls["list_schedules"]
    b = admin.get("/schedules?name_prefix=s&limit=2")
    assert store_calls["list_schedules"] == reads
    c = admin.get("/schedules?name_prefix=s&limit=1")
    assert store_calls["list_schedules"] == reads + 1
    assert a.content == b.content
    assert len(a.json()["items"]) == 2
    assert c.json()["items"] == a.json()["items"][:1]


def test_a_write_through_the_api_shows_on_the_next_get(admin: Caller) -> None:
    new_schedule(admin, "nightly", description="old")
    assert admin.get("/schedules").json()["items"][0]["description"] == "old"
    assert admin.get("/schedules/nightly").json()["description"] == "old"
    assert admin.patch("/schedules/nightly", json={"description": "new"}).status_code == 200
    assert admin.get("/schedules").json()["items"][0]["description"] == "new"
    assert admin.get("/schedules/nightly").json()["description"] == "new"
    assert admin.get("/schedules/nightly").headers["etag"] == '"2"'


def test_a_write_through_another_connection_shows_on_the_next_get(
    admin: Caller, other: Scheduler
) -> None:
    new_schedule(admin, "nightly", description="old")
    assert admin.get("/schedules").json()["items"][0]["description"] == "old"
    other.for_tenant("acme").update_schedule("nightly", description="from another pool")
    assert admin.get("/schedules").json()["items"][0]["description"] == "from another pool"
    other.for_tenant("acme").add_schedule("second", "duetime.noop", "0 4 * * *")
    assert sorted(s["name"] for s in admin.get("/schedules").json()["items"]) == [
        "nightly",
        "second",
    ]


def test_a_write_by_another_process_shows_on_the_next_get(
    admin: Caller, db_url: str, store_calls: dict[str, int]
) -> None:
    created = new_schedule(admin, "nightly", description="old")
    path = f"/schedules/{created['id']}"
    assert admin.get(path).json()["description"] == "old"
    assert admin.get("/schedules").json()["items"][0]["description"] == "old"
    _in_another_process(
        db_url, "s.for_tenant('acme').update_schedule('nightly', description='elsewhere')"
    )
    assert admin.get(path).json()["description"] == "elsewhere"
    assert admin.get(path).headers["etag"] == '"2"'
    assert admin.get("/schedules").json()["items"][0]["description"] == "elsewhere"
    _in_another_process(db_url, "s.for_tenant('acme').pause('nightly')")
    assert admin.get(path).json()["state"] == "paused"


def test_runs_created_elsewhere_show_on_the_next_get(admin: Caller, other: Scheduler) -> None:
    new_schedule(admin, "nightly")
    assert admin.get("/runs").json()["items"] == []
    assert admin.get("/schedules/nightly/runs").json()["items"] == []
    run = other.for_tenant("acme").trigger("nightly")
    assert [r["id"] for r in admin.get("/runs").json()["items"]] == [run.id]
    assert [r["id"] for r in admin.get("/schedules/nightly/runs").json()["items"]] == [run.id]
    assert admin.get(f"/runs/{run.id}").json()["state"] == "pending"
    other.for_tenant("acme").cancel(run.id)
    assert admin.get(f"/runs/{run.id}").json()["state"] == "cancelled"
    assert admin.get("/runs").json()["items"][0]["state"] == "cancelled"


def test_a_key_revoked_elsewhere_is_refused_on_the_next_request(
    make_caller: Any, other: Scheduler
) -> None:
    caller = make_caller("acme", "viewer")
    assert caller.get("/schedules").status_code == 200
    assert caller.get("/schedules").status_code == 200  # key and answer now cached
    key_id = ApiKeyService(other.store).list("acme")[0].id
    ApiKeyService(other.store).revoke(key_id)
    assert caller.get("/schedules").status_code == 401
    assert caller.get("/status").status_code == 401  # not only the cached paths


def test_a_key_revoked_by_another_process_is_refused_on_the_next_request(
    make_caller: Any, db_url: str
) -> None:
    caller = make_caller("acme", "viewer")
    assert caller.get("/schedules").status_code == 200
    assert caller.get("/schedules").status_code == 200
    _in_another_process(
        db_url,
        "from duetime.keys import ApiKeyService\n"
        "k = ApiKeyService(s.store)\n"
        "k.revoke(k.list('acme')[0].id)",
    )
    assert caller.get("/schedules").status_code == 401


def test_answers_are_per_tenant(make_caller: Any) -> None:
    acme, globex = make_caller("acme", "admin"), make_caller("globex", "admin")
    new_schedule(acme, "only-acme")
    new_schedule(globex, "only-globex")
    everyone = make_caller("*", "viewer")
    assert [s["name"] for s in acme.get("/schedules").json()["items"]] == ["only-acme"]
    assert [s["name"] for s in globex.get("/schedules").json()["items"]] == ["only-globex"]
    assert len(everyone.get("/schedules").json()["items"]) == 2
    assert acme.get("/schedules/only-globex").status_code == 404
    assert globex.get("/schedules/only-globex").status_code == 200
    assert acme.get("/schedules/only-globex").status_code == 404


@sqlite_only
def test_errors_are_not_cached(
    admin: Caller, other: Scheduler, store_calls: dict[str, int]
) -> None:
    assert admin.get("/schedules/later").status_code == 404
    reads = store_calls["get_schedule"]
    assert admin.get("/schedules?limit=0").status_code == 422
    assert admin.get("/schedules?limit=0").status_code == 422
    assert admin.get("/schedules/later").status_code == 404
    assert store_calls["get_schedule"] == reads + 1
    other.for_tenant("acme").add_schedule("later", "duetime.noop", "0 4 * * *")
    assert admin.get("/schedules/later").status_code == 200


def test_missing_or_unknown_keys_are_401_on_cacheable_paths(admin: Caller, client: Any) -> None:
    new_schedule(admin, "nightly")
    assert admin.get("/schedules").status_code == 200
    assert client.get("/api/v1/schedules").status_code == 401
    bad = {"Authorization": "Bearer dtk_not-a-key"}
    assert client.get("/api/v1/schedules", headers=bad).status_code == 401
    assert client.get("/api/v1/schedules", headers={"Authorization": "Basic x"}).status_code == 401


@sqlite_only
def test_next_runs_is_never_cached(admin: Caller, clock: Any) -> None:
    new_schedule(admin, "nightly")
    first = admin.get("/schedules/nightly/next-runs?count=1").json()["items"][0]["at"]
    clock.advance(days=1)
    later = admin.get("/schedules/nightly/next-runs?count=1").json()["items"][0]["at"]
    assert later != first
