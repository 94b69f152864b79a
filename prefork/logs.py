"""The error log (Python logging) and the access log, both reopened on USR1 for log rotation."""

from __future__ import annotations

import logging
import sys
import time

ERROR_FORMAT = "%(asctime)s [%(process)d] [%(levelname)s] %(message)s"


class ReopenableFileHandler(logging.StreamHandler):
    """A log file that can be reopened after logrotate moved it (USR1)."""

    def __init__(self, path: str):
        self.path = path
        super().__init__(open(path, "a", buffering=1, encoding="utf-8"))

    def reopen(self) -> None:
        self.acquire()
        try:
            old = self.stream
            self.stream = open(self.path, "a", buffering=1, encoding="utf-8")
            old.close()
        finally:
            self.release()


def setup_error_log(target: str, level: str) -> logging.Logger:
    """Send prefork's log to stderr ("-") or to a file; returns the "prefork" logger."""
    logger = logging.getLogger("prefork")
    for handler in list(logger.handlers):
        logger.removeHandler(handler)
    handler = logging.StreamHandler(sys.stderr) if target == "-" else ReopenableFileHandler(target)
    handler.setFormatter(logging.Formatter(ERROR_FORMAT, "%Y-%m-%d %H:%M:%S %z"))
    logger.addHandler(handler)
    logger.setLevel(level.upper())
    logger.propagate = False
    return logger


def reopen_error_log() -> None:
    for handler in logging.getLogger("prefork").handlers:
        if isinstance(handler, ReopenableFileHandler):
            handler.reopen()


class AccessLog:
    """Combined Log Format lines, one per response; written only when --access-log is given."""

    def __init__(self, target: str):
        self.target = target
        self.file = None
        self.reopen()

    def reopen(self) -> None:
        old = self.file
        if self.target == "-":
            self.file = sys.stdout
        else:
            self.file = open(self.target, "a", buffering=1, encoding="utf-8", errors="backslashreplace")
        if old is not None and old is not sys.stdout:
            old.close()

    def write(self, peer, request, status: int, size: int) -> None:
        host = peer[0] if isinstance(peer, tuple) and peer else "-"
        when = time.strftime("%d/%b/%Y:%H:%M:%S %z")
        if request is not None:
            line = f"{request.method.decode('latin-1')} {request.target.decode('latin-1')} HTTP/{request.version.decode()}"
            referer = (request.header(b"referer") or b"-").decode("latin-1")
            agent = (request.header(b"user-agent") or b"-").decode("latin-1")
        else:
            line, referer, agent = "-", "-", "-"
        self.file.write(f'{host} - - [{when}] "{line}" {status} {size} "{referer}" "{agent}"\n')
        if self.file is sys.stdout:
            sys.stdout.flush()

    def close(self) -> None:
        if self.file is not None and self.file is not sys.stdout:
            self.file.close()


