"""Hosting a WSGI application (PEP 3333), on the Reactor thread or on the worker queues.

Two dispatch paths, chosen with --dispatch: inline (wsgi_inline.py: the Reactor thread calls
the app) and threads (wsgi_threads.py: handler threads call it, and post the response back).
Both apply the same rules (wsgi_response.py): the app's status and headers are checked and any
breach is a 500 with one log line; an exception is a 500 with the traceback in the error log
only; the iterable's close() is always called; a body without Content-Length goes out chunked
on HTTP/1.1 and ends with the connection on HTTP/1.0; a `wsgi.file_wrapper` over a regular
file is sent from the file (os.sendfile; read and written over TLS). The environ is built in
environ.py.
"""

from __future__ import annotations

from .wsgi_inline import InlineWsgi
from .wsgi_response import ResponseError, response_head
from .wsgi_threads import ThreadedWsgi

__all__ = ["InlineWsgi", "ResponseError", "ThreadedWsgi", "request_handler", "response_head"]


def request_handler(worker, app=None):
    """The worker's request handler: the WSGI app (given, or loaded from config.app) or the built-in site."""
    config = worker.config
    if app is None and config.app:
        from .loader import load_app

        app = load_app(config.app, config.chdir)
    if app is None:
        from .site import Site

        return Site(worker).handle
    if config.effective_dispatch == "inline":
        return InlineWsgi(worker, app).handle
    return ThreadedWsgi(worker, app).handle
