"""The worker queues: the synchronous emulation of a Proactor, for handlers that may block.

The Reactor reads a whole request and `submit()`s a job for it; a handler thread sleeping on
the request queue takes the job and runs it (the WSGI app, or a built-in route that blocks);
what the job produces comes back as completions, functions the Reactor runs for it (the
exchange's `respond`, `start`, `send`, `end`), which do nothing once that exchange is over. The Reactor never waits on a thread: completions are
appended to a deque and one wake-up (`reactor.call_soon_threadsafe`, an eventfd write) is
scheduled for a whole batch of them.

Bounds: at most `limit` requests are queued or running. Beyond it a request waits here, and its
connection, which -- one request at a time per connection -- parses nothing more, so the
Reactor stops reading new requests from those sockets instead of growing the queue.

Streams flow from a thread to the Reactor with backpressure (`StreamCredit`): a thread may post
up to `high_water` bytes without waiting; then it waits until the Reactor has queued them and
the connection's output is back under its high-water mark.
"""

from __future__ import annotations

import logging
import threading
from collections import deque
from queue import SimpleQueue

log = logging.getLogger("prefork")

# Requests queued or running before new ones wait in their connections. Measured: a queue of
# only 8 per thread cut a 2-thread worker's throughput by a third (smaller batches per wake-up);
# memory is the same either way (a waiting request is held by its connection).
QUEUE_MIN = 128
QUEUE_PER_THREAD = 16


class WorkerQueues:
    """A request queue, `threads` handler threads, and a completion queue drained on the Reactor."""

    def __init__(self, worker, threads: int):
        self.worker = worker
        self.reactor = worker.reactor
        self.threads = threads
        self.limit = max(QUEUE_MIN, threads * QUEUE_PER_THREAD)
        self.in_flight = 0  # jobs queued or running; changed on the Reactor thread only
        self.requests: SimpleQueue = SimpleQueue()
        self.waiting: deque = deque()  # (exchange, job, args) held back while the queue is full
        self.completions: deque = deque()  # (exchange, fn, args) for the Reactor, in the order posted
        self.wake_scheduled = False
        self.started = False
        worker.queues = self  # its depth and busy threads go to the status page

    # -- on the Reactor thread ------------------------------------------------------------------

    def submit(self, exchange, job, *args) -> None:
        """Run job(*args) on a handler thread; it returns the final completion (fn, args) or None.

        The final completion runs on the Reactor, unless the job failed (then the exchange
        fails: a 500 if nothing was sent yet). When the queue is full the request waits.
        """
        if self.in_flight >= self.limit:
            self.waiting.append((exchange, job, args))
            return
        if not self.started:
            self._start()
        self.in_flight += 1
        self.requests.put((exchange, job, args))

    def _start(self) -> None:
        self.started = True
        for number in range(self.threads):
            thread = threading.Thread(target=self._run, name=f"prefork-handler-{number}", daemon=True)
            thread.start()

    def _drain(self) -> None:
        # Clear the flag before draining: a completion posted from now on schedules a new wake-up.
        self.wake_scheduled = False
        completions = self.completions
        popleft = completions.popleft
        while completions:
            exchange, fn, args = popleft()
            try:
                fn(*args)
            except Exception as exc:
                # As the Reactor does for its handlers: this connection fails, the others go on.
                log.error("unexpected error while applying a completion for %s; closing it", exchange.peer,
                          exc_info=exc)
                conn = exchange.conn
                if not exchange.closed:  # an exchange that is over must not break the next one
                    try:
                        conn.crashed()
                    except Exception:
                        conn.abort()

    def _job_done(self, exchange, final) -> None:
        self.in_flight -= 1
        try:
            if final is not None:
                fn, args = final
                fn(*args)
            else:
                exchange.fail()  # does nothing if the response was given, or the connection closed
        finally:
            # A slot is free: the oldest request held back goes to the queue.
            waiting = self.waiting
            while waiting and self.in_flight < self.limit:
                exchange, job, args = waiting.popleft()
                if not exchange.closed:
                    self.submit(exchange, job, *args)

    # -- on handler threads ---------------------------------------------------------------------

    def post(self, exchange, fn, *args) -> None:
        """From a handler thread: run fn(*args) for the exchange on the Reactor thread, after
        what was posted before."""
        self.completions.append((exchange, fn, args))
        if not self.wake_scheduled:
            self.wake_scheduled = True
            self.reactor.call_soon_threadsafe(self._drain)

    def _run(self) -> None:
        get = self.requests.get
        post = self.post
        while True:
            exchange, job, args = get()
            try:
                final = job(*args)
            except BaseException:
                log.exception("error in a handler thread")
                final = None
            post(exchange, self._job_done, exchange, final)


class StreamCredit:
    """Backpressure for a body streamed from a handler thread: at most `window` bytes in flight.

    The thread calls `spend(n)` before posting n bytes; when the window is used up it posts with
    an acknowledgement request and waits in `wait()`. The Reactor calls `acknowledge(exchange)` after
    queueing those bytes: at once if the connection's output is under its high-water mark, else
    when it drains. `cancel()` (the connection closed) releases the thread for good.
    """

    __slots__ = ("window", "left", "ready", "cancelled")

    def __init__(self, window: int):
        self.window = window
        self.left = window
        self.ready = threading.Event()
        self.cancelled = False

    def spend(self, size: int) -> bool:
        """On the thread: True when this send must ask for an acknowledgement and then wait()."""
        self.left -= size
        if self.left > 0:
            return False
        self.left = self.window
        self.ready.clear()
        return True

    def wait(self) -> None:
        self.ready.wait()

    def acknowledge(self, exchange) -> None:
        """On the Reactor, after queueing the bytes: release the thread now or when drained."""
        if exchange.writable:
            self.ready.set()
        else:
            exchange.when_writable(self.ready.set)

    def cancel(self) -> None:
        self.cancelled = True
        self.ready.set()

