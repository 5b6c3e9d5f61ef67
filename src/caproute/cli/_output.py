"""What every command prints the same way: JSON documents, counted nouns, ``--width``.

One place, so ``--json`` output is alike everywhere (indented, UTF-8 as is, keys in
the order built) and so are the small phrases of the human output.
"""

from __future__ import annotations

import json
from typing import Any

from .._exceptions import ConfigError


def print_json(document: Any) -> None:
    """Print a command's ``--json`` document: indented, UTF-8 as is, keys in the order built."""
    print(json.dumps(document, indent=2, ensure_ascii=False))


def plural(count: int, noun: str) -> str:
    """``1 error``, ``2 errors``: a count and its noun (nouns here take an 's')."""
    return f"{count} {noun}{'' if count == 1 else 's'}"


def check_width(width: int | None) -> None:
    """Refuse a ``--width`` below 1 (argparse has checked it is an integer).

    Raises:
        ConfigError: The width is 0 or negative.
    """
    if width is not None and width < 1:
        raise ConfigError(f"--width must be 1 or more, not {width}")
