"""The Hello-World app every peer serves in bench/peers.py: WSGI `app`, ASGI `asgi_app`.

Both answer any path with 200 `Hello, World!` (text/plain, Content-Length 13), so the servers,
not the apps, are what is compared.
"""

BODY = b"Hello, World!"
WSGI_HEADERS = [("Content-Type", "text/plain"), ("Content-Length", str(len(BODY)))]


def app(environ, start_response):
    """WSGI (PEP 3333)."""
    start_response("200 OK", WSGI_HEADERS)
    return [BODY]


ASGI_START = {
    "type": "http.response.start",
    "status": 200,
    "headers": [(b"content-type", b"text/plain"), (b"content-length", str(len(BODY)).encode())],
}
ASGI_BODY = {"type": "http.response.body", "body": BODY}


async def asgi_app(scope, receive, send):
    """ASGI 3 equivalent, for uvicorn."""
    if scope["type"] != "http":  # lifespan: nothing to set up
        return
    await send(ASGI_START)
    await send(ASGI_BODY)
