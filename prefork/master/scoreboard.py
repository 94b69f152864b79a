"""The scoreboard: what every worker reports, in anonymous shared memory.

The master maps the region before forking, so every worker shares it without a file or a
disk (gunicorn's file-based heartbeat stalled on slow disks). It has one fixed-size cell per
worker process; a cell is given to a worker when it is spawned and freed when it is reaped,
so during a reload the old and the new generation each have their own cells. A worker
writes its cell once a second (the heartbeat) and when it starts shutting down; the master
reads the heartbeats to find hung workers, and a status page reads the counters.

A cell is guarded by a sequence counter (a seqlock), so a reader never sees a torn or
half-cleared cell: `struct.pack_into` writes the fields one after the other, and a reader in
another process could otherwise read a heartbeat of 0.0 in the middle of an update (which the
master once took for "never beat" and killed a healthy worker). The writer makes the counter
odd, writes the fields, then makes it even again; a reader takes the fields only if it saw the
same even counter before and after reading them, and tries again otherwise. There is one writer
per cell at a time (the worker, or the master before the fork and after the reap), so the
writer needs no lock. The counter is stored through a memoryview of 8-byte words: one aligned
store, which x86 and ARM keep whole (`struct.pack_into` would not do: it zeroes its bytes
before it writes them, so a reader could see a passing 0 as an even counter).
"""

from __future__ import annotations

import mmap
import os
import struct
import time

SEQUENCE = struct.Struct("=Q")
# heartbeat (CLOCK_MONOTONIC seconds, system-wide), pid, slot, generation, accepted, requests,
# active connections, state.
FIELDS = struct.Struct("=d q q q q q q q")
CELL_SIZE = SEQUENCE.size + FIELDS.size
HEADER = struct.Struct("=q q q d")  # master pid, generation, cells, started (monotonic)
SERVING, SHUTTING_DOWN = 0, 1
READ_PATIENCE = 0.1  # seconds a reader waits for a writer in mid-update before it gives up
EMPTY = (0.0, 0, 0, 0, 0, 0, 0, SERVING)


def write_cell(memory: mmap.mmap, words: memoryview, offset: int, values: tuple) -> None:
    """Publish values in the cell at offset: counter odd, fields, counter even."""
    index = offset // 8
    sequence = words[index]
    if sequence & 1:  # a writer died mid-update (the reaped worker): start from even
        sequence += 1
    words[index] = sequence + 1
    FIELDS.pack_into(memory, offset + SEQUENCE.size, *values)
    words[index] = sequence + 2


def read_cell(memory: mmap.mmap, words: memoryview, offset: int) -> tuple | None:
    """The fields of one consistent update, or None if no consistent read could be made."""
    index = offset // 8
    give_up = 0.0
    while True:
        for _ in range(16):
            before = words[index]
            if not before & 1:
                values = FIELDS.unpack_from(memory, offset + SEQUENCE.size)
                if words[index] == before:
                    return values
        # The writer was preempted in mid-update: let it run (it may share our core).
        now = time.monotonic()
        if not give_up:
            give_up = now + READ_PATIENCE
        elif now > give_up:
            return None
        os.sched_yield()


class Scoreboard:
    """Shared cells, created by the master before it forks any worker."""

    def __init__(self, cells: int):
        self.cells = cells
        self.memory = mmap.mmap(-1, HEADER.size + CELL_SIZE * cells,
                                flags=mmap.MAP_SHARED | mmap.MAP_ANONYMOUS)
        self.words = memoryview(self.memory).cast("Q")  # cells and header are 8-byte aligned
        self.free = list(range(cells - 1, -1, -1))
        HEADER.pack_into(self.memory, 0, os.getpid(), 0, cells, time.monotonic())

    def set_generation(self, generation: int) -> None:
        master, _, cells, started = HEADER.unpack_from(self.memory, 0)
        HEADER.pack_into(self.memory, 0, master, generation, cells, started)

    def allocate(self, slot: int, generation: int) -> "Cell":
        """A cleared cell for a worker about to be forked; raises IndexError when all are taken."""
        index = self.free.pop()
        cell = Cell(self, index)
        write_cell(self.memory, self.words, cell.offset, (0.0, 0, slot, generation, 0, 0, 0, SERVING))
        return cell

    def release(self, cell: "Cell") -> None:
        write_cell(self.memory, self.words, cell.offset, EMPTY)
        self.free.append(cell.index)

    def read(self, index: int) -> dict | None:
        """One cell as a dict, or None if its writer stopped in the middle of an update."""
        values = read_cell(self.memory, self.words, HEADER.size + CELL_SIZE * index)
        if values is None:
            return None
        heartbeat, pid, slot, generation, accepted, requests, active, state = values
        return {"heartbeat": heartbeat, "pid": pid, "slot": slot, "generation": generation,
                "accepted": accepted, "requests": requests, "active": active,
                "state": "shutting down" if state == SHUTTING_DOWN else "serving"}

    def snapshot(self) -> list[dict]:
        """Every cell in use (pid set), for a status page."""
        return [cell for cell in map(self.read, range(self.cells)) if cell and cell["pid"]]


class Cell:
    """One worker's cell. The worker calls `update(worker)`; the master reads `heartbeat`."""

    __slots__ = ("board", "index", "offset")

    def __init__(self, board: Scoreboard, index: int):
        self.board = board
        self.index = index
        self.offset = HEADER.size + CELL_SIZE * index

    def update(self, worker) -> None:
        """Publish the heartbeat, the worker's counters and its state."""
        state = SHUTTING_DOWN if worker.stopping else SERVING
        board = self.board
        write_cell(board.memory, board.words, self.offset,
                   (time.monotonic(), os.getpid(), worker.slot, worker.generation, worker.accepted,
                    worker.requests, len(worker.connections), state))

    @property
    def heartbeat(self) -> float | None:
        """CLOCK_MONOTONIC time of the last update; 0.0 before the worker's first one; None if
        no consistent read could be made (the writer is stopped in mid-update)."""
        values = read_cell(self.board.memory, self.board.words, self.offset)
        return None if values is None else values[0]
