"""`prefork lab run`: every model at every concurrency, then the experiments; CSVs and the plots."""

from __future__ import annotations

import csv
import math
import os
import platform
import sys
import time
from pathlib import Path

from . import experiments, parse, plots, unavailable
from .bench import bench
from .server import Running

FULL = {"concurrency": "1,10,100,1000,10000", "seconds": 5.0, "timeout": 2.0, "idle": [0, 1000, 2000, 5000, 10000],
        "slow": [0, 10, 50, 100, 200], "herd_connections": 3000, "scaling_cpu_us": 2000}
QUICK = {"concurrency": "1,10,100", "seconds": 1.0, "timeout": 0.5, "idle": [0, 1000, 3000],
         "slow": [0, 50], "herd_connections": 300, "scaling_cpu_us": 1000}
EXPERIMENTS = ("idle", "slow", "herd", "scaling")
SWEEP_COLUMNS = ["model", "variant", "concurrency", "connected", "seconds", "requests", "rps", "p50_ms", "p99_ms",
                 "p999_ms", "errors", "timeouts", "server_cpu_s", "cpu_us_per_request", "rss_mb", "driver_cpu_s", "note"]


def placement() -> tuple[set[int], set[int]]:
    """(server CPUs, driver CPUs): the driver on the first CPU, the server on the others, so they
    do not take each other's time; on a one-CPU machine they share it."""
    cpus = sorted(os.sched_getaffinity(0))
    if len(cpus) < 2:
        return set(cpus), set(cpus)
    return set(cpus[1:]), {cpus[0]}


def run_command(args) -> int:
    settings = QUICK if args.quick else FULL
    try:
        specs = [parse(spec) for spec in args.models.split(",") if spec]
        levels = [int(c) for c in (args.concurrency or settings["concurrency"]).split(",")]
    except ValueError as exc:
        print(f"prefork lab run: {exc}", file=sys.stderr)
        return 2
    chosen = (args.experiments or ",".join(EXPERIMENTS)).split(",")
    chosen = [] if chosen == ["none"] else chosen
    unknown = [name for name in chosen if name not in EXPERIMENTS]
    if unknown:
        print(f"prefork lab run: unknown experiment {unknown[0]!r}; they are {', '.join(EXPERIMENTS)}", file=sys.stderr)
        return 2
    seconds = args.seconds or settings["seconds"]
    out = Path(args.out)
    out.mkdir(parents=True, exist_ok=True)
    everywhere = os.sched_getaffinity(0)
    server_cpus, driver_cpus = placement()
    started = time.monotonic()
    print(f"lab run on {describe_machine()}: server on CPUs {sorted(server_cpus)}, load driver on "
          f"{sorted(driver_cpus)}; {seconds:g} s per point", flush=True)
    os.sched_setaffinity(0, driver_cpus)
    timeout = min(settings["timeout"], seconds / 2)  # so that a client never answered shows in a short window
    rows = sweep(specs, levels, seconds, timeout, server_cpus, out / "results.csv")
    written = plots.sweep(rows, out) if plots.available() else []
    for name in chosen:
        print(f"experiment {name}", flush=True)
        if name in ("herd", "scaling"):
            os.sched_setaffinity(0, everywhere)  # these spread over every CPU on purpose
        result_rows = run_experiment(name, settings, seconds, server_cpus)
        os.sched_setaffinity(0, driver_cpus)
        write_csv(out / f"{name}.csv", result_rows)
        if plots.available():
            written.append(getattr(plots, name)(result_rows, out))
    os.sched_setaffinity(0, everywhere)
    if not plots.available():
        print("no plots: they need matplotlib (pip install 'prefork[lab]')", file=sys.stderr)
    print(f"wrote {out / 'results.csv'} and {len(written)} plots in {time.monotonic() - started:.0f} s")
    return 0


def sweep(specs, levels, seconds, timeout, server_cpus, csv_path: Path) -> list[dict]:
    rows = []
    with open(csv_path, "w", newline="") as f:
        writer = csv.DictWriter(f, SWEEP_COLUMNS)
        writer.writeheader()
        for name, variant in specs:
            for row in measure_model(name, variant, levels, seconds, timeout, server_cpus):
                rows.append(row)
                writer.writerow(row)
                f.flush()
    return rows


def measure_model(name, variant, levels, seconds, timeout, server_cpus):
    """One model at each level; a server that died is reported and started again for the next."""
    why = unavailable(name)
    if why:
        print(f"  {name}: unavailable here: {why}", flush=True)
        for level in levels:
            yield {"model": name, "variant": variant, "concurrency": level, "note": f"unavailable: {why}"}
        return
    spec = f"{name}:{variant}" if variant else name
    server = Running(spec, server_cpus)
    try:
        for level in levels:
            if server.proc.poll() is not None:
                server.stop()
                server = Running(spec, server_cpus)
            result = bench(server.port, level, seconds, timeout=timeout, server_pid=server.pid,
                           label=f"{spec} c={level}", progress=sys.stderr.isatty())
            row = {"model": name, "variant": variant, **result.row()}
            if server.proc.poll() is not None:
                row["note"] = (row["note"] + "; " if row["note"] else "") + f"server exited ({server.proc.returncode})"
            row["cpu_us_per_request"] = row["server_cpu_s"] / row["requests"] * 1e6 if row["requests"] else math.nan
            print(f"  {spec:<12} c={level:<6} {row['rps']:9.0f} req/s  p99 {row['p99_ms']:8.2f} ms  "
                  f"errors {row['errors']:<5} timeouts {row['timeouts']:<5} CPU/req "
                  f"{row['cpu_us_per_request']:7.1f} us  {row['rss_mb']:7.1f} MiB {row['note']}", flush=True)
            yield row
    finally:
        server.stop()


def run_experiment(name, settings, seconds, server_cpus) -> list[dict]:
    if name == "idle":
        return experiments.idle(settings["idle"], seconds, server_cpus)
    if name == "slow":
        return experiments.slow(settings["slow"], seconds, server_cpus)
    if name == "herd":
        return experiments.herd_counts(4, settings["herd_connections"])
    return experiments.scaling(seconds, settings["scaling_cpu_us"])


def write_csv(path: Path, rows: list[dict]) -> None:
    with open(path, "w", newline="") as f:
        writer = csv.DictWriter(f, list(dict.fromkeys(key for row in rows for key in row)))
        writer.writeheader()
        writer.writerows(rows)


def describe_machine() -> str:
    model = next((line.split(":", 1)[1].strip() for line in open("/proc/cpuinfo") if line.startswith("model name")), "?")
    return f"{platform.node()} ({len(os.sched_getaffinity(0))} CPUs, {model}, Linux {platform.release()})"
