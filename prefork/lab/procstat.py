"""A server's CPU time and memory, read from /proc for its process and all its descendants."""

from __future__ import annotations

import os

TICKS = os.sysconf("SC_CLK_TCK")


def _stat(pid: int) -> list[str] | None:
    try:
        with open(f"/proc/{pid}/stat") as f:
            text = f.read()
    except OSError:
        return None
    return text[text.rindex(")") + 2:].split()  # the fields after the command name, from field 3 on


def tree(root: int) -> list[int]:
    """root and every descendant alive now."""
    children: dict[int, list[int]] = {}
    for entry in os.listdir("/proc"):
        if entry.isdigit() and (fields := _stat(int(entry))):
            children.setdefault(int(fields[1]), []).append(int(entry))
    found, todo = [], [root]
    while todo:
        pid = todo.pop()
        found.append(pid)
        todo.extend(children.get(pid, ()))
    return found


def cpu_seconds(root: int) -> float:
    """User + system time of the tree, counting children already reaped (cutime, cstime)."""
    total = 0
    for pid in tree(root):
        if fields := _stat(pid):
            total += sum(int(v) for v in fields[11:15])  # utime stime cutime cstime
    return total / TICKS


def memory_mb(root: int) -> float:
    """Proportional set size of the tree: shared pages divided among their sharers, so forked
    children are not counted as whole copies of their parent."""
    total_kb = 0
    for pid in tree(root):
        try:
            with open(f"/proc/{pid}/smaps_rollup") as f:
                for line in f:
                    if line.startswith("Pss:"):
                        total_kb += int(line.split()[1])
                        break
        except OSError:
            pass
    return total_kb / 1024
