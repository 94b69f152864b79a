"""The Proactor, emulated: a Reactor thread does the IO, worker threads do the work, queues join them.

    Reactor thread   phase 1 (epoll) and phase 2 (the copy), then puts each complete request
                     on the jobs queue: the "read" operation is complete
    worker thread    the handler proper: told of a completed read, it computes the answer
                     and hands it back on the completions queue, waking the Reactor
                     through an eventfd
    Reactor thread   writes the answer: the "write" operation

Linux has no completion-based socket IO in the old aio, so this is how a Proactor is built
there (and how prefork runs a WSGI app with --dispatch threads). A slow handler now holds a
worker thread, not the loop: the other connections go on being served. One request per
connection is in the workers at a time, so a connection's answers keep their order.
"""

from __future__ import annotations

import collections
import os
import queue
import socket
import threading

from . import protocol
from .peer import Peer
from .reactor import IN, OUT, Acceptor, Reactor

THREADS = 8


class Completions:
    """Answers coming back from the workers, and the eventfd that wakes the Reactor for them."""

    def __init__(self, reactor: Reactor):
        self.done = queue.SimpleQueue()
        self.wakeup = os.eventfd(0, os.EFD_NONBLOCK)
        reactor.register(self.wakeup, IN, self)

    def put(self, exchange, answer: bytes) -> None:  # on a worker thread
        self.done.put((exchange, answer))
        os.eventfd_write(self.wakeup, 1)

    def handle_event(self, events: int) -> None:  # on the Reactor thread
        try:
            os.eventfd_read(self.wakeup)
        except BlockingIOError:
            pass
        while True:
            try:
                exchange, answer = self.done.get_nowait()
            except queue.Empty:
                return
            exchange.completed(answer)


class ExchangeHandler:
    """A connection whose requests are answered on the workers."""

    def __init__(self, reactor: Reactor, peer: Peer, jobs: queue.SimpleQueue):
        self.reactor, self.peer, self.jobs = reactor, peer, jobs
        self.waiting = collections.deque()  # complete heads not yet given to a worker
        self.busy = self.closed = False
        reactor.register(peer.fd, IN, self)

    def handle_event(self, events: int) -> None:
        if events & ~OUT:
            if not self.peer.receive():
                return self.close()
            self.waiting.extend(protocol.take_heads(self.peer.inbox))
            self.start_next()
        if events & OUT and not self.peer.write():
            return self.close()
        self.update_interest()

    def start_next(self) -> None:
        if not self.busy and self.waiting:
            self.busy = True
            self.jobs.put((self, self.waiting.popleft()))

    def completed(self, answer: bytes) -> None:
        if self.closed:
            return  # the client left while its request was in a worker
        self.busy = False
        self.peer.outbox += answer
        if not self.peer.write():
            return self.close()
        self.start_next()
        self.update_interest()

    def update_interest(self) -> None:
        self.reactor.want(self.peer.fd, IN | OUT if self.peer.wants_write else IN)

    def close(self) -> None:
        self.closed = True
        self.reactor.unregister(self.peer.fd)
        self.peer.close()


def work(jobs: queue.SimpleQueue, completions: Completions) -> None:
    while True:
        exchange, head = jobs.get()
        completions.put(exchange, protocol.respond(head))


def serve(listener: socket.socket, variant: str = "") -> None:
    reactor = Reactor()
    jobs = queue.SimpleQueue()
    completions = Completions(reactor)
    for _ in range(int(variant or THREADS)):
        threading.Thread(target=work, args=(jobs, completions), daemon=True).start()
    Acceptor(reactor, listener, lambda reactor, peer: ExchangeHandler(reactor, peer, jobs))
    reactor.run()
