"""The `prefork` command: gunicorn-style flags, nginx-style control (-t, -s SIGNAL).

Every flag is also a key of the TOML file, spelt with `_` for `-` (see prefork/config.py,
which holds the one table of settings this parser is built from).
"""

from __future__ import annotations

import argparse
import os
import signal
import sys

from . import config as configuration

CONTROL_SIGNALS = {
    "reload": signal.SIGHUP,
    "quit": signal.SIGQUIT,
    "stop": signal.SIGINT,  # nginx's `-s stop` is a fast stop; TERM is graceful here
    "reopen": signal.SIGUSR1,
    "upgrade": signal.SIGUSR2,
}


def build_parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(
        prog="prefork",
        description="A multi-process, multi-reactor HTTP/1.1 and WSGI server.",
        epilog="Every option is also a key of the TOML file given with -c (use _ for -).",
    )
    parser.add_argument("app", nargs="?", default=argparse.SUPPRESS,
                        help="WSGI application as module:callable or module:factory(); none serves the built-in site")
    parser.add_argument("-c", "--config", dest="config_file", metavar="FILE", help="TOML configuration file")
    parser.add_argument("-t", dest="check_only", action="store_true",
                        help="check the configuration, print 'configuration ok' or the error, and exit")
    parser.add_argument("-s", dest="control", metavar="SIGNAL", choices=sorted(CONTROL_SIGNALS),
                        help="send a signal to the running master: " + ", ".join(sorted(CONTROL_SIGNALS)))
    for setting in configuration.SETTINGS:
        if setting.name == "app":
            continue
        flags = setting.flags or ("--" + setting.name.replace("_", "-"),)
        if setting.kind == "bool":
            parser.add_argument(*flags, dest=setting.name, action=argparse.BooleanOptionalAction,
                                default=argparse.SUPPRESS, help=setting.help)
        elif setting.kind == "list":
            parser.add_argument(*flags, dest=setting.name, action="append", metavar="ADDR",
                                default=argparse.SUPPRESS, help=setting.help)
        else:
            parser.add_argument(*flags, dest=setting.name, default=argparse.SUPPRESS,
                                metavar=setting.name.upper(),
                                choices=setting.choices or None, help=setting.help)
    return parser


def main(argv: list[str] | None = None) -> int:
    args = vars(build_parser().parse_args(argv))
    config_file = args.pop("config_file")
    check_only = args.pop("check_only")
    control = args.pop("control")
    try:
        config = configuration.load(config_file, args)
    except configuration.ConfigError as exc:
        print(f"prefork: {exc}", file=sys.stderr)
        if check_only:
            print("configuration invalid", file=sys.stderr)
        return 1
    if check_only:
        return check(config)
    if control:
        return send_control(config, control)
    from .master.arbiter import Arbiter

    return Arbiter(config, argv=sys.argv if argv is None else ["prefork", *argv], overrides=args).run()


def check(config) -> int:
    """`prefork -t`: the values are valid and start-up would find what it needs (see checks.py)."""
    from .checks import problems

    found = problems(config)
    for problem in found:
        print(f"prefork: {problem}", file=sys.stderr)
    if found:
        print("configuration invalid", file=sys.stderr)
        return 1
    source = config.path or "defaults and command line"
    print(f"configuration ok ({source})")
    return 0


def send_control(config, name: str) -> int:
    """`prefork -s NAME`: signal the master whose pid is in the pidfile."""
    if not config.pid:
        print("prefork: -s needs the pidfile: give --pid FILE or set pid in the configuration", file=sys.stderr)
        return 1
    try:
        with open(config.pid) as f:
            pid = int(f.read().strip())
    except (OSError, ValueError) as exc:
        print(f"prefork: cannot read pid from {config.pid}: {exc}", file=sys.stderr)
        return 1
    try:
        os.kill(pid, CONTROL_SIGNALS[name])
    except ProcessLookupError:
        print(f"prefork: no process {pid} (from {config.pid})", file=sys.stderr)
        return 1
    return 0


if __name__ == "__main__":
    sys.exit(main())
