"""A test app whose worker dies (exit code 7) a moment after it started serving: a crash loop."""

import os
import threading

threading.Timer(0.2, os._exit, (7,)).start()


def app(environ, start_response):
    start_response("200 OK", [("Content-Length", "0")])
    return [b""]
