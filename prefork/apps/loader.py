"""Importing the user's application: `module:callable` or `module:factory()`."""

from __future__ import annotations

import importlib
import os
import sys
import traceback


class AppLoadError(Exception):
    pass


def load_app(spec: str, chdir: str | None = None):
    """Import and return the WSGI callable named by spec; raise AppLoadError saying why not."""
    if chdir:
        try:
            os.chdir(chdir)
        except OSError as exc:
            raise AppLoadError(f"cannot change directory to {chdir!r}: {exc.strerror}") from None
    if os.getcwd() not in sys.path:
        sys.path.insert(0, os.getcwd())  # as gunicorn: the current directory is importable
    module_name, _, attribute = spec.partition(":")
    call = attribute.endswith("()")
    if call:
        attribute = attribute[:-2]
    path = attribute.split(".")  # module:app or module:obj.attr
    if not module_name or not all(part.isidentifier() for part in path):
        raise AppLoadError(f"{spec!r}: expected module:callable or module:factory()")
    try:
        module = importlib.import_module(module_name)
    except ModuleNotFoundError as exc:
        if exc.name and (module_name == exc.name or module_name.startswith(exc.name + ".")):
            raise AppLoadError(f"{spec!r}: no module named {exc.name!r} (looked in {os.getcwd()} "
                               "and sys.path; see --chdir)") from None
        raise AppLoadError(f"cannot import {module_name!r}:\n{traceback.format_exc()}") from None
    except Exception:
        raise AppLoadError(f"cannot import {module_name!r}:\n{traceback.format_exc()}") from None
    app = module
    for part in path:
        try:
            app = getattr(app, part)
        except AttributeError:
            raise AppLoadError(f"{spec!r}: module {module_name!r} has no attribute {attribute!r}") from None
    if call:
        try:
            app = app()
        except Exception:
            raise AppLoadError(f"calling {spec!r} failed:\n{traceback.format_exc()}") from None
    if not callable(app):
        raise AppLoadError(f"{spec!r} is not callable (it is {type(app).__name__})")
    return app
