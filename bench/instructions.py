"""Instructions per request, counted by callgrind, for two versions of prefork: what a change
costs, measured so that a noisy machine does not move it.

    python bench/instructions.py --before REV [--after REV] [--requests 1000] [--no-doc]

Wall-clock runs on a shared machine vary by 10 to 30% between rounds (bench/before_after.py), too
much to see a 3% change. Instructions do not vary so: the same code on the same input executes
the same instructions, within about 1% here (allocator and hash-seed effects; PYTHONHASHSEED is
fixed). They are not time -- a cache miss or a system call's kernel side costs more than its
count says -- so this complements the wrk runs, it does not replace them.

Each workload runs in one process under `valgrind --tool=callgrind`: one Worker, one connection
over a socketpair, requests sent from the other end and the Reactor's loop turned by hand (epoll
poll, then the ready descriptors' handlers, as Reactor.run does) until each response has been read.
It runs twice, with N and 3N requests; (instructions of the second - of the first) / 2N is the
cost of one request, without start-up. The client's side (sending a head, reading a response, the
driver's loop) is in it and the same for both versions. With threads dispatch valgrind runs one
thread at a time, which changes the order, not the work.

Workloads: the built-in site's /plaintext and the WSGI hello app (bench/apps/hello.py) inline and
on 8 handler threads, each with one head repeated and with every head new (the browser-like head
of bench/unique_fields.lua). REV is checked out in a temporary git worktree and run with
PYTHONPATH pointing at it. Needs valgrind (apt-get install valgrind). Writes the "instructions"
section of docs/benchmarks.md.
"""

from __future__ import annotations

import argparse
import functools
import os
import re
import subprocess
import sys
import tempfile
import time
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent))
import harness  # noqa: E402  (a script run as `python bench/instructions.py`)

APPS = Path(__file__).resolve().parent / "apps"
SLOWER = 0.03  # a workload that costs more than 3% more instructions is flagged

# What a browser sends (bench/unique_fields.lua): {n} changes on every request when every head is new.
HEAD = ("GET {path}?n={n} HTTP/1.1\r\nHost: 127.0.0.1:8080\r\n"
        "User-Agent: Mozilla/5.0 (X11; Linux x86_64; rv:133.0) Gecko/20100101 Firefox/133.0\r\n"
        "Accept: text/html,application/xhtml+xml,application/xml;q=0.9,*/*;q=0.8\r\n"
        "Accept-Language: en-US,en;q=0.5\r\nAccept-Encoding: gzip, deflate, br, zstd\r\n"
        "Referer: http://127.0.0.1/index.html\r\nCookie: session=6f1c2a9e{n}; theme=dark\r\n"
        "Upgrade-Insecure-Requests: 1\r\nSec-Fetch-Mode: navigate\r\n\r\n")
BODY = b"Hello, World!"  # what both /plaintext and hello:app answer

# name -> (app or None for the built-in site, dispatch, path)
APPS_BY_WORKLOAD = {
    "site /plaintext": (None, "inline", "/plaintext"),
    "WSGI inline": ("hello:app", "inline", "/hello"),
    "WSGI threads": ("hello:app", "threads", "/hello"),
}
HEADS = ("one head repeated", "every head new")


# -- the driver: runs in the measured process, with PYTHONPATH at the version measured -------------

def drive(workload: str, heads: str, requests: int) -> None:
    """Serve `requests` requests of the workload through one Worker, in this process."""
    import socket

    from prefork import config as configuration
    from prefork.apps.hosting import handlers
    from prefork.workers.reactor import EPOLLIN
    from prefork.workers.worker import Worker

    app_spec, dispatch, path = APPS_BY_WORKLOAD[workload]
    app = None
    if app_spec:
        sys.path.insert(0, str(APPS))
        module, _, name = app_spec.partition(":")
        app = getattr(__import__(module), name)
    config = configuration.load(None, {"dispatch": dispatch, "threads": 8})
    worker = Worker(config, [], handlers=functools.partial(handlers, app=app))
    server_end, client = socket.socketpair()
    if hasattr(worker, "adopt"):
        on_events = worker.adopt(server_end, ("127.0.0.1", 1)).transport.on_events
    else:  # older versions: the connection read its socket itself
        server_end.setblocking(False)
        conn = worker._connection_class("http")(worker, server_end, ("127.0.0.1", 1))
        worker.add_connection(conn)
        on_events = conn.on_events
    client.setblocking(False)
    reactor = worker.reactor
    poll, fd_handlers = reactor.epoll.poll, reactor.handlers
    clock = getattr(reactor, "clock", time.monotonic)
    tail = b"\r\n\r\n" + BODY

    def exchange(head: bytes) -> bytes:
        client.send(head)
        on_events(EPOLLIN)
        got = b""
        deadline = time.monotonic() + 60.0  # valgrind is slow
        while True:
            try:
                got += client.recv(65536)
            except BlockingIOError:
                pass
            if got.endswith(tail):
                return got
            left = deadline - time.monotonic()
            if left <= 0:
                raise TimeoutError(f"{workload}: no whole response within 60 s; got {got[:200]!r}")
            for fd, mask in poll(left):  # one turn of Reactor.run (no timer is due here)
                reactor.now = clock()
                handler = fd_handlers.get(fd)
                if handler is not None:
                    handler(mask)

    fresh = heads == "every head new"
    all_heads = [HEAD.format(path=path, n=i if fresh else 1).encode() for i in range(requests + 1)]
    first = exchange(all_heads[0])  # warm-up: handler threads started, caches filled
    if not first.startswith(b"HTTP/1.1 200 "):
        raise RuntimeError(f"{workload}: not a 200 response: {first[:200]!r}")
    for head in all_heads[1:]:
        exchange(head)


# -- the runner ---------------------------------------------------------------------------------

def instructions(tree: Path, workload: str, heads: str, requests: int) -> int:
    """The instructions callgrind counts for one run of the driver on a version's tree."""
    python = os.path.realpath(sys.executable)  # (not a pyenv shim: valgrind would count the shell)
    proc = subprocess.run(
        ["valgrind", "--tool=callgrind", "--callgrind-out-file=/dev/null", python, __file__,
         "--drive", workload, "--heads", heads, "--requests", str(requests)],
        env={**os.environ, "PYTHONPATH": str(tree), "PYTHONHASHSEED": "0"}, capture_output=True, text=True,
        timeout=1800)
    match = re.search(r"refs:\s+([\d,]+)", proc.stderr)
    if proc.returncode or not match:
        raise RuntimeError(f"{workload}, {heads} on {tree}: valgrind failed:\n{proc.stderr[-2000:]}")
    return int(match.group(1).replace(",", ""))


def per_request(tree: Path, workload: str, heads: str, requests: int) -> float:
    small = instructions(tree, workload, heads, requests)
    large = instructions(tree, workload, heads, 3 * requests)
    return (large - small) / (2 * requests)


def report(rows: list, args, before_label: str, after_label: str, info: dict) -> str:
    lines = [
        "## Instructions per request, before and after",
        "",
        "Command:",
        "",
        f"    python bench/instructions.py --before {args.before}" + (f" --after {args.after}" if args.after else "")
        + f" --requests {args.requests}",
        "",
        f"- date: {info['date']}, prefork commit `{info['commit']}`",
        f"- machine: {info['nproc']} cores, {info['cpu']}, Python {info['python']}, {info['valgrind']}",
        f"- before: `{before_label}`; after: {after_label}",
        "- callgrind's count of instructions per request, one Worker in one process, client side included "
        "(see the script's docstring); the same code and input give the same count within about 1%",
        "",
        "| workload | before | after | after / before |",
        "| --- | ---: | ---: | ---: |",
    ]
    flagged = []
    for name, before, after in rows:
        ratio = after / before
        if ratio > 1 + SLOWER:
            flagged.append(name)
        lines.append(f"| {name} | {before:,.0f} | {after:,.0f} | {ratio:.3f}x |")
    lines += ["", f"More than {SLOWER:.0%} more instructions: " + (", ".join(flagged) if flagged else "none") + "."]
    return "\n".join(lines)


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--before", help="the git revision to compare with")
    parser.add_argument("--after", help="the git revision measured as 'after' (default: this checkout)")
    parser.add_argument("--requests", type=int, default=1000, help="N: runs of N and 3N requests (default 1000)")
    parser.add_argument("--no-doc", action="store_true", help="print only; do not write docs/benchmarks.md")
    parser.add_argument("--drive", choices=tuple(APPS_BY_WORKLOAD), help=argparse.SUPPRESS)
    parser.add_argument("--heads", choices=HEADS, default=HEADS[0], help=argparse.SUPPRESS)
    args = parser.parse_args()
    if args.drive:
        drive(args.drive, args.heads, args.requests)
        return 0
    if not args.before:
        parser.error("--before REV is required")
    if subprocess.run(["valgrind", "--version"], capture_output=True).returncode:
        sys.exit("valgrind is missing: apt-get install -y valgrind")
    info = harness.machine()
    info["valgrind"] = subprocess.run(["valgrind", "--version"], capture_output=True, text=True).stdout.strip()
    describe = lambda rev: subprocess.run(  # noqa: E731
        ["git", "-C", str(harness.REPO), "log", "-1", "--format=%h %s", rev],
        capture_output=True, text=True, check=True).stdout.strip()[:72]
    before_label = describe(args.before)
    after_label = f"`{describe(args.after)}`" if args.after else "this checkout"
    rows = []
    with tempfile.TemporaryDirectory(prefix="prefork-instructions-") as workdir:
        trees = {"before": args.before, **({"after": args.after} if args.after else {})}
        for name, revision in trees.items():
            subprocess.run(["git", "-C", str(harness.REPO), "worktree", "add", "--detach", str(Path(workdir) / name),
                            revision], check=True, capture_output=True)
        try:
            after_tree = Path(workdir) / "after" if args.after else harness.REPO
            for workload in APPS_BY_WORKLOAD:
                for heads in HEADS:
                    name = f"{workload}, {heads}"
                    before = per_request(Path(workdir) / "before", workload, heads, args.requests)
                    after = per_request(after_tree, workload, heads, args.requests)
                    harness.progress(f"{name}: {before:,.0f} -> {after:,.0f} instructions per request "
                                     f"({after / before:.3f}x)")
                    rows.append((name, before, after))
        finally:
            for name in trees:
                subprocess.run(["git", "-C", str(harness.REPO), "worktree", "remove", "--force", str(Path(workdir) / name)],
                               capture_output=True)
    harness.publish("instructions", report(rows, args, before_label, after_label, info), not args.no_doc)
    return 0


if __name__ == "__main__":
    sys.exit(main())
