"""bench/instructions.py drives a Worker in-process through its internal seams (adopt, the
Reactor's epoll and handlers): run its driver briefly for every workload, so that a change of
those seams breaks this test rather than the benchmark on the day it is needed."""

from __future__ import annotations

import subprocess
import sys
from pathlib import Path

import pytest

SCRIPT = Path(__file__).resolve().parent.parent / "bench" / "instructions.py"
WORKLOADS = ("site /plaintext", "WSGI inline", "WSGI threads")


@pytest.mark.parametrize("heads", ["one head repeated", "every head new"])
@pytest.mark.parametrize("workload", WORKLOADS)
def test_the_driver_serves_every_workload(workload, heads):
    proc = subprocess.run([sys.executable, str(SCRIPT), "--drive", workload, "--heads", heads, "--requests", "50"],
                          capture_output=True, text=True, timeout=60)
    assert proc.returncode == 0, proc.stderr[-2000:]
