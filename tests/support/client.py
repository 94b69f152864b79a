"""A raw-socket HTTP/1.1 client: requests go out exactly as written (no library normalises them)
and responses are read as they come, Content-Length or chunked, pipelined ones one by one."""

from __future__ import annotations

import socket


def connect(port: int, host: str = "127.0.0.1", timeout: float = 10.0) -> socket.socket:
    """A new TCP connection to host:port; timeout bounds every later send and receive."""
    return socket.create_connection((host, port), timeout=timeout)


def get(port: int, target: str = "/", *headers: str, host: str = "127.0.0.1",
        timeout: float = 10.0) -> tuple[int, dict, bytes]:
    """GET target with the given header lines on a new connection; (status, headers, body)."""
    return exchange(port, _head("GET", target, headers), host=host, timeout=timeout)


def post(port: int, target: str, body: bytes, *headers: str, host: str = "127.0.0.1",
         timeout: float = 10.0) -> tuple[int, dict, bytes]:
    """POST body (with its Content-Length) to target on a new connection; (status, headers, body)."""
    head = _head("POST", target, (*headers, f"Content-Length: {len(body)}"))
    return exchange(port, head + body, host=host, timeout=timeout)


def exchange(port: int, request: bytes, host: str = "127.0.0.1", timeout: float = 10.0) -> tuple[int, dict, bytes]:
    """Send request on a new connection and read one response; (status, headers, body)."""
    with connect(port, host, timeout) as sock:
        sock.sendall(request)
        return read_response(sock)


def _head(method: str, target: str, headers) -> bytes:
    lines = "".join(line + "\r\n" for line in headers)
    return f"{method} {target} HTTP/1.1\r\nHost: t\r\n{lines}\r\n".encode("latin-1")


def recv_until_closed(sock: socket.socket, limit: int = 1 << 26) -> bytes:
    """Read until the server closes the connection."""
    chunks = []
    total = 0
    while total < limit:
        try:
            data = sock.recv(65536)
        except ConnectionResetError:
            break
        if not data:
            break
        chunks.append(data)
        total += len(data)
    return b"".join(chunks)


def read_head(sock: socket.socket, buf: bytearray) -> tuple[int, dict]:
    """A response head only (for HEAD, whose Content-Length describes a body that is not sent)."""
    while b"\r\n\r\n" not in buf:
        data = sock.recv(65536)
        assert data, "closed before the head was complete"
        buf.extend(data)
    end = buf.index(b"\r\n\r\n")
    lines = bytes(buf[:end]).decode("latin-1").split("\r\n")
    del buf[:end + 4]
    headers = {k.strip().lower(): v.strip() for k, _, v in (line.partition(":") for line in lines[1:])}
    return int(lines[0].split()[1]), headers


def read_response(sock: socket.socket, buffer: bytearray | None = None) -> tuple[int, dict, bytes]:
    """Read one Content-Length or chunked response from sock; returns (status, headers, body).

    Pass the same bytearray as buffer for successive (pipelined) responses on one socket.
    """
    buf = buffer if buffer is not None else bytearray()

    def fill():
        data = sock.recv(65536)
        if not data:
            raise ConnectionError("closed before the response was complete")
        buf.extend(data)

    while b"\r\n\r\n" not in buf:
        fill()
    end = buf.index(b"\r\n\r\n")
    head = bytes(buf[:end]).decode("latin-1").split("\r\n")
    del buf[:end + 4]
    status = int(head[0].split()[1])
    headers = {}
    for line in head[1:]:
        name, _, value = line.partition(":")
        headers[name.strip().lower()] = value.strip()
    if status == 100:
        return read_response(sock, buf)
    body = b""
    if headers.get("transfer-encoding") == "chunked":
        parts = []
        while True:
            while b"\r\n" not in buf:
                fill()
            line_end = buf.index(b"\r\n")
            size = int(bytes(buf[:line_end]).split(b";")[0], 16)
            del buf[:line_end + 2]
            if size == 0:
                while b"\r\n\r\n" not in buf and not buf.startswith(b"\r\n"):
                    fill()
                trailer_end = 2 if buf.startswith(b"\r\n") else buf.index(b"\r\n\r\n") + 4
                del buf[:trailer_end]
                break
            while len(buf) < size + 2:
                fill()
            parts.append(bytes(buf[:size]))
            del buf[:size + 2]
        body = b"".join(parts)
    elif "content-length" in headers:
        length = int(headers["content-length"])
        while len(buf) < length:
            fill()
        body = bytes(buf[:length])
        del buf[:length]
    return status, headers, body
