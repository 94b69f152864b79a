"""Sans-IO HTTP/1.1: the request parser and the response serializer; no sockets, no clock."""

from .errors import ProtocolError
from .parser import CLOSED, NEED_DATA, Data, EndOfMessage, Limits, Request, RequestParser

__all__ = ["CLOSED", "NEED_DATA", "Data", "EndOfMessage", "Limits", "ProtocolError", "Request", "RequestParser"]
