"""The request parsers this interpreter can run, by their http_parser names: the parser tests run
once per parser (the each_parser fixture in conftest.py)."""

from __future__ import annotations


def _request_parsers() -> dict:
    """Every request parser this interpreter can run, by its http_parser name."""
    from prefork.http import parser_class

    parsers = {"python": parser_class("python")[0]}
    try:
        parsers["httptools"] = parser_class("httptools")[0]
    except ImportError:
        pass
    return parsers

REQUEST_PARSERS = _request_parsers()
