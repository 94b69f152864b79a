"""A non-blocking socket on the Reactor with a bounded output buffer (backpressure).

Output is queued and sent with one `send` per flush (pipelined responses go out together).
Above `high_water` queued bytes the stream stops reading, so a peer that does not read can
never make us buffer without bound: its TCP window fills and flow control does the rest. The
epoll interest is changed only when it really changes, because each change is a system call.
"""

from __future__ import annotations

import socket

from .reactor import EPOLLIN, EPOLLOUT

_READ_SIZE = 65536


class Stream:
    __slots__ = ("worker", "reactor", "sock", "fd", "peer", "out", "out_len", "interest",
                 "deadline", "closed", "read_closed", "closing", "lingering", "on_drain")

    def __init__(self, worker, sock: socket.socket, peer):
        self.worker = worker
        self.reactor = worker.reactor
        self.sock = sock
        self.fd = sock.fileno()
        self.peer = peer
        self.out: list = []  # queued output: bytes or memoryview pieces
        self.out_len = 0
        self.interest = EPOLLIN
        self.closed = False
        self.read_closed = False  # the peer shut down its side
        self.closing = False  # close once the output is flushed
        self.lingering = False  # our side is shut down; discarding input until the peer closes
        self.on_drain = None  # called when output falls below the low-water mark
        self.deadline = self.reactor.deadline(self._timed_out)
        self.reactor.register(self.fd, EPOLLIN, self.on_events)

    # -- events ---------------------------------------------------------------------------------

    def on_events(self, mask: int) -> None:
        if mask & EPOLLOUT:
            self.flush()
            if self.closed:
                return
        if mask & ~EPOLLOUT:  # EPOLLIN, or an error/hang-up that recv will report
            self.on_readable()

    def on_readable(self) -> None:
        try:
            data = self.sock.recv(_READ_SIZE)
        except (BlockingIOError, InterruptedError):
            return
        except OSError:
            self.abort()
            return
        if data:
            if not self.lingering:
                self.on_data(data)
        else:
            self.read_closed = True
            if self.lingering:
                self.abort()
            else:
                self.on_eof()

    def on_data(self, data: bytes) -> None:  # pragma: no cover - overridden
        raise NotImplementedError

    def on_eof(self) -> None:
        """The peer closed its side: by default finish what is queued, then close."""
        self.closing = True
        self.flush()

    def _timed_out(self) -> None:
        if self.lingering:
            self.abort()
        else:
            self.on_timeout()

    def on_timeout(self) -> None:
        self.abort()

    def crashed(self) -> None:
        """An unexpected exception while handling this connection (the Reactor logged it)."""
        self.abort()

    def idle(self) -> bool:
        """Nothing in flight: a graceful stop may close it at once."""
        return self.out_len == 0

    def activity(self) -> str:
        """"reading", "writing" or "waiting" (idle), as nginx's status counts connections."""
        return "writing" if self.out_len else "waiting"

    def drained(self) -> None:
        """All output is sent: by default no deadline applies any more."""
        self.deadline.clear()
        self.update_interest()

    # -- output ---------------------------------------------------------------------------------

    def write(self, data) -> None:
        """Queue data; call flush() to send (several writes then go out in one send)."""
        if data:
            self.out.append(data)
            self.out_len += len(data)

    def flush(self) -> None:
        """Send what is queued; what does not fit waits for EPOLLOUT."""
        if self.closed:
            return
        out = self.out
        if out:
            data = out[0] if len(out) == 1 else b"".join(out)
            try:
                sent = self.sock.send(data)
            except (BlockingIOError, InterruptedError):
                sent = 0
            except OSError:
                self.abort()
                return
            if sent == len(data):
                out.clear()
                self.out_len = 0
            else:
                out[:] = [memoryview(data)[sent:]]
                self.out_len = len(data) - sent
                if sent or not self.deadline.when:
                    # Progress, or a first stall, starts the send_timeout; a stall does not extend it.
                    self.deadline.set(self.reactor.now + self.worker.config.send_timeout)
        if self.on_drain is not None and self.out_len < self.worker.high_water // 2:
            drain, self.on_drain = self.on_drain, None
            drain()  # a producer that was waiting: it writes and flushes again itself
            return
        if self.out_len == 0:
            if self.closing:
                self.finish_close()
                return
            self.drained()  # it updates the epoll interest itself, if it must change
            return
        self.update_interest()

    def wants_input(self) -> bool:
        """Whether to keep reading from the socket; subclasses add their own reasons to pause."""
        return not self.read_closed and not self.closing and self.out_len <= self.worker.high_water

    def update_interest(self) -> None:
        if self.closed:
            return
        interest = (EPOLLIN if self.wants_input() else 0) | (EPOLLOUT if self.out_len else 0)
        if interest != self.interest:
            self.interest = interest
            self.reactor.modify(self.fd, interest)

    # -- closing --------------------------------------------------------------------------------

    def finish_close(self) -> None:
        """Close after the last response: half-close, then drain what the peer still sends.

        Closing a socket with unread input makes the kernel send RST, which can destroy the
        response still in flight; so, as nginx's lingering close, we shut down our side and
        discard input until the peer closes or a short linger time passes.
        """
        if self.closed:
            return
        if self.read_closed:
            self.abort()
            return
        try:
            self.sock.shutdown(socket.SHUT_WR)
        except OSError:
            self.abort()
            return
        self.lingering = True
        self.closing = False
        self.deadline.set(self.reactor.now + 2.0)
        if self.interest != EPOLLIN:
            self.interest = EPOLLIN
            self.reactor.modify(self.fd, EPOLLIN)

    def abort(self) -> None:
        """Close the socket now."""
        if self.closed:
            return
        self.closed = True
        self.deadline.stop()
        self.reactor.unregister(self.fd)
        try:
            self.sock.close()
        except OSError:
            pass
        self.out.clear()
        self.out_len = 0
        self.worker.connection_closed(self)
