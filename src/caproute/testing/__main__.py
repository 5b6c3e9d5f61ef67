"""``python -m caproute.testing``: run the fake API on its own (same as ``caproute fake``)."""

from __future__ import annotations

import sys

from ..cli import main

if __name__ == "__main__":
    sys.exit(main(["fake", *sys.argv[1:]]))
