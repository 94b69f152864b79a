"""Static files: one prefork worker against nginx, a 10 KiB and a 1 MiB file, in the same run.

    python bench/static.py [--rounds 3] [--duration 10] [--quick] [--no-doc]

prefork (built-in site, `-w 1`, `--static-root`, no access log) and nginx (`worker_processes 1`,
`sendfile on`, `tcp_nopush on` as Debian ships it, `access_log off`, the same directory as an
`alias`) serve the same two files of random bytes, pinned to core 0; `wrk -t1 -c64` on core 1
loads one file at a time, in interleaved rounds. nginx is measured twice: as configured by
default (every request opens, checks and closes its file) and with `open_file_cache`, which
remembers descriptors and validators as prefork remembers its files.
Targets: prefork >= 0.7x nginx's requests/s for 10 KiB and >= 0.9x for 1 MiB.
Prints a progress line per measurement; writes the "static" section of docs/benchmarks.md.
"""

from __future__ import annotations

import os
import shutil
import sys
import tempfile
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent))
import harness  # noqa: E402  (a script run as `python bench/static.py`)

SECTION = "static"
FILES = {"10 KiB": ("10k.bin", 10 * 1024), "1 MiB": ("1m.bin", 1024 * 1024)}
TARGETS = {"10 KiB": 0.7, "1 MiB": 0.9}

NGINX_CONF = """\
worker_processes 1;
daemon off;
pid {dir}/nginx.pid;
error_log {dir}/error.log warn;
events {{ worker_connections 4096; }}
http {{
    access_log off;
    sendfile on;
    tcp_nopush on;
    {cache}
    default_type application/octet-stream;
    client_body_temp_path {dir}/body;
    proxy_temp_path {dir}/proxy;
    fastcgi_temp_path {dir}/fastcgi;
    uwsgi_temp_path {dir}/uwsgi;
    scgi_temp_path {dir}/scgi;
    server {{
        listen 127.0.0.1:{port};
        location /static/ {{ alias {root}/; }}
    }}
}}
"""
OPEN_FILE_CACHE = "open_file_cache max=1000 inactive=60s; open_file_cache_valid 1s;"


def make_files(root: Path) -> dict[str, bytes]:
    """The files served, random bytes; returns how each one ends (checked before measuring)."""
    root.mkdir(parents=True, exist_ok=True)
    tails = {}
    for label, (name, size) in FILES.items():
        data = os.urandom(size)
        (root / name).write_bytes(data)
        tails[label] = data[-32:]
    # prefork keeps small files in memory once they have not changed for a second: the warm-up
    # run is longer than that, so the measured run is served as it would be in production.
    return tails


def nginx_setup(root: Path, cache: bool):
    def setup(port: int, workdir: Path) -> list[str]:
        conf_dir = Path(tempfile.mkdtemp(prefix="nginx-", dir=workdir))
        (conf_dir / "nginx.conf").write_text(NGINX_CONF.format(
            dir=conf_dir, port=port, root=root, cache=OPEN_FILE_CACHE if cache else ""))
        return [harness.NGINX, "-p", str(conf_dir), "-c", str(conf_dir / "nginx.conf")]
    return setup


def specs(root: Path, tails: dict[str, bytes]) -> list[harness.ServerSpec]:
    prefork = shutil.which("prefork") or sys.exit("the prefork command is not installed: pip install -e .")
    # The server runs this checkout's code, whichever checkout the command was installed from.
    env = {"PYTHONPATH": os.pathsep.join(filter(None, [str(harness.REPO), os.environ.get("PYTHONPATH")]))}
    found = []
    for label, (name, _) in FILES.items():
        path, expect = f"/static/{name}", tails[label]
        found += [
            harness.ServerSpec(f"prefork {label}", [prefork, "-w", "1", "-b", "127.0.0.1:{port}",
                                                    "--static-root", str(root)],
                               path=path, expect=expect, env=env,
                               note="built-in site, `-w 1 --static-root DIR`, no access log (the default)"),
            harness.ServerSpec(f"nginx {label}", [harness.NGINX], path=path, expect=expect,
                               setup=nginx_setup(root, cache=False),
                               note="`worker_processes 1; sendfile on; tcp_nopush on; access_log off;` and "
                                    "`location /static/ { alias DIR/; }`, otherwise nginx's defaults "
                                    "(open_file_cache off); full config in bench/static.py"),
            harness.ServerSpec(f"nginx {label}, open_file_cache", [harness.NGINX], path=path, expect=expect,
                               setup=nginx_setup(root, cache=True),
                               note=f"as nginx, plus `{OPEN_FILE_CACHE}`"),
        ]
    return found


def report(results: dict, info: dict, args, all_specs) -> str:
    med = {name: harness.medians(runs) for name, runs in results.items()}

    def ratio(ours: str, theirs: str, key: str):
        a, b = med.get(ours), med.get(theirs)
        return a[key] / b[key] if a and b else None

    lines = [
        "## Static files vs nginx",
        "",
        "Command:",
        "",
        f"    python bench/static.py --rounds {args.rounds} --duration {args.duration:g}",
        "",
        *harness.machine_lines(info),
        f"- {args.rounds} interleaved rounds x {args.duration:g} s, `wrk -t1 -c64 -d{args.duration:g}s --latency "
        "http://127.0.0.1:PORT/static/FILE` on core 1, server on core 0, both at niceness "
        f"{harness.PRIORITY['nice']}; medians over rounds; files of random bytes, in the page cache",
        "",
        "| server | requests/s | transfer | p99 latency | CPU per request | req/s vs nginx | CPU/req vs nginx "
        "| server core busy |",
        "| --- | ---: | ---: | ---: | ---: | ---: | ---: | ---: |",
    ]
    for name, m in med.items():
        if m is None:
            lines.append(f"| {name} | failed | | | | | | |")
            continue
        label = next(label for label in FILES if label in name)
        size = FILES[label][1]
        lines.append(f"| {name} | {m['rps']:,.0f} | {m['rps'] * size / 2**20:,.0f} MiB/s | {m['p99_ms']:.2f} ms | "
                     f"{m['cpu_us_per_request']:.1f} us | {harness.fmt_ratio(ratio(name, f'nginx {label}', 'rps'))} | "
                     f"{harness.fmt_ratio(ratio(name, f'nginx {label}', 'cpu_us_per_request'))} | "
                     f"{100 * m['server_core_busy']:.0f}% |")
    verdict = lambda ok: "met" if ok else "NOT met"  # noqa: E731
    foreign = [run["foreign_cpu"] for runs in results.values() for run in runs if "error" not in run]
    if foreign:
        lines.append("")
        lines.append(f"- other programs on the machine used {100 * min(foreign):.0f} to {100 * max(foreign):.0f} % "
                     "of a core during the measurements (each one is in the per-round table)")
    lines += ["", "Targets, from the medians of this run:", ""]
    for label, target in TARGETS.items():
        rps = ratio(f"prefork {label}", f"nginx {label}", "rps")
        cached = ratio(f"prefork {label}", f"nginx {label}, open_file_cache", "rps")
        lines.append(f"- {label}: prefork requests/s >= {target}x nginx: **{harness.fmt_ratio(rps)}** -- "
                     f"{verdict(rps is not None and rps >= target)} (against nginx with open_file_cache: "
                     f"{harness.fmt_ratio(cached)})")
    lines += ["", *harness.round_table(results, args.rounds), "", "Servers:", ""]
    seen = set()
    for spec in all_specs:
        kind = spec.name.split(" ")[0] + (", open_file_cache" if "open_file_cache" in spec.name else "")
        if kind not in seen:
            seen.add(kind)
            lines.append(f"- {kind}: {spec.note}")
    lines += [
        "",
        "How prefork serves a file: each URL path that named a file is remembered with its resolved",
        "path, its identity (inode, size, mtime, ctime) and its response head. A request then costs one",
        "`stat` per turn of the event loop (small files kept in memory, head and body in one `send`) or",
        "`open` + `fstat` (larger files, corked with `TCP_CORK` as nginx's `tcp_nopush`, the head and",
        "one `sendfile` in the same turn) instead of resolving the path, formatting dates and building",
        "the head again; a file that changed in any way is looked up afresh. Loopback makes the kernel's",
        "copy part of both servers' CPU time: at 1 MiB it is most of it, and wrk's one thread reading",
        "4 GB/s is the limit (the servers' cores are half idle). At 10 KiB the difference is prefork's",
        "Python work per request; nginx with open_file_cache is the faster one there.",
    ]
    return "\n".join(lines)


def main() -> int:
    args, info = harness.against_nginx_arguments(__doc__.split("\n\n")[0], rounds=3, duration=10.0)
    with tempfile.TemporaryDirectory(prefix="prefork-bench-") as workdir:
        root = Path(workdir) / "files"
        os.chmod(workdir, 0o755)  # nginx's workers (user nobody when started as root) read the files too
        all_specs = specs(root, make_files(root))
        harness.progress(f"static benchmark: {args.rounds} rounds x {len(all_specs)} servers x {args.duration:g} s; "
                         f"load {info['load_before']}")
        results = harness.run_rounds(all_specs, args.rounds, args.duration, args.warmup, Path(workdir),
                                     **harness.rounds_options(args))
    info["load_after"] = harness.loadavg()
    harness.save_and_publish(SECTION, info, results, report(results, info, args, all_specs), not args.no_doc)
    return 0


if __name__ == "__main__":
    sys.exit(main())
