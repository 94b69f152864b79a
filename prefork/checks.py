"""`prefork -t`: what start-up would find, checked without starting.

Parsing the configuration already checked every value's type; this looks at the machine: the
user and group exist, log files and the pidfile can be created, the static root is a directory
(start-up only logs that one: every request under it would be a 404), the listening
addresses parse, the TLS certificate and key load (the master's own code builds the context),
the app imports and names a callable (gunicorn's --check-config loads it too).
Each problem names the key, the value and where it was set.
"""

from __future__ import annotations

import os

from . import tls
from .master import privileges
from .addresses import AddressError, parse_address


def problems(config) -> list[str]:
    where = config.path or "command line"
    found = []

    def bad(key: str, why: str) -> None:
        found.append(f"{where}: invalid value {config.values[key]!r} for key {key!r}: {why}")

    for key in ("user", "group"):
        if config.values[key]:
            try:
                privileges.resolve(config.user if key == "user" else None, config.group if key == "group" else None)
            except privileges.PrivilegeError as exc:
                bad(key, str(exc).split(" (key")[0])
    for key in ("access_log", "error_log"):
        path = config.values[key]
        if path and path != "-":
            why = _not_writable(path)
            if why:
                bad(key, why)
    if config.pid:  # the master writes it through a temporary file beside it, then renames it
        directory = os.path.dirname(os.path.abspath(config.pid))
        if os.path.isdir(config.pid):
            bad("pid", "is a directory")
        else:
            why = _not_writable(os.path.join(directory, f".prefork-check.{os.getpid()}"))
            if why:
                bad("pid", why)
    root = config.static_root
    if root and not os.path.isdir(root):
        bad("static_root", "no such directory" if not os.path.exists(root) else "not a directory")
    for table in config.static or ():
        if not os.path.isdir(table["root"]):
            why = "no such directory" if not os.path.exists(table["root"]) else "not a directory"
            found.append(f"{where}: invalid value {table['root']!r} for key 'static' (url {table['url']!r}): root: {why}")
    if config.status_bind:
        try:
            parse_address(config.status_bind)
        except AddressError as exc:
            bad("status_bind", str(exc))
    try:
        tls.server_context(config)
    except tls.TLSError as exc:
        found.append(str(exc))
    if config.chdir and not os.path.isdir(config.chdir):
        bad("chdir", "no such directory")
    elif config.app:
        from .apps.loader import AppLoadError, load_app

        try:
            load_app(config.app, config.chdir)
        except AppLoadError as exc:
            bad("app", str(exc))
    return found


def warnings(config) -> list[str]:
    """What start-up would only warn about (a certificate that expired still loads)."""
    return tls.warnings(config)


def _not_writable(path: str) -> str:
    """Why the server could not open `path` to append to it, or "" if it could: tried for real
    (as nginx -t does), and a file created for the try is removed again."""
    if os.path.isdir(path):
        return "is a directory"
    existed = os.path.exists(path)
    directory = os.path.dirname(os.path.abspath(path))
    if not existed and not os.path.isdir(directory):
        return f"no such directory {directory}"
    try:
        fd = os.open(path, os.O_WRONLY | os.O_APPEND | os.O_CREAT | os.O_CLOEXEC, 0o640)
    except OSError as exc:
        return f"cannot open it for writing: {exc.strerror}"
    os.close(fd)
    if not existed:
        os.unlink(path)
    return ""
