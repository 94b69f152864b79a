"""The worker queues under load: blocking work on the threads, and backpressure on streams."""

import json
import socket
import threading
import time

import pytest

from support.client import connect, get, read_response
from support.paths import APPS
from support.polling import wait_until
from support.processes import rss, worker_pid


@pytest.mark.slow
@pytest.mark.timeout(30)
def test_blocking_requests_run_on_the_threads_while_the_reactor_keeps_answering(start_server):
    server = start_server("-w", "1", "--threads", "4", "-b", "127.0.0.1:0")
    assert get(server.port, "/sleep?ms=0")[::2] == (200, b"slept 0 ms\n")  # threads started
    results = []
    plaintext_latencies = []
    started = time.monotonic()

    def sleeper():
        results.append(get(server.port, "/sleep?ms=200")[::2])

    sleepers = [threading.Thread(target=sleeper) for _ in range(40)]
    for thread in sleepers:
        thread.start()
    with connect(server.port) as sock:
        buf = bytearray()
        while any(thread.is_alive() for thread in sleepers):
            sent = time.monotonic()
            sock.sendall(b"GET /plaintext HTTP/1.1\r\nHost: x\r\n\r\n")
            status, _, body = read_response(sock, buf)
            plaintext_latencies.append(time.monotonic() - sent)
            assert (status, body) == (200, b"Hello, World!")
            time.sleep(0.02)  # pacing the probe, not synchronisation
    for thread in sleepers:
        thread.join(10)
    elapsed = time.monotonic() - started
    assert results == [(200, b"slept 200 ms\n")] * 40
    # 40 requests of 200 ms on 4 threads: 10 rounds, about 2 s
    assert 1.8 < elapsed < 3.5, elapsed
    assert len(plaintext_latencies) >= 20
    assert max(plaintext_latencies) < 0.05, sorted(plaintext_latencies)[-5:]


@pytest.mark.slow
@pytest.mark.timeout(40)
@pytest.mark.parametrize("dispatch", ["inline", "threads"])
def test_a_client_that_stops_reading_does_not_grow_the_worker(start_server, dispatch):
    # One handler thread: the next request can only be served if the stalled one lets it go.
    server = start_server("plain:raw", "--chdir", APPS, "-w", "1", "-b", "127.0.0.1:0",
                          "--dispatch", dispatch, "--threads", "1")
    pid = worker_pid(server)
    assert get(server.port, "/hello")[::2] == (200, b"Hello, World!")
    closes_before = json.loads(get(server.port, "/closes")[2])["closes"]
    baseline = rss(pid) // 1024
    stalled = connect(server.port)
    stalled.setsockopt(socket.SOL_SOCKET, socket.SO_RCVBUF, 65536)
    stalled.sendall(b"GET /big?mb=100 HTTP/1.1\r\nHost: x\r\n\r\n")
    assert stalled.recv(65536).startswith(b"HTTP/1.1 200 OK")
    # Watch the worker while the client reads nothing: a server that buffers would reach
    # 100 MB within this window (it produces hundreds of MB/s).
    peak = baseline
    deadline = time.monotonic() + 1.5
    while time.monotonic() < deadline:
        peak = max(peak, rss(pid) // 1024)
        time.sleep(0.05)
    assert peak - baseline < 10 * 1024, f"worker RSS grew by {(peak - baseline) // 1024} MB"
    if dispatch == "inline":
        assert get(server.port, "/hello")[::2] == (200, b"Hello, World!")  # the Reactor is not stuck
    stalled.close()  # the producer must be released and the body's close() called
    wait_until(lambda: json.loads(get(server.port, "/closes")[2])["closes"] == closes_before + 1, 10,
               message="close() of the abandoned body")
    assert get(server.port, "/sleep?ms=1")[::2] == (200, b"slept")
    assert "Traceback" not in server.log()


@pytest.mark.parametrize("dispatch", ["inline", "threads"])
def test_builtin_demo_routes(start_server, dispatch):
    server = start_server("-w", "1", "-b", "127.0.0.1:0", "--dispatch", dispatch)
    assert get(server.port, "/cpu?ms=20")[::2] == (200, b"burned 20 ms of CPU\n")
    assert get(server.port, "/sleep?ms=20")[::2] == (200, b"slept 20 ms\n")
    for bad in ("/sleep?ms=abc", "/sleep?ms=-1", "/cpu?ms=10001"):
        assert get(server.port, bad)[::2] == (400, b"ms must be an integer from 0 to 10000\n"), bad
    status, home = get(server.port, "/")[::2]
    assert status == 200 and b"/sleep?ms=" in home and b"/cpu?ms=" in home


@pytest.mark.slow
@pytest.mark.timeout(30)
def test_a_burst_beyond_the_request_queue_waits_in_its_connections(start_server):
    # One thread: the queue takes 128 requests; the other 22 wait in their connections (no
    # socket read, no queue growth) and go to the queue as slots free up, oldest first.
    server = start_server("plain:app", "--chdir", APPS, "-w", "1", "-b", "127.0.0.1:0",
                          "--dispatch", "threads", "--threads", "1")
    socks = [connect(server.port) for _ in range(150)]
    try:
        for number, sock in enumerate(socks):
            sock.sendall(f"GET /sleep?ms=10&n={number} HTTP/1.1\r\nHost: x\r\n\r\n"
                         f"GET /hello HTTP/1.1\r\nHost: x\r\n\r\n".encode())
        for sock in socks:
            buf = bytearray()
            assert read_response(sock, buf)[::2] == (200, b"slept")
            assert read_response(sock, buf)[::2] == (200, b"Hello, World!")
    finally:
        for sock in socks:
            sock.close()
    assert "Traceback" not in server.log()
