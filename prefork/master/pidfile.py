"""The master's pidfile: written atomically, renamed to *.oldbin during an upgrade, removed at exit."""

from __future__ import annotations

import logging
import os

log = logging.getLogger("prefork")


class Pidfile:
    def __init__(self, path: str | None):
        self.path = path  # None: no pidfile configured, every method does nothing

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

    def running_master(self) -> int | None:
        """The pid of another prefork master that the pidfile names and that is still running,
        else None. A pidfile left by a master that died names no process, or one that is not
        prefork (its pid reused): that is not a running server, and it is overwritten."""
        if not self.path:
            return None
        try:
            with open(self.path) as f:
                pid = int(f.read().strip())
        except (OSError, ValueError):
            return None
        if pid == os.getpid() or pid <= 0:
            return None
        try:
            with open(f"/proc/{pid}/cmdline", "rb") as f:
                command = f.read()
        except OSError:
            return None  # no such process
        return pid if b"prefork" in command else None

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

    @staticmethod
    def _ours(path: str) -> bool:
        try:
            with open(path) as f:
                return f.read().strip() == str(os.getpid())
        except (OSError, ValueError):
            return False
