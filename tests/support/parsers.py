"""The request parsers this interpreter can run, by their http_parser names: the parser tests run
once per parser (the each_parser fixture in conftest.py)."""

from __future__ import annotations


def _request_parsers() -> dict:
    """Every request parser this interpreter can run, by its http_parser name."""
    from prefork.http import parser_class

    parsers = {"python": parser_class("python")[0]}
    try:
        parsers["httptools"] = parser_class("httptools")[0]
        # Requests with their field lines unsplit until read (what the built-in site gets)
        parsers["httptools-lazy"] = parser_class("httptools", lazy_fields=True)[0]
    except ImportError:
        pass
    return parsers

REQUEST_PARSERS = _request_parsers()

# Those that are values of the http_parser setting (the server picks the variant by its handler)
PARSER_SETTINGS = sorted(name for name in REQUEST_PARSERS if "-" not in name)
