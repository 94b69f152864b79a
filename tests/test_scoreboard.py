"""The scoreboard under concurrent use: a reader in one process never sees a torn or cleared
cell while a writer in another updates it, and an idle worker is never taken for a hung one."""

from __future__ import annotations

import os
import signal
import time

import pytest

from prefork.master.scoreboard import Scoreboard
from prefork.workers.stats import ResponseStats
from support.paths import APPS
from support.processes import wait_workers


class FakeWorker:
    """What Cell.update reads of a Worker: every counter is the update's number, so a torn
    read shows as counters that disagree."""

    def __init__(self):
        self.slot = 3
        self.generation = 7
        self.accepted = 0
        self.requests = 0
        self.connections = {}
        self.stopping = False
        self.started = time.monotonic()
        self.stats = ResponseStats()

    def queue_figures(self):
        return 0, 0

    def connection_states(self):
        return 0, 0, 0


def test_a_reader_never_sees_a_torn_or_cleared_cell_while_another_process_writes():
    board = Scoreboard(4)
    cell = board.allocate(3, 7)
    worker = FakeWorker()
    pid = os.fork()
    if pid == 0:  # the writer: updates as fast as it can for 3 s
        try:
            deadline = time.monotonic() + 3.0
            while time.monotonic() < deadline:
                worker.accepted += 1
                worker.requests = worker.accepted
                cell.update(worker)
        finally:
            os._exit(0)
    reads = bad = 0
    started = False  # the writer's first update was seen: from then on every read is whole
    try:
        while os.waitpid(pid, os.WNOHANG) == (0, 0):
            for _ in range(1000):
                heartbeat = cell.heartbeat
                state = board.read(cell.index)
                started = started or bool(heartbeat)
                if not started:
                    continue
                reads += 1
                if (not heartbeat or state is None or not state["heartbeat"]
                        or state["accepted"] != state["requests"] or state["slot"] != 3
                        or state["generation"] != 7 or state["pid"] != pid):
                    bad += 1
    finally:
        try:
            os.kill(pid, signal.SIGKILL)
            os.waitpid(pid, 0)
        except (ProcessLookupError, ChildProcessError):
            pass
    assert reads > 10_000
    assert bad == 0, f"{bad} torn reads in {reads}"
    assert board.read(cell.index)["accepted"] > 1000  # the writer really wrote


def test_a_cell_whose_writer_died_in_mid_update_reads_as_unknown_then_is_reusable():
    board = Scoreboard(2)
    cell = board.allocate(0, 1)
    board.words[cell.offset // 8] = 1  # odd: in mid-update
    assert cell.heartbeat is None and board.read(cell.index) is None
    board.release(cell)
    again = board.allocate(0, 2)
    assert again.heartbeat == 0.0 and board.read(again.index)["generation"] == 2


@pytest.mark.slow
@pytest.mark.timeout(40)
def test_idle_workers_are_never_killed_as_hung(start_server):
    """Several times `timeout` of idleness, on the threads path with an APP, as users run it."""
    server = start_server("-w", "2", "-b", "127.0.0.1:0", "--timeout", "1", "--dispatch", "threads",
                          "--chdir", APPS, "plain:app")
    before = set(wait_workers(server.proc.pid, 2))
    deadline = time.monotonic() + 6.0
    while time.monotonic() < deadline:  # idle for 6 timeouts, checking all along
        assert set(wait_workers(server.proc.pid, 2)) == before
        assert "timed out" not in server.log()
        time.sleep(0.2)
    assert "timed out" not in server.log()
