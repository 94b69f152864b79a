"""prefork: a multi-process, multi-reactor HTTP/1.1 and WSGI server, built the way nginx is built."""

from importlib.metadata import PackageNotFoundError, version as _version

try:
    __version__ = _version("prefork")
except PackageNotFoundError:  # run from a source tree that was never installed
    __version__ = "0.1.0"
