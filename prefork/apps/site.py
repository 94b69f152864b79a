"""The built-in site, served when no APP is given: a home page and the benchmark routes.

Routes answer on the Reactor thread with whole responses; the serialized header lines that
never change are built once. Two routes show the dispatch paths: /sleep blocks, so it always
runs on the worker queues' threads; /cpu burns CPU where --dispatch says (inline: on the
Reactor thread, holding up the worker; threads: on a handler thread).
"""

from __future__ import annotations

import os
import time
from html import escape
from io import BytesIO
from urllib.parse import parse_qs

import orjson

from prefork import __version__

from .status import Status

_PLAIN = b"Content-Type: text/plain\r\nContent-Length: 13\r\n"
_HELLO = b"Hello, World!"
_JSON = b"Content-Type: application/json\r\nContent-Length: %d\r\n"
_HTML = b"Content-Type: text/html; charset=utf-8\r\nContent-Length: %d\r\n"
_TEXT = b"Content-Type: text/plain; charset=utf-8\r\nContent-Length: %d\r\n"
_SAFE_METHODS = (b"GET", b"HEAD")

HOME = """<!doctype html>
<html lang="en">
<head><meta charset="utf-8"><title>prefork</title>
<style>body{{font-family:system-ui,sans-serif;max-width:46rem;margin:3rem auto;padding:0 1rem;line-height:1.5}}
code{{background:#f3f3f3;padding:0 .25rem}} td{{padding:0 1rem 0 0}}</style></head>
<body>
<h1>prefork is running</h1>
<p>A multi-process, multi-reactor HTTP/1.1 server for Python: a master process binds the sockets
and forks one worker per CPU; each worker runs its own epoll Reactor.</p>
<table>
<tr><td>version</td><td>{version}</td></tr>
<tr><td>workers</td><td>{workers}</td></tr>
<tr><td>dispatch</td><td>{dispatch}</td></tr>
<tr><td>listening on</td><td>{listeners}</td></tr>
<tr><td>up for</td><td>{uptime}</td></tr>
<tr><td>this page from</td><td>worker {slot} [gen {generation}] (pid {pid})</td></tr>
</table>
<p>This is the built-in site. Serve your own WSGI application with <code>prefork module:app</code>.</p>
<h2>Seeing the server work</h2>
<ul>
<li><a href="/status.html">/status.html</a>: a live page: requests/s per worker, connections, queues, memory</li>
<li><a href="/status">/status</a>: the same figures as JSON (nginx's stub_status fields, then each worker)</li>
<li><a href="/metrics">/metrics</a>: Prometheus metrics</li>
<li><a href="/health">/health</a>: 200 while serving, 503 once a graceful stop or a drain begins</li>
</ul>
<h2>Routes</h2>
<ul>
<li><a href="/plaintext">/plaintext</a>: <code>Hello, World!</code> as text/plain</li>
<li><a href="/json">/json</a>: a JSON message</li>
<li><code>/echo</code>: the request body back, with its Content-Type (any method)</li>
<li><a href="/sleep?ms=100">/sleep?ms=N</a>: answers after sleeping N ms on a handler thread
(a blocking app: the Reactor keeps serving meanwhile)</li>
<li><a href="/cpu?ms=10">/cpu?ms=N</a>: answers after burning N ms of CPU (on the Reactor with
<code>--dispatch inline</code>, on a handler thread with <code>--dispatch threads</code>)</li>{static}
</ul>
</body>
</html>
"""


class Site:
    """Routes of the built-in site; `handle(exchange, request, body)` is the worker's request handler."""

    def __init__(self, worker):
        self.worker = worker
        self.config = config = worker.config
        self.queues = None  # the worker queues, started by the first /sleep (or threaded /cpu)
        self.status = Status(worker)
        self.routes = {
            b"/": self.home,
            b"/plaintext": self.plaintext,
            b"/json": self.json,
            b"/echo": self.echo,
            b"/sleep": self.sleep,
            b"/cpu": self.cpu,
            **self.status.routes,
        }
        # -- static files (prefork/apps/static.py): prefix routes, tried only when no exact route matches
        self.mounts = static_mounts(config)
        for mount in self.mounts:
            if len(mount.prefix) > 1:  # the mount's URL without its slash: a 301 to the slash form
                self.routes.setdefault(mount.prefix[:-1], mount.handle)
        # -- end of static files

    def handle(self, exchange) -> None:
        request = exchange.request
        target = request.target
        route = self.routes.get(target)
        if route is None:
            path = target.partition(b"?")[0]
            route = self.routes.get(path)
            if route is None:
                route = self.not_found
                for mount in self.mounts:  # the longest prefix first
                    if path.startswith(mount.prefix):
                        route = mount.handle
                        break
        route(exchange, request, exchange.body)

    @staticmethod
    def plaintext(exchange, request, body) -> None:
        if request.method in _SAFE_METHODS:
            exchange.respond(200, _PLAIN, _HELLO)
        else:
            method_not_allowed(exchange)

    @staticmethod
    def json(exchange, request, body) -> None:
        if request.method in _SAFE_METHODS:
            payload = orjson.dumps({"message": "Hello, World!"})
            exchange.respond(200, _JSON % len(payload), payload)
        else:
            method_not_allowed(exchange)

    @staticmethod
    def echo(exchange, request, body) -> None:
        content_type = request.header(b"content-type", b"application/octet-stream")
        lines = b"Content-Type: " + content_type + b"\r\n"
        if isinstance(body, BytesIO) or not hasattr(body, "fileno"):
            data = body.read()  # small: it is in memory already
            exchange.respond(200, lines + b"Content-Length: %d\r\n" % len(data), data)
            return
        # A body spooled to a file goes back from the file with sendfile: a large upload is
        # never read into memory, and a client that does not read holds only socket buffers.
        length = body.seek(0, os.SEEK_END)
        exchange.start(200, lines + b"Content-Length: %d\r\n" % length, length)
        if exchange.head_only or not length:
            body.close()
            exchange.end()
            return

        def sent() -> None:
            exchange.on_abort(None)
            body.close()
            exchange.end()

        exchange.on_abort(body.close)
        exchange.send_file(body.fileno(), 0, length, sent)

    def home(self, exchange, request, body) -> None:
        if request.method in _SAFE_METHODS:
            page = self.home_page()
            exchange.respond(200, _HTML % len(page), page)
        else:
            method_not_allowed(exchange)

    def home_page(self) -> bytes:
        """What is running, and a link to every route."""
        worker, config = self.worker, self.config
        master = self.status.document()["master"]
        static = "".join(f"\n<li><code>{escape(mount.prefix.decode('latin-1'))}NAME</code>: files from "
                         f"<code>{mount.key}</code> (GET, HEAD)</li>" for mount in self.mounts)
        return HOME.format(
            version=escape(__version__), workers=config.worker_count, dispatch=escape(config.effective_dispatch),
            listeners=escape(", ".join(config.bind)), uptime=f"{master['uptime']:.0f} s", slot=worker.slot,
            generation=worker.generation, pid=os.getpid(), static=static).encode()

    def sleep(self, exchange, request, body) -> None:
        ms = milliseconds(exchange, request)
        if ms is not None:
            self._on_thread(exchange, _sleep, ms)

    def cpu(self, exchange, request, body) -> None:
        ms = milliseconds(exchange, request)
        if ms is None:
            return
        if self.config.effective_dispatch == "threads":
            self._on_thread(exchange, _burn, ms)
        else:
            exchange.respond(*_burn(ms))

    def _on_thread(self, exchange, work, ms: int) -> None:
        if self.queues is None:
            from prefork.workers.proactor import WorkerQueues

            self.queues = WorkerQueues(self.worker, self.config.threads)
        self.queues.submit(exchange, _completion, exchange, work, ms)

    @staticmethod
    def not_found(exchange, request, body) -> None:
        exchange.respond(404, _TEXT % 10, b"Not Found\n")


def static_mounts(config) -> list:
    """The static file mounts: static_root at /static/, then the [[static]] tables, longest URL first."""
    wanted = [(b"/static/", config.static_root, "static_root")] if config.static_root else []
    for table in config.static or ():
        wanted.append((table["url"].encode().rstrip(b"/") + b"/", table["root"], "[[static]]"))
    if not wanted:
        return []
    from .static import StaticFiles

    mounts = [StaticFiles(root, prefix, key) for prefix, root, key in wanted]
    return sorted(mounts, key=lambda mount: len(mount.prefix), reverse=True)


def method_not_allowed(exchange) -> None:
    exchange.respond(405, b"Allow: GET, HEAD\r\n" + _TEXT % 19, b"Method Not Allowed\n")


MAX_MS = 10_000  # /sleep and /cpu refuse longer: a demo route must not hold a worker for long


def milliseconds(exchange, request) -> int | None:
    """The ms=N query parameter, or None after answering 400 for a missing or bad value."""
    query = request.target.partition(b"?")[2].decode("latin-1")
    values = parse_qs(query).get("ms", ["0"])
    try:
        ms = int(values[-1])
    except ValueError:
        ms = -1
    if 0 <= ms <= MAX_MS:
        return ms
    text = b"ms must be an integer from 0 to %d\n" % MAX_MS
    exchange.respond(400, _TEXT % len(text), text)
    return None


def _sleep(ms: int):
    time.sleep(ms / 1000)
    text = b"slept %d ms\n" % ms
    return 200, _TEXT % len(text), text


def _burn(ms: int):
    """Busy-loop for ms milliseconds of this thread's CPU time."""
    end = time.thread_time() + ms / 1000
    while time.thread_time() < end:
        pass
    text = b"burned %d ms of CPU\n" % ms
    return 200, _TEXT % len(text), text


def _completion(exchange, work, ms):
    """On a handler thread: do the work, and answer from the Reactor thread."""
    return exchange.respond, work(ms)
