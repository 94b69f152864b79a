"""The master process: bind, fork one worker per slot, supervise with signals.

One readable loop, as gunicorn's arbiter and nginx's master cycle: signal handlers only record
the signal (through `signal.set_wakeup_fd`), the loop wakes, handles what was recorded, reaps
and respawns.
"""

from __future__ import annotations

import logging
import os
import select
import signal
import sys

from setproctitle import setproctitle

from prefork.logs import setup_error_log

from .sockets import BindError, bind_all, worker_sockets

log = logging.getLogger("prefork")

HANDLED = (signal.SIGHUP, signal.SIGQUIT, signal.SIGTERM, signal.SIGINT, signal.SIGCHLD)


class Arbiter:
    def __init__(self, config, argv=None):
        self.config = config
        self.argv = argv or sys.argv
        self.workers: dict[int, int] = {}  # pid -> slot
        self.listenings = []
        self.stopping = False

    def run(self) -> int:
        setup_error_log(self.config.error_log, self.config.log_level)
        try:
            self.listenings = bind_all(self.config.bind, self.config.worker_count, self.config.reuse_port,
                                       self.config.backlog)
        except BindError as exc:
            log.error("%s", exc)
            return 1
        for listening in self.listenings:
            log.info("listening on %s (port %s)", listening.address.text, listening.bound_port)
        setproctitle(f"prefork: master [{' '.join(self.argv[1:])}]")
        read_fd, write_fd = os.pipe2(os.O_NONBLOCK | os.O_CLOEXEC)
        for sig in HANDLED:
            signal.signal(sig, lambda *_: None)
        signal.set_wakeup_fd(write_fd, warn_on_full_buffer=False)
        for slot in range(self.config.worker_count):
            self.spawn(slot)
        while self.workers:
            select.select([read_fd], [], [], 1.0)
            try:
                received = os.read(read_fd, 512)
            except BlockingIOError:
                received = b""
            for signum in received:
                if signum in (signal.SIGTERM, signal.SIGINT, signal.SIGQUIT):
                    self.stopping = True
                    for pid in self.workers:
                        os.kill(pid, signum)
            self.reap()
        return 0

    def spawn(self, slot: int) -> None:
        pid = os.fork()
        if pid:
            self.workers[pid] = slot
            return
        code = 1
        try:
            setproctitle(f"prefork: worker {slot}")
            from prefork.workers.worker import Worker

            code = Worker(self.config, worker_sockets(self.listenings, slot), slot=slot).run()
        except BaseException:
            log.exception("worker %d failed", os.getpid())
        finally:
            os._exit(code)

    def reap(self) -> None:
        while True:
            try:
                pid, status = os.waitpid(-1, os.WNOHANG)
            except ChildProcessError:
                return
            if pid == 0:
                return
            slot = self.workers.pop(pid, None)
            if slot is not None and not self.stopping:
                log.warning("worker %d (slot %d) exited with %d; respawning", pid, slot, status)
                self.spawn(slot)
