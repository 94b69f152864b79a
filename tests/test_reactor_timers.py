"""The Reactor's timers and Deadline on a fake clock, in-process: timers fire in the order of their
moments (equal moments in the order they were set), at their moment and not before, once; a
cancelled one never. A Deadline fires once at its last moment, moved later or earlier, never when
cleared or stopped, and a stopped one lets go of its owner; hundreds of them, moved at random,
fire exactly as a model of them says.

The loop is run one turn at a time: turn() moves the clock, queues reactor.stop from "another
thread" (its eventfd is then readable, so epoll returns at once whatever the timers say) and runs
the loop, whose one turn reads the clock and fires every timer due by then. No sleep, no real
time: a fake clock injected as Reactor(clock=...). tests/test_reactor_unit.py keeps the tests
on the real clock (epoll's timeout and the cross-thread wake-up).
"""

from __future__ import annotations

import gc
import os
import random
import weakref

import pytest

from prefork.workers.reactor import Reactor

START = 1000.0  # the fake clock's first reading; steps are multiples of 1/4, exact in binary

pytestmark = pytest.mark.timeout(20)


class FakeClock:
    """A monotonic clock that moves only when the test says so."""

    def __init__(self):
        self.now = START

    def __call__(self) -> float:
        return self.now


@pytest.fixture
def clock():
    return FakeClock()


@pytest.fixture
def reactor(clock):
    reactor = Reactor(clock=clock)
    yield reactor
    reactor.epoll.close()
    os.close(reactor.wakeup_fd)


def turn(reactor: Reactor, clock: FakeClock, at: float) -> None:
    """Move the clock to START + at and run one turn of the loop: what is due by then fires."""
    clock.now = START + at
    reactor.call_soon_threadsafe(reactor.stop)
    reactor.run()
    assert reactor.now == clock.now


# -- timers -----------------------------------------------------------------------------------


def test_timers_fire_in_the_order_of_their_moments_and_equal_ones_in_the_order_they_were_set(reactor, clock):
    fired = []
    for delay, name in ((3, "c"), (1, "a"), (2, "b1"), (2, "b2"), (2.5, "b3")):
        reactor.call_later(delay, lambda name=name: fired.append(name))
    turn(reactor, clock, 3)
    assert fired == ["a", "b1", "b2", "b3", "c"]
    assert reactor.timers == []


def test_a_timer_fires_at_its_moment_not_before_and_only_once(reactor, clock):
    fired = []
    reactor.call_later(1.5, lambda: fired.append(reactor.now))
    turn(reactor, clock, 1.25)
    assert fired == []
    turn(reactor, clock, 1.5)
    assert fired == [START + 1.5]
    turn(reactor, clock, 10)
    assert fired == [START + 1.5]


def test_call_later_counts_from_the_moment_the_loop_last_read_the_clock(reactor, clock):
    """reactor.now is read once a turn (cheap); a delay set between turns counts from it."""
    fired = []
    clock.now = START + 5  # time passes, the loop has not looked yet
    timer = reactor.call_later(1, lambda: fired.append("due"))
    assert timer.when == START + 1
    turn(reactor, clock, 5)
    assert fired == ["due"]


def test_a_timer_set_during_a_turn_fires_at_a_later_turn(reactor, clock):
    fired = []
    reactor.call_later(1, lambda: reactor.call_later(1, lambda: fired.append(reactor.now)))
    turn(reactor, clock, 1)
    assert fired == []
    turn(reactor, clock, 1.75)
    assert fired == []
    turn(reactor, clock, 2)
    assert fired == [START + 2]


def test_a_cancelled_timer_never_fires_and_lets_go_of_its_callback(reactor, clock):
    fired = []
    reactor.call_later(1, lambda: fired.append("kept"))
    cancelled = reactor.call_later(1, lambda: fired.append("cancelled"))
    cancelled.cancel()
    assert cancelled.callback is None
    turn(reactor, clock, 5)
    assert fired == ["kept"]
    assert reactor.timers == []  # dropped when its moment came


def test_a_timer_cancelled_by_an_earlier_one_of_the_same_turn_does_not_fire(reactor, clock):
    fired = []
    later = None
    reactor.call_later(1, lambda: (fired.append("first"), later.cancel()))
    later = reactor.call_later(2, lambda: fired.append("second"))
    turn(reactor, clock, 2)
    assert fired == ["first"]


def test_cancelling_a_timer_that_fired_changes_nothing(reactor, clock):
    fired = []
    timer = reactor.call_later(1, lambda: fired.append("once"))
    turn(reactor, clock, 1)
    timer.cancel()
    turn(reactor, clock, 2)
    assert fired == ["once"]


# -- Deadline ---------------------------------------------------------------------------------


def recording_deadline(reactor: Reactor):
    """A Deadline that records the loop's moment each time it fires: (deadline, those moments)."""
    fired = []
    return reactor.deadline(lambda: fired.append(reactor.now)), fired


def test_a_deadline_fires_once_at_its_moment(reactor, clock):
    deadline, fired = recording_deadline(reactor)
    deadline.set(START + 2)
    turn(reactor, clock, 1.75)
    assert fired == []
    turn(reactor, clock, 2)
    assert fired == [START + 2]
    assert deadline.when == 0.0  # none left
    turn(reactor, clock, 10)
    assert fired == [START + 2]


def test_a_deadline_moved_later_keeps_one_heap_entry_and_fires_once_at_the_last_moment(reactor, clock):
    """set() runs on every request: moving the deadline later only stores the moment."""
    deadline, fired = recording_deadline(reactor)
    deadline.set(START + 1)
    for step in range(1, 1001):
        deadline.set(START + 1 + step / 4)
    assert len(reactor.timers) == 1
    turn(reactor, clock, 1)  # the entry comes due, finds the deadline later and re-arms for it
    assert fired == [] and len(reactor.timers) == 1
    turn(reactor, clock, 250.75)
    assert fired == []
    turn(reactor, clock, 251)
    assert fired == [START + 251]
    turn(reactor, clock, 300)
    assert fired == [START + 251] and reactor.timers == []


def test_a_deadline_moved_earlier_fires_at_the_earlier_moment_and_its_old_entry_stays_quiet(reactor, clock):
    deadline, fired = recording_deadline(reactor)
    deadline.set(START + 5)
    deadline.set(START + 2)
    assert len(reactor.timers) == 2
    turn(reactor, clock, 2)
    assert fired == [START + 2]
    turn(reactor, clock, 5)
    assert fired == [START + 2] and reactor.timers == []


def test_a_deadline_moved_earlier_then_later_fires_at_the_last_moment_only(reactor, clock):
    deadline, fired = recording_deadline(reactor)
    deadline.set(START + 5)
    deadline.set(START + 2)
    deadline.set(START + 4)
    for at in (2, 3, 4, 5, 6):
        turn(reactor, clock, at)
    assert fired == [START + 4]


def test_stale_entries_due_in_the_same_turn_fire_a_deadline_once(reactor, clock):
    deadline, fired = recording_deadline(reactor)
    deadline.set(START + 3)
    deadline.set(START + 1)
    deadline.set(START + 2)
    turn(reactor, clock, 10)  # all its entries come due in one turn
    assert fired == [START + 10]


def test_a_cleared_deadline_never_fires_and_can_be_set_again(reactor, clock):
    deadline, fired = recording_deadline(reactor)
    deadline.set(START + 1)
    deadline.clear()
    turn(reactor, clock, 5)
    assert fired == [] and reactor.timers == []
    deadline.set(START + 6)  # after its entry was dropped
    deadline.clear()
    deadline.set(START + 7)  # while its entry for 6 is still there
    turn(reactor, clock, 6)
    assert fired == []
    turn(reactor, clock, 7)
    assert fired == [START + 7]


def test_setting_no_moment_is_clearing(reactor, clock):
    deadline, fired = recording_deadline(reactor)
    deadline.set(START + 1)
    deadline.set(0.0)
    turn(reactor, clock, 5)
    assert fired == []


def test_a_stopped_deadline_never_fires_and_lets_its_owner_go(reactor, clock):
    class Connection:
        def on_timeout(self):
            fired.append("timeout")

    fired = []
    owner = Connection()
    deadline = reactor.deadline(owner.on_timeout)
    deadline.set(START + 5)
    deadline.set(START + 2)  # two heap entries: the stop cancels the latest, the other stays
    deadline.stop()
    gone = weakref.ref(owner)
    del owner
    gc.collect()
    assert gone() is None, "a heap entry still holds the closed connection"
    turn(reactor, clock, 10)
    assert fired == [] and reactor.timers == []


def test_a_deadline_set_again_by_its_own_callback_fires_again_once(reactor, clock):
    """A connection that answers its timeout and goes on waiting arms the deadline again."""
    fired = []

    def on_timeout():
        fired.append(reactor.now)
        if len(fired) < 3:
            deadline.set(reactor.now + 2)

    deadline = reactor.deadline(on_timeout)
    deadline.set(START + 1)
    for at in range(1, 11):
        turn(reactor, clock, at)
    assert fired == [START + 1, START + 3, START + 5]


def test_many_deadlines_moved_at_random_fire_exactly_as_a_model_says(reactor, clock):
    """300 deadlines, 80 turns; before each turn some are moved later or earlier, cleared or
    stopped. Each must fire at the first turn at or after its last moment, once, and no other."""
    rng = random.Random(20261203)
    fired = []
    deadlines = [reactor.deadline(lambda i=i: fired.append(i)) for i in range(300)]
    when = [0.0] * 300  # the model: the moment each is due, 0 for none
    stopped = set()
    now = 0.0
    for _ in range(80):
        for i in rng.sample(range(300), 60):
            if i in stopped:
                continue
            action = rng.random()
            if action < 0.7:
                when[i] = START + now + rng.randrange(-2, 40) / 4  # earlier, later, even past
                deadlines[i].set(when[i])
            elif action < 0.95:
                when[i] = 0.0
                deadlines[i].clear()
            else:
                when[i] = 0.0
                stopped.add(i)
                deadlines[i].stop()
        now += rng.choice((0.25, 0.5, 1.0, 3.0))
        due = {i for i in range(300) if when[i] and when[i] <= START + now}
        fired.clear()
        turn(reactor, clock, now)
        assert sorted(fired) == sorted(due), "fired other than those due, or one of them twice"
        for i in due:
            when[i] = 0.0
    assert any(w for w in when) and len(stopped) > 5  # the run exercised every kind of move
