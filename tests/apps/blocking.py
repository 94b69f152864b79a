"""A test WSGI app whose /block request blocks the thread it runs on (with --dispatch inline:
the worker's Reactor), so the worker stops sending heartbeats."""

import time


def app(environ, start_response):
    if environ["PATH_INFO"] == "/block":
        time.sleep(120)
    start_response("200 OK", [("Content-Type", "text/plain"), ("Content-Length", "2")])
    return [b"ok"]
