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
