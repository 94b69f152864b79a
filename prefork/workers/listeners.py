"""Accepting connections: bounded batches, a per-worker connection cap, and no spin on EMFILE."""

from __future__ import annotations

import errno
import socket

from .reactor import EPOLLEXCLUSIVE, EPOLLIN

ACCEPT_BATCH = 64  # accepts per readiness event, so one busy listener cannot starve the rest
_OUT_OF_DESCRIPTORS = (errno.EMFILE, errno.ENFILE, errno.ENOBUFS, errno.ENOMEM)
_EMFILE_PAUSE = 0.25  # seconds without accepting after running out of descriptors


class Listener:
    """A listening socket registered on the worker's Reactor."""

    def __init__(self, worker, sock: socket.socket, connection_factory, exclusive: bool):
        self.worker = worker
        self.sock = sock
        self.fd = sock.fileno()
        self.connection_factory = connection_factory  # (sock, peer) -> connection
        self.exclusive = exclusive  # a socket shared by every worker: EPOLLEXCLUSIVE, no thundering herd
        self.tcp = sock.family in (socket.AF_INET, socket.AF_INET6)
        self.active = False
        sock.setblocking(False)

    def start(self) -> None:
        if not self.active:
            self.active = True
            events = EPOLLIN | (EPOLLEXCLUSIVE if self.exclusive else 0)
            self.worker.reactor.register(self.fd, events, self.on_events)

    def pause(self) -> None:
        # EPOLLEXCLUSIVE descriptors cannot be modified, only removed and added again.
        if self.active:
            self.active = False
            self.worker.reactor.unregister(self.fd)

    def close(self) -> None:
        """At the server's stop: accept what already waits in the queue (closing the last
        descriptor of a listening socket resets every connection queued there), then close
        ours. The master has closed its own first, so the socket goes and new connections are
        refused at once, as with nginx, instead of waiting unanswered until the server exits."""
        worker = self.worker
        # At most what the queue holds (its backlog): under a steady flow of new connections
        # the loop would go on taking them instead of closing.
        last = worker.accepted + worker.config.backlog
        before = -1
        while worker.accepted != before and worker.accepted < last and not worker.at_capacity():
            before = worker.accepted
            self.on_events(EPOLLIN)
        self.pause()
        self.sock.close()

    def on_events(self, mask: int) -> None:
        worker = self.worker
        accept = self.sock.accept
        for _ in range(ACCEPT_BATCH):
            if worker.at_capacity():
                worker.pause_accepting(None)
                return
            try:
                sock, peer = accept()
            except (BlockingIOError, InterruptedError):
                return
            except OSError as exc:
                if exc.errno in _OUT_OF_DESCRIPTORS:
                    worker.pause_accepting(_EMFILE_PAUSE, exc)
                    return
                continue  # ECONNABORTED and friends: that client is gone, try the next
            sock.setblocking(False)
            if self.tcp:
                sock.setsockopt(socket.IPPROTO_TCP, socket.TCP_NODELAY, 1)
            worker.accepted += 1
            if worker.accepted == 1 and worker.board is not None:
                worker.board.update(worker)  # at once, not at the next tick: see worker_exited
            worker.add_connection(self.connection_factory(sock, peer))
