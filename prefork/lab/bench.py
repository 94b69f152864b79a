"""The load driver: one process, one epoll, from 1 to 10,000 keep-alive clients in request/response loops.

Every client sends a request, waits for its answer, checks it is the answer to its own
request (the token), and sends the next at once. A request unanswered for `timeout` seconds
counts as a timeout and its connection is replaced; a refused or reset connection counts as
an error and is retried shortly after. The clock starts once every client has connected (or
the warm-up has run out: a server that does not accept will never let them all in), and
throughput, latency percentiles, the server's CPU time and memory cover that window only.
"""

from __future__ import annotations

import errno
import resource
import select
import socket
import sys
import time
from dataclasses import asdict, dataclass, field

from . import procstat, protocol
from .server import raise_nofile

CONNECTING, WAITING, RETRY, DONE = range(4)
RETRY_DELAY = 0.05
SPARE_DESCRIPTORS = 64  # stdin, epoll, files: what the driver needs besides its clients


@dataclass
class Result:
    concurrency: int
    connected: int = 0
    seconds: float = 0.0
    requests: int = 0
    errors: int = 0
    timeouts: int = 0
    rps: float = 0.0
    p50_ms: float = float("nan")
    p99_ms: float = float("nan")
    p999_ms: float = float("nan")
    server_cpu_s: float = float("nan")
    rss_mb: float = float("nan")
    driver_cpu_s: float = 0.0
    note: str = ""
    latencies_ns: list = field(default_factory=list, repr=False)

    def row(self) -> dict:
        row = asdict(self)
        del row["latencies_ns"]
        return row


class Client:
    __slots__ = ("number", "sock", "fd", "state", "sent_at", "expected", "inbox", "answered",
                 "cpu_us", "sleep_ms", "measured", "retry_at", "ever_connected")

    def __init__(self, number: int, cpu_us: int, sleep_ms: float, measured: bool):
        self.number, self.cpu_us, self.sleep_ms, self.measured = number, cpu_us, sleep_ms, measured
        self.sock = None
        self.state = RETRY
        self.retry_at = 0.0
        self.answered = 0
        self.ever_connected = False
        self.inbox = bytearray()


class Driver:
    def __init__(self, port, clients, timeout, rounds):
        self.port, self.clients, self.timeout, self.rounds = port, clients, timeout, rounds
        self.epoll = select.epoll()
        self.by_fd: dict[int, Client] = {}
        self.reset()

    def reset(self) -> None:
        self.latencies: list[int] = []
        self.requests = self.errors = self.timeouts = 0

    def connect(self, client: Client) -> None:
        sock = socket.socket(socket.AF_INET, socket.SOCK_STREAM)
        sock.setblocking(False)
        sock.setsockopt(socket.IPPROTO_TCP, socket.TCP_NODELAY, 1)
        code = sock.connect_ex(("127.0.0.1", self.port))
        if code not in (0, errno.EINPROGRESS):
            sock.close()
            return self.failed(client, time.monotonic())
        client.sock, client.fd, client.state = sock, sock.fileno(), CONNECTING
        client.inbox.clear()
        client.sent_at = time.monotonic()  # a connect that never completes times out too
        self.by_fd[client.fd] = client
        self.epoll.register(client.fd, select.EPOLLOUT)

    def send(self, client: Client) -> None:
        client.expected = f"c{client.number}n{client.answered}"
        client.state = WAITING
        client.sent_at = time.monotonic()
        try:
            client.sock.send(protocol.request(client.expected, client.cpu_us, client.sleep_ms))
        except OSError:
            self.failed(client, client.sent_at)

    def drop(self, client: Client, state: int, retry_at: float = 0.0) -> None:
        if client.sock is not None:
            self.by_fd.pop(client.fd, None)
            client.sock.close()  # closing leaves the epoll set
            client.sock = None
        client.state, client.retry_at = state, retry_at

    def failed(self, client: Client, now: float) -> None:
        self.errors += client.measured
        self.drop(client, RETRY, now + RETRY_DELAY)

    def on_event(self, client: Client, events: int) -> None:
        now = time.monotonic()
        if client.state == CONNECTING:
            if events & (select.EPOLLERR | select.EPOLLHUP) or client.sock.getsockopt(socket.SOL_SOCKET, socket.SO_ERROR):
                return self.failed(client, now)
            client.ever_connected = True
            self.epoll.modify(client.fd, select.EPOLLIN)
            return self.send(client)
        try:
            data = client.sock.recv(65536)
        except BlockingIOError:
            return
        except OSError:
            data = b""
        if not data:
            return self.failed(client, now)  # closed with a request unanswered
        client.inbox += data
        self.take_answer(client, now)

    def take_answer(self, client: Client, now: float) -> None:
        inbox = client.inbox
        head_end = inbox.find(protocol.HEAD_END)
        if head_end < 0:
            return
        head = bytes(inbox[:head_end]).lower()
        end = head_end + len(protocol.HEAD_END) + content_length(head)
        if len(inbox) < end:
            return
        body = bytes(inbox[head_end + len(protocol.HEAD_END):end])
        del inbox[:end]
        if not head.startswith(b"http/1.1 200") or body != client.expected.encode() + b"\n":
            return self.failed(client, now)
        if client.measured:
            self.requests += 1
            self.latencies.append(int((now - client.sent_at) * 1e9))
        client.answered += 1
        if self.rounds and client.answered >= self.rounds:
            return self.drop(client, DONE)
        self.send(client)

    def check_clocks(self, now: float) -> None:
        """Timeouts and retries, a few times a second rather than per event."""
        for client in self.clients:
            if client.state in (CONNECTING, WAITING) and now - client.sent_at > self.timeout:
                self.timeouts += client.measured
                self.drop(client, RETRY, now)
            elif client.state == RETRY and now >= client.retry_at:
                self.connect(client)

    def turn(self, wait: float) -> None:
        for fd, events in self.epoll.poll(wait):
            client = self.by_fd.get(fd)
            if client is not None:
                self.on_event(client, events)

    def close(self) -> None:
        for client in self.clients:
            self.drop(client, DONE)
        self.epoll.close()


def content_length(head: bytes) -> int:
    start = head.find(b"content-length:")
    if start < 0:
        return 0
    stop = head.find(b"\r\n", start)
    return int(head[start + len(b"content-length:"):stop if stop >= 0 else None])


def open_idle(port: int, count: int, deadline: float = 60.0) -> tuple[list[socket.socket], int]:
    """count connections that make one round trip (so the server has surely taken them in), then
    stay silent; those refused, or not opened within deadline seconds, are counted as refused."""
    idlers, refused = [], 0
    give_up = time.monotonic() + deadline
    for number in range(count):
        if time.monotonic() > give_up:
            return idlers, refused + count - number
        token = f"idle{number}"
        try:
            sock = socket.create_connection(("127.0.0.1", port), timeout=10)
        except OSError:
            refused += 1
            continue
        try:
            sock.sendall(protocol.request(token))
            answer = b""
            while not answer.endswith(token.encode() + b"\n"):
                data = sock.recv(4096)
                if not data:
                    raise ConnectionError("closed")
                answer += data
        except OSError:  # closed or timed out: this server cannot hold it (select past FD_SETSIZE)
            sock.close()
            refused += 1
            continue
        idlers.append(sock)
    return idlers, refused


def bench(port: int, concurrency: int, seconds: float, *, cpu_us: int = 0, sleep_ms: float = 0,
          slow: int = 0, slow_sleep_ms: float = 0, idle: int = 0, rounds: int = 0, timeout: float = 2.0,
          warmup: float = 5.0, server_pid: int | None = None, label: str = "", progress: bool = False) -> Result:
    """Measure a server on 127.0.0.1:port.

    concurrency clients are measured; `slow` more send requests that sleep slow_sleep_ms on the
    server (their own latencies are not measured: they are the disturbance); `idle` more only
    connect and never send. With rounds, each client stops after that many answers and the run
    ends when all have (or after `seconds`), with no warm-up.
    """
    result = Result(concurrency=concurrency)
    limit = raise_nofile(concurrency + slow + idle + SPARE_DESCRIPTORS)
    if limit - SPARE_DESCRIPTORS < concurrency + slow + idle:
        reachable = max(1, limit - SPARE_DESCRIPTORS - slow - idle)
        result.note = f"descriptor limit {limit}: {reachable} of {concurrency} clients"
        print(f"lab bench: {result.note} (raise the hard limit, ulimit -Hn, to go further)", file=sys.stderr)
        concurrency = reachable
    idlers, refused = open_idle(port, idle)
    if refused:
        result.note = (result.note + "; " if result.note else "") + f"{refused} of {idle} idle connections refused"
    clients = [Client(i, cpu_us, 0, True) for i in range(concurrency)]
    clients += [Client(concurrency + i, 0, slow_sleep_ms, False) for i in range(slow)]
    driver = Driver(port, clients, timeout, rounds)
    try:
        run(driver, result, seconds, warmup if not rounds else 0.0, server_pid, label, progress)
    finally:
        driver.close()
        for sock in idlers:
            sock.close()
    return result


def run(driver: Driver, result: Result, seconds: float, warmup: float, server_pid, label, progress) -> None:
    started = time.monotonic()
    while warmup and time.monotonic() - started < warmup and not all(c.ever_connected for c in driver.clients):
        driver.turn(0.01)
        driver.check_clocks(time.monotonic())
    driver.reset()
    cpu_before = procstat.cpu_seconds(server_pid) if server_pid else 0.0
    usage_before = resource.getrusage(resource.RUSAGE_SELF)
    begin = last_check = last_line = time.monotonic()
    end = begin + seconds
    while (now := time.monotonic()) < end:
        driver.turn(min(0.02, end - now))
        now = time.monotonic()
        if now - last_check > 0.05:
            driver.check_clocks(now)
            last_check = now
        if driver.rounds and all(c.state == DONE for c in driver.clients):
            break
        if progress and now - last_line >= 1.0:
            last_line = now
            print(f"\r  {label:<16} {now - begin:5.1f} s {driver.requests / (now - begin):9.0f} req/s "
                  f"errors {driver.errors} timeouts {driver.timeouts}   ", end="", file=sys.stderr, flush=True)
    now = time.monotonic()
    # requests still unanswered after the timeout at the end are timeouts as well
    driver.timeouts += sum(c.measured for c in driver.clients
                           if c.state in (CONNECTING, WAITING) and now - c.sent_at > driver.timeout)
    usage = resource.getrusage(resource.RUSAGE_SELF)
    if server_pid:
        result.server_cpu_s = procstat.cpu_seconds(server_pid) - cpu_before
        result.rss_mb = procstat.memory_mb(server_pid)
    if progress:
        print("\r" + " " * 90 + "\r", end="", file=sys.stderr)
    result.seconds = now - begin
    result.driver_cpu_s = usage.ru_utime + usage.ru_stime - usage_before.ru_utime - usage_before.ru_stime
    result.connected = sum(c.ever_connected for c in driver.clients if c.measured)
    result.requests, result.errors, result.timeouts = driver.requests, driver.errors, driver.timeouts
    result.rps = driver.requests / result.seconds
    result.latencies_ns = driver.latencies
    if driver.latencies:
        ordered = sorted(driver.latencies)
        pick = lambda q: ordered[min(len(ordered) - 1, int(q * len(ordered)))] / 1e6  # noqa: E731
        result.p50_ms, result.p99_ms, result.p999_ms = pick(0.5), pick(0.99), pick(0.999)
