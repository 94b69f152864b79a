"""A test app whose worker process dies (exit code 5) on GET /crash, as a request that hits a
crashing bug would make it; every other path answers "ok"."""

import os


def app(environ, start_response):
    if environ["PATH_INFO"] == "/crash":
        os._exit(5)
    start_response("200 OK", [("Content-Type", "text/plain"), ("Content-Length", "2")])
    return [b"ok"]
