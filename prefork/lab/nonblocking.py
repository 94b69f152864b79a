"""Busy polling: every socket non-blocking, and one loop that asks each of them again and again.

    accept() / recv() return at once: EAGAIN (BlockingIOError) while phase 1 lasts, so the
              process never sleeps: it polls, and burns a whole CPU even with nothing to do
    recv()    once the data is ready, phase 2 (the copy) happens in the call, as with blocking IO

The cost per connection is a buffer, plus one failed system call per connection per turn of
the loop: the more idle connections, the slower each turn reaches the active ones.
"""

from __future__ import annotations

import socket

from .peer import Peer


def serve(listener: socket.socket, variant: str = "") -> None:
    listener.setblocking(False)
    peers: list[Peer] = []
    while True:
        try:
            conn, _ = listener.accept()
            peers.append(Peer(conn))
        except BlockingIOError:
            pass
        for peer in list(peers):
            if not peer.read() or not peer.write():  # each read is a try, mostly EAGAIN
                peers.remove(peer)
                peer.close()
