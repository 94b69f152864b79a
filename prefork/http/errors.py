"""Protocol errors carry the status the server answers with before closing the connection."""


class ProtocolError(Exception):
    """The peer broke HTTP/1.1; `status` is the response to send (400, 413, 414, 431, 501, 505...)."""

    def __init__(self, status: int, reason: str):
        super().__init__(f"{status} {reason}")
        self.status = status
        self.reason = reason
