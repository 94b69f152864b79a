"""IO multiplexing with select(): block in one call until one of many sockets is ready.

    select()  phase 1 for every socket at once: the process sleeps until one is readable
    recv()    phase 2: the copy, which now cannot block

Every call hands the kernel three bitmaps as large as the highest descriptor and gets them
back rewritten, so the cost of each wait grows with the number (and the highest value) of the
descriptors, busy or not. FD_SETSIZE (1024) is a hard ceiling: a connection whose descriptor
is beyond it cannot be watched at all and is closed.
"""

from __future__ import annotations

import select
import socket

from .peer import Peer

FD_SETSIZE = 1024


def serve(listener: socket.socket, variant: str = "") -> None:
    listener.setblocking(False)
    peers: dict[int, Peer] = {}
    while True:
        writers = [fd for fd, peer in peers.items() if peer.wants_write]
        readable, writable, _ = select.select([listener.fileno(), *peers], writers, [])
        for fd in readable:
            if fd == listener.fileno():
                accept(listener, peers)
            elif not peers[fd].read():
                peers.pop(fd).close()
        for fd in writable:
            if fd in peers and not peers[fd].write():
                peers.pop(fd).close()


def accept(listener: socket.socket, peers: dict[int, Peer]) -> None:
    try:
        conn, _ = listener.accept()
    except BlockingIOError:
        return
    if conn.fileno() >= FD_SETSIZE:
        conn.close()  # select() cannot watch it
        return
    peers[conn.fileno()] = Peer(conn)
