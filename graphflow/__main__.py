"""``python -m graphflow``: the ``graphflow`` command (see :mod:`graphflow.cli`)."""

import sys

from graphflow.cli import main

if __name__ == "__main__":
    sys.exit(main())
