"""Built-in job types: noop, sleep, http (against a local server), shell, maintenance."""

from __future__ import annotations

import socket
import sys
import threading
import types
from collections.abc import Iterator
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from typing import Any

import pytest
from jobs_helpers import make_request

from duetime.jobs import default_registry
from duetime.jobs.builtins import PRIVILEGED_JOBS, shell_requires_admin
from duetime.jobs.execute import ExecutionResult, execute_request
from duetime.models import RunState


def run(job: str, **params: Any) -> ExecutionResult:
    return execute_request(make_request(job, **params), default_registry)


class _Handler(BaseHTTPRequestHandler):
    def do_GET(self) -> None:
        if self.path == "/host":
            status, body = 200, f"host={self.headers.get('Host')}".encode()
        else:
            status, body = int(self.path.rsplit("/", 1)[-1] or 200), b"hello from the test server"
        self.send_response(status)
        self.send_header("Content-Length", str(len(body)))
        self.end_headers()
        self.wfile.write(body)

    def do_POST(self) -> None:
        length = int(self.headers.get("Content-Length", 0))
        body = self.rfile.read(length) + b"|" + self.headers.get("X-Test", "").encode()
        self.send_response(201)
        self.send_header("Content-Length", str(len(body)))
        self.end_headers()
        self.wfile.write(body)

    def log_message(self, *args: Any) -> None:
        pass


@pytest.fixture
def server() -> Iterator[str]:
    httpd = ThreadingHTTPServer(("127.0.0.1", 0), _Handler)
    thread = threading.Thread(target=httpd.serve_forever, args=(0.05,), daemon=True)
    thread.start()
    yield f"http://127.0.0.1:{httpd.server_address[1]}"
    httpd.shutdown()
    httpd.server_close()


def test_noop() -> None:
    assert run("duetime.noop").result == {"ok": True}


def test_sleep_zero_and_negative() -> None:
    assert run("duetime.sleep", seconds=0).result == {"slept": 0.0, "cancelled": False}
    assert run("duetime.sleep", seconds=-1).state is RunState.FAILED


def test_http_loopback_refused_without_allowlist(
    server: str, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.delenv("DUETIME_HTTP_ALLOW_HOSTS", raising=False)
    result = run("duetime.http", url=f"{server}/200")
    assert result.state is RunState.FAILED
    assert result.error is not None
    assert result.error.type == "duetime.jobs.builtins.TargetRefusedError"
    assert "127.0.0.1" in result.error.message
    assert "DUETIME_HTTP_ALLOW_HOSTS" in result.error.message


@pytest.mark.parametrize(
    "url",
    ["http://localhost/", "http://10.1.2.3/", "http://169.254.169.254/latest", "http://[::1]/"],
)
def test_http_private_targets_refused(url: str, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.delenv("DUETIME_HTTP_ALLOW_HOSTS", raising=False)
    result = run("duetime.http", url=url)
    assert result.error is not None
    assert result.error.type.endswith("TargetRefusedError"), result.error


def test_http_allowed_host_succeeds(server: str, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("DUETIME_HTTP_ALLOW_HOSTS", "example.org, 127.0.0.1")
    result = run("duetime.http", url=f"{server}/200")
    assert result.state is RunState.SUCCEEDED, result.error
    assert result.result["status"] == 200
    assert result.result["body"] == "hello from the test server"
    assert result.result["elapsed_ms"] >= 0


def test_http_post_json_headers_and_status_list(
    server: str, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setenv("DUETIME_HTTP_ALLOW_HOSTS", "127.0.0.1")
    result = run(
        "duetime.http", url=f"{server}/", method="post", body={"a": 1},
        headers={"X-Test": "yes"}, expect_status=[200, 201],
    )  # fmt: skip
    assert result.result["status"] == 201
    assert result.result["body"] == '{"a":1}|yes'


def test_http_unexpected_status_fails(server: str, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("DUETIME_HTTP_ALLOW_HOSTS", "127.0.0.1")
    result = run("duetime.http", url=f"{server}/503")
    assert result.state is RunState.FAILED
    assert result.error is not None
    assert result.error.type.endswith("UnexpectedStatusError")
    assert "returned 503, expected 200" in result.error.message


def test_http_bad_url_and_method() -> None:
    assert run("duetime.http", url="ftp://x/").state is RunState.FAILED
    assert run("duetime.http", url="https://example.org", method="BREW").state is RunState.FAILED


def test_shell_refused_unless_allowlisted(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("DUETIME_SHELL_ALLOW", "echo")
    result = run("duetime.shell", argv=[sys.executable, "-c", "print(1)"])
    assert result.error is not None
    assert result.error.type.endswith("TargetRefusedError")
    assert "DUETIME_SHELL_ALLOW" in result.error.message


def test_shell_runs_argv_without_shell(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("DUETIME_SHELL_ALLOW", sys.executable)
    monkeypatch.setenv("DUETIME_SECRET_HIDDEN", "nope")
    code = "import os,sys; print(os.environ.get('GREETING'), os.environ.get('DUETIME_SECRET_HIDDEN')); print('err', file=sys.stderr)"  # noqa: E501
    result = run(
        "duetime.shell", argv=[sys.executable, "-c", code, "; rm -rf /"], env={"GREETING": "hi"}
    )
    assert result.state is RunState.SUCCEEDED, result.error
    assert result.result == {"exit_code": 0, "stdout": "hi None\n", "stderr": "err\n"}


def test_shell_nonzero_exit_fails(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("DUETIME_SHELL_ALLOW", sys.executable)
    code = "import sys; print('broken', file=sys.stderr); sys.exit(4)"
    result = run("duetime.shell", argv=[sys.executable, "-c", code])
    assert result.error is not None
    assert result.error.type.endswith("CommandFailedError")
    assert "exited with code 4" in result.error.message
    assert "broken" in result.error.message


def test_shell_is_privileged() -> None:
    assert shell_requires_admin("duetime.shell")
    assert not shell_requires_admin("duetime.http")
    assert "duetime.shell" in PRIVILEGED_JOBS


def test_maintenance_jobs_call_the_facade(monkeypatch: pytest.MonkeyPatch) -> None:
    calls: list[tuple[str, Any]] = []

    class FakeScheduler:
        def __init__(self, *, database_url: str, tenant: str) -> None:
            calls.append(("init", (database_url, tenant)))

        def cleanup_history(self, *, older_than_days: float | None, keep_last: int | None) -> int:
            calls.append(("cleanup", (older_than_days, keep_last)))
            return 12

        def recalculate_next_runs(self) -> int:
            calls.append(("recalc", None))
            return 3

        def close(self) -> None:
            calls.append(("close", None))

    fake = types.ModuleType("duetime.scheduler")
    fake.Scheduler = FakeScheduler  # type: ignore[attr-defined]
    monkeypatch.setitem(sys.modules, "duetime.scheduler", fake)
    request = make_request("duetime.cleanup_history", older_than_days=7)
    request = type(request)(**{**_fields(request), "database_url": "sqlite:///x.db"})
    assert execute_request(request, default_registry).result == {"deleted": 12}
    request = type(request)(
        **{**_fields(request), "job": "duetime.recalculate_next_runs", "parameters": {}}
    )
    assert execute_request(request, default_registry).result == {"updated": 3}
    assert calls == [
        ("init", ("sqlite:///x.db", "acme")), ("cleanup", (7.0, None)), ("close", None),
        ("init", ("sqlite:///x.db", "acme")), ("recalc", None), ("close", None),
    ]  # fmt: skip


def test_maintenance_without_database_url_fails() -> None:
    result = run("duetime.cleanup_history")
    assert result.error is not None
    assert "database_url" in result.error.message


def _fields(request: Any) -> dict[str, Any]:
    return {name: getattr(request, name) for name in request.__dataclass_fields__}


def _fake_dns(monkeypatch: pytest.MonkeyPatch, answers: dict[str, list[str]]) -> None:
    real = socket.getaddrinfo

    def fake(host: str, port: Any, *args: Any, **kwargs: Any) -> Any:
        if host in answers:
            return [(socket.AF_INET, socket.SOCK_STREAM, 6, "", (a, port)) for a in answers[host]]
        return real(host, port, *args, **kwargs)

    monkeypatch.setattr(socket, "getaddrinfo", fake)


def test_http_refuses_a_name_with_any_internal_address(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.delenv("DUETIME_HTTP_ALLOW_HOSTS", raising=False)
    _fake_dns(monkeypatch, {"mixed.example": ["93.184.216.34", "10.0.0.5"]})
    result = run("duetime.http", url="https://mixed.example/")
    assert result.error is not None
    assert result.error.type.endswith("TargetRefusedError")
    assert "10.0.0.5" in result.error.message
    assert "93.184.216.34" not in result.error.message


def test_http_connects_to_the_checked_address(server: str, monkeypatch: pytest.MonkeyPatch) -> None:
    """The checked IP is what gets connected to; the Host header keeps the name."""
    from duetime.jobs import builtins

    monkeypatch.delenv("DUETIME_HTTP_ALLOW_HOSTS", raising=False)
    _fake_dns(monkeypatch, {"service.example": ["127.0.0.1"]})
    monkeypatch.setattr(builtins, "_blocked_address", lambda address: False)
    port = server.rsplit(":", 1)[1]
    result = run("duetime.http", url=f"http://service.example:{port}/host")
    assert result.state is RunState.SUCCEEDED, result.error
    assert result.result["body"] == f"host=service.example:{port}"


def test_pin_target_keeps_name_for_host_header_and_tls() -> None:
    from duetime.jobs.builtins import pin_target

    target = pin_target("https://user:pw@api.example:8443/v1?q=1", "2001:db8::5")
    assert target.url == "https://user:pw@[2001:db8::5]:8443/v1?q=1"
    assert target.headers({"host": "evil", "X": "1"}) == {"X": "1", "Host": "api.example:8443"}
    assert target.extensions() == {"sni_hostname": "api.example"}
    plain = pin_target("http://api.example/x", "93.184.216.34")
    assert (plain.url, plain.host_header, plain.extensions()) == (
        "http://93.184.216.34/x",
        "api.example",
        {},
    )
