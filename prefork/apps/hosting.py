"""What a worker serves: its HTTP listeners' handler and its status listener's.

The master's child code builds workers with `handlers=partial(handlers, app=app)`, so the
worker package never imports an app (the layers: workers know connections, apps know HTTP
semantics and WSGI).
"""

from __future__ import annotations

from .status import Status
from .wsgi import request_handler


def handlers(worker, app=None) -> dict:
    """{"http": the WSGI app's handler, or the built-in site's; "status": the status routes}."""
    return {"http": request_handler(worker, app), "status": Status(worker).handle}
