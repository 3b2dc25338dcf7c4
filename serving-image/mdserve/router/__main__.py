"""``python -m mdserve.router`` (the same as ``python -m mdserve router``)."""

import sys

from mdserve.router.cli import main

if __name__ == "__main__":
    sys.exit(main(sys.argv[1:]))
