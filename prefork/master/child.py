"""The worker side of a fork: from the master's copy of the process to a running Worker.

Exit codes a worker returns to the master:
  0  a requested stop (QUIT, TERM) or recycling after max_requests
  3  BOOT_FAILED: the worker could not start (the app does not import, privileges cannot be
     dropped, ...); the master does not respawn it in a loop but stops (see arbiter.py)
  other, or a signal: a crash; the master respawns the slot, backing off if it repeats
"""

from __future__ import annotations

import ctypes
import faulthandler
import logging
import os
import signal
import sys
from functools import partial

from setproctitle import setproctitle

from prefork.apps.loader import AppLoadError
from prefork.logs import hide_boot_errors, send_stderr_to
# Imported by the master, once, before any fork: a worker starts without importing the server
# again, and still has it after dropping privileges to a user who may not read the install.
from prefork.apps import hosting, site, static, status, wsgi, wsgi_inline, wsgi_response, wsgi_threads  # noqa: F401
from prefork.workers.worker import Worker

from . import privileges
from .signals import HANDLED, SIGDRAIN, SIGRESUME

log = logging.getLogger("prefork")

BOOT_FAILED = 3  # as gunicorn's WORKER_BOOT_ERROR
PR_SET_PDEATHSIG = 1


def title(name: str, slot: int, generation: int, state: str = "") -> str:
    """name: the proc_name setting (-n), "prefork" by default."""
    return f"{name}: worker {slot} [gen {generation}]" + (f" {state}" if state else "")


class Report:
    """What Worker calls `board`: writes the scoreboard cell and shows the state in the title."""

    def __init__(self, cell, slot: int, generation: int, name: str):
        self.cell = cell
        self.name = name
        self.slot = slot
        self.generation = generation
        self.shown_stopping = False

    @property
    def scoreboard(self):
        """The whole board, which the status page reads."""
        return self.cell.board

    def server_stopping(self) -> bool:
        """Whether the whole server stops (not only this worker: a reload, a recycle, TTOU)."""
        master = self.cell.board.read_master()
        return bool(master and master["stopping"])

    def update(self, worker) -> None:
        self.cell.update(worker)
        if worker.stopping and not self.shown_stopping:
            self.shown_stopping = True
            setproctitle(title(self.name, self.slot, self.generation, "shutting down"))


def run_worker(master_pid: int, config, sockets, slot: int, generation: int, cell, app,
               keep_fds: set[int], close_fds: list[int], signal_mask: set, tls_context=None,
               stderr_after_boot: str | None = None) -> None:
    """In the forked child: set the process up, run the Worker, and _exit with its code.

    The master forks with its signals blocked; `signal_mask` is the mask to restore once this
    process no longer has the master's handlers, wake-up fd and pipe (see Arbiter.spawn).
    tls_context: the master's, with the key already loaded (see prefork/tls.py), or None.
    stderr_after_boot: a file to point fd 2 at once booted, or None to keep the master's. Under
    `prefork -D`, until the server is ready, fd 2 is the pipe that shows the command's user why
    a worker failed to boot; a booted worker must let go of it, or the command would wait for
    this process to end (it reads that pipe until end-of-file).
    """
    code = BOOT_FAILED
    try:
        _boot_signals()
        for fd in close_fds:  # the master's own descriptors (its signal pipe, unserved sockets)
            if fd not in keep_fds:
                try:
                    os.close(fd)
                except OSError:
                    pass
        # A QUIT or TERM sent since the fork is delivered now, to _exit_at_once.
        signal.pthread_sigmask(signal.SIG_SETMASK, signal_mask)
        _die_with_master(master_pid)
        setproctitle(title(config.proc_name, slot, generation))
        # A hung worker gets SIGABRT from the master: faulthandler prints where every thread
        # is stuck (to stderr) before the process dies.
        faulthandler.enable(file=sys.stderr, all_threads=True)
        privileges.drop(config.user, config.group)
        worker = _build_worker(config, sockets, slot, generation, Report(cell, slot, generation, config.proc_name), app,
                               tls_context)
        if stderr_after_boot is not None:
            _release_boot_stderr(stderr_after_boot, config.capture_output)
    except (AppLoadError, privileges.PrivilegeError) as exc:
        log.error("worker %d (slot %d) failed to boot: %s", os.getpid(), slot, exc)
        _exit(BOOT_FAILED)
    except BaseException:
        log.exception("worker %d (slot %d) failed to boot", os.getpid(), slot)
        _exit(BOOT_FAILED)
    try:
        code = worker.run()
    except BaseException:
        log.exception("worker %d (slot %d) crashed", os.getpid(), slot)
        code = 1
    _exit(code)


def _build_worker(config, sockets, slot, generation, board, app, tls_context=None):
    """Worker(...) with the app: preloaded by the master (--preload), or imported here.

    The app is imported in the worker process after privileges were dropped, so an import
    error is this worker's boot failure (AppLoadError, exit code BOOT_FAILED).
    """
    if app is None and config.app:
        from prefork.apps.loader import load_app

        app = load_app(config.app, config.chdir)
    return Worker(config, sockets, slot=slot, generation=generation, board=board,
                  handlers=partial(hosting.handlers, app=app), tls_context=tls_context)


def _boot_signals() -> None:
    """Until Worker.run installs its handlers: stop requests end the boot, others are ignored.

    The master's handlers must not stay: they would write to the master's wake-up pipe.
    Runs with the signals blocked, so none meets the SIG_DFL set here in passing.
    """
    signal.set_wakeup_fd(-1)
    for sig in HANDLED:  # the master's; a worker installs its own in Worker.run
        signal.signal(sig, signal.SIG_DFL)
    for sig in (signal.SIGQUIT, signal.SIGTERM, signal.SIGINT):
        signal.signal(sig, _exit_at_once)
    # The master's alone (a drain or resume sent to the whole group must not kill a worker:
    # the default action of a real-time signal is to terminate), and Worker.run keeps them so.
    for sig in (signal.SIGHUP, signal.SIGUSR1, signal.SIGUSR2, signal.SIGWINCH, signal.SIGTTIN, signal.SIGTTOU,
                SIGDRAIN, SIGRESUME):
        signal.signal(sig, signal.SIG_IGN)


def _release_boot_stderr(path: str, stdout: bool) -> None:
    hide_boot_errors()  # inherited from a master that still answers `prefork -D`
    try:
        send_stderr_to(path, stdout=stdout)
    except OSError as exc:  # the error log refused (permissions): never keep the pipe
        log.error("worker %d cannot open %s for stderr: %s", os.getpid(), path, exc.strerror)
        send_stderr_to(os.devnull)


def _exit_at_once(signum, frame) -> None:
    _exit(0)  # nothing accepted yet, so nothing to finish


def _die_with_master(master_pid: int) -> None:
    """SIGTERM when the master dies (PR_SET_PDEATHSIG); Worker._tick checks getppid too."""
    try:
        libc = ctypes.CDLL(None, use_errno=True)
        libc.prctl(PR_SET_PDEATHSIG, signal.SIGTERM, 0, 0, 0)
    except (OSError, AttributeError):  # pragma: no cover - not Linux
        pass
    if os.getppid() != master_pid:  # the master died before prctl took effect
        _exit(0)


def _exit(code: int) -> None:
    try:
        sys.stdout.flush()
        sys.stderr.flush()
    finally:
        os._exit(code)
