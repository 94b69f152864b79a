"""Upgrade on the fly (USR2): a new master, started from the same command, inherits every
listening socket through the PREFORK_FDS environment variable.

PREFORK_FDS is JSON: [{"bind": ADDRESS, "per_slot": BOOL, "fds": [FD, ...]}, ...], one entry
per listening address, its descriptors in slot order (the per-slot SO_REUSEPORT sockets
included), so the new master's slot i serves the very queue the old slot i served.
"""

from __future__ import annotations

import json
import logging
import os
import socket
import subprocess
import sys

log = logging.getLogger("prefork")
ENVIRONMENT_KEY = "PREFORK_FDS"


def encode(listenings) -> str:
    return json.dumps([{"bind": l.address.text, "per_slot": l.per_slot,
                        "fds": [sock.fileno() for sock in l.sockets]} for l in listenings])


def inherited_sockets() -> dict[str, tuple[list, bool]]:
    """Sockets handed over by the old master: address text -> (sockets, per_slot); {} if none.

    The variable is removed, so that workers and a later upgrade do not read it again.
    """
    text = os.environ.pop(ENVIRONMENT_KEY, None)
    if not text:
        return {}
    try:
        entries = json.loads(text)
        return {entry["bind"]: ([socket.socket(fileno=fd) for fd in entry["fds"]], bool(entry["per_slot"]))
                for entry in entries}
    except (ValueError, KeyError, TypeError, OSError) as exc:
        log.error("ignoring %s=%r: %s", ENVIRONMENT_KEY, text, exc)
        return {}


def command(argv: list[str]) -> list[str]:
    """The command line that started us, to run again: the interpreter and the script, as gunicorn."""
    script = argv[0] if argv else ""
    spec = getattr(sys.modules.get("__main__"), "__spec__", None)
    if spec is not None and spec.name == "prefork.__main__":
        # `python -m prefork`: run as a module again (as a script, its directory would come first
        # on sys.path, and prefork/http would hide the standard library's http).
        return [sys.executable, "-m", "prefork", *argv[1:]]
    if script and os.path.exists(script):
        return [sys.executable, script, *argv[1:]]
    return [sys.executable, "-c", "import sys; from prefork.cli import main; sys.exit(main())", *argv[1:]]


def start_new_master(argv: list[str], listenings, cwd: str) -> int:
    """Start the new master with our sockets; returns its pid (it runs as our child)."""
    fds = [sock.fileno() for l in listenings for sock in l.sockets]
    environment = dict(os.environ)
    environment[ENVIRONMENT_KEY] = encode(listenings)
    # subprocess forks and execs in C: no Python of ours runs in between; only the listening
    # sockets are passed (pass_fds), everything else is closed; cwd: where we were started,
    # since `chdir` may have moved us.
    process = subprocess.Popen(command(argv), cwd=cwd, env=environment, pass_fds=fds,
                               stdin=subprocess.DEVNULL)
    # The master reaps it with waitpid; holding the newest Popen only keeps it from warning
    # that it was collected while running (one, not one per upgrade).
    global _newest
    _newest = process
    return process.pid


_newest = None
