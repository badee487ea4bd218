"""Built-in job types: ``duetime.noop``, ``duetime.sleep``, ``duetime.http``, ``duetime.shell``.

``duetime.http`` refuses private, loopback, link-local, reserved, multicast and unspecified
targets (every address the host resolves to is checked) unless the host is listed in
``DUETIME_HTTP_ALLOW_HOSTS``; redirects are not followed, so a redirect cannot reach such a
target either. ``duetime.shell`` runs an argv without a shell, only when ``argv[0]`` is listed
in ``DUETIME_SHELL_ALLOW``; the facade also requires the schedule's creator to be an admin of
tenant ``*`` (:func:`shell_requires_admin`). Both allowlists are read at execution.
"""

from __future__ import annotations

import ipaddress
import os
import socket
import subprocess
import tempfile
from dataclasses import dataclass
from typing import IO, Any
from urllib.parse import urlsplit, urlunsplit

import httpx

from duetime.errors import JobError
from duetime.jobs.context import RunContext
from duetime.jobs.registry import job
from duetime.jobs.secrets import SECRET_ENV_PREFIX

HTTP_ALLOW_ENV = "DUETIME_HTTP_ALLOW_HOSTS"
SHELL_ALLOW_ENV = "DUETIME_SHELL_ALLOW"
#: Characters of a response body kept in the result.
HTTP_BODY_EXCERPT_CHARS = 2000
#: Characters of stdout / stderr kept in the result.
SHELL_OUTPUT_TAIL_CHARS = 4000
#: Job types whose schedules only an admin of tenant ``*`` may create.
PRIVILEGED_JOBS = frozenset({"duetime.shell"})
_METHODS = frozenset({"GET", "HEAD", "POST", "PUT", "PATCH", "DELETE", "OPTIONS"})


class TargetRefusedError(JobError, PermissionError):
    """A built-in refused its target (private address, command not allowed)."""


class UnexpectedStatusError(JobError):
    """``duetime.http`` got a status other than the expected one(s)."""


class CommandFailedError(JobError):
    """``duetime.shell``'s command exited with a non-zero code or timed out."""


def shell_requires_admin(job_name: str) -> bool:
    """True when schedules of ``job_name`` may only be created by an admin of tenant ``*``."""
    return job_name in PRIVILEGED_JOBS


def allow_list(env_var: str) -> list[str]:
    """The comma-separated entries of ``env_var`` (read now, from this process)."""
    return [part.strip() for part in os.environ.get(env_var, "").split(",") if part.strip()]


@job("duetime.noop", description="Do nothing and succeed (tests, heartbeats).")
def noop() -> dict[str, bool]:
    """Do nothing."""
    return {"ok": True}


@job("duetime.sleep", description="Sleep for a number of seconds; stops early when cancelled.")
def sleep(ctx: RunContext, seconds: float = 1.0) -> dict[str, Any]:
    """Wait ``seconds`` cooperatively: returns early when the run is cancelled or timed out."""
    if seconds < 0:
        raise ValueError(f"seconds must be >= 0, got {seconds}")
    interrupted = ctx.sleep(seconds)
    return {"slept": seconds, "cancelled": interrupted}


# ------------------------------------------------------------------ http
def _blocked_address(address: str) -> bool:
    ip = ipaddress.ip_address(address.split("%", 1)[0])
    if isinstance(ip, ipaddress.IPv6Address) and ip.ipv4_mapped is not None:
        ip = ip.ipv4_mapped
    return (
        ip.is_private
        or ip.is_loopback
        or ip.is_link_local
        or ip.is_reserved
        or ip.is_multicast
        or ip.is_unspecified
    )


@dataclass(frozen=True)
class HttpTarget:
    """Where ``duetime.http`` connects: the checked address, with the original host name.

    A checked host is pinned to the address that was checked (the URL carries the IP; the
    Host header and TLS SNI / certificate check keep the name), so a DNS answer that changes
    between the check and the connection (DNS rebinding) cannot reach an internal address.
    """

    url: str
    host_header: str | None = None
    sni_hostname: str | None = None

    def headers(self, given: dict[str, str] | None) -> dict[str, str]:
        """The request headers: ``given`` plus the Host header of a pinned target."""
        merged = {
            k: v for k, v in (given or {}).items() if k.lower() != "host" or not self.host_header
        }
        if self.host_header:
            merged["Host"] = self.host_header
        return merged

    def extensions(self) -> dict[str, Any]:
        """httpx request extensions (TLS server name of a pinned https target)."""
        return {"sni_hostname": self.sni_hostname} if self.sni_hostname else {}


def check_http_target(url: str) -> HttpTarget:
    """Resolve and check ``url``'s host; TargetRefusedError for internal targets not allowed."""
    parts = urlsplit(url)
    if parts.scheme not in {"http", "https"} or not parts.hostname:
        raise ValueError(f"url must be an absolute http(s) URL, got {url!r}")
    host = parts.hostname.lower()
    if host in {h.lower() for h in allow_list(HTTP_ALLOW_ENV)}:
        return HttpTarget(url)
    default_port = 443 if parts.scheme == "https" else 80
    try:
        infos = socket.getaddrinfo(host, parts.port or default_port, proto=socket.IPPROTO_TCP)
    except socket.gaierror as exc:
        raise ConnectionError(f"cannot resolve host {host!r}: {exc}") from exc
    addresses = [str(info[4][0]) for info in infos]
    blocked = sorted({a for a in addresses if _blocked_address(a)})
    if blocked or not addresses:
        raise TargetRefusedError(
            f"refusing {host!r}: it resolves to a private/loopback/link-local/reserved address "
            f"({', '.join(blocked) or 'none'}); add the host to {HTTP_ALLOW_ENV} to allow it"
        )
    return pin_target(url, addresses[0])


def pin_target(url: str, address: str) -> HttpTarget:
    """An :class:`HttpTarget` that connects to ``address`` on behalf of ``url``'s host."""
    parts = urlsplit(url)
    ip = ipaddress.ip_address(address.split("%", 1)[0])
    literal = f"[{ip}]" if ip.version == 6 else str(ip)
    port = f":{parts.port}" if parts.port else ""
    userinfo = parts.netloc.rpartition("@")[0]
    netloc = f"{userinfo}@{literal}{port}" if userinfo else f"{literal}{port}"
    pinned = urlunsplit((parts.scheme, netloc, parts.path, parts.query, parts.fragment))
    host = str(parts.hostname)
    host_header = f"[{host}]{port}" if ":" in host else f"{host}{port}"
    return HttpTarget(pinned, host_header, host if parts.scheme == "https" else None)


def _expected(expect_status: int | list[int]) -> list[int]:
    return [expect_status] if isinstance(expect_status, int) else list(expect_status)


@job("duetime.http", description="Send an HTTP request and check its status.")
def http(
    url: str,
    method: str = "GET",
    headers: dict[str, str] | None = None,
    body: Any = None,
    expect_status: int | list[int] = 200,
    timeout: float = 30.0,
) -> dict[str, Any]:
    """Send one request; fail unless the response status is one of ``expect_status``."""
    method = method.upper()
    if method not in _METHODS:
        raise ValueError(f"method must be one of {', '.join(sorted(_METHODS))}, got {method!r}")
    target = check_http_target(url)
    content = {"json": body} if isinstance(body, dict | list) else {"content": body}
    with (
        httpx.Client(timeout=timeout, follow_redirects=False) as client,
        client.stream(
            method,
            target.url,
            headers=target.headers(headers),
            extensions=target.extensions(),
            **content,
        ) as response,
    ):
        text = _body_excerpt(response)
    expected = _expected(expect_status)
    if response.status_code not in expected:
        raise UnexpectedStatusError(
            f"{method} {url} returned {response.status_code}, expected "
            f"{' or '.join(map(str, expected))}: {text[:200]!r}"
        )
    return {
        "status": response.status_code,
        "elapsed_ms": round(response.elapsed.total_seconds() * 1000, 1),
        "body": text,
    }


def _body_excerpt(response: httpx.Response) -> str:
    """The first HTTP_BODY_EXCERPT_CHARS characters of the body, reading no more than that."""
    limit = HTTP_BODY_EXCERPT_CHARS * 4  # UTF-8: at most 4 bytes per character
    data = bytearray()
    for chunk in response.iter_bytes():
        data += chunk
        if len(data) >= limit:
            break
    encoding = response.encoding or "utf-8"
    return bytes(data[:limit]).decode(encoding, errors="replace")[:HTTP_BODY_EXCERPT_CHARS]


# ------------------------------------------------------------------ shell
def _output_tail(file: IO[bytes]) -> str:
    """The last SHELL_OUTPUT_TAIL_CHARS characters written to ``file`` (bad UTF-8 replaced)."""
    size = file.seek(0, os.SEEK_END)
    file.seek(max(0, size - SHELL_OUTPUT_TAIL_CHARS * 4))  # UTF-8: ≤ 4 bytes per character
    return file.read().decode("utf-8", errors="replace")[-SHELL_OUTPUT_TAIL_CHARS:]


def _shell_env(extra: dict[str, str] | None) -> dict[str, str]:
    """The inherited environment without duetime secrets, plus ``extra``."""
    env = {k: v for k, v in os.environ.items() if not k.startswith(SECRET_ENV_PREFIX)}
    env.update(extra or {})
    return env


@job("duetime.shell", description="Run a command (argv list, no shell) from DUETIME_SHELL_ALLOW.")
def shell(
    argv: list[str],
    timeout: float = 300.0,
    cwd: str | None = None,
    env: dict[str, str] | None = None,
) -> dict[str, Any]:
    """Run ``argv`` without a shell; fail on a non-zero exit code."""
    if not argv:
        raise ValueError("argv must name a command")
    allowed = allow_list(SHELL_ALLOW_ENV)
    if argv[0] not in allowed:
        raise TargetRefusedError(
            f"command {argv[0]!r} is not allowed; add it to {SHELL_ALLOW_ENV} "
            f"(allowed now: {', '.join(allowed) or 'none'})"
        )
    with tempfile.TemporaryFile() as out, tempfile.TemporaryFile() as err:
        try:  # output goes to files: a chatty command cannot fill the worker's memory
            done = subprocess.run(
                argv,
                cwd=cwd,
                env=_shell_env(env),
                stdout=out,
                stderr=err,
                timeout=timeout,
                check=False,
                stdin=subprocess.DEVNULL,
            )
        except subprocess.TimeoutExpired as exc:
            raise CommandFailedError(f"command {argv[0]!r} timed out after {timeout} s") from exc
        result: dict[str, Any] = {
            "exit_code": done.returncode,
            "stdout": _output_tail(out),
            "stderr": _output_tail(err),
        }
    if done.returncode != 0:
        raise CommandFailedError(
            f"command {argv[0]!r} exited with code {done.returncode}: {result['stderr'][-500:]}"
        )
    return result
