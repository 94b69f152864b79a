"""The scoreboard: what every worker reports, in anonymous shared memory.

The master maps the region before forking, so every worker shares it without a file or a
disk (gunicorn's file-based heartbeat stalled on slow disks). It has one fixed-size cell per
worker process; a cell is given to a worker when it is spawned and freed when it is reaped,
so during a reload the old and the new generation each have their own cells. A worker
writes its cell once a second (the heartbeat) and when it starts shutting down; the master
reads the heartbeats to find hung workers, and the status page (a later issue) the counters.

A cell is written with one `struct.pack_into` and no lock: a reader may see a counter one
update behind, which a heartbeat check and a status page can live with.
"""

from __future__ import annotations

import mmap
import os
import struct
import time

# heartbeat (CLOCK_MONOTONIC seconds, system-wide), pid, slot, generation, accepted, requests,
# active connections, state.
CELL = struct.Struct("=d q q q q q q q")
HEADER = struct.Struct("=q q q d")  # master pid, generation, cells, started (monotonic)
SERVING, SHUTTING_DOWN = 0, 1


class Scoreboard:
    """Shared cells, created by the master before it forks any worker."""

    def __init__(self, cells: int):
        self.cells = cells
        self.memory = mmap.mmap(-1, HEADER.size + CELL.size * cells,
                                flags=mmap.MAP_SHARED | mmap.MAP_ANONYMOUS)
        self.free = list(range(cells - 1, -1, -1))
        HEADER.pack_into(self.memory, 0, os.getpid(), 0, cells, time.monotonic())

    def set_generation(self, generation: int) -> None:
        master, _, cells, started = HEADER.unpack_from(self.memory, 0)
        HEADER.pack_into(self.memory, 0, master, generation, cells, started)

    def allocate(self, slot: int, generation: int) -> "Cell":
        """A cleared cell for a worker about to be forked; raises IndexError when all are taken."""
        index = self.free.pop()
        cell = Cell(self, index)
        CELL.pack_into(self.memory, cell.offset, 0.0, 0, slot, generation, 0, 0, 0, SERVING)
        return cell

    def release(self, cell: "Cell") -> None:
        CELL.pack_into(self.memory, cell.offset, 0.0, 0, 0, 0, 0, 0, 0, SERVING)
        self.free.append(cell.index)

    def read(self, index: int) -> dict:
        heartbeat, pid, slot, generation, accepted, requests, active, state = CELL.unpack_from(
            self.memory, HEADER.size + CELL.size * index)
        return {"heartbeat": heartbeat, "pid": pid, "slot": slot, "generation": generation,
                "accepted": accepted, "requests": requests, "active": active,
                "state": "shutting down" if state == SHUTTING_DOWN else "serving"}

    def snapshot(self) -> list[dict]:
        """Every cell in use (pid set), for a status page."""
        return [cell for cell in map(self.read, range(self.cells)) if cell["pid"]]


class Cell:
    """One worker's cell. The worker calls `update(worker)`; the master reads `heartbeat`."""

    __slots__ = ("board", "index", "offset")

    def __init__(self, board: Scoreboard, index: int):
        self.board = board
        self.index = index
        self.offset = HEADER.size + CELL.size * index

    def update(self, worker) -> None:
        """Publish the heartbeat, the worker's counters and its state."""
        state = SHUTTING_DOWN if worker.stopping else SERVING
        CELL.pack_into(self.board.memory, self.offset, time.monotonic(), os.getpid(), worker.slot,
                       worker.generation, worker.accepted, worker.requests, len(worker.connections),
                       state)

    @property
    def heartbeat(self) -> float:
        """CLOCK_MONOTONIC time of the last update; 0.0 before the worker's first one."""
        return struct.unpack_from("=d", self.board.memory, self.offset)[0]
