"""Iterative server with blocking IO: one connection at a time, from accept to close.

    accept()  blocks until a client connects
    recv()    blocks in both phases: it sleeps until bytes arrive (phase 1, waiting for the
              data to be ready), then copies them from the kernel into our buffer (phase 2)
    sendall() blocks until the kernel has taken the whole answer

Per connection it costs nothing at all, and it serves exactly one client: while a keep-alive
client is connected, every other client waits in the listen backlog.
"""

from __future__ import annotations

import socket

from . import protocol

READ_SIZE = 65536


def serve(listener: socket.socket, variant: str = "") -> None:
    while True:
        conn, _ = listener.accept()
        with conn:
            serve_connection(conn)


def serve_connection(conn: socket.socket) -> None:
    """The blocking request loop; forking, threaded and pool run this same loop elsewhere."""
    buffer = bytearray()
    try:
        while data := conn.recv(READ_SIZE):  # phases 1 and 2
            buffer += data
            conn.sendall(protocol.answers(buffer))
    except OSError:
        pass  # reset by the client: this connection is over, the server goes on
