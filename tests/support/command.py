"""The `prefork` command as users run it, importing this checkout's code (not whichever copy is
installed), and run to its end: `prefork -t`, `prefork -s`, a start that must fail."""

from __future__ import annotations

import os
import shutil
import subprocess
import sys
from pathlib import Path

from support.paths import REPO

# The installed console script, as users run it (pip install -e . puts it beside the interpreter).
_SCRIPT = Path(sys.executable).with_name("prefork")
PREFORK = [str(_SCRIPT)] if _SCRIPT.exists() else [shutil.which("prefork") or "prefork"]


def checkout_env(**extra: str) -> dict[str, str]:
    """The environment with this checkout first on PYTHONPATH, plus `extra`."""
    path = os.pathsep.join(filter(None, [str(REPO), os.environ.get("PYTHONPATH")]))
    return {**os.environ, "PYTHONPATH": path, **extra}


def run_prefork(*args, cwd=None, timeout: float = 30) -> subprocess.CompletedProcess:
    """Run `prefork ARGS` to its end; returns the finished process (text output)."""
    return subprocess.run([*PREFORK, *map(str, args)], cwd=cwd or REPO, capture_output=True, text=True,
                          timeout=timeout, stdin=subprocess.DEVNULL, env=checkout_env())


def check(*args, cwd=None) -> subprocess.CompletedProcess:
    """Run `prefork -t ARGS`, the configuration check; returns the finished process."""
    return run_prefork("-t", *args, cwd=cwd)


def control(pidfile, name: str) -> None:
    """`prefork -s NAME --pid PIDFILE`, which must succeed."""
    result = run_prefork("-s", name, "--pid", pidfile, timeout=20)
    assert result.returncode == 0, f"prefork -s {name}: {result.stderr}"
