"""The worker process: one Reactor serving its listening sockets until it is told to stop.

A worker is given sockets that are already bound (by the master, or by a test), so it runs
on its own. Signals, as nginx's worker cycle reads them: QUIT drains (stop accepting, finish
what is in flight, close idle keep-alive connections), and so does TERM (a second TERM stops at
once), INT stops at once, USR1 reopens the logs. Signal handlers do nothing themselves: `signal.set_wakeup_fd` writes the signal
number to a pipe the Reactor watches, and the loop acts on it.
"""

from __future__ import annotations

import faulthandler
import logging
import os
import random
import signal
import sys
import tempfile
import time
from functools import partial

from prefork.http import Limits, parser_class
from prefork.http import response as http
from prefork.http.forwarded import TrustedPeers
from prefork.logs import AccessLog, reopen_error_log

from .connection import HttpConnection, ProxyProtocolConnection
from .echo import EchoConnection
from .listeners import Listener
from .reactor import EPOLLIN, Reactor
from .stats import ResponseStats
from .transport import Transport, TransportSettings

log = logging.getLogger("prefork")
_monotonic = time.monotonic

EMFILE_LOG_INTERVAL = 60.0  # seconds between two "accept failed" log lines of one worker
IDLE_GRACE = 0.5  # seconds a just-used idle connection may still bring a request after QUIT
WORKER_SIGNALS = (signal.SIGQUIT, signal.SIGTERM, signal.SIGINT, signal.SIGUSR1, signal.SIGHUP,
                  signal.SIGWINCH, signal.SIGTTIN, signal.SIGTTOU, signal.SIGUSR2)


class Worker:
    def __init__(self, config, sockets, slot: int = 0, generation: int = 0, board=None, handler=None,
                 handlers=None, tls_context=None):
        """sockets: (socket, protocol, shared) triples; protocol "http", "https", "status" or
        "echo"; shared means every worker has it (EPOLLEXCLUSIVE). tls_context: the
        ssl.SSLContext of the "https" listeners (the master loads the certificates).

        The worker is handed what answers requests; it imports no app itself. handler: one
        function for every HTTP listener (tests), or handlers: a function of this worker that
        returns {"http": handler, "status": handler} (prefork/apps/hosting.py), called once the
        worker is built, since handlers read its figures."""
        self.config = config
        self.slot = slot
        self.generation = generation
        self.board = board  # the master's scoreboard slot, or None when run alone
        self.reactor = Reactor()
        self.log = log
        self.limits = Limits(request_line=config.limit_request_line, fields=config.limit_request_fields,
                             field_size=config.limit_request_field_size, head=config.limit_request_head,
                             body=config.max_body_size)
        # The request parser of every connection (the http_parser setting): its class and name.
        self.parser_class, self.parser_name = parser_class(config.http_parser)
        self.high_water = config.high_water
        # keepalive = 0: every response says Connection: close and the connection closes after
        # it (a proxy that pools connections must be told, or it reuses one that is closing).
        self.persistent = config.keepalive > 0
        self.transport_settings = TransportSettings(config.high_water, config.send_timeout)
        self.tls_context = tls_context
        self.trusted_peers = TrustedPeers(config.forwarded_allow_ips)
        # Found now: the first call probes the directories by creating files, which fails
        # (as "no usable temporary directory") when descriptors run out later.
        tempfile.gettempdir()
        self.connections: dict[int, object] = {}
        self.accepted = 0
        self.requests = 0
        self.started = time.monotonic()
        self.stats = ResponseStats()
        self.count = self.stats.count  # bound once: called for every response
        self.queues = None  # the worker queues, if the handler starts them (for the status page)
        self.max_requests = -1
        if config.max_requests:
            self.max_requests = config.max_requests + random.randint(0, config.max_requests_jitter)
        self.stopping = False
        self.accepting_paused = False
        self.emfile_logged_at = -EMFILE_LOG_INTERVAL  # when "accept failed" was last logged
        self.parent = os.getppid()
        self.access_log = AccessLog(config.access_log, config.access_log_format) if config.access_log else None
        self.common_headers = b""
        self._refresh_date()
        routes = handlers(self) if handlers is not None else {"http": handler}
        self.handler = routes["http"]
        self.status_handler = routes.get("status", self.handler)
        # A handler that reads every field of every request (a WSGI app's environ) has them
        # split as llhttp parses them; any other has them split only if it reads them.
        self.parser_class = parser_class(config.http_parser,
                                         lazy_fields=not getattr(self.handler, "reads_every_field", False))[0]
        self.listeners = [Listener(self, sock, self._connection_factory(protocol), shared)
                          for sock, protocol, shared in sockets]

    def _connection_factory(self, protocol: str):
        """What turns an accepted socket of a listener into a connection: factory(sock, peer)."""
        if protocol == "echo":
            connection = partial(EchoConnection, self)
        elif protocol == "status":  # status_bind: the status routes, whatever the app is
            connection = partial(HttpConnection, self, handler=self.status_handler)
        else:
            connection = partial(ProxyProtocolConnection if self.config.proxy_protocol else HttpConnection, self)
        if protocol == "https":
            from .tls_transport import TlsTransport

            context = self.tls_context
            transport = partial(TlsTransport, context=context)
        else:
            transport = Transport
        reactor, settings, closed = self.reactor, self.transport_settings, self.connection_closed

        def factory(sock, peer):
            return connection(transport(reactor, sock, peer, settings, closed))

        return factory

    # -- the loop -------------------------------------------------------------------------------

    def run(self) -> int:
        """Serve until stopped; returns the process exit code."""
        self._install_signals()
        for listener in self.listeners:
            listener.start()
        self.reactor.call_later(self.tick_interval, self._tick)
        if self.board is not None:
            self.board.update(self)
        self.reactor.run()
        if self.board is not None:
            # The last figures, for the master to add to its retired totals: what was served
            # since the last heartbeat would be lost from /status and /metrics otherwise.
            self.board.update(self)
        if self.access_log is not None:
            self.access_log.close()
        return 0

    @property
    def tick_interval(self) -> float:
        """Once a second, or often enough that a small `timeout` sees several heartbeats."""
        timeout = self.config.timeout
        return min(1.0, timeout / 4) if timeout else 1.0

    def _tick(self) -> None:
        """The Date header, the heartbeat, and a check that the master lives."""
        self._refresh_date()
        if self.board is not None:
            self.board.update(self)
        if os.getppid() != self.parent:
            log.warning("worker %d: master is gone, exiting", os.getpid())
            self.stop_now("master gone")
            return
        self.reactor.call_later(self.tick_interval, self._tick)

    def _refresh_date(self) -> None:
        self.common_headers = http.common_headers(http.http_date(time.time()))

    # -- signals --------------------------------------------------------------------------------

    def _install_signals(self) -> None:
        read_fd, write_fd = os.pipe2(os.O_NONBLOCK | os.O_CLOEXEC)
        self._signal_pipe = (read_fd, write_fd)
        # The wake-up fd first: a QUIT caught by _record_only before it was set would be lost.
        signal.set_wakeup_fd(write_fd, warn_on_full_buffer=False)
        for sig in WORKER_SIGNALS:
            signal.signal(sig, _record_only)
        signal.signal(signal.SIGCHLD, signal.SIG_DFL)
        signal.signal(signal.SIGPIPE, signal.SIG_IGN)
        if self.board is not None:
            signal.signal(signal.SIGABRT, self._on_abort)
        self.reactor.register(read_fd, EPOLLIN, self._on_signal_pipe)

    def _on_abort(self, signum, frame) -> None:
        """SIGABRT from the master: this worker missed its heartbeats and is about to be killed.
        The Reactor is stuck, so this runs here, not in the loop: show where every thread is,
        answer 500 to every request whose response has not begun (not an empty reply, as
        gunicorn's sync worker does), then die of the signal as the master expects."""
        faulthandler.dump_traceback(file=sys.stderr, all_threads=True)
        answered = 0
        for conn in list(self.connections.values()):
            if getattr(conn, "exchange", None) is not None and not conn.status and not conn.closed:
                conn.reject(500)
                conn.transport.flush()
                answered += 1
        log.error("worker %d: aborted after missing heartbeats; %d request(s) in flight answered "
                  "with 500", os.getpid(), answered)
        signal.signal(signal.SIGABRT, signal.SIG_DFL)
        os.kill(os.getpid(), signal.SIGABRT)

    def _on_signal_pipe(self, mask: int) -> None:
        try:
            data = os.read(self._signal_pipe[0], 512)
        except BlockingIOError:
            return
        for signum in data:
            if signum == signal.SIGQUIT:
                self.stop_gracefully()
            elif signum == signal.SIGTERM:
                # Graceful, as the master's TERM is (systemd may send it to every process of
                # the service); a second one while draining stops at once.
                self.stop_now("second TERM") if self.stopping else self.stop_gracefully()
            elif signum == signal.SIGINT:
                self.stop_now()
            elif signum == signal.SIGUSR1:
                reopen_error_log()
                if self.access_log is not None:
                    self.access_log.reopen()
            # HUP, USR2, WINCH, TTIN, TTOU are the master's; a worker ignores them.

    # -- connections ----------------------------------------------------------------------------

    def adopt(self, sock, peer, protocol: str = "http"):
        """Serve an already connected socket as a listener of that protocol would (the unit
        tests hand socketpairs over this way)."""
        sock.setblocking(False)
        conn = self._connection_factory(protocol)(sock, peer)
        self.add_connection(conn)
        return conn

    def add_connection(self, conn) -> None:
        self.connections[conn.fd] = conn

    def connection_closed(self, conn) -> None:
        self.connections.pop(conn.fd, None)
        if self.accepting_paused and not self.stopping and not self.at_capacity():
            self.resume_accepting()
        if self.stopping and not self.connections:
            self.reactor.stop()

    def at_capacity(self) -> bool:
        return len(self.connections) >= self.config.worker_connections

    def pause_accepting(self, seconds: float | None, error: OSError | None = None) -> None:
        """Stop accepting: until a connection closes (seconds None) or for a while (EMFILE)."""
        now = self.reactor.now
        if error is not None and now - self.emfile_logged_at >= EMFILE_LOG_INTERVAL:
            self.emfile_logged_at = now  # once per episode and minute, not at every attempt
            log.error("worker %d: accept failed (%s); pausing accepts while descriptors are short",
                      os.getpid(), error.strerror)
        self.accepting_paused = True
        for listener in self.listeners:
            listener.pause()
        if seconds is not None:
            self.reactor.call_later(seconds, self.resume_accepting)

    def resume_accepting(self) -> None:
        if self.stopping or not self.accepting_paused:
            return
        self.accepting_paused = False
        for listener in self.listeners:
            listener.start()

    def response_done(self, conn) -> None:
        """A response is complete (or cut short): count it, and log it when there is a log."""
        duration = _monotonic() - conn.head_started
        self.count(conn.status, conn.sent_body, duration)
        if self.access_log is not None:
            request = conn.request
            if request is not None:
                self.access_log.write(conn.client_and_scheme(request)[0], request, conn.status, conn.sent_body,
                                      duration, conn.response_headers)
            else:  # refused before it was a request: its first line as it came
                self.access_log.write(conn.client[0], None, conn.status, conn.sent_body, duration,
                                      request_line=conn.refused)
            conn.response_headers = None  # not the next response's (a refused request has none)

    def connection_states(self) -> tuple[int, int, int]:
        """(reading, writing, waiting) connections, as nginx's stub_status counts them."""
        reading = writing = waiting = 0
        for conn in self.connections.values():
            state = conn.activity()
            if state == "writing":
                writing += 1
            elif state == "waiting":
                waiting += 1
            else:
                reading += 1
        return reading, writing, waiting

    def queue_figures(self) -> tuple[int, int]:
        """(requests waiting in the worker queues, handler threads busy)."""
        queues = self.queues
        if queues is None:
            return 0, 0
        busy = min(queues.in_flight, queues.threads)
        return queues.in_flight - busy + len(queues.waiting), busy

    # -- stopping -------------------------------------------------------------------------------

    def stop_gracefully(self) -> None:
        """QUIT: accept nothing more, finish in-flight requests, close idle connections."""
        if self.stopping:
            return
        self.stopping = True
        # At the server's stop the sockets close (each worker takes what is queued first); when
        # only this worker goes (a reload, a recycle, TTOU), the next one serves them: pause.
        closing = self.board is None or self.board.server_stopping()
        for listener in self.listeners:
            listener.close() if closing else listener.pause()
        if self.board is not None:  # master: the scoreboard and the title show "shutting down"
            self.board.update(self)
        self._close_idle()
        if not self.connections:
            self.reactor.stop()
            return
        grace = self.config.graceful_timeout
        self.reactor.call_later(grace, lambda: self.stop_now(f"graceful_timeout ({grace:g} s) is over"))

    def _close_idle(self) -> None:
        """Close idle connections, but first serve a request already waiting in the kernel;
        one accepted or answered less than IDLE_GRACE ago may have its request in transit:
        it is looked at again shortly (it gets Connection: close if a request comes)."""
        again = False
        for conn in list(self.connections.values()):
            if not conn.idle():
                continue
            conn.transport.on_readable()
            if conn.closed or not conn.idle():
                continue
            if self.reactor.now - getattr(conn, "head_started", 0.0) < IDLE_GRACE:
                again = True
            else:
                conn.abort()
        if again:
            self.reactor.call_later(IDLE_GRACE / 5, self._close_idle)

    def recycle(self) -> None:
        """max_requests reached: leave gracefully so the master starts a fresh worker."""
        log.info("worker %d: %d requests served, recycling", os.getpid(), self.requests)
        self.reactor.call_later(0, self.stop_gracefully)

    def stop_now(self, why: str = "fast stop") -> None:
        """Close every connection and leave; requests cut short are counted in the log, since
        their clients got no (or half a) response."""
        busy = sum(1 for conn in self.connections.values() if not conn.idle())
        if busy:
            log.warning("worker %d: %s: %d connection%s with a request in flight closed", os.getpid(), why,
                        busy, "" if busy == 1 else "s")
        for conn in list(self.connections.values()):
            conn.abort()
        self.reactor.stop()


def _record_only(signum, frame) -> None:
    """The wake-up fd carries the signal to the loop; the handler itself must do nothing."""

