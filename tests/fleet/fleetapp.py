"""The app every fleet host runs: it answers which host served, which version, and for whom.

A rolling deploy rewrites VERSION in a host's copy of this file, then reloads that host.
"""

import os

VERSION = "v1"
HOST = os.environ.get("FLEET_HOST", "unnamed")


def application(environ, start_response):
    # REMOTE_ADDR: the client's address, as the PROXY header (or X-Forwarded-For) gave it
    body = f"{HOST} {VERSION} {environ['REMOTE_ADDR']}\n".encode()
    start_response("200 OK", [("Content-Type", "text/plain"), ("Content-Length", str(len(body)))])
    return [body]
