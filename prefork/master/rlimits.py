"""The open-file limit a worker needs, raised at start as nginx's worker_rlimit_nofile does.

A worker holds a descriptor per connection, and one more for each request body spooled to a
file; with the usual soft limit of 1024, `worker_connections = 10000` would be a promise the
kernel breaks with EMFILE at the 1000th client.
"""

from __future__ import annotations

import logging
import resource

log = logging.getLogger("prefork")

SPARE = 64  # listening sockets, logs, the signal pipe, the epoll descriptor, the app's own files


def wanted(worker_connections: int) -> int:
    return 2 * worker_connections + SPARE  # every connection with a spool file: the worst case


def needed(worker_connections: int) -> int:
    return worker_connections + SPARE  # every connection, bodies spooled only now and then


def raise_nofile(worker_connections: int) -> int:
    """Raise the soft RLIMIT_NOFILE towards the worst case, up to the hard limit; warn, naming
    both numbers, when the hard limit leaves less than the connections need. Returns the soft
    limit in force."""
    want = wanted(worker_connections)
    soft, hard = resource.getrlimit(resource.RLIMIT_NOFILE)
    if soft >= want:
        return soft
    target = want if hard == resource.RLIM_INFINITY else min(want, hard)
    if target > soft:
        try:
            resource.setrlimit(resource.RLIMIT_NOFILE, (target, hard))
            soft = target
        except (ValueError, OSError) as exc:
            log.warning("cannot raise the open-file limit from %d to %d: %s", soft, target, exc)
    if soft < needed(worker_connections):
        log.warning("open-file limit %d (hard limit %d) is below the %d that worker_connections = %d "
                    "needs: raise the hard limit (LimitNOFILE= in systemd, ulimit -Hn) or lower "
                    "worker_connections", soft, hard, needed(worker_connections), worker_connections)
    return soft
