"""prefork against the WSGI/ASGI servers users would pick instead.

    python bench/peers.py [--rounds 2] [--duration 10] [--quick] [--no-doc] [--skip-install] [--only NAMES]

Installs the peers into their own virtual environment, bench/.venv-peers (gunicorn, uvicorn[standard]
i.e. uvloop + httptools, granian, bjoern -- after `apt-get install -y libev-dev` -- and matplotlib for
the chart); a peer that does not install is reported as not measured, with the reason. Then serves the
same Hello-World app (bench/apps/hello.py) on each, one worker pinned to core 0, wrk -t1 -c64 pinned to
core 1, in interleaved rounds, with nginx as the reference; writes the "peers" section of
docs/benchmarks.md and the chart docs/benchmarks-peers.png.
"""

from __future__ import annotations

import argparse
import json
import shutil
import subprocess
import sys
import tempfile
import time
from dataclasses import replace
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent))
import core  # noqa: E402
import harness  # noqa: E402

BENCH = harness.REPO / "bench"
APPS = BENCH / "apps"
VENV = BENCH / ".venv-peers"
VENV_BIN = VENV / "bin"
CHART = harness.REPO / "docs" / "benchmarks-peers.png"
PATH = "/hello"  # the built-in site answers 404 here: only the hosted app says Hello, World!
FRESH = "every head new"
REPEATED = "one head repeated"
REFERENCE = f"prefork inline, {FRESH}"

# peer -> (pip requirements, modules that must import afterwards)
PACKAGES = {
    "gunicorn": (["gunicorn"], ["gunicorn"]),
    "uvicorn": (["uvicorn[standard]"], ["uvicorn", "uvloop", "httptools"]),
    "granian": (["granian"], ["granian"]),
    "bjoern": (["bjoern"], ["bjoern"]),
    "matplotlib": (["matplotlib"], ["matplotlib"]),
}


def run(argv: list[str], timeout: float = 600) -> subprocess.CompletedProcess:
    return subprocess.run(argv, capture_output=True, text=True, timeout=timeout, stdin=subprocess.DEVNULL)


def last_lines(text: str, count: int = 3) -> str:
    lines = [line for line in text.strip().splitlines() if line.strip() and not line.startswith("WARNING: Location")]
    return " / ".join(lines[-count:])[:400]


def ensure_libev() -> str | None:
    """bjoern builds against libev: install libev-dev from Debian if missing; return an error or None."""
    if run(["dpkg", "-s", "libev-dev"]).returncode == 0:
        return None
    harness.progress("installing libev-dev (apt-get) for bjoern")
    result = run(["apt-get", "install", "-y", "-q", "libev-dev"])
    if result.returncode != 0:
        run(["apt-get", "update", "-q"])
        result = run(["apt-get", "install", "-y", "-q", "libev-dev"])
    return None if result.returncode == 0 else f"apt-get install libev-dev failed: {last_lines(result.stderr)}"


def install_peers(skip: bool) -> tuple[dict[str, str], dict[str, str]]:
    """Create bench/.venv-peers and install each peer on its own; return (versions, failures)."""
    failures: dict[str, str] = {}
    if not skip:
        if not (VENV_BIN / "python").exists():
            harness.progress(f"creating {VENV.relative_to(harness.REPO)}")
            result = run([sys.executable, "-m", "venv", str(VENV)])
            if result.returncode != 0:
                sys.exit(f"cannot create {VENV}: {last_lines(result.stderr)}")
        libev_error = ensure_libev()
        for peer, (requirements, _) in PACKAGES.items():
            if peer == "bjoern" and libev_error:
                failures[peer] = libev_error
                continue
            harness.progress(f"pip install {' '.join(requirements)} into {VENV.relative_to(harness.REPO)}")
            result = run([str(VENV_BIN / "python"), "-m", "pip", "install", "-q", *requirements])
            if result.returncode != 0:
                failures[peer] = f"pip install {' '.join(requirements)} failed: {last_lines(result.stderr)}"
    versions: dict[str, str] = {}
    for peer, (requirements, modules) in PACKAGES.items():
        if peer in failures:
            continue
        if not (VENV_BIN / "python").exists():
            failures[peer] = f"{VENV} does not exist (run without --skip-install)"
            continue
        check = run([str(VENV_BIN / "python"), "-c",
                     "import importlib, importlib.metadata as m, sys\n"
                     "for name in sys.argv[2:]: importlib.import_module(name)\n"
                     "print(m.version(sys.argv[1]))", peer, *modules])
        if check.returncode == 0:
            versions[peer] = check.stdout.strip()
        else:
            failures[peer] = f"installed but does not import: {last_lines(check.stderr, 1)}"
    return versions, failures


def specs(failures: dict[str, str]) -> tuple[list[harness.ServerSpec], dict[str, str]]:
    """Every server of the comparison; those whose peer did not install go to not_measured."""
    prefork = shutil.which("prefork") or sys.exit("the prefork command is not installed: pip install -e .")
    bind = ["-b", "127.0.0.1:{port}"]
    host = ["--host", "127.0.0.1", "--port", "{port}"]
    all_specs = [
        (None, harness.ServerSpec("prefork inline", [prefork, "hello:app", "-w", "1", *bind, "--dispatch", "inline"],
                                  path=PATH, cwd=APPS, note="the app runs on the Reactor thread")),
        (None, harness.ServerSpec("prefork threads", [prefork, "hello:app", "-w", "1", *bind, "--dispatch", "threads",
                                                      "--threads", "8"],
                                  path=PATH, cwd=APPS, note="8 handler threads fed by the worker queues")),
        ("gunicorn", harness.ServerSpec("gunicorn gthread", [VENV_BIN / "gunicorn", "-w", "1", "-k", "gthread",
                                                             "--threads", "8", *bind, "hello:app"],
                                        path=PATH, cwd=APPS, note="same thread count as prefork threads; "
                                        "no access log (its default)")),
        ("granian", harness.ServerSpec("granian wsgi", [VENV_BIN / "granian", "--interface", "wsgi", "--workers", "1",
                                                        *host, "hello:app"],
                                       path=PATH, cwd=APPS, note="its defaults otherwise: 1 runtime thread, "
                                       "blocking threads = backpressure/2 = 512 (started on demand), "
                                       "no access log")),
        ("uvicorn", harness.ServerSpec("uvicorn", [VENV_BIN / "uvicorn", "hello:asgi_app", *host, "--loop", "uvloop",
                                                   "--http", "httptools", "--no-access-log", "--lifespan", "off",
                                                   "--log-level", "warning"],
                                       path=PATH, cwd=APPS, note="ASGI equivalent of the app (`asgi_app`), "
                                       "uvloop + httptools, one process")),
        ("bjoern", harness.ServerSpec("bjoern", [VENV_BIN / "python", "run_bjoern.py", "{port}"],
                                      path=PATH, cwd=APPS, note="bench/apps/run_bjoern.py: `bjoern.run(app, ...)`")),
        (None, core.nginx_spec(PATH)),
    ]
    # First what real clients send: every server loaded with a browser-like head whose target and
    # cookie change on every request (bench/unique_fields.lua), then wrk's default, one head
    # repeated (which prefork's parser recognises and reuses).
    fresh = [(peer, replace(spec, name=f"{spec.name}, {FRESH}", script=core.UNIQUE_FIELDS,
                            note=f"{spec.note}; loaded by `wrk -s bench/unique_fields.lua`"))
             for peer, spec in all_specs]
    all_specs = fresh + [(peer, replace(spec, name=f"{spec.name}, {REPEATED}")) for peer, spec in all_specs]
    chosen, not_measured = [], {}
    for peer, spec in all_specs:
        if peer in failures:
            not_measured[spec.name] = failures[peer]
        else:
            chosen.append(spec)
    return chosen, not_measured


TARGETS = [  # (server, peer, minimum ratio of requests/s, label): every head new first, as clients send
    (REFERENCE, f"granian wsgi, {FRESH}", 1.2, "prefork inline >= 1.2x granian (--interface wsgi), every head new"),
    (REFERENCE, f"uvicorn, {FRESH}", 2.0, "prefork inline >= 2x uvicorn, every head new"),
    (f"prefork threads, {FRESH}", f"granian wsgi, {FRESH}", 1.0,
     "prefork threads >= granian (--interface wsgi), every head new"),
    (f"prefork threads, {FRESH}", f"gunicorn gthread, {FRESH}", 4.0,
     "prefork threads >= 4x gunicorn gthread (8 threads each), every head new"),
    (f"prefork inline, {REPEATED}", f"granian wsgi, {REPEATED}", 1.2, "prefork inline >= 1.2x granian, one head repeated"),
    (f"prefork inline, {REPEATED}", f"uvicorn, {REPEATED}", 2.0, "prefork inline >= 2x uvicorn, one head repeated"),
    (REFERENCE, f"bjoern, {FRESH}", 1.0, "beyond the targets: prefork inline as fast as bjoern (C), every head new"),
]


def report(results: dict, not_measured: dict, versions: dict, info: dict, args, chart_ok: bool) -> str:
    med = {name: harness.medians(runs) for name, runs in results.items()}
    lines = [
        "## prefork vs the WSGI/ASGI peers",
        "",
        "Command:",
        "",
        f"    python bench/peers.py --rounds {args.rounds} --duration {args.duration:g}",
        "",
        *harness.machine_lines(info),
        "- peers (in bench/.venv-peers, same Python): "
        + ", ".join(f"{name} {version}" for name, version in versions.items() if name != "matplotlib"),
        f"- {args.rounds} interleaved rounds x {args.duration:g} s, `wrk -t1 -c64 -d{args.duration:g}s --latency "
        f"http://127.0.0.1:PORT{PATH}` on core 1, one server worker on core 0; medians over rounds",
        f"- server and wrk at niceness {harness.PRIORITY['nice']} (`--nice`)",
        "- the app: bench/apps/hello.py, `Hello, World!` as text/plain with Content-Length",
        f"- rows *{FRESH}* first: what real clients send, a browser-like head of 9 fields with a new target and "
        f"cookie on every request (`bench/unique_fields.lua`, the same for every server); rows *{REPEATED}* second: "
        "wrk's default, which prefork's parser recognises and reuses",
        "",
    ]
    if chart_ok:
        lines += ["![requests/s and CPU per request](benchmarks-peers.png)", ""]
    def failure(name: str) -> str:
        reason = results[name][-1].get("error", "failed").splitlines()[0] if results[name] else "failed"
        return f"not measured: {reason}"

    lines += harness.results_table(med, REFERENCE, "prefork inline (new heads)", failure)
    for name, reason in not_measured.items():
        lines.append(f"| {name} | not measured: {reason} | | | | | |")
    lines += ["", "Targets, requests/s ratios from the medians of this run:", ""]
    for server, peer, minimum, label in TARGETS:
        if med.get(server) and med.get(peer):
            value = med[server]["rps"] / med[peer]["rps"]
            lines.append(f"- {label}: **{value:.2f}x** -- {'met' if value >= minimum else 'NOT met'}")
        else:
            lines.append(f"- {label}: not measured ({server if not med.get(server) else peer} missing)")
    lines += [
        "",
        "Every round (req/s, p99, CPU per request, foreign load on the machine):",
        "",
        "| server | " + " | ".join(f"round {i + 1}" for i in range(args.rounds)) + " |",
        "| --- | " + " | ".join("---" for _ in range(args.rounds)) + " |",
    ]
    for name, runs in results.items():
        cells = [harness.round_cell(run_result) for run_result in runs]
        lines.append(f"| {name} | " + " | ".join(cells) + " |")
    prefix = f"nice -n {harness.PRIORITY['nice']} taskset -c 0" if harness.PRIORITY["nice"] else "taskset -c 0"
    lines += ["", f"Servers, as started (PORT is a free port; `{prefix}` in front of each):", ""]
    for spec in specs({})[0]:
        if spec.setup:
            lines.append(f"- {spec.name}: {spec.note}")
        else:
            shown = spec.command_line().replace(str(VENV_BIN) + "/", "").replace(
                str(Path(shutil.which("prefork")).parent) + "/", "")
            lines.append(f"- {spec.name}: `{shown}` (in bench/apps) -- {spec.note}")
    return "\n".join(lines)


def draw_chart(data_path: Path) -> bool:
    """The bar chart, drawn by bench/chart.py with the venv's matplotlib."""
    python = VENV_BIN / "python"
    if not python.exists():
        return False
    result = run([str(python), str(BENCH / "chart.py"), str(data_path), str(CHART)], timeout=120)
    if result.returncode != 0:
        harness.progress(f"chart failed: {last_lines(result.stderr)}")
        return False
    harness.progress(f"wrote {CHART.relative_to(harness.REPO)}")
    return True


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    harness.common_arguments(parser, rounds=2, duration=10.0)
    parser.add_argument("--skip-install", action="store_true", help="use bench/.venv-peers as it is")
    parser.add_argument("--only", action="append", metavar="NAME",
                        help="run only this server (repeatable), e.g. --only 'prefork inline, every head new' --only 'granian wsgi, every head new'")
    args = parser.parse_args()
    harness.apply_quick(args)
    harness.check_tools()
    versions, failures = install_peers(args.skip_install)
    for peer, reason in failures.items():
        harness.progress(f"{peer} not measured: {reason}")
    chosen, not_measured = specs(failures)
    if args.only:
        wanted = set(args.only)
        unknown = wanted - {spec.name for spec in chosen} - set(not_measured)
        if unknown:
            sys.exit(f"unknown server(s) {sorted(unknown)}; known: {[spec.name for spec in chosen]}")
        chosen = [spec for spec in chosen if spec.name in wanted]
    info = harness.machine()
    harness.progress(f"peers benchmark: {args.rounds} rounds x {len(chosen)} servers x {args.duration:g} s; "
                     f"load {info['load_before']}")
    harness.OUT.mkdir(parents=True, exist_ok=True)
    with tempfile.TemporaryDirectory(prefix="prefork-bench-") as workdir:
        results = harness.run_rounds(chosen, args.rounds, args.duration, args.warmup, Path(workdir),
                                     **harness.rounds_options(args))
    info["load_after"] = harness.loadavg()
    stamp = time.strftime("%Y%m%d-%H%M%S")
    data_path = harness.OUT / f"peers-{stamp}.json"
    data = {"machine": info, "versions": versions, "not_measured": not_measured, "results": results,
            "medians": {name: harness.medians(runs) for name, runs in results.items()}, "reference": REFERENCE}
    data_path.write_text(json.dumps(data, indent=1))
    chart_ok = not args.no_doc and draw_chart(data_path)
    text = report(results, not_measured, versions, info, args, chart_ok)
    harness.publish("peers", text, write_doc=not args.no_doc)
    return 0


if __name__ == "__main__":
    sys.exit(main())
