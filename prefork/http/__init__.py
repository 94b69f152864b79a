"""Sans-IO HTTP/1.1: the request parser and the response serializer; no sockets, no clock."""

from .errors import ProtocolError
from .parser import CLOSED, NEED_DATA, Data, EndOfMessage, Limits, Request, RequestParser

__all__ = ["CLOSED", "NEED_DATA", "Data", "EndOfMessage", "Limits", "ProtocolError", "Request", "RequestParser",
           "PARSERS", "parser_class"]

PARSERS = ("auto", "httptools", "python")  # the values of the http_parser setting


def parser_class(name: str = "auto", lazy_fields: bool = False) -> tuple[type, str]:
    """The request parser class for an http_parser setting, and the name of the one it is:
    "httptools" (heads parsed by llhttp, in C), "python", or "auto": httptools when it imports.
    Both give the same events and verdicts. ImportError for "httptools" without httptools.
    lazy_fields: for handlers that read few fields, httptools's Requests keep their field lines
    unsplit until `headers` is read (the Python parser splits them either way)."""
    if name not in PARSERS:
        raise ValueError(f"unknown request parser {name!r}: expected one of {', '.join(PARSERS)}")
    if name != "python":
        try:
            from .llhttp_parser import LazyFieldsLlhttpRequestParser, LlhttpRequestParser
        except ImportError:
            if name == "httptools":
                raise
        else:
            return (LazyFieldsLlhttpRequestParser if lazy_fields else LlhttpRequestParser), "httptools"
    return RequestParser, "python"
