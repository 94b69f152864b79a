"""Reading what prefork writes to its logs: the lines of a log file, waiting for them to appear,
the `listening on ADDRESS (port N)` lines of the error log, and a log free of WSGI problems."""

from __future__ import annotations

import re
from pathlib import Path

from support.polling import wait_until

_LISTENING = re.compile(r"listening on (\S+)(?: \(port (\d+)\))?$", re.M)  # no port: a unix socket


def lines(path: Path) -> list[str]:
    """The lines of the file, [] while it does not exist."""
    return path.read_text().splitlines() if path.exists() else []


def wait_lines(path: Path, count: int) -> list[str]:
    """Wait until the file has at least `count` lines; returns them all."""
    return wait_until(lambda: (found := lines(path)) and len(found) >= count and found, 10,
                      message=f"{count} access log lines")


def listening(log: str) -> list[tuple[str, int | None]]:
    """(address, port) of every listening line of the log; port None for a unix socket."""
    return [(m.group(1), int(m.group(2)) if m.group(2) else None) for m in _LISTENING.finditer(log)]


# What a server log shows when an app wrapped in wsgiref.validate.validator (warnings as errors)
# met a server that breaks PEP 3333: the 500's traceback, or the validator's complaint.
VALIDATOR_PROBLEMS = ("Traceback", "AssertionError", "WSGIWarning", "garbage collected")


def assert_clean(log: str) -> None:
    """The log shows none of VALIDATOR_PROBLEMS."""
    for problem in VALIDATOR_PROBLEMS:
        assert problem not in log, f"{problem} in the server log:\n{log}"
