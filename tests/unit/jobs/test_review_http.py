"""Review findings on built-ins: unbounded reads of HTTP bodies and command output."""

from __future__ import annotations

import sys
import threading
from collections.abc import Iterator
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from typing import Any, ClassVar

import pytest
from jobs_helpers import make_request

from duetime.jobs import default_registry
from duetime.jobs.builtins import HTTP_BODY_EXCERPT_CHARS, SHELL_OUTPUT_TAIL_CHARS
from duetime.jobs.execute import execute_request
from duetime.models import RunState

CHUNK = b"x" * 65536
ENDLESS_BYTES = 256 * 1024 * 1024  # what a server may send: far more than a job should hold


class _Huge(BaseHTTPRequestHandler):
    sent: ClassVar[list[int]] = []
    finished: ClassVar[threading.Event] = threading.Event()

    def do_GET(self) -> None:
        self.send_response(200 if self.path == "/ok" else 500)
        self.send_header("Content-Length", str(ENDLESS_BYTES))
        self.end_headers()
        total = 0
        try:
            while total < ENDLESS_BYTES:
                self.wfile.write(CHUNK)
                total += len(CHUNK)
        except OSError:
            pass  # the client stopped reading
        finally:
            _Huge.sent.append(total)
            _Huge.finished.set()

    def log_message(self, *args: Any) -> None:
        pass


@pytest.fixture
def huge_server(monkeypatch: pytest.MonkeyPatch) -> Iterator[str]:
    monkeypatch.setenv("DUETIME_HTTP_ALLOW_HOSTS", "127.0.0.1")
    _Huge.sent = []
    _Huge.finished = threading.Event()
    httpd = ThreadingHTTPServer(("127.0.0.1", 0), _Huge)
    thread = threading.Thread(target=httpd.serve_forever, args=(0.05,), daemon=True)
    thread.start()
    yield f"http://127.0.0.1:{httpd.server_address[1]}"
    httpd.shutdown()
    httpd.server_close()


@pytest.mark.parametrize(
    ("path", "state"), [("/ok", RunState.SUCCEEDED), ("/bad", RunState.FAILED)]
)
def test_http_reads_only_a_bounded_excerpt(huge_server: str, path: str, state: RunState) -> None:
    request = make_request("duetime.http", url=huge_server + path)
    outcome = execute_request(request, default_registry)
    assert outcome.state is state
    if state is RunState.SUCCEEDED:
        assert len(outcome.result["body"]) == HTTP_BODY_EXCERPT_CHARS
    assert _Huge.finished.wait(timeout=10)  # the handler noticed the closed connection
    assert _Huge.sent
    assert _Huge.sent[0] < ENDLESS_BYTES


def test_shell_output_that_is_not_utf8_is_kept_not_a_crash(monkeypatch: pytest.MonkeyPatch) -> None:
    """text=True decoding raised UnicodeDecodeError, so a command with binary output failed."""
    monkeypatch.setenv("DUETIME_SHELL_ALLOW", sys.executable)
    script = "import sys; sys.stdout.buffer.write(b'\\xff\\xfe' + b'a' * 9000 + b'end')"
    request = make_request("duetime.shell", argv=[sys.executable, "-c", script])
    outcome = execute_request(request, default_registry)
    assert outcome.state is RunState.SUCCEEDED, outcome.error
    assert outcome.result["stdout"].endswith("aend")
    assert len(outcome.result["stdout"]) == SHELL_OUTPUT_TAIL_CHARS
