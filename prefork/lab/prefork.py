"""Many Reactors: N processes, each an epoll Reactor on its own SO_REUSEPORT socket. The real server.

    each worker   the reactor model's loop: phase 1 in epoll_wait, phase 2 in recv, the
                  answer computed on the Reactor (--dispatch inline) as in the reactor model
    the kernel    spreads new connections over the workers' sockets (SO_REUSEPORT), so no
                  worker is woken for a connection another one takes

One Reactor uses one CPU at most; N of them, one per core, use all of them, which CPython's
threads cannot do for CPU-bound work. The variant is the number of workers (default: one per
CPU the server may run on). This model replaces itself with the `prefork` command serving
prefork.lab.app; everything else about the lab is standalone code.
"""

from __future__ import annotations

import os
import shutil
import socket
import sys
from pathlib import Path


def command() -> str:
    beside = Path(sys.executable).with_name("prefork")  # pip install puts the script beside the interpreter
    return str(beside) if beside.exists() else shutil.which("prefork") or "prefork"


def serve(listener: socket.socket, variant: str = "") -> None:
    workers = variant or str(len(os.sched_getaffinity(0)))
    host, port = listener.getsockname()[:2]
    listener.close()  # prefork binds its own sockets, one per worker, on the same port
    os.execv(command(), [command(), "-w", workers, "-b", f"{host}:{port}", "--dispatch", "inline",
                         "--backlog", "4096", "--worker-connections", "20000", "--keepalive", "60",
                         "--log-level", "warning", "prefork.lab.app:application"])
