"""`prefork mysite.wsgi` (no colon) serves this module's `application`, as gunicorn would.

It answers with the environment variables and the sys.path entries the command set (-e, --pythonpath),
so tests can see them from the app's side.
"""

import json
import os
import sys

AT_IMPORT = os.environ.get("PREFORK_TEST_AT_IMPORT")  # -e must be set before this line runs


def application(environ, start_response):
    body = json.dumps({
        "app": "mysite.wsgi:application",
        "at_import": AT_IMPORT,
        "env": {k: v for k, v in os.environ.items() if k.startswith("PREFORK_TEST_")},
        "path": sys.path[:5],
    }).encode()
    start_response("200 OK", [("Content-Type", "application/json"), ("Content-Length", str(len(body)))])
    return [body]
