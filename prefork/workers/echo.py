"""The raw TCP echo protocol (`echo://HOST:PORT`): what arrives is sent back.

It shares the transport's backpressure: above the high-water mark the connection stops
reading, so a peer that sends without reading fills its own TCP window, not our memory.
"""


class EchoConnection:
    __slots__ = ("transport", "fd")

    def __init__(self, worker, transport):
        self.transport = transport
        self.fd = transport.fd
        transport.start(self)

    @property
    def closed(self) -> bool:
        return self.transport.closed

    def abort(self) -> None:
        self.transport.abort()

    def data_received(self, data: bytes) -> None:
        self.transport.write(data)
        self.transport.flush()

    def eof_received(self) -> None:
        self.transport.closing = True  # finish what is queued, then close
        self.transport.flush()

    def wants_input(self) -> bool:
        return self.transport.writable()

    def drained(self) -> None:
        self.transport.deadline.clear()
        self.transport.update_interest()

    def timed_out(self) -> None:
        self.transport.abort()

    def crashed(self) -> None:
        self.transport.abort()

    def connection_lost(self) -> None:
        pass

    def idle(self) -> bool:
        return self.transport.out_len == 0

    def activity(self) -> str:
        """"reading", "writing" or "waiting" (idle), as nginx's status counts connections."""
        return "writing" if self.transport.out_len else "waiting"
