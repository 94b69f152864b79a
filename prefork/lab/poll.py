"""IO multiplexing with poll(): select() without its bitmaps and its 1024 ceiling.

    poll()    phase 1 for every registered socket at once
    recv()    phase 2: the copy

Python's poll object keeps the list of descriptors between calls, but the kernel does not: each
call still copies the whole array in, checks every descriptor, and copies it back, so the
cost of a wait still grows with the number of connections, busy or idle.
"""

from __future__ import annotations

import select
import socket

from .peer import Peer

READ = select.POLLIN
READ_WRITE = select.POLLIN | select.POLLOUT


def serve(listener: socket.socket, variant: str = "") -> None:
    listener.setblocking(False)
    poller = select.poll()
    poller.register(listener, READ)
    peers: dict[int, Peer] = {}
    while True:
        for fd, events in poller.poll():
            if fd == listener.fileno():
                accept(listener, poller, peers)
                continue
            peer = peers[fd]
            alive = (not events & (READ | select.POLLHUP | select.POLLERR) or peer.read()) and \
                    (not events & select.POLLOUT or peer.write())
            if not alive:
                poller.unregister(fd)
                peers.pop(fd).close()
            else:
                poller.modify(fd, READ_WRITE if peer.wants_write else READ)


def accept(listener: socket.socket, poller, peers: dict[int, Peer]) -> None:
    try:
        conn, _ = listener.accept()
    except BlockingIOError:
        return
    peers[conn.fileno()] = Peer(conn)
    poller.register(conn, READ)
