"""The IO-model lab: every network IO model as a short server, measured by one load driver.

Each model is a module with serve(listener, variant): it takes a bound, listening socket and
serves the protocol of protocol.py on it forever. Read them side by side; docs/io-models.md
tells the story and shows what `prefork lab run` measured.
"""

from __future__ import annotations

import importlib

# name -> (module, default variant), in the order the tutorial tells them
MODELS = {
    "blocking": ("blocking", ""),
    "forking": ("forking", ""),
    "threaded": ("threaded", ""),
    "pool": ("pool", "16"),
    "nonblocking": ("nonblocking", ""),
    "select": ("select", ""),
    "poll": ("poll", ""),
    "epoll": ("epoll", "level"),
    "sigio": ("sigio", ""),
    "uring": ("uring", ""),
    "reactor": ("reactor", ""),
    "proactor": ("proactor", "8"),
    "prefork": ("prefork", ""),
}
# what `prefork lab run` measures unless told otherwise: every model, epoll in both variants
SWEEP = ["blocking", "forking", "threaded", "pool", "nonblocking", "select", "poll", "epoll",
         "epoll:edge", "sigio", "uring", "reactor", "proactor", "prefork"]


def parse(spec: str) -> tuple[str, str]:
    """'epoll:edge' -> ('epoll', 'edge'); a bare name takes its default variant."""
    name, _, variant = spec.partition(":")
    if name not in MODELS:
        raise ValueError(f"unknown model {name!r}; the models are {', '.join(MODELS)}")
    return name, variant or MODELS[name][1]


def load(name: str):
    return importlib.import_module(f"{__name__}.{MODELS[name][0]}")


def unavailable(name: str) -> str | None:
    """Why a model cannot run on this machine, or None."""
    module = load(name)
    check = getattr(module, "unavailable", None)
    return check() if check else None
