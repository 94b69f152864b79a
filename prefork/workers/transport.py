"""A transport: one accepted socket on the Reactor, below the protocol that speaks over it.

The transport moves bytes and nothing else: it reads and hands what arrives to its protocol
(`data_received`, `eof_received`), queues output with a bound (backpressure), sends files,
and closes. It knows nothing of HTTP and nothing of the worker: it is given the Reactor, its
settings and a callback for when it has closed.

Output is queued and sent with one `send` per flush (pipelined responses go out together).
Above `high_water` queued bytes the transport stops reading, so a peer that does not read can
never make us buffer without bound: its TCP window fills and flow control does the rest. The
epoll interest is decided in one method (`update_interest`; lingering after the last response
waits for input only) and changed only when it really changes, because each change is a
system call.

`Transport` is plain TCP (or a unix socket); the TLS transport (tls_transport.py) is the same
interface over an `ssl.SSLObject`. The protocol a transport drives has these methods:
`data_received(data)`, `eof_received()`, `wants_input()`, `drained()`, `timed_out()`,
`connection_lost()`, and `crashed()` for an unexpected exception (the Reactor calls it).
"""

from __future__ import annotations

import logging
import os
import socket
from socket import IPPROTO_TCP as _IPPROTO_TCP, TCP_CORK as _TCP_CORK

from .reactor import EPOLLIN, EPOLLOUT

READ_SIZE = 65536
JOIN_LIMIT = 64 * 1024  # queued output up to this is joined and sent in one send(); beyond, sendmsg
_IOV_MAX = 64  # pieces per sendmsg call
SENDFILE_CHUNK = 1 << 20  # bytes per os.sendfile call, so one file cannot hold the loop long
log = logging.getLogger("prefork")
LINGER = 2.0  # seconds of discarding input after our last response, before closing anyway


class TransportSettings:
    """What a transport needs of the configuration."""

    __slots__ = ("high_water", "send_timeout")

    def __init__(self, high_water: int, send_timeout: float):
        self.high_water = high_water
        self.send_timeout = send_timeout


def _consume(out: list, sent: int) -> None:
    """Drop `sent` bytes from the front of the queued pieces."""
    index = 0
    while sent and sent >= len(out[index]):
        sent -= len(out[index])
        index += 1
    del out[:index]
    if sent:
        out[0] = memoryview(out[0])[sent:]


class FileJob:
    """A file being sent: what is left of it, and whom to tell when it is all out."""

    __slots__ = ("fd", "offset", "count", "done", "sent")

    def __init__(self, fd: int, offset: int, count: int, done):
        self.fd = fd
        self.offset = offset
        self.count = count
        self.done = done
        self.sent = 0


class Transport:
    __slots__ = ("reactor", "sock", "fd", "peer", "settings", "on_closed", "protocol", "out", "out_len",
                 "interest", "deadline", "closed", "read_closed", "closing", "lingering", "on_drain",
                 "file_job", "tcp")

    can_sendfile = True  # os.sendfile straight from the page cache; not over TLS
    secure = False  # TLS

    def __init__(self, reactor, sock: socket.socket, peer, settings: TransportSettings, on_closed):
        self.reactor = reactor
        self.sock = sock
        self.fd = sock.fileno()
        self.peer = peer
        self.tcp = type(peer) is tuple  # a unix socket's peer is a path (sock.family costs an enum)
        self.settings = settings
        self.on_closed = on_closed  # on_closed(protocol), once, when the socket is closed
        self.protocol = None
        self.out: list = []  # queued output: bytes or memoryview pieces
        self.out_len = 0
        self.interest = EPOLLIN
        self.closed = False
        self.read_closed = False  # the peer shut down its side
        self.closing = False  # close once the output is flushed
        self.lingering = False  # our side is shut down; discarding input until the peer closes
        self.on_drain = None  # called once when output falls below half the high-water mark
        self.file_job = None  # a file being sent (send_file)
        self.deadline = reactor.deadline(self._timed_out)  # the protocol's timeouts, and send_timeout

    def start(self, protocol) -> None:
        """Deliver events to protocol from now on."""
        self.protocol = protocol
        self.reactor.register(self.fd, EPOLLIN, self.on_events)

    # -- events ---------------------------------------------------------------------------------

    def on_events(self, mask: int) -> None:
        if mask & EPOLLOUT:
            if self.file_job is not None:
                self._send_file()
                return
            self.flush()
            if self.closed or not mask & ~EPOLLOUT:
                return
        # EPOLLIN, or an error/hang-up that recv will report (read here, not in a method of its
        # own: this runs for every request, and a Python call costs about what a system call's
        # user side does).
        try:
            data = self.sock.recv(READ_SIZE)
        except (BlockingIOError, InterruptedError):
            return
        except OSError:
            self.abort()
            return
        if data:
            if not self.lingering:
                self.protocol.data_received(data)
        else:
            self.read_closed = True
            if self.lingering:
                self.abort()
            else:
                self.protocol.eof_received()

    def on_readable(self) -> None:
        """Read now, as an EPOLLIN event would (a graceful stop looks at idle connections so)."""
        self.on_events(EPOLLIN)

    def _timed_out(self) -> None:
        if self.lingering:
            self.abort()
        else:
            self.protocol.timed_out()

    def crashed(self) -> None:
        """An unexpected exception on this connection (the Reactor logged it): the protocol's to answer."""
        self.protocol.crashed()

    # -- output ---------------------------------------------------------------------------------

    def write(self, data) -> None:
        """Queue data; call flush() to send (several writes then go out in one send)."""
        if data:
            self.out.append(data)
            self.out_len += len(data)

    def writable(self) -> bool:
        """Whether a producer may write more now (the output is not above its high-water mark)."""
        return self.out_len <= self.settings.high_water

    def flush(self) -> None:
        """Send what is queued; what does not fit waits for EPOLLOUT."""
        if self.closed:
            return
        out = self.out
        if out:
            if len(out) == 1:
                data = out[0]  # the common case, one response: tested first
            elif self.out_len <= JOIN_LIMIT:
                data = b"".join(out)
            else:
                data = None  # large pieces go out as they are, gathered by sendmsg: no copy
            try:
                sent = self.sock.send(data) if data is not None else self.sock.sendmsg(out[:_IOV_MAX])
            except (BlockingIOError, InterruptedError):
                sent = 0
            except OSError:
                self.abort()
                return
            if sent == self.out_len:
                out.clear()
                self.out_len = 0
            else:
                if data is not None:
                    out[:] = [memoryview(data)[sent:]]
                else:
                    _consume(out, sent)
                self.out_len -= sent
                self._progress(sent)
        # _after_flush(), inlined: this runs for every response.
        if self.on_drain is not None and self.out_len < self.settings.high_water // 2:
            drain, self.on_drain = self.on_drain, None
            drain()  # a producer that was waiting: it writes and flushes again itself
            return
        if self.out_len == 0:
            if self.closing:
                self.finish_close()
                return
            self.protocol.drained()  # it updates the epoll interest itself, if it must change
            return
        self.update_interest()

    def _progress(self, sent: int) -> None:
        """Output is left queued: progress, or a first stall, starts the send_timeout; a stall
        does not extend it."""
        if sent or not self.deadline.when:
            self.deadline.set(self.reactor.now + self.settings.send_timeout)

    def _after_flush(self) -> None:
        """After a send: wake a producer waiting for room, close if that was the last output,
        tell the protocol everything is out, or wait for EPOLLOUT (the TLS transport's flush
        ends here too)."""
        if self.on_drain is not None and self.out_len < self.settings.high_water // 2:
            drain, self.on_drain = self.on_drain, None
            drain()  # a producer that was waiting: it writes and flushes again itself
            return
        if self.out_len == 0:
            if self.closing:
                self.finish_close()
                return
            self.protocol.drained()  # it updates the epoll interest itself, if it must change
            return
        self.update_interest()

    def update_interest(self) -> None:
        """The one place the epoll interest changes: input while the protocol wants it (never
        while a file is sent, whose events never read), output while some is queued."""
        if self.closed:
            return
        if self.file_job is not None:
            interest = EPOLLOUT
        else:
            interest = (EPOLLIN if not self.read_closed and not self.closing and self.protocol.wants_input()
                        else 0) | (EPOLLOUT if self.out_len else 0)
        if interest != self.interest:
            self._set_interest(interest)

    def _set_interest(self, interest: int) -> None:
        self.interest = interest
        self.reactor.modify(self.fd, interest)

    # -- files ----------------------------------------------------------------------------------

    def send_file(self, fd: int, offset: int, count: int, done) -> None:
        """Send count bytes of the file fd from offset, after the queued output; done() when all
        is sent. If the transport closes first, done is never called (the protocol's
        connection_lost is)."""
        self.file_job = FileJob(fd, offset, count, done)
        if self.tcp:
            # Corked, TCP sends only full segments: the head leaves with the file's first bytes,
            # and the file in as few segments as the window allows, as nginx's tcp_nopush does.
            self.sock.setsockopt(_IPPROTO_TCP, _TCP_CORK, 1)
        self._send_file()

    def _send_file(self) -> None:
        if self.closed:
            return
        job = self.file_job
        while job.count:
            if self.out:
                # What was queued before (or, over TLS, the file's last piece, encrypted) goes
                # first; what does not fit waits for EPOLLOUT, which comes back here.
                self.flush()
                if self.closed:
                    return
                if self.out:
                    self._wait_writable()
                    return
            try:
                sent = self._send_file_piece(job)
            except (BlockingIOError, InterruptedError):
                self._wait_writable()
                return
            except OSError:
                self.abort()
                return
            if not sent:
                log.error("file sent to %s ended %d bytes early", self.peer or "unix socket", job.count)
                self.abort()
                return
            job.offset += sent
            job.count -= sent
            job.sent += sent
        if self.out:  # over TLS, the last piece may still be queued
            self.flush()
            if self.closed:
                return
            if self.out:
                self._wait_writable()
                return
        self.file_job = None
        if self.tcp:
            self.sock.setsockopt(_IPPROTO_TCP, _TCP_CORK, 0)  # the last partial segment goes now
        self.deadline.clear()
        job.done()

    def _send_file_piece(self, job: FileJob):
        """Send some of the file: bytes sent (0 at its end), or raise BlockingIOError."""
        return os.sendfile(self.fd, job.fd, job.offset, min(job.count, SENDFILE_CHUNK))

    def _wait_writable(self) -> None:
        self.deadline.set(self.reactor.now + self.settings.send_timeout)
        self.update_interest()

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
        self.linger()

    def linger(self) -> None:
        self.lingering = True
        self.closing = False
        self.deadline.set(self.reactor.now + LINGER)
        if self.interest != EPOLLIN:
            self._set_interest(EPOLLIN)  # only the peer's EOF is awaited now

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
        self.on_drain = None
        self.file_job = None
        protocol = self.protocol
        if protocol is not None:
            protocol.connection_lost()
        self.on_closed(protocol)
