"""``python -m dcformat``: the ``dcformat`` command (:mod:`dcformat.cli`)."""

import sys

from .cli import main

if __name__ == "__main__":
    sys.exit(main())
