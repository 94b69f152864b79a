"""--reload, for development: a changed .py file of the app starts new workers, as a HUP does.

The master does not import the app (each worker does, and that is what makes a HUP load the
new code), so it cannot look in its own sys.modules for the app's files. It watches the .py
files under the directories the app is imported from instead: --chdir, or the directory
prefork was started in, the --pythonpath directories, and the app's top-level package if it
lives elsewhere (an editable install). The loop of the master polls them at most once a
second: one stat per file, no thread (the master forks; a thread would not survive the fork
and could hold a lock the child needs), no inotify. Virtual environments, hidden directories
and __pycache__ are skipped; a tree larger than MAX_FILES is cut there, with a warning.
"""

from __future__ import annotations

import importlib.machinery
import importlib.util
import logging
import os
import sys
import time

from prefork.apps.loader import pythonpath_directories

log = logging.getLogger("prefork")

INTERVAL = 1.0  # seconds between two scans
MAX_FILES = 20000
SKIP_DIRECTORIES = {"__pycache__", "node_modules", "site-packages", "dist-packages"}


def watcher_for(config) -> Watcher | None:
    """The watcher --reload asks for, or None."""
    if not config.reload:
        return None
    if not config.app:
        log.warning("--reload: no app given, nothing to watch")
        return None
    watcher = Watcher(roots_of(config))
    log.info("--reload: watching %d .py files under %s", len(watcher.seen), ", ".join(watcher.roots))
    return watcher


def roots_of(config) -> list[str]:
    """The directories the app's modules are imported from (see the module doc)."""
    roots = [os.path.abspath(config.chdir or os.getcwd())]
    roots += [os.path.normpath(d) for d in pythonpath_directories(config.pythonpath, config.chdir)]
    top = config.app.partition(":")[0].split(".")[0]
    try:  # finds the package without importing it
        spec = importlib.machinery.PathFinder.find_spec(top, roots + [p for p in sys.path if p])
    except (ImportError, ValueError):
        spec = None
    for location in (spec.submodule_search_locations or []) if spec else []:
        installed = SKIP_DIRECTORIES & set(os.path.abspath(location).split(os.sep))
        if not installed and not any(_within(location, root) for root in roots):
            roots.append(os.path.abspath(location))
    return list(dict.fromkeys(roots))


class Watcher:
    """Modification times and sizes of the watched files, compared once per interval."""

    def __init__(self, roots: list[str], interval: float = INTERVAL):
        self.roots = roots
        self.interval = interval
        self.warned = False
        self.seen = self.scan()
        self.next_scan = time.monotonic() + interval

    def changed(self) -> str | None:
        """The path of a file changed, added or removed since the last scan, or None."""
        now = time.monotonic()
        if now < self.next_scan:
            return None
        self.next_scan = now + self.interval
        current = self.scan()
        previous, self.seen = self.seen, current
        changed = sorted(path for path in current.keys() | previous.keys() if current.get(path) != previous.get(path))
        for path in changed:
            _forget_bytecode(path)
        if not changed:
            return None
        path = changed[0]
        how = "removed" if path not in current else "added" if path not in previous else "changed"
        more = f" (and {len(changed) - 1} more)" if len(changed) > 1 else ""
        log.info("--reload: %s %s%s: starting new workers", path, how, more)
        return path

    def scan(self) -> dict[str, tuple[int, int]]:
        files: dict[str, tuple[int, int]] = {}
        for root in self.roots:
            for path in _python_files(root):
                try:
                    status = os.stat(path)
                except OSError:  # removed while we walked
                    continue
                files[path] = (status.st_mtime_ns, status.st_size)
                if len(files) >= MAX_FILES:
                    if not self.warned:
                        self.warned = True
                        log.warning("--reload: more than %d .py files under %s; watching the first %d only",
                                    MAX_FILES, ", ".join(self.roots), MAX_FILES)
                    return files
        return files


def _forget_bytecode(path: str) -> None:
    """Remove the cached bytecode of a changed file. Python trusts a .pyc whose recorded source
    mtime (whole seconds) and size still match: an edit of the same size within the second
    after the last import would otherwise be imported as the old code."""
    try:
        os.unlink(importlib.util.cache_from_source(path))
    except (OSError, ValueError, NotImplementedError):
        pass


def _python_files(root: str):
    for directory, subdirectories, names in os.walk(root):
        subdirectories[:] = [d for d in subdirectories if not _skipped(os.path.join(directory, d))]
        for name in names:
            if name.endswith(".py") and not name.startswith((".", "#")):  # not editors' lock files
                yield os.path.join(directory, name)


def _skipped(directory: str) -> bool:
    name = os.path.basename(directory)
    return (name.startswith(".") or name in SKIP_DIRECTORIES
            or os.path.exists(os.path.join(directory, "pyvenv.cfg")))  # a virtual environment


def _within(path: str, root: str) -> bool:
    path, root = os.path.abspath(path), os.path.abspath(root)
    return path == root or path.startswith(root.rstrip(os.sep) + os.sep)
