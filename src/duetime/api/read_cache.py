"""Exact caches of read answers and API keys, validated by the database's data version.

On SQLite every committed write — through this process, the engine's child process or the
CLI — moves the database's data version (:mod:`duetime.store.data_version`). Both caches
here hold an entry only for the version it was read at, so nothing is ever served from
before a commit that had finished when the request arrived:

* :class:`Authenticator` — bearer key → stored key. A revoke is a commit, so a revoked key
  answers 401 on the very next request, whichever process revoked it.
* :class:`ReadCacheMiddleware` — the bytes of a 200 answer to ``GET`` of a schedule or run
  listing or of one schedule or run, keyed by the caller's tenant and role, the path and the
  query. A hit skips routing, validation, the query and serialisation; a miss runs the app as
  usual. Concurrent misses of one key at one version share one computation.

Without a data version (PostgreSQL, in-memory SQLite) nothing is cached: answers are always
computed and every request looks its key up.
See docs/decisions/0010-api-read-cache.md.
"""

from __future__ import annotations

import asyncio
import re
import threading
from collections.abc import Awaitable, Callable
from typing import Any, TypeVar

from starlette.concurrency import run_in_threadpool
from starlette.types import ASGIApp, Message, Receive, Scope, Send

from duetime.keys import ApiKey, ApiKeyService, key_digest
from duetime.store.data_version import DataVersion, Version

#: The GETs whose answer depends only on the committed data, the caller's tenant and role,
#: the path and the query: schedule and run listings, one schedule, one run, a schedule's
#: runs. Not ``next-runs`` (depends on the clock), ``/status`` or the metrics.
CACHEABLE_PATH = re.compile(r"^/api/v1/(?:schedules(?:/[^/]+(?:/runs)?)?|runs(?:/[^/]+)?)$")
#: Answers larger than this are not kept (a 500-item page is ~0.5 MB).
MAX_CACHED_BODY_BYTES = 1024 * 1024
#: All kept answers together stay under this; a full cache stops storing until the next
#: version clears it.
MAX_CACHED_BYTES = 32 * 1024 * 1024
#: Keys kept at once (a full cache starts over).
MAX_CACHED_KEYS = 10_000
_BEARER = b"bearer "

T = TypeVar("T")


class _Flights:
    """At most one computation per key at a time; the others await its result."""

    def __init__(self) -> None:
        self._running: dict[Any, asyncio.Future[Any]] = {}

    async def run(self, key: Any, compute: Callable[[], Awaitable[T]]) -> T:
        running = self._running.get(key)
        if running is not None:
            result: T = await asyncio.shield(running)
            return result
        future: asyncio.Future[Any] = asyncio.get_running_loop().create_future()
        self._running[key] = future
        try:
            value = await compute()
        except BaseException:
            future.set_result(None)
            raise
        else:
            future.set_result(value)
            return value
        finally:
            del self._running[key]


_Lookup = tuple[ApiKey | None, Exception | None]


class Authenticator:
    """Look bearer keys up; on SQLite cache found keys for one data version each.

    Without a data version (PostgreSQL) every request looks its key up (one indexed read):
    there is no cheap exact way to know that no revoke committed since the last lookup.
    """

    def __init__(self, keys: ApiKeyService, versions: DataVersion | None) -> None:
        self.versions = versions
        self._keys = keys
        self._cache: dict[str, tuple[ApiKey, Version]] = {}
        self._lock = threading.Lock()
        self._flights = _Flights()

    def cached(self, token: str, version: Version | None = None) -> ApiKey | None:
        """The key for ``token`` if cached and still valid (no I/O but the version read)."""
        if self.versions is None:
            return None
        digest = key_digest(token)
        if digest is None:
            return None
        if version is None:
            version = self.versions.current()
        entry = self._cache.get(digest)
        if entry is None or version is None or entry[1] != version:
            return None
        return entry[0]

    async def key(self, token: str) -> ApiKey | None:
        """The live key for ``token``: from the cache, else looked up in a worker thread.

        Concurrent lookups of one token at one data version share one database read
        (after a commit, every waiting request would otherwise read the same row).
        """
        version = self.versions.current() if self.versions is not None else None
        key = self.cached(token, version)
        if key is not None:
            return key
        return await self.load(token, version)

    async def load(self, token: str, version: Version | None) -> ApiKey | None:
        """Look ``token`` up once per data version however many wait (no version: each
        request looks it up). A failed lookup (database busy) fails every waiter alike."""
        digest = key_digest(token)
        if digest is None:
            return None

        async def lookup() -> _Lookup:
            try:
                return await run_in_threadpool(self.authenticate, token), None
            except Exception as exc:
                return None, exc

        shared: _Lookup | None = None
        if version is not None:
            shared = await self._flights.run((digest, version), lookup)
        if shared is None:  # no version, or the request looking it up went away
            shared = await lookup()
        found, error = shared
        if error is not None:
            raise error
        return found

    def authenticate(self, token: str) -> ApiKey | None:
        """The live key for ``token`` from the database, or None (blocking)."""
        digest = key_digest(token)
        if digest is None:
            return None
        version = self.versions.current() if self.versions is not None else None
        key = self._keys.lookup(token)  # a revoke committed after ``version`` moves it
        if key is not None and version is not None:
            with self._lock:
                if len(self._cache) >= MAX_CACHED_KEYS:
                    self._cache.clear()
                self._cache[digest] = (key, version)
        return key


_Answer = tuple[int, list[tuple[bytes, bytes]], bytes]


class ReadCacheMiddleware:
    """Serve repeated cacheable GETs from memory while the data version stands still."""

    def __init__(self, app: ASGIApp, *, auth: Authenticator, versions: DataVersion) -> None:
        self.app = app
        self.auth = auth
        self.versions = versions
        self._version: Version | None = None
        self._answers: dict[tuple[Any, ...], _Answer] = {}
        self._bytes = 0
        self._answer_flights = _Flights()

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        """Answer from the cache, or run the app (and keep a 200 answer)."""
        if (
            scope["type"] != "http"
            or scope["method"] != "GET"
            or CACHEABLE_PATH.match(scope["path"]) is None
        ):
            await self.app(scope, receive, send)
            return
        token = _bearer(scope["headers"])
        version = self.versions.current() if token is not None else None
        key = self.auth.cached(token, version) if token is not None else None
        if key is None and token is not None and version is not None:
            key = await self.auth.load(token, version)
            version = self.versions.current()  # the lookup took time: validate anew
        if key is None or version is None:
            await self.app(scope, receive, send)  # 401, or no version to validate with
            return
        if version != self._version:
            self._answers.clear()
            self._bytes = 0
            self._version = version
        cache_key = (key.tenant, key.role.value, scope["path"], _query(scope["query_string"]))
        answer = self._answers.get(cache_key)
        if answer is None:

            async def compute() -> _Answer | None:
                return await self._compute(scope, receive, send, cache_key, version)

            sent: list[bool] = []
            answer = await self._answer_flights.run((cache_key, version), _once(compute, sent))
            if sent:  # this request computed (and already answered) it
                return
        if answer is None:
            await self.app(scope, receive, send)
            return
        await _replay(answer, send)

    async def _compute(
        self,
        scope: Scope,
        receive: Receive,
        send: Send,
        cache_key: tuple[Any, ...],
        version: Version,
    ) -> _Answer | None:
        """Run the app, answering this request, and keep its answer if it is a plain 200."""
        start: dict[str, Any] = {}
        chunks: list[bytes] = []
        done = False

        async def capture(message: Message) -> None:
            nonlocal done
            if message["type"] == "http.response.start":
                start.update(message)
            elif message["type"] == "http.response.body":
                chunks.append(message.get("body", b""))
                done = not message.get("more_body", False)
            await send(message)

        await self.app(scope, receive, capture)
        body = b"".join(chunks)
        if not done or start.get("status") != 200 or start.get("trailers"):
            return None
        answer: _Answer = (200, list(start.get("headers", [])), body)
        self._keep(cache_key, version, answer)
        return answer

    def _keep(self, cache_key: tuple[Any, ...], version: Version, answer: _Answer) -> None:
        size = len(answer[2])
        if version != self._version or size > MAX_CACHED_BODY_BYTES:
            return  # read at an older version (already stale), or too large
        if self._bytes + size > MAX_CACHED_BYTES:
            return
        self._answers[cache_key] = answer
        self._bytes += size


def _once(
    compute: Callable[[], Awaitable[_Answer | None]], sent: list[bool]
) -> Callable[[], Awaitable[_Answer | None]]:
    """Wrap ``compute`` to note (in ``sent``) that this request ran it and was answered."""

    async def run() -> _Answer | None:
        sent.append(True)
        return await compute()

    return run


def _bearer(headers: list[tuple[bytes, bytes]]) -> str | None:
    for name, value in headers:
        if name == b"authorization":
            if value[:7].lower() != _BEARER:
                return None
            token = value[7:].strip()
            return token.decode("latin-1") if token else None
    return None


def _query(query_string: bytes) -> bytes:
    """The query with its parameters in name order (repeated names keep their order)."""
    if b"&" not in query_string:
        return query_string
    parts = query_string.split(b"&")
    parts.sort(key=lambda part: part.split(b"=", 1)[0])
    return b"&".join(parts)


async def _replay(answer: _Answer, send: Send) -> None:
    status, headers, body = answer
    await send({"type": "http.response.start", "status": status, "headers": headers})
    await send({"type": "http.response.body", "body": body})
