"""`python -m prefork ...`: the `prefork` command, run by this interpreter (as `python -m gunicorn`)."""

import sys

from prefork.cli import main

sys.exit(main())
