"""What Linux says of a process through /proc: its children, title, state, memory and CPU; the
workers of a prefork master; and stopping a process group for good."""

from __future__ import annotations

import os
import re
import signal
import subprocess
from pathlib import Path

from support.polling import wait_until


def children(pid: int) -> list[int]:
    """The child processes of pid ([] once it is gone)."""
    try:
        return [int(p) for p in Path(f"/proc/{pid}/task/{pid}/children").read_text().split()]
    except OSError:
        return []


def title(pid: int) -> str:
    """The process title (its command line as `ps` shows it); "" once it is gone."""
    try:
        return Path(f"/proc/{pid}/cmdline").read_bytes().replace(b"\0", b" ").decode().strip()
    except OSError:
        return ""


def stat_fields(pid: int) -> list[str]:
    """The fields of /proc/PID/stat after the command name: state, ppid, ... (proc(5) from field 3)."""
    return Path(f"/proc/{pid}/stat").read_text().rpartition(")")[2].split()


def status_field(pid: int, name: str) -> str:
    """The value of one line of /proc/PID/status ("VmRSS", "Uid", "SigBlk", ...)."""
    found = re.search(rf"^{name}:\s*(.*)$", Path(f"/proc/{pid}/status").read_text(), re.M)
    if found is None:
        raise AssertionError(f"no {name} in /proc/{pid}/status")
    return found.group(1)


def alive(pid: int) -> bool:
    """Whether pid runs; a zombie is dead for our purposes."""
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return False
    try:
        return stat_fields(pid)[0] != "Z"
    except OSError:
        return False


def rss(pid: int) -> int:
    """Resident set size of pid in bytes."""
    return int(status_field(pid, "VmRSS").split()[0]) * 1024


def cpu_seconds(pid: int) -> float:
    """User + system CPU time of pid so far."""
    fields = stat_fields(pid)
    return (int(fields[11]) + int(fields[12])) / os.sysconf("SC_CLK_TCK")


def worker_pid(server) -> int:
    """The one worker of a `-w 1` server: waits until its master has exactly one child."""
    master = server.proc.pid
    return wait_until(lambda: len(found := children(master)) == 1 and found[0], 10, message="the worker process")


def workers(master: int) -> dict[int, str]:
    """pid -> process title of the master's serving workers (not shutting down)."""
    found = {}
    for pid in children(master):
        name = title(pid)
        if name.startswith("prefork: worker") and "shutting down" not in name and alive(pid):
            found[pid] = name
    return found


def wait_workers(master: int, count: int, exclude=(), timeout=10.0) -> dict[int, str]:
    """Wait until the master has exactly `count` serving workers, none of them in `exclude`,
    and no other child worker (the superseded ones have exited)."""
    def ready():
        current = workers(master)
        others = [p for p in children(master) if title(p).startswith("prefork: worker") and p not in current]
        if len(current) == count and not set(current) & set(exclude) and not others:
            return current
        return None
    return wait_until(ready, timeout, message=f"{count} new workers of master {master}")


def stop_group(proc: subprocess.Popen, sig=signal.SIGTERM, timeout: float = 5.0) -> int | None:
    """Send sig and wait up to timeout; then SIGKILL the whole process group (started with
    start_new_session), so that nothing it forked outlives the test. Returns the exit status."""
    if proc.poll() is None:
        proc.send_signal(sig)
        try:
            proc.wait(timeout)
        except subprocess.TimeoutExpired:
            pass
    try:
        os.killpg(proc.pid, signal.SIGKILL)
    except (ProcessLookupError, PermissionError):
        pass
    proc.wait(5)
    return proc.returncode
