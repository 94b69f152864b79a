"""bjoern has no command line: `python run_bjoern.py PORT` serves hello:app on 127.0.0.1:PORT."""
import sys

import bjoern

from hello import app

bjoern.run(app, "127.0.0.1", int(sys.argv[1]))
