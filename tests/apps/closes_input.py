"""An app that closes wsgi.input (allowed: it is a file-like object) and reports what it read."""


def app(environ, start_response):
    data = environ["wsgi.input"].read()
    environ["wsgi.input"].close()
    body = b"read %d bytes" % len(data)
    start_response("200 OK", [("Content-Type", "text/plain"), ("Content-Length", str(len(body)))])
    return [body]
