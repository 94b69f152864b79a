"""One prefork worker against nginx, both on one core, GET /plaintext.

    python bench/core.py [--rounds 3] [--duration 10] [--quick] [--no-doc]

prefork (built-in site, `-w 1`, no access log) and nginx (`worker_processes 1`, `access_log off`,
`return 200 "Hello, World!"`) run pinned to core 0, wrk -t1 -c64 to core 1, in interleaved rounds.
A bare 40-line epoll loop in Python (bench/bare_epoll.py) is measured too, with one head repeated
and with every head new, as the ceiling of Python on this machine: what the CPU targets leave
above it is printed. Targets: prefork >= 0.8x nginx's requests/s, and <= 1.4x its CPU per request.
Prints a progress line per measurement; writes the "core" section of docs/benchmarks.md.
"""

from __future__ import annotations

import argparse
import json
import shutil
import sys
import tempfile
import time
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent))
import harness  # noqa: E402  (a script run as `python bench/core.py`)

NGINX_CONF = """\
worker_processes 1;
daemon off;
pid {dir}/nginx.pid;
error_log {dir}/error.log warn;
events {{ worker_connections 4096; }}
http {{
    access_log off;
    client_body_temp_path {dir}/body;
    proxy_temp_path {dir}/proxy;
    fastcgi_temp_path {dir}/fastcgi;
    uwsgi_temp_path {dir}/uwsgi;
    scgi_temp_path {dir}/scgi;
    server {{
        listen 127.0.0.1:{port}{listen};{server}
        location /plaintext {{ default_type text/plain; return 200 "Hello, World!"; }}
        location /hello {{ default_type text/plain; return 200 "Hello, World!"; }}
    }}
}}
"""

NGINX_NOTE = ("`worker_processes 1; daemon off; access_log off;` and `location /plaintext "
              "{ default_type text/plain; return 200 \"Hello, World!\"; }` (the same for /hello), otherwise "
              "Debian's defaults (so keepalive_requests 1000: wrk reconnects every 1000 requests, a cost "
              "of about 0.1%); full config in bench/core.py")


UNIQUE_HEADS = str(harness.REPO / "bench" / "unique_heads.lua")
UNIQUE_FIELDS = str(harness.REPO / "bench" / "unique_fields.lua")


def nginx_setup(port: int, workdir: Path) -> list[str]:
    """Write a temporary nginx.conf for this port; nginx runs as a master and one worker."""
    conf_dir = Path(tempfile.mkdtemp(prefix="nginx-", dir=workdir))
    (conf_dir / "nginx.conf").write_text(NGINX_CONF.format(dir=conf_dir, port=port, listen="", server=""))
    return [harness.NGINX, "-p", str(conf_dir), "-c", str(conf_dir / "nginx.conf")]


def nginx_spec(path: str = "/plaintext") -> harness.ServerSpec:
    """nginx as configured above; bench/peers.py loads /hello (the same `return 200`)."""
    return harness.ServerSpec("nginx", [harness.NGINX, "-c", "nginx.conf"], path=path, setup=nginx_setup,
                              note=NGINX_NOTE)


def specs() -> list[harness.ServerSpec]:
    prefork = shutil.which("prefork") or sys.exit("the prefork command is not installed: pip install -e .")
    return [
        # First what real clients send: a new head on every request (a counter in the target and in
        # a header field), which prefork must parse in full, and nginx loaded the same way.
        harness.ServerSpec("prefork, every head new", [prefork, "-w", "1", "-b", "127.0.0.1:{port}"],
                           script=UNIQUE_FIELDS,
                           note="as prefork, loaded by `wrk -s bench/unique_fields.lua` (a browser-like head of 9 fields; a counter in the query "
                                "string and in a header field)"),
        harness.ServerSpec("nginx, every head new", [harness.NGINX, "-c", "nginx.conf"], setup=nginx_setup,
                           script=UNIQUE_FIELDS, note="as nginx, loaded by `wrk -s bench/unique_fields.lua`"),
        # wrk's default: the same head again and again. prefork reuses the parse of a connection's
        # last head when it comes again (docs/architecture.md); then only the request-line new.
        harness.ServerSpec("prefork", [prefork, "-w", "1", "-b", "127.0.0.1:{port}"],
                           note="built-in site, `-w 1`, no access log (the default)"),
        nginx_spec(),
        harness.ServerSpec("prefork, every request-line new", [prefork, "-w", "1", "-b", "127.0.0.1:{port}"],
                           script=UNIQUE_HEADS,
                           note="as prefork, loaded by `wrk -s bench/unique_heads.lua` (a counter in the query string)"),
        harness.ServerSpec("nginx, every request-line new", [harness.NGINX, "-c", "nginx.conf"], setup=nginx_setup,
                           script=UNIQUE_HEADS, note="as nginx, loaded by `wrk -s bench/unique_heads.lua`"),
        harness.ServerSpec("bare epoll loop", [sys.executable, str(harness.REPO / "bench" / "bare_epoll.py"), "{port}"],
                           note="bench/bare_epoll.py: reference only, no HTTP parsing at all"),
        # The floor under "every head new": the same bare loop, receiving the browser-like heads.
        harness.ServerSpec("bare epoll loop, every head new",
                           [sys.executable, str(harness.REPO / "bench" / "bare_epoll.py"), "{port}"],
                           script=UNIQUE_FIELDS, note="as the bare epoll loop, loaded by `wrk -s bench/unique_fields.lua`"),
    ]


def shown_command(spec: harness.ServerSpec) -> str:
    """The command line as a reader would type it: no interpreter or install paths."""
    command = spec.command_line()
    for prefix in (sys.executable, str(Path(shutil.which("prefork") or "").parent) + "/", str(harness.REPO) + "/"):
        command = command.replace(prefix, "python" if prefix == sys.executable else "")
    return command


def floor_lines(med: dict) -> list[str]:
    """What the CPU targets leave to prefork above Python's floor: the bare epoll loop (recv and
    send, no HTTP) loaded like prefork, in nginx's CPU per request of the same load."""
    lines = []
    for variant, bare, target in (("every head new", "bare epoll loop, every head new", 1.6),
                                  (None, "bare epoll loop", 1.4)):
        nginx = med.get(f"nginx, {variant}" if variant else "nginx")
        ours = med.get(f"prefork, {variant}" if variant else "prefork")
        floor = med.get(bare)
        if not (nginx and ours and floor):
            continue
        unit = nginx["cpu_us_per_request"]
        lines.append(
            f"- Python's floor, {variant or 'one head repeated'}: the bare epoll loop uses "
            f"{floor['cpu_us_per_request'] / unit:.2f}x nginx's CPU per request; the {target:g}x target leaves "
            f"{target * unit - floor['cpu_us_per_request']:.1f} us per request for everything prefork does in Python "
            f"above the loop (parse, route, respond, keep-alive, timeouts), where it spends "
            f"{ours['cpu_us_per_request'] - floor['cpu_us_per_request']:.1f} us")
    return lines


def report(results: dict, info: dict, args) -> str:
    med = {name: harness.medians(runs) for name, runs in results.items()}
    nginx = med.get("nginx")

    def ratio(name, key):
        if not (med.get(name) and nginx):
            return None
        return med[name][key] / nginx[key]

    lines = [
        "## One worker vs nginx",
        "",
        "Command:",
        "",
        f"    python bench/core.py --rounds {args.rounds} --duration {args.duration:g}",
        "",
        *harness.machine_lines(info),
        f"- {args.rounds} interleaved rounds x {args.duration:g} s, `wrk -t1 -c64 -d{args.duration:g}s --latency "
        "http://127.0.0.1:PORT/plaintext` on core 1, server on core 0, both at niceness "
        f"{harness.PRIORITY['nice']}; medians over rounds",
        "",
        "Rows: `prefork` and `nginx` are loaded with one head repeated; the rows marked *every head new* "
        "are the requests real clients send.",
        "",
        *harness.results_table(med, "nginx"),
    ]
    rps_ratio, cpu_ratio = ratio("prefork", "rps"), ratio("prefork", "cpu_us_per_request")

    def pair_ratio(variant, key):
        ours, theirs = med.get(f"prefork, {variant}"), med.get(f"nginx, {variant}")
        return ours[key] / theirs[key] if ours and theirs else None

    verdict = lambda ok: "met" if ok else "NOT met"  # noqa: E731
    lines[2:2] = [
        "Headline, what real clients send (every head new, prefork vs nginx both loaded that way): "
        f"requests/s **{harness.fmt_ratio(pair_ratio('every head new', 'rps'))}**, CPU per request "
        f"**{harness.fmt_ratio(pair_ratio('every head new', 'cpu_us_per_request'))}**. "
        "With one head repeated (wrk's default, which prefork's parser recognises): requests/s "
        f"**{harness.fmt_ratio(rps_ratio)}**, CPU per request **{harness.fmt_ratio(cpu_ratio)}**.",
        "",
    ]
    lines += [
        "",
        "Targets (repeated head), from the medians of this run:",
        "",
        f"- prefork requests/s >= 0.8x nginx: **{harness.fmt_ratio(rps_ratio)}** -- "
        f"{verdict(rps_ratio is not None and rps_ratio >= 0.8)}",
        f"- prefork CPU per request <= 1.4x nginx: **{harness.fmt_ratio(cpu_ratio)}** -- "
        f"{verdict(cpu_ratio is not None and cpu_ratio <= 1.4)}",
        *(f"- the same with {variant} ({what}), prefork vs nginx both loaded that way: requests/s "
          f"**{harness.fmt_ratio(pair_ratio(variant, 'rps'))}**, CPU per request "
          f"**{harness.fmt_ratio(pair_ratio(variant, 'cpu_us_per_request'))}**"
          for variant, what in (("every request-line new", "the field lines repeat: prefork checks the new "
                                 "request-line and reuses the fields"),
                                ("every head new", "a header field changes too: prefork parses every head in full"))),
        *floor_lines(med),
        "",
        "Every round (req/s, p99, CPU per request, foreign load on the machine):",
        "",
        "| round | " + " | ".join(results) + " |",
        "| --- | " + " | ".join("---" for _ in results) + " |",
    ]
    for round_index in range(args.rounds):
        cells = [harness.round_cell(runs[round_index] if round_index < len(runs) else None)
                 for runs in results.values()]
        lines.append(f"| {round_index + 1} | " + " | ".join(cells) + " |")
    lines += ["", "Servers:", ""]
    for spec in specs():
        lines.append(f"- {spec.name}: {spec.note}" + (f"; `{shown_command(spec)}`" if not spec.setup else ""))
    return "\n".join(lines)


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    harness.common_arguments(parser, rounds=3, duration=10.0)
    args = parser.parse_args()
    harness.apply_quick(args)
    harness.check_tools()
    if not Path(harness.NGINX).exists():
        sys.exit(f"{harness.NGINX} is missing: apt-get install -y nginx-light")
    info = harness.machine()
    harness.progress(f"core benchmark: {args.rounds} rounds x {len(specs())} servers x {args.duration:g} s; "
                     f"load {info['load_before']}")
    harness.OUT.mkdir(parents=True, exist_ok=True)
    with tempfile.TemporaryDirectory(prefix="prefork-bench-") as workdir:
        results = harness.run_rounds(specs(), args.rounds, args.duration, args.warmup, Path(workdir),
                                     **harness.rounds_options(args))
    info["load_after"] = harness.loadavg()
    text = report(results, info, args)
    stamp = time.strftime("%Y%m%d-%H%M%S")
    (harness.OUT / f"core-{stamp}.json").write_text(json.dumps({"machine": info, "results": results}, indent=1))
    harness.publish("core", text, write_doc=not args.no_doc)
    return 0


if __name__ == "__main__":
    sys.exit(main())
