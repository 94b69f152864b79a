"""One process per connection: the parent accepts, a forked child runs the blocking loop.

Both phases block, as in the iterative server (blocking.serve_connection), but each client
has its own process to block in, so clients no longer wait for each other. The cost per
connection is a fork (milliseconds for a Python interpreter) and a process: its own pages
once written (reference counts alone dirty most of them), a pid, a slot in the scheduler.

MAX_CHILDREN stands in for the machine's limit (ulimit -u, memory): the lab stops there rather
than take the machine down; beyond it a connection is closed at once, which is how a server
that cannot fork behaves.
"""

from __future__ import annotations

import os
import signal
import socket

from .blocking import serve_connection

MAX_CHILDREN = 1000


def serve(listener: socket.socket, variant: str = "") -> None:
    limit = int(variant or MAX_CHILDREN)
    children = set()

    def reap(signum=None, frame=None):
        while children:
            try:
                pid, _ = os.waitpid(-1, os.WNOHANG)
            except ChildProcessError:
                return
            if not pid:
                return
            children.discard(pid)

    signal.signal(signal.SIGCHLD, reap)  # reaped children add their CPU time to ours (cutime)
    while True:
        try:
            conn, _ = listener.accept()
        except InterruptedError:
            continue
        if len(children) >= limit:
            conn.close()
            continue
        try:
            pid = os.fork()
        except OSError:
            conn.close()  # out of processes or memory: this client is refused
            continue
        if pid == 0:
            signal.signal(signal.SIGCHLD, signal.SIG_DFL)
            listener.close()
            serve_connection(conn)
            os._exit(0)
        children.add(pid)
        conn.close()
