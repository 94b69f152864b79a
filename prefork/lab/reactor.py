"""The Reactor pattern: an event demultiplexer (epoll) dispatching readiness to registered handlers.

    Reactor.run()      phase 1 for everything: one epoll wait, then each ready descriptor's
                       handler.handle_event(events)
    handle_event()     phase 2 and the work: the handler copies the bytes and answers

This is the epoll model given a structure: the loop knows nothing of sockets or HTTP, only
descriptors and handlers; an Acceptor registers one ConnectionHandler per client. It is what
each prefork worker runs. Its rule: a handler must not block or run long, because while one
runs no other descriptor is served (claim 5: see the proactor model for the cure).
"""

from __future__ import annotations

import select
import socket

from .peer import Peer

IN, OUT = select.EPOLLIN, select.EPOLLOUT


class Reactor:
    def __init__(self):
        self.epoll = select.epoll()
        self.handlers = {}
        self.interest = {}

    def register(self, fd: int, events: int, handler) -> None:
        self.handlers[fd], self.interest[fd] = handler, events
        self.epoll.register(fd, events)

    def want(self, fd: int, events: int) -> None:
        """Change a descriptor's interest; only a real change costs the epoll_ctl call."""
        if self.interest.get(fd) != events:
            self.interest[fd] = events
            self.epoll.modify(fd, events)

    def unregister(self, fd: int) -> None:
        del self.handlers[fd], self.interest[fd]
        self.epoll.unregister(fd)

    def run(self) -> None:
        while True:
            for fd, events in self.epoll.poll():
                handler = self.handlers.get(fd)
                if handler is not None:  # an earlier handler of this round may have closed it
                    handler.handle_event(events)


class Acceptor:
    def __init__(self, reactor: Reactor, listener: socket.socket, connection_handler):
        listener.setblocking(False)
        self.reactor, self.listener, self.connection_handler = reactor, listener, connection_handler
        reactor.register(listener.fileno(), IN, self)

    def handle_event(self, events: int) -> None:
        while True:
            try:
                conn, _ = self.listener.accept()
            except BlockingIOError:
                return
            self.connection_handler(self.reactor, Peer(conn))


class ConnectionHandler:
    """Reads, answers on the Reactor's own thread (protocol.answers runs the work), writes."""

    def __init__(self, reactor: Reactor, peer: Peer):
        self.reactor, self.peer = reactor, peer
        reactor.register(peer.fd, IN, self)

    def handle_event(self, events: int) -> None:
        alive = (not events & ~OUT or self.peer.read()) and (not events & OUT or self.peer.write())
        if not alive:
            self.close()
        else:
            self.reactor.want(self.peer.fd, IN | OUT if self.peer.wants_write else IN)

    def close(self) -> None:
        self.reactor.unregister(self.peer.fd)
        self.peer.close()


def serve(listener: socket.socket, variant: str = "") -> None:
    reactor = Reactor()
    Acceptor(reactor, listener, ConnectionHandler)
    reactor.run()

