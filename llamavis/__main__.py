"""`python -m llamavis`."""

import sys

from llamavis.cli.main import run

sys.exit(run())
