"""The PNG plots of a run (matplotlib, from the optional extra `lab`).

A point where the model failed clients (errors or timeouts) is drawn with a cross, and a
model that served nothing at some concurrency is drawn at the bottom of the axis, so a
collapse shows on the plot instead of a line that simply stops.
"""

from __future__ import annotations

import math
from collections import defaultdict
from pathlib import Path

SWEEP_PLOTS = {
    "throughput.png": ("rps", "requests/s (log)", "Throughput against concurrency"),
    "p99.png": ("p99_ms", "p99 latency, ms (log)", "p99 latency against concurrency"),
    "cpu_per_request.png": ("cpu_us_per_request", "server CPU per request, us (log)",
                            "Server CPU per request against concurrency"),
    "memory.png": ("rss_mb", "server memory (PSS), MiB (log)", "Server memory against concurrency"),
}


def pyplot():
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    return plt


def available() -> bool:
    try:
        import matplotlib  # noqa: F401
    except ImportError:
        return False
    return True


def number(value) -> float:
    try:
        value = float(value)
    except (TypeError, ValueError):
        return math.nan
    return value


def sweep(rows: list[dict], out: Path, title_suffix: str = "") -> list[Path]:
    plt = pyplot()
    lines = defaultdict(list)
    for row in rows:
        if not row.get("note", "").startswith("unavailable"):
            lines[label(row)].append(row)
    written = []
    for name, (key, ylabel, title) in SWEEP_PLOTS.items():
        fig, ax = plt.subplots(figsize=(10, 6))
        values = [number(r[key]) for series in lines.values() for r in series]
        positive = [v for v in values if v > 0]
        floor = min(positive) / 2 if positive else 1.0
        for index, (model, series) in enumerate(lines.items()):
            series.sort(key=lambda r: int(r["concurrency"]))
            xs = [int(r["concurrency"]) for r in series]
            ys = [number(r[key]) if number(r[key]) > 0 else floor for r in series]
            style = "-" if index < 10 else "--"
            (line,) = ax.plot(xs, ys, style, marker="o", markersize=4, label=model)
            failed = [(x, y) for x, y, r in zip(xs, ys, series) if int(r["errors"]) + int(r["timeouts"])]
            if failed:
                ax.plot(*zip(*failed), "x", color=line.get_color(), markersize=11, markeredgewidth=2)
        ax.set_xscale("log")
        ax.set_yscale("log")
        ax.set_xlabel("concurrent keep-alive clients (log)")
        ax.set_ylabel(ylabel)
        ax.set_title(f"{title}{title_suffix}\nx: the model failed clients (errors or timeouts); "
                     f"on the floor: nothing served")
        ax.grid(True, which="both", alpha=0.3)
        ax.legend(fontsize=8, ncol=2)
        written.append(save(fig, out / name, plt))
    return written


def idle(rows: list[dict], out: Path) -> Path:
    plt = pyplot()
    fig, (rate, cpu) = plt.subplots(1, 2, figsize=(12, 5))
    for model in dict.fromkeys(r["model"] for r in rows):
        series = sorted((r for r in rows if r["model"] == model), key=lambda r: int(r["idle"]))
        xs = [int(r["idle"]) for r in series]
        rate.plot(xs, [number(r["rps"]) for r in series], marker="o", label=model)
        cpu.plot(xs, [number(r["server_cpu_share"]) for r in series], marker="o", label=model)
    rate.set_title("Requests/s of 4 active clients among idle connections")
    rate.set_xlabel("idle connections")
    rate.set_ylabel("requests/s")
    cpu.set_title("Server CPU (share of one core) meanwhile")
    cpu.set_xlabel("idle connections")
    cpu.set_ylabel("CPU seconds per second")
    for ax in (rate, cpu):
        ax.grid(True, alpha=0.3)
        ax.legend()
    return save(fig, out / "idle.png", plt)


def slow(rows: list[dict], out: Path) -> Path:
    plt = pyplot()
    fig, ax = plt.subplots(figsize=(8, 5))
    for model in ("reactor", "proactor"):
        series = [r for r in rows if r["model"] == model]
        xs = [number(r["slow_ms"]) for r in series]
        ax.plot(xs, [number(r["p99_ms"]) for r in series], marker="o", label=f"{model}: p99")
        ax.plot(xs, [number(r["p50_ms"]) for r in series], marker=".", linestyle=":", label=f"{model}: p50")
    ax.set_yscale("log")
    ax.set_xlabel("the one slow client's handler sleeps (ms)")
    ax.set_ylabel("latency of the other clients, ms (log)")
    ax.set_title("One slow handler: the Reactor against the emulated Proactor")
    ax.grid(True, which="both", alpha=0.3)
    ax.legend()
    return save(fig, out / "slow_handler.png", plt)


def herd(rows: list[dict], out: Path) -> Path:
    plt = pyplot()
    fig, (wake, share) = plt.subplots(1, 2, figsize=(12, 5))
    modes = list(dict.fromkeys(r["mode"] for r in rows))
    ratios = []
    for mode in modes:
        counts = [r for r in rows if r["mode"] == mode]
        ratios.append(sum(int(r["wakeups"]) for r in counts) / max(1, sum(int(r["accepts"]) for r in counts)))
    wake.bar(modes, ratios, color=["tab:red", "tab:orange", "tab:green"][:len(modes)])
    wake.axhline(1.0, color="black", linewidth=0.8)
    wake.set_title("Wake-ups per accepted connection (1 is no waste)")
    workers = sorted({int(r["worker"]) for r in rows})
    width = 0.8 / len(modes)
    for index, mode in enumerate(modes):
        counts = {int(r["worker"]): int(r["accepts"]) for r in rows if r["mode"] == mode}
        total = max(1, sum(counts.values()))
        share.bar([w + index * width for w in workers], [counts.get(w, 0) / total for w in workers], width, label=mode)
    share.set_xticks([w + width for w in workers], [f"worker {w}" for w in workers])
    share.set_title("Share of the connections each worker accepted")
    share.legend()
    return save(fig, out / "herd.png", plt)


def scaling(rows: list[dict], out: Path) -> Path:
    plt = pyplot()
    fig, ax = plt.subplots(figsize=(8, 5))
    for model in ("prefork", "proactor"):
        series = sorted((r for r in rows if r["model"] == model), key=lambda r: int(r["workers"]))
        if not series:
            continue
        xs = [int(r["workers"]) for r in series]
        what = "worker processes" if model == "prefork" else "handler threads"
        ax.plot(xs, [number(r["rps"]) for r in series], marker="o", label=f"{model} ({what})")
        if model == "prefork":
            ax.plot(xs, [number(series[0]["rps"]) * x for x in xs], "k--", label="ideal: N x one worker")
    driver = max(number(r["driver_cores"]) for r in rows)
    ax.set_xticks(sorted({int(r["workers"]) for r in rows}))
    ax.set_xlabel("workers (processes for prefork, threads for the proactor)")
    ax.set_ylabel("requests/s")
    ax.set_title(f"CPU-bound requests ({rows[0]['cpu_us']} us each); the load driver took up to {driver:.2f} cores")
    ax.set_ylim(bottom=0)
    ax.grid(True, alpha=0.3)
    ax.legend()
    return save(fig, out / "scaling.png", plt)


def label(row: dict) -> str:
    return f"{row['model']}:{row['variant']}" if row.get("variant") else row["model"]


def save(fig, path: Path, plt) -> Path:
    fig.tight_layout()
    fig.savefig(path, dpi=90)
    plt.close(fig)
    return path
