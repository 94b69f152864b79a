"""One non-blocking connection's buffers, shared by the models that wait for readiness.

select, poll, epoll, sigio and the busy-polling model differ only in how they learn that a
socket is ready; what they do then is this: read what is there, answer every complete
request, and write as much as the socket takes, keeping the rest for the next readiness.
"""

from __future__ import annotations

import socket

from . import protocol

READ_SIZE = 65536


class Peer:
    def __init__(self, sock: socket.socket):
        sock.setblocking(False)
        self.sock = sock
        self.fd = sock.fileno()
        self.inbox = bytearray()
        self.outbox = bytearray()

    @property
    def wants_write(self) -> bool:
        return bool(self.outbox)

    def read(self, until_drained: bool = False) -> bool:
        """Copy what has arrived, answer every complete request, write. False when the peer is gone."""
        if not self.receive(until_drained):
            return False
        self.outbox += protocol.answers(self.inbox)
        return self.write()

    def receive(self, until_drained: bool = False) -> bool:
        """Phase 2 only: the data is ready, copy it into inbox. False when the peer is gone.

        until_drained reads until EAGAIN, which edge-triggered epoll needs: it reports a
        socket once per arrival, so bytes left behind would never be reported again.
        """
        while True:
            try:
                data = self.sock.recv(READ_SIZE)
            except BlockingIOError:
                break  # phase 1 is not over: nothing has arrived yet
            except OSError:
                return False
            if not data:
                return False
            self.inbox += data
            if not until_drained:
                break
        return True

    def write(self) -> bool:
        """Send what the socket takes now. False when the peer is gone."""
        if self.outbox:
            try:
                sent = self.sock.send(self.outbox)
            except BlockingIOError:
                return True
            except OSError:
                return False
            del self.outbox[:sent]
        return True

    def close(self) -> None:
        self.sock.close()
