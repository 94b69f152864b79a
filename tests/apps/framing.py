"""An app whose responses get HTTP framing wrong on purpose: the server must keep each response
on the connection apart from the next (tests/test_wsgi.py). Not wrapped in the validator: the
mistakes are the point.
"""

from urllib.parse import parse_qs

TEXT = [("Content-Type", "text/plain")]


def _query(environ):
    return {k: v[-1] for k, v in parse_qs(environ["QUERY_STRING"]).items()}


def _generate(parts):
    yield from parts


def no_body(environ, start_response):
    """?code=204|304 with a body and a matching Content-Length anyway; ?stream=1 as a generator."""
    query = _query(environ)
    start_response(f"{query['code']} Whatever", [("Content-Length", "2")])
    return _generate([b"h", b"i"]) if query.get("stream") else [b"hi"]


def informational(environ, start_response):
    """A 1xx status (?status=) as if it were the final answer; ?stream=1 as a generator."""
    query = _query(environ)
    start_response(query["status"], TEXT)
    return _generate([b"not a ", b"final answer"]) if query.get("stream") else [b"not a final answer"]


def fake_length(environ, start_response):
    """A header that merely contains "Content-Length" in its name: no framing, a streamed body."""
    start_response("200 OK", TEXT + [("X-Content-Length", "13")])
    return _generate([b"streamed ", b"body"])


def streamed_length(environ, start_response):
    """A streamed body framed by its Content-Length."""
    start_response("200 OK", TEXT + [("Content-Length", "13")])
    return _generate([b"streamed ", b"body"])


def short(environ, start_response):
    """A streamed body 6 bytes short of its Content-Length."""
    start_response("200 OK", TEXT + [("Content-Length", "20")])
    return _generate([b"only ", b"14 bytes."])


def hello(environ, start_response):
    start_response("200 OK", TEXT + [("Content-Length", "13")])
    return [b"Hello, World!"]


ROUTES = {"/no-body": no_body, "/informational": informational, "/fake-length": fake_length,
          "/streamed-length": streamed_length, "/short": short, "/hello": hello}


def app(environ, start_response):
    return ROUTES[environ["PATH_INFO"]](environ, start_response)
