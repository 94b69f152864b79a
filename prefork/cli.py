"""The `prefork` command: gunicorn-style flags, nginx-style control (-t, -s SIGNAL).

Every flag is also a key of the TOML file, spelt with `_` for `-` (see prefork/config.py,
which holds the one table of settings this parser is built from). gunicorn's spellings of the
same settings are accepted too (--access-logfile, --keep-alive, -p, ...), so that a gunicorn
command line can be pasted; docs/gunicorn.md lists them all.
"""

from __future__ import annotations

import argparse
import os
import signal
import sys
from functools import partial

from . import __version__
from . import config as configuration
from .master.signals import SIGDRAIN, SIGRESUME

CONTROL_SIGNALS = {
    "reload": signal.SIGHUP,
    "quit": signal.SIGQUIT,
    "stop": signal.SIGINT,  # nginx's `-s stop` is a fast stop; TERM is graceful here
    "reopen": signal.SIGUSR1,
    "upgrade": signal.SIGUSR2,
    "drain": SIGDRAIN,  # /health answers 503 until resume
    "resume": SIGRESUME,
}
METAVARS = {"bind": "ADDR", "env": "KEY=VALUE", "pythonpath": "DIRS", "proc_name": "NAME"}
TIMEOUT_MISTAKE = "prefork: -t checks the configuration; use --timeout N for the worker timeout"
# gunicorn flags with no prefork equivalent, and why: a pasted gunicorn command that has one
# gets this instead of argparse's bare "unrecognized arguments". Flags prefork knows are
# never looked up here (build_parser decides), so a setting added later simply wins.
GUNICORN_ONLY = {
    ("-k", "--worker-class"): "there is one kind of worker, an epoll Reactor per process; the app runs on "
                              "its handler threads (--dispatch threads --threads N) or on the Reactor "
                              "(--dispatch inline)",
    ("--reload-engine",): "--reload polls the files once a second",
    ("--reload-extra-file",): "--reload watches the .py files under the app's directory",
    ("--spew",): "there is no line tracer",
    ("--print-config",): "prefork -t checks a configuration; conf/prefork.toml lists every key with its default",
    ("--no-sendfile",): "files are always sent with os.sendfile",
    ("--worker-tmp-dir",): "the workers' heartbeats are in shared memory, not in files",
    ("--initgroups",): "with --user the worker always takes the user's supplementary groups",
    ("-R", "--enable-stdio-inheritance"): "output handling is not configurable (stdin and stdout are "
                                          "kept; stderr goes to the --error-log file when there is one)",
    ("--logger-class", "--log-config", "--log-config-json", "--log-syslog", "--log-syslog-to",
     "--log-syslog-prefix", "--log-syslog-facility", "--disable-redirect-access-to-syslog"):
        "logs go to the files or streams named by --error-log and --access-log (use journald or "
        "logrotate around them; USR1 reopens them)",
    ("--statsd-host", "--statsd-prefix", "--dogstatsd-tags", "--enable-backlog-metric"):
        "metrics are served in the Prometheus format at /metrics (see --status-bind)",
    ("--paste", "--paster", "--paste-global"): "there is no PasteDeploy loader: name the WSGI callable",
    ("--ssl-version",): "use --tls-min-version 1.2 or 1.3 (TLS 1.0 and 1.1 are never offered)",
    ("--do-handshake-on-connect",): "the TLS handshake always runs on the worker's event loop as soon as a "
                                    "connection is accepted, within --header-timeout",
    ("--suppress-ragged-eofs",): "a TLS connection that ends without close_notify is taken as closed, "
                                 "as gunicorn does by default",
    ("--http-protocols", "--http2-cleartext", "--http2-max-concurrent-streams", "--http2-initial-window-size",
     "--http2-max-frame-size", "--http2-max-header-list-size"): "only HTTP/1.1 and HTTP/1.0 are served",
    ("--asgi-loop", "--asgi-lifespan", "--asgi-disconnect-grace-period", "--root-path"):
        "only WSGI apps are served",
    ("--protocol", "--uwsgi-allow-from"): "only HTTP is served (and the echo protocol, echo://HOST:PORT)",
    ("--dirty-app", "--dirty-workers", "--dirty-timeout", "--dirty-threads", "--dirty-graceful-timeout"):
        "there is no dirty-worker pool",
    ("--control-socket", "--control-socket-mode", "--no-control-socket"):
        "the master is controlled by signals (prefork -s reload|quit|stop|reopen|upgrade|drain|resume)",
    ("--permit-obsolete-folding", "--strip-header-spaces", "--permit-unconventional-http-method",
     "--permit-unconventional-http-version", "--casefold-http-method"):
        "the request parser follows RFC 9112 and has no leniency switches",
    ("--forwarder-headers", "--header-map"): "header fields reach the environ as PEP 3333 says, "
                                             "names with '_' are dropped",
    ("--proxy-allow-from",): "with --proxy-protocol every connection must begin with a PROXY header",
}


def build_parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(
        prog="prefork",
        description="A multi-process, multi-reactor HTTP/1.1 and WSGI server.",
        epilog="Every option is also a key of the TOML file given with -c (use _ for -).",
    )
    parser.add_argument("app", nargs="?", default=argparse.SUPPRESS,
                        help="WSGI application as module:callable, module:factory() or module "
                             "(module:application); none serves the built-in site")
    parser.add_argument("-v", "--version", action="version", version=f"prefork {__version__}")
    parser.add_argument("-c", "--config", dest="config_file", metavar="FILE", help="TOML configuration file")
    parser.add_argument("-t", "--check-config", dest="check_only", action="store_true",
                        help="check the configuration, print 'configuration ok' or the error, and exit")
    parser.add_argument("-s", dest="control", metavar="SIGNAL", choices=sorted(CONTROL_SIGNALS),
                        help="send a signal to the running master: " + ", ".join(sorted(CONTROL_SIGNALS)))
    for setting in configuration.SETTINGS:
        if setting.name == "app" or not setting.cli:
            continue
        flags = setting.flags or ("--" + setting.name.replace("_", "-"),)
        help = setting.help.replace("%", "%%")  # argparse formats help with %
        if setting.name in configuration.ZERO_MEANS_NO_LIMIT:
            help += "; 0 means no limit"
        if setting.kind == "bool":
            parser.add_argument(*flags, dest=setting.name, action=argparse.BooleanOptionalAction,
                                default=argparse.SUPPRESS, help=help)
        elif setting.kind == "list":
            parser.add_argument(*flags, dest=setting.name, action="append", metavar=METAVARS.get(setting.name, "VALUE"),
                                default=argparse.SUPPRESS, help=help)
        elif setting.kind == "choice":
            listed = f"({', '.join(setting.choices)})"
            # Any case, and aliases such as gunicorn's "warn", name a choice.
            parser.add_argument(*flags, dest=setting.name, default=argparse.SUPPRESS,
                                type=partial(configuration.normalize_choice, setting=setting),
                                metavar=setting.name.upper(),
                                choices=setting.choices, help=help if listed in help else f"{help} {listed}")
        else:
            parser.add_argument(*flags, dest=setting.name, default=argparse.SUPPRESS,
                                metavar=METAVARS.get(setting.name, setting.name.upper()), help=help)
    return parser


def main(argv: list[str] | None = None) -> int:
    arguments = sys.argv[1:] if argv is None else list(argv)
    if arguments[:1] == ["lab"]:  # the IO-model lab: its own commands (docs/io-models.md)
        from .lab.cli import main as lab_main

        return lab_main(arguments[1:])
    if gives_t_a_number(arguments):
        print(TIMEOUT_MISTAKE, file=sys.stderr)
        return 2
    parser = build_parser()
    unsupported = gunicorn_only(parser, arguments)
    if unsupported:
        print(f"prefork: {unsupported[0]} is gunicorn's and has no equivalent here: {unsupported[1]} "
              "(docs/gunicorn.md lists every gunicorn flag)", file=sys.stderr)
        return 2
    args = vars(parser.parse_args(arguments))
    config_file = args.pop("config_file")
    check_only = args.pop("check_only")
    control = args.pop("control")
    try:
        config = configuration.load(config_file, args)
        refuse_conflicts(config)
    except configuration.ConfigError as exc:
        print(f"prefork: {exc}", file=sys.stderr)
        if check_only:
            print("configuration invalid", file=sys.stderr)
        return 1
    from .apps.loader import prepare

    prepare(config.env, config.pythonpath, config.chdir)
    if check_only:
        return check(config)
    if control:
        return send_control(config, control)
    from .master.arbiter import Arbiter

    command = sys.argv if argv is None else ["prefork", *argv]
    if config.daemon and not upgrading():
        from .daemon import run_detached

        return run_detached(config, command, args)
    return Arbiter(config, argv=command, overrides=args).run()


def check(config) -> int:
    """`prefork -t`: the values are valid and start-up would find what it needs (see checks.py)."""
    from .checks import problems, warnings

    found = problems(config)
    for warning in warnings(config):
        print(f"prefork: warning: {warning}", file=sys.stderr)
    for problem in found:
        print(f"prefork: {problem}", file=sys.stderr)
    if found:
        print("configuration invalid", file=sys.stderr)
        return 1
    source = config.path or "defaults and command line"
    print(f"configuration ok ({source})")
    return 0


def gives_t_a_number(arguments: list[str]) -> bool:
    """gunicorn's `-t 30` is its worker timeout; here -t checks the configuration, as nginx's."""
    for i, argument in enumerate(arguments):
        if argument == "--":
            return False
        value = arguments[i + 1] if argument == "-t" and i + 1 < len(arguments) else argument[2:]
        if argument.startswith("-t") and _is_number(value):
            return True
    return False


def gunicorn_only(parser: argparse.ArgumentParser, arguments: list[str]) -> tuple[str, str] | None:
    """(flag, why) for the first gunicorn flag among arguments that this parser lacks."""
    known = parser._option_string_actions  # every spelling the parser accepts
    for argument in arguments:
        if argument == "--":
            break
        flag = argument.partition("=")[0]
        if not flag.startswith("-") or flag in known:
            continue
        for flags, why in GUNICORN_ONLY.items():
            if flag in flags:
                return flag, why
    return None


def _is_number(text: str) -> bool:
    try:
        float(text)
    except ValueError:
        return False
    return True


def refuse_conflicts(config) -> None:
    if config.reload and config.preload and config.app:
        where = config.path or "command line"
        raise configuration.ConfigError(f"{where}: keys 'reload' and 'preload' are both true: reload (--reload) needs "
                                        "the workers to import the app, and preload (--preload) imports it once in "
                                        "the master: drop one of them")


def upgrading() -> bool:
    """Started by a master's upgrade (USR2): that master is already detached; so are we."""
    from .master.upgrade import ENVIRONMENT_KEY

    return ENVIRONMENT_KEY in os.environ


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
