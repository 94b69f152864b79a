"""The master process: bind, fork one worker per slot, supervise with signals.

One readable loop, as gunicorn's arbiter: signal handlers only record the signal (through
`signal.set_wakeup_fd`, which writes its number to a pipe the loop sleeps on); the loop wakes,
acts on what was recorded in a fixed order, as nginx's master cycle does (children first,
then stop, quit, reload, reopen, upgrade, WINCH, resize, drain/resume), then does its
housekeeping: hung workers, the end of a reload, respawns.

Slots: slot i is a position, 0 <= i < active, with at most one *current* worker. During a
reload (HUP) or a TTOU the workers being replaced are *superseded*: they keep serving until
every slot has a current worker that is serving (it wrote its first heartbeat), and only
then are they sent QUIT: a reload or a resize never leaves a socket with nobody accepting on it.
"""

from __future__ import annotations

import logging
import os
import select
import signal
import socket
import sys
import time
from dataclasses import dataclass, field

from setproctitle import setproctitle

from prefork import config as configuration
from prefork import tls
from prefork.http import parser_class
from prefork.logs import prepare_log_files, reopen_error_log, send_stderr_to, setup_error_log

from . import autoreload, child, privileges, rlimits, systemd, upgrade
from .pidfile import Pidfile
from .scoreboard import Scoreboard
from .signals import HANDLED, SIGDRAIN, SIGRESUME
from .sockets import BindError, assignment, bind_all, covers, worker_sockets

log = logging.getLogger("prefork")

# Drain and resume have no traditional signal: two real-time ones, free for applications
# (signals.py; a worker ignores them).
FAST_GRACE = 2.0  # seconds workers get after TERM/INT before SIGKILL
GRACE_MARGIN = 1.0  # after graceful_timeout the worker stops itself; SIGKILL only if it did not
ABORT_GRACE = 1.0  # seconds between SIGABRT and SIGKILL for a hung worker
STABLE_AFTER = 10.0  # a worker that lived this long resets its slot's crash count
MAX_BACKOFF = 30.0
# Changing these needs new sockets or a new master: HUP keeps the old value and says so
# (and app/chdir too when the app was preloaded: the master cannot import it again).
RESTART_KEYS = ("bind", "status_bind", "reuse_port", "backlog", "preload", "pid",
                "env", "pythonpath", "proc_name", "daemon", "reload")  # these, the command applies at start


@dataclass
class WorkerProcess:
    """What the master knows about one of its workers."""

    pid: int
    slot: int
    generation: int
    cell: object
    indices: tuple  # socket indices served, per listening (see sockets.assignment)
    spawned: float
    state: str = "current"  # "current", "superseded" (QUIT once replaced), "stopping" (signalled)
    ready: bool = False  # wrote its first heartbeat: it is accepting
    kill_at: float | None = None  # SIGKILL at this time if still alive
    aborted: bool = False  # SIGABRT sent for a missed heartbeat
    heartbeat: float = 0.0  # the last heartbeat read whole from its cell; 0.0: none yet

    def name(self) -> str:
        return f"worker {self.slot} [gen {self.generation}] (pid {self.pid})"


@dataclass
class Snapshot:
    """The state before a reload, restored if the new generation cannot boot."""

    config: object
    generation: int
    slots: list = field(default_factory=list)
    tls_context: object = None


class Arbiter:
    def __init__(self, config, argv=None, overrides=None):
        self.config = config
        self.argv = list(argv or sys.argv)
        self.overrides = dict(overrides or {})  # command-line settings, reapplied on HUP
        self.cwd = os.getcwd()
        self.workers: dict[int, WorkerProcess] = {}  # pid -> worker
        self.slots: list[int | None] = []  # slot -> pid of its current worker
        self.respawn_at: dict[int, float] = {}
        self.failures: dict[int, int] = {}
        self.listenings = []
        self.generation = 1
        self.board = None
        self.app = None
        self.tls_context = None  # the ssl.SSLContext the workers inherit (prefork/tls.py)
        self.pidfile = Pidfile(config.pid)
        self.stopping: str | None = None  # None, "graceful" or "fast"
        self.exit_code = 0
        self.paused = False  # WINCH: no workers until HUP
        self.snapshot: Snapshot | None = None  # a reload in progress
        self.announced_ready = False
        self.new_master: int | None = None  # USR2 in progress
        self.upgraded = False  # we are the new master of an upgrade
        self.pipe = (-1, -1)

    # -- start ----------------------------------------------------------------------------------

    def run(self) -> int:
        """Start, supervise until stopped; returns the exit code of the `prefork` command."""
        self.prepare_logs(self.config)
        setup_error_log(self.config.error_log, self.config.log_level)
        self.follow_error_log()
        if not self.start():
            for listening in self.listenings:
                listening.close()
            self.pidfile.remove()  # a start that failed after writing it (the app's preload)
            return 1
        try:
            self.loop()
        finally:
            self.cleanup()
        return self.exit_code

    def start(self) -> bool:
        if self.config.umask is not None:
            os.umask(self.config.umask)  # for every file we create, and the workers inherit it
        # Signals first: one that arrives while we bind or preload is acted on by the loop.
        self.pipe = os.pipe2(os.O_NONBLOCK | os.O_CLOEXEC)
        for sig in HANDLED:
            signal.signal(sig, _record_only)
        signal.signal(signal.SIGPIPE, signal.SIG_IGN)
        signal.set_wakeup_fd(self.pipe[1], warn_on_full_buffer=False)
        # A mask inherited from whoever started us (it survives exec) would silence them.
        signal.pthread_sigmask(signal.SIG_UNBLOCK, HANDLED)
        inherited = upgrade.inherited_sockets()
        self.upgraded = bool(inherited)
        activated = []
        for fd, _name in systemd.listen_fds():
            try:
                activated.append(socket.socket(fileno=fd))
            except OSError as exc:
                log.error("LISTEN_FDS: descriptor %d is not a socket: %s", fd, exc.strerror)
        if not self.upgraded:
            # Two servers with one pidfile: the second would take it over and delete it at exit,
            # and `prefork -s` could no longer reach the first (gunicorn refuses this too).
            running = self.pidfile.running_master()
            if running is not None:
                log.error("cannot start: the pidfile %s is held by a running prefork master (pid %d); "
                          "stop it, or give this server a pidfile of its own (--pid)", self.config.pid, running)
                return False
        rlimits.raise_nofile(self.config.worker_connections)
        try:  # before binding: a bad certificate is refused as a bad configuration is
            self.tls_context = tls.server_context(self.config)
        except tls.TLSError as exc:
            log.error("%s", exc)
            return False
        count = self.config.worker_count
        try:
            self.listenings = bind_all(self.config.bind + status_binds(self.config), count, self.config.reuse_port,
                                       self.config.backlog, inherited, activated, self.config.umask,
                                       self.workers_owner(self.config))
        except BindError as exc:
            log.error("%s", exc)
            return False
        try:  # before "listening on" is logged: a script that waits for that line finds the pid
            self.pidfile.write()
        except OSError as exc:
            log.error("cannot write the pidfile %s: %s", self.config.pid, exc.strerror)
            return False
        for listening in self.listenings:
            if listening.bound_port:
                log.info("listening on %s (port %s)", listening.address.text, listening.bound_port)
            else:
                log.info("listening on %s", listening.address.text)
        self.log_tls()
        if self.config.preload and self.config.app:
            from prefork.apps.loader import AppLoadError, load_app

            try:
                self.app = load_app(self.config.app, self.config.chdir)
            except AppLoadError as exc:
                log.error("cannot preload the app: %s", exc)
                return False
        self.board = Scoreboard(max(256, 4 * count))
        self.board.set_generation(self.generation)
        self.slots = [None] * count
        self.set_title()
        log.info("master %d: %s, generation %d, %s request parser%s", os.getpid(), plural(count, "worker"),
                 self.generation, parser_class(self.config.http_parser)[1],
                 " (upgraded: sockets inherited)" if self.upgraded else "")
        return True

    # -- the loop -------------------------------------------------------------------------------

    def loop(self) -> None:
        reloader = autoreload.watcher_for(self.config)  # --reload: a changed .py file acts as a HUP
        while True:
            self.sleep()
            received = self.read_signals()
            self.reap()  # first, as nginx: the signals then act on the workers that are alive
            self.handle_signals(received)
            if reloader is not None and reloader.changed():
                self.handle_hup()
            if self.stopping:
                if not self.workers:
                    return
                self.kill_overdue()
                continue
            self.check_heartbeats()
            self.kill_overdue()
            self.finish_replacements()
            self.spawn_missing()

    def sleep(self) -> None:
        """Wait for a signal, or the next thing due (respawn, deadline, a worker becoming ready)."""
        timeout = 1.0
        now = time.monotonic()
        if any(not w.ready for w in self.workers.values()) or self.snapshot:
            timeout = 0.02  # poll the scoreboard: the reload completes when the new workers serve
        for due in list(self.respawn_at.values()) + [w.kill_at for w in self.workers.values() if w.kill_at]:
            timeout = min(timeout, max(0.0, due - now))
        if self.stopping is None and not self.paused and any(
                pid is None and slot not in self.respawn_at for slot, pid in enumerate(self.slots)):
            timeout = 0.0
        select.select([self.pipe[0]], [], [], timeout)

    def read_signals(self) -> list[int]:
        received = bytearray()
        while True:
            try:
                data = os.read(self.pipe[0], 4096)
            except (BlockingIOError, InterruptedError):
                break
            if not data:
                break
            received += data
        return list(received)

    def handle_signals(self, received: list[int]) -> None:
        """Act on the recorded signals in nginx's fixed order, whatever order they came in."""
        if signal.SIGINT in received:
            self.handle_int()
        if signal.SIGTERM in received:
            self.handle_term()
        if signal.SIGQUIT in received:
            self.handle_quit()
        if signal.SIGHUP in received:
            self.handle_hup()
        if signal.SIGUSR1 in received:
            self.handle_usr1()
        if signal.SIGUSR2 in received:
            self.handle_usr2()
        if signal.SIGWINCH in received:
            self.handle_winch()
        for signum in received:  # each TTIN and TTOU counts
            if signum == signal.SIGTTIN:
                self.handle_ttin()
            elif signum == signal.SIGTTOU:
                self.handle_ttou()
            elif signum == SIGDRAIN:  # in order of arrival: the last of drain and resume wins
                self.handle_drain()
            elif signum == SIGRESUME:
                self.handle_resume()

    # -- signal handlers, run by the loop -------------------------------------------------------

    def handle_int(self) -> None:
        """INT (Ctrl-C, `prefork -s stop`): stop at once."""
        self.stop(graceful=False, why="INT")

    def handle_term(self) -> None:
        """TERM: graceful, as Docker, Kubernetes and systemd expect of a service (nginx stops at
        once); a second TERM during the graceful stop makes it fast."""
        self.stop(graceful=self.stopping is None, why="TERM")

    def handle_quit(self) -> None:
        self.stop(graceful=True, why="QUIT")

    def handle_hup(self) -> None:
        """Re-read the configuration; start a new generation; the old one stops once replaced."""
        if self.stopping:
            return
        log.info("reloading (HUP)")
        systemd.notify("RELOADING=1", systemd.reloading_message(), "STATUS=reloading")
        try:
            new = configuration.load(self.config.path, self.overrides, cwd=self.cwd)
        except configuration.ConfigError as exc:
            log.error("reload failed, configuration unchanged: %s", exc)
            systemd.notify("READY=1", self.status())
            return
        for key in RESTART_KEYS + (("app", "chdir") if self.app is not None else ()):
            if new.values[key] != self.config.values[key]:
                log.warning("reload: a change of %r (%r -> %r) takes effect at the next upgrade (USR2) "
                            "or restart", key, self.config.values[key], new.values[key])
                new.values[key] = self.config.values[key]
        try:  # the certificate and key are read again: this is how they are rotated
            context = tls.server_context(new)
        except tls.TLSError as exc:
            log.error("reload failed, configuration unchanged: %s", exc)
            systemd.notify("READY=1", self.status())
            return
        if self.snapshot is None:
            self.snapshot = Snapshot(self.config, self.generation, list(self.slots), self.tls_context)
        self.config = new
        self.tls_context = context
        self.log_tls()
        self.prepare_logs(new)
        setup_error_log(new.error_log, new.log_level)
        self.follow_error_log()
        self.generation += 1
        self.board.publish_master(generation=self.generation, reloads=self.board.master["reloads"] + 1)
        self.paused = False
        for worker in self.workers.values():
            if worker.state == "current":
                worker.state = "superseded"
        self.resize(new.worker_count)
        self.slots = [None] * len(self.slots)
        self.respawn_at.clear()
        self.failures.clear()
        log.info("generation %d: starting %s, %s request parser", self.generation, plural(len(self.slots), "worker"),
                 parser_class(new.http_parser)[1])

    def follow_error_log(self) -> None:
        """With an error log file, fd 2 goes there too (see logs.send_stderr_to); the workers
        inherit it. With "-" it stays what we were started with."""
        if self.config.error_log == "-":
            return
        try:
            send_stderr_to(self.config.error_log, stdout=self.config.capture_output)
        except OSError as exc:
            log.error("cannot open %s for stderr: %s", self.config.error_log, exc.strerror)

    @staticmethod
    def workers_owner(config) -> tuple[int | None, int | None]:
        """(uid, gid) of the workers' user and group, who own the log files and the unix sockets
        the master creates (None: unchanged)."""
        try:
            uid, gid, _ = privileges.resolve(config.user, config.group)
        except privileges.PrivilegeError:
            return None, None  # the workers report it when they boot
        return uid, gid

    def prepare_logs(self, config) -> None:
        prepare_log_files((config.access_log, config.error_log), *self.workers_owner(config))

    def handle_usr1(self) -> None:
        log.info("reopening log files (USR1)")
        self.prepare_logs(self.config)  # the new files, created here, belong to the workers' user
        reopen_error_log()
        self.signal_workers(signal.SIGUSR1, list(self.workers.values()))

    def handle_usr2(self) -> None:
        """Upgrade on the fly: start a new master that inherits every listening socket."""
        if self.stopping:
            return
        if self.new_master is not None:
            log.warning("upgrade (USR2) ignored: new master %d is already running", self.new_master)
            return
        self.pidfile.rename_to_oldbin()
        try:
            self.new_master = upgrade.start_new_master(self.argv, self.listenings, self.cwd)
        except OSError as exc:
            log.error("upgrade failed: cannot start a new master: %s", exc)
            self.pidfile.restore_from_oldbin()
            return
        log.info("upgrade (USR2): new master %d started with our sockets; QUIT %d to complete it, "
                 "or QUIT %d to roll back", self.new_master, os.getpid(), self.new_master)
        self.set_title()

    def handle_winch(self) -> None:
        """Stop the workers gracefully, keep the master and its sockets; HUP brings workers back."""
        if self.stopping:
            return
        log.info("stopping workers gracefully, keeping the sockets (WINCH); HUP starts them again")
        self.paused = True
        self.snapshot = None
        self.respawn_at.clear()
        self.quit_workers([w for w in self.workers.values() if w.state != "stopping"])
        self.slots = [None] * len(self.slots)

    def handle_ttin(self) -> None:
        if self.stopping:
            return
        if len(self.slots) * 2 >= self.board.cells:
            log.warning("TTIN ignored: %s is the most this master can track", plural(len(self.slots), "worker"))
            return
        self.resize(len(self.slots) + 1)
        log.info("TTIN: %s", plural(len(self.slots), "worker"))

    def handle_ttou(self) -> None:
        """One worker fewer. Its sockets go to the remaining slots before it stops (see module doc)."""
        if self.stopping:
            return
        if len(self.slots) <= 1:
            log.info("TTOU ignored: one worker is the minimum")
            return
        removed = self.slots.pop()
        self.respawn_at.pop(len(self.slots), None)
        if removed is not None:
            self.workers[removed].state = "superseded"
        active = len(self.slots)
        for slot, pid in enumerate(self.slots):
            worker = self.workers.get(pid) if pid is not None else None
            if worker is not None and not covers(worker.indices, assignment(self.listenings, slot, active)):
                worker.state = "superseded"  # a replacement serving the extra socket takes over
                self.slots[slot] = None
        log.info("TTOU: %s", plural(active, "worker"))

    def handle_drain(self) -> None:
        """`prefork -s drain`: keep serving, but /health answers 503, so that load balancers
        stop sending new connections here before the host is taken out (resume undoes it)."""
        if self.stopping or self.board.master["draining"]:
            return
        log.info("draining (-s drain): /health answers 503; serving what comes until stopped or resumed")
        self.board.publish_master(draining=1)
        self.set_title()

    def handle_resume(self) -> None:
        """`prefork -s resume`: /health answers 200 again; a stop in progress stays a stop."""
        if self.stopping or not self.board.master["draining"]:
            return
        log.info("resuming (-s resume): /health answers 200")
        self.board.publish_master(draining=0)
        self.set_title()

    # -- stopping -------------------------------------------------------------------------------

    def stop(self, graceful: bool, why: str) -> None:
        if self.stopping == "fast" or (self.stopping == "graceful" and graceful):
            return
        self.stopping = "graceful" if graceful else "fast"
        log.info("%s shutdown (%s)", self.stopping, why)
        if self.board is not None:
            # /health answers 503 from now on; the workers told to stop close the sockets
            self.board.publish_master(draining=1, stopping=1)
        if self.new_master is None:  # else the new master is the service now: not stopping
            systemd.notify("STOPPING=1", f"STATUS={self.stopping} shutdown")
        self.set_title()
        self.respawn_at.clear()
        # Our descriptors of the listening sockets go first; each worker then accepts what is
        # queued and closes its own (Listener.close): the sockets close, and a new connection
        # is refused at once, as with nginx, instead of waiting unanswered until we exit. A new
        # master (USR2) holds its own descriptors of them: it serves on.
        handed_over = self.new_master is not None
        for listening in self.listenings:
            listening.close(unlink=not handed_over)
        if graceful:
            self.quit_workers(list(self.workers.values()))
        else:
            deadline = time.monotonic() + FAST_GRACE
            self.signal_workers(signal.SIGINT, list(self.workers.values()))  # a worker's fast stop
            for worker in self.workers.values():
                worker.state = "stopping"
                worker.kill_at = min(worker.kill_at or deadline, deadline)

    def quit_workers(self, workers: list[WorkerProcess]) -> None:
        deadline = time.monotonic() + self.config.graceful_timeout + GRACE_MARGIN
        for worker in workers:
            if worker.state != "stopping":
                worker.state = "stopping"
                worker.kill_at = deadline
                self.signal_workers(signal.SIGQUIT, [worker])

    def kill_overdue(self) -> None:
        now = time.monotonic()
        for worker in list(self.workers.values()):
            if worker.kill_at is not None and now >= worker.kill_at:
                log.warning("%s did not exit in time: SIGKILL", worker.name())
                worker.kill_at = None
                self.signal_workers(signal.SIGKILL, [worker])

    def signal_workers(self, signum: int, workers: list[WorkerProcess]) -> None:
        for worker in workers:
            try:
                os.kill(worker.pid, signum)
            except ProcessLookupError:
                pass  # exited; reap() will see it

    # -- children -------------------------------------------------------------------------------

    def reap(self) -> None:
        while True:
            try:
                pid, status = os.waitpid(-1, os.WNOHANG)
            except ChildProcessError:
                return
            if pid == 0:
                return
            code = os.waitstatus_to_exitcode(status)
            if pid == self.new_master:
                self.new_master_exited(code)
                continue
            worker = self.workers.pop(pid, None)
            if worker is None:
                continue
            last = self.board.read(worker.cell.index)
            self.board.release(worker.cell)
            self.worker_exited(worker, code, served=bool(last and last["accepted"]))

    def worker_exited(self, worker: WorkerProcess, code: int, served: bool) -> None:
        """served: it accepted connections before it ended (its cell said so)."""
        how = f"exited with code {code}" if code >= 0 else f"was killed by {signal.Signals(-code).name}"
        was_current = worker.slot < len(self.slots) and self.slots[worker.slot] == worker.pid
        if was_current:
            self.slots[worker.slot] = None
        if not was_current or self.stopping:
            log.info("%s %s", worker.name(), how)
            return
        if code == child.BOOT_FAILED and not worker.ready:
            self.boot_failed(worker)
            return
        now = time.monotonic()
        if code == 0:  # max_requests recycling, or a QUIT sent to the worker by hand
            log.info("%s %s; starting its replacement", worker.name(), how)
            self.respawn_at[worker.slot] = now
            return
        # No backoff for a worker that served clients: one bad request that crashes workers
        # must not hold the slot down for 30 s (its socket keeps the queue meanwhile). Backoff
        # is for workers that die before serving anyone, where a respawn would fail again.
        if served or now - worker.spawned >= STABLE_AFTER:
            self.failures[worker.slot] = 0
        failures = self.failures[worker.slot] = self.failures.get(worker.slot, 0) + 1
        self.board.publish_master(respawns=self.board.master["respawns"] + 1)
        delay = 0.0 if failures == 1 or served else min(0.5 * 2 ** (failures - 2), MAX_BACKOFF)
        log.warning("%s %s; respawning slot %d%s", worker.name(), how, worker.slot,
                    f" in {delay:g}s ({failures} failures in a row)" if delay else "")
        self.respawn_at[worker.slot] = now + delay

    def boot_failed(self, worker: WorkerProcess) -> None:
        """A worker could not start: roll back a reload in progress, else stop the server."""
        if self.snapshot is not None:
            log.error("%s failed to boot: reload abandoned, generation %d keeps serving",
                      worker.name(), self.snapshot.generation)
            self.rollback()
            return
        log.error("%s failed to boot (exit code %d): stopping the server (the error is above)",
                  worker.name(), child.BOOT_FAILED)
        self.exit_code = 1
        self.stop(graceful=True, why="a worker failed to boot")

    def rollback(self) -> None:
        snapshot, self.snapshot = self.snapshot, None
        keep = {pid for pid in snapshot.slots if pid is not None}
        self.quit_workers([w for w in self.workers.values() if w.pid not in keep])
        self.config, self.generation = snapshot.config, snapshot.generation
        self.tls_context = snapshot.tls_context
        setup_error_log(self.config.error_log, self.config.log_level)
        self.follow_error_log()
        self.board.set_generation(self.generation)
        self.slots = [pid if pid in self.workers else None for pid in snapshot.slots]
        for pid in self.slots:
            if pid is not None:
                self.workers[pid].state = "current"
        self.respawn_at.clear()
        systemd.notify("READY=1", self.status())

    def new_master_exited(self, code: int) -> None:
        # Exit 0 is a rollback asked for (QUIT of the new master), anything else a failure.
        log.log(logging.INFO if code == 0 else logging.ERROR,
                "new master %d exited with %d: upgrade abandoned, this master carries on", self.new_master, code)
        self.new_master = None
        self.pidfile.restore_from_oldbin()
        if self.paused:
            # Its workers were stopped (WINCH) to try the new master alone: with it gone they come
            # back, or the sockets would accept connections that no process serves.
            log.info("starting this master's workers again (they were stopped by WINCH)")
            self.paused = False
        self.set_title()

    # -- housekeeping ---------------------------------------------------------------------------

    def check_heartbeats(self) -> None:
        """Note the workers that started serving; abort, then kill, those whose reactor hangs."""
        now = time.monotonic()
        timeout = self.config.timeout
        for worker in list(self.workers.values()):
            heartbeat = worker.cell.heartbeat
            if heartbeat:  # None: caught in mid-update; the last good one stands
                worker.heartbeat = heartbeat
            if worker.heartbeat and not worker.ready:
                worker.ready = True
                log.debug("%s serving", worker.name())
            if worker.aborted or not timeout:  # timeout 0: no heartbeat check
                continue
            silent = now - (worker.heartbeat or worker.spawned)
            if silent > timeout:
                log.error("%s timed out: no heartbeat for %.1fs (timeout %gs): SIGABRT, then SIGKILL",
                          worker.name(), silent, timeout)
                worker.aborted = True
                worker.kill_at = now + ABORT_GRACE
                self.signal_workers(signal.SIGABRT, [worker])

    def finish_replacements(self) -> None:
        """Once every slot has a serving worker, superseded workers are told to QUIT."""
        if any(pid is None or not self.workers[pid].ready for pid in self.slots):
            return
        superseded = [w for w in self.workers.values() if w.state == "superseded"]
        if superseded:
            log.info("generation %d serving: stopping %s gracefully",
                     self.generation, plural(len(superseded), "superseded worker"))
            self.quit_workers(superseded)
        if self.snapshot is not None or not self.announced_ready:
            self.snapshot = None
            self.announced_ready = True
            lines = ["READY=1", self.status()]
            if self.upgraded:
                lines.append(f"MAINPID={os.getpid()}")
            systemd.notify(*lines)

    def spawn_missing(self) -> None:
        if self.paused:
            return
        now = time.monotonic()
        for slot, pid in enumerate(self.slots):
            if pid is None and self.respawn_at.get(slot, 0.0) <= now:
                self.respawn_at.pop(slot, None)
                self.spawn(slot)

    def resize(self, count: int) -> None:
        """Make room for `count` slots: more SO_REUSEPORT sockets, more slot positions."""
        for listening in self.listenings:
            listening.grow(count)
        while len(self.slots) < count:
            self.slots.append(None)
        del self.slots[count:]

    def spawn(self, slot: int) -> None:
        indices = assignment(self.listenings, slot, len(self.slots))
        sockets = worker_sockets(self.listenings, slot, indices, self.config.tls_by_default)
        try:
            cell = self.board.allocate(slot, self.generation)
        except IndexError:
            log.error("no free scoreboard cell for slot %d; retrying in 1s", slot)
            self.respawn_at[slot] = time.monotonic() + 1.0
            return
        master = os.getpid()
        # Blocked across the fork, as nginx does: until the child has its own handlers it must
        # not run ours, which write to our wake-up pipe (a QUIT meant for a new worker would
        # stop the master). Signals sent meanwhile stay pending, to each process, and are
        # delivered when it restores the mask: here just below, in the child by run_worker.
        mask = signal.pthread_sigmask(signal.SIG_BLOCK, HANDLED)
        try:
            pid = os.fork()
        except OSError as exc:
            signal.pthread_sigmask(signal.SIG_SETMASK, mask)
            self.board.release(cell)
            log.error("cannot fork a worker for slot %d: %s; retrying in 1s", slot, exc.strerror)
            self.respawn_at[slot] = time.monotonic() + 1.0
            return
        if pid == 0:
            served = {sock.fileno() for sock, _, _ in sockets}
            others = ([sock.fileno() for l in self.listenings for sock in l.sockets] + list(self.pipe)
                      + self.command_fds() + self.pidfile.descriptors())
            child.run_worker(master, self.config, sockets, slot, self.generation, cell, self.app,
                             served, others, mask, self.tls_context, self.worker_stderr())
        signal.pthread_sigmask(signal.SIG_SETMASK, mask)
        self.workers[pid] = WorkerProcess(pid, slot, self.generation, cell, indices, time.monotonic())
        self.slots[slot] = pid
        log.debug("spawned worker %d [gen %d] (pid %d)", slot, self.generation, pid)

    # -- helpers --------------------------------------------------------------------------------

    def command_fds(self) -> list[int]:
        """Descriptors a worker closes as soon as it is forked: the pipes to `prefork -D`."""
        return []

    def worker_stderr(self) -> str | None:
        """Where a worker points fd 2 once booted; None: it keeps the master's (see daemon.py)."""
        return None

    def log_tls(self) -> None:
        """Which listeners speak TLS, with which certificate (so a rotation shows in the log)."""
        if self.tls_context is None:
            return
        by_default = self.config.tls_by_default
        served = [l.address.text for l in self.listenings if l.protocol(by_default) == "https"]
        if served:
            log.info("TLS on %s: certificate %s", ", ".join(served), tls.describe(self.config.certfile))
        else:
            log.warning("certfile is set, but no listener speaks TLS: unix sockets and binds written "
                        "http:// do so only when written https://")
        for warning in tls.warnings(self.config):
            log.warning("%s", warning)

    def status(self) -> str:
        return f"STATUS=serving: {plural(len(self.slots), 'worker')}, generation {self.generation}"

    def set_title(self) -> None:
        state = (" shutting down" if self.stopping else " (old, upgrading)" if self.new_master
                 else " draining" if self.board is not None and self.board.master["draining"] else "")
        setproctitle(f"{self.config.proc_name}: master [{' '.join(self.argv[1:])}]{state}")

    def cleanup(self) -> None:
        handed_over = self.new_master is not None  # the new master serves these sockets now
        for listening in self.listenings:
            listening.close(unlink=not handed_over)
        self.pidfile.remove()
        log.info("master %d exiting with %d", os.getpid(), self.exit_code)


def status_binds(config) -> list[str]:
    """The status listener, if there is one, as an address of the "status" protocol."""
    return [f"status://{config.status_bind}"] if config.status_bind else []


def plural(count: int, noun: str) -> str:
    return f"{count} {noun}" if count == 1 else f"{count} {noun}s"


def _record_only(signum, frame) -> None:
    """The wake-up fd carries the signal to the loop; the handler itself must do nothing."""
