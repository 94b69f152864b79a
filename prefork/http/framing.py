"""How a response is framed and whether the connection persists after it (RFC 9112 6 and 9.3).

One pure function, `frame_head()`, decides it for every response: the status line, the
server's own lines, the app's header lines, then `Transfer-Encoding: chunked` when the body's
length is unknown and the client speaks HTTP/1.1, and the `Connection` line that tells the
client whether the connection stays. No sockets, no clock: the caller passes what it knows.
"""

from __future__ import annotations

CRLF = b"\r\n"
CLOSE = b"Connection: close\r\n"
KEEP_ALIVE = b"Connection: keep-alive\r\n"
CHUNKED = b"Transfer-Encoding: chunked\r\n"
NO_BODY_STATUSES = frozenset((204, 304))  # and every 1xx: no body, so no framing either


def frame_head(status_line: bytes, common: bytes, headers: bytes, *, http10: bool, keep_alive: bool,
               length: int | None, status: int = 200) -> tuple[bytes, bool, bool]:
    """(the head, whether the body goes chunked, whether the connection persists).

    keep_alive: what the request asked for (RFC 9112 9.3: HTTP/1.1 persists unless it said
    close; HTTP/1.0 only if it said keep-alive) and the server allows (not stopping, the client
    not half-closed). length: the body's length when it is known (the caller's `headers` then
    carry its Content-Length), None when it is not.
    """
    chunked = False
    if length is None and status not in NO_BODY_STATUSES and status >= 200:
        if http10:
            keep_alive = False  # RFC 9112 6.3: only the connection's end can delimit the body
        else:
            chunked = True
    if status < 200:
        # An interim response: its head says nothing of the connection, which the final
        # response decides (RFC 9112 9.6: a "close" must be the last response's).
        connection = b""
    elif not keep_alive:
        connection = CLOSE
    elif http10:
        connection = KEEP_ALIVE  # an HTTP/1.0 client keeps the connection only when told so
    else:
        connection = b""
    head = b"".join((status_line, common, headers, CHUNKED if chunked else b"", connection, CRLF))
    return head, chunked, keep_alive
