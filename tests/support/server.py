"""A running `prefork` command in the background, on ephemeral ports of 127.0.0.1: its ports,
its log (a file the test can read) and its stop, which leaves no process behind."""

from __future__ import annotations

import re
import signal
import subprocess
import tempfile
from pathlib import Path

from support.client import connect, read_response
from support.command import PREFORK, checkout_env
from support.logs import listening
from support.paths import REPO
from support.polling import wait_until
from support.processes import stop_group, worker_pid


class Server:
    """A running `prefork` process; its error log goes to a file the test can read."""

    def __init__(self, args, cwd=None, env=None, ready_timeout=10.0, expect_ports=None, wrapper=()):
        """wrapper: a command to run prefork under (prlimit ...), exec'ing it in the same process."""
        self.args = list(args)
        self.log_file = tempfile.NamedTemporaryFile(prefix="prefork-", suffix=".log", delete=False)
        self.log_path = self.log_file.name
        self.proc = subprocess.Popen([*wrapper, *PREFORK, *self.args], cwd=cwd or REPO,
                                     env=checkout_env(**(env or {})), stdout=self.log_file, stderr=subprocess.STDOUT,
                                     stdin=subprocess.DEVNULL, start_new_session=True)
        binds = [a for i, a in enumerate(self.args) if i and self.args[i - 1] in ("-b", "--bind")]
        expected = expect_ports if expect_ports is not None else max(1, sum(
            1 for b in binds if not str(b).startswith(("unix:", "fd://"))) if binds else 1)
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
        ports = [port or 0 for _, port in listening(self.log())]
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
        """Stop with sig; SIGKILL the process group after timeout, and any worker left behind
        by a failed test. Returns the master's exit status."""
        code = stop_group(self.proc, sig, timeout)
        self.log_file.close()
        return code


def serving_worker_pid(server: Server) -> int:
    """The one worker of a `-w 1` server, once it has answered a request on a new connection."""
    pid = worker_pid(server)
    with connect(server.port) as sock:
        sock.sendall(b"GET /plaintext HTTP/1.1\r\nHost: t\r\n\r\n")
        assert read_response(sock)[0] == 200
    return pid
