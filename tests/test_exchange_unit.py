"""The connection, its transport and the exchange, in-process over socketpairs.

A real Worker (not run: its Reactor is driven by hand or for a bounded time) adopts one end of
a socketpair; the test is the client on the other end.
"""

from __future__ import annotations

import socket
import threading
import time

import pytest

from prefork import config as configuration
from prefork.apps.wsgi import InlineWsgi, ThreadedWsgi
from prefork.workers.reactor import EPOLLIN, EPOLLOUT
from prefork.workers.worker import Worker

OK = b"Content-Length: 2\r\n"
EMPTY = b"Content-Length: 0\r\n"


def make_worker(handler, **settings):
    return Worker(configuration.load(None, settings), [], handler=handler)


def pair(worker, sndbuf=None):
    server, client = socket.socketpair()
    if sndbuf:
        server.setsockopt(socket.SOL_SOCKET, socket.SO_SNDBUF, sndbuf)
    client.settimeout(5)
    return worker.adopt(server, ("127.0.0.1", 1)), client


def run_until(worker, done, timeout=5.0) -> None:
    """Run the worker's Reactor until done() is true (checked every few ms), at most timeout s."""
    reactor = worker.reactor
    limit = time.monotonic() + timeout

    def check():
        if done() or time.monotonic() > limit:
            reactor.stop()
        else:
            reactor.call_later(0.002, check)

    reactor.call_later(0, check)
    reactor.run()
    assert done(), "condition not reached in time"


def read_responses(client, count, timeout=5.0) -> list[bytes]:
    """count whole responses with Content-Length bodies, as bytes each."""
    data = b""
    limit = time.monotonic() + timeout
    responses = []
    while len(responses) < count and time.monotonic() < limit:
        end = data.find(b"\r\n\r\n")
        if end >= 0:
            head = data[:end]
            length = int(head.split(b"Content-Length: ")[1].split(b"\r\n")[0]) if b"Content-Length: " in head else 0
            if len(data) >= end + 4 + length:
                responses.append(data[:end + 4 + length])
                data = data[end + 4 + length:]
                continue
        chunk = client.recv(65536)
        if not chunk:
            break
        data += chunk
    return responses


# -- late completions -----------------------------------------------------------------------------

def test_a_late_completion_cannot_reach_the_next_requests_exchange():
    exchanges = []

    def handler(exchange):
        exchanges.append(exchange)
        if exchange.request.target == b"/a":
            exchange.respond(200, OK, b"aa")

    worker = make_worker(handler)
    conn, client = pair(worker)
    client.sendall(b"GET /a HTTP/1.1\r\nHost: t\r\n\r\nGET /b HTTP/1.1\r\nHost: t\r\n\r\n")
    conn.transport.on_events(EPOLLIN)
    first, second = exchanges
    assert first.closed and not second.closed
    # What a handler thread still holding /a's exchange might post now: it goes nowhere.
    first.respond(500, OK, b"no")
    first.start(200, b"", None)
    first.send(b"stale")
    first.end()
    first.fail()
    assert not second.closed
    second.respond(200, OK, b"bb")
    conn.transport.flush()
    responses = read_responses(client, 2)
    assert [r[-2:] for r in responses] == [b"aa", b"bb"]
    assert all(r.startswith(b"HTTP/1.1 200 OK\r\n") for r in responses)
    client.close()
    conn.abort()


def test_a_closed_connection_calls_on_abort_once_and_ignores_what_follows():
    aborted = []
    kept = []

    def handler(exchange):
        kept.append(exchange)
        exchange.on_abort(lambda: aborted.append(True))

    worker = make_worker(handler)
    conn, client = pair(worker)
    client.sendall(b"GET / HTTP/1.1\r\nHost: t\r\n\r\n")
    conn.transport.on_events(EPOLLIN)
    client.close()
    conn.transport.on_events(EPOLLIN)  # EOF with the response pending: still waiting for it
    conn.abort()
    conn.abort()
    (exchange,) = kept
    assert aborted == [True]
    assert exchange.closed
    exchange.respond(200, OK, b"ok")  # nothing to write to, and no exception
    assert conn.worker.requests == 1 and not conn.worker.connections


# -- keep-alive decisions ---------------------------------------------------------------------------

@pytest.mark.parametrize("streamed", [False, True])
def test_a_half_closed_client_is_told_close_on_whole_and_streamed_responses(streamed):
    def handler(exchange):
        if streamed:
            exchange.start(200, OK, 2)
            exchange.send(b"ok")
            exchange.end()
        else:
            exchange.respond(200, OK, b"ok")

    worker = make_worker(handler)
    conn, client = pair(worker)
    client.sendall(b"GET / HTTP/1.1\r\nHost: t\r\n\r\n")
    client.shutdown(socket.SHUT_WR)
    conn.transport.read_closed = True  # as the transport records an EOF it has read
    conn.transport.on_events(EPOLLIN)
    (response,) = read_responses(client, 1)
    assert b"\r\nConnection: close\r\n" in response
    assert conn.closed or conn.transport.lingering
    client.close()
    conn.abort()


@pytest.mark.parametrize("request_head, stays_open", [
    (b"GET / HTTP/1.1\r\nHost: t\r\n\r\n", True),  # RFC 9112 9.3: 1.1 persists by default
    (b"GET / HTTP/1.1\r\nHost: t\r\nConnection: close\r\n\r\n", False),  # 9.6: close is final
    (b"GET / HTTP/1.0\r\n\r\n", False),  # 9.3: 1.0 closes unless keep-alive is asked
    (b"GET / HTTP/1.0\r\nConnection: keep-alive\r\n\r\n", True),
])
def test_keep_alive_follows_the_request(request_head, stays_open):
    worker = make_worker(lambda exchange: exchange.respond(200, OK, b"ok"))
    conn, client = pair(worker)
    client.sendall(request_head)
    conn.transport.on_events(EPOLLIN)
    (response,) = read_responses(client, 1)
    transport = conn.transport
    assert (not (transport.closing or transport.lingering or transport.closed)) == stays_open
    assert (b"Connection: close" in response) == (not stays_open)
    client.close()
    conn.abort()


# -- the transport's backpressure -------------------------------------------------------------------

def test_output_above_high_water_stops_reading_and_drains_with_one_callback():
    high_water = 64 * 1024
    drained = []
    holder = []

    def handler(exchange):
        holder.append(exchange)
        exchange.start(200, b"", None)
        exchange.send(b"x" * (4 * high_water))

    worker = make_worker(handler, high_water=high_water)
    conn, client = pair(worker, sndbuf=4096)
    transport = conn.transport
    client.sendall(b"GET / HTTP/1.1\r\nHost: t\r\n\r\nGET /next HTTP/1.1\r\nHost: t\r\n\r\n")
    transport.on_events(EPOLLIN)
    (exchange,) = holder
    assert transport.out_len > high_water and not exchange.writable
    assert transport.interest == EPOLLOUT  # not reading while the client does not read
    exchange.when_writable(lambda: drained.append(transport.out_len))
    got = 0
    while not drained and got < 8 * high_water:
        got += len(client.recv(65536))
        transport.on_events(EPOLLOUT)
    assert drained and drained[0] < high_water // 2  # called once, below half the mark
    assert exchange.writable
    transport.on_events(EPOLLOUT)
    assert len(drained) == 1
    exchange.end()
    client.close()
    conn.abort()


def test_a_producer_is_stopped_by_on_abort_when_the_client_goes():
    stopped = []

    def handler(exchange):
        exchange.start(200, b"", None)
        exchange.send(b"x" * (1 << 20))
        exchange.when_writable(lambda: stopped.append("drain"))
        exchange.on_abort(lambda: stopped.append("abort"))

    worker = make_worker(handler, send_timeout=0.05)
    conn, client = pair(worker, sndbuf=4096)
    client.sendall(b"GET / HTTP/1.1\r\nHost: t\r\n\r\n")
    conn.transport.on_events(EPOLLIN)
    run_until(worker, lambda: conn.closed)  # the client reads nothing: send_timeout closes it
    assert stopped == ["abort"]
    client.close()


# -- both WSGI paths ------------------------------------------------------------------------------

def streaming_app(environ, start_response):
    start_response("200 OK", [("Content-Type", "text/plain")])
    for index in range(3):
        yield b"part%d;" % index


def listed_app(environ, start_response):
    body = environ["PATH_INFO"].encode()
    start_response("200 OK", [("Content-Length", str(len(body)))])
    return [body]


def failing_app(environ, start_response):
    raise RuntimeError("the app broke")


@pytest.mark.parametrize("dispatch", ["inline", "threads"])
def test_both_wsgi_paths_answer_pipelined_requests_in_order(dispatch):
    wsgi = {"inline": InlineWsgi, "threads": ThreadedWsgi}[dispatch]
    worker = Worker(configuration.load(None, {"threads": 2}), [], handlers=lambda w: {"http": wsgi(w, listed_app).handle})
    conn, client = pair(worker)
    client.sendall(b"".join(b"GET /%d HTTP/1.1\r\nHost: t\r\n\r\n" % n for n in range(5)))
    run_until(worker, lambda: worker.requests == 5 and conn.exchange is None and not conn.transport.out_len)
    responses = read_responses(client, 5)
    assert [r.rsplit(b"\r\n\r\n", 1)[1] for r in responses] == [b"/%d" % n for n in range(5)]
    client.close()
    conn.abort()


@pytest.mark.parametrize("dispatch", ["inline", "threads"])
def test_both_wsgi_paths_stream_chunked_and_fail_with_500(dispatch):
    wsgi = {"inline": InlineWsgi, "threads": ThreadedWsgi}[dispatch]

    def route(exchange):
        app = failing_app if exchange.request.target == b"/fail" else streaming_app
        handlers[app].handle(exchange)

    worker = Worker(configuration.load(None, {"threads": 2}), [], handler=route)
    handlers = {app: wsgi(worker, app) for app in (streaming_app, failing_app)}
    conn, client = pair(worker)
    client.sendall(b"GET /stream HTTP/1.1\r\nHost: t\r\n\r\nGET /fail HTTP/1.1\r\nHost: t\r\n\r\n")
    run_until(worker, lambda: worker.requests == 2 and conn.exchange is None and not conn.transport.out_len)
    data = b""
    while b"500 Internal Server Error" not in data or not data.endswith(b"\n"):
        data += client.recv(65536)
    assert b"Transfer-Encoding: chunked" in data
    assert b"6\r\npart0;\r\n6\r\npart1;\r\n6\r\npart2;\r\n0\r\n\r\n" in data
    assert data.index(b"part2") < data.index(b"HTTP/1.1 500")
    client.close()
    conn.abort()


def test_a_threaded_response_posted_after_the_client_left_is_dropped():
    release = threading.Event()
    finished = []

    def slow_app(environ, start_response):
        release.wait(5)
        start_response("200 OK", [("Content-Length", "2")])
        finished.append(True)
        return [b"ok"]

    worker = Worker(configuration.load(None, {"threads": 1}), [],
                    handlers=lambda w: {"http": ThreadedWsgi(w, slow_app).handle})
    conn, client = pair(worker)
    client.sendall(b"GET / HTTP/1.1\r\nHost: t\r\n\r\n")
    conn.transport.on_events(EPOLLIN)
    client.close()
    conn.abort()
    release.set()
    run_until(worker, lambda: finished and worker.queues.in_flight == 0)
    assert worker.stats is not None and not worker.connections


@pytest.mark.parametrize("method, head_only", [(b"GET", False), (b"HEAD", True)])
def test_the_connection_sets_every_field_of_the_exchange(method, head_only):
    """Exchange has no __init__: the connection sets its fields, every one of them, to what
    exchange.py says they start as."""
    from prefork.workers.exchange import Exchange

    seen = []
    worker = make_worker(lambda exchange: seen.append((exchange, {name: getattr(exchange, name, "unset")
                                                                   for name in Exchange.__slots__})))
    conn, client = pair(worker)
    client.sendall(method + b" / HTTP/1.1\r\nHost: t\r\n\r\n")
    conn.transport.on_events(EPOLLIN)
    (exchange, fields) = seen[0]
    assert fields == {"conn": conn, "request": conn.request, "body": exchange.body, "head_only": head_only,
                      "head_style": None, "abort_callback": None, "connection_id": conn.fd}
    assert exchange.body.read() == b""
    client.close()
    conn.abort()


# -- respond()'s written-out copies of _finished() and Worker.response_done() --------------------------

def _ending(whole: bool, head: bytes, later: bool, access_log: bool, stopping: bool):
    """Two pipelined requests, the first answered whole (respond) or streamed (start/send/end,
    which end in conn._finished); the state the first response leaves, and what was counted
    and logged."""
    held = []

    def handler(exchange):
        if later and not held:
            held.append(exchange)  # answered after the handler's call, as a completion is
            return
        answer(exchange)

    def answer(exchange):
        worker.reactor.now += 5.0  # the response ends on a later turn of the loop
        # A producer's callback is waiting when the response ends: whatever ends it drops it, uncalled.
        if whole:
            exchange.when_writable(lambda: drained.append(True))
            exchange.respond(200, OK, b"ok")
        else:
            exchange.start(200, OK, 2)
            exchange.send(b"ok")  # flushed at once
            exchange.when_writable(lambda: drained.append(True))
            exchange.end()

    worker = make_worker(handler)
    worker.stopping = stopping
    logged, counted, drained = [], [], []
    if access_log:
        class Log:
            def write(self, peer, request, status, size, duration=0.0, response_headers=None):
                logged.append((peer, request.target, status, size, round(duration), response_headers))
        worker.access_log = Log()
    count = worker.count
    worker.count = lambda status, sent, duration: (counted.append((status, sent, round(duration))),
                                                   count(status, sent, duration))
    conn, client = pair(worker)
    client.sendall(head + b"GET /second HTTP/1.1\r\nHost: t\r\n\r\n")
    transport = conn.transport
    transport.on_events(EPOLLIN)
    if later:
        answer(held[0])
    state = dict(exchange=conn.exchange, on_drain=transport.on_drain, drained=drained,
                 closing=transport.closing or transport.lingering or transport.closed,
                 head_started=conn.head_started == worker.reactor.now, requests=worker.requests,
                 counted=counted, logged=logged, by_class=list(worker.stats.by_class),
                 bytes_sent=worker.stats.bytes_sent)
    client.close()
    conn.abort()
    return state


@pytest.mark.parametrize("head", [b"GET / HTTP/1.1\r\nHost: t\r\n\r\n",
                                  b"GET / HTTP/1.1\r\nHost: t\r\nConnection: close\r\n\r\n",
                                  b"GET / HTTP/1.0\r\n\r\n"])
@pytest.mark.parametrize("later", [False, True])
@pytest.mark.parametrize("access_log", [False, True])
@pytest.mark.parametrize("stopping", [False, True])
def test_respond_ends_a_response_as_finished_and_response_done_do(head, later, access_log, stopping):
    """respond() writes conn._finished() and, without an access log, Worker.response_done() out
    (once per request): the same state after it as after a streamed response, which ends in
    _finished(), the same figures counted and the same lines logged, the pipeline going on (or
    not) the same way, from within the handler's call or from a later completion."""
    assert _ending(True, head, later, access_log, stopping) == _ending(False, head, later, access_log, stopping)


