"""The raw TCP echo protocol (`echo://HOST:PORT`): what arrives is sent back.

It shares the Stream's backpressure: above the high-water mark the connection stops reading,
so a peer that sends without reading fills its own TCP window, not our memory.
"""

from .stream import Stream


class EchoConnection(Stream):
    __slots__ = ()

    def on_data(self, data: bytes) -> None:
        self.write(data)
        self.flush()
