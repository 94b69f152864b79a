"""The request side of WSGI hosting: the PEP 3333 environ, wsgi.errors and wsgi.file_wrapper.

The environ is built on the Reactor thread for both dispatch paths, so a handler thread never
reads the connection. This runs for every request: it is kept lean (measured with callgrind:
a template copy, a handful of decodes, memo tables for header names and Host values).
"""

from __future__ import annotations

import logging
import os
import threading
from urllib.parse import unquote_to_bytes

from prefork import __version__

log = logging.getLogger("prefork")

_CACHE_LIMIT = 512  # entries per memo table; they stop growing there (names and hosts repeat)


class FileWrapper:
    """`wsgi.file_wrapper`: returned as is, a regular file is sent with os.sendfile; else iterated."""

    def __init__(self, filelike, blksize: int = 65536):
        self.filelike = filelike
        self.blksize = blksize
        if hasattr(filelike, "close"):
            self.close = filelike.close

    def __iter__(self):
        return self

    def __next__(self) -> bytes:
        data = self.filelike.read(self.blksize)
        if data:
            return data
        raise StopIteration


class ErrorStream:
    """`wsgi.errors`: what the app writes goes to the error log, one record per line."""

    def __init__(self):
        self.lock = threading.Lock()
        self.partial = ""

    def write(self, text: str) -> None:
        with self.lock:
            text = self.partial + text
            *lines, self.partial = text.split("\n")
        for line in lines:
            log.error("%s", line)

    def writelines(self, lines) -> None:
        for line in lines:
            self.write(line)

    def flush(self) -> None:
        with self.lock:
            partial, self.partial = self.partial, ""
        if partial:
            log.error("%s", partial)


_METHODS = {m.encode(): m for m in ("GET", "HEAD", "POST", "PUT", "DELETE", "PATCH", "OPTIONS", "TRACE")}
_PROTOCOLS = {b"1.1": "HTTP/1.1", b"1.0": "HTTP/1.0"}
_KEYS = {b"content-type": "CONTENT_TYPE", b"content-length": "CONTENT_LENGTH"}  # header -> environ key
_HOSTS: dict = {}  # Host value -> (SERVER_NAME, SERVER_PORT)


def _environ_key(name: bytes) -> str:
    """HTTP_* key for a header name; "" for a name with "_", dropped so it cannot shadow a "-" one."""
    key = "" if b"_" in name else "HTTP_" + name.decode("latin-1").upper().replace("-", "_")
    if len(_KEYS) < _CACHE_LIMIT:
        _KEYS[name] = key
    return key


def _split_host(host: str) -> tuple[str, str]:
    server = _HOSTS.get(host)
    if server is None:
        if host.startswith("["):
            name, _, rest = host.partition("]")
            name += "]"
            port = rest[1:] if rest.startswith(":") else ""
        else:
            name, _, port = host.rpartition(":")
            if not name:
                name, port = host, ""
        server = (name, port if port.isdigit() else "80")
        if len(_HOSTS) < _CACHE_LIMIT:
            _HOSTS[host] = server
    return server


def _path_info(path: bytes) -> str:
    if not path.startswith(b"/"):
        if path == b"*":
            return ""
        # absolute-form (a proxy request): drop scheme and authority
        slash = path.find(b"/", path.find(b"://") + 3) if b"://" in path else -1
        path = path[slash:] if slash >= 0 else b"/"
    if b"%" in path:
        path = unquote_to_bytes(path)
    return path.decode("latin-1")


class EnvironBuilder:
    """Builds the PEP 3333 environ of a request, on the Reactor thread.

    A copy of a per-worker template holding the constant keys, then the request's own: copying
    measured faster than a dict literal of all the keys.

    A repeated head costs one copy: the parser returns the very same `Request` when a
    connection sends the same bodiless head again (keep-alive polling, health checks, load
    tests), and the environ is a pure function of that request and its connection. So the
    second time a Request is seen its environ is kept (a copy: apps may change theirs), and
    from the third time on it is copied from there.
    """

    def __init__(self, config, multithread: bool):
        # connection id -> (request, environ, or None when seen once): one entry per descriptor, so
        # bounded by the open-file limit. A Request comes from one connection's parser only,
        # and the entry keeps it alive, so `is` on it is a safe test.
        self.repeats: dict = {}
        self.template = {
            # Every key a request sets is here too, so the copy never has to grow.
            "REQUEST_METHOD": "", "SCRIPT_NAME": "", "PATH_INFO": "", "QUERY_STRING": "", "RAW_URI": "",
            "SERVER_PROTOCOL": "", "SERVER_NAME": "", "SERVER_PORT": "", "REMOTE_ADDR": "", "REMOTE_PORT": "",
            "SERVER_SOFTWARE": "prefork/" + __version__,
            "wsgi.version": (1, 0),
            "wsgi.url_scheme": "http",
            "wsgi.input": None,
            "wsgi.errors": ErrorStream(),
            "wsgi.multithread": multithread,
            "wsgi.multiprocess": config.worker_count > 1,
            "wsgi.run_once": False,
            "wsgi.input_terminated": True,
            "wsgi.file_wrapper": FileWrapper,
        }

    def build(self, exchange) -> dict:
        request = exchange.request
        body = exchange.body
        fd = exchange.connection_id
        seen = self.repeats.get(fd)
        if seen is not None and seen[0] is request:
            environ = seen[1]
            if environ is not None:
                environ = environ.copy()
                environ["wsgi.input"] = body
                return environ
            environ = self._build(exchange, request, body)
            self.repeats[fd] = (request, environ.copy())
            return environ
        if not request.has_body:  # only bodiless heads are ever repeated by the parser
            self.repeats[fd] = (request, None)
        return self._build(exchange, request, body)

    def _build(self, exchange, request, body) -> dict:
        environ = self.template.copy()
        target = request.target
        path, _, query = target.partition(b"?")
        method = request.method
        environ["REQUEST_METHOD"] = _METHODS.get(method) or method.decode("latin-1")
        # `37 not in path` (b"%"): an int test is a memchr; a bytes test costs ten times more.
        environ["PATH_INFO"] = path.decode("latin-1") if path and path[0] == 47 and 37 not in path else _path_info(path)
        environ["QUERY_STRING"] = query.decode("latin-1")
        environ["RAW_URI"] = target.decode("latin-1")
        environ["SERVER_PROTOCOL"] = _PROTOCOLS[request.version]
        client = exchange.client
        environ["REMOTE_ADDR"] = client[0]
        environ["REMOTE_PORT"] = str(client[1]) if client[0] else ""
        environ["wsgi.input"] = body
        keys = _KEYS
        for name, value in request.headers:
            key = keys.get(name)
            if key is None:
                key = _environ_key(name)
            if not key:
                continue
            if key in environ:
                environ[key] += ("; " if key == "HTTP_COOKIE" else ", ") + value.decode("latin-1")
            else:
                environ[key] = value.decode("latin-1")
        secure = exchange.secure
        if secure:
            environ["wsgi.url_scheme"] = "https"
        host = environ.get("HTTP_HOST")
        if host:
            environ["SERVER_NAME"], environ["SERVER_PORT"] = _HOSTS.get(host) or _split_host(host)
            if secure and environ["SERVER_PORT"] == "80" and ":" not in host:
                environ["SERVER_PORT"] = "443"  # a Host without a port names the scheme's default
        else:
            local = exchange.local_address()
            environ["SERVER_NAME"], environ["SERVER_PORT"] = (
                (str(local[0]), str(local[1])) if isinstance(local, tuple) else ("localhost", "443" if secure else "80"))
        if exchange.trusted and ("HTTP_X_FORWARDED_FOR" in environ or "HTTP_X_FORWARDED_PROTO" in environ
                             or "HTTP_FORWARDED" in environ):
            self._forwarded(exchange, environ)
        if request.chunked:
            body.seek(0, os.SEEK_END)
            environ["CONTENT_LENGTH"] = str(body.tell())  # the whole body is read: its length is known
            body.seek(0)
        return environ

    @staticmethod
    def _forwarded(exchange, environ) -> None:
        """From a trusted proxy: the client it names, and the scheme the client used."""
        client, scheme = exchange.client_and_scheme()
        if client != environ["REMOTE_ADDR"]:
            environ["REMOTE_ADDR"] = client
            environ["REMOTE_PORT"] = ""  # the proxy's headers do not say the client's port
        if scheme is not None:
            environ["wsgi.url_scheme"] = scheme
            if scheme == "https" and environ["SERVER_PORT"] == "80" and ":" not in environ.get("HTTP_HOST", ":"):
                environ["SERVER_PORT"] = "443"
