"""The master's pidfile: written atomically, renamed to *.oldbin during an upgrade, removed at exit.

The master holds a lock (flock) on its pidfile for as long as it lives, so a pidfile is a running
server's exactly when its lock is taken: whatever pid it names, whatever the process's title
(`-n`), and however the pid was reused since a crash (a container's pid 1, say)."""

from __future__ import annotations

import fcntl
import logging
import os

log = logging.getLogger("prefork")


class Pidfile:
    def __init__(self, path: str | None):
        self.path = path  # None: no pidfile configured, every method does nothing
        self.lock_fd = -1  # the pidfile, open and locked while it is ours

    def write(self, pid: int | None = None) -> None:
        """Write our pid (write a temporary file, then rename: readers never see half a file)."""
        if not self.path:
            return
        pid = os.getpid() if pid is None else pid
        temporary = f"{self.path}.{os.getpid()}.tmp"
        fd = os.open(temporary, os.O_WRONLY | os.O_CREAT | os.O_TRUNC | os.O_CLOEXEC, 0o644)
        try:
            os.fchmod(fd, 0o644)  # whatever the umask: anyone may read it, only we may write it
            os.write(fd, f"{pid}\n".encode())
        finally:
            os.close(fd)
        os.replace(temporary, self.path)
        self._lock()

    def _lock(self) -> None:
        """Lock the pidfile just written: the lock lives with this file (renamed to .oldbin by an
        upgrade, it stays held) and goes with our last descriptor of it, at exit or death."""
        if self.lock_fd >= 0:
            os.close(self.lock_fd)
        self.lock_fd = os.open(self.path, os.O_RDONLY | os.O_CLOEXEC)
        try:
            fcntl.flock(self.lock_fd, fcntl.LOCK_EX | fcntl.LOCK_NB)
        except OSError as exc:  # a file system without locks: the check below finds it free
            log.warning("cannot lock the pidfile %s: %s", self.path, exc.strerror)

    def descriptors(self) -> list[int]:
        """What a forked worker must close: a worker holding the lock would keep it taken after
        the master died."""
        return [self.lock_fd] if self.lock_fd >= 0 else []

    def running_master(self) -> int | None:
        """The pid in the pidfile if a running master holds it (its lock is taken), else None: a
        pidfile left by a master that died is free, whatever process has its pid now."""
        if not self.path:
            return None
        try:
            fd = os.open(self.path, os.O_RDONLY | os.O_CLOEXEC)
        except OSError:
            return None
        try:
            try:
                fcntl.flock(fd, fcntl.LOCK_SH | fcntl.LOCK_NB)
                return None  # nobody holds it (our shared lock goes with the close below)
            except BlockingIOError:
                pass
            except OSError:
                return None
            try:
                return int(os.read(fd, 32).strip() or 0)
            except ValueError:
                return 0
        finally:
            os.close(fd)

    def rename_to_oldbin(self) -> None:
        """USR2: the new master writes the pidfile; ours becomes PATH.oldbin, as nginx does."""
        if self.path and self._ours(self.path):
            os.replace(self.path, self.path + ".oldbin")

    def restore_from_oldbin(self) -> None:
        """The new master died before taking over: the pidfile is ours again."""
        if self.path and self._ours(self.path + ".oldbin"):
            os.replace(self.path + ".oldbin", self.path)

    def remove(self) -> None:
        """At exit: remove whichever of PATH and PATH.oldbin still holds our pid."""
        if not self.path:
            return
        for candidate in (self.path, self.path + ".oldbin"):
            if self._ours(candidate):
                try:
                    os.unlink(candidate)
                except OSError as exc:
                    log.warning("cannot remove pidfile %s: %s", candidate, exc.strerror)
        if self.lock_fd >= 0:
            os.close(self.lock_fd)
            self.lock_fd = -1

    @staticmethod
    def _ours(path: str) -> bool:
        try:
            with open(path) as f:
                return f.read().strip() == str(os.getpid())
        except (OSError, ValueError):
            return False
