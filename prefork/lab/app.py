"""The lab's protocol as a WSGI application, for the real server (the `prefork` model)."""

from __future__ import annotations

from . import protocol


def application(environ, start_response):
    target = environ.get("PATH_INFO", "/") + ("?" + environ["QUERY_STRING"] if environ.get("QUERY_STRING") else "")
    try:
        token, cpu_us, sleep_ms = protocol.parse_target(target)
    except ValueError:
        start_response("400 Bad Request", [("Content-Type", "text/plain")])
        return [b"bad request\n"]
    protocol.work(cpu_us, sleep_ms)
    body = token.encode() + b"\n"
    start_response("200 OK", [("Content-Type", "text/plain"), ("Content-Length", str(len(body)))])
    return [body]
