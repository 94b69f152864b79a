"""A free TCP port on 127.0.0.1, for a program that cannot be given port 0 and report its own."""

from __future__ import annotations

import socket


def free_port() -> int:
    """A port nothing listens on now (the program must bind it soon: another may take it)."""
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return sock.getsockname()[1]
