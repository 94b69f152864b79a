"""The configuration: one table of settings, read from defaults, a TOML file and the command line.

Precedence is command line > file > defaults. Every command-line flag is also a key of the
TOML file, spelt with `_` for `-`. A bad key or value is a `ConfigError` whose message names
the key, the value and the file, so `prefork -t` can print it as it is.
"""

from __future__ import annotations

import os
import re
import tomllib
from dataclasses import dataclass
from typing import Any

from prefork.addresses import AddressError, parse_address


class ConfigError(Exception):
    """A configuration that cannot be used; the message says which key, which value, which file."""


@dataclass(frozen=True)
class Setting:
    name: str
    default: Any
    kind: str  # "int", "float", "bool", "str", "path", "list", "choice", "umask", "mounts"
    help: str
    choices: tuple = ()
    aliases: tuple = ()  # (spelling, choice) pairs: other names of a choice, such as gunicorn's
    minimum: float | None = None
    flags: tuple = ()  # command-line spellings; empty: only the long form of the name
    cli: bool = True  # False: a file-only key (no flag)


def _cpu_count() -> int:
    try:
        return len(os.sched_getaffinity(0))
    except AttributeError:  # pragma: no cover - not Linux
        return os.cpu_count() or 1


SETTINGS: tuple[Setting, ...] = (
    Setting("app", None, "str", "WSGI application as module:callable or module:factory(); none serves the built-in site"),
    Setting("bind", ["127.0.0.1:8000"], "list", "addresses to listen on: HOST:PORT, [IPV6]:PORT, unix:PATH, fd://N, echo://HOST:PORT", flags=("-b", "--bind")),
    Setting("workers", 0, "int", "worker processes; 0 means one per CPU", minimum=0, flags=("-w", "--workers")),
    Setting("dispatch", "auto", "choice", "where the app runs: inline (on the Reactor thread), threads (worker queues), auto (threads for a user APP, inline for the built-in site)", choices=("auto", "inline", "threads")),
    Setting("threads", 8, "int", "handler threads per worker for --dispatch threads", minimum=1),
    Setting("worker_connections", 10000, "int", "open connections per worker; beyond it the worker stops accepting", minimum=1),
    Setting("keepalive", 5.0, "float", "seconds an idle keep-alive connection is kept open (0: none, every response says Connection: close)", minimum=0, flags=("--keepalive", "--keep-alive")),
    Setting("timeout", 30.0, "float", "seconds without a heartbeat before a worker is killed and replaced; 0 disables the check", minimum=0),
    Setting("graceful_timeout", 30.0, "float", "seconds a gracefully stopping worker may take before it is killed", minimum=0),
    Setting("max_requests", 0, "int", "recycle a worker after this many requests; 0 disables", minimum=0),
    Setting("max_requests_jitter", 0, "int", "random extra requests added to max_requests per worker", minimum=0),
    Setting("pid", None, "path", "file the master writes its pid to", flags=("-p", "--pid")),
    Setting("access_log", None, "str", "access log file, or - for stdout; none (or off) by default", flags=("--access-log", "--access-logfile")),
    Setting("error_log", "-", "str", "error log file, or - for stderr; with a file, stderr of every process goes there too", flags=("--error-log", "--error-logfile", "--log-file")),
    Setting("capture_output", False, "bool", "stdout of every process (an app's print()) goes to the error log file too, as gunicorn's --capture-output", flags=("--capture-output",)),
    Setting("log_level", "info", "choice", "error log level", choices=("debug", "info", "warning", "error", "critical"),
            aliases=(("warn", "warning"),)),
    Setting("static_root", None, "path", "directory served under /static/ by the built-in site"),
    Setting("chdir", None, "path", "change to this directory before loading the app; relative paths of the other settings (logs, pidfile, static roots, certificates, unix sockets) are taken from it"),
    Setting("reuse_port", True, "bool", "one SO_REUSEPORT socket per worker slot (true) or one shared socket (false)"),
    Setting("preload", False, "bool", "import the app in the master before forking"),
    Setting("user", None, "str", "drop privileges to this user after binding", flags=("-u", "--user")),
    Setting("group", None, "str", "drop privileges to this group after binding", flags=("-g", "--group")),
    Setting("backlog", 2048, "int", "listen backlog of each socket", minimum=1),
    Setting("header_timeout", 10.0, "float", "seconds for a whole request head to arrive (slowloris guard)", minimum=0.001),
    Setting("body_timeout", 30.0, "float", "seconds a request body may stall", minimum=0.001),
    Setting("send_timeout", 30.0, "float", "seconds a response write may stall", minimum=0.001),
    Setting("max_body_size", 100 * 1024 * 1024, "int", "largest request body in bytes (413 beyond)", minimum=0),
    Setting("limit_request_line", 8190, "int", "longest request line in bytes (414 beyond)", minimum=64),
    Setting("limit_request_fields", 100, "int", "most header fields in a request (431 beyond)", minimum=1),
    Setting("limit_request_field_size", 8190, "int", "longest header field in bytes (431 beyond)", minimum=64, flags=("--limit-request-field-size", "--limit-request-field_size")),
    Setting("limit_request_head", 65536, "int", "largest request head in bytes (431 beyond)", minimum=256),
    Setting("http_parser", "auto", "choice", "which request parser reads the heads: httptools (llhttp, in C), python, or auto (httptools when it is installed); both accept and refuse the same requests", choices=("auto", "httptools", "python"), flags=("--http-parser", "--http")),
    Setting("body_buffer_size", 1024 * 1024, "int", "request bodies larger than this are spooled to a temporary file", minimum=0),
    Setting("high_water", 256 * 1024, "int", "bytes of output buffered per connection before its producer waits", minimum=1024),
    # -- the master: sockets, signals, supervision
    Setting("status_bind", None, "str", "a listener of its own for /status, /status.html, /metrics and /health (HOST:PORT, unix:PATH), so an APP's routes are never shadowed; off by default"),
    # -- the worker: connections and descriptors
    Setting("static", None, "mounts", "more static file roots for the built-in site: [[static]] tables with url (where) and root (which directory), as url = \"/assets\" root = \"site/assets\"", cli=False),
    Setting("umask", None, "umask", "umask of the server's processes (octal, as 022 or 0o22); unix sockets are created rw for everyone less this mask", flags=("-m", "--umask")),
    # -- behind a proxy: forwarded headers, the PROXY protocol
    Setting("forwarded_allow_ips", "127.0.0.1,::1", "str", "peers whose X-Forwarded-For/-Proto and Forwarded headers are believed: comma-separated addresses or CIDR ranges, * for all (unix-socket peers always are)"),
    Setting("proxy_protocol", False, "bool", "every connection starts with a PROXY protocol header (v1 or v2, HAProxy's send-proxy): the client address is taken from it"),
    # -- TLS (gunicorn's names)
    Setting("certfile", None, "path", "TLS certificate (PEM, the intermediate certificates after it); with it, every TCP bind written without a scheme is TLS, unless a bind is written https://"),
    Setting("keyfile", None, "path", "the certificate's private key (PEM, not encrypted); none: the key is in certfile"),
    Setting("ca_certs", None, "path", "CA certificates (PEM) that client certificates are verified against (see cert_reqs)"),
    Setting("cert_reqs", "none", "choice", "client certificates: none (not asked for), optional (verified if sent), required (no certificate, no connection); gunicorn's 0, 1, 2 too", choices=("none", "optional", "required"),
            aliases=(("0", "none"), ("1", "optional"), ("2", "required"))),
    Setting("ciphers", None, "str", "TLS 1.2 cipher suites, as an OpenSSL cipher string; none: the ssl module's default (forward-secret AES-GCM and ChaCha20 first); TLS 1.3 suites are always OpenSSL's"),
    Setting("tls_min_version", "1.2", "choice", "oldest TLS version accepted", choices=("1.2", "1.3"),
            aliases=(("tlsv1.2", "1.2"), ("tlsv1.3", "1.3"))),
    # -- gunicorn compatibility and logging
    Setting("access_log_format", None, "str", "access log line in gunicorn's atoms (%(h)s %(r)s %(s)s %(D)s ...); the combined format and the request time in seconds by default", flags=("--access-log-format", "--access-logformat")),
    Setting("env", None, "list", "environment variable KEY=VALUE set before the app is imported (repeatable)", flags=("-e", "--env")),
    Setting("pythonpath", None, "str", "comma-separated directories put first on sys.path before the app is imported", flags=("--pythonpath",)),
    Setting("proc_name", "prefork", "str", "first word of the process titles shown by ps and top (NAME: master [...], NAME: worker N [gen G])", flags=("-n", "--name")),
    Setting("daemon", False, "bool", "detach from the terminal; the command returns once the workers serve (exit 1 and the error if they cannot)", flags=("-D", "--daemon")),
    Setting("reload", False, "bool", "for development: start new workers (as on HUP) when a .py file under the app's directory changes", flags=("--reload",)),
)

BY_NAME: dict[str, Setting] = {s.name: s for s in SETTINGS}
# As gunicorn: 0 means "no limit" for these; the whole head stays bounded by limit_request_head.
ZERO_MEANS_NO_LIMIT = ("limit_request_line", "limit_request_fields", "limit_request_field_size")
NO_LIMIT = 2 ** 62


def normalize_choice(value: Any, setting: Setting) -> Any:
    """Choices are lower-case words; any case is accepted, and the setting's aliases. A TOML
    number names the choice it spells (cert_reqs = 2, tls_min_version = 1.3)."""
    if isinstance(value, (int, float)) and not isinstance(value, bool):
        value = str(value)
    if not isinstance(value, str):
        return value
    return dict(setting.aliases).get(value.lower(), value.lower())


def _check(setting: Setting, value: Any, where: str) -> Any:
    """Return value converted to the setting's type, or raise ConfigError naming key, value and file."""

    def bad(why: str) -> ConfigError:
        return ConfigError(f"{where}: invalid value {value!r} for key {setting.name!r}: {why}")

    if value is None and setting.default is None:
        return None
    kind = setting.kind
    if kind == "bool":
        if isinstance(value, bool):
            return value
        if isinstance(value, str) and value.lower() in ("true", "false", "yes", "no", "on", "off", "1", "0"):
            return value.lower() in ("true", "yes", "on", "1")
        raise bad("expected true or false")
    if kind in ("int", "float"):
        if isinstance(value, bool):
            raise bad("expected a number")
        try:
            number = int(value) if kind == "int" else float(value)
        except (TypeError, ValueError):
            raise bad(f"expected {'an integer' if kind == 'int' else 'a number'}") from None
        if kind == "int" and isinstance(value, float) and value != number:
            raise bad("expected an integer")
        if number == 0 and setting.name in ZERO_MEANS_NO_LIMIT:
            return NO_LIMIT
        if setting.minimum is not None and number < setting.minimum:
            raise bad(f"must be at least {setting.minimum:g}")
        return number
    if kind == "umask":
        return _umask(value, bad)
    if kind == "mounts":
        return _mounts(value, where)
    if kind == "choice":
        value = normalize_choice(value, setting)
        if value not in setting.choices:
            raise bad("expected one of " + ", ".join(setting.choices))
        if setting.name == "http_parser" and value == "httptools":
            from prefork.http import parser_class

            try:
                parser_class(value)
            except ImportError as exc:
                raise bad(f"it cannot be used ({exc}): pip install httptools, or choose auto or python") from None
        return value
    if kind == "list":
        if isinstance(value, str):
            value = [value]
        if not isinstance(value, list) or not value or not all(isinstance(v, str) and v for v in value):
            raise bad("expected a non-empty list of strings")
        if setting.name == "bind":
            for item in value:
                try:
                    parse_address(item)
                except AddressError as exc:
                    raise bad(str(exc)) from None
        if setting.name == "env":
            for item in value:
                if not _is_assignment(item):
                    raise bad(f"{item!r} is not KEY=VALUE")
        return list(value)
    # str and path
    if not isinstance(value, str) or not value:
        raise bad("expected a non-empty string")
    if setting.name == "app":
        from prefork.apps.loader import AppLoadError, parse_spec

        try:
            parse_spec(value)
        except AppLoadError as exc:
            raise bad(str(exc)) from None
    if setting.name == "access_log" and value == "off":
        return None  # nginx's `access_log off`: no access log (not a file called off)
    if setting.name == "access_log_format":
        from prefork.logs import check_format

        try:
            check_format(value)
        except (ValueError, TypeError, KeyError) as exc:
            raise bad(str(exc)) from None
    if setting.name == "forwarded_allow_ips":
        from prefork.http.forwarded import TrustedPeers

        try:
            TrustedPeers(value)
        except ValueError as exc:
            raise bad(str(exc)) from None
    return value


def _umask(value: Any, bad) -> int:
    """An int (TOML 0o22) or a string read as octal when it starts with 0 (022, 0o22), as gunicorn reads it."""
    if isinstance(value, bool):
        raise bad("expected an octal mask such as 022")
    if isinstance(value, str):
        text = value.strip().lower()
        try:
            value = int(text, 8) if text.startswith("0") and not text.startswith(("0x", "0b")) else int(text, 0)
        except ValueError:
            raise bad("expected an octal mask such as 022") from None
    if not isinstance(value, int) or not 0 <= value <= 0o777:
        raise bad("expected a mask from 0 to 0o777")
    return value


# A mount's URL: "/" or slash-separated segments of RFC 3986 path characters (no percent-escapes,
# no "?" or "#"), with or without a final slash.
_MOUNT_URL = re.compile(r"/|(/[A-Za-z0-9\-._~!$&'()*+,;=:@]+)+/?")


def _mounts(value: Any, where: str) -> list[dict]:
    """[[static]] tables: each exactly a url and a root, no URL twice; errors name the table."""
    if not isinstance(value, list) or not value:
        raise ConfigError(f"{where}: invalid value {value!r} for key 'static': expected [[static]] tables "
                          'with url and root, as url = "/assets" root = "site/assets"')
    seen = set()
    for number, table in enumerate(value, 1):
        def bad(why: str, shown: Any = table) -> ConfigError:
            return ConfigError(f"{where}: invalid value {shown!r} for key 'static' (table {number}): {why}")

        if not isinstance(table, dict):
            raise bad("expected a table with url and root")
        unknown = sorted(set(table) - {"url", "root"})
        if unknown:
            raise bad(f"unknown key {unknown[0]!r} (a [[static]] table has url and root)")
        for key in ("url", "root"):
            if key not in table:
                raise bad(f"no {key}")
            if not isinstance(table[key], str) or not table[key]:
                raise bad(f"{key} must be a non-empty string", table[key])
        url = table["url"]
        if not _MOUNT_URL.fullmatch(url) or any(part in (".", "..") for part in url.split("/")):
            raise bad('url must be a path such as "/assets": segments of letters, digits and -._~!$&\'()*+,;=:@, '
                      'no "." or ".." segment, no % escapes', url)
        if url.rstrip("/") in seen:
            raise bad("this url is mounted twice", url)
        seen.add(url.rstrip("/"))
    return [dict(table) for table in value]


def _is_assignment(item: str) -> bool:
    """KEY=VALUE, as the environment takes it: a non-empty key without '=' or NUL."""
    key, equals, _ = item.partition("=")
    return bool(key) and bool(equals) and "\0" not in item


class Config:
    """The settings in force: each setting is a plain attribute (config.keepalive), because the
    request path reads some of them on every request; `values` holds them all by name."""

    def __init__(self, values: dict[str, Any], path: str | None = None):
        self.values = values
        self.path = path
        self.__dict__.update(values)

    @property
    def worker_count(self) -> int:
        return self.values["workers"] or _cpu_count()

    @property
    def tls_by_default(self) -> bool:
        """gunicorn's rule: with a certificate and no bind written https://, every TCP bind
        written without a scheme speaks TLS (`-b 0.0.0.0:443 --certfile C --keyfile K`)."""
        return bool(self.values["certfile"]) and not any(
            parse_address(text).protocol == "https" for text in self.values["bind"])

    @property
    def effective_dispatch(self) -> str:
        if self.values["dispatch"] != "auto":
            return self.values["dispatch"]
        return "threads" if self.values["app"] else "inline"


def read_file(path: str) -> dict[str, Any]:
    """Parse and check a TOML file; unknown keys and bad values raise ConfigError."""
    try:
        with open(path, "rb") as f:
            data = tomllib.load(f)
    except FileNotFoundError:
        raise ConfigError(f"{path}: no such configuration file") from None
    except OSError as exc:
        raise ConfigError(f"{path}: cannot read: {exc.strerror}") from None
    except tomllib.TOMLDecodeError as exc:
        raise ConfigError(f"{path}: not valid TOML: {exc}") from None
    checked = {}
    for key, value in data.items():
        setting = BY_NAME.get(key)
        if setting is None:
            raise ConfigError(f"{path}: unknown key {key!r} (value {value!r})")
        checked[key] = _check(setting, value, path)
    return checked


def load(path: str | None, overrides: dict[str, Any], cwd: str | None = None) -> Config:
    """Defaults, then the file at path (if any), then the command-line overrides.

    cwd: the directory the command was started in (the current one by default); a relative
    path of the configuration file is taken from it, and resolve_paths makes every other path
    absolute from it and --chdir. The master passes the directory it was started in when it
    reads the file again (HUP), since --chdir may have moved it.
    """
    cwd = cwd or os.getcwd()
    values = {s.name: (list(s.default) if isinstance(s.default, list) else s.default) for s in SETTINGS}
    if path:
        values.update(read_file(os.path.join(cwd, path)))
    for key, value in overrides.items():
        values[key] = _check(BY_NAME[key], value, "command line")
    if values["static_root"] and any(t["url"].rstrip("/") == "/static" for t in values["static"] or ()):
        raise ConfigError(f"{path or 'command line'}: invalid value '/static' for key 'static': "
                          "static_root is mounted there already")
    _check_tls(values, path or "command line")
    resolve_paths(values, cwd)  # after the checks above, whose messages give the values as written
    return Config(values=values, path=path)


# Settings that name a file or directory (bind and status_bind too, for their unix:PATH).
PATH_KEYS = ("pid", "access_log", "error_log", "static_root", "certfile", "keyfile", "ca_certs")


def resolve_paths(values: dict[str, Any], cwd: str) -> None:
    """Make every path in values absolute, in place, by gunicorn's rule: --chdir is taken from
    cwd (the directory the command was started in), and every other relative path from --chdir,
    or from cwd without it. So the master's files (error log, pidfile) and the workers' (access
    log, static roots, certificates) are the same wherever each process happens to be, and a
    reload (HUP) or `prefork -t` finds the same files. "-" (stdout, stderr) stays as it is; an
    access log "off" is None by then."""
    if values["chdir"]:
        values["chdir"] = os.path.normpath(os.path.join(cwd, values["chdir"]))
    base = values["chdir"] or cwd

    def absolute(path: str) -> str:
        return os.path.normpath(os.path.join(base, path))

    for key in PATH_KEYS:
        if values[key] and values[key] != "-":
            values[key] = absolute(values[key])
    if values["static"]:
        values["static"] = [{**table, "root": absolute(table["root"])} for table in values["static"]]
    values["bind"] = [_absolute_unix(text, absolute) for text in values["bind"]]
    if values["status_bind"]:
        values["status_bind"] = _absolute_unix(values["status_bind"], absolute)


def _absolute_unix(text: str, absolute) -> str:
    """unix:PATH (after any scheme://) with PATH made absolute; other addresses as written."""
    scheme, sep, rest = text.rpartition("://")
    if not rest.startswith("unix:"):
        return text
    path, mark, option = rest[len("unix:"):].partition("?")
    if not path:
        return text  # not an address: checks.py and the master say so
    return f"{scheme}{sep}unix:{absolute(path)}{mark}{option}"


def _check_tls(values: dict[str, Any], where: str) -> None:
    """The TLS keys that need one another (whether the files are good is tls.py's to say)."""
    if values["certfile"] is None:
        for text in values["bind"]:
            if parse_address(text).protocol == "https":
                raise ConfigError(f"{where}: invalid value {text!r} for key 'bind': https:// needs a certificate: "
                                  "set certfile (and keyfile, unless the key is in the certificate's file)")
        if values["keyfile"] is not None:
            raise ConfigError(f"{where}: invalid value {values['keyfile']!r} for key 'keyfile': "
                              "a key without its certificate: set certfile too")
    if values["certfile"] is not None and values["proxy_protocol"]:
        raise ConfigError(f"{where}: invalid value True for key 'proxy_protocol': with certfile, the PROXY "
                          "header would come before the TLS handshake, which is not supported: terminate TLS "
                          "in the proxy, or drop proxy_protocol")
    if values["cert_reqs"] != "none" and values["ca_certs"] is None:
        raise ConfigError(f"{where}: invalid value {values['cert_reqs']!r} for key 'cert_reqs': "
                          "client certificates are verified against ca_certs: set ca_certs too")
