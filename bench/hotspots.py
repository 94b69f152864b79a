"""Where a prefork worker spends its time under load: py-spy samples it while wrk runs.

    python bench/hotspots.py [--duration 8] [--top 15] [--app hello:app --dispatch inline] [--unique-heads]
                             [--out FILE]

Starts `prefork -w 1` (built-in site, or --app from bench/apps) pinned to core 0, runs
wrk -t1 -c64 pinned to core 1 against it, and records the worker with
`py-spy record --nonblocking --format raw` (install with `pip install py-spy`). Prints the top
functions by own time (a syscall is charged to the Python function that makes it), by inclusive
time, and the top source lines; --out also keeps the raw stacks for a flamegraph.
"""

from __future__ import annotations

import argparse
import collections
import re
import shutil
import subprocess
import sys
import tempfile
import threading
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent))
import harness  # noqa: E402


def find_py_spy() -> str:
    for candidate in (shutil.which("py-spy"), harness.REPO / "bench" / ".venv-peers" / "bin" / "py-spy"):
        if candidate and Path(candidate).exists():
            return str(candidate)
    sys.exit("py-spy is not installed: pip install py-spy")


def summarise(raw: str, top: int) -> str:
    """Tables of own time by function, inclusive time by function, and own time by line."""
    own_by_function, total_by_function, own_by_line = (collections.Counter() for _ in range(3))
    samples = 0
    for line in raw.splitlines():
        stack, _, count = line.rpartition(" ")
        if not stack or not count.isdigit():
            continue
        count = int(count)
        samples += count
        frames = stack.split(";")
        function = [re.sub(r":\d+\)$", ")", frame) for frame in frames]
        own_by_function[function[-1]] += count
        own_by_line[frames[-1]] += count
        for name in set(function):
            total_by_function[name] += count
    if not samples:
        return "no samples (was the worker busy?)"
    lines = [f"{samples} samples of the worker while busy (idle samples left out)", "",
             f"Top {top} functions by own time:", f"{'own %':>6} {'total %':>8}  function"]
    lines += [f"{100 * n / samples:6.1f} {100 * total_by_function[name] / samples:8.1f}  {name}"
              for name, n in own_by_function.most_common(top)]
    lines += ["", f"Top {top} functions by inclusive time:"]
    lines += [f"{100 * n / samples:6.1f}  {name}" for name, n in total_by_function.most_common(top)]
    lines += ["", f"Top {top} source lines by own time:"]
    lines += [f"{100 * n / samples:6.1f}  {name}" for name, n in own_by_line.most_common(top)]
    return "\n".join(lines)


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--duration", type=float, default=8.0, help="seconds of sampling (default 8)")
    parser.add_argument("--rate", type=int, default=250, help="samples per second (default 250)")
    parser.add_argument("--top", type=int, default=15)
    parser.add_argument("--app", help="module:callable in bench/apps (default: the built-in site)")
    parser.add_argument("--dispatch", choices=("inline", "threads"), help="with --app")
    parser.add_argument("--unique-heads", action="store_true",
                        help="load with `wrk -s bench/unique_fields.lua`: every head new, nothing to reuse")
    parser.add_argument("--out", help="also write the raw py-spy stacks here")
    args = parser.parse_args()
    harness.check_tools()
    py_spy = find_py_spy()
    prefork = shutil.which("prefork") or sys.exit("the prefork command is not installed: pip install -e .")
    argv = [prefork, "-w", "1", "-b", "127.0.0.1:{port}"]
    path, cwd = "/plaintext", harness.REPO
    if args.app:
        argv.insert(1, args.app)
        path, cwd = "/hello", harness.REPO / "bench" / "apps"
        if args.dispatch:
            argv += ["--dispatch", args.dispatch]
    spec = harness.ServerSpec("prefork", argv, path=path, cwd=cwd)
    with tempfile.TemporaryDirectory(prefix="prefork-hotspots-") as workdir:
        server = harness.RunningServer(spec, Path(workdir))
        try:
            server.wait_ready()
            workers = [pid for pid in harness.process_tree(server.proc.pid)
                       if "worker" in Path(f"/proc/{pid}/cmdline").read_bytes().decode(errors="replace")]
            if not workers:
                raise RuntimeError("no process titled 'worker' under the master")
            url = f"http://127.0.0.1:{server.port}{path}"
            harness.progress(f"wrk against {url} for {args.duration + 4:g} s; py-spy samples worker {workers[0]} "
                             f"for {args.duration:g} s")
            script = str(harness.REPO / "bench" / "unique_fields.lua") if args.unique_heads else ""
            load = threading.Thread(target=harness.run_wrk, args=(url, args.duration + 4),
                                    kwargs={"script": script}, daemon=True)
            load.start()
            raw_path = Path(workdir) / "stacks.txt"
            record = subprocess.run([py_spy, "record", "--pid", str(workers[0]), "--nonblocking", "--format", "raw",
                                     "-r", str(args.rate), "-d", f"{args.duration:g}", "-o", str(raw_path)],
                                    capture_output=True, text=True, timeout=args.duration + 60)
            load.join(timeout=args.duration + 40)
            if record.returncode != 0 or not raw_path.exists():
                raise RuntimeError(f"py-spy failed: {record.stderr.strip()[-500:]}")
            raw = raw_path.read_text()
            if args.out:
                Path(args.out).write_text(raw)
        finally:
            server.stop()
    print(summarise(raw, args.top))
    return 0


if __name__ == "__main__":
    sys.exit(main())
