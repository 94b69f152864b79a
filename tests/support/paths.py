"""Where things are: the checkout under test (its code, docs and conf/) and its test apps."""

from __future__ import annotations

from pathlib import Path

REPO = Path(__file__).resolve().parents[2]
APPS = REPO / "tests" / "apps"
