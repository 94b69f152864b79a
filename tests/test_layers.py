"""The layers of the package, as docs/architecture.md draws them: the HTTP protocol knows
nothing of sockets or apps, the workers know connections but no app."""

from __future__ import annotations

import ast
from pathlib import Path

PACKAGE = Path(__file__).resolve().parents[1] / "prefork"


def imports(directory: str) -> dict[str, set[str]]:
    """module path -> every prefork module it imports (at the top or inside functions)."""
    found = {}
    for path in sorted((PACKAGE / directory).rglob("*.py")):
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
