"""The Reactor: one epoll loop per worker process, with a timer heap and a cross-thread wake-up.

`select.epoll` is used directly: each file descriptor has one handler, called with the epoll
event mask. Timers live in a heap of (deadline, sequence, timer); cancelling only marks the
timer, and the loop drops it when it reaches the top. Other threads hand work to the loop with
`call_soon_threadsafe`, which writes to an eventfd the loop watches.

An exception from a handler, a timer or a callback does not leave the loop when the object it
belongs to can recover: a connection has `crashed()`, which answers 500 (or cuts the response
short) and closes it, so one bad request never takes down the worker and the connections it
holds. Anything else (a listener, the worker's own timers) still ends the loop: that is an
error of the worker, not of one client. Since Python 3.11 a `try` costs nothing until it catches.
"""

from __future__ import annotations

import heapq
import logging
import os
import select
from collections import deque
from time import monotonic

EPOLLIN = select.EPOLLIN
EPOLLOUT = select.EPOLLOUT
EPOLLEXCLUSIVE = getattr(select, "EPOLLEXCLUSIVE", 1 << 28)

log = logging.getLogger("prefork")


class Timer:
    """A callback due at a moment of the monotonic clock; `cancel()` makes it never run."""

    __slots__ = ("when", "callback", "cancelled")

    def __init__(self, when: float, callback):
        self.when = when
        self.callback = callback
        self.cancelled = False

    def cancel(self) -> None:
        self.cancelled = True
        self.callback = None  # what it would have called can be freed now


class Deadline:
    """One moving deadline (a connection's timeout) kept in the heap with at most one live entry.

    `set()` is called on every request, so it must be cheap: moving a deadline later only
    stores the new moment; the heap entry that fires early re-arms itself for the rest. Only
    moving it earlier pushes a new entry.
    """

    __slots__ = ("reactor", "callback", "when", "armed_at", "timer")

    def __init__(self, reactor: "Reactor", callback):
        self.reactor = reactor
        self.callback = callback
        self.when = 0.0  # 0: no deadline
        self.armed_at = 0.0  # moment of the live heap entry, 0: none
        self.timer = None  # the latest heap entry, cancelled by stop()

    def set(self, when: float) -> None:
        self.when = when
        if when and (not self.armed_at or when < self.armed_at):
            self.armed_at = when
            self.timer = self.reactor.call_at(when, self._fire)

    def clear(self) -> None:
        self.when = 0.0

    def _fire(self) -> None:
        if self.armed_at == 0.0:
            return
        when = self.when
        if when == 0.0:
            self.armed_at = 0.0
        elif when <= self.reactor.now:
            self.armed_at = 0.0
            self.when = 0.0
            self.callback()
        elif when != self.armed_at:
            self.armed_at = when
            self.timer = self.reactor.call_at(when, self._fire)

    def stop(self) -> None:
        """Forget the deadline for good (the connection is closed).

        The heap entry stays until its time comes; cancelling it and dropping its callback
        lets the closed connection go now, not up to a timeout later."""
        self.when = 0.0
        self.armed_at = 0.0
        self.callback = None  # earlier heap entries may remain; they must not hold the connection
        if self.timer is not None:
            self.timer.cancel()
            self.timer = None


class Reactor:
    """An epoll event loop: handlers per descriptor, timers, and a thread-safe wake-up."""

    def __init__(self, clock=monotonic):
        self.clock = clock  # the monotonic clock; tests give a fake one
        self.epoll = select.epoll()
        self.handlers: dict[int, object] = {}
        self.timers: list = []
        self.sequence = 0  # tie-breaker so the heap never compares Timer objects
        self.now = clock()
        self.running = False
        self.pending: deque = deque()  # callbacks handed over by other threads
        self.wakeup_fd = os.eventfd(0, os.EFD_NONBLOCK | os.EFD_CLOEXEC)
        self.register(self.wakeup_fd, EPOLLIN, self._on_wakeup)

    # -- descriptors ----------------------------------------------------------------------------

    def register(self, fd: int, events: int, handler) -> None:
        """Watch fd for events; handler(events) is called on the loop thread."""
        self.epoll.register(fd, events)
        self.handlers[fd] = handler

    def modify(self, fd: int, events: int) -> None:
        self.epoll.modify(fd, events)

    def unregister(self, fd: int) -> None:
        self.handlers.pop(fd, None)
        try:
            self.epoll.unregister(fd)
        except (OSError, ValueError):
            pass  # already closed: the kernel removed it with the descriptor

    # -- timers ---------------------------------------------------------------------------------

    def call_at(self, when: float, callback) -> Timer:
        timer = Timer(when, callback)
        self.sequence += 1
        heapq.heappush(self.timers, (when, self.sequence, timer))
        return timer

    def call_later(self, delay: float, callback) -> Timer:
        """Run callback after delay seconds; returns a Timer that can be cancelled."""
        return self.call_at(self.now + delay, callback)

    def deadline(self, callback) -> Deadline:
        return Deadline(self, callback)

    # -- other threads --------------------------------------------------------------------------

    def call_soon_threadsafe(self, callback, *args) -> None:
        """From any thread: run callback(*args) on the loop thread soon."""
        self.pending.append((callback, args))
        os.eventfd_write(self.wakeup_fd, 1)

    def wake(self) -> None:
        os.eventfd_write(self.wakeup_fd, 1)

    def _on_wakeup(self, events: int) -> None:
        try:
            os.eventfd_read(self.wakeup_fd)
        except BlockingIOError:
            pass
        pending = self.pending
        while pending:
            callback, args = pending.popleft()
            try:
                callback(*args)
            except Exception as exc:
                self.contain(callback, exc)

    # -- the loop -------------------------------------------------------------------------------

    def run(self) -> None:
        """Dispatch events and timers until stop()."""
        self.running = True
        poll = self.epoll.poll
        clock = self.clock
        handlers = self.handlers
        timers = self.timers
        heappop = heapq.heappop
        while self.running:
            if timers:
                timeout = timers[0][0] - clock()
                timeout = 0 if timeout < 0 else timeout
            else:
                timeout = -1
            events = poll(timeout)
            self.now = now = clock()
            for fd, mask in events:
                try:
                    handler = handlers[fd]
                except KeyError:
                    continue  # closed by an earlier handler in this batch
                try:
                    handler(mask)
                except Exception as exc:
                    self.contain(handler, exc)
            while timers and timers[0][0] <= now:
                timer = heappop(timers)[2]
                if not timer.cancelled:
                    try:
                        timer.callback()
                    except Exception as exc:
                        self.contain(timer.callback, exc)

    @staticmethod
    def contain(callback, exc: Exception) -> None:
        """Give an exception from callback to the connection it belongs to, or re-raise it."""
        owner = getattr(callback, "__self__", None)
        if isinstance(owner, Deadline):  # a connection's timeout
            owner = getattr(owner.callback, "__self__", None)
        crashed = getattr(owner, "crashed", None)
        if crashed is None:
            raise exc
        log.error("unexpected error on the connection from %s; closing it", getattr(owner, "peer", "?"),
                  exc_info=exc)
        try:
            crashed()
        except Exception:
            log.exception("closing the connection failed too")
            owner.abort()

    def stop(self) -> None:
        self.running = False
        self.wake()
