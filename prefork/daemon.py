"""`prefork -D`: detach from the terminal, as gunicorn's --daemon, and say whether it worked.

The command forks; its child starts a session of its own (setsid) and forks the master, which,
not being a session leader, can never get a controlling terminal again. Until the master's
first workers serve, its stderr (and a booting worker's) is a pipe to the command, which copies
what comes (the "listening on" lines, or why it cannot start) to the terminal and then exits
0, or 1 if the master gave up. From then on the master's stdin and stdout are /dev/null, and
fd 2 is the --error-log file (or /dev/null with "-"): the logs go to the files named by
--error-log and --access-log.
"""

from __future__ import annotations

import os
import sys

from .logs import hide_boot_errors, send_stderr_to, show_boot_errors
from .master.arbiter import Arbiter

READY = b"ready"


def run_detached(config, argv: list[str], overrides: dict) -> int:
    """Start the master in the background; in the command, return 0 once it listens, else 1."""
    status_read, status_write = os.pipe()
    errors_read, errors_write = os.pipe()
    sys.stdout.flush()
    sys.stderr.flush()
    child = os.fork()
    if child == 0:
        os.close(status_read)
        os.close(errors_read)
        _detach(errors_write)
        # Only the master gets here (its parent, the session leader, has exited).
        return DetachedArbiter(config, argv, overrides, status_write, errors_write).run()
    os.close(status_write)
    os.close(errors_write)
    _copy_until_closed(errors_read)
    status = _read_all(status_read)
    os.waitpid(child, 0)  # the session leader, which exits as soon as it has forked the master
    if status.startswith(READY):
        print(f"prefork: running in the background,{status[len(READY):].decode()}", file=sys.stderr)
        if config.error_log == "-":
            print("prefork: warning: with -D and --error-log - the server's log goes to /dev/null; "
                  "give --error-log FILE to keep it", file=sys.stderr)
        return 0
    where = "above" if config.error_log == "-" else f"above, and in {config.error_log}"
    print(f"prefork: the server did not start (the reason is {where})", file=sys.stderr)
    return 1


def _detach(errors_write: int) -> None:
    """In the command's child: a new session, then the master forked from it, stdio replaced."""
    os.setsid()
    if os.fork() > 0:
        os._exit(0)
    null = os.open(os.devnull, os.O_RDWR)
    os.dup2(null, 0)
    os.dup2(null, 1)  # an access log on "-" (stdout) is lost, as with gunicorn --daemon
    os.dup2(errors_write, 2)  # until the first workers serve: see DetachedArbiter.tell_command
    os.close(null)


class DetachedArbiter(Arbiter):
    """The master of `prefork -D`: tells the command once it serves, then lets go of it.

    "Serves" means every worker of the first generation has booted (loaded the app) and
    accepts: an app that fails to import is reported by the command, with exit code 1, rather
    than after it said the server runs. Until then fd 2 of the master, and of each worker
    while it boots, is the pipe to the command; the workers never get the status pipe.
    """

    def __init__(self, config, argv, overrides, status_write: int, errors_write: int):
        super().__init__(config, argv=argv, overrides=overrides)
        self.status_write = status_write
        self.errors_write = errors_write
        self.attached = True  # the command still waits on our pipes

    def finish_replacements(self) -> None:
        super().finish_replacements()
        if self.attached and self.announced_ready:
            self.tell_command()

    def tell_command(self) -> None:
        by_default = self.config.tls_by_default
        where = ", ".join(l.address.text + (f" (port {l.bound_port})" if l.bound_port else "")
                          + (" (TLS)" if self.tls_context is not None and l.protocol(by_default) == "https" else "")
                          for l in self.listenings)
        try:
            os.write(self.status_write, READY + f" master pid {os.getpid()}, listening on {where}".encode())
            sys.stderr.flush()
        except OSError:  # the command was killed meanwhile: nobody to tell
            pass
        self.attached = False
        self.follow_error_log()  # fd 2: the error log file, or /dev/null
        os.close(self.status_write)
        os.close(self.errors_write)

    def follow_error_log(self) -> None:
        if self.attached:
            # fd 2 stays the pipe to the command until it is told; what goes wrong meanwhile is
            # shown there too, not only in the log file.
            if self.config.error_log != "-":
                show_boot_errors()
            return
        hide_boot_errors()
        if self.config.error_log == "-":
            send_stderr_to(os.devnull)
        else:
            super().follow_error_log()

    def command_fds(self) -> list[int]:
        return [self.status_write, self.errors_write] if self.attached else []

    def worker_stderr(self) -> str | None:
        if not self.attached:
            return None  # fd 2 is no longer the pipe: a worker keeps the master's
        return os.devnull if self.config.error_log == "-" else self.config.error_log

def _copy_until_closed(fd: int) -> None:
    while data := os.read(fd, 65536):
        sys.stderr.buffer.write(data)
        sys.stderr.buffer.flush()
    os.close(fd)


def _read_all(fd: int) -> bytes:
    chunks = []
    while data := os.read(fd, 4096):
        chunks.append(data)
    os.close(fd)
    return b"".join(chunks)
