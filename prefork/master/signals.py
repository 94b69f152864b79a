"""The signals the master handles, in one place: the master installs its handlers for them,
and a forked worker puts every one back to its default before it installs its own."""

from __future__ import annotations

import signal

SIGDRAIN = signal.SIGRTMIN + 1  # `prefork -s drain`: /health answers 503, serving goes on
SIGRESUME = signal.SIGRTMIN + 2  # `prefork -s resume`
HANDLED = (signal.SIGHUP, signal.SIGQUIT, signal.SIGTERM, signal.SIGINT, signal.SIGCHLD, signal.SIGUSR1,
           signal.SIGUSR2, signal.SIGWINCH, signal.SIGTTIN, signal.SIGTTOU, SIGDRAIN, SIGRESUME)
