"""`prefork lab run`: every model at every concurrency, then the experiments; a CSV and the plots."""

from __future__ import annotations

import os


def placement() -> tuple[set[int], set[int]]:
    """(server CPUs, driver CPUs): the driver on the first CPU, the server on the others, so they
    do not take each other's time; on a one-CPU machine they share it."""
    cpus = sorted(os.sched_getaffinity(0))
    if len(cpus) < 2:
        return set(cpus), set(cpus)
    return set(cpus[1:]), {cpus[0]}
