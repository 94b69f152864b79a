"""The experiments beyond the sweep, one function each; each returns rows for its CSV and plot.

    idle      select, poll, epoll (and busy polling) holding many idle connections and serving
              a few active ones: does the cost of a wait grow with idle descriptors? (claims 2, 3)
    slow      the Reactor and the emulated Proactor, one client whose handler sleeps: what
              latency do the other clients see? (claim 5)
    herd      N workers on one shared socket, with and without EPOLLEXCLUSIVE, or with a
              SO_REUSEPORT socket each: wake-ups per accept and who gets the connections
    scaling   prefork with 1..CPU-count workers on CPU-bound requests, next to the emulated
              Proactor with as many threads, and the ideal line (claim 7)
"""

from __future__ import annotations

import os
import time

from . import herd
from .bench import bench
from .server import Running

ACTIVE = 4  # active clients among the idle ones


def idle(counts: list[int], seconds: float, server_cpus, models=("select", "poll", "epoll", "nonblocking")):
    rows = []
    for model in models:
        for count in counts:
            if rows and rows[-1]["model"] == model and rows[-1]["requests"] == 0:
                print(f"  {model:<12} idle {count:>6}: not measured, it served nothing with fewer", flush=True)
                continue  # collapsed already: more idle connections only take longer to show it
            with Running(model, server_cpus) as server:
                result = bench(server.port, ACTIVE, seconds, idle=count, server_pid=server.pid, timeout=1.0,
                               warmup=2.0, label=f"{model} idle {count}")
            rows.append({"model": model, "idle": count, **result.row(),
                         "server_cpu_share": result.server_cpu_s / result.seconds})
            report(rows[-1], f"{model:<12} idle {count:>6}")
    return rows


def slow(delays_ms: list[float], seconds: float, server_cpus, clients: int = 20):
    rows = []
    for model in ("reactor", "proactor"):
        with Running(model, server_cpus) as server:
            for delay in delays_ms:
                result = bench(server.port, clients, seconds, slow=1 if delay else 0, slow_sleep_ms=delay,
                               server_pid=server.pid, timeout=max(2.0, 4 * delay / 1000), label=f"{model} slow {delay}")
                rows.append({"model": model, "slow_ms": delay, **result.row()})
                report(rows[-1], f"{model:<12} slow {delay:>5} ms")
    return rows


def herd_counts(workers: int, connections: int):
    rows = []
    for mode in herd.MODES:
        started = time.monotonic()
        counts = herd.measure(mode, workers, connections)  # on every CPU: on one, the herd hides
        elapsed = time.monotonic() - started
        for number, count in enumerate(counts):
            rows.append({"mode": mode, "worker": number, **count, "seconds": elapsed})
        wakeups, accepts = sum(c["wakeups"] for c in counts), sum(c["accepts"] for c in counts)
        print(f"  herd {mode:<10} {wakeups / max(1, accepts):.2f} wake-ups per accept, "
              f"accepts per worker {[c['accepts'] for c in counts]}, {elapsed / connections * 1e6:.0f} us per connection")
    return rows


def scaling(seconds: float, cpu_us: int, clients_per_worker: int = 8):
    """Server and driver both on every CPU: the driver's share is reported (driver_cpu_s)."""
    rows = []
    cpus = len(os.sched_getaffinity(0))
    for model in ("prefork", "proactor"):
        for workers in range(1, cpus + 1):
            with Running(f"{model}:{workers}") as server:
                result = bench(server.port, clients_per_worker * cpus, seconds, cpu_us=cpu_us, timeout=5.0,
                               server_pid=server.pid, label=f"{model} x{workers}")
            rows.append({"model": model, "workers": workers, "cpu_us": cpu_us, **result.row(),
                         "driver_cores": result.driver_cpu_s / result.seconds})
            report(rows[-1], f"{model:<12} x{workers}")
    return rows


def report(row: dict, label: str) -> None:
    print(f"  {label}: {row['rps']:9.0f} req/s  p99 {row['p99_ms']:8.2f} ms  errors {row['errors']} "
          f"timeouts {row['timeouts']}  server CPU {row['server_cpu_s']:.2f} s", flush=True)
