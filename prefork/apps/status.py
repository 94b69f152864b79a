"""What the server is doing, from the master's scoreboard: /status, /metrics, /status.html, /health.

Every worker publishes its figures in its scoreboard cell with each heartbeat, and the worker
that answers publishes its own just before reading the board, so the numbers add up across
workers whichever one answers. Workers that exited leave their totals with the master
(`retired_*`), so the summed counters never go backwards on a reload or a respawn.

Served by the built-in site, and for a server running an APP on a listener of its own
(`status_bind`), so the app's routes are never shadowed.
"""

from __future__ import annotations

import time

import orjson

from prefork import __version__
from prefork.master.scoreboard import WORKER_NAMES
from prefork.workers.stats import DURATION_BUCKETS

from .status_page import STATUS_HTML

_JSON = b"Content-Type: application/json\r\nCache-Control: no-store\r\nContent-Length: %d\r\n"
_METRICS = b"Content-Type: text/plain; version=0.0.4; charset=utf-8\r\nContent-Length: %d\r\n"
_HTML = b"Content-Type: text/html; charset=utf-8\r\nContent-Length: %d\r\n"
_TEXT = b"Content-Type: text/plain; charset=utf-8\r\nCache-Control: no-store\r\nContent-Length: %d\r\n"
# nginx's stub_status figures, summed over the workers.
SUMMED = ("active", "accepted", "handled", "requests", "reading", "writing", "waiting")
RESPONSE_CLASSES = ("1xx", "2xx", "3xx", "4xx", "5xx")


class Status:
    """The status routes of one worker; `routes` maps a path to a handler(exchange, request, body)."""

    def __init__(self, worker):
        self.worker = worker
        self.board = getattr(worker.board, "scoreboard", None)  # None: a worker run alone (tests)
        self.routes = {
            b"/status": self.status,
            b"/status.html": self.page,
            b"/metrics": self.metrics,
            b"/health": self.health,
        }

    def handle(self, exchange) -> None:
        """The handler of a status listener: these routes, 404 for anything else."""
        request = exchange.request
        route = self.routes.get(request.target.partition(b"?")[0])
        if route is None:
            exchange.respond(404, _TEXT % 10, b"Not Found\n")
        else:
            route(exchange, request, exchange.body)

    # -- the figures ------------------------------------------------------------------------------

    def document(self) -> dict:
        """The status as a dict: the sums, one entry per worker, the master."""
        worker = self.worker
        if worker.board is not None:
            worker.board.update(worker)  # our own figures fresh, not a heartbeat old
        now = time.monotonic()
        wall = time.time()
        cells = self.board.snapshot() if self.board is not None else []
        master = (self.board.read_master() if self.board is not None else None) or {}
        workers = [_worker_entry(cell, now) for cell in sorted(cells, key=lambda c: (c["generation"], c["slot"]))]
        exited = _exited_entry(master)
        sums = {name: sum(entry[name] for entry in workers) for name in SUMMED}
        for name in ("accepted", "handled", "requests"):
            sums[name] += exited[name]
        responses = {name: sum(entry["responses"][name] for entry in workers) + exited["responses"][name]
                     for name in RESPONSE_CLASSES}
        bytes_sent = sum(entry["bytes_sent"] for entry in workers) + exited["bytes_sent"]
        started = master.get("started") or worker.started
        return {
            "version": __version__,
            "time": wall,
            **sums,
            "responses": responses,
            "bytes_sent": bytes_sent,
            "draining": bool(master.get("draining")) or worker.stopping,
            "master": {
                "pid": master.get("pid", 0),
                "generation": master.get("generation", worker.generation),
                "reloads": master.get("reloads", 0),
                "respawns": master.get("respawns", 0),
                "started": wall - (now - started),
                "uptime": now - started,
            },
            "workers": workers,
            "exited": exited,
        }

    def draining(self) -> bool:
        if self.worker.stopping:
            return True
        master = self.board.read_master() if self.board is not None else None
        return bool(master and master["draining"])

    # -- the routes -----------------------------------------------------------------------------

    def status(self, exchange, request, body) -> None:
        payload = orjson.dumps(self.document(), option=orjson.OPT_INDENT_2) + b"\n"
        exchange.respond(200, _JSON % len(payload), payload)

    def page(self, exchange, request, body) -> None:
        exchange.respond(200, _HTML % len(STATUS_HTML), STATUS_HTML)

    def metrics(self, exchange, request, body) -> None:
        payload = prometheus(self.document()).encode()
        exchange.respond(200, _METRICS % len(payload), payload)

    def health(self, exchange, request, body) -> None:
        """200 while serving; 503 from the moment a graceful stop or a drain begins, so that a
        load balancer stops sending before the listeners close."""
        if self.draining():
            exchange.respond(503, _TEXT % 9, b"draining\n")
        else:
            exchange.respond(200, _TEXT % 3, b"ok\n")


def _worker_entry(cell: dict, now: float) -> dict:
    entry = {name: cell[name] for name in WORKER_NAMES
             if not name.startswith(("responses_", "duration_", "heartbeat", "started"))}
    entry["age"] = now - cell["started"] if cell["started"] else 0.0
    entry["heartbeat_age"] = now - cell["heartbeat"] if cell["heartbeat"] else None
    entry["responses"] = {name: cell[f"responses_{name}"] for name in RESPONSE_CLASSES}
    entry["duration_sum"] = cell["duration_sum"]
    entry["durations"] = [cell[f"duration_bucket_{i}"] for i in range(len(DURATION_BUCKETS) + 1)]
    return entry


def _exited_entry(master: dict) -> dict:
    """What the workers that exited had counted (the master's retired totals), in the shape of
    a worker's entry: /metrics gives it as the series worker="exited"."""
    entry = {name: master.get(f"retired_{name}", 0) for name in ("accepted", "handled", "requests", "bytes_sent")}
    entry["responses"] = {name: master.get(f"retired_responses_{name}", 0) for name in RESPONSE_CLASSES}
    entry["duration_sum"] = master.get("retired_duration_sum", 0.0)
    entry["durations"] = [master.get(f"retired_duration_bucket_{i}", 0) for i in range(len(DURATION_BUCKETS) + 1)]
    return entry


# -- the Prometheus text exposition format (0.0.4) ------------------------------------------------

_WORKER_FAMILIES = (
    # (name, type, help, value of an entry)
    ("prefork_connections_accepted_total", "counter", "Connections accepted.", lambda w: w["accepted"]),
    ("prefork_connections_handled_total", "counter", "Connections handled.", lambda w: w["handled"]),
    ("prefork_requests_total", "counter", "Requests read and handed to the application.", lambda w: w["requests"]),
    ("prefork_connections_active", "gauge", "Open client connections.", lambda w: w["active"]),
    ("prefork_response_bytes_total", "counter", "Response body bytes sent.", lambda w: w["bytes_sent"]),
    ("prefork_queue_depth", "gauge", "Requests waiting in the worker queues.", lambda w: w["queued"]),
    ("prefork_busy_threads", "gauge", "Handler threads running a request.", lambda w: w["busy_threads"]),
    ("prefork_worker_resident_memory_bytes", "gauge", "Resident set size of the worker process.", lambda w: w["rss"]),
    ("prefork_worker_age_seconds", "gauge", "Seconds since the worker started.", lambda w: round(w["age"], 3)),
)


def prometheus(document: dict) -> str:
    lines = []

    def family(name, kind, text):
        lines.append(f"# HELP {name} {text}")
        lines.append(f"# TYPE {name} {kind}")

    workers = document["workers"]
    labels = [f'worker="{w["slot"]}",generation="{w["generation"]}",pid="{w["pid"]}"' for w in workers]
    # The counters go on with one more series, worker="exited": what the workers that exited had
    # counted, so that a sum over the series never drops at a reload or a recycled worker.
    exited = document["exited"]
    counted, counted_labels = list(workers), list(labels)
    if exited["accepted"] or exited["requests"]:
        counted.append(exited)
        counted_labels.append('worker="exited"')
    for name, kind, text, value in _WORKER_FAMILIES:
        family(name, kind, text)
        rows = zip(counted, counted_labels) if kind == "counter" else zip(workers, labels)
        lines.extend(f"{name}{{{label}}} {value(w)}" for w, label in rows)
    family("prefork_connections", "gauge", "Client connections by state, as nginx's stub_status counts them.")
    for w, label in zip(workers, labels):
        lines.extend(f'prefork_connections{{{label},state="{state}"}} {w[state]}'
                     for state in ("reading", "writing", "waiting"))
    family("prefork_responses_total", "counter", "Responses sent, by status class.")
    for w, label in zip(counted, counted_labels):
        lines.extend(f'prefork_responses_total{{{label},code="{code}"}} {w["responses"][code]}'
                     for code in RESPONSE_CLASSES)
    family("prefork_request_duration_seconds", "histogram", "Time from the request head to the end of the response.")
    for w, label in zip(counted, counted_labels):
        cumulative = 0
        for bound, count in zip(DURATION_BUCKETS + (float("inf"),), w["durations"]):
            cumulative += count
            le = "+Inf" if bound == float("inf") else repr(bound)
            lines.append(f'prefork_request_duration_seconds_bucket{{{label},le="{le}"}} {cumulative}')
        lines.append(f"prefork_request_duration_seconds_sum{{{label}}} {w['duration_sum']!r}")
        lines.append(f"prefork_request_duration_seconds_count{{{label}}} {cumulative}")
    master = document["master"]
    for name, kind, text, value in (
            ("prefork_master_generation", "gauge", "Generation of the current workers (one more per reload).", master["generation"]),
            ("prefork_master_reloads_total", "counter", "Reloads (HUP) done.", master["reloads"]),
            ("prefork_master_respawns_total", "counter", "Workers respawned after a crash or a hang.", master["respawns"]),
            ("prefork_master_start_time_seconds", "gauge", "Unix time the master started.", round(master["started"], 3)),
            ("prefork_draining", "gauge", "1 while the server drains (health answers 503).", int(document["draining"]))):
        family(name, kind, text)
        lines.append(f"{name} {value}")
    return "\n".join(lines) + "\n"
