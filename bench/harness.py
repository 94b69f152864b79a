"""What both benchmarks share: start a pinned server, run wrk against it, count CPU, write the doc.

Rules every measurement here follows (see docs/benchmarks.md):
- the server is pinned to core 0 and wrk to core 1 with `taskset`;
- traffic goes only to 127.0.0.1, and every process started here is stopped by this script;
- server CPU is utime+stime from /proc of the server process and all its descendants
  (a master and its workers; all threads are included in a process's /proc/PID/stat);
- wrk's own CPU (from wait4) and every other process's (from /proc/*/stat) are measured too, so
  the CPU that *other* programs burned during a measurement is known: it is printed as "foreign".
"""

from __future__ import annotations

import datetime
import json
import os
import platform
import re
import resource
import signal
import socket
import ssl
import statistics
import subprocess
import sys
import time
from dataclasses import dataclass, field
from pathlib import Path

REPO = Path(__file__).resolve().parent.parent
DOC = REPO / "docs" / "benchmarks.md"
OUT = REPO / "bench" / "out"
WRK = "/usr/bin/wrk"
NGINX = "/usr/sbin/nginx"
SERVER_CORE = "0"
CLIENT_CORE = "1"
# Niceness of the server and wrk (set by --nice): other engineers' unpinned programs share the two
# cores; at -10 the scheduler gives a measured process ~90 % of its core against one nice-0 rival.
PRIORITY = {"nice": -10}


def own_session_at_priority() -> None:
    """preexec_fn: a new session, and that session's scheduler group at the benchmark's niceness.

    With sched_autogroup (Debian's default) every session is a scheduling group and CPU is shared
    between groups first: plain `nice` would only rank a process inside its own group, so the
    group's niceness (/proc/self/autogroup) is what makes other sessions' programs yield.
    """
    os.setsid()
    if PRIORITY["nice"]:
        try:
            Path("/proc/self/autogroup").write_text(str(PRIORITY["nice"]))
        except OSError:  # no autogroup on this kernel: `nice` alone then does the job
            pass


def pinned(core: str, argv: list) -> list[str]:
    """argv run on one core, at the benchmark's priority (nice and taskset exec: the pid is kept)."""
    prefix = ["nice", "-n", str(PRIORITY["nice"])] if PRIORITY["nice"] else []
    return [*prefix, "taskset", "-c", core, *map(str, argv)]
CLOCK_TICKS = os.sysconf("SC_CLK_TCK")


def progress(message: str) -> None:
    """One progress line, flushed at once (the runs are long)."""
    print(f"[{time.strftime('%H:%M:%S')}] {message}", flush=True)


def free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return sock.getsockname()[1]


# -- CPU accounting -----------------------------------------------------------------------------

def _stat_fields(pid: int) -> list[str] | None:
    try:
        text = Path(f"/proc/{pid}/stat").read_text()
    except OSError:  # gone meanwhile
        return None
    # comm (field 2) may hold spaces and parentheses: split after the last ')'
    return text[text.rindex(")") + 2:].split()


def process_tree(root: int) -> list[int]:
    """root and all its descendants, from the ppid field of every /proc/PID/stat."""
    children: dict[int, list[int]] = {}
    for entry in os.listdir("/proc"):
        if entry.isdigit():
            fields = _stat_fields(int(entry))
            if fields:
                children.setdefault(int(fields[1]), []).append(int(entry))  # field 4: ppid
    tree, todo = [], [root]
    while todo:
        pid = todo.pop()
        tree.append(pid)
        todo.extend(children.get(pid, ()))
    return tree


def tree_cpu_seconds(root: int) -> dict[int, float]:
    """utime+stime (fields 14 and 15) of every process in the tree, in seconds, by pid."""
    cpu = {}
    for pid in process_tree(root):
        fields = _stat_fields(pid)
        if fields:
            cpu[pid] = (int(fields[11]) + int(fields[12])) / CLOCK_TICKS
    return cpu


def other_processes_cpu(exclude: set[int]) -> dict[tuple[int, str], float]:
    """CPU seconds (utime+stime) of every process not in exclude, keyed by (pid, start time).

    A lower bound of what others use: a process that starts and ends between two snapshots is
    not seen (its parent's cutime would count its whole life, also before the run, so it is
    left out rather than overcounted).
    """
    cpu = {}
    for entry in os.listdir("/proc"):
        if entry.isdigit() and int(entry) not in exclude:
            fields = _stat_fields(int(entry))
            if fields:
                cpu[(int(entry), fields[19])] = (int(fields[11]) + int(fields[12])) / CLOCK_TICKS
    return cpu


def foreign_seconds(before: dict, after: dict) -> float:
    """CPU that other processes used between two other_processes_cpu() snapshots."""
    return sum(value - before.get(key, 0.0) for key, value in after.items())


def machine_busy_seconds() -> float:
    """CPU seconds all cores spent in processes (user, nice, system) and steal since boot (/proc/stat).

    irq and softirq are left out: on loopback most of the TCP work runs in softirq, on behalf of
    the server and wrk themselves, and is in neither's utime+stime.
    """
    values = [int(v) for v in Path("/proc/stat").read_text().split("\n", 1)[0].split()[1:]]
    user, nice, system, idle, iowait, irq, softirq, steal = values[:8]
    return (user + nice + system + steal) / CLOCK_TICKS


def loadavg() -> str:
    return " ".join(Path("/proc/loadavg").read_text().split()[:3])


# -- servers ------------------------------------------------------------------------------------

@dataclass
class ServerSpec:
    """How to start one server: argv (without taskset), the URL path to load, and notes."""
    name: str
    argv: list[str]
    path: str = "/plaintext"
    cwd: Path = REPO
    env: dict[str, str] = field(default_factory=dict)
    note: str = ""
    setup: object = None  # optional callable(port, workdir) -> argv, for servers needing a config file
    script: str = ""  # optional wrk Lua script (e.g. bench/unique_heads.lua)
    expect: bytes = b"Hello, World!"  # how the body of a good answer ends (checked before measuring)
    scheme: str = "http"  # or "https" (the readiness check then speaks TLS, without verifying)

    def command_line(self, port: int | str = "PORT") -> str:
        return " ".join(str(a) for a in self.argv).replace("{port}", str(port))


def _read_response(sock: socket.socket) -> bytes:
    """One response framed by Content-Length (or by EOF): some servers ignore Connection: close."""
    answer = b""
    while b"\r\n\r\n" not in answer:
        chunk = sock.recv(4096)
        if not chunk:
            return answer
        answer += chunk
    head = answer.split(b"\r\n\r\n", 1)[0].lower()
    length = re.search(rb"\r\ncontent-length:\s*(\d+)", head)
    while True:
        if length and len(answer) >= len(head) + 4 + int(length.group(1)):
            return answer
        chunk = sock.recv(4096)
        if not chunk:
            return answer
        answer += chunk


class RunningServer:
    """A server started pinned to the server core in its own process group; stop() ends it all."""

    def __init__(self, spec: ServerSpec, workdir: Path):
        self.spec = spec
        self.port = free_port()
        argv = spec.setup(self.port, workdir) if spec.setup else spec.argv
        argv = [str(a).replace("{port}", str(self.port)) for a in argv]
        self.log_path = workdir / f"{spec.name.replace(' ', '_').replace('/', '_')}.log"
        self.log = open(self.log_path, "wb")
        env = {**os.environ, **spec.env}
        self.proc = subprocess.Popen(pinned(SERVER_CORE, argv), cwd=spec.cwd, env=env,
                                     stdin=subprocess.DEVNULL, stdout=self.log, stderr=subprocess.STDOUT,
                                     preexec_fn=own_session_at_priority)

    def wait_ready(self, timeout: float = 20.0) -> None:
        """Poll until a GET of the benchmark path answers 200; raise with the log if not."""
        deadline = time.monotonic() + timeout
        request = f"GET {self.spec.path} HTTP/1.1\r\nHost: 127.0.0.1\r\nConnection: close\r\n\r\n".encode()
        while time.monotonic() < deadline:
            if self.proc.poll() is not None:
                break
            try:
                with socket.create_connection(("127.0.0.1", self.port), timeout=1) as raw:
                    sock = raw
                    if self.spec.scheme == "https":
                        context = ssl.create_default_context()
                        context.check_hostname, context.verify_mode = False, ssl.CERT_NONE
                        sock = context.wrap_socket(raw)
                    sock.sendall(request)
                    answer = _read_response(sock)
            except OSError:
                answer = b""
            if answer.startswith((b"HTTP/1.1 ", b"HTTP/1.0 ")):
                if answer.startswith((b"HTTP/1.1 200", b"HTTP/1.0 200")) and answer.endswith(self.spec.expect):
                    return
                self.stop()  # it serves, but not the expected answer: measuring it would mislead
                status = answer.split(b"\r\n", 1)[0].decode(errors="replace")
                body = answer.rsplit(b"\r\n\r\n", 1)[-1][:40]
                raise RuntimeError(f"{self.spec.name}: GET {self.spec.path} answered {status!r}, body {body!r}")
            time.sleep(0.05)
        self.stop()
        raise RuntimeError(f"{self.spec.name} did not serve {self.spec.path} within {timeout:.0f} s; "
                           f"log:\n{self.log_path.read_text(errors='replace')[-2000:]}")

    def stop(self) -> None:
        """TERM the whole process group, KILL what is left after 10 s."""
        if self.proc.poll() is None:
            try:
                os.killpg(self.proc.pid, signal.SIGTERM)
                self.proc.wait(timeout=10)
            except subprocess.TimeoutExpired:
                os.killpg(self.proc.pid, signal.SIGKILL)
                self.proc.wait()
            except ProcessLookupError:
                pass
        try:  # workers that outlived their master (should not happen) go too
            os.killpg(self.proc.pid, signal.SIGKILL)
        except (ProcessLookupError, PermissionError):
            pass
        self.log.close()


# -- wrk ----------------------------------------------------------------------------------------

_UNITS = {"us": 1e-3, "ms": 1.0, "s": 1000.0, "m": 60000.0}


def _millis(text: str) -> float:
    number, unit = re.fullmatch(r"([\d.]+)(us|ms|s|m)", text).groups()
    return float(number) * _UNITS[unit]


def parse_wrk(output: str) -> dict:
    """Requests/s, p50/p99 latency (ms), request and error counts from `wrk --latency` output."""
    rps = re.search(r"Requests/sec:\s+([\d.]+)", output)
    p99 = re.search(r"^\s+99%\s+(\S+)", output, re.M)
    p50 = re.search(r"^\s+50%\s+(\S+)", output, re.M)
    total = re.search(r"(\d+) requests in", output)
    if not (rps and p99 and total):
        raise RuntimeError(f"cannot parse wrk output:\n{output}")
    errors = sum(int(n) for n in re.findall(r"(?:connect|read|write|timeout) (\d+)", output))
    non2xx = re.search(r"Non-2xx or 3xx responses: (\d+)", output)
    return {"rps": float(rps.group(1)), "p99_ms": _millis(p99.group(1)), "p50_ms": _millis(p50.group(1)),
            "requests": int(total.group(1)), "socket_errors": errors,
            "non2xx": int(non2xx.group(1)) if non2xx else 0}


def run_wrk(url: str, duration: float, connections: int = 64, script: str = "") -> tuple[dict, str]:
    """wrk -t1 -cN -dD --latency [-s SCRIPT] pinned to the client core; returns (parsed result, raw output)."""
    options = ["-s", script] if script else []
    argv = pinned(CLIENT_CORE, [WRK, "-t1", f"-c{connections}", f"-d{duration:g}s", "--latency", *options, url])
    proc = subprocess.Popen(argv, stdout=subprocess.PIPE, stderr=subprocess.STDOUT, text=True,
                            preexec_fn=own_session_at_priority)
    try:
        output, _ = proc.communicate(timeout=duration + 30)
    except subprocess.TimeoutExpired:
        proc.kill()
        proc.communicate()
        raise RuntimeError(f"wrk did not finish within {duration + 30:.0f} s")
    # nice and taskset exec wrk, so the child reaped here is wrk itself: measure() reads its CPU time
    # from RUSAGE_CHILDREN
    return parse_wrk(output), output


def measure(spec: ServerSpec, workdir: Path, duration: float, warmup: float) -> dict:
    """Start the server, warm it up, measure one wrk run with CPU accounting, stop it."""
    server = RunningServer(spec, workdir)
    try:
        server.wait_ready()
        url = f"{spec.scheme}://127.0.0.1:{server.port}{spec.path}"
        if warmup > 0:
            run_wrk(url, warmup, script=spec.script)
        children_before = resource.getrusage(resource.RUSAGE_CHILDREN)
        cpu_before = tree_cpu_seconds(server.proc.pid)
        ours = {os.getpid(), *cpu_before}
        others_before = other_processes_cpu(ours)
        started = time.monotonic()
        result, output = run_wrk(url, duration, script=spec.script)
        elapsed = time.monotonic() - started
        others_after = other_processes_cpu(ours)
        cpu_after = tree_cpu_seconds(server.proc.pid)
        children_after = resource.getrusage(resource.RUSAGE_CHILDREN)
        pids = sorted(set(cpu_before) | set(cpu_after))
        if set(cpu_before) != set(cpu_after):
            result["note"] = "process tree changed during the run"
        server_cpu = sum(cpu_after.get(p, 0.0) - cpu_before.get(p, 0.0) for p in pids)
        wrk_cpu = ((children_after.ru_utime + children_after.ru_stime)
                   - (children_before.ru_utime + children_before.ru_stime))
        result.update(
            server=spec.name, server_cpu_s=server_cpu, processes=len(pids), wrk_cpu_s=wrk_cpu,
            elapsed_s=elapsed,
            cpu_us_per_request=1e6 * server_cpu / result["requests"] if result["requests"] else float("nan"),
            server_core_busy=server_cpu / elapsed,
            foreign_cpu=foreign_seconds(others_before, others_after) / elapsed,
        )
        if result["non2xx"] or result["socket_errors"]:
            result["note"] = (result.get("note", "") + f" non-2xx {result['non2xx']}, "
                              f"socket errors {result['socket_errors']}").strip()
        return result
    finally:
        server.stop()


def describe(result: dict) -> str:
    return (f"{result['rps']:>9,.0f} req/s  p99 {result['p99_ms']:7.2f} ms  "
            f"cpu {result['cpu_us_per_request']:6.1f} us/req  (server core {100 * result['server_core_busy']:.0f}% busy, "
            f"wrk {100 * result['wrk_cpu_s'] / result['elapsed_s']:.0f}%, "
            f"foreign load {100 * result['foreign_cpu']:.0f}% of a core)")


def machine_busy_now(seconds: float = 1.0) -> float:
    """Cores' worth of CPU the machine is using right now (nothing of ours runs meanwhile)."""
    before = machine_busy_seconds()
    time.sleep(seconds)  # a sampling interval, not synchronisation
    return (machine_busy_seconds() - before) / seconds


def wait_for_quiet(max_busy: float, max_wait: float) -> float:
    """Before a measurement: wait (at most max_wait s) until other programs use < max_busy of a core.

    Other engineers' test runs share this 2-core machine; measuring during them halves the numbers.
    Returns the busy fraction last seen.
    """
    deadline = time.monotonic() + max_wait
    busy = machine_busy_now()
    announced = False
    while busy > max_busy and time.monotonic() < deadline:
        if not announced:
            progress(f"    machine busy ({100 * busy:.0f}% of a core used by others): waiting up to "
                     f"{max_wait:.0f} s for < {100 * max_busy:.0f}%")
            announced = True
        busy = machine_busy_now(2.0)
    if busy > max_busy:
        progress(f"    still busy ({100 * busy:.0f}%): measuring anyway, the round is marked by its foreign load")
    return busy


def run_rounds(specs: list[ServerSpec], rounds: int, duration: float, warmup: float,
               workdir: Path, quiet: float = 0.15, quiet_wait: float = 60.0,
               retry_above: float = 0.25) -> dict[str, list[dict]]:
    """Interleaved rounds (A B C, then C B A, ...): each server once per round, in alternating order.

    Before each measurement wait for the machine to be quiet; a measurement during which other
    programs used more than retry_above of a core is repeated once, and the quieter one is kept.
    """
    results: dict[str, list[dict]] = {spec.name: [] for spec in specs}
    total = rounds * len(specs)
    step = 0
    for round_index in range(rounds):
        order = specs if round_index % 2 == 0 else list(reversed(specs))
        for spec in order:
            step += 1
            left = (total - step + 1) * (duration + warmup + 2)
            progress(f"[{step}/{total}] round {round_index + 1}/{rounds}: {spec.name} "
                     f"({duration:g} s, about {left / 60:.1f} min left) load {loadavg()}")
            result = None
            for attempt in (1, 2):
                was_quiet = quiet_wait <= 0 or wait_for_quiet(quiet, quiet_wait) <= quiet
                try:
                    again = measure(spec, workdir, duration, warmup)
                except RuntimeError as exc:
                    progress(f"    {spec.name} FAILED: {str(exc).splitlines()[0]}")
                    result = {"server": spec.name, "error": str(exc)}
                    break
                progress(f"    {spec.name}: {describe(again)}")
                if result is None or again["foreign_cpu"] < result["foreign_cpu"]:
                    result = again
                if attempt == 2:
                    progress(f"    kept the attempt with less foreign load ({100 * result['foreign_cpu']:.0f}%)")
                elif result["foreign_cpu"] > retry_above and was_quiet:  # a burst: the next try may be luckier
                    progress(f"    other programs used {100 * again['foreign_cpu']:.0f}% of a core meanwhile: "
                             "measuring again")
                    continue
                break
            result["round"] = round_index + 1
            results[spec.name].append(result)
    return results


def round_cell(run: dict | None) -> str:
    """One measurement in a per-round table: req/s, p99, CPU per request, foreign load, notes."""
    if run is None or "error" in run:
        return "failed"
    cell = (f"{run['rps']:,.0f}/s, {run['p99_ms']:.2f} ms, {run['cpu_us_per_request']:.1f} us, "
            f"{100 * run['foreign_cpu']:.0f}%")
    return cell + (f" ({run['note']})" if run.get("note") else "")


def round_table(results: dict[str, list[dict]], rounds: int) -> list[str]:
    """The lines of a table with every measurement, one row per round, one column per server."""
    lines = [
        "Every round (req/s, p99, CPU per request, foreign load on the machine):",
        "",
        "| round | " + " | ".join(results) + " |",
        "| --- | " + " | ".join("---" for _ in results) + " |",
    ]
    for round_index in range(rounds):
        cells = [round_cell(runs[round_index] if round_index < len(runs) else None) for runs in results.values()]
        lines.append(f"| {round_index + 1} | " + " | ".join(cells) + " |")
    return lines


def save_and_publish(section: str, info: dict, results: dict, text: str, write_doc: bool) -> None:
    """The raw results to bench/out/SECTION-STAMP.json, then the report (see publish)."""
    stamp = time.strftime("%Y%m%d-%H%M%S")
    (OUT / f"{section}-{stamp}.json").write_text(json.dumps({"machine": info, "results": results}, indent=1))
    publish(section, text, write_doc)


def medians(runs: list[dict]) -> dict | None:
    good = [r for r in runs if "error" not in r]
    if not good:
        return None
    return {key: statistics.median(r[key] for r in good)
            for key in ("rps", "p99_ms", "cpu_us_per_request", "foreign_cpu", "server_core_busy")} | {
        "rounds": len(good)}


# -- machine and doc ----------------------------------------------------------------------------

def machine() -> dict:
    cpu_model = "unknown"
    for line in Path("/proc/cpuinfo").read_text().splitlines():
        if line.startswith("model name"):
            cpu_model = line.split(":", 1)[1].strip()
            break
    try:
        nginx = subprocess.run([NGINX, "-v"], capture_output=True, text=True).stderr.strip().split("/")[-1]
    except OSError:
        nginx = "not installed"
    try:
        wrk = subprocess.run([WRK, "-v"], capture_output=True, text=True).stdout.split()[1]
    except (OSError, IndexError):
        wrk = "unknown"
    try:
        commit = subprocess.run(["git", "rev-parse", "--short", "HEAD"], cwd=REPO, capture_output=True,
                                text=True).stdout.strip()
    except OSError:
        commit = "unknown"
    try:
        dirty = subprocess.run(["git", "status", "--porcelain", "--", "prefork"], cwd=REPO, capture_output=True,
                               text=True).stdout.split("\n")
        dirty = [line[3:] for line in dirty if line.strip()]
    except OSError:
        dirty = []
    if dirty:
        commit += f" plus uncommitted changes in {', '.join(dirty[:5])}" + (" ..." if len(dirty) > 5 else "")
    return {
        "date": datetime.datetime.now(datetime.timezone.utc).strftime("%Y-%m-%d %H:%M UTC"),
        "nproc": os.cpu_count(), "cpu": cpu_model, "kernel": platform.release(),
        "python": platform.python_version(), "nginx": nginx, "wrk": wrk, "commit": commit,
        "load_before": loadavg(),
    }


def machine_lines(info: dict) -> list[str]:
    return [
        f"- date: {info['date']}, prefork commit `{info['commit']}`",
        f"- machine: {info['nproc']} cores, {info['cpu']}, Linux {info['kernel']}",
        f"- Python {info['python']}, nginx {info['nginx']}, wrk {info['wrk']}",
        f"- load average (1, 5, 15 min) before the run: {info['load_before']}; after: {info['load_after']} "
        "(it counts the measured servers' own runnable threads too; the foreign load per round is what "
        "other programs took)",
    ]


DOC_HEADER = """# Benchmarks

Reproducible comparisons of prefork against nginx and against the Python servers users would pick
instead. Numbers from a noisy 2-core machine: compare the **ratios within one run**, not absolute
numbers across runs or machines.

**Which figure is which.** Browsers, load balancers and API clients send a new target, cookie or
request id on almost every request; wrk, left alone, repeats one head byte for byte, and prefork
reuses the parse of a connection's last head when it comes again. So the figure that says what
users get is the row **every head new** (a browser-like head of 9 fields with a new target and a
new cookie on every request, `bench/unique_fields.lua`, the same Lua script for prefork and for its peers), given first in each section's headline; the repeated-head
rows come second and are labelled as such.

## How to reproduce

    pip install -e . && apt-get install -y nginx-light wrk libev-dev
    python bench/core.py             # one worker vs nginx (3 rounds x 10 s, 3 to 6 min)
    python bench/peers.py            # WSGI/ASGI peers (installs bench/.venv-peers; 2 rounds x 10 s, 6 to 12 min)
    python bench/static.py           # static files, 10 KiB and 1 MiB, one worker vs nginx (3 rounds x 10 s, 3 to 5 min)
    python bench/before_after.py --before REV   # the same workloads on an older revision and on this one
    apt-get install -y valgrind && python bench/instructions.py --before REV   # instructions per request (callgrind), which noise does not move
    pip install py-spy && python bench/hotspots.py   # where a worker spends its time under wrk

Options: `--rounds N`, `--duration S`, `--quick` (1 round x 3 s, for trying the script), `--no-doc`
(print only), `--quiet PCT` / `--quiet-wait S` / `--retry-above PCT` (see Method). peers.py also has
`--skip-install` and `--only NAME` (repeatable). Raw results of each run go to `bench/out/*.json`.

## Method

- One server worker pinned to core 0 (`taskset -c 0`, which its master and threads inherit),
  `wrk -t1 -c64 -dDs --latency` pinned to core 1, traffic only to 127.0.0.1.
- Server and wrk run at niceness -10 (`--nice`), each in its own session whose scheduling group
  (`/proc/PID/autogroup`, as sched_autogroup is on) gets that niceness too: this machine is shared,
  other programs are not pinned, and at that priority they take little from the measured processes.
- Interleaved rounds: every server is measured once per round, in alternating order (A B C, then
  C B A), each on a fresh start after a 2 s warm-up run; the table shows the **median** over rounds.
- Requests/s and the 99th percentile latency come from wrk. **Server CPU per request** is the
  utime+stime of the server process and all its descendants (master + worker), read from
  `/proc/PID/stat` (fields 14 and 15) before and after the wrk run, divided by the requests wrk counted.
- "Foreign load" is the CPU that other programs on the machine used during a measurement: the
  utime+stime of every process but the server's, the script's and wrk's, from `/proc/*/stat`
  before and after, in % of one core (a lower bound: processes that start and end within the
  run are not seen).
  Above ~10 % the numbers of that round are disturbed. Before each measurement the script waits
  (up to `--quiet-wait` 15 s) until other programs use less than `--quiet` 15 % of a core, and a
  measurement during which they used more than `--retry-above` 25 % is repeated once (the quieter
  attempt is kept). The per-round tables show the foreign load of every measurement.
- "Server core busy" is the server's CPU time over the wall time of the run. Near 100 % the server
  was the bottleneck; well below, it waited for something else: for wrk (one thread on one core
  tops out around nginx's rate, so nginx and bjoern are partly measuring wrk), or for programs
  that are not pinned and took turns on core 0. CPU per request stays meaningful either way.
- **Repeated heads.** wrk sends the same request head again and again. prefork reuses the parse of
  a connection's last head when it comes again byte for byte, and its field lines when only the
  request-line changed (docs/architecture.md). The headline rows profit from that; the rows
  "every request-line new" (`bench/unique_heads.lua`) and "every head new"
  (`bench/unique_fields.lua`, a browser-like head of 9 fields whose cookie changes too, so nothing
  is reused and prefork parses every head in full) load prefork and its peer the same way, so the cost without the reuse is
  measured too. wrk's Lua `request()` slows wrk itself, so compare those rows with each other.
"""


SECTIONS = ("core", "peers", "static", "tls", "amplification", "before-after", "before-after-parser", "instructions")  # the order of the sections in docs/benchmarks.md


def publish(section: str, text: str, write_doc: bool) -> None:
    """Print a report and, unless told not to, put it in its section of docs/benchmarks.md."""
    print()
    print(text)
    if write_doc:
        update_doc(section, text)
        progress(f"wrote {DOC.relative_to(REPO)}")


def update_doc(section: str, body: str) -> None:
    """Rewrite docs/benchmarks.md: the header above, then each section between its markers.

    The section given gets body; the others keep what the last run of their script wrote.
    """
    text = DOC.read_text() if DOC.exists() else ""
    blocks = {}
    for name in SECTIONS:
        begin, end = f"<!-- BEGIN {name} -->", f"<!-- END {name} -->"
        if begin in text and end in text:
            blocks[name] = text.split(begin, 1)[1].split(end, 1)[0].strip("\n")
    blocks[section] = body.rstrip()
    parts = [DOC_HEADER.rstrip()]
    parts += [f"<!-- BEGIN {name} -->\n{blocks[name]}\n<!-- END {name} -->" for name in SECTIONS if name in blocks]
    DOC.parent.mkdir(exist_ok=True)
    DOC.write_text("\n\n".join(parts) + "\n")


def results_table(med: dict, reference: str, label: str = "nginx", failure=lambda name: "failed") -> list[str]:
    """The lines of the table of medians, one row per server, its ratios against `reference`
    (called `label` in the headings); failure(name) is what a server's row says when it failed."""
    ref = med.get(reference)
    lines = [f"| server | requests/s | p99 latency | CPU per request | req/s vs {label} | CPU/req vs {label} | server core busy |",
             "| --- | ---: | ---: | ---: | ---: | ---: | ---: |"]
    for name, m in med.items():
        if m is None:
            lines.append(f"| {name} | {failure(name)} | | | | | |")
            continue
        rps = m["rps"] / ref["rps"] if ref else None
        cpu = m["cpu_us_per_request"] / ref["cpu_us_per_request"] if ref else None
        lines.append(f"| {name} | {m['rps']:,.0f} | {m['p99_ms']:.2f} ms | {m['cpu_us_per_request']:.1f} us | "
                     f"{fmt_ratio(rps)} | {fmt_ratio(cpu)} | {100 * m['server_core_busy']:.0f}% |")
    return lines


def fmt_ratio(value: float | None) -> str:
    return "n/a" if value is None else f"{value:.2f}x"


def common_arguments(parser, rounds: int, duration: float) -> None:
    parser.add_argument("--rounds", type=int, default=rounds, help=f"interleaved rounds (default {rounds})")
    parser.add_argument("--duration", type=float, default=duration, help=f"seconds per wrk run (default {duration:g})")
    parser.add_argument("--warmup", type=float, default=2.0, help="seconds of wrk before each measured run")
    parser.add_argument("--quick", action="store_true", help="1 round x 3 s, 1 s warm-up: to try the script")
    parser.add_argument("--no-doc", action="store_true", help="do not update docs/benchmarks.md")
    parser.add_argument("--nice", type=int, default=-10,
                        help="niceness of the server and wrk, so unpinned programs of others disturb less "
                             "(default -10; 0 runs them at normal priority)")
    parser.add_argument("--quiet", type=float, default=15.0,
                        help="before each measurement wait until other programs use less than this %% of a core")
    parser.add_argument("--quiet-wait", type=float, default=15.0,
                        help="seconds to wait for that at most (0: do not wait)")
    parser.add_argument("--retry-above", type=float, default=25.0,
                        help="repeat a measurement once if other programs used more than this %% of a core")


def apply_quick(args) -> None:
    if args.quick:
        args.rounds, args.duration, args.warmup, args.quiet_wait, args.retry_above = 1, 3.0, 1.0, 0.0, 1e9


def rounds_options(args) -> dict:
    """The keyword arguments of run_rounds that come from the command line (and --nice)."""
    PRIORITY["nice"] = args.nice
    return {"quiet": args.quiet / 100, "quiet_wait": args.quiet_wait, "retry_above": args.retry_above / 100}


def stop_on_term() -> None:
    """SIGTERM unwinds like Ctrl-C, so the `finally` that stops the running server still runs."""
    signal.signal(signal.SIGTERM, lambda signum, frame: sys.exit(128 + signum))


def against_nginx_arguments(description: str, rounds: int, duration: float):
    """The command line of a benchmark against nginx, checked: (args, machine info), tools present."""
    import argparse

    parser = argparse.ArgumentParser(description=description)
    common_arguments(parser, rounds=rounds, duration=duration)
    args = parser.parse_args()
    apply_quick(args)
    check_tools()
    if not Path(NGINX).exists():
        sys.exit(f"{NGINX} is missing: apt-get install -y nginx-light")
    OUT.mkdir(parents=True, exist_ok=True)
    return args, machine()


def check_tools() -> None:
    """wrk and taskset exist and there are two cores; also installs the SIGTERM handler."""
    stop_on_term()
    for tool in (WRK, "/usr/bin/taskset"):
        if not os.path.exists(tool):
            sys.exit(f"{tool} is missing: apt-get install -y wrk util-linux")
    if (os.cpu_count() or 1) < 2:
        sys.exit("needs 2 cores: the server is pinned to core 0 and wrk to core 1")
