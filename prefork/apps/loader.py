"""Importing the user's application: `module:callable`, `module:factory()`, or `module` alone.

`module` alone means `module:application`, as gunicorn and Django's generated wsgi.py have it
(`prefork mysite.wsgi`). `prepare` applies --env and --pythonpath before anything is imported.
"""

from __future__ import annotations

import importlib
import os
import sys
import traceback

DEFAULT_CALLABLE = "application"


class AppLoadError(Exception):
    pass


def parse_spec(spec: str) -> tuple[str, list[str], bool]:
    """(module name, attribute path, call it) for spec; AppLoadError if it is not of the form."""
    module_name, colon, attribute = spec.partition(":")
    if not colon:
        attribute = DEFAULT_CALLABLE
    call = attribute.endswith("()")
    if call:
        attribute = attribute[:-2]
    path = attribute.split(".")  # module:app or module:obj.attr
    modules = module_name.split(".")
    if not all(part.isidentifier() for part in modules + path):
        raise AppLoadError(f"{spec!r}: expected module:callable, module:factory() or module "
                           f"(which means module:{DEFAULT_CALLABLE})")
    return module_name, path, call


def pythonpath_directories(pythonpath: str | None, chdir: str | None) -> list[str]:
    """The --pythonpath directories, absolute; relative ones are taken from --chdir, as gunicorn does."""
    base = os.path.abspath(chdir or os.getcwd())
    return [os.path.join(base, d.strip()) for d in (pythonpath or "").split(",") if d.strip()]


def prepare(env: list[str] | None, pythonpath: str | None, chdir: str | None = None) -> None:
    """Set the --env variables and put the --pythonpath directories first on sys.path.

    Done once in the command before the master starts, so the master (with --preload), every
    worker it forks, and `prefork -t` all import the app with them.
    """
    for item in env or ():
        key, _, value = item.partition("=")
        os.environ[key] = value
    directories = [os.path.normpath(d) for d in pythonpath_directories(pythonpath, chdir)]
    for directory in reversed(directories):  # the first listed ends up first
        if directory in sys.path:
            sys.path.remove(directory)
        sys.path.insert(0, directory)


def load_app(spec: str, chdir: str | None = None):
    """Import and return the WSGI callable named by spec; raise AppLoadError saying why not."""
    if chdir:
        try:
            os.chdir(chdir)
        except OSError as exc:
            raise AppLoadError(f"cannot change directory to {chdir!r}: {exc.strerror}") from None
    if os.getcwd() not in sys.path:
        sys.path.insert(0, os.getcwd())  # as gunicorn: the current directory is importable
    module_name, path, call = parse_spec(spec)
    attribute = ".".join(path)
    try:
        module = importlib.import_module(module_name)
    except ModuleNotFoundError as exc:
        if exc.name and (module_name == exc.name or module_name.startswith(exc.name + ".")):
            raise AppLoadError(f"{spec!r}: no module named {exc.name!r} (looked in {os.getcwd()} "
                               "and sys.path; see --chdir and --pythonpath)") from None
        raise AppLoadError(f"cannot import {module_name!r}:\n{traceback.format_exc()}") from None
    except Exception:
        raise AppLoadError(f"cannot import {module_name!r}:\n{traceback.format_exc()}") from None
    app = module
    for part in path:
        try:
            app = getattr(app, part)
        except AttributeError:
            missing = f"{attribute!r}" + ("" if ":" in spec else f" (a module alone means module:{DEFAULT_CALLABLE})")
            raise AppLoadError(f"{spec!r}: module {module_name!r} has no attribute {missing}") from None
    if call:
        try:
            app = app()
        except Exception:
            raise AppLoadError(f"calling {spec!r} failed:\n{traceback.format_exc()}") from None
    if not callable(app):
        raise AppLoadError(f"{spec!r} is not callable (it is {type(app).__name__})")
    return app
