"""A fixed pool of threads, each one an iterative server on the shared listening socket.

Threads are made once, not per connection, so the cost is bounded, and so is the service:
each thread blocks in accept() (the kernel hands each connection to one of them), then serves
that connection to its end. With more keep-alive clients than threads, the extra clients wait
in the listen backlog exactly as they do at an iterative server. The variant is the size.
"""

from __future__ import annotations

import socket
import threading

from . import blocking
from .threaded import STACK_SIZE

SIZE = 16


def serve(listener: socket.socket, variant: str = "") -> None:
    threading.stack_size(STACK_SIZE)
    threads = [threading.Thread(target=blocking.serve, args=(listener,), daemon=True)
               for _ in range(int(variant or SIZE))]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join()
