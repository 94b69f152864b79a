"""Shared test harness: the real `prefork` command as a subprocess, on ephemeral ports of 127.0.0.1.

No sleeps as synchronisation: `wait_until` polls a condition against a deadline.
"""

from __future__ import annotations

import os
import re
import shutil
import signal
import socket
import subprocess
import sys
import tempfile
import time
from pathlib import Path

import pytest

REPO = Path(__file__).resolve().parents[1]
# The installed console script, as users run it (pip install -e . puts it beside the interpreter).
_SCRIPT = Path(sys.executable).with_name("prefork")
PREFORK = [str(_SCRIPT)] if _SCRIPT.exists() else [shutil.which("prefork") or "prefork"]
_PORT_LINE = re.compile(r"listening on (\S+)(?: \(port (\d+)\))?$", re.M)  # no port: a unix socket



def _request_parsers() -> dict:
    """Every request parser this interpreter can run, by its http_parser name."""
    from prefork.http import parser_class

    parsers = {"python": parser_class("python")[0]}
    try:
        parsers["httptools"] = parser_class("httptools")[0]
    except ImportError:
        pass
    return parsers


REQUEST_PARSERS = _request_parsers()


@pytest.fixture(scope="module", params=sorted(REQUEST_PARSERS))
def each_parser(request):
    """Runs every test of a module that uses it once per request parser, with the module's
    `RequestParser` bound to that parser meanwhile (`pytestmark = pytest.mark.usefixtures(
    "each_parser")`): the same tests hold both to the same rules."""
    module = request.module
    original = module.RequestParser
    module.RequestParser = REQUEST_PARSERS[request.param]
    yield module.RequestParser
    module.RequestParser = original


def wait_until(predicate, timeout: float = 10.0, interval: float = 0.01, message: str = "condition"):
    """Poll predicate until it returns something truthy; fail the test after timeout seconds."""
    deadline = time.monotonic() + timeout
    while True:
        value = predicate()
        if value:
            return value
        if time.monotonic() > deadline:
            raise AssertionError(f"timed out after {timeout}s waiting for {message}")
        time.sleep(interval)


class Server:
    """A running `prefork` process; its error log goes to a file the test can read."""

    def __init__(self, args, cwd=None, env=None, ready_timeout=10.0, expect_ports=None, wrapper=()):
        """wrapper: a command to run prefork under (prlimit ...), exec'ing it in the same process."""
        self.args = list(args)
        self.log_file = tempfile.NamedTemporaryFile(prefix="prefork-", suffix=".log", delete=False)
        self.log_path = self.log_file.name
        full_env = dict(os.environ)
        full_env["PYTHONPATH"] = os.pathsep.join(filter(None, [str(REPO), full_env.get("PYTHONPATH")]))
        if env:
            full_env.update(env)
        self.proc = subprocess.Popen([*wrapper, *PREFORK, *self.args], cwd=cwd or REPO, env=full_env,
                                     stdout=self.log_file, stderr=subprocess.STDOUT,
                                     stdin=subprocess.DEVNULL, start_new_session=True)
        binds = [a for i, a in enumerate(self.args) if i and self.args[i - 1] in ("-b", "--bind")]
        expected = expect_ports if expect_ports is not None else max(1, sum(
            1 for b in binds if not b.startswith(("unix:", "fd://"))) if binds else 1)
        self.ports: list[int] = []
        if expected:
            try:
                self.ports = wait_until(lambda: self._ports(expected), ready_timeout, message="prefork to listen")
            except BaseException:
                self.stop()  # a server that never got ready must not outlive the test either
                raise

    def _ports(self, expected):
        if self.proc.poll() is not None:
            raise AssertionError(f"prefork exited with {self.proc.returncode}:\n{self.log()}")
        ports = [int(m.group(2) or 0) for m in _PORT_LINE.finditer(self.log())]
        return ports if len(ports) >= expected else None

    @property
    def port(self) -> int:
        return self.ports[0]

    @property
    def url(self) -> str:
        return f"http://127.0.0.1:{self.port}"

    def log(self) -> str:
        return Path(self.log_path).read_text(errors="replace")

    def wait_for_log(self, pattern: str, timeout: float = 10.0):
        return wait_until(lambda: re.search(pattern, self.log()), timeout, message=f"log line {pattern!r}")

    def send_signal(self, sig) -> None:
        self.proc.send_signal(sig)

    def stop(self, sig=signal.SIGINT, timeout: float = 10.0) -> int | None:
        if self.proc.poll() is None:
            try:
                self.proc.send_signal(sig)
                self.proc.wait(timeout)
            except subprocess.TimeoutExpired:
                pass
        if self.proc.poll() is None:
            os.killpg(self.proc.pid, signal.SIGKILL)
            self.proc.wait(5)
        try:  # workers left behind by a failed test must not outlive it
            os.killpg(self.proc.pid, signal.SIGKILL)
        except (ProcessLookupError, PermissionError):
            pass
        self.log_file.close()
        return self.proc.returncode


@pytest.fixture
def start_server():
    """start_server(*args) -> Server; every server started is stopped at the end of the test."""
    servers = []

    def start(*args, **kwargs):
        server = Server(args, **kwargs)
        servers.append(server)
        return server

    yield start
    for server in servers:
        server.stop()


@pytest.fixture
def server(start_server):
    """One worker serving the built-in site on an ephemeral port."""
    return start_server("-w", "1", "-b", "127.0.0.1:0")


def connect(port: int, host: str = "127.0.0.1", timeout: float = 10.0) -> socket.socket:
    sock = socket.create_connection((host, port), timeout=timeout)
    return sock


def recv_until_closed(sock: socket.socket, limit: int = 1 << 26) -> bytes:
    """Read until the server closes the connection."""
    chunks = []
    total = 0
    while total < limit:
        try:
            data = sock.recv(65536)
        except ConnectionResetError:
            break
        if not data:
            break
        chunks.append(data)
        total += len(data)
    return b"".join(chunks)


def read_head(sock: socket.socket, buf: bytearray) -> tuple[int, dict]:
    """A response head only (for HEAD, whose Content-Length describes a body that is not sent)."""
    while b"\r\n\r\n" not in buf:
        data = sock.recv(65536)
        assert data, "closed before the head was complete"
        buf.extend(data)
    end = buf.index(b"\r\n\r\n")
    lines = bytes(buf[:end]).decode("latin-1").split("\r\n")
    del buf[:end + 4]
    headers = {k.strip().lower(): v.strip() for k, _, v in (line.partition(":") for line in lines[1:])}
    return int(lines[0].split()[1]), headers


def read_response(sock: socket.socket, buffer: bytearray | None = None) -> tuple[int, dict, bytes]:
    """Read one Content-Length or chunked response from sock; returns (status, headers, body).

    Pass the same bytearray as buffer for successive (pipelined) responses on one socket.
    """
    buf = buffer if buffer is not None else bytearray()

    def fill():
        data = sock.recv(65536)
        if not data:
            raise ConnectionError("closed before the response was complete")
        buf.extend(data)

    while b"\r\n\r\n" not in buf:
        fill()
    end = buf.index(b"\r\n\r\n")
    head = bytes(buf[:end]).decode("latin-1").split("\r\n")
    del buf[:end + 4]
    status = int(head[0].split()[1])
    headers = {}
    for line in head[1:]:
        name, _, value = line.partition(":")
        headers[name.strip().lower()] = value.strip()
    if status == 100:
        return read_response(sock, buf)
    body = b""
    if headers.get("transfer-encoding") == "chunked":
        parts = []
        while True:
            while b"\r\n" not in buf:
                fill()
            line_end = buf.index(b"\r\n")
            size = int(bytes(buf[:line_end]).split(b";")[0], 16)
            del buf[:line_end + 2]
            if size == 0:
                while b"\r\n\r\n" not in buf and not buf.startswith(b"\r\n"):
                    fill()
                trailer_end = 2 if buf.startswith(b"\r\n") else buf.index(b"\r\n\r\n") + 4
                del buf[:trailer_end]
                break
            while len(buf) < size + 2:
                fill()
            parts.append(bytes(buf[:size]))
            del buf[:size + 2]
        body = b"".join(parts)
    elif "content-length" in headers:
        length = int(headers["content-length"])
        while len(buf) < length:
            fill()
        body = bytes(buf[:length])
        del buf[:length]
    return status, headers, body
