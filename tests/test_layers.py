"""The layers of the package, as docs/architecture.md draws them: the HTTP protocol knows
nothing of sockets or apps, the workers know connections but no app."""

from __future__ import annotations

import ast
from pathlib import Path

PACKAGE = Path(__file__).resolve().parents[1] / "prefork"


def imports(where: str) -> dict[str, set[str]]:
    """module path -> every prefork module it imports (at the top or inside functions), for
    every module under a directory of the package, or for one module file."""
    found = {}
    root = PACKAGE / where
    for path in [root] if root.is_file() else sorted(root.rglob("*.py")):
        names = set()
        package = ["prefork", *path.relative_to(PACKAGE).parent.parts]
        for node in ast.walk(ast.parse(path.read_text())):
            if isinstance(node, ast.Import):
                names |= {alias.name for alias in node.names}
            elif isinstance(node, ast.ImportFrom):
                if node.level:
                    base = package[:len(package) - node.level + 1]
                    names.add(".".join(base + ([node.module] if node.module else [])))
                else:
                    names.add(node.module or "")
        found[str(path.relative_to(PACKAGE))] = {n for n in names if n.startswith("prefork")}
    return found


def test_http_imports_nothing_else_of_prefork():
    for module, names in imports("http").items():
        assert all(n.startswith("prefork.http") for n in names), (module, names)


def test_workers_import_no_app_and_no_master():
    for module, names in imports("workers").items():
        bad = {n for n in names if n.startswith(("prefork.apps", "prefork.master"))}
        assert not bad, (module, bad)


def test_the_configuration_and_what_it_checks_with_import_nothing_of_the_processes():
    """The master imports the configuration, never the other way round (so -t, the master and
    the tests can read a configuration without the master's modules)."""
    for where in ("config.py", "addresses.py", "tls.py"):
        for module, names in imports(where).items():
            bad = {n for n in names if n.startswith(("prefork.master", "prefork.workers"))}
            assert not bad, (module, bad)


# What the connection keeps to itself: handlers get an Exchange and go through its methods.
EXCHANGE_API = {"respond", "start", "send", "end", "fail", "send_file", "on_abort", "when_writable", "writable",
                "closed", "high_water", "peer", "client", "trusted", "secure", "connection_id", "loop_time",
                "local_address", "client_and_scheme", "request", "body", "head_only", "head_style"}


def test_nothing_outside_workers_touches_connection_internals():
    """Outside prefork/workers/, no code imports the connection or the transport, reads an
    attribute the connection keeps to itself, or uses of an exchange anything but its API.
    (The IO-model lab's servers are its own, with their own sockets: not checked.)"""
    for path in sorted(PACKAGE.rglob("*.py")):
        relative = path.relative_to(PACKAGE)
        if relative.parts[0] in ("workers", "lab"):
            continue
        tree = ast.parse(path.read_text())
        for node in ast.walk(tree):
            if isinstance(node, ast.ImportFrom) and node.module:
                assert node.module not in ("prefork.workers.connection", "prefork.workers.transport",
                                           "prefork.workers.exchange"), (str(relative), node.module)
            if isinstance(node, ast.Attribute) and isinstance(node.value, ast.Name):
                if node.value.id == "exchange":
                    assert node.attr in EXCHANGE_API, (str(relative), node.lineno, node.attr)
                elif node.value.id in ("conn", "connection"):
                    raise AssertionError(f"{relative}:{node.lineno}: handlers see an exchange, not {node.value.id}")
            if isinstance(node, ast.Attribute) and node.attr in ("transport", "dispatching", "respond_later"):
                raise AssertionError(f"{relative}:{node.lineno}: .{node.attr} belongs to the connection")


def test_the_exchange_offers_what_handlers_use():
    """The API the test above allows is the Exchange's own (no name in it is missing)."""
    from prefork.workers.exchange import Exchange

    offered = set(Exchange.__slots__) | {name for name in vars(Exchange) if not name.startswith("_")}
    assert EXCHANGE_API <= offered, EXCHANGE_API - offered
