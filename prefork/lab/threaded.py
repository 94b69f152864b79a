"""One thread per connection: the main thread accepts, a new thread runs the blocking loop.

The phases block as in the iterative server, each in its own thread. A thread is cheaper than a
process (a stack, reserved rather than used, and kernel bookkeeping), but thousands of them
cost memory and scheduling, and in CPython they take turns on one interpreter lock, so
CPU-bound handlers do not run in parallel. A thread that cannot be started (the kernel's or
the memory's limit) refuses its client.
"""

from __future__ import annotations

import socket
import threading

from .blocking import serve_connection

STACK_SIZE = 256 * 1024  # the loop is shallow; the 8 MiB default only reserves address space


def serve(listener: socket.socket, variant: str = "") -> None:
    threading.stack_size(STACK_SIZE)
    while True:
        conn, _ = listener.accept()
        try:
            threading.Thread(target=serve_and_close, args=(conn,), daemon=True).start()
        except RuntimeError:
            conn.close()  # "can't start new thread"


def serve_and_close(conn: socket.socket) -> None:
    with conn:
        serve_connection(conn)
