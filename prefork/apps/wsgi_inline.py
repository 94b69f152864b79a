"""--dispatch inline: the Reactor thread calls the WSGI app (for apps that never block).

A list body is joined and answered with one `respond()`, the fast path; any other iterable is
streamed with `start/send/end`, pausing while the client's output is above its high-water
mark and resuming when it has read enough (`when_writable`).
"""

from __future__ import annotations

from .environ import EnvironBuilder, FileWrapper
from .wsgi_response import (NO_BODY, ResponseError, _Response, apply_ending, check_chunk, join_body, large,
                            response_head, start_file, whole_response)


class InlineWsgi:
    def __init__(self, worker, app):
        self.app = app
        self.build = EnvironBuilder(worker.config, multithread=False).build

    def handle(self, exchange) -> None:
        environ = self.build(exchange)
        response = InlineResponse(exchange, environ)
        try:
            result = self.app(environ, response.start_response)
            if type(result) is list and not response.head_sent and not large(result, exchange):
                # The fast path: the whole body is here, answer it with one respond().
                status = response.status
                if status is None:
                    raise ResponseError("the app returned without calling start_response()")
                body = result[0] if len(result) == 1 else join_body(result)
                if body.__class__ is not bytes:
                    body = join_body(result)
                code, lines, length, style = response_head(status, response.headers)
                if style is not None:
                    exchange.head_style = style
                if length is not None and length == len(body) and code not in NO_BODY:
                    exchange.respond(code, lines, body)
                    return
                exchange.respond(code, *whole_response(code, lines, length, body, exchange.head_only, environ))
                return
        except Exception as exc:
            response.fail(exc)
            return
        response.serve(result)

    # The environ holds every field: the worker's parser splits them as it parses (worker.py).
    handle.reads_every_field = True


class InlineResponse(_Response):
    """A response produced on the Reactor thread: streamed straight into the exchange."""

    __slots__ = ("iterator", "cancelled")

    def __init__(self, exchange, environ):
        # _Response's fields set here, not by super().__init__(): one call less per request.
        self.environ = environ
        self.status = self.headers = self.remaining = self.whole = self.result = self.iterator = None
        self.head_sent = self.cancelled = False
        self.exchange = exchange

    def serve(self, result) -> None:
        """The app returned `result` (not a list answered whole): stream it."""
        self.result = result
        exchange = self.exchange
        if exchange.closed:  # write() met a broken connection
            self.cancel()
            return
        try:
            if type(result) is FileWrapper and not self.head_sent:
                plan = self.file_head(result)
                if plan is not None:
                    start_file(exchange, *plan, self.cancel, self.file_done)
                    return
            self.iterator = iter(result)
        except Exception as exc:
            self.fail(exc)
            return
        exchange.on_abort(self.cancel)
        self.pump()

    def pump(self) -> None:
        """Iterate the body until it ends or the client's output is above its high-water mark."""
        exchange = self.exchange
        try:
            for data in self.iterator:
                if data:
                    self.send(check_chunk(data))
                    if exchange.closed:
                        if not self.cancelled:
                            self.cancel()
                        return
                    if self.remaining == 0:
                        break
                    if not exchange.writable:
                        exchange.when_writable(self.pump)  # resume once the client has read enough
                        return
        except Exception as exc:
            self.fail(exc)
            return
        if self.cancelled:
            return
        self.finish()

    def send(self, data) -> None:
        exchange = self.exchange
        if not self.head_sent:
            head = self.first_chunk(data)
            if head is None:
                return
            exchange.start(*head)
        elif self.whole is not None or self.remaining == 0:
            return
        exchange.send(self.trim(data))

    def finish(self) -> None:
        exchange = self.exchange
        exchange.on_abort(None)
        self.close_result()
        if exchange.closed:
            return
        try:
            ending = self.ending()
        except ResponseError as exc:
            self.fail(exc)
            return
        apply_ending(exchange, ending)

    def fail(self, exc: BaseException) -> None:
        exchange = self.exchange
        exchange.on_abort(None)
        apply_ending(exchange, self.failure(exc))

    def cancel(self) -> None:
        """The connection closed under the response: stop and release the body."""
        self.cancelled = True
        self.close_result()



