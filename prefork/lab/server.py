"""Run one model as a server process, and start and stop such processes for the driver.

`prefork lab serve MODEL[:VARIANT] --port N` binds 127.0.0.1:N, prints `listening on
127.0.0.1:PORT` and serves until killed. The driver runs each model in a process of its
own so that the server's CPU time and memory can be read from /proc, and so that it can be
pinned to CPUs apart from the load.
"""

from __future__ import annotations

import os
import re
import resource
import signal
import socket
import subprocess
import sys
import tempfile
import time
from pathlib import Path

from . import load, parse, protocol

BACKLOG = 4096
PACKAGE_ROOT = Path(__file__).resolve().parents[2]  # so that `prefork.lab` imports in the child as here


def raise_nofile(wanted: int) -> int:
    """Raise the soft descriptor limit towards wanted (the hard limit caps it); the limit reached."""
    soft, hard = resource.getrlimit(resource.RLIMIT_NOFILE)
    target = wanted if hard == resource.RLIM_INFINITY else min(wanted, hard)
    if target > soft:
        resource.setrlimit(resource.RLIMIT_NOFILE, (target, hard))
        return target
    return soft


def serve_forever(spec: str, port: int = 0) -> None:
    name, variant = parse(spec)
    raise_nofile(1 << 20)
    listener = socket.socket(socket.AF_INET, socket.SOCK_STREAM)
    listener.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
    listener.bind(("127.0.0.1", port))
    listener.listen(BACKLOG)
    print(f"listening on 127.0.0.1:{listener.getsockname()[1]}", flush=True)
    load(name).serve(listener, variant)


class Running:
    """A model's server process (and its children), started on the given CPUs."""

    def __init__(self, spec: str, cpus: set[int] | None = None, ready_timeout: float = 20.0):
        self.spec = spec
        env = dict(os.environ, PYTHONPATH=os.pathsep.join(filter(None, [str(PACKAGE_ROOT),
                                                                        os.environ.get("PYTHONPATH")])))
        self.errors = tempfile.TemporaryFile()  # a file, not a pipe: a chatty server must never block on it
        self.proc = subprocess.Popen([sys.executable, "-m", "prefork.lab", "serve", spec],
                                     stdout=subprocess.PIPE, stderr=self.errors, stdin=subprocess.DEVNULL,
                                     env=env, start_new_session=True,
                                     preexec_fn=(lambda: os.sched_setaffinity(0, cpus)) if cpus else None)
        line = self.proc.stdout.readline().decode()
        match = re.match(r"listening on 127\.0\.0\.1:(\d+)", line)
        if not match:
            self.stop()
            raise RuntimeError(f"model {spec} did not start: {line}{self.error_output()}")
        self.port = int(match.group(1))
        self.pid = self.proc.pid
        self.wait_ready(ready_timeout)

    def wait_ready(self, timeout: float) -> None:
        """Poll with a real request until the model answers (prefork binds its sockets after exec)."""
        deadline = time.monotonic() + timeout
        while True:
            try:
                with socket.create_connection(("127.0.0.1", self.port), timeout=1) as sock:
                    sock.sendall(protocol.request("ready"))
                    if sock.recv(4096).endswith(b"ready\n"):
                        return
            except OSError:
                pass
            if self.proc.poll() is not None or time.monotonic() > deadline:
                self.stop()
                raise RuntimeError(f"model {self.spec} never answered: {self.error_output()}")
            time.sleep(0.05)

    def stop(self) -> None:
        try:
            os.killpg(self.proc.pid, signal.SIGKILL)  # the whole group: forked children too
        except ProcessLookupError:
            pass
        self.proc.wait(10)
        self.proc.stdout.close()
        self.errors.close()

    def error_output(self) -> str:
        self.errors.seek(0)
        return self.errors.read().decode(errors="replace")[-2000:]

    def __enter__(self):
        return self

    def __exit__(self, *exc):
        self.stop()
