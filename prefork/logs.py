"""The error log (Python logging) and the access log, both reopened on USR1 for log rotation."""

from __future__ import annotations

import binascii
import logging
import os
import re
import sys
import time
from urllib.parse import unquote_to_bytes

ERROR_FORMAT = "%(asctime)s [%(process)d] [%(levelname)s] %(message)s"


def _open_log(path: str, flags: int) -> int:
    """Log files are created rw-r----- as the access log is: they hold what clients sent
    (targets, queries) and tracebacks, which not every local user should read."""
    return os.open(path, flags, 0o640)


class ReopenableFileHandler(logging.StreamHandler):
    """A log file that can be reopened after logrotate moved it (USR1)."""

    def __init__(self, path: str):
        self.path = path
        super().__init__(open(path, "a", buffering=1, encoding="utf-8", opener=_open_log))

    def reopen(self) -> None:
        self.acquire()
        try:
            old = self.stream
            self.stream = open(self.path, "a", buffering=1, encoding="utf-8", opener=_open_log)
            old.close()
        finally:
            self.release()


class BootErrors(logging.StreamHandler):
    """Errors also to fd 2 while it is the pipe to the waiting `prefork -D` command, so that the
    command shows why the server did not start, not only where the log file is."""


def show_boot_errors() -> None:
    """While `prefork -D` waits: errors go to fd 2 too (the log file keeps them as well)."""
    logger = logging.getLogger("prefork")
    if not any(isinstance(handler, BootErrors) for handler in logger.handlers):
        handler = BootErrors(sys.stderr)
        handler.setLevel(logging.ERROR)
        handler.setFormatter(logging.Formatter("prefork: %(message)s"))
        logger.addHandler(handler)


def hide_boot_errors() -> None:
    """The command has its answer (or this worker has booted): fd 2 is no longer its pipe."""
    logger = logging.getLogger("prefork")
    for handler in list(logger.handlers):
        if isinstance(handler, BootErrors):
            logger.removeHandler(handler)


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


def prepare_log_files(paths, uid: int | None, gid: int | None) -> None:
    """Create the log files as the master (root) and give them to the workers' user, as nginx
    does: a worker that dropped privileges can then open them, and reopen them after a
    rotation, in a directory only root may write to (/var/log/prefork)."""
    if uid is None and gid is None or os.geteuid() != 0:
        return
    for path in paths:
        if not path or path == "-":
            continue
        try:
            fd = os.open(path, os.O_WRONLY | os.O_APPEND | os.O_CREAT | os.O_CLOEXEC, 0o640)
        except OSError:
            continue  # opening it later says why, with the path
        try:
            os.fchown(fd, -1 if uid is None else uid, -1 if gid is None else gid)
        finally:
            os.close(fd)


# The file fd 2 follows on USR1 (see send_stderr_to); None while fd 2 is left as it is.
_stderr_path: str | None = None
_stdout_too = False  # capture_output: fd 1 follows fd 2 to the error log file


def send_stderr_to(path: str, stdout: bool | None = None) -> None:
    """Point fd 2 at `path`: the error log file, or /dev/null (then it is not reopened).

    What is written to stderr rather than logged -- the stack faulthandler prints when the
    master aborts a hung worker, an app's writes to sys.stderr, Django's default logging --
    then lands in the error log, as with nginx and gunicorn --capture-output. sys.stderr and
    faulthandler write to fd 2 itself, so a dup2 is all they need. O_APPEND: the lines of the
    master and of every worker interleave whole. The logging handler has the same file open on
    its own (appending too), so the two never fight over an offset.

    stdout=True (capture_output): fd 1 is that file too, so an app's print() is kept, as with
    gunicorn's --capture-output; None: as the last call said (a reopen).
    """
    global _stderr_path, _stdout_too
    if stdout is not None:
        _stdout_too = stdout
    fd = os.open(path, os.O_WRONLY | os.O_APPEND | os.O_CREAT | os.O_CLOEXEC, 0o640)
    try:
        sys.stderr.flush()
        os.dup2(fd, 2)  # fd 2 itself stays inheritable: the workers and a USR2 master get it
        if _stdout_too and path != os.devnull:
            sys.stdout.flush()
            os.dup2(fd, 1)
    finally:
        os.close(fd)
    _stderr_path = None if path == os.devnull else path


def reopen_error_log() -> None:
    for handler in logging.getLogger("prefork").handlers:
        if isinstance(handler, ReopenableFileHandler):
            handler.reopen()
    if _stderr_path is not None:  # after a rotation, fd 2 must follow to the new file too
        try:
            send_stderr_to(_stderr_path)
        except OSError as exc:
            logging.getLogger("prefork").error("cannot reopen %s for stderr: %s", _stderr_path, exc.strerror)


# Bytes a client may not put into a log line as they are: the quote and backslash that delimit
# fields, every control byte (a line break, a tab, terminal escapes) and everything non-ASCII.
_UNSAFE = re.compile(rb'[\x00-\x1f"\\\x7f-\xff]')
COMBINED = '%(h)s %(l)s %(u)s %(t)s "%(r)s" %(s)s %(b)s "%(f)s" "%(a)s"'
DEFAULT_FORMAT = COMBINED + " %(L)s"  # combined, then the request time in seconds


def escape(value: bytes | None) -> str:
    """A client's bytes as nginx logs them: unsafe bytes become \\xHH; None is "-"."""
    if not value:
        return "-"
    if _UNSAFE.search(value):
        value = _UNSAFE.sub(lambda match: b"\\x%02X" % match[0][0], value)
    return value.decode("ascii")


class LogRecord:
    """The atoms of gunicorn's access_log_format (%(h)s, %(r)s, %({name}i)s...), computed only
    when the format uses them."""

    __slots__ = ("peer", "request", "status", "size", "duration", "when", "response_headers", "request_line")

    def __init__(self, peer, request, status, size, duration, when, response_headers=None, request_line=None):
        self.peer, self.request, self.status, self.size = peer, request, status, size
        self.duration, self.when, self.response_headers = duration, when, response_headers
        self.request_line = request_line  # a refused head's first line as it came, when request is None

    def __getitem__(self, atom: str) -> str:
        request = self.request
        if atom[0] == "{":  # {name}i: a request header, {name}o: a response header, {name}e: environ
            name, kind = atom[1:-2], atom[-1]
            if kind == "i":
                return escape(request.header(name.lower().encode("latin-1", "replace"))) if request is not None else "-"
            if kind == "o":
                return escape(_response_header(self.response_headers, name.lower().encode("latin-1", "replace")))
            return escape(_environ_value(self, name.upper()))
        getter = _ATOMS.get(atom)
        return getter(self) if getter is not None else "-"


def _response_header(lines: bytes | None, name: bytes) -> bytes | None:
    """The value of the first field `name` (lower case) in a response's serialized header lines."""
    if not lines:
        return None
    for line in lines.split(b"\r\n"):
        field, colon, value = line.partition(b":")
        if colon and field.strip().lower() == name:
            return value.strip()
    return None


def _environ_value(record: LogRecord, key: str) -> bytes | None:
    """%({KEY}e)s: the WSGI environ's KEY, as gunicorn logs it, for the keys the request gives
    (REMOTE_ADDR, REQUEST_METHOD, PATH_INFO, QUERY_STRING, SERVER_PROTOCOL, RAW_URI, CONTENT_TYPE,
    CONTENT_LENGTH, HTTP_*); the server writes this log, not the app, so what only the app's
    environ holds (wsgi.*, keys a middleware adds) is "-"."""
    request = record.request
    if key == "REMOTE_ADDR":
        return record.peer.encode() if record.peer else None
    if request is None:
        return None
    if key.startswith("HTTP_"):
        return request.header(key[5:].lower().replace("_", "-").encode("latin-1", "replace"))
    if key in ("CONTENT_TYPE", "CONTENT_LENGTH"):
        return request.header(key.lower().replace("_", "-").encode("latin-1", "replace"))
    if key == "REQUEST_METHOD":
        return request.method
    if key in ("RAW_URI", "REQUEST_URI"):
        return request.target
    if key in ("PATH_INFO", "QUERY_STRING"):
        path, _, query = request.target.partition(b"?")
        return unquote_to_bytes(path) if key == "PATH_INFO" else query
    if key == "SERVER_PROTOCOL":
        return b"HTTP/" + request.version
    return None


def _basic_auth_user(record: LogRecord) -> str:
    """%(u)s: the user name of HTTP Basic authentication, as gunicorn logs it, else "-"."""
    request = record.request
    credentials = request.header(b"authorization") if request is not None else None
    if not credentials or credentials[:6].lower() != b"basic ":
        return "-"
    try:
        user = binascii.a2b_base64(credentials[6:].strip()).partition(b":")[0]
    except binascii.Error:
        return "-"
    return escape(user)


def _request_line(record: LogRecord) -> str:
    request = record.request
    if request is None:
        return escape(record.request_line)
    return f"{escape(request.method)} {escape(request.target)} HTTP/{escape(request.version)}"


def _target_part(record: LogRecord, query: bool) -> str:
    if record.request is None:
        return "-"
    path, _, rest = record.request.target.partition(b"?")
    return escape(rest) if query else escape(path)


_ATOMS = {
    "h": lambda r: r.peer or "-",
    "l": lambda r: "-",
    "u": _basic_auth_user,
    "t": lambda r: time.strftime("[%d/%b/%Y:%H:%M:%S %z]", time.localtime(r.when)),
    "r": _request_line,
    "m": lambda r: escape(r.request.method) if r.request else "-",
    "U": lambda r: _target_part(r, False),
    "q": lambda r: _target_part(r, True),
    "H": lambda r: "HTTP/" + escape(r.request.version) if r.request else "-",
    "s": lambda r: str(r.status),
    "B": lambda r: str(r.size),
    "b": lambda r: str(r.size) if r.size else "-",
    "f": lambda r: escape(r.request.header(b"referer")) if r.request else "-",
    "a": lambda r: escape(r.request.header(b"user-agent")) if r.request else "-",
    "T": lambda r: str(int(r.duration)),
    "M": lambda r: str(int(r.duration * 1000)),
    "D": lambda r: str(int(r.duration * 1_000_000)),
    "L": lambda r: "%.6f" % r.duration,
    "p": lambda r: "<%d>" % os.getpid(),
}


def check_format(fmt: str) -> None:
    """Raise ValueError naming the first atom of `fmt` that does not exist."""
    for atom in re.findall(r"%\(([^)]*)\)", fmt):
        if atom not in _ATOMS and not re.fullmatch(r"\{[^}]+\}[ioe]", atom):
            raise ValueError(f"unknown atom %({atom})s")
    fmt % LogRecord(None, None, 200, 0, 0.0, 0.0)  # other % syntax errors show here


class AccessLog:
    """One line per response, in `fmt` (gunicorn's atoms; combined and the request time by
    default); written only when --access-log is given. Each line goes out in one write(2) on a
    descriptor opened O_APPEND, so lines of several workers never interleave."""

    def __init__(self, target: str, fmt: str | None = None):
        self.target = target
        self.format = fmt or DEFAULT_FORMAT
        self.fd = -1
        self.reopen()

    def reopen(self) -> None:
        old = self.fd
        if self.target == "-":
            self.fd = sys.stdout.fileno()
        else:
            self.fd = os.open(self.target, os.O_WRONLY | os.O_APPEND | os.O_CREAT | os.O_CLOEXEC, 0o640)
        if old > 2:
            os.close(old)

    def write(self, peer: str, request, status: int, size: int, duration: float = 0.0,
              response_headers: bytes | None = None, request_line: bytes | None = None) -> None:
        """peer: the client's address ("" for a unix-socket peer); response_headers: the app's
        serialized header lines, for %({name}o)s; request_line: with no request (refused), the
        first line that came, for %(r)s."""
        line = self.format % LogRecord(peer, request, status, size, duration, time.time(), response_headers,
                                       request_line)
        try:
            os.write(self.fd, line.encode("utf-8", "backslashreplace") + b"\n")
        except OSError:
            pass  # a full disk or a closed pipe must not take requests down with it

    def close(self) -> None:
        if self.fd > 2:
            os.close(self.fd)
        self.fd = -1
