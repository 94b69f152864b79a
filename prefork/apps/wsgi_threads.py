"""--dispatch threads: the WSGI app runs on the worker queues' handler threads.

The Reactor builds the environ and submits the request to the worker queues
(prefork/workers/proactor.py); a handler thread runs the app and posts the response back as
completions, which the Reactor applies to the exchange. A streamed body waits on the thread
while the client's output is above its high-water mark (`StreamCredit`). Every completion goes
through the exchange: one that arrives after the connection closed does nothing.
"""

from __future__ import annotations

from prefork.workers.proactor import StreamCredit, WorkerQueues

from .environ import EnvironBuilder, FileWrapper
from .wsgi_response import (NO_BODY, WHOLE, ResponseError, _Response, apply_ending, check_chunk, join_body, large,
                            start_file, whole_response)


class ThreadedWsgi:
    def __init__(self, worker, app):
        self.app = app
        self.build = EnvironBuilder(worker.config, multithread=True).build
        self.queues = WorkerQueues(worker, worker.config.threads)

    def handle(self, exchange) -> None:
        environ = self.build(exchange)
        self.queues.submit(exchange, self.run, exchange, environ)

    # The environ holds every field: the worker's parser splits them as it parses (worker.py).
    handle.reads_every_field = True

    def run(self, exchange, environ):
        """On a handler thread: the app's whole response, as completions for the Reactor."""
        return ThreadResponse(exchange, self.queues, environ).run(self.app)


class ThreadResponse(_Response):
    """A response produced on a handler thread: every step is posted to the Reactor."""

    __slots__ = ("queues", "credit")

    def __init__(self, exchange, queues, environ):
        self.environ = environ
        self.status = self.headers = self.remaining = self.whole = self.result = None
        self.head_sent = False
        self.exchange = exchange
        self.queues = queues
        self.credit = None

    def run(self, app):
        """Call the app and produce its response; returns the final completion for the Reactor."""
        try:
            result = app(self.environ, self.start_response)
        except Exception as exc:
            return _end, (self, self.failure(exc))
        self.result = result
        try:
            if type(result) is list and not self.head_sent and not large(result, self.exchange):
                body = result[0] if len(result) == 1 else join_body(result)
                if body.__class__ is not bytes:
                    body = join_body(result)
                code, lines, length = self.head()
                if length is not None and length == len(body) and code not in NO_BODY:
                    return self.exchange.respond, (code, lines, body)  # the common case
                ending = WHOLE, (code, *whole_response(code, lines, length, body, self.exchange.head_only,
                                                       self.environ))
                return apply_ending, (self.exchange, ending)
            if type(result) is FileWrapper and not self.head_sent:
                plan = self.file_head(result)
                if plan is not None:
                    return _start_file, (self, *plan)
            for data in result:
                if data:
                    self.send(check_chunk(data))
                    if self.remaining == 0:
                        break
                    credit = self.credit
                    if credit is not None and credit.cancelled:
                        break
        except Exception as exc:
            return _end, (self, self.failure(exc))
        self.close_result()
        credit = self.credit
        if credit is not None and credit.cancelled:
            return None
        try:
            ending = self.ending()
        except ResponseError as exc:
            ending = self.failure(exc)
        return _end, (self, ending)

    def send(self, data) -> None:
        """Post a body chunk to the Reactor; wait while the client's output is too full."""
        if not self.head_sent:
            head = self.first_chunk(data)
            if head is None:
                return
            code, lines, length = head
            self.credit = credit = StreamCredit(self.exchange.high_water)
            data = self.trim(data)
            ack = credit.spend(len(data))
            self.queues.post(self.exchange, _start_stream, self, code, lines, length, data, ack)
        else:
            credit = self.credit
            if self.whole is not None or self.remaining == 0 or credit.cancelled:
                return
            data = self.trim(data)
            ack = credit.spend(len(data))
            self.queues.post(self.exchange, _send_stream, self, data, ack)
        if ack:
            credit.wait()

    def file_cancelled(self) -> None:
        self.close_result()


# Completions: run on the Reactor thread, in the order the handler thread posted them.

def _start_stream(response: ThreadResponse, code, lines, length, data, ack) -> None:
    exchange = response.exchange
    if exchange.closed:
        response.credit.cancel()
        return
    exchange.start(code, lines, length)
    exchange.on_abort(response.credit.cancel)
    exchange.send(data)
    if ack:
        response.credit.acknowledge(exchange)


def _send_stream(response: ThreadResponse, data, ack) -> None:
    exchange = response.exchange
    if exchange.closed:
        response.credit.cancel()
        return
    exchange.send(data)
    if ack:
        response.credit.acknowledge(exchange)


def _end(response: ThreadResponse, ending) -> None:
    exchange = response.exchange
    exchange.on_abort(None)
    apply_ending(exchange, ending)


def _start_file(response: ThreadResponse, code, lines, length, plan) -> None:
    exchange = response.exchange
    if exchange.closed:
        response.close_result()
        return
    start_file(exchange, code, lines, length, plan, response.file_cancelled, response.file_done)
