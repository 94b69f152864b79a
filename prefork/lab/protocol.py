"""The one protocol every model speaks, so that one load driver measures them all.

A request is a small HTTP/1.1 GET on a keep-alive connection:

    GET /TOKEN?cpu=US&sleep=MS HTTP/1.1\r\nHost: lab\r\n\r\n

and its answer is `200 OK` with the body `TOKEN\n`, after the server has burnt US microseconds
of CPU (the CPU-bound variant) and slept MS milliseconds (a handler that waits, as on a
database). The token lets the driver check that every answer is the one to its own request.
Both parameters are optional; with neither, the work is only the IO.
"""

from __future__ import annotations

import time
from urllib.parse import parse_qs

HEAD_END = b"\r\n\r\n"
BAD_REQUEST = (b"HTTP/1.1 400 Bad Request\r\nContent-Length: 12\r\nContent-Type: text/plain\r\n\r\n"
               b"bad request\n")


def request(token: str, cpu_us: int = 0, sleep_ms: float = 0) -> bytes:
    """The bytes of one request; the answer's body will be token + newline."""
    query = "&".join(f"{k}={v}" for k, v in (("cpu", cpu_us), ("sleep", sleep_ms)) if v)
    target = f"/{token}?{query}" if query else f"/{token}"
    return f"GET {target} HTTP/1.1\r\nHost: lab\r\n\r\n".encode()


def response(body: bytes) -> bytes:
    return (b"HTTP/1.1 200 OK\r\nContent-Length: %d\r\nContent-Type: text/plain\r\n\r\n" % len(body)) + body


def parse_target(target: str) -> tuple[str, int, float]:
    """(token, cpu_us, sleep_ms) of a request target; ValueError when it is not ours."""
    path, _, query = target.partition("?")
    if not path.startswith("/"):
        raise ValueError(target)
    params = parse_qs(query)
    return path[1:], int(params.get("cpu", ["0"])[0]), float(params.get("sleep", ["0"])[0])


def work(cpu_us: int, sleep_ms: float) -> None:
    """The handler's own work: burn CPU time (not wall time: a preempted burn would be free), then wait."""
    if cpu_us:
        end = time.thread_time_ns() + cpu_us * 1000
        while time.thread_time_ns() < end:
            pass
    if sleep_ms:
        time.sleep(sleep_ms / 1000)


def respond(head: bytes) -> bytes:
    """The answer to one complete request head."""
    try:
        method, target, version = head.split(b"\r\n", 1)[0].decode("latin-1").split(" ")
        token, cpu_us, sleep_ms = parse_target(target)
    except ValueError:
        return BAD_REQUEST
    work(cpu_us, sleep_ms)
    return response(token.encode() + b"\n")


def take_heads(buffer: bytearray) -> list[bytes]:
    """Remove every complete request head from buffer and return them (the rest stays)."""
    heads = []
    start = 0
    while (end := buffer.find(HEAD_END, start)) >= 0:
        heads.append(bytes(buffer[start:end]))
        start = end + len(HEAD_END)
    del buffer[:start]
    return heads


def answers(buffer: bytearray) -> bytes:
    """The answers to every complete request in buffer, which keeps only the unfinished rest."""
    return b"".join(respond(head) for head in take_heads(buffer))
