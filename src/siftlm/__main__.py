"""``python -m siftlm``: the same as the ``siftlm`` command."""

import sys

from siftlm.cli import main

if __name__ == "__main__":
    sys.exit(main())
