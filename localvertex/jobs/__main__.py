"""``python -m localvertex.jobs <spec.json>``: one training worker (see worker.py)."""

import sys

from .worker import worker_main

sys.exit(worker_main(sys.argv[1:]))
