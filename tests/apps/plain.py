"""A plain WSGI test app: one route per PEP 3333 behaviour the server must get right.

`app` is wrapped in wsgiref.validate.validator, with its warnings turned into errors, so any
breach of PEP 3333 by the server becomes a 500 and a traceback in the log. `raw` is the same
app unwrapped: for routes that break the rules on purpose (bad headers, a str body), and for
file responses (the validator's iterator wrapper hides wsgi.file_wrapper from the server).
"""

import hashlib
import io
import json
import os
import sys
import time
import warnings
from urllib.parse import parse_qs
from wsgiref.validate import WSGIWarning, validator

warnings.simplefilter("error", WSGIWarning)

TEXT = [("Content-Type", "text/plain")]
closes = {"count": 0}  # iterables closed by the server
file_reads = {"count": 0}  # read() calls on served files: 0 when sent with os.sendfile


def _json(start_response, data, status="200 OK"):
    body = json.dumps(data).encode()
    start_response(status, [("Content-Type", "application/json"), ("Content-Length", str(len(body)))])
    return [body]


def _query(environ):
    return {k: v[-1] for k, v in parse_qs(environ["QUERY_STRING"]).items()}


class Closable:
    """A body that counts its close() calls."""

    def __init__(self, parts):
        self.parts = parts

    def __iter__(self):
        return iter(self.parts)

    def close(self):
        closes["count"] += 1


class CountingFile(io.FileIO):
    def read(self, *args):
        file_reads["count"] += 1
        return super().read(*args)


def hello(environ, start_response):
    start_response("200 OK", TEXT + [("Content-Length", "13")])
    return [b"Hello, World!"]


def environ_dump(environ, start_response):
    keys = {k: v for k, v in environ.items() if isinstance(v, (str, bool, tuple))}
    # An app may change its environ: the next request must not see it (the server memoizes).
    keys["test.changed_before"] = environ.get("test.changed", False)
    environ["test.changed"] = True
    environ["PATH_INFO"] = "/changed"
    return _json(start_response, keys)


def input_methods(environ, start_response):
    """The body read back through each wsgi.input method in turn, named by ?how=."""
    stream = environ["wsgi.input"]
    how = _query(environ).get("how", "read")
    if how == "read":
        data = stream.read(int(environ.get("CONTENT_LENGTH") or 0))
    elif how == "read-parts":
        data = b"".join(iter(lambda: stream.read(7), b""))
    elif how == "readline":
        data = b"".join(iter(lambda: stream.readline(5), b""))
    elif how == "readlines":
        data = b"".join(stream.readlines())
    else:  # iteration
        data = b"".join(line for line in stream)
    return _json(start_response, {"size": len(data), "sha256": hashlib.sha256(data).hexdigest(),
                                  "content_length": environ.get("CONTENT_LENGTH")})


def stream(environ, start_response):
    """?n= chunks of ?size= bytes, without Content-Length (chunked on HTTP/1.1)."""
    query = _query(environ)
    count, size = int(query.get("n", 3)), int(query.get("size", 5))
    start_response("200 OK", TEXT)
    for i in range(count):
        yield bytes([97 + i % 26]) * size


def stream_with_length(environ, start_response):
    parts = [b"abc", b"", b"defg", b"hij"]
    start_response("200 OK", TEXT + [("Content-Length", "10")])
    return Closable(parts)


def big(environ, start_response):
    """?mb= megabytes in 64 KiB chunks, generated as they are asked for."""
    mb = int(_query(environ).get("mb", 1))
    start_response("200 OK", [("Content-Type", "application/octet-stream"),
                              ("Content-Length", str(mb << 20))])
    chunk = b"x" * 65536
    return Closable(chunk for _ in range(mb * 16))


def big_list(environ, start_response):
    """A list body of ?mb= items, the same 1 MiB object each time (the app holds 1 MiB)."""
    mb = int(_query(environ).get("mb", 1))
    start_response("200 OK", [("Content-Type", "application/octet-stream"), ("Content-Length", str(mb << 20))])
    return [b"L" * (1 << 20)] * mb


def write_then_iterate(environ, start_response):
    write = start_response("200 OK", TEXT)
    write(b"written-")
    write(b"then-")
    return [b"returned"]


def exc_info_page(environ, start_response):
    """An app that catches its own error and replaces its headers (start_response exc_info)."""
    start_response("200 OK", TEXT)
    try:
        raise ValueError("the app's own error")
    except ValueError:
        start_response("503 Service Unavailable", TEXT, sys.exc_info())
    return [b"handled by the app"]


def exc_info_late(environ, start_response):
    """exc_info after the head went out: start_response re-raises, the response is cut short."""
    start_response("200 OK", TEXT)
    yield b"head sent"
    try:
        raise ValueError("late trouble")
    except ValueError:
        start_response("500 Internal Server Error", TEXT, sys.exc_info())
    yield b"never sent"


def errors_stream(environ, start_response):
    errors = environ["wsgi.errors"]
    errors.write("app says: first line\napp says: second")
    errors.writelines([" line\n"])
    errors.flush()
    start_response("200 OK", TEXT)
    return [b"logged"]


def fail(environ, start_response):
    raise RuntimeError("boom: the app failed")


def fail_after_start(environ, start_response):
    """Fails in the middle of a streamed body: the response must be cut short, not completed."""
    start_response("200 OK", TEXT)
    yield b"first part"
    raise RuntimeError("boom: failed mid-stream")


def closable(environ, start_response):
    start_response("200 OK", TEXT)
    return Closable([b"closable"])


def close_count(environ, start_response):
    return _json(start_response, {"closes": closes["count"], "file_reads": file_reads["count"]})


def sleep(environ, start_response):
    ms = int(_query(environ).get("ms", 100))
    time.sleep(ms / 1000)
    start_response("200 OK", TEXT)
    return [b"slept"]


def file(environ, start_response):
    path = _query(environ)["path"]
    size = os.path.getsize(path)
    start_response("200 OK", [("Content-Type", "application/octet-stream"), ("Content-Length", str(size))])
    return environ["wsgi.file_wrapper"](CountingFile(path, "r"), 65536)


def no_content(environ, start_response):
    start_response("204 No Content", [])
    return []


def bad_header(environ, start_response):
    kind = _query(environ)["kind"]
    header = {
        "crlf": ("X-Bad", "one\r\nInjected: yes"),
        "nul": ("X-Bad", "a\0b"),
        "name": ("Bad Name", "x"),
        "latin1": ("X-Bad", "\u20ac"),
        "vt": ("X-Bad", "a\x0bb"),
        "ff": ("X-Bad", "a\x0cb"),
        "esc": ("X-Bad", "a\x1b[31m"),
        "del": ("X-Bad", "a\x7fb"),
        "nel": ("X-Bad", "line\x85next"),  # latin-1 text: NEL, a control
    }[kind]
    start_response("200 OK", TEXT + [header])
    return [b"must not be sent"]


def status_as_asked(environ, start_response):
    """?status= as the status line, with a header the app frames its own way (?header=Name:Value;
    with &utf8=1 its value is UTF-8 passed through latin-1, as PEP 3333 carries other encodings;
    with &stream=1 the body is a generator, streamed)."""
    query = _query(environ)
    headers = list(TEXT)
    if "header" in query:
        name, value = query["header"].split(":", 1)
        headers.append((name, value.encode().decode("latin-1") if "utf8" in query else value))
    start_response(query["status"], headers)
    if "stream" in query:  # a generator: streamed, chunked (start/send/end)
        return (part for part in [b"as ", b"asked"])
    return [b"as asked"]


def str_body(environ, start_response):
    start_response("200 OK", TEXT)
    return ["a str, not bytes"]


def bad_status(environ, start_response):
    start_response("OK", TEXT)
    return [b"no code"]


ROUTES = {
    "/hello": hello,
    "/environ": environ_dump,
    "/input": input_methods,
    "/stream": stream,
    "/stream-length": stream_with_length,
    "/big": big,
    "/big-list": big_list,
    "/write": write_then_iterate,
    "/exc-info": exc_info_page,
    "/exc-info-late": exc_info_late,
    "/errors": errors_stream,
    "/fail": fail,
    "/fail-after-start": fail_after_start,
    "/closable": closable,
    "/closes": close_count,
    "/sleep": sleep,
    "/file": file,
    "/no-content": no_content,
    "/bad-header": bad_header,
    "/str-body": str_body,
    "/as-asked": status_as_asked,
    "/bad-status": bad_status,
}


def raw(environ, start_response):
    path = environ["PATH_INFO"]
    route = ROUTES.get(path) or (environ_dump if path.startswith("/environ") else None)
    if route is None:
        start_response("404 Not Found", TEXT)
        return [b"no such route\n"]
    return route(environ, start_response)


app = validator(raw)


def create_app():
    """A factory, for module:factory()."""
    return app
