"""`prefork lab ...`: serve one model, measure one server, or run the whole sweep and the experiments."""

from __future__ import annotations

import argparse
import os
import sys

from . import MODELS, SWEEP


def build_parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(prog="prefork lab", description="The IO-model lab: every network IO "
                                     "model as a server, measured by one load driver (docs/io-models.md).")
    commands = parser.add_subparsers(dest="command", required=True)

    serve = commands.add_parser("serve", help="run one model on 127.0.0.1 until killed")
    serve.add_argument("model", help=f"MODEL[:VARIANT], MODEL one of {', '.join(MODELS)}")
    serve.add_argument("--port", type=int, default=0)

    bench = commands.add_parser("bench", help="load one server (a model started here, or any at --port)")
    bench.add_argument("model", nargs="?", help="MODEL[:VARIANT] to start on its own CPUs; none: use --port")
    bench.add_argument("--port", type=int, help="a server already listening on 127.0.0.1:PORT")
    bench.add_argument("--pid", type=int, help="that server's pid, for its CPU time and memory")
    bench.add_argument("-c", "--concurrency", type=int, default=100)
    bench.add_argument("-d", "--seconds", type=float, default=5.0)
    bench.add_argument("--cpu-us", type=int, default=0, help="CPU microseconds each request burns on the server")
    bench.add_argument("--sleep-ms", type=float, default=0, help="milliseconds each request waits on the server")
    bench.add_argument("--timeout", type=float, default=2.0)

    run = commands.add_parser("run", help="the sweep over models and concurrency, the experiments, CSV and plots")
    run.add_argument("--models", default=",".join(SWEEP), help="comma-separated MODEL[:VARIANT] (default: all)")
    run.add_argument("--concurrency", default=None, help="comma-separated (default 1,10,100,1000,10000; "
                                                         "quick: 1,10,100)")
    run.add_argument("--seconds", type=float, default=None, help="measured seconds per point (default 5; quick 1)")
    run.add_argument("--quick", action="store_true", help="small and short: under two minutes on two cores")
    run.add_argument("--experiments", default=None,
                     help="comma-separated of idle,slow,herd,scaling (default all; quick: none); 'none' for none")
    run.add_argument("--out", required=True, help="directory for results.csv and the PNG plots")
    return parser


def main(argv: list[str] | None = None) -> int:
    args = build_parser().parse_args(sys.argv[1:] if argv is None else argv)
    if args.command == "serve":
        from .server import serve_forever

        serve_forever(args.model, args.port)
        return 0
    if args.command == "bench":
        return bench_command(args)
    from .sweep import run_command

    return run_command(args)


def bench_command(args) -> int:
    from .bench import bench
    from .server import Running
    from .sweep import placement

    if not args.model and not args.port:
        print("prefork lab bench: name a MODEL to start, or give --port of a running server", file=sys.stderr)
        return 2
    server_cpus, driver_cpus = placement()
    if args.model:
        running = Running(args.model, server_cpus)
        port, pid = running.port, running.pid
    else:
        running, port, pid = None, args.port, args.pid
    os.sched_setaffinity(0, driver_cpus)
    try:
        result = bench(port, args.concurrency, args.seconds, cpu_us=args.cpu_us, sleep_ms=args.sleep_ms,
                       timeout=args.timeout, server_pid=pid, label=args.model or f"port {port}",
                       progress=sys.stderr.isatty())
    finally:
        if running:
            running.stop()
    for key, value in result.row().items():
        print(f"{key:>14}: {value:.3f}" if isinstance(value, float) else f"{key:>14}: {value}")
    return 0
