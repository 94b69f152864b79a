"""Signal-driven IO: the kernel sends SIGIO when a socket becomes ready; the process does not wait in a call.

    fcntl(F_SETOWN) + O_ASYNC   ask the kernel to signal this process when a socket is ready
    SIGIO handler               phase 1 ends: "something is ready" (but not which socket:
                                plain SIGIO carries no descriptor, and signals that arrive
                                together are merged into one)
    recv()                      phase 2: the copy, tried on every socket since the signal
                                does not say which

So each signal costs a scan of all connections, as select() does. The handler only records
that a signal came; Python's wakeup descriptor (a self-pipe the C-level handler writes to)
keeps a signal that lands between the scan and the wait from being lost.
"""

from __future__ import annotations

import fcntl
import os
import signal
import socket

from .peer import Peer


def serve(listener: socket.socket, variant: str = "") -> None:
    wake_read, wake_write = os.pipe()
    os.set_blocking(wake_write, False)
    signals = [0]
    signal.signal(signal.SIGIO, lambda signum, frame: signals.__setitem__(0, signals[0] + 1))
    signal.set_wakeup_fd(wake_write, warn_on_full_buffer=False)  # one byte waiting is enough
    ask_for_signals(listener)
    peers: list[Peer] = []
    while True:
        accept_all(listener, peers)  # a client that came before O_ASYNC was set sent no signal
        for peer in list(peers):
            if not peer.read() or not peer.write():
                peers.remove(peer)
                peer.close()
        os.read(wake_read, 4096)  # sleep until a signal: the wait of phase 1


def ask_for_signals(sock: socket.socket) -> None:
    sock.setblocking(False)
    fcntl.fcntl(sock, fcntl.F_SETOWN, os.getpid())
    fcntl.fcntl(sock, fcntl.F_SETFL, fcntl.fcntl(sock, fcntl.F_GETFL) | os.O_ASYNC | os.O_NONBLOCK)


def accept_all(listener: socket.socket, peers: list[Peer]) -> None:
    while True:
        try:
            conn, _ = listener.accept()
        except BlockingIOError:
            return
        ask_for_signals(conn)
        peers.append(Peer(conn))
