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

from prefork.workers.stats import DURATION_BUCKETS

SEQUENCE = struct.Struct("=Q")
# One worker's cell. Times are CLOCK_MONOTONIC seconds (system-wide), except duration_sum.
WORKER_FIELDS = (
    ("heartbeat", "d"), ("started", "d"), ("pid", "q"), ("slot", "q"), ("generation", "q"),
    ("state", "q"), ("accepted", "q"), ("handled", "q"), ("requests", "q"), ("active", "q"),
    ("reading", "q"), ("writing", "q"), ("waiting", "q"), ("queued", "q"), ("busy_threads", "q"),
    ("rss", "q"), ("bytes_sent", "q"),
    ("responses_1xx", "q"), ("responses_2xx", "q"), ("responses_3xx", "q"), ("responses_4xx", "q"),
    ("responses_5xx", "q"), ("duration_sum", "d"),
) + tuple((f"duration_bucket_{i}", "q") for i in range(len(DURATION_BUCKETS) + 1))
WORKER_NAMES = tuple(name for name, _ in WORKER_FIELDS)
# The counters of a cell: when its worker is reaped they go to the master's retired totals, so
# that a sum over the workers and the retired never goes backwards (a reload, a recycled worker).
COUNTERS = ("accepted", "handled", "requests", "bytes_sent") + tuple(
    name for name in WORKER_NAMES if name.startswith(("responses_", "duration_")))
FIELDS = struct.Struct("=" + "".join(kind for _, kind in WORKER_FIELDS))
CELL_SIZE = SEQUENCE.size + FIELDS.size
# The master's own figures, in a cell of the same kind at the start of the region.
MASTER_FIELDS = (("pid", "q"), ("generation", "q"), ("cells", "q"), ("started", "d"), ("reloads", "q"),
                 ("respawns", "q"), ("draining", "q"),
                 ("stopping", "q"),  # the whole server stops: workers close the listening sockets
                 # what exited workers had counted, so that sums never go backwards
                 ) + tuple((f"retired_{name}", kind) for name, kind in WORKER_FIELDS if name in COUNTERS)
MASTER_NAMES = tuple(name for name, _ in MASTER_FIELDS)
HEADER = struct.Struct("=" + "".join(kind for _, kind in MASTER_FIELDS))
HEADER_SIZE = SEQUENCE.size + HEADER.size
SERVING, SHUTTING_DOWN = 0, 1
READ_PATIENCE = 0.1  # seconds a reader waits for a writer in mid-update before it gives up
EMPTY = (0,) * len(WORKER_FIELDS)


def write_cell(memory: mmap.mmap, words: memoryview, offset: int, values: tuple, fields=FIELDS) -> None:
    """Publish values in the cell at offset: counter odd, fields, counter even."""
    index = offset // 8
    sequence = words[index]
    if sequence & 1:  # a writer died mid-update (the reaped worker): start from even
        sequence += 1
    words[index] = sequence + 1
    fields.pack_into(memory, offset + SEQUENCE.size, *values)
    words[index] = sequence + 2


def read_cell(memory: mmap.mmap, words: memoryview, offset: int, fields=FIELDS) -> tuple | None:
    """The fields of one consistent update, or None if no consistent read could be made."""
    index = offset // 8
    give_up = 0.0
    while True:
        for _ in range(16):
            before = words[index]
            if not before & 1:
                values = fields.unpack_from(memory, offset + SEQUENCE.size)
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
        self.memory = mmap.mmap(-1, HEADER_SIZE + CELL_SIZE * cells,
                                flags=mmap.MAP_SHARED | mmap.MAP_ANONYMOUS)
        self.words = memoryview(self.memory).cast("Q")  # every field is 8 bytes: all aligned
        self.free = list(range(cells - 1, -1, -1))
        self.master = dict.fromkeys(MASTER_NAMES, 0)  # the master's figures; it alone writes them
        self.publish_master(pid=os.getpid(), cells=cells, started=time.monotonic())

    # -- the master's figures -----------------------------------------------------------------

    def publish_master(self, **changes) -> None:
        self.master.update(changes)
        write_cell(self.memory, self.words, 0, tuple(self.master[name] for name in MASTER_NAMES), HEADER)

    def set_generation(self, generation: int) -> None:
        self.publish_master(generation=generation)

    def read_master(self) -> dict | None:
        values = read_cell(self.memory, self.words, 0, HEADER)
        return None if values is None else dict(zip(MASTER_NAMES, values))

    # -- the workers' cells ---------------------------------------------------------------------

    def allocate(self, slot: int, generation: int) -> "Cell":
        """A cleared cell for a worker about to be forked; raises IndexError when all are taken."""
        index = self.free.pop()
        cell = Cell(self, index)
        values = dict.fromkeys(WORKER_NAMES, 0)
        values.update(slot=slot, generation=generation)
        write_cell(self.memory, self.words, cell.offset, tuple(values.values()))
        return cell

    def release(self, cell: "Cell") -> None:
        """Free the cell of a reaped worker; its counters go to the master's retired totals."""
        last = self.read(cell.index)
        if last is not None and last["pid"]:
            master = self.master
            self.publish_master(**{f"retired_{name}": master[f"retired_{name}"] + last[name] for name in COUNTERS})
        write_cell(self.memory, self.words, cell.offset, EMPTY)
        self.free.append(cell.index)

    def read(self, index: int) -> dict | None:
        """One cell as a dict, or None if its writer stopped in the middle of an update."""
        values = read_cell(self.memory, self.words, HEADER_SIZE + CELL_SIZE * index)
        if values is None:
            return None
        cell = dict(zip(WORKER_NAMES, values))
        cell["state"] = "shutting down" if cell["state"] == SHUTTING_DOWN else "serving"
        return cell

    def snapshot(self) -> list[dict]:
        """Every cell in use (pid set), for a status page."""
        return [cell for cell in map(self.read, range(self.cells)) if cell and cell["pid"]]


class Cell:
    """One worker's cell. The worker calls `update(worker)`; the master reads `heartbeat`."""

    __slots__ = ("board", "index", "offset")

    def __init__(self, board: Scoreboard, index: int):
        self.board = board
        self.index = index
        self.offset = HEADER_SIZE + CELL_SIZE * index

    def update(self, worker) -> None:
        """Publish the heartbeat, the worker's counters and its state."""
        reading, writing, waiting = worker.connection_states()
        queued, busy = worker.queue_figures()
        stats = worker.stats
        values = (time.monotonic(), worker.started, os.getpid(), worker.slot, worker.generation,
                  SHUTTING_DOWN if worker.stopping else SERVING, worker.accepted, worker.accepted,
                  worker.requests, len(worker.connections), reading, writing, waiting, queued, busy,
                  _rss(), stats.bytes_sent, *stats.by_class[1:6], stats.duration_sum, *stats.durations)
        board = self.board
        write_cell(board.memory, board.words, self.offset, values)

    @property
    def heartbeat(self) -> float | None:
        """CLOCK_MONOTONIC time of the last update; 0.0 before the worker's first one; None if
        no consistent read could be made (the writer is stopped in mid-update)."""
        values = read_cell(self.board.memory, self.board.words, self.offset)
        return None if values is None else values[0]


_PAGE_SIZE = os.sysconf("SC_PAGE_SIZE")


def _rss() -> int:
    """This process's resident set size in bytes (0 where /proc cannot tell)."""
    try:
        with open("/proc/self/statm", "rb") as statm:
            return int(statm.read().split()[1]) * _PAGE_SIZE
    except (OSError, IndexError, ValueError):
        return 0
