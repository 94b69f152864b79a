"""IO multiplexing with epoll: the kernel keeps the interest list and hands back only ready sockets.

    epoll.poll()  phase 1 for all registered sockets; returns only the ready ones
    recv()        phase 2: the copy

A socket is registered once (epoll_ctl) and the kernel marks it ready when data arrives, so a
wait costs in the number of ready sockets, not of registered ones: idle connections are
nearly free. Two variants:

    level  (the default) a socket is reported as long as it stays readable; interest in
           writing is added only while an answer is waiting, and removed once it is sent
    edge   (EPOLLET) reported once per change: read and write until EAGAIN every time, or a
           socket with bytes left is never reported again; no epoll_ctl after registering
"""

from __future__ import annotations

import select
import socket

from .peer import Peer

IN, OUT, EDGE = select.EPOLLIN, select.EPOLLOUT, select.EPOLLET
GONE = select.EPOLLHUP | select.EPOLLERR


def serve(listener: socket.socket, variant: str = "level") -> None:
    edge = variant == "edge"
    listener.setblocking(False)
    epoll = select.epoll()
    epoll.register(listener, IN)
    peers: dict[int, Peer] = {}
    writing: set[int] = set()  # level-triggered: the sockets registered for OUT too
    while True:
        for fd, events in epoll.poll():
            if fd == listener.fileno():
                accept_all(listener, epoll, peers, edge)
                continue
            peer = peers[fd]
            alive = (not events & (IN | GONE) or peer.read(until_drained=edge)) and \
                    (not events & OUT or peer.write())
            if not alive:
                peers.pop(fd).close()  # closing removes it from the epoll set
                writing.discard(fd)
            elif not edge and peer.wants_write != (fd in writing):
                epoll.modify(fd, IN | OUT if peer.wants_write else IN)  # only on a change: a system call
                writing.symmetric_difference_update({fd})


def accept_all(listener: socket.socket, epoll, peers: dict[int, Peer], edge: bool) -> None:
    """Accept until EAGAIN: a burst of connections is one readiness of the listener."""
    while True:
        try:
            conn, _ = listener.accept()
        except BlockingIOError:
            return
        peer = peers[conn.fileno()] = Peer(conn)
        epoll.register(peer.fd, IN | OUT | EDGE if edge else IN)
