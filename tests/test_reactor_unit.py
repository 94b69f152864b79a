"""The Reactor's timers and Deadline, in-process: timers fire in order and only once, a
cancelled one never; a Deadline moved later fires once at the latest moment, moved earlier at
the earlier one, cleared never; call_soon_threadsafe wakes a loop blocked in epoll."""

from __future__ import annotations

import threading
import time

from prefork.workers.reactor import Reactor


def run_for(reactor: Reactor, seconds: float) -> None:
    reactor.call_later(seconds, reactor.stop)
    reactor.run()


def test_timers_fire_in_order_once_and_a_cancelled_one_never():
    reactor = Reactor()
    fired = []
    reactor.call_later(0.03, lambda: fired.append("c"))
    reactor.call_later(0.01, lambda: fired.append("a"))
    reactor.call_later(0.02, lambda: fired.append("b"))
    reactor.call_later(0.015, lambda: fired.append("never")).cancel()
    run_for(reactor, 0.08)
    assert fired == ["a", "b", "c"]


def test_a_deadline_moved_later_fires_once_at_the_latest_moment():
    reactor = Reactor()
    fired = []
    deadline = reactor.deadline(lambda: fired.append(reactor.now))
    start = reactor.now = time.monotonic()
    deadline.set(start + 0.02)
    reactor.call_later(0.01, lambda: deadline.set(reactor.now + 0.04))  # moved later: ~0.05
    run_for(reactor, 0.12)
    assert len(fired) == 1
    assert fired[0] - start >= 0.045


def test_a_deadline_moved_earlier_fires_at_the_earlier_moment_and_a_cleared_one_never():
    reactor = Reactor()
    fired = []
    early = reactor.deadline(lambda: fired.append("early"))
    cleared = reactor.deadline(lambda: fired.append("cleared"))
    now = time.monotonic()
    early.set(now + 1.0)
    early.set(now + 0.02)
    cleared.set(now + 0.02)
    cleared.clear()
    run_for(reactor, 0.1)
    assert fired == ["early"]


def test_call_soon_threadsafe_wakes_a_loop_blocked_in_epoll():
    reactor = Reactor()
    got = []

    def from_thread():
        reactor.call_soon_threadsafe(lambda value: (got.append(value), reactor.stop()), 42)

    started = time.monotonic()
    threading.Timer(0.05, from_thread).start()
    reactor.call_later(5, reactor.stop)  # the bound, were the wake-up lost
    reactor.run()
    assert got == [42] and time.monotonic() - started < 1
