"""Hostile and careless clients against the real `prefork` command (one worker).

Slowloris (heads trickled byte by byte are cut at header_timeout while others are served), slow
readers (a client that sends without reading cannot grow the worker's memory: backpressure and
TCP flow control), running out of file descriptors (no busy loop, one log line, service comes
back) and the per-worker connection cap.
"""

from __future__ import annotations

import hashlib
import os
import re
import selectors
import shutil
import socket
import subprocess
import time

import pytest

from support.client import connect, read_response
from support.descriptors import holds_connection, open_files
from support.paths import APPS
from support.polling import wait_until
from support.processes import cpu_seconds, rss, worker_pid
from support.server import serving_worker_pid

PLAINTEXT = b"GET /plaintext HTTP/1.1\r\nHost: t\r\n\r\n"
JSON = b"GET /json HTTP/1.1\r\nHost: t\r\n\r\n"
RSS_BOUND = 10 * 1024 * 1024


def timed_request(port: int) -> float:
    start = time.monotonic()
    with connect(port, timeout=5) as sock:
        sock.sendall(PLAINTEXT)
        status, _, body = read_response(sock)
    assert (status, body) == (200, b"Hello, World!")
    return time.monotonic() - start


# -- slowloris ------------------------------------------------------------------------------------


@pytest.mark.slow
@pytest.mark.timeout(60)
def test_slowloris_is_cut_at_header_timeout(start_server):
    header_timeout = 2.0
    server = start_server("-w", "1", "-b", "127.0.0.1:0", "--header-timeout", str(header_timeout))
    serving_worker_pid(server)
    # Three kinds of trickle: a head that never ends in time; the same after a first request on
    # a keep-alive connection; and empty lines, which may precede a request line (RFC 9112 2.2)
    # but must not make the connection look idle either.
    head = b"GET /plaintext HTTP/1.1\r\nHost: t\r\nX-Slow: " + b"a" * 10_000
    heads = {}
    selector = selectors.DefaultSelector()
    opened, closed, answers, sent = {}, {}, {}, {}
    socks = []
    for i in range(200):
        sock = connect(server.port)
        if i % 4 == 1:  # keep-alive: answered once, then trickling the next head
            sock.sendall(PLAINTEXT)
            assert read_response(sock)[0] == 200
        sock.setblocking(False)
        socks.append(sock)
        heads[sock] = b"\r\n" * 5000 if i % 4 == 2 else head
        opened[sock] = time.monotonic()
        sent[sock] = 0
        answers[sock] = b""
        selector.register(sock, selectors.EVENT_READ)
    latencies = []
    try:
        deadline = time.monotonic() + 3 * header_timeout + 4
        next_trickle = next_client = time.monotonic()
        while len(closed) < len(socks) and time.monotonic() < deadline:
            now = time.monotonic()
            if now >= next_trickle:  # one more byte on every open connection, every 0.2 s
                next_trickle = now + 0.2
                for sock in socks:
                    if sock in closed:
                        continue
                    try:
                        sent[sock] += sock.send(heads[sock][sent[sock]:sent[sock] + 1])
                    except (BlockingIOError, InterruptedError):
                        pass
                    except OSError:
                        closed[sock] = time.monotonic()
                        selector.unregister(sock)
            if now >= next_client:  # a normal client, meanwhile
                next_client = now + 0.25
                latencies.append(timed_request(server.port))
            for key, _ in selector.select(timeout=0.05):
                sock = key.fileobj
                try:
                    data = sock.recv(65536)
                except (BlockingIOError, InterruptedError):
                    continue
                except OSError:
                    data = b""
                if data:
                    answers[sock] += data
                else:
                    closed[sock] = time.monotonic()
                    selector.unregister(sock)
    finally:
        selector.close()
        for sock in socks:
            sock.close()
    assert len(closed) == len(socks), f"{len(socks) - len(closed)} slow connections still open"
    lifetimes = sorted(closed[s] - opened[s] for s in socks)
    print(f"slowloris: closed after {lifetimes[0]:.2f}..{lifetimes[-1]:.2f} s, client latency max {max(latencies):.3f} s, {sum(1 for d in answers.values() if d)} got 408")
    assert 1.5 <= lifetimes[0] and lifetimes[-1] <= 4.0, (lifetimes[0], lifetimes[-1])
    assert min(sent.values()) >= 5, "the trickle must have gone on for a while"
    for data in answers.values():  # a 408 may come first, nothing else
        assert data == b"" or data.startswith(b"HTTP/1.1 408 "), data[:100]
    assert len(latencies) >= 5 and max(latencies) < 0.5, latencies
    timed_request(server.port)


# -- slow readers ---------------------------------------------------------------------------------


def send_until_stalled(sock: socket.socket, chunks, pid: int, stall: float = 1.5):
    """Send chunks on a non-blocking socket until all are sent, or no byte could be sent for
    `stall` seconds (the peer stopped reading and flow control pushed back).

    Returns (bytes sent, chunks fully sent, largest RSS of pid seen meanwhile).
    """
    sent = 0
    done = 0
    peak = rss(pid)
    selector = selectors.DefaultSelector()
    selector.register(sock, selectors.EVENT_WRITE)
    last_progress = time.monotonic()
    last_sample = 0.0
    try:
        pending = memoryview(b"")
        chunks = iter(chunks)
        while True:
            if not pending:
                chunk = next(chunks, None)
                if chunk is None:
                    break
                pending = memoryview(chunk)
            if selector.select(timeout=0.1):
                try:
                    n = sock.send(pending)
                except (BlockingIOError, InterruptedError):
                    n = 0
                if n:
                    sent += n
                    pending = pending[n:]
                    if not pending:
                        done += 1
                    last_progress = time.monotonic()
            now = time.monotonic()
            if now - last_sample > 0.05:
                last_sample = now
                peak = max(peak, rss(pid))
            if now - last_progress > stall:
                break
    finally:
        selector.close()
    return sent, done, max(peak, rss(pid))


@pytest.mark.slow
@pytest.mark.timeout(90)
def test_echo_client_that_never_reads_cannot_grow_the_worker(start_server):
    server = start_server("-w", "1", "-b", "127.0.0.1:0", "-b", "echo://127.0.0.1:0")
    http_port, echo_port = server.ports
    pid = serving_worker_pid(server)
    with connect(echo_port) as probe:  # warm the echo path up before the baseline
        probe.sendall(b"ping" * 1000)
        got = b""
        while len(got) < 4000:
            got += probe.recv(65536)
    baseline = rss(pid)
    block = os.urandom(1 << 20)
    total = 50 << 20
    with connect(echo_port) as sock:
        sock.setblocking(False)
        sent, _, peak = send_until_stalled(sock, [block] * 50, pid)
        print(f"echo: {sent >> 20} MiB accepted before the stall, RSS +{(peak - baseline) >> 10} KiB")
        assert sent < total or peak - baseline < RSS_BOUND
        assert peak - baseline < RSS_BOUND, f"RSS grew by {(peak - baseline) >> 10} KiB"
        # Held off by flow control, the worker still serves everyone else.
        assert timed_request(http_port) < 2
        with connect(echo_port) as other:
            other.sendall(b"still here")
            assert other.recv(100) == b"still here"
        # Now the client reads: every byte comes back, in order, and the rest goes through.
        expected, received = hashlib.sha256(), hashlib.sha256()
        stream = memoryview(block * 50)
        expected.update(stream)
        position = sent
        received_count = 0
        selector = selectors.DefaultSelector()
        selector.register(sock, selectors.EVENT_READ | selectors.EVENT_WRITE)
        deadline = time.monotonic() + 60
        while received_count < total and time.monotonic() < deadline:
            for _, events in selector.select(timeout=1):
                if events & selectors.EVENT_READ:
                    data = sock.recv(1 << 20)
                    assert data, "the echo connection closed early"
                    received.update(data)
                    received_count += len(data)
                if events & selectors.EVENT_WRITE and position < total:
                    try:
                        position += sock.send(stream[position:position + (1 << 20)])
                    except BlockingIOError:
                        pass
                    if position == total:
                        selector.modify(sock, selectors.EVENT_READ)
        selector.close()
        assert received_count == total
        assert received.digest() == expected.digest()


@pytest.mark.slow
@pytest.mark.timeout(90)
def test_pipelining_client_that_never_reads_cannot_grow_the_worker(start_server):
    server = start_server("-w", "1", "-b", "127.0.0.1:0")
    pid = serving_worker_pid(server)
    baseline = rss(pid)
    batch = (PLAINTEXT + JSON) * 500  # a thousand requests per chunk
    with connect(server.port) as sock:
        sock.setblocking(False)
        sent, batches, peak = send_until_stalled(sock, [batch] * 200, pid)
        print(f"pipelining: {sent >> 10} KiB of requests accepted, RSS +{(peak - baseline) >> 10} KiB")
        assert peak - baseline < RSS_BOUND, f"RSS grew by {(peak - baseline) >> 10} KiB"
        assert sent // len(PLAINTEXT + JSON) * 2 >= 5000, f"only {sent} bytes of requests were accepted"
        # Now read: every request gets its response, in order (plaintext, json, plaintext...),
        # while the rest of a partly sent batch goes through.
        remainder = memoryview(batch)[sent - batches * len(batch):] if sent % len(batch) else memoryview(b"")
        expected = (batches + (1 if remainder else 0)) * 1000
        data = bytearray()
        count = 0
        selector = selectors.DefaultSelector()
        selector.register(sock, selectors.EVENT_READ | (selectors.EVENT_WRITE if remainder else 0))
        deadline = time.monotonic() + 60
        while count < expected and time.monotonic() < deadline:
            for _, events in selector.select(timeout=1):
                if events & selectors.EVENT_READ:
                    chunk = sock.recv(1 << 20)
                    assert chunk, f"closed after {count} of {expected} responses"
                    data += chunk
                    count = data.count(b"HTTP/1.1 200 OK\r\n")
                if events & selectors.EVENT_WRITE:
                    try:
                        remainder = remainder[sock.send(remainder):]
                    except BlockingIOError:
                        pass
                    if not remainder:
                        selector.modify(sock, selectors.EVENT_READ)
        selector.close()
        seen = re.findall(rb"\r\n\r\n(Hello, World!|\{\"message\":\"Hello, World!\"\})", data)
        assert count == expected == len(seen)
        assert seen[0::2] == [b"Hello, World!"] * (expected // 2)
        assert seen[1::2] == [b'{"message":"Hello, World!"}'] * (expected // 2)
        peak = max(peak, rss(pid))
        assert peak - baseline < RSS_BOUND, f"RSS grew by {(peak - baseline) >> 10} KiB"


@pytest.mark.timeout(60)
def test_stalled_body_gets_408_and_stalled_write_is_cut(start_server):
    server = start_server("-w", "1", "-b", "127.0.0.1:0", "--body-timeout", "1", "--send-timeout", "1")
    pid = serving_worker_pid(server)
    # A body that stops coming: 408 after body_timeout, then the connection closes.
    with connect(server.port) as sock:
        sock.sendall(b"POST /echo HTTP/1.1\r\nHost: t\r\nContent-Length: 10\r\n\r\nabc")
        start = time.monotonic()
        status, headers, _ = read_response(sock)
        waited = time.monotonic() - start
        assert (status, headers["connection"]) == (408, "close")
        assert 0.8 <= waited < 4, waited
        assert sock.recv(100) == b""
    # A response the client does not read: cut after send_timeout without progress. A small
    # receive buffer keeps the kernel from absorbing the whole 20 MB response.
    body = os.urandom(20 << 20)
    with socket.socket() as sock:
        sock.setsockopt(socket.SOL_SOCKET, socket.SO_RCVBUF, 65536)
        sock.connect(("127.0.0.1", server.port))
        client_port = sock.getsockname()[1]
        sock.sendall(b"POST /echo HTTP/1.1\r\nHost: t\r\nContent-Length: %d\r\n\r\n" % len(body) + body)
        sent = time.monotonic()
        assert holds_connection(pid, server.port, client_port)
        wait_until(lambda: not holds_connection(pid, server.port, client_port), 10, 0.05,
                   message="the stalled write to be cut")
        assert 0.8 <= time.monotonic() - sent < 5
        sock.settimeout(10)
        received = 0
        try:
            while data := sock.recv(1 << 20):
                received += len(data)
        except ConnectionResetError:
            pass
        assert received < len(body), "the whole response was sent: nothing stalled"
    timed_request(server.port)


# -- out of descriptors -----------------------------------------------------------------------------


def lower_nofile(pid: int, limit: int) -> None:
    if shutil.which("prlimit"):
        subprocess.run(["prlimit", f"--nofile={limit}:{limit}", "--pid", str(pid)], check=True)
    else:  # pragma: no cover - util-linux missing
        import resource

        resource.prlimit(pid, resource.RLIMIT_NOFILE, (limit, limit))


@pytest.mark.slow
@pytest.mark.timeout(60)
def test_emfile_does_not_spin_and_service_resumes(start_server):
    server = start_server("-w", "1", "-b", "127.0.0.1:0")
    pid = serving_worker_pid(server)
    lower_nofile(pid, 64)
    flood = []
    try:
        for _ in range(200):
            flood.append(connect(server.port))
        server.wait_for_log(r"accept failed", timeout=10)
        start_cpu, start = cpu_seconds(pid), time.monotonic()
        # Hold the flood for about two seconds: a busy accept loop would eat a whole CPU.
        wait_until(lambda: time.monotonic() - start >= 2.0, 5, interval=0.1, message="two seconds")
        used = (cpu_seconds(pid) - start_cpu) / (time.monotonic() - start)
        print(f"EMFILE: worker CPU {used:.1%} over the flood")
        assert used < 0.3, f"the worker used {used:.0%} of a CPU while out of descriptors"
    finally:
        for sock in flood:
            sock.close()
    # Service resumes once the connections are gone.
    wait_until(lambda: timed_request(server.port) < 5, 10, message="service to resume")
    assert len(re.findall(r"accept failed", server.log())) == 1, server.log()
    assert server.proc.poll() is None


# -- the connection cap -------------------------------------------------------------------------------


@pytest.mark.timeout(60)
def test_worker_connections_caps_open_connections(start_server):
    server = start_server("-w", "1", "-b", "127.0.0.1:0", "--worker-connections", "10", "--keepalive", "60")
    serving_worker_pid(server)
    idle = []
    for _ in range(10):  # ten connections, each proven accepted by a response, then left idle
        sock = connect(server.port)
        sock.sendall(PLAINTEXT)
        assert read_response(sock)[0] == 200
        idle.append(sock)
    try:
        with connect(server.port) as eleventh:  # the kernel's backlog takes it...
            eleventh.sendall(PLAINTEXT)
            eleventh.settimeout(1.0)
            with pytest.raises(TimeoutError):  # ...but the worker does not serve it
                eleventh.recv(1)
            idle.pop().close()
            eleventh.settimeout(5)
            status, _, body = read_response(eleventh)
            assert (status, body) == (200, b"Hello, World!")
    finally:
        for sock in idle:
            sock.close()


def test_half_closed_client_waiting_for_a_slow_answer_costs_no_cpu(start_server):
    """A client that shuts down its sending side after its request still gets the answer, and
    the socket at EOF (readable forever under level-triggered epoll) does not make the worker spin."""
    server = start_server("-w", "1", "-b", "127.0.0.1:0", "--threads", "2")
    pid = serving_worker_pid(server)
    sock = connect(server.port)
    sock.sendall(b"GET /sleep?ms=1500 HTTP/1.1\r\nHost: a\r\n\r\n")
    sock.shutdown(socket.SHUT_WR)
    before, started = cpu_seconds(pid), time.monotonic()
    status, _, _ = read_response(sock)
    spent, waited = cpu_seconds(pid) - before, time.monotonic() - started
    assert status == 200 and waited >= 1.0
    assert spent < 0.3 * waited, f"worker used {spent:.2f} s of CPU in {waited:.2f} s"
    assert sock.recv(1) == b""  # and then it closes


def open_spool_files(pid: int) -> int:
    """Descriptors of the worker that point at deleted temporary files (spooled bodies)."""
    return sum(target.endswith("(deleted)") for target in open_files(pid))


def test_an_abandoned_upload_releases_its_spool_file_at_once(start_server):
    server = start_server("-w", "1", "-b", "127.0.0.1:0", "--body-buffer-size", "1000")
    pid = serving_worker_pid(server)
    sock = connect(server.port)
    sock.sendall(b"POST /echo HTTP/1.1\r\nHost: a\r\nContent-Length: 100000\r\n\r\n" + b"x" * 50000)
    wait_until(lambda: open_spool_files(pid) == 1, 5, message="the body to be spooled to a file")
    sock.close()  # gone before the body ended: the spool file must go now, not at body_timeout
    wait_until(lambda: open_spool_files(pid) == 0, 3, message="the spool file to be closed")


@pytest.mark.slow
@pytest.mark.timeout(60)
def test_out_of_descriptors_while_spooling_a_body_is_a_503_and_the_worker_serves_on(start_server):
    server = start_server("-w", "1", "-b", "127.0.0.1:0", "--body-buffer-size", "1024", "--keepalive", "60")
    pid = serving_worker_pid(server)
    idle = []
    try:
        for _ in range(10):  # keep-alive clients the worker must not cut
            sock = connect(server.port)
            sock.sendall(PLAINTEXT)
            assert read_response(sock)[0] == 200
            idle.append(sock)
        used = len(os.listdir(f"/proc/{pid}/fd"))
        import resource

        limits = resource.prlimit(pid, resource.RLIMIT_NOFILE)
        resource.prlimit(pid, resource.RLIMIT_NOFILE, (used + 1, limits[1]))  # room for one more connection, none for a spool file
        with connect(server.port) as poster:
            poster.sendall(b"POST /echo HTTP/1.1\r\nHost: a\r\nContent-Length: 4096\r\n\r\n" + b"x" * 4096)
            status, headers, _ = read_response(poster)
        assert status == 503 and headers.get("connection") == "close", server.log()
        server.wait_for_log(r"cannot spool a request body of \d+ bytes from 127\.0\.0\.1: Too many open files")
        resource.prlimit(pid, resource.RLIMIT_NOFILE, limits)
        for sock in idle:  # every keep-alive client is still served by the same worker
            sock.sendall(PLAINTEXT)
            assert read_response(sock)[0] == 200
        assert serving_worker_pid(server) == pid
    finally:
        for sock in idle:
            sock.close()


def test_the_open_file_limit_is_raised_for_worker_connections(start_server):
    # Started with a soft limit of 256 and a hard one of 4096: 1000 connections need 2064.
    import resource

    soft, hard = resource.getrlimit(resource.RLIMIT_NOFILE)
    if hard != resource.RLIM_INFINITY and hard < 4096:
        pytest.skip("the hard open-file limit is below 4096")
    server = start_server("-w", "1", "-b", "127.0.0.1:0", "--worker-connections", "1000",
                          wrapper=["prlimit", "--nofile=256:4096"])
    pid = serving_worker_pid(server)
    assert resource.prlimit(pid, resource.RLIMIT_NOFILE) == (2064, 4096)
    assert "open-file limit" not in server.log()
    low = start_server("-w", "1", "-b", "127.0.0.1:0", "--worker-connections", "5000",
                       wrapper=["prlimit", "--nofile=256:4096"])
    assert resource.prlimit(serving_worker_pid(low), resource.RLIMIT_NOFILE) == (4096, 4096)
    low.wait_for_log(r"open-file limit 4096 \(hard limit 4096\) is below the 5064 that worker_connections = 5000 needs")


@pytest.mark.slow
@pytest.mark.timeout(90)
def test_http_echo_of_large_uploads_to_clients_that_never_read_keeps_the_worker_small(start_server):
    """/echo sends a spooled body back from its file: five 20 MiB uploads answered to clients
    that read nothing cost the worker socket buffers, not the bodies."""
    server = start_server("-w", "1", "-b", "127.0.0.1:0")
    pid = serving_worker_pid(server)
    baseline = rss(pid)
    size = 20 << 20
    clients = []
    try:
        for _ in range(5):
            sock = connect(server.port)
            sock.sendall(b"POST /echo HTTP/1.1\r\nHost: a\r\nContent-Length: %d\r\n\r\n" % size)
            block = b"e" * (1 << 20)
            for _ in range(20):
                sock.sendall(block)
            clients.append(sock)
        wait_until(lambda: timed_request(server.port) < 2, 10, message="the worker to answer")
        peak = rss(pid)
        print(f"echo of 5 x 20 MiB to non-readers: RSS +{(peak - baseline) >> 10} KiB")
        assert peak - baseline < RSS_BOUND, f"RSS grew by {(peak - baseline) >> 10} KiB"
        status, _, body = read_response(clients[0])  # and a reader gets it whole
        assert status == 200 and len(body) == size and body == b"e" * size
    finally:
        for sock in clients:
            sock.close()


@pytest.mark.slow
@pytest.mark.timeout(90)
@pytest.mark.parametrize("dispatch", ["inline", "threads"])
def test_a_large_list_body_to_clients_that_never_read_is_not_copied_whole(start_server, dispatch):
    server = start_server("-w", "1", "-b", "127.0.0.1:0", "--dispatch", dispatch,
                          "--chdir", APPS, "plain:raw")
    pid = worker_pid(server)
    with connect(server.port) as sock:  # the app is loaded, its first answers given
        for _ in range(3):
            sock.sendall(b"GET /big-list?mb=1 HTTP/1.1\r\nHost: a\r\n\r\n")
            assert read_response(sock)[0] == 200
    baseline = rss(pid)
    clients = []
    try:
        for _ in range(3):
            sock = connect(server.port)
            sock.sendall(b"GET /big-list?mb=40 HTTP/1.1\r\nHost: a\r\n\r\n")
            clients.append(sock)
        with connect(server.port) as sock:  # the worker got to them all and serves on
            sock.sendall(b"GET /hello HTTP/1.1\r\nHost: a\r\n\r\n")
            assert read_response(sock)[0] == 200
        peak = rss(pid)
        print(f"{dispatch}: 3 x 40 MiB list bodies to non-readers: RSS +{(peak - baseline) >> 10} KiB")
        assert peak - baseline < RSS_BOUND, f"RSS grew by {(peak - baseline) >> 10} KiB"
        status, _, body = read_response(clients[0])
        assert status == 200 and len(body) == 40 << 20
    finally:
        for sock in clients:
            sock.close()
